//! Python bindings of smith, built by maturin into the `smith` package
//! (this is its native module, `smith._smith`; the package's pure-Python
//! part wraps it). The pipeline, task loading, RL episodes and grading are
//! the facade crate's; this crate only converts between Python and Rust.
//!
//! Every call that runs tests, commands or the pipeline releases the GIL, so
//! episodes driven from several Python threads run in parallel. Errors are
//! raised as `smith.SmithError` carrying smith's message.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyUserWarning};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde::Deserialize;

use smith::grade::{GradeOptions, Grader, Prediction};
use smith::gym;
use smith::pipeline::{Config, Pipeline, SandboxKind};
use smith::{CommandSpec, Patch, RunOptions, TaskInstance, TestId};

create_exception!(
    _smith,
    SmithError,
    PyRuntimeError,
    "An error from smith; the message is smith's."
);

fn py_err(e: smith::Error) -> PyErr {
    SmithError::new_err(e.to_string())
}

fn bad_input(what: &str, e: impl std::fmt::Display) -> PyErr {
    SmithError::new_err(format!("{what}: {e}"))
}

fn ids(tests: &[TestId]) -> Vec<String> {
    tests.iter().map(|t| t.to_string()).collect()
}

/// Options of `smith.run`, by the names of the pipeline's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunArgs {
    repo_name: Option<String>,
    cache_dir: Option<PathBuf>,
    seed: Option<u64>,
    strategies: Option<Vec<String>>,
    max_candidates: Option<usize>,
    max_per_entity: Option<usize>,
    workers: Option<usize>,
    baseline_runs: Option<u32>,
    confirm: Option<bool>,
    fork: Option<bool>,
    fresh_check: Option<bool>,
    sandbox: Option<SandboxKind>,
    combine: Option<bool>,
    combine_per_group: Option<usize>,
    force: Option<bool>,
    min_pass_rate: Option<f64>,
    timeout_floor: Option<f64>,
    timeout_factor: Option<f64>,
}

impl RunArgs {
    fn apply(self, c: &mut Config) {
        macro_rules! set {
            ($($field:ident),*) => {$( if let Some(v) = self.$field { c.$field = v; } )*};
        }
        set!(
            seed,
            workers,
            baseline_runs,
            confirm,
            fork,
            fresh_check,
            sandbox,
            combine,
            combine_per_group,
            force,
            min_pass_rate,
            timeout_factor
        );
        c.repo_name = self.repo_name.or(c.repo_name.take());
        c.cache_dir = self.cache_dir.or(c.cache_dir.take());
        c.strategies = self.strategies.or(c.strategies.take());
        c.max_candidates = self.max_candidates.or(c.max_candidates);
        c.max_per_entity = self.max_per_entity.or(c.max_per_entity);
        if let Some(s) = self.timeout_floor {
            c.timeout_floor = Duration::from_secs_f64(s);
        }
    }
}

/// Run the pipeline on `repo` into `out`; `options` is a JSON object of
/// settings. Returns the summary as JSON.
#[pyfunction]
fn run(py: Python<'_>, repo: PathBuf, out: PathBuf, options: &str) -> PyResult<String> {
    let args: RunArgs =
        serde_json::from_str(options).map_err(|e| bad_input("smith.run options", e))?;
    let mut config = Config::new(repo, out);
    args.apply(&mut config);
    let summary = py.detach(|| Pipeline::new(config).run()).map_err(py_err)?;
    serde_json::to_string(&summary).map_err(|e| bad_input("summary", e))
}

fn sandbox_kind(name: Option<&str>) -> PyResult<SandboxKind> {
    match name {
        None => Ok(SandboxKind::default()),
        Some(n) => serde_json::from_value(serde_json::Value::String(n.to_string())).map_err(|_| {
            SmithError::new_err(format!(
                "unknown sandbox {n:?}: expected auto, local, bwrap or docker"
            ))
        }),
    }
}

fn run_options(timeout: Option<f64>) -> RunOptions {
    let mut options = RunOptions::default();
    if let Some(t) = timeout {
        options.timeout = Some(Duration::from_secs_f64(t));
    }
    options
}

