//! Grading model predictions against task instances, the way SWE-bench's
//! harness does: each prediction's patch is applied to the instance's buggy
//! tree in a workspace of the run's environment, the instance's
//! FAIL_TO_PASS and PASS_TO_PASS tests run, and the outcomes are scored
//! with SWE-bench's rules. Model code is untrusted: the workspaces come from
//! the chosen [`SandboxKind`] (by default an isolating one), and a patch
//! that would write outside the workspace, through `..` or a symbolic link
//! of the repository, is refused under every sandbox.
//!
//! Inputs and outputs use SWE-bench's formats so existing tooling reads
//! them: predictions are `{instance_id, model_patch, model_name_or_path}`
//! records (JSONL, a JSON list, or a JSON object keyed by instance id), and
//! the [`Report`] has the keys of the harness's run report
//! (`resolved_ids`, `error_ids`, ...) plus, per instance, the keys of its
//! per-instance `report.json` (`patch_successfully_applied`, `resolved`,
//! `tests_status`).
//!
//! Scoring follows SWE-bench's `get_eval_tests_report`: a test passes when it
//! passed or xfailed; a skipped PASS_TO_PASS test counts as maintained, a
//! skipped FAIL_TO_PASS test as a failure; a test that did not run failed.
//! An instance is resolved when every FAIL_TO_PASS and every PASS_TO_PASS
//! test succeeds. As in the harness, empty patches are not run (they are
//! listed under `empty_patch_ids`), and a patch that does not apply makes
//! the instance an error (`error_ids`, `patch_successfully_applied: false`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use smith_core::{
    Error, Executor, Outcome, Patch, Result, RunOptions, Sandbox, TaskInstance, TestId,
};
use smith_env::Environment;
use smith_validate::PytestExecutor;

use crate::gym::Task;
use crate::repo::RepoInfo;
use crate::sandbox::SandboxKind;
use crate::store;

/// One model prediction in SWE-bench's format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prediction {
    /// The instance the patch is for.
    pub instance_id: String,
    /// A unified diff against the buggy tree; `None` when the model gave none.
    #[serde(default)]
    pub model_patch: Option<String>,
    /// Which model made it.
    #[serde(default)]
    pub model_name_or_path: String,
}

impl Prediction {
    /// A prediction of `patch` for `instance_id`.
    pub fn new(
        instance_id: impl Into<String>,
        patch: impl Into<String>,
        model: impl Into<String>,
    ) -> Self {
        Prediction {
            instance_id: instance_id.into(),
            model_patch: Some(patch.into()),
            model_name_or_path: model.into(),
        }
    }

    /// The gold prediction for an instance: the reverse of its bug patch.
    pub fn gold(instance: &TaskInstance) -> Self {
        Prediction::new(
            &instance.instance_id,
            Patch::from_text(instance.patch.clone()).reverse().as_str(),
            "gold",
        )
    }

    fn is_empty(&self) -> bool {
        self.model_patch
            .as_deref()
            .is_none_or(|p| p.trim().is_empty())
    }
}

/// Successes and failures among a group of tests, as SWE-bench names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuccessFailure {
    /// Tests that passed (or, for PASS_TO_PASS, were maintained).
    pub success: Vec<TestId>,
    /// Tests that failed, errored or did not run.
    pub failure: Vec<TestId>,
}

/// SWE-bench's `tests_status` block of a per-instance report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestsStatus {
    /// The instance's FAIL_TO_PASS tests.
    #[serde(rename = "FAIL_TO_PASS")]
    pub fail_to_pass: SuccessFailure,
    /// The instance's PASS_TO_PASS tests.
    #[serde(rename = "PASS_TO_PASS")]
    pub pass_to_pass: SuccessFailure,
    /// Always empty: smith instances have no FAIL_TO_FAIL list.
    #[serde(rename = "FAIL_TO_FAIL")]
    pub fail_to_fail: SuccessFailure,
    /// Always empty: smith instances have no PASS_TO_FAIL list.
    #[serde(rename = "PASS_TO_FAIL")]
    pub pass_to_fail: SuccessFailure,
}

