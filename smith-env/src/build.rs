//! Building a repository's Python environment: pick a spec (user file or
//! detection), create a venv in the cache, install with uv or pip, and verify
//! that pytest collects tests. A second build of an unchanged repository
//! reuses the venv.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use smith_core::{stable_hex, CommandSpec, Error, Result, RunOptions, RunOutput};

use crate::detect::{detect, PACKAGING_FILES};
use crate::process::run_command;
use crate::spec::{shell_quote, EnvSpec, SPEC_FILE_NAMES};

/// Name of the stamp file written into a finished venv.
pub const STAMP_FILE: &str = "smith-env.json";

/// Bumped when the venv layout or stamp format changes, to invalidate caches.
const CACHE_VERSION: &str = "1";

/// How to build an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvOptions {
    /// Where venvs and tools live (`venvs/`, `tools/`).
    pub cache_dir: PathBuf,
    /// `Some(true)`: uv or fail; `Some(false)`: pip only; `None`: uv when it
    /// can be found or installed into the tools venv, pip otherwise.
    pub use_uv: Option<bool>,
    /// A spec file that overrides detection (else `smith-env.toml`/`.json`
    /// in the repository root, if present).
    pub spec_file: Option<PathBuf>,
    /// A spec that overrides both detection and spec files (the install
    /// agent's result, or a caller's own).
    pub spec: Option<EnvSpec>,
    /// Run `pytest --collect-only` to verify (on by default).
    pub verify: bool,
    /// Ignore a cached venv and build again.
    pub rebuild: bool,
    /// Time limit for each install step.
    pub step_timeout: Duration,
}

impl Default for EnvOptions {
    fn default() -> Self {
        EnvOptions::new(default_cache_dir())
    }
}

impl EnvOptions {
    /// Defaults with venvs under `cache_dir`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        EnvOptions {
            cache_dir: cache_dir.into(),
            use_uv: None,
            spec_file: None,
            spec: None,
            verify: true,
            rebuild: false,
            step_timeout: Duration::from_secs(20 * 60),
        }
    }
}

/// `$SMITH_CACHE_DIR`, else `$XDG_CACHE_HOME/smith`, else `~/.cache/smith`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SMITH_CACHE_DIR") {
        return dir.into();
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("smith");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache").join("smith"),
        None => std::env::temp_dir().join("smith-cache"),
    }
}

/// One timed step of a build, for `smith env` and logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildStep {
    /// What was done (`venv`, `install: pip install -e .`, `collect`, ...).
    pub name: String,
    /// The strategy being tried.
    pub strategy: String,
    /// Wall time in seconds.
    pub secs: f64,
    /// Whether it worked.
    pub ok: bool,
    /// Output tail on failure, a summary on success.
    pub detail: String,
}

/// The tool that installs packages into the venv.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Installer {
    /// uv, at this path.
    Uv(PathBuf),
    /// The venv's own pip.
    Pip,
}

impl Installer {
    /// `uv` or `pip`.
    pub fn name(&self) -> &'static str {
        match self {
            Installer::Uv(_) => "uv",
            Installer::Pip => "pip",
        }
    }
}

/// What `pytest --collect-only` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collection {
    /// Exit code 0 with at least one test.
    pub ok: bool,
    /// Tests collected.
    pub count: usize,
    /// Files pytest could not collect.
    pub errors: Vec<String>,
    /// pytest's exit code.
    pub exit_code: Option<i32>,
    /// The last part of pytest's output.
    pub tail: String,
}

/// A built, verified Python environment for one repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// The spec that worked.
    pub spec: EnvSpec,
    /// The venv directory.
    pub venv: PathBuf,
    /// The repository (canonical path).
    pub repo: PathBuf,
    /// Who installed the packages.
    pub installer: Installer,
    /// The venv came from the cache; nothing was installed.
    pub reused: bool,
    /// Tests collected at verification (None if not verified).
    pub collected: Option<usize>,
    /// What the build did, in order.
    pub steps: Vec<BuildStep>,
}

impl Environment {
    /// The venv's `bin` directory.
    pub fn bin_dir(&self) -> PathBuf {
        self.venv.join("bin")
    }

    /// The venv's interpreter.
    pub fn python(&self) -> PathBuf {
        self.bin_dir().join("python")
    }

