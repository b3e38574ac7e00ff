//! The agent loop: one episode of a [`Policy`] acting through the tools
//! until it submits or reaches a limit.
//!
//! The agent sees the buggy tree without the files of the task's
//! FAIL_TO_PASS tests (as SWE-smith's task branches hold it): it must find
//! and fix the bug from the issue alone. Its patch is the diff of the tree
//! from that starting point, leaving the hidden test files out; grading
//! restores them.
//!
//! Bad output of the policy — arguments that are not a JSON object, a tool
//! that does not exist, a reply without a tool call, the same action again
//! and again — is answered with an error message the model can read, and
//! counted; it never ends the run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::tools::{tool_specs, Snapshot, ToolLimits, Tools};
use crate::gym::Episode;
use crate::{
    ChatMessage, CompletionParams, FileChange, LanguageModel, Patch, Result, ToolCompletion,
    ToolSpec,
};

/// Chooses the next action from the conversation so far: the built-in
/// [`LmPolicy`] asks a language model; an RL harness plugs in its own.
pub trait Policy: Send {
    /// The name recorded with trajectories.
    fn name(&self) -> &str;

    /// The next assistant message (text and tool calls) for `messages`,
    /// given the tools offered.
    fn act(&mut self, messages: &[ChatMessage], tools: &[ToolSpec]) -> Result<ToolCompletion>;
}

/// A policy that asks a language model with tool calling.
#[derive(Debug)]
pub struct LmPolicy<M> {
    model: M,
    params: CompletionParams,
}

impl<M: LanguageModel> LmPolicy<M> {
    /// `model` sampled with `params`.
    pub fn new(model: M, params: CompletionParams) -> Self {
        LmPolicy { model, params }
    }
}

impl<M: LanguageModel> Policy for LmPolicy<M> {
    fn name(&self) -> &str {
        self.model.model()
    }

    fn act(&mut self, messages: &[ChatMessage], tools: &[ToolSpec]) -> Result<ToolCompletion> {
        self.model
            .complete_with_tools(messages, tools, &self.params)
    }
}

/// The prompts, with `{{problem_statement}}`, `{{repo}}` and
/// `{{instance_id}}` replaced by the task's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Templates {
    /// The system message.
    pub system: String,
    /// The first user message.
    pub instance: String,
}

impl Default for Templates {
    fn default() -> Self {
        Templates {
            system: "You are a helpful assistant that can interact with a computer to solve \
                     software engineering tasks. You act only through the tools you are given: \
                     `bash` runs a shell command at the repository root, `str_replace_editor` \
                     views and edits files, and `submit` ends your work. Call exactly one tool \
                     per reply when you can."
                .into(),
            instance: "The code repository {{repo}} is checked out in the current directory. \
                       Consider the following issue:\n\n<issue>\n{{problem_statement}}\n</issue>\n\n\
                       Make the smallest changes to the non-test files of the repository so that \
                       the issue is resolved. Tests are already taken care of: you do not need \
                       to change or add any. Steps that work well:\n\
                       1. Find and read the code the issue is about.\n\
                       2. Write a short script that shows the problem and run it with `bash`.\n\
                       3. Edit the source to fix it.\n\
                       4. Run your script again to confirm the fix, and think about edge cases.\n\
                       5. Call `submit`."
                .into(),
        }
    }
}

impl Templates {
    /// Fill `template` with the task's fields.
    pub fn render(template: &str, instance: &crate::TaskInstance) -> String {
        template
            .replace("{{problem_statement}}", &instance.problem_statement)
            .replace("{{repo}}", &instance.repo)
            .replace("{{instance_id}}", &instance.instance_id)
    }
}

/// Limits of one episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Model calls.
    pub max_steps: usize,
    /// Prompt plus completion tokens over the episode.
    pub max_tokens: Option<u64>,
    /// Cost over the episode (for models that know their prices).
    pub max_cost: Option<f64>,
    /// Wall time of the agent's part of the episode.
    pub max_wall: Option<Duration>,
    /// The same tool calls this many times in a row are not run again.
    pub max_repeats: usize,
    /// The tools' limits.
    pub tools: ToolLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_steps: 50,
            max_tokens: None,
            max_cost: None,
            max_wall: Some(Duration::from_secs(1800)),
            max_repeats: 3,
            tools: ToolLimits::default(),
        }
    }
}

/// Why an episode ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// The agent called `submit`.
    Submitted,
    /// It used all its steps.
    MaxSteps,
    /// It used all its tokens.
    MaxTokens,
    /// It spent all its budget.
    MaxCost,
    /// It ran out of wall time.
    WallTime,
    /// The model could not be reached or answered garbage after retries.
    ModelError,
    /// The sandbox failed under a tool.
    EnvironmentError,
}

