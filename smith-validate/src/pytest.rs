//! The pytest [`Executor`]: runs a selection of tests in a workspace and
//! turns what pytest did into a [`TestReport`].
//!
//! Each run writes a small plugin (`.smith/smith_pytest_plugin.py`) into the
//! workspace and loads it with `-p`. The plugin selects tests by exact node id
//! (ids with `::`, spaces or brackets in their parameters cannot be passed on
//! pytest's command line reliably) and appends one JSON line per test event
//! to `.smith/events.jsonl`, flushed as it goes. Outcomes come from that
//! event log, so a run whose output was flooded or truncated, or whose
//! interpreter crashed, still reports every test that finished; the log's
//! short test summary (`-rA`'s, without its PASSES section;
//! [`parse_pytest_log`]) fills in when the plugin could not load.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use smith_core::{
    CommandSpec, Executor, Outcome, Result, RunOptions, RunOutput, TestId, TestReport,
    TestSelection, Workspace,
};

use crate::fork::ServerPool;
use crate::parse::{merge_outcome, parse_pytest_log};
use crate::phases::{Route, RunStats, RunTimes};

/// The plugin's source, written into every workspace before a run.
pub(crate) const PLUGIN_SOURCE: &str = include_str!("smith_pytest_plugin.py");
/// Directory inside the workspace for smith's control files. Its leading dot
/// keeps pytest from collecting it.
pub(crate) const CONTROL_DIR: &str = ".smith";
const PLUGIN_PATH: &str = ".smith/smith_pytest_plugin.py";
const SELECT_PATH: &str = ".smith/select.json";
const EVENTS_PATH: &str = ".smith/events.jsonl";
const LIMITS_PATH: &str = ".smith/limits.json";
/// The most of a run's output kept in [`TestReport::log`].
const MAX_LOG: usize = 1 << 20;

/// pytest options that take their value as the next argument, so that the
/// value is not mistaken for a test path when a selection replaces the paths.
const VALUE_OPTIONS: &[&str] = &[
    "-p",
    "-k",
    "-m",
    "-c",
    "-o",
    "-W",
    "-r",
    "--rootdir",
    "--confcutdir",
    "--ignore",
    "--ignore-glob",
    "--deselect",
    "--junitxml",
    "--junit-xml",
    "--basetemp",
    "--tb",
    "--maxfail",
    "--durations",
    "--import-mode",
    "--log-level",
    "--override-ini",
    "--config-file",
];

/// Runs pytest in a workspace.
///
/// `python` is the program to run (usually `python`, found on the
/// workspace's `PATH`, which the sandbox points at the repository's
/// environment); `args` is the base test command after it, e.g.
/// `["-m", "pytest", "-p", "no:cacheprovider", "tests"]`. When a run selects
/// particular tests, the base command's test paths are replaced by the files
/// of the selected tests and the plugin keeps exactly the selected ids; a
/// whole-suite run of known tests ([`TestSelection::AllKnown`]) keeps the
/// paths and the plugin makes items of those tests only.
///
/// With [`forking`](PytestExecutor::forking) on (and a base command of the
/// form `-m pytest ...`), [`prepare`](Executor::prepare) gives each clean
/// workspace a fork server that imports pytest, the suite's installed
/// dependencies (never a module of the workspace) and its compiled test
/// files once; every run is then a forked child instead of a fresh
/// interpreter. Workspaces not prepared or that cannot start a long-lived
/// process, and runs whose server fails, use a fresh interpreter as before
/// (a lost server is replaced at the next `prepare`). Clones share their
/// servers.
#[derive(Debug, Clone)]
pub struct PytestExecutor {
    python: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    fork: bool,
    collect: bool,
    pool: Arc<ServerPool>,
    /// Runs by route; shared by clones and the [`plain`](Self::plain) twin.
    stats: Arc<RunStats>,
}

impl PartialEq for PytestExecutor {
    fn eq(&self, other: &Self) -> bool {
        (&self.python, &self.args, &self.env, self.fork, self.collect)
            == (
                &other.python,
                &other.args,
                &other.env,
                other.fork,
                other.collect,
            )
    }
}

impl Eq for PytestExecutor {}

