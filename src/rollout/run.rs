//! Many episodes at once: every task instance attempted K times by a
//! language model, each attempt graded with the task's FAIL_TO_PASS and
//! PASS_TO_PASS tests, written as a trajectory, and the resolved ones kept
//! as supervised fine-tuning data (rejection sampling).
//!
//! Outputs, in the output directory:
//! - `trajectories.jsonl`: one [`Trajectory`] per attempt, appended as each
//!   finishes. A re-run skips the attempts already there, so a killed
//!   rollout resumes without losing or repeating one.
//! - `sft.jsonl`: one [`SftRecord`] per resolved attempt (at most M per
//!   instance), rewritten from `trajectories.jsonl` at the end of every
//!   run, in the conversational `messages` + `tools` format that Hugging
//!   Face `datasets` and TRL's SFT trainer read.
//! - `rollout.json`: the model the trajectories come from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::session::{AgentRun, ErrorCounts, LmPolicy, Session, ToolTime};
use crate::gym::{Task, TestResults};
use crate::store::{self, JsonlWriter, OutDirLock};
use crate::{
    ChatMessage, CompletionParams, Error, Executor, LanguageModel, Patch, Result, RunOptions,
    Sandbox, TaskInstance, ToolSpec,
};

/// One attempt at one task, as `trajectories.jsonl` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    /// The task.
    pub instance_id: String,
    /// `<instance_id>.<attempt>`, unique in the file.
    pub traj_id: String,
    /// Which attempt at the task (0-based).
    pub attempt: usize,
    /// The model (or policy) that acted.
    pub model: String,
    /// The conversation, in OpenAI chat format with tool calls and results.
    pub messages: Vec<ChatMessage>,
    /// The tool schemas offered.
    pub tools: Vec<ToolSpec>,
    /// The agent's patch against the buggy tree.
    pub patch: String,
    /// Every FAIL_TO_PASS and PASS_TO_PASS test passes with the patch.
    pub resolved: bool,
    /// 1.0 when resolved, else 0.0.
    pub reward: f64,
    /// The patch applied to the buggy tree.
    pub applied: bool,
    /// The task's FAIL_TO_PASS tests with the patch.
    pub fail_to_pass: TestResults,
    /// The task's PASS_TO_PASS tests with the patch.
    pub pass_to_pass: TestResults,
    /// Model calls.
    pub steps: usize,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Cost, for models that know their prices.
    pub cost: Option<f64>,
    /// Seconds of the whole attempt (reset, agent, grading).
    pub seconds: f64,
    /// Why the agent stopped: `submitted`, `max_steps`, `max_tokens`,
    /// `max_cost`, `wall_time`, `model_error` or `environment_error`.
    pub exit_reason: String,
    /// More about why, for errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_detail: Option<String>,
    /// Bad model output and refused tool calls.
    pub errors: ErrorCounts,
    /// Where the time went.
    pub timing: Timing,
}

/// Where an attempt's time went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Making the buggy tree (a workspace from the pool, reset).
    pub reset_seconds: f64,
    /// The agent loop (model calls and tools).
    pub agent_seconds: f64,
    /// Grading the patch.
    pub grade_seconds: f64,
    /// Per tool: calls and seconds.
    pub tools: BTreeMap<String, ToolTime>,
}

/// One resolved attempt as supervised fine-tuning data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftRecord {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// The tool schemas offered.
    pub tools: Vec<ToolSpec>,
    /// The task.
    pub instance_id: String,
    /// The trajectory it comes from.
    pub traj_id: String,
}

/// How to roll out.
#[derive(Debug, Clone)]
pub struct RolloutOptions {
    /// Attempts per instance.
    pub attempts: usize,
    /// Episodes in parallel.
    pub workers: usize,
    /// Keep at most this many resolved attempts per instance in `sft.jsonl`.
    pub max_per_instance: Option<usize>,
    /// The agent's prompts and limits.
    pub session: Session,
    /// Sampling parameters (each attempt's seed is derived from its id when
    /// none is given).
    pub params: CompletionParams,
    /// Limits of the test runs that grade.
    pub run_options: RunOptions,
}

impl Default for RolloutOptions {
    fn default() -> Self {
        RolloutOptions {
            attempts: 1,
            workers: 2,
            max_per_instance: None,
            session: Session::default(),
            params: CompletionParams::default(),
            run_options: RunOptions::default(),
        }
    }
}

