//! What a run reports: the summaries written to `summary.json` and
//! `validate-summary.json`, and the tallies they are made of.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use smith_core::{Baseline, Candidate, Shard, Validation, Verdict};
use smith_mutate::Generated;
use smith_validate::{PhaseTimes, RunTimes};

use super::Prepared;

/// Counts for one strategy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StrategySummary {
    /// Candidates validated.
    pub validated: usize,
    /// Candidates kept.
    pub kept: usize,
    /// kept / validated.
    #[serde(rename = "yield")]
    pub yield_: f64,
}

/// The summary of a run, also written to `summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `owner/name`.
    pub repo: String,
    /// Commit of the clean tree.
    pub base_commit: String,
    /// Candidates generated (this shard).
    pub candidates: usize,
    /// Candidates validated.
    pub validated: usize,
    /// Candidates kept.
    pub kept: usize,
    /// kept / validated.
    #[serde(rename = "yield")]
    pub yield_: f64,
    /// Per strategy.
    pub strategies: BTreeMap<String, StrategySummary>,
    /// Verdict counts.
    pub verdicts: BTreeMap<String, usize>,
    /// Median FAIL_TO_PASS size of kept candidates.
    pub median_f2p: f64,
    /// Median changed lines of kept candidates' patches.
    pub median_changed_lines: f64,
    /// Instances written.
    pub instances: usize,
    /// Problem statements rejected by the leak check before one passed.
    pub leaked_statements: usize,
    /// Python files skipped (syntax errors, encoding, size), with reasons.
    pub skipped_files: Vec<String>,
    /// Baseline: stable passing tests.
    pub baseline_passing: usize,
    /// Baseline: flaky tests.
    pub baseline_flaky: usize,
    /// Baseline: every test of the suite (passing, flaky or not passing).
    pub baseline_tests: usize,
    /// Baseline: share of the suite's tests passing on the clean tree.
    pub baseline_pass_rate: f64,
    /// Every warning of the run, in order (skipped files among them).
    pub warnings: Vec<String>,
    /// Wall seconds of the whole run.
    pub seconds: f64,
    /// Wall seconds spent validating, per candidate validated this run.
    pub seconds_per_candidate: f64,
    /// With `--confirm`: share of kept candidates whose full-suite labels agree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm_agreement: Option<f64>,
    /// What the language model strategies spent.
    #[serde(default)]
    pub lm: LmUsage,
    /// Where the task instances are.
    pub instances_path: PathBuf,
    /// The environment came from the cache (no install ran).
    #[serde(default)]
    pub env_reused: bool,
    /// Seconds per phase of validation, summed over the candidates this
    /// run validated (and so over workers).
    #[serde(default)]
    pub phases: PhaseTimes,
    /// Validation's test runs by how they ran: collected server, plain
    /// server, fresh interpreter (smith's pytest executor's runs only).
    #[serde(default)]
    pub runs: RunTimes,
    /// Wall seconds of each stage.
    #[serde(default)]
    pub stages: StageTimes,
}

/// Wall seconds of each stage of one invocation (0 for a stage that did
/// not run or whose output was reused).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StageTimes {
    /// The out dir, the repository's snapshot, the environment (built, or
    /// found in the cache) and the sandbox.
    pub environment: f64,
    /// The baseline's repetitions and the coverage map, side by side with
    /// two workers or more, and the environment gate.
    pub baseline_and_coverage: f64,
    /// Making the candidates (or reading `--candidates`) and sampling them.
    pub generate: f64,
    /// Validating them.
    pub validate: f64,
    /// Combining kept bugs and validating the combinations.
    pub combine: f64,
    /// Writing task instances, issue texts included.
    pub instances: f64,
}

impl StageTimes {
    /// The stages by name, in the order they run.
    pub fn named(&self) -> [(&'static str, f64); 6] {
        [
            ("environment", self.environment),
            ("baseline and coverage", self.baseline_and_coverage),
            ("generate", self.generate),
            ("validate", self.validate),
            ("combine", self.combine),
            ("instances", self.instances),
        ]
    }
}

/// Requests and tokens spent on a language model by the bug strategies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LmUsage {
    /// The model's name (empty when no model was used).
    pub model: String,
    /// Completions asked for (cached answers included).
    pub requests: u64,
    /// Of those, answered from a cache.
    pub cached: u64,
    /// Failed requests.
    pub failures: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// What the tokens cost at [`Config::lm_prices`](super::Config::lm_prices)
    /// (`None`: no prices).
    pub cost: Option<f64>,
    /// Per LM strategy, answers rejected before validation, by reason.
    pub rejected: BTreeMap<String, BTreeMap<String, usize>>,
}

