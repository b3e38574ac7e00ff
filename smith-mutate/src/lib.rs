//! Python bug synthesis for smith: ruff-based entity extraction and
//! procedural mutators.
//!
//! [`python_files`] lists a repository's mutable files, [`extract_entities`]
//! finds their functions, methods and classes, and [`generate`] runs
//! [`Mutator`](smith_core::Mutator)s over them — the built-in
//! [`procedural_mutators`] or your own — keeping only mutations that
//! re-parse and change the AST, as [`Candidate`](smith_core::Candidate)s.
//!
//! ```
//! use smith_core::{Mutator, SourceFile};
//! use smith_mutate::{extract_entities, Procedural};
//!
//! let file = SourceFile::new("calc.py", "def inc(x):\n    return x + 1\n");
//! let entity = &extract_entities(&file).unwrap()[0];
//! let op_change = Procedural::by_name("func_pm_op_change").unwrap();
//! let mutation = &op_change.mutate(&file, entity, 7)[0];
//! assert_eq!(mutation.apply(&file.text).unwrap(), "def inc(x):\n    return x - 1\n");
//! ```

pub mod ast;
mod combine;
mod entities;
mod feature_add;
mod files;
mod generate;
mod lm;
mod mutators;
mod pr_mirror;
mod text;

pub use combine::{
    combine, components_contribute, kept_with_f2p, merge_patches, Combination, CombineOptions,
    CombineScope,
};
pub use entities::{extract_entities, EntityFilter};
pub use feature_add::{feature_add, FeatureAddOptions, FeatureAddOutcome};
pub use files::{is_test_path, python_files, FileOptions};
pub use generate::{generate, GenerateOptions, Generated, MutatorStats, SkippedFile};
pub use lm::{
    extract_code_block, lm_bug, lm_bugs, LmOutcome, LmRequest, LmStats, LmStrategy, Prompts,
    Rejection,
};
pub use mutators::{procedural_mutators, procedural_names, Procedural};
pub use pr_mirror::{
    is_library_path, library_part, mirror_commit, mirror_history, parse_git_log, HistoryCommit,
    MirrorOptions, MirrorOutcome, MirrorSkip, GIT_LOG_FORMAT,
};
pub use smith_core::python::{
    parse as parse_python, MAX_FILE_BYTES, MAX_NESTING, MAX_OPERATOR_CHAIN,
};
