//! The `smith` command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use smith::pipeline::{Config, Event, Pipeline, SandboxKind, Summary};
use smith::validate::SelectionMode;
use smith::{Candidate, Error, Shard};

/// Exit codes that mean something to scripts.
mod exit {
    /// Bad input: missing path, not a Python project, bad record or option,
    /// an output directory in use or holding another run's records.
    pub(crate) const INPUT: u8 = 3;
    /// The Python environment could not be built, its tests not collected,
    /// too few of them pass on the clean tree, or the disk is full.
    pub(crate) const ENVIRONMENT: u8 = 4;
    /// Anything else.
    pub(crate) const FAILURE: u8 = 1;
}

#[derive(Parser, Debug)]
#[command(
    name = "smith",
    version,
    about = "Turn Python repositories into validated bug-fix training tasks."
)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole pipeline: environment, baseline, mutate, validate, issues.
    Run(RunArgs),
    /// Validate candidates (from `smith mutate`, or generated) and report
    /// which break tests: environment, baseline, coverage map, validation.
    Validate(ValidateArgs),
    /// Detect and build a repository's Python environment and print its spec.
    Env(EnvArgs),
    /// Generate bug candidates (no tests are run).
    Mutate(MutateArgs),
    /// Grade model predictions (SWE-bench format) against task instances.
    Grade(GradeArgs),
    /// Export task instances as a git mirror (SWE-smith layout).
    Export(ExportArgs),
    /// Run a language model as an agent on task instances, grade every
    /// attempt, and keep the resolved ones as fine-tuning data.
    Rollout(RolloutArgs),
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// `owner/name` to record in tasks (default: git remote or `local/<dir>`).
    #[arg(long)]
    repo_name: Option<String>,
    /// Seed for every random choice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Only these strategies (comma-separated): groups `procedural`,
    /// `combine`, `lm`, or single names (`func_pm_*`, `combine_file`,
    /// `combine_module`, `lm_modify`, `lm_rewrite`, `pr_mirror`,
    /// `feature_add`). Default: procedural, then combine.
    #[arg(long, value_delimiter = ',')]
    strategies: Option<Vec<String>>,
    /// At most this many mutations per entity and strategy.
    #[arg(long)]
    max_per_entity: Option<usize>,
    /// Process only shard K of N (`K/N`, 0-based).
    #[arg(long, value_parser = parse_shard)]
    shard: Option<Shard>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The repository (default: the bundled demo repository).
    #[arg(default_value = "examples/demo-repo")]
    repo: PathBuf,
    /// Output directory.
    #[arg(long, default_value = "smith-out")]
    out: PathBuf,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    validation: ValidationFlags,
    /// Do not combine kept bugs into multi-bug tasks.
    #[arg(long)]
    no_combine: bool,
    /// Who writes problem statements.
    #[arg(long, value_enum, default_value_t = IssueArg::Template)]
    issue: IssueArg,
    /// End template problem statements with a few failing test ids
    /// (SWE-bench's statements name none).
    #[arg(long)]
    list_failing_tests: bool,
    #[command(flatten)]
    lm: LmArgs,
}

/// How candidates are validated (shared by `run` and `validate`).
#[derive(Args, Debug)]
struct ValidationFlags {
    /// Validate at most this many candidates (picked deterministically).
    #[arg(long)]
    max_candidates: Option<usize>,
    /// Parallel validation workers (default: number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Baseline repetitions (flaky-test detection).
    #[arg(long, default_value_t = 3)]
    baseline_runs: u32,
    /// Which tests a candidate runs.
    #[arg(long, value_enum, default_value_t = Selection::Coverage)]
    selection: Selection,
    /// Re-run kept candidates on the whole suite and measure label agreement.
    #[arg(long)]
    confirm: bool,
    /// Run every test run in a fresh interpreter instead of through a fork
    /// server per workspace.
    #[arg(long)]
    no_fork: bool,
    /// Keep the labels of fork-server runs without re-running each kept
    /// candidate's tests in a fresh interpreter (faster; the labels may
    /// then differ from a grader's).
    #[arg(long)]
    no_fresh_check: bool,
    /// Smallest time limit of one test run, in seconds.
    #[arg(long, default_value_t = 5.0)]
    timeout_floor: f64,
    /// A run's time limit: the floor plus this factor times the baseline
    /// seconds of its selected tests and start-up.
    #[arg(long, default_value_t = 5.0)]
    timeout_factor: f64,
    /// Smallest time limit of one test's call, in seconds; the limit adds
    /// the factor times the slowest selected test's baseline seconds. A hung
    /// mutant then costs about this long. 0 turns the per-test limit off.
    #[arg(long, default_value_t = 1.0)]
    test_timeout_floor: f64,
    /// Sandbox for repository code (default: bubblewrap, else docker, else
    /// local with a warning).
    #[arg(long, value_enum, default_value_t = SandboxArg::Auto)]
    sandbox: SandboxArg,
    /// Where to cache virtualenvs (default: $SMITH_CACHE_DIR, else
    /// $XDG_CACHE_HOME/smith, else ~/.cache/smith; shared by out dirs).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Stop (exit 4) when fewer than this share of the suite's tests pass
    /// on the clean tree; 0 turns the check off.
    #[arg(long, default_value_t = 0.8)]
    min_pass_rate: f64,
    /// When the output directory holds another run's records (another
    /// repository, commit or settings), remove them and start afresh.
    #[arg(long)]
    force: bool,
}

