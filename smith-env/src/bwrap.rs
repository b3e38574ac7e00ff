//! The bubblewrap sandbox: workspaces are temp copies like the local
//! sandbox's, but every command runs under `bwrap`, built to hold even when
//! smith runs as root:
//!
//! - a user namespace with an unprivileged uid inside, every capability
//!   dropped and no further user namespaces, so `mount`, `unshare -r` and
//!   remounting read-only binds writable all fail;
//! - only what tests need is bound: the system directories (`/usr`, `/bin`,
//!   `/lib*`, `/etc`, `/opt`) read-only, with every file or directory in
//!   `/etc` that other users could not read (`shadow`, private keys)
//!   covered; the venv, the Python installation it was made from and the
//!   original repository read-only; the workspace writable. `/root`,
//!   `/home`, `/tmp` and `/var/tmp` are empty tmpfs, so writes there vanish
//!   with the command;
//! - its own PID, IPC, UTS and network namespaces (host processes are
//!   invisible, only `lo` exists), a new session, death with its parent;
//! - a budget for the whole process tree ([`crate::budget`]): control
//!   groups where available, rlimits otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use smith_core::{CommandSpec, Error, Result, RunOptions, RunOutput, Sandbox, Service, Workspace};

use crate::budget::{Budget, Lease};
use crate::build::Environment;
use crate::local::new_env_copy;
use crate::process::run_command;
use crate::tree::{Runner, TreeWorkspace};

/// System directories bound read-only into every sandbox (those that exist).
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
];

/// Directories that are empty and writable inside, and gone afterwards.
const SCRATCH_DIRS: &[&str] = &["/tmp", "/var/tmp", "/root", "/home"];

/// util-linux's `prlimit`, which sets a limit and runs a command.
const PRLIMIT: &str = "/usr/bin/prlimit";

/// The uid (and gid) commands run as inside when smith runs as root.
pub const SANDBOX_UID: u32 = 1000;

/// Settings of the bubblewrap sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BwrapOptions {
    /// The `bwrap` program.
    pub program: PathBuf,
    /// Allow network access (off by default).
    pub network: bool,
    /// Where workspaces are created on the host (system temp dir if `None`).
    pub scratch_dir: Option<PathBuf>,
    /// Memory one command's process tree may use, in bytes (`None`: no
    /// cap); see [`Budget::memory`].
    pub memory_limit: Option<u64>,
    /// Processes and threads one command's tree may hold (`None`: no cap).
    pub process_limit: Option<u64>,
    /// The uid and gid inside (`None`: the caller's, or [`SANDBOX_UID`]
    /// for root). Never 0.
    pub uid: Option<u32>,
}

impl Default for BwrapOptions {
    fn default() -> Self {
        let budget = Budget::default();
        BwrapOptions {
            program: PathBuf::from("bwrap"),
            network: false,
            scratch_dir: None,
            memory_limit: budget.memory,
            process_limit: budget.processes,
            uid: None,
        }
    }
}

impl BwrapOptions {
    fn budget(&self) -> Budget {
        Budget {
            memory: self.memory_limit,
            processes: self.process_limit,
        }
    }

    fn inner_uid(&self) -> u32 {
        match self.uid {
            Some(0) | None => match rustix::process::getuid().as_raw() {
                0 => SANDBOX_UID,
                uid => uid,
            },
            Some(uid) => uid,
        }
    }
}

/// Makes workspaces whose commands run under bubblewrap.
#[derive(Debug, Clone)]
pub struct BwrapSandbox {
    env: Environment,
    options: BwrapOptions,
    /// The namespaces, binds and covers every command shares.
    args: Vec<String>,
}

impl BwrapSandbox {
    /// A sandbox over `env` with default options; fails with the exact error
    /// when `bwrap` is missing or cannot create namespaces here.
    pub fn new(env: &Environment) -> Result<Self> {
        Self::with_options(env, BwrapOptions::default())
    }

    /// A sandbox with `options`, checked by running `true` under it.
    pub fn with_options(env: &Environment, options: BwrapOptions) -> Result<Self> {
        if !env.repo.is_dir() {
            return Err(Error::repo(
                env.repo.clone(),
                "repository directory is missing",
            ));
        }
        bwrap_works(&options)?;
        let mut ro: Vec<PathBuf> = vec![env.venv.clone(), env.repo.clone()];
        ro.extend(python_installation(&env.venv));
        let args = base_args(&options, &ro);
        Ok(BwrapSandbox {
            env: env.clone(),
            options,
            args,
        })
    }
}

