//! The bubblewrap sandbox: workspaces are temp copies like the local
//! sandbox's, but every command runs under `bwrap` with the whole system
//! read-only, only the workspace and a private `/tmp` writable, no network,
//! its own PID namespace (host processes are invisible), a new session, and
//! death with its parent. Mutated code can still burn CPU; it cannot touch
//! the user's files, the venv, or the network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use smith_core::{
    CommandSpec, Error, Patch, Result, RunOptions, RunOutput, Sandbox, Service, Workspace,
};

use crate::build::Environment;
use crate::local::new_copy;
use crate::process::run_command;
use crate::tree::Tree;

/// Settings of the bubblewrap sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BwrapOptions {
    /// The `bwrap` program.
    pub program: PathBuf,
    /// Allow network access (off by default).
    pub network: bool,
    /// Where workspaces are created on the host (system temp dir if `None`).
    pub scratch_dir: Option<PathBuf>,
    /// Cap on each command's address space in bytes (`None`: no cap).
    pub memory_limit: Option<u64>,
}

impl Default for BwrapOptions {
    fn default() -> Self {
        BwrapOptions {
            program: PathBuf::from("bwrap"),
            network: false,
            scratch_dir: None,
            memory_limit: Some(crate::process::DEFAULT_MEMORY_LIMIT),
        }
    }
}

/// Makes workspaces whose commands run under bubblewrap.
#[derive(Debug, Clone)]
pub struct BwrapSandbox {
    env: Environment,
    options: BwrapOptions,
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
            return Err(Error::Repo {
                path: env.repo.clone(),
                reason: "repository directory is missing".into(),
            });
        }
        bwrap_works(&options)?;
        Ok(BwrapSandbox {
            env: env.clone(),
            options,
        })
    }
}

/// Check that bubblewrap can build this sandbox's namespaces here.
pub fn bwrap_works(options: &BwrapOptions) -> Result<()> {
    let mut argv = base_args(options, Path::new("/"), &[]);
    argv.push("--".into());
    argv.push("true".into());
    let mut cmd = Command::new(&options.program);
    cmd.args(&argv);
    let display = format!("{} {}", options.program.display(), argv.join(" "));
    let out = run_command(cmd, &display, &RunOptions::default()).map_err(|e| {
        Error::command(
            &display,
            format!("{e} (install bubblewrap: scripts/setup.sh, or apt-get install bubblewrap)"),
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

/// bwrap's arguments up to (not including) `--`: read-only `/`, fresh
/// `/dev`, `/proc` and `/tmp`, then `rw` bound writable and `ro` re-bound
/// read-only on top (paths under `/tmp` would otherwise vanish under the
/// tmpfs).
fn base_args(options: &BwrapOptions, rw: &Path, ro: &[&Path]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
    ]
    .map(String::from)
    .to_vec();
    for path in ro {
        if path.exists() {
            let p = path.display().to_string();
            args.extend(["--ro-bind".to_string(), p.clone(), p]);
        }
    }
    if rw != Path::new("/") {
        let p = rw.display().to_string();
        args.extend(["--bind".to_string(), p.clone(), p]);
    }
    args.extend(
        [
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--die-with-parent",
            "--new-session",
        ]
        .map(String::from),
    );
    if !options.network {
        args.push("--unshare-net".into());
    }
    args
}

impl Sandbox for BwrapSandbox {
    fn name(&self) -> &str {
        "bwrap"
    }

    fn workspace(&self) -> Result<Box<dyn Workspace>> {
        let dir = new_copy(
            &self.env.repo,
            self.options.scratch_dir.as_deref(),
            "smith-bwrap-",
        )?;
        let root = dir.path().to_path_buf();
        let args = base_args(&self.options, &root, &[&self.env.venv, &self.env.repo]);
        Ok(Box::new(BwrapWorkspace {
            base_env: self.env.command_env(&root),
            tree: Tree::new(root),
            _dir: dir,
            program: self.options.program.clone(),
            args,
            memory_limit: self.options.memory_limit,
        }))
    }
}

/// A workspace of [`BwrapSandbox`].
#[derive(Debug)]
pub struct BwrapWorkspace {
    _dir: tempfile::TempDir,
    tree: Tree,
    base_env: BTreeMap<String, String>,
    program: PathBuf,
    args: Vec<String>,
    memory_limit: Option<u64>,
}

impl BwrapWorkspace {
    /// The full `bwrap` argument list for `command` (for logs and tests).
    pub fn argv(&self, command: &CommandSpec) -> Result<Vec<String>> {
        let root = self.tree.root();
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
        argv.push(command.program.clone());
        argv.extend(command.args.iter().cloned());
        Ok(argv)
    }

    /// The `bwrap` command that runs `command` inside.
    fn host_command(&self, command: &CommandSpec) -> Result<Command> {
        let argv = self.argv(command)?;
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

impl Workspace for BwrapWorkspace {
    fn root(&self) -> &Path {
        self.tree.root()
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.tree.read(path)
    }

    fn write(&mut self, path: &str, contents: &[u8]) -> Result<()> {
        self.tree.write(path, contents)
    }

    fn apply(&mut self, patch: &Patch) -> Result<()> {
        self.tree.apply(patch)
    }

    fn reset(&mut self) -> Result<()> {
        self.tree.reset()
    }

    fn run(&mut self, command: &CommandSpec, options: &RunOptions) -> Result<RunOutput> {
        let cmd = self.host_command(command)?;
        crate::process::run_command_limited(cmd, &command.display(), options, self.memory_limit)
    }

    fn spawn(&mut self, command: &CommandSpec) -> Result<Box<dyn Service>> {
        let cmd = self.host_command(command)?;
        let service = crate::process::spawn_service(cmd, &command.display(), self.memory_limit)?;
        Ok(Box::new(service))
    }
}
