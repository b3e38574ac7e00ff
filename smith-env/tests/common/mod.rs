//! Shared helpers for smith-env's integration tests: a small Python project
//! written into a temp dir, and one venv cache reused by every test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The venv cache shared by all tests (under the workspace's `target/`), so a
/// clean clone builds each fixture venv once and reruns reuse it.
pub(crate) fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("smith-env-test-cache")
}

/// Write `files` under a new temp dir.
pub(crate) fn write_repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("smith-env-fixture-")
        .tempdir()
        .unwrap();
    write_files(dir.path(), files);
    dir
}

/// Write `files` under `root`.
pub(crate) fn write_files(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// A src-layout package `calc` with a `tests` extra and two tests.
pub(crate) const CALC: &[(&str, &str)] = &[
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

/// A copy of `smith-env/tests/fixtures/<name>` in a new temp dir (builds
/// key their venvs by the repository's path, and some tests change it).
pub(crate) fn copy_fixture(name: &str) -> tempfile::TempDir {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name);
    let dir = tempfile::Builder::new()
        .prefix(&format!("smith-env-{name}-"))
        .tempdir()
        .unwrap();
    copy_dir(&from, dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dst = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            copy_dir(&entry.path(), &dst);
        } else {
            std::fs::copy(entry.path(), dst).unwrap();
        }
    }
}

/// Run `python args...` in a new local workspace of `env`; its stdout.
pub(crate) fn run_in_workspace(
    env: &smith_env::Environment,
    args: &[&str],
) -> smith_core::RunOutput {
    use smith_core::Sandbox;
    let sandbox = smith_env::LocalSandbox::new(env).unwrap();
    let mut ws = sandbox.workspace().unwrap();
    ws.run(
        &smith_core::CommandSpec::new("python", args.iter().copied()),
        &smith_core::RunOptions::default(),
    )
    .unwrap()
}