fn grader(py: Python<'_>, run_dir: PathBuf, sandbox: Option<&str>) -> PyResult<Grader> {
    let kind = sandbox_kind(sandbox)?;
    let grader = py
        .detach(|| Grader::from_run_dir_in(&run_dir, kind))
        .map_err(py_err)?;
    if let Some(w) = grader.sandbox_warning() {
        PyErr::warn(
            py,
            &py.get_type::<PyUserWarning>(),
            &std::ffi::CString::new(w.replace('\0', " ")).unwrap_or_default(),
            1,
        )?;
    }
    Ok(grader)
}

fn parse_instances(records: Vec<String>) -> PyResult<Vec<TaskInstance>> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| serde_json::from_str(r).map_err(|e| bad_input(&format!("instance {i}"), e)))
        .collect()
}

/// Tasks for instances (JSON records) in the environment of the pipeline
/// output directory `run_dir`.
#[pyfunction]
#[pyo3(signature = (records, run_dir, sandbox=None, timeout=None))]
fn load_tasks(
    py: Python<'_>,
    records: Vec<String>,
    run_dir: PathBuf,
    sandbox: Option<&str>,
    timeout: Option<f64>,
) -> PyResult<Vec<Task>> {
    let instances = parse_instances(records)?;
    let grader = grader(py, run_dir, sandbox)?;
    Ok(instances
        .into_iter()
        .map(|i| Task {
            inner: gym::Task::from_instance(i, grader.sandbox().clone(), grader.executor().clone())
                .with_run_options(run_options(timeout)),
        })
        .collect())
}

/// Grade predictions (JSON records) against instances (JSON records) in the
/// environment of `run_dir`; returns SWE-bench's report as JSON.
#[pyfunction]
#[pyo3(signature = (instances, predictions, run_dir, workers=None, sandbox=None, log_dir=None, run_empty=false, timeout=None))]
#[allow(clippy::too_many_arguments)]
fn grade_predictions(
    py: Python<'_>,
    instances: Vec<String>,
    predictions: Vec<String>,
    run_dir: PathBuf,
    workers: Option<usize>,
    sandbox: Option<&str>,
    log_dir: Option<PathBuf>,
    run_empty: bool,
    timeout: Option<f64>,
) -> PyResult<String> {
    let instances = parse_instances(instances)?;
    let predictions: Vec<Prediction> = predictions
        .iter()
        .enumerate()
        .map(|(i, r)| serde_json::from_str(r).map_err(|e| bad_input(&format!("prediction {i}"), e)))
        .collect::<PyResult<_>>()?;
    let mut options = GradeOptions {
        run_empty,
        log_dir,
        run_options: run_options(timeout),
        ..Default::default()
    };
    if let Some(w) = workers {
        options.workers = w;
    }
    let grader = grader(py, run_dir, sandbox)?.with_options(options);
    let report = py
        .detach(|| grader.grade(&instances, &predictions))
        .map_err(py_err)?;
    serde_json::to_string(&report).map_err(|e| bad_input("report", e))
}

/// One task: a bug planted in a repository, with the tests that show it.
#[pyclass(module = "smith._smith", frozen)]
#[derive(Debug, Clone)]
struct Task {
    inner: gym::Task,
}

#[pymethods]
impl Task {
    /// The instance id.
    #[getter]
    fn instance_id(&self) -> String {
        self.inner.instance().instance_id.clone()
    }

    /// The issue text an agent is given.
    #[getter]
    fn problem_statement(&self) -> String {
        self.inner.instance().problem_statement.clone()
    }

    /// Tests the bug breaks (FAIL_TO_PASS).
    #[getter]
    fn fail_to_pass(&self) -> Vec<String> {
        ids(&self.inner.instance().fail_to_pass)
    }

    /// Tests that pass with and without the bug (PASS_TO_PASS).
    #[getter]
    fn pass_to_pass(&self) -> Vec<String> {
        ids(&self.inner.instance().pass_to_pass)
    }

