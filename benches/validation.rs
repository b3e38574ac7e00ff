//! Validation end to end, selected tests against the whole suite, on the
//! demo repository and every dev-corpus project.
//!
//! For each project the same candidates (the pipeline's sample for seed 0)
//! are validated three ways through [`Pipeline::validate_candidates`], each
//! into an output directory of its own with the environment from one cache:
//!
//! - `whole`: the whole suite per candidate in a fresh interpreter, as
//!   SWE-smith validates (`--selection full --no-fork`);
//! - `selected`: smith's default (coverage selection, fork servers, the
//!   fresh-interpreter check of kept candidates);
//! - `no-fresh`: the default without the fresh check (`--no-fresh-check`).
//!
//! It prints one table row per project: the suite's size and seconds,
//! seconds per candidate in each mode, the speed-up over `whole`, the
//! physical limit (the selected tests' own baseline seconds per candidate,
//! spread over the workers) and the ratio to it (also without the fork
//! servers' start-up, paid once per worker), the per-phase breakdown of
//! `selected`, and the candidates whose verdict or labels differ from
//! `whole`'s. Then the operator-change run on more-itertools (the mutations
//! mutmut makes) as candidates per second, with the defaults and then
//! without the fresh check in a second output directory, which must reuse
//! the environment.
//!
//! `cargo bench --bench validation`. The corpus is fetched by smith's own
//! script into `target/smith-mutate-corpus`. Settings:
//! `SMITH_BENCH_PROJECTS` (comma-separated names; default `demo` and the
//! dev corpus; empty for none), `SMITH_BENCH_N` (candidates per project,
//! default 40),
//! `SMITH_BENCH_WORKERS` (default 2), `SMITH_BENCH_OPS_N` (operator-change
//! candidates on more-itertools, default 200; 0 skips that run).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use smith::pipeline::{Config, Pipeline, ValidateSummary};
use smith::validate::{select_tests, CandidateSelection, CoverageMap, SelectionMode};
use smith::{Baseline, Candidate, Verdict};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A project's name and checkout.
type Project = (String, PathBuf);

/// The demo and the dev corpus (fetched, or found up to date), by name:
/// all of them, and those `SMITH_BENCH_PROJECTS` names (all by default).
fn projects() -> (Vec<Project>, Vec<Project>) {
    let corpus = workspace().join("target/smith-mutate-corpus");
    let fetched = Command::new("bash")
        .arg(workspace().join("scripts/corpus/fetch-corpus.sh"))
        .args(["-s", "dev"])
        .arg(&corpus)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("bash runs");
    assert!(fetched.success(), "fetching the dev corpus failed");
    let mut all = vec![("demo".to_string(), workspace().join("examples/demo-repo"))];
    let mut names: Vec<String> = std::fs::read_dir(&corpus)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    all.extend(names.into_iter().map(|n| (n.clone(), corpus.join(n))));
    let mut chosen = all.clone();
    if let Ok(wanted) = std::env::var("SMITH_BENCH_PROJECTS") {
        let wanted: Vec<&str> = wanted.split(',').map(str::trim).collect();
        chosen.retain(|(n, _)| wanted.contains(&n.as_str()));
    }
    (all, chosen)
}

/// One validation of a project's sample in one mode.
struct Mode {
    out: PathBuf,
    summary: ValidateSummary,
}

impl Mode {
    fn run(repo: &Path, out: PathBuf, n: usize, tweak: impl FnOnce(&mut Config)) -> Mode {
        let _ = std::fs::remove_dir_all(&out);
        let mut config = Config::new(repo, &out);
        config.cache_dir = Some(workspace().join("target/smith-bench-cache"));
        config.seed = 0;
        config.max_candidates = Some(n);
        config.workers = env_usize("SMITH_BENCH_WORKERS", 2);
        config.combine = false;
        tweak(&mut config);
        let summary = Pipeline::new(config)
            .validate_candidates(None)
            .unwrap_or_else(|e| panic!("{}: {e}", repo.display()));
        Mode { out, summary }
    }

    /// Verdict label and labels per candidate id.
    fn verdicts(&self) -> BTreeMap<String, (String, Option<Verdict>)> {
        let text = std::fs::read_to_string(self.out.join("validations.jsonl")).unwrap();
        text.lines()
            .map(|l| {
                let v: smith::Validation = serde_json::from_str(l).unwrap();
                let kept = v.verdict.is_kept().then(|| v.verdict.clone());
                (v.candidate_id, (v.verdict.label().to_string(), kept))
            })
            .collect()
    }
}

/// Whether a selected run's verdict agrees with the whole suite's: the same
/// verdict and labels, where "uncovered" is a bug no test notices.
fn agree(selected: &(String, Option<Verdict>), whole: &(String, Option<Verdict>)) -> bool {
    let uncovered = selected.0 == "uncovered" && whole.0 == "no_test_broke";
    uncovered || selected == whole
}

