//! Detecting how a repository installs and tests itself, without running
//! anything: packaging metadata, test requirements, pytest configuration and
//! source layout. The result is an ordered list of candidate [`EnvSpec`]s;
//! the builder tries them in order until one installs and collects tests.

use std::collections::BTreeMap;
use std::path::Path;

use smith_core::{Error, Result};

use crate::spec::{default_test_cmd, requirement_name, set_requirement, shell_quote, EnvSpec};

/// Extra / group names that mean "what the tests need", in preference order
/// (any other name containing `test` counts too, after these).
pub const TEST_EXTRAS: &[&str] = &["test", "tests", "testing", "dev"];

/// Files whose content decides the environment; the cache key hashes them.
pub const PACKAGING_FILES: &[&str] = &[
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "tox.ini",
    "noxfile.py",
    "pytest.ini",
    "requirements.txt",
    "smith-env.toml",
    "smith-env.json",
];

/// What the pytest configuration of a repository says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PytestConfig {
    /// The file it came from (`pyproject.toml`, `pytest.ini`, ...), if any.
    pub file: Option<String>,
    /// `testpaths`, if set.
    pub testpaths: Vec<String>,
    /// `addopts`, split into arguments.
    pub addopts: Vec<String>,
}

/// Everything detection learned about a repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoFacts {
    /// Has `pyproject.toml`, `setup.py` or `setup.cfg`: installable with pip.
    pub installable: bool,
    /// Import roots that must be on `PYTHONPATH` (`src` or `.`).
    pub pythonpath: Vec<String>,
    /// Top-level package directories (repository-relative).
    pub packages: Vec<String>,
    /// Test directories found (`tests`, `test`, `testing`).
    pub test_dirs: Vec<String>,
    /// The pytest configuration.
    pub pytest: PytestConfig,
    /// `requires-python`, if declared.
    pub requires_python: Option<String>,
}

/// Inspect `repo` and return its facts.
pub fn repo_facts(repo: &Path) -> Result<RepoFacts> {
    if !repo.is_dir() {
        return Err(Error::repo(repo, "not a directory"));
    }
    let pyproject = read_toml(repo, "pyproject.toml")?;
    let installable = pyproject
        .as_ref()
        .is_some_and(|p| p.get("project").is_some() || p.get("build-system").is_some())
        || repo.join("setup.py").is_file()
        || repo.join("setup.cfg").is_file();
    let src_layout = repo.join("src").is_dir() && has_package_dirs(&repo.join("src"));
    let pythonpath = if src_layout {
        vec!["src".to_string()]
    } else {
        vec![".".to_string()]
    };
    let pkg_root = if src_layout { "src/" } else { "" };
    let packages = package_dirs(&repo.join(if src_layout { "src" } else { "." }))
        .into_iter()
        .filter(|p| !["tests", "test", "testing", "docs", "doc"].contains(&p.as_str()))
        .map(|p| format!("{pkg_root}{p}"))
        .collect();
    let test_dirs = ["tests", "test", "testing"]
        .into_iter()
        .filter(|d| repo.join(d).is_dir())
        .map(String::from)
        .collect();
    let requires_python = pyproject
        .as_ref()
        .and_then(|p| p.get("project")?.get("requires-python")?.as_str())
        .map(String::from);
    Ok(RepoFacts {
        installable,
        pythonpath,
        packages,
        test_dirs,
        pytest: pytest_config(repo, pyproject.as_ref())?,
        requires_python,
    })
}

