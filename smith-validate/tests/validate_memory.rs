//! The validator's scheduling and bookkeeping with in-memory workspaces and
//! executors: no Python needed.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use smith_core::memory::{MemorySandbox, ScriptedExecutor};
use smith_core::{
    Baseline, Candidate, Error, Executor, FileChange, Patch, Result, RunOptions, Sandbox, TestId,
    TestReport, TestSelection, Validation, Verdict, Workspace,
};
use smith_validate::{run_baseline, validate, CoverageMap, FileCoverage, ValidateOptions};

const SRC: &str = "def add(a, b):\n    return a + b\n\n\ndef neg(a):\n    return -a\n";

fn sandbox() -> MemorySandbox {
    MemorySandbox::new([("m.py".to_string(), SRC.to_string())])
}

fn tests() -> ScriptedExecutor {
    ScriptedExecutor::new()
        .test("t.py::add", "m.py", "a + b")
        .test("t.py::neg", "m.py", "return -a")
}

fn cand(from: &str, to: &str) -> Candidate {
    Candidate::new(
        "o/r",
        "c",
        format!("{from}->{to}"),
        vec![],
        "",
        Patch::from_changes(&[FileChange::modified("m.py", SRC, SRC.replacen(from, to, 1))]),
    )
}

fn baseline(exec: &dyn Executor) -> Baseline {
    let mut ws = sandbox().workspace().unwrap();
    run_baseline(&mut ws, exec, 2, "o/r", "c", &RunOptions::default()).unwrap()
}

#[test]
fn every_candidate_is_reported_once_with_many_workers() {
    let exec = tests();
    let b = baseline(&exec);
    let mut candidates: Vec<Candidate> = (0..20)
        .map(|i| cand("a + b", &format!("a + b + {i}")))
        .collect();
    candidates.push(cand("return -a", "return a"));
    let stale = Candidate::new(
        "o/r",
        "c",
        "stale",
        vec![],
        "",
        Patch::from_changes(&[FileChange::modified("m.py", "x = 1\n", "x = 2\n")]),
    );
    candidates.push(stale.clone());
    let seen = Mutex::new(Vec::new());
    validate(
        &sandbox(),
        &exec,
        &b,
        None,
        &candidates,
        &ValidateOptions {
            workers: 4,
            ..ValidateOptions::default()
        },
        &|c, v| seen.lock().unwrap().push((c.id.clone(), v.clone())),
    )
    .unwrap();
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), candidates.len());
    let ids: BTreeSet<&String> = seen.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), candidates.len());
    for (id, v) in &seen {
        assert_eq!(*id, v.candidate_id);
        if *id == stale.id {
            assert!(matches!(v.verdict, Verdict::Unappliable { .. }), "{v:?}");
        } else if v.strategy == "return -a->return a" {
            assert_eq!(
                v.verdict,
                Verdict::Kept {
                    fail_to_pass: [TestId::from("t.py::neg")].into(),
                    pass_to_pass: [TestId::from("t.py::add")].into(),
                }
            );
        } else {
            // `a + b + i` still contains `a + b`: the scripted test passes.
            assert_eq!(v.verdict, Verdict::NoTestBroke, "{v:?}");
        }
    }
}

/// Drops one test from its first report, as a crashed or cut-off run would.
#[derive(Debug)]
struct Forgetful {
    inner: ScriptedExecutor,
    calls: AtomicUsize,
    forget_until: usize,
}

impl Executor for Forgetful {
    fn run_tests(
        &self,
        workspace: &mut dyn Workspace,
        selection: &TestSelection,
        options: &RunOptions,
    ) -> Result<TestReport> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let mut report = self.inner.run_tests(workspace, selection, options)?;
        if call < self.forget_until {
            report.outcomes.remove(&TestId::from("t.py::add"));
        }
        Ok(report)
    }
}

/// Validate `c` alone in a fresh sandbox.
fn validate_alone(
    exec: &dyn Executor,
    b: &Baseline,
    coverage: Option<&CoverageMap>,
    c: &Candidate,
    options: &ValidateOptions,
) -> Validation {
    let out = Mutex::new(None);
    validate(
        &sandbox(),
        exec,
        b,
        coverage,
        std::slice::from_ref(c),
        options,
        &|_, v| *out.lock().unwrap() = Some(v.clone()),
    )
    .unwrap();
    out.into_inner().unwrap().unwrap()
}

