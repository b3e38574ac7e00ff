//! The local sandbox: each workspace is a temporary copy of the repository,
//! commands run directly on the host with the environment's venv. No
//! isolation of files or network: use it for trusted code or inside a
//! container. What a command starts still ends with it: every command runs
//! in control groups of its own where the machine offers them (its whole
//! tree held to the memory and process budget, and killed when it ends),
//! otherwise in a PID namespace of its own (`unshare --pid --fork
//! --kill-child`: when the command exits, the kernel kills everything left
//! in the namespace, `setsid` and double-forked children included).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use smith_core::{CommandSpec, Error, Result, RunOptions, RunOutput, Sandbox, Service, Workspace};

use crate::budget::{Budget, Lease};
use crate::build::Environment;
use crate::process::{run_contained, spawn_contained, DEFAULT_MEMORY_LIMIT};
use crate::tree::{copy_tree, Runner, TreeWorkspace};

/// Makes temp-copy workspaces of an [`Environment`]'s repository.
#[derive(Debug, Clone)]
pub struct LocalSandbox {
    env: Environment,
    scratch: Option<PathBuf>,
    budget: Budget,
}

impl LocalSandbox {
    /// A sandbox over `env`'s repository; workspaces go in the system temp dir.
    pub fn new(env: &Environment) -> Result<Self> {
        if !env.repo.is_dir() {
            return Err(Error::repo(
                env.repo.clone(),
                "repository directory is missing",
            ));
        }
        Ok(LocalSandbox {
            env: env.clone(),
            scratch: None,
            budget: Budget {
                memory: Some(DEFAULT_MEMORY_LIMIT),
                ..Budget::default()
            },
        })
    }

    /// Put workspaces under `dir` instead of the system temp dir.
    pub fn with_scratch_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.scratch = Some(dir.into());
        self
    }

    /// Cap each command's memory at `bytes` (`None`: no cap): every
    /// process's address space, and the whole tree's memory where control
    /// groups are available. The default is [`DEFAULT_MEMORY_LIMIT`].
    pub fn with_memory_limit(mut self, bytes: Option<u64>) -> Self {
        self.budget.memory = bytes;
        self
    }

    /// Cap the processes and threads one command's tree may hold where
    /// control groups are available (`None`: no cap). The default is
    /// [`crate::budget::DEFAULT_PROCESS_LIMIT`].
    pub fn with_process_limit(mut self, processes: Option<u64>) -> Self {
        self.budget.processes = processes;
        self
    }

    /// The environment workspaces run in.
    pub fn environment(&self) -> &Environment {
        &self.env
    }
}

/// A workspace's directory on the host: `<scratch>/<prefix>XXXX/` holding
/// an `owner` marker (the pid and start time of the smith process that made
/// it) and the copy of the repository in `tree/`. Removed on drop; one left
/// behind by a run that was killed is removed by the next run that makes a
/// workspace in the same place.
#[derive(Debug)]
pub(crate) struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Scratch {
    /// The copy of the repository.
    pub(crate) fn path(&self) -> &Path {
        &self.root
    }
}

/// The marker file in a workspace's directory naming the process that owns it.
pub(crate) const OWNER_FILE: &str = "owner";

/// `pid start-time pid-namespace` of process `pid`, as written in
/// [`OWNER_FILE`]: the start time tells a live owner from a later process
/// that got its pid, and the namespace keeps a run from judging owners it
/// cannot see (another container sharing the temp dir).
pub(crate) fn owner_stamp(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (start time) counts from the field after the command name.
    let start = stat.rsplit_once(") ")?.1.split(' ').nth(19)?.to_string();
    Some(format!("{pid} {start} {}", pid_namespace()?))
}

/// This process's PID namespace, e.g. `pid:[4026531836]`.
fn pid_namespace() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(link.to_string_lossy().into_owned())
}

/// Whether the workspace directory `dir` belongs to a process of this PID
/// namespace that is gone.
fn orphaned(dir: &Path) -> bool {
    let Ok(marker) = std::fs::read_to_string(dir.join(OWNER_FILE)) else {
        return false;
    };
    owner_gone(&marker)
}

/// Whether the owner stamp `marker` (see [`owner_stamp`]) names a process of
/// this PID namespace that is gone.
pub(crate) fn owner_gone(marker: &str) -> bool {
    let fields: Vec<&str> = marker.split_whitespace().collect();
    let [pid, _, namespace] = fields[..] else {
        return false;
    };
    let (Ok(pid), Some(ours)) = (pid.parse::<u32>(), pid_namespace()) else {
        return false;
    };
    namespace == ours && owner_stamp(pid).as_deref() != Some(marker.trim())
}

