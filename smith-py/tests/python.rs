//! Builds the `smith` wheel with maturin (through `scripts/python.sh`),
//! installs it into a virtualenv under `target/` together with pytest and
//! mini-swe-agent from PyPI, and runs the Python tests in
//! `smith-py/tests/python/` on the demo repository. The virtualenv is kept
//! between runs, keyed by its requirements and the interpreter's version.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What the test virtualenv holds besides the wheel.
const REQUIREMENTS: &[&str] = &["maturin>=1.5,<2", "pytest", "mini-swe-agent"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("smith-py lives in the workspace")
        .to_path_buf()
}

/// FNV-1a: a hash that stays the same across Rust versions.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not start: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// The test virtualenv, made (once per requirements) if missing.
fn venv(cache: &Path) -> PathBuf {
    let version = run(
        Command::new("python3").arg("--version"),
        "python3 --version",
    );
    let key = format!(
        "{}\n{}",
        String::from_utf8_lossy(&version.stdout).trim(),
        REQUIREMENTS.join("\n")
    );
    let venv = cache.join(format!("py-venv-{:016x}", fnv(&key)));
    let ready = venv.join(".smith-ready");
    if !ready.exists() {
        let _ = std::fs::remove_dir_all(&venv);
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        );
        run(
            Command::new(venv.join("bin/python"))
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
                .args(REQUIREMENTS),
            "pip install of the test requirements",
        );
        std::fs::write(&ready, key).unwrap();
    }
    venv
}

#[test]
fn python_tests_pass_against_the_built_wheel() {
    let root = workspace_root();
    let cache = root.join("target/test-cache");
    std::fs::create_dir_all(&cache).unwrap();
    // One build and one pytest run at a time over the shared venv.
    let lock = File::create(cache.join("py-venv.lock")).unwrap();
    lock.lock().unwrap();

    let venv = venv(&cache);
    run(
        Command::new("bash")
            .arg(root.join("scripts/python.sh"))
            .arg(&venv)
            .arg("--debug")
            .current_dir(&root),
        "scripts/python.sh (maturin build and install)",
    );
    let out = run(
        Command::new(venv.join("bin/python"))
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE"])
            .arg(root.join("smith-py/tests/python"))
            .env("SMITH_TEST_RUN_DIR", cache.join("py-demo-run"))
            .env("SMITH_TEST_ENV_CACHE", cache.join("envs"))
            .current_dir(&root),
        "pytest smith-py/tests/python",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        text.contains(" passed") && !text.contains(" failed") && !text.contains(" skipped"),
        "pytest ran no tests or skipped some:\n{text}"
    );
    lock.unlock().unwrap();
}
