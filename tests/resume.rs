//! A run killed with SIGKILL in the middle of validation, then started again
//! with the same arguments, ends with the same records as a run that was
//! never interrupted: nothing lost, nothing twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn smith_run(out: &Path) -> Command {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smith"));
    cmd.arg("run")
        .arg(root.join("examples/demo-repo"))
        .arg("--out")
        .arg(out)
        .arg("--cache-dir")
        .arg(root.join("target/test-cache/envs"))
        .args([
            "--max-candidates",
            "24",
            "--baseline-runs",
            "1",
            "--workers",
            "2",
            "--seed",
            "7",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// candidate id → (verdict label, F2P) from a validations file.
fn verdicts(path: &Path) -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = v["candidate_id"].as_str().unwrap().to_string();
        let label = v["verdict"].as_str().unwrap().to_string();
        let f2p = v
            .get("FAIL_TO_PASS")
            .map(|f| f.to_string())
            .unwrap_or_default();
        assert!(
            out.insert(id.clone(), (label, f2p)).is_none(),
            "{id} recorded twice"
        );
    }
    out
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn a_killed_run_resumes_without_loss_or_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    assert!(smith_run(&whole).status().unwrap().success());

    let killed = tmp.path().join("killed");
    let validations = killed.join("validations.jsonl");
    let mut child = smith_run(&killed).spawn().unwrap();
    let started = Instant::now();
    while lines(&validations) < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "validation never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = lines(&validations);
    assert!(partial < 24, "killed after {partial} of 24");

    assert!(smith_run(&killed).status().unwrap().success());
    let resumed = verdicts(&validations);
    let expected = verdicts(&whole.join("validations.jsonl"));
    // 24 sampled candidates, then the combinations of the kept ones.
    assert!(expected.len() >= 24, "{} validations", expected.len());
    assert_eq!(resumed, expected);
    assert_eq!(
        lines(&killed.join("instances.jsonl")),
        lines(&whole.join("instances.jsonl"))
    );
}
