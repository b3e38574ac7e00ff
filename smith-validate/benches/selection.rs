//! Coverage-guided selection versus the whole suite per candidate, side by
//! side in one process on the same candidates.
//!
//! Repository: `SMITH_BENCH_REPO` (default: the demo repository,
//! `examples/demo-repo`), its library directory `SMITH_BENCH_SRC` (default
//! `src`), extra `PYTHONPATH` `SMITH_BENCH_PYTHONPATH` (default `src` for the
//! demo), test arguments `SMITH_BENCH_ARGS` (default
//! `-m pytest -p no:cacheprovider tests`), venv `bin` directory
//! `SMITH_BENCH_VENV_BIN` (default: the test venv with pytest and coverage),
//! number of candidates `SMITH_BENCH_N` (default 24; spread evenly over
//! `SMITH_BENCH_CANDIDATES`, a JSONL file of candidates such as the ones
//! `smith mutate` writes, or else over body-level operator swaps), workers
//! `SMITH_BENCH_WORKERS` (default 2). `SMITH_BENCH_CRITERION=0` skips the
//! criterion timings and keeps only the side-by-side pass;
//! `SMITH_BENCH_PLAIN=0` leaves out the middle mode below;
//! `SMITH_BENCH_VERBOSE=1` lists every candidate's selection and seconds;
//! `SMITH_BENCH_TIMEOUT_FLOOR` (seconds), `SMITH_BENCH_TIMEOUT_FACTOR` and
//! `SMITH_BENCH_TEST_TIMEOUT_FLOOR` (seconds, 0 = no per-test limit) replace
//! the validator's time-limit defaults.
//!
//! The side-by-side pass validates the same candidates three ways: coverage
//! selection through fork servers (smith's default), coverage selection with
//! a fresh interpreter per run, and the whole suite per candidate in a fresh
//! interpreter (SWE-smith's way). For each it prints seconds per candidate,
//! candidates per second, label disagreements with the whole-suite run, and
//! the physical limit (sum of the selected tests' own baseline durations
//! divided by the workers).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{criterion_main, Criterion};
use smith_core::{
    Baseline, Candidate, Executor, FileChange, Patch, RunOptions, Sandbox, Validation, Verdict,
};
use smith_validate::{
    labels, run_baseline_with, select_tests, validate, validate_one, CandidateSelection,
    CoverageMap, PytestExecutor, SelectionMode, ValidateOptions,
};
use support::CopySandbox;

struct Setup {
    sandbox: CopySandbox,
    executor: PytestExecutor,
    forking: PytestExecutor,
    baseline: Baseline,
    coverage: CoverageMap,
    candidates: Vec<Candidate>,
    workers: usize,
    repo: PathBuf,
}

impl Setup {
    /// The coverage-guided selection for `c`, reading clean files from the
    /// repository.
    fn selection(&self, c: &Candidate) -> CandidateSelection {
        let source = |path: &str| std::fs::read_to_string(self.repo.join(path)).ok();
        select_tests(Some(&self.coverage), c, SelectionMode::Coverage, &source)
    }

    /// The baseline seconds of the tests coverage selects for `c`.
    fn own_seconds(&self, c: &Candidate) -> f64 {
        let durations = &self.baseline.durations;
        match self.selection(c) {
            CandidateSelection::Uncovered => 0.0,
            CandidateSelection::Full => durations.values().sum(),
            CandidateSelection::Tests(t) => t.iter().filter_map(|t| durations.get(t)).sum(),
        }
    }
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

/// A number from the environment, if `key` is set to one.
fn env_number(key: &str) -> Option<f64> {
    std::env::var(key).ok().and_then(|v| v.parse().ok())
}

/// Operator swaps that keep a line valid Python.
const SWAPS: &[(&str, &str)] = &[
    (" + ", " - "),
    (" - ", " + "),
    (" == ", " != "),
    (" != ", " == "),
    (" < ", " >= "),
    (" > ", " <= "),
    (" <= ", " > "),
    (" >= ", " < "),
    (" and ", " or "),
    (" or ", " and "),
    ("return True", "return False"),
    ("return False", "return True"),
    (" is None", " is not None"),
    (" is not None", " is None"),
];

fn py_files(dir: &Path, root: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            py_files(&p, root, out);
        } else if p.extension().is_some_and(|x| x == "py") {
            out.push(
                p.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
            );
        }
    }
}

