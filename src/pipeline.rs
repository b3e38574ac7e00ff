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
    Baseline, Candidate, Error, FailingTest, IssueContext, IssueWriter, Result, RunOptions,
    Sandbox, Shard, SourceFile, TaskInstance, TestId, Validation, Verdict,
};
use smith_env::Environment;
use smith_mutate::{GenerateOptions, Generated};
use smith_validate::{CoverageMap, PytestExecutor, SelectionMode, ValidateOptions};

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
    /// Where virtualenvs are cached; default `<out>/.env-cache`.
    pub cache_dir: Option<PathBuf>,
    /// Seed for every random choice.
    pub seed: u64,
    /// Only these strategies (default: all procedural ones).
    pub strategies: Option<Vec<String>>,
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
    /// The test runner.
    pub executor: PytestExecutor,
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
    /// Where the task instances are.
    pub instances_path: PathBuf,
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
    /// With `--confirm`: share of kept candidates whose full-suite labels agree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm_agreement: Option<f64>,
    /// Where the validations are.
    pub validations_path: PathBuf,
}

/// The pipeline over one repository.
pub struct Pipeline {
    config: Config,
    on_event: Box<dyn Fn(&Event) + Send + Sync>,
    issue_writer: Arc<dyn IssueWriter>,
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
            warnings: Mutex::new(Vec::new()),
        }
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
                .unwrap_or_else(|| out.join(".env-cache")),
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
            }),
        )?;
        let chosen = self.config.sandbox.make_for(&env, &repo)?;
        if let Some(warning) = chosen.warning {
            self.emit(Event::Warning(warning));
        }
        let sandbox = chosen.sandbox;
        let executor =
            PytestExecutor::new("python", env.spec.test_cmd.clone()).forking(self.config.fork);
        Ok(Prepared {
            repo,
            env,
            sandbox,
            executor,
            _lock: lock,
        })
    }

    /// The settings that shape a run's records, by option name: records
    /// made with other values must not be mixed with this run's. Workers,
    /// the sample size and caches are left out (they change how much is
    /// done, or how fast, not what a record says).
    fn settings(&self, candidates_file: Option<&Path>) -> BTreeMap<String, serde_json::Value> {
        let c = &self.config;
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
        // With fork servers, runs alternate between a forked child and a
        // fresh interpreter, so that a test the two treat differently is
        // flaky rather than a label (whole-suite runs never use a collected
        // server). At least two runs, each under its own hash seed: tests
        // whose ids or outcomes depend on hash order are flaky too.
        let plain = p.executor.plain();
        let forking = p.executor.clone().collected(false);
        let executors: Vec<&dyn smith_core::Executor> = if p.executor.is_forking() {
            vec![&forking, &plain]
        } else {
            vec![&p.executor]
        };
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
        let map = match CoverageMap::collect(ws.as_mut(), &p.executor, &RunOptions::default()) {
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

    /// Generate every candidate and write this shard's to `candidates.jsonl`.
    pub fn mutate(&self, p: &Prepared) -> Result<Generated> {
        self.emit(Event::Stage {
            name: "mutate",
            detail: "procedural bugs".into(),
        });
        let files =
            smith_mutate::python_files(&p.repo.root, &smith_mutate::FileOptions::default())?;
        let mutators = smith_mutate::procedural_mutators();
        let options = GenerateOptions {
            seed: self.config.seed,
            strategies: self.config.strategies.clone(),
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
        let generated = smith_mutate::generate(
            &p.repo.root,
            &p.repo.name,
            &p.repo.base_commit,
            &files,
            &mutators,
            &options,
        )?;
        for s in &generated.skipped {
            self.emit(Event::Warning(format!("skipped {}: {}", s.path, s.reason)));
        }
        let mine: Vec<&Candidate> = generated
            .candidates
            .iter()
            .filter(|c| self.config.shard.contains(&c.id))
            .collect();
        store::write_jsonl(&self.path("candidates.jsonl"), &mine)?;
        Ok(generated)
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
        smith_validate::validate(
            p.sandbox.as_ref(),
            &p.executor,
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
        )?;
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
        for scope in [
            smith_mutate::CombineScope::File,
            smith_mutate::CombineScope::Module,
        ] {
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
                        output: smith_issue::failure_excerpt(&v.log, t).unwrap_or_default(),
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
        let p = self.prepare_with(candidates_file)?;
        let baseline = self.baseline(&p)?;
        self.check_environment(&p, &baseline)?;
        let coverage = self.coverage(&p)?;
        let all = match from_file {
            Some(candidates) => candidates,
            None => self.mutate(&p)?.candidates,
        };
        let selected: Vec<Candidate> = self
            .select_candidates(&all)
            .into_iter()
            .filter(|c| self.config.shard.contains(&c.id))
            .collect();
        let (validations, secs, validated_now) =
            self.validate(&p, &baseline, coverage.as_ref(), &selected)?;
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
            forked_runs: p.executor.served_runs(),
            confirm_agreement: tally.confirm_agreement,
            validations_path: self.path("validations.jsonl"),
        };
        store::write_json(&self.path("validate-summary.json"), &summary)?;
        Ok(summary)
    }

    /// The whole pipeline.
    pub fn run(&self) -> Result<Summary> {
        let started = Instant::now();
        let p = self.prepare()?;
        let baseline = self.baseline(&p)?;
        self.check_environment(&p, &baseline)?;
        let coverage = self.coverage(&p)?;
        let generated = self.mutate(&p)?;
        let selected: Vec<Candidate> = self
            .select_candidates(&generated.candidates)
            .into_iter()
            .filter(|c| self.config.shard.contains(&c.id))
            .collect();
        let (mut validations, secs, validated_now) =
            self.validate(&p, &baseline, coverage.as_ref(), &selected)?;
        let mut selected = selected;
        if self.config.combine && self.config.shard.count > 1 {
            self.emit(Event::Warning(
                "combining needs every kept bug at once: skipped in a sharded run".into(),
            ));
        } else if self.config.combine {
            let (combined, combined_validations) =
                self.combine(&p, &baseline, coverage.as_ref(), &selected, &validations)?;
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
            ..summary
        };
        store::write_json(&self.path("summary.json"), &summary)?;
        Ok(summary)
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
/// Caches (`.env-cache`, `lm-cache`) stay.
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
        seconds: elapsed.as_secs_f64(),
        seconds_per_candidate,
        confirm_agreement: tally.confirm_agreement,
        instances_path,
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
