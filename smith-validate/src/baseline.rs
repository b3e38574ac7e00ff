//! The baseline: the clean tree's suite run `k` times, and the time limits
//! derived from it.

use std::collections::BTreeMap;
use std::time::Duration;

use smith_core::{
    Baseline, Error, Executor, RepoRef, Result, RunOptions, TestId, TestSelection, Workspace,
};

/// Run the whole suite `k` times in a clean `workspace` and combine the runs
/// into a [`Baseline`]: tests that pass every time are eligible for labels,
/// tests whose outcome changes are flaky, durations are averaged.
///
/// Run `i` (counting from 1) has its hash seed fixed at `i` where the
/// executor has one ([`Executor::with_seed`]), so with `k` of at least
/// 2 a test whose id or outcome depends on hash order (a parameter list
/// made from a `set`, say) is missing from a run or changes its outcome:
/// flaky, never a label. The executor is
/// [`prepare`](Executor::prepare)d before each run, on the clean tree.
///
/// Fails if a run times out or reports no test at all (a broken environment
/// must not pass for a suite without tests).
pub fn run_baseline(
    workspace: &mut dyn Workspace,
    executor: &dyn Executor,
    k: u32,
    repo: &RepoRef,
    options: &RunOptions,
) -> Result<Baseline> {
    run_baseline_with(workspace, &[executor], k, repo, options)
}

/// [`run_baseline`] with runs shared out among `executors`: run `i`
/// (counting from 0) uses `executors[i % executors.len()]`.
///
/// Give a forking [`PytestExecutor`](crate::PytestExecutor) (with
/// [`collected`](crate::PytestExecutor::collected) off: whole-suite runs
/// never use a collected server) and its
/// [`plain`](crate::PytestExecutor::plain) twin, with `k` at least 2: a
/// test that behaves differently in a forked child than in a fresh
/// interpreter then comes out flaky, and so does one that depends on the
/// hash seed (every run has a seed of its own, every other run in a fresh
/// interpreter).
pub fn run_baseline_with(
    workspace: &mut dyn Workspace,
    executors: &[&dyn Executor],
    k: u32,
    repo: &RepoRef,
    options: &RunOptions,
) -> Result<Baseline> {
    if k == 0 {
        return Err(Error::invalid("baseline runs", "k must be at least 1"));
    }
    if executors.is_empty() {
        return Err(Error::invalid("baseline executors", "none given"));
    }
    workspace.reset()?;
    let mut reports = Vec::with_capacity(k as usize);
    let mut hash_seeds = Vec::new();
    for run in 1..=k {
        let executor = executors[(run as usize - 1) % executors.len()];
        let seeded = executor.with_seed(run);
        if seeded.is_some() {
            hash_seeds.push(run);
        }
        let executor = seeded.as_deref().unwrap_or(executor);
        executor.prepare(workspace)?;
        let report = executor.run_tests(workspace, &TestSelection::All, options)?;
        if report.timed_out {
            return Err(Error::test_run(format!(
                "baseline run {run} of {repo} timed out after {:.1}s",
                report.wall_secs
            )));
        }
        if report.outcomes.is_empty() {
            return Err(Error::test_run(format!(
                "baseline run {run} of {repo} reported no tests (exit code {:?}): {}",
                report.exit_code,
                crate::pytest::tail(&report.log, 2000)
            )));
        }
        tracing::debug!(
            run,
            tests = report.outcomes.len(),
            secs = report.wall_secs,
            "baseline run"
        );
        reports.push(report);
    }
    Ok(Baseline {
        hash_seeds,
        ..Baseline::from_reports(repo, &reports)
    })
}

/// The time limit of one run of `selection`:
/// `floor + factor × (selected tests' baseline seconds + overhead)`, where
/// the overhead is what a full baseline run spent outside tests (start-up,
/// collection). Tests without a baseline duration count the mean duration.
pub fn run_timeout(
    baseline: &Baseline,
    selection: &TestSelection,
    floor: Duration,
    factor: f64,
) -> Duration {
    let total: f64 = baseline.durations.values().sum();
    let mean = if baseline.durations.is_empty() {
        0.0
    } else {
        total / baseline.durations.len() as f64
    };
    let tests = match selection {
        TestSelection::All | TestSelection::AllKnown(_) => total,
        TestSelection::Only(ids) => ids
            .iter()
            .map(|t| baseline.durations.get(t).copied().unwrap_or(mean))
            .sum(),
    };
    let overhead = (baseline.wall_secs - total).max(0.0);
    scaled(floor, factor, tests + overhead)
}

/// `floor + factor × secs`, a negative factor counting as 0 and a
/// non-finite product as nothing.
fn scaled(floor: Duration, factor: f64, secs: f64) -> Duration {
    let secs = factor.max(0.0) * secs;
    floor + Duration::from_secs_f64(if secs.is_finite() { secs } else { 0.0 })
}