impl ExitReason {
    /// The snake_case name, as written in records.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Submitted => "submitted",
            ExitReason::MaxSteps => "max_steps",
            ExitReason::MaxTokens => "max_tokens",
            ExitReason::MaxCost => "max_cost",
            ExitReason::WallTime => "wall_time",
            ExitReason::ModelError => "model_error",
            ExitReason::EnvironmentError => "environment_error",
        }
    }
}

/// Bad model output and failed tool calls, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    /// Tool calls whose arguments were not a JSON object.
    pub malformed_arguments: u64,
    /// Calls of tools that do not exist.
    pub unknown_tool: u64,
    /// Replies without a tool call.
    pub no_tool_call: u64,
    /// Replies repeating the previous action too often (not run again).
    pub repeated: u64,
    /// Tool calls the tool refused (missing argument, no such file, ...).
    pub tool_errors: u64,
}

impl ErrorCounts {
    /// Bad model output (everything but refused tool calls).
    pub fn bad_output(&self) -> u64 {
        self.malformed_arguments + self.unknown_tool + self.no_tool_call + self.repeated
    }

    /// Add another episode's counts.
    pub fn add(&mut self, other: &ErrorCounts) {
        self.malformed_arguments += other.malformed_arguments;
        self.unknown_tool += other.unknown_tool;
        self.no_tool_call += other.no_tool_call;
        self.repeated += other.repeated;
        self.tool_errors += other.tool_errors;
    }
}

/// Calls of one tool and the time they took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolTime {
    /// Calls.
    pub calls: u64,
    /// Seconds over all calls.
    pub seconds: f64,
}

impl ToolTime {
    /// Seconds per call.
    pub fn mean(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.seconds / self.calls as f64
        }
    }
}

/// What one episode of the agent did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRun {
    /// The conversation, in OpenAI chat format.
    pub messages: Vec<ChatMessage>,
    /// The tools offered.
    pub tools: Vec<ToolSpec>,
    /// The agent's changes as a unified diff against the buggy tree.
    pub patch: String,
    /// Why it ended.
    pub exit_reason: ExitReason,
    /// More about why, for errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_detail: Option<String>,
    /// Model calls.
    pub steps: usize,
    /// Prompt tokens over all calls.
    pub prompt_tokens: u64,
    /// Completion tokens over all calls.
    pub completion_tokens: u64,
    /// Cost, for models that know their prices.
    pub cost: Option<f64>,
    /// Seconds from the first model call to the patch.
    pub seconds: f64,
    /// Bad output and refused calls.
    pub errors: ErrorCounts,
    /// Time in each tool.
    pub tool_time: BTreeMap<String, ToolTime>,
}

/// Runs episodes of the agent loop.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// The prompts.
    pub templates: Templates,
    /// The limits.
    pub limits: Limits,
}

