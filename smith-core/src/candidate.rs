//! Candidates (proposed bugs), verdicts and validation records.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{stable_hex, Patch, RepoRef, TestId};

/// A proposed bug: a patch that breaks the clean tree, not yet validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Stable id: a hash of (repo, commit, strategy, patch).
    pub id: String,
    /// Repository name, `owner/name`.
    pub repo: String,
    /// Commit of the clean tree.
    pub base_commit: String,
    /// Strategy that made it, e.g. `func_pm_op_change`.
    pub strategy: String,
    /// Entities touched, `file::qualname`.
    pub entities: Vec<String>,
    /// One line saying what was changed (never shown to solvers).
    pub description: String,
    /// The diff that introduces the bug into the clean tree.
    pub patch: Patch,
}

impl Candidate {
    /// A candidate with its id computed from its content.
    pub fn new(
        repo: &RepoRef,
        strategy: impl Into<String>,
        entities: Vec<String>,
        description: impl Into<String>,
        patch: Patch,
    ) -> Self {
        let strategy = strategy.into();
        let id = candidate_id(repo, &strategy, &patch);
        Candidate {
            id,
            repo: repo.name.clone(),
            base_commit: repo.commit.clone(),
            strategy,
            entities,
            description: description.into(),
            patch,
        }
    }

    /// The repository and commit this candidate is for.
    pub fn repo_ref(&self) -> RepoRef {
        RepoRef::new(&self.repo, &self.base_commit)
    }

    /// The files the patch touches (from the entity ids, falling back to the patch).
    pub fn files(&self) -> BTreeSet<String> {
        let mut files: BTreeSet<String> = self
            .entities
            .iter()
            .filter_map(|e| e.split("::").next())
            .map(str::to_string)
            .collect();
        if files.is_empty() {
            files.extend(self.patch.paths().unwrap_or_default());
        }
        files
    }
}

/// The stable id of a candidate: 32 hex digits.
pub fn candidate_id(repo: &RepoRef, strategy: &str, patch: &Patch) -> String {
    stable_hex(&[
        repo.name.as_bytes(),
        repo.commit.as_bytes(),
        strategy.as_bytes(),
        patch.as_str().as_bytes(),
    ])
}

/// What validation concluded about a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Breaks tests that passed before, and other tests still pass.
    Kept {
        /// Tests that passed on the clean tree and fail with the bug.
        #[serde(rename = "FAIL_TO_PASS")]
        fail_to_pass: BTreeSet<TestId>,
        /// Tests that pass both with and without the bug.
        #[serde(rename = "PASS_TO_PASS")]
        pass_to_pass: BTreeSet<TestId>,
    },
    /// Every selected test still passes.
    NoTestBroke,
    /// The run hit its time limit.
    TimedOut,
    /// The patch did not apply to the clean tree.
    Unappliable {
        /// Why.
        reason: String,
    },
    /// No test executes the touched code; nothing was run.
    Uncovered,
    /// The run could not be judged (every test broke, tests went missing, ...).
    Invalid {
        /// Why; serialized as its text.
        reason: InvalidReason,
    },
}

/// Why a run could not be judged: the reason of a [`Verdict::Invalid`].
///
/// It is written to `validations.jsonl` as its [`Display`](std::fmt::Display)
/// text, as plain strings were before this type; reading maps any text back
/// to its variant, and text from no variant to [`InvalidReason::Other`], so
/// records written by any version still load and re-serialize byte for byte.
///
/// ```
/// use smith_core::InvalidReason;
///
/// let reason = InvalidReason::EveryTestBroke { failed: 3 };
/// assert_eq!(reason.to_string(), "every test broke (3 failed)");
/// assert_eq!(InvalidReason::from("every test broke (3 failed)"), reason);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum InvalidReason {
    /// A whole-suite run where no test passed in every baseline run.
    NoReliableTest,
    /// Eligible tests absent from the report, with no collection error to
    /// explain it (after one re-run).
    TestsMissing {
        /// How many were missing.
        count: usize,
        /// The first of them.
        example: TestId,
    },
    /// Every eligible test failed, so nothing vouches for PASS_TO_PASS.
    EveryTestBroke {
        /// How many tests failed.
        failed: usize,
    },
    /// Modules failed to collect: a grader's plain `pytest` stops there.
    CollectionErrors {
        /// How many modules (or packages) failed to collect.
        modules: usize,
    },
    /// A combined bug where some component no longer breaks a test that
    /// the others leave passing.
    ComponentStoppedBreaking,
    /// A label rests on a test that draws from the random state, and from
    /// another random seed the test does not keep it.
    RandomStateLabel {
        /// Whether the label is FAIL_TO_PASS (else PASS_TO_PASS).
        fail_to_pass: bool,
        /// The test.
        test: TestId,
        /// The random seed it was run from.
        seed: u32,
        /// What it did from there.
        outcome: SeededOutcome,
    },
    /// Text from no variant above (read from an older record).
    Other(String),
}