/// The longest one test's call may take in a run of `selection`:
/// `floor + factor × the longest baseline duration among the selected
/// tests` (a test without one counts the longest of all). A test's baseline
/// duration covers its setup and teardown too, so it bounds the call alone;
/// one test over this limit is hung, however long the rest of the run may
/// still be allowed. Validation gives every timed test its own limit
/// ([`test_timeouts`]); this one holds the tests the baseline did not time.
pub fn test_timeout(
    baseline: &Baseline,
    selection: &TestSelection,
    floor: Duration,
    factor: f64,
) -> Duration {
    let longest = baseline.durations.values().copied().fold(0.0, f64::max);
    let slowest = match selection {
        TestSelection::All | TestSelection::AllKnown(_) => longest,
        TestSelection::Only(ids) => ids
            .iter()
            .map(|t| baseline.durations.get(t).copied().unwrap_or(longest))
            .fold(0.0, f64::max),
    };
    scaled(floor, factor, slowest)
}

/// Each test's own limit in a run of `selection`: `floor + factor × its
/// baseline duration`, for every selected test the baseline timed (every
/// test it timed, for the whole suite). A test then has the same limit in
/// any run, so a bug that slows it down is judged alike whether it runs in
/// a selection or in the whole suite; tests without a duration keep
/// [`test_timeout`].
pub fn test_timeouts(
    baseline: &Baseline,
    selection: &TestSelection,
    floor: Duration,
    factor: f64,
) -> BTreeMap<TestId, Duration> {
    let limit = |t: &TestId| {
        let d = baseline.durations.get(t)?;
        Some((t.clone(), scaled(floor, factor, *d)))
    };
    match selection {
        TestSelection::All | TestSelection::AllKnown(_) => {
            baseline.durations.keys().filter_map(limit).collect()
        }
        TestSelection::Only(ids) => ids.iter().filter_map(limit).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_scales_with_selected_durations() {
        let b = Baseline {
            durations: [("a", 1.0), ("b", 3.0)]
                .map(|(t, d)| (TestId::from(t), d))
                .into(),
            wall_secs: 6.0,
            ..Baseline::default()
        };
        let floor = Duration::from_secs(5);
        // all: 4 s of tests + 2 s overhead, ×2
        assert_eq!(
            run_timeout(&b, &TestSelection::All, floor, 2.0),
            Duration::from_secs(17)
        );
        // only a: 1 s + 2 s overhead, ×2
        let only_a = TestSelection::Only(vec![TestId::from("a")]);
        assert_eq!(
            run_timeout(&b, &only_a, floor, 2.0),
            Duration::from_secs(11)
        );
        // unknown test: mean (2 s) + 2 s overhead, ×1
        let unknown = TestSelection::Only(vec![TestId::from("zz")]);
        assert_eq!(
            run_timeout(&b, &unknown, floor, 1.0),
            Duration::from_secs(9)
        );
    }

    #[test]
    fn each_test_gets_the_same_own_limit_in_a_selection_and_in_the_whole_suite() {
        let b = Baseline {
            durations: [("a", 0.5), ("b", 3.0)]
                .map(|(t, d)| (TestId::from(t), d))
                .into(),
            ..Baseline::default()
        };
        let floor = Duration::from_secs(1);
        let only = TestSelection::Only(vec![TestId::from("a"), TestId::from("zz")]);
        let selected = test_timeouts(&b, &only, floor, 4.0);
        let whole = test_timeouts(&b, &TestSelection::All, floor, 4.0);
        assert_eq!(selected.len(), 1, "an untimed test keeps the run's limit");
        assert_eq!(selected[&TestId::from("a")], Duration::from_secs(3));
        assert_eq!(whole[&TestId::from("a")], Duration::from_secs(3));
        assert_eq!(whole[&TestId::from("b")], Duration::from_secs(13));
    }

    #[test]
    fn test_timeout_follows_the_slowest_selected_test() {
        let b = Baseline {
            durations: [("a", 0.5), ("b", 3.0)]
                .map(|(t, d)| (TestId::from(t), d))
                .into(),
            wall_secs: 6.0,
            ..Baseline::default()
        };
        let floor = Duration::from_secs(1);
        let only =
            |ids: &[&str]| TestSelection::Only(ids.iter().map(|t| TestId::from(*t)).collect());
        assert_eq!(
            test_timeout(&b, &only(&["a"]), floor, 4.0),
            Duration::from_secs(3)
        );
        assert_eq!(
            test_timeout(&b, &only(&["a", "b"]), floor, 4.0),
            Duration::from_secs(13)
        );
        assert_eq!(
            test_timeout(&b, &TestSelection::All, floor, 4.0),
            Duration::from_secs(13)
        );
        // unknown test: the slowest of all
        assert_eq!(
            test_timeout(&b, &only(&["zz"]), floor, 1.0),
            Duration::from_secs(4)
        );
    }
}
