//! Candidates (proposed bugs), verdicts and validation records.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{stable_hex, Patch, TestId};

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
        repo: impl Into<String>,
        base_commit: impl Into<String>,
        strategy: impl Into<String>,
        entities: Vec<String>,
        description: impl Into<String>,
        patch: Patch,
    ) -> Self {
        let (repo, base_commit, strategy) = (repo.into(), base_commit.into(), strategy.into());
        let id = candidate_id(&repo, &base_commit, &strategy, &patch);
        Candidate {
            id,
            repo,
            base_commit,
            strategy,
            entities,
            description: description.into(),
            patch,
        }
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
pub fn candidate_id(repo: &str, base_commit: &str, strategy: &str, patch: &Patch) -> String {
    stable_hex(&[
        repo.as_bytes(),
        base_commit.as_bytes(),
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
        /// Why.
        reason: String,
    },
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
        let base = candidate_id("o/r", "c", "s", &p);
        assert_eq!(base, candidate_id("o/r", "c", "s", &p));
        assert_ne!(base, candidate_id("o/q", "c", "s", &p));
        assert_ne!(base, candidate_id("o/r", "d", "s", &p));
        assert_ne!(base, candidate_id("o/r", "c", "t", &p));
        assert_ne!(base, candidate_id("o/r", "c", "s", &Patch::from_text("y")));
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
}
