//! What test code starts ends with its run: a test that `setsid`s a child
//! which ignores SIGTERM leaves nothing behind once the validation of its
//! candidate returns, in the local sandbox, through the fork server (which
//! stays up for the next candidate).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use smith::env::{build_environment, EnvOptions, LocalSandbox};
use smith::validate::{run_baseline, validate_one, PytestExecutor, ValidateOptions};
use smith::{Candidate, FileChange, Patch, RunOptions, Sandbox, Verdict};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

const CALC: &str = "def add(a, b):\n    return a + b\n";

/// A suite whose every test starts a daemon in a session of its own that
/// ignores SIGTERM and SIGHUP, named by a sleep length unique to the run.
const TESTS: &str = "import os\nimport subprocess\n\nfrom orphans.calc import add\n\n\n\
def _daemon():\n    secs = os.environ['SMITH_ORPHAN_SECS']\n    subprocess.Popen(\n        ['setsid', 'sh', '-c', \"trap '' TERM HUP; sleep \" + secs],\n        start_new_session=True,\n    )\n\n\n\
def test_add():\n    _daemon()\n    assert add(1, 2) == 3\n\n\n\
def test_other():\n    _daemon()\n    assert 2 + 2 == 4\n";

/// Host processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Wait up to two seconds for processes matching `needle` to be gone;
/// the ones still there.
fn left_after_a_moment(needle: &str) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = processes_with(needle);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_setsid_child_that_ignores_sigterm_is_gone_when_its_candidates_validation_ends() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("orphans");
    write(
        &repo,
        &[
            (
                "pyproject.toml",
                "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
                 [project]\nname = \"orphans\"\nversion = \"0.1\"\n\n\
                 [tool.setuptools]\npackages = [\"orphans\"]\n",
            ),
            ("orphans/__init__.py", ""),
            ("orphans/calc.py", CALC),
            ("tests/test_calc.py", TESTS),
        ],
    );
    let env = build_environment(
        &repo,
        &EnvOptions::new(manifest_dir().join("target/test-cache/envs")),
    )
    .expect("environment");
    let sandbox = LocalSandbox::new(&env).unwrap();
    let secs = format!("1300.{}", std::process::id());
    let needle = format!("sleep {secs}");
    let executor = PytestExecutor::new("python", env.spec.test_cmd.clone())
        .forking(true)
        .env("SMITH_ORPHAN_SECS", &secs);
    let mut ws = sandbox.workspace().unwrap();
    let baseline = run_baseline(
        ws.as_mut(),
        &executor,
        2,
        "local/orphans",
        "clean",
        &RunOptions::default(),
    )
    .expect("baseline");
    assert_eq!(baseline.passing.len(), 2, "{baseline:?}");
    assert!(
        executor.served_runs() >= 1,
        "no run went through the fork server"
    );
    assert_eq!(
        left_after_a_moment(&needle),
        Vec::<u32>::new(),
        "after the baseline"
    );

    let bug = Patch::from_changes(&[FileChange::modified(
        "orphans/calc.py",
        CALC,
        CALC.replace("a + b", "a - b"),
    )]);
    let candidate = Candidate::new("local/orphans", "clean", "test/op", vec![], "", bug);
    let served = executor.served_runs();
    let validation = validate_one(
        ws.as_mut(),
        &executor,
        &baseline,
        None,
        &candidate,
        &ValidateOptions::default(),
    )
    .expect("validate");
    assert!(
        matches!(validation.verdict, Verdict::Kept { .. }),
        "{validation:?}"
    );
    assert!(
        executor.served_runs() > served,
        "the candidate's run was not forked"
    );
    // The workspace and its fork server are still there; the daemons are not.
    assert_eq!(
        left_after_a_moment(&needle),
        Vec::<u32>::new(),
        "a test's setsid child outlived its candidate's validation"
    );
    drop(ws);
}