/// The most workers that make sense on this machine: more than a few per
/// core only adds workspaces and servers competing for the same cores.
fn max_workers() -> usize {
    4 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `--workers`, if given, between 1 and [`max_workers`].
fn workers(flag: Option<usize>) -> Result<Option<usize>, Error> {
    match flag {
        Some(w) if w == 0 || w > max_workers() => Err(Error::invalid(
            "--workers",
            format!(
                "{w}: must be between 1 and {} (4 per core on this machine)",
                max_workers()
            ),
        )),
        w => Ok(w),
    }
}

/// A count option that must be at least 1.
fn at_least_one<T: Copy + Into<u64>>(flag: &str, value: T) -> Result<T, Error> {
    if value.into() == 0 {
        return Err(Error::invalid(flag, "must be at least 1"));
    }
    Ok(value)
}

/// A flag's value in seconds as a duration; negative or non-finite values
/// are an input error naming the flag.
fn seconds(flag: &str, secs: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(secs).map_err(|e| Error::invalid(flag, e.to_string()))
}

impl ValidationFlags {
    fn apply(&self, config: &mut Config) -> anyhow::Result<()> {
        if let Some(n) = self.max_candidates {
            at_least_one("--max-candidates", n as u64)?;
        }
        config.max_candidates = self.max_candidates;
        if let Some(w) = workers(self.workers)? {
            config.workers = w;
        }
        config.baseline_runs = at_least_one("--baseline-runs", self.baseline_runs)?;
        if !(0.0..=1.0).contains(&self.min_pass_rate) {
            return Err(Error::invalid("--min-pass-rate", "must be between 0 and 1").into());
        }
        config.min_pass_rate = self.min_pass_rate;
        config.force = self.force;
        config.selection = match self.selection {
            Selection::Coverage => SelectionMode::Coverage,
            Selection::Full => SelectionMode::Full,
        };
        config.confirm = self.confirm;
        config.fork = !self.no_fork;
        config.fresh_check = !self.no_fresh_check;
        config.timeout_floor = seconds("--timeout-floor", self.timeout_floor)?;
        if !(self.timeout_factor.is_finite() && self.timeout_factor >= 0.0) {
            return Err(Error::invalid("--timeout-factor", "must be a number ≥ 0").into());
        }
        config.timeout_factor = self.timeout_factor;
        config.test_timeout_floor = match self.test_timeout_floor {
            0.0 => None,
            secs => Some(seconds("--test-timeout-floor", secs)?),
        };
        config.cache_dir = self.cache_dir.clone();
        config.sandbox = self.sandbox.kind();
        Ok(())
    }
}

#[derive(Args, Debug)]
struct ValidateArgs {
    /// The repository (default: the bundled demo repository).
    #[arg(default_value = "examples/demo-repo")]
    repo: PathBuf,
    /// Output directory (validations.jsonl, validate-summary.json).
    #[arg(long, default_value = "smith-out")]
    out: PathBuf,
    /// Candidates to validate, JSONL as `smith mutate` writes it (default:
    /// generate them).
    #[arg(long)]
    candidates: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    validation: ValidationFlags,
    #[command(flatten)]
    lm: LmArgs,
}

/// An OpenAI-compatible chat endpoint, for `--issue lm` and the LM
/// strategies.
#[derive(Args, Debug)]
struct LmArgs {
    /// Base URL of the endpoint (e.g. `http://127.0.0.1:8000/v1`).
    #[arg(long, env = "SMITH_LM_BASE_URL")]
    lm_base_url: Option<String>,
    /// Model name sent with each request.
    #[arg(long, env = "SMITH_LM_MODEL")]
    lm_model: Option<String>,
    /// Name of the environment variable holding the API key, if any.
    #[arg(long, default_value = "OPENAI_API_KEY")]
    lm_key_env: String,
    /// Cache replies here, so a re-run sends nothing (default: <out>/lm-cache).
    #[arg(long)]
    lm_cache: Option<PathBuf>,
    /// LM strategies: at most this many entities sent to the model per
    /// strategy.
    #[arg(long, default_value_t = 20)]
    lm_entities: usize,
    /// Price per 1,000 prompt tokens, for the summary's cost.
    #[arg(long)]
    lm_price_prompt: Option<f64>,
    /// Price per 1,000 completion tokens, for the summary's cost.
    #[arg(long)]
    lm_price_completion: Option<f64>,
    /// `feature_add`: a feature the model is asked to add (repeatable).
    #[arg(long = "feature")]
    features: Vec<String>,
}

impl LmArgs {
    /// The LM settings of `config`, and the model on `pipeline` when an
    /// endpoint is given.
    fn apply(&self, config: &mut Config) {
        config.lm_entities = self.lm_entities;
        config.features = self.features.clone();
        config.lm_prices = match (self.lm_price_prompt, self.lm_price_completion) {
            (None, None) => None,
            (p, c) => Some((p.unwrap_or(0.0), c.unwrap_or(0.0))),
        };
    }

    fn attach(&self, pipeline: Pipeline, out: &Path) -> anyhow::Result<Pipeline> {
        Ok(match lm_client(self, out)? {
            Some(model) => pipeline.language_model(model),
            None => pipeline,
        })
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum IssueArg {
    /// Offline, deterministic templates.
    Template,
    /// A language model (needs --lm-base-url and --lm-model).
    Lm,
}

#[derive(Args, Debug)]
struct EnvArgs {
    /// The repository.
    #[arg(default_value = "examples/demo-repo")]
    repo: PathBuf,
    /// Output directory (the repository is snapshotted into it).
    #[arg(long, default_value = "smith-out")]
    out: PathBuf,
    /// Where to cache virtualenvs (default: $SMITH_CACHE_DIR, else
    /// $XDG_CACHE_HOME/smith, else ~/.cache/smith; shared by out dirs).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// `owner/name` to record (default: git remote or `local/<dir>`); names
    /// the image.
    #[arg(long)]
    repo_name: Option<String>,
    /// Also build the repository's Docker image, tagged as its instances'
    /// `image_name` (`smith/<owner>__<repo>.<commit8>`): the environment
    /// installed, the repository at /testbed. Rebuilt only when the
    /// environment changes.
    #[arg(long)]
    image: bool,
    /// Base image for --image (default: python:<version>-slim where the
    /// engine has it, else smith's local base from scripts/docker-base.sh).
    #[arg(long, requires = "image")]
    base_image: Option<String>,
    /// Rebuild the image even when one with the same environment exists.
    #[arg(long, requires = "image")]
    rebuild: bool,
}

#[derive(Args, Debug)]
struct MutateArgs {
    /// The repository.
    #[arg(default_value = "examples/demo-repo")]
    repo: PathBuf,
    /// Where to write candidates.
    #[arg(long, default_value = "smith-out/candidates.jsonl")]
    out: PathBuf,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    lm: LmArgs,
}

#[derive(Args, Debug)]
struct GradeArgs {
    /// Task instances (JSONL; default: <run-dir>/instances.jsonl).
    #[arg(long)]
    instances: Option<PathBuf>,
    /// Predictions: JSONL, a JSON list, or a JSON object keyed by instance id.
    #[arg(long)]
    predictions: PathBuf,
    /// The `smith run` output directory whose environment runs the tests
    /// (default: the directory of --instances, else smith-out).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Where to write the report (default: print it only).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write SWE-bench-style per-instance logs under this directory.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Instances graded in parallel (default: number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Sandbox for the predictions' code (default: bubblewrap, else docker,
    /// else local with a warning).
    #[arg(long, value_enum, default_value_t = SandboxArg::Auto)]
    sandbox: SandboxArg,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// The mirror repository to write.
    #[arg(long)]
    git: PathBuf,
    /// Task instances (default: <run-dir>/instances.jsonl).
    #[arg(long)]
    instances: Option<PathBuf>,
    /// The `smith run` output directory, whose clean tree is the mirror's
    /// main (default: the directory of --instances, else smith-out).
    #[arg(long)]
    run_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct RolloutArgs {
    /// Task instances (JSONL; default: <run-dir>/instances.jsonl).
    #[arg(long)]
    instances: Option<PathBuf>,
    /// The `smith run` output directory whose environment runs the agent's
    /// commands and the tests (default: the directory of --instances, else
    /// smith-out).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Where to write trajectories.jsonl and sft.jsonl (default:
    /// <run-dir>/rollout). A re-run into it resumes.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Attempts per instance.
    #[arg(long, default_value_t = 1)]
    attempts: usize,
    /// Episodes in parallel (default: number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Keep at most this many resolved attempts per instance in sft.jsonl.
    #[arg(long)]
    max_per_instance: Option<usize>,
    /// Attempt only the first N instances.
    #[arg(long)]
    limit: Option<usize>,
    /// Base URL of an OpenAI-compatible endpoint (e.g. `http://127.0.0.1:8000/v1`).
    #[arg(long, env = "SMITH_LM_BASE_URL")]
    lm_base_url: String,
    /// Model name sent with each request.
    #[arg(long, env = "SMITH_LM_MODEL")]
    lm_model: String,
    /// Name of the environment variable holding the API key, if any.
    #[arg(long, default_value = "OPENAI_API_KEY")]
    lm_key_env: String,
    /// Model calls at once, across all episodes.
    #[arg(long, default_value_t = 8)]
    lm_concurrency: usize,
    /// Prices per 1000 prompt and completion tokens, for cost accounting
    /// and --max-cost (e.g. `0.5,1.5`).
    #[arg(long, value_parser = parse_prices)]
    lm_prices: Option<(f64, f64)>,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    /// Model calls per episode.
    #[arg(long, default_value_t = 50)]
    max_steps: usize,
    /// Prompt plus completion tokens per episode.
    #[arg(long)]
    max_tokens: Option<u64>,
    /// Cost per episode (needs --lm-prices).
    #[arg(long)]
    max_cost: Option<f64>,
    /// Wall time of one episode's agent loop, in seconds.
    #[arg(long, default_value_t = 1800.0)]
    max_seconds: f64,
    /// Time limit of one bash command, in seconds.
    #[arg(long, default_value_t = 60.0)]
    bash_timeout: f64,
    /// The system prompt, from this file (`{{problem_statement}}`,
    /// `{{repo}}` and `{{instance_id}}` are filled in).
    #[arg(long)]
    system_template: Option<PathBuf>,
    /// The first user message, from this file (same placeholders).
    #[arg(long)]
    instance_template: Option<PathBuf>,
    /// Sandbox for the agent's commands and the tests (default: bubblewrap,
    /// else docker, else local with a warning).
    #[arg(long, value_enum, default_value_t = SandboxArg::Auto)]
    sandbox: SandboxArg,
}

fn parse_prices(s: &str) -> Result<(f64, f64), String> {
    let (p, c) = s
        .split_once(',')
        .ok_or_else(|| format!("`{s}`: expected PROMPT,COMPLETION prices per 1000 tokens"))?;
    let num = |x: &str| {
        x.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("`{x}` is not a price"))
    };
    Ok((num(p)?, num(c)?))
}

/// The output directory of the run whose tasks `grade` and `export` read,
/// and the instances file: each defaults from the other. The run directory
/// is the one the instances file is in (`smith run` writes it there), the
/// instances are the run's `instances.jsonl`, and with neither given the
/// run directory is `smith-out`, `smith run`'s default. The run directory
/// must hold `needs` (the records the command reads).
fn run_and_instances(
    run_dir: Option<&Path>,
    instances: Option<&Path>,
    needs: &[&str],
) -> Result<(PathBuf, PathBuf), Error> {
    let (run_dir, from) = match (run_dir, instances) {
        (Some(dir), _) => (dir.to_path_buf(), "the --run-dir given"),
        (None, Some(file)) => (
            file.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
            "the one --instances is in",
        ),
        (None, None) => (PathBuf::from("smith-out"), "the default, smith-out"),
    };
    let instances = instances.map_or_else(|| run_dir.join("instances.jsonl"), Path::to_path_buf);
    if !instances.is_file() {
        return Err(Error::invalid(
            instances.display().to_string(),
            "no such file: pass --instances, or --run-dir with the output directory of `smith run`",
        ));
    }
    for name in needs {
        if !run_dir.join(name).is_file() {
            return Err(Error::invalid(
                run_dir.display().to_string(),
                format!(
                    "is not the output directory of `smith run` (it holds no {name}; the directory is {from}); pass --run-dir DIR"
                ),
            ));
        }
    }
    Ok((run_dir, instances))
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Selection {
    /// Only the tests that execute the changed code.
    Coverage,
    /// The whole suite for every candidate.
    Full,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum SandboxArg {
    /// Bubblewrap where it works, else docker where it answers, else local
    /// (with a warning).
    Auto,
    /// Temp-copy workspaces, no isolation of files or network.
    Local,
    /// Bubblewrap: read-only system, no network, no capabilities.
    Bwrap,
    /// Docker: a container per workspace.
    Docker,
}

impl SandboxArg {
    fn kind(self) -> SandboxKind {
        match self {
            SandboxArg::Auto => SandboxKind::Auto,
            SandboxArg::Local => SandboxKind::Local,
            SandboxArg::Bwrap => SandboxKind::Bwrap,
            SandboxArg::Docker => SandboxKind::Docker,
        }
    }
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    s.parse::<Shard>().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match try_main(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = exit_code(&err);
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({ "error": error_chain(&err), "exit_code": code })
                );
            } else {
                eprintln!("error: {}", error_chain(&err));
            }
            ExitCode::from(code)
        }
    }
}

/// The error and its causes, `: `-separated as `{err:#}` prints them, less
/// a cause whose text the message before it already ends with: smith's
/// errors keep their cause's text in their own message.
fn error_chain(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    let mut previous = text.clone();
    for cause in err.chain().skip(1).map(ToString::to_string) {
        if !previous.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        previous = cause;
    }
    text
}

fn exit_code(err: &anyhow::Error) -> u8 {
    // A full disk is the machine's problem wherever it shows up.
    let disk_full = err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(smith::store::is_disk_full)
    });
    if disk_full {
        return exit::ENVIRONMENT;
    }
    match err.downcast_ref::<Error>() {
        Some(Error::Repo { .. } | Error::Record { .. } | Error::Invalid { .. }) => exit::INPUT,
        Some(Error::Environment { .. }) => exit::ENVIRONMENT,
        _ => exit::FAILURE,
    }
}

