//! Fork servers for the pytest executor: one long-lived Python process per
//! workspace (`smith_pytest_server.py`) that forks a child for every run.
//!
//! A run through a server is the same `python -m pytest ARGS` in the same
//! directory, environment and limits; what the child finds ready is pytest,
//! the installed modules the suite imports, and compiled code for workspace
//! files whose bytes have not changed (see the script's docstring for why
//! that keeps outcomes exact). Which modules and files those are is learned
//! from the first whole-suite run and handed to every server started after.
//!
//! Anything that goes wrong with a server (it cannot start, the workspace
//! cannot host it, it dies mid-run) makes [`ServerPool::run`] return `None`
//! and the executor falls back to a fresh interpreter for that run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use smith_core::{CommandSpec, Error, Result, RunOptions, RunOutput, Service, TestId, Workspace};

/// The server's source, written into a workspace before it starts.
const SERVER_SOURCE: &str = include_str!("smith_pytest_server.py");
const SERVER_PATH: &str = ".smith/smith_pytest_server.py";
/// Where a learning run's plugin writes its module report.
const MODULES_PATH: &str = ".smith/modules.json";
/// Environment variables that change from run to run; everything else is
/// fixed when a server starts.
const PER_RUN_ENV: &[&str] = &["SMITH_SELECT", "SMITH_MODULES"];
/// How long a server may take to start or to warm up.
const START_LIMIT: Duration = Duration::from_secs(120);
/// How long past a run's own time limit to wait for the server's answer
/// (the server enforces the limit; this only catches a wedged server).
const REPLY_GRACE: Duration = Duration::from_secs(30);
/// The wait for a run without a time limit, in slices.
const NO_LIMIT_SLICE: Duration = Duration::from_secs(3600);

/// What fixes a server: program, working directory and environment.
type ServerKey = (String, Option<String>, BTreeMap<String, String>);

#[derive(Debug)]
struct Server {
    service: Box<dyn Service>,
    key: ServerKey,
    warmed: bool,
}

/// The servers of one executor (and its clones), by workspace root.
#[derive(Debug, Default)]
pub(crate) struct ServerPool {
    idle: Mutex<HashMap<PathBuf, Server>>,
    /// Workspaces that cannot host a server.
    unsupported: Mutex<HashSet<PathBuf>>,
    /// The module report of the first whole-suite run, for warming servers.
    learned: Mutex<Learned>,
    /// Collected servers (see [`ServerPool::prepare`]), by workspace root.
    collected: Mutex<HashMap<PathBuf, Server>>,
    /// Runs that went through a server.
    pub(crate) served: AtomicUsize,
    /// Runs that went through a collected server.
    pub(crate) served_collected: AtomicUsize,
    /// Runs a collected server handed back (a change it cannot swap in).
    pub(crate) fell_back: AtomicUsize,
}

#[derive(Debug, Default)]
enum Learned {
    #[default]
    Nothing,
    Report(serde_json::Value),
    /// Warming failed once; servers start cold from now on.
    Disabled,
}

/// A collected server's answer to a run.
enum Answer {
    Done(RunOutput),
    /// The change cannot be swapped into the collected session.
    FallBack(String),
}

/// A server's answer to a run (a collected server's fallback answer has
/// only `fallback`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Done {
    exit_code: Option<i32>,
    timed_out: bool,
    seconds: f64,
    stdout: String,
    stderr: String,
    learned: Option<serde_json::Value>,
    fallback: Option<String>,
}

