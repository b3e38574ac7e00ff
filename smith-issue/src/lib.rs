//! Problem statements for smith's tasks: [`IssueWriter`] implementations and
//! the leak check every statement passes.
//!
//! - [`TemplateWriter`] writes offline, deterministic statements from what
//!   the failing tests show (symptom, reproduction, failing test names).
//! - [`LmIssueWriter`] asks any [`LanguageModel`](smith_core::LanguageModel)
//!   for a statement in a user's voice, from prompt templates users can
//!   replace.
//! - [`check_leak`] rejects statements that give the fix away, and
//!   [`write_checked`] regenerates (bounded) until a statement is clean.
//! - [`test_source`] and [`test_failure`] gather what writers read: a
//!   test's source from the repository and its failure from a pytest log
//!   (the log model is [`smith_core::pytest_log`]).
//! - With the `lm` feature, `OpenAiClient` talks to any OpenAI-compatible
//!   chat completions endpoint, with retries, a concurrency limit, an
//!   on-disk cache and token accounting.
//!
//! ```
//! use smith_core::{Candidate, FailingTest, FileChange, IssueContext, Patch, TestId};
//! use smith_issue::{write_checked, TemplateWriter};
//!
//! let patch = Patch::from_changes(&[FileChange::modified(
//!     "calc.py",
//!     "def add(a, b):\n    return a + b\n",
//!     "def add(a, b):\n    return a - b\n",
//! )]);
//! let candidate = Candidate::new(&smith_core::RepoRef::new("o/calc", "abc"), "op", vec!["calc.py::add".into()], "", patch);
//! let context = IssueContext {
//!     candidate,
//!     failing: vec![FailingTest {
//!         id: TestId::from("tests/test_calc.py::test_add"),
//!         source: Some("from calc import add\n\ndef test_add():\n    assert add(1, 2) == 3\n".into()),
//!         output: "E       assert -1 == 3\nE        +  where -1 = add(1, 2)\n".into(),
//!     }],
//!     original_code: vec!["def add(a, b):\n    return a + b\n".into()],
//!     seed: 1,
//! };
//! let checked = write_checked(&TemplateWriter::new(), &context, 3).unwrap();
//! assert_eq!(checked.leaked, 0);
//! assert!(!checked.statement.contains("a - b"));
//! ```

mod leak;
mod lm;
#[cfg(feature = "lm")]
mod openai;
mod pytest;
mod template;

pub use leak::{check_leak, Leak, LeakKind};
pub use lm::{strip_reply, LmIssueWriter, PromptTemplates};
#[cfg(feature = "lm")]
pub use openai::{OpenAiClient, OpenAiConfig, Usage};
pub use pytest::{test_source, Symptom};
pub use smith_core::pytest_log::test_failure;
pub use template::TemplateWriter;

use serde::{Deserialize, Serialize};
use smith_core::{Error, IssueContext, IssueWriter, Result};

/// A statement that passed the leak check, and what it took to get it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    /// The clean statement.
    pub statement: String,
    /// Statements written in all (the clean one included).
    pub attempts: u32,
    /// Statements rejected for leaking before the clean one.
    pub leaked: u32,
    /// Why each rejected statement was rejected, in order.
    pub leaks: Vec<Leak>,
}

/// Write a statement with `writer`, check it for leaks, and on a leak write
/// again with the next seed (`seed + 1`, `seed + 2`, ...), at most
/// `attempts` statements in all. Returns the first clean statement with the
/// count of leaking ones (for the run summary's leak rate).
///
/// When every attempt leaks, the error is [`Error::Issue`] naming the
/// candidate and the last leak; all `attempts` statements count as leaked.
/// A writer's own error (an LM that cannot be reached) is returned at once.
pub fn write_checked(
    writer: &dyn IssueWriter,
    context: &IssueContext,
    attempts: u32,
) -> Result<Checked> {
    let attempts = attempts.max(1);
    let checker = leak::LeakChecker::new(context);
    let mut leaks = Vec::new();
    let mut ctx = context.clone();
    for attempt in 0..attempts {
        ctx.seed = context.seed.wrapping_add(u64::from(attempt));
        let statement = writer.write(&ctx)?;
        match checker.check(&statement) {
            None => {
                return Ok(Checked {
                    statement,
                    attempts: attempt + 1,
                    leaked: attempt,
                    leaks,
                })
            }
            Some(leak) => {
                tracing::debug!(candidate = %context.candidate.id, writer = writer.name(), attempt, %leak, "statement leaked the fix");
                leaks.push(leak);
            }
        }
    }
    let last = leaks.last().map(ToString::to_string).unwrap_or_default();
    Err(Error::issue(
        context.candidate.id.clone(),
        format!(
            "all {attempts} statements from `{}` leaked the fix (last: {last})",
            writer.name()
        ),
    ))
}
