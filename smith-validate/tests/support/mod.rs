//! Test-only plumbing: a virtualenv with pytest and coverage, and a small
//! local sandbox (temp-dir copy, venv first on PATH, process-group kill at
//! the time limit). smith-env has the real sandboxes; these tests must not
//! depend on them (only on smith-env's `ChildService`, for fork servers).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use smith_core::{
    join_rel, CommandSpec, Error, Patch, Result, RunOptions, RunOutput, Sandbox, Service, Workspace,
};

/// The `bin` directory of a virtualenv with pytest 9, coverage 7 and the
/// `leak_helper` fixture (a helper distribution that imports the `leak`
/// fixture's project), made once per machine under the target directory
/// and reused.
pub(crate) fn venv_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        make_venv(
            "smith-validate-venv-2",
            &["pytest>=9,<10", "coverage>=7.10,<8"],
            &["leak_helper"],
        )
    })
}

/// A virtualenv with pytest-cov and the `clitool` fixture installed (its
/// console script `tabular` on the venv's `PATH`), with coverage.py 7.13
/// or newer, which starts measuring a child process through its own `.pth`
/// file.
pub(crate) fn cli_venv_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        make_venv(
            "smith-validate-venv-cli",
            &["pytest>=9,<10", "coverage>=7.13,<8", "pytest-cov"],
            &["clitool"],
        )
    })
}

/// As [`cli_venv_bin`] with coverage.py before 7.13, which ships no `.pth`
/// file: a child process measures itself only through smith's own
/// `sitecustomize`.
pub(crate) fn old_coverage_cli_venv_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        make_venv(
            "smith-validate-venv-cli-old-coverage",
            &["pytest>=9,<10", "coverage>=7.10,<7.13"],
            &["clitool"],
        )
    })
}

/// Make (once, under a lock) a virtualenv `name` under the target directory
/// with `packages` from PyPI and copies of the fixture projects `fixtures`
/// installed; return its `bin` directory. Fixtures are copied first so that
/// building them leaves nothing in the source tree.
fn make_venv(name: &str, packages: &[&str], fixtures: &[&str]) -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.join(name);
    let bin = dir.join("bin");
    let ready = dir.join(".ready");
    std::fs::create_dir_all(&tmp).unwrap();
    let lock = std::fs::File::create(tmp.join(format!("{name}.lock"))).unwrap();
    lock.lock().unwrap();
    if !ready.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "python3 -m venv {name} failed");
        let copies = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = ["install", "-q"].map(String::from).to_vec();
        args.extend(packages.iter().map(|p| p.to_string()));
        for f in fixtures {
            let copy = copies.path().join(f);
            copy_tree(&fixture(f), &copy).unwrap();
            args.push(copy.display().to_string());
        }
        let ok = Command::new(bin.join("pip"))
            .args(&args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "pip {args:?} failed");
        std::fs::write(&ready, b"").unwrap();
    }
    lock.unlock().unwrap();
    bin
}

/// Path of a fixture directory.
pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Makes workspaces by copying `source` into temp dirs.
#[derive(Debug, Clone)]
pub(crate) struct CopySandbox {
    pub source: PathBuf,
    pub bin: PathBuf,
    /// Whether workspaces can start services (fork servers).
    pub services: bool,
    /// Environment every command starts with (a command's own variables
    /// win), as a real sandbox's environment does.
    pub env: BTreeMap<String, String>,
}

impl CopySandbox {
    pub(crate) fn new(source: impl Into<PathBuf>) -> Self {
        CopySandbox {
            source: source.into(),
            bin: venv_bin().to_path_buf(),
            services: true,
            env: BTreeMap::new(),
        }
    }

    /// Workspaces whose commands run with the virtualenv of `bin`.
    pub(crate) fn with_venv(mut self, bin: &Path) -> Self {
        self.bin = bin.to_path_buf();
        self
    }
}

