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
    ChatMessage, CompletionParams, FileChange, LanguageModel, Patch, Result, ToolCall,
    ToolCompletion, ToolSpec,
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
        hide_files(episode, &hidden)?;
        let root = episode.workspace().root().to_path_buf();
        let snapshot = Snapshot::take(&root);

        let specs = tool_specs();
        let mut tools = Tools::new(self.limits.tools.clone());
        let mut run = self.start_run(&instance, specs.clone());
        let start = Instant::now();
        let mut repeats = Repeats::default();
        run.exit_reason = loop {
            if let Some(reason) = self.limit_reached(&run, start) {
                break reason;
            }
            let reply = match policy.act(&run.messages, &specs) {
                Ok(r) => r,
                Err(e) => {
                    run.exit_detail = Some(e.to_string());
                    break ExitReason::ModelError;
                }
            };
            let calls = run.record_reply(reply);
            if calls.is_empty() {
                run.errors.no_tool_call += 1;
                run.messages.push(ChatMessage::user(
                    "error: your reply called no tool. Act by calling one of the tools \
                     (bash, str_replace_editor, submit); call submit when you are done.",
                ));
                continue;
            }
            if repeats.refuse(&calls, self.limits.max_repeats, &mut run) {
                continue;
            }
            if let Some(reason) = run.call_tools(episode, &mut tools, &calls) {
                break reason;
            }
        };
        run.patch = snapshot.diff(&root, &hidden).as_str().to_string();
        run.seconds = start.elapsed().as_secs_f64();
        Ok(run)
    }

    /// An episode before its first step: the system and instance prompts
    /// of `instance`, the tools offered, nothing counted yet.
    fn start_run(&self, instance: &crate::TaskInstance, specs: Vec<ToolSpec>) -> AgentRun {
        AgentRun {
            messages: vec![
                ChatMessage::system(Templates::render(&self.templates.system, instance)),
                ChatMessage::user(Templates::render(&self.templates.instance, instance)),
            ],
            tools: specs,
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
        }
    }

    /// The limit `run` has reached since `start`, if any: steps, tokens,
    /// cost, wall time.
    fn limit_reached(&self, run: &AgentRun, start: Instant) -> Option<ExitReason> {
        let limits = &self.limits;
        if run.steps >= limits.max_steps {
            return Some(ExitReason::MaxSteps);
        }
        if limits
            .max_tokens
            .is_some_and(|max| run.prompt_tokens + run.completion_tokens >= max)
        {
            return Some(ExitReason::MaxTokens);
        }
        if limits
            .max_cost
            .is_some_and(|max| run.cost.unwrap_or(0.0) >= max)
        {
            return Some(ExitReason::MaxCost);
        }
        if limits.max_wall.is_some_and(|max| start.elapsed() >= max) {
            return Some(ExitReason::WallTime);
        }
        None
    }
}

