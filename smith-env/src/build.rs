//! Building a repository's Python environment: pick a spec (user file or
//! detection), create a venv in the cache, install with uv or pip from a
//! scratch copy of the repository, and verify in a workspace of the chosen
//! sandbox that pytest collects tests (trying an older pytest when the
//! project's plugins need one). A second build of an unchanged repository
//! reuses the venv. Nothing is ever written into the repository itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use smith_core::{
    stable_hex, CommandSpec, Error, Result, RunOptions, RunOutput, Sandbox, Workspace,
};

pub(crate) use crate::collect::Collection;
use crate::detect::{detect, PACKAGING_FILES};
use crate::process::run_command;
use crate::spec::{requirement_name, set_requirement, shell_quote, EnvSpec, SPEC_FILE_NAMES};
use crate::{BwrapOptions, BwrapSandbox, LocalSandbox};

/// Name of the stamp file written into a finished venv.
pub const STAMP_FILE: &str = "smith-env.json";

/// Bumped when the venv layout or stamp format changes, to invalidate caches.
const CACHE_VERSION: &str = "3";

/// Where the environment stage runs repository code: the collection check
/// imports the project's conftests and test modules. Installing runs on the
/// host (it needs the network); this never does, unless it is `Local`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvSandbox {
    /// A temporary copy on the host, no isolation ([`LocalSandbox`]).
    #[default]
    Local,
    /// Bubblewrap with these options ([`BwrapSandbox`]): read-only system,
    /// no network.
    Bwrap(BwrapOptions),
}