/// Candidate specs for `repo`, most specific first, ending with a plain
/// install (or no install for a repository that is not a package).
pub fn detect(repo: &Path) -> Result<Vec<EnvSpec>> {
    let facts = repo_facts(repo)?;
    if !facts.installable && !contains_python(repo) {
        return Err(Error::repo(
            repo,
            "no Python project here (no pyproject.toml, setup.py, setup.cfg or .py files)",
        ));
    }
    let (test_cmd, cmd_notes) = test_command(&facts);
    let mut found = Found {
        base: EnvSpec {
            test_cmd,
            pythonpath: facts.pythonpath.clone(),
            notes: cmd_notes,
            ..EnvSpec::default()
        },
        installable: facts.installable,
        specs: Vec::new(),
        all_reqs: Vec::new(),
    };
    let pyproject = read_toml(repo, "pyproject.toml")?;
    found.pyproject(pyproject.as_ref());
    if let Some(cfg) = read_ini(repo, "setup.cfg")? {
        found.setup_cfg(&cfg);
    }
    // Requirements files for tests.
    for file in test_requirement_files(repo) {
        let mut install = found.plain_install();
        install.push(format!("pip install -r {}", shell_quote(&file)));
        let own = requirement_lines(repo, &file, 0);
        found.all_reqs.extend(own.iter().cloned());
        found.push(format!("requirements:{file}"), install, Vec::new(), own);
    }
    if let Some(tox) = read_ini(repo, "tox.ini")? {
        found.tox(repo, &tox);
    }
    if let Ok(text) = std::fs::read_to_string(repo.join("noxfile.py")) {
        let deps = nox_deps(&text);
        if !deps.is_empty() {
            found.all_reqs.extend(deps.iter().cloned());
            found.push("nox".into(), found.plain_install(), deps.clone(), deps);
        }
    }
    let last = if facts.installable {
        "plain"
    } else {
        "no-install"
    };
    found.push(last.into(), found.plain_install(), Vec::new(), Vec::new());
    Ok(found.into_specs(facts.requires_python.as_deref()))
}

/// The install strategies found for a repository, in order, each with the
/// requirements its own source names: a pytest pin found elsewhere is
/// applied only where the source has none.
struct Found {
    /// What every strategy shares: the test command, `PYTHONPATH`, notes.
    base: EnvSpec,
    /// The repository is a package (`pip install -e .` installs it).
    installable: bool,
    /// Each strategy's spec and its source's own requirements.
    specs: Vec<(EnvSpec, Vec<String>)>,
    /// Every requirement of every source, where the project's pytest pin
    /// is looked for.
    all_reqs: Vec<String>,
}

impl Found {
    /// Add strategy `strategy`: `install` steps, test `deps`, and the
    /// requirements its source names (`own`).
    fn push(
        &mut self,
        strategy: String,
        install: Vec<String>,
        deps: Vec<String>,
        own: Vec<String>,
    ) {
        let mut spec = self.base.clone();
        spec.strategy = strategy;
        spec.install = install;
        spec.test_deps = deps;
        spec.ensure_test_deps();
        self.specs.push((spec, own));
    }

    /// `pip install -e .`, or nothing for a repository that is no package.
    fn plain_install(&self) -> Vec<String> {
        if self.installable {
            vec!["pip install -e .".to_string()]
        } else {
            Vec::new()
        }
    }

    /// The editable install with `extras` (the plain one without).
    fn editable(&self, extras: &[String]) -> Vec<String> {
        if extras.is_empty() {
            self.plain_install()
        } else {
            vec![format!(
                "pip install -e {}",
                shell_quote(&format!(".[{}]", extras.join(",")))
            )]
        }
    }

    /// PEP 621 extras and PEP 735 dependency groups (PDM's dev-dependencies
    /// are groups of the same shape) that name test dependencies: all of
    /// them together first, so that tests skipping on a missing optional
    /// package run, then the first of each kind alone.
    fn pyproject(&mut self, pyproject: Option<&toml::Value>) {
        let project_name = pyproject
            .and_then(|p| p.get("project")?.get("name")?.as_str())
            .map(requirement_name);
        let (extras, groups) = extras_and_groups(pyproject);
        let test_extras = test_names(extras.keys());
        let test_groups = test_names(groups.keys());
        let group_deps = |names: &[String]| group_deps(&groups, project_name.as_deref(), names);
        if !test_extras.is_empty() || !test_groups.is_empty() {
            let (deps, own_extras) = group_deps(&test_groups);
            let mut names = test_extras.clone();
            for e in own_extras {
                if !names.contains(&e) {
                    names.push(e);
                }
            }
            let mut parts = Vec::new();
            if !test_extras.is_empty() {
                parts.push(format!("pep621:{}", test_extras.join(",")));
            }
            if !test_groups.is_empty() {
                parts.push(format!("dependency-groups:{}", test_groups.join(",")));
            }
            let mut own = extra_requirements(&extras, &names);
            own.extend(deps.iter().cloned());
            self.all_reqs.extend(own.iter().cloned());
            self.push(parts.join("+"), self.editable(&names), deps, own);
        }
        if let Some(name) = test_extras.first() {
            let names = [name.clone()];
            let own = extra_requirements(&extras, &names);
            self.push(
                format!("pep621:{name}"),
                self.editable(&names),
                Vec::new(),
                own,
            );
        }
        if let Some(name) = test_groups.first() {
            let (deps, own_extras) = group_deps(std::slice::from_ref(name));
            let own = deps.clone();
            let install = self.editable(&own_extras);
            self.push(format!("dependency-groups:{name}"), install, deps, own);
        }
    }

