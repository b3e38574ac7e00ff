//! Generating candidates: the procedural mutators, the LM strategies,
//! PR mirroring and feature adding, and choosing which to validate.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use smith_core::{
    Baseline, Candidate, CompletionParams, Error, LanguageModel, Mutator, Result, Shard, SourceFile,
};
use smith_mutate::{GenerateOptions, Generated, LmStrategy};

use super::{Event, LmUsage, Pipeline, Plan, Prepared};
use crate::repo::RepoInfo;
use crate::store;

impl Pipeline {
    /// Generate every candidate of the selected strategies and write this
    /// shard's to `candidates.jsonl`. `feature_add` needs a baseline: it
    /// runs only in [`Pipeline::run`].
    pub fn mutate(&self, p: &Prepared) -> Result<Generated> {
        let plan = self.plan()?;
        self.mutate_planned(p, &plan, None)
    }

    pub(super) fn mutate_planned(
        &self,
        p: &Prepared,
        plan: &Plan,
        baseline: Option<&Baseline>,
    ) -> Result<Generated> {
        let mut generated = self.generate(&p.repo, plan)?;
        if plan.feature_add {
            match baseline {
                Some(baseline) => self.feature_add_stage(p, baseline, &mut generated)?,
                None => self.emit(Event::Warning(
                    "feature_add runs the suite: it needs the baseline of a whole run".into(),
                )),
            }
        }
        let mine: Vec<&Candidate> = generated
            .candidates
            .iter()
            .filter(|c| self.config.shard.contains(&c.id))
            .collect();
        store::write_jsonl(&self.path("candidates.jsonl"), &mine)?;
        Ok(generated)
    }

    /// The candidates of the plan's stages that need no environment, on
    /// `repo`'s clean tree: the mutators, `lm_modify`, `lm_rewrite` and
    /// `pr_mirror` (every shard's; sampling and sharding come later).
    pub fn generate(&self, repo: &RepoInfo, plan: &Plan) -> Result<Generated> {
        let mut generated = Generated::default();
        if !plan.mutators.is_empty() {
            self.emit(Event::Stage {
                name: "mutate",
                detail: format!("{} procedural mutators", plan.mutators.len()),
            });
            let files =
                smith_mutate::python_files(&repo.root, &smith_mutate::FileOptions::default())?;
            let mutators: Vec<Box<dyn Mutator>> = self
                .mutators
                .iter()
                .map(|m| Box::new(m.clone()) as Box<dyn Mutator>)
                .collect();
            let options = GenerateOptions {
                seed: self.config.seed,
                strategies: Some(plan.mutators.clone()),
                max_per_entity: self
                    .config
                    .max_per_entity
                    .or(GenerateOptions::default().max_per_entity),
                max_candidates: None,
                // Sampling (`--max-candidates`) picks from every candidate and only
                // then keeps this shard's, so that shards of a sampled run add up
                // to the unsharded sample.
                shard: Shard::ALL,
                ..Default::default()
            };
            generated =
                smith_mutate::generate(&repo.root, &repo.repo_ref(), &files, &mutators, &options)?;
            for s in &generated.skipped {
                self.emit(Event::Warning(format!("skipped {}: {}", s.path, s.reason)));
            }
        }
        if plan.lm_modify {
            self.lm_stage(repo, LmStrategy::Modify, &mut generated)?;
        }
        if plan.lm_rewrite {
            self.lm_stage(repo, LmStrategy::Rewrite, &mut generated)?;
        }
        if plan.pr_mirror {
            self.pr_mirror_stage(repo, &mut generated)?;
        }
        Ok(generated)
    }

    /// `lm_modify` / `lm_rewrite`: up to
    /// [`Config::lm_entities`](super::Config::lm_entities) entities, chosen
    /// by seed, each sent to the model once.
    fn lm_stage(&self, repo: &RepoInfo, strategy: LmStrategy, out: &mut Generated) -> Result<()> {
        let model = self
            .language_model
            .as_deref()
            .ok_or_else(|| Error::invalid("strategies", "LM strategies need a language model"))?;
        let stage = strategy.name().replace('/', "_");
        let sites = self.lm_sites(repo, strategy, &stage)?;
        self.emit(Event::Stage {
            name: "lm",
            detail: format!("{stage}: {} entities to {}", sites.len(), model.model()),
        });
        let prompts = smith_mutate::Prompts::default();
        let params = CompletionParams {
            seed: Some(self.config.seed),
            ..CompletionParams::default()
        };
        let at = repo.repo_ref();
        let request = smith_mutate::LmRequest {
            repo: &at,
            prompts: &prompts,
            params: &params,
        };
        use rayon::prelude::*;
        let done = Mutex::new(0usize);
        let outcomes: Vec<Result<smith_mutate::LmOutcome>> = sites
            .par_iter()
            .map(|(file, entity)| {
                let outcome = smith_mutate::lm_bug(model, strategy, file, entity, &request);
                let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
                *done += 1;
                self.emit(Event::Progress {
                    stage: "lm",
                    done: *done,
                    total: sites.len(),
                    kept: 0,
                });
                outcome
            })
            .collect();
        let mut lm_stats = smith_mutate::LmStats::default();
        let mut candidates = Vec::new();
        for outcome in outcomes {
            let outcome = outcome?;
            lm_stats.record(&outcome);
            if let smith_mutate::LmOutcome::Candidate(c) = outcome {
                candidates.push(c);
            }
        }
        self.record_lm_stats(out, strategy, &stage, &lm_stats);
        let asked = lm_stats.asked;
        let accepted = push_new(out, strategy.name(), candidates);
        if asked > 0 && accepted == 0 {
            self.emit(Event::Warning(format!(
                "{stage}: none of {asked} answers of {} was a usable bug",
                model.model()
            )));
        }
        Ok(())
    }

