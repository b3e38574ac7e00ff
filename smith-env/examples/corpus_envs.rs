//! Build environments for every repository under a corpus directory with no
//! hand-written spec, once with uv and once with pip, run each suite once in a
//! local workspace, and print a table.
//!
//! ```text
//! cargo run --release -p smith-env --example corpus_envs -- [CORPUS_DIR [CACHE_DIR]]
//! ```
//!
//! Without `CORPUS_DIR`, the dev corpus is fetched (or found up to date) with
//! smith's own script, `scripts/corpus/fetch-corpus.sh -s dev`, into
//! `target/smith-mutate-corpus`, the cache the tests and benches use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use smith_core::{RunOptions, Sandbox};
use smith_env::{build_environment, BwrapSandbox, EnvOptions, Environment, LocalSandbox};

fn main() {
    if let Err(e) = try_main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn try_main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let corpus = match args.next() {
        Some(dir) => PathBuf::from(dir),
        None => fetch_dev_corpus()?,
    };
    let cache = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| corpus.join(".smith-cache"));
    let with_pip = !std::env::args().any(|a| a == "--no-pip");
    let with_suite = !std::env::args().any(|a| a == "--no-suite");
    let bwrap = std::env::args().any(|a| a == "--bwrap");
    let reuse = std::env::args().any(|a| a == "--reuse");
    let mut repos: Vec<PathBuf> = std::fs::read_dir(&corpus)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    repos.sort();
    println!("| repo | strategy | uv build s | pip build s | collected | passed | failed | errors | suite s |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for repo in repos {
        let name = repo
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let uv = build(&repo, &cache, true, reuse);
        let pip = if with_pip {
            Some(build(&repo, &cache, false, reuse))
        } else {
            None
        };
        let secs = |r: &anyhow::Result<Environment>| match r {
            Ok(env) => format!("{:.1}", env.build_secs()),
            Err(_) => "FAILED".into(),
        };
        let Ok(env) = &uv else {
            println!(
                "| {name} | FAILED: {} | | | | | | | |",
                uv.as_ref()
                    .err()
                    .map(|e| e.to_string().replace('\n', " "))
                    .unwrap_or_default()
            );
            continue;
        };
        let suite = if with_suite {
            run_suite(env, bwrap)?
        } else {
            (0, 0, 0, 0.0)
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            env.spec.strategy,
            secs(&uv),
            pip.as_ref().map(secs).unwrap_or_else(|| "-".into()),
            env.collected.unwrap_or(0),
            suite.0,
            suite.1,
            suite.2,
            suite.3
        );
        if !env.spec.notes.is_empty() {
            eprintln!("{name}: notes: {}", env.spec.notes.join("; "));
        }
        eprintln!("{name}: test_cmd: python {}", env.spec.test_cmd.join(" "));
    }
    Ok(())
}

/// The dev corpus in the workspace's `target/`, fetched by smith's script.
fn fetch_dev_corpus() -> anyhow::Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow::anyhow!("smith-env has no parent directory"))?;
    let script = workspace.join("scripts/corpus/fetch-corpus.sh");
    let cache = workspace.join("target/smith-mutate-corpus");
    let status = Command::new("bash")
        .arg(&script)
        .args(["-s", "dev"])
        .arg(&cache)
        .status()?;
    anyhow::ensure!(
        status.success(),
        "{} -s dev {} failed ({status})",
        script.display(),
        cache.display()
    );
    Ok(cache)
}

fn build(repo: &Path, cache: &Path, uv: bool, reuse: bool) -> anyhow::Result<Environment> {
    let mut options = EnvOptions::new(cache);
    options.use_uv = Some(uv);
    options.rebuild = !reuse;
    let env = build_environment(repo, &options)?;
    if std::env::var_os("SMITH_ENV_STEPS").is_some() {
        for step in &env.steps {
            eprintln!(
                "  [{}] {:>7.1}s {} {} {}",
                if uv { "uv" } else { "pip" },
                step.secs,
                if step.ok { "ok  " } else { "FAIL" },
                step.strategy,
                step.name
            );
        }
    }
    Ok(env)
}

/// (passed, failed, errors, seconds) of one full run.
fn run_suite(env: &Environment, bwrap: bool) -> anyhow::Result<(usize, usize, usize, f64)> {
    let sandbox: Box<dyn Sandbox> = if bwrap {
        Box::new(BwrapSandbox::new(env)?)
    } else {
        Box::new(LocalSandbox::new(env)?)
    };
    let mut ws = sandbox.workspace()?;
    let mut cmd = env.test_command();
    cmd.args.push("-q".into());
    let out = ws.run(
        &cmd,
        &RunOptions {
            timeout: Some(Duration::from_secs(600)),
            max_output: 1 << 20,
            test_timeout: None,
            ..RunOptions::default()
        },
    )?;
    let summary = out
        .stdout
        .lines()
        .rev()
        .find(|l| l.contains(" in ") && (l.contains("passed") || l.contains("failed")))
        .unwrap_or("");
    let count = |word: &str| -> usize {
        let tokens: Vec<&str> = summary
            .split([' ', ',', '='])
            .filter(|t| !t.is_empty())
            .collect();
        tokens
            .windows(2)
            .filter(|w| w[1].starts_with(word))
            .filter_map(|w| w[0].parse::<usize>().ok())
            .sum()
    };
    if out.exit_code != Some(0) {
        eprintln!("suite exit {:?}: {}", out.exit_code, summary);
    }
    Ok((
        count("passed"),
        count("failed"),
        count("error"),
        out.duration.as_secs_f64(),
    ))
}
