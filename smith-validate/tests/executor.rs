//! The pytest executor against real pytest runs: odd node ids, phase errors,
//! collection errors, subtests, crashes, interrupts, floods and timeouts.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use smith_core::{Executor, Outcome, RunOptions, Sandbox, TestId, TestSelection};
use smith_validate::PytestExecutor;
use support::{alive, fixture, group_members, CopySandbox};

fn pytest() -> PytestExecutor {
    PytestExecutor::new(
        "python",
        ["-m", "pytest", "-p", "no:cacheprovider", "tests"]
            .map(String::from)
            .to_vec(),
    )
}

fn outcomes(pairs: &[(&str, Outcome)]) -> BTreeMap<TestId, Outcome> {
    pairs.iter().map(|(t, o)| (TestId::from(*t), *o)).collect()
}

#[test]
fn full_run_reports_every_kind_of_outcome() {
    use Outcome::*;
    let sandbox = CopySandbox::new(fixture("weird"));
    let mut ws = sandbox.workspace().unwrap();
    let report = pytest()
        .run_tests(&mut ws, &TestSelection::All, &RunOptions::default())
        .unwrap();
    let want = outcomes(&[
        ("tests/test_ids.py::test_param[a b]", Passed),
        ("tests/test_ids.py::test_param[c::d]", Failed),
        ("tests/test_ids.py::test_param[[x]]", Passed),
        ("tests/test_ids.py::test_param[\\xe9 \\xfc]", Passed),
        ("tests/test_ids.py::test_param[dash - here]", Passed),
        ("tests/test_ids.py::TestGroup::test_ok", Passed),
        ("tests/test_ids.py::TestGroup::test_bad", Failed),
        (
            "tests/test_ids.py::TestGroup::TestNested::test_deep",
            Passed,
        ),
        ("tests/test_ids.py::test_skipped", Skipped),
        ("tests/test_ids.py::test_xfail", XFailed),
        ("tests/test_ids.py::test_xpass", XPassed),
        ("tests/test_phases.py::test_setup_error", Error),
        ("tests/test_phases.py::test_teardown_error", Error),
        ("tests/test_phases.py::test_sys_exit", Failed),
        ("tests/test_phases.py::test_flood", Failed),
        (
            "tests/test_subtests.py::TestSub::test_with_subtests",
            Failed,
        ),
        (
            "tests/test_subtests.py::TestSub::test_all_subtests_pass",
            Passed,
        ),
    ]);
    assert_eq!(report.outcomes, want, "log:\n{}", support_tail(&report.log));
    assert_eq!(
        report.collection_errors,
        vec!["tests/test_collect_error.py"]
    );
    assert_eq!(report.exit_code, Some(1));
    assert!(!report.timed_out);
    assert!(report.durations[&TestId::from("tests/test_phases.py::test_flood")] > 0.0);
}

fn support_tail(s: &str) -> &str {
    &s[s.len().saturating_sub(3000)..]
}

#[test]
fn selection_runs_exactly_the_odd_ids() {
    let sandbox = CopySandbox::new(fixture("weird"));
    let mut ws = sandbox.workspace().unwrap();
    let ids = [
        "tests/test_ids.py::test_param[c::d]",
        "tests/test_ids.py::test_param[a b]",
        "tests/test_ids.py::test_param[\\xe9 \\xfc]",
        "tests/test_ids.py::TestGroup::TestNested::test_deep",
    ];
    let selection = TestSelection::Only(ids.iter().map(|i| TestId::from(*i)).collect());
    let report = pytest()
        .run_tests(&mut ws, &selection, &RunOptions::default())
        .unwrap();
    let got: Vec<&str> = report.outcomes.keys().map(TestId::as_str).collect();
    let mut want = ids.to_vec();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        report.outcomes[&TestId::from("tests/test_ids.py::test_param[c::d]")],
        Outcome::Failed
    );
    assert!(
        report.collection_errors.is_empty(),
        "only test_ids.py is collected"
    );
}