    /// The patch that plants the bug in the clean tree.
    #[getter]
    fn patch(&self) -> String {
        self.inner.instance().patch.clone()
    }

    /// The known fix: the reverse of the bug patch.
    #[getter]
    fn gold_patch(&self) -> String {
        Patch::from_text(self.inner.instance().patch.clone())
            .reverse()
            .as_str()
            .to_string()
    }

    /// The whole instance record as JSON.
    fn instance_json(&self) -> PyResult<String> {
        serde_json::to_string(self.inner.instance()).map_err(|e| bad_input("instance", e))
    }

    /// The whole instance record, as a dict.
    #[getter]
    fn instance<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?
            .call_method1("loads", (self.instance_json()?,))
    }

    /// Start an episode: a workspace holding the buggy tree.
    fn episode(&self, py: Python<'_>) -> PyResult<Episode> {
        let task = self.inner.clone();
        let episode = py.detach(move || task.episode()).map_err(py_err)?;
        Ok(Episode {
            inner: Mutex::new(episode),
        })
    }

    /// Grade a patch against the buggy tree in a fresh episode.
    fn grade(&self, py: Python<'_>, patch: &str) -> PyResult<Grade> {
        let task = self.inner.clone();
        let patch = Patch::from_text(patch);
        let grade = py.detach(move || task.grade(&patch)).map_err(py_err)?;
        Ok(Grade::from(grade))
    }

    fn __repr__(&self) -> String {
        format!("Task({:?})", self.inner.instance().instance_id)
    }
}

/// One attempt at a task.
#[pyclass(module = "smith._smith", frozen)]
#[derive(Debug)]
struct Episode {
    inner: Mutex<gym::Episode>,
}

impl Episode {
    fn lock(&self) -> PyResult<MutexGuard<'_, gym::Episode>> {
        self.inner
            .lock()
            .map_err(|_| SmithError::new_err("the episode failed in another thread"))
    }

    /// Run `f` on the episode with the GIL released.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut gym::Episode) -> smith::Result<T> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let mut episode = self.lock()?;
            f(&mut episode).map_err(py_err)
        })
    }
}

#[pymethods]
impl Episode {
    /// The task this episode attempts.
    #[getter]
    fn task(&self) -> PyResult<Task> {
        Ok(Task {
            inner: self.lock()?.task().clone(),
        })
    }

    /// Back to the buggy tree.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |e| e.reset())
    }

    /// Run a shell command (`bash -c`) in the workspace; returns the exit
    /// code (-1 when killed or timed out) and stdout followed by stderr.
    #[pyo3(signature = (command, timeout=None))]
    fn exec(&self, py: Python<'_>, command: &str, timeout: Option<f64>) -> PyResult<(i32, String)> {
        let spec = CommandSpec::new("bash", ["-c", command]);
        let out = self.with(py, |e| {
            let mut options = e.task().run_options().clone();
            if let Some(t) = timeout {
                options.timeout = Some(Duration::from_secs_f64(t));
            }
            e.exec_with(&spec, &options)
        })?;
        let mut text = out.stdout;
        text.push_str(&out.stderr);
        if out.timed_out {
            text.push_str("\n[smith: the command was killed at its time limit]\n");
        }
        let code = match out.exit_code {
            Some(c) if !out.timed_out => c,
            _ => -1,
        };
        Ok((code, text))
    }

    /// A file of the workspace, as text.
    fn read_file(&self, py: Python<'_>, path: &str) -> PyResult<String> {
        let bytes = self.with(py, |e| e.workspace().read(path))?;
        String::from_utf8(bytes).map_err(|_| SmithError::new_err(format!("{path}: not UTF-8 text")))
    }

    /// Write a file of the workspace.
    fn write_file(&self, py: Python<'_>, path: &str, content: &str) -> PyResult<()> {
        self.with(py, |e| e.workspace().write(path, content.as_bytes()))
    }

    /// Apply a unified diff to the workspace; raises if it does not apply.
    fn apply_patch(&self, py: Python<'_>, patch: &str) -> PyResult<()> {
        let patch = Patch::from_text(patch);
        self.with(py, |e| e.workspace().apply(&patch))
    }

    /// The episode's changes to the buggy tree, as a unified diff.
    fn diff(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |e| e.diff().map(|p| p.as_str().to_string()))
    }

    /// Run the task's tests. With `patch`, first reset to the buggy tree and
    /// apply it; without, grade the workspace as it is now.
    #[pyo3(signature = (patch=None))]
    fn grade(&self, py: Python<'_>, patch: Option<&str>) -> PyResult<Grade> {
        let grade = self.with(py, |e| match patch {
            Some(p) => e.grade(&Patch::from_text(p)),
            None => e.grade_current(),
        })?;
        Ok(Grade::from(grade))
    }

    fn __repr__(&self) -> String {
        match self.inner.try_lock() {
            Ok(e) => format!("Episode({:?})", e.task().instance().instance_id),
            Err(_) => "Episode(<busy>)".to_string(),
        }
    }
}

