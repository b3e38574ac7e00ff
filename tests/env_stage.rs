//! The pipeline's environment stage runs the project's code only in the
//! sandbox the run chose, and records the test runner it settled on.

use std::path::PathBuf;

use smith::pipeline::{Config, Pipeline, SandboxKind};

fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-cache/envs")
}

#[test]
fn with_bubblewrap_the_collection_check_runs_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("probe-repo");
    // Outside the repository and the out dir: a directory of the host the
    // project's code has no business writing to.
    let elsewhere = tempfile::tempdir().unwrap();
    let probe = elsewhere.path().join("conftest-was-here");
    let files = [
        ("calc.py", "def add(a, b):\n    return a + b\n".to_string()),
        (
            "tests/conftest.py",
            format!(
                "try:\n    open({:?}, 'w').write('imported on the host')\nexcept OSError:\n    pass\n",
                probe.display().to_string()
            ),
        ),
        (
            "tests/test_calc.py",
            "from calc import add\n\ndef test_add():\n    assert add(1, 2) == 3\n".to_string(),
        ),
    ];
    for (path, text) in &files {
        let p = repo.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let out = dir.path().join("out");
    let mut config = Config::new(&repo, &out);
    config.cache_dir = Some(cache_dir());
    config.sandbox = SandboxKind::Bwrap;
    let prepared = Pipeline::new(config).prepare().expect("environment builds");
    assert_eq!(prepared.env.collected, Some(1), "{:#?}", prepared.env.steps);
    assert!(
        !probe.exists(),
        "the collection check imported the conftest outside the sandbox"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("env.json")).unwrap()).unwrap();
    let version = record["pytest_version"].as_str().expect("pytest_version");
    assert_eq!(Some(version), prepared.env.pytest_version.as_deref());
    assert!(version.split('.').count() >= 2, "{version}");
}