    /// setup.cfg extras, as PEP 621's: all test extras together (when
    /// there are several), then the first alone.
    fn setup_cfg(&mut self, cfg: &Ini) {
        let Some(cfg_extras) = cfg.get("options.extras_require") else {
            return;
        };
        let names = test_names(cfg_extras.keys());
        let reqs = |names: &[String]| -> Vec<String> {
            names
                .iter()
                .filter_map(|n| cfg_extras.get(n))
                .flat_map(|v| v.lines().map(str::trim).map(String::from))
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect()
        };
        if names.len() > 1 {
            self.all_reqs.extend(reqs(&names));
            let strategy = format!("setup.cfg:{}", names.join(","));
            self.push(strategy, self.editable(&names), Vec::new(), reqs(&names));
        }
        if let Some(name) = names.first() {
            let one = [name.clone()];
            self.all_reqs.extend(reqs(&one));
            self.push(
                format!("setup.cfg:{name}"),
                self.editable(&one),
                Vec::new(),
                reqs(&one),
            );
        }
    }

    /// tox's `testenv`: its deps (requirements files installed with
    /// `pip install -r`) and extras.
    fn tox(&mut self, repo: &Path, tox: &Ini) {
        let Some(env) = tox.get("testenv") else {
            return;
        };
        let deps = tox_deps(env.get("deps").map(String::as_str).unwrap_or(""));
        let mut install = self.plain_install();
        if let Some(extras) = env.get("extras") {
            let names: Vec<&str> = extras.split([',', '\n']).map(str::trim).collect();
            let names: Vec<&str> = names.into_iter().filter(|n| !n.is_empty()).collect();
            if self.installable && !names.is_empty() {
                install = vec![format!(
                    "pip install -e {}",
                    shell_quote(&format!(".[{}]", names.join(",")))
                )];
            }
        }
        let (reqs, plain): (Vec<String>, Vec<String>) =
            deps.into_iter().partition(|d| d.starts_with("-r "));
        let mut own = plain.clone();
        for r in &reqs {
            let file = r.trim_start_matches("-r ").trim_matches('\'');
            own.extend(requirement_lines(repo, file, 0));
        }
        self.all_reqs.extend(own.iter().cloned());
        install.extend(reqs.into_iter().map(|r| format!("pip install {r}")));
        self.push("tox".into(), install, plain, own);
    }

    /// The specs, each pinning pytest as its source does (else as the
    /// project does anywhere), noting `requires_python`; strategies that
    /// come to the same steps are kept once.
    fn into_specs(self, requires_python: Option<&str>) -> Vec<EnvSpec> {
        // The project's declared runner: the first pytest requirement with a
        // version constraint, wherever the project states it.
        let declared_pytest = self
            .all_reqs
            .iter()
            .find(|r| requirement_name(r) == "pytest" && has_version_constraint(r))
            .cloned();
        let mut specs: Vec<EnvSpec> = Vec::new();
        for (mut spec, own) in self.specs {
            // The source's own pin wins; stated in the test deps too, because a
            // pin in a constraints file binds only the line that names it.
            let own_pin = own
                .iter()
                .find(|r| requirement_name(r) == "pytest" && has_version_constraint(r));
            if let Some(pin) = own_pin.or(declared_pytest.as_ref()) {
                set_requirement(&mut spec.test_deps, pin);
            }
            if let Some(rp) = requires_python {
                spec.notes.push(format!("requires-python {rp}"));
            }
            // Two sources may come to the same steps (one extra alone and all
            // of them): try those once.
            if !specs
                .iter()
                .any(|s| s.install == spec.install && s.test_deps == spec.test_deps)
            {
                specs.push(spec);
            }
        }
        specs
    }
}

