//! The data model and plug-point traits of smith.
//!
//! smith turns Python repositories into bug-fix training tasks. This crate is
//! its vocabulary: what an [`Entity`], an [`Edit`], a [`Mutation`], a
//! [`Patch`], a [`Candidate`], a [`TestReport`], a [`Verdict`] and a
//! [`TaskInstance`] are, and the traits other crates implement to plug in
//! mutators ([`Mutator`]), sandboxes ([`Sandbox`], [`Workspace`]), test
//! runners ([`Executor`]), issue writers ([`IssueWriter`]) and language
//! models ([`LanguageModel`]). It does no I/O and runs no processes.
//!
//! ```
//! use smith_core::{Candidate, FileChange, Patch};
//!
//! let patch = Patch::from_changes(&[FileChange::modified(
//!     "calc.py",
//!     "def add(a, b):\n    return a + b\n",
//!     "def add(a, b):\n    return a - b\n",
//! )]);
//! let bug = Candidate::new(&smith_core::RepoRef::new("acme/calc", "0123abcd"), "func_pm_op_change",
//!     vec!["calc.py::add".into()], "`+` became `-`", patch);
//! assert_eq!(bug.id.len(), 32);
//! assert_eq!(bug.patch.changed_lines(), 2);
//! ```

mod candidate;
mod chat;
mod edit;
mod entity;
mod error;
mod hash;
mod instance;
pub mod memory;
mod patch;
pub mod pytest_log;
#[cfg(feature = "python")]
pub mod python;
mod repo_ref;
mod report;
pub mod rng;
mod service;
mod traits;

pub use candidate::{candidate_id, Candidate, InvalidReason, SeededOutcome, Validation, Verdict};
pub use chat::{
    ChatMessage, ChatRole, FunctionCall, FunctionSpec, ToolCall, ToolCompletion, ToolSpec,
};
pub use edit::{apply_edits, Edit, Mutation};
pub use entity::{ByteRange, Entity, EntityFlags, EntityKind, SourceFile};
pub use error::{Cause, Error, Result};
pub use hash::{stable_hash, stable_hex, Shard};
pub use instance::{instance_id, TaskInstance};
pub use patch::{FileChange, FilePatch, Hunk, HunkLine, LineKind, Patch};
pub use repo_ref::RepoRef;
pub use report::{Baseline, Outcome, TestId, TestReport};
pub use service::Service;
pub use traits::{
    join_rel, workspace_rel, CommandSpec, Completion, CompletionParams, Executor, FailingTest,
    IssueContext, IssueWriter, LanguageModel, Message, Mutator, Role, RunOptions, RunOutput,
    Sandbox, TestSelection, Workspace,
};
