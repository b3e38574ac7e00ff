//! The coverage stage never stops a run: on a package whose methods are
//! generated at import under synthetic file names it makes a map, and where
//! no map can be made, validation runs the whole suite after one warning.
//! On a package whose tests run its console script, the map follows the
//! child processes and the labels are the whole suite's. Every run ends
//! with instances that an independent pytest run reproduces.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use smith::pipeline::{Config, Event, Pipeline, Summary};
use smith::{TaskInstance, Validation};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    manifest_dir()
        .join("smith-validate/tests/fixtures")
        .join(name)
}

fn generated_fixture() -> PathBuf {
    fixture("generated")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == "__pycache__" {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Run the pipeline on `repo` with default settings (a sample of
/// candidates, for time); return its summary and warnings.
fn smith_run(repo: &Path, out: &Path) -> (Summary, Vec<String>) {
    smith_run_with(repo, out, |_| {})
}

/// [`smith_run`] with `change` applied to the configuration.
fn smith_run_with(
    repo: &Path,
    out: &Path,
    change: impl FnOnce(&mut Config),
) -> (Summary, Vec<String>) {
    let mut config = Config::new(repo, out);
    config.cache_dir = Some(manifest_dir().join("target/test-cache/envs"));
    config.max_candidates = Some(24);
    config.baseline_runs = 2;
    config.workers = 2;
    change(&mut config);
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let sink = warnings.clone();
    let summary = Pipeline::new(config)
        .on_event(move |e| {
            if let Event::Warning(w) = e {
                sink.lock().unwrap().push(w.clone());
            }
        })
        .run()
        .expect("smith run succeeds");
    let warnings = warnings.lock().unwrap().clone();
    (summary, warnings)
}

fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Test ids that pass and that fail when pytest runs the files of `ids` in
/// `dir` (its own parse of `-rA`, none of smith's).
fn outcomes(python: &Path, dir: &Path, ids: &[&str]) -> (BTreeSet<String>, BTreeSet<String>) {
    let files: BTreeSet<&str> = ids.iter().map(|t| t.split("::").next().unwrap()).collect();
    let out = Command::new(python)
        .args(["-m", "pytest", "-rA", "-q", "-p", "no:cacheprovider"])
        .args(files)
        .current_dir(dir)
        // The environment's console scripts, as in an activated venv.
        .env(
            "PATH",
            format!(
                "{}:{}",
                python.parent().unwrap().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("PYTHONPATH", dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let (mut passed, mut failed) = (BTreeSet::new(), BTreeSet::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(id) = line.strip_prefix("PASSED ") {
            passed.insert(id.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("FAILED ") {
            failed.insert(rest.split(" - ").next().unwrap().trim().to_string());
        }
    }
    (passed, failed)
}

/// Every instance's FAIL_TO_PASS tests pass on a clean copy of `repo` and
/// fail with its patch applied (`git apply`), and its PASS_TO_PASS tests
/// pass with the patch.
fn instances_hold_up(repo: &Path, out: &Path, instances: &[TaskInstance]) {
    let env: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("env.json")).unwrap()).unwrap();
    let python = PathBuf::from(env["venv"].as_str().unwrap()).join("bin/python");
    let fresh = tempfile::tempdir().unwrap();
    let copy = fresh.path().join("repo");
    copy_tree(repo, &copy);
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(&copy)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    git(&["init", "-q"]);
    for inst in instances {
        let f2p: Vec<&str> = inst.fail_to_pass.iter().map(|t| t.as_str()).collect();
        let p2p: Vec<&str> = inst.pass_to_pass.iter().map(|t| t.as_str()).collect();
        let all: Vec<&str> = f2p.iter().chain(&p2p).copied().collect();
        let (clean, _) = outcomes(&python, &copy, &all);
        for t in &f2p {
            assert!(clean.contains(*t), "{}: {t} fails clean", inst.instance_id);
        }
        std::fs::write(copy.join("bug.patch"), &inst.patch).unwrap();
        git(&["apply", "bug.patch"]);
        let (passed, failed) = outcomes(&python, &copy, &all);
        for t in &f2p {
            assert!(failed.contains(*t), "{}: F2P {t} passes", inst.instance_id);
        }
        for t in &p2p {
            assert!(passed.contains(*t), "{}: P2P {t} fails", inst.instance_id);
        }
        git(&["apply", "-R", "bug.patch"]);
    }
}

#[test]
fn methods_generated_at_import_get_a_map_and_tasks_that_hold_up() {
    let out = tempfile::tempdir().unwrap();
    let (summary, warnings) = smith_run(&generated_fixture(), out.path());
    assert!(
        !warnings.iter().any(|w| w.contains("coverage")),
        "{warnings:?}"
    );
    let map: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("coverage.json")).unwrap())
            .unwrap();
    let files = map["map"]["files"].as_object().unwrap();
    assert!(files.contains_key("recgen/shapes.py"), "{files:?}");
    assert!(files.keys().all(|f| !f.starts_with('/')), "{files:?}");
    let validations: Vec<Validation> = read_jsonl(&out.path().join("validations.jsonl"));
    assert!(
        validations
            .iter()
            .any(|v| v.selected.is_some_and(|n| n > 0)),
        "some candidate runs a selection"
    );
    let instances: Vec<TaskInstance> = read_jsonl(&summary.instances_path);
    assert!(!instances.is_empty(), "{summary:?}");
    instances_hold_up(&generated_fixture(), out.path(), &instances);
}

#[test]
fn a_suite_that_cannot_be_mapped_runs_whole_after_one_warning() {
    let repo_dir = tempfile::tempdir().unwrap();
    let repo = repo_dir.path().join("recgen");
    copy_tree(&generated_fixture(), &repo);
    // A suite that runs nothing under a coverage tracer: no map can be made.
    std::fs::write(
        repo.join("conftest.py"),
        "import sys\n\n\ndef pytest_collection_modifyitems(items):\n    if \"coverage\" in sys.modules:\n        items.clear()\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let (summary, warnings) = smith_run(&repo, out.path());
    let about_coverage: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("coverage map"))
        .collect();
    assert_eq!(about_coverage.len(), 1, "{warnings:?}");
    assert!(about_coverage[0].contains("whole suite"), "{warnings:?}");
    assert!(!out.path().join("coverage.json").exists());
    let validations: Vec<Validation> = read_jsonl(&out.path().join("validations.jsonl"));
    assert!(!validations.is_empty());
    assert!(
        validations.iter().all(|v| v.selected.is_none()),
        "every candidate runs the whole suite"
    );
    let instances: Vec<TaskInstance> = read_jsonl(&summary.instances_path);
    assert!(!instances.is_empty(), "{summary:?}");
    instances_hold_up(&repo, out.path(), &instances);
}

#[test]
fn console_script_tests_label_the_bugs_they_reach() {
    let repo = fixture("clitool");
    let out = tempfile::tempdir().unwrap();
    let (summary, warnings) = smith_run_with(&repo, out.path(), |c| c.max_candidates = None);
    assert!(warnings.is_empty(), "{warnings:?}");
    let instances: Vec<TaskInstance> = read_jsonl(&summary.instances_path);
    // Bugs in the footer, which only the command line prints, are labelled
    // by the tests that run it in a child process.
    let footer: Vec<&TaskInstance> = instances
        .iter()
        .filter(|i| i.patch.contains("tabular/summary.py"))
        .collect();
    assert!(!footer.is_empty(), "{summary:?}");
    for inst in &footer {
        assert!(
            inst.fail_to_pass
                .iter()
                .all(|t| t.as_str().starts_with("tests/test_cli.py::")),
            "{}: {:?}",
            inst.instance_id,
            inst.fail_to_pass
        );
    }
    // PASS_TO_PASS holds too: no command-line test that fails is inferred.
    instances_hold_up(&repo, out.path(), &instances);
}