    /// The entities `strategy` may send to the model, up to
    /// [`Config::lm_entities`](super::Config::lm_entities) of them, chosen by
    /// seed: every function (and, for `lm_modify`, class) the entity filter
    /// accepts, in files that read and parse.
    fn lm_sites(
        &self,
        repo: &RepoInfo,
        strategy: LmStrategy,
        stage: &str,
    ) -> Result<Vec<(Arc<SourceFile>, smith_core::Entity)>> {
        let filter = smith_mutate::EntityFilter::default();
        let mut sites: Vec<(Arc<SourceFile>, smith_core::Entity)> = Vec::new();
        for path in smith_mutate::python_files(&repo.root, &smith_mutate::FileOptions::default())? {
            let Ok(text) = std::fs::read_to_string(smith_core::join_rel(&repo.root, &path)) else {
                continue;
            };
            let file = Arc::new(SourceFile::new(path, text));
            let Ok(entities) = smith_mutate::extract_entities(&file) else {
                continue;
            };
            for e in entities {
                let fits =
                    strategy == LmStrategy::Modify || e.kind != smith_core::EntityKind::Class;
                if fits && filter.accepts(&e) {
                    sites.push((file.clone(), e));
                }
            }
        }
        let seed = self.config.seed.to_le_bytes();
        sites.sort_by_key(|(_, e)| {
            smith_core::stable_hash(&[&seed, stage.as_bytes(), e.id().as_bytes()])
        });
        sites.truncate(self.config.lm_entities);
        Ok(sites)
    }

    /// Count an LM stage's answers: asked and rejected by kind in `out`'s
    /// statistics of `strategy`, rejected by reason in the LM usage of
    /// `stage`.
    fn record_lm_stats(
        &self,
        out: &mut Generated,
        strategy: LmStrategy,
        stage: &str,
        lm_stats: &smith_mutate::LmStats,
    ) {
        let stats = out.stats.entry(strategy.name().to_string()).or_default();
        stats.proposed += lm_stats.asked;
        for (reason, n) in &lm_stats.rejected {
            match reason {
                smith_mutate::Rejection::Unparsable => stats.unparsable += n,
                smith_mutate::Rejection::Unchanged => stats.unchanged += n,
                _ => stats.invalid_edit += n,
            }
        }
        let mut usage = self.lm_usage.lock().unwrap_or_else(|e| e.into_inner());
        let rejected = usage.rejected.entry(stage.to_string()).or_default();
        for (reason, n) in &lm_stats.rejected {
            *rejected.entry(reason.label().to_string()).or_default() += n;
        }
    }

    /// `pr_mirror`: each commit of the repository's history whose library
    /// change can be undone on the clean tree is a candidate. A repository
    /// without history gets a warning, and the other strategies go on.
    fn pr_mirror_stage(&self, repo: &RepoInfo, out: &mut Generated) -> Result<()> {
        self.emit(Event::Stage {
            name: "pr_mirror",
            detail: format!(
                "undoing up to {} commits of the history",
                self.config.pr_mirror_commits
            ),
        });
        if repo.snapshot {
            self.emit(Event::Warning(format!(
                "pr_mirror: {} is not a clean git repository, so it has no history of its own \
                 (smith snapshotted its files): no PR mirror candidates",
                self.config.repo.display()
            )));
            return Ok(());
        }
        let commits = match crate::history::commits(&repo.root, Some(self.config.pr_mirror_commits))
        {
            Ok(commits) => commits,
            Err(e) => {
                self.emit(Event::Warning(format!(
                    "pr_mirror: no history to mirror: {e}"
                )));
                return Ok(());
            }
        };
        // A commit that only adds files (the first one, typically) would
        // undo into deleting them: no bug anyone could fix.
        let commits: Vec<_> = commits
            .into_iter()
            .filter(|c| {
                !smith_mutate::library_part(&c.diff)
                    .is_ok_and(|fs| fs.iter().all(|f| f.old_path.is_none()))
            })
            .collect();
        if commits.is_empty() {
            self.emit(Event::Warning(format!(
                "pr_mirror: {} has no commit that changes library code (besides adding it): no PR mirror candidates",
                repo.name
            )));
            return Ok(());
        }
        let current =
            |path: &str| std::fs::read_to_string(smith_core::join_rel(&repo.root, path)).ok();
        let options = smith_mutate::MirrorOptions::new(repo.repo_ref());
        let (candidates, skipped) = smith_mutate::mirror_history(
            &commits,
            &current,
            self.language_model.as_deref(),
            &options,
        )?;
        let stats = out.stats.entry("pr_mirror".to_string()).or_default();
        stats.proposed += commits.len();
        stats.invalid_edit += skipped.values().sum::<usize>();
        push_new(out, "pr_mirror", candidates);
        Ok(())
    }