impl TestsStatus {
    /// Score outcomes against an instance's lists with SWE-bench's rules.
    pub fn score(instance: &TaskInstance, outcomes: &BTreeMap<TestId, Outcome>) -> Self {
        let mut status = TestsStatus::default();
        for t in &instance.fail_to_pass {
            match outcomes.get(t) {
                Some(o) if o.is_success() => status.fail_to_pass.success.push(t.clone()),
                None | Some(Outcome::Failed | Outcome::Error | Outcome::Skipped) => {
                    status.fail_to_pass.failure.push(t.clone())
                }
                // An xpassed test is in neither list, as in SWE-bench.
                Some(_) => {}
            }
        }
        for t in &instance.pass_to_pass {
            match outcomes.get(t) {
                Some(o) if o.is_success() || *o == Outcome::Skipped => {
                    status.pass_to_pass.success.push(t.clone())
                }
                None | Some(Outcome::Failed | Outcome::Error) => {
                    status.pass_to_pass.failure.push(t.clone())
                }
                Some(_) => {}
            }
        }
        status
    }

    /// SWE-bench's `FULL` resolution: every counted FAIL_TO_PASS and
    /// PASS_TO_PASS test succeeded (an empty group counts as all succeeded).
    pub fn resolved(&self) -> bool {
        let all = |g: &SuccessFailure| g.failure.is_empty();
        // SWE-bench computes success / (success + failure) and wants 1; an
        // empty denominator counts as 1.
        all(&self.fail_to_pass) && all(&self.pass_to_pass)
    }
}

/// The per-instance report, with the keys of SWE-bench's `report.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceReport {
    /// The prediction's `model_patch` was null.
    #[serde(rename = "patch_is_None")]
    pub patch_is_none: bool,
    /// The prediction had a non-empty patch.
    pub patch_exists: bool,
    /// The patch applied to the buggy tree.
    pub patch_successfully_applied: bool,
    /// Every FAIL_TO_PASS and PASS_TO_PASS test succeeded.
    pub resolved: bool,
    /// Per-test results, when the tests ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests_status: Option<TestsStatus>,
    /// Why the instance could not be evaluated (patch did not apply,
    /// machinery failed), when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The test run's output (pytest `-rA` log); not part of the report file.
    #[serde(skip)]
    pub test_output: String,
}

/// A whole grading run, with the keys of SWE-bench's run report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Instances in the dataset.
    pub total_instances: usize,
    /// Predictions given.
    pub submitted_instances: usize,
    /// Instances whose tests ran to a verdict.
    pub completed_instances: usize,
    /// Instances resolved.
    pub resolved_instances: usize,
    /// Completed instances not resolved.
    pub unresolved_instances: usize,
    /// Predictions with an empty or null patch (not run).
    pub empty_patch_instances: usize,
    /// Instances that could not be evaluated (patch did not apply, or the
    /// machinery failed).
    pub error_instances: usize,
    /// Ids of completed instances.
    pub completed_ids: Vec<String>,
    /// Dataset instances without a prediction.
    pub incomplete_ids: Vec<String>,
    /// Ids with empty patches.
    pub empty_patch_ids: Vec<String>,
    /// Ids with predictions.
    pub submitted_ids: Vec<String>,
    /// Resolved ids.
    pub resolved_ids: Vec<String>,
    /// Unresolved ids.
    pub unresolved_ids: Vec<String>,
    /// Error ids.
    pub error_ids: Vec<String>,
    /// SWE-bench's report schema version this follows.
    pub schema_version: u32,
    /// Per-instance reports, keyed by instance id.
    pub instances: BTreeMap<String, InstanceReport>,
}

