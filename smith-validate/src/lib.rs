//! Validation for smith: runs a repository's pytest suite against candidate
//! bugs and decides which become tasks.
//!
//! * [`PytestExecutor`] — the pytest [`Executor`](smith_core::Executor):
//!   exact selection by node id, outcomes that survive crashes and floods;
//!   with [`forking`](PytestExecutor::forking), runs are forked from a
//!   server per workspace that has pytest and the suite's dependencies
//!   imported and its unchanged files compiled.
//! * [`parse_pytest_log`], [`parse_junit_xml`] — pytest's `-rA` summary
//!   (agreeing with SWE-bench's parser) and JUnit XML.
//! * [`run_baseline`] — the clean suite `k` times: stable, flaky, durations
//!   ([`run_baseline_with`] alternates executors, e.g. forked and fresh);
//!   [`run_timeout`] derives per-run time limits from it.
//! * [`CoverageMap`] — line → tests from one coverage.py run, for
//!   coverage-guided selection.
//! * [`classify`] — the pure function from baseline and run to a
//!   [`Verdict`](smith_core::Verdict).
//! * [`validate`] — N workers, each with its own workspace, reporting each
//!   candidate as it finishes.
//!
//! ```
//! use smith_core::memory::{MemorySandbox, ScriptedExecutor};
//! use smith_core::{Candidate, FileChange, Patch, RepoRef, RunOptions, Sandbox};
//! use smith_validate::{run_baseline, validate, ValidateOptions};
//!
//! let src = "def add(a, b):\n    return a + b\n";
//! let sandbox = MemorySandbox::new([("calc.py".to_string(), src.to_string())]);
//! let tests = ScriptedExecutor::new()
//!     .test("t.py::test_add", "calc.py", "a + b")
//!     .test("t.py::test_def", "calc.py", "def add");
//! let repo = RepoRef::new("acme/calc", "abc");
//! let mut ws = sandbox.workspace()?;
//! let baseline = run_baseline(&mut ws, &tests, 3, &repo, &RunOptions::default())?;
//!
//! let bug = Candidate::new(&repo, "op_swap", vec!["calc.py::add".into()], "",
//!     Patch::from_changes(&[FileChange::modified("calc.py", src, &src.replace('+', "-"))]));
//! let kept = std::sync::Mutex::new(Vec::new());
//! validate(&sandbox, &tests, &baseline, None, &[bug], &ValidateOptions::default(),
//!     &|c, v| kept.lock().unwrap().push((c.id.clone(), v.verdict.is_kept())))?;
//! assert!(kept.into_inner().unwrap()[0].1);
//! # Ok::<(), smith_core::Error>(())
//! ```

mod baseline;
mod classify;
mod coverage;
mod fork;
mod memo;
mod parse;
mod phases;
mod pytest;
mod structure;
mod validate;

pub use baseline::{run_baseline, run_baseline_with, run_timeout, test_timeout, test_timeouts};
pub use classify::{classify, collection_failed, eligible, missing_tests};
pub use coverage::{changed_lines, CandidateSelection, CoverageMap, FileCoverage};
pub use parse::{parse_junit_xml, parse_pytest_log, JunitCase, JunitReport};
pub use phases::{PhaseClock, PhaseTimes, RunKind, RunTimes};
pub use pytest::PytestExecutor;
pub use smith_core::pytest_log::{failure_excerpt, FAILURE_LOG_BYTES};
pub use validate::{
    labels, select_tests, validate, validate_one, validate_timed, SelectionMode, ValidateOptions,
};