/// pyproject.toml's optional dependencies (PEP 621 extras) and dependency
/// groups (PEP 735's, with PDM's dev-dependencies).
fn extras_and_groups(pyproject: Option<&toml::Value>) -> (toml::Table, toml::Table) {
    let extras = pyproject
        .and_then(|p| p.get("project")?.get("optional-dependencies")?.as_table())
        .cloned()
        .unwrap_or_default();
    let mut groups = pyproject
        .and_then(|p| {
            p.get("tool")?
                .get("pdm")?
                .get("dev-dependencies")?
                .as_table()
        })
        .cloned()
        .unwrap_or_default();
    if let Some(declared) = pyproject.and_then(|p| p.get("dependency-groups")?.as_table()) {
        groups.extend(declared.clone());
    }
    (extras, groups)
}

/// The requirements of the PEP 621 extras `names`.
fn extra_requirements(extras: &toml::Table, names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter_map(|n| extras.get(n)?.as_array())
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

/// The deps of dependency groups `names`, with requirements on the project
/// itself (`project_name`) turned into extras of its editable install
/// (installing it from an index would replace the working tree's code):
/// (deps, extras).
fn group_deps(
    groups: &toml::Table,
    project_name: Option<&str>,
    names: &[String],
) -> (Vec<String>, Vec<String>) {
    let mut deps = Vec::new();
    for name in names {
        resolve_group(groups, name, &mut deps, 0);
    }
    let mut own_extras = Vec::new();
    deps.retain(|d| {
        if project_name != Some(requirement_name(d).as_str()) {
            return true;
        }
        own_extras.extend(requirement_extras(d));
        false
    });
    (deps, own_extras)
}

/// Extra or group names that mean "what the tests need": those of
/// [`TEST_EXTRAS`] in that order, then any other name containing `test`.
fn test_names<'k>(keys: impl Iterator<Item = &'k String>) -> Vec<String> {
    let keys: Vec<&String> = keys.collect();
    let mut names: Vec<String> = TEST_EXTRAS
        .iter()
        .filter(|n| keys.iter().any(|k| k == n))
        .map(|n| n.to_string())
        .collect();
    let mut others: Vec<String> = keys
        .iter()
        .filter(|k| k.to_ascii_lowercase().contains("test") && !names.contains(k))
        .map(|k| k.to_string())
        .collect();
    others.sort();
    names.extend(others);
    names
}

/// The extras a requirement asks for: `pkg[a, b]>=1` → `["a", "b"]`.
fn requirement_extras(req: &str) -> Vec<String> {
    let Some(open) = req.find('[') else {
        return Vec::new();
    };
    let Some(close) = req[open..].find(']') else {
        return Vec::new();
    };
    req[open + 1..open + close]
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(String::from)
        .collect()
}

/// Whether a requirement constrains the version (`pytest>=7`, `pytest==7.4`),
/// markers aside.
fn has_version_constraint(req: &str) -> bool {
    let spec = req.split(';').next().unwrap_or(req);
    spec.contains(['<', '>', '=', '~', '!'])
}

/// The requirement lines of a requirements file, following `-r` and `-c`
/// (constraints pin versions too) a few levels deep.
fn requirement_lines(repo: &Path, file: &str, depth: usize) -> Vec<String> {
    let path = repo.join(file);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let dir = Path::new(file).parent().unwrap_or(Path::new(""));
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split(" #").next().unwrap_or(line).trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let nested = ["-r", "--requirement", "-c", "--constraint"]
            .iter()
            .find_map(|flag| line.strip_prefix(flag));
        if let Some(rest) = nested {
            let name = rest.trim_start_matches('=').trim();
            if depth < 3 && !name.is_empty() {
                let nested = dir.join(name);
                out.extend(requirement_lines(
                    repo,
                    &nested.to_string_lossy(),
                    depth + 1,
                ));
            }
        } else if !line.starts_with('-') {
            out.push(line.to_string());
        }
    }
    out
}