impl ServerPool {
    /// Run `spec` (a `python -m pytest ...` command) through `workspace`'s
    /// server. `None` when no server could run it; the caller then runs the
    /// command itself. `whole_suite` runs may teach the pool what to warm.
    pub(crate) fn run(
        &self,
        workspace: &mut dyn Workspace,
        spec: &CommandSpec,
        options: &RunOptions,
        whole_suite: bool,
    ) -> Option<RunOutput> {
        let root = workspace.root().to_path_buf();
        if self.unsupported.lock().ok()?.contains(&root) {
            return None;
        }
        let key = server_key(spec);
        let mut reuse = self
            .idle
            .lock()
            .ok()?
            .remove(&root)
            .filter(|s| s.key == key);
        // One retry with a new server: a server can die between runs (its
        // workspace's thread ended, a test killed its parent).
        for _ in 0..2 {
            let mut server = match reuse.take() {
                Some(server) => server,
                None => match start(workspace, key.clone()) {
                    Ok(server) => server,
                    Err(Error::Unsupported { .. }) => {
                        self.unsupported.lock().ok()?.insert(root);
                        return None;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "fork server did not start");
                        return None;
                    }
                },
            };
            if let Err(e) = self.warm(&mut server) {
                tracing::debug!(error = %e, "fork server could not warm up; starting cold");
                if let Ok(mut learned) = self.learned.lock() {
                    *learned = Learned::Disabled;
                }
                continue;
            }
            let learn =
                whole_suite && matches!(self.learned.lock().as_deref(), Ok(Learned::Nothing));
            match request(&mut server, spec, options, learn, None) {
                Ok((Answer::FallBack(reason), _)) => {
                    tracing::debug!(%reason, "a plain fork server cannot fall back");
                }
                Ok((Answer::Done(output), learned)) => {
                    if let (Some(report), Ok(mut slot)) = (learned, self.learned.lock()) {
                        if matches!(*slot, Learned::Nothing) {
                            *slot = Learned::Report(report);
                        }
                    }
                    if let Ok(mut idle) = self.idle.lock() {
                        idle.insert(root, server);
                    }
                    self.served.fetch_add(1, Ordering::Relaxed);
                    return Some(output);
                }
                Err(e) => tracing::debug!(error = %e, "fork server run failed"),
            }
        }
        None
    }

    /// Start a collected server for `workspace`, which must be clean: it
    /// runs `spec` (the whole suite's `python -m pytest ...`) up to the end
    /// of collection and serves every later run of selected tests by
    /// forking there (see the server script). Whether it started is logged,
    /// never an error: runs without one use a plain server.
    pub(crate) fn prepare(&self, workspace: &mut dyn Workspace, spec: &CommandSpec) {
        let root = workspace.root().to_path_buf();
        if let Ok(mut collected) = self.collected.lock() {
            // A server from an earlier validation holds that tree's code.
            collected.remove(&root);
        }
        if self.unsupported.lock().map_or(true, |u| u.contains(&root)) {
            return;
        }
        let mut server = match start(workspace, server_key(spec)) {
            Ok(server) => server,
            Err(e) => {
                tracing::debug!(error = %e, "collected server did not start");
                return;
            }
        };
        let line = serde_json::json!({ "collect": { "argv": &spec.args[2..] } }).to_string();
        let answer = server
            .service
            .send(&line)
            .and_then(|()| server.service.receive(START_LIMIT));
        match answer {
            Ok(Some(answer))
                if serde_json::from_str::<serde_json::Value>(&answer)
                    .is_ok_and(|v| v["collected"].is_u64()) =>
            {
                if let Ok(mut collected) = self.collected.lock() {
                    collected.insert(root, server);
                }
            }
            other => tracing::debug!(answer = ?other, "collected server did not collect"),
        }
    }

    /// Run `spec`, which selects `ids`, through `workspace`'s collected
    /// server. `None` when there is none, it cannot take this change, or it
    /// failed (then it is dropped): the caller runs the command another way.
    pub(crate) fn run_collected(
        &self,
        workspace: &mut dyn Workspace,
        spec: &CommandSpec,
        ids: &[TestId],
        options: &RunOptions,
    ) -> Option<RunOutput> {
        let root = workspace.root().to_path_buf();
        let mut server = {
            let mut servers = self.collected.lock().ok()?;
            if servers.get(&root)?.key != server_key(spec) {
                return None;
            }
            servers.remove(&root)?
        };
        let answer = request(&mut server, spec, options, false, Some(ids));
        // A server that answered stays; one that failed is dropped.
        if answer.is_ok() {
            self.collected.lock().ok()?.insert(root, server);
        }
        match answer {
            Ok((Answer::Done(output), _)) => {
                self.served.fetch_add(1, Ordering::Relaxed);
                self.served_collected.fetch_add(1, Ordering::Relaxed);
                Some(output)
            }
            Ok((Answer::FallBack(reason), _)) => {
                tracing::debug!(%reason, "collected server handed the run back");
                self.fell_back.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "collected server run failed; dropping it");
                None
            }
        }
    }

    /// The workspace files servers compile ahead of time (learned from the
    /// first whole-suite run).
    pub(crate) fn warm_files(&self) -> Vec<String> {
        match self.learned.lock().as_deref() {
            Ok(Learned::Report(report)) => report["files"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["path"].as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Send the learned module report to a server that has not had it.
    fn warm(&self, server: &mut Server) -> Result<()> {
        if server.warmed {
            return Ok(());
        }
        let report = match &*self
            .learned
            .lock()
            .map_err(|_| Error::invalid("fork server", "lock poisoned"))?
        {
            Learned::Report(report) => report.clone(),
            _ => return Ok(()),
        };
        let line = serde_json::json!({ "warm": report }).to_string();
        server.service.send(&line)?;
        let answer = server
            .service
            .receive(START_LIMIT)?
            .ok_or_else(|| Error::command("fork server", "warming up took too long"))?;
        if !answer.contains("\"warmed\"") {
            return Err(Error::command(
                "fork server",
                format!("unexpected answer to warm-up: {answer}"),
            ));
        }
        server.warmed = true;
        Ok(())
    }
}

fn server_key(spec: &CommandSpec) -> ServerKey {
    let mut env = spec.env.clone();
    for key in PER_RUN_ENV {
        env.remove(*key);
    }
    (spec.program.clone(), spec.cwd.clone(), env)
}

/// Write the server script and start it with `spec`'s program, directory
/// and fixed environment.
fn start(workspace: &mut dyn Workspace, key: ServerKey) -> Result<Server> {
    workspace.write(SERVER_PATH, SERVER_SOURCE.as_bytes())?;
    let command = CommandSpec {
        program: key.0.clone(),
        args: vec![SERVER_PATH.to_string()],
        env: key.2.clone(),
        cwd: key.1.clone(),
    };
    let mut service = workspace.spawn(&command)?;
    let ready = service
        .receive(START_LIMIT)?
        .ok_or_else(|| Error::command(command.display(), "did not start in time"))?;
    if !ready.contains("\"ready\"") {
        return Err(Error::command(
            command.display(),
            format!("unexpected first line: {ready}"),
        ));
    }
    Ok(Server {
        service,
        key,
        warmed: false,
    })
}

/// One run through `server`: the request, the child's start, its result.
/// `select`: the tests a collected server keeps.
fn request(
    server: &mut Server,
    spec: &CommandSpec,
    options: &RunOptions,
    learn: bool,
    select: Option<&[TestId]>,
) -> Result<(Answer, Option<serde_json::Value>)> {
    let mut env: BTreeMap<&str, &str> = PER_RUN_ENV
        .iter()
        .filter_map(|k| spec.env.get(*k).map(|v| (*k, v.as_str())))
        .collect();
    if learn {
        env.insert("SMITH_MODULES", MODULES_PATH);
    }
    let line = serde_json::json!({
        "argv": &spec.args[2..],
        "env": env,
        "timeout": options.timeout.map(|t| t.as_secs_f64()),
        "test_timeout": options.test_timeout.map(|t| t.as_secs_f64()),
        "events": spec.env.get("SMITH_EVENTS"),
        "max_output": options.max_output,
        "learn": learn,
        "select": select.map(|ids| ids.iter().map(TestId::as_str).collect::<Vec<_>>()),
    })
    .to_string();
    server.service.send(&line)?;
    let started = server
        .service
        .receive(REPLY_GRACE)?
        .ok_or_else(|| Error::command("fork server", "did not start the run"))?;
    if !started.contains("\"started\"") {
        return Err(Error::command(
            "fork server",
            format!("unexpected answer to a run: {started}"),
        ));
    }
    let answer = match options.timeout {
        Some(limit) => server.service.receive(limit + REPLY_GRACE)?,
        None => loop {
            if let Some(line) = server.service.receive(NO_LIMIT_SLICE)? {
                break Some(line);
            }
        },
    }
    .ok_or_else(|| Error::command("fork server", "no answer past the run's time limit"))?;
    let done: Done = serde_json::from_str(&answer)
        .map_err(|e| Error::command("fork server", format!("unreadable answer: {e}")))?;
    if let Some(reason) = done.fallback {
        return Ok((Answer::FallBack(reason), None));
    }
    let output = RunOutput {
        exit_code: done.exit_code,
        stdout: done.stdout,
        stderr: done.stderr,
        timed_out: done.timed_out,
        duration: Duration::from_secs_f64(done.seconds.max(0.0)),
    };
    Ok((Answer::Done(output), done.learned))
}