/// Mutants on statement lines (lines coverage.py knows as code), spread
/// evenly over the library.
fn make_candidates(repo: &Path, src: &str, coverage: &CoverageMap, n: usize) -> Vec<Candidate> {
    let mut files = Vec::new();
    py_files(&repo.join(src), repo, &mut files);
    let mut all = Vec::new();
    for file in files {
        let Some(cov) = coverage.files.get(&file) else {
            continue;
        };
        let text = std::fs::read_to_string(repo.join(&file)).unwrap();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        for &stmt in &cov.statements {
            let Some(line) = lines.get(stmt as usize - 1) else {
                continue;
            };
            let code = line.trim_start();
            if code.starts_with('#') || code.starts_with("def ") || code.starts_with("class ") {
                continue;
            }
            if let Some((from, to)) = SWAPS.iter().find(|(from, _)| line.contains(from)) {
                let mut after_lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                after_lines[stmt as usize - 1] = line.replacen(from, to, 1);
                let after = after_lines.concat();
                all.push(Candidate::new(
                    &smith_core::RepoRef::new("bench/repo", "bench"),
                    "bench/op_swap",
                    vec![],
                    format!("{file}:{stmt}: `{}` -> `{}`", from.trim(), to.trim()),
                    Patch::from_changes(&[FileChange::modified(file.clone(), &text, &after)]),
                ));
            }
        }
    }
    spread(all, n)
}

/// `n` of `all`, evenly spaced.
fn spread(all: Vec<Candidate>, n: usize) -> Vec<Candidate> {
    if all.len() <= n {
        return all;
    }
    let step = all.len() as f64 / n as f64;
    (0..n)
        .map(|i| all[(i as f64 * step) as usize].clone())
        .collect()
}

/// Candidates from a JSONL file such as a pipeline's `candidates.jsonl`.
fn read_candidates(path: &Path) -> Vec<Candidate> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn setup() -> Setup {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let default_repo = manifest.join("../examples/demo-repo");
    let repo = PathBuf::from(env_or("SMITH_BENCH_REPO", &default_repo.to_string_lossy()));
    let is_demo = std::env::var("SMITH_BENCH_REPO").is_err();
    let src = env_or("SMITH_BENCH_SRC", "src");
    let args: Vec<String> = env_or("SMITH_BENCH_ARGS", "-m pytest -p no:cacheprovider tests")
        .split_whitespace()
        .map(String::from)
        .collect();
    let mut executor = PytestExecutor::new("python", args);
    let pythonpath = env_or("SMITH_BENCH_PYTHONPATH", if is_demo { "src" } else { "" });
    if !pythonpath.is_empty() {
        executor = executor.env("PYTHONPATH", pythonpath);
    }
    let mut sandbox = CopySandbox::new(&repo);
    if let Ok(bin) = std::env::var("SMITH_BENCH_VENV_BIN") {
        sandbox.bin = PathBuf::from(bin);
    }
    let workers: usize = env_or("SMITH_BENCH_WORKERS", "2").parse().unwrap();
    let n: usize = env_or("SMITH_BENCH_N", "24").parse().unwrap();
    let mut ws = sandbox.workspace().unwrap();
    let t = Instant::now();
    // As the pipeline does: runs alternate between a fork server and a fresh
    // interpreter, and the forking executor learns what to warm.
    let forking = executor.clone().forking(true);
    let baseline = run_baseline_with(
        &mut ws,
        &[&forking.clone().collected(false), &executor],
        3,
        &smith_core::RepoRef::new("bench/repo", "bench"),
        &RunOptions::default(),
    )
    .unwrap();
    let baseline_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let coverage = CoverageMap::collect(&mut ws, &executor, &RunOptions::default()).unwrap();
    let coverage_secs = t.elapsed().as_secs_f64();
    let candidates = match std::env::var("SMITH_BENCH_CANDIDATES") {
        Ok(path) => spread(read_candidates(Path::new(&path)), n),
        Err(_) => make_candidates(&repo, &src, &coverage, n),
    };
    println!(
        "repo {}: {} tests ({} stable, {} flaky), full run {:.2}s; baseline x3 {:.1}s, coverage map {:.1}s ({} tests mapped); {} candidates",
        repo.display(),
        baseline.passing.len() + baseline.flaky.len() + baseline.other.len(),
        baseline.passing.len(),
        baseline.flaky.len(),
        baseline.wall_secs,
        baseline_secs,
        coverage_secs,
        coverage.test_count(),
        candidates.len()
    );
    Setup {
        sandbox,
        forking,
        executor,
        baseline,
        coverage,
        candidates,
        workers,
        repo,
    }
}