impl EnvSandbox {
    /// A sandbox of this kind over `env`.
    pub fn sandbox(&self, env: &Environment) -> Result<Box<dyn Sandbox>> {
        Ok(match self {
            EnvSandbox::Local => Box::new(LocalSandbox::new(env)?),
            EnvSandbox::Bwrap(options) => {
                Box::new(BwrapSandbox::with_options(env, options.clone())?)
            }
        })
    }
}

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
    /// The sandbox the collection check runs in.
    pub sandbox: EnvSandbox,
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
            sandbox: EnvSandbox::Local,
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
    /// The version of pytest installed in the venv, the runner every test
    /// run uses (None if it could not be read).
    #[serde(default)]
    pub pytest_version: Option<String>,
    /// Files the install steps generated inside the repository's Python
    /// packages (a version module written by setuptools-scm or hatch-vcs,
    /// an extension built in place), relative to the repository root. They
    /// are kept in the venv's `smith-generated` directory and laid over every
    /// workspace copy, as they would be in a repository installed in place.
    #[serde(default)]
    pub generated: Vec<String>,
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

    /// Run the collection check in `workspace` (a workspace of any sandbox
    /// over this environment).
    pub fn collect_in(
        &self,
        workspace: &mut dyn Workspace,
        timeout: Duration,
    ) -> Result<Collection> {
        crate::collect::collect_in(workspace, &self.spec.test_cmd, timeout)
    }

    /// Where the [`generated`](Environment::generated) files are kept.
    pub fn generated_dir(&self) -> PathBuf {
        self.venv.join(GENERATED_DIR)
    }

    /// Lay the generated files over a copy of the repository at `root`.
    pub fn overlay_generated(&self, root: &Path) -> Result<()> {
        let from = self.generated_dir();
        for rel in &self.generated {
            let dst = root.join(rel);
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            let src = from.join(rel);
            std::fs::copy(&src, &dst).map_err(|e| Error::io(&src, e))?;
        }
        Ok(())
    }

    /// Open a venv built earlier (reads its stamp file).
    pub fn open(venv: &Path) -> Result<Environment> {
        let path = venv.join(STAMP_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let stamp: Stamp = serde_json::from_str(&text)
            .map_err(|e| Error::environment_source(path.clone(), "bad stamp file", e))?;
        Ok(Environment {
            spec: stamp.spec,
            venv: venv.to_path_buf(),
            repo: stamp.repo,
            installer: stamp.installer,
            reused: true,
            collected: stamp.collected,
            pytest_version: stamp.pytest_version,
            generated: stamp.generated,
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
    #[serde(default)]
    pytest_version: Option<String>,
    #[serde(default)]
    generated: Vec<String>,
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
    let repo = repo
        .canonicalize()
        .map_err(|e| Error::repo_source(repo, "cannot open repository", e))?;
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
        generated: Vec::new(),
        steps: Vec::new(),
        progress,
    };
    let user_spec = user_spec(&repo, options)?;
    let candidates = match (&options.spec, &user_spec) {
        (Some(spec), _) => vec![spec.clone()],
        (None, Some((_, spec))) => vec![spec.clone()],
        (None, None) => detect(&repo)?,
    };
    let installer = builder.installer()?;
    let key = venv_key(
        &repo,
        user_spec.as_ref().map(|(p, _)| p.as_path()),
        &installer,
        options.spec.as_ref(),
    );
    // Held until the venv is built or given up: concurrent builds of one
    // venv wait.
    let (venv, _lock) = locked_venv(&options.cache_dir, &repo, &key)?;

    if !options.rebuild {
        if let Some(env) = builder.reuse(&venv, &key)? {
            return Ok(env);
        }
    }

    match builder.first_working(&venv, &candidates, &installer)? {
        Ok((spec, collection)) => builder.finish(venv, spec, installer, collection, &key),
        Err(failures) => {
            // A half-built venv is worth nothing and would only fill the cache.
            let _ = std::fs::remove_dir_all(&venv);
            Err(Error::environment(
                repo,
                format!("no install strategy worked:\n{}", failures.join("\n")),
            ))
        }
    }
}

/// The user's spec: the file [`EnvOptions::spec_file`] names, else one of
/// [`SPEC_FILE_NAMES`] in the repository, with its path.
fn user_spec(repo: &Path, options: &EnvOptions) -> Result<Option<(PathBuf, EnvSpec)>> {
    Ok(match &options.spec_file {
        Some(file) => Some((file.clone(), EnvSpec::from_file(file)?)),
        None => SPEC_FILE_NAMES
            .iter()
            .map(|n| repo.join(n))
            .find(|p| p.is_file())
            .map(|p| EnvSpec::from_file(&p).map(|s| (p, s)))
            .transpose()?,
    })
}

/// The [`cache_key`] of the venv, with the spec given in
/// [`EnvOptions::spec`] (if any) hashed in.
fn venv_key(
    repo: &Path,
    spec_file: Option<&Path>,
    installer: &Installer,
    spec: Option<&EnvSpec>,
) -> String {
    let key = cache_key(repo, spec_file, installer);
    match spec {
        Some(spec) => {
            let json = serde_json::to_string(spec).unwrap_or_default();
            stable_hex(&[key.as_bytes(), json.as_bytes()])
        }
        None => key,
    }
}

/// The cached venv of `repo` with `key` under `cache_dir`, and its lock
/// file, locked.
fn locked_venv(cache_dir: &Path, repo: &Path, key: &str) -> Result<(PathBuf, std::fs::File)> {
    let venvs = cache_dir.join("venvs");
    std::fs::create_dir_all(&venvs).map_err(|e| Error::io(&venvs, e))?;
    let name = repo
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repo".into());
    let venv = venvs.join(format!("{name}-{}", &key[..16]));
    let lock_path = venvs.join(format!("{name}-{}.lock", &key[..16]));
    let lock = std::fs::File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
    lock.lock().map_err(|e| Error::io(&lock_path, e))?;
    Ok((venv, lock))
}

/// What a failed collection check says: pytest's exit, the tests it
/// found, and the end of its output.
fn collection_failure(collection: &Collection) -> String {
    format!(
        "pytest collection failed (exit {:?}, {} tests): {}",
        collection.exit_code,
        collection.count,
        last_chars(&collection.tail, 800)
    )
}

enum Tried {
    /// The spec as it worked (with the runner it settled on).
    Works(EnvSpec, Collection),
    /// Collection works once these files are ignored (the spec has the ignores).
    Partial(EnvSpec, Collection),
    Failed(String),
}

struct Builder<'a> {
    repo: PathBuf,
    options: &'a EnvOptions,
    /// What the current attempt's install steps generated in the tree.
    generated: Vec<String>,
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

    /// The environment cached at `venv` when it was built with `key`
    /// (and, with [`EnvOptions::verify`], this tree's tests collect in it).
    fn reuse(&mut self, venv: &Path, key: &str) -> Result<Option<Environment>> {
        let Ok(mut env) = Environment::open(venv) else {
            return Ok(None);
        };
        if !(env.python().exists() && stamp_key(venv).as_deref() == Some(key)) {
            return Ok(None);
        }
        self.record(
            "reuse",
            &env.spec.strategy.clone(),
            Instant::now(),
            true,
            venv.display().to_string(),
        );
        // The venv is keyed by the packaging files' content: it may
        // have been built for another copy of the repository
        // (another run's snapshot) or another tree with the same
        // packaging. This tree's tests must collect in it too.
        env.repo = self.repo.clone();
        // Venvs built before smith compiled them.
        compile_bytecode(venv);
        if self.options.verify {
            self.generated = env.generated.clone();
            let start = Instant::now();
            let collection = self.collect(venv, &env.spec, &env.installer)?;
            self.record_collection("collect", &env.spec, start, &collection);
            if !collection.ok {
                return Err(Error::environment(
                    self.repo.clone(),
                    format!(
                        "in the cached environment {}: {}",
                        venv.display(),
                        collection_failure(&collection)
                    ),
                ));
            }
            env.collected = Some(collection.count);
        }
        env.steps = std::mem::take(&mut self.steps);
        Ok(Some(env))
    }

    /// The first of `candidates` that installs and collects in `venv`, as
    /// it worked; else the one whose tests collect best once the files that
    /// fail are ignored, if it works so; else why each failed.
    fn first_working(
        &mut self,
        venv: &Path,
        candidates: &[EnvSpec],
        installer: &Installer,
    ) -> Result<std::result::Result<(EnvSpec, Collection), Vec<String>>> {
        let mut failures = Vec::new();
        let mut partial: Option<(EnvSpec, Collection)> = None;
        for spec in candidates {
            match self.try_spec(venv, spec, installer)? {
                Tried::Works(spec, collection) => return Ok(Ok((spec, collection))),
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
            if let Tried::Works(spec, collection) = self.try_spec(venv, &spec, installer)? {
                return Ok(Ok((spec, collection)));
            }
        }
        Ok(Err(failures))
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
        // Install steps run in a scratch copy, removed before the check, so
        // that the check sees what every later run sees: the venv and a
        // workspace copy of the repository, nothing the build left behind.
        let tree = self.scratch_tree(strategy)?;
        let mut spec = spec.clone();
        for line in &spec.install {
            let start = Instant::now();
            let out = self.install_line(venv, tree.path(), &spec, line, installer)?;
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
        if let Some(failure) = self.install_test_deps(venv, tree.path(), &mut spec, installer)? {
            return Ok(failure);
        }
        let start = Instant::now();
        let kept = venv.join(GENERATED_DIR);
        self.generated = keep_generated(&self.repo, tree.path(), &kept)?;
        if !self.generated.is_empty() {
            self.record(
                "generated files",
                strategy,
                start,
                true,
                self.generated.join(", "),
            );
        }
        drop(tree);
        if !self.options.verify {
            return Ok(Tried::Works(spec, Collection::default()));
        }
        let collection = self.collect_with_runner(venv, &mut spec, installer)?;
        if collection.ok {
            return Ok(Tried::Works(spec, collection));
        }
        let few_errors = !collection.errors.is_empty() && collection.errors.len() <= 5;
        if collection.count > 0 && few_errors {
            if let Some(partial) = self.ignoring_failures(venv, &spec, &collection, installer)? {
                return Ok(partial);
            }
        }
        Ok(Tried::Failed(collection_failure(&collection)))
    }

    /// A scratch copy of the repository to run install steps in: under the
    /// cache directory, unless that is inside the repository (the copy
    /// would copy itself).
    fn scratch_tree(&mut self, strategy: &str) -> Result<BuildTree> {
        let start = Instant::now();
        let cache = self.options.cache_dir.canonicalize();
        let scratch = if cache.is_ok_and(|c| c.starts_with(&self.repo)) {
            std::env::temp_dir()
        } else {
            self.options.cache_dir.join("build")
        };
        let tree = BuildTree::new(&self.repo, &scratch)?;
        self.record(
            "copy",
            strategy,
            start,
            true,
            format!(
                "{}{}",
                tree.path().display(),
                if tree.git { " (with git history)" } else { "" }
            ),
        );
        Ok(tree)
    }

    /// Install `spec`'s test dependencies from `tree`; when a declared
    /// pytest does not install, the newest one instead (noted in `spec`).
    /// Returns the failure, if they do not install.
    fn install_test_deps(
        &mut self,
        venv: &Path,
        tree: &Path,
        spec: &mut EnvSpec,
        installer: &Installer,
    ) -> Result<Option<Tried>> {
        let strategy = spec.strategy.clone();
        let mut line = test_deps_line(spec);
        loop {
            let start = Instant::now();
            let out = self.install_line(venv, tree, spec, &line, installer)?;
            self.record(
                &format!("install: {line}"),
                &strategy,
                start,
                out.success(),
                tail(&out, 2000),
            );
            if out.success() {
                return Ok(None);
            }
            // A declared pytest too old for this Python: the newest it is.
            let pinned = spec
                .test_deps
                .iter()
                .find(|d| requirement_name(d) == "pytest" && d.as_str() != "pytest")
                .cloned();
            let Some(pinned) = pinned else {
                return Ok(Some(Tried::Failed(format!(
                    "`{line}` failed: {}",
                    tail(&out, 800)
                ))));
            };
            spec.notes.push(format!(
                "the declared `{pinned}` does not install here; using the newest pytest"
            ));
            set_requirement(&mut spec.test_deps, "pytest");
            line = test_deps_line(spec);
        }
    }

    /// `spec` with the files that fail to collect in `collection` ignored,
    /// when the tests then collect.
    fn ignoring_failures(
        &mut self,
        venv: &Path,
        spec: &EnvSpec,
        collection: &Collection,
        installer: &Installer,
    ) -> Result<Option<Tried>> {
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
        let again = self.collect(venv, &fixed, installer)?;
        self.record(
            "collect (with ignores)",
            &fixed.strategy,
            start,
            again.ok,
            format!("{} tests", again.count),
        );
        Ok(again.ok.then_some(Tried::Partial(fixed, again)))
    }

    /// Run one install line from `tree` with the venv first on `PATH`.
    fn install_line(
        &self,
        venv: &Path,
        tree: &Path,
        spec: &EnvSpec,
        line: &str,
        installer: &Installer,
    ) -> Result<RunOutput> {
        let shell_line = translate_pip(line, installer);
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &shell_line]).current_dir(tree);
        cmd.envs(python_env(venv, tree, spec));
        run_command(cmd, &shell_line, &self.run_options())
    }

    /// The collection check, and when it fails on hooks or deprecations
    /// the installed pytest no longer has, the same check under older
    /// pytest releases (one major version at a time, twice at most). The
    /// spec's pytest requirement follows the release that worked.
    fn collect_with_runner(
        &mut self,
        venv: &Path,
        spec: &mut EnvSpec,
        installer: &Installer,
    ) -> Result<Collection> {
        let start = Instant::now();
        let mut collection = self.collect(venv, spec, installer)?;
        self.record_collection("collect", spec, start, &collection);
        for _ in 0..2 {
            if !collection.fails_on_runner_version() {
                break;
            }
            let Some(major) = installed_version(venv, "pytest").and_then(|v| major_version(&v))
            else {
                break;
            };
            if major <= 6 {
                break;
            }
            let requirement = format!("pytest<{major}");
            let line = format!("pip install {}", shell_quote(&requirement));
            let start = Instant::now();
            let out = self.install_line(venv, venv, spec, &line, installer)?;
            self.record(
                &format!("runner: {line}"),
                &spec.strategy,
                start,
                out.success(),
                tail(&out, 2000),
            );
            if !out.success() {
                break;
            }
            spec.notes.push(format!(
                "collection fails under pytest {major}: {}; using {requirement}",
                first_line_with(
                    &collection.tail,
                    &[
                        "can not be found in the hookspec",
                        "PluginValidationError",
                        "unknown hook",
                        "PytestRemovedIn",
                    ]
                )
            ));
            set_requirement(&mut spec.test_deps, &requirement);
            let start = Instant::now();
            collection = self.collect(venv, spec, installer)?;
            self.record_collection(
                &format!("collect ({requirement})"),
                spec,
                start,
                &collection,
            );
        }
        Ok(collection)
    }

    fn record_collection(
        &mut self,
        name: &str,
        spec: &EnvSpec,
        start: Instant,
        collection: &Collection,
    ) {
        let runner = collection
            .pytest_version
            .as_deref()
            .map(|v| format!(" (pytest {v})"))
            .unwrap_or_default();
        self.record(
            name,
            &spec.strategy,
            start,
            collection.ok,
            format!("{} tests{runner}; {}", collection.count, collection.tail),
        );
    }

    /// The collection check in a new workspace of the chosen sandbox.
    fn collect(&self, venv: &Path, spec: &EnvSpec, installer: &Installer) -> Result<Collection> {
        let env = Environment {
            spec: spec.clone(),
            venv: venv.to_path_buf(),
            repo: self.repo.clone(),
            installer: installer.clone(),
            reused: false,
            collected: None,
            pytest_version: None,
            generated: self.generated.clone(),
            steps: Vec::new(),
        };
        let sandbox = self.options.sandbox.sandbox(&env)?;
        let mut workspace = sandbox.workspace()?;
        env.collect_in(workspace.as_mut(), self.options.step_timeout)
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
        let pytest_version = collection
            .pytest_version
            .or_else(|| installed_version(&venv, "pytest"));
        let stamp = Stamp {
            key: key.to_string(),
            spec_hash: spec.hash(),
            spec: spec.clone(),
            repo: self.repo.clone(),
            installer: installer.clone(),
            collected,
            pytest_version: pytest_version.clone(),
            generated: self.generated.clone(),
        };
        compile_bytecode(&venv);
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
            pytest_version,
            generated: std::mem::take(&mut self.generated),
            steps: std::mem::take(&mut self.steps),
        })
    }

    fn run_options(&self) -> RunOptions {
        RunOptions {
            timeout: Some(self.options.step_timeout),
            max_output: 256 << 10,
            test_timeout: None,
            ..RunOptions::default()
        }
    }
}

