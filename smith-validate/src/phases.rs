//! Where validation time goes: seconds per phase of the validator's loop
//! ([`PhaseClock`], filled by [`crate::validate_timed`]) and per kind of
//! test run of the pytest executor ([`RunStats`]: collected server, plain
//! server, fresh interpreter), summed over candidates and workers.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Seconds spent in each phase of validation, summed over candidates (and
/// so over workers: the sum may exceed the wall time).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhaseTimes {
    /// Candidates timed.
    pub candidates: usize,
    /// `Executor::prepare` on the clean workspace (fork servers started,
    /// or checked when up).
    pub prepare: f64,
    /// Choosing the tests (coverage map, syntax-tree comparison).
    pub selection: f64,
    /// Applying the candidate's patch.
    pub apply: f64,
    /// The candidate's test runs (re-runs of missing tests, time-out
    /// re-checks and whole-suite redos included), classification included.
    pub test_runs: f64,
    /// `--confirm`'s whole-suite runs.
    pub confirm: f64,
    /// The fresh-interpreter check of kept candidates.
    pub fresh_check: f64,
    /// Returning the workspace to the clean tree.
    pub reset: f64,
}

/// A [`PhaseTimes`] that workers add to concurrently.
#[derive(Debug, Default)]
pub struct PhaseClock {
    candidates: AtomicUsize,
    nanos: [AtomicU64; 7],
}

/// A phase of [`PhaseTimes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Prepare = 0,
    Selection,
    Apply,
    TestRuns,
    Confirm,
    FreshCheck,
    Reset,
}

impl PhaseClock {
    pub(crate) fn add(&self, phase: Phase, elapsed: Duration) {
        self.nanos[phase as usize].fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    pub(crate) fn candidate(&self) {
        self.candidates.fetch_add(1, Ordering::Relaxed);
    }

    /// The sums so far.
    pub fn times(&self) -> PhaseTimes {
        let s = |p: Phase| self.nanos[p as usize].load(Ordering::Relaxed) as f64 / 1e9;
        PhaseTimes {
            candidates: self.candidates.load(Ordering::Relaxed),
            prepare: s(Phase::Prepare),
            selection: s(Phase::Selection),
            apply: s(Phase::Apply),
            test_runs: s(Phase::TestRuns),
            confirm: s(Phase::Confirm),
            fresh_check: s(Phase::FreshCheck),
            reset: s(Phase::Reset),
        }
    }
}

/// Test runs of one kind: how many, their wall seconds from the request
/// to the answer, and the seconds the tests themselves took (their setup,
/// call and teardown as pytest reports them); the rest is interpreter
/// start, collection and hand-off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunKind {
    /// Runs.
    pub runs: usize,
    /// Wall seconds.
    pub seconds: f64,
    /// Seconds of the tests themselves.
    pub test_seconds: f64,
}

/// The pytest executor's runs by how they ran, summed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunTimes {
    /// Forked from a collected server (the suite already collected).
    pub collected: RunKind,
    /// Forked from a plain server (pytest imported; the child collects).
    pub plain: RunKind,
    /// A fresh interpreter (no server, or the server failed).
    pub fresh: RunKind,
    /// Runs a collected server handed back (a change it cannot swap in),
    /// and the seconds that cost before the run went elsewhere.
    pub handed_back: usize,
    /// Seconds of those hand-backs.
    pub handed_back_seconds: f64,
    /// Seconds spent reading the event log and building reports.
    pub parse_seconds: f64,
    /// Fork servers started (plain and collected; a server lost to a run
    /// that killed it, or dropped for a workspace that changed, starts
    /// again).
    pub server_starts: usize,
}

impl RunKind {
    fn minus(&self, earlier: &RunKind) -> RunKind {
        RunKind {
            runs: self.runs.saturating_sub(earlier.runs),
            seconds: self.seconds - earlier.seconds,
            test_seconds: self.test_seconds - earlier.test_seconds,
        }
    }

    fn plus(&self, other: &RunKind) -> RunKind {
        RunKind {
            runs: self.runs + other.runs,
            seconds: self.seconds + other.seconds,
            test_seconds: self.test_seconds + other.test_seconds,
        }
    }
}