fn run_all(
    s: &Setup,
    mode: SelectionMode,
    executor: &PytestExecutor,
) -> (f64, BTreeMap<String, Validation>) {
    let defaults = ValidateOptions::default();
    let options = ValidateOptions {
        workers: s.workers,
        selection: mode,
        timeout_floor: env_number("SMITH_BENCH_TIMEOUT_FLOOR")
            .map(Duration::from_secs_f64)
            .unwrap_or(defaults.timeout_floor),
        timeout_factor: env_number("SMITH_BENCH_TIMEOUT_FACTOR").unwrap_or(defaults.timeout_factor),
        test_timeout_floor: match env_number("SMITH_BENCH_TEST_TIMEOUT_FLOOR") {
            Some(secs) => (secs > 0.0).then(|| Duration::from_secs_f64(secs)),
            None => defaults.test_timeout_floor,
        },
        ..defaults
    };
    let results = Mutex::new(BTreeMap::new());
    let t = Instant::now();
    validate(
        &s.sandbox,
        executor,
        &s.baseline,
        Some(&s.coverage),
        &s.candidates,
        &options,
        &|c, v| {
            results.lock().unwrap().insert(c.id.clone(), v.clone());
        },
    )
    .unwrap();
    (t.elapsed().as_secs_f64(), results.into_inner().unwrap())
}

/// Whether two verdicts agree: same verdict and same labels; a candidate
/// selection calls uncovered is one no test can notice.
fn agree(selected: &Verdict, full: &Verdict) -> bool {
    match (selected, full) {
        (Verdict::Uncovered, Verdict::NoTestBroke) => true,
        _ => labels(selected) == labels(full) && selected.label() == full.label(),
    }
}

