//! Combining kept bugs of one file or package into multi-bug candidates.

use std::collections::{BTreeMap, BTreeSet};

use smith_core::{Baseline, Candidate, Error, Result, TestId, Validation, Verdict};
use smith_validate::CoverageMap;

use super::{Event, Pipeline, Plan, Prepared};
use crate::store;

impl Pipeline {
    /// Merge kept candidates of one file (`combine/file`) or one package
    /// directory (`combine/module`) into multi-bug candidates, write them to
    /// `combined.jsonl` and validate them. A combination is kept only when
    /// every component still breaks a test of its own
    /// ([`smith_mutate::components_contribute`]); otherwise its verdict
    /// becomes `invalid`.
    pub fn combine(
        &self,
        p: &Prepared,
        baseline: &Baseline,
        coverage: Option<&CoverageMap>,
        candidates: &[Candidate],
        validations: &[Validation],
    ) -> Result<(Vec<Candidate>, Vec<Validation>)> {
        let plan = Plan {
            combine_file: true,
            combine_module: true,
            ..Plan::default()
        };
        self.combine_planned(p, baseline, coverage, candidates, validations, &plan)
    }

    pub(super) fn combine_planned(
        &self,
        p: &Prepared,
        baseline: &Baseline,
        coverage: Option<&CoverageMap>,
        candidates: &[Candidate],
        validations: &[Validation],
        plan: &Plan,
    ) -> Result<(Vec<Candidate>, Vec<Validation>)> {
        let kept = smith_mutate::kept_with_f2p(candidates, validations);
        let f2p_of: BTreeMap<&str, &BTreeSet<TestId>> =
            kept.iter().map(|(c, f)| (c.id.as_str(), f)).collect();
        let mut sources = BTreeMap::new();
        for (c, _) in &kept {
            for file in c.files() {
                if let std::collections::btree_map::Entry::Vacant(slot) = sources.entry(file) {
                    let path = smith_core::join_rel(&p.repo.root, slot.key());
                    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
                    slot.insert(text);
                }
            }
        }
        let kept_refs: Vec<&Candidate> = kept.iter().map(|(c, _)| *c).collect();
        let mut combos = Vec::new();
        let scopes = [
            (plan.combine_file, smith_mutate::CombineScope::File),
            (plan.combine_module, smith_mutate::CombineScope::Module),
        ];
        for scope in scopes.into_iter().filter_map(|(on, s)| on.then_some(s)) {
            let options = smith_mutate::CombineOptions {
                scope,
                seed: self.config.seed,
                max_per_group: self.config.combine_per_group,
                ..Default::default()
            };
            combos.extend(smith_mutate::combine(&kept_refs, &sources, &options)?);
        }
        let combined: Vec<Candidate> = combos
            .iter()
            .map(|c| c.candidate.clone())
            .filter(|c| self.config.shard.contains(&c.id))
            .collect();
        store::write_jsonl(&self.path("combined.jsonl"), &combined)?;
        let components: BTreeMap<&str, Vec<BTreeSet<TestId>>> = combos
            .iter()
            .map(|c| {
                let sets = c
                    .components
                    .iter()
                    .filter_map(|id| f2p_of.get(id.as_str()).map(|s| (*s).clone()))
                    .collect();
                (c.candidate.id.as_str(), sets)
            })
            .collect();
        self.emit(Event::Stage {
            name: "combine",
            detail: format!("{} combinations of kept bugs", combined.len()),
        });
        let judge = |c: &Candidate, mut v: Validation| {
            if let (Verdict::Kept { fail_to_pass, .. }, Some(parts)) =
                (&v.verdict, components.get(c.id.as_str()))
            {
                if !smith_mutate::components_contribute(fail_to_pass, parts) {
                    v.verdict = Verdict::Invalid {
                        reason: "a component no longer breaks a test of its own".into(),
                    };
                }
            }
            v
        };
        let (validations, _, _) = self.validate_judged(p, baseline, coverage, &combined, &judge)?;
        Ok((combined, validations))
    }
}