fn try_main(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Run(args) => run(args, cli.json),
        Command::Validate(args) => validate(args, cli.json),
        Command::Env(args) => env(args, cli.json),
        Command::Mutate(args) => mutate(args, cli.json),
        Command::Grade(args) => grade(args, cli.json),
        Command::Export(args) => export(args, cli.json),
        Command::Rollout(args) => rollout(args, cli.json),
    }
}

fn config_from(repo: &PathBuf, out: &PathBuf, common: &Common) -> anyhow::Result<Config> {
    let mut config = Config::new(repo, out);
    config.repo_name = common.repo_name.clone();
    config.seed = common.seed;
    config.strategies = common.strategies.clone();
    if let Some(n) = common.max_per_entity {
        at_least_one("--max-per-entity", n as u64)?;
    }
    config.max_per_entity = common.max_per_entity;
    config.shard = common.shard.unwrap_or(Shard::ALL);
    Ok(config)
}

/// Turns pipeline events into a spinner per stage and a bar for validation.
fn progress_sink(quiet: bool) -> impl Fn(&Event) + Send + Sync + 'static {
    let bar: Arc<Mutex<Option<ProgressBar>>> = Arc::new(Mutex::new(None));
    move |event: &Event| {
        if quiet {
            return;
        }
        let mut slot = bar.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Stage { name, detail } => {
                if let Some(b) = slot.take() {
                    b.finish_and_clear();
                }
                let b = ProgressBar::new_spinner();
                b.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:>9} {msg} [{elapsed}]")
                        .unwrap(),
                );
                b.set_prefix(name.to_string());
                b.set_message(detail.clone());
                b.enable_steady_tick(Duration::from_millis(120));
                eprintln!("{name:>9} {detail}");
                *slot = Some(b);
            }
            Event::Progress {
                stage,
                done,
                total,
                kept,
            } => {
                let b = slot.get_or_insert_with(ProgressBar::new_spinner);
                if b.length() != Some(*total as u64) {
                    b.set_length(*total as u64);
                    b.set_style(
                        ProgressStyle::with_template(
                            "{prefix:>9} [{bar:30}] {pos}/{len} {msg} eta {eta} [{elapsed}]",
                        )
                        .unwrap()
                        .progress_chars("=> "),
                    );
                    b.set_prefix(stage.to_string());
                }
                b.set_position(*done as u64);
                let rate = if *done > 0 {
                    100.0 * *kept as f64 / *done as f64
                } else {
                    0.0
                };
                b.set_message(format!("kept {kept} ({rate:.0}%)"));
            }
            // `println` on a bar prints nothing when stderr is not a
            // terminal; a warning must reach the log either way.
            Event::Warning(w) => match slot.as_ref() {
                Some(b) => b.suspend(|| eprintln!("warning: {w}")),
                None => eprintln!("warning: {w}"),
            },
        }
    }
}