    /// Environment variables for a command whose tree is at `root`: the venv
    /// first on `PATH`, `VIRTUAL_ENV`, `PYTHONPATH` pointing into `root` (so a
    /// workspace copy shadows the editable install of the original),
    /// `PYTHONDONTWRITEBYTECODE=1`, then the spec's own variables.
    pub fn command_env(&self, root: &Path) -> BTreeMap<String, String> {
        python_env(&self.venv, root, &self.spec)
    }

    /// The command that runs the whole suite.
    pub fn test_command(&self) -> CommandSpec {
        CommandSpec::new("python", self.spec.test_cmd.iter().cloned())
    }

    /// Total build time in seconds.
    pub fn build_secs(&self) -> f64 {
        self.steps.iter().map(|s| s.secs).sum()
    }

    /// Run `pytest --collect-only` over the tree at `root` (the repository
    /// itself or a workspace copy).
    pub fn collect(&self, root: &Path, timeout: Duration) -> Result<Collection> {
        collect(&self.venv, root, &self.spec, timeout)
    }

    /// Open a venv built earlier (reads its stamp file).
    pub fn open(venv: &Path) -> Result<Environment> {
        let path = venv.join(STAMP_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let stamp: Stamp = serde_json::from_str(&text).map_err(|e| Error::Environment {
            path: path.clone(),
            reason: format!("bad stamp file: {e}"),
        })?;
        Ok(Environment {
            spec: stamp.spec,
            venv: venv.to_path_buf(),
            repo: stamp.repo,
            installer: stamp.installer,
            reused: true,
            collected: stamp.collected,
            steps: Vec::new(),
        })
    }
}

/// What a finished venv records about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stamp {
    key: String,
    spec_hash: String,
    spec: EnvSpec,
    repo: PathBuf,
    installer: Installer,
    collected: Option<usize>,
}

pub(crate) fn python_env(venv: &Path, root: &Path, spec: &EnvSpec) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let bin = venv.join("bin");
    let path = match std::env::var_os("PATH") {
        Some(p) => format!("{}:{}", bin.display(), p.to_string_lossy()),
        None => format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
    };
    env.insert("PATH".into(), path);
    env.insert("VIRTUAL_ENV".into(), venv.display().to_string());
    let pythonpath: Vec<String> = spec
        .pythonpath
        .iter()
        .map(|p| {
            if p == "." || p.is_empty() {
                root.display().to_string()
            } else {
                smith_core::join_rel(root, p).display().to_string()
            }
        })
        .collect();
    env.insert("PYTHONPATH".into(), pythonpath.join(":"));
    env.insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
    env.insert("PYTHONHASHSEED".into(), "0".into());
    env.insert("PIP_DISABLE_PIP_VERSION_CHECK".into(), "1".into());
    for (k, v) in &spec.env {
        env.insert(k.clone(), v.clone());
    }
    env
}

/// Build (or reuse) the environment for `repo`. See [`build_environment_with`].
pub fn build_environment(repo: &Path, options: &EnvOptions) -> Result<Environment> {
    build_environment_with(repo, options, &mut |_| {})
}