impl PytestExecutor {
    /// An executor running `python args...`.
    pub fn new(python: impl Into<String>, args: Vec<String>) -> Self {
        PytestExecutor {
            python: python.into(),
            args,
            env: BTreeMap::new(),
            fork: false,
            collect: true,
            pool: Arc::default(),
            stats: Arc::default(),
        }
    }

    /// With forking on, whether [`prepare`](Executor::prepare) starts a
    /// collected server per workspace (on by default): one that runs the
    /// whole suite's session up to the end of collection and forks there
    /// for every run of selected tests, swapping a candidate's changed
    /// function bodies into the live code. A change it cannot swap in
    /// exactly (anything at module or class level, a test file) is run by
    /// the plain server instead.
    pub fn collected(mut self, on: bool) -> Self {
        self.collect = on;
        self
    }

    /// Run tests through a fork server per workspace (see the type's docs).
    pub fn forking(mut self, on: bool) -> Self {
        self.fork = on;
        self
    }

    /// Whether runs go through fork servers where possible: forking is on
    /// and the base command is `-m pytest ...`, which a server can run.
    pub fn is_forking(&self) -> bool {
        self.fork
            && matches!(self.args.as_slice(), [m, module, ..] if m == "-m" && module == "pytest")
    }

    /// How many runs so far went through fork servers (this executor and
    /// its clones).
    pub fn served_runs(&self) -> usize {
        self.pool.served.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Of [`served_runs`](Self::served_runs), how many went through
    /// collected servers, and how many runs those handed back to a plain
    /// server (a change they could not swap in).
    pub fn collected_runs(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.pool.served_collected.load(Relaxed),
            self.pool.fell_back.load(Relaxed),
        )
    }

    /// The workspace files fork servers compile once, learned from the first
    /// whole-suite run (empty before it, or without forking).
    pub fn warm_files(&self) -> Vec<String> {
        self.pool.warm_files()
    }

    /// How many fork servers this executor and its clones started (plain
    /// and collected), and the modules they refused to import ahead of
    /// time because importing them loads files of the workspace.
    pub fn server_starts(&self) -> (usize, Vec<String>) {
        (
            self.pool.started.load(std::sync::atomic::Ordering::Relaxed),
            self.pool.refused_modules(),
        )
    }

    /// Every run of this executor, its clones and its
    /// [`plain`](Self::plain) twins so far, by how it ran (collected
    /// server, plain server, fresh interpreter) with wall and test seconds.
    pub fn run_times(&self) -> RunTimes {
        RunTimes {
            server_starts: self.pool.started.load(std::sync::atomic::Ordering::Relaxed),
            ..self.stats.times()
        }
    }

    /// The same executor with every run in a fresh interpreter.
    pub fn plain(&self) -> Self {
        PytestExecutor {
            fork: false,
            pool: Arc::default(),
            ..self.clone()
        }
    }

    /// Set an extra environment variable for every run.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// The program this executor runs.
    pub fn python(&self) -> &str {
        &self.python
    }

    /// The base arguments.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The base arguments split into options (kept for every run) and test
    /// paths (replaced when a run selects tests).
    fn split_args(&self) -> (Vec<String>, Vec<String>) {
        let mut options = Vec::new();
        let mut paths = Vec::new();
        let mut module_next = false;
        let mut value_next = false;
        let mut seen_module = false;
        for arg in &self.args {
            if module_next {
                options.push(arg.clone());
                module_next = false;
                seen_module = true;
            } else if value_next {
                options.push(arg.clone());
                value_next = false;
            } else if arg == "-m" && !seen_module {
                options.push(arg.clone());
                module_next = true;
            } else if arg.starts_with('-') {
                value_next = VALUE_OPTIONS.contains(&arg.as_str());
                options.push(arg.clone());
            } else {
                paths.push(arg.clone());
            }
        }
        (options, paths)
    }

