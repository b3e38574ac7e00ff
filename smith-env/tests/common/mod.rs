//! Shared helpers for smith-env's integration tests: a small Python project
//! written into a temp dir, and one venv cache reused by every test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The venv cache shared by all tests (under the workspace's `target/`), so a
/// clean clone builds each fixture venv once and reruns reuse it.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("smith-env-test-cache")
}

/// Write `files` under a new temp dir.
pub fn write_repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("smith-env-fixture-")
        .tempdir()
        .unwrap();
    write_files(dir.path(), files);
    dir
}

/// Write `files` under `root`.
pub fn write_files(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// A src-layout package `calc` with a `tests` extra and two tests.
pub const CALC: &[(&str, &str)] = &[
    (
        "pyproject.toml",
        "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
         [project]\nname = \"calc\"\nversion = \"0.1\"\n\n\
         [project.optional-dependencies]\ntests = [\"pytest\"]\n",
    ),
    ("src/calc/__init__.py", "def add(a, b):\n    return a + b\n"),
    (
        "tests/test_calc.py",
        "import os\nfrom calc import add\n\n\
         def test_add():\n    assert add(2, 3) == 5\n\n\
         def test_env():\n    assert os.environ.get('PYTHONDONTWRITEBYTECODE') == '1'\n",
    ),
];
