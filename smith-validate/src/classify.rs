//! Classification: the pure function from (baseline, selection, report) to a
//! [`Verdict`]. No processes; tested with tables of cases.

use std::collections::BTreeSet;

use smith_core::{Baseline, InvalidReason, Outcome, TestId, TestReport, TestSelection, Verdict};

/// The tests a run was asked to judge: the selected tests that passed in
/// every baseline run. Flaky and failing tests are never labelled.
pub fn eligible(baseline: &Baseline, selected: &TestSelection) -> BTreeSet<TestId> {
    match selected {
        TestSelection::All => baseline.passing.clone(),
        TestSelection::Only(ids) | TestSelection::AllKnown(ids) => ids
            .iter()
            .filter(|t| baseline.passing.contains(*t))
            .cloned()
            .collect(),
    }
}

/// Whether `test` lies under a node that failed to collect (its module, its
/// package directory or, for an empty node id, the whole session).
pub fn collection_failed(report: &TestReport, test: &TestId) -> bool {
    let id = test.as_str();
    report.collection_errors.iter().any(|e| {
        e.is_empty()
            || id == e
            || id
                .strip_prefix(e.as_str())
                .is_some_and(|rest| rest.starts_with("::") || rest.starts_with('/'))
    })
}

/// Eligible tests the report says nothing about, though no collection error
/// explains their absence. Such a run is re-run, never judged as it is.
pub fn missing_tests(
    baseline: &Baseline,
    selected: &TestSelection,
    report: &TestReport,
) -> BTreeSet<TestId> {
    eligible(baseline, selected)
        .into_iter()
        .filter(|t| !report.outcomes.contains_key(t) && !collection_failed(report, t))
        .collect()
}