/// The selected tests' own baseline seconds per candidate, from the
/// default run's baseline and coverage map.
fn physical_limit(mode: &Mode, repo: &Path) -> f64 {
    let read = |name: &str| std::fs::read_to_string(mode.out.join(name)).unwrap();
    let baseline: Baseline = serde_json::from_str(&read("baseline.json")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&read("coverage.json")).unwrap();
    let map: CoverageMap = serde_json::from_value(record["map"].clone()).unwrap();
    let validated = mode.verdicts();
    let candidates: Vec<Candidate> = read("candidates.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<Candidate>(l).unwrap())
        .filter(|c| validated.contains_key(&c.id))
        .collect();
    let source = |path: &str| std::fs::read_to_string(repo.join(path)).ok();
    let own = |c: &Candidate| -> f64 {
        let d = &baseline.durations;
        match select_tests(Some(&map), c, SelectionMode::Coverage, &source) {
            CandidateSelection::Uncovered => 0.0,
            CandidateSelection::Full => d.values().sum(),
            CandidateSelection::Tests(t) => t.iter().filter_map(|t| d.get(t)).sum(),
        }
    };
    let total: f64 = candidates.iter().map(own).sum();
    total / candidates.len().max(1) as f64
}

fn per_candidate(s: &ValidateSummary) -> f64 {
    s.seconds_per_candidate
}

fn project_row(name: &str, repo: &Path, n: usize, scratch: &Path) {
    let whole = Mode::run(repo, scratch.join(format!("{name}-whole")), n, |c| {
        c.selection = SelectionMode::Full;
        c.fork = false;
    });
    let selected = Mode::run(repo, scratch.join(format!("{name}-selected")), n, |_| {});
    let no_fresh = Mode::run(repo, scratch.join(format!("{name}-no-fresh")), n, |c| {
        c.fresh_check = false;
    });
    let workers = env_usize("SMITH_BENCH_WORKERS", 2) as f64;
    let limit = physical_limit(&selected, repo) / workers;
    let (w, s, f) = (
        per_candidate(&whole.summary),
        per_candidate(&selected.summary),
        per_candidate(&no_fresh.summary),
    );
    let reference = whole.verdicts();
    let mut differ = Vec::new();
    for mode in [&selected, &no_fresh] {
        for (id, v) in mode.verdicts() {
            if reference.get(&id).is_some_and(|r| !agree(&v, r)) && !differ.contains(&id) {
                differ.push(id);
            }
        }
    }
    let suite = &selected.summary;
    // Starting each worker's fork servers (and collecting the suite in
    // them) happens once per worker, however many candidates follow: at
    // this bench's few candidates it is a visible share of each one.
    let phases = &no_fresh.summary.phases;
    let start_up = phases.prepare / phases.candidates.max(1) as f64 / workers;
    println!(
        "| {name} | {} | {:.2} | {} | {w:.3} | {s:.3} | {f:.3} | {:.1}× / {:.1}× | {limit:.3} | {:.1}× ({:.1}× without the servers' start-up) | {} |",
        suite.baseline_tests,
        whole_suite_seconds(&selected),
        suite.validated_now,
        w / s.max(1e-9),
        w / f.max(1e-9),
        f / (limit + 0.020),
        (f - start_up) / (limit + 0.020),
        if differ.is_empty() { "none".to_string() } else { differ.join(", ") },
    );
    let p = &suite.phases;
    let k = p.candidates.max(1) as f64;
    println!(
        "|   phases of `selected`, s/candidate (worker time) | prepare {:.3} · selection {:.4} · apply {:.4} · test runs {:.3} · fresh check {:.3} · reset {:.4} |",
        p.prepare / k,
        p.selection / k,
        p.apply / k,
        p.test_runs / k,
        p.fresh_check / k,
        p.reset / k,
    );
}

/// Mean wall seconds of one whole-suite run on the clean tree.
fn whole_suite_seconds(mode: &Mode) -> f64 {
    let text = std::fs::read_to_string(mode.out.join("baseline.json")).unwrap();
    let baseline: Baseline = serde_json::from_str(&text).unwrap();
    baseline.wall_secs
}

/// Operator-change candidates on more-itertools, as mutmut makes them:
/// candidates per second of validation and of the whole invocation, with
/// smith's defaults and then, into a second output directory (which must
/// reuse the environment), without the fresh check.
fn operator_changes(repo: &Path, n: usize, scratch: &Path) {
    let ops = [
        "func_pm_op_change",
        "func_pm_op_swap",
        "func_pm_op_boundary",
        "func_pm_op_flip_compare",
        "func_pm_op_off_by_one",
    ];
    let run = |dir: &str, fresh_check: bool| {
        Mode::run(repo, scratch.join(dir), n, |c| {
            c.strategies = Some(ops.iter().map(|s| s.to_string()).collect());
            c.fresh_check = fresh_check;
        })
    };
    let first = run("ops-1", true);
    let second = run("ops-2", false);
    for (label, m) in [
        ("first out dir, default", &first),
        ("second out dir, no fresh check", &second),
    ] {
        let s = &m.summary;
        let kept_complete =
            m.verdicts().values().filter_map(|(_, v)| v.as_ref()).all(
                |v| matches!(v, Verdict::Kept { fail_to_pass, .. } if !fail_to_pass.is_empty()),
            );
        println!(
            "more-itertools operator changes, {label}: {} candidates, {} kept; {:.2} candidates/s validating, {:.2} candidates/s end to end ({:.1} s); environment reused: {}; every kept candidate has its FAIL_TO_PASS set: {kept_complete}",
            s.validated_now,
            s.kept,
            1.0 / s.seconds_per_candidate.max(1e-9),
            s.validated_now as f64 / s.seconds.max(1e-9),
            s.seconds,
            s.env_reused,
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test` run of benches
    // passes nothing and should not run this.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let scratch = workspace().join("target/smith-bench-validation");
    let n = env_usize("SMITH_BENCH_N", 40);
    println!(
        "| project | tests | whole suite s | candidates | whole s/cand | selected s/cand | no-fresh s/cand | speed-up (selected / no-fresh) | physical limit s/cand | no-fresh ÷ (limit + 20 ms) | labels differ from whole |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let (all, chosen) = projects();
    for (name, repo) in &chosen {
        project_row(name, repo, n, &scratch);
    }
    let ops_n = env_usize("SMITH_BENCH_OPS_N", 200);
    if let Some((_, repo)) = all.iter().find(|(n, _)| n == "more-itertools") {
        if ops_n > 0 {
            operator_changes(repo, ops_n, &scratch);
        }
    }
}