#[test]
fn flooded_output_cut_by_the_sandbox_keeps_outcomes() {
    let sandbox = CopySandbox::new(fixture("weird"));
    let mut ws = sandbox.workspace().unwrap();
    let selection = TestSelection::Only(vec![
        TestId::from("tests/test_phases.py::test_flood"),
        TestId::from("tests/test_ids.py::TestGroup::test_ok"),
    ]);
    let options = RunOptions {
        max_output: 4096,
        ..RunOptions::default()
    };
    let report = pytest().run_tests(&mut ws, &selection, &options).unwrap();
    assert!(report.log.len() <= 2 * 4096 + 1);
    assert_eq!(report.outcomes.len(), 2);
    assert_eq!(
        report.outcomes[&TestId::from("tests/test_phases.py::test_flood")],
        Outcome::Failed
    );
}

#[test]
fn a_segfault_fails_the_crashing_test_and_loses_the_rest() {
    let sandbox = CopySandbox::new(fixture("crash"));
    let mut ws = sandbox.workspace().unwrap();
    let report = pytest()
        .run_tests(
            &mut ws,
            &TestSelection::Only(
                [
                    "tests/test_crash.py::test_before",
                    "tests/test_crash.py::test_segfault",
                    "tests/test_crash.py::test_after",
                ]
                .map(TestId::from)
                .to_vec(),
            ),
            &RunOptions::default(),
        )
        .unwrap();
    assert_ne!(report.exit_code, Some(0));
    assert_eq!(
        report.outcomes,
        outcomes(&[
            ("tests/test_crash.py::test_before", Outcome::Passed),
            ("tests/test_crash.py::test_segfault", Outcome::Failed),
        ])
    );
}

#[test]
fn a_keyboard_interrupt_fails_its_test_and_stops_the_run() {
    let sandbox = CopySandbox::new(fixture("crash"));
    let mut ws = sandbox.workspace().unwrap();
    let report = pytest()
        .run_tests(
            &mut ws,
            &TestSelection::Only(
                [
                    "tests/test_interrupt.py::test_first",
                    "tests/test_interrupt.py::test_interrupt",
                    "tests/test_interrupt.py::test_last",
                ]
                .map(TestId::from)
                .to_vec(),
            ),
            &RunOptions::default(),
        )
        .unwrap();
    assert_eq!(report.exit_code, Some(2));
    assert_eq!(
        report.outcomes,
        outcomes(&[
            ("tests/test_interrupt.py::test_first", Outcome::Passed),
            ("tests/test_interrupt.py::test_interrupt", Outcome::Failed),
        ])
    );
}

#[test]
fn timeouts_kill_loops_and_forked_children() {
    let sandbox = CopySandbox::new(fixture("hang"));
    let mut ws = sandbox.workspace().unwrap();
    for test in [
        "tests/test_hang.py::test_loops",
        "tests/test_hang.py::test_forks",
    ] {
        let pids = ws.root().join("pids.txt");
        let _ = std::fs::remove_file(&pids);
        let start = Instant::now();
        let report = pytest()
            .run_tests(
                &mut ws,
                &TestSelection::Only(vec![TestId::from(test)]),
                &RunOptions {
                    timeout: Some(Duration::from_secs(3)),
                    ..RunOptions::default()
                },
            )
            .unwrap();
        assert!(report.timed_out, "{test}");
        assert!(start.elapsed() < Duration::from_secs(30), "{test}");
        assert!(
            report.outcomes.is_empty(),
            "a killed test has no outcome: {test}"
        );
        let written = std::fs::read_to_string(&pids).unwrap();
        let recorded: Vec<u32> = written
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert!(!recorded.is_empty());
        // Give the kernel a moment to tear the group down.
        let deadline = Instant::now() + Duration::from_secs(5);
        while recorded.iter().any(|p| alive(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for pid in &recorded {
            assert!(!alive(*pid), "{test}: process {pid} outlived its run");
        }
        let ws_pgid = recorded[0];
        assert!(
            group_members(ws_pgid).is_empty(),
            "{test}: group {ws_pgid} not empty"
        );
    }
}
