//! Test ids, outcomes and the report of one test run.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::RepoRef;

/// A pytest node id exactly as pytest prints it, e.g.
/// `tests/test_x.py::TestA::test_b[param-1]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TestId(pub String);

impl TestId {
    /// A test id from its text.
    pub fn new(id: impl Into<String>) -> Self {
        TestId(id.into())
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The file part of the id (before the first `::`).
    pub fn file(&self) -> &str {
        self.0.split("::").next().unwrap_or(&self.0)
    }
}

impl std::fmt::Display for TestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TestId {
    fn from(s: &str) -> Self {
        TestId(s.to_string())
    }
}

/// What happened to one test in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The test passed.
    Passed,
    /// An assertion or exception in the test body.
    Failed,
    /// An error in setup or teardown, or while collecting the test.
    Error,
    /// Skipped.
    Skipped,
    /// Expected to fail, and failed.
    XFailed,
    /// Expected to fail, and passed.
    XPassed,
}

impl Outcome {
    /// Passed or xfailed: the outcomes SWE-bench counts as success.
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Passed | Outcome::XFailed)
    }

    /// Failed or errored.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Error)
    }
}

/// Everything one test run produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestReport {
    /// Outcome per test.
    pub outcomes: BTreeMap<TestId, Outcome>,
    /// Seconds per test, where known.
    pub durations: BTreeMap<TestId, f64>,
    /// Wall time of the whole run in seconds.
    pub wall_secs: f64,
    /// Exit code of the test process (`None` if killed by a signal).
    pub exit_code: Option<i32>,
    /// The run was killed at its time limit.
    pub timed_out: bool,
    /// The run was killed because this test's call ran over the per-test
    /// limit (a hung test), not because the whole run ran out of time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over_test_limit: Option<TestId>,
    /// Test files (or node ids) that failed to import or collect.
    pub collection_errors: Vec<String>,
    /// Tests that drew from the process's random state (Python's global
    /// random generators, unseeded by the test), so that their outcome in
    /// another process may differ.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub randomized: BTreeSet<TestId>,
    /// The run's combined output, possibly truncated.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log: String,
}

impl TestReport {
    /// Tests whose outcome is a success.
    pub fn passed(&self) -> BTreeSet<TestId> {
        self.outcomes
            .iter()
            .filter(|(_, o)| o.is_success())
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Tests that failed or errored.
    pub fn failed(&self) -> BTreeSet<TestId> {
        self.outcomes
            .iter()
            .filter(|(_, o)| o.is_failure())
            .map(|(t, _)| t.clone())
            .collect()
    }
}

/// What the clean tree's test suite does: the reference every candidate is
/// judged against.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Repository name (`owner/name`).
    pub repo: String,
    /// Commit the baseline ran on.
    pub base_commit: String,
    /// How many times the suite ran.
    pub runs: u32,
    /// The hash seed (`PYTHONHASHSEED`) each run was given, where the
    /// executor takes one; distinct seeds show tests whose ids or outcomes
    /// depend on hash order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hash_seeds: Vec<u32>,
    /// Tests that passed in every run: the only ones eligible for F2P/P2P.
    pub passing: BTreeSet<TestId>,
    /// Tests whose outcome differed between runs.
    pub flaky: BTreeSet<TestId>,
    /// Tests that failed, errored or were skipped in every run.
    pub other: BTreeSet<TestId>,
    /// Mean seconds per test.
    pub durations: BTreeMap<TestId, f64>,
    /// Mean wall time of one full run, seconds.
    pub wall_secs: f64,
}

impl Baseline {
    /// The repository and commit this baseline is of.
    pub fn repo_ref(&self) -> RepoRef {
        RepoRef::new(&self.repo, &self.base_commit)
    }