impl RunTimes {
    /// The runs since `earlier` (a reading of the same executor).
    pub fn minus(&self, earlier: &RunTimes) -> RunTimes {
        RunTimes {
            collected: self.collected.minus(&earlier.collected),
            plain: self.plain.minus(&earlier.plain),
            fresh: self.fresh.minus(&earlier.fresh),
            handed_back: self.handed_back.saturating_sub(earlier.handed_back),
            handed_back_seconds: self.handed_back_seconds - earlier.handed_back_seconds,
            parse_seconds: self.parse_seconds - earlier.parse_seconds,
            server_starts: self.server_starts.saturating_sub(earlier.server_starts),
        }
    }

    /// Both together.
    pub fn plus(&self, other: &RunTimes) -> RunTimes {
        RunTimes {
            collected: self.collected.plus(&other.collected),
            plain: self.plain.plus(&other.plain),
            fresh: self.fresh.plus(&other.fresh),
            handed_back: self.handed_back + other.handed_back,
            handed_back_seconds: self.handed_back_seconds + other.handed_back_seconds,
            parse_seconds: self.parse_seconds + other.parse_seconds,
            server_starts: self.server_starts + other.server_starts,
        }
    }
}

/// A [`RunTimes`] that runs add to concurrently.
#[derive(Debug, Default)]
pub(crate) struct RunStats {
    counts: [AtomicUsize; 4],
    nanos: [AtomicU64; 8],
}

/// How a run ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Collected = 0,
    Plain = 1,
    Fresh = 2,
}

impl RunStats {
    pub(crate) fn run(&self, route: Route, wall: Duration, tests: f64, parse: Duration) {
        let r = route as usize;
        self.counts[r].fetch_add(1, Ordering::Relaxed);
        self.nanos[2 * r].fetch_add(wall.as_nanos() as u64, Ordering::Relaxed);
        self.nanos[2 * r + 1].fetch_add((tests.max(0.0) * 1e9) as u64, Ordering::Relaxed);
        self.nanos[7].fetch_add(parse.as_nanos() as u64, Ordering::Relaxed);
    }

    pub(crate) fn handed_back(&self, wall: Duration) {
        self.counts[3].fetch_add(1, Ordering::Relaxed);
        self.nanos[6].fetch_add(wall.as_nanos() as u64, Ordering::Relaxed);
    }

    pub(crate) fn times(&self) -> RunTimes {
        let n = |i: usize| self.counts[i].load(Ordering::Relaxed);
        let s = |i: usize| self.nanos[i].load(Ordering::Relaxed) as f64 / 1e9;
        let kind = |r: usize| RunKind {
            runs: n(r),
            seconds: s(2 * r),
            test_seconds: s(2 * r + 1),
        };
        RunTimes {
            collected: kind(0),
            plain: kind(1),
            fresh: kind(2),
            handed_back: n(3),
            handed_back_seconds: s(6),
            parse_seconds: s(7),
            server_starts: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_add_up_by_route() {
        let stats = RunStats::default();
        stats.run(
            Route::Collected,
            Duration::from_millis(30),
            0.01,
            Duration::from_millis(1),
        );
        stats.run(
            Route::Collected,
            Duration::from_millis(20),
            0.01,
            Duration::from_millis(1),
        );
        stats.run(
            Route::Fresh,
            Duration::from_secs(1),
            0.5,
            Duration::from_millis(2),
        );
        stats.handed_back(Duration::from_millis(5));
        let t = stats.times();
        assert_eq!((t.collected.runs, t.plain.runs, t.fresh.runs), (2, 0, 1));
        assert!((t.collected.seconds - 0.05).abs() < 1e-9);
        assert!((t.collected.test_seconds - 0.02).abs() < 1e-9);
        assert!((t.fresh.test_seconds - 0.5).abs() < 1e-9);
        assert_eq!(t.handed_back, 1);
        assert!((t.parse_seconds - 0.004).abs() < 1e-9);
    }

    #[test]
    fn phases_add_up() {
        let clock = PhaseClock::default();
        clock.add(Phase::Apply, Duration::from_millis(3));
        clock.add(Phase::Apply, Duration::from_millis(4));
        clock.add(Phase::Reset, Duration::from_millis(1));
        clock.candidate();
        let t = clock.times();
        assert_eq!(t.candidates, 1);
        assert!((t.apply - 0.007).abs() < 1e-9);
        assert!((t.reset - 0.001).abs() < 1e-9);
        assert_eq!(t.test_runs, 0.0);
    }
}
