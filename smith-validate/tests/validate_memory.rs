//! The validator's scheduling and bookkeeping with in-memory workspaces and
//! executors: no Python needed.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use smith_core::memory::{MemorySandbox, ScriptedExecutor};
use smith_core::{
    Baseline, Candidate, Error, Executor, FileChange, InvalidReason, Patch, Result, RunOptions,
    Sandbox, TestId, TestReport, TestSelection, Validation, Verdict, Workspace,
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
        &smith_core::RepoRef::new("o/r", "c"),
        format!("{from}->{to}"),
        vec![],
        "",
        Patch::from_changes(&[FileChange::modified("m.py", SRC, SRC.replacen(from, to, 1))]),
    )
}

fn baseline(exec: &dyn Executor) -> Baseline {
    let mut ws = sandbox().workspace().unwrap();
    run_baseline(
        &mut ws,
        exec,
        2,
        &smith_core::RepoRef::new("o/r", "c"),
        &RunOptions::default(),
    )
    .unwrap()
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
        &smith_core::RepoRef::new("o/r", "c"),
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
            reason: InvalidReason::TestsMissing {
                count: 1,
                example: TestId::from("t.py::add"),
            }
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
    let err = run_baseline(
        &mut ws,
        &empty,
        3,
        &smith_core::RepoRef::new("o/r", "c"),
        &RunOptions::default(),
    )
    .unwrap_err();
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
        &smith_core::RepoRef::new("o/r", "c"),
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
    let alone = run_baseline(
        &mut ws,
        &even,
        3,
        &smith_core::RepoRef::new("o/r", "c"),
        &RunOptions::default(),
    )
    .unwrap();
    assert!(alone.flaky.is_empty());
    assert!(smith_validate::run_baseline_with(
        &mut ws,
        &[],
        2,
        &smith_core::RepoRef::new("o/r", "c"),
        &RunOptions::default()
    )
    .is_err());
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
            reason: InvalidReason::EveryTestBroke { failed: 2 }
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

/// Records the selections it runs.
#[derive(Debug, Clone)]
struct Recording {
    inner: ScriptedExecutor,
    runs: std::sync::Arc<Mutex<Vec<TestSelection>>>,
}

impl Executor for Recording {
    fn run_tests(
        &self,
        workspace: &mut dyn Workspace,
        selection: &TestSelection,
        options: &RunOptions,
    ) -> Result<TestReport> {
        self.runs.lock().unwrap().push(selection.clone());
        self.inner.run_tests(workspace, selection, options)
    }
}

/// Runs "through a fork server"; a `stale` one still holds the clean
/// module behind `t.py::neg_twice` (the test passes whatever the tree). Its
/// fresh twin, a fresh interpreter per run, sees the tree as it is.
#[derive(Debug)]
struct Forked {
    stale: bool,
    fresh: Recording,
}

impl Executor for Forked {
    fn run_tests(
        &self,
        workspace: &mut dyn Workspace,
        selection: &TestSelection,
        options: &RunOptions,
    ) -> Result<TestReport> {
        let mut report = neg_tests().run_tests(workspace, selection, options)?;
        if let (true, Some(o)) = (
            self.stale,
            report.outcomes.get_mut(&TestId::from("t.py::neg_twice")),
        ) {
            *o = smith_core::Outcome::Passed;
        }
        Ok(report)
    }

    fn fresh(&self) -> Option<Box<dyn Executor>> {
        Some(Box::new(self.fresh.clone()))
    }
}

fn neg_tests() -> ScriptedExecutor {
    tests().test("t.py::neg_twice", "m.py", "return -a")
}

#[test]
fn a_fresh_interpreter_that_disagrees_with_a_forked_run_has_the_last_word() {
    let b = baseline(&neg_tests());
    // `neg`'s body (line 6) is run by both neg tests.
    let map = map_of_src(
        &["t:t.py::add", "t:t.py::neg", "t:t.py::neg_twice"],
        &[(2, vec![0]), (6, vec![1, 2])],
    );
    let c = cand("return -a", "return a");
    let ids =
        |names: &[&str]| -> BTreeSet<TestId> { names.iter().map(|n| TestId::from(*n)).collect() };
    let truth = Verdict::Kept {
        fail_to_pass: ids(&["t.py::neg", "t.py::neg_twice"]),
        pass_to_pass: ids(&["t.py::add"]),
    };
    let fresh = || Recording {
        inner: neg_tests(),
        runs: Default::default(),
    };
    let judge = |exec: &dyn Executor, fresh_check: bool| {
        let options = ValidateOptions {
            fresh_check,
            ..ValidateOptions::default()
        };
        validate_alone(exec, &b, Some(&map), &c, &options)
    };

    let stale = Forked {
        stale: true,
        fresh: fresh(),
    };
    let checked = judge(&stale, true);
    assert_eq!(checked.verdict, truth);
    assert_eq!(checked.fresh_confirmed, Some(false));
    assert_eq!(checked.selected, Some(2));
    // The fresh run is the forked run's selection, every F2P test in it.
    assert_eq!(
        *stale.fresh.runs.lock().unwrap(),
        [TestSelection::Only(
            ids(&["t.py::neg", "t.py::neg_twice"]).into_iter().collect()
        )]
    );

    // Turned off, the forked labels stand unchecked.
    stale.fresh.runs.lock().unwrap().clear();
    let unchecked = judge(&stale, false);
    assert_eq!(
        unchecked.verdict,
        Verdict::Kept {
            fail_to_pass: ids(&["t.py::neg"]),
            pass_to_pass: ids(&["t.py::add", "t.py::neg_twice"]),
        }
    );
    assert_eq!(unchecked.fresh_confirmed, None);
    assert!(stale.fresh.runs.lock().unwrap().is_empty());

    // A fresh run that agrees confirms the forked labels.
    let sound = Forked {
        stale: false,
        fresh: fresh(),
    };
    let confirmed = judge(&sound, true);
    assert_eq!(confirmed.verdict, truth);
    assert_eq!(confirmed.fresh_confirmed, Some(true));
    assert_eq!(sound.fresh.runs.lock().unwrap().len(), 1);

    // Runs that are fresh already (no twin) are not run twice.
    let plain = fresh();
    let v = judge(&plain, true);
    assert_eq!(v.verdict, truth);
    assert_eq!(v.fresh_confirmed, None);
    assert_eq!(plain.runs.lock().unwrap().len(), 1);
}
