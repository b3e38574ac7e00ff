//! Preparing a run: claiming the output directory, building the
//! environment, the baseline, the coverage map and the environment gate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use smith_core::{Baseline, Error, Executor, Result, RunOptions};
use smith_validate::{CoverageMap, PytestExecutor, SelectionMode};

use super::summary::pass_rate;
use super::{Event, Pipeline, Prepared};
use crate::repo::{open_repo_checked, RepoInfo, RUN_RECORD};
use crate::store::{self, OutDirLock};

/// `coverage.json`: a coverage map and the commit it was made on.
#[derive(Debug, Serialize, Deserialize)]
struct CoverageRecord {
    base_commit: String,
    map: CoverageMap,
}

impl Pipeline {
    /// Take the output directory, open the repository, build (or reuse) its
    /// environment, make a sandbox.
    ///
    /// The output directory is locked for as long as the returned value
    /// lives, and must hold no records of another run (see
    /// [`Config::force`](super::Config::force)).
    pub fn prepare(&self) -> Result<Prepared> {
        self.prepare_with(None)
    }

    /// [`Pipeline::prepare`], recording that candidates come from
    /// `candidates_file` (`None`: generated).
    pub(super) fn prepare_with(&self, candidates_file: Option<&Path>) -> Result<Prepared> {
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
    /// repository, commit and settings. With
    /// [`Config::force`](super::Config::force) another run's records are
    /// removed instead. Writes this run's `smith-run.json`.
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
        let mut differences = previous
            .as_ref()
            .map_or_else(Vec::new, |p| changed_settings(p, &settings));
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
                    changed_repo.extend(changed_repository(name, commit, repo));
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
            self.remove_records()?;
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

    /// Remove the records of a run ([`RECORD_FILES`]) from the output
    /// directory; files already gone are no error.
    fn remove_records(&self) -> Result<()> {
        for name in RECORD_FILES {
            let path = self.path(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Ok(())
    }

    /// The environment gate: refuse to go on when too few of the suite's
    /// tests pass on the clean tree
    /// ([`Config::min_pass_rate`](super::Config::min_pass_rate)); what does
    /// pass would make a few, skewed tasks of a broken environment.
    pub(super) fn check_environment(&self, p: &Prepared, baseline: &Baseline) -> Result<()> {
        let (passing, total, rate) = pass_rate(baseline);
        if rate >= self.config.min_pass_rate {
            return Ok(());
        }
        Err(Error::environment(
            p.repo.root.clone(),
            format!(
                "only {passing} of {total} tests ({:.0}%) pass on the clean tree, below the minimum of {:.0}%: \
                 the environment probably lacks dependencies, services or data the tests need \
                 (baseline.json lists the tests that do not pass); lower the minimum \
                 (--min-pass-rate 0 turns the check off) to make tasks from this environment anyway",
                100.0 * rate,
                100.0 * self.config.min_pass_rate
            ),
        ))
    }

    /// The baseline (which must pass the environment gate) and the
    /// coverage map. With two workers or more they run side by side, each
    /// in a workspace of its own: both only read the clean tree, and the
    /// coverage run takes about as long as the baseline's runs together.
    pub(super) fn baseline_and_coverage(
        &self,
        p: &Prepared,
    ) -> Result<(Baseline, Option<CoverageMap>)> {
        if self.config.workers < 2 {
            let baseline = self.baseline(p)?;
            self.check_environment(p, &baseline)?;
            return Ok((baseline, self.coverage(p)?));
        }
        let (baseline, coverage) = std::thread::scope(|scope| {
            let coverage = scope.spawn(|| self.coverage(p));
            (self.baseline(p), coverage.join())
        });
        let baseline = baseline?;
        self.check_environment(p, &baseline)?;
        let coverage = coverage.map_err(|_| Error::test_run("the coverage stage panicked"))??;
        Ok((baseline, coverage))
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
            &p.repo.repo_ref(),
            &RunOptions::default(),
        )?;
        if baseline.passing.is_empty() {
            return Err(Error::environment(
                p.repo.root.clone(),
                "no test passes on the clean tree; nothing can be validated",
            ));
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

/// Each setting whose value differs from `previous` run's, as
/// `name before → after` (a setting it lacks was `null`).
fn changed_settings(
    previous: &RunRecord,
    settings: &BTreeMap<String, serde_json::Value>,
) -> Vec<String> {
    let mut differences = Vec::new();
    for (key, value) in settings {
        let before = previous
            .settings
            .get(key)
            .unwrap_or(&serde_json::Value::Null);
        if before != value {
            differences.push(format!("{key} {before} → {value}"));
        }
    }
    differences
}

/// How `repo` differs from the repository `name` at `commit` an earlier run
/// recorded: another name, another base commit.
fn changed_repository(name: &str, commit: &str, repo: &RepoInfo) -> Vec<String> {
    let mut changes = Vec::new();
    if name != repo.name {
        changes.push(format!("repository {name} → {}", repo.name));
    }
    if commit != repo.base_commit {
        changes.push(format!(
            "base commit {} → {}",
            short(commit),
            short(&repo.base_commit)
        ));
    }
    changes
}

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
