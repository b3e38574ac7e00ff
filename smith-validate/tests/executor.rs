//! The pytest executor against real pytest runs: odd node ids, phase errors,
//! collection errors, subtests, crashes, interrupts, floods and timeouts.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use smith_core::{Executor, Outcome, RunOptions, Sandbox, TestId, TestSelection, Workspace};
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

/// Every test below runs three ways: with a fresh interpreter per run,
/// through a plain fork server, and through a collected server where the
/// clean suite collects without errors (each must then really have served
/// the runs; the fixture with a collection error must have been declined by
/// the collected server, and served by the plain one).
macro_rules! in_every_mode {
    ($($name:ident => $collected:literal),* $(,)?) => {
        mod fresh_interpreter {
            $(#[test]
            fn $name() {
                let exec = super::pytest();
                super::$name(exec.clone());
                assert_eq!(exec.served_runs(), 0);
            })*
        }
        mod fork_server {
            $(#[test]
            fn $name() {
                let exec = super::pytest().forking(true).collected(false);
                super::$name(exec.clone());
                assert!(exec.served_runs() > 0, "no run went through the fork server");
                assert_eq!(exec.collected_runs(), (0, 0));
            })*
        }
        mod collected_server {
            $(#[test]
            fn $name() {
                let exec = super::pytest().forking(true);
                super::$name(exec.clone());
                assert!(exec.served_runs() > 0, "no run went through a fork server");
                let (collected, handed_back) = exec.collected_runs();
                assert_eq!(handed_back, 0);
                assert_eq!(collected > 0, $collected, "runs through the collected server: {collected}");
            })*
        }
    };
}

// `false`: the fixture's clean suite has a collection error, which a
// collected server declines to serve.
in_every_mode!(
    full_run_reports_every_kind_of_outcome => false,
    selection_runs_exactly_the_odd_ids => false,
    flooded_output_cut_by_the_sandbox_keeps_outcomes => false,
    a_segfault_fails_the_crashing_test_and_loses_the_rest => true,
    a_keyboard_interrupt_fails_its_test_and_stops_the_run => true,
    timeouts_kill_loops_and_forked_children => true,
);

fn outcomes(pairs: &[(&str, Outcome)]) -> BTreeMap<TestId, Outcome> {
    pairs.iter().map(|(t, o)| (TestId::from(*t), *o)).collect()
}

