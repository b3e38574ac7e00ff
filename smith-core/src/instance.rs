//! The output record: one task instance in the SWE-smith / SWE-bench schema.

use serde::{Deserialize, Serialize};

use crate::{Candidate, RepoRef, TestId};

/// One task: a bug, the tests it breaks, the tests that still pass, and an
/// issue describing the symptom. Field names and meanings are those of
/// SWE-smith's task instances (a superset of SWE-bench's), so the JSONL
/// loads unchanged in their harnesses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInstance {
    /// `<owner>__<repo>.<commit8>.<strategy>__<hash8>`.
    pub instance_id: String,
    /// `owner/name`.
    pub repo: String,
    /// Commit of the clean tree.
    pub base_commit: String,
    /// Diff that introduces the bug into the clean tree; the gold fix is its reverse.
    pub patch: String,
    /// Tests that fail with the bug and pass on the clean tree.
    #[serde(rename = "FAIL_TO_PASS")]
    pub fail_to_pass: Vec<TestId>,
    /// Tests that pass with and without the bug.
    #[serde(rename = "PASS_TO_PASS")]
    pub pass_to_pass: Vec<TestId>,
    /// The issue text a solver sees.
    pub problem_statement: String,
    /// Execution environment image (or environment name) the task runs in.
    pub image_name: String,
    /// RFC 3339 time the instance was made.
    pub created_at: String,
    /// SWE-bench's `version` field; smith uses the short base commit.
    pub version: String,
    /// SWE-bench's `environment_setup_commit`: the commit the task's
    /// environment is built from. smith builds one environment per
    /// repository at the base commit, so this is the base commit (as
    /// SWE-smith writes it).
    #[serde(default)]
    pub environment_setup_commit: String,
    /// SWE-bench's test-file patch; empty: the tests are already in the tree.
    pub test_patch: String,
    /// SWE-bench's hints field; always empty.
    pub hints_text: String,
    /// Strategy that made the bug.
    pub strategy: String,
    /// The candidate this came from.
    pub candidate_id: String,
    /// Entities the bug touches, `file::qualname`.
    pub entities: Vec<String>,
    /// Which program made the instance, e.g. `smith 0.1.0`.
    pub generator: String,
    /// The test runner the labels were observed with, e.g. `pytest 8.3.5`
    /// (the one the project declares); empty when unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub test_runner: String,
}

/// The SWE-smith instance id for a candidate.
///
/// ```
/// assert_eq!(
///     smith_core::instance_id(
///         &smith_core::RepoRef::new("acme/demo", "0123456789abcdef"),
///         "func_pm_op_swap",
///         "deadbeefcafe",
///     ),
///     "acme__demo.01234567.func_pm_op_swap__deadbeef"
/// );
/// ```
pub fn instance_id(repo: &RepoRef, strategy: &str, candidate_id: &str) -> String {
    let commit8: String = repo.commit.chars().take(8).collect();
    let hash8: String = candidate_id.chars().take(8).collect();
    // '/' is not allowed in ids that become branch or file names.
    let strategy = strategy.replace('/', "_");
    format!(
        "{}.{commit8}.{strategy}__{hash8}",
        repo.name.replacen('/', "__", 1)
    )
}

impl TaskInstance {
    /// Build an instance from a kept candidate's labels and statement.
    pub fn new(
        candidate: &Candidate,
        fail_to_pass: Vec<TestId>,
        pass_to_pass: Vec<TestId>,
        problem_statement: String,
        image_name: String,
        created_at: String,
    ) -> Self {
        TaskInstance {
            instance_id: instance_id(&candidate.repo_ref(), &candidate.strategy, &candidate.id),
            repo: candidate.repo.clone(),
            base_commit: candidate.base_commit.clone(),
            patch: candidate.patch.as_str().to_string(),
            fail_to_pass,
            pass_to_pass,
            problem_statement,
            image_name,
            created_at,
            version: candidate.base_commit.chars().take(8).collect(),
            environment_setup_commit: candidate.base_commit.clone(),
            test_patch: String::new(),
            hints_text: String::new(),
            strategy: candidate.strategy.clone(),
            candidate_id: candidate.id.clone(),
            entities: candidate.entities.clone(),
            generator: concat!("smith ", env!("CARGO_PKG_VERSION")).to_string(),
            test_runner: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Patch;

    #[test]
    fn serializes_with_schema_names() {
        let c = Candidate::new(
            &crate::RepoRef::new("o/r", "0123456789"),
            "func_pm_op_swap",
            vec!["m.py::f".into()],
            "d",
            Patch::from_text("p"),
        );
        let i = TaskInstance::new(
            &c,
            vec!["t.py::a".into()],
            vec!["t.py::b".into()],
            "ps".into(),
            "img".into(),
            "2026-01-01T00:00:00Z".into(),
        );
        let v = serde_json::to_value(&i).unwrap();
        for key in [
            "instance_id",
            "repo",
            "base_commit",
            "patch",
            "FAIL_TO_PASS",
            "PASS_TO_PASS",
            "problem_statement",
            "image_name",
            "created_at",
            "version",
            "environment_setup_commit",
            "test_patch",
            "hints_text",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["environment_setup_commit"], "0123456789");
        assert!(i.instance_id.starts_with("o__r.01234567.func_pm_op_swap__"));
        assert_eq!(
            i.instance_id.len(),
            "o__r.01234567.func_pm_op_swap__".len() + 8
        );
    }
}
