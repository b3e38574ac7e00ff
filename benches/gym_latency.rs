//! Latency of one gym episode's reset + grade on the demo, through fork
//! servers against fresh interpreters.
//!
//! ```text
//! cargo bench --bench gym_latency                 # makes a demo run first
//! cargo bench --bench gym_latency -- RUN_DIR [N]  # tasks of an existing run
//! ```
//!
//! For the first task of the run (or of a small demo run made under
//! `target/bench-cache/`, with the environment cached where the tests cache
//! it), N episodes (default 50) each take a workspace, reset it to the
//! buggy tree, apply the gold fix and run the task's tests; the same is
//! done with every run in a fresh interpreter. Prints median and p90 of
//! each, and checks that both paths give the same grades.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use smith::grade::Grader;
use smith::gym::{Grade, Task};
use smith::pipeline::{Config, Pipeline};
use smith::validate::PytestExecutor;
use smith::{Patch, TaskInstance};

fn demo_run() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target/bench-cache/gym-demo");
    let mut config = Config::new(root.join("examples/demo-repo"), &out);
    config.cache_dir = Some(root.join("target/test-cache/envs"));
    config.max_candidates = Some(14);
    config.baseline_runs = 2;
    config.workers = 2;
    Pipeline::new(config).run().expect("demo pipeline runs");
    out
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn episodes(task: &Task, patch: &Patch, n: usize) -> (Vec<f64>, Vec<Grade>) {
    let mut secs = Vec::with_capacity(n);
    let mut grades = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let mut episode = task.episode().expect("episode");
        grades.push(episode.grade(patch).expect("grade"));
        drop(episode);
        secs.push(start.elapsed().as_secs_f64());
    }
    secs.sort_by(f64::total_cmp);
    (secs, grades)
}

fn main() {
    // `cargo bench` passes `--bench`; anything else is ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = args.first().map(PathBuf::from).unwrap_or_else(demo_run);
    let n: usize = args.get(1).map_or(50, |s| s.parse().expect("N episodes"));
    let instances: Vec<TaskInstance> =
        smith::store::read_jsonl(&run.join("instances.jsonl")).expect("instances");
    let inst = instances.first().expect("a task in the run");
    let grader = Grader::from_run_dir(&run).expect("grader");
    if let Some(w) = grader.sandbox_warning() {
        println!("note: {w}");
    }
    let env: serde_json::Value = smith::store::read_json(&run.join("env.json"))
        .expect("env.json")
        .expect("env.json");
    let test_cmd: Vec<String> =
        serde_json::from_value(env["spec"]["test_cmd"].clone()).expect("test_cmd");
    let forking = PytestExecutor::new("python", test_cmd.clone()).forking(true);
    let fresh = PytestExecutor::new("python", test_cmd);
    let gold = Patch::from_text(inst.patch.clone()).reverse();
    let tests = inst.fail_to_pass.len() + inst.pass_to_pass.len();
    println!(
        "{n} episodes of reset + grade (gold fix) on {} ({tests} tests), sandbox {}",
        inst.instance_id,
        grader.sandbox().name()
    );
    let mut results = Vec::new();
    for (name, executor) in [
        ("fork servers", forking.clone()),
        ("fresh interpreter", fresh),
    ] {
        let task = Task::from_instance(inst.clone(), grader.sandbox().clone(), Arc::new(executor));
        let (secs, grades) = episodes(&task, &gold, n);
        let resolved = grades.iter().filter(|g| g.resolved).count();
        println!(
            "{name:<18} median {:.3} s  p90 {:.3} s  min {:.3} s  max {:.3} s  ({resolved}/{n} resolved)",
            quantile(&secs, 0.5),
            quantile(&secs, 0.9),
            secs[0],
            secs[secs.len() - 1],
        );
        results.push((quantile(&secs, 0.5), grades));
    }
    let (collected, fell_back) = forking.collected_runs();
    println!(
        "fork path: {} runs through servers, {collected} by the collected server, {fell_back} handed back",
        forking.served_runs()
    );
    let times = forking.run_times();
    let per_run = |kind: &smith::validate::RunKind| {
        let runs = kind.runs.max(1) as f64;
        (kind.seconds / runs, kind.test_seconds / runs)
    };
    let (wall, own) = per_run(&times.collected);
    println!(
        "collected runs: {} at {wall:.3} s each, of which the tests' own {own:.3} s; {} server starts; reports built in {:.3} s per run",
        times.collected.runs,
        times.server_starts,
        times.parse_seconds / times.collected.runs.max(1) as f64
    );
    let same = results[0].1 == results[1].1;
    println!(
        "grades identical on both paths: {same}; speed-up of the median {:.1}x",
        results[1].0 / results[0].0
    );
    assert!(same, "fork servers and fresh interpreters disagree");
}
