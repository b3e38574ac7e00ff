//! The pipeline: repository → environment → baseline → candidates →
//! validations → task instances. Each stage reads and writes plain files in
//! the output directory, so a run that is killed resumes where it stopped.
//!
//! | file | written by | resumes by |
//! |---|---|---|
//! | `smith.lock` | [`Pipeline::prepare`] | held while a process writes the directory |
//! | `smith-run.json` | [`Pipeline::prepare`] | compared: another repository, commit or settings refuses to mix |
//! | `repo.json`, `env.json` | [`Pipeline::prepare`] | rebuilt (the environment is cached) |
//! | `baseline.json` | [`Pipeline::baseline`] | reused when its commit matches |
//! | `coverage.json` | [`Pipeline::coverage`] | reused when its commit matches |
//! | `candidates.jsonl` | [`Pipeline::mutate`] | regenerated (deterministic, written atomically) |
//! | `validations.jsonl` | [`Pipeline::validate`] | appended; done candidates are skipped |
//! | `instances.jsonl` | [`Pipeline::write_instances`] | appended; done instances are skipped |
//! | `summary.json` | [`Pipeline::run`] | rewritten |
//!
//! Records are read back deduplicated by id, so a line written twice never
//! counts twice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use smith_core::{
    Baseline, Candidate, Completion, CompletionParams, Error, Executor, FailingTest, IssueContext,
    IssueWriter, LanguageModel, Message, Mutator, Result, RunOptions, Sandbox, Shard, SourceFile,
    TaskInstance, TestId, Validation, Verdict,
};
use smith_env::Environment;
use smith_mutate::{GenerateOptions, Generated, LmStrategy};
use smith_validate::{
    CoverageMap, PhaseTimes, PytestExecutor, RunTimes, SelectionMode, ValidateOptions,
};

use crate::repo::{open_repo_checked, RepoInfo, RUN_RECORD};
use crate::store::{self, JsonlWriter, OutDirLock};

/// `coverage.json`: a coverage map and the commit it was made on.
#[derive(Debug, Serialize, Deserialize)]
struct CoverageRecord {
    base_commit: String,
    map: CoverageMap,
}

pub use crate::sandbox::SandboxKind;

/// Everything a run is configured by.
#[derive(Debug, Clone)]
pub struct Config {
    /// The repository to make tasks from.
    pub repo: PathBuf,
    /// Output directory.
    pub out: PathBuf,
    /// `owner/name` to record; default from the git remote or the directory name.
    pub repo_name: Option<String>,
    /// Where virtualenvs are cached; default the user's cache
    /// ([`smith_env::default_cache_dir`]: `$SMITH_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/smith`, else `~/.cache/smith`), shared by every
    /// output directory. Venvs there are keyed by what determines the
    /// install (packaging files' content, spec, installer), not by where
    /// the repository is; concurrent builds of one venv wait on a lock.
    pub cache_dir: Option<PathBuf>,
    /// Seed for every random choice.
    pub seed: u64,
    /// Only these strategies, by name or group (default: every mutator
    /// of the pipeline, then combining). Groups: `procedural` (every
    /// mutator: the built-in catalogue and any added), `combine`
    /// (`combine_file`, `combine_module`), `lm` (`lm_modify`,
    /// `lm_rewrite`). Single names: a mutator's name (`func_pm_*`),
    /// `combine_file`, `combine_module`, `lm_modify`, `lm_rewrite`,
    /// `pr_mirror`, `feature_add`. Unknown names are refused before any
    /// stage runs; see [`Pipeline::plan`].
    pub strategies: Option<Vec<String>>,
    /// LM strategies: at most this many entities are sent to the model,
    /// per strategy (chosen deterministically by seed).
    pub lm_entities: usize,
    /// `pr_mirror`: at most this many commits of the history, newest first.
    pub pr_mirror_commits: usize,
    /// `feature_add`: the features the model is asked to add, one session
    /// each.
    pub features: Vec<String>,
    /// Prices of the language model in currency units per 1,000 prompt and
    /// completion tokens, for the summary's cost (`None`: cost unknown).
    pub lm_prices: Option<(f64, f64)>,
    /// Validate at most this many candidates (chosen deterministically).
    pub max_candidates: Option<usize>,
    /// At most this many mutations per entity and strategy.
    pub max_per_entity: Option<usize>,
    /// Parallel validation workers.
    pub workers: usize,
    /// Baseline repetitions.
    pub baseline_runs: u32,
    /// Coverage-guided or whole-suite validation.
    pub selection: SelectionMode,
    /// Re-run kept candidates on the whole suite and compare labels.
    pub confirm: bool,
    /// Run tests through a fork server per workspace (pytest and the
    /// suite's dependencies imported once) instead of a fresh interpreter
    /// per run.
    pub fork: bool,
    /// Re-run each kept candidate's tests in a fresh interpreter when its
    /// labels came through a fork server, and keep the fresh run's verdict
    /// where they differ; see [`ValidateOptions::fresh_check`].
    pub fresh_check: bool,
    /// Smallest time limit of one validation run.
    pub timeout_floor: Duration,
    /// A run's time limit is the floor plus this factor times the baseline
    /// seconds of its selected tests (and start-up).
    pub timeout_factor: f64,
    /// Smallest time limit of one test's call (`None`: only the run's
    /// limit); see [`ValidateOptions::test_timeout_floor`].
    pub test_timeout_floor: Option<Duration>,
    /// This process's shard of the candidates.
    pub shard: Shard,
    /// Sandbox kind.
    pub sandbox: SandboxKind,
    /// Combine kept bugs of one file or package into multi-bug tasks.
    pub combine: bool,
    /// At most this many combinations per file (or package) and scope.
    pub combine_per_group: usize,
    /// When the output directory holds another run's records (another
    /// repository, commit or settings), remove them and start afresh
    /// instead of refusing.
    pub force: bool,
    /// The environment gate: the least share of the suite's tests that must
    /// pass on the clean tree (SWE-smith keeps repositories where 80% do);
    /// below it the run stops with an environment error. 0 turns it off.
    pub min_pass_rate: f64,
}

