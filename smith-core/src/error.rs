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
    #[error("command `{command}` failed: {}", with_cause(reason, source))]
    Command {
        /// The command line.
        command: String,
        /// What happened.
        reason: String,
        /// The error that caused it, if any (its text follows `reason`).
        source: Option<Cause>,
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
    #[error("test run failed: {}", with_cause(reason, source))]
    TestRun {
        /// What went wrong.
        reason: String,
        /// The error that caused it, if any (its text follows `reason`).
        source: Option<Cause>,
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
    #[error("invalid {what}: {}", with_cause(reason, source))]
    Invalid {
        /// The option or value.
        what: String,
        /// Why it is invalid.
        reason: String,
        /// The error that caused it, if any (its text follows `reason`).
        source: Option<Cause>,
    },
}

/// The error behind an [`Error`], kept as its
/// [`source`](std::error::Error::source) rather than flattened into text.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `reason: cause`, or whichever of the two is there.
///
/// The message keeps the cause's text: records and summaries store an
/// error's message alone, and it says what it said before causes were kept.
fn with_cause(reason: &str, cause: &Option<Cause>) -> String {
    match cause {
        None => reason.to_string(),
        Some(cause) if reason.is_empty() => cause.to_string(),
        Some(cause) => format!("{reason}: {cause}"),
    }
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
            source: None,
        }
    }

    /// An [`Error::Command`] for `command` caused by `cause`; the message is
    /// `command `…` failed: {reason}: {cause}`.
    pub fn command_source(
        command: impl Into<String>,
        reason: impl Into<String>,
        cause: impl Into<Cause>,
    ) -> Self {
        Error::Command {
            command: command.into(),
            reason: reason.into(),
            source: Some(cause.into()),
        }
    }

    /// An [`Error::TestRun`].
    pub fn test_run(reason: impl Into<String>) -> Self {
        Error::TestRun {
            reason: reason.into(),
            source: None,
        }
    }

    /// An [`Error::TestRun`] caused by `cause`; the message is
    /// `test run failed: {reason}: {cause}`.
    pub fn test_run_source(reason: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Error::TestRun {
            reason: reason.into(),
            source: Some(cause.into()),
        }
    }

    /// An [`Error::Invalid`].
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// An [`Error::Invalid`] caused by `cause`; the message is
    /// `invalid {what}: {reason}: {cause}`, or `invalid {what}: {cause}` for
    /// an empty `reason`.
    pub fn invalid_source(
        what: impl Into<String>,
        reason: impl Into<String>,
        cause: impl Into<Cause>,
    ) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
            source: Some(cause.into()),
        }
    }
}

/// `Result` with smith's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_kept_cause_is_the_source_and_stays_in_the_message() {
        let cause = serde_json::from_str::<u32>("x").unwrap_err();
        let cause_text = cause.to_string();
        let err = Error::command_source("fork server", "unreadable answer", cause);
        assert_eq!(
            err.to_string(),
            format!("command `fork server` failed: unreadable answer: {cause_text}")
        );
        assert_eq!(err.source().unwrap().to_string(), cause_text);

        let err = Error::invalid_source("threads", "", std::io::Error::other("too many"));
        assert_eq!(err.to_string(), "invalid threads: too many");
        let err = Error::test_run_source("bad JUnit XML", "unclosed tag");
        assert_eq!(
            err.to_string(),
            "test run failed: bad JUnit XML: unclosed tag"
        );
        assert!(err.source().is_some());
    }

    #[test]
    fn errors_without_a_cause_say_what_they_said() {
        assert_eq!(
            Error::command("git log", "exit 1").to_string(),
            "command `git log` failed: exit 1"
        );
        assert_eq!(
            Error::test_run("no report").to_string(),
            "test run failed: no report"
        );
        assert!(Error::invalid("shard", "0/0").source().is_none());
    }
}
