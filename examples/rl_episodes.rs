//! A scripted "agent" over RL episodes on tasks a `smith run` made, and the
//! cost of one episode's reset + grade.
//!
//! ```text
//! smith run examples/demo-repo --out smith-out --max-candidates 20
//! cargo run --release --example rl_episodes -- smith-out [episodes]
//! ```
//!
//! For each of a few tasks the agent first submits nothing, then the gold
//! fix (the reverse of the bug patch); rewards are 0 then 1. Then one task
//! is reset and graded with its gold fix `episodes` times (default 50) and
//! the median time is printed.

use std::path::PathBuf;
use std::time::Instant;

use smith::grade::Grader;
use smith::gym::Task;
use smith::{Patch, TaskInstance};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let run_dir = PathBuf::from(args.next().unwrap_or_else(|| "smith-out".into()));
    let episodes: usize = args.next().map_or(Ok(50), |s| s.parse())?;
    let instances: Vec<TaskInstance> = smith::store::read_jsonl(&run_dir.join("instances.jsonl"))?;
    anyhow::ensure!(
        !instances.is_empty(),
        "no instances in {}",
        run_dir.display()
    );
    let grader = Grader::from_run_dir(&run_dir)?;
    let task = |i: &TaskInstance| {
        Task::from_instance(
            i.clone(),
            grader.sandbox().clone(),
            grader.executor().clone(),
        )
    };

    // A scripted agent: give up first, then submit the known fix.
    let policy = |attempt: usize, i: &TaskInstance| match attempt {
        0 => Patch::from_text(""),
        _ => Patch::from_text(i.patch.clone()).reverse(),
    };
    println!(
        "task                                                       attempt  reward  F2P pass/fail"
    );
    for inst in instances.iter().take(4) {
        let t = task(inst);
        for attempt in 0..2 {
            let mut episode = t.episode()?;
            let grade = episode.grade(&policy(attempt, inst))?;
            println!(
                "{:<60} {attempt:>7} {:>7.1} {:>6}/{}",
                inst.instance_id,
                grade.reward(),
                grade.fail_to_pass.passed.len(),
                grade.fail_to_pass.failed.len()
            );
        }
    }

    // Episode cost: reset to the buggy tree, apply the fix, run the task's tests.
    let inst = &instances[0];
    let t = task(inst);
    let gold = Patch::from_text(inst.patch.clone()).reverse();
    let mut secs = Vec::with_capacity(episodes);
    let mut resolved = 0;
    for _ in 0..episodes {
        let start = Instant::now();
        let mut episode = t.episode()?;
        resolved += usize::from(episode.grade(&gold)?.resolved);
        drop(episode);
        secs.push(start.elapsed().as_secs_f64());
    }
    secs.sort_by(f64::total_cmp);
    let median = secs[secs.len() / 2];
    println!(
        "{episodes} episodes of reset+grade on {} ({} tests): median {:.3} s, min {:.3} s, max {:.3} s, {resolved} resolved",
        inst.instance_id,
        inst.fail_to_pass.len() + inst.pass_to_pass.len(),
        median,
        secs[0],
        secs[secs.len() - 1]
    );
    Ok(())
}