fn full_run_reports_every_kind_of_outcome(exec: PytestExecutor) {
    use Outcome::*;
    let sandbox = CopySandbox::new(fixture("weird"));
    let mut ws = sandbox.workspace().unwrap();
    exec.prepare(&mut ws).unwrap();
    let report = exec
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

fn selection_runs_exactly_the_odd_ids(exec: PytestExecutor) {
    let sandbox = CopySandbox::new(fixture("weird"));
    let mut ws = sandbox.workspace().unwrap();
    exec.prepare(&mut ws).unwrap();
    let ids = [
        "tests/test_ids.py::test_param[c::d]",
        "tests/test_ids.py::test_param[a b]",
        "tests/test_ids.py::test_param[\\xe9 \\xfc]",
        "tests/test_ids.py::TestGroup::TestNested::test_deep",
    ];
    let selection = TestSelection::Only(ids.iter().map(|i| TestId::from(*i)).collect());
    let report = exec
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
    // Functions and classes without a selected test are never made into
    // items; only test_param's two other cases are made and deselected.
    assert!(report.log.contains(" 2 deselected"), "{}", report.log);
}

fn flooded_output_cut_by_the_sandbox_keeps_outcomes(exec: PytestExecutor) {
    let sandbox = CopySandbox::new(fixture("weird"));
    let mut ws = sandbox.workspace().unwrap();
    exec.prepare(&mut ws).unwrap();
    let selection = TestSelection::Only(vec![
        TestId::from("tests/test_phases.py::test_flood"),
        TestId::from("tests/test_ids.py::TestGroup::test_ok"),
    ]);
    let options = RunOptions {
        max_output: 4096,
        ..RunOptions::default()
    };
    let report = exec.run_tests(&mut ws, &selection, &options).unwrap();
    assert!(report.log.len() <= 2 * 4096 + 1);
    assert_eq!(report.outcomes.len(), 2);
    assert_eq!(
        report.outcomes[&TestId::from("tests/test_phases.py::test_flood")],
        Outcome::Failed
    );
}

fn a_segfault_fails_the_crashing_test_and_loses_the_rest(exec: PytestExecutor) {
    let sandbox = CopySandbox::new(fixture("crash"));
    let mut ws = sandbox.workspace().unwrap();
    exec.prepare(&mut ws).unwrap();
    let report = exec
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

fn a_keyboard_interrupt_fails_its_test_and_stops_the_run(exec: PytestExecutor) {
    let sandbox = CopySandbox::new(fixture("crash"));
    let mut ws = sandbox.workspace().unwrap();
    exec.prepare(&mut ws).unwrap();
    let report = exec
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

fn timeouts_kill_loops_and_forked_children(exec: PytestExecutor) {
    let sandbox = CopySandbox::new(fixture("hang"));
    let mut ws = sandbox.workspace().unwrap();
    exec.prepare(&mut ws).unwrap();
    for test in [
        "tests/test_hang.py::test_loops",
        "tests/test_hang.py::test_forks",
    ] {
        let pids = ws.root().join("pids.txt");
        let _ = std::fs::remove_file(&pids);
        let start = Instant::now();
        let report = exec
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

#[test]
fn a_fork_server_is_reused_and_ends_with_its_executor() {
    let sandbox = CopySandbox::new(fixture("weird"));
    let mut ws = sandbox.copy_workspace().unwrap();
    let exec = pytest().forking(true).collected(false);
    exec.prepare(&mut ws).unwrap();
    let ok = TestSelection::Only(vec![TestId::from("tests/test_ids.py::TestGroup::test_ok")]);
    for _ in 0..2 {
        // Prepared again (as a validator does before every candidate):
        // the server that is up stays.
        exec.prepare(&mut ws).unwrap();
        let report = exec
            .run_tests(&mut ws, &ok, &RunOptions::default())
            .unwrap();
        assert_eq!(
            report.outcomes.values().collect::<Vec<_>>(),
            [&Outcome::Passed]
        );
    }
    assert_eq!(ws.spawned.len(), 1, "one server for both runs");
    assert_eq!(exec.served_runs(), 2);
    let server = ws.spawned[0];
    assert!(alive(server));
    drop(exec);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(server) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(server), "fork server {server} outlived its executor");
}

/// Servers start only where the caller says the tree is clean
/// (`prepare`): a workspace never prepared runs fresh interpreters, and a
/// server lost in the middle of a candidate is replaced at the next
/// `prepare`, not by the next run (which would start it on the
/// candidate's tree).
#[test]
fn fork_servers_start_only_on_a_prepared_workspace() {
    let sandbox = CopySandbox::new(fixture("calc"));
    let mut ws = sandbox.copy_workspace().unwrap();
    let exec = pytest().forking(true).collected(false);
    let add = TestSelection::Only(vec![TestId::from("tests/test_ops.py::test_add[1-2-3]")]);
    let passed = |report: smith_core::TestReport| {
        report.outcomes.values().collect::<Vec<_>>() == [&Outcome::Passed]
    };
    assert!(passed(
        exec.run_tests(&mut ws, &add, &RunOptions::default())
            .unwrap()
    ));
    assert_eq!((ws.spawned.len(), exec.served_runs()), (0, 0));
    exec.prepare(&mut ws).unwrap();
    assert!(passed(
        exec.run_tests(&mut ws, &add, &RunOptions::default())
            .unwrap()
    ));
    assert_eq!((ws.spawned.len(), exec.served_runs()), (1, 1));
    // The server dies in the middle of a candidate.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &ws.spawned[0].to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(ws.spawned[0]) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..2 {
        assert!(passed(
            exec.run_tests(&mut ws, &add, &RunOptions::default())
                .unwrap()
        ));
    }
    assert_eq!((ws.spawned.len(), exec.served_runs()), (1, 1));
    exec.prepare(&mut ws).unwrap();
    assert!(passed(
        exec.run_tests(&mut ws, &add, &RunOptions::default())
            .unwrap()
    ));
    assert_eq!((ws.spawned.len(), exec.served_runs()), (2, 2));
}

/// Code compiled ahead of time must never stand in for changed source:
/// same-size edits to a library module and to a test file, made after the
/// server compiled both, show up in the next run, and resetting brings the
/// clean behaviour back.
#[test]
fn a_warm_fork_server_runs_edited_files_not_their_compiled_originals() {
    let sandbox = CopySandbox::new(fixture("calc"));
    let mut ws = sandbox.copy_workspace().unwrap();
    let exec = PytestExecutor::new(
        "python",
        ["-m", "pytest", "-p", "no:cacheprovider", "tests"]
            .map(String::from)
            .to_vec(),
    )
    .forking(true)
    .collected(false);
    exec.prepare(&mut ws).unwrap();
    let all = exec
        .run_tests(&mut ws, &TestSelection::All, &RunOptions::default())
        .unwrap();
    assert!(
        all.outcomes.values().all(|o| *o == Outcome::Passed),
        "{}",
        all.log
    );
    let warm = exec.warm_files();
    for file in ["calc/ops.py", "tests/test_ops.py", "tests/conftest.py"] {
        assert!(warm.iter().any(|f| f == file), "{file} not in {warm:?}");
    }
    // The clean tree: the server, started before anything was learned,
    // warms up now.
    exec.prepare(&mut ws).unwrap();
    let add = TestSelection::Only(vec![TestId::from("tests/test_ops.py::test_add[1-2-3]")]);
    let run = |ws: &mut support::CopyWorkspace| {
        exec.run_tests(ws, &add, &RunOptions::default())
            .unwrap()
            .outcomes[&TestId::from("tests/test_ops.py::test_add[1-2-3]")]
    };
    assert_eq!(run(&mut ws), Outcome::Passed);
    for (file, from, to) in [
        ("calc/ops.py", "a + b", "a - b"),
        (
            "tests/test_ops.py",
            "add(a, b) == want",
            "add(a, b) != want",
        ),
    ] {
        let clean = std::fs::read_to_string(ws.root().join(file)).unwrap();
        let edited = clean.replacen(from, to, 1);
        assert_eq!(clean.len(), edited.len());
        ws.apply(&smith_core::Patch::from_changes(&[
            smith_core::FileChange::modified(file, &clean, &edited),
        ]))
        .unwrap();
        assert_eq!(run(&mut ws), Outcome::Failed, "edit of {file} not seen");
        ws.reset().unwrap();
        assert_eq!(run(&mut ws), Outcome::Passed, "reset of {file} not seen");
    }
    assert_eq!(ws.spawned.len(), 1);
    assert_eq!(exec.served_runs(), 6);
}

/// A warm fork server reuses parsed source for tracebacks; what pytest
/// prints about failures must not change by a byte.
#[test]
fn failure_output_through_a_warm_fork_server_is_what_a_fresh_interpreter_prints() {
    let sandbox = CopySandbox::new(fixture("calc"));
    let mut ws = sandbox.copy_workspace().unwrap();
    let plain = PytestExecutor::new(
        "python",
        ["-m", "pytest", "-p", "no:cacheprovider", "tests"]
            .map(String::from)
            .to_vec(),
    );
    let forking = plain.clone().forking(true).collected(false);
    forking.prepare(&mut ws).unwrap();
    forking
        .run_tests(&mut ws, &TestSelection::All, &RunOptions::default())
        .unwrap();
    assert!(!forking.warm_files().is_empty());
    forking.prepare(&mut ws).unwrap();
    let clean = std::fs::read_to_string(ws.root().join("calc/ops.py")).unwrap();
    let broken = clean.replacen("a + b", "a - b", 1);
    ws.apply(&smith_core::Patch::from_changes(&[
        smith_core::FileChange::modified("calc/ops.py", &clean, &broken),
    ]))
    .unwrap();
    let failing = TestSelection::Only(
        [
            "tests/test_ops.py::test_add[1-2-3]",
            "tests/test_ops.py::test_add[-1-1-0]",
            "tests/test_ops.py::test_mul[3-4]",
        ]
        .map(TestId::from)
        .to_vec(),
    );
    let forked = forking
        .run_tests(&mut ws, &failing, &RunOptions::default())
        .unwrap();
    let fresh = plain
        .run_tests(&mut ws, &failing, &RunOptions::default())
        .unwrap();
    assert_eq!(forked.outcomes, fresh.outcomes);
    assert_eq!(
        forked
            .outcomes
            .values()
            .filter(|o| **o == Outcome::Failed)
            .count(),
        3
    );
    assert!(fresh.log.contains("E       assert"), "{}", fresh.log);
    assert!(without_timings(&fresh.log).contains("3 failed, 3 deselected in Xs"));
    assert_eq!(without_timings(&forked.log), without_timings(&fresh.log));
}

/// The log with pytest's "in 0.12s" timings blanked out (the summary line
/// is framed by `=`, so the timing is followed by more than the `s`).
fn without_timings(log: &str) -> String {
    log.lines()
        .map(|line| {
            let Some(i) = line.rfind(" in ") else {
                return line.to_string();
            };
            let rest = &line[i + 4..];
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            if digits > 0 && rest[digits..].starts_with('s') {
                format!("{} in Xs{}", &line[..i], &rest[digits + 1..])
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A forked run ends as timed out when one test's call uses more CPU time
/// than the per-test limit, even with no limit on the run; a busy fixture
/// set up before the call, and a call that only waits, do not count.
#[test]
fn a_fork_server_stops_one_test_that_outlasts_its_limit() {
    stops_one_test_over_its_limit(true);
}

/// A fresh interpreter keeps the same per-test limit (the plugin watches
/// the call), so a looping mutant costs the limit there too.
#[test]
fn a_fresh_interpreter_stops_one_test_that_outlasts_its_limit() {
    stops_one_test_over_its_limit(false);
}

fn stops_one_test_over_its_limit(forking: bool) {
    let sandbox = CopySandbox::new(fixture("hang"));
    let mut ws = sandbox.workspace().unwrap();
    let exec = pytest().forking(forking).collected(false);
    exec.prepare(&mut ws).unwrap();
    let per_test = RunOptions {
        timeout: None,
        test_timeout: Some(Duration::from_millis(500)),
        ..RunOptions::default()
    };
    let report = exec
        .run_tests(
            &mut ws,
            &TestSelection::Only(vec![TestId::from("tests/test_hang.py::test_loops")]),
            &per_test,
        )
        .unwrap();
    assert!(report.timed_out, "{}", report.log);
    assert_eq!(
        report.over_test_limit,
        Some(TestId::from("tests/test_hang.py::test_loops"))
    );
    assert!(report.outcomes.is_empty());
    // A subtest's report comes from inside the call: the clock goes on.
    let looping = TestId::from("tests/test_subtests.py::Subtests::test_loops_after_a_subtest");
    let report = exec
        .run_tests(
            &mut ws,
            &TestSelection::Only(vec![looping.clone()]),
            &RunOptions {
                timeout: Some(Duration::from_secs(60)),
                ..per_test.clone()
            },
        )
        .unwrap();
    assert!(report.timed_out, "{}", report.log);
    assert_eq!(report.over_test_limit, Some(looping), "{}", report.log);
    let report = exec
        .run_tests(
            &mut ws,
            &TestSelection::Only(vec![
                TestId::from("tests/test_slow_setup.py::test_after_busy_fixture"),
                TestId::from("tests/test_slow_setup.py::test_quick"),
                TestId::from("tests/test_slow_setup.py::test_waits"),
            ]),
            &per_test,
        )
        .unwrap();
    assert!(!report.timed_out, "{}", report.log);
    assert_eq!(
        report.outcomes,
        outcomes(&[
            (
                "tests/test_slow_setup.py::test_after_busy_fixture",
                Outcome::Passed
            ),
            ("tests/test_slow_setup.py::test_quick", Outcome::Passed),
            ("tests/test_slow_setup.py::test_waits", Outcome::Passed),
        ])
    );
    assert_eq!(exec.served_runs(), if forking { 3 } else { 0 });
}

/// The part of a log from its failures to its short summary: the
/// tracebacks, which must name the changed source and its line numbers.
fn failures_section(log: &str) -> &str {
    let start = log.find("= FAILURES =").unwrap_or(0);
    let end = log.find("short test summary info").unwrap_or(log.len());
    &log[start..end]
}

/// One edit of a fixture: the file, the edit, whether a collected server
/// swaps it in (else it hands the run back), and text the failures must
/// show.
type Edit = (&'static str, fn(&str) -> String, bool, Option<&'static str>);

/// Apply each of `edits` in turn to a workspace of `fixture` whose collected
/// server was started clean, run `ids` through it and through a fresh
/// interpreter, and compare: the same outcomes (at least one failure), the
/// same tracebacks, the expected path (swapped in or handed back); after
/// each reset the clean outcomes again.
fn collected_runs_match_fresh_ones(fixture_name: &str, ids: &[&str], edits: &[Edit]) {
    let sandbox = CopySandbox::new(fixture(fixture_name));
    let mut ws = sandbox.copy_workspace().unwrap();
    let plain = pytest();
    let exec = pytest().forking(true);
    exec.prepare(&mut ws).unwrap();
    let selection = TestSelection::Only(ids.iter().map(|i| TestId::from(*i)).collect());
    let run = |exec: &PytestExecutor, ws: &mut support::CopyWorkspace| {
        exec.run_tests(ws, &selection, &RunOptions::default())
            .unwrap()
    };
    let clean = run(&exec, &mut ws);
    assert_eq!(clean.outcomes.len(), ids.len(), "{}", clean.log);
    assert!(clean.outcomes.values().all(|o| *o == Outcome::Passed));
    assert_eq!(exec.collected_runs(), (1, 0));
    let mut served = 1;
    let mut handed_back = 0;
    for (file, edit, swapped, shows) in edits {
        let text = std::fs::read_to_string(ws.root().join(file)).unwrap();
        let edited = edit(&text);
        assert_ne!(text, edited);
        ws.apply(&smith_core::Patch::from_changes(&[
            smith_core::FileChange::modified(*file, &text, &edited),
        ]))
        .unwrap();
        let got = run(&exec, &mut ws);
        let want = run(&plain, &mut ws);
        assert_eq!(got.outcomes, want.outcomes, "edit of {file}: {}", got.log);
        assert!(
            got.outcomes.values().any(|o| *o == Outcome::Failed),
            "edit of {file} broke nothing"
        );
        assert_eq!(
            without_timings(failures_section(&got.log)),
            without_timings(failures_section(&want.log)),
        );
        if let Some(shows) = shows {
            assert!(failures_section(&got.log).contains(shows), "{}", got.log);
        }
        if *swapped {
            served += 1;
        } else {
            handed_back += 1;
        }
        assert_eq!(
            exec.collected_runs(),
            (served, handed_back),
            "edit of {file}"
        );
        ws.reset().unwrap();
        let again = run(&exec, &mut ws);
        served += 1;
        assert_eq!(again.outcomes, clean.outcomes, "reset of {file}");
    }
}

/// A collected server swaps a changed function body into the live code:
/// outcomes and tracebacks are what a fresh interpreter gives on the edited
/// tree, also when lines above the function moved; a change at module
/// level, a new definition or an edited test file is handed back to the
/// plain server, which gives the right answer too.
#[test]
fn a_collected_server_swaps_in_changed_function_bodies_and_hands_back_the_rest() {
    collected_runs_match_fresh_ones(
        "calc",
        &[
            "tests/test_ops.py::test_add[1-2-3]",
            "tests/test_ops.py::test_mul[3-4]",
            "tests/test_ops.py::test_sub",
            "tests/test_stats.py::test_mean",
            "tests/test_stats.py::test_version",
        ],
        &[
            (
                "calc/ops.py",
                |s| s.replacen("a + b", "a - b", 1),
                true,
                None,
            ),
            // Lines above `add` moved, and it raises: the traceback must
            // show the new line number and text.
            (
                "calc/ops.py",
                |s| format!("# moved\n\n{}", s.replacen("a + b", "a + b + None", 1)),
                true,
                Some("calc/ops.py:4: TypeError"),
            ),
            (
                "calc/ops.py",
                |s| s.replacen("result = 0", "result = 1", 1),
                true,
                None,
            ),
            (
                "calc/__init__.py",
                |s| s.replacen("\"1.0\"", "\"2.0\"", 1),
                false,
                None,
            ),
            (
                "calc/ops.py",
                |s| {
                    format!(
                        "{}\n\ndef extra():\n    return 1\n",
                        s.replacen("a + b", "a - b", 1)
                    )
                },
                false,
                None,
            ),
            (
                "tests/test_ops.py",
                |s| s.replacen("sub(5, 3) == 2", "sub(5, 3) == 3", 1),
                false,
                None,
            ),
        ],
    );
}

/// Closures made at import (a decorator's wrapper) and decorated functions
/// take the new code; a comprehension that ran at import, a changed
/// docstring and a generator suspended since import are handed back.
#[test]
fn a_collected_server_swaps_closures_and_hands_back_what_ran_at_import() {
    collected_runs_match_fresh_ones(
        "swap",
        &[
            "tests/test_code.py::test_double",
            "tests/test_code.py::test_table",
            "tests/test_code.py::test_first_doc",
            "tests/test_code.py::test_running",
        ],
        &[
            (
                "swap/code.py",
                |s| s.replacen("return f(*args)", "return f(*args) + 1", 1),
                true,
                Some("assert 5 == 4"),
            ),
            (
                "swap/code.py",
                |s| s.replacen("x * 2", "x * 3", 1),
                true,
                Some("assert 6 == 4"),
            ),
            (
                "swap/code.py",
                |s| s.replacen("n * 2 for n", "n * 3 for n", 1),
                false,
                None,
            ),
            (
                "swap/code.py",
                |s| s.replacen("\"\"\"Doc.\"\"\"", "\"\"\"Changed.\"\"\"", 1),
                false,
                None,
            ),
            (
                "swap/code.py",
                |s| s.replacen("yield 2", "yield 3", 1),
                false,
                None,
            ),
        ],
    );
}

/// A test that draws from the process's random state is named in the
/// report, in a fork server's child and in a fresh interpreter alike; one
/// that seeds the generator itself, or draws nothing, is not.
#[test]
fn tests_that_draw_from_the_random_state_are_reported() {
    let sandbox = CopySandbox::new(fixture("dice"));
    let mut ws = sandbox.workspace().unwrap();
    for forking in [true, false] {
        let exec = pytest().forking(forking);
        exec.prepare(&mut ws).unwrap();
        let report = exec
            .run_tests(&mut ws, &TestSelection::All, &RunOptions::default())
            .unwrap();
        assert_eq!(report.passed().len(), 5, "{}", report.log);
        assert_eq!(
            report.randomized,
            BTreeSet::from([
                TestId::from("tests/test_dice.py::test_double_of_a_random_number"),
                TestId::from("tests/test_dice.py::test_steps_of_a_random_odd_number"),
            ]),
            "forking: {forking}"
        );
    }
}

/// A test's own limit (`RunOptions::test_timeouts`) stops it where the
/// run's per-test limit would not, in a fork server and a fresh interpreter
/// alike.
#[test]
fn a_tests_own_limit_applies_in_place_of_the_runs() {
    stopped_by_own_limit("tests/test_hang.py::test_loops", Duration::from_millis(500));
}

/// A test that blocks for good without using CPU (a deadlock) is over once
/// its call has lasted twice its own limit and sat idle for a second, in a
/// fork server and a fresh interpreter alike: with an own limit of 2 s that
/// is about 4–5 s, long before the wall-time bound (8 × 2 s + 2 s) and the
/// run's limits: a hung mutant costs about twice its limit, not the run's
/// whole limit and a re-run.
#[test]
fn a_test_that_waits_for_good_is_over_soon_after_its_limit() {
    let elapsed = stopped_by_own_limit(
        "tests/test_wait.py::test_waits_for_nothing",
        Duration::from_secs(2),
    );
    assert!(
        elapsed < Duration::from_secs(18),
        "stopped by the wall-time bound, not as idle: {elapsed:?}"
    );
}

/// A test that waits for a program of its own is not idle, however long it
/// waits within the wall-time bound (here 8 × 0.5 s + 2 s): the child may
/// be working for it.
#[test]
fn a_test_waiting_for_its_own_child_is_not_idle() {
    let sandbox = CopySandbox::new(fixture("hang"));
    let mut ws = sandbox.workspace().unwrap();
    let test = TestId::from("tests/test_wait.py::test_waits_for_a_child");
    for forking in [true, false] {
        let exec = pytest().forking(forking).collected(false);
        exec.prepare(&mut ws).unwrap();
        let options = RunOptions {
            timeout: Some(Duration::from_secs(120)),
            test_timeout: Some(Duration::from_millis(500)),
            ..RunOptions::default()
        };
        let report = exec
            .run_tests(&mut ws, &TestSelection::Only(vec![test.clone()]), &options)
            .unwrap();
        assert!(!report.timed_out, "forking {forking}: {}", report.log);
        assert_eq!(
            report.outcomes,
            outcomes(&[(
                "tests/test_wait.py::test_waits_for_a_child",
                Outcome::Passed
            )]),
            "forking {forking}"
        );
    }
}

/// Run `test` of the `hang` fixture alone with its own limit `own` (the
/// run's limits far above it), forked and fresh: the run must end as
/// timed out, name `test` as over its limit, and end long before the
/// run's limits would.
/// Returns the longer of the two runs' wall times.
fn stopped_by_own_limit(test: &str, own: Duration) -> Duration {
    let sandbox = CopySandbox::new(fixture("hang"));
    let mut ws = sandbox.workspace().unwrap();
    let test = TestId::from(test);
    let mut longest = Duration::ZERO;
    for forking in [true, false] {
        let exec = pytest().forking(forking).collected(false);
        exec.prepare(&mut ws).unwrap();
        let options = RunOptions {
            timeout: Some(Duration::from_secs(120)),
            test_timeout: Some(Duration::from_secs(100)),
            test_timeouts: [(test.clone(), own)].into(),
            ..RunOptions::default()
        };
        let started = Instant::now();
        let report = exec
            .run_tests(&mut ws, &TestSelection::Only(vec![test.clone()]), &options)
            .unwrap();
        assert!(report.timed_out, "forking {forking}: {}", report.log);
        assert_eq!(
            report.over_test_limit,
            Some(test.clone()),
            "forking {forking}"
        );
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(60),
            "forking {forking}: stopped by the run's limits, not the test's"
        );
        longest = longest.max(elapsed);
    }
    longest
}
