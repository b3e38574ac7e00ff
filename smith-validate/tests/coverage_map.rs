//! The coverage map on suites that used to break it: methods generated at
//! import under synthetic file names, the project's own pytest-cov turned on
//! in a hidden `.pytest.ini`, and tests that drive the package through its
//! console script in a child process.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use smith_core::{
    Baseline, Candidate, FileChange, Patch, RunOptions, Sandbox, TestId, Validation, Verdict,
};
use smith_validate::{
    run_baseline, validate, CandidateSelection, CoverageMap, PytestExecutor, SelectionMode,
    ValidateOptions,
};
use support::{cli_venv_bin, fixture, old_coverage_cli_venv_bin, CopySandbox};

fn pytest() -> PytestExecutor {
    PytestExecutor::new(
        "python",
        ["-m", "pytest", "-p", "no:cacheprovider", "tests"]
            .map(String::from)
            .to_vec(),
    )
}

fn ids(names: &[&str]) -> BTreeSet<TestId> {
    names.iter().map(|n| TestId::from(*n)).collect()
}

/// A candidate replacing `from` by `to` in `file` of fixture `name`.
fn mutate(name: &str, file: &str, from: &str, to: &str) -> Candidate {
    let before = std::fs::read_to_string(fixture(name).join(file)).unwrap();
    assert!(before.contains(from), "{from} not in {file}");
    let after = before.replacen(from, to, 1);
    Candidate::new(
        &smith_core::RepoRef::new("acme/fixture", "0000"),
        "test",
        vec![],
        "",
        Patch::from_changes(&[FileChange::modified(file, &before, &after)]),
    )
}

/// Baseline (one run) and coverage map of `sandbox`'s tree.
fn baseline_and_map(sandbox: &CopySandbox, exec: &PytestExecutor) -> (Baseline, CoverageMap) {
    let mut ws = sandbox.workspace().unwrap();
    let baseline = run_baseline(
        ws.as_mut(),
        exec,
        1,
        &smith_core::RepoRef::new("acme/fixture", "0000"),
        &RunOptions::default(),
    )
    .unwrap();
    let map = CoverageMap::collect(ws.as_mut(), exec, &RunOptions::default())
        .unwrap_or_else(|e| panic!("coverage map of {}: {e}", sandbox.source.display()));
    (baseline, map)
}

#[test]
fn methods_generated_under_synthetic_file_names_leave_the_map_whole() {
    let sandbox = CopySandbox::new(fixture("generated"));
    let exec = pytest();
    let (baseline, map) = baseline_and_map(&sandbox, &exec);
    assert_eq!(baseline.passing.len(), 9, "{baseline:?}");
    assert_eq!(map.test_count(), 9);
    // The generated `__init__`, `__repr__` and `__eq__` have no file; only
    // the repository's own files are mapped.
    let files: Vec<&str> = map.files.keys().map(String::as_str).collect();
    assert_eq!(
        files,
        [
            "recgen/__init__.py",
            "recgen/records.py",
            "recgen/shapes.py",
            "tests/test_records.py"
        ]
    );
    let translated = mutate(
        "generated",
        "recgen/shapes.py",
        "Point(self.x + dx, self.y + dy)",
        "Point(self.x + dy, self.y + dx)",
    );
    assert_eq!(
        map.selection_for(&translated),
        CandidateSelection::Tests(ids(&["tests/test_records.py::test_translated"]))
    );
    let empty = mutate(
        "generated",
        "recgen/shapes.py",
        "if not points:",
        "if points:",
    );
    assert_eq!(
        map.selection_for(&empty),
        CandidateSelection::Tests(ids(&[
            "tests/test_records.py::test_bounding_box",
            "tests/test_records.py::test_bounding_box_of_nothing",
        ]))
    );
    // The code that generates the methods runs at import: whole suite.
    let generator = mutate(
        "generated",
        "recgen/records.py",
        "f\"    self.{f} = {f}\\n\"",
        "f\"    self.{f} = None\\n\"",
    );
    assert_eq!(map.selection_for(&generator), CandidateSelection::Full);
}

#[test]
fn pytest_cov_turned_on_in_a_hidden_pytest_ini_is_off_for_the_map() {
    let root = fixture("covplug");
    let ini = std::fs::read_to_string(root.join(".pytest.ini")).unwrap();
    assert!(
        ini.contains("--cov=covpkg"),
        "the fixture turns pytest-cov on"
    );
    let sandbox = CopySandbox::new(&root).with_venv(cli_venv_bin());
    let exec = pytest();
    let (baseline, map) = baseline_and_map(&sandbox, &exec);
    assert_eq!(baseline.passing.len(), 5, "{baseline:?}");
    // One context per test, not a single empty one.
    assert_eq!(map.test_count(), 5, "{:?}", map.contexts);
    let convert = mutate(
        "covplug",
        "covpkg/units.py",
        "value * FACTORS[source] / FACTORS[target]",
        "value * FACTORS[target] / FACTORS[source]",
    );
    assert_eq!(
        map.selection_for(&convert),
        CandidateSelection::Tests(ids(&[
            "tests/test_units.py::test_convert_cm_to_m",
            "tests/test_units.py::test_convert_km_to_m",
        ]))
    );
    // Tests pytest-cov is told not to measure run their bodies all the same.
    let parse = mutate(
        "covplug",
        "covpkg/units.py",
        "text.split()",
        "text.split(\" \", 0)",
    );
    assert_eq!(
        map.selection_for(&parse),
        CandidateSelection::Tests(ids(&[
            "tests/test_units.py::test_parse",
            "tests/test_units.py::test_parse_unmeasured_by_pytest_cov",
            "tests/test_units.py::test_parse_with_the_no_cover_fixture",
        ]))
    );
}