fn run(args: &RunArgs, json: bool) -> anyhow::Result<()> {
    let mut config = config_from(&args.repo, &args.out, &args.common)?;
    args.validation.apply(&mut config)?;
    config.combine = !args.no_combine;
    args.lm.apply(&mut config);
    let mut pipeline = args
        .lm
        .attach(Pipeline::new(config), &args.out)?
        .on_event(progress_sink(json));
    match args.issue {
        IssueArg::Lm => pipeline = pipeline.issue_writer(lm_writer(&args.lm, &args.out)?),
        IssueArg::Template if args.list_failing_tests => {
            pipeline = pipeline.issue_writer(Arc::new(
                smith::issue::TemplateWriter::new().listing_failing_tests(true),
            ))
        }
        IssueArg::Template => {}
    }
    let summary = pipeline
        .run()
        .with_context(|| format!("smith run {}", args.repo.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(())
}

fn validate(args: &ValidateArgs, json: bool) -> anyhow::Result<()> {
    let mut config = config_from(&args.repo, &args.out, &args.common)?;
    args.validation.apply(&mut config)?;
    args.lm.apply(&mut config);
    let summary = args
        .lm
        .attach(Pipeline::new(config), &args.out)?
        .on_event(progress_sink(json))
        .validate_candidates(args.candidates.as_deref())
        .with_context(|| format!("smith validate {}", args.repo.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    print_repository(
        &summary.repo,
        &summary.base_commit,
        summary.baseline_passing,
        summary.baseline_tests,
        summary.baseline_flaky,
    );
    println!(
        "validated    {} candidates ({} now), {:.3} s per candidate, {} runs through fork servers",
        summary.candidates,
        summary.validated_now,
        summary.seconds_per_candidate,
        summary.forked_runs
    );
    println!(
        "kept         {} ({:.0}% yield), median {} FAIL_TO_PASS tests",
        summary.kept,
        100.0 * summary.yield_,
        summary.median_f2p
    );
    print_verdicts(&summary.verdicts, summary.confirm_agreement);
    print_warnings(&summary.warnings);
    print_stages(&summary.stages);
    println!("validations  {}", summary.validations_path.display());
    println!(
        "tasks        {} instances in {}",
        summary.instances,
        summary.instances_path.display()
    );
    println!("took         {:.1} s", summary.seconds);
    Ok(())
}

#[cfg(feature = "lm")]
fn lm_writer(args: &LmArgs, out: &std::path::Path) -> anyhow::Result<Arc<dyn smith::IssueWriter>> {
    let (Some(url), Some(model)) = (&args.lm_base_url, &args.lm_model) else {
        return Err(Error::invalid("--issue lm", "needs --lm-base-url and --lm-model").into());
    };
    Ok(Arc::new(smith::issue::LmIssueWriter::new(openai_client(
        args, url, model, out,
    )?)))
}

/// The model of the LM strategies, when `--lm-base-url` and `--lm-model`
/// are given.
#[cfg(feature = "lm")]
fn lm_client(
    args: &LmArgs,
    out: &std::path::Path,
) -> anyhow::Result<Option<Arc<dyn smith::LanguageModel>>> {
    let (Some(url), Some(model)) = (&args.lm_base_url, &args.lm_model) else {
        return Ok(None);
    };
    Ok(Some(Arc::new(openai_client(args, url, model, out)?)))
}

#[cfg(not(feature = "lm"))]
fn lm_client(
    _: &LmArgs,
    _: &std::path::Path,
) -> anyhow::Result<Option<Arc<dyn smith::LanguageModel>>> {
    Ok(None)
}

#[cfg(feature = "lm")]
fn openai_client(
    args: &LmArgs,
    url: &str,
    model: &str,
    out: &std::path::Path,
) -> anyhow::Result<smith::issue::OpenAiClient> {
    let mut config = smith::issue::OpenAiConfig::new(url, model);
    config.api_key_env = std::env::var_os(&args.lm_key_env).map(|_| args.lm_key_env.clone());
    config.cache_dir = Some(
        args.lm_cache
            .clone()
            .unwrap_or_else(|| out.join("lm-cache")),
    );
    Ok(smith::issue::OpenAiClient::new(config)?)
}

#[cfg(not(feature = "lm"))]
fn lm_writer(_: &LmArgs, _: &std::path::Path) -> anyhow::Result<Arc<dyn smith::IssueWriter>> {
    Err(Error::invalid(
        "--issue lm",
        "this smith was built without the `lm` feature",
    )
    .into())
}

/// The lines `run` and `validate` both start with.
fn print_repository(repo: &str, base_commit: &str, passing: usize, tests: usize, flaky: usize) {
    println!(
        "repository   {repo} @ {}",
        &base_commit[..base_commit.len().min(12)]
    );
    println!(
        "baseline     {passing} of {tests} tests pass on the clean tree ({:.0}%), {flaky} flaky",
        100.0 * passing as f64 / tests.max(1) as f64
    );
}

/// Every warning of the run, so none is only counted.
fn print_warnings(warnings: &[String]) {
    if warnings.is_empty() {
        return;
    }
    println!("warnings     {}", warnings.len());
    for w in warnings {
        println!("  {w}");
    }
}

/// Verdict counts and, with `--confirm`, label agreement.
fn print_verdicts(verdicts: &BTreeMap<String, usize>, confirm_agreement: Option<f64>) {
    let verdicts: Vec<String> = verdicts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("verdicts     {}", verdicts.join(", "));
    if let Some(a) = confirm_agreement {
        println!(
            "confirm      {:.1}% of kept candidates agree with a full-suite run",
            100.0 * a
        );
    }
}

fn print_summary(s: &Summary) {
    print_repository(
        &s.repo,
        &s.base_commit,
        s.baseline_passing,
        s.baseline_tests,
        s.baseline_flaky,
    );
    println!(
        "candidates   {} generated, {} validated",
        s.candidates, s.validated
    );
    println!(
        "kept         {} ({:.0}% yield), median {} FAIL_TO_PASS tests, median {} changed lines",
        s.kept,
        100.0 * s.yield_,
        s.median_f2p,
        s.median_changed_lines
    );
    println!("strategy                          validated   kept  yield");
    for (name, st) in &s.strategies {
        println!(
            "  {name:<32} {:>9} {:>6} {:>5.0}%",
            st.validated,
            st.kept,
            100.0 * st.yield_
        );
    }
    print_verdicts(&s.verdicts, s.confirm_agreement);
    if s.lm.requests > 0 {
        let cost =
            s.lm.cost
                .map_or_else(String::new, |c| format!(", cost {c:.4}"));
        println!(
            "lm           {}: {} requests ({} cached, {} failed), {} prompt + {} completion tokens{cost}",
            s.lm.model,
            s.lm.requests,
            s.lm.cached,
            s.lm.failures,
            s.lm.prompt_tokens,
            s.lm.completion_tokens
        );
    }
    if !s.skipped_files.is_empty() {
        println!("skipped      {} files:", s.skipped_files.len());
        for f in &s.skipped_files {
            println!("  {f}");
        }
    }
    // Warnings other than the skipped files just listed.
    let others: Vec<String> = s
        .warnings
        .iter()
        .filter(|w| {
            !s.skipped_files
                .iter()
                .any(|f| **w == format!("skipped {f}"))
        })
        .cloned()
        .collect();
    print_warnings(&others);
    println!(
        "time         {:.1} s ({:.2} s per candidate validated)",
        s.seconds, s.seconds_per_candidate
    );
    print_stages(&s.stages);
    println!(
        "tasks        {} instances in {}",
        s.instances,
        s.instances_path.display()
    );
}

/// One line of wall seconds per stage that took any time.
fn print_stages(stages: &smith::pipeline::StageTimes) {
    let parts: Vec<String> = stages
        .named()
        .iter()
        .filter(|(_, secs)| *secs >= 0.05)
        .map(|(name, secs)| format!("{name} {secs:.1} s"))
        .collect();
    if !parts.is_empty() {
        println!("stages       {}", parts.join(" · "));
    }
}

/// Open `repo` for `env` and `mutate`, whose repository copy goes to
/// `work`: when `work` is a run's output directory, the copy must be of the
/// run's repository and commit, never replace it with another.
fn open_beside_run(
    repo: &Path,
    name: Option<&str>,
    work: &Path,
) -> anyhow::Result<smith::repo::RepoInfo> {
    let record: Option<smith::pipeline::RunRecord> =
        smith::store::read_json(&work.join(smith::repo::RUN_RECORD))?;
    Ok(smith::repo::open_repo_checked(repo, name, work, |r| {
        match record {
            Some(run) if run.repo != r.name || run.base_commit != r.base_commit => {
                Err(Error::invalid(
                    work.display().to_string(),
                    format!(
                        "holds the records of a run of {} @ {}, not {} @ {}; choose another output directory",
                        run.repo, run.base_commit, r.name, r.base_commit
                    ),
                ))
            }
            _ => Ok(()),
        }
    })?)
}

fn env(args: &EnvArgs, json: bool) -> anyhow::Result<()> {
    let work = &args.out;
    let _lock = smith::store::OutDirLock::acquire(work)?;
    let repo = open_beside_run(&args.repo, args.repo_name.as_deref(), work)?;
    let options = smith::env::EnvOptions::new(
        args.cache_dir
            .clone()
            .unwrap_or_else(smith::env::default_cache_dir),
    );
    let started = std::time::Instant::now();
    let env = smith::env::build_environment(&repo.root, &options)?;
    let image = if args.image {
        let mut image = smith::env::ImageOptions::new(smith::env::image_name_for(
            &repo.name,
            &repo.base_commit,
        ));
        image.base_image = args
            .base_image
            .clone()
            .or_else(|| std::env::var("SMITH_BASE_IMAGE").ok());
        image.force = args.rebuild;
        let spinner = if json {
            ProgressBar::hidden()
        } else {
            ProgressBar::new_spinner()
        };
        spinner.set_message(format!("building image {}", image.tag));
        spinner.enable_steady_tick(Duration::from_millis(120));
        let built = smith::env::build_image(&env, &image);
        spinner.finish_and_clear();
        Some(built?)
    } else {
        None
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "spec": env.spec,
                "venv": env.venv,
                "pytest_version": env.pytest_version,
                "generated": env.generated,
                "image": image,
                "seconds": started.elapsed().as_secs_f64(),
            })
        );
    } else {
        if let Some(image) = &image {
            println!(
                "image {} ({}, {:.0} MB, base {}, {:.1} s)",
                image.tag,
                if image.built { "built" } else { "up to date" },
                image.size as f64 / 1e6,
                image.base_image,
                image.secs
            );
        }
        println!("{}", serde_json::to_string_pretty(&env.spec)?);
        println!(
            "venv {} with pytest {} ({:.1} s)",
            env.venv.display(),
            env.pytest_version
                .as_deref()
                .unwrap_or("of unknown version"),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn mutate(args: &MutateArgs, json: bool) -> anyhow::Result<()> {
    let work = args
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    if let Some(n) = args.common.max_per_entity {
        at_least_one("--max-per-entity", n as u64)?;
    }
    // The repository copy goes to the output file's directory, which a run
    // may be using.
    let _lock = smith::store::OutDirLock::acquire(&work)?;
    let mut config = config_from(&args.repo, &work, &args.common)?;
    args.lm.apply(&mut config);
    let pipeline = args.lm.attach(Pipeline::new(config), &work)?;
    // Unknown strategies fail before the repository is copied.
    let plan = pipeline.plan()?;
    let repo = open_beside_run(&args.repo, args.common.repo_name.as_deref(), &work)?;
    // Warnings reach stderr (and the JSON report) in either mode.
    let warnings: Arc<Mutex<Vec<String>>> = Arc::default();
    let (seen, sink) = (warnings.clone(), progress_sink(json));
    let pipeline = pipeline.on_event(move |event| {
        if let Event::Warning(w) = event {
            seen.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(w.clone());
            if json {
                eprintln!("warning: {w}");
            }
        }
        sink(event)
    });
    let mut generated = pipeline.generate(&repo, &plan)?;
    let warnings = warnings.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let shard = args.common.shard.unwrap_or(Shard::ALL);
    generated.candidates.retain(|c| shard.contains(&c.id));
    smith::store::write_jsonl::<Candidate>(&args.out, &generated.candidates)?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "candidates": generated.candidates.len(),
                "files": generated.files,
                "entities": generated.entities,
                "skipped": generated.skipped.iter().map(|s| format!("{}: {}", s.path, s.reason)).collect::<Vec<_>>(),
                "warnings": warnings,
                "out": args.out,
            })
        );
    } else {
        println!("strategy                          proposed  dropped  emitted");
        for (name, st) in &generated.stats {
            println!(
                "  {name:<32} {:>8} {:>8} {:>8}",
                st.proposed,
                st.dropped(),
                st.emitted
            );
        }
        println!(
            "{} candidates from {} entities in {} files → {}",
            generated.candidates.len(),
            generated.entities,
            generated.files,
            args.out.display()
        );
    }
    Ok(())
}