/// Check that bubblewrap can build this sandbox's namespaces here.
pub fn bwrap_works(options: &BwrapOptions) -> Result<()> {
    let mut argv = base_args(options, &[]);
    argv.push("--".into());
    argv.push("true".into());
    let mut cmd = Command::new(&options.program);
    cmd.args(&argv);
    // The whole argument list is long; the namespaces name the check.
    let display = format!(
        "{} --unshare-user --unshare-pid --unshare-net ... true",
        options.program.display()
    );
    let out = run_command(cmd, &display, &RunOptions::default()).map_err(|e| {
        let reason = match e {
            Error::Command {
                reason,
                source: Some(cause),
                ..
            } => format!("{reason}: {cause}"),
            Error::Command { reason, .. } => reason,
            other => other.to_string(),
        };
        Error::command(
            &display,
            format!(
                "{reason} (install bubblewrap: scripts/setup.sh, or apt-get install bubblewrap)"
            ),
        )
    })?;
    if !out.success() {
        return Err(Error::command(
            display,
            format!(
                "bubblewrap cannot create its namespaces here (exit {:?}): {}",
                out.exit_code,
                out.stderr.trim()
            ),
        ));
    }
    Ok(())
}

/// The Python installation a venv was made from (`home` in its
/// `pyvenv.cfg`, and where its `python` leads), which the venv's
/// interpreter needs: a prefix such as `/usr/local` or a pyenv or uv
/// version directory under `/root`.
fn python_installation(venv: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(cfg) = std::fs::read_to_string(venv.join("pyvenv.cfg")) {
        for line in cfg.lines() {
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == "home" {
                    let bin = PathBuf::from(value.trim());
                    found.push(bin.parent().map(Path::to_path_buf).unwrap_or(bin));
                }
            }
        }
    }
    if let Ok(python) = venv.join("bin").join("python").canonicalize() {
        if let Some(prefix) = python.parent().and_then(Path::parent) {
            found.push(prefix.to_path_buf());
        }
    }
    found.retain(|p| p.is_dir() && p != Path::new("/"));
    found.sort();
    found.dedup();
    found
}

/// Files and directories under `dir` that a user other than their owner
/// and group could not read: inside, the sandbox's uid maps to the
/// caller's, so for root these would be readable. Covered with an empty
/// file or directory.
fn unreadable_entries(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, bool)>) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let mode = meta.permissions().mode();
        if meta.is_dir() {
            if mode & 0o005 != 0o005 {
                out.push((entry.path(), true));
            } else if depth > 0 {
                unreadable_entries(&entry.path(), depth - 1, out);
            }
        } else if meta.is_file() && mode & 0o004 == 0 {
            out.push((entry.path(), false));
        }
    }
}

/// Whether `program --help` lists `flag` (bubblewrap's options grew over
/// its versions); the help text is read once per program.
fn supports(program: &Path, flag: &str) -> bool {
    static HELP: std::sync::Mutex<BTreeMap<PathBuf, String>> =
        std::sync::Mutex::new(BTreeMap::new());
    let Ok(mut help) = HELP.lock() else {
        return false;
    };
    help.entry(program.to_path_buf())
        .or_insert_with(|| {
            Command::new(program)
                .arg("--help")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        })
        .split(|c: char| c.is_whitespace() || c == ',')
        .any(|word| word == flag)
}

fn bind_args(args: &mut Vec<String>, flag: &str, path: &Path) {
    let p = path.display().to_string();
    args.extend([flag.to_string(), p.clone(), p]);
}

/// The system directories, read-only (symlinks such as `/bin -> usr/bin`
/// as symlinks), with the entries of `/etc` this user cannot read covered:
/// an empty tmpfs over a directory, `/dev/null` over a file.
fn system_args(args: &mut Vec<String>) {
    for dir in SYSTEM_DIRS {
        let path = Path::new(dir);
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        if meta.file_type().is_symlink() {
            // `/bin -> usr/bin` on merged-/usr systems.
            if let Ok(target) = std::fs::read_link(path) {
                args.extend([
                    "--symlink".to_string(),
                    target.display().to_string(),
                    dir.to_string(),
                ]);
            }
        } else if meta.is_dir() {
            bind_args(args, "--ro-bind", path);
        }
    }
    let mut covered = Vec::new();
    unreadable_entries(Path::new("/etc"), 4, &mut covered);
    for (path, is_dir) in covered {
        if is_dir {
            args.extend(["--tmpfs".to_string(), path.display().to_string()]);
        } else {
            args.extend([
                "--ro-bind".to_string(),
                "/dev/null".to_string(),
                path.display().to_string(),
            ]);
        }
    }
}

