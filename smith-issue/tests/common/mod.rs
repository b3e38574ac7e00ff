//! Helpers shared by smith-issue's integration tests: the calc fixture
//! repository, its mutations, and issue contexts built from pytest logs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde::Deserialize;
use smith_core::{Candidate, FailingTest, FileChange, IssueContext, Patch, TestId};
use smith_issue::{test_failure, test_source};

/// One bug of the calc fixture: replace `from` by `to` in `file`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct FixtureMutation {
    pub name: String,
    pub file: String,
    pub entity: String,
    pub from: String,
    pub to: String,
}

pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub(crate) fn calc_repo() -> PathBuf {
    fixtures().join("calc_repo")
}

pub(crate) fn mutations() -> Vec<FixtureMutation> {
    let text = std::fs::read_to_string(fixtures().join("mutations.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub(crate) fn mutation(name: &str) -> FixtureMutation {
    mutations().into_iter().find(|m| m.name == name).unwrap()
}

impl FixtureMutation {
    pub(crate) fn clean_text(&self, repo: &Path) -> String {
        std::fs::read_to_string(repo.join(&self.file)).unwrap()
    }

    pub(crate) fn buggy_text(&self, repo: &Path) -> String {
        let clean = self.clean_text(repo);
        assert_eq!(clean.matches(&self.from).count(), 1, "{}", self.name);
        clean.replacen(&self.from, &self.to, 1)
    }

    pub(crate) fn patch(&self, repo: &Path) -> Patch {
        Patch::from_changes(&[FileChange::modified(
            self.file.clone(),
            self.clean_text(repo),
            self.buggy_text(repo),
        )])
    }

    /// The clean source of the mutated function or method.
    pub(crate) fn original_code(&self, repo: &Path) -> String {
        let clean = self.clean_text(repo);
        let name = self.entity.rsplit('.').next().unwrap();
        let lines: Vec<&str> = clean.lines().collect();
        let start = lines
            .iter()
            .position(|l| l.trim_start().starts_with(&format!("def {name}(")))
            .unwrap();
        let indent = lines[start].len() - lines[start].trim_start().len();
        let end = (start + 1..lines.len())
            .find(|&i| {
                !lines[i].trim().is_empty()
                    && lines[i].len() - lines[i].trim_start().len() <= indent
            })
            .unwrap_or(lines.len());
        lines[start..end].join("\n")
    }

    pub(crate) fn candidate(&self, repo: &Path) -> Candidate {
        Candidate::new(
            &smith_core::RepoRef::new("smith/calc", "0123456789abcdef"),
            "fixture",
            vec![format!("{}::{}", self.file, self.entity)],
            format!("fixture mutation {}", self.name),
            self.patch(repo),
        )
    }

    /// The committed log of a real pytest run with this bug.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(fixtures().join("logs").join(format!("{}.log", self.name))).unwrap()
    }

    /// An issue context from a pytest log of this bug run in `tree` (test
    /// sources are read there; the patch and original code come from the
    /// clean fixture).
    pub(crate) fn context(&self, tree: &Path, log: &str, seed: u64) -> IssueContext {
        let clean = calc_repo();
        let failing = failing_tests(log)
            .into_iter()
            .map(|id| FailingTest {
                source: test_source(tree, &id),
                output: test_failure(log, &id).unwrap_or_default(),
                id,
            })
            .collect();
        IssueContext {
            candidate: self.candidate(&clean),
            failing,
            original_code: vec![self.original_code(&clean)],
            seed,
        }
    }
}

/// The tests a `-rA` log reports as FAILED or ERROR.
pub(crate) fn failing_tests(log: &str) -> Vec<TestId> {
    let mut out: Vec<TestId> = Vec::new();
    for line in log.lines() {
        let rest = line
            .strip_prefix("FAILED ")
            .or_else(|| line.strip_prefix("ERROR "));
        if let Some(rest) = rest {
            let id = rest.split(" - ").next().unwrap().trim();
            if !out.iter().any(|t| t.as_str() == id) {
                out.push(TestId::from(id));
            }
        }
    }
    out
}