/// The pytest arguments for a repository: `-p no:cacheprovider`, addopts
/// without coverage and parallelism plugins (smith measures coverage and
/// schedules workers itself), and test paths when the config names none.
pub fn test_command(facts: &RepoFacts) -> (Vec<String>, Vec<String>) {
    let mut cmd = default_test_cmd();
    let mut notes = Vec::new();
    let (kept, dropped) = filter_addopts(&facts.pytest.addopts);
    if !dropped.is_empty() {
        cmd.push("-o".into());
        cmd.push(format!("addopts={}", kept.join(" ")));
        notes.push(format!(
            "removed from addopts ({}): {}",
            facts.pytest.file.as_deref().unwrap_or("config"),
            dropped.join(" ")
        ));
    }
    if facts.pytest.testpaths.is_empty() {
        cmd.extend(facts.test_dirs.iter().cloned());
        if !facts.test_dirs.is_empty() && kept.iter().any(|o| o == "--doctest-modules") {
            cmd.extend(facts.packages.iter().cloned());
        }
    }
    (cmd, notes)
}

/// Split addopts into the options smith keeps and those it drops
/// (`--cov*`, xdist's `-n`/`--numprocesses`/`--dist`).
pub fn filter_addopts(addopts: &[String]) -> (Vec<String>, Vec<String>) {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    let mut iter = addopts.iter();
    while let Some(opt) = iter.next() {
        let takes_value = [
            "--cov",
            "--cov-report",
            "--cov-config",
            "--cov-fail-under",
            "-n",
            "--numprocesses",
            "--dist",
            "--maxprocesses",
        ]
        .contains(&opt.as_str());
        let is_dropped = opt.starts_with("--cov")
            || opt.starts_with("--no-cov")
            || opt.starts_with("--numprocesses")
            || opt.starts_with("--dist")
            || opt.starts_with("--maxprocesses")
            || (opt.starts_with("-n") && !opt.starts_with("--"));
        if is_dropped {
            dropped.push(opt.clone());
            // `--cov` alone takes an optional value: only eat one that is not an option.
            if takes_value && !opt.contains('=') {
                let mut peek = iter.clone();
                if let Some(v) = peek.next() {
                    if !v.starts_with('-') {
                        dropped.push(v.clone());
                        iter = peek;
                    }
                }
            }
        } else {
            kept.push(opt.clone());
        }
    }
    (kept, dropped)
}

fn pytest_config(repo: &Path, pyproject: Option<&toml::Value>) -> Result<PytestConfig> {
    let from_ini = |file: &str, section: &str| -> Result<Option<PytestConfig>> {
        let Some(ini) = read_ini(repo, file)? else {
            return Ok(None);
        };
        Ok(ini.get(section).map(|s| PytestConfig {
            file: Some(file.into()),
            testpaths: split_ws(s.get("testpaths").map(String::as_str).unwrap_or("")),
            addopts: split_ws(s.get("addopts").map(String::as_str).unwrap_or("")),
        }))
    };
    // pytest's own precedence: pytest.ini, pyproject.toml, tox.ini, setup.cfg.
    if let Some(c) = from_ini("pytest.ini", "pytest")? {
        return Ok(c);
    }
    let tool = pyproject.and_then(|p| p.get("tool")?.get("pytest"));
    if let Some(table) = tool {
        let table = table.get("ini_options").unwrap_or(table);
        return Ok(PytestConfig {
            file: Some("pyproject.toml".into()),
            testpaths: toml_args(table.get("testpaths")),
            addopts: toml_args(table.get("addopts")),
        });
    }
    if let Some(c) = from_ini("tox.ini", "pytest")? {
        return Ok(c);
    }
    Ok(from_ini("setup.cfg", "tool:pytest")?.unwrap_or_default())
}

fn toml_args(value: Option<&toml::Value>) -> Vec<String> {
    match value {
        Some(toml::Value::String(s)) => split_ws(s),
        Some(toml::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str())
            .flat_map(split_ws)
            .collect(),
        _ => Vec::new(),
    }
}