#[test]
fn a_configuration_that_blocks_pytest_cov_still_gets_a_map() {
    let tree = tempfile::tempdir().unwrap();
    support::copy_tree(&fixture("covplug"), tree.path()).unwrap();
    std::fs::write(
        tree.path().join(".pytest.ini"),
        "[pytest]\naddopts = -p no:cov\n",
    )
    .unwrap();
    let sandbox = CopySandbox::new(tree.path()).with_venv(cli_venv_bin());
    let (baseline, map) = baseline_and_map(&sandbox, &pytest());
    // Without pytest-cov there is no `no_cover` fixture: one test errors.
    assert_eq!(baseline.passing.len(), 4, "{baseline:?}");
    assert_eq!(map.test_count(), 4, "{:?}", map.contexts);
}

#[test]
fn a_run_that_runs_no_test_is_no_map() {
    let sandbox = CopySandbox::new(fixture("calc"));
    let exec = PytestExecutor::new(
        "python",
        [
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--no-such-option",
            "tests",
        ]
        .map(String::from)
        .to_vec(),
    );
    let mut ws = sandbox.workspace().unwrap();
    let err = CoverageMap::collect(ws.as_mut(), &exec, &RunOptions::default()).unwrap_err();
    assert!(err.to_string().contains("ran no test"), "{err}");
}

/// The CLI fixture's tests that run `tabular` in a child process.
const CLI_TESTS: [&str; 4] = [
    "tests/test_cli.py::test_console_script",
    "tests/test_cli.py::test_console_script_with_its_own_environment",
    "tests/test_cli.py::test_multiprocessing_worker",
    "tests/test_cli.py::test_python_dash_m",
];

fn validate_all(
    sandbox: &CopySandbox,
    exec: &PytestExecutor,
    baseline: &Baseline,
    map: Option<&CoverageMap>,
    candidates: &[Candidate],
) -> BTreeMap<String, Validation> {
    let results = Mutex::new(BTreeMap::new());
    let options = ValidateOptions {
        workers: 2,
        timeout_floor: Duration::from_secs(30),
        selection: if map.is_some() {
            SelectionMode::Coverage
        } else {
            SelectionMode::Full
        },
        ..ValidateOptions::default()
    };
    validate(
        sandbox,
        exec,
        baseline,
        map,
        candidates,
        &options,
        &|c, v| {
            results.lock().unwrap().insert(c.id.clone(), v.clone());
        },
    )
    .unwrap();
    results.into_inner().unwrap()
}

/// Bugs the command line reaches are selected for, and labelled by, the
/// tests that run the command line in a child process: one only the
/// command line reaches, and one in-process tests reach too (where a map
/// blind to children would infer PASS_TO_PASS for the command-line tests).
fn console_script_tests_are_selected_and_fail(bin: &Path) {
    let sandbox = CopySandbox::new(fixture("clitool")).with_venv(bin);
    // Child processes find the workspace's copy of the package first.
    let exec = pytest().env("PYTHONPATH", ".");
    let (baseline, map) = baseline_and_map(&sandbox, &exec);
    assert_eq!(baseline.passing.len(), 6, "{baseline:?}");
    assert!(map.subprocesses, "child processes are measured");
    let cli = ids(&CLI_TESTS);
    // `footer` runs only in the children (its module is imported by the
    // tests' own process too).
    assert_eq!(map.tests_for("tabular/summary.py", [5]), Some(cli.clone()));
    let footer = mutate("clitool", "tabular/summary.py", "count == 1", "count != 1");
    let separator = mutate("clitool", "tabular/table.py", "\" | \".join", "\" |\".join");
    assert_eq!(
        map.selection_for(&footer),
        CandidateSelection::Tests(cli.clone())
    );
    let candidates = [footer.clone(), separator.clone()];
    let selected = validate_all(&sandbox, &exec, &baseline, Some(&map), &candidates);
    let full = validate_all(&sandbox, &exec, &baseline, None, &candidates);
    let labels = |v: &Validation| match &v.verdict {
        Verdict::Kept {
            fail_to_pass,
            pass_to_pass,
        } => (fail_to_pass.clone(), pass_to_pass.clone()),
        other => panic!("{other:?}"),
    };
    let pads = "tests/test_table.py::test_format_table_pads_columns";
    let nothing = "tests/test_table.py::test_format_table_of_nothing";
    assert_eq!(
        labels(&selected[&footer.id]),
        (cli.clone(), ids(&[nothing, pads]))
    );
    let mut broken = cli.clone();
    broken.insert(TestId::from(pads));
    assert_eq!(labels(&selected[&separator.id]), (broken, ids(&[nothing])));
    for c in &candidates {
        assert_eq!(selected[&c.id].verdict, full[&c.id].verdict, "{}", c.id);
    }
}

#[test]
fn console_script_tests_label_a_bug_only_the_cli_reaches() {
    console_script_tests_are_selected_and_fail(cli_venv_bin());
}

#[test]
fn console_script_tests_label_it_with_coverage_before_7_13() {
    console_script_tests_are_selected_and_fail(old_coverage_cli_venv_bin());
}