/// How to grade.
#[derive(Debug, Clone)]
pub struct GradeOptions {
    /// Instances graded in parallel.
    pub workers: usize,
    /// Also run the tests for empty patches (they stay listed as empty but
    /// get `tests_status`): useful to check that the buggy tree fails.
    pub run_empty: bool,
    /// Write SWE-bench-style logs here: `<dir>/<instance_id>/test_output.txt`
    /// and `report.json`.
    pub log_dir: Option<PathBuf>,
    /// Limits for each test run.
    pub run_options: RunOptions,
}

impl Default for GradeOptions {
    fn default() -> Self {
        GradeOptions {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            run_empty: false,
            log_dir: None,
            run_options: RunOptions::default(),
        }
    }
}

/// Grades predictions in one repository environment.
///
/// Each prediction is graded in an episode of its own [`Task`], in a new
/// workspace: a fresh interpreter runs the tests, since fork servers pay
/// off only on a workspace graded again. Tasks made from
/// [`Grader::executor`] for repeated episodes (the gym) do use them.
#[derive(Debug, Clone)]
pub struct Grader {
    sandbox: Arc<dyn Sandbox>,
    executor: Arc<dyn Executor>,
    options: GradeOptions,
    warning: Option<String>,
}

/// `env.json` as the pipeline writes it.
#[derive(Debug, Deserialize)]
struct EnvRecord {
    venv: PathBuf,
}

impl Grader {
    /// A grader running tests with `executor` in workspaces of `sandbox`.
    pub fn new(sandbox: Arc<dyn Sandbox>, executor: Arc<dyn Executor>) -> Self {
        Grader {
            sandbox,
            executor,
            options: GradeOptions::default(),
            warning: None,
        }
    }

    /// The environment of a pipeline output directory: its `env.json` (the
    /// venv) and `repo.json` (the clean tree), in the default sandbox
    /// ([`SandboxKind::Auto`]; see [`Grader::sandbox_warning`]).
    pub fn from_run_dir(run_dir: &Path) -> Result<Self> {
        Self::from_run_dir_in(run_dir, SandboxKind::default())
    }

    /// [`Grader::from_run_dir`] in a sandbox of `kind`.
    pub fn from_run_dir_in(run_dir: &Path, kind: SandboxKind) -> Result<Self> {
        let env_path = run_dir.join("env.json");
        let env: EnvRecord = store::read_json(&env_path)?
            .ok_or_else(|| Error::invalid(env_path.display().to_string(), "missing"))?;
        let mut environment = Environment::open(&env.venv)?;
        // The venv may be shared by runs; the clean tree is this run's.
        let repo = store::read_json::<RepoInfo>(&run_dir.join("repo.json"))?;
        if let Some(repo) = &repo {
            environment.repo = repo.root.clone();
        }
        // Fork servers, prepared on each task's buggy tree: episodes and
        // repeated grades of an instance skip interpreter start and
        // collection. Where a server could not be exact, a fresh
        // interpreter runs the tests (see `gym`).
        let executor =
            PytestExecutor::new("python", environment.spec.test_cmd.clone()).forking(true);
        let chosen = match &repo {
            Some(repo) => kind.make_for(&environment, repo)?,
            None => kind.make(&environment)?,
        };
        let mut grader = Grader::new(chosen.sandbox, Arc::new(executor));
        grader.warning = chosen.warning;
        Ok(grader)
    }

    /// Set when the default sandbox found no isolating sandbox here and
    /// grades on the host: why (for the caller to show).
    pub fn sandbox_warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// The sandbox workspaces come from.
    pub fn sandbox(&self) -> &Arc<dyn Sandbox> {
        &self.sandbox
    }

    /// The test runner.
    pub fn executor(&self) -> &Arc<dyn Executor> {
        &self.executor
    }

    /// Grade with these options.
    pub fn with_options(mut self, options: GradeOptions) -> Self {
        self.options = options;
        self
    }

