//! The parallel validator: N workers, each with its own workspace, looping
//! reset → apply → run the selected tests → classify, reporting each
//! candidate as soon as it is done.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use smith_core::{
    Baseline, Candidate, Error, Executor, Result, RunOptions, Sandbox, TestId, TestReport,
    TestSelection, Validation, Verdict, Workspace,
};

use crate::baseline::{run_timeout, test_timeout, test_timeouts};
use crate::classify::{classify, missing_tests};
use crate::coverage::{CandidateSelection, CoverageMap};
use crate::phases::{Phase, PhaseClock};
use smith_core::pytest_log::{failure_excerpt, FAILURE_LOG_BYTES};

/// How tests are chosen for a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SelectionMode {
    /// Only the tests that execute the changed lines (needs a coverage map;
    /// without one, the full suite).
    #[default]
    Coverage,
    /// The whole suite for every candidate, as SWE-smith validates.
    Full,
}

/// Options of [`validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidateOptions {
    /// Number of workers, each with its own workspace.
    pub workers: usize,
    /// Smallest time limit for one run.
    pub timeout_floor: Duration,
    /// Time limit = floor + factor × baseline seconds of the selected tests
    /// (plus start-up overhead); see [`run_timeout`].
    pub timeout_factor: f64,
    /// How tests are chosen.
    pub selection: SelectionMode,
    /// Re-run kept candidates on the full suite and record whether the labels
    /// agree ([`Validation::confirmed`]); where they do not, the full
    /// suite's verdict is the one recorded.
    pub confirm: bool,
    /// Run a kept candidate's tests again in a fresh interpreter (the
    /// executor's [`fresh`](Executor::fresh) twin, when its runs may go
    /// through fork servers), as a grader runs them, and record the fresh
    /// run's verdict where the two differ ([`Validation::fresh_confirmed`]).
    /// On by default: labels must never depend on the speed-up.
    pub fresh_check: bool,
    /// Re-run once the tests missing from a run's report before judging.
    pub rerun_missing: bool,
    /// Re-run a selected run that ran out of its (wall) time limit once with
    /// the whole suite's limit, so that a slow, not hung, mutant gets the
    /// verdict a full run gives it: a mutant that fails many tests pays for
    /// their failure reports, which the baseline's durations never saw, and
    /// a loaded machine stretches wall time. A run ended by the per-test
    /// clock (a test's call over its CPU limit: hung) is not re-run, so a
    /// looping mutant still costs about the per-test limit. On by default:
    /// without it a selected run drops candidates a full run keeps.
    pub recheck_timeouts: bool,
    /// Smallest time limit for one test's call; the limit is this floor +
    /// `timeout_factor` × the test's own baseline duration
    /// ([`test_timeouts`]; [`test_timeout`] for tests the baseline did not
    /// time). A hung mutant then costs about this long instead of the
    /// whole run's limit, which also pays for start-up and collection.
    /// `None`: only the run's limit. Enforced in forked and fresh pytest
    /// runs on the CPU time of the call, and on its wall time (a call
    /// blocked for good uses no CPU): past 2 × the limit once the last
    /// second used next to no CPU and no child process runs, and at
    /// 8 × the limit + 2 s in any case.
    pub test_timeout_floor: Option<Duration>,
    /// Keep at most this many bytes of each run's stdout and stderr.
    pub max_output: usize,
    /// Bytes of failure output kept in [`Validation::log`].
    pub log_bytes: usize,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            timeout_floor: Duration::from_secs(5),
            timeout_factor: 5.0,
            selection: SelectionMode::Coverage,
            confirm: false,
            fresh_check: true,
            rerun_missing: true,
            recheck_timeouts: true,
            test_timeout_floor: Some(Duration::from_secs(1)),
            max_output: RunOptions::default().max_output,
            log_bytes: FAILURE_LOG_BYTES,
        }
    }
}

/// The selection for one candidate under `options`; `source(path)` gives
/// the clean text of a file (see [`CoverageMap::selection_with_sources`]).
pub fn select_tests(
    coverage: Option<&CoverageMap>,
    candidate: &Candidate,
    mode: SelectionMode,
    source: &dyn Fn(&str) -> Option<String>,
) -> CandidateSelection {
    match (mode, coverage) {
        (SelectionMode::Coverage, Some(map)) => map.selection_with_sources(candidate, source),
        _ => CandidateSelection::Full,
    }
}