/// The files of the task's FAIL_TO_PASS tests.
pub fn fail_to_pass_files(instance: &crate::TaskInstance) -> BTreeSet<String> {
    instance
        .fail_to_pass
        .iter()
        .map(|t| {
            t.as_str()
                .split("::")
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .filter(|f| !f.is_empty())
        .collect()
}

impl Session {
    /// A session with these prompts and limits.
    pub fn new(templates: Templates, limits: Limits) -> Self {
        Session { templates, limits }
    }

    /// Run one episode of `policy` in `episode`, which holds the buggy
    /// tree. Only a failure to prepare the tree is an error; whatever the
    /// policy does, the episode ends with an [`AgentRun`].
    pub fn run(&self, episode: &mut Episode, policy: &mut dyn Policy) -> Result<AgentRun> {
        let instance = episode.task().instance().clone();
        let hidden = fail_to_pass_files(&instance);
        let mut removals = Vec::new();
        for path in &hidden {
            if let Ok(bytes) = episode.workspace().read(path) {
                removals.push(FileChange {
                    path: path.clone(),
                    before: Some(String::from_utf8_lossy(&bytes).into_owned()),
                    after: None,
                });
            }
        }
        if !removals.is_empty() {
            episode.workspace().apply(&Patch::from_changes(&removals))?;
        }
        let root = episode.workspace().root().to_path_buf();
        let snapshot = Snapshot::take(&root);

        let specs = tool_specs();
        let mut tools = Tools::new(self.limits.tools.clone());
        let mut run = AgentRun {
            messages: vec![
                ChatMessage::system(Templates::render(&self.templates.system, &instance)),
                ChatMessage::user(Templates::render(&self.templates.instance, &instance)),
            ],
            tools: specs.clone(),
            patch: String::new(),
            exit_reason: ExitReason::MaxSteps,
            exit_detail: None,
            steps: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost: None,
            seconds: 0.0,
            errors: ErrorCounts::default(),
            tool_time: BTreeMap::new(),
        };
        let start = Instant::now();
        let mut last_action: Option<Vec<(String, String)>> = None;
        let mut repeats = 0usize;
        let limits = &self.limits;
        run.exit_reason = 'episode: loop {
            if run.steps >= limits.max_steps {
                break ExitReason::MaxSteps;
            }
            if limits
                .max_tokens
                .is_some_and(|max| run.prompt_tokens + run.completion_tokens >= max)
            {
                break ExitReason::MaxTokens;
            }
            if limits
                .max_cost
                .is_some_and(|max| run.cost.unwrap_or(0.0) >= max)
            {
                break ExitReason::MaxCost;
            }
            if limits.max_wall.is_some_and(|max| start.elapsed() >= max) {
                break ExitReason::WallTime;
            }
            let reply = match policy.act(&run.messages, &specs) {
                Ok(r) => r,
                Err(e) => {
                    run.exit_detail = Some(e.to_string());
                    break ExitReason::ModelError;
                }
            };
            run.steps += 1;
            run.prompt_tokens += reply.prompt_tokens;
            run.completion_tokens += reply.completion_tokens;
            if let Some(c) = reply.cost {
                run.cost = Some(run.cost.unwrap_or(0.0) + c);
            }
            let mut message = reply.message;
            message.role = crate::ChatRole::Assistant;
            let calls = message.tool_calls.clone();
            run.messages.push(message);
            if calls.is_empty() {
                run.errors.no_tool_call += 1;
                run.messages.push(ChatMessage::user(
                    "error: your reply called no tool. Act by calling one of the tools \
                     (bash, str_replace_editor, submit); call submit when you are done.",
                ));
                continue;
            }

            let action: Vec<(String, String)> = calls
                .iter()
                .map(|c| (c.function.name.clone(), c.function.arguments.clone()))
                .collect();
            repeats = if last_action.as_ref() == Some(&action) {
                repeats + 1
            } else {
                1
            };
            last_action = Some(action);
            if repeats >= limits.max_repeats.max(2) {
                run.errors.repeated += 1;
                for call in &calls {
                    run.messages.push(ChatMessage::tool_result(
                        call,
                        format!(
                            "error: this is the same action as in your last {} replies; it was not run again. Try something different.",
                            repeats - 1
                        ),
                    ));
                }
                continue;
            }

            let mut submitted = false;
            for call in &calls {
                if submitted {
                    run.messages.push(ChatMessage::tool_result(
                        call,
                        "not run: the episode ended with submit",
                    ));
                    continue;
                }
                let name = call.function.name.as_str();
                let raw = call.function.arguments.trim();
                let args: Value = if raw.is_empty() {
                    Value::Object(Default::default())
                } else {
                    match serde_json::from_str::<Value>(raw) {
                        Ok(v) if v.is_object() => v,
                        Ok(_) => {
                            run.errors.malformed_arguments += 1;
                            run.messages.push(ChatMessage::tool_result(
                                call,
                                format!("error: the arguments of `{name}` must be a JSON object; nothing was run."),
                            ));
                            continue;
                        }
                        Err(e) => {
                            run.errors.malformed_arguments += 1;
                            run.messages.push(ChatMessage::tool_result(
                                call,
                                format!("error: the arguments of `{name}` are not valid JSON ({e}); nothing was run."),
                            ));
                            continue;
                        }
                    }
                };
                if !Tools::knows(name) {
                    run.errors.unknown_tool += 1;
                    run.messages.push(ChatMessage::tool_result(
                        call,
                        format!("error: there is no tool `{name}`; the tools are bash, str_replace_editor and submit."),
                    ));
                    continue;
                }
                let t0 = Instant::now();
                let obs = match tools.call(episode, name, &args) {
                    Ok(o) => o,
                    Err(e) => {
                        run.exit_detail = Some(format!("{name}: {e}"));
                        run.messages.push(ChatMessage::tool_result(
                            call,
                            format!("error: the environment failed: {e}"),
                        ));
                        break 'episode ExitReason::EnvironmentError;
                    }
                };
                let time = run.tool_time.entry(name.to_string()).or_default();
                time.calls += 1;
                time.seconds += t0.elapsed().as_secs_f64();
                if obs.error {
                    run.errors.tool_errors += 1;
                }
                submitted |= obs.submit;
                run.messages.push(ChatMessage::tool_result(call, obs.text));
            }
            if submitted {
                break ExitReason::Submitted;
            }
        };
        run.patch = snapshot.diff(&root, &hidden).as_str().to_string();
        run.seconds = start.elapsed().as_secs_f64();
        Ok(run)
    }
}