fn grade(args: &GradeArgs, json: bool) -> anyhow::Result<()> {
    let workers = workers(args.workers)?;
    let (run_dir, instances_path) = run_and_instances(
        args.run_dir.as_deref(),
        args.instances.as_deref(),
        &["repo.json", "env.json"],
    )?;
    let instances: Vec<smith::TaskInstance> =
        smith::store::read_jsonl_unique(&instances_path, |i: &smith::TaskInstance| &i.instance_id)?;
    if instances.is_empty() {
        return Err(
            Error::invalid(instances_path.display().to_string(), "no task instances").into(),
        );
    }
    let predictions = smith::grade::load_predictions(&args.predictions)?;
    let mut options = smith::grade::GradeOptions {
        log_dir: args.log_dir.clone(),
        ..Default::default()
    };
    if let Some(w) = workers {
        options.workers = w;
    }
    let grader = smith::grade::Grader::from_run_dir_in(&run_dir, args.sandbox.kind())
        .with_context(|| format!("environment of {}", run_dir.display()))?;
    if let Some(warning) = grader.sandbox_warning() {
        eprintln!("warning: {warning}");
    }
    let report = grader
        .with_options(options)
        .grade(&instances, &predictions)?;
    if let Some(out) = &args.out {
        smith::store::write_json(out, &report)?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "instances    {} total, {} submitted",
            report.total_instances, report.submitted_instances
        );
        println!("completed    {}", report.completed_instances);
        println!("resolved     {}", report.resolved_instances);
        println!("unresolved   {}", report.unresolved_instances);
        println!("empty patch  {}", report.empty_patch_instances);
        println!("errors       {}", report.error_instances);
        for id in &report.error_ids {
            if let Some(e) = report.instances.get(id).and_then(|r| r.error.as_deref()) {
                println!("  {id}: {e}");
            }
        }
        if let Some(out) = &args.out {
            println!("report       {}", out.display());
        }
    }
    Ok(())
}