impl Config {
    /// Defaults for `repo` → `out`.
    pub fn new(repo: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Config {
            repo: repo.into(),
            out: out.into(),
            repo_name: None,
            cache_dir: None,
            seed: 0,
            strategies: None,
            lm_entities: 20,
            pr_mirror_commits: 200,
            features: Vec::new(),
            lm_prices: None,
            max_candidates: None,
            max_per_entity: None,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            baseline_runs: 3,
            selection: SelectionMode::default(),
            confirm: false,
            fork: true,
            fresh_check: ValidateOptions::default().fresh_check,
            timeout_floor: ValidateOptions::default().timeout_floor,
            timeout_factor: ValidateOptions::default().timeout_factor,
            test_timeout_floor: ValidateOptions::default().test_timeout_floor,
            shard: Shard::ALL,
            sandbox: SandboxKind::default(),
            combine: true,
            combine_per_group: 3,
            force: false,
            min_pass_rate: 0.8,
        }
    }
}

/// What the pipeline reports while it works. Libraries never print; the CLI
/// turns these into progress bars.
#[derive(Debug, Clone)]
pub enum Event {
    /// A stage started.
    Stage {
        /// Stage name.
        name: &'static str,
        /// What it is doing.
        detail: String,
    },
    /// Progress inside a stage.
    Progress {
        /// Stage name.
        stage: &'static str,
        /// Items done.
        done: usize,
        /// Items in all.
        total: usize,
        /// Candidates kept so far (validation only).
        kept: usize,
    },
    /// Something was skipped or looked wrong; the run goes on.
    Warning(String),
}

/// A ready environment: the repository, its Python environment and a sandbox.
#[derive(Debug)]
pub struct Prepared {
    /// The repository.
    pub repo: RepoInfo,
    /// Its Python environment.
    pub env: Environment,
    /// The sandbox that makes workspaces.
    pub sandbox: Arc<dyn Sandbox>,
    /// The test runner every candidate is validated with (smith's pytest
    /// executor unless the pipeline was given another).
    pub executor: Arc<dyn Executor>,
    /// The baseline's test runners: runs alternate between them.
    baseline_executors: Vec<Arc<dyn Executor>>,
    /// smith's pytest executor: it maps coverage and counts forked runs.
    pytest: PytestExecutor,
    /// Seconds per phase of the validations this process ran.
    phases: Arc<smith_validate::PhaseClock>,
    /// Those validations' test runs by how they ran (smith's pytest
    /// executor's only).
    validation_runs: Arc<Mutex<RunTimes>>,
    /// This process's hold on the output directory.
    _lock: OutDirLock,
}

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
    /// What the tokens cost at [`Config::lm_prices`] (`None`: no prices).
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

/// Turns the pipeline's sandbox or executor into another (a wrapper).
type Wrap<T> = Box<dyn Fn(Arc<T>) -> Arc<T> + Send + Sync>;

/// The pipeline over one repository.
///
/// Every plug point can be given as a trait object: mutators
/// ([`Pipeline::mutators`], [`Pipeline::add_mutator`]), the sandbox
/// ([`Pipeline::sandbox`], [`Pipeline::wrap_sandbox`]), the executor
/// ([`Pipeline::executor`], [`Pipeline::wrap_executor`]), the issue writer
/// and the language model. [`Pipeline::run`] — resume, sharding, sampling,
/// combining, the summary — works the same with any of them.
pub struct Pipeline {
    config: Config,
    on_event: Box<dyn Fn(&Event) + Send + Sync>,
    issue_writer: Arc<dyn IssueWriter>,
    mutators: Vec<Arc<dyn Mutator>>,
    sandbox: Option<Arc<dyn Sandbox>>,
    wrap_sandbox: Option<Wrap<dyn Sandbox>>,
    executor: Option<Arc<dyn Executor>>,
    wrap_executor: Option<Wrap<dyn Executor>>,
    language_model: Option<Arc<dyn LanguageModel>>,
    lm_usage: Arc<Mutex<LmUsage>>,
    /// Every warning emitted, for the summary.
    warnings: Mutex<Vec<String>>,
}

/// The stages a run's strategies select (see [`Config::strategies`]).
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
    fn uses_model(&self) -> bool {
        self.needs_model() || self.pr_mirror
    }
}