/// Run `selection` and, if eligible tests are missing from the report
/// (a crashed interpreter, a `KeyboardInterrupt`, a lost line), run those
/// once more and merge.
fn run_once_more_if_missing(
    workspace: &mut dyn Workspace,
    executor: &dyn Executor,
    baseline: &Baseline,
    selection: &TestSelection,
    run: &RunOptions,
    rerun: bool,
) -> Result<TestReport> {
    let mut report = executor.run_tests(workspace, selection, run)?;
    if report.timed_out || !rerun {
        return Ok(report);
    }
    let missing = missing_tests(baseline, selection, &report);
    if missing.is_empty() {
        return Ok(report);
    }
    tracing::debug!(
        missing = missing.len(),
        "re-running tests missing from the report"
    );
    let again = TestSelection::Only(missing.into_iter().collect());
    let second = executor.run_tests(workspace, &again, run)?;
    report.timed_out |= second.timed_out;
    report.wall_secs += second.wall_secs;
    for (t, o) in second.outcomes {
        report.outcomes.entry(t).or_insert(o);
    }
    for (t, d) in second.durations {
        report.durations.entry(t).or_insert(d);
    }
    report.collection_errors.extend(second.collection_errors);
    report.log.push_str("\n[smith: re-run of missing tests]\n");
    report.log.push_str(&second.log);
    Ok(report)
}

/// Validate one candidate in `workspace` (which must be clean); leaves the
/// workspace clean again.
pub fn validate_one(
    workspace: &mut dyn Workspace,
    executor: &dyn Executor,
    baseline: &Baseline,
    coverage: Option<&CoverageMap>,
    candidate: &Candidate,
    options: &ValidateOptions,
) -> Result<Validation> {
    let clock = PhaseClock::default();
    validate_one_timed(
        workspace, executor, baseline, coverage, candidate, options, &clock,
    )
}

/// [`validate_one`], adding the seconds of each phase to `clock`.
#[allow(clippy::too_many_arguments)]
fn validate_one_timed(
    workspace: &mut dyn Workspace,
    executor: &dyn Executor,
    baseline: &Baseline,
    coverage: Option<&CoverageMap>,
    candidate: &Candidate,
    options: &ValidateOptions,
    clock: &PhaseClock,
) -> Result<Validation> {
    let start = Instant::now();
    clock.candidate();
    let source = |path: &str| {
        let bytes = workspace.read(path).ok()?;
        String::from_utf8(bytes).ok()
    };
    let chosen = select_tests(coverage, candidate, options.selection, &source);
    clock.add(Phase::Selection, start.elapsed());
    let mut validation = Validation {
        candidate_id: candidate.id.clone(),
        strategy: candidate.strategy.clone(),
        verdict: Verdict::Uncovered,
        selected: None,
        seconds: 0.0,
        confirmed: None,
        fresh_confirmed: None,
        log: String::new(),
    };
    let selection = match &chosen {
        CandidateSelection::Uncovered => {
            validation.selected = Some(0);
            validation.seconds = start.elapsed().as_secs_f64();
            return Ok(validation);
        }
        CandidateSelection::Full => whole_suite(baseline, options.selection),
        CandidateSelection::Tests(t) => {
            validation.selected = Some(t.len());
            chosen.to_test_selection()
        }
    };
    let applying = Instant::now();
    let applied = workspace.apply(&candidate.patch);
    clock.add(Phase::Apply, applying.elapsed());
    if let Err(e) = applied {
        let resetting = Instant::now();
        workspace.reset()?;
        clock.add(Phase::Reset, resetting.elapsed());
        validation.verdict = Verdict::Unappliable {
            reason: e.to_string(),
        };
        validation.seconds = start.elapsed().as_secs_f64();
        return Ok(validation);
    }
    let judged = run_and_judge(
        workspace,
        executor,
        baseline,
        candidate,
        selection,
        options,
        &mut validation,
        clock,
    );
    let resetting = Instant::now();
    let reset = workspace.reset();
    clock.add(Phase::Reset, resetting.elapsed());
    judged?;
    reset?;
    validation.seconds = start.elapsed().as_secs_f64();
    Ok(validation)
}

