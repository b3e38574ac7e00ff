//! The environment specification: how to install a repository and run its
//! tests. Detected automatically ([`crate::detect`]) or written by a user in
//! `smith-env.toml` / `smith-env.json` in the repository root (or passed as
//! a file), which then overrides detection. Every field is optional:
//!
//! ```
//! let spec = smith_env::EnvSpec::from_toml(r#"
//!     python = "3.11"
//!     install = ["pip install -e .", "pip install -r requirements/test.txt"]
//!     test_cmd = ["-m", "pytest", "-p", "no:cacheprovider", "-x", "tests/unit"]
//!     pythonpath = ["src"]
//!     [env]
//!     TZ = "UTC"
//! "#).unwrap();
//! assert_eq!(spec.python_program(), "python3.11");
//! assert_eq!(spec.test_deps, ["pytest", "coverage"]); // always added
//! assert_eq!(spec.strategy, "user");
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use smith_core::{stable_hex, Error, Result};

/// File names in a repository root that hold a user-written [`EnvSpec`].
pub const SPEC_FILE_NAMES: &[&str] = &["smith-env.toml", "smith-env.json"];

/// How to build a repository's Python environment and run its tests.
///
/// Install steps are shell lines run from the repository root with the venv
/// first on `PATH`. They say `pip install ...`; the builder runs them with
/// `uv pip install` when uv is in use, so one spec serves both installers and
/// the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnvSpec {
    /// Interpreter to create the venv from: a program name (`python3`) or a
    /// version (`3.11`, resolved as `python3.11`).
    pub python: String,
    /// Install steps, shell lines run in order from the repository root.
    pub install: Vec<String>,
    /// Test-only requirements installed after the steps; always includes
    /// `pytest` and `coverage`.
    pub test_deps: Vec<String>,
    /// Arguments after `python` that run the suite, e.g.
    /// `["-m", "pytest", "-p", "no:cacheprovider", "tests"]`.
    pub test_cmd: Vec<String>,
    /// Repository-relative directories that must be on `PYTHONPATH` so that
    /// the working copy shadows the installed package (`["src"]`, `["."]`).
    pub pythonpath: Vec<String>,
    /// Extra environment variables for every command.
    pub env: BTreeMap<String, String>,
    /// Which detection strategy produced this spec (`pep621:tests`, `user`, ...).
    pub strategy: String,
    /// Anything a human should know: fallbacks taken, options removed.
    pub notes: Vec<String>,
}

impl Default for EnvSpec {
    fn default() -> Self {
        EnvSpec {
            python: "python3".into(),
            install: Vec::new(),
            test_deps: vec!["pytest".into(), "coverage".into()],
            test_cmd: default_test_cmd(),
            pythonpath: vec![".".into()],
            env: BTreeMap::new(),
            strategy: "user".into(),
            notes: Vec::new(),
        }
    }
}

/// `-m pytest -p no:cacheprovider`: the cache plugin writes into the tree.
pub fn default_test_cmd() -> Vec<String> {
    ["-m", "pytest", "-p", "no:cacheprovider"]
        .map(String::from)
        .to_vec()
}

