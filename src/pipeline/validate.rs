//! Validating candidates: each one's tests run against the baseline, each
//! verdict appended to `validations.jsonl` as it finishes.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Instant;

use smith_core::{Baseline, Candidate, Error, Result, Validation};
use smith_validate::{CoverageMap, ValidateOptions};

use super::{Event, Pipeline, Prepared};
use crate::store::{self, JsonlWriter};

impl Pipeline {
    /// Validate candidates not yet in `validations.jsonl`, appending each
    /// result as it finishes. Returns every validation of these candidates
    /// (earlier runs' included) and the seconds spent now.
    pub fn validate(
        &self,
        p: &Prepared,
        baseline: &Baseline,
        coverage: Option<&CoverageMap>,
        candidates: &[Candidate],
    ) -> Result<(Vec<Validation>, f64, usize)> {
        self.validate_judged(p, baseline, coverage, candidates, &|_, v| v)
    }

    /// [`Pipeline::validate`], with `judge` given the last word on each
    /// validation before it is recorded.
    pub(super) fn validate_judged(
        &self,
        p: &Prepared,
        baseline: &Baseline,
        coverage: Option<&CoverageMap>,
        candidates: &[Candidate],
        judge: &(dyn Fn(&Candidate, Validation) -> Validation + Sync),
    ) -> Result<(Vec<Validation>, f64, usize)> {
        let path = self.path("validations.jsonl");
        let done = store::done_ids(&path, "candidate_id")?;
        let todo: Vec<Candidate> = candidates
            .iter()
            .filter(|c| !done.contains(&c.id))
            .cloned()
            .collect();
        self.emit(Event::Stage {
            name: "validate",
            detail: format!(
                "{} candidates ({} already done), {} workers",
                candidates.len(),
                candidates.len() - todo.len(),
                self.config.workers
            ),
        });
        let writer = Mutex::new(JsonlWriter::<Validation>::append(&path)?);
        let total = candidates.len();
        let previous: Vec<Validation> =
            store::read_jsonl_unique(&path, |v: &Validation| &v.candidate_id)?;
        let counts = Mutex::new((
            done.len().min(total),
            previous.iter().filter(|v| v.verdict.is_kept()).count(),
            None::<Error>,
        ));
        let options = self.validate_options();
        let started = Instant::now();
        let runs_before = p.pytest.run_times();
        let validated = smith_validate::validate_timed(
            p.sandbox.as_ref(),
            p.executor.as_ref(),
            baseline,
            coverage,
            &todo,
            &options,
            &|c: &Candidate, v: &Validation| {
                let v = &judge(c, v.clone());
                // The writer's own error (a full disk names the file) is
                // the run's error; the first one is kept.
                let write = writer.lock().unwrap_or_else(|e| e.into_inner()).write(v);
                let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = write {
                    counts.2.get_or_insert(e);
                }
                counts.0 += 1;
                counts.1 += usize::from(v.verdict.is_kept());
                self.emit(Event::Progress {
                    stage: "validate",
                    done: counts.0,
                    total,
                    kept: counts.1,
                });
            },
            &p.phases,
        );
        if let Ok(mut runs) = p.validation_runs.lock() {
            *runs = runs.plus(&p.pytest.run_times().minus(&runs_before));
        }
        validated?;
        let secs = started.elapsed().as_secs_f64();
        if let Some(e) = counts.into_inner().unwrap_or_else(|e| e.into_inner()).2 {
            return Err(e);
        }
        let wanted: BTreeSet<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
        let all: Vec<Validation> =
            store::read_jsonl_unique(&path, |v: &Validation| &v.candidate_id)?
                .into_iter()
                .filter(|v| wanted.contains(v.candidate_id.as_str()))
                .collect();
        Ok((all, secs, todo.len()))
    }

    /// The validation options [`Config`](super::Config) sets.
    fn validate_options(&self) -> ValidateOptions {
        ValidateOptions {
            workers: self.config.workers.max(1),
            selection: self.config.selection,
            confirm: self.config.confirm,
            fresh_check: self.config.fresh_check,
            timeout_floor: self.config.timeout_floor,
            timeout_factor: self.config.timeout_factor,
            test_timeout_floor: self.config.test_timeout_floor,
            ..Default::default()
        }
    }
}