fn split_ws(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

fn resolve_group(groups: &toml::Table, name: &str, out: &mut Vec<String>, depth: usize) {
    let Some(items) = groups.get(name).and_then(|g| g.as_array()) else {
        return;
    };
    for item in items {
        if let Some(req) = item.as_str() {
            if !out.iter().any(|o| o == req) {
                out.push(req.to_string());
            }
        } else if let Some(inc) = item.get("include-group").and_then(|v| v.as_str()) {
            if depth < 8 {
                resolve_group(groups, inc, out, depth + 1);
            }
        }
    }
}

fn test_requirement_files(repo: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for dir in ["", "requirements/"] {
        let Ok(entries) = std::fs::read_dir(repo.join(dir)) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in names {
            let lower = name.to_ascii_lowercase();
            let is_req = lower.ends_with(".txt") || lower.ends_with(".in");
            let in_req_dir = !dir.is_empty();
            let testy =
                lower.contains("test") || lower.contains("-dev") || lower.starts_with("dev");
            let named_req = lower.starts_with("requirements") || lower.contains("requirements");
            if is_req && testy && (named_req || in_req_dir) && !lower.ends_with(".in") {
                found.push(format!("{dir}{name}"));
            }
        }
    }
    // Test files first, dev files after.
    found.sort_by_key(|f| !f.to_ascii_lowercase().contains("test"));
    found
}

fn tox_deps(deps: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in deps.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.contains('{') {
            continue;
        }
        // Factor-conditional lines (`py38: foo`) apply to some envs only.
        if let Some((factor, _)) = line.split_once(": ") {
            if !factor.contains(' ') {
                continue;
            }
        }
        if let Some(file) = line
            .strip_prefix("-r")
            .or_else(|| line.strip_prefix("--requirement"))
        {
            out.push(format!(
                "-r {}",
                shell_quote(file.trim_start_matches('=').trim())
            ));
        } else if !line.starts_with('-') {
            out.push(line.to_string());
        }
    }
    out
}

fn nox_deps(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for call in text.split("session.install(").skip(1) {
        let args = call.split(')').next().unwrap_or("");
        for piece in args.split(',') {
            let piece = piece.trim();
            let unquoted = piece
                .strip_prefix('"')
                .and_then(|p| p.strip_suffix('"'))
                .or_else(|| piece.strip_prefix('\'').and_then(|p| p.strip_suffix('\'')));
            if let Some(dep) = unquoted {
                if !dep.starts_with('-')
                    && !dep.starts_with('.')
                    && !dep.is_empty()
                    && !out
                        .iter()
                        .any(|o: &String| requirement_name(o) == requirement_name(dep))
                {
                    out.push(dep.to_string());
                }
            }
        }
    }
    out
}

fn has_package_dirs(dir: &Path) -> bool {
    !package_dirs(dir).is_empty()
}

fn package_dirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("__init__.py").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    out.sort();
    out
}

fn contains_python(repo: &Path) -> bool {
    fn walk(dir: &Path, depth: usize) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        entries.filter_map(|e| e.ok()).any(|e| {
            let path = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                depth < 3 && !name.starts_with('.') && walk(&path, depth + 1)
            } else {
                name.ends_with(".py")
            }
        })
    }
    walk(repo, 0)
}

fn read_toml(repo: &Path, name: &str) -> Result<Option<toml::Value>> {
    let path = repo.join(name);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| Error::repo_source(path, "invalid TOML", e))
}

/// Sections → keys → values of an INI file, with indented continuation lines
/// joined by newlines (the dialect of setup.cfg and tox.ini).
pub type Ini = BTreeMap<String, BTreeMap<String, String>>;

fn read_ini(repo: &Path, name: &str) -> Result<Option<Ini>> {
    match std::fs::read_to_string(repo.join(name)) {
        Ok(text) => Ok(Some(parse_ini(&text))),
        Err(_) => Ok(None),
    }
}