/// What a test did when run from another random seed, in an
/// [`InvalidReason::RandomStateLabel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeededOutcome {
    /// It passed: `passes`.
    Passes,
    /// It failed or errored: `fails`.
    Fails,
    /// The run timed out before it finished: `runs out of time`.
    RunsOutOfTime,
    /// It is missing from the run: `does not run`.
    DoesNotRun,
}

impl SeededOutcome {
    const ALL: [SeededOutcome; 4] = [
        SeededOutcome::Passes,
        SeededOutcome::Fails,
        SeededOutcome::RunsOutOfTime,
        SeededOutcome::DoesNotRun,
    ];

    /// The words a reason writes for it.
    pub fn as_str(self) -> &'static str {
        match self {
            SeededOutcome::Passes => "passes",
            SeededOutcome::Fails => "fails",
            SeededOutcome::RunsOutOfTime => "runs out of time",
            SeededOutcome::DoesNotRun => "does not run",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == text)
    }
}

impl std::fmt::Display for SeededOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl InvalidReason {
    /// The variant whose text `text` is, or [`InvalidReason::Other`].
    fn parse(text: &str) -> Self {
        let count = |n: &str| n.parse::<usize>().ok();
        let typed = if text == "no test passes reliably on the clean tree" {
            Some(InvalidReason::NoReliableTest)
        } else if text == "a component no longer breaks a test of its own" {
            Some(InvalidReason::ComponentStoppedBreaking)
        } else if let Some((n, example)) =
            text.split_once(" selected test(s) missing from the report, e.g. ")
        {
            count(n).map(|count| InvalidReason::TestsMissing {
                count,
                example: TestId::from(example),
            })
        } else if let Some(n) = text
            .strip_prefix("every test broke (")
            .and_then(|rest| rest.strip_suffix(" failed)"))
        {
            count(n).map(|failed| InvalidReason::EveryTestBroke { failed })
        } else if let Some(n) = text.strip_suffix(
            " module(s) fail to collect, which stops a plain pytest run before any test",
        ) {
            count(n).map(|modules| InvalidReason::CollectionErrors { modules })
        } else if let Some((label_test, seed_outcome)) =
            text.split_once(" draws from the random state, and from random seed ")
        {
            random_state_label(label_test, seed_outcome)
        } else {
            None
        };
        // Only an exact round trip is typed ("007 failed" stays text), so
        // writing a record back never changes it.
        typed
            .filter(|r| r.to_string() == text)
            .unwrap_or_else(|| InvalidReason::Other(text.to_string()))
    }
}

/// A [`InvalidReason::RandomStateLabel`] from the text around its fixed
/// middle: `{label} {test}` and `{seed} it {outcome}`.
fn random_state_label(label_test: &str, seed_outcome: &str) -> Option<InvalidReason> {
    let (label, test) = label_test.split_once(' ')?;
    let (seed, outcome) = seed_outcome.split_once(" it ")?;
    Some(InvalidReason::RandomStateLabel {
        fail_to_pass: match label {
            "FAIL_TO_PASS" => true,
            "PASS_TO_PASS" => false,
            _ => return None,
        },
        test: TestId::from(test),
        seed: seed.parse().ok()?,
        outcome: SeededOutcome::parse(outcome)?,
    })
}

impl std::fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvalidReason::NoReliableTest => {
                f.write_str("no test passes reliably on the clean tree")
            }
            InvalidReason::TestsMissing { count, example } => write!(
                f,
                "{count} selected test(s) missing from the report, e.g. {example}"
            ),
            InvalidReason::EveryTestBroke { failed } => {
                write!(f, "every test broke ({failed} failed)")
            }
            InvalidReason::CollectionErrors { modules } => write!(
                f,
                "{modules} module(s) fail to collect, which stops a plain pytest run before any test"
            ),
            InvalidReason::ComponentStoppedBreaking => {
                f.write_str("a component no longer breaks a test of its own")
            }
            InvalidReason::RandomStateLabel {
                fail_to_pass,
                test,
                seed,
                outcome,
            } => {
                let label = if *fail_to_pass {
                    "FAIL_TO_PASS"
                } else {
                    "PASS_TO_PASS"
                };
                write!(
                    f,
                    "{label} {test} draws from the random state, and from random seed {seed} it {outcome}"
                )
            }
            InvalidReason::Other(text) => f.write_str(text),
        }
    }
}

impl From<String> for InvalidReason {
    fn from(text: String) -> Self {
        InvalidReason::parse(&text)
    }
}

impl From<&str> for InvalidReason {
    fn from(text: &str) -> Self {
        InvalidReason::parse(text)
    }
}

impl From<InvalidReason> for String {
    fn from(reason: InvalidReason) -> Self {
        reason.to_string()
    }
}

impl Verdict {
    /// Whether the candidate becomes a task.
    pub fn is_kept(&self) -> bool {
        matches!(self, Verdict::Kept { .. })
    }