/// Classify one bug run.
///
/// * A run that hit its time limit is [`Verdict::TimedOut`].
/// * FAIL_TO_PASS: eligible tests (see [`eligible`]) that failed or errored,
///   or are absent because their module failed to collect.
/// * PASS_TO_PASS: eligible tests that passed, plus — when only some tests
///   were selected — every baseline-passing test that was not selected: the
///   selection holds every test that executes the changed code, so the
///   others run exactly as on the clean tree. This makes labels from a
///   selected run comparable with labels from a full run.
/// * An eligible test missing from the report without a collection error
///   makes the run [`Verdict::Invalid`]; it is never counted as a pass or a
///   fail.
/// * No FAIL_TO_PASS: [`Verdict::NoTestBroke`]; no PASS_TO_PASS:
///   [`Verdict::Invalid`] (every test broke); no eligible test selected:
///   [`Verdict::Uncovered`].
/// * A module that failed to collect makes an otherwise kept run
///   [`Verdict::Invalid`] too: a grader's plain `pytest` stops at the error
///   before any test, so no PASS_TO_PASS label would hold there.
///
/// ```
/// use smith_core::{Baseline, Outcome, TestId, TestReport, TestSelection, Verdict};
/// use smith_validate::classify;
///
/// let baseline = Baseline {
///     passing: ["t::a", "t::b"].map(TestId::from).into(),
///     ..Baseline::default()
/// };
/// let report = TestReport {
///     outcomes: [(TestId::from("t::a"), Outcome::Failed), (TestId::from("t::b"), Outcome::Passed)].into(),
///     ..TestReport::default()
/// };
/// let verdict = classify(&baseline, &TestSelection::All, &report);
/// assert!(verdict.is_kept());
/// ```
pub fn classify(baseline: &Baseline, selected: &TestSelection, report: &TestReport) -> Verdict {
    if report.timed_out {
        return Verdict::TimedOut;
    }
    let eligible = eligible(baseline, selected);
    if eligible.is_empty() {
        return match selected {
            TestSelection::All | TestSelection::AllKnown(_) => Verdict::Invalid {
                reason: InvalidReason::NoReliableTest,
            },
            TestSelection::Only(_) => Verdict::Uncovered,
        };
    }
    let mut fail_to_pass = BTreeSet::new();
    let mut pass_to_pass = BTreeSet::new();
    let mut missing = Vec::new();
    for test in &eligible {
        match report.outcomes.get(test) {
            Some(o) if o.is_failure() => {
                fail_to_pass.insert(test.clone());
            }
            Some(Outcome::Passed) => {
                pass_to_pass.insert(test.clone());
            }
            // Skipped, xfailed or xpassed where it passed before: the bug
            // changed the test's behaviour without failing it; neither label.
            Some(_) => {}
            None if collection_failed(report, test) => {
                fail_to_pass.insert(test.clone());
            }
            None => missing.push(test),
        }
    }
    if !missing.is_empty() {
        return Verdict::Invalid {
            reason: InvalidReason::TestsMissing {
                count: missing.len(),
                example: missing[0].clone(),
            },
        };
    }
    // A session that died before collecting anything would have taken the
    // unselected tests down too: they are not vouched for.
    let session_died = report.collection_errors.iter().any(String::is_empty);
    if matches!(selected, TestSelection::Only(_)) && !session_died {
        pass_to_pass.extend(
            baseline
                .passing
                .iter()
                .filter(|t| !eligible.contains(*t))
                .cloned(),
        );
    }
    if fail_to_pass.is_empty() {
        return Verdict::NoTestBroke;
    }
    if pass_to_pass.is_empty() {
        return Verdict::Invalid {
            reason: InvalidReason::EveryTestBroke {
                failed: fail_to_pass.len(),
            },
        };
    }
    // smith's runs go on past a module that fails to collect; a grader's
    // plain `pytest` stops there and runs no test at all, so no test could
    // pass with the bug: every test breaks, as above.
    if !report.collection_errors.is_empty() {
        return Verdict::Invalid {
            reason: InvalidReason::CollectionErrors {
                modules: report.collection_errors.len(),
            },
        };
    }
    Verdict::Kept {
        fail_to_pass,
        pass_to_pass,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::*;

    fn ids(names: &[&str]) -> BTreeSet<TestId> {
        names.iter().map(|n| TestId::from(*n)).collect()
    }

    fn baseline() -> Baseline {
        Baseline {
            passing: ids(&["m.py::a", "m.py::b", "m.py::c", "n.py::d"]),
            flaky: ids(&["m.py::flaky"]),
            other: ids(&["m.py::broken"]),
            ..Baseline::default()
        }
    }

    fn report(pairs: &[(&str, Outcome)]) -> TestReport {
        TestReport {
            outcomes: pairs.iter().map(|(t, o)| (TestId::from(*t), *o)).collect(),
            ..TestReport::default()
        }
    }

    fn only(names: &[&str]) -> TestSelection {
        TestSelection::Only(names.iter().map(|n| TestId::from(*n)).collect())
    }

    /// The whole suite, naming every test the baseline saw.
    fn known() -> TestSelection {
        let b = baseline();
        TestSelection::AllKnown(
            b.passing
                .iter()
                .chain(&b.flaky)
                .chain(&b.other)
                .cloned()
                .collect(),
        )
    }

    fn kept(f2p: &[&str], p2p: &[&str]) -> Verdict {
        Verdict::Kept {
            fail_to_pass: ids(f2p),
            pass_to_pass: ids(p2p),
        }
    }

    #[test]
    fn table() {
        let all = TestSelection::All;
        let full = |extra: &[(&str, Outcome)]| {
            let mut pairs = vec![
                ("m.py::a", Passed),
                ("m.py::b", Passed),
                ("m.py::c", Passed),
                ("n.py::d", Passed),
                ("m.py::flaky", Failed),
                ("m.py::broken", Failed),
            ];
            pairs.retain(|(t, _)| !extra.iter().any(|(e, _)| e == t));
            pairs.extend_from_slice(extra);
            report(&pairs)
        };
        let everything_broke = || {
            full(&[
                ("m.py::a", Failed),
                ("m.py::b", Failed),
                ("m.py::c", Error),
                ("n.py::d", Failed),
            ])
        };
        let cases: Vec<(&str, TestSelection, TestReport, Verdict)> = vec![
            (
                "one failure, full suite",
                all.clone(),
                full(&[("m.py::a", Failed)]),
                kept(&["m.py::a"], &["m.py::b", "m.py::c", "n.py::d"]),
            ),
            (
                "an error counts as a failure",
                all.clone(),
                full(&[("m.py::a", Error)]),
                kept(&["m.py::a"], &["m.py::b", "m.py::c", "n.py::d"]),
            ),
            (
                "flaky and failing tests are never labelled",
                all.clone(),
                full(&[("m.py::flaky", Passed), ("m.py::a", Failed)]),
                kept(&["m.py::a"], &["m.py::b", "m.py::c", "n.py::d"]),
            ),
            (
                "nothing broke",
                all.clone(),
                full(&[]),
                Verdict::NoTestBroke,
            ),
            (
                "only the flaky test broke",
                all.clone(),
                full(&[("m.py::flaky", Error)]),
                Verdict::NoTestBroke,
            ),
            (
                "everything broke",
                all.clone(),
                everything_broke(),
                Verdict::Invalid {
                    reason: InvalidReason::EveryTestBroke { failed: 4 },
                },
            ),
            (
                "selected run: unselected passing tests are pass-to-pass",
                only(&["m.py::a", "m.py::b"]),
                report(&[("m.py::a", Failed), ("m.py::b", Passed)]),
                kept(&["m.py::a"], &["m.py::b", "m.py::c", "n.py::d"]),
            ),
            (
                "selected run where every selected test broke",
                only(&["m.py::a"]),
                report(&[("m.py::a", Failed)]),
                kept(&["m.py::a"], &["m.py::b", "m.py::c", "n.py::d"]),
            ),
            (
                "a missing selected test is invalid, not a pass",
                only(&["m.py::a", "m.py::b"]),
                report(&[("m.py::a", Failed)]),
                Verdict::Invalid {
                    reason: InvalidReason::TestsMissing {
                        count: 1,
                        example: TestId::from("m.py::b"),
                    },
                },
            ),
            (
                "a missing test in a full run is invalid too",
                all.clone(),
                report(&[("m.py::a", Failed), ("m.py::b", Passed)]),
                Verdict::Invalid {
                    reason: InvalidReason::TestsMissing {
                        count: 2,
                        example: TestId::from("m.py::c"),
                    },
                },
            ),
            (
                "a module that fails to collect stops a plain pytest run",
                all.clone(),
                TestReport {
                    collection_errors: vec!["m.py".into()],
                    ..report(&[("n.py::d", Passed)])
                },
                Verdict::Invalid {
                    reason: InvalidReason::CollectionErrors { modules: 1 },
                },
            ),
            (
                "a package collection error covers its modules",
                only(&["pkg/t.py::x", "m.py::a"]),
                TestReport {
                    collection_errors: vec!["pkg".into()],
                    ..report(&[("m.py::a", Passed)])
                },
                Verdict::NoTestBroke,
            ),
            (
                "a skip where the test passed before is neither label",
                all.clone(),
                full(&[("m.py::a", Skipped), ("m.py::b", Failed)]),
                kept(&["m.py::b"], &["m.py::c", "n.py::d"]),
            ),
            (
                "a session that died vouches for no unselected test",
                only(&["m.py::a"]),
                TestReport {
                    collection_errors: vec![String::new()],
                    ..report(&[])
                },
                Verdict::Invalid {
                    reason: InvalidReason::EveryTestBroke { failed: 1 },
                },
            ),
            (
                "timed out beats everything",
                all.clone(),
                TestReport {
                    timed_out: true,
                    ..full(&[("m.py::a", Failed)])
                },
                Verdict::TimedOut,
            ),
            (
                "selection of only ineligible tests",
                only(&["m.py::flaky"]),
                report(&[("m.py::flaky", Failed)]),
                Verdict::Uncovered,
            ),
            (
                "whole suite of known tests: judged like the full suite",
                known(),
                full(&[("m.py::a", Failed)]),
                kept(&["m.py::a"], &["m.py::b", "m.py::c", "n.py::d"]),
            ),
            (
                "whole suite of known tests: a missing one is invalid",
                known(),
                report(&[
                    ("m.py::a", Failed),
                    ("m.py::b", Passed),
                    ("m.py::c", Passed),
                ]),
                Verdict::Invalid {
                    reason: InvalidReason::TestsMissing {
                        count: 1,
                        example: TestId::from("n.py::d"),
                    },
                },
            ),
            (
                "whole suite of known tests where every test broke",
                known(),
                everything_broke(),
                Verdict::Invalid {
                    reason: InvalidReason::EveryTestBroke { failed: 4 },
                },
            ),
            (
                "selection with an unknown test ignores it",
                only(&["m.py::a", "m.py::new"]),
                report(&[("m.py::a", Failed)]),
                kept(&["m.py::a"], &["m.py::b", "m.py::c", "n.py::d"]),
            ),
        ];
        let b = baseline();
        for (name, selection, report, want) in cases {
            assert_eq!(classify(&b, &selection, &report), want, "case: {name}");
        }
    }

    #[test]
    fn a_package_collection_error_makes_its_tests_fail() {
        let b = Baseline {
            passing: ids(&["pkg/t.py::x", "m.py::a"]),
            ..Baseline::default()
        };
        let r = TestReport {
            collection_errors: vec!["pkg".into()],
            ..report(&[("m.py::a", Passed)])
        };
        // Its tests fail; a plain pytest run would stop at the error, so
        // m.py::a cannot be vouched for either.
        assert!(collection_failed(&r, &TestId::from("pkg/t.py::x")));
        assert!(matches!(
            classify(&b, &TestSelection::All, &r),
            Verdict::Invalid { .. }
        ));
        assert!(missing_tests(&b, &TestSelection::All, &r).is_empty());
        assert!(!collection_failed(&r, &TestId::from("pkgx/t.py::y")));
    }
}