/// The directory of a venv that holds the files its install generated in
/// the repository's packages.
pub(crate) const GENERATED_DIR: &str = "smith-generated";

/// Files an install wrote into `tree` (a scratch copy of `repo`) that the
/// repository lacks, inside directories of the repository that hold Python
/// modules: what an in-place install would leave for tests to import (a
/// version module, an extension built in place). Build output (`build/`,
/// `dist/`, `*.egg-info`, caches, hidden directories) and compiler
/// intermediates are not kept. The files are copied under `into`; returns
/// their paths relative to the root, sorted.
fn keep_generated(repo: &Path, tree: &Path, into: &Path) -> Result<Vec<String>> {
    const SKIPPED_EXTENSIONS: &[&str] = &["c", "cpp", "cxx", "h", "o", "obj", "pyc", "html"];
    fn holds_python(dir: &Path) -> bool {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .filter_map(|e| e.ok())
                .any(|e| e.path().extension().is_some_and(|x| x == "py"))
        })
    }
    fn walk(repo: &Path, tree: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let dir = tree.join(rel);
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name();
            let text = name.to_string_lossy();
            let path = rel.join(&name);
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                let skipped = text.starts_with('.')
                    || text.ends_with(".egg-info")
                    || ["build", "dist", "__pycache__", "node_modules"].contains(&text.as_ref())
                    || crate::tree::EXCLUDED_DIRS.contains(&text.as_ref());
                // Only directories the repository has: a new directory is
                // build output, not a package of the project.
                if !skipped && repo.join(&path).is_dir() {
                    walk(repo, tree, &path, out)?;
                }
            } else if kind.is_file()
                && std::fs::symlink_metadata(repo.join(&path)).is_err()
                && !Path::new(&name)
                    .extension()
                    .is_some_and(|x| SKIPPED_EXTENSIONS.iter().any(|s| x == *s))
                && holds_python(&repo.join(rel))
            {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    walk(repo, tree, Path::new(""), &mut found)?;
    found.sort();
    if into.exists() {
        std::fs::remove_dir_all(into).map_err(|e| Error::io(into, e))?;
    }
    let mut kept = Vec::new();
    for rel in found {
        let dst = into.join(&rel);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let src = tree.join(&rel);
        std::fs::copy(&src, &dst).map_err(|e| Error::io(&src, e))?;
        kept.push(rel.to_string_lossy().into_owned());
    }
    Ok(kept)
}