/// The summary of `smith validate`, also written to `validate-summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidateSummary {
    /// `owner/name`.
    pub repo: String,
    /// Commit of the clean tree.
    pub base_commit: String,
    /// Candidates chosen for validation (after sampling and sharding).
    pub candidates: usize,
    /// Candidates validated by this invocation (the rest were done before).
    pub validated_now: usize,
    /// Candidates kept.
    pub kept: usize,
    /// kept / candidates.
    #[serde(rename = "yield")]
    pub yield_: f64,
    /// Verdict counts.
    pub verdicts: BTreeMap<String, usize>,
    /// Median FAIL_TO_PASS size of kept candidates.
    pub median_f2p: f64,
    /// Baseline: stable passing tests.
    pub baseline_passing: usize,
    /// Baseline: flaky tests.
    pub baseline_flaky: usize,
    /// Baseline: every test of the suite (passing, flaky or not passing).
    pub baseline_tests: usize,
    /// Baseline: share of the suite's tests passing on the clean tree.
    pub baseline_pass_rate: f64,
    /// Every warning of the invocation, in order.
    pub warnings: Vec<String>,
    /// Wall seconds of the whole invocation (environment, baseline and
    /// coverage map included, unless reused).
    pub seconds: f64,
    /// Wall seconds spent validating, per candidate validated now.
    pub seconds_per_candidate: f64,
    /// Test runs that went through fork servers.
    pub forked_runs: usize,
    /// The environment came from the cache (no install ran).
    #[serde(default)]
    pub env_reused: bool,
    /// Seconds per phase of validation, summed over the candidates
    /// validated now (and so over workers).
    #[serde(default)]
    pub phases: PhaseTimes,
    /// Validation's test runs by how they ran: collected server, plain
    /// server, fresh interpreter (smith's pytest executor's runs only).
    #[serde(default)]
    pub runs: RunTimes,
    /// Wall seconds of each stage.
    #[serde(default)]
    pub stages: StageTimes,
    /// With `--confirm`: share of kept candidates whose full-suite labels agree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm_agreement: Option<f64>,
    /// Where the validations are.
    pub validations_path: PathBuf,
    /// Task instances written for the kept candidates (all of them, earlier
    /// invocations' included).
    #[serde(default)]
    pub instances: usize,
    /// Where the task instances are.
    #[serde(default)]
    pub instances_path: PathBuf,
}

pub(super) fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// (passing tests, all tests, share passing) of a baseline.
pub(super) fn pass_rate(baseline: &Baseline) -> (usize, usize, f64) {
    let passing = baseline.passing.len();
    let total = passing + baseline.flaky.len() + baseline.other.len();
    (passing, total, passing as f64 / total.max(1) as f64)
}

/// What both summaries report of a set of validations: verdict counts,
/// the FAIL_TO_PASS size of each kept candidate, and with `--confirm` the
/// share of kept candidates whose full-suite labels agree.
pub(super) struct Tally {
    pub(super) verdicts: BTreeMap<String, usize>,
    pub(super) f2p: Vec<f64>,
    pub(super) confirm_agreement: Option<f64>,
}

pub(super) fn tally(validations: &[Validation]) -> Tally {
    let mut verdicts: BTreeMap<String, usize> = BTreeMap::new();
    let mut f2p = Vec::new();
    let (mut confirmed, mut agreed) = (0usize, 0usize);
    for v in validations {
        *verdicts.entry(v.verdict.label().to_string()).or_default() += 1;
        if let Verdict::Kept { fail_to_pass, .. } = &v.verdict {
            f2p.push(fail_to_pass.len() as f64);
            if let Some(ok) = v.confirmed {
                confirmed += 1;
                agreed += usize::from(ok);
            }
        }
    }
    Tally {
        verdicts,
        f2p,
        confirm_agreement: (confirmed > 0).then(|| agreed as f64 / confirmed as f64),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn summarize(
    p: &Prepared,
    shard: Shard,
    baseline: &Baseline,
    generated: &Generated,
    selected: &[Candidate],
    validations: &[Validation],
    instances: usize,
    leaked: usize,
    elapsed: Duration,
    seconds_per_candidate: f64,
    instances_path: PathBuf,
) -> Summary {
    let by_id: BTreeMap<&str, &Candidate> = selected.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut strategies: BTreeMap<String, StrategySummary> = BTreeMap::new();
    let mut lines = Vec::new();
    for v in validations {
        let s = strategies.entry(v.strategy.clone()).or_default();
        s.validated += 1;
        if v.verdict.is_kept() {
            s.kept += 1;
            if let Some(c) = by_id.get(v.candidate_id.as_str()) {
                lines.push(c.patch.changed_lines() as f64);
            }
        }
    }
    for s in strategies.values_mut() {
        s.yield_ = s.kept as f64 / s.validated.max(1) as f64;
    }
    let tally = tally(validations);
    let kept = tally.f2p.len();
    Summary {
        repo: p.repo.name.clone(),
        base_commit: p.repo.base_commit.clone(),
        candidates: generated
            .candidates
            .iter()
            .filter(|c| shard.contains(&c.id))
            .count(),
        validated: validations.len(),
        kept,
        yield_: kept as f64 / validations.len().max(1) as f64,
        strategies,
        verdicts: tally.verdicts,
        median_f2p: median(tally.f2p),
        median_changed_lines: median(lines),
        instances,
        leaked_statements: leaked,
        skipped_files: generated
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.path, s.reason))
            .collect(),
        baseline_passing: baseline.passing.len(),
        baseline_flaky: baseline.flaky.len(),
        baseline_tests: pass_rate(baseline).1,
        baseline_pass_rate: pass_rate(baseline).2,
        warnings: Vec::new(),
        lm: LmUsage::default(),
        seconds: elapsed.as_secs_f64(),
        seconds_per_candidate,
        confirm_agreement: tally.confirm_agreement,
        instances_path,
        env_reused: p.env.reused,
        phases: p.phases.times(),
        runs: p.run_times(),
        stages: StageTimes::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }
}