/// bwrap's arguments up to (not including) `--chdir` and `--`: the
/// namespaces, the system read-only, scratch tmpfs, then the paths in `ro`
/// read-only on top (paths under `/tmp` or `/root` would otherwise vanish
/// under the tmpfs). The workspace is bound writable per workspace.
fn base_args(options: &BwrapOptions, ro: &[PathBuf]) -> Vec<String> {
    let uid = options.inner_uid().to_string();
    let mut args: Vec<String> = vec![
        "--unshare-user".into(),
        "--uid".into(),
        uid.clone(),
        "--gid".into(),
        uid,
        "--unshare-pid".into(),
        "--unshare-ipc".into(),
        "--unshare-uts".into(),
        "--unshare-cgroup-try".into(),
        "--die-with-parent".into(),
        "--new-session".into(),
        "--cap-drop".into(),
        "ALL".into(),
    ];
    if !options.network {
        args.push("--unshare-net".into());
    }
    if supports(&options.program, "--disable-userns") {
        // bubblewrap 0.8+: no nested user namespace, so no capabilities
        // regained over anything, even the sandbox's own mounts.
        args.push("--disable-userns".into());
    }
    system_args(&mut args);
    args.extend(["--dev", "/dev", "--proc", "/proc"].map(String::from));
    // $HOME too where it is elsewhere, so that tests writing there work
    // (and leave nothing behind).
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute() && h != Path::new("/"));
    let mut scratch: Vec<PathBuf> = SCRATCH_DIRS.iter().map(PathBuf::from).collect();
    if let Some(home) = home.filter(|h| !SCRATCH_DIRS.iter().any(|d| h.starts_with(d))) {
        scratch.push(home);
    }
    // Files written there are memory: at most the command's budget.
    let size = options
        .memory_limit
        .filter(|_| supports(&options.program, "--size"));
    for dir in scratch {
        if let Some(bytes) = size {
            args.extend(["--size".to_string(), bytes.to_string()]);
        }
        args.extend(["--tmpfs".to_string(), dir.display().to_string()]);
    }
    for path in ro {
        let covered_by_system = SYSTEM_DIRS.iter().any(|d| path.starts_with(d));
        if path.exists() && !covered_by_system {
            bind_args(&mut args, "--ro-bind", path);
        }
    }
    args
}

impl Sandbox for BwrapSandbox {
    fn name(&self) -> &str {
        "bwrap"
    }

    fn workspace(&self) -> Result<Box<dyn Workspace>> {
        let dir = new_env_copy(
            &self.env,
            self.options.scratch_dir.as_deref(),
            "smith-bwrap-",
        )?;
        let root = dir.path().to_path_buf();
        let mut args = self.args.clone();
        bind_args(&mut args, "--bind", &root);
        let runner = BwrapRunner {
            base_env: self.env.command_env(&root),
            program: self.options.program.clone(),
            args,
            budget: self.options.budget(),
        };
        Ok(Box::new(TreeWorkspace::new(dir, runner)))
    }
}

/// A workspace of [`BwrapSandbox`].
pub type BwrapWorkspace = TreeWorkspace<BwrapRunner>;

impl BwrapWorkspace {
    /// The full `bwrap` argument list for `command` (for logs and tests).
    pub fn argv(&self, command: &CommandSpec) -> Result<Vec<String>> {
        self.runner().argv(self.root(), command)
    }
}

/// How a [`BwrapWorkspace`] runs commands: under `bwrap`, with the
/// workspace bound read-write and the rest of the host as the sandbox's
/// options say.
#[derive(Debug)]
pub struct BwrapRunner {
    base_env: BTreeMap<String, String>,
    program: PathBuf,
    args: Vec<String>,
    budget: Budget,
}

