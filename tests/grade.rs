//! Grading predictions end to end on tasks generated from the demo
//! repository, with real pytest: gold fixes resolve, empty patches do not,
//! a fix of half of a two-file bug leaves exactly the other half's tests
//! failing, and patches that do not apply are reported as such.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use smith::grade::{GradeOptions, Grader, Prediction, Report};
use smith::{Patch, TaskInstance, TestId};

fn grader(workers: usize) -> Grader {
    Grader::from_run_dir(common::demo_run())
        .expect("grader from the run dir")
        .with_options(GradeOptions {
            workers,
            ..Default::default()
        })
}

fn ids(instances: &[TaskInstance]) -> Vec<String> {
    let mut v: Vec<String> = instances.iter().map(|i| i.instance_id.clone()).collect();
    v.sort();
    v
}

fn sorted(tests: &[TestId]) -> Vec<TestId> {
    let mut v = tests.to_vec();
    v.sort();
    v
}

#[test]
fn gold_fixes_resolve_every_instance() {
    let instances = common::demo_instances();
    assert!(
        instances.len() >= 4,
        "too few instances: {}",
        instances.len()
    );
    let preds: Vec<Prediction> = instances.iter().map(Prediction::gold).collect();
    let report = grader(2).grade(&instances, &preds).unwrap();
    assert_eq!(report.resolved_ids, ids(&instances), "{report:#?}");
    assert_eq!(report.total_instances, instances.len());
    assert_eq!(report.completed_instances, instances.len());
    assert_eq!(report.unresolved_instances + report.error_instances, 0);
    for i in &instances {
        let r = &report.instances[&i.instance_id];
        assert!(r.patch_exists && r.patch_successfully_applied && !r.patch_is_none);
        let s = r.tests_status.as_ref().unwrap();
        assert_eq!(sorted(&s.fail_to_pass.success), sorted(&i.fail_to_pass));
        assert_eq!(sorted(&s.pass_to_pass.success), sorted(&i.pass_to_pass));
    }
}

#[test]
fn empty_patches_are_never_resolved() {
    let instances = common::demo_instances();
    let mut preds: Vec<Prediction> = instances
        .iter()
        .map(|i| Prediction::new(&i.instance_id, "", "empty"))
        .collect();
    // One null patch: SWE-bench distinguishes it from an empty one.
    preds[0].model_patch = None;
    let report = grader(2).grade(&instances, &preds).unwrap();
    assert!(report.resolved_ids.is_empty());
    assert_eq!(report.empty_patch_ids, ids(&instances));
    assert_eq!(report.completed_instances, 0);
    assert!(report.instances[&instances[0].instance_id].patch_is_none);

    // Run anyway: the buggy tree fails every FAIL_TO_PASS test and keeps
    // every PASS_TO_PASS test.
    let report = grader(2)
        .with_options(GradeOptions {
            workers: 2,
            run_empty: true,
            ..Default::default()
        })
        .grade(&instances, &preds)
        .unwrap();
    assert!(report.resolved_ids.is_empty());
    for i in &instances {
        let s = report.instances[&i.instance_id]
            .tests_status
            .clone()
            .expect("tests ran");
        assert_eq!(sorted(&s.fail_to_pass.failure), sorted(&i.fail_to_pass));
        assert!(s.fail_to_pass.success.is_empty());
        assert!(s.pass_to_pass.failure.is_empty(), "{:?}", s.pass_to_pass);
    }
}

/// Two instances whose bugs are in different files, preferring disjoint
/// FAIL_TO_PASS lists.
fn two_file_pair(instances: &[TaskInstance]) -> (TaskInstance, TaskInstance) {
    let files = |i: &TaskInstance| -> BTreeSet<String> {
        Patch::from_text(i.patch.clone())
            .paths()
            .unwrap()
            .into_iter()
            .collect()
    };
    let mut fallback = None;
    for (n, a) in instances.iter().enumerate() {
        for b in &instances[n + 1..] {
            if !files(a).is_disjoint(&files(b)) {
                continue;
            }
            let fa: BTreeSet<_> = a.fail_to_pass.iter().collect();
            if b.fail_to_pass.iter().all(|t| !fa.contains(t)) {
                return (a.clone(), b.clone());
            }
            fallback.get_or_insert((a.clone(), b.clone()));
        }
    }
    fallback.expect("two instances with bugs in different files")
}