/// The whole suite for one candidate. Validating the SWE-smith way
/// ([`SelectionMode::Full`]) it is exactly that; a candidate that coverage
/// cannot narrow runs the suite's own paths but only the tests the clean
/// suite ran ([`TestSelection::AllKnown`]): tests a suite generates only to
/// deselect them are never made, and no other test can earn a label.
fn whole_suite(baseline: &Baseline, mode: SelectionMode) -> TestSelection {
    match mode {
        SelectionMode::Full => TestSelection::All,
        SelectionMode::Coverage => TestSelection::AllKnown(
            baseline
                .passing
                .iter()
                .chain(&baseline.flaky)
                .chain(&baseline.other)
                .cloned()
                .collect(),
        ),
    }
}

/// The time limits of one run of `selection`.
fn run_options(
    baseline: &Baseline,
    selection: &TestSelection,
    options: &ValidateOptions,
) -> RunOptions {
    RunOptions {
        timeout: Some(run_timeout(
            baseline,
            selection,
            options.timeout_floor,
            options.timeout_factor,
        )),
        max_output: options.max_output,
        test_timeout: options
            .test_timeout_floor
            .map(|floor| test_timeout(baseline, selection, floor, options.timeout_factor)),
        test_timeouts: options
            .test_timeout_floor
            .map(|floor| test_timeouts(baseline, selection, floor, options.timeout_factor))
            .unwrap_or_default(),
    }
}

/// One judged run of an applied candidate.
struct Judged {
    /// What ran: the selection asked for, or the whole suite when the
    /// selected run had collection errors.
    selection: TestSelection,
    report: TestReport,
    verdict: Verdict,
}

/// Run `selection` on the applied candidate and classify the report. A
/// module that no longer imports fails to collect in every test file that
/// imports it, selected or not, and only the full suite has them all: a
/// selected run with collection errors is redone on the whole suite.
fn judge(
    workspace: &mut dyn Workspace,
    executor: &dyn Executor,
    baseline: &Baseline,
    candidate: &Candidate,
    mut selection: TestSelection,
    options: &ValidateOptions,
) -> Result<Judged> {
    loop {
        let run = run_options(baseline, &selection, options);
        let mut report = run_once_more_if_missing(
            workspace,
            executor,
            baseline,
            &selection,
            &run,
            options.rerun_missing,
        )?;
        // A selected run's time limit is tighter than a full run's; a mutant
        // that only slows its tests down (or their failure reports) would
        // time out here but not in a full run. Give it the full run's limit
        // once, so the two modes agree. A hung test is not given more time.
        if report.timed_out && report.over_test_limit.is_none() && options.recheck_timeouts {
            let full = run_options(baseline, &TestSelection::All, options);
            if run.timeout < full.timeout {
                tracing::debug!(
                    candidate = %candidate.id,
                    "a selected run ran out of time: once more with the full run's limit"
                );
                report = run_once_more_if_missing(
                    workspace,
                    executor,
                    baseline,
                    &selection,
                    &full,
                    options.rerun_missing,
                )?;
            }
        }
        if selection.is_whole_suite() || report.timed_out || report.collection_errors.is_empty() {
            let verdict = classify(baseline, &selection, &report);
            return Ok(Judged {
                selection,
                report,
                verdict,
            });
        }
        tracing::debug!(
            candidate = %candidate.id,
            "collection errors in a selected run: running the full suite"
        );
        selection = whole_suite(baseline, options.selection);
    }
}

