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
//! Servers start only in [`ServerPool::prepare`], which the executor's
//! `prepare` calls on a clean workspace: a server started with a candidate
//! applied could keep something of that candidate (a module imported while
//! warming up) for every later run. A plain server never holds a module of
//! its workspace: warm-up refuses imports that would load one, and the
//! server checks before every fork. Anything that goes wrong with a server
//! (it cannot start, the workspace cannot host it, it dies mid-run) makes
//! [`ServerPool::run`] return `None` and the executor falls back to a fresh
//! interpreter for that run; a lost server is replaced at the next
//! `prepare`, when the workspace is clean again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
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
    /// It has had the learned module report (a server started before
    /// anything was learned gets it at a later `prepare`).
    warmed: bool,
    /// A collected server's pytest arguments (what it collected); empty
    /// for a plain server.
    argv: Vec<String>,
}

/// The servers of one executor (and its clones), by workspace root.
#[derive(Debug, Default)]
pub(crate) struct ServerPool {
    /// Plain servers, started and warmed on a clean tree.
    idle: Mutex<HashMap<PathBuf, Server>>,
    /// Workspaces that cannot host a server.
    unsupported: Mutex<HashSet<PathBuf>>,
    /// Workspaces (and server keys) whose plain server did not start, or
    /// whose collected server did not collect: not tried again.
    failed: Mutex<HashSet<(PathBuf, ServerKey, bool)>>,
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
    /// Servers started (plain and collected).
    pub(crate) started: AtomicUsize,
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
    /// The server holds a module of its workspace and forks no child.
    Unusable(String),
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

/// A server's answer to warming up.
#[derive(Debug, Deserialize)]
struct Warmed {
    /// Modules imported and files compiled.
    warmed: usize,
    /// Modules of the report it did not import because importing them
    /// loads files of the workspace (a helper that imports the project).
    #[serde(default)]
    refused: Vec<String>,
}

impl ServerPool {
    /// Run `spec` (a `python -m pytest ...` command) through `workspace`'s
    /// plain server. `None` when there is no server for it (none was
    /// prepared, or it was started for another command) or the server
    /// failed; the caller then runs the command itself. A server that
    /// failed is dropped, and replaced only at the next
    /// [`prepare`](ServerPool::prepare). `whole_suite` runs may teach the
    /// pool what to warm.
    pub(crate) fn run(
        &self,
        workspace: &mut dyn Workspace,
        spec: &CommandSpec,
        options: &RunOptions,
        whole_suite: bool,
    ) -> Option<RunOutput> {
        let root = workspace.root().to_path_buf();
        let key = server_key(spec);
        let mut server = {
            let mut idle = self.idle.lock().ok()?;
            if idle.get(&root)?.key != key {
                return None;
            }
            idle.remove(&root)?
        };
        let learn = whole_suite && matches!(self.learned.lock().as_deref(), Ok(Learned::Nothing));
        match request(&mut server, spec, options, learn, None) {
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
                Some(output)
            }
            Ok((Answer::FallBack(reason), _)) => {
                tracing::debug!(%reason, "a plain fork server cannot fall back");
                None
            }
            Ok((Answer::Unusable(reason), _)) => {
                // Its warm-up let the workspace in: servers for this
                // workspace would do the same again.
                tracing::debug!(%reason, "fork server unusable; fresh interpreters from now on");
                self.failed_start(&root, &key, false);
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "fork server lost; fresh interpreters until the workspace is clean again");
                None
            }
        }
    }

    /// Get `workspace`, which must hold the clean tree, ready to serve runs
    /// of `spec` (the whole suite's `python -m pytest ...`): start and warm
    /// its plain server unless one for `spec` is up, and with `collect` its
    /// collected server, which runs the whole suite's session up to the end
    /// of collection and serves every later run of selected tests by
    /// forking there (see the server script). A server that did not start
    /// is logged, never an error, and not tried again for this workspace:
    /// runs without one use a fresh interpreter.
    pub(crate) fn prepare(&self, workspace: &mut dyn Workspace, spec: &CommandSpec, collect: bool) {
        let root = workspace.root().to_path_buf();
        let key = server_key(spec);
        if self.unsupported.lock().map_or(true, |u| u.contains(&root)) {
            return;
        }
        let idle = self
            .idle
            .lock()
            .ok()
            .and_then(|mut idle| idle.remove(&root))
            .filter(|s| s.key == key);
        let plain = match idle {
            Some(server) if server.warmed => Ok(server),
            Some(mut server) => match self.warm(&mut server) {
                Ok(()) => Ok(server),
                Err(e) => {
                    self.warming_failed(&e);
                    self.start_plain(workspace, &key)
                }
            },
            None if self.failed_before(&root, &key, false) => {
                Err(Error::invalid("fork server", "did not start here before"))
            }
            None => self.start_plain(workspace, &key),
        };
        match plain {
            Ok(server) => {
                if let Ok(mut idle) = self.idle.lock() {
                    idle.insert(root.clone(), server);
                }
            }
            Err(Error::Unsupported { .. }) => {
                if let Ok(mut unsupported) = self.unsupported.lock() {
                    unsupported.insert(root);
                }
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "fork server did not start");
                self.failed_start(&root, &key, false);
            }
        }
        if collect && self.wants(&self.collected, &root, &key, &spec.args[2..]) {
            match self.start_collected(workspace, spec, &key) {
                Some(server) => {
                    if let Ok(mut collected) = self.collected.lock() {
                        collected.insert(root, server);
                    }
                }
                None => self.failed_start(&root, &key, true),
            }
        }
    }

    /// Whether `servers` (the collected ones) needs a new server for
    /// `root`, `key` and the pytest arguments `argv`: it has none that
    /// collected those (one for another key or other arguments is
    /// dropped), and none failed to start before.
    fn wants(
        &self,
        servers: &Mutex<HashMap<PathBuf, Server>>,
        root: &Path,
        key: &ServerKey,
        argv: &[String],
    ) -> bool {
        let Ok(mut servers) = servers.lock() else {
            return false;
        };
        if servers
            .get(root)
            .is_some_and(|s| s.key == *key && s.argv == argv)
        {
            return false;
        }
        servers.remove(root);
        !self.failed_before(root, key, true)
    }

    /// Stop and forget every server of the workspace at `root` (it is
    /// being discarded, or may have changed in ways no server must see).
    pub(crate) fn release(&self, root: &Path) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.remove(root);
        }
        if let Ok(mut collected) = self.collected.lock() {
            collected.remove(root);
        }
        if let Ok(mut failed) = self.failed.lock() {
            failed.retain(|(r, _, _)| r != root);
        }
    }

    fn failed_before(&self, root: &Path, key: &ServerKey, collected: bool) -> bool {
        self.failed.lock().map_or(true, |f| {
            f.contains(&(root.to_path_buf(), key.clone(), collected))
        })
    }

    fn failed_start(&self, root: &Path, key: &ServerKey, collected: bool) {
        if let Ok(mut failed) = self.failed.lock() {
            failed.insert((root.to_path_buf(), key.clone(), collected));
        }
    }

    /// Servers start cold from now on.
    fn warming_failed(&self, e: &Error) {
        tracing::debug!(error = %e, "fork server could not warm up; starting cold");
        if let Ok(mut learned) = self.learned.lock() {
            *learned = Learned::Disabled;
        }
    }

    /// Start a plain server and warm it up; if warming fails, warming is
    /// off from now on and the server starts again cold.
    fn start_plain(&self, workspace: &mut dyn Workspace, key: &ServerKey) -> Result<Server> {
        let mut server = start(workspace, key.clone())?;
        self.started.fetch_add(1, Ordering::Relaxed);
        match self.warm(&mut server) {
            Ok(()) => Ok(server),
            Err(e) => {
                self.warming_failed(&e);
                drop(server);
                self.started.fetch_add(1, Ordering::Relaxed);
                start(workspace, key.clone())
            }
        }
    }

    /// Start a collected server and have it collect the clean suite.
    fn start_collected(
        &self,
        workspace: &mut dyn Workspace,
        spec: &CommandSpec,
        key: &ServerKey,
    ) -> Option<Server> {
        let mut server = match start(workspace, key.clone()) {
            Ok(server) => server,
            Err(e) => {
                tracing::debug!(error = %e, "collected server did not start");
                return None;
            }
        };
        self.started.fetch_add(1, Ordering::Relaxed);
        server.argv = spec.args[2..].to_vec();
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
                Some(server)
            }
            other => {
                tracing::debug!(answer = ?other, "collected server did not collect");
                None
            }
        }
    }

    /// Run `spec`, which selects `ids`, through `workspace`'s collected
    /// server. `None` when there is none, it cannot take this change, or it
    /// failed (then it is dropped): the caller runs the command another way.
    /// The flag says whether a server was asked (and so the time spent
    /// before `None` went into a hand-back).
    pub(crate) fn run_collected(
        &self,
        workspace: &mut dyn Workspace,
        spec: &CommandSpec,
        ids: &[TestId],
        options: &RunOptions,
    ) -> (Option<RunOutput>, bool) {
        let root = workspace.root().to_path_buf();
        let taken = self.collected.lock().ok().and_then(|mut servers| {
            if servers.get(&root)?.key != server_key(spec) {
                return None;
            }
            servers.remove(&root)
        });
        let Some(mut server) = taken else {
            return (None, false);
        };
        let answer = request(&mut server, spec, options, false, Some(ids));
        // A server that answered stays; one that failed is dropped.
        if matches!(answer, Ok((Answer::Done(_) | Answer::FallBack(_), _))) {
            if let Ok(mut servers) = self.collected.lock() {
                servers.insert(root, server);
            }
        }
        let output = match answer {
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
            Ok((Answer::Unusable(reason), _)) => {
                tracing::debug!(%reason, "collected server unusable");
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "collected server run failed; dropping it");
                None
            }
        };
        (output, true)
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

    /// The learned modules a server refused to import because they load
    /// files of the workspace (empty before any server warmed up).
    pub(crate) fn refused_modules(&self) -> Vec<String> {
        match self.learned.lock().as_deref() {
            Ok(Learned::Report(report)) => report["refused"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Send the learned module report to a new server. The first server to
    /// get it vets it (tries the imports in a throwaway child): modules
    /// whose import loads files of the workspace are taken out of the
    /// report, so later servers import only the rest.
    fn warm(&self, server: &mut Server) -> Result<()> {
        let report = match &*self
            .learned
            .lock()
            .map_err(|_| Error::invalid("fork server", "lock poisoned"))?
        {
            Learned::Report(report) => report.clone(),
            Learned::Nothing => return Ok(()),
            Learned::Disabled => {
                server.warmed = true;
                return Ok(());
            }
        };
        let line = serde_json::json!({ "warm": report }).to_string();
        server.service.send(&line)?;
        let answer = server
            .service
            .receive(START_LIMIT)?
            .ok_or_else(|| Error::command("fork server", "warming up took too long"))?;
        let warmed: Warmed = serde_json::from_str(&answer).map_err(|e| {
            Error::command(
                "fork server",
                format!("unexpected answer to warm-up ({e}): {answer}"),
            )
        })?;
        tracing::debug!(
            warmed = warmed.warmed,
            refused = warmed.refused.len(),
            "fork server warmed up"
        );
        server.warmed = true;
        if report["vetted"] != serde_json::Value::Bool(true) {
            if let Ok(mut learned) = self.learned.lock() {
                if let Learned::Report(report) = &mut *learned {
                    vet(report, &warmed.refused);
                }
            }
        }
        Ok(())
    }
}

/// Take `refused` out of a module report's modules and mark it vetted.
fn vet(report: &mut serde_json::Value, refused: &[String]) {
    if let Some(modules) = report["modules"].as_array_mut() {
        modules.retain(|m| m.as_str().is_some_and(|m| !refused.iter().any(|r| r == m)));
    }
    report["refused"] = serde_json::json!(refused);
    report["vetted"] = serde_json::Value::Bool(true);
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
        argv: Vec::new(),
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
        "test_timeouts": crate::pytest::limits_json(options),
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
    if let Some(reason) = serde_json::from_str::<serde_json::Value>(&started)
        .ok()
        .and_then(|v| v["unusable"].as_str().map(String::from))
    {
        return Ok((Answer::Unusable(reason), None));
    }
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
        .map_err(|e| Error::command_source("fork server", "unreadable answer", e))?;
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