/// A scratch copy of the repository that install steps run in, removed on
/// drop. Build backends write into the tree they install from (egg-info,
/// `build/`, `.pdm-build/`, in-place extensions), and that tree must never
/// be the user's. A git repository's history comes along read-only
/// (`git clone --shared`, objects borrowed, never written), so versions
/// derived from git (setuptools-scm, hatch-vcs) come out as they would in
/// the repository itself.
struct BuildTree {
    dir: tempfile::TempDir,
    git: bool,
}

impl BuildTree {
    fn new(repo: &Path, parent: &Path) -> Result<BuildTree> {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let dir = tempfile::Builder::new()
            .prefix("smith-build-")
            .tempdir_in(parent)
            .map_err(|e| Error::io(parent, e))?;
        let git = repo.join(".git").exists() && share_git_history(repo, dir.path());
        if !git {
            // A failed clone may have left a partial `.git`.
            let _ = std::fs::remove_dir_all(dir.path().join(".git"));
        }
        crate::tree::copy_tree(repo, dir.path())?;
        if git {
            // The index from HEAD, so that git sees the copied files as the
            // commit's (a dirty tree stays dirty, as in the repository).
            let _ = git_in(dir.path(), &["reset", "--quiet"]);
        }
        Ok(BuildTree { dir, git })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Make `into` (empty) a repository sharing `repo`'s objects, at its HEAD,
/// without a checkout. Only reads `repo`.
fn share_git_history(repo: &Path, into: &Path) -> bool {
    let Some(head) = git_in(repo, &["rev-parse", "--verify", "HEAD"]) else {
        return false;
    };
    let (Some(repo_str), Some(into_str)) = (repo.to_str(), into.to_str()) else {
        return false;
    };
    git_in(
        into,
        &[
            "clone",
            "--quiet",
            "--shared",
            "--no-checkout",
            repo_str,
            into_str,
        ],
    )
    .is_some()
        && git_in(into, &["update-ref", "--no-deref", "HEAD", head.trim()]).is_some()
}

/// Limits for a helper command: `secs` seconds, `max_output` bytes of each
/// output stream kept.
fn limits(secs: u64, max_output: usize) -> RunOptions {
    RunOptions {
        timeout: Some(Duration::from_secs(secs)),
        max_output,
        ..RunOptions::default()
    }
}

/// Run `git args` in `dir`; its stdout when it succeeds.
fn git_in(dir: &Path, args: &[&str]) -> Option<String> {
    let mut cmd = Command::new("git");
    cmd.args(["-c", "safe.directory=*"])
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE");
    let options = limits(120, 64 << 10);
    let out = run_command(cmd, &format!("git {}", args.join(" ")), &options).ok()?;
    out.success().then_some(out.stdout)
}

/// The installed version of `package` in `venv` (read from its metadata
/// with an isolated interpreter, so no repository code runs).
pub(crate) fn installed_version(venv: &Path, package: &str) -> Option<String> {
    let mut cmd = Command::new(venv.join("bin").join("python"));
    cmd.args([
        "-I",
        "-c",
        "import sys, importlib.metadata as m; print(m.version(sys.argv[1]))",
        package,
    ])
    .current_dir(venv);
    let options = limits(60, 4 << 10);
    let out = run_command(cmd, "python -I -c importlib.metadata.version", &options).ok()?;
    let version = out.stdout.trim();
    (out.success() && !version.is_empty()).then(|| version.to_string())
}

/// Marks a venv whose installed modules are compiled to bytecode.
const BYTECODE_MARK: &str = ".smith-bytecode";

/// Compile what is installed in `venv` to bytecode, once.
///
/// Every command smith runs sets `PYTHONDONTWRITEBYTECODE=1`, so that no
/// stale bytecode of a workspace file (a mutated file can keep its size and
/// second of modification) is ever written or loaded. Installers honour
/// the variable too, which leaves a venv without bytecode: then every
/// fresh interpreter compiles pytest and the suite's dependencies from
/// source (about a second on a loaded machine, before a single test runs).
/// A venv's installed files never change after the build, so compiling them
/// here is safe; workspace files are never compiled. Best effort: a file
/// that does not compile (test data shipped inside a package) is left as it
/// is, and a venv that cannot be compiled still works, only slower.
fn compile_bytecode(venv: &Path) {
    let mark = venv.join(BYTECODE_MARK);
    if mark.exists() {
        return;
    }
    let mut cmd = Command::new(venv.join("bin").join("python"));
    cmd.args(["-I", "-m", "compileall", "-q", "-j", "0"])
        .arg(venv.join("lib"))
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .current_dir(venv);
    let options = limits(600, 64 << 10);
    match run_command(cmd, "python -m compileall", &options) {
        Ok(out) if !out.timed_out => {
            // compileall exits 1 when any file fails to compile; the rest
            // is compiled all the same.
            let _ = std::fs::write(&mark, b"");
        }
        Ok(_) => tracing::debug!(venv = %venv.display(), "compiling the venv timed out"),
        Err(e) => tracing::debug!(venv = %venv.display(), "cannot compile the venv: {e}"),
    }
}

/// `8` of `8.3.2`.
fn major_version(version: &str) -> Option<u32> {
    version.split('.').next()?.trim().parse().ok()
}

/// The first line of `text` holding the first of `needles` found in it
/// (trimmed), else "".
fn first_line_with<'t>(text: &'t str, needles: &[&str]) -> &'t str {
    needles
        .iter()
        .find_map(|n| text.lines().find(|l| l.contains(n)))
        .map(str::trim)
        .unwrap_or("")
}