/// Build (or reuse) the environment for `repo`, reporting each step to
/// `progress` as it finishes.
///
/// Tries the user's spec file if there is one, else every detected strategy
/// in order, each in a fresh venv, until one installs and collects tests.
/// A strategy whose collection fails in only a few files is kept as a
/// fallback with those files ignored (and a note saying so).
pub fn build_environment_with(
    repo: &Path,
    options: &EnvOptions,
    progress: &mut dyn FnMut(&BuildStep),
) -> Result<Environment> {
    let repo = repo.canonicalize().map_err(|e| Error::Repo {
        path: repo.to_path_buf(),
        reason: format!("cannot open repository: {e}"),
    })?;
    // Venv scripts and install records hold absolute paths.
    let cache_dir =
        std::path::absolute(&options.cache_dir).map_err(|e| Error::io(&options.cache_dir, e))?;
    let options = &EnvOptions {
        cache_dir,
        ..options.clone()
    };
    let mut builder = Builder {
        repo: repo.clone(),
        options,
        steps: Vec::new(),
        progress,
    };
    let user_spec = match &options.spec_file {
        Some(file) => Some((file.clone(), EnvSpec::from_file(file)?)),
        None => SPEC_FILE_NAMES
            .iter()
            .map(|n| repo.join(n))
            .find(|p| p.is_file())
            .map(|p| EnvSpec::from_file(&p).map(|s| (p, s)))
            .transpose()?,
    };
    let candidates = match (&options.spec, &user_spec) {
        (Some(spec), _) => vec![spec.clone()],
        (None, Some((_, spec))) => vec![spec.clone()],
        (None, None) => detect(&repo)?,
    };
    let installer = builder.installer()?;
    let mut key = cache_key(
        &repo,
        user_spec.as_ref().map(|(p, _)| p.as_path()),
        &installer,
    );
    if let Some(spec) = &options.spec {
        let json = serde_json::to_string(spec).unwrap_or_default();
        key = stable_hex(&[key.as_bytes(), json.as_bytes()]);
    }
    let venvs = options.cache_dir.join("venvs");
    std::fs::create_dir_all(&venvs).map_err(|e| Error::io(&venvs, e))?;
    let name = repo
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repo".into());
    let venv = venvs.join(format!("{name}-{}", &key[..16]));
    let lock_path = venvs.join(format!("{name}-{}.lock", &key[..16]));
    let lock = std::fs::File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
    lock.lock().map_err(|e| Error::io(&lock_path, e))?;

    if !options.rebuild {
        if let Ok(mut env) = Environment::open(&venv) {
            if env.python().exists() && stamp_key(&venv).as_deref() == Some(key.as_str()) {
                builder.record(
                    "reuse",
                    &env.spec.strategy.clone(),
                    Instant::now(),
                    true,
                    venv.display().to_string(),
                );
                env.steps = builder.steps;
                return Ok(env);
            }
        }
    }

    let mut failures = Vec::new();
    let mut partial: Option<(EnvSpec, Collection)> = None;
    for spec in &candidates {
        match builder.try_spec(&venv, spec, &installer)? {
            Tried::Works(collection) => {
                return builder.finish(venv, spec.clone(), installer, collection, &key);
            }
            Tried::Partial(fixed, collection) => {
                failures.push(format!(
                    "{}: {} files fail to collect",
                    spec.strategy,
                    collection.errors.len()
                ));
                if partial
                    .as_ref()
                    .is_none_or(|(_, c)| collection.count > c.count)
                {
                    partial = Some((fixed, collection));
                }
            }
            Tried::Failed(reason) => failures.push(format!("{}: {reason}", spec.strategy)),
        }
    }
    if let Some((spec, _)) = partial {
        if let Tried::Works(collection) = builder.try_spec(&venv, &spec, &installer)? {
            return builder.finish(venv, spec, installer, collection, &key);
        }
    }
    // A half-built venv is worth nothing and would only fill the cache.
    let _ = std::fs::remove_dir_all(&venv);
    Err(Error::Environment {
        path: repo,
        reason: format!("no install strategy worked:\n{}", failures.join("\n")),
    })
}

enum Tried {
    Works(Collection),
    /// Collection works once these files are ignored (the spec has the ignores).
    Partial(EnvSpec, Collection),
    Failed(String),
}

struct Builder<'a> {
    repo: PathBuf,
    options: &'a EnvOptions,
    steps: Vec<BuildStep>,
    progress: &'a mut dyn FnMut(&BuildStep),
}

