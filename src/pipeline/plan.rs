//! Which stages a run's strategies select, checked before any stage runs.

use std::collections::BTreeSet;

use smith_core::{Error, Result};

use super::Pipeline;

/// The stages a run's strategies select (see [`Config::strategies`](super::Config::strategies)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Mutators to run, by name (empty: no procedural stage).
    pub mutators: Vec<String>,
    /// Combine kept bugs of one file.
    pub combine_file: bool,
    /// Combine kept bugs of one package.
    pub combine_module: bool,
    /// `lm_modify`: the model plants a bug in a function or class.
    pub lm_modify: bool,
    /// `lm_rewrite`: the model re-implements a function.
    pub lm_rewrite: bool,
    /// `pr_mirror`: undo commits of the repository's history.
    pub pr_mirror: bool,
    /// `feature_add`: the model adds a feature; the tests it breaks make
    /// the task.
    pub feature_add: bool,
}

impl Plan {
    /// Whether a stage needs a language model.
    pub fn needs_model(&self) -> bool {
        self.lm_modify || self.lm_rewrite || self.feature_add
    }

    /// Whether any LM-driven stage (PR mirroring included) runs.
    pub(super) fn uses_model(&self) -> bool {
        self.needs_model() || self.pr_mirror
    }
}

impl Plan {
    /// Add the stages strategy `name` selects (a group, a stage or one of
    /// `mutators`), or refuse an unknown name.
    fn select(&mut self, name: &str, mutators: &[&str]) -> Result<()> {
        match name {
            "procedural" => mutators.iter().for_each(|n| self.add_mutator(n)),
            "combine" => {
                self.combine_file = true;
                self.combine_module = true;
            }
            "combine_file" | "combine/file" => self.combine_file = true,
            "combine_module" | "combine/module" => self.combine_module = true,
            "lm" => {
                self.lm_modify = true;
                self.lm_rewrite = true;
            }
            "lm_modify" | "lm/modify" => self.lm_modify = true,
            "lm_rewrite" | "lm/rewrite" => self.lm_rewrite = true,
            "pr_mirror" => self.pr_mirror = true,
            "feature_add" => self.feature_add = true,
            n if mutators.contains(&n) => self.add_mutator(n),
            other => {
                return Err(Error::invalid(
                    "strategies",
                    format!(
                        "`{other}` is not a strategy: one of {STAGE_NAMES}, or a mutator ({})",
                        mutators.join(", ")
                    ),
                ))
            }
        }
        Ok(())
    }

    /// Run mutator `name`, once however often it is selected.
    fn add_mutator(&mut self, name: &str) {
        if !self.mutators.iter().any(|m| m == name) {
            self.mutators.push(name.to_string());
        }
    }
}

/// The strategy names beside mutators' own, for messages.
const STAGE_NAMES: &str = "procedural, combine, lm (groups); combine_file, combine_module, \
     lm_modify, lm_rewrite, pr_mirror, feature_add";

impl Pipeline {
    /// The stages [`Config::strategies`](super::Config::strategies) selects, or an
    /// [`Error::Invalid`] naming an unknown strategy, a mutator named like
    /// another, or an LM strategy without a language model. Every run
    /// checks this before its first stage.
    pub fn plan(&self) -> Result<Plan> {
        let names = self.mutator_names();
        let mut seen = BTreeSet::new();
        for n in &names {
            if !seen.insert(*n) {
                return Err(Error::invalid(
                    "mutators",
                    format!("two mutators are named `{n}`"),
                ));
            }
        }
        let mut plan = Plan::default();
        match &self.config.strategies {
            None => {
                plan.mutators = names.iter().map(|n| n.to_string()).collect();
                plan.combine_file = self.config.combine;
                plan.combine_module = self.config.combine;
            }
            Some(list) => {
                for raw in list {
                    plan.select(raw.trim(), &names)?;
                }
                if !self.config.combine {
                    plan.combine_file = false;
                    plan.combine_module = false;
                }
            }
        }
        if plan.needs_model() && self.language_model.is_none() {
            let which: Vec<&str> = [
                (plan.lm_modify, "lm_modify"),
                (plan.lm_rewrite, "lm_rewrite"),
                (plan.feature_add, "feature_add"),
            ]
            .into_iter()
            .filter_map(|(on, n)| on.then_some(n))
            .collect();
            return Err(Error::invalid(
                "strategies",
                format!(
                    "{} need a language model (--lm-base-url and --lm-model)",
                    which.join(", ")
                ),
            ));
        }
        Ok(plan)
    }
}