/// The result of grading one attempt.
#[pyclass(module = "smith._smith", frozen, get_all)]
#[derive(Debug, Clone)]
struct Grade {
    /// Every FAIL_TO_PASS and PASS_TO_PASS test passed.
    resolved: bool,
    /// 1.0 when resolved, else 0.0.
    reward: f64,
    /// The patch applied (an unappliable patch is unresolved).
    applied: bool,
    /// FAIL_TO_PASS tests that passed.
    fail_to_pass_passed: Vec<String>,
    /// FAIL_TO_PASS tests that failed, errored or did not run.
    fail_to_pass_failed: Vec<String>,
    /// PASS_TO_PASS tests that passed.
    pass_to_pass_passed: Vec<String>,
    /// PASS_TO_PASS tests that failed, errored or did not run.
    pass_to_pass_failed: Vec<String>,
}

impl From<gym::Grade> for Grade {
    fn from(g: gym::Grade) -> Self {
        Grade {
            resolved: g.resolved,
            reward: g.reward(),
            applied: g.applied,
            fail_to_pass_passed: ids(&g.fail_to_pass.passed),
            fail_to_pass_failed: ids(&g.fail_to_pass.failed),
            pass_to_pass_passed: ids(&g.pass_to_pass.passed),
            pass_to_pass_failed: ids(&g.pass_to_pass.failed),
        }
    }
}

#[pymethods]
impl Grade {
    /// The grade as a dict, the outcome lists grouped as SWE-bench groups
    /// them (`FAIL_TO_PASS`/`PASS_TO_PASS` → `success`/`failure`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("resolved", self.resolved)?;
        d.set_item("reward", self.reward)?;
        d.set_item("applied", self.applied)?;
        for (key, passed, failed) in [
            (
                "FAIL_TO_PASS",
                &self.fail_to_pass_passed,
                &self.fail_to_pass_failed,
            ),
            (
                "PASS_TO_PASS",
                &self.pass_to_pass_passed,
                &self.pass_to_pass_failed,
            ),
        ] {
            let group = PyDict::new(py);
            group.set_item("success", passed)?;
            group.set_item("failure", failed)?;
            d.set_item(key, group)?;
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "Grade(resolved={}, reward={}, applied={}, FAIL_TO_PASS {}/{} passed, PASS_TO_PASS {}/{} passed)",
            if self.resolved { "True" } else { "False" },
            self.reward,
            if self.applied { "True" } else { "False" },
            self.fail_to_pass_passed.len(),
            self.fail_to_pass_passed.len() + self.fail_to_pass_failed.len(),
            self.pass_to_pass_passed.len(),
            self.pass_to_pass_passed.len() + self.pass_to_pass_failed.len(),
        )
    }
}

/// The native module `smith._smith`.
#[pymodule]
fn _smith(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("SmithError", m.py().get_type::<SmithError>())?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(load_tasks, m)?)?;
    m.add_function(wrap_pyfunction!(grade_predictions, m)?)?;
    m.add_class::<Task>()?;
    m.add_class::<Episode>()?;
    m.add_class::<Grade>()?;
    Ok(())
}