    /// The command for one run of `selection`, plus the selection file's
    /// contents (for [`TestSelection::Only`]).
    pub(crate) fn command(
        &self,
        selection: &TestSelection,
        extra_env: &[(&str, &str)],
    ) -> (CommandSpec, Option<String>) {
        let (options, paths) = self.split_args();
        let mut args = options;
        // The short summary of every outcome, as `-rA` gives it, without
        // `-rA`'s PASSES section: pytest builds that by scanning every
        // report once per passed test, which on a suite of a few thousand
        // tests costs half a second per run.
        args.extend(
            [
                "-rpsxXEf",
                "-p",
                "smith_pytest_plugin",
                "--continue-on-collection-errors",
            ]
            .map(String::from),
        );
        let select = match selection {
            TestSelection::All => {
                args.extend(paths);
                None
            }
            TestSelection::Only(ids) => {
                let files: BTreeSet<&str> = ids.iter().map(TestId::file).collect();
                args.extend(files.into_iter().map(String::from));
                Some(id_list(ids))
            }
            TestSelection::AllKnown(ids) => {
                args.extend(paths);
                Some(id_list(ids))
            }
        };
        // Each interpreter draws its own hash seed, as a grader's does,
        // whatever seed the environment fixes: a fixed seed would hide
        // tests whose ids or outcomes depend on hash order. The baseline
        // fixes distinct seeds per run instead ([`Executor::with_seed`]).
        let mut spec = CommandSpec::new(self.python.clone(), args)
            .env("PYTHONPATH", CONTROL_DIR)
            .env("SMITH_EVENTS", EVENTS_PATH)
            .env("PY_COLORS", "0")
            .env("NO_COLOR", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONHASHSEED", "random");
        if select.is_some() {
            spec = spec.env("SMITH_SELECT", SELECT_PATH);
        }
        for (k, v) in &self.env {
            // The plugin's directory stays first on a caller's PYTHONPATH.
            let v = if k == "PYTHONPATH" {
                format!("{CONTROL_DIR}:{v}")
            } else {
                v.clone()
            };
            spec = spec.env(k.clone(), v);
        }
        for (k, v) in extra_env {
            spec = spec.env(*k, *v);
        }
        (spec, select)
    }
}

impl Executor for PytestExecutor {
    /// Write the plugin and selection, run (through the workspace's fork
    /// server when forking), and build the report.
    fn run_tests(
        &self,
        workspace: &mut dyn Workspace,
        selection: &TestSelection,
        options: &RunOptions,
    ) -> Result<TestReport> {
        let (spec, select) = self.command(selection, &[]);
        workspace.write(PLUGIN_PATH, PLUGIN_SOURCE.as_bytes())?;
        workspace.write(EVENTS_PATH, b"")?;
        if let Some(select) = select {
            workspace.write(SELECT_PATH, select.as_bytes())?;
        }
        let forking = self.is_forking();
        let mut forked = None;
        let mut started = Instant::now();
        if let (true, TestSelection::Only(ids)) = (forking && self.collect, selection) {
            let (output, asked) = self.pool.run_collected(workspace, &spec, ids, options);
            forked = output.map(|o| (o, Route::Collected));
            if forked.is_none() && asked {
                self.stats.handed_back(started.elapsed());
                started = Instant::now();
            }
        }
        if forked.is_none() && forking {
            let whole_suite = *selection == TestSelection::All;
            forked = self
                .pool
                .run(workspace, &spec, options, whole_suite)
                .map(|o| (o, Route::Plain));
        }
        let (output, route) = match forked {
            Some(run) => run,
            None => {
                // The plugin keeps the per-test limits a fork server would.
                let mut spec = match options.test_timeout {
                    Some(limit) => spec.env("SMITH_TEST_TIMEOUT", limit.as_secs_f64().to_string()),
                    None => spec,
                };
                if !options.test_timeouts.is_empty() {
                    let limits = limits_json(options).to_string();
                    workspace.write(LIMITS_PATH, limits.as_bytes())?;
                    spec = spec.env("SMITH_TEST_LIMITS", LIMITS_PATH);
                }
                (workspace.run(&spec, options)?, Route::Fresh)
            }
        };
        let ran = started.elapsed();
        let parsing = Instant::now();
        let events = workspace.read(EVENTS_PATH).unwrap_or_default();
        let report = build_report(&String::from_utf8_lossy(&events), &output);
        let tests: f64 = report.durations.values().sum();
        self.stats.run(route, ran, tests, parsing.elapsed());
        Ok(report)
    }

    /// With forking on, start the workspace's fork servers from the clean
    /// tree unless they are up: the plain one and, with
    /// [`collected`](PytestExecutor::collected) on, the collected one.
    fn prepare(&self, workspace: &mut dyn Workspace) -> Result<()> {
        if self.is_forking() {
            workspace.write(PLUGIN_PATH, PLUGIN_SOURCE.as_bytes())?;
            workspace.write(EVENTS_PATH, b"")?;
            let (spec, _) = self.command(&TestSelection::All, &[]);
            self.pool.prepare(workspace, &spec, self.collect);
        }
        Ok(())
    }

