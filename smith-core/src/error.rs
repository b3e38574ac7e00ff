//! The one error type of smith's libraries.

use std::path::PathBuf;

/// Everything that can go wrong in smith, each variant naming what it failed on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A Python file could not be parsed.
    #[error("{path}: syntax error: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A set of edits overlapped or fell outside the text.
    #[error("{path}: invalid edit: {reason}")]
    InvalidEdit {
        /// The file the edits were for.
        path: PathBuf,
        /// Why they were rejected.
        reason: String,
    },
    /// A patch did not parse or did not apply.
    #[error("patch does not apply to {path}: {reason}")]
    PatchApply {
        /// The file the hunk was for.
        path: PathBuf,
        /// What did not match.
        reason: String,
    },
    /// A patch's text is not a unified diff.
    #[error("malformed patch at line {line}: {reason}")]
    PatchParse {
        /// 1-based line in the patch text.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// A command could not be started or failed.
    #[error("command `{command}` failed: {reason}")]
    Command {
        /// The command line.
        command: String,
        /// What happened.
        reason: String,
    },
    /// A JSONL record could not be read.
    #[error("{path}:{line}: bad record: {reason}")]
    Record {
        /// The JSONL file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// The repository is not something smith can work on.
    #[error("{path}: {reason}")]
    Repo {
        /// The repository root.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The Python environment could not be built or used.
    #[error("environment for {path}: {reason}")]
    Environment {
        /// The repository root.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A test run could not produce a report.
    #[error("test run failed: {reason}")]
    TestRun {
        /// What went wrong.
        reason: String,
    },
    /// A language model request failed.
    #[error("language model `{model}`: {reason}")]
    LanguageModel {
        /// The model asked.
        model: String,
        /// What went wrong.
        reason: String,
    },
    /// A problem statement could not be written.
    #[error("issue for {instance}: {reason}")]
    Issue {
        /// The candidate or instance id.
        instance: String,
        /// What went wrong.
        reason: String,
    },
    /// A sandbox or workspace cannot do what was asked (for example, start
    /// a long-lived process).
    #[error("{what} is not supported here")]
    Unsupported {
        /// The operation.
        what: String,
    },
    /// An option or argument is out of range.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The option or value.
        what: String,
        /// Why it is invalid.
        reason: String,
    },
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Command`] for `command`.
    pub fn command(command: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Command {
            command: command.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Invalid`].
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// `Result` with smith's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
