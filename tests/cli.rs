//! The `smith` binary on bad input: clear errors naming what is wrong, and
//! exit codes that mean something.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn smith(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smith"))
        .args(args)
        .output()
        .expect("run smith")
}

fn cache_dir() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-cache/envs")
        .display()
        .to_string()
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

const PYPROJECT: &str = "[project]\nname = \"tiny\"\nversion = \"0.1\"\n\n[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[tool.setuptools]\npackages = [\"tiny\"]\n";

#[test]
fn a_missing_path_is_an_input_error() {
    let out = smith(&["run", "/nonexistent/smith-repo"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/smith-repo") && err.contains("no such"),
        "{err}"
    );
}

#[test]
fn a_directory_without_python_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("README.md", "# not python\n")]);
    let out = smith(&[
        "run",
        dir.path().to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Python project"));
}

#[test]
fn json_errors_are_machine_readable() {
    let out = smith(&["--json", "run", "/nonexistent/smith-repo"]);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    assert_eq!(v["exit_code"], 3);
    assert!(v["error"].as_str().unwrap().contains("smith-repo"));
}

/// Environments are cached by the packaging files' content, so a tree whose
/// own tests cannot be collected may find a venv that another tree with
/// the same packaging built: the collection check runs for it all the same.
#[test]
fn a_cached_environment_is_checked_against_the_trees_own_tests() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let files = |test: &'static str| {
        [
            ("pyproject.toml", PYPROJECT),
            ("tiny/__init__.py", "def one():\n    return 1\n"),
            ("tests/test_one.py", test),
        ]
    };
    let good = dir.path().join("good");
    write(&good, &files("def test_one():\n    assert True\n"));
    let bad = dir.path().join("bad");
    write(
        &bad,
        &files("import module_that_does_not_exist\n\ndef test_one():\n    assert True\n"),
    );
    let env = |repo: &Path, out: &str| {
        smith(&[
            "env",
            repo.to_str().unwrap(),
            "--json",
            "--out",
            dir.path().join(out).to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ])
    };
    let first = env(&good, "out-good");
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = env(&bad, "out-bad");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&second.stdout),
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(second.status.code(), Some(4), "{said}");
    assert!(said.contains("module_that_does_not_exist"), "{said}");
}