impl BwrapRunner {
    /// The full `bwrap` argument list for `command` over the tree at `root`.
    fn argv(&self, root: &Path, command: &CommandSpec) -> Result<Vec<String>> {
        let cwd = match &command.cwd {
            Some(rel) => {
                let rel = crate::tree::inside_workspace(rel, "cwd")?;
                smith_core::join_rel(root, rel)
            }
            None => root.to_path_buf(),
        };
        let mut argv = self.args.clone();
        argv.extend(["--chdir".to_string(), cwd.display().to_string()]);
        argv.push("--".into());
        let no_cgroups = !Lease::available() && Path::new(PRLIMIT).exists();
        if let Some(n) = self.budget.processes.filter(|_| no_cgroups) {
            // No control groups: the user namespace's own count of
            // processes (enforced by the kernel for callers other than root).
            argv.extend([PRLIMIT.to_string(), format!("--nproc={n}:{n}"), "--".into()]);
        }
        argv.push(command.program.clone());
        argv.extend(command.args.iter().cloned());
        Ok(argv)
    }

    /// The `bwrap` command that runs `command` inside.
    fn host_command(&self, root: &Path, command: &CommandSpec) -> Result<Command> {
        let argv = self.argv(root, command)?;
        let mut cmd = Command::new(&self.program);
        // bwrap passes its own environment on and looks the program up on
        // that PATH, so the venv comes first inside too.
        cmd.args(&argv)
            .env_remove("PYTHONHOME")
            .envs(crate::local::merged_env(&self.base_env, &command.env))
            .env("TMPDIR", "/tmp");
        Ok(cmd)
    }
}

impl Runner for BwrapRunner {
    fn run(
        &mut self,
        root: &Path,
        command: &CommandSpec,
        options: &RunOptions,
    ) -> Result<RunOutput> {
        let cmd = self.host_command(root, command)?;
        crate::process::run_contained(cmd, &command.display(), options, &self.budget)
    }

    fn spawn(&mut self, root: &Path, command: &CommandSpec) -> Result<Box<dyn Service>> {
        let cmd = self.host_command(root, command)?;
        let service = crate::process::spawn_contained(cmd, &command.display(), &self.budget)?;
        Ok(Box::new(service))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_other_users_cannot_read_are_found_for_covering() {
        let dir = tempfile::tempdir().unwrap();
        let set =
            |p: &Path, mode| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
        std::fs::write(dir.path().join("passwd"), "x").unwrap();
        std::fs::write(dir.path().join("shadow"), "x").unwrap();
        set(&dir.path().join("shadow"), 0o640).unwrap();
        std::fs::create_dir_all(dir.path().join("ssl/private")).unwrap();
        set(&dir.path().join("ssl/private"), 0o700).unwrap();
        std::fs::write(dir.path().join("ssl/cert.pem"), "x").unwrap();
        let mut found = Vec::new();
        unreadable_entries(dir.path(), 4, &mut found);
        found.sort();
        assert_eq!(
            found,
            [
                (dir.path().join("shadow"), false),
                (dir.path().join("ssl/private"), true)
            ]
        );
    }

    #[test]
    fn arguments_drop_capabilities_and_bind_only_what_tests_need() {
        let options = BwrapOptions {
            uid: Some(4242),
            ..BwrapOptions::default()
        };
        let venv = tempfile::tempdir().unwrap();
        let args = base_args(&options, &[venv.path().to_path_buf()]);
        let line = args.join(" ");
        for needed in [
            "--unshare-user --uid 4242 --gid 4242",
            "--unshare-pid",
            "--unshare-net",
            "--new-session",
            "--die-with-parent",
            "--cap-drop ALL",
            "--tmpfs /root",
            "--tmpfs /home",
            "--tmpfs /tmp",
        ] {
            assert!(line.contains(needed), "{needed} missing: {line}");
        }
        assert!(!line.contains("--ro-bind / /"), "{line}");
        // The venv (under /tmp) is bound after the tmpfs that would hide it.
        let tmpfs = args.iter().position(|a| a == "/tmp").unwrap();
        let venv_at = args
            .iter()
            .position(|a| Path::new(a) == venv.path())
            .expect("venv bound");
        assert!(tmpfs < venv_at, "{line}");
        let asked_for_root = BwrapOptions {
            uid: Some(0),
            ..BwrapOptions::default()
        };
        assert_ne!(asked_for_root.inner_uid(), 0, "uid 0 inside is never used");
    }
}