    /// `feature_add`: one agent session per
    /// [`Config::features`](super::Config::features) entry, on a fresh
    /// workspace; a session that breaks tests is a candidate.
    fn feature_add_stage(
        &self,
        p: &Prepared,
        baseline: &Baseline,
        out: &mut Generated,
    ) -> Result<()> {
        let Some(model) = self.language_model.as_deref() else {
            return Ok(());
        };
        if self.config.features.is_empty() {
            self.emit(Event::Warning(
                "feature_add: no features to add (Config::features / --feature): no candidates"
                    .into(),
            ));
            return Ok(());
        }
        self.emit(Event::Stage {
            name: "feature_add",
            detail: format!("{} features", self.config.features.len()),
        });
        let options = smith_mutate::FeatureAddOptions::new(p.repo.repo_ref());
        let mut candidates = Vec::new();
        for feature in &self.config.features {
            let mut ws = p.sandbox.workspace()?;
            let outcome = smith_mutate::feature_add(
                model,
                ws.as_mut(),
                p.executor.as_ref(),
                baseline,
                feature,
                &options,
            )?;
            candidates.extend(outcome.candidate);
        }
        let stats = out.stats.entry("feature_add".to_string()).or_default();
        stats.proposed += self.config.features.len();
        push_new(out, "feature_add", candidates);
        Ok(())
    }

    /// What the LM strategies spent so far.
    pub fn lm_usage(&self) -> LmUsage {
        let mut usage = self
            .lm_usage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(model) = &self.language_model {
            usage.model = model.model().to_string();
        }
        usage.cost = self.config.lm_prices.map(|(prompt, completion)| {
            (usage.prompt_tokens as f64 * prompt + usage.completion_tokens as f64 * completion)
                / 1000.0
        });
        usage
    }

    /// Choose which candidates to validate: all of them, or `max_candidates`
    /// picked deterministically by id hash and seed, spread over strategies.
    pub fn select_candidates(&self, candidates: &[Candidate]) -> Vec<Candidate> {
        let Some(max) = self.config.max_candidates else {
            return candidates.to_vec();
        };
        let seed = self.config.seed.to_le_bytes();
        let mut by_strategy: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
        for c in candidates {
            by_strategy.entry(&c.strategy).or_default().push(c);
        }
        for list in by_strategy.values_mut() {
            list.sort_by_key(|c| smith_core::stable_hash(&[&seed, c.id.as_bytes()]));
        }
        // Round-robin over strategies so a small sample still covers them all.
        let mut picked = Vec::new();
        let mut round = 0;
        while picked.len() < max {
            let mut any = false;
            for list in by_strategy.values() {
                if let Some(c) = list.get(round) {
                    if picked.len() < max {
                        picked.push((*c).clone());
                    }
                    any = true;
                }
            }
            if !any {
                break;
            }
            round += 1;
        }
        picked.sort_by(|a, b| a.id.cmp(&b.id));
        picked
    }
}

/// Add `candidates` not yet in `out` and count them as emitted under
/// `strategy`; returns how many were new.
fn push_new(out: &mut Generated, strategy: &str, candidates: Vec<Candidate>) -> usize {
    let mut seen: BTreeSet<String> = out.candidates.iter().map(|c| c.id.clone()).collect();
    let mut added = 0;
    for c in candidates {
        if seen.insert(c.id.clone()) {
            out.candidates.push(c);
            added += 1;
        } else {
            out.stats.entry(strategy.to_string()).or_default().duplicate += 1;
        }
    }
    out.stats.entry(strategy.to_string()).or_default().emitted += added;
    added
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Config;

    #[test]
    fn selection_is_deterministic_and_covers_strategies() {
        let mk = |s: &str, n: usize| {
            (0..n)
                .map(|i| {
                    Candidate::new(
                        &smith_core::RepoRef::new("o/r", "c"),
                        s,
                        vec![],
                        "",
                        smith_core::Patch::from_text(format!("{s}{i}")),
                    )
                })
                .collect::<Vec<_>>()
        };
        let mut all = mk("a", 50);
        all.extend(mk("b", 3));
        let mut config = Config::new("r", "o");
        config.max_candidates = Some(10);
        let p = Pipeline::new(config);
        let one = p.select_candidates(&all);
        assert_eq!(one.len(), 10);
        assert_eq!(one, p.select_candidates(&all));
        assert_eq!(one.iter().filter(|c| c.strategy == "b").count(), 3);
    }
}