/// Run the tests of an applied candidate and fill in its verdict, log and
/// confirmations.
#[allow(clippy::too_many_arguments)]
fn run_and_judge(
    workspace: &mut dyn Workspace,
    executor: &dyn Executor,
    baseline: &Baseline,
    candidate: &Candidate,
    selection: TestSelection,
    options: &ValidateOptions,
    validation: &mut Validation,
    clock: &PhaseClock,
) -> Result<()> {
    let running = Instant::now();
    let Judged {
        mut selection,
        mut report,
        verdict,
    } = judge(workspace, executor, baseline, candidate, selection, options)?;
    clock.add(Phase::TestRuns, running.elapsed());
    if selection.is_whole_suite() {
        validation.selected = None;
    }
    validation.verdict = verdict;
    let confirming = Instant::now();
    if validation.verdict.is_kept() && options.confirm {
        validation.confirmed = Some(true);
        if selection != TestSelection::All {
            let full = run_once_more_if_missing(
                workspace,
                executor,
                baseline,
                &TestSelection::All,
                &run_options(baseline, &TestSelection::All, options),
                options.rerun_missing,
            )?;
            let verdict = classify(baseline, &TestSelection::All, &full);
            if verdict != validation.verdict {
                // The whole suite's labels are the truth: keep them, and
                // record that the selection missed them.
                validation.confirmed = Some(false);
                validation.verdict = verdict;
                selection = TestSelection::All;
                report = full;
            }
        }
    }
    clock.add(Phase::Confirm, confirming.elapsed());
    let checking = Instant::now();
    if validation.verdict.is_kept() && options.fresh_check {
        if let Some(fresh) = executor.fresh() {
            let checked = Judged {
                selection,
                report,
                verdict: validation.verdict.clone(),
            };
            report = fresh_check(
                workspace, &*fresh, baseline, candidate, checked, options, validation,
            )?;
        }
    }
    clock.add(Phase::FreshCheck, checking.elapsed());
    if let Verdict::Kept { fail_to_pass, .. } = &validation.verdict {
        let f2p: Vec<&TestId> = fail_to_pass.iter().collect();
        validation.log = failure_excerpt(&report.log, &f2p, options.log_bytes);
    }
    Ok(())
}

/// Check a kept candidate's labels obtained through a fork server (`run`)
/// the way a grader would obtain them: the same tests (every FAIL_TO_PASS
/// test among them) in the `fresh` interpreter. Where the verdicts differ,
/// the fresh one is the truth; then labels resting on tests that drew from
/// the random state are checked from other states. Returns the report the
/// verdict now comes from.
#[allow(clippy::too_many_arguments)]
fn fresh_check(
    workspace: &mut dyn Workspace,
    fresh: &dyn Executor,
    baseline: &Baseline,
    candidate: &Candidate,
    run: Judged,
    options: &ValidateOptions,
    validation: &mut Validation,
) -> Result<TestReport> {
    let mut report = run.report;
    let mut randomized = report.randomized.clone();
    let again = judge(
        workspace,
        fresh,
        baseline,
        candidate,
        run.selection,
        options,
    )?;
    randomized.extend(again.report.randomized.iter().cloned());
    let agreed = again.verdict == run.verdict;
    validation.fresh_confirmed = Some(agreed);
    if !agreed {
        tracing::debug!(
            candidate = %candidate.id,
            "a fresh interpreter disagrees with the forked run; keeping its verdict"
        );
        if again.selection.is_whole_suite() {
            validation.selected = None;
        }
        validation.verdict = again.verdict;
        report = again.report;
    }
    let seeded = labels_under_other_random_states(
        workspace,
        fresh,
        baseline,
        &validation.verdict,
        &randomized,
        options,
    )?;
    if let Some(verdict) = seeded {
        validation.fresh_confirmed = Some(false);
        validation.verdict = verdict;
    }
    Ok(report)
}

/// The random states ([`Executor::with_seed`]) under which labeled tests
/// that draw from the process's random state run once more.
const OTHER_RANDOM_STATES: [u32; 2] = [1, 2];

/// Where a kept candidate's labels rest on tests that drew from the
/// process's random state (`randomized`), run those tests again in fresh
/// interpreters, each test starting from each of [`OTHER_RANDOM_STATES`]:
/// a grader's process starts from a random state of its own, and a bug may
/// fail a test from one state and pass it, or loop, from another. A label
/// that does not hold from every state makes the candidate invalid
/// (`Some`); `None` when the labels held or nothing needed the check.
fn labels_under_other_random_states(
    workspace: &mut dyn Workspace,
    fresh: &dyn Executor,
    baseline: &Baseline,
    verdict: &Verdict,
    randomized: &BTreeSet<TestId>,
    options: &ValidateOptions,
) -> Result<Option<Verdict>> {
    let Verdict::Kept {
        fail_to_pass,
        pass_to_pass,
    } = verdict
    else {
        return Ok(None);
    };
    let tests: Vec<TestId> = randomized
        .iter()
        .filter(|t| fail_to_pass.contains(*t) || pass_to_pass.contains(*t))
        .cloned()
        .collect();
    if tests.is_empty() {
        return Ok(None);
    }
    let selection = TestSelection::Only(tests.clone());
    let run = run_options(baseline, &selection, options);
    for seed in OTHER_RANDOM_STATES {
        let Some(seeded) = fresh.with_seed(seed) else {
            return Ok(None);
        };
        let report = seeded.run_tests(workspace, &selection, &run)?;
        let broken = |test: &TestId| {
            let fails = fail_to_pass.contains(test);
            let outcome = report.outcomes.get(test).copied();
            !outcome.is_some_and(|o| {
                if fails {
                    o.is_failure()
                } else {
                    o.is_success()
                }
            })
        };
        // A run cut off by a test over its limit names that test; the
        // tests after it never ran.
        let hung = report
            .over_test_limit
            .as_ref()
            .filter(|t| tests.contains(t));
        let Some(test) = hung.or_else(|| tests.iter().find(|t| broken(t))) else {
            continue;
        };
        let what = match report.outcomes.get(test) {
            Some(o) if o.is_success() => smith_core::SeededOutcome::Passes,
            Some(_) => smith_core::SeededOutcome::Fails,
            None if report.timed_out => smith_core::SeededOutcome::RunsOutOfTime,
            None => smith_core::SeededOutcome::DoesNotRun,
        };
        return Ok(Some(Verdict::Invalid {
            reason: smith_core::InvalidReason::RandomStateLabel {
                fail_to_pass: fail_to_pass.contains(test),
                test: test.clone(),
                seed,
                outcome: what,
            },
        }));
    }
    Ok(None)
}