impl Builder<'_> {
    fn record(&mut self, name: &str, strategy: &str, start: Instant, ok: bool, detail: String) {
        let step = BuildStep {
            name: name.to_string(),
            strategy: strategy.to_string(),
            secs: start.elapsed().as_secs_f64(),
            ok,
            detail,
        };
        tracing::debug!(
            step = %step.name,
            strategy = %step.strategy,
            secs = step.secs,
            ok = step.ok,
            "environment build step"
        );
        (self.progress)(&step);
        self.steps.push(step);
    }

    fn installer(&mut self) -> Result<Installer> {
        if self.options.use_uv == Some(false) {
            return Ok(Installer::Pip);
        }
        let start = Instant::now();
        match find_or_install_uv(&self.options.cache_dir) {
            Ok(uv) => {
                self.record("uv", "", start, true, uv.display().to_string());
                Ok(Installer::Uv(uv))
            }
            Err(e) if self.options.use_uv == Some(true) => Err(e),
            Err(e) => {
                self.record("uv", "", start, false, format!("{e}; using pip"));
                Ok(Installer::Pip)
            }
        }
    }

    fn try_spec(&mut self, venv: &Path, spec: &EnvSpec, installer: &Installer) -> Result<Tried> {
        let strategy = spec.strategy.as_str();
        // A fresh venv per attempt: leftovers of a failed strategy must not
        // make a later one look like it works.
        if venv.exists() {
            std::fs::remove_dir_all(venv).map_err(|e| Error::io(venv, e))?;
        }
        let start = Instant::now();
        let python = spec.python_program();
        let create = create_venv_command(installer, &python, venv);
        let out = run_command(create, "create venv", &self.run_options())?;
        self.record("venv", strategy, start, out.success(), tail(&out, 2000));
        if !out.success() {
            return Ok(Tried::Failed(format!(
                "cannot create a venv with {python}: {}",
                tail(&out, 500)
            )));
        }
        let mut lines = spec.install.clone();
        lines.push(test_deps_line(spec));
        for line in &lines {
            let start = Instant::now();
            let shell_line = translate_pip(line, installer);
            let mut cmd = Command::new("sh");
            cmd.args(["-c", &shell_line]).current_dir(&self.repo);
            cmd.envs(python_env(venv, &self.repo, spec));
            let out = run_command(cmd, &shell_line, &self.run_options())?;
            self.record(
                &format!("install: {line}"),
                strategy,
                start,
                out.success(),
                tail(&out, 2000),
            );
            if !out.success() {
                return Ok(Tried::Failed(format!(
                    "`{line}` failed: {}",
                    tail(&out, 800)
                )));
            }
        }
        if !self.options.verify {
            return Ok(Tried::Works(Collection::default()));
        }
        let start = Instant::now();
        let collection = collect(venv, &self.repo, spec, self.options.step_timeout)?;
        self.record(
            "collect",
            strategy,
            start,
            collection.ok,
            format!("{} tests; {}", collection.count, collection.tail),
        );
        if collection.ok {
            return Ok(Tried::Works(collection));
        }
        let few_errors = !collection.errors.is_empty() && collection.errors.len() <= 5;
        if collection.count > 0 && few_errors {
            let mut fixed = spec.clone();
            let at = fixed.test_cmd.len().min(4);
            for (i, file) in collection.errors.iter().enumerate() {
                fixed.test_cmd.insert(at + i, format!("--ignore={file}"));
            }
            fixed.notes.push(format!(
                "ignored files that fail to collect: {}",
                collection.errors.join(", ")
            ));
            let start = Instant::now();
            let again = collect(venv, &self.repo, &fixed, self.options.step_timeout)?;
            self.record(
                "collect (with ignores)",
                strategy,
                start,
                again.ok,
                format!("{} tests", again.count),
            );
            if again.ok {
                return Ok(Tried::Partial(fixed, again));
            }
        }
        Ok(Tried::Failed(format!(
            "pytest collection failed (exit {:?}, {} tests): {}",
            collection.exit_code,
            collection.count,
            last_chars(&collection.tail, 800)
        )))
    }

    fn finish(
        &mut self,
        venv: PathBuf,
        spec: EnvSpec,
        installer: Installer,
        collection: Collection,
        key: &str,
    ) -> Result<Environment> {
        let collected = self.options.verify.then_some(collection.count);
        let stamp = Stamp {
            key: key.to_string(),
            spec_hash: spec.hash(),
            spec: spec.clone(),
            repo: self.repo.clone(),
            installer: installer.clone(),
            collected,
        };
        let path = venv.join(STAMP_FILE);
        let json = serde_json::to_string_pretty(&stamp).unwrap_or_default();
        std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
        Ok(Environment {
            spec,
            venv,
            repo: self.repo.clone(),
            installer,
            reused: false,
            collected,
            steps: std::mem::take(&mut self.steps),
        })
    }

    fn run_options(&self) -> RunOptions {
        RunOptions {
            timeout: Some(self.options.step_timeout),
            max_output: 256 << 10,
            test_timeout: None,
        }
    }
}

fn stamp_key(venv: &Path) -> Option<String> {
    let text = std::fs::read_to_string(venv.join(STAMP_FILE)).ok()?;
    serde_json::from_str::<Stamp>(&text).ok().map(|s| s.key)
}

/// The cache key: repository path, packaging files' contents, the user spec
/// file and the installer.
fn cache_key(repo: &Path, spec_file: Option<&Path>, installer: &Installer) -> String {
    let mut parts: Vec<Vec<u8>> = vec![
        CACHE_VERSION.as_bytes().to_vec(),
        repo.as_os_str().as_encoded_bytes().to_vec(),
        installer.name().as_bytes().to_vec(),
    ];
    let mut files: Vec<PathBuf> = PACKAGING_FILES.iter().map(|f| repo.join(f)).collect();
    for dir in [repo.to_path_buf(), repo.join("requirements")] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut reqs: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name().is_some_and(|n| {
                        n.to_string_lossy().starts_with("requirements")
                            || dir.ends_with("requirements")
                    })
                })
                .collect();
            reqs.sort();
            files.extend(reqs);
        }
    }
    files.extend(spec_file.map(Path::to_path_buf));
    for file in files {
        parts.push(file.as_os_str().as_encoded_bytes().to_vec());
        parts.push(std::fs::read(&file).unwrap_or_default());
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    stable_hex(&refs)
}

