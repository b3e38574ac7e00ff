//! Wrap smith's test executor in your own: here, one that counts test runs.
//! The pipeline runs unchanged — baseline, validation, issues, summary.
//!
//! Run with `cargo run --example counting_executor [repo] [out]`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use smith::pipeline::{Config, Pipeline, Summary};
use smith::{Executor, RunOptions, TestReport, TestSelection, Workspace};

/// Counts the runs of the executor it wraps (and of the fresh-interpreter
/// and hash-seeded variants the pipeline asks it for).
#[derive(Debug)]
pub struct CountingExecutor {
    inner: Box<dyn Executor>,
    runs: Arc<AtomicUsize>,
}

impl CountingExecutor {
    fn wrap(inner: Box<dyn Executor>, runs: &Arc<AtomicUsize>) -> Self {
        CountingExecutor {
            inner,
            runs: runs.clone(),
        }
    }
}

impl Executor for CountingExecutor {
    fn run_tests(
        &self,
        workspace: &mut dyn Workspace,
        selection: &TestSelection,
        options: &RunOptions,
    ) -> smith::Result<TestReport> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.inner.run_tests(workspace, selection, options)
    }
    fn prepare(&self, workspace: &mut dyn Workspace) -> smith::Result<()> {
        self.inner.prepare(workspace)
    }
    fn fresh(&self) -> Option<Box<dyn Executor>> {
        Some(Box::new(Self::wrap(self.inner.fresh()?, &self.runs)))
    }
    fn with_seed(&self, seed: u32) -> Option<Box<dyn Executor>> {
        Some(Box::new(Self::wrap(
            self.inner.with_seed(seed)?,
            &self.runs,
        )))
    }
}

/// Run the pipeline on `repo` with counted test runs; returns the summary
/// and the number of runs.
pub fn counting_executor_run(
    repo: &Path,
    out: &Path,
    cache: Option<&Path>,
) -> smith::Result<(Summary, usize)> {
    let mut config = Config::new(repo, out);
    config.cache_dir = cache.map(Path::to_path_buf);
    config.strategies = Some(vec!["func_pm_op_change".into()]);
    config.max_candidates = Some(3);
    config.baseline_runs = 2;
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let summary = Pipeline::new(config)
        .wrap_executor(move |inner| Arc::new(CountingExecutor::wrap(Box::new(inner), &counter)))
        .run()?;
    Ok((summary, runs.load(Ordering::SeqCst)))
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let repo = args.next().unwrap_or_else(|| "examples/demo-repo".into());
    let out = args
        .next()
        .unwrap_or_else(|| "smith-out/counting-executor".into());
    let (summary, runs) = counting_executor_run(Path::new(&repo), Path::new(&out), None)?;
    println!(
        "{runs} test runs for {} candidates validated, {} kept",
        summary.validated, summary.kept
    );
    Ok(())
}
