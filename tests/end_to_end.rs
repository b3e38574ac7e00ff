//! The whole pipeline on the bundled demo repository, then an independent
//! re-check of every emitted instance with real `git apply` and real pytest,
//! sharing none of the pipeline's bookkeeping.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use smith::pipeline::{Config, Pipeline};
use smith::TaskInstance;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cache_dir() -> PathBuf {
    manifest_dir().join("target/test-cache/envs")
}

fn sh(dir: &Path, program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

/// Passing and failing ids from pytest's `-rA` short summary, parsed here on
/// purpose without smith's own parser. A module that fails to import is
/// reported as `ERROR path/to/test_file.py`; each asked-for id in it counts
/// as failed. `--continue-on-collection-errors` keeps one broken module from
/// hiding the outcomes of all the others; for the same reason pytest is
/// given the test files, not the ids (an id in a module that cannot be
/// imported makes pytest run nothing at all).
fn pytest_outcomes(
    python: &Path,
    dir: &Path,
    pythonpath: &str,
    ids: &[&str],
) -> (BTreeSet<String>, BTreeSet<String>) {
    let out = Command::new(python)
        .args([
            "-m",
            "pytest",
            "-rA",
            "-p",
            "no:cacheprovider",
            "-q",
            "--continue-on-collection-errors",
        ])
        .args(
            ids.iter()
                .map(|t| t.split("::").next().unwrap_or(t))
                .collect::<BTreeSet<_>>(),
        )
        .current_dir(dir)
        .env("PYTHONPATH", pythonpath)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run pytest");
    let log = String::from_utf8_lossy(&out.stdout);
    let (mut passed, mut failed) = (BTreeSet::new(), BTreeSet::new());
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("PASSED ") {
            passed.insert(rest.trim().to_string());
        } else if let Some(rest) = line
            .strip_prefix("FAILED ")
            .or_else(|| line.strip_prefix("ERROR "))
        {
            let id = rest.split(" - ").next().unwrap_or(rest).trim();
            if id.contains("::") {
                failed.insert(id.to_string());
            } else {
                let in_file = ids.iter().filter(|t| t.split("::").next() == Some(id));
                failed.extend(in_file.map(|t| t.to_string()));
            }
        }
    }
    (passed, failed)
}

#[test]
fn demo_repo_tasks_hold_up_to_an_independent_check() {
    let out = tempfile::tempdir().unwrap();
    let mut config = Config::new(manifest_dir().join("examples/demo-repo"), out.path());
    config.cache_dir = Some(cache_dir());
    config.max_candidates = Some(80);
    config.baseline_runs = 2;
    let summary = Pipeline::new(config).run().expect("pipeline runs");
    let text = std::fs::read_to_string(&summary.instances_path).unwrap();
    let instances: Vec<TaskInstance> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(instances.len(), summary.instances);
    assert!(
        instances.len() >= 10,
        "only {} instances: {summary:?}",
        instances.len()
    );
    let ids: BTreeSet<&str> = instances.iter().map(|i| i.instance_id.as_str()).collect();
    assert_eq!(ids.len(), instances.len(), "instance ids are unique");

    // A fresh copy of the demo repository, as a git repository.
    let fresh = tempfile::tempdir().unwrap();
    let copy = fresh.path().join("repo");
    let status = Command::new("cp")
        .args(["-r"])
        .arg(manifest_dir().join("examples/demo-repo"))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "clean",
        ],
    ] {
        assert!(sh(&copy, "git", args).status.success());
    }
    let env: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("env.json")).unwrap())
            .unwrap();
    // Every instance names the runner its labels were observed with: the
    // environment's pytest.
    let runner = format!(
        "pytest {}",
        env["pytest_version"]
            .as_str()
            .expect("env.json records pytest's version")
    );
    assert!(
        instances.iter().all(|i| i.test_runner == runner),
        "{runner}"
    );
    let venv = PathBuf::from(env["venv"].as_str().expect("env.json names the venv"));
    let python = venv.join("bin/python");
    let pythonpath = copy.join("src").display().to_string();

    // Every F2P test passes on the clean tree.
    let all_f2p: BTreeSet<&str> = instances
        .iter()
        .flat_map(|i| i.fail_to_pass.iter().map(|t| t.as_str()))
        .collect();
    let (passed, _) = pytest_outcomes(
        &python,
        &copy,
        &pythonpath,
        &all_f2p.iter().copied().collect::<Vec<_>>(),
    );
    for t in &all_f2p {
        assert!(passed.contains(*t), "{t} does not pass on the clean tree");
    }

    for inst in &instances {
        assert!(!inst.fail_to_pass.is_empty() && !inst.pass_to_pass.is_empty());
        assert!(!inst.problem_statement.trim().is_empty());
        let patch = copy.join("bug.patch");
        std::fs::write(&patch, &inst.patch).unwrap();
        let applied = sh(&copy, "git", &["apply", "bug.patch"]);
        assert!(
            applied.status.success(),
            "{}: git apply: {}",
            inst.instance_id,
            String::from_utf8_lossy(&applied.stderr)
        );
        let mut ids: Vec<&str> = inst.fail_to_pass.iter().map(|t| t.as_str()).collect();
        ids.extend(inst.pass_to_pass.iter().map(|t| t.as_str()));
        let (passed, failed) = pytest_outcomes(&python, &copy, &pythonpath, &ids);
        for t in &inst.fail_to_pass {
            assert!(
                failed.contains(t.as_str()),
                "{}: F2P {t} does not fail with the bug",
                inst.instance_id
            );
        }
        for t in &inst.pass_to_pass {
            assert!(
                passed.contains(t.as_str()),
                "{}: P2P {t} does not pass with the bug",
                inst.instance_id
            );
        }
        assert!(sh(&copy, "git", &["apply", "-R", "bug.patch"])
            .status
            .success());
        assert!(
            sh(&copy, "git", &["diff", "--quiet"]).status.success(),
            "reverse patch restores the tree"
        );
    }

    // The user-facing checker (scripts/reproduce.py) agrees, on a sample.
    let checked = Command::new("python3")
        .arg(manifest_dir().join("scripts/reproduce.py"))
        .arg(out.path())
        .args(["--sample", "4", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&checked.stdout).unwrap_or_else(|e| {
        panic!(
            "reproduce.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&checked.stderr)
        )
    });
    assert_eq!(report["checked"], 4, "{report}");
    assert_eq!(report["reproduced"], 4, "{report}");
    assert!(checked.status.success());
}