    /// Run `instance`'s tests on its buggy tree with `prediction` applied.
    /// Machinery failures are returned as errors; a patch that does not
    /// apply is an [`InstanceReport`] with `error` set.
    pub fn grade_one(
        &self,
        instance: &TaskInstance,
        prediction: &Prediction,
    ) -> Result<InstanceReport> {
        let mut report = InstanceReport {
            patch_is_none: prediction.model_patch.is_none(),
            patch_exists: !prediction.is_empty(),
            ..Default::default()
        };
        if prediction.is_empty() && !self.options.run_empty {
            return Ok(report);
        }
        let task = Task::from_instance(
            instance.clone(),
            self.sandbox.clone(),
            self.executor.clone(),
        )
        .with_run_options(self.options.run_options.clone());
        let mut episode = task.episode()?;
        let patch = Patch::from_text(prediction.model_patch.clone().unwrap_or_default());
        let (_, run, not_applied) = episode.grade_with_report(&patch)?;
        let (Some(run), None) = (run, not_applied.clone()) else {
            let reason = not_applied.unwrap_or_default();
            report.error = Some(format!("patch did not apply: {reason}"));
            return Ok(report);
        };
        report.patch_successfully_applied = true;
        let status = TestsStatus::score(instance, &run.outcomes);
        report.resolved = status.resolved();
        report.tests_status = Some(status);
        report.test_output = run.log;
        Ok(report)
    }

    /// Grade every prediction, in parallel, into a run report. Predictions
    /// for unknown instances are ignored (as the harness ignores them).
    pub fn grade(&self, instances: &[TaskInstance], predictions: &[Prediction]) -> Result<Report> {
        let by_id: BTreeMap<&str, &TaskInstance> = instances
            .iter()
            .map(|i| (i.instance_id.as_str(), i))
            .collect();
        let mut preds: BTreeMap<&str, &Prediction> = BTreeMap::new();
        for p in predictions {
            preds.insert(p.instance_id.as_str(), p);
        }
        let jobs: Vec<(&TaskInstance, &Prediction)> = preds
            .iter()
            .filter_map(|(id, p)| by_id.get(id).map(|i| (*i, *p)))
            .collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.options.workers.max(1))
            .build()
            .map_err(|e| Error::invalid("grade workers", e.to_string()))?;
        let results: Vec<(String, InstanceReport)> = pool.install(|| {
            use rayon::prelude::*;
            jobs.par_iter()
                .map(|(inst, pred)| {
                    let r = self
                        .grade_one(inst, pred)
                        .unwrap_or_else(|e| InstanceReport {
                            patch_is_none: pred.model_patch.is_none(),
                            patch_exists: !pred.is_empty(),
                            error: Some(e.to_string()),
                            ..Default::default()
                        });
                    (inst.instance_id.clone(), r)
                })
                .collect()
        });
        if let Some(dir) = &self.options.log_dir {
            for (id, r) in &results {
                write_logs(dir, id, r)?;
            }
        }
        let dataset: BTreeSet<&str> = by_id.keys().copied().collect();
        let mut report = Report {
            total_instances: instances.len(),
            submitted_instances: preds.len(),
            submitted_ids: preds.keys().map(|s| s.to_string()).collect(),
            incomplete_ids: dataset
                .iter()
                .filter(|id| !preds.contains_key(*id))
                .map(|s| s.to_string())
                .collect(),
            schema_version: 2,
            ..Default::default()
        };
        for (id, r) in results {
            let pred = preds[id.as_str()];
            if pred.is_empty() {
                report.empty_patch_ids.push(id.clone());
            } else if r.error.is_some() {
                report.error_ids.push(id.clone());
            } else {
                report.completed_ids.push(id.clone());
                if r.resolved {
                    report.resolved_ids.push(id.clone());
                } else {
                    report.unresolved_ids.push(id.clone());
                }
            }
            report.instances.insert(id, r);
        }
        report.completed_instances = report.completed_ids.len();
        report.resolved_instances = report.resolved_ids.len();
        report.unresolved_instances = report.unresolved_ids.len();
        report.empty_patch_instances = report.empty_patch_ids.len();
        report.error_instances = report.error_ids.len();
        Ok(report)
    }
}