/// Progress of a rollout.
#[derive(Debug, Clone)]
pub enum RolloutEvent {
    /// Attempts to run now, and attempts already done by an earlier run.
    Started {
        /// Attempts this run will make.
        todo: usize,
        /// Attempts found in `trajectories.jsonl`.
        done: usize,
    },
    /// One attempt finished (written) or failed (not written).
    Attempt {
        /// Its id.
        traj_id: String,
        /// Resolved, when it was graded.
        resolved: Option<bool>,
    },
}

/// What a rollout did, over every trajectory in the output directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutSummary {
    /// The model.
    pub model: String,
    /// Instances attempted.
    pub instances: usize,
    /// Attempts in `trajectories.jsonl`.
    pub attempts: usize,
    /// Of which this run made.
    pub attempts_run: usize,
    /// Of which earlier runs made.
    pub attempts_resumed: usize,
    /// Attempts that could not be made (machinery failures; not written,
    /// so a re-run tries them again), with why.
    pub failed: BTreeMap<String, String>,
    /// Resolved attempts.
    pub resolved: usize,
    /// Resolved attempts over attempts.
    pub resolve_rate: f64,
    /// Instances with at least one resolved attempt.
    pub instances_resolved: usize,
    /// Mean model calls per attempt.
    pub mean_steps: f64,
    /// Prompt tokens over all attempts.
    pub prompt_tokens: u64,
    /// Completion tokens over all attempts.
    pub completion_tokens: u64,
    /// Cost over all attempts, for models that know their prices.
    pub cost: Option<f64>,
    /// Attempts per exit reason.
    pub exit_reasons: BTreeMap<String, usize>,
    /// Bad model output and refused tool calls over all attempts.
    pub errors: ErrorCounts,
    /// Mean seconds to make the buggy tree of an attempt.
    pub mean_reset_seconds: f64,
    /// Mean seconds to grade an attempt.
    pub mean_grade_seconds: f64,
    /// Per tool: calls and mean seconds per call.
    pub tool_latency: BTreeMap<String, ToolLatency>,
    /// Records in `sft.jsonl`.
    pub sft_records: usize,
    /// `trajectories.jsonl`.
    pub trajectories_path: PathBuf,
    /// `sft.jsonl`.
    pub sft_path: PathBuf,
}

/// Calls of a tool and their mean latency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolLatency {
    /// Calls.
    pub calls: u64,
    /// Mean seconds per call.
    pub mean_seconds: f64,
}

/// `rollout.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RolloutRecord {
    model: String,
}

/// Take `out_dir` for the trajectories of `model`: refused when it holds
/// another model's; otherwise its `rollout.json` names `model`.
fn claim_for_model(out_dir: &Path, model: &str) -> Result<()> {
    let record_path = out_dir.join("rollout.json");
    match store::read_json::<RolloutRecord>(&record_path)? {
        Some(r) if r.model != model => {
            return Err(Error::invalid(
                out_dir.display().to_string(),
                format!(
                    "holds the trajectories of model `{}`, not `{model}`; choose another output directory",
                    r.model
                ),
            ))
        }
        Some(_) => {}
        None => store::write_json(
            &record_path,
            &RolloutRecord {
                model: model.to_string(),
            },
        )?,
    }
    Ok(())
}

/// Rolls out a language model on task instances in one repository's
/// environment.
#[derive(Debug, Clone)]
pub struct Rollout {
    sandbox: Arc<dyn Sandbox>,
    executor: Arc<dyn Executor>,
    model: Arc<dyn LanguageModel>,
    options: RolloutOptions,
}

/// The `traj_id` of an attempt.
pub fn traj_id(instance_id: &str, attempt: usize) -> String {
    format!("{instance_id}.{attempt}")
}

impl Rollout {
    /// Episodes in workspaces of `sandbox`, graded by `executor`, acted by
    /// `model`.
    pub fn new(
        sandbox: Arc<dyn Sandbox>,
        executor: Arc<dyn Executor>,
        model: Arc<dyn LanguageModel>,
        options: RolloutOptions,
    ) -> Self {
        Rollout {
            sandbox,
            executor,
            model,
            options,
        }
    }

