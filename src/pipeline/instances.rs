//! Writing task instances: a problem statement for every kept candidate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use smith_core::{
    Candidate, Error, FailingTest, IssueContext, Result, SourceFile, TaskInstance, TestId,
    Validation, Verdict,
};

use super::{Event, Pipeline, Prepared};
use crate::store::{self, JsonlWriter};

/// Statements an issue writer may write for one task before it is given up.
const ISSUE_ATTEMPTS: u32 = 5;

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl Pipeline {
    /// Write a problem statement for every kept candidate not yet in
    /// `instances.jsonl`. Returns all instances and the leak count.
    pub fn write_instances(
        &self,
        p: &Prepared,
        candidates: &[Candidate],
        validations: &[Validation],
    ) -> Result<(Vec<TaskInstance>, usize)> {
        let path = self.path("instances.jsonl");
        let done = store::done_ids(&path, "candidate_id")?;
        let by_id: BTreeMap<&str, &Candidate> =
            candidates.iter().map(|c| (c.id.as_str(), c)).collect();
        let mut writer = JsonlWriter::<TaskInstance>::append(&path)?;
        let kept: Vec<&Validation> = validations.iter().filter(|v| v.verdict.is_kept()).collect();
        self.emit(Event::Stage {
            name: "issue",
            detail: format!(
                "{} problem statements ({})",
                kept.len(),
                self.issue_writer.name()
            ),
        });
        let image = smith_env::image_name_for(&p.repo.name, &p.repo.base_commit);
        let mut leaked = 0;
        for (i, v) in kept.iter().enumerate() {
            if done.contains(&v.candidate_id) {
                continue;
            }
            let Some(candidate) = by_id.get(v.candidate_id.as_str()) else {
                self.emit(Event::Warning(format!(
                    "validation for unknown candidate {}",
                    v.candidate_id
                )));
                continue;
            };
            let (instance, leaks) = self.instance_for(p, candidate, v, &image)?;
            leaked += leaks;
            let Some(instance) = instance else {
                continue;
            };
            writer.write(&instance)?;
            self.emit(Event::Progress {
                stage: "issue",
                done: i + 1,
                total: kept.len(),
                kept: i + 1,
            });
        }
        Ok((
            store::read_jsonl_unique(&path, |i: &TaskInstance| &i.candidate_id)?,
            leaked,
        ))
    }

    /// The task instance of `candidate`'s kept validation `v`, and how many
    /// problem statements leaked the fix on the way; no instance when every
    /// statement leaked (a warning says so).
    fn instance_for(
        &self,
        p: &Prepared,
        candidate: &Candidate,
        v: &Validation,
        image: &str,
    ) -> Result<(Option<TaskInstance>, usize)> {
        let Verdict::Kept {
            fail_to_pass,
            pass_to_pass,
        } = &v.verdict
        else {
            return Ok((None, 0));
        };
        let context = self.issue_context(p, candidate, fail_to_pass, &v.log);
        let checked = match smith_issue::write_checked(
            self.issue_writer.as_ref(),
            &context,
            ISSUE_ATTEMPTS,
        ) {
            Ok(checked) => checked,
            // Every statement leaked the fix: no task is better than a spoiled one.
            Err(Error::Issue { reason, source, .. }) => {
                let reason = match source {
                    Some(cause) if reason.is_empty() => cause.to_string(),
                    Some(cause) => format!("{reason}: {cause}"),
                    None => reason,
                };
                self.emit(Event::Warning(format!(
                    "no instance for {}: {reason}",
                    candidate.id
                )));
                return Ok((None, ISSUE_ATTEMPTS as usize));
            }
            Err(e) => return Err(e),
        };
        let mut instance = TaskInstance::new(
            candidate,
            fail_to_pass.iter().cloned().collect::<Vec<TestId>>(),
            pass_to_pass.iter().cloned().collect::<Vec<TestId>>(),
            checked.statement,
            image.to_string(),
            now_rfc3339(),
        );
        if let Some(version) = &p.env.pytest_version {
            instance.test_runner = format!("pytest {version}");
        }
        Ok((Some(instance), checked.leaked as usize))
    }

    /// What the issue writer is told of `candidate`: the tests it breaks
    /// (their source and their failure in the validation's `log`), the
    /// clean code it touches, and a seed of its own.
    fn issue_context(
        &self,
        p: &Prepared,
        candidate: &Candidate,
        fail_to_pass: &BTreeSet<TestId>,
        log: &str,
    ) -> IssueContext {
        IssueContext {
            candidate: candidate.clone(),
            failing: fail_to_pass
                .iter()
                .map(|t| FailingTest {
                    id: t.clone(),
                    source: smith_issue::test_source(&p.repo.root, t),
                    output: smith_issue::test_failure(log, t).unwrap_or_default(),
                })
                .collect(),
            original_code: original_code(&p.repo.root, candidate),
            seed: self.config.seed ^ smith_core::stable_hash(&[candidate.id.as_bytes()]) as u64,
        }
    }
}

/// The clean source of each entity a candidate touches, for leak checks.
fn original_code(root: &Path, candidate: &Candidate) -> Vec<String> {
    let mut out = Vec::new();
    for id in &candidate.entities {
        let Some((file, qualname)) = id.split_once("::") else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(smith_core::join_rel(root, file)) else {
            continue;
        };
        let source = SourceFile::new(file, text);
        if let Ok(entities) = smith_mutate::extract_entities(&source) {
            if let Some(e) = entities.iter().find(|e| e.qualname == qualname) {
                out.push(source.slice(e.range).to_string());
            }
        }
    }
    out
}
