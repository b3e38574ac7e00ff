//! The configuration of a run: every option and its default.

use std::path::PathBuf;
use std::time::Duration;

use smith_core::Shard;
use smith_validate::{SelectionMode, ValidateOptions};

use super::SandboxKind;

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
    /// stage runs; see [`Pipeline::plan`](super::Pipeline::plan).
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
