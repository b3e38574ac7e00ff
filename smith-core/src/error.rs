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
    #[error("{path}:{line}: bad record: {}", with_cause(reason, source))]
    Record {
        /// The JSONL file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
        /// The error that caused it, if any (its text follows `reason`).
        source: Option<Cause>,
    },
    /// The repository is not something smith can work on.
    #[error("{path}: {}", with_cause(reason, source))]
    Repo {
        /// The repository root.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// The error that caused it, if any (its text follows `reason`).
        source: Option<Cause>,
    },
    /// The Python environment could not be built or used.
    #[error("environment for {path}: {}", with_cause(reason, source))]
    Environment {
        /// The repository root.
        path: PathBuf,
        /// What went wrong.
        reason: String,
        /// The error that caused it, if any (its text follows `reason`).
        source: Option<Cause>,
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
    #[error("language model `{model}`: {}", with_cause(reason, source))]
    LanguageModel {
        /// The model asked.
        model: String,
        /// What went wrong.
        reason: String,
        /// The error that caused it, if any (its text follows `reason`).
        source: Option<Cause>,
    },
    /// A problem statement could not be written.
    #[error("issue for {instance}: {}", with_cause(reason, source))]
    Issue {
        /// The candidate or instance id.
        instance: String,
        /// What went wrong.
        reason: String,
        /// The error that caused it, if any (its text follows `reason`).
        source: Option<Cause>,
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

    /// An [`Error::Record`] for line `line` of `path` (0 when the record
    /// was being written).
    pub fn record(path: impl Into<PathBuf>, line: usize, reason: impl Into<String>) -> Self {
        Error::Record {
            path: path.into(),
            line,
            reason: reason.into(),
            source: None,
        }
    }

    /// An [`Error::Record`] caused by `cause`; the message is
    /// `{path}:{line}: bad record: {reason}: {cause}`, or
    /// `{path}:{line}: bad record: {cause}` for an empty `reason`.
    pub fn record_source(
        path: impl Into<PathBuf>,
        line: usize,
        reason: impl Into<String>,
        cause: impl Into<Cause>,
    ) -> Self {
        Error::Record {
            path: path.into(),
            line,
            reason: reason.into(),
            source: Some(cause.into()),
        }
    }

    /// An [`Error::Repo`] for the repository at `path`.
    pub fn repo(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Repo {
            path: path.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// An [`Error::Repo`] caused by `cause`; the message is
    /// `{path}: {reason}: {cause}`.
    pub fn repo_source(
        path: impl Into<PathBuf>,
        reason: impl Into<String>,
        cause: impl Into<Cause>,
    ) -> Self {
        Error::Repo {
            path: path.into(),
            reason: reason.into(),
            source: Some(cause.into()),
        }
    }

    /// An [`Error::Environment`] for the repository at `path`.
    pub fn environment(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Environment {
            path: path.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// An [`Error::Environment`] caused by `cause`; the message is
    /// `environment for {path}: {reason}: {cause}`.
    pub fn environment_source(
        path: impl Into<PathBuf>,
        reason: impl Into<String>,
        cause: impl Into<Cause>,
    ) -> Self {
        Error::Environment {
            path: path.into(),
            reason: reason.into(),
            source: Some(cause.into()),
        }
    }

    /// An [`Error::LanguageModel`] for `model`.
    pub fn language_model(model: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::LanguageModel {
            model: model.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// An [`Error::LanguageModel`] caused by `cause`; the message is
    /// `language model `{model}`: {reason}: {cause}`.
    pub fn language_model_source(
        model: impl Into<String>,
        reason: impl Into<String>,
        cause: impl Into<Cause>,
    ) -> Self {
        Error::LanguageModel {
            model: model.into(),
            reason: reason.into(),
            source: Some(cause.into()),
        }
    }

    /// An [`Error::Issue`] for the candidate or instance `instance`.
    pub fn issue(instance: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Issue {
            instance: instance.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// An [`Error::Issue`] caused by `cause`; the message is
    /// `issue for {instance}: {reason}: {cause}`.
    pub fn issue_source(
        instance: impl Into<String>,
        reason: impl Into<String>,
        cause: impl Into<Cause>,
    ) -> Self {
        Error::Issue {
            instance: instance.into(),
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
    fn environment_repo_record_model_and_issue_errors_keep_their_cause() {
        let err = Error::environment_source(
            "/r",
            "bad stamp file",
            std::io::Error::other("expected value"),
        );
        assert_eq!(
            err.to_string(),
            "environment for /r: bad stamp file: expected value"
        );
        assert_eq!(err.source().unwrap().to_string(), "expected value");
        assert_eq!(
            Error::environment("/r", "no test passes").to_string(),
            "environment for /r: no test passes"
        );
        assert!(Error::environment("/r", "x").source().is_none());

        let cause = serde_json::from_str::<u32>("x").unwrap_err();
        let cause_text = cause.to_string();
        let err = Error::record_source("a.jsonl", 3, "", cause);
        assert_eq!(
            err.to_string(),
            format!("a.jsonl:3: bad record: {cause_text}")
        );
        assert_eq!(err.source().unwrap().to_string(), cause_text);

        let err = Error::repo_source(
            "/r",
            "cannot open repository",
            std::io::Error::other("gone"),
        );
        assert_eq!(err.to_string(), "/r: cannot open repository: gone");
        assert!(err.source().is_some());
        let err = Error::language_model_source("m", "gave up", std::io::Error::other("refused"));
        assert_eq!(err.to_string(), "language model `m`: gave up: refused");
        assert!(err.source().is_some());
        let err = Error::issue_source("c1", "leaked", std::io::Error::other("twice"));
        assert_eq!(err.to_string(), "issue for c1: leaked: twice");
        assert!(err.source().is_some());
        assert_eq!(
            Error::issue("c1", "empty").to_string(),
            "issue for c1: empty"
        );
        assert_eq!(
            Error::language_model("m", "no reply").to_string(),
            "language model `m`: no reply"
        );
        assert_eq!(
            Error::repo("/r", "not a directory").to_string(),
            "/r: not a directory"
        );
        assert_eq!(
            Error::record("a.jsonl", 0, "x").to_string(),
            "a.jsonl:0: bad record: x"
        );
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