fn stamp_key(venv: &Path) -> Option<String> {
    let text = std::fs::read_to_string(venv.join(STAMP_FILE)).ok()?;
    serde_json::from_str::<Stamp>(&text).ok().map(|s| s.key)
}

/// The key of a venv in the cache: what determines the install (the
/// packaging and requirements files, by path inside the repository and
/// content, a spec file's content, the installer), never where the
/// repository is, so that every snapshot of one repository (a run's
/// `<out>/repo`) shares the venv.
fn cache_key(repo: &Path, spec_file: Option<&Path>, installer: &Installer) -> String {
    let mut parts: Vec<Vec<u8>> = vec![
        CACHE_VERSION.as_bytes().to_vec(),
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
    for file in files {
        let rel = file.strip_prefix(repo).unwrap_or(&file);
        parts.push(rel.as_os_str().as_encoded_bytes().to_vec());
        parts.push(std::fs::read(&file).unwrap_or_default());
    }
    if let Some(file) = spec_file {
        parts.push(b"spec file".to_vec());
        parts.push(std::fs::read(file).unwrap_or_default());
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
    let options = limits(600, 64 << 10);
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
    fn cache_key_follows_content_not_location() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for dir in [a.path(), b.path()] {
            std::fs::write(dir.join("pyproject.toml"), "[project]\nname='a'\n").unwrap();
            std::fs::write(dir.join("requirements-dev.txt"), "pytest\n").unwrap();
        }
        let key = |d: &Path| cache_key(d, None, &Installer::Pip);
        assert_eq!(key(a.path()), key(b.path()), "same content, other place");
        std::fs::write(b.path().join("requirements-dev.txt"), "pytest<8\n").unwrap();
        assert_ne!(key(a.path()), key(b.path()));
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