fn run_one(exec: &dyn Executor, b: &Baseline, c: &Candidate) -> Verdict {
    validate_alone(exec, b, None, c, &ValidateOptions::default()).verdict
}

/// A coverage map of [`SRC`]: `add` (def line 1, body line 2) and `neg`
/// (def line 5, body line 6), with the given contexts and executed lines.
fn map_of_src(contexts: &[&str], lines: &[(u32, Vec<u32>)]) -> CoverageMap {
    CoverageMap {
        format: CoverageMap::FORMAT,
        contexts: contexts.iter().map(|c| c.to_string()).collect(),
        files: [(
            "m.py".to_string(),
            FileCoverage {
                statements: vec![1, 2, 5, 6],
                lines: lines.iter().cloned().collect(),
                headers: [(1, vec![2]), (5, vec![6])].into(),
            },
        )]
        .into(),
        ..CoverageMap::default()
    }
}

#[test]
fn a_test_missing_once_is_rerun_and_missing_twice_is_invalid() {
    let b = baseline(&tests());
    let c = cand("return -a", "return a");
    let once = Forgetful {
        inner: tests(),
        calls: AtomicUsize::new(0),
        forget_until: 1,
    };
    assert!(run_one(&once, &b, &c).is_kept());
    assert_eq!(once.calls.load(Ordering::SeqCst), 2, "one run, one re-run");

    let always = Forgetful {
        inner: tests(),
        calls: AtomicUsize::new(0),
        forget_until: usize::MAX,
    };
    assert_eq!(
        run_one(&always, &b, &c),
        Verdict::Invalid {
            reason: "1 selected test(s) missing from the report, e.g. t.py::add".into()
        }
    );
}

#[derive(Debug)]
struct Broken;

impl Sandbox for Broken {
    fn name(&self) -> &str {
        "broken"
    }
    fn workspace(&self) -> Result<Box<dyn Workspace>> {
        Err(Error::invalid("workspace", "no disk"))
    }
}

