//! Compatibility with SWE-bench's own Python code, pip-installed into a
//! virtualenv under `target/test-cache` (made once, reused): our instances
//! load with its dataset loader, its pytest log parser reads our logs as
//! ours does, and its grading functions agree with ours on which
//! predictions resolve their instance.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};

use smith::grade::{GradeOptions, Grader, InstanceReport, Prediction};
use smith::{Outcome, Patch, TaskInstance, TestId};

/// The interpreter of a venv with `swebench` installed.
fn swebench_python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let venv = common::manifest_dir().join("target/test-cache/swebench-venv");
        let python = venv.join("bin/python");
        let ready = venv.join(".smith-ready");
        std::fs::create_dir_all(venv.parent().unwrap()).unwrap();
        let lock = std::fs::File::create(venv.with_extension("lock")).unwrap();
        lock.lock().unwrap();
        if !ready.exists() {
            let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
            if !python.exists() {
                assert!(ok(Command::new("python3").args(["-m", "venv"]).arg(&venv)));
            }
            assert!(
                ok(Command::new(&python).args(["-m", "pip", "install", "-q", "swebench"])),
                "pip install swebench"
            );
            std::fs::write(&ready, "").unwrap();
        }
        lock.unlock().unwrap();
        python
    })
}

/// Run a Python snippet with `input` as JSON on stdin; parse its stdout.
fn python(script: &str, input: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in.json");
    std::fs::write(&inp, serde_json::to_vec(input).unwrap()).unwrap();
    let out = Command::new(swebench_python())
        .arg("-c")
        .arg(script)
        .arg(&inp)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// SWE-bench's parser splits summary lines on whitespace, so it keys a test
/// whose id holds a space (a parametrized string with spaces) by the id's
/// first word, and several such tests can share one key. Its datasets hold
/// those ids cut the same way.
fn swebench_id(id: &str) -> &str {
    id.split_whitespace().next().unwrap_or(id)
}

/// Check SWE-bench's status map against ours: equal on ids without
/// whitespace; ids with whitespace appear under their first word, with the
/// outcome of one of the tests cut to it. Returns how many ids were cut.
fn assert_same_outcomes(theirs: &Value, ours: &BTreeMap<String, &str>, what: &str) -> usize {
    let theirs = theirs.as_object().unwrap();
    let mut cut: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, status) in ours {
        if swebench_id(id) == id {
            assert_eq!(theirs.get(id), Some(&json!(status)), "{what}: {id}");
        } else {
            cut.entry(swebench_id(id)).or_default().push(status);
        }
    }
    for (key, statuses) in &cut {
        let got = theirs.get(*key).and_then(|v| v.as_str());
        assert!(
            got.is_some_and(|g| statuses.contains(&g)),
            "{what}: {key} is {got:?}, not one of {statuses:?}"
        );
    }
    let expected = ours
        .keys()
        .filter(|id| swebench_id(id) == id.as_str())
        .count()
        + cut.len();
    assert_eq!(theirs.len(), expected, "{what}: no other keys");
    ours.keys()
        .filter(|id| swebench_id(id) != id.as_str())
        .count()
}

fn status_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Passed => "PASSED",
        Outcome::Failed => "FAILED",
        Outcome::Error => "ERROR",
        Outcome::Skipped => "SKIPPED",
        Outcome::XFailed => "XFAIL",
        Outcome::XPassed => "XPASS",
    }
}

#[test]
fn our_instances_load_with_swebench_dataset_loader() {
    let path = common::demo_run().join("instances.jsonl");
    let ours = common::demo_instances();
    let got = python(
        r#"
import json, sys
from swebench.harness.utils import load_swebench_dataset
from swebench.types import SWEbenchInstance
path = json.load(open(sys.argv[1]))["path"]
ds = load_swebench_dataset(path, instance_ids=None)
missing = sorted(set(SWEbenchInstance.__annotations__) - set(ds[0]))
# The loader is also asked for a subset by id, as the harness does.
one = load_swebench_dataset(path, instance_ids=[ds[-1]["instance_id"]])
print(json.dumps({"ids": [d["instance_id"] for d in ds], "f2p": [d["FAIL_TO_PASS"] for d in ds],
                  "missing": missing, "subset": [d["instance_id"] for d in one]}))
"#,
        &json!({ "path": path }),
    );
    let ids: Vec<&str> = ours.iter().map(|i| i.instance_id.as_str()).collect();
    assert_eq!(got["ids"], json!(ids));
    assert_eq!(got["subset"], json!([ids[ids.len() - 1]]));
    let f2p: Vec<&Vec<TestId>> = ours.iter().map(|i| &i.fail_to_pass).collect();
    assert_eq!(got["f2p"], json!(f2p));
    // Every field of SWE-bench's instance type is there; the environment is
    // set up at the base commit.
    assert_eq!(got["missing"], json!([]));
    for i in &ours {
        assert_eq!(
            i.environment_setup_commit, i.base_commit,
            "{}",
            i.instance_id
        );
    }
}