/// The strategy names beside mutators' own, for messages.
const STAGE_NAMES: &str = "procedural, combine, lm (groups); combine_file, combine_module, \
     lm_modify, lm_rewrite, pr_mirror, feature_add";

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.config)
            .finish()
    }
}

/// Statements an issue writer may write for one task before it is given up.
const ISSUE_ATTEMPTS: u32 = 5;

fn median(mut xs: Vec<f64>) -> f64 {
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

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl Pipeline {
    /// A pipeline with the offline template issue writer and no event sink.
    pub fn new(config: Config) -> Self {
        Pipeline {
            config,
            on_event: Box::new(|_| {}),
            issue_writer: Arc::new(smith_issue::TemplateWriter::new()),
            mutators: smith_mutate::procedural_mutators()
                .into_iter()
                .map(Arc::from)
                .collect(),
            sandbox: None,
            wrap_sandbox: None,
            executor: None,
            wrap_executor: None,
            language_model: None,
            lm_usage: Arc::default(),
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// Replace the mutator catalogue (by default smith's procedural
    /// mutators) with `mutators`.
    pub fn mutators(mut self, mutators: Vec<Arc<dyn Mutator>>) -> Self {
        self.mutators = mutators;
        self
    }

    /// Add `mutator` to the catalogue. Its name must differ from every
    /// other mutator's and from the stage names.
    pub fn add_mutator(mut self, mutator: impl Into<Arc<dyn Mutator>>) -> Self {
        self.mutators.push(mutator.into());
        self
    }

    /// The mutator catalogue.
    pub fn mutator_names(&self) -> Vec<&str> {
        self.mutators.iter().map(|m| m.name()).collect()
    }

    /// Make workspaces with `sandbox` instead of the one [`Config::sandbox`]
    /// picks. It must hold the repository's clean tree
    /// ([`Prepared::repo`]) with the environment's interpreter on `PATH`,
    /// as smith's sandboxes do; most users wrap smith's sandbox instead
    /// ([`Pipeline::wrap_sandbox`]).
    pub fn sandbox(mut self, sandbox: Arc<dyn Sandbox>) -> Self {
        self.sandbox = Some(sandbox);
        self
    }

    /// Wrap the sandbox the pipeline would use (smith's, or the one given to
    /// [`Pipeline::sandbox`]) in `wrap`'s: e.g. one that logs commands.
    pub fn wrap_sandbox(
        mut self,
        wrap: impl Fn(Arc<dyn Sandbox>) -> Arc<dyn Sandbox> + Send + Sync + 'static,
    ) -> Self {
        self.wrap_sandbox = Some(Box::new(wrap));
        self
    }

    /// Run every test with `executor` instead of smith's pytest executor
    /// (baseline and validation; the coverage map is still made by smith's
    /// pytest executor).
    pub fn executor(mut self, executor: Arc<dyn Executor>) -> Self {
        self.executor = Some(executor);
        self
    }

    /// Wrap each executor the pipeline runs tests with (smith's pytest
    /// executors, or the one given to [`Pipeline::executor`]) in `wrap`'s:
    /// e.g. one that counts runs. The baseline alternates between a forking
    /// and a fresh-interpreter executor; each is wrapped.
    pub fn wrap_executor(
        mut self,
        wrap: impl Fn(Arc<dyn Executor>) -> Arc<dyn Executor> + Send + Sync + 'static,
    ) -> Self {
        self.wrap_executor = Some(Box::new(wrap));
        self
    }

    /// The language model of the LM strategies (`lm_modify`, `lm_rewrite`,
    /// `feature_add`, and the fallback of `pr_mirror`).
    pub fn language_model(mut self, model: Arc<dyn LanguageModel>) -> Self {
        self.language_model = Some(Arc::new(Metered {
            inner: model,
            usage: self.lm_usage.clone(),
        }));
        self
    }

    /// The stages [`Config::strategies`] selects, or an
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
                    let name = raw.trim();
                    match name {
                        "procedural" => {
                            for n in &names {
                                if !plan.mutators.iter().any(|m| m == n) {
                                    plan.mutators.push(n.to_string());
                                }
                            }
                        }
                        "combine" => {
                            plan.combine_file = true;
                            plan.combine_module = true;
                        }
                        "combine_file" | "combine/file" => plan.combine_file = true,
                        "combine_module" | "combine/module" => plan.combine_module = true,
                        "lm" => {
                            plan.lm_modify = true;
                            plan.lm_rewrite = true;
                        }
                        "lm_modify" | "lm/modify" => plan.lm_modify = true,
                        "lm_rewrite" | "lm/rewrite" => plan.lm_rewrite = true,
                        "pr_mirror" => plan.pr_mirror = true,
                        "feature_add" => plan.feature_add = true,
                        n if names.contains(&n) => {
                            if !plan.mutators.iter().any(|m| m == n) {
                                plan.mutators.push(n.to_string());
                            }
                        }
                        other => {
                            return Err(Error::invalid(
                                "strategies",
                                format!(
                                    "`{other}` is not a strategy: one of {STAGE_NAMES}, or a mutator ({})",
                                    names.join(", ")
                                ),
                            ))
                        }
                    }
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

    /// Report events to `f`.
    pub fn on_event(mut self, f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.on_event = Box::new(f);
        self
    }

    /// Write problem statements with `writer`.
    pub fn issue_writer(mut self, writer: Arc<dyn IssueWriter>) -> Self {
        self.issue_writer = writer;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn emit(&self, event: Event) {
        if let Event::Warning(w) = &event {
            self.warnings
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(w.clone());
        }
        (self.on_event)(&event);
    }

    /// The warnings emitted so far.
    fn warnings(&self) -> Vec<String> {
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.config.out.join(name)
    }

    /// Take the output directory, open the repository, build (or reuse) its
    /// environment, make a sandbox.
    ///
    /// The output directory is locked for as long as the returned value
    /// lives, and must hold no records of another run (see
    /// [`Config::force`]).
    pub fn prepare(&self) -> Result<Prepared> {
        self.prepare_with(None)
    }

    /// [`Pipeline::prepare`], recording that candidates come from
    /// `candidates_file` (`None`: generated).
    fn prepare_with(&self, candidates_file: Option<&Path>) -> Result<Prepared> {
        let out = &self.config.out;
        let lock = OutDirLock::acquire(out)?;
        self.emit(Event::Stage {
            name: "repo",
            detail: self.config.repo.display().to_string(),
        });
        let repo = self.claim_out_dir(candidates_file)?;
        store::write_json(&self.path("repo.json"), &repo)?;
        self.emit(Event::Stage {
            name: "env",
            detail: "building the Python environment".into(),
        });
        let mut options = smith_env::EnvOptions::new(
            self.config
                .cache_dir
                .clone()
                .unwrap_or_else(smith_env::default_cache_dir),
        );
        // The collection check imports the project's code: it runs in the
        // sandbox every later stage uses.
        options.sandbox = self.config.sandbox.env_sandbox();
        let env = smith_env::build_environment(&repo.root, &options)?;
        store::write_json(
            &self.path("env.json"),
            &serde_json::json!({
                "spec": &env.spec,
                "venv": &env.venv,
                "pytest_version": &env.pytest_version,
                "generated": &env.generated,
                "reused": env.reused,
                "build_secs": env.build_secs(),
            }),
        )?;
        let chosen = self.config.sandbox.make_for(&env, &repo)?;
        if let Some(warning) = chosen.warning {
            self.emit(Event::Warning(warning));
        }
        let mut sandbox = self.sandbox.clone().unwrap_or(chosen.sandbox);
        if let Some(wrap) = &self.wrap_sandbox {
            sandbox = wrap(sandbox);
        }
        let pytest =
            PytestExecutor::new("python", env.spec.test_cmd.clone()).forking(self.config.fork);
        let wrap = |e: Arc<dyn Executor>| match &self.wrap_executor {
            Some(wrap) => wrap(e),
            None => e,
        };
        let (executor, baseline_executors) = match &self.executor {
            Some(custom) => (wrap(custom.clone()), vec![wrap(custom.clone())]),
            // With fork servers, baseline runs alternate between a forked
            // child and a fresh interpreter, so that a test the two treat
            // differently is flaky rather than a label (whole-suite runs
            // never use a collected server).
            None if pytest.is_forking() => (
                wrap(Arc::new(pytest.clone())),
                vec![
                    wrap(Arc::new(pytest.clone().collected(false))),
                    wrap(Arc::new(pytest.plain())),
                ],
            ),
            None => (
                wrap(Arc::new(pytest.clone())),
                vec![wrap(Arc::new(pytest.clone()))],
            ),
        };
        Ok(Prepared {
            repo,
            env,
            sandbox,
            executor,
            baseline_executors,
            pytest,
            phases: Arc::default(),
            validation_runs: Arc::default(),
            _lock: lock,
        })
    }

    /// The settings that shape a run's records, by option name: records
    /// made with other values must not be mixed with this run's. Workers,
    /// the sample size and caches are left out (they change how much is
    /// done, or how fast, not what a record says).
    fn settings(&self, candidates_file: Option<&Path>) -> BTreeMap<String, serde_json::Value> {
        let c = &self.config;
        let uses_model = self.plan().is_ok_and(|p| p.uses_model()) && candidates_file.is_none();
        let lm_model = self
            .language_model
            .as_ref()
            .filter(|_| uses_model)
            .map(|m| m.model().to_string());
        let lm_entities = uses_model.then_some(c.lm_entities);
        let secs = |d: Duration| serde_json::json!(d.as_secs_f64());
        let lower = |d: &dyn std::fmt::Debug| format!("{d:?}").to_lowercase();
        let candidates = candidates_file.map_or_else(
            || "generated".to_string(),
            |f| {
                f.canonicalize()
                    .unwrap_or_else(|_| f.to_path_buf())
                    .display()
                    .to_string()
            },
        );
        [
            ("repo_name", serde_json::json!(c.repo_name)),
            ("seed", serde_json::json!(c.seed)),
            ("strategies", serde_json::json!(c.strategies)),
            ("max_per_entity", serde_json::json!(c.max_per_entity)),
            ("candidates", serde_json::json!(candidates)),
            ("shard", serde_json::json!(c.shard.to_string())),
            ("baseline_runs", serde_json::json!(c.baseline_runs)),
            ("selection", serde_json::json!(lower(&c.selection))),
            ("confirm", serde_json::json!(c.confirm)),
            ("fresh_check", serde_json::json!(c.fresh_check)),
            ("fork", serde_json::json!(c.fork)),
            ("timeout_floor", secs(c.timeout_floor)),
            ("timeout_factor", serde_json::json!(c.timeout_factor)),
            (
                "test_timeout_floor",
                serde_json::json!(c.test_timeout_floor.map(|d| d.as_secs_f64())),
            ),
            ("sandbox", serde_json::json!(lower(&c.sandbox))),
            ("combine", serde_json::json!(c.combine)),
            ("combine_per_group", serde_json::json!(c.combine_per_group)),
            ("issue_writer", serde_json::json!(self.issue_writer.name())),
            ("lm_model", serde_json::json!(lm_model)),
            ("lm_entities", serde_json::json!(lm_entities)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Open the repository into the output directory, which must hold no
    /// records of another run: its `smith-run.json` (or, for a directory
    /// written before there was one, its `repo.json`) must name the same
    /// repository, commit and settings. With [`Config::force`] another
    /// run's records are removed instead. Writes this run's
    /// `smith-run.json`.
    fn claim_out_dir(&self, candidates_file: Option<&Path>) -> Result<RepoInfo> {
        let out = &self.config.out;
        let record_path = self.path(RUN_RECORD);
        let settings = self.settings(candidates_file);
        let previous = store::read_json::<RunRecord>(&record_path)?;
        let earlier_repo = match &previous {
            Some(r) => Some((r.repo.clone(), r.base_commit.clone())),
            None => store::read_json::<RepoInfo>(&self.path("repo.json"))?
                .map(|r| (r.name, r.base_commit)),
        };
        let mut differences: Vec<String> = Vec::new();
        if let Some(previous) = &previous {
            for (key, value) in &settings {
                let before = previous
                    .settings
                    .get(key)
                    .unwrap_or(&serde_json::Value::Null);
                if before != value {
                    differences.push(format!("{key} {before} → {value}"));
                }
            }
        }
        // Settings are compared before the repository is copied: a refusal
        // costs nothing.
        if !differences.is_empty() && !self.config.force {
            return Err(mixing_refused(out, &differences));
        }
        let mut changed_repo = Vec::new();
        let repo = open_repo_checked(
            &self.config.repo,
            self.config.repo_name.as_deref(),
            out,
            |repo| {
                if let Some((name, commit)) = &earlier_repo {
                    if *name != repo.name {
                        changed_repo.push(format!("repository {name} → {}", repo.name));
                    }
                    if *commit != repo.base_commit {
                        changed_repo.push(format!(
                            "base commit {} → {}",
                            short(commit),
                            short(&repo.base_commit)
                        ));
                    }
                }
                if changed_repo.is_empty() || self.config.force {
                    Ok(())
                } else {
                    let mut all = changed_repo.clone();
                    all.extend(differences.iter().cloned());
                    Err(mixing_refused(out, &all))
                }
            },
        )?;
        differences.extend(changed_repo);
        if !differences.is_empty() {
            // Forced: the other run's records go; the repository copy was
            // already replaced, caches stay.
            for name in RECORD_FILES {
                let path = self.path(name);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(&path, e)),
                }
            }
            self.emit(Event::Warning(format!(
                "started {} afresh (--force): {}",
                out.display(),
                differences.join(", ")
            )));
        }
        let record = RunRecord {
            repo_path: self
                .config
                .repo
                .canonicalize()
                .unwrap_or_else(|_| self.config.repo.clone()),
            repo: repo.name.clone(),
            base_commit: repo.base_commit.clone(),
            smith: env!("CARGO_PKG_VERSION").to_string(),
            settings,
        };
        store::write_json(&record_path, &record)?;
        Ok(repo)
    }

    /// The environment gate: refuse to go on when too few of the suite's
    /// tests pass on the clean tree ([`Config::min_pass_rate`]); what does
    /// pass would make a few, skewed tasks of a broken environment.
    fn check_environment(&self, p: &Prepared, baseline: &Baseline) -> Result<()> {
        let (passing, total, rate) = pass_rate(baseline);
        if rate >= self.config.min_pass_rate {
            return Ok(());
        }
        Err(Error::Environment {
            path: p.repo.root.clone(),
            reason: format!(
                "only {passing} of {total} tests ({:.0}%) pass on the clean tree, below the minimum of {:.0}%: \
                 the environment probably lacks dependencies, services or data the tests need \
                 (baseline.json lists the tests that do not pass); lower the minimum \
                 (--min-pass-rate 0 turns the check off) to make tasks from this environment anyway",
                100.0 * rate,
                100.0 * self.config.min_pass_rate
            ),
        })
    }

    /// Run the suite `baseline_runs` times (at least twice) on the clean
    /// tree, or reuse `baseline.json` made for the same commit under as
    /// many distinct hash seeds.
    pub fn baseline(&self, p: &Prepared) -> Result<Baseline> {
        let path = self.path("baseline.json");
        let runs = self.config.baseline_runs.max(2);
        if let Some(b) = store::read_json::<Baseline>(&path)? {
            if b.base_commit == p.repo.base_commit && b.runs >= runs && b.hash_seeds.len() >= 2 {
                return Ok(b);
            }
        }
        self.emit(Event::Stage {
            name: "baseline",
            detail: format!("running the whole suite {runs} times"),
        });
        let mut ws = p.sandbox.workspace()?;
        // Runs alternate between the baseline's executors (see
        // `prepare`). At least two runs, each under its own hash seed:
        // tests whose ids or outcomes depend on hash order are flaky too.
        let executors: Vec<&dyn Executor> =
            p.baseline_executors.iter().map(|e| e.as_ref()).collect();
        let baseline = smith_validate::run_baseline_with(
            ws.as_mut(),
            &executors,
            runs,
            &p.repo.name,
            &p.repo.base_commit,
            &RunOptions::default(),
        )?;
        if baseline.passing.is_empty() {
            return Err(Error::Environment {
                path: p.repo.root.clone(),
                reason: "no test passes on the clean tree; nothing can be validated".into(),
            });
        }
        store::write_json(&path, &baseline)?;
        Ok(baseline)
    }

    /// Map lines to the tests that execute them, or reuse `coverage.json`
    /// made for the same commit (by this version of the map's format).
    /// A map that cannot be built is not an error: validation runs the
    /// whole suite for every candidate, after one [`Event::Warning`]
    /// (nothing is written, so a resumed run tries again).
    pub fn coverage(&self, p: &Prepared) -> Result<Option<CoverageMap>> {
        if self.config.selection == SelectionMode::Full {
            return Ok(None);
        }
        let path = self.path("coverage.json");
        if let Some(c) = store::read_json::<CoverageRecord>(&path)? {
            if c.base_commit == p.repo.base_commit && c.map.format == CoverageMap::FORMAT {
                return Ok(Some(c.map));
            }
        }
        self.emit(Event::Stage {
            name: "coverage",
            detail: "one suite run under coverage".into(),
        });
        let mut ws = p.sandbox.workspace()?;
        let map = match CoverageMap::collect(ws.as_mut(), &p.pytest, &RunOptions::default()) {
            Ok(map) => map,
            Err(e) => {
                self.emit(Event::Warning(format!(
                    "no coverage map, every candidate runs the whole suite: {e}"
                )));
                return Ok(None);
            }
        };
        if !map.subprocesses && !map.spawners.is_empty() {
            self.emit(Event::Warning(format!(
                "processes the tests start are not measured (no coverage.py at their start?): \
                 the tests of {} context(s) that start them run for every candidate",
                map.spawners.len()
            )));
        }
        let record = CoverageRecord {
            base_commit: p.repo.base_commit.clone(),
            map,
        };
        store::write_json(&path, &record)?;
        Ok(Some(record.map))
    }

    /// Generate every candidate of the selected strategies and write this
    /// shard's to `candidates.jsonl`. `feature_add` needs a baseline: it
    /// runs only in [`Pipeline::run`].
    pub fn mutate(&self, p: &Prepared) -> Result<Generated> {
        let plan = self.plan()?;
        self.mutate_planned(p, &plan, None)
    }

    fn mutate_planned(
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
            generated = smith_mutate::generate(
                &repo.root,
                &repo.name,
                &repo.base_commit,
                &files,
                &mutators,
                &options,
            )?;
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

    /// `lm_modify` / `lm_rewrite`: up to [`Config::lm_entities`] entities,
    /// chosen by seed, each sent to the model once.
    fn lm_stage(&self, repo: &RepoInfo, strategy: LmStrategy, out: &mut Generated) -> Result<()> {
        let model = self
            .language_model
            .as_deref()
            .ok_or_else(|| Error::invalid("strategies", "LM strategies need a language model"))?;
        let stage = strategy.name().replace('/', "_");
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
        self.emit(Event::Stage {
            name: "lm",
            detail: format!("{stage}: {} entities to {}", sites.len(), model.model()),
        });
        let prompts = smith_mutate::Prompts::default();
        let params = CompletionParams {
            seed: Some(self.config.seed),
            ..CompletionParams::default()
        };
        let request = smith_mutate::LmRequest {
            repo: &repo.name,
            base_commit: &repo.base_commit,
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
        let stats = out.stats.entry(strategy.name().to_string()).or_default();
        stats.proposed += lm_stats.asked;
        for (reason, n) in &lm_stats.rejected {
            match reason {
                smith_mutate::Rejection::Unparsable => stats.unparsable += n,
                smith_mutate::Rejection::Unchanged => stats.unchanged += n,
                _ => stats.invalid_edit += n,
            }
        }
        {
            let mut usage = self.lm_usage.lock().unwrap_or_else(|e| e.into_inner());
            let rejected = usage.rejected.entry(stage.clone()).or_default();
            for (reason, n) in &lm_stats.rejected {
                *rejected.entry(reason.label().to_string()).or_default() += n;
            }
        }
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
        let options = smith_mutate::MirrorOptions::new(&repo.name, &repo.base_commit);
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

    /// `feature_add`: one agent session per [`Config::features`] entry, on a
    /// fresh workspace; a session that breaks tests is a candidate.
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
        let options = smith_mutate::FeatureAddOptions::new(&p.repo.name, &p.repo.base_commit);
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
    fn validate_judged(
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
        let options = ValidateOptions {
            workers: self.config.workers.max(1),
            selection: self.config.selection,
            confirm: self.config.confirm,
            fresh_check: self.config.fresh_check,
            timeout_floor: self.config.timeout_floor,
            timeout_factor: self.config.timeout_factor,
            test_timeout_floor: self.config.test_timeout_floor,
            ..Default::default()
        };
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

    fn combine_planned(
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
            let Verdict::Kept {
                fail_to_pass,
                pass_to_pass,
            } = &v.verdict
            else {
                continue;
            };
            let context = IssueContext {
                candidate: (*candidate).clone(),
                failing: fail_to_pass
                    .iter()
                    .map(|t| FailingTest {
                        id: t.clone(),
                        source: smith_issue::test_source(&p.repo.root, t),
                        output: smith_issue::test_failure(&v.log, t).unwrap_or_default(),
                    })
                    .collect(),
                original_code: original_code(&p.repo.root, candidate),
                seed: self.config.seed ^ smith_core::stable_hash(&[candidate.id.as_bytes()]) as u64,
            };
            let checked = match smith_issue::write_checked(
                self.issue_writer.as_ref(),
                &context,
                ISSUE_ATTEMPTS,
            ) {
                Ok(checked) => checked,
                // Every statement leaked the fix: no task is better than a spoiled one.
                Err(Error::Issue { reason, .. }) => {
                    leaked += ISSUE_ATTEMPTS as usize;
                    self.emit(Event::Warning(format!(
                        "no instance for {}: {reason}",
                        candidate.id
                    )));
                    continue;
                }
                Err(e) => return Err(e),
            };
            leaked += checked.leaked as usize;
            let mut instance = TaskInstance::new(
                candidate,
                fail_to_pass.iter().cloned().collect::<Vec<TestId>>(),
                pass_to_pass.iter().cloned().collect::<Vec<TestId>>(),
                checked.statement,
                image.clone(),
                now_rfc3339(),
            );
            if let Some(version) = &p.env.pytest_version {
                instance.test_runner = format!("pytest {version}");
            }
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

    /// Validation on its own (`smith validate`): environment, baseline,
    /// coverage map, then the candidates of `candidates_file` (JSONL as
    /// `smith mutate` writes it; `None`: generate them as `smith run` does),
    /// sampled by `max_candidates` and `seed` and cut to this shard.
    /// Resumable like [`Pipeline::run`]: `validations.jsonl` is appended and
    /// done candidates are skipped.
    pub fn validate_candidates(&self, candidates_file: Option<&Path>) -> Result<ValidateSummary> {
        let started = Instant::now();
        // A bad candidates file fails before any test runs.
        let from_file = match candidates_file {
            Some(path) if !path.is_file() => {
                return Err(Error::invalid(
                    "--candidates",
                    format!("{} is not a file", path.display()),
                ))
            }
            Some(path) => Some(store::read_jsonl::<Candidate>(path)?),
            None => None,
        };
        // Unknown strategies fail before any stage runs.
        let plan = match from_file {
            Some(_) => None,
            None => Some(self.plan()?),
        };
        let p = self.prepare_with(candidates_file)?;
        let baseline = self.baseline(&p)?;
        self.check_environment(&p, &baseline)?;
        let coverage = self.coverage(&p)?;
        let all = match from_file {
            Some(candidates) => candidates,
            None => {
                let plan = plan.as_ref().expect("planned above");
                self.mutate_planned(&p, plan, Some(&baseline))?.candidates
            }
        };
        let selected: Vec<Candidate> = self
            .select_candidates(&all)
            .into_iter()
            .filter(|c| self.config.shard.contains(&c.id))
            .collect();
        let (validations, secs, validated_now) =
            self.validate(&p, &baseline, coverage.as_ref(), &selected)?;
        // Kept candidates become task instances, as in `run`.
        let (instances, _) = self.write_instances(&p, &selected, &validations)?;
        let tally = tally(&validations);
        let kept = tally.f2p.len();
        let summary = ValidateSummary {
            repo: p.repo.name.clone(),
            base_commit: p.repo.base_commit.clone(),
            candidates: selected.len(),
            validated_now,
            kept,
            yield_: kept as f64 / validations.len().max(1) as f64,
            verdicts: tally.verdicts,
            median_f2p: median(tally.f2p),
            baseline_passing: baseline.passing.len(),
            baseline_flaky: baseline.flaky.len(),
            baseline_tests: pass_rate(&baseline).1,
            baseline_pass_rate: pass_rate(&baseline).2,
            warnings: self.warnings(),
            seconds: started.elapsed().as_secs_f64(),
            seconds_per_candidate: secs / validated_now.max(1) as f64,
            forked_runs: p.pytest.served_runs(),
            env_reused: p.env.reused,
            phases: p.phases.times(),
            runs: p
                .validation_runs
                .lock()
                .map(|r| r.clone())
                .unwrap_or_default(),
            confirm_agreement: tally.confirm_agreement,
            validations_path: self.path("validations.jsonl"),
            instances: instances.len(),
            instances_path: self.path("instances.jsonl"),
        };
        store::write_json(&self.path("validate-summary.json"), &summary)?;
        Ok(summary)
    }

    /// The whole pipeline.
    pub fn run(&self) -> Result<Summary> {
        let started = Instant::now();
        // Unknown strategies fail before any stage runs.
        let plan = self.plan()?;
        let p = self.prepare()?;
        let baseline = self.baseline(&p)?;
        self.check_environment(&p, &baseline)?;
        let coverage = self.coverage(&p)?;
        let generated = self.mutate_planned(&p, &plan, Some(&baseline))?;
        let selected: Vec<Candidate> = self
            .select_candidates(&generated.candidates)
            .into_iter()
            .filter(|c| self.config.shard.contains(&c.id))
            .collect();
        let (mut validations, secs, validated_now) =
            self.validate(&p, &baseline, coverage.as_ref(), &selected)?;
        let mut selected = selected;
        let combining = plan.combine_file || plan.combine_module;
        if combining && self.config.shard.count > 1 {
            self.emit(Event::Warning(
                "combining needs every kept bug at once: skipped in a sharded run".into(),
            ));
        } else if combining {
            let (combined, combined_validations) = self.combine_planned(
                &p,
                &baseline,
                coverage.as_ref(),
                &selected,
                &validations,
                &plan,
            )?;
            selected.extend(combined);
            validations.extend(combined_validations);
        }
        let (instances, leaked) = self.write_instances(&p, &selected, &validations)?;
        let summary = summarize(
            &p,
            self.config.shard,
            &baseline,
            &generated,
            &selected,
            &validations,
            instances.len(),
            leaked,
            started.elapsed(),
            secs / validated_now.max(1) as f64,
            self.path("instances.jsonl"),
        );
        let summary = Summary {
            warnings: self.warnings(),
            lm: self.lm_usage(),
            ..summary
        };
        store::write_json(&self.path("summary.json"), &summary)?;
        Ok(summary)
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

/// A language model whose requests and tokens are counted.
#[derive(Debug)]
struct Metered {
    inner: Arc<dyn LanguageModel>,
    usage: Arc<Mutex<LmUsage>>,
}

impl LanguageModel for Metered {
    fn model(&self) -> &str {
        self.inner.model()
    }

    fn complete(&self, messages: &[Message], params: &CompletionParams) -> Result<Completion> {
        let result = self.inner.complete(messages, params);
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        usage.requests += 1;
        match &result {
            Ok(c) => {
                usage.cached += u64::from(c.cached);
                usage.prompt_tokens += c.prompt_tokens;
                usage.completion_tokens += c.completion_tokens;
            }
            Err(_) => usage.failures += 1,
        }
        result
    }
}

/// `smith-run.json`: what made the records of an output directory. A run
/// with another repository, commit or settings refuses to add to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The repository as it was given (canonical path).
    pub repo_path: PathBuf,
    /// `owner/name`.
    pub repo: String,
    /// Commit of the clean tree.
    pub base_commit: String,
    /// The smith version that wrote the record.
    pub smith: String,
    /// The settings that shape the records, by option name.
    pub settings: BTreeMap<String, serde_json::Value>,
}

/// The records of a run in its output directory: what `force` removes.
/// Caches (an `.env-cache` given as `--cache-dir`, `lm-cache`) stay.
const RECORD_FILES: &[&str] = &[
    RUN_RECORD,
    "repo.json",
    "env.json",
    "baseline.json",
    "coverage.json",
    "candidates.jsonl",
    "combined.jsonl",
    "validations.jsonl",
    "instances.jsonl",
    "summary.json",
    "validate-summary.json",
];

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

fn mixing_refused(out: &Path, differences: &[String]) -> Error {
    Error::invalid(
        out.display().to_string(),
        format!(
            "holds the records of another run ({}); run again with --force to remove them and start afresh, or choose another output directory",
            differences.join(", ")
        ),
    )
}

/// (passing tests, all tests, share passing) of a baseline.
fn pass_rate(baseline: &Baseline) -> (usize, usize, f64) {
    let passing = baseline.passing.len();
    let total = passing + baseline.flaky.len() + baseline.other.len();
    (passing, total, passing as f64 / total.max(1) as f64)
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

/// What both summaries report of a set of validations: verdict counts,
/// the FAIL_TO_PASS size of each kept candidate, and with `--confirm` the
/// share of kept candidates whose full-suite labels agree.
struct Tally {
    verdicts: BTreeMap<String, usize>,
    f2p: Vec<f64>,
    confirm_agreement: Option<f64>,
}

fn tally(validations: &[Validation]) -> Tally {
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
fn summarize(
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
        runs: p
            .validation_runs
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default(),
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

    #[test]
    fn selection_is_deterministic_and_covers_strategies() {
        let mk = |s: &str, n: usize| {
            (0..n)
                .map(|i| {
                    Candidate::new(
                        "o/r",
                        "c",
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