fn export(args: &ExportArgs, json: bool) -> anyhow::Result<()> {
    let (run_dir, instances_path) = run_and_instances(
        args.run_dir.as_deref(),
        args.instances.as_deref(),
        &["repo.json"],
    )?;
    let repo_path = run_dir.join("repo.json");
    let repo: smith::repo::RepoInfo = smith::store::read_json(&repo_path)?.ok_or_else(|| {
        Error::invalid(
            repo_path.display().to_string(),
            "missing; run `smith run` first",
        )
    })?;
    let instances: Vec<smith::TaskInstance> =
        smith::store::read_jsonl_unique(&instances_path, |i: &smith::TaskInstance| &i.instance_id)?;
    let summary = smith::export::export_git(&repo, &instances, &args.git)
        .with_context(|| format!("smith export --git {}", args.git.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{} branches in {} (main = clean tree)",
            summary.branches.len(),
            summary.dir.display()
        );
        for (id, why) in &summary.skipped {
            println!("  skipped {id}: {why}");
        }
    }
    Ok(())
}

#[cfg(feature = "lm")]
fn rollout(args: &RolloutArgs, json: bool) -> anyhow::Result<()> {
    use smith::rollout::{Rollout, RolloutEvent, RolloutOptions};

    let workers = workers(args.workers)?;
    at_least_one("--attempts", args.attempts as u64)?;
    at_least_one("--max-steps", args.max_steps as u64)?;
    at_least_one("--lm-concurrency", args.lm_concurrency as u64)?;
    let (run_dir, instances) = rollout_instances(args)?;
    let session = rollout_session(args)?;
    let client = Arc::new(rollout_client(args)?);

    let grader = smith::grade::Grader::from_run_dir_in(&run_dir, args.sandbox.kind())
        .with_context(|| format!("environment of {}", run_dir.display()))?;
    if let Some(warning) = grader.sandbox_warning() {
        eprintln!("warning: {warning}");
    }
    let options = RolloutOptions {
        attempts: args.attempts,
        max_per_instance: args.max_per_instance,
        session,
        params: smith::CompletionParams {
            temperature: args.temperature,
            max_tokens: None,
            seed: None,
        },
        workers: workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        ..RolloutOptions::default()
    };
    let rollout = Rollout::new(
        grader.sandbox().clone(),
        grader.executor().clone(),
        client,
        options,
    );
    let out = args.out.clone().unwrap_or_else(|| run_dir.join("rollout"));

    let bar = rollout_bar(json);
    let resolved = std::sync::atomic::AtomicUsize::new(0);
    let progress = |event: &RolloutEvent| match event {
        RolloutEvent::Started { todo, done } => {
            bar.set_length(*todo as u64);
            if *done > 0 && !json {
                bar.suspend(|| eprintln!("resuming: {done} attempts already in {}", out.display()));
            }
        }
        RolloutEvent::Attempt {
            traj_id,
            resolved: r,
        } => {
            if *r == Some(true) {
                resolved.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if r.is_none() {
                bar.suspend(|| eprintln!("warning: attempt {traj_id} failed (see the summary)"));
            }
            bar.inc(1);
            bar.set_message(format!(
                "resolved {}",
                resolved.load(std::sync::atomic::Ordering::Relaxed)
            ));
        }
    };
    let summary = rollout
        .run(&instances, &out, &progress)
        .with_context(|| format!("smith rollout into {}", out.display()))?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_rollout_summary(&summary);
    }
    if !summary.failed.is_empty() {
        anyhow::bail!(
            "{} attempts could not be made; run the same command again to retry them",
            summary.failed.len()
        );
    }
    Ok(())
}