fn write_logs(dir: &Path, id: &str, r: &InstanceReport) -> Result<()> {
    let d = dir.join(id);
    std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    let log = d.join("test_output.txt");
    std::fs::write(&log, &r.test_output).map_err(|e| Error::io(&log, e))?;
    store::write_json(&d.join("report.json"), &serde_json::json!({ id: r }))
}

/// Read predictions: JSONL, a JSON list, or a JSON object keyed by instance
/// id (the three forms SWE-bench accepts).
pub fn load_predictions(path: &Path) -> Result<Vec<Prediction>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad = |e: serde_json::Error| Error::record_source(path, e.line(), "", e);
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(&text).map_err(bad);
    }
    // One JSON object keyed by id, or else one record per line.
    match serde_json::from_str::<BTreeMap<String, Prediction>>(&text) {
        Ok(map) => Ok(map.into_values().collect()),
        Err(_) => store::read_jsonl(path),
    }
}

/// Grade the predictions in `predictions` against the instances in
/// `instances` (JSONL files), in the environment of the pipeline output
/// directory `run_dir`, with `workers` instances in parallel.
pub fn grade_predictions(
    run_dir: &Path,
    instances: &Path,
    predictions: &Path,
    workers: usize,
) -> Result<Report> {
    let instances: Vec<TaskInstance> = store::read_jsonl(instances)?;
    let predictions = load_predictions(predictions)?;
    Grader::from_run_dir(run_dir)?
        .with_options(GradeOptions {
            workers,
            ..Default::default()
        })
        .grade(&instances, &predictions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance() -> TaskInstance {
        let c = smith_core::Candidate::new(
            &smith_core::RepoRef::new("o/r", "abc"),
            "s",
            vec![],
            "",
            Patch::from_text("p"),
        );
        TaskInstance::new(
            &c,
            vec!["f1".into(), "f2".into()],
            vec!["p1".into(), "p2".into()],
            String::new(),
            String::new(),
            String::new(),
        )
    }

    #[test]
    fn scoring_follows_swebench_rules() {
        use Outcome::*;
        let i = instance();
        let outcomes: BTreeMap<TestId, Outcome> = [
            ("f1", XFailed),
            ("f2", Skipped),
            ("p1", Skipped),
            ("p2", Passed),
        ]
        .into_iter()
        .map(|(t, o)| (TestId::from(t), o))
        .collect();
        let s = TestsStatus::score(&i, &outcomes);
        assert_eq!(s.fail_to_pass.success, vec![TestId::from("f1")]);
        assert_eq!(s.fail_to_pass.failure, vec![TestId::from("f2")]);
        assert_eq!(
            s.pass_to_pass.success.len(),
            2,
            "a skipped P2P is maintained"
        );
        assert!(!s.resolved());
        let missing = TestsStatus::score(&i, &BTreeMap::new());
        assert_eq!(
            missing.pass_to_pass.failure.len(),
            2,
            "tests that did not run failed"
        );
    }

    #[test]
    fn predictions_load_in_all_three_forms() {
        let dir = tempfile::tempdir().unwrap();
        let p = Prediction::new("a", "diff", "m");
        let q = Prediction {
            instance_id: "b".into(),
            model_patch: None,
            model_name_or_path: "m".into(),
        };
        let jsonl = dir.path().join("p.jsonl");
        store::write_jsonl(&jsonl, &[p.clone(), q.clone()]).unwrap();
        let list = dir.path().join("l.json");
        std::fs::write(&list, serde_json::to_string(&[&p, &q]).unwrap()).unwrap();
        let map = dir.path().join("m.json");
        std::fs::write(
            &map,
            serde_json::to_string(&serde_json::json!({"a": p, "b": q})).unwrap(),
        )
        .unwrap();
        for path in [jsonl, list, map] {
            let mut got = load_predictions(&path).unwrap();
            got.sort_by(|x, y| x.instance_id.cmp(&y.instance_id));
            assert_eq!(got, vec![p.clone(), q.clone()], "{}", path.display());
        }
        assert!(q.is_empty() && !p.is_empty());
    }
}