#[test]
fn fixing_half_of_a_two_file_bug_is_unresolved_with_the_other_halfs_tests_failing() {
    let instances = common::demo_instances();
    let (a, b) = two_file_pair(&instances);
    let mut patch = a.patch.clone();
    if !patch.ends_with('\n') {
        patch.push('\n');
    }
    patch.push_str(&b.patch);

    // Label the combined bug by running it: of the tests either bug breaks or
    // keeps, those failing on the combined tree are its FAIL_TO_PASS.
    let mut probe = a.clone();
    probe.instance_id = "combined".into();
    probe.patch = patch.clone();
    let candidates: BTreeSet<TestId> = a
        .fail_to_pass
        .iter()
        .chain(&b.fail_to_pass)
        .chain(a.pass_to_pass.iter().filter(|t| b.pass_to_pass.contains(t)))
        .cloned()
        .collect();
    probe.fail_to_pass = Vec::new();
    probe.pass_to_pass = candidates.into_iter().collect();
    let g = grader(1);
    let run = g
        .grade_one(&probe, &Prediction::new("combined", "", "probe"))
        .unwrap_or_else(|e| panic!("{e}"));
    // Empty predictions are not run unless asked.
    assert!(run.tests_status.is_none());
    let g = grader(1).with_options(GradeOptions {
        workers: 1,
        run_empty: true,
        ..Default::default()
    });
    let run = g
        .grade_one(&probe, &Prediction::new("combined", "", "probe"))
        .unwrap();
    let s = run.tests_status.unwrap();
    let mut combined = probe.clone();
    combined.fail_to_pass = s.pass_to_pass.failure.clone();
    combined.pass_to_pass = s.pass_to_pass.success.clone();
    let f2p: BTreeSet<&TestId> = combined.fail_to_pass.iter().collect();
    for t in a.fail_to_pass.iter().chain(&b.fail_to_pass) {
        assert!(f2p.contains(t), "{t} passes with both bugs in");
    }

    // Only a's half fixed: b's tests still fail, a's pass.
    let half = Patch::from_text(a.patch.clone()).reverse();
    let r = g
        .grade_one(
            &combined,
            &Prediction::new("combined", half.as_str(), "half"),
        )
        .unwrap();
    assert!(r.patch_successfully_applied && !r.resolved, "{r:?}");
    let s = r.tests_status.unwrap();
    let still: BTreeSet<&TestId> = combined
        .fail_to_pass
        .iter()
        .filter(|t| b.fail_to_pass.contains(t))
        .collect();
    assert_eq!(
        s.fail_to_pass.failure.iter().collect::<BTreeSet<_>>(),
        still,
        "exactly b's tests still fail"
    );
    assert_eq!(
        s.fail_to_pass.success.len(),
        combined.fail_to_pass.len() - still.len()
    );

    // The whole gold fix resolves it.
    let gold = Patch::from_text(patch).reverse();
    let r = g
        .grade_one(
            &combined,
            &Prediction::new("combined", gold.as_str(), "gold"),
        )
        .unwrap();
    assert!(r.resolved, "{r:?}");
}

#[test]
fn unappliable_patches_are_errors_not_crashes() {
    let instances = common::demo_instances();
    let i = &instances[0];
    let junk = "--- a/src/tallyho/nothing.py\n+++ b/src/tallyho/nothing.py\n@@ -1,2 +1,2 @@\n-this line\n+is not there\n context\n";
    // The gold fix applied twice: the second time it no longer matches.
    let gold = Prediction::gold(i);
    let report = grader(2)
        .grade(
            &instances[..2],
            &[Prediction::new(&i.instance_id, junk, "junk"), gold.clone()],
        )
        .unwrap();
    // The last prediction for an id wins, as in a JSON object keyed by id.
    assert_eq!(report.resolved_ids, vec![i.instance_id.clone()]);
    assert_eq!(
        report.incomplete_ids,
        vec![instances[1].instance_id.clone()]
    );

    let report = grader(2)
        .grade(&instances, &[Prediction::new(&i.instance_id, junk, "junk")])
        .unwrap();
    assert_eq!(report.error_ids, vec![i.instance_id.clone()]);
    let r = &report.instances[&i.instance_id];
    assert!(r.patch_exists && !r.patch_successfully_applied && !r.resolved);
    assert!(
        r.error.as_deref().unwrap().contains("did not apply"),
        "{r:?}"
    );
    assert_eq!(report.incomplete_ids.len(), instances.len() - 1);
}