    /// Combine `k` reports of full runs into a baseline.
    ///
    /// A test missing from some run, or whose outcome differs between runs,
    /// is flaky. So is every case of a parametrized test with a case missing
    /// from some run: case ids that change from one process to the next
    /// (an index into data in hash order, run under different hash seeds)
    /// show up as cases missing from some run, and a case whose id happens
    /// to agree in these runs would not in a grader's.
    pub fn from_reports(repo: &RepoRef, reports: &[TestReport]) -> Baseline {
        let mut all: BTreeSet<TestId> = BTreeSet::new();
        for r in reports {
            all.extend(r.outcomes.keys().cloned());
        }
        let unstable_cases: BTreeSet<&str> = all
            .iter()
            .filter(|t| reports.iter().any(|r| !r.outcomes.contains_key(*t)))
            .filter_map(|t| t.as_str().split_once('[').map(|(function, _)| function))
            .collect();
        let mut b = Baseline {
            repo: repo.name.clone(),
            base_commit: repo.commit.clone(),
            runs: reports.len() as u32,
            ..Baseline::default()
        };
        for t in &all {
            let in_unstable_family = t
                .as_str()
                .split_once('[')
                .is_some_and(|(function, _)| unstable_cases.contains(function));
            let outs: Vec<Option<Outcome>> =
                reports.iter().map(|r| r.outcomes.get(t).copied()).collect();
            if in_unstable_family {
                b.flaky.insert(t.clone());
            } else if outs.iter().all(|o| *o == Some(Outcome::Passed)) {
                b.passing.insert(t.clone());
            } else if outs.windows(2).any(|w| w[0] != w[1]) {
                b.flaky.insert(t.clone());
            } else {
                b.other.insert(t.clone());
            }
            let ds: Vec<f64> = reports
                .iter()
                .filter_map(|r| r.durations.get(t).copied())
                .collect();
            if !ds.is_empty() {
                b.durations
                    .insert(t.clone(), ds.iter().sum::<f64>() / ds.len() as f64);
            }
        }
        if !reports.is_empty() {
            b.wall_secs = reports.iter().map(|r| r.wall_secs).sum::<f64>() / reports.len() as f64;
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(pairs: &[(&str, Outcome)]) -> TestReport {
        TestReport {
            outcomes: pairs.iter().map(|(t, o)| (TestId::from(*t), *o)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn baseline_separates_stable_flaky_and_failing() {
        use Outcome::*;
        let b = Baseline::from_reports(
            &crate::RepoRef::new("o/r", "abc"),
            &[
                report(&[("a", Passed), ("b", Passed), ("c", Failed)]),
                report(&[("a", Passed), ("b", Failed), ("c", Failed)]),
                report(&[("a", Passed), ("b", Passed), ("c", Failed)]),
            ],
        );
        assert_eq!(b.passing, BTreeSet::from([TestId::from("a")]));
        assert_eq!(b.flaky, BTreeSet::from([TestId::from("b")]));
        assert_eq!(b.other, BTreeSet::from([TestId::from("c")]));
    }

    #[test]
    fn cases_of_a_parametrized_test_whose_ids_change_between_runs_are_all_flaky() {
        use Outcome::*;
        // Indexes into hash-ordered data: `a-x0` in one run, `a-x1` in the
        // next; `c-x2` happens to agree, and is no more reproducible.
        let b = Baseline::from_reports(
            &crate::RepoRef::new("o/r", "c"),
            &[
                report(&[
                    ("t.py::f[a-x0]", Passed),
                    ("t.py::f[b-x1]", Passed),
                    ("t.py::f[c-x2]", Passed),
                    ("t.py::g[1]", Passed),
                    ("t.py::h", Passed),
                ]),
                report(&[
                    ("t.py::f[b-x0]", Passed),
                    ("t.py::f[a-x1]", Passed),
                    ("t.py::f[c-x2]", Passed),
                    ("t.py::g[1]", Passed),
                    ("t.py::h", Passed),
                ]),
            ],
        );
        assert_eq!(
            b.passing,
            BTreeSet::from([TestId::from("t.py::g[1]"), TestId::from("t.py::h")])
        );
        assert_eq!(b.flaky.len(), 5);
        assert!(b.flaky.contains(&TestId::from("t.py::f[c-x2]")));
    }

    #[test]
    fn a_test_missing_from_one_run_is_flaky() {
        use Outcome::*;
        let b = Baseline::from_reports(
            &crate::RepoRef::new("o/r", "c"),
            &[report(&[("a", Passed)]), report(&[])],
        );
        assert!(b.passing.is_empty());
        assert!(b.flaky.contains(&TestId::from("a")));
    }
}