#[test]
fn a_suite_that_cannot_be_collected_is_an_environment_error() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("uncollectable");
    write(
        &repo,
        &[
            ("pyproject.toml", PYPROJECT),
            ("tiny/__init__.py", "def one():\n    return 1\n"),
            (
                "tests/test_one.py",
                "import module_that_does_not_exist\n\ndef test_one():\n    assert True\n",
            ),
        ],
    );
    let out = smith(&[
        "run",
        repo.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
        "--cache-dir",
        &cache_dir(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("module_that_does_not_exist") || err.contains("collect"),
        "{err}"
    );
}

#[test]
fn a_file_with_a_syntax_error_is_skipped_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let repo = tiny_repo(dir.path());
    write(&repo, &[("tiny/broken.py", "def oops(:\n    return\n")]);
    let out_dir = dir.path().join("out");
    let out = smith(&[
        "--json",
        "run",
        repo.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--cache-dir",
        &cache_dir(),
        "--baseline-runs",
        "1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary json");
    let skipped = summary["skipped_files"].as_array().unwrap();
    assert!(
        skipped
            .iter()
            .any(|s| s.as_str().unwrap().contains("tiny/broken.py")),
        "{summary}"
    );
    assert!(summary["kept"].as_u64().unwrap() >= 1, "{summary}");
    assert!(out_dir.join("instances.jsonl").is_file());
    // Every warning is listed, not only counted.
    let warnings: Vec<&str> = summary["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings.iter().any(|w| w.contains("tiny/broken.py")),
        "{summary}"
    );
    // And printed in the text summary (the run resumes: nothing is redone).
    let out = smith(&[
        "run",
        repo.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--cache-dir",
        &cache_dir(),
        "--baseline-runs",
        "1",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let skipped = text
        .lines()
        .skip_while(|l| !l.starts_with("skipped"))
        .nth(1)
        .unwrap_or_default();
    assert!(skipped.contains("tiny/broken.py"), "{text}");
}

const CALC: &str = "def add(a, b):\n    return a + b\n\n\ndef clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    if x > hi:\n        return hi\n    return x\n";
const CALC_TESTS: &str = "from tiny.calc import add, clamp\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\ndef test_clamp():\n    assert clamp(5, 0, 3) == 3\n    assert clamp(-1, 0, 3) == 0\n    assert clamp(2, 0, 3) == 2\n\n\ndef test_other():\n    assert add(0, 0) == 0\n";

/// A small installable project with a library and three tests, in `dir/tiny`.
fn tiny_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("tiny");
    write(
        &repo,
        &[
            ("pyproject.toml", PYPROJECT),
            ("tiny/__init__.py", ""),
            ("tiny/calc.py", CALC),
            ("tests/test_calc.py", CALC_TESTS),
        ],
    );
    repo
}

#[test]
fn validate_takes_mutate_output_reports_a_json_summary_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = tiny_repo(dir.path());
    let candidates = dir.path().join("candidates.jsonl");
    let out = smith(&[
        "--json",
        "mutate",
        repo.to_str().unwrap(),
        "--out",
        candidates.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out_dir = dir.path().join("out");
    let validate = || {
        let out = smith(&[
            "--json",
            "validate",
            repo.to_str().unwrap(),
            "--candidates",
            candidates.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--cache-dir",
            &cache_dir(),
            "--max-candidates",
            "6",
            "--seed",
            "1",
            "--baseline-runs",
            "2",
            "--confirm",
        ]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{err}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("summary json")
    };
    let first = validate();
    assert_eq!(first["candidates"], 6, "{first}");
    assert_eq!(first["validated_now"], 6, "{first}");
    let kept = first["kept"].as_u64().unwrap();
    assert!(kept >= 1, "{first}");
    let yield_ = first["yield"].as_f64().unwrap();
    assert!((yield_ - kept as f64 / 6.0).abs() < 1e-9, "{first}");
    assert!(first["seconds"].as_f64().unwrap() > 0.0);
    assert!(first["seconds_per_candidate"].as_f64().unwrap() > 0.0);
    assert_eq!(first["confirm_agreement"], 1.0, "{first}");
    assert!(first["forked_runs"].as_u64().unwrap() > 0, "{first}");
    let records = std::fs::read_to_string(out_dir.join("validations.jsonl")).unwrap();
    assert_eq!(records.lines().count(), 6);
    // Run again: everything is done, nothing is validated twice.
    let second = validate();
    assert_eq!(second["validated_now"], 0, "{second}");
    assert_eq!(second["kept"], first["kept"]);
    let records = std::fs::read_to_string(out_dir.join("validations.jsonl")).unwrap();
    assert_eq!(records.lines().count(), 6);
}

#[test]
fn validate_names_a_bad_candidate_record() {
    let dir = tempfile::tempdir().unwrap();
    let repo = tiny_repo(dir.path());
    let candidates = dir.path().join("candidates.jsonl");
    std::fs::write(&candidates, "{\"not\": \"a candidate\"}\n").unwrap();
    let out = smith(&[
        "validate",
        repo.to_str().unwrap(),
        "--candidates",
        candidates.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
        "--cache-dir",
        &cache_dir(),
        "--baseline-runs",
        "1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("candidates.jsonl:1"), "{err}");
}

#[test]
fn validate_in_bubblewrap_runs_its_fork_servers_inside_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let repo = tiny_repo(dir.path());
    let out_dir = dir.path().join("out");
    let out = smith(&[
        "--json",
        "validate",
        repo.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--cache-dir",
        &cache_dir(),
        "--sandbox",
        "bwrap",
        "--max-candidates",
        "4",
        "--baseline-runs",
        "2",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary json");
    assert_eq!(summary["candidates"], 4, "{summary}");
    assert!(summary["kept"].as_u64().unwrap() >= 1, "{summary}");
    // The baseline's forked run and every candidate's run went through a
    // server started with Workspace::spawn inside bubblewrap.
    assert!(summary["forked_runs"].as_u64().unwrap() >= 5, "{summary}");
}

#[test]
fn a_negative_time_limit_is_an_input_error() {
    let out = smith(&[
        "validate",
        "/nonexistent/smith-repo",
        "--test-timeout-floor=-1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("--test-timeout-floor"), "{err}");
}

#[test]
fn numeric_options_out_of_range_are_input_errors() {
    for (args, flag) in [
        (&["run", "--workers", "0"][..], "--workers"),
        (&["run", "--workers", "100000"], "--workers"),
        (&["validate", "--baseline-runs", "0"], "--baseline-runs"),
        (&["run", "--max-candidates", "0"], "--max-candidates"),
        (&["run", "--min-pass-rate", "1.5"], "--min-pass-rate"),
        (&["mutate", "--max-per-entity", "0"], "--max-per-entity"),
        (
            &["grade", "--predictions", "p.jsonl", "--workers", "0"],
            "--workers",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_smith"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
        // Nothing was started: no output directory.
        assert!(!dir.path().join("smith-out").exists(), "{args:?}");
    }
}

/// A project whose test files are full of box-drawing characters and
/// arrows (in strings, docstrings, comments and names) runs to the end:
/// reading the failing tests' source for the problem statements used to
/// panic inside `╔`.
#[test]
fn a_project_with_non_ascii_test_source_runs_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/boxes");
    let out_dir = dir.path().join("out");
    let out = smith(&[
        "--json",
        "run",
        repo.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--cache-dir",
        &cache_dir(),
        "--baseline-runs",
        "1",
        "--max-candidates",
        "12",
        "--no-combine",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary json");
    assert!(summary["instances"].as_u64().unwrap() >= 1, "{summary}");
    let instances = std::fs::read_to_string(out_dir.join("instances.jsonl")).unwrap();
    for line in instances.lines() {
        let i: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(!i["problem_statement"].as_str().unwrap().is_empty(), "{i}");
    }
}

const GATE_TESTS: &str = "from tiny.calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\ndef test_needs_a_service():\n    import socket\n    socket.create_connection((\"127.0.0.1\", 9), timeout=0.2)\n\n\ndef test_needs_data():\n    open(\"/nonexistent/smith-data.csv\")\n";

/// The environment gate: a suite that mostly fails on the clean tree makes
/// a poor environment; the run says how poor and stops, unless told to go on.
#[test]
fn a_run_stops_when_too_few_tests_pass_on_the_clean_tree() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("gate");
    write(
        &repo,
        &[
            ("pyproject.toml", PYPROJECT),
            ("tiny/__init__.py", ""),
            ("tiny/calc.py", CALC),
            ("tests/test_calc.py", GATE_TESTS),
        ],
    );
    let out_dir = dir.path().join("out");
    let cache = cache_dir();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            repo.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--cache-dir",
            &cache,
            "--baseline-runs",
            "1",
            "--max-candidates",
            "3",
            "--no-combine",
        ];
        args.extend(extra);
        smith(&args)
    };
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("only 1 of 3 tests (33%) pass on the clean tree"),
        "{err}"
    );
    assert!(err.contains("--min-pass-rate"), "{err}");
    assert!(!out_dir.join("validations.jsonl").exists());

    let out = run(&["--min-pass-rate", "0.3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("baseline     1 of 3 tests pass on the clean tree (33%)"),
        "{text}"
    );
}
