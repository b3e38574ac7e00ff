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
//!
//! One file per stage: `config` (options and defaults), `plan` (which
//! stages the strategies select), `prepare` (output directory, environment,
//! baseline, coverage map, environment gate), `generate` (mutators, LM
//! strategies, PR mirroring, feature adding, candidate selection),
//! `validate`, `combine`, `instances` (problem statements) and `summary`;
//! this module holds the [`Pipeline`] itself, its plug points and the
//! runs that chain the stages ([`Pipeline::run`],
//! [`Pipeline::validate_candidates`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use smith_core::{
    Candidate, Completion, CompletionParams, Error, Executor, IssueWriter, LanguageModel, Message,
    Mutator, Result, Sandbox,
};
use smith_env::Environment;
use smith_validate::{PytestExecutor, RunTimes};

use crate::repo::RepoInfo;
use crate::store::{self, OutDirLock};

mod combine;
mod config;
mod generate;
mod instances;
mod plan;
mod prepare;
mod summary;
mod validate;

pub use config::Config;
pub use plan::Plan;
pub use prepare::RunRecord;
pub use summary::{LmUsage, StageTimes, StrategySummary, Summary, ValidateSummary};

pub use crate::sandbox::SandboxKind;

use summary::{median, pass_rate, summarize, tally};

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

impl Prepared {
    /// The validations' test runs so far, by how they ran.
    fn run_times(&self) -> RunTimes {
        self.validation_runs
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }
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

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.config)
            .finish()
    }
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
        let mut stages = StageTimes::default();
        let mut clock = Instant::now();
        let mut lap = |stage: &mut f64| {
            *stage = clock.elapsed().as_secs_f64();
            clock = Instant::now();
        };
        let p = self.prepare_with(candidates_file)?;
        lap(&mut stages.environment);
        let (baseline, coverage) = self.baseline_and_coverage(&p)?;
        lap(&mut stages.baseline_and_coverage);
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
        lap(&mut stages.generate);
        let (validations, secs, validated_now) =
            self.validate(&p, &baseline, coverage.as_ref(), &selected)?;
        lap(&mut stages.validate);
        // Kept candidates become task instances, as in `run`.
        let (instances, _) = self.write_instances(&p, &selected, &validations)?;
        lap(&mut stages.instances);
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
            runs: p.run_times(),
            stages,
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
        let mut stages = StageTimes::default();
        let mut clock = Instant::now();
        let mut lap = |stage: &mut f64| {
            *stage = clock.elapsed().as_secs_f64();
            clock = Instant::now();
        };
        let p = self.prepare()?;
        lap(&mut stages.environment);
        let (baseline, coverage) = self.baseline_and_coverage(&p)?;
        lap(&mut stages.baseline_and_coverage);
        let generated = self.mutate_planned(&p, &plan, Some(&baseline))?;
        let selected: Vec<Candidate> = self
            .select_candidates(&generated.candidates)
            .into_iter()
            .filter(|c| self.config.shard.contains(&c.id))
            .collect();
        lap(&mut stages.generate);
        let (mut validations, secs, validated_now) =
            self.validate(&p, &baseline, coverage.as_ref(), &selected)?;
        lap(&mut stages.validate);
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
        lap(&mut stages.combine);
        let (instances, leaked) = self.write_instances(&p, &selected, &validations)?;
        lap(&mut stages.instances);
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
            stages,
            ..summary
        };
        store::write_json(&self.path("summary.json"), &summary)?;
        Ok(summary)
    }
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