/// Remove workspaces of dead smith processes under `scratch`, once per
/// directory per process.
pub(crate) fn remove_orphaned_workspaces(scratch: &Path) {
    static SWEPT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    if let Ok(mut swept) = SWEPT.lock() {
        if swept.iter().any(|d| d == scratch) {
            return;
        }
        swept.push(scratch.to_path_buf());
    }
    let Ok(entries) = std::fs::read_dir(scratch) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = entry.file_name().to_string_lossy().starts_with("smith-");
        if ours && path.is_dir() && orphaned(&path) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Copy the repository into a new workspace directory under `scratch`
/// (the system temp dir if `None`).
/// A new copy of `env`'s repository with the files its install generated
/// laid over it, as [`new_copy`] makes it.
pub(crate) fn new_env_copy(
    env: &Environment,
    scratch: Option<&Path>,
    prefix: &str,
) -> Result<Scratch> {
    let copy = new_copy(&env.repo, scratch, prefix)?;
    env.overlay_generated(copy.path())?;
    Ok(copy)
}

pub(crate) fn new_copy(repo: &Path, scratch: Option<&Path>, prefix: &str) -> Result<Scratch> {
    let parent = match scratch {
        Some(s) => {
            std::fs::create_dir_all(s).map_err(|e| Error::io(s, e))?;
            s.to_path_buf()
        }
        None => std::env::temp_dir(),
    };
    remove_orphaned_workspaces(&parent);
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&parent)
        .map_err(|e| Error::io(&parent, e))?;
    let marker = dir.path().join(OWNER_FILE);
    let stamp = owner_stamp(std::process::id()).unwrap_or_default();
    std::fs::write(&marker, stamp).map_err(|e| Error::io(&marker, e))?;
    let root = dir.path().join("tree");
    std::fs::create_dir(&root).map_err(|e| Error::io(&root, e))?;
    copy_tree(repo, &root)?;
    Ok(Scratch { _dir: dir, root })
}

impl Sandbox for LocalSandbox {
    fn name(&self) -> &str {
        "local"
    }

    fn workspace(&self) -> Result<Box<dyn Workspace>> {
        let dir = new_env_copy(&self.env, self.scratch.as_deref(), "smith-ws-")?;
        let base_env = self.env.command_env(dir.path());
        let runner = LocalRunner {
            base_env,
            budget: self.budget,
        };
        Ok(Box::new(TreeWorkspace::new(dir, runner)))
    }
}

/// A workspace of [`LocalSandbox`]: a temp directory removed on drop.
pub type LocalWorkspace = TreeWorkspace<LocalRunner>;

/// How a [`LocalWorkspace`] runs commands: on the host, in a process group
/// (and where possible a PID namespace) of their own, within the budget.
#[derive(Debug)]
pub struct LocalRunner {
    base_env: BTreeMap<String, String>,
    budget: Budget,
}

/// The `unshare` command line that gives a command a PID namespace of its
/// own, if `unshare` can do that here (asked once): as root directly, as
/// another user inside a user namespace that maps only that user.
pub(crate) fn pid_namespace_prefix() -> Option<&'static [String]> {
    static PREFIX: std::sync::OnceLock<Option<Vec<String>>> = std::sync::OnceLock::new();
    PREFIX
        .get_or_init(|| {
            let mut prefix = vec!["unshare".to_string()];
            if rustix::process::getuid().as_raw() != 0 {
                prefix.extend(["--user".to_string(), "--map-current-user".to_string()]);
            }
            prefix.extend(["--pid", "--fork", "--kill-child", "--"].map(String::from));
            let works = Command::new(&prefix[0])
                .args(&prefix[1..])
                .arg("true")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            works.then_some(prefix)
        })
        .as_deref()
}

/// `setpriv --pdeathsig KILL --`, if `setpriv` can do that here (asked
/// once): the command is killed when the thread that started it dies, so a
/// smith killed by a signal (Ctrl-C) does not leave its commands running.
fn death_signal_prefix() -> Option<&'static [String]> {
    static PREFIX: std::sync::OnceLock<Option<Vec<String>>> = std::sync::OnceLock::new();
    PREFIX
        .get_or_init(|| {
            let prefix: Vec<String> = ["setpriv", "--pdeathsig", "KILL", "--"]
                .map(String::from)
                .to_vec();
            let works = Command::new(&prefix[0])
                .args(&prefix[1..])
                .arg("true")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            works.then_some(prefix)
        })
        .as_deref()
}