/// Returns the ids of candidates that hung in any mode.
fn side_by_side(s: &Setup) -> Vec<String> {
    let mut modes: Vec<(&str, SelectionMode, &PytestExecutor)> =
        vec![("coverage+fork", SelectionMode::Coverage, &s.forking)];
    if env_or("SMITH_BENCH_PLAIN", "1") != "0" {
        modes.push(("coverage", SelectionMode::Coverage, &s.executor));
    }
    modes.push(("full", SelectionMode::Full, &s.executor));
    let runs: Vec<(f64, BTreeMap<String, Validation>)> = modes
        .iter()
        .map(|(_, mode, exec)| run_all(s, *mode, exec))
        .collect();
    let n = s.candidates.len() as f64;
    let (full_secs, full) = runs.last().unwrap();
    // Physical limit: the selected tests' own baseline seconds, spread over
    // the workers.
    let own: Vec<f64> = s.candidates.iter().map(|c| s.own_seconds(c)).collect();
    let selected_limit = own.iter().sum::<f64>() / s.workers as f64;
    let full_limit: f64 = s.baseline.durations.values().sum::<f64>() * n / s.workers as f64;
    let hung: Vec<&Candidate> = s
        .candidates
        .iter()
        .filter(|c| {
            runs.iter()
                .any(|(_, r)| r[&c.id].verdict == Verdict::TimedOut)
        })
        .collect();
    let finished: Vec<&Candidate> = s
        .candidates
        .iter()
        .filter(|c| !hung.iter().any(|h| h.id == c.id))
        .collect();
    let worker_secs = |m: &BTreeMap<String, Validation>| -> f64 {
        finished.iter().map(|c| m[&c.id].seconds).sum::<f64>() / finished.len().max(1) as f64
    };
    for ((name, mode, _), (secs, results)) in modes.iter().zip(&runs) {
        let kept = results.values().filter(|v| v.verdict.is_kept()).count();
        let limit = if *mode == SelectionMode::Full {
            full_limit
        } else {
            selected_limit
        };
        println!(
            "{name:<14} {:.3}s/candidate ({:.2} candidates/s), kept {kept}; physical limit {limit:.3}s total, ratio {:.1}x; without hung mutants {:.3} worker-s/candidate",
            secs / n,
            n / secs,
            secs / limit.max(1e-9),
            worker_secs(results),
        );
    }
    for ((name, _, _), (secs, results)) in modes.iter().zip(&runs).take(runs.len() - 1) {
        let mut disagreements = 0;
        let mut kept_disagreements = 0;
        for c in &s.candidates {
            let (a, b) = (&results[&c.id].verdict, &full[&c.id].verdict);
            if !agree(a, b) {
                disagreements += 1;
                kept_disagreements += usize::from(a.is_kept() || b.is_kept());
                println!(
                    "  DISAGREE ({name}) {}: selected={:?} full={:?}",
                    c.description,
                    a.label(),
                    b.label()
                );
                if let (Some((fa, _)), Some((fb, _))) = (labels(a), labels(b)) {
                    println!(
                        "    f2p only selected: {:?}\n    f2p only full: {:?}",
                        fa.difference(fb).collect::<Vec<_>>(),
                        fb.difference(fa).collect::<Vec<_>>()
                    );
                }
            }
        }
        println!(
            "{name} vs full: speed-up {:.1}x wall, {:.1}x worker-s without hung mutants; disagreements {disagreements} of {} candidates ({kept_disagreements} involving a kept candidate)",
            full_secs / secs,
            worker_secs(full) / worker_secs(results).max(1e-9),
            s.candidates.len()
        );
    }
    if env_or("SMITH_BENCH_VERBOSE", "0") != "0" {
        // One line per candidate: how many tests the first mode selected,
        // their own baseline seconds, and each mode's seconds.
        for (c, own) in s.candidates.iter().zip(&own) {
            let first = &runs[0].1[&c.id];
            let secs: Vec<String> = runs
                .iter()
                .map(|(_, r)| format!("{:.3}", r[&c.id].seconds))
                .collect();
            println!(
                "  {:<60} selected {:>5} own {own:.3}s; seconds {} ({})",
                c.description.chars().take(60).collect::<String>(),
                first
                    .selected
                    .map_or_else(|| "all".to_string(), |n| n.to_string()),
                secs.join(" / "),
                first.verdict.label(),
            );
        }
    }
    let mut verdicts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for c in &s.candidates {
        let first = &runs[0].1[&c.id].verdict;
        *verdicts
            .entry((first.label(), full[&c.id].verdict.label()))
            .or_default() += 1;
    }
    println!("verdicts ({}, full): {verdicts:?}", modes[0].0);
    let (collected, fell_back) = s.forking.collected_runs();
    println!(
        "forked runs: {} ({collected} through collected servers, {fell_back} handed back); hung mutants: {}",
        s.forking.served_runs(),
        hung.len()
    );
    hung.iter().map(|c| c.id.clone()).collect()
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let hung = side_by_side(&s);
    // Criterion times the candidates that finish; hangs cost their time limit.
    let finishing: Vec<Candidate> = s
        .candidates
        .iter()
        .filter(|c| !hung.contains(&c.id))
        .cloned()
        .collect();
    if env_or("SMITH_BENCH_CRITERION", "1") == "0" {
        return;
    }
    let mut group = c.benchmark_group("validate_one_candidate");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.warm_up_time(Duration::from_secs(1));
    for (name, mode, executor) in [
        ("coverage+fork", SelectionMode::Coverage, &s.forking),
        ("coverage", SelectionMode::Coverage, &s.executor),
        ("full", SelectionMode::Full, &s.executor),
    ] {
        let options = ValidateOptions {
            selection: mode,
            ..ValidateOptions::default()
        };
        let mut ws = s.sandbox.workspace().unwrap();
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    let cand = &finishing[i % finishing.len()];
                    i += 1;
                    // As the validator does: servers (re)start only here,
                    // on the clean tree.
                    executor.prepare(&mut *ws).unwrap();
                    validate_one(
                        &mut *ws,
                        executor,
                        &s.baseline,
                        Some(&s.coverage),
                        cand,
                        &options,
                    )
                    .unwrap();
                }
                t.elapsed()
            })
        });
    }
    group.finish();
}

mod group {
    // criterion_group! defines `pub fn benches` without a doc comment.
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