#[test]
fn machinery_errors_stop_the_run_and_record_nothing() {
    let exec = tests();
    let b = baseline(&exec);
    let called = AtomicUsize::new(0);
    let err = validate(
        &Broken,
        &exec,
        &b,
        None,
        &[cand("return -a", "return a")],
        &ValidateOptions::default(),
        &|_, _| {
            called.fetch_add(1, Ordering::SeqCst);
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("no disk"));
    assert_eq!(called.load(Ordering::SeqCst), 0);
}

#[test]
fn a_baseline_without_tests_is_an_error() {
    let empty = ScriptedExecutor::new();
    let mut ws = sandbox().workspace().unwrap();
    let err = run_baseline(&mut ws, &empty, 3, "o/r", "c", &RunOptions::default()).unwrap_err();
    assert!(err.to_string().contains("reported no tests"), "{err}");
}

/// Fails one test on every run, as a test that cannot run in a forked child
/// would.
#[derive(Debug)]
struct FailsOne(ScriptedExecutor);

impl Executor for FailsOne {
    fn run_tests(
        &self,
        workspace: &mut dyn Workspace,
        selection: &TestSelection,
        options: &RunOptions,
    ) -> Result<TestReport> {
        let mut report = self.0.run_tests(workspace, selection, options)?;
        if let Some(o) = report.outcomes.get_mut(&TestId::from("t.py::neg")) {
            *o = smith_core::Outcome::Failed;
        }
        Ok(report)
    }
}

#[test]
fn an_alternating_baseline_makes_a_test_the_executors_disagree_on_flaky() {
    let odd = FailsOne(tests());
    let even = tests();
    let mut ws = sandbox().workspace().unwrap();
    let mixed = smith_validate::run_baseline_with(
        &mut ws,
        &[&odd, &even],
        3,
        "o/r",
        "c",
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(mixed.runs, 3);
    assert!(
        mixed.flaky.contains(&TestId::from("t.py::neg")),
        "{mixed:?}"
    );
    assert!(mixed.passing.contains(&TestId::from("t.py::add")));
    assert!(!mixed.passing.contains(&TestId::from("t.py::neg")));
    // One executor alone sees nothing flaky.
    let alone = run_baseline(&mut ws, &even, 3, "o/r", "c", &RunOptions::default()).unwrap();
    assert!(alone.flaky.is_empty());
    assert!(
        smith_validate::run_baseline_with(&mut ws, &[], 2, "o/r", "c", &RunOptions::default())
            .is_err()
    );
}

/// Like the scripted tests, except that a module containing `BROKEN` no
/// longer imports: every test file of the run fails to collect.
#[derive(Debug)]
struct ImportBreaker {
    inner: ScriptedExecutor,
    runs: Mutex<Vec<TestSelection>>,
}

impl Executor for ImportBreaker {
    fn run_tests(
        &self,
        workspace: &mut dyn Workspace,
        selection: &TestSelection,
        options: &RunOptions,
    ) -> Result<TestReport> {
        self.runs.lock().unwrap().push(selection.clone());
        let mut report = self.inner.run_tests(workspace, selection, options)?;
        let source = workspace.read("m.py")?;
        if String::from_utf8_lossy(&source).contains("BROKEN") {
            let files: BTreeSet<String> = report
                .outcomes
                .keys()
                .map(|t| t.file().to_string())
                .collect();
            report.outcomes.clear();
            report.collection_errors = files.into_iter().collect();
            report.exit_code = Some(2);
        }
        Ok(report)
    }
}

#[test]
fn a_selected_run_with_collection_errors_is_redone_on_the_whole_suite() {
    let exec = ImportBreaker {
        inner: ScriptedExecutor::new()
            .test("t.py::add", "m.py", "a + b")
            .test("u.py::neg", "m.py", "return -a"),
        runs: Mutex::new(Vec::new()),
    };
    let b = baseline(&exec);
    exec.runs.lock().unwrap().clear();
    // `add`'s body is run by t.py::add, `neg`'s by u.py::neg; line 5 is the
    // header of `neg`.
    let map = map_of_src(
        &["t:t.py::add", "t:u.py::neg", ""],
        &[(1, vec![2]), (2, vec![0]), (5, vec![2]), (6, vec![1])],
    );
    // A default that raises at import: the header selects u.py::neg only,
    // but t.py breaks too.
    let c = cand("def neg(a):", "def neg(a=BROKEN):");
    let v = validate_alone(&exec, &b, Some(&map), &c, &ValidateOptions::default());
    assert_eq!(
        *exec.runs.lock().unwrap(),
        vec![
            TestSelection::Only(vec![TestId::from("u.py::neg")]),
            // The whole suite, naming every test the clean suite ran.
            TestSelection::AllKnown(vec![TestId::from("t.py::add"), TestId::from("u.py::neg")])
        ]
    );
    assert_eq!(v.selected, None);
    assert_eq!(
        v.verdict,
        Verdict::Invalid {
            reason: "every test broke (2 failed)".into()
        }
    );
}

#[test]
fn confirm_keeps_the_whole_suites_labels_where_the_selection_missed_a_test() {
    // `t.py::cached` depends on `add` without running it (say, through a
    // cache an earlier test filled): the map knows only `t.py::add`.
    let exec = ScriptedExecutor::new()
        .test("t.py::add", "m.py", "a + b")
        .test("t.py::cached", "m.py", "a + b")
        .test("t.py::neg", "m.py", "return -a");
    let b = baseline(&exec);
    let map = map_of_src(
        &["t:t.py::add", "t:t.py::neg"],
        &[(2, vec![0]), (6, vec![1])],
    );
    let c = cand("a + b", "a - b");
    let judge = |confirm: bool| {
        let options = ValidateOptions {
            confirm,
            ..ValidateOptions::default()
        };
        validate_alone(&exec, &b, Some(&map), &c, &options)
    };
    let ids = |names: &[&str]| names.iter().map(|n| TestId::from(*n)).collect();
    let selected = judge(false);
    assert_eq!(
        selected.verdict,
        Verdict::Kept {
            fail_to_pass: ids(&["t.py::add"]),
            pass_to_pass: ids(&["t.py::cached", "t.py::neg"]),
        }
    );
    assert_eq!(selected.confirmed, None);
    let confirmed = judge(true);
    assert_eq!(
        confirmed.verdict,
        Verdict::Kept {
            fail_to_pass: ids(&["t.py::add", "t.py::cached"]),
            pass_to_pass: ids(&["t.py::neg"]),
        }
    );
    assert_eq!(confirmed.confirmed, Some(false));
}
