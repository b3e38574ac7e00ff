//! Sharding: the N shards of a stage, concatenated and sorted by id, equal
//! the unsharded stage's output. Checked through the `smith` binary, as a
//! cluster job runs it.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn smith(args: &[&str], out_dir: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_smith"))
        .arg("--json")
        .args(args)
        .current_dir(common::manifest_dir())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "smith {args:?} ({}): {}",
        out_dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Records sorted by `key`, keeping only `fields` (or all when empty).
fn sorted(mut rs: Vec<Value>, key: &str, fields: &[&str]) -> Vec<Value> {
    rs.sort_by(|a, b| a[key].as_str().cmp(&b[key].as_str()));
    if fields.is_empty() {
        return rs;
    }
    rs.into_iter()
        .map(|r| {
            Value::Object(
                fields
                    .iter()
                    .map(|f| (f.to_string(), r[*f].clone()))
                    .collect(),
            )
        })
        .collect()
}

const N: usize = 3;

#[test]
fn mutate_shards_concatenate_to_the_unsharded_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let demo = common::manifest_dir().join("examples/demo-repo");
    let demo = demo.to_str().unwrap();
    let all = dir.path().join("all/candidates.jsonl");
    smith(
        &["mutate", demo, "--out", all.to_str().unwrap()],
        dir.path(),
    );
    let mut joined = Vec::new();
    let mut sizes = Vec::new();
    for k in 0..N {
        let out = dir.path().join(format!("shard{k}/candidates.jsonl"));
        let shard = format!("{k}/{N}");
        smith(
            &[
                "mutate",
                demo,
                "--shard",
                &shard,
                "--out",
                out.to_str().unwrap(),
            ],
            dir.path(),
        );
        let rs = records(&out);
        sizes.push(rs.len());
        joined.extend(rs);
    }
    let all = records(&all);
    assert!(all.len() > 100, "{} candidates", all.len());
    assert!(
        sizes.iter().all(|&s| s > 0 && s < all.len()),
        "every shard holds a proper part: {sizes:?}"
    );
    assert_eq!(joined.len(), all.len(), "no candidate in two shards");
    assert_eq!(sorted(joined, "id", &[]), sorted(all, "id", &[]));
}

#[test]
fn run_shards_concatenate_to_the_unsharded_validations_and_instances() {
    let dir = tempfile::tempdir().unwrap();
    let demo = common::manifest_dir().join("examples/demo-repo");
    let demo = demo.to_str().unwrap();
    let cache = common::env_cache();
    // Few candidates and no sampling: sampling picks from what a shard has,
    // so sharded runs agree with an unsharded run only without it.
    let strategies = "func_pm_remove_break,func_pm_const_flip_bool,func_pm_ctrl_invert_if";
    let run = |out: &Path, shard: Option<String>| {
        let mut args = vec![
            "run",
            demo,
            "--out",
            out.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--strategies",
            strategies,
            "--baseline-runs",
            "1",
            "--workers",
            "2",
            // Combining needs every kept bug at once; sharded runs skip it.
            "--no-combine",
        ];
        let shard = shard.unwrap_or_default();
        if !shard.is_empty() {
            args.extend(["--shard", &shard]);
        }
        smith(&args, out);
    };
    let all = dir.path().join("all");
    run(&all, None);
    let (mut validations, mut instances) = (Vec::new(), Vec::new());
    for k in 0..N {
        let out = dir.path().join(format!("shard{k}"));
        // Shards share the clean tree's baseline and coverage map, as cluster
        // jobs do; the pipeline reuses them because the commit matches.
        std::fs::create_dir_all(&out).unwrap();
        for f in ["baseline.json", "coverage.json"] {
            std::fs::copy(all.join(f), out.join(f)).unwrap();
        }
        run(&out, Some(format!("{k}/{N}")));
        validations.extend(records(&out.join("validations.jsonl")));
        instances.extend(records(&out.join("instances.jsonl")));
    }
    let v_all = records(&all.join("validations.jsonl"));
    assert!(v_all.len() >= 6, "{} validations", v_all.len());
    let v_fields = [
        "candidate_id",
        "strategy",
        "verdict",
        "FAIL_TO_PASS",
        "PASS_TO_PASS",
        "selected",
    ];
    assert_eq!(validations.len(), v_all.len());
    assert_eq!(
        sorted(validations, "candidate_id", &v_fields),
        sorted(v_all, "candidate_id", &v_fields)
    );
    // Everything but the creation time is the same.
    let i_all = records(&all.join("instances.jsonl"));
    assert!(!i_all.is_empty());
    let i_fields = [
        "instance_id",
        "patch",
        "FAIL_TO_PASS",
        "PASS_TO_PASS",
        "problem_statement",
        "base_commit",
        "image_name",
    ];
    assert_eq!(
        sorted(instances, "instance_id", &i_fields),
        sorted(i_all, "instance_id", &i_fields)
    );
}
