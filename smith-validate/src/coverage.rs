//! Coverage-guided test selection: which tests execute which lines.
//!
//! One run of the suite under coverage.py, with smith's pytest plugin
//! switching the measurement context to `t:<node id>` while a test runs and
//! to `f:<fixture>` while a fixture wider than one function is set up,
//! gives line → tests. A candidate then runs only the tests that execute a
//! line its patch changes. Lines executed outside any test (at import or
//! collection time), files without data and added files fall back to the
//! full suite; a candidate whose lines no test executes is uncovered.
//!
//! One kind of import-time line is narrowed instead: the header of a
//! function (its decorators and its `def` line with parameters and
//! defaults). Running a `def` statement only makes the function object;
//! what the header decides — parameters, defaults, the decorator's wrapping,
//! the name it is bound to — shows when the function is called, and every
//! test that called it on the clean tree executed its body. So a header line
//! selects the tests that execute the function's body. When no test does
//! (an abstract method, a function only registered), the full suite runs.
//! What this cannot see is introspection without a call (`inspect.signature`
//! in a test that never calls the function); a header change that breaks the
//! module's import shows up as a collection error, and the validator then
//! runs the full suite (see `validate_one`). This holds only while the
//! function keeps its name and decorators: a patch that removes or renames
//! a `def`, or removes or changes a decorator, runs the full suite (an
//! abstract method that loses its override makes its class impossible to
//! instantiate, which tests observe without calling the method), unless
//! the syntax trees of both sides narrow it ([`crate::structure`], through
//! [`CoverageMap::selection_with_sources`]). Class statements and other
//! module- or class-level lines still fall back to the full suite:
//! `isinstance` and `except` observe a class's bases without running any of
//! its lines. Lines under `# pragma: no cover` are measured like any other.
//!
//! The run ([`CoverageMap::collect`]) measures the repository's own files
//! only, with smith's configuration, never the project's: sources
//! coverage.py cannot find (code compiled under a synthetic file name,
//! `exec`, Cython, zip imports) are left out, and the project's pytest-cov
//! is turned off whichever configuration file turns it on. Python
//! processes the tests start (console scripts, `python -m`,
//! `multiprocessing` workers) measure themselves under the context of the
//! test that started them, so a test that reaches a change only through a
//! child process is selected for it; a test that is not selected provably
//! does not reach the change. Where children cannot be measured, the tests
//! that start processes run for every candidate instead. A run that gives
//! no usable map is an error, and callers run the whole suite.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use smith_core::{
    Candidate, CommandSpec, Error, FilePatch, Patch, Result, RunOptions, RunOutput, TestId,
    TestSelection, Workspace,
};

use crate::pytest::{parse_events, PluginEvent, PytestExecutor};

const RCFILE: &str = ".smith/coveragerc";
const JSON_PATH: &str = ".smith/coverage.json";
const SITECUSTOMIZE_PATH: &str = ".smith/sitecustomize.py";
const SITECUSTOMIZE_SOURCE: &str = include_str!("smith_sitecustomize.py");