    /// Attempt every instance `attempts` times, writing into `out_dir`;
    /// attempts already in its `trajectories.jsonl` are not made again.
    pub fn run(
        &self,
        instances: &[TaskInstance],
        out_dir: &Path,
        progress: &(dyn Fn(&RolloutEvent) + Sync),
    ) -> Result<RolloutSummary> {
        let _lock = OutDirLock::acquire(out_dir)?;
        let model = self.model.model().to_string();
        claim_for_model(out_dir, &model)?;
        let traj_path = out_dir.join("trajectories.jsonl");
        // Opening for append first cuts a line a killed run left half-written.
        let writer = JsonlWriter::<Trajectory>::append(&traj_path)?;
        let done = store::done_ids(&traj_path, "traj_id")?;
        let writer = Mutex::new(writer);

        let tasks: Vec<Task> = instances
            .iter()
            .map(|i| {
                Task::from_instance(i.clone(), self.sandbox.clone(), self.executor.clone())
                    .with_run_options(self.options.run_options.clone())
            })
            .collect();
        let mut jobs = Vec::new();
        let mut resumed = 0;
        for task in &tasks {
            for attempt in 0..self.options.attempts {
                if done.contains(&traj_id(&task.instance().instance_id, attempt)) {
                    resumed += 1;
                } else {
                    jobs.push((task, attempt));
                }
            }
        }
        progress(&RolloutEvent::Started {
            todo: jobs.len(),
            done: resumed,
        });
        let failed = self.run_jobs(&jobs, &writer, progress)?;
        drop(writer);

        let wanted: BTreeSet<String> = tasks
            .iter()
            .flat_map(|t| (0..self.options.attempts).map(|a| traj_id(&t.instance().instance_id, a)))
            .collect();
        let all: Vec<Trajectory> = store::read_jsonl(&traj_path)?;
        let sft_path = out_dir.join("sft.jsonl");
        let sft = sft_records(&all, self.options.max_per_instance);
        store::write_jsonl(&sft_path, &sft)?;

        let mine: Vec<&Trajectory> = all.iter().filter(|t| wanted.contains(&t.traj_id)).collect();
        let mut summary = summarize(&mine);
        summary.model = model;
        summary.instances = instances.len();
        summary.attempts_resumed = resumed;
        summary.attempts_run = mine.len().saturating_sub(resumed);
        summary.failed = failed;
        summary.sft_records = sft.len();
        summary.trajectories_path = traj_path;
        summary.sft_path = sft_path;
        Ok(summary)
    }

    /// Make the attempts `jobs` on the worker pool, writing each trajectory
    /// to `writer` as it is made. Returns the attempts that failed, by
    /// `traj_id`, with why.
    fn run_jobs(
        &self,
        jobs: &[(&Task, usize)],
        writer: &Mutex<JsonlWriter<Trajectory>>,
        progress: &(dyn Fn(&RolloutEvent) + Sync),
    ) -> Result<BTreeMap<String, String>> {
        let failed: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.options.workers.max(1))
            .build()
            .map_err(|e| Error::invalid("rollout workers", e.to_string()))?;
        pool.install(|| {
            use rayon::prelude::*;
            jobs.par_iter().for_each(|(task, attempt)| {
                let id = traj_id(&task.instance().instance_id, *attempt);
                let outcome = self.attempt(task, *attempt).and_then(|t| {
                    let resolved = t.resolved;
                    writer
                        .lock()
                        .map_err(|_| Error::invalid("trajectory writer", "poisoned"))?
                        .write(&t)?;
                    Ok(resolved)
                });
                let resolved = match outcome {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::warn!(traj_id = %id, error = %e, "attempt failed");
                        if let Ok(mut f) = failed.lock() {
                            f.insert(id.clone(), e.to_string());
                        }
                        None
                    }
                };
                progress(&RolloutEvent::Attempt {
                    traj_id: id,
                    resolved,
                });
            });
        });
        Ok(failed.into_inner().unwrap_or_default())
    }

    /// One attempt: reset, the agent loop, grading.
    pub fn attempt(&self, task: &Task, attempt: usize) -> Result<Trajectory> {
        let instance = task.instance();
        let id = traj_id(&instance.instance_id, attempt);
        let start = Instant::now();
        let mut episode = task.episode()?;
        let reset_seconds = start.elapsed().as_secs_f64();
        let mut params = self.options.params.clone();
        if params.seed.is_none() {
            params.seed = Some(crate::stable_hash(&[id.as_bytes()]) as u64 & ((1 << 53) - 1));
        }
        let mut policy = LmPolicy::new(self.model.clone(), params);
        let run: AgentRun = self.options.session.run(&mut episode, &mut policy)?;
        let t0 = Instant::now();
        let grade = episode.grade(&Patch::from_text(run.patch.clone()))?;
        let grade_seconds = t0.elapsed().as_secs_f64();
        Ok(Trajectory {
            instance_id: instance.instance_id.clone(),
            traj_id: id,
            attempt,
            model: self.model.model().to_string(),
            messages: run.messages,
            tools: run.tools,
            patch: run.patch,
            resolved: grade.resolved,
            reward: grade.reward(),
            applied: grade.applied,
            fail_to_pass: grade.fail_to_pass,
            pass_to_pass: grade.pass_to_pass,
            steps: run.steps,
            prompt_tokens: run.prompt_tokens,
            completion_tokens: run.completion_tokens,
            cost: run.cost,
            seconds: start.elapsed().as_secs_f64(),
            exit_reason: run.exit_reason.as_str().to_string(),
            exit_detail: run.exit_detail,
            errors: run.errors,
            timing: Timing {
                reset_seconds,
                agent_seconds: run.seconds,
                grade_seconds,
                tools: run.tool_time,
            },
        })
    }
}