/// The run directory of `smith rollout` and the task instances to roll out
/// (at most `--limit`; none is an error).
#[cfg(feature = "lm")]
fn rollout_instances(args: &RolloutArgs) -> anyhow::Result<(PathBuf, Vec<smith::TaskInstance>)> {
    let (run_dir, instances_path) = run_and_instances(
        args.run_dir.as_deref(),
        args.instances.as_deref(),
        &["repo.json", "env.json"],
    )?;
    let mut instances: Vec<smith::TaskInstance> =
        smith::store::read_jsonl_unique(&instances_path, |i: &smith::TaskInstance| &i.instance_id)?;
    if let Some(n) = args.limit {
        instances.truncate(n);
    }
    if instances.is_empty() {
        return Err(
            Error::invalid(instances_path.display().to_string(), "no task instances").into(),
        );
    }
    Ok((run_dir, instances))
}

/// The agent's session of `smith rollout`: its prompt templates (the
/// defaults, or the files given) and its limits.
#[cfg(feature = "lm")]
fn rollout_session(args: &RolloutArgs) -> anyhow::Result<smith::rollout::Session> {
    use smith::rollout::{Limits, Session, Templates, ToolLimits};

    let read_template = |path: &Option<PathBuf>, default: String| -> anyhow::Result<String> {
        match path {
            Some(p) => Ok(std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?),
            None => Ok(default),
        }
    };
    let defaults = Templates::default();
    let templates = Templates {
        system: read_template(&args.system_template, defaults.system)?,
        instance: read_template(&args.instance_template, defaults.instance)?,
    };
    if let Some(cost) = args.max_cost {
        if args.lm_prices.is_none() || !(cost.is_finite() && cost > 0.0) {
            return Err(Error::invalid(
                "--max-cost",
                "must be positive, and needs --lm-prices to count cost",
            )
            .into());
        }
    }
    let limits = Limits {
        max_steps: args.max_steps,
        max_tokens: args.max_tokens,
        max_cost: args.max_cost,
        max_wall: Some(seconds("--max-seconds", args.max_seconds)?),
        tools: ToolLimits {
            bash_timeout: seconds("--bash-timeout", args.bash_timeout)?,
            ..ToolLimits::default()
        },
        ..Limits::default()
    };
    Ok(Session::new(templates, limits))
}