impl EnvSpec {
    /// Read a spec from a `.toml` or `.json` file (decided by extension;
    /// anything else is tried as TOML).
    pub fn from_file(path: &Path) -> Result<EnvSpec> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let bad =
            |cause: smith_core::Cause| Error::environment_source(path, "bad spec file", cause);
        let spec: EnvSpec = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| bad(e.into()))?
        } else {
            toml::from_str(&text).map_err(|e| bad(e.into()))?
        };
        Ok(spec.completed())
    }

    /// Read a spec from TOML text.
    pub fn from_toml(text: &str) -> Result<EnvSpec> {
        let spec: EnvSpec =
            toml::from_str(text).map_err(|e| Error::invalid_source("environment spec", "", e))?;
        Ok(spec.completed())
    }

    /// Fill what a user may leave out: pytest and coverage, a test command.
    fn completed(mut self) -> EnvSpec {
        self.ensure_test_deps();
        if self.test_cmd.is_empty() {
            self.test_cmd = default_test_cmd();
        }
        self
    }

    /// The spec as TOML, the format users edit.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// A stable hash of everything that affects the built venv.
    pub fn hash(&self) -> String {
        let json =
            serde_json::to_string(&(&self.python, &self.install, &self.test_deps, &self.env))
                .unwrap_or_default();
        stable_hex(&[json.as_bytes()])
    }

    /// Make sure `pytest` and `coverage` are among the test deps.
    pub fn ensure_test_deps(&mut self) {
        for required in ["pytest", "coverage"] {
            if !self
                .test_deps
                .iter()
                .any(|d| requirement_name(d) == required)
            {
                self.test_deps.push(required.into());
            }
        }
    }

    /// The interpreter program to create the venv with.
    pub fn python_program(&self) -> String {
        let p = self.python.trim();
        if p.is_empty() {
            "python3".into()
        } else if p.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            format!("python{p}")
        } else {
            p.to_string()
        }
    }
}

/// The normalised project name of a requirement string (`Foo_Bar>=1` → `foo-bar`).
pub fn requirement_name(req: &str) -> String {
    let end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .unwrap_or(req.len());
    req[..end].to_ascii_lowercase().replace(['_', '.'], "-")
}

/// Replace the requirement on the same project in `deps` with
/// `requirement`, or add it.
pub(crate) fn set_requirement(deps: &mut Vec<String>, requirement: &str) {
    let name = requirement_name(requirement);
    match deps.iter_mut().find(|d| requirement_name(d) == name) {
        Some(slot) => *slot = requirement.to_string(),
        None => deps.push(requirement.to_string()),
    }
}

/// Quote `s` for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_spec_round_trips_and_gets_pytest_and_coverage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("smith-env.toml");
        std::fs::write(
            &path,
            "python = \"3.11\"\ninstall = [\"pip install -e .\"]\ntest_deps = [\"pytest>=8\"]\n\
             pythonpath = [\"src\"]\n[env]\nTZ = \"UTC\"\n",
        )
        .unwrap();
        let spec = EnvSpec::from_file(&path).unwrap();
        assert_eq!(spec.python_program(), "python3.11");
        assert_eq!(spec.test_deps, ["pytest>=8", "coverage"]);
        assert_eq!(spec.pythonpath, ["src"]);
        assert_eq!(spec.env["TZ"], "UTC");
        assert_eq!(spec.test_cmd, default_test_cmd());
        let again: EnvSpec = toml::from_str(&spec.to_toml()).unwrap();
        assert_eq!(again, spec);
    }

    #[test]
    fn json_spec_is_read_and_bad_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("smith-env.json");
        std::fs::write(
            &path,
            r#"{"test_cmd": ["-m", "pytest", "t"], "strategy": "mine"}"#,
        )
        .unwrap();
        let spec = EnvSpec::from_file(&path).unwrap();
        assert_eq!(spec.test_cmd, ["-m", "pytest", "t"]);
        assert_eq!(spec.strategy, "mine");
        std::fs::write(&path, "{nope").unwrap();
        let err = EnvSpec::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("smith-env.json"), "{err}");
    }

    #[test]
    fn hash_changes_with_install_steps_only_when_they_change() {
        let a = EnvSpec::default();
        let mut b = a.clone();
        b.notes.push("a note".into());
        assert_eq!(a.hash(), b.hash());
        b.install.push("pip install -e .".into());
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn requirement_names_and_quoting() {
        assert_eq!(
            requirement_name("Foo_Bar.baz>=1; python_version<'3'"),
            "foo-bar-baz"
        );
        assert_eq!(requirement_name("pytest"), "pytest");
        assert_eq!(shell_quote("pytest>=8"), "'pytest>=8'");
        assert_eq!(shell_quote(".[test]"), "'.[test]'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("coverage"), "coverage");
    }
}