/// The resolved trajectories as SFT records, ordered by instance and
/// attempt, at most `max_per_instance` per instance.
pub fn sft_records(trajectories: &[Trajectory], max_per_instance: Option<usize>) -> Vec<SftRecord> {
    let mut resolved: Vec<&Trajectory> = trajectories.iter().filter(|t| t.resolved).collect();
    resolved.sort_by(|a, b| (&a.instance_id, a.attempt).cmp(&(&b.instance_id, b.attempt)));
    let mut per_instance: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for t in resolved {
        let n = per_instance.entry(&t.instance_id).or_default();
        if max_per_instance.is_some_and(|m| *n >= m) {
            continue;
        }
        *n += 1;
        out.push(SftRecord {
            messages: t.messages.clone(),
            tools: t.tools.clone(),
            instance_id: t.instance_id.clone(),
            traj_id: t.traj_id.clone(),
        });
    }
    out
}

fn summarize(trajectories: &[&Trajectory]) -> RolloutSummary {
    let n = trajectories.len();
    let mean = |f: &dyn Fn(&Trajectory) -> f64| {
        if n == 0 {
            0.0
        } else {
            trajectories.iter().map(|t| f(t)).sum::<f64>() / n as f64
        }
    };
    let mut s = RolloutSummary {
        attempts: n,
        resolved: trajectories.iter().filter(|t| t.resolved).count(),
        mean_steps: mean(&|t| t.steps as f64),
        mean_reset_seconds: mean(&|t| t.timing.reset_seconds),
        mean_grade_seconds: mean(&|t| t.timing.grade_seconds),
        ..Default::default()
    };
    s.resolve_rate = if n == 0 {
        0.0
    } else {
        s.resolved as f64 / n as f64
    };
    s.instances_resolved = trajectories
        .iter()
        .filter(|t| t.resolved)
        .map(|t| t.instance_id.as_str())
        .collect::<BTreeSet<_>>()
        .len();
    let mut tools: BTreeMap<String, ToolTime> = BTreeMap::new();
    for t in trajectories {
        s.prompt_tokens += t.prompt_tokens;
        s.completion_tokens += t.completion_tokens;
        if let Some(c) = t.cost {
            s.cost = Some(s.cost.unwrap_or(0.0) + c);
        }
        *s.exit_reasons.entry(t.exit_reason.clone()).or_default() += 1;
        s.errors.add(&t.errors);
        for (name, time) in &t.timing.tools {
            let acc = tools.entry(name.clone()).or_default();
            acc.calls += time.calls;
            acc.seconds += time.seconds;
        }
    }
    s.tool_latency = tools
        .into_iter()
        .map(|(name, t)| {
            (
                name,
                ToolLatency {
                    calls: t.calls,
                    mean_seconds: t.mean(),
                },
            )
        })
        .collect();
    s
}