    /// [`prepare`](Executor::prepare) for runs of `selection`: the
    /// collected server collects what a run of `selection` collects (for
    /// [`TestSelection::Only`], the files of its tests, which is what a
    /// fresh run of them imports), not the whole suite. The gym grades
    /// through this, once per workspace holding a task's buggy tree.
    fn prepare_for(&self, workspace: &mut dyn Workspace, selection: &TestSelection) -> Result<()> {
        if self.is_forking() {
            workspace.write(PLUGIN_PATH, PLUGIN_SOURCE.as_bytes())?;
            workspace.write(EVENTS_PATH, b"")?;
            let (spec, _) = self.command(selection, &[]);
            self.pool.prepare(workspace, &spec, self.collect);
        }
        Ok(())
    }

    /// Stop `workspace`'s fork servers and forget them.
    fn release(&self, workspace: &dyn Workspace) {
        self.pool.release(workspace.root());
    }

    /// With forking on, [`plain`](PytestExecutor::plain).
    fn fresh(&self) -> Option<Box<dyn Executor>> {
        self.is_forking()
            .then(|| Box::new(self.plain()) as Box<dyn Executor>)
    }

    /// This executor (sharing its fork servers) with `PYTHONHASHSEED` set,
    /// and the plugin seeding the global random generators before every
    /// test (`SMITH_RANDOM_SEED`).
    fn with_seed(&self, seed: u32) -> Option<Box<dyn Executor>> {
        Some(Box::new(
            self.clone()
                .env("PYTHONHASHSEED", seed.to_string())
                .env("SMITH_RANDOM_SEED", seed.to_string()),
        ))
    }
}

/// `options.test_timeouts` as a JSON object of seconds by node id: what
/// the plugin reads from `SMITH_TEST_LIMITS` in a fresh interpreter and a
/// fork server's request carries as `test_timeouts`.
pub(crate) fn limits_json(options: &RunOptions) -> serde_json::Value {
    options
        .test_timeouts
        .iter()
        .map(|(t, d)| (t.0.clone(), serde_json::json!(d.as_secs_f64())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The plugin's selection file: a JSON list of node ids.
fn id_list(ids: &[TestId]) -> String {
    let list: Vec<&str> = ids.iter().map(TestId::as_str).collect();
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())
}

/// One line of the plugin's event log.
#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum PluginEvent {
    Start {
        nodeid: String,
    },
    Report {
        nodeid: String,
        when: String,
        outcome: String,
        #[serde(default)]
        duration: f64,
        #[serde(default)]
        xfail: bool,
        #[serde(default)]
        subtest: bool,
    },
    Finish {
        nodeid: String,
    },
    /// A test's call phase began (the fork server's per-test clock).
    Call {},
    /// The fork server's per-test clock ended the run: this test's call ran
    /// over its limit.
    OverLimit {
        #[serde(default)]
        nodeid: Option<String>,
    },
    CollectError {
        nodeid: String,
    },
    /// The test drew from the process's random state.
    Random {
        nodeid: String,
    },
    Uses {
        nodeid: String,
        fixtures: Vec<String>,
    },
}

/// Parse the event log, skipping a torn last line (the process may have been
/// killed mid-write).
pub(crate) fn parse_events(text: &str) -> Vec<PluginEvent> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[derive(Default)]
struct TestPhases {
    started: bool,
    finished: bool,
    setup: Option<(String, bool)>,
    call: Option<(String, bool)>,
    teardown_failed: bool,
    subtest_failed: bool,
    seconds: f64,
}

impl TestPhases {
    fn outcome(&self) -> Option<Outcome> {
        if self.subtest_failed {
            return Some(Outcome::Failed);
        }
        if let Some((outcome, xfail)) = &self.setup {
            match outcome.as_str() {
                "failed" => return Some(Outcome::Error),
                "skipped" if *xfail => return Some(Outcome::XFailed),
                "skipped" => return Some(Outcome::Skipped),
                _ => {}
            }
        }
        let call = match &self.call {
            Some((outcome, xfail)) => match (outcome.as_str(), xfail) {
                ("passed", false) => Outcome::Passed,
                ("passed", true) => Outcome::XPassed,
                ("failed", _) => Outcome::Failed,
                ("skipped", true) => Outcome::XFailed,
                _ => Outcome::Skipped,
            },
            // Started, never finished its call: the interpreter died in it.
            None if self.started && !self.finished => Outcome::Failed,
            None => return None,
        };
        if self.teardown_failed && call != Outcome::Failed {
            return Some(Outcome::Error);
        }
        Some(call)
    }
}

/// What the plugin's event log says about a run, test by test.
#[derive(Default)]
struct EventSummary {
    /// Node id → its phases.
    phases: BTreeMap<String, TestPhases>,
    /// Nodes that failed to collect.
    collection_errors: Vec<String>,
    /// The test the plugin ended the run for, over its time limit.
    over_test_limit: Option<TestId>,
    /// Tests that drew from the random state.
    randomized: BTreeSet<TestId>,
}

/// Gather the plugin's events into phases per test.
fn summarize_events(events: &str) -> EventSummary {
    let mut summary = EventSummary::default();
    for event in parse_events(events) {
        match event {
            PluginEvent::Start { nodeid } => {
                summary.phases.entry(nodeid).or_default().started = true;
            }
            PluginEvent::Finish { nodeid } => {
                summary.phases.entry(nodeid).or_default().finished = true;
            }
            PluginEvent::Report {
                nodeid,
                when,
                outcome,
                duration,
                xfail,
                subtest,
            } => {
                let p = summary.phases.entry(nodeid).or_default();
                if subtest {
                    p.subtest_failed |= outcome == "failed";
                    continue;
                }
                p.seconds += duration;
                match when.as_str() {
                    "setup" => p.setup = Some((outcome, xfail)),
                    "call" => p.call = Some((outcome, xfail)),
                    _ => p.teardown_failed |= outcome == "failed",
                }
            }
            PluginEvent::CollectError { nodeid } => summary.collection_errors.push(nodeid),
            PluginEvent::Random { nodeid } => {
                summary.randomized.insert(TestId::new(nodeid));
            }
            PluginEvent::OverLimit { nodeid } => {
                summary.over_test_limit = Some(TestId::new(nodeid.unwrap_or_default()));
            }
            PluginEvent::Call {} | PluginEvent::Uses { .. } => {}
        }
    }
    summary
}

/// Turn the plugin's events and the process output into a report.
pub(crate) fn build_report(events: &str, output: &RunOutput) -> TestReport {
    let mut log = output.stdout.clone();
    if !output.stderr.is_empty() {
        log.push('\n');
        log.push_str(&output.stderr);
    }
    let EventSummary {
        phases,
        mut collection_errors,
        over_test_limit,
        randomized,
    } = summarize_events(events);
    // A run the plugin ended for a test over its limit timed out, as one a
    // fork server ends does.
    let timed_out = output.timed_out || over_test_limit.is_some();
    let mut report = TestReport {
        wall_secs: output.duration.as_secs_f64(),
        exit_code: if timed_out { None } else { output.exit_code },
        timed_out,
        over_test_limit,
        randomized,
        ..TestReport::default()
    };
    for (id, p) in &phases {
        // A test cut off by the time limit did not fail: it ran out of time.
        if timed_out && !p.finished {
            continue;
        }
        if let Some(outcome) = p.outcome() {
            report.outcomes.insert(TestId::new(id.clone()), outcome);
            report.durations.insert(TestId::new(id.clone()), p.seconds);
        }
    }
    // Without the plugin's events (it failed to load), fall back to the log.
    if phases.is_empty() && collection_errors.is_empty() {
        for (id, outcome) in parse_pytest_log(&log) {
            if !id.as_str().contains("::") && outcome == Outcome::Error {
                collection_errors.push(id.0);
            } else {
                merge_outcome(&mut report.outcomes, id, outcome);
            }
        }
    }
    // The session died before reporting anything (a conftest that no longer
    // imports makes pytest exit with 4, an import-time crash kills it): no
    // test of the run can have passed, which is recorded as a session-wide
    // collection error (node id ""). Exit 5 means nothing was collected.
    if report.outcomes.is_empty()
        && collection_errors.is_empty()
        && !timed_out
        && !matches!(output.exit_code, Some(0) | Some(5))
    {
        collection_errors.push(String::new());
    }
    collection_errors.sort();
    collection_errors.dedup();
    report.collection_errors = collection_errors;
    report.log = cap_log(log);
    report
}

/// Keep the head and the tail of a long log: the tail holds pytest's summary.
fn cap_log(log: String) -> String {
    if log.len() <= MAX_LOG {
        return log;
    }
    let head_end = floor_char(&log, MAX_LOG / 4);
    let tail_start = ceil_char(&log, log.len() - MAX_LOG * 3 / 4);
    format!(
        "{}\n[... {} bytes cut by smith ...]\n{}",
        &log[..head_end],
        tail_start - head_end,
        &log[tail_start..]
    )
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

pub(crate) use smith_core::pytest_log::tail;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_replaces_paths_but_keeps_option_values() {
        let exec = PytestExecutor::new(
            "python",
            ["-m", "pytest", "-p", "no:cacheprovider", "-k", "x", "tests"]
                .map(String::from)
                .to_vec(),
        );
        let (spec, select) = exec.command(
            &TestSelection::Only(vec![
                TestId::from("tests/a.py::t[x::y]"),
                TestId::from("tests/a.py::u"),
            ]),
            &[],
        );
        assert!(spec
            .args
            .starts_with(&["-m", "pytest", "-p", "no:cacheprovider", "-k", "x"].map(String::from)));
        assert_eq!(spec.args.last().unwrap(), "tests/a.py");
        assert!(!spec.args.contains(&"tests".to_string()));
        assert_eq!(
            select.unwrap(),
            r#"["tests/a.py::t[x::y]","tests/a.py::u"]"#
        );
        let (all, none) = exec.command(&TestSelection::All, &[]);
        assert_eq!(all.args.last().unwrap(), "tests");
        assert!(none.is_none());
        let (known, select) = exec.command(
            &TestSelection::AllKnown(vec![TestId::from("tests/a.py::u")]),
            &[],
        );
        assert_eq!(known.args.last().unwrap(), "tests");
        assert_eq!(known.env["SMITH_SELECT"], ".smith/select.json");
        assert_eq!(select.unwrap(), r#"["tests/a.py::u"]"#);
    }

    #[test]
    fn a_callers_pythonpath_comes_after_the_plugin() {
        let exec = PytestExecutor::new("python", vec!["-m".into(), "pytest".into()])
            .env("PYTHONPATH", "src");
        let (spec, _) = exec.command(&TestSelection::All, &[]);
        assert_eq!(spec.env["PYTHONPATH"], ".smith:src");
        assert_eq!(spec.env["SMITH_EVENTS"], ".smith/events.jsonl");
        assert!(!spec.env.contains_key("SMITH_SELECT"));
    }

    #[test]
    fn a_session_that_dies_before_any_test_is_a_collection_error() {
        let died = RunOutput {
            exit_code: Some(4),
            ..Default::default()
        };
        assert_eq!(
            build_report("", &died).collection_errors,
            vec![String::new()]
        );
        let nothing = RunOutput {
            exit_code: Some(5),
            ..Default::default()
        };
        assert!(build_report("", &nothing).collection_errors.is_empty());
    }

    #[test]
    fn events_give_phase_outcomes_and_crashes() {
        let events = [
            r#"{"event":"start","nodeid":"t.py::ok"}"#,
            r#"{"event":"report","nodeid":"t.py::ok","when":"setup","outcome":"passed","duration":0.5}"#,
            r#"{"event":"report","nodeid":"t.py::ok","when":"call","outcome":"passed","duration":1.0}"#,
            r#"{"event":"report","nodeid":"t.py::ok","when":"teardown","outcome":"failed","duration":0.5}"#,
            r#"{"event":"finish","nodeid":"t.py::ok"}"#,
            r#"{"event":"start","nodeid":"t.py::crash"}"#,
            r#"{"event":"report","nodeid":"t.py::crash","when":"setup","outcome":"passed","duration":0.0}"#,
            r#"{"event":"rep"#,
        ]
        .join("\n");
        let out = RunOutput {
            exit_code: None,
            ..Default::default()
        };
        let r = build_report(&events, &out);
        assert_eq!(r.outcomes[&TestId::from("t.py::ok")], Outcome::Error);
        assert_eq!(r.durations[&TestId::from("t.py::ok")], 2.0);
        assert_eq!(r.outcomes[&TestId::from("t.py::crash")], Outcome::Failed);
    }
}