#[test]
fn the_grade_command_writes_a_swebench_report() {
    let instances = common::demo_instances();
    let dir = tempfile::tempdir().unwrap();
    let preds = dir.path().join("preds.jsonl");
    let chosen = &instances[..3];
    let list = vec![
        Prediction::gold(&chosen[0]),
        Prediction::new(&chosen[1].instance_id, "", "m"),
        Prediction::new(
            &chosen[2].instance_id,
            "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n",
            "m",
        ),
    ];
    smith::store::write_jsonl(&preds, &list).unwrap();
    let out = dir.path().join("report.json");
    let run = common::demo_run();
    let output = Command::new(env!("CARGO_BIN_EXE_smith"))
        .args(["--json", "grade", "--workers", "2", "--instances"])
        .arg(run.join("instances.jsonl"))
        .arg("--predictions")
        .arg(&preds)
        .arg("--run-dir")
        .arg(run)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Report = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    for key in [
        "total_instances",
        "submitted_instances",
        "completed_instances",
        "resolved_instances",
        "unresolved_instances",
        "empty_patch_instances",
        "error_instances",
        "resolved_ids",
        "unresolved_ids",
        "empty_patch_ids",
        "error_ids",
    ] {
        assert!(raw.get(key).is_some(), "report lacks {key}");
    }
    let first = &raw["instances"][&chosen[0].instance_id];
    for key in [
        "patch_is_None",
        "patch_exists",
        "patch_successfully_applied",
        "resolved",
    ] {
        assert!(first.get(key).is_some(), "instance report lacks {key}");
    }
    assert!(first["tests_status"]["FAIL_TO_PASS"]["success"].is_array());
    assert_eq!(report.resolved_ids, vec![chosen[0].instance_id.clone()]);
    assert_eq!(report.empty_patch_ids, vec![chosen[1].instance_id.clone()]);
    assert_eq!(report.error_ids, vec![chosen[2].instance_id.clone()]);
    let stdout: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stdout["resolved_instances"], 1);
}

/// `smith grade` right after `smith run` finds the run's environment from
/// the instances file it is given, or from `smith-out` with no path at all;
/// a file outside any run is named, with what to pass.
#[test]
fn grade_finds_the_run_from_its_instances_file() {
    let instances = common::demo_instances();
    let run = common::demo_run();
    let dir = tempfile::tempdir().unwrap();
    let preds = dir.path().join("preds.jsonl");
    smith::store::write_jsonl(&preds, &[Prediction::gold(&instances[0])]).unwrap();
    let grade = |cwd: &std::path::Path, args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_smith"))
            .args(["--json", "grade", "--workers", "2", "--predictions"])
            .arg(&preds)
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap()
    };
    let resolved = |out: &std::process::Output| -> u64 {
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["resolved_instances"].as_u64().unwrap()
    };
    // Only the instances file, from elsewhere.
    let by_file = grade(
        dir.path(),
        &[
            "--instances".as_ref(),
            run.join("instances.jsonl").as_os_str(),
        ],
    );
    assert_eq!(resolved(&by_file), 1);
    // Nothing at all, beside the run's `smith-out`.
    let beside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(run, beside.path().join("smith-out")).unwrap();
    assert_eq!(resolved(&grade(beside.path(), &[])), 1);
    // Instances copied out of their run: the message says what to pass.
    let picked = dir.path().join("picked.jsonl");
    smith::store::write_jsonl(&picked, &instances[..1]).unwrap();
    let out = grade(dir.path(), &["--instances".as_ref(), picked.as_os_str()]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(
        said.contains("pass --run-dir") && said.contains("not the output directory"),
        "{said}"
    );
    let with_run_dir = grade(
        dir.path(),
        &[
            "--instances".as_ref(),
            picked.as_os_str(),
            "--run-dir".as_ref(),
            run.as_os_str(),
        ],
    );
    assert_eq!(resolved(&with_run_dir), 1);
}