/// Copy a tree without caches, virtualenvs and git data.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        // Virtualenvs and git data are not part of the tree under test.
        if name == "__pycache__"
            || name == ".smith"
            || name == ".pytest_cache"
            || name == ".venv"
            || name == ".git"
        {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

impl Sandbox for CopySandbox {
    fn name(&self) -> &str {
        "test-copy"
    }

    fn workspace(&self) -> Result<Box<dyn Workspace>> {
        Ok(Box::new(self.copy_workspace()?))
    }
}

impl CopySandbox {
    /// A workspace, as its concrete type.
    pub(crate) fn copy_workspace(&self) -> Result<CopyWorkspace> {
        let dir = tempfile::tempdir().map_err(|e| Error::io(&self.source, e))?;
        copy_tree(&self.source, dir.path()).map_err(|e| Error::io(&self.source, e))?;
        Ok(CopyWorkspace {
            dir,
            source: self.source.clone(),
            bin: self.bin.clone(),
            touched: BTreeSet::new(),
            last_pgid: None,
            services: self.services,
            spawned: Vec::new(),
            env: self.env.clone(),
        })
    }
}

impl CopyWorkspace {
    fn command(&self, command: &CommandSpec) -> Command {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let cwd = match &command.cwd {
            Some(c) => join_rel(self.root(), c),
            None => self.root().to_path_buf(),
        };
        let mut cmd = Command::new(&command.program);
        cmd.args(&command.args)
            .current_dir(cwd)
            .env("PATH", path)
            .env("VIRTUAL_ENV", self.bin.parent().unwrap())
            .envs(&self.env)
            .envs(&command.env);
        cmd
    }
}

/// A temp-dir copy of a tree.
#[derive(Debug)]
pub(crate) struct CopyWorkspace {
    dir: tempfile::TempDir,
    source: PathBuf,
    bin: PathBuf,
    touched: BTreeSet<String>,
    /// Process group of the last command, for leak checks.
    pub last_pgid: Option<u32>,
    /// Whether `spawn` works (fork servers); off, the executor falls back.
    pub services: bool,
    /// Process ids of services started, for leak checks.
    pub spawned: Vec<u32>,
    env: BTreeMap<String, String>,
}

impl Workspace for CopyWorkspace {
    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let p = join_rel(self.root(), path);
        std::fs::read(&p).map_err(|e| Error::io(p, e))
    }

    fn write(&mut self, path: &str, contents: &[u8]) -> Result<()> {
        let p = join_rel(self.root(), path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(&p, contents).map_err(|e| Error::io(p, e))
    }

    fn apply(&mut self, patch: &Patch) -> Result<()> {
        let mut staged = Vec::new();
        for fp in patch.files()? {
            let old = std::fs::read_to_string(join_rel(self.root(), fp.path())).ok();
            staged.push((fp.path().to_string(), fp.apply(old.as_deref())?));
        }
        for (path, new) in staged {
            self.touched.insert(path.clone());
            let p = join_rel(self.root(), &path);
            match new {
                Some(text) => std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?,
                None => std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?,
            }
        }
        Ok(())
    }

    fn reset(&mut self) -> Result<()> {
        for path in std::mem::take(&mut self.touched) {
            let clean = join_rel(&self.source, &path);
            let here = join_rel(self.dir.path(), &path);
            if clean.exists() {
                std::fs::copy(&clean, &here).map_err(|e| Error::io(&here, e))?;
            } else {
                let _ = std::fs::remove_file(&here);
            }
        }
        Ok(())
    }

    fn spawn(&mut self, command: &CommandSpec) -> Result<Box<dyn Service>> {
        if !self.services {
            return Err(Error::Unsupported {
                what: "services".into(),
            });
        }
        let mut cmd = self.command(command);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .map_err(|e| Error::command(command.display(), e.to_string()))?;
        self.spawned.push(child.id());
        Ok(Box::new(smith_env::ChildService::new(
            child,
            command.display(),
        )?))
    }

    fn run(&mut self, command: &CommandSpec, options: &RunOptions) -> Result<RunOutput> {
        let mut cmd = self.command(command);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::command(command.display(), e.to_string()))?;
        let pgid = child.id();
        self.last_pgid = Some(pgid);
        let cap = options.max_output;
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let out_reader = std::thread::spawn(move || read_capped(&mut out, cap));
        let err_reader = std::thread::spawn(move || read_capped(&mut err, cap));
        let mut timed_out = false;
        let status = loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| Error::command(command.display(), e.to_string()))?
            {
                break status;
            }
            if options.timeout.is_some_and(|t| start.elapsed() >= t) {
                timed_out = true;
                kill_group(pgid);
                break child
                    .wait()
                    .map_err(|e| Error::command(command.display(), e.to_string()))?;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // Children left behind in the group would hold the pipes open.
        kill_group(pgid);
        let stdout = out_reader.join().unwrap();
        let stderr = err_reader.join().unwrap();
        Ok(RunOutput {
            exit_code: status.code(),
            stdout,
            stderr,
            timed_out,
            duration: start.elapsed(),
        })
    }
}

fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// Read everything, keeping the last `cap` bytes.
fn read_capped(r: &mut impl Read, cap: usize) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > cap * 2 {
                    let drop = kept.len() - cap;
                    kept.drain(..drop);
                }
            }
        }
    }
    if kept.len() > cap {
        let drop = kept.len() - cap;
        kept.drain(..drop);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// Whether a process is alive (exists and is not a zombie).
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            state != Some("Z")
        }
        Err(_) => false,
    }
}

/// Live processes whose process group is `pgid`.
pub(crate) fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        // After the command name: state, ppid, pgrp.
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            out.push(pid);
        }
    }
    out
}