    /// A short name for summaries: `kept`, `no_test_broke`, ...
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Kept { .. } => "kept",
            Verdict::NoTestBroke => "no_test_broke",
            Verdict::TimedOut => "timed_out",
            Verdict::Unappliable { .. } => "unappliable",
            Verdict::Uncovered => "uncovered",
            Verdict::Invalid { .. } => "invalid",
        }
    }
}

/// One line of `validations.jsonl`: a candidate's verdict and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// The candidate's id.
    pub candidate_id: String,
    /// Its strategy (copied for summaries).
    pub strategy: String,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// How many tests were selected to run (`None` = whole suite).
    pub selected: Option<usize>,
    /// Wall seconds spent on the candidate (apply, run, reset).
    pub seconds: f64,
    /// With `--confirm`: whether a full-suite run gave the same labels (when
    /// it did not, [`Validation::verdict`] is the full suite's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
    /// Whether the tests that gave a kept verdict, run again in a fresh
    /// interpreter (as a grader runs them), gave the same verdict; `None`
    /// when not checked (not kept, the check turned off, or the runs were
    /// fresh already). When it did not, [`Validation::verdict`] is the
    /// fresh run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fresh_confirmed: Option<bool>,
    /// Failure output of the bug run, for issue writers (truncated).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_depends_on_every_part() {
        let p = Patch::from_text("x");
        let base = candidate_id(&crate::RepoRef::new("o/r", "c"), "s", &p);
        assert_eq!(
            base,
            candidate_id(&crate::RepoRef::new("o/r", "c"), "s", &p)
        );
        assert_ne!(
            base,
            candidate_id(&crate::RepoRef::new("o/q", "c"), "s", &p)
        );
        assert_ne!(
            base,
            candidate_id(&crate::RepoRef::new("o/r", "d"), "s", &p)
        );
        assert_ne!(
            base,
            candidate_id(&crate::RepoRef::new("o/r", "c"), "t", &p)
        );
        assert_ne!(
            base,
            candidate_id(
                &crate::RepoRef::new("o/r", "c"),
                "s",
                &Patch::from_text("y")
            )
        );
    }

    #[test]
    fn verdict_serializes_with_swe_bench_names() {
        let v = Verdict::Kept {
            fail_to_pass: BTreeSet::from([TestId::from("t::a")]),
            pass_to_pass: BTreeSet::new(),
        };
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["verdict"], "kept");
        assert_eq!(json["FAIL_TO_PASS"][0], "t::a");
        let back: Verdict = serde_json::from_value(json).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn invalid_reasons_read_as_the_text_they_always_were() {
        let cases = [
            (
                InvalidReason::NoReliableTest,
                "no test passes reliably on the clean tree",
            ),
            (
                InvalidReason::TestsMissing {
                    count: 2,
                    example: TestId::from("m.py::c"),
                },
                "2 selected test(s) missing from the report, e.g. m.py::c",
            ),
            (
                InvalidReason::EveryTestBroke { failed: 4 },
                "every test broke (4 failed)",
            ),
            (
                InvalidReason::CollectionErrors { modules: 1 },
                "1 module(s) fail to collect, which stops a plain pytest run before any test",
            ),
            (
                InvalidReason::ComponentStoppedBreaking,
                "a component no longer breaks a test of its own",
            ),
            (
                InvalidReason::RandomStateLabel {
                    fail_to_pass: true,
                    test: TestId::from("t.py::test_roll[a b]"),
                    seed: 1,
                    outcome: SeededOutcome::RunsOutOfTime,
                },
                "FAIL_TO_PASS t.py::test_roll[a b] draws from the random state, and from random seed 1 it runs out of time",
            ),
            (
                InvalidReason::Other("the moon was full".into()),
                "the moon was full",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
            assert_eq!(InvalidReason::from(text), reason, "{text}");
        }
        // Near misses stay text, so they are written back unchanged.
        for text in [
            "every test broke (04 failed)",
            "every test broke (x failed)",
        ] {
            assert_eq!(InvalidReason::from(text), InvalidReason::Other(text.into()));
        }
    }

    #[test]
    fn an_old_invalid_record_round_trips_byte_for_byte() {
        for line in [
            r#"{"candidate_id":"c1","strategy":"s","verdict":"invalid","reason":"every test broke (2 failed)","selected":null,"seconds":1.5}"#,
            r#"{"candidate_id":"c2","strategy":"s","verdict":"invalid","reason":"some reason of an older version","selected":3,"seconds":0.25}"#,
        ] {
            let v: Validation = serde_json::from_str(line).unwrap();
            assert_eq!(serde_json::to_string(&v).unwrap(), line);
        }
        let v: Validation = serde_json::from_str(
            r#"{"candidate_id":"c","strategy":"s","verdict":"invalid","reason":"every test broke (2 failed)","selected":null,"seconds":1.0}"#,
        )
        .unwrap();
        assert_eq!(
            v.verdict,
            Verdict::Invalid {
                reason: InvalidReason::EveryTestBroke { failed: 2 }
            }
        );
    }
}