/// Grade a set of predictions with our grader, keeping the test logs.
fn graded(
    instances: &[TaskInstance],
    preds: &[(TaskInstance, Prediction)],
) -> Vec<(TaskInstance, InstanceReport)> {
    let grader = Grader::from_run_dir(common::demo_run())
        .unwrap()
        .with_options(GradeOptions {
            workers: 2,
            run_empty: true,
            ..Default::default()
        });
    let _ = instances;
    std::thread::scope(|s| {
        let handles: Vec<_> = preds
            .chunks(preds.len().div_ceil(2).max(1))
            .map(|chunk| {
                let grader = &grader;
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|(i, p)| (i.clone(), grader.grade_one(i, p).unwrap()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// Gold, empty, and "gold plus another bug" predictions for the instances.
fn predictions(instances: &[TaskInstance]) -> Vec<(TaskInstance, Prediction)> {
    let mut out = Vec::new();
    for (n, i) in instances.iter().enumerate() {
        out.push((i.clone(), Prediction::gold(i)));
        out.push((i.clone(), Prediction::new(&i.instance_id, "", "empty")));
        // Fix this bug and plant another one in a different file: resolved
        // only when the other bug breaks none of this instance's tests.
        let files = Patch::from_text(i.patch.clone()).paths().unwrap();
        if let Some(other) = instances.iter().skip(n + 1).find(|o| {
            Patch::from_text(o.patch.clone())
                .paths()
                .unwrap()
                .iter()
                .all(|f| !files.contains(f))
        }) {
            let mut patch = Patch::from_text(i.patch.clone())
                .reverse()
                .as_str()
                .to_string();
            patch.push_str(&other.patch);
            out.push((
                i.clone(),
                Prediction::new(&i.instance_id, patch, "gold+bug"),
            ));
        }
    }
    out
}

const SWEBENCH_GRADE: &str = r#"
import json, sys
from swebench.harness.log_parsers.python import parse_log_pytest
from swebench.harness.grading import get_eval_tests_report, get_resolution_status
from swebench.harness.constants import FAIL_TO_PASS, PASS_TO_PASS, ResolvedStatus
cases = json.load(open(sys.argv[1]))
out = []
for c in cases:
    sm = parse_log_pytest(c["log"], None)
    rep = get_eval_tests_report(sm, {FAIL_TO_PASS: c["f2p"], PASS_TO_PASS: c["p2p"]})
    out.append({"status_map": sm, "report": {k: rep[k] for k in (FAIL_TO_PASS, PASS_TO_PASS)},
                "resolved": get_resolution_status(rep) == ResolvedStatus.FULL.value})
print(json.dumps(out))
"#;

#[test]
fn swebench_parser_and_grading_agree_with_ours() {
    let instances = common::demo_instances();
    let preds = predictions(&instances);
    let results = graded(&instances, &preds);
    let cases: Vec<Value> = results
        .iter()
        .map(|(i, r)| {
            // As SWE-bench's own datasets store them: ids cut at whitespace.
            fn cut(ts: &[TestId]) -> Vec<&str> {
                let mut v: Vec<&str> = ts.iter().map(|t| swebench_id(t.as_str())).collect();
                v.dedup();
                v
            }
            json!({
                "log": r.test_output,
                "f2p": cut(&i.fail_to_pass),
                "p2p": cut(&i.pass_to_pass),
            })
        })
        .collect();
    let theirs = python(SWEBENCH_GRADE, &Value::Array(cases));
    let theirs = theirs.as_array().unwrap();
    assert_eq!(theirs.len(), results.len());
    let (mut resolved, mut unresolved, mut cut_ids) = (0, 0, 0);
    for ((inst, ours), t) in results.iter().zip(theirs) {
        let what = format!("{} ({})", inst.instance_id, ours.test_output.len());
        // The same outcomes from the same log.
        let our_map: BTreeMap<String, &str> = smith::validate::parse_pytest_log(&ours.test_output)
            .into_iter()
            .map(|(k, v)| (k.0, status_name(v)))
            .collect();
        assert!(!our_map.is_empty(), "{what}: no outcomes parsed");
        cut_ids += assert_same_outcomes(&t["status_map"], &our_map, &what);
        // The same verdict, and the same per-test lists on uncut ids.
        assert_eq!(t["resolved"], json!(ours.resolved), "{what}: {t}");
        let status = ours.tests_status.as_ref().unwrap();
        for (group, sf) in [
            ("FAIL_TO_PASS", &status.fail_to_pass),
            ("PASS_TO_PASS", &status.pass_to_pass),
        ] {
            for (side, list) in [("success", &sf.success), ("failure", &sf.failure)] {
                let theirs: BTreeSet<&str> = t["report"][group][side]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect();
                for id in list
                    .iter()
                    .map(|t| t.as_str())
                    .filter(|id| swebench_id(id) == *id)
                {
                    assert!(theirs.contains(id), "{what}: {group} {side} lacks {id}");
                }
            }
        }
        if ours.resolved {
            resolved += 1;
        } else {
            unresolved += 1;
        }
    }
    assert!(resolved >= instances.len(), "every gold fix resolves");
    assert!(unresolved >= instances.len(), "no empty patch resolves");
    // The demo suite has parametrized ids with spaces: the cut path ran.
    assert!(cut_ids > 0);
}

#[test]
fn swebench_parser_reads_the_validation_logs_like_ours() {
    let records: Vec<Value> =
        smith::store::read_jsonl(&common::demo_run().join("validations.jsonl")).unwrap();
    let logs: Vec<&str> = records
        .iter()
        .filter_map(|r| r["log"].as_str())
        .filter(|l| !l.is_empty())
        .collect();
    assert!(logs.len() >= 5, "{} logs", logs.len());
    let cases: Vec<Value> = logs
        .iter()
        .map(|l| json!({ "log": l, "f2p": [], "p2p": [] }))
        .collect();
    let theirs = python(SWEBENCH_GRADE, &Value::Array(cases));
    for (log, t) in logs.iter().zip(theirs.as_array().unwrap()) {
        let ours: BTreeMap<String, &str> = smith::validate::parse_pytest_log(log)
            .into_iter()
            .map(|(k, v)| (k.0, status_name(v)))
            .collect();
        assert_same_outcomes(&t["status_map"], &ours, "validation log");
    }
}