/// The command that creates an empty venv at `venv`.
pub(crate) fn create_venv_command(installer: &Installer, python: &str, venv: &Path) -> Command {
    match installer {
        Installer::Uv(uv) => {
            let mut c = Command::new(uv);
            c.args(["venv", "--quiet", "--python"])
                .arg(python)
                .arg(venv);
            c
        }
        Installer::Pip => {
            let mut c = Command::new(python);
            c.args(["-m", "venv"]).arg(venv);
            c
        }
    }
}

/// `pip install <test deps>`.
pub(crate) fn test_deps_line(spec: &EnvSpec) -> String {
    let deps: Vec<String> = spec.test_deps.iter().map(|d| shell_quote(d)).collect();
    format!("pip install {}", deps.join(" "))
}

/// Rewrite `pip ...` / `python -m pip ...` to `uv pip ...` when uv installs.
pub(crate) fn translate_pip(line: &str, installer: &Installer) -> String {
    let Installer::Uv(uv) = installer else {
        return line.to_string();
    };
    let trimmed = line.trim_start();
    for prefix in ["pip ", "python -m pip ", "python3 -m pip "] {
        if let Some(rest) = trimmed.strip_prefix(prefix) {
            return format!("{} pip {rest}", shell_quote(&uv.display().to_string()));
        }
    }
    line.to_string()
}

/// uv from `PATH`, else from the tools venv, else installed there with pip.
pub fn find_or_install_uv(cache_dir: &Path) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let uv = dir.join("uv");
            if uv.is_file() {
                return Ok(uv);
            }
        }
    }
    let tools = cache_dir.join("tools");
    let uv = tools.join("bin").join("uv");
    if uv.is_file() {
        return Ok(uv);
    }
    std::fs::create_dir_all(cache_dir).map_err(|e| Error::io(cache_dir, e))?;
    let lock_path = cache_dir.join("tools.lock");
    let lock = std::fs::File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
    lock.lock().map_err(|e| Error::io(&lock_path, e))?;
    if uv.is_file() {
        return Ok(uv);
    }
    let options = RunOptions {
        timeout: Some(Duration::from_secs(600)),
        max_output: 64 << 10,
        test_timeout: None,
    };
    let mut venv = Command::new("python3");
    venv.args(["-m", "venv"]).arg(&tools);
    let out = run_command(venv, "python3 -m venv tools", &options)?;
    if !out.success() {
        return Err(Error::command("python3 -m venv", tail(&out, 500)));
    }
    let mut pip = Command::new(tools.join("bin").join("pip"));
    pip.args(["install", "--quiet", "--disable-pip-version-check", "uv"]);
    let out = run_command(pip, "pip install uv", &options)?;
    if !out.success() || !uv.is_file() {
        return Err(Error::command("pip install uv", tail(&out, 500)));
    }
    Ok(uv)
}

/// Run `python <test_cmd> --collect-only -q` in `root`.
pub(crate) fn collect(
    venv: &Path,
    root: &Path,
    spec: &EnvSpec,
    timeout: Duration,
) -> Result<Collection> {
    let mut cmd = Command::new(venv.join("bin").join("python"));
    cmd.args(&spec.test_cmd)
        .args(["--collect-only", "-q"])
        .current_dir(root)
        .envs(python_env(venv, root, spec));
    let out = run_command(
        cmd,
        "pytest --collect-only",
        &RunOptions {
            timeout: Some(timeout),
            max_output: 1 << 20,
            test_timeout: None,
        },
    )?;
    Ok(parse_collection(&out))
}