/// The language model client of `smith rollout`.
#[cfg(feature = "lm")]
fn rollout_client(args: &RolloutArgs) -> anyhow::Result<smith::issue::OpenAiClient> {
    let mut config =
        smith::issue::OpenAiConfig::new(args.lm_base_url.clone(), args.lm_model.clone());
    config.api_key_env = std::env::var_os(&args.lm_key_env).map(|_| args.lm_key_env.clone());
    config.max_concurrency = args.lm_concurrency;
    if let Some((p, c)) = args.lm_prices {
        config = config.prices(p, c);
    }
    Ok(smith::issue::OpenAiClient::new(config)?)
}

/// The progress bar of `smith rollout` (hidden with `--json`).
#[cfg(feature = "lm")]
fn rollout_bar(json: bool) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "  rollout [{bar:30}] {pos}/{len} {msg} eta {eta} [{elapsed}]",
        )
        .unwrap()
        .progress_chars("=> "),
    );
    if json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

/// Print a rollout's summary for people.
#[cfg(feature = "lm")]
fn print_rollout_summary(summary: &smith::rollout::RolloutSummary) {
    println!("model         {}", summary.model);
    println!(
        "attempts      {} ({} instances; {} now, {} resumed)",
        summary.attempts, summary.instances, summary.attempts_run, summary.attempts_resumed
    );
    println!(
        "resolved      {} ({:.1}%), {} instances",
        summary.resolved,
        100.0 * summary.resolve_rate,
        summary.instances_resolved
    );
    println!("mean steps    {:.1}", summary.mean_steps);
    println!(
        "tokens        {} prompt, {} completion",
        summary.prompt_tokens, summary.completion_tokens
    );
    if let Some(cost) = summary.cost {
        println!("cost          {cost:.4}");
    }
    let reasons: Vec<String> = summary
        .exit_reasons
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    println!("ended         {}", reasons.join(", "));
    let e = &summary.errors;
    println!(
        "bad output    {} (malformed {}, unknown tool {}, no tool call {}, repeated {}); {} refused tool calls",
        e.bad_output(),
        e.malformed_arguments,
        e.unknown_tool,
        e.no_tool_call,
        e.repeated,
        e.tool_errors
    );
    for (id, why) in &summary.failed {
        println!("failed        {id}: {why}");
    }
    println!("trajectories  {}", summary.trajectories_path.display());
    println!(
        "sft           {} ({} records)",
        summary.sft_path.display(),
        summary.sft_records
    );
}

#[cfg(not(feature = "lm"))]
fn rollout(_: &RolloutArgs, _: bool) -> anyhow::Result<()> {
    Err(Error::invalid(
        "smith rollout",
        "this smith was built without the `lm` feature",
    )
    .into())
}
