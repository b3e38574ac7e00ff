//! Wrap smith's sandbox in your own: here, one that logs every command its
//! workspaces run. The pipeline runs unchanged.
//!
//! Run with `cargo run --example logging_sandbox [repo] [out]`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use smith::pipeline::{Config, Pipeline, Summary};
use smith::{CommandSpec, Patch, RunOptions, RunOutput, Sandbox, Service, Workspace};

/// The commands run, in order.
pub type Log = Arc<Mutex<Vec<String>>>;

/// A sandbox whose workspaces log the commands they run.
#[derive(Debug)]
pub struct LoggingSandbox {
    inner: Arc<dyn Sandbox>,
    log: Log,
}

impl Sandbox for LoggingSandbox {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn workspace(&self) -> smith::Result<Box<dyn Workspace>> {
        Ok(Box::new(LoggingWorkspace {
            inner: self.inner.workspace()?,
            log: self.log.clone(),
        }))
    }
}

/// A workspace that logs the commands it runs or starts.
#[derive(Debug)]
struct LoggingWorkspace {
    inner: Box<dyn Workspace>,
    log: Log,
}

impl LoggingWorkspace {
    fn note(&self, what: &str, command: &CommandSpec) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.push(format!("{what} {}", command.display()));
    }
}

impl Workspace for LoggingWorkspace {
    fn root(&self) -> &Path {
        self.inner.root()
    }
    fn read(&self, path: &str) -> smith::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn write(&mut self, path: &str, contents: &[u8]) -> smith::Result<()> {
        self.inner.write(path, contents)
    }
    fn apply(&mut self, patch: &Patch) -> smith::Result<()> {
        self.inner.apply(patch)
    }
    fn reset(&mut self) -> smith::Result<()> {
        self.inner.reset()
    }
    fn run(&mut self, command: &CommandSpec, options: &RunOptions) -> smith::Result<RunOutput> {
        self.note("run", command);
        self.inner.run(command, options)
    }
    fn spawn(&mut self, command: &CommandSpec) -> smith::Result<Box<dyn Service>> {
        self.note("spawn", command);
        self.inner.spawn(command)
    }
}

/// Run the pipeline on `repo` with logged commands; returns the summary
/// and the log.
pub fn logging_sandbox_run(
    repo: &Path,
    out: &Path,
    cache: Option<&Path>,
) -> smith::Result<(Summary, Vec<String>)> {
    let mut config = Config::new(repo, out);
    config.cache_dir = cache.map(Path::to_path_buf);
    config.strategies = Some(vec!["func_pm_op_swap".into()]);
    config.max_candidates = Some(3);
    config.baseline_runs = 2;
    let log: Log = Arc::default();
    let handle = log.clone();
    let summary = Pipeline::new(config)
        .wrap_sandbox(move |inner| {
            Arc::new(LoggingSandbox {
                inner,
                log: handle.clone(),
            })
        })
        .run()?;
    let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok((summary, log))
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let repo = args.next().unwrap_or_else(|| "examples/demo-repo".into());
    let out = args
        .next()
        .unwrap_or_else(|| "smith-out/logging-sandbox".into());
    let (summary, log) = logging_sandbox_run(Path::new(&repo), Path::new(&out), None)?;
    for line in &log {
        println!("{line}");
    }
    println!(
        "{} commands for {} candidates validated",
        log.len(),
        summary.validated
    );
    Ok(())
}