/// Remove the files `hidden` from the episode's tree (those that exist).
fn hide_files(episode: &mut Episode, hidden: &BTreeSet<String>) -> Result<()> {
    let mut removals = Vec::new();
    for path in hidden {
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
    Ok(())
}

/// The policy's last actions: how many replies in a row made the same
/// tool calls.
#[derive(Default)]
struct Repeats {
    last_action: Option<Vec<(String, String)>>,
    count: usize,
}

impl Repeats {
    /// Count `calls` as the next action; when it repeats the last one
    /// `max_repeats` times (at least twice) in a row, answer each call with
    /// an error in `run` instead, and return `true`: the calls are not run.
    fn refuse(&mut self, calls: &[ToolCall], max_repeats: usize, run: &mut AgentRun) -> bool {
        let action: Vec<(String, String)> = calls
            .iter()
            .map(|c| (c.function.name.clone(), c.function.arguments.clone()))
            .collect();
        self.count = if self.last_action.as_ref() == Some(&action) {
            self.count + 1
        } else {
            1
        };
        self.last_action = Some(action);
        if self.count < max_repeats.max(2) {
            return false;
        }
        run.errors.repeated += 1;
        for call in calls {
            run.messages.push(ChatMessage::tool_result(
                call,
                format!(
                    "error: this is the same action as in your last {} replies; it was not run again. Try something different.",
                    self.count - 1
                ),
            ));
        }
        true
    }
}

impl AgentRun {
    /// Count a step and its tokens and cost, add the reply to the
    /// conversation as the assistant's, and return its tool calls.
    fn record_reply(&mut self, reply: ToolCompletion) -> Vec<ToolCall> {
        self.steps += 1;
        self.prompt_tokens += reply.prompt_tokens;
        self.completion_tokens += reply.completion_tokens;
        if let Some(c) = reply.cost {
            self.cost = Some(self.cost.unwrap_or(0.0) + c);
        }
        let mut message = reply.message;
        message.role = crate::ChatRole::Assistant;
        let calls = message.tool_calls.clone();
        self.messages.push(message);
        calls
    }

    /// Run the tool calls of one reply in order, each result a message;
    /// after `submit` the rest are not run. Returns why the episode ends:
    /// submitted, or the environment failed under a tool.
    fn call_tools(
        &mut self,
        episode: &mut Episode,
        tools: &mut Tools,
        calls: &[ToolCall],
    ) -> Option<ExitReason> {
        let mut submitted = false;
        for call in calls {
            if submitted {
                self.messages.push(ChatMessage::tool_result(
                    call,
                    "not run: the episode ended with submit",
                ));
                continue;
            }
            let name = call.function.name.as_str();
            let Some(args) = self.arguments(call) else {
                continue;
            };
            let t0 = Instant::now();
            let obs = match tools.call(episode, name, &args) {
                Ok(o) => o,
                Err(e) => {
                    self.exit_detail = Some(format!("{name}: {e}"));
                    self.messages.push(ChatMessage::tool_result(
                        call,
                        format!("error: the environment failed: {e}"),
                    ));
                    return Some(ExitReason::EnvironmentError);
                }
            };
            let time = self.tool_time.entry(name.to_string()).or_default();
            time.calls += 1;
            time.seconds += t0.elapsed().as_secs_f64();
            if obs.error {
                self.errors.tool_errors += 1;
            }
            submitted |= obs.submit;
            self.messages.push(ChatMessage::tool_result(call, obs.text));
        }
        submitted.then_some(ExitReason::Submitted)
    }

    /// The arguments of `call` to a known tool, as a JSON object (empty
    /// when none were given); otherwise `None`, after an error message the
    /// model can read (malformed arguments are checked first, then the
    /// tool's name).
    fn arguments(&mut self, call: &ToolCall) -> Option<Value> {
        let name = call.function.name.as_str();
        let raw = call.function.arguments.trim();
        let args: Value = if raw.is_empty() {
            Value::Object(Default::default())
        } else {
            match serde_json::from_str::<Value>(raw) {
                Ok(v) if v.is_object() => v,
                Ok(_) => {
                    self.errors.malformed_arguments += 1;
                    self.messages.push(ChatMessage::tool_result(
                        call,
                        format!("error: the arguments of `{name}` must be a JSON object; nothing was run."),
                    ));
                    return None;
                }
                Err(e) => {
                    self.errors.malformed_arguments += 1;
                    self.messages.push(ChatMessage::tool_result(
                        call,
                        format!("error: the arguments of `{name}` are not valid JSON ({e}); nothing was run."),
                    ));
                    return None;
                }
            }
        };
        if !Tools::knows(name) {
            self.errors.unknown_tool += 1;
            self.messages.push(ChatMessage::tool_result(
                call,
                format!("error: there is no tool `{name}`; the tools are bash, str_replace_editor and submit."),
            ));
            return None;
        }
        Some(args)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::gym::Task;
    use crate::memory::{MemorySandbox, ScriptedExecutor};
    use crate::{Candidate, TaskInstance, ToolCall};

    fn task() -> Task {
        let clean = "def add(a, b):\n    return a + b\n";
        let buggy = "def add(a, b):\n    return a - b\n";
        let patch = Patch::from_changes(&[FileChange::modified("m.py", clean, buggy)]);
        let c = Candidate::new(
            &smith_core::RepoRef::new("o/r", "abc"),
            "s",
            vec!["m.py::add".into()],
            "",
            patch,
        );
        let inst = TaskInstance::new(
            &c,
            vec!["t.py::test_add".into()],
            vec![],
            "add subtracts".into(),
            "img".into(),
            "2026-01-01T00:00:00Z".into(),
        );
        let sandbox = MemorySandbox::new([
            ("m.py".to_string(), clean.to_string()),
            ("t.py".to_string(), "def test_add(): ...\n".to_string()),
        ]);
        let exec = ScriptedExecutor::new().test("t.py::test_add", "m.py", "a + b");
        Task::from_instance(inst, Arc::new(sandbox), Arc::new(exec))
    }

    /// Replies from a list, then errors.
    struct Scripted(Vec<ChatMessage>);

    impl Policy for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }
        fn act(&mut self, _: &[ChatMessage], _: &[ToolSpec]) -> Result<ToolCompletion> {
            if self.0.is_empty() {
                return Err(crate::Error::language_model("scripted", "out of replies"));
            }
            Ok(ToolCompletion {
                message: self.0.remove(0),
                prompt_tokens: 10,
                completion_tokens: 5,
                cost: Some(0.01),
            })
        }
    }

    fn calls(name: &str, args: &str) -> ChatMessage {
        ChatMessage::assistant(None, vec![ToolCall::new("c", name, args)])
    }

    #[test]
    fn bad_output_is_answered_and_counted_and_the_episode_goes_on() {
        let t = task();
        let mut episode = t.episode().unwrap();
        let mut policy = Scripted(vec![
            calls("bash", "{\"command\": "),
            calls("bash", "[1, 2]"),
            calls("open_file", "{}"),
            ChatMessage::assistant(Some("I think it is fine.".into()), vec![]),
            calls(
                "str_replace_editor",
                r#"{"command": "view", "path": "t.py"}"#,
            ),
            calls(
                "str_replace_editor",
                r#"{"command": "view", "path": "t.py"}"#,
            ),
            calls(
                "str_replace_editor",
                r#"{"command": "view", "path": "t.py"}"#,
            ),
            calls(
                "str_replace_editor",
                r#"{"command": "str_replace", "path": "m.py", "old_str": "a - b", "new_str": "a + b"}"#,
            ),
            calls("submit", ""),
        ]);
        let run = Session::default().run(&mut episode, &mut policy).unwrap();
        assert_eq!(run.exit_reason, ExitReason::Submitted);
        assert_eq!(run.steps, 9);
        assert_eq!(run.errors.malformed_arguments, 2);
        assert_eq!(run.errors.unknown_tool, 1);
        assert_eq!(run.errors.no_tool_call, 1);
        assert_eq!(
            run.errors.repeated, 1,
            "the third identical view is not run"
        );
        // The failing test's file is hidden from the agent.
        assert_eq!(run.errors.tool_errors, 2);
        let text = |i: usize| run.messages[i].content.clone().unwrap_or_default();
        assert!(text(3).contains("not valid JSON"), "{}", text(3));
        assert!(text(5).contains("must be a JSON object"));
        assert!(text(7).contains("no tool `open_file`"));
        assert_eq!(run.messages[9].role, crate::ChatRole::User);
        assert!(text(9).contains("called no tool"));
        assert!(text(11).contains("no such file: t.py"));
        assert!(text(15).contains("not run again"));
        assert!(text(17).contains("has been edited"));
        assert_eq!((run.prompt_tokens, run.completion_tokens), (90, 45));
        assert!((run.cost.unwrap() - 0.09).abs() < 1e-9);
        let fixed = episode.workspace().read("m.py").unwrap();
        assert_eq!(
            String::from_utf8(fixed).unwrap(),
            "def add(a, b):\n    return a + b\n"
        );
    }

    #[test]
    fn limits_end_episodes_with_their_reason() {
        let t = task();
        let view = || {
            calls(
                "str_replace_editor",
                r#"{"command": "view", "path": "m.py"}"#,
            )
        };
        let mut session = Session::default();
        session.limits.max_steps = 2;
        let run = session
            .run(
                &mut t.episode().unwrap(),
                &mut Scripted(vec![view(), view(), view()]),
            )
            .unwrap();
        assert_eq!((run.exit_reason, run.steps), (ExitReason::MaxSteps, 2));
        assert!(run.messages[3]
            .content
            .as_deref()
            .unwrap()
            .contains("     2\t    return a - b"));

        let mut session = Session::default();
        session.limits.max_tokens = Some(30);
        let run = session
            .run(&mut t.episode().unwrap(), &mut Scripted(vec![view(); 5]))
            .unwrap();
        assert_eq!((run.exit_reason, run.steps), (ExitReason::MaxTokens, 2));

        let mut session = Session::default();
        session.limits.max_cost = Some(0.025);
        let run = session
            .run(&mut t.episode().unwrap(), &mut Scripted(vec![view(); 5]))
            .unwrap();
        assert_eq!((run.exit_reason, run.steps), (ExitReason::MaxCost, 3));

        let run = Session::default()
            .run(&mut t.episode().unwrap(), &mut Scripted(vec![]))
            .unwrap();
        assert_eq!(run.exit_reason, ExitReason::ModelError);
        assert!(run.exit_detail.unwrap().contains("out of replies"));
    }

    #[test]
    fn the_editor_creates_inserts_and_undoes() {
        let t = task();
        let mut episode = t.episode().unwrap();
        let mut policy = Scripted(vec![
            calls(
                "str_replace_editor",
                r#"{"command": "create", "path": "n.py", "file_text": "a\nc\n"}"#,
            ),
            calls(
                "str_replace_editor",
                r#"{"command": "insert", "path": "n.py", "insert_line": 1, "new_str": "b"}"#,
            ),
            calls(
                "str_replace_editor",
                r#"{"command": "create", "path": "n.py", "file_text": "x"}"#,
            ),
            calls(
                "str_replace_editor",
                r#"{"command": "str_replace", "path": "m.py", "old_str": "zzz", "new_str": ""}"#,
            ),
            calls(
                "str_replace_editor",
                r#"{"command": "undo_edit", "path": "n.py"}"#,
            ),
            calls("submit", "{}"),
        ]);
        let run = Session::default().run(&mut episode, &mut policy).unwrap();
        assert_eq!(run.exit_reason, ExitReason::Submitted);
        assert_eq!(
            run.errors.tool_errors, 2,
            "create over a file, missing old_str"
        );
        let n = String::from_utf8(episode.workspace().read("n.py").unwrap()).unwrap();
        assert_eq!(n, "a\nc\n", "the insert was undone");
        assert!(run.messages[5].content.as_deref().unwrap().contains("b"));
    }
}