/// smith's coverage configuration. The project's own (`.coveragerc`,
/// `[tool.coverage]`) is never read. Paths and the static context come from
/// the environment: the pytest plugin sets `SMITH_COVERAGE_ROOT` (absolute)
/// and `SMITH_COVERAGE_CONTEXT` (the running test's context) for the
/// processes the tests start, which read this file again at their start
/// (`COVERAGE_PROCESS_START`); the run itself starts with neither, in the
/// workspace root. Every process writes its own data file (`parallel`),
/// combined before the report. `concurrency = multiprocessing` measures
/// `multiprocessing` children (forked ones too). `exclude_lines` empty:
/// lines under `# pragma: no cover` are measured like any other; excluded
/// lines would be missing from the statements, and a change there would be
/// taken for a change to the statement before it. `ignore_errors`: sources
/// coverage.py cannot find (code compiled under a synthetic file name,
/// Cython, zip imports) are left out of the report instead of failing it.
const RC_SOURCE: &str = "\
[run]
data_file = ${SMITH_COVERAGE_ROOT-.}/.smith/coverage.data
parallel = True
branch = False
context = ${SMITH_COVERAGE_CONTEXT-}
include = ${SMITH_COVERAGE_ROOT-.}/*
omit = ${SMITH_COVERAGE_ROOT-.}/.smith/*
concurrency =
    thread
    multiprocessing
[report]
exclude_lines =
ignore_errors = True
";

/// Run after the coverage run (`python -c REPORT_SCRIPT <rcfile> <json>`):
/// combine every process's data file and write the JSON report with
/// contexts, in one interpreter.
const REPORT_SCRIPT: &str = "\
import sys
import coverage
try:
    cov = coverage.Coverage(config_file=sys.argv[1])
    cov.combine(strict=True)
    cov.json_report(outfile=sys.argv[2], show_contexts=True)
except Exception as e:
    sys.exit(f'{type(e).__name__}: {e}')
";

/// Run before the coverage run (`python -c PREPARE_SCRIPT <rcfile>`): erase
/// data an earlier run left, and say whether pytest-cov is installed.
const PREPARE_SCRIPT: &str = "\
import importlib.util, sys
import coverage
coverage.Coverage(config_file=sys.argv[1]).erase()
if importlib.util.find_spec('pytest_cov') is not None:
    print('pytest-cov')
";

/// Measured lines of one source file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCoverage {
    /// First lines of every statement coverage.py knows in the file
    /// (executed or not), sorted. A changed line inside a multi-line
    /// statement maps to the statement's first line.
    pub statements: Vec<u32>,
    /// Executed line → indices into [`CoverageMap::contexts`].
    pub lines: BTreeMap<u32, Vec<u32>>,
    /// Function headers: the statement line of a `def` (and of each of its
    /// decorators) → the statement lines of that function's body.
    #[serde(default)]
    pub headers: BTreeMap<u32, Vec<u32>>,
}

/// Which tests execute which lines; serializable so that it can be cached
/// (`coverage.json` next to the baseline).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageMap {
    /// How the map was made; a cached map of another format is rebuilt
    /// ([`CoverageMap::FORMAT`]).
    #[serde(default)]
    pub format: u32,
    /// Context names: `""` (outside any test), `t:<node id>`, `f:<fixture>`.
    pub contexts: Vec<String>,
    /// Per file, `/`-separated and relative to the repository root.
    pub files: BTreeMap<String, FileCoverage>,
    /// Fixture name → tests that request it.
    pub fixture_users: BTreeMap<String, BTreeSet<TestId>>,
    /// Whether Python processes started by the tests were measured: a
    /// probe child, started with the run's environment when a test first
    /// starts a process, measured itself. Then a test that is not selected
    /// provably executes no changed line, in its own process or any it
    /// starts. (`false` when no test starts a process: nothing to follow.)
    #[serde(default)]
    pub subprocesses: bool,
    /// Contexts (as in [`CoverageMap::contexts`]) that started a process.
    /// Without [`CoverageMap::subprocesses`], their tests run for every
    /// candidate, since what their children execute is unknown.
    #[serde(default)]
    pub spawners: BTreeSet<String>,
}

/// The tests to run for one candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateSelection {
    /// Run the whole suite: some changed line has no usable coverage data.
    Full,
    /// Run exactly these tests (never empty).
    Tests(BTreeSet<TestId>),
    /// No test executes any changed line; nothing needs to run.
    Uncovered,
}

impl CandidateSelection {
    /// As an executor selection (`Uncovered` gives an empty `Only`).
    pub fn to_test_selection(&self) -> TestSelection {
        match self {
            CandidateSelection::Full => TestSelection::All,
            CandidateSelection::Tests(t) => TestSelection::Only(t.iter().cloned().collect()),
            CandidateSelection::Uncovered => TestSelection::Only(Vec::new()),
        }
    }
}

/// Lines on the old side of `patch` that it changes, by file: removed lines,
/// and for pure insertions the old lines on either side. Added files map to
/// an empty set (no old side).
pub fn changed_lines(patch: &Patch) -> Result<BTreeMap<String, BTreeSet<u32>>> {
    Ok(changed_lines_of(&patch.files()?))
}

/// [`changed_lines`] of an already parsed patch.
fn changed_lines_of(files: &[FilePatch]) -> BTreeMap<String, BTreeSet<u32>> {
    let mut out: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for fp in files {
        let set = out.entry(fp.path().to_string()).or_default();
        if fp.old_path.is_none() {
            continue;
        }
        for hunk in &fp.hunks {
            let mut old_line = hunk.old_start as u32;
            let mut after_removal = false;
            for line in &hunk.lines {
                match line.kind {
                    smith_core::LineKind::Context => {
                        old_line += 1;
                        after_removal = false;
                    }
                    smith_core::LineKind::Removed => {
                        set.insert(old_line);
                        old_line += 1;
                        after_removal = true;
                    }
                    smith_core::LineKind::Added => {
                        if !after_removal {
                            if old_line > 1 {
                                set.insert(old_line - 1);
                            }
                            set.insert(old_line.max(1));
                        }
                    }
                }
            }
        }
    }
    out
}

/// The function a `def` line defines (`def name(` or `async def name(`).
fn def_name(line: &str) -> Option<&str> {
    let line = line.trim();
    let rest = line.strip_prefix("async ").unwrap_or(line).trim_start();
    let rest = rest.strip_prefix("def ")?;
    let name = rest.split('(').next()?.trim();
    (!name.is_empty()).then_some(name)
}

/// Whether every `def` line the patch removes comes back with the same name
/// and every decorator line it removes comes back unchanged (see
/// [`CoverageMap::selection_for`]).
fn keeps_definitions(fp: &FilePatch) -> bool {
    let lines = || fp.hunks.iter().flat_map(|h| &h.lines);
    let added: Vec<&str> = lines()
        .filter(|l| l.kind == smith_core::LineKind::Added)
        .map(|l| l.text.trim())
        .collect();
    lines()
        .filter(|l| l.kind == smith_core::LineKind::Removed)
        .map(|l| l.text.trim())
        .all(|removed| {
            if removed.starts_with('@') {
                added.contains(&removed)
            } else if let Some(name) = def_name(removed) {
                added.iter().any(|a| def_name(a) == Some(name))
            } else {
                true
            }
        })
}

/// The plugin's events about processes the tests start (see
/// `_follow_children` in the plugin).
#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum ChildEvent {
    /// Whether a probe child measured itself.
    Children { followed: bool },
    /// A context started a process.
    Spawn { context: String },
}

impl CoverageMap {
    /// The current [`CoverageMap::format`]: 1 added function headers; 2
    /// measures the lines a `# pragma: no cover` excludes from reports; 3
    /// measures processes the tests start and records which tests start
    /// them.
    pub const FORMAT: u32 = 3;

    /// The tests that execute any line in `lines` of `file`. `None` when the
    /// file has no data or a line ran outside any test (at import or
    /// collection time): the caller must run the full suite. `Some(empty)`
    /// when no test executes those lines. A line of a function's header
    /// stands for the function's body (see the module docs); a header whose
    /// function no test calls gives `None`.
    pub fn tests_for(
        &self,
        file: &str,
        lines: impl IntoIterator<Item = u32>,
    ) -> Option<BTreeSet<TestId>> {
        let cov = self.files.get(file)?;
        let mut tests = BTreeSet::new();
        let mut statements = BTreeSet::new();
        let mut headers = BTreeSet::new();
        for line in lines {
            // The statement a line belongs to: the nearest statement start at
            // or before it (continuation lines of a multi-line statement are
            // not measured on their own).
            let idx = cov.statements.partition_point(|s| *s <= line);
            let statement = match idx.checked_sub(1) {
                Some(i) => cov.statements[i],
                // Before the first statement: the module's first statement
                // runs at import.
                None => return None,
            };
            if cov.headers.contains_key(&statement) {
                headers.insert(statement);
            } else {
                statements.insert(statement);
            }
        }
        for statement in statements {
            self.add_tests(cov, statement, &mut tests, true)?;
        }
        for header in headers {
            let mut callers = BTreeSet::new();
            for &statement in &cov.headers[&header] {
                self.add_tests(cov, statement, &mut callers, true)?;
            }
            if callers.is_empty() {
                return None;
            }
            tests.extend(callers);
        }
        Some(tests)
    }

    /// Add the tests that execute `statement` to `tests`; `None` when it ran
    /// outside any test and `strict` (else such runs are passed over).
    fn add_tests(
        &self,
        cov: &FileCoverage,
        statement: u32,
        tests: &mut BTreeSet<TestId>,
        strict: bool,
    ) -> Option<()> {
        for &ctx in cov.lines.get(&statement).into_iter().flatten() {
            let name = self.contexts.get(ctx as usize)?;
            if let Some(id) = name.strip_prefix("t:") {
                tests.insert(TestId::new(id));
            } else if let Some(fixture) = name.strip_prefix("f:") {
                tests.extend(
                    self.fixture_users
                        .get(fixture)
                        .into_iter()
                        .flatten()
                        .cloned(),
                );
            } else if strict {
                return None;
            }
        }
        Some(())
    }

    /// The tests to run for `candidate`, from the old-side lines its patch
    /// changes (see [`changed_lines`]).
    ///
    /// A patch that removes a function or a decorator without putting it
    /// back (same `def` name, same decorator line) runs the whole suite:
    /// the class or module then lacks a name, and that shows without any
    /// call, e.g. a class whose abstract method lost its override can no
    /// longer be instantiated. Moving functions, and changing a `def`'s
    /// parameters or defaults, keeps every name and decorator.
    /// [`CoverageMap::selection_with_sources`] narrows some of these.
    pub fn selection_for(&self, candidate: &Candidate) -> CandidateSelection {
        self.selection_with_sources(candidate, &|_| None)
    }

    /// [`CoverageMap::selection_for`], reading the old side of a file
    /// (`source(path)`) when its lines alone would send the candidate to
    /// the whole suite: a file whose two sides differ only in whole
    /// functions (changed, or methods removed or moved) selects the tests
    /// that call those functions (the rules are in `structure.rs`).
    pub fn selection_with_sources(
        &self,
        candidate: &Candidate,
        source: &dyn Fn(&str) -> Option<String>,
    ) -> CandidateSelection {
        let Ok(files) = candidate.patch.files() else {
            return CandidateSelection::Full;
        };
        let changed = changed_lines_of(&files);
        let mut tests = BTreeSet::new();
        for fp in &files {
            // A memoized function's body runs in the first test that asks
            // for each value; later tests read the cache and are not in
            // the map (see `crate::memo`).
            if let (Some(lines), Some(old)) = (
                changed.get(fp.path()),
                fp.old_path.as_deref().and_then(source),
            ) {
                if crate::memo::touches_memoized(fp.path(), &old, lines) {
                    return CandidateSelection::Full;
                }
            }
            let by_lines = match changed.get(fp.path()) {
                Some(lines) if !lines.is_empty() && keeps_definitions(fp) => {
                    self.tests_for(fp.path(), lines.iter().copied())
                }
                _ => None,
            };
            match by_lines.or_else(|| self.tests_for_functions(fp, source)) {
                Some(t) => tests.extend(t),
                None => return CandidateSelection::Full,
            }
        }
        match self.unfollowed_tests() {
            Some(t) => tests.extend(t),
            None => return CandidateSelection::Full,
        }
        if tests.is_empty() {
            CandidateSelection::Uncovered
        } else {
            CandidateSelection::Tests(tests)
        }
    }

    /// The tests that call the functions a file's patch changes, removes or
    /// moves ([`crate::structure::changed_functions`]); `None` when the
    /// patch changes more than whole functions, a function's body ran
    /// outside any test, or no test calls any of them.
    fn tests_for_functions(
        &self,
        fp: &FilePatch,
        source: &dyn Fn(&str) -> Option<String>,
    ) -> Option<BTreeSet<TestId>> {
        let cov = self.files.get(fp.path())?;
        let old = source(fp.old_path.as_deref()?)?;
        let new = fp.apply(Some(&old)).ok()??;
        let mut tests = BTreeSet::new();
        for f in crate::structure::changed_functions(fp.path(), &old, &new)? {
            let body = cov
                .headers
                .get(&f.def)
                .or_else(|| cov.headers.get(&f.first))?;
            for &statement in body {
                if f.moved {
                    self.add_tests(cov, statement, &mut tests, false);
                } else {
                    self.add_tests(cov, statement, &mut tests, true)?;
                }
            }
        }
        (!tests.is_empty()).then_some(tests)
    }

    /// Tests that start processes the map did not measure (every
    /// [`CoverageMap::spawners`] context unless
    /// [`CoverageMap::subprocesses`]): what those processes execute is
    /// unknown, so these tests run for every candidate, and a test that is
    /// not selected is one that provably does not reach the change. `None`
    /// when such a process started outside any test: every candidate needs
    /// the whole suite.
    fn unfollowed_tests(&self) -> Option<BTreeSet<TestId>> {
        let mut tests = BTreeSet::new();
        if self.subprocesses {
            return Some(tests);
        }
        for context in &self.spawners {
            if let Some(id) = context.strip_prefix("t:") {
                tests.insert(TestId::new(id));
            } else if let Some(fixture) = context.strip_prefix("f:") {
                tests.extend(
                    self.fixture_users
                        .get(fixture)
                        .into_iter()
                        .flatten()
                        .cloned(),
                );
            } else {
                return None;
            }
        }
        Some(tests)
    }

    /// Number of tests that appear in the map.
    pub fn test_count(&self) -> usize {
        self.contexts.iter().filter(|c| c.starts_with("t:")).count()
    }

    /// Run the whole suite once under coverage.py in `workspace` and build
    /// the map. The environment must have `coverage` installed (5.0 or
    /// newer; contexts).
    ///
    /// * Only files under the workspace root are measured, and sources
    ///   coverage.py cannot find (code compiled under a synthetic file name,
    ///   `exec`, Cython, zip imports) are left out of the report instead of
    ///   failing it.
    /// * The project's own coverage plugin is off: with pytest-cov
    ///   installed the run passes `--no-cov`, which (unlike `-p no:cov`)
    ///   still accepts the `--cov` options a project's configuration adds,
    ///   whichever file that is.
    /// * Python processes the tests start are measured too, each under the
    ///   context of the test or fixture that started it (see
    ///   [`CoverageMap::subprocesses`]).
    ///
    /// An error means no usable map: the run or its report failed, or it
    /// ran no test, or coverage recorded no test's lines. Callers fall back
    /// to the whole suite.
    pub fn collect(
        workspace: &mut dyn Workspace,
        executor: &PytestExecutor,
        options: &RunOptions,
    ) -> Result<CoverageMap> {
        workspace.reset()?;
        workspace.write(RCFILE, RC_SOURCE.as_bytes())?;
        workspace.write(
            ".smith/smith_pytest_plugin.py",
            crate::pytest::PLUGIN_SOURCE.as_bytes(),
        )?;
        workspace.write(SITECUSTOMIZE_PATH, SITECUSTOMIZE_SOURCE.as_bytes())?;
        workspace.write(".smith/events.jsonl", b"")?;
        let (run, out) = run_suite_under_coverage(workspace, executor, options)?;
        let said = |what: &RunOutput| {
            crate::pytest::tail(&format!("{}\n{}", what.stdout, what.stderr), 2000)
        };
        let events = workspace.read(".smith/events.jsonl").unwrap_or_default();
        let events = String::from_utf8_lossy(&events);
        if !parse_events(&events)
            .iter()
            .any(|e| matches!(e, PluginEvent::Start { .. }))
        {
            return Err(Error::command(
                run.display(),
                format!("the coverage run ran no test: {}", said(&out)),
            ));
        }
        let report = CommandSpec::new(
            executor.python().to_string(),
            ["-c", REPORT_SCRIPT, RCFILE, JSON_PATH],
        );
        let reported = workspace.run(&report, options)?;
        if !reported.success() {
            return Err(Error::command(
                report.display(),
                format!(
                    "{}\n(coverage run said: {})",
                    said(&reported),
                    crate::pytest::tail(&out.stderr, 1000)
                ),
            ));
        }
        let json = workspace.read(JSON_PATH)?;
        let source = |path: &str| {
            workspace
                .read(path)
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        };
        let map = Self::from_coverage_json(&json, &events, source)?;
        if map.test_count() == 0 {
            return Err(Error::command(
                run.display(),
                format!(
                    "coverage recorded no test's lines (is another coverage plugin measuring?): {}",
                    said(&out)
                ),
            ));
        }
        Ok(map)
    }

    /// Build the map from coverage.py's `json --show-contexts` output, the
    /// plugin's event log (for fixture users) and the measured files'
    /// sources (`source(path)`, for telling decorator lines; a file it
    /// cannot give gets no function headers, so its `def` lines fall back
    /// to the full suite).
    pub fn from_coverage_json(
        json: &[u8],
        events: &str,
        source: impl Fn(&str) -> Option<String>,
    ) -> Result<CoverageMap> {
        let report: JsonReport = serde_json::from_slice(json)
            .map_err(|e| Error::test_run_source("bad coverage JSON", e))?;
        let mut map = CoverageMap {
            format: Self::FORMAT,
            ..CoverageMap::default()
        };
        let mut index: BTreeMap<String, u32> = BTreeMap::new();
        for (path, file) in report.files {
            let path = path.replace('\\', "/");
            // Only the repository's own files: coverage.py reports others
            // by absolute path (or climbing out of the root).
            if path.starts_with('/') || path.starts_with("../") || path.contains(":/") {
                continue;
            }
            let statements = sorted_lines(&file.executed_lines, &file.missing_lines);
            let lines = map.line_contexts(file.contexts, &mut index);
            let headers = source(&path)
                .map(|text| function_headers(file.functions, &statements, &text))
                .unwrap_or_default();
            map.files.insert(
                path,
                FileCoverage {
                    statements,
                    lines,
                    headers,
                },
            );
        }
        map.add_events(events);
        Ok(map)
    }

    /// A file's executed line → the indices of its contexts, interning
    /// context names into [`CoverageMap::contexts`] (`index` finds them).
    fn line_contexts(
        &mut self,
        contexts: BTreeMap<String, Vec<String>>,
        index: &mut BTreeMap<String, u32>,
    ) -> BTreeMap<u32, Vec<u32>> {
        let mut lines = BTreeMap::new();
        for (line, names) in contexts {
            let Ok(line) = line.parse::<u32>() else {
                continue;
            };
            let mut ids: Vec<u32> = names
                .into_iter()
                .map(|c| {
                    let next = index.len() as u32;
                    *index.entry(c.clone()).or_insert_with(|| {
                        self.contexts.push(c);
                        next
                    })
                })
                .collect();
            ids.sort_unstable();
            ids.dedup();
            lines.insert(line, ids);
        }
        lines
    }

    /// Take fixture users, followed subprocesses and spawning contexts from
    /// the plugin's event log.
    fn add_events(&mut self, events: &str) {
        for event in parse_events(events) {
            if let PluginEvent::Uses { nodeid, fixtures } = event {
                for f in fixtures {
                    self.fixture_users
                        .entry(f)
                        .or_default()
                        .insert(TestId::new(nodeid.clone()));
                }
            }
        }
        for event in events
            .lines()
            .filter_map(|l| serde_json::from_str::<ChildEvent>(l).ok())
        {
            match event {
                ChildEvent::Children { followed } => self.subprocesses = followed,
                ChildEvent::Spawn { context } => {
                    self.spawners.insert(context);
                }
            }
        }
    }
}

/// coverage.py's `json --show-contexts` report, the parts the map uses.
#[derive(Deserialize)]
struct JsonReport {
    files: BTreeMap<String, JsonFile>,
}

/// One measured file of a [`JsonReport`].
#[derive(Deserialize)]
struct JsonFile {
    #[serde(default)]
    executed_lines: Vec<u32>,
    #[serde(default)]
    missing_lines: Vec<u32>,
    #[serde(default)]
    contexts: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    functions: BTreeMap<String, JsonFunction>,
}

/// One function region of a [`JsonFile`] (the module's own has no name).
#[derive(Deserialize)]
struct JsonFunction {
    #[serde(default)]
    executed_lines: Vec<u32>,
    #[serde(default)]
    missing_lines: Vec<u32>,
    start_line: Option<u32>,
}

/// Both lists of statement lines, merged, sorted and deduplicated.
fn sorted_lines(executed: &[u32], missing: &[u32]) -> Vec<u32> {
    let mut lines: Vec<u32> = executed.iter().chain(missing).copied().collect();
    lines.sort_unstable();
    lines.dedup();
    lines
}

/// The headers of a file's functions: the statement line of each `def`,
/// and of each decorator above it (told from the file's `text`), → the
/// statement lines of that function's body.
fn function_headers(
    functions: BTreeMap<String, JsonFunction>,
    statements: &[u32],
    text: &str,
) -> BTreeMap<u32, Vec<u32>> {
    let text_lines: Vec<&str> = text.lines().collect();
    let is_decorator = |line: u32| {
        text_lines
            .get(line as usize - 1)
            .is_some_and(|l| l.trim_start().starts_with('@'))
    };
    let mut headers = BTreeMap::new();
    for (name, function) in functions {
        // The module's own region has an empty name.
        let Some(start) = function.start_line.filter(|_| !name.is_empty()) else {
            continue;
        };
        if statements.binary_search(&start).is_err() {
            continue;
        }
        let body = sorted_lines(&function.executed_lines, &function.missing_lines);
        let mut header = vec![start];
        let at = statements.partition_point(|s| *s < start);
        for &before in statements[..at].iter().rev() {
            if before == 0 || !is_decorator(before) {
                break;
            }
            header.push(before);
        }
        for line in header {
            headers.insert(line, body.clone());
        }
    }
    headers
}

/// Run the whole suite once under coverage.py (after erasing data an
/// earlier run left in the workspace), with pytest-cov turned off where it
/// is installed: `--no-cov`, or nothing when the project's configuration
/// blocks pytest-cov itself. Returns the command and its output.
fn run_suite_under_coverage(
    workspace: &mut dyn Workspace,
    executor: &PytestExecutor,
    options: &RunOptions,
) -> Result<(CommandSpec, RunOutput)> {
    let python = executor.python().to_string();
    let prepare = CommandSpec::new(python, ["-c", PREPARE_SCRIPT, RCFILE]);
    let (spec, select) = executor.command(
        &TestSelection::All,
        &[("SMITH_COVERAGE", "1"), ("SMITH_COVERAGE_RC", RCFILE)],
    );
    debug_assert!(select.is_none());
    let mut args: Vec<String> = vec![
        "-m".into(),
        "coverage".into(),
        "run".into(),
        format!("--rcfile={RCFILE}"),
    ];
    args.extend(spec.args.iter().cloned());
    let run = CommandSpec { args, ..spec };
    let mut no_cov = true;
    loop {
        // Data left by an earlier run in this workspace would be
        // combined into this one's.
        let prepared = workspace.run(&prepare, options)?;
        if !prepared.success() {
            return Err(Error::command(
                prepare.display(),
                crate::pytest::tail(&format!("{}\n{}", prepared.stdout, prepared.stderr), 2000),
            ));
        }
        let pytest_cov = prepared.stdout.lines().any(|l| l.trim() == "pytest-cov");
        let mut attempt = run.clone();
        if pytest_cov && no_cov {
            attempt.args.push("--no-cov".into());
        }
        let out = workspace.run(&attempt, options)?;
        if out.timed_out {
            return Err(Error::command(attempt.display(), "coverage run timed out"));
        }
        // A configuration that blocks pytest-cov (`-p no:cov`) leaves
        // pytest without the option: usage error, nothing ran.
        if pytest_cov && no_cov && out.exit_code == Some(4) && out.stderr.contains("--no-cov") {
            no_cov = false;
            continue;
        }
        return Ok((attempt, out));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smith_core::FileChange;

    fn map() -> CoverageMap {
        let contexts = ["", "t:t.py::a", "t:t.py::b", "f:db"]
            .map(String::from)
            .to_vec();
        let mut files = BTreeMap::new();
        files.insert(
            "m.py".to_string(),
            FileCoverage {
                statements: vec![1, 2, 3, 5, 8, 9, 12, 15, 16, 17, 18, 20, 21, 23, 24],
                lines: [
                    (1, vec![0]),
                    (2, vec![1]),
                    (3, vec![1, 2]),
                    (5, vec![2]),
                    (8, vec![3]),
                    (9, vec![0, 1]),
                    (15, vec![0]),
                    (16, vec![1]),
                    (17, vec![2]),
                    (20, vec![0]),
                    (21, vec![0]),
                ]
                .into(),
                // 15 a decorator of the `def` at 16 (body 17..18); 20 a
                // `def` whose body (21) runs only at import; 23 a `def`
                // whose body (24) no test runs.
                headers: [
                    (15, vec![17, 18]),
                    (16, vec![17, 18]),
                    (20, vec![21]),
                    (23, vec![24]),
                ]
                .into(),
            },
        );
        CoverageMap {
            format: CoverageMap::FORMAT,
            contexts,
            files,
            fixture_users: [("db".to_string(), [TestId::from("t.py::c")].into())].into(),
            subprocesses: false,
            spawners: BTreeSet::new(),
        }
    }

    /// A candidate changing `m.py` from `before` to `after`.
    fn candidate(before: &str, after: &str) -> Candidate {
        Candidate::new(
            &smith_core::RepoRef::new("o/r", "c"),
            "s",
            vec![],
            "",
            Patch::from_changes(&[FileChange::modified("m.py", before, after)]),
        )
    }

    fn ids(names: &[&str]) -> BTreeSet<TestId> {
        names.iter().map(|n| TestId::from(*n)).collect()
    }

    #[test]
    fn lines_map_to_tests_fixtures_and_fallbacks() {
        let m = map();
        assert_eq!(m.tests_for("m.py", [2]), Some(ids(&["t.py::a"])));
        assert_eq!(
            m.tests_for("m.py", [3, 5]),
            Some(ids(&["t.py::a", "t.py::b"]))
        );
        // line 6 continues the statement starting at 5
        assert_eq!(m.tests_for("m.py", [6]), Some(ids(&["t.py::b"])));
        assert_eq!(m.tests_for("m.py", [8]), Some(ids(&["t.py::c"])));
        assert_eq!(m.tests_for("m.py", [1]), None, "import-time line");
        assert_eq!(m.tests_for("m.py", [9]), None, "also import-time");
        assert_eq!(m.tests_for("m.py", [12]), Some(BTreeSet::new()));
        assert_eq!(m.tests_for("other.py", [1]), None);
    }

    #[test]
    fn function_headers_select_the_tests_that_run_the_body() {
        let m = map();
        // The `def` line, a line of its parameters and its decorator all
        // stand for the body, which t.py::b runs; line 16 itself ran only at
        // import.
        for line in [15, 16] {
            assert_eq!(
                m.tests_for("m.py", [line]),
                Some(ids(&["t.py::b"])),
                "{line}"
            );
        }
        assert_eq!(
            m.tests_for("m.py", [16, 2]),
            Some(ids(&["t.py::a", "t.py::b"]))
        );
        assert_eq!(m.tests_for("m.py", [20]), None, "body runs at import");
        assert_eq!(m.tests_for("m.py", [23]), None, "no test calls it");
        // A body line no test runs is still simply uncovered.
        assert_eq!(m.tests_for("m.py", [24]), Some(BTreeSet::new()));
    }

    #[test]
    fn removing_or_renaming_a_function_or_decorator_runs_the_full_suite() {
        let mut m = map();
        let before: String = (1..=24)
            .map(|i| match i {
                15 => "@property\n".to_string(),
                16 => "def f(a, b=1):\n".to_string(),
                _ => format!("line{i}\n"),
            })
            .collect();
        let cand = |after: String| candidate(&before, &after);
        m.files.get_mut("m.py").unwrap().lines.insert(17, vec![2]);
        // A new default keeps the name: the callers run.
        let default = cand(before.replace("b=1", "b=2"));
        assert_eq!(
            m.selection_for(&default),
            CandidateSelection::Tests(ids(&["t.py::b"]))
        );
        for after in [
            before.replace("def f(a, b=1):\n", ""),
            before.replace("def f(", "def g("),
            before.replace("@property\n", ""),
            before.replace("@property", "@cached_property"),
        ] {
            assert_eq!(m.selection_for(&cand(after)), CandidateSelection::Full);
        }
        // Moving the decorated function keeps both lines.
        let moved = before
            .replace("@property\ndef f(a, b=1):\n", "")
            .replace("line24\n", "line24\n@property\ndef f(a, b=1):\n");
        assert!(matches!(
            m.selection_for(&cand(moved)),
            CandidateSelection::Tests(_)
        ));
        assert_eq!(def_name("    async def run(self, x):"), Some("run"));
        assert_eq!(def_name("    return define(x)"), None);
    }

    #[test]
    fn headers_come_from_coverage_functions_and_decorator_lines() {
        let json = r#"{"files": {"m.py": {
            "executed_lines": [1, 3, 5, 8, 10, 12, 13],
            "missing_lines": [],
            "contexts": {"1": [""], "3": [""], "5": [""], "8": ["t:t.py::a"],
                         "10": ["t:t.py::a"], "12": [""], "13": [""]},
            "functions": {
                "f": {"executed_lines": [8, 10], "missing_lines": [], "start_line": 5},
                "C.m": {"executed_lines": [13], "missing_lines": [], "start_line": 13},
                "": {"executed_lines": [1, 3, 5, 12], "missing_lines": [], "start_line": 1}
            }}}}"#;
        let source = "import functools\n\n@functools.cache\n\ndef f(a,\n      b=2):\n    \"\"\"doc\"\"\"\n    x = a\n\n    return x + b\n\nclass C:\n    def m(self): return 1\n";
        let m = CoverageMap::from_coverage_json(json.as_bytes(), "", |p| {
            (p == "m.py").then(|| source.to_string())
        })
        .unwrap();
        let headers = &m.files["m.py"].headers;
        assert_eq!(headers.get(&5), Some(&vec![8, 10]));
        assert_eq!(headers.get(&3), Some(&vec![8, 10]), "decorator line");
        assert_eq!(headers.get(&1), None, "an import is no decorator");
        assert_eq!(m.tests_for("m.py", [6]), Some(ids(&["t.py::a"])));
        // A one-line method's body is its `def` line, which ran at import.
        assert_eq!(m.tests_for("m.py", [13]), None);
        let without_source =
            CoverageMap::from_coverage_json(json.as_bytes(), "", |_| None).unwrap();
        assert_eq!(without_source.tests_for("m.py", [5]), None);
    }

    #[test]
    fn removed_and_moved_methods_select_their_callers() {
        let json = r#"{"files": {"m.py": {
            "executed_lines": [1, 2, 3, 5, 6, 8, 9, 12],
            "missing_lines": [],
            "contexts": {"1": [""], "2": [""], "3": [""], "5": [""], "6": ["t:t.py::a"],
                         "8": [""], "9": ["t:t.py::b"], "12": [""]},
            "functions": {
                "C.__init__": {"executed_lines": [3], "missing_lines": [], "start_line": 2},
                "C.get": {"executed_lines": [6], "missing_lines": [], "start_line": 5},
                "C.put": {"executed_lines": [9], "missing_lines": [], "start_line": 8},
                "": {"executed_lines": [1, 2, 5, 8, 12], "missing_lines": [], "start_line": 1}
            }}}}"#;
        let source = "class C:\n    def __init__(self):\n        self.x = 1\n\n    def get(self):\n        return self.x\n\n    def put(self, v):\n        self.x = v\n\n\nc = C()\n";
        let m = CoverageMap::from_coverage_json(json.as_bytes(), "", |p| {
            (p == "m.py").then(|| source.to_string())
        })
        .unwrap();
        let clean = |p: &str| (p == "m.py").then(|| source.to_string());
        let get = "    def get(self):\n        return self.x\n\n";
        let put = "    def put(self, v):\n        self.x = v\n\n";
        let init = "    def __init__(self):\n        self.x = 1\n\n";
        // Moved: `__init__` ran at import, and still does the same there.
        let swapped = candidate(
            source,
            &source.replace(get, "").replace(put, &format!("{put}{get}")),
        );
        assert_eq!(m.selection_for(&swapped), CandidateSelection::Full);
        assert_eq!(
            m.selection_with_sources(&swapped, &clean),
            CandidateSelection::Tests(ids(&["t.py::a", "t.py::b"]))
        );
        let no_put = candidate(source, &source.replace(put, ""));
        assert_eq!(
            m.selection_with_sources(&no_put, &clean),
            CandidateSelection::Tests(ids(&["t.py::b"]))
        );
        // Removing what ran at import changes what import makes.
        let no_init = candidate(source, &source.replace(init, ""));
        assert_eq!(
            m.selection_with_sources(&no_init, &clean),
            CandidateSelection::Full
        );
        // Without the clean text nothing is narrowed.
        assert_eq!(
            m.selection_with_sources(&no_put, &|_| None),
            CandidateSelection::Full
        );
    }

    #[test]
    fn tests_whose_children_are_not_measured_run_for_every_candidate() {
        let mut m = map();
        let before: String = (1..=12).map(|i| format!("line{i}\n")).collect();
        let cand = |line: usize| {
            candidate(
                &before,
                &before.replace(&format!("line{line}\n"), &format!("LINE{line}\n")),
            )
        };
        m.spawners = ["t:t.py::s", "f:db"].map(String::from).into();
        let with_spawners = ids(&["t.py::a", "t.py::c", "t.py::s"]);
        assert_eq!(
            m.selection_for(&cand(2)),
            CandidateSelection::Tests(with_spawners.clone())
        );
        // No test executes line 12, but a spawner's child might.
        assert_eq!(
            m.selection_for(&cand(12)),
            CandidateSelection::Tests(ids(&["t.py::c", "t.py::s"]))
        );
        // Measured children need nothing added.
        m.subprocesses = true;
        assert_eq!(
            m.selection_for(&cand(2)),
            CandidateSelection::Tests(ids(&["t.py::a"]))
        );
        assert_eq!(m.selection_for(&cand(12)), CandidateSelection::Uncovered);
        // A process started outside any test may reach anything.
        m.subprocesses = false;
        m.spawners.insert(String::new());
        assert_eq!(m.selection_for(&cand(2)), CandidateSelection::Full);
    }

    #[test]
    fn only_the_repositorys_files_are_mapped_and_child_events_are_read() {
        let json = r#"{"files": {
            "m.py": {"executed_lines": [1], "missing_lines": [], "contexts": {"1": ["t:t.py::a"]}},
            "/usr/lib/python3/x.py": {"executed_lines": [1], "contexts": {"1": ["t:t.py::b"]}},
            "../elsewhere/y.py": {"executed_lines": [1], "contexts": {"1": ["t:t.py::b"]}}
            }}"#;
        let events = concat!(
            r#"{"event": "children", "followed": true}"#,
            "\n",
            r#"{"event": "spawn", "context": "t:t.py::a"}"#,
            "\n",
            r#"{"event": "start", "nodeid": "t.py::a"}"#,
            "\n",
        );
        let m = CoverageMap::from_coverage_json(json.as_bytes(), events, |_| None).unwrap();
        assert_eq!(m.files.keys().collect::<Vec<_>>(), ["m.py"]);
        assert_eq!(m.contexts, ["t:t.py::a"]);
        assert!(m.subprocesses);
        assert_eq!(m.spawners, ["t:t.py::a".to_string()].into());
        let blind = CoverageMap::from_coverage_json(json.as_bytes(), "", |_| None).unwrap();
        assert!(
            !blind.subprocesses,
            "children unmeasured unless a probe says so"
        );
    }

    #[test]
    fn changed_lines_come_from_the_old_side() {
        let before = "a\nb\nc\nd\ne\nf\ng\n";
        let after = "a\nB\nc\nd\ne\nf\nnew\ng\n";
        let p = Patch::from_changes(&[FileChange::modified("m.py", before, after)]);
        let lines = changed_lines(&p).unwrap();
        assert_eq!(lines["m.py"], [2, 6, 7].into());
    }

    #[test]
    fn a_change_in_a_memoized_function_runs_the_whole_suite() {
        let m = map();
        // Line 15 decorates the `def` at 16, whose body (17..18) t.py::b runs.
        let source = |decorator: &str| {
            let mut lines: Vec<String> = (1..=14).map(|i| format!("x{i} = {i}")).collect();
            lines.extend([decorator, "def f(x):", "    y = x", "    return y"].map(String::from));
            lines.join("\n") + "\n"
        };
        for (decorator, expected) in [
            (
                "@staticmethod",
                CandidateSelection::Tests(ids(&["t.py::b"])),
            ),
            (
                "@functools.lru_cache(maxsize=None)",
                CandidateSelection::Full,
            ),
        ] {
            let before = source(decorator);
            let cand = candidate(&before, &before.replace("y = x", "y = -x"));
            let old = |_: &str| Some(before.clone());
            assert_eq!(
                m.selection_with_sources(&cand, &old),
                expected,
                "{decorator}"
            );
        }
    }

    #[test]
    fn selection_for_candidates() {
        let m = map();
        let before: String = (1..=12).map(|i| format!("line{i}\n")).collect();
        let cand = |line: usize| {
            candidate(
                &before,
                &before.replace(&format!("line{line}\n"), &format!("LINE{line}\n")),
            )
        };
        assert_eq!(
            m.selection_for(&cand(2)),
            CandidateSelection::Tests(ids(&["t.py::a"]))
        );
        assert_eq!(m.selection_for(&cand(1)), CandidateSelection::Full);
        assert_eq!(m.selection_for(&cand(12)), CandidateSelection::Uncovered);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<CoverageMap>(&json).unwrap(), m);
    }
}
