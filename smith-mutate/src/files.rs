//! Finding the Python files of a repository that bugs may be planted in.

use std::path::Path;

use smith_core::{Error, Result};

/// Which files [`python_files`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileOptions {
    /// Also return test files (`test_*.py`, `*_test.py`, `conftest.py`,
    /// anything under a `tests/` or `test/` directory).
    pub include_tests: bool,
    /// Glob patterns over repo-relative `/` paths (e.g. `docs/**`,
    /// `*/migrations/*.py`); matching files are skipped.
    pub exclude: Vec<String>,
}

/// Directories never worth mutating: tool caches, virtualenvs, build output.
const SKIPPED_DIRS: &[&str] = &[
    ".venv",
    "venv",
    "site-packages",
    "build",
    "dist",
    "node_modules",
    "__pycache__",
];

/// Whether a repo-relative `/` path is test code by pytest's conventions.
pub fn is_test_path(path: &str) -> bool {
    let mut parts: Vec<&str> = path.split('/').collect();
    let file = parts.pop().unwrap_or_default();
    file.starts_with("test_")
        || file.ends_with("_test.py")
        || file == "conftest.py"
        || parts.iter().any(|d| *d == "tests" || *d == "test")
}

/// Python files of a repo, repo-relative `/` paths, sorted; skips hidden
/// dirs, `.venv`/`venv`/`site-packages`/`build`/`dist`/`node_modules`/
/// `__pycache__`, and test files unless `options.include_tests`;
/// `options.exclude` globs skip more.
///
/// ```
/// # fn main() -> smith_core::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::create_dir_all(dir.path().join("pkg/tests")).unwrap();
/// std::fs::write(dir.path().join("pkg/core.py"), "x = 1\n").unwrap();
/// std::fs::write(dir.path().join("pkg/tests/test_core.py"), "").unwrap();
/// let files = smith_mutate::python_files(dir.path(), &Default::default())?;
/// assert_eq!(files, ["pkg/core.py"]);
/// # Ok(()) }
/// ```
pub fn python_files(root: &Path, options: &FileOptions) -> Result<Vec<String>> {
    let patterns = options
        .exclude
        .iter()
        .map(|g| {
            glob::Pattern::new(g)
                .map_err(|e| Error::invalid_source("exclude glob", format!("`{g}`"), e))
        })
        .collect::<Result<Vec<_>>>()?;
    if !root.is_dir() {
        return Err(Error::repo(root, "not a directory"));
    }
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue; // non-UTF-8 names cannot be `/` paths in patches
            };
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let file_type = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
            if file_type.is_dir() {
                if name.starts_with('.') || SKIPPED_DIRS.contains(&name.as_str()) {
                    continue;
                }
                stack.push((entry.path(), path));
            } else if file_type.is_file() && name.ends_with(".py") {
                if !options.include_tests && is_test_path(&path) {
                    continue;
                }
                let opts = glob::MatchOptions {
                    require_literal_separator: false,
                    ..Default::default()
                };
                if patterns.iter().any(|p| p.matches_with(&path, opts)) {
                    continue;
                }
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_paths() {
        assert!(is_test_path("tests/helpers.py"));
        assert!(is_test_path("pkg/test/x.py"));
        assert!(is_test_path("pkg/test_core.py"));
        assert!(is_test_path("pkg/core_test.py"));
        assert!(is_test_path("conftest.py"));
        assert!(!is_test_path("pkg/testing.py"));
        assert!(!is_test_path("pkg/contest.py"));
    }

    #[test]
    fn walks_sorted_and_skips() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for p in [
            "b.py",
            "a/z.py",
            "a/m.py",
            "a/notes.txt",
            ".hidden/x.py",
            "venv/lib.py",
            "build/gen.py",
            "pkg/__pycache__/c.py",
            "pkg/tests/test_x.py",
            "pkg/conftest.py",
            "docs/conf.py",
        ] {
            let full = root.join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, "").unwrap();
        }
        let files = python_files(root, &FileOptions::default()).unwrap();
        assert_eq!(files, ["a/m.py", "a/z.py", "b.py", "docs/conf.py"]);
        let opts = FileOptions {
            include_tests: true,
            exclude: vec!["docs/*".into(), "a/z*".into()],
        };
        let files = python_files(root, &opts).unwrap();
        assert_eq!(
            files,
            ["a/m.py", "b.py", "pkg/conftest.py", "pkg/tests/test_x.py"]
        );
        assert!(python_files(&root.join("missing"), &opts).is_err());
        let bad = FileOptions {
            exclude: vec!["[".into()],
            ..Default::default()
        };
        assert!(python_files(root, &bad).is_err());
    }
}