/// Read pytest's `--collect-only -q` output.
pub(crate) fn parse_collection(out: &RunOutput) -> Collection {
    let text = format!("{}\n{}", out.stdout, out.stderr);
    let mut count = 0;
    let mut errors = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.contains(" collected") || line.starts_with("collected ") {
            if let Some(n) = line
                .split(|c: char| !c.is_ascii_digit())
                .find(|t| !t.is_empty())
                .and_then(|t| t.parse().ok())
            {
                count = n;
            }
        }
        if let Some(rest) = line.strip_prefix("ERROR ") {
            let file = rest.split(" - ").next().unwrap_or(rest).trim();
            let file = file.split("::").next().unwrap_or(file);
            if file.ends_with(".py") && !errors.iter().any(|e| e == file) {
                errors.push(file.to_string());
            }
        }
    }
    if count == 0 {
        // Older pytest prints only the node ids.
        count = text.lines().filter(|l| l.contains("::")).count();
    }
    Collection {
        ok: out.exit_code == Some(0) && count > 0,
        count,
        errors,
        exit_code: out.exit_code,
        tail: last_chars(&text, 1500),
    }
}

pub(crate) fn tail(out: &RunOutput, max: usize) -> String {
    last_chars(&format!("{}{}", out.stdout, out.stderr), max)
}

pub(crate) fn last_chars(s: &str, max: usize) -> String {
    let s = s.trim_end();
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = s.len() - max;
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    s[cut..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: i32, stdout: &str) -> RunOutput {
        RunOutput {
            exit_code: Some(code),
            stdout: stdout.into(),
            ..Default::default()
        }
    }

    #[test]
    fn collection_counts_and_error_files() {
        let ok = parse_collection(&out(
            0,
            "tests/test_a.py::test_x\ntests/test_a.py::test_y\n\n2 tests collected in 0.01s\n",
        ));
        assert!(ok.ok);
        assert_eq!(ok.count, 2);
        let bad = parse_collection(&out(
            2,
            "tests/test_a.py::test_x\n=== short test summary info ===\nERROR tests/test_bench.py - ModuleNotFoundError: No module named 'pytest_benchmark'\n!!! Interrupted: 1 error during collection !!!\n1 test collected, 1 error in 0.1s\n",
        ));
        assert!(!bad.ok);
        assert_eq!(bad.count, 1);
        assert_eq!(bad.errors, ["tests/test_bench.py"]);
        let none = parse_collection(&out(5, "no tests collected in 0.01s\n"));
        assert!(!none.ok);
        assert_eq!(none.count, 0);
    }

    #[test]
    fn pip_lines_run_through_uv_when_uv_installs() {
        let uv = Installer::Uv(PathBuf::from("/opt/uv"));
        assert_eq!(
            translate_pip("pip install -e .", &uv),
            "/opt/uv pip install -e ."
        );
        assert_eq!(
            translate_pip("python -m pip install x", &uv),
            "/opt/uv pip install x"
        );
        assert_eq!(translate_pip("make deps", &uv), "make deps");
        assert_eq!(
            translate_pip("pip install -e .", &Installer::Pip),
            "pip install -e ."
        );
    }

    #[test]
    fn command_env_points_pythonpath_into_the_given_root() {
        let mut spec = EnvSpec {
            pythonpath: vec!["src".into(), ".".into()],
            ..EnvSpec::default()
        };
        spec.env.insert("TZ".into(), "UTC".into());
        let env = python_env(Path::new("/v"), Path::new("/ws"), &spec);
        assert_eq!(env["PYTHONPATH"], "/ws/src:/ws");
        assert!(env["PATH"].starts_with("/v/bin:"));
        assert_eq!(env["VIRTUAL_ENV"], "/v");
        assert_eq!(env["PYTHONDONTWRITEBYTECODE"], "1");
        assert_eq!(env["TZ"], "UTC");
    }

    #[test]
    fn cache_key_follows_packaging_files_not_sources() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pyproject.toml"), "[project]\nname='a'\n").unwrap();
        std::fs::write(dir.path().join("a.py"), "x = 1\n").unwrap();
        let k1 = cache_key(dir.path(), None, &Installer::Pip);
        std::fs::write(dir.path().join("a.py"), "x = 2\n").unwrap();
        assert_eq!(k1, cache_key(dir.path(), None, &Installer::Pip));
        std::fs::write(dir.path().join("pyproject.toml"), "[project]\nname='b'\n").unwrap();
        assert_ne!(k1, cache_key(dir.path(), None, &Installer::Pip));
        std::fs::write(dir.path().join("requirements-test.txt"), "x\n").unwrap();
        let k2 = cache_key(dir.path(), None, &Installer::Pip);
        std::fs::write(dir.path().join("requirements-test.txt"), "y\n").unwrap();
        assert_ne!(k2, cache_key(dir.path(), None, &Installer::Pip));
        assert_ne!(
            k2,
            cache_key(dir.path(), None, &Installer::Uv("/uv".into()))
        );
    }
}