/// Parse INI text leniently: unknown syntax is skipped, never an error.
pub fn parse_ini(text: &str) -> Ini {
    let mut ini = Ini::new();
    let mut section = String::new();
    let mut key: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let indented = line.len() != trimmed.len();
        if indented {
            if let Some(k) = &key {
                let value = ini
                    .entry(section.clone())
                    .or_default()
                    .entry(k.clone())
                    .or_default();
                if !value.is_empty() {
                    value.push('\n');
                }
                value.push_str(trimmed);
            }
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = name.trim().to_string();
            key = None;
            continue;
        }
        if let Some((k, v)) = trimmed.split_once(['=', ':']) {
            let k = k.trim().to_string();
            ini.entry(section.clone())
                .or_default()
                .insert(k.clone(), v.trim().to_string());
            key = Some(k);
        }
    }
    ini
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    #[test]
    fn all_test_extras_and_groups_come_first_then_each_alone_then_plain() {
        let r = repo(&[
            (
                "pyproject.toml",
                "[project]\nname='x'\n[project.optional-dependencies]\ndev=['ruff']\ntests=['pytest','freezegun']\n\
                 [dependency-groups]\nlint=['ruff']\ntests=['simplejson', {include-group='lint'}]\n",
            ),
            ("src/x/__init__.py", ""),
            ("tests/test_x.py", ""),
        ]);
        let specs = detect(r.path()).unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.strategy.as_str()).collect();
        assert_eq!(
            names,
            [
                "pep621:tests,dev+dependency-groups:tests",
                "pep621:tests",
                "dependency-groups:tests",
                "plain"
            ]
        );
        assert_eq!(specs[0].install, ["pip install -e '.[tests,dev]'"]);
        assert_eq!(
            specs[0].test_deps,
            ["simplejson", "ruff", "pytest", "coverage"]
        );
        assert_eq!(specs[1].install, ["pip install -e '.[tests]'"]);
        assert_eq!(specs[2].install, ["pip install -e ."]);
        assert_eq!(
            specs[2].test_deps,
            ["simplejson", "ruff", "pytest", "coverage"]
        );
        assert_eq!(specs[0].pythonpath, ["src"]);
        assert_eq!(
            specs[0].test_cmd,
            ["-m", "pytest", "-p", "no:cacheprovider", "tests"]
        );
    }

    #[test]
    fn a_test_group_next_to_a_dev_extra_is_installed_with_it() {
        // The `dev` extra alone used to win, leaving the group's packages out.
        let r = repo(&[
            (
                "pyproject.toml",
                "[project]\nname='Demo_Pkg'\n[project.optional-dependencies]\ndev=['pytest']\nyaml=['pyyaml']\n\
                 [dependency-groups]\ntest=['pytest', 'demo-pkg[yaml]', 'wcwidth']\n",
            ),
            ("demo_pkg/__init__.py", ""),
        ]);
        let specs = detect(r.path()).unwrap();
        assert_eq!(specs[0].strategy, "pep621:dev+dependency-groups:test");
        // The group's requirement on the project itself becomes an extra of
        // the editable install, never a download of the released package.
        assert_eq!(specs[0].install, ["pip install -e '.[dev,yaml]'"]);
        assert_eq!(specs[0].test_deps, ["pytest", "wcwidth", "coverage"]);
        let group = specs
            .iter()
            .find(|s| s.strategy == "dependency-groups:test")
            .unwrap();
        assert_eq!(group.install, ["pip install -e '.[yaml]'"]);
    }

    #[test]
    fn pdm_dev_dependencies_count_as_groups() {
        let r = repo(&[
            (
                "pyproject.toml",
                "[project]\nname='p'\n[tool.pdm.dev-dependencies]\ntest=['pytest>=7', 'six']\n",
            ),
            ("p/__init__.py", ""),
        ]);
        let specs = detect(r.path()).unwrap();
        assert_eq!(specs[0].strategy, "dependency-groups:test");
        assert_eq!(specs[0].test_deps, ["pytest>=7", "six", "coverage"]);
    }

    #[test]
    fn the_declared_pytest_pin_applies_where_a_source_names_none() {
        let r = repo(&[
            (
                "pyproject.toml",
                "[project]\nname='p'\n[project.optional-dependencies]\ntest=['pytest', 'six']\n",
            ),
            ("requirements/test.txt", "-c constraints.txt\nmock\n"),
            (
                "requirements/constraints.txt",
                "pytest>=6,<8  # old hooks\n",
            ),
            ("p/__init__.py", ""),
        ]);
        let specs = detect(r.path()).unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.strategy.as_str()).collect();
        assert_eq!(
            names,
            ["pep621:test", "requirements:requirements/test.txt", "plain"]
        );
        for spec in &specs {
            assert_eq!(
                spec.test_deps,
                ["pytest>=6,<8", "coverage"],
                "{}",
                spec.strategy
            );
        }
        // A source with its own pin keeps it.
        let r = repo(&[
            (
                "pyproject.toml",
                "[project]\nname='p'\n[project.optional-dependencies]\ntest=['pytest==7.4.4']\n",
            ),
            ("tox.ini", "[testenv]\ndeps =\n    pytest<7\n"),
            ("p/__init__.py", ""),
        ]);
        let specs = detect(r.path()).unwrap();
        assert_eq!(specs[0].strategy, "pep621:test");
        assert_eq!(specs[0].test_deps, ["pytest==7.4.4", "coverage"]);
        assert_eq!(specs[1].strategy, "tox");
        assert_eq!(specs[1].test_deps, ["pytest<7", "coverage"]);
        assert_eq!(specs[2].test_deps, ["pytest==7.4.4", "coverage"]);
    }

    #[test]
    fn setup_cfg_requirements_tox_and_nox_are_found() {
        let r = repo(&[
            ("setup.py", "from setuptools import setup; setup()"),
            ("setup.cfg", "[options.extras_require]\ntesting =\n    pytest\n    mock\n"),
            ("requirements/testing.txt", "coverage\n"),
            ("requirements-dev.txt", "black\n"),
            ("requirements.txt", "six\n"),
            (
                "tox.ini",
                "[testenv]\ndeps =\n    pytest\n    py38: oldthing\n    -rreq-extra.txt\n    {[base]deps}\n\
                 commands = pytest {posargs}\n",
            ),
            ("noxfile.py", "def tests(session):\n    session.install('-e', '.', \"hypothesis\")\n"),
            ("pkg/__init__.py", ""),
        ]);
        let specs = detect(r.path()).unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.strategy.as_str()).collect();
        assert_eq!(
            names,
            [
                "setup.cfg:testing",
                "requirements:requirements/testing.txt",
                "requirements:requirements-dev.txt",
                "tox",
                "nox",
                "plain"
            ]
        );
        let tox = &specs[3];
        assert_eq!(
            tox.install,
            ["pip install -e .", "pip install -r req-extra.txt"]
        );
        assert_eq!(tox.test_deps, ["pytest", "coverage"]);
        assert_eq!(specs[4].test_deps, ["hypothesis", "pytest", "coverage"]);
        assert_eq!(specs[0].pythonpath, ["."]);
    }

    #[test]
    fn coverage_addopts_are_removed_and_doctest_packages_added() {
        let r = repo(&[
            (
                "pyproject.toml",
                "[project]\nname='parse'\n[tool.pytest.ini_options]\naddopts = \"--cov=parse --cov-report=term-missing --cov-branch --doctest-modules -n auto\"\n",
            ),
            ("parse/__init__.py", ""),
            ("tests/test_a.py", ""),
        ]);
        let spec = &detect(r.path()).unwrap()[0];
        assert_eq!(
            spec.test_cmd,
            [
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-o",
                "addopts=--doctest-modules",
                "tests",
                "parse"
            ]
        );
        assert!(spec.notes[0].contains("--cov=parse"), "{:?}", spec.notes);
    }

    #[test]
    fn testpaths_in_config_mean_no_explicit_paths() {
        let r = repo(&[
            ("pytest.ini", "[pytest]\ntestpaths = tests\naddopts = -ra\n"),
            ("tests/test_a.py", ""),
            ("mod.py", ""),
        ]);
        let facts = repo_facts(r.path()).unwrap();
        assert_eq!(facts.pytest.testpaths, ["tests"]);
        assert!(!facts.installable);
        let specs = detect(r.path()).unwrap();
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].strategy, "no-install");
        assert!(specs[0].install.is_empty());
        assert_eq!(specs[0].test_cmd, default_test_cmd());
    }

    #[test]
    fn a_directory_without_python_is_a_repo_error() {
        let r = repo(&[("README.md", "hi")]);
        let err = detect(r.path()).unwrap_err();
        assert!(matches!(err, Error::Repo { .. }), "{err}");
    }

    #[test]
    fn filter_addopts_keeps_unrelated_options() {
        let opts = split_ws("-ra --cov --strict-markers -n 4 --cov-report term");
        let (kept, dropped) = filter_addopts(&opts);
        assert_eq!(kept, ["-ra", "--strict-markers"]);
        assert_eq!(dropped, ["--cov", "-n", "4", "--cov-report", "term"]);
    }
}