/// Build the host command for `command` in `root` with `base_env`, so that
/// the local and bubblewrap sandboxes agree on semantics.
pub(crate) fn host_command(
    root: &Path,
    base_env: &BTreeMap<String, String>,
    command: &CommandSpec,
    dies_with_caller: bool,
) -> Result<Command> {
    let cwd = match &command.cwd {
        Some(rel) => {
            let rel = crate::tree::inside_workspace(rel, "cwd")?;
            smith_core::join_rel(root, rel)
        }
        None => root.to_path_buf(),
    };
    // Without control groups, a PID namespace is what ends the command's
    // whole tree with it. A command (not a service, which outlives the
    // thread that started it and ends when its stdin closes) also dies with
    // the thread waiting for it.
    let mut argv: Vec<&str> = Vec::new();
    if let Some(prefix) = death_signal_prefix().filter(|_| dies_with_caller) {
        argv.extend(prefix.iter().map(String::as_str));
    }
    if let Some(prefix) = pid_namespace_prefix().filter(|_| !Lease::available()) {
        argv.extend(prefix.iter().map(String::as_str));
    }
    argv.push(&command.program);
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .args(&command.args)
        .current_dir(cwd)
        .env_remove("PYTHONHOME")
        .envs(merged_env(base_env, &command.env));
    Ok(cmd)
}

/// The environment of one command: the workspace's, overridden by the
/// command's, except `PYTHONPATH`, where the command's entries go first and
/// the workspace's follow. The workspace's entries point imports at its own
/// copy of the code; dropping them would silently test the original tree.
pub(crate) fn merged_env(
    base_env: &BTreeMap<String, String>,
    command_env: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env = base_env.clone();
    for (k, v) in command_env {
        let value = match (k.as_str(), base_env.get(k)) {
            ("PYTHONPATH", Some(base)) if !base.is_empty() && !v.is_empty() => {
                format!("{v}:{base}")
            }
            _ => v.clone(),
        };
        env.insert(k.clone(), value);
    }
    env
}

impl Runner for LocalRunner {
    fn run(
        &mut self,
        root: &Path,
        command: &CommandSpec,
        options: &RunOptions,
    ) -> Result<RunOutput> {
        let cmd = host_command(root, &self.base_env, command, true)?;
        run_contained(cmd, &command.display(), options, &self.budget)
    }

    fn spawn(&mut self, root: &Path, command: &CommandSpec) -> Result<Box<dyn Service>> {
        let cmd = host_command(root, &self.base_env, command, false)?;
        let service = spawn_contained(cmd, &command.display(), &self.budget)?;
        Ok(Box::new(service))
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    #[test]
    fn the_next_run_removes_workspaces_of_dead_runs_and_keeps_the_rest() {
        let scratch = tempfile::tempdir().unwrap();
        let repo = tempfile::tempdir().unwrap();
        std::fs::write(repo.path().join("m.py"), "x = 1\n").unwrap();
        // A run that made a workspace and was killed: its pid is gone.
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        dead.wait().unwrap();
        let ns = pid_namespace().unwrap();
        let me = owner_stamp(std::process::id()).unwrap();
        let dirs = [
            ("smith-ws-dead", Some(format!("{dead_pid} 12345 {ns}"))),
            (
                "smith-bwrap-reused-pid",
                Some(format!("{} 1 {ns}", std::process::id())),
            ),
            ("smith-ws-live", Some(me)),
            ("smith-ws-elsewhere", Some(format!("{dead_pid} 1 pid:[1]"))),
            ("smith-unmarked", None),
        ];
        for (name, marker) in &dirs {
            let dir = scratch.path().join(name);
            std::fs::create_dir_all(dir.join("tree")).unwrap();
            if let Some(marker) = marker {
                std::fs::write(dir.join(OWNER_FILE), marker).unwrap();
            }
        }
        let ws = new_copy(repo.path(), Some(scratch.path()), "smith-ws-").unwrap();
        assert!(ws.path().join("m.py").is_file());
        let left: Vec<bool> = dirs
            .iter()
            .map(|(name, _)| scratch.path().join(name).exists())
            .collect();
        // Dead owner and a pid now used by another process go; a live
        // owner, an owner in another PID namespace and unmarked dirs stay.
        assert_eq!(left, [false, false, true, true, true]);
        let marker = std::fs::read_to_string(ws.path().parent().unwrap().join(OWNER_FILE)).unwrap();
        assert_eq!(Some(marker), owner_stamp(std::process::id()));
    }

    #[test]
    fn command_pythonpath_goes_before_the_workspace_one() {
        let base = BTreeMap::from([
            ("PYTHONPATH".to_string(), "/ws/src".to_string()),
            ("A".to_string(), "1".to_string()),
        ]);
        let cmd = BTreeMap::from([
            ("PYTHONPATH".to_string(), ".smith".to_string()),
            ("A".to_string(), "2".to_string()),
        ]);
        let env = merged_env(&base, &cmd);
        assert_eq!(env["PYTHONPATH"], ".smith:/ws/src");
        assert_eq!(env["A"], "2");
    }
}
