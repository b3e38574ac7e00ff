//! `smith validate --candidates F` ends in task instances: an external
//! candidates file becomes tasks in one command.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn smith(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_smith"))
        .arg("--json")
        .args(args)
        .current_dir(common::manifest_dir())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "smith {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn validating_a_candidates_file_writes_instances() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = common::manifest_dir().join("examples/demo-repo");
    let demo = demo.to_str().unwrap();
    let all = tmp.path().join("mutate/candidates.jsonl");
    smith(&[
        "mutate",
        demo,
        "--out",
        all.to_str().unwrap(),
        "--strategies",
        "func_pm_op_change",
    ]);
    // An external file: a few of those candidates.
    let candidates: Vec<smith::Candidate> = smith::store::read_jsonl(&all).unwrap();
    assert!(candidates.len() >= 3);
    let file = tmp.path().join("external.jsonl");
    smith::store::write_jsonl(&file, &candidates[..3]).unwrap();

    let out = tmp.path().join("out");
    let cache = common::env_cache();
    let summary = smith(&[
        "validate",
        demo,
        "--out",
        out.to_str().unwrap(),
        "--candidates",
        file.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--baseline-runs",
        "2",
        "--workers",
        "2",
    ]);
    let kept = summary["kept"].as_u64().unwrap();
    assert!(kept >= 1, "{summary:#}");
    assert_eq!(summary["instances"], kept);
    let path = Path::new(summary["instances_path"].as_str().unwrap());
    let instances: Vec<smith::TaskInstance> = smith::store::read_jsonl(path).unwrap();
    assert_eq!(instances.len() as u64, kept);
    let ids: Vec<&str> = candidates[..3].iter().map(|c| c.id.as_str()).collect();
    for i in &instances {
        assert!(ids.contains(&i.candidate_id.as_str()));
        assert!(!i.problem_statement.is_empty());
        assert!(!i.fail_to_pass.is_empty());
    }
}