/// Validate `candidates` with `options.workers` workers, each with its own
/// workspace from `sandbox`, calling `on_result` for every candidate as soon
/// as it is done (from the worker's thread; results arrive in completion
/// order). `coverage` `None` runs the full suite per candidate.
///
/// A candidate's own failures become verdicts (`Unappliable`, `TimedOut`,
/// `Invalid`); an error of the machinery (a workspace that cannot be made or
/// reset, a test command that cannot start) stops every worker and is
/// returned, so that a broken environment is not recorded as a pile of
/// judged candidates.
pub fn validate(
    sandbox: &dyn Sandbox,
    executor: &dyn Executor,
    baseline: &Baseline,
    coverage: Option<&CoverageMap>,
    candidates: &[Candidate],
    options: &ValidateOptions,
    on_result: &(dyn Fn(&Candidate, &Validation) + Sync),
) -> Result<()> {
    let clock = PhaseClock::default();
    validate_timed(
        sandbox, executor, baseline, coverage, candidates, options, on_result, &clock,
    )
}

/// [`validate`], adding the seconds each phase of each candidate takes to
/// `clock` (see [`crate::PhaseTimes`]).
#[allow(clippy::too_many_arguments)]
pub fn validate_timed(
    sandbox: &dyn Sandbox,
    executor: &dyn Executor,
    baseline: &Baseline,
    coverage: Option<&CoverageMap>,
    candidates: &[Candidate],
    options: &ValidateOptions,
    on_result: &(dyn Fn(&Candidate, &Validation) + Sync),
    clock: &PhaseClock,
) -> Result<()> {
    if candidates.is_empty() {
        return Ok(());
    }
    let workers = options.workers.clamp(1, candidates.len());
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let fail = |e: Error| {
        stop.store(true, Ordering::SeqCst);
        if let Ok(mut slot) = first_error.lock() {
            slot.get_or_insert(e);
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut workspace = match sandbox.workspace() {
                    Ok(w) => w,
                    Err(e) => return fail(e),
                };
                if let Err(e) = workspace.reset() {
                    return fail(e);
                }
                while !stop.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(candidate) = candidates.get(i) else {
                        break;
                    };
                    // The workspace is clean between candidates: the one
                    // time an executor may (re)start its helpers.
                    let preparing = Instant::now();
                    if let Err(e) = executor.prepare(&mut *workspace) {
                        return fail(e);
                    }
                    clock.add(Phase::Prepare, preparing.elapsed());
                    match validate_one_timed(
                        &mut *workspace,
                        executor,
                        baseline,
                        coverage,
                        candidate,
                        options,
                        clock,
                    ) {
                        Ok(v) => on_result(candidate, &v),
                        Err(e) => return fail(e),
                    }
                }
            });
        }
    });
    match first_error.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

/// Labels of a verdict, for comparing selected and full runs.
pub fn labels(verdict: &Verdict) -> Option<(&BTreeSet<TestId>, &BTreeSet<TestId>)> {
    match verdict {
        Verdict::Kept {
            fail_to_pass,
            pass_to_pass,
        } => Some((fail_to_pass, pass_to_pass)),
        _ => None,
    }
}
