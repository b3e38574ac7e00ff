//! The plug points: mutators, sandboxes and workspaces, executors, issue
//! writers and language models. All are object safe and `Send + Sync`, with
//! blanket impls for `&T`, `Box<T>` and `Arc<T>`.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    Candidate, ChatMessage, Entity, Mutation, Patch, Result, Service, SourceFile, TestId,
    TestReport, ToolCompletion, ToolSpec,
};

// ---------------------------------------------------------------- Mutator

/// Makes bugs: given a source file and one of its entities, proposes zero or
/// more mutations. Must be deterministic for a given seed. Every mutation must
/// re-parse and change the AST; the engine drops those that do not.
pub trait Mutator: Send + Sync + Debug {
    /// Strategy name written into candidates, e.g. `func_pm_op_swap`.
    fn name(&self) -> &str;

    /// Propose mutations of `entity` in `file`.
    fn mutate(&self, file: &SourceFile, entity: &Entity, seed: u64) -> Vec<Mutation>;
}

macro_rules! forward_mutator {
    ($($ty:ty),*) => {$(
        impl<T: Mutator + ?Sized> Mutator for $ty {
            fn name(&self) -> &str { (**self).name() }
            fn mutate(&self, file: &SourceFile, entity: &Entity, seed: u64) -> Vec<Mutation> {
                (**self).mutate(file, entity, seed)
            }
        }
    )*};
}
forward_mutator!(&T, Box<T>, Arc<T>);

// ---------------------------------------------------------------- Sandbox

/// A command to run in a workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSpec {
    /// Program to run (looked up on the workspace's `PATH`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Working directory relative to the workspace root (`None` = root).
    pub cwd: Option<String>,
}

impl CommandSpec {
    /// `program args...`.
    pub fn new<I, S>(program: impl Into<String>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CommandSpec {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// Add an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// The command as one shell-like line, for messages.
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Limits for one command run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Kill the command and all its children after this long.
    pub timeout: Option<Duration>,
    /// Keep at most this many bytes of stdout and of stderr each.
    pub max_output: usize,
    /// For test runs: stop the run as timed out when one test's call takes
    /// longer than this (an executor may count CPU time rather than wall
    /// time, as smith's forking pytest executor does). Executors that cannot
    /// watch single tests rely on `timeout` alone.
    pub test_timeout: Option<Duration>,
    /// For test runs: limits of single tests, in place of `test_timeout`
    /// for the tests named. A validator gives each test a limit that
    /// follows its own baseline duration, so that a test is held to the
    /// same limit whichever tests run beside it (a selection or the whole
    /// suite).
    pub test_timeouts: BTreeMap<TestId, Duration>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            timeout: Some(Duration::from_secs(600)),
            max_output: 4 << 20,
            test_timeout: None,
            test_timeouts: BTreeMap::new(),
        }
    }
}

/// What a command did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutput {
    /// Exit code, `None` if killed by a signal.
    pub exit_code: Option<i32>,
    /// Standard output (capped).
    pub stdout: String,
    /// Standard error (capped).
    pub stderr: String,
    /// The command was killed at its time limit.
    pub timed_out: bool,
    /// How long it ran.
    pub duration: Duration,
}

impl RunOutput {
    /// Exit code 0 and not timed out.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// An isolated copy of a repository at its clean commit, where patches are
/// applied, commands run and `reset` returns to the clean tree.
pub trait Workspace: Send + Debug {
    /// Where the tree lives on this machine (for sandboxes that copy files
    /// in and out, a host-side mirror).
    fn root(&self) -> &Path;

    /// Where commands run in this workspace see the tree: [`root`] for
    /// sandboxes that show it at its host path, another path for those
    /// that mount it elsewhere (a container's `/testbed`).
    ///
    /// [`root`]: Workspace::root
    fn command_root(&self) -> PathBuf {
        self.root().to_path_buf()
    }

    /// Read a file relative to the root.
    fn read(&self, path: &str) -> Result<Vec<u8>>;

    /// Write a file relative to the root.
    fn write(&mut self, path: &str, contents: &[u8]) -> Result<()>;

    /// Apply a patch to the tree. The files it touches are remembered so
    /// that `reset` can restore them.
    fn apply(&mut self, patch: &Patch) -> Result<()>;

    /// Return to the clean tree.
    fn reset(&mut self) -> Result<()>;

    /// Run a command inside the workspace.
    fn run(&mut self, command: &CommandSpec, options: &RunOptions) -> Result<RunOutput>;

    /// Start `command` as a long-lived process in the workspace that reads
    /// lines on its stdin and answers with lines on its stdout (an
    /// executor's server, for instance). It runs under the same isolation
    /// and limits as [`Workspace::run`]; dropping the [`Service`] ends it.
    /// Workspaces that cannot do this return [`Error::Unsupported`], and
    /// callers fall back to [`Workspace::run`].
    ///
    /// [`Error::Unsupported`]: crate::Error::Unsupported
    fn spawn(&mut self, command: &CommandSpec) -> Result<Box<dyn Service>> {
        Err(crate::Error::Unsupported {
            what: format!("starting `{}` as a service", command.program),
        })
    }
}

impl<T: Workspace + ?Sized> Workspace for Box<T> {
    fn root(&self) -> &Path {
        (**self).root()
    }
    fn command_root(&self) -> PathBuf {
        (**self).command_root()
    }
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        (**self).read(path)
    }
    fn write(&mut self, path: &str, contents: &[u8]) -> Result<()> {
        (**self).write(path, contents)
    }
    fn apply(&mut self, patch: &Patch) -> Result<()> {
        (**self).apply(patch)
    }
    fn reset(&mut self) -> Result<()> {
        (**self).reset()
    }
    fn run(&mut self, command: &CommandSpec, options: &RunOptions) -> Result<RunOutput> {
        (**self).run(command, options)
    }
    fn spawn(&mut self, command: &CommandSpec) -> Result<Box<dyn Service>> {
        (**self).spawn(command)
    }
}

impl<T: Workspace + ?Sized> Workspace for &mut T {
    fn root(&self) -> &Path {
        (**self).root()
    }
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        (**self).read(path)
    }
    fn write(&mut self, path: &str, contents: &[u8]) -> Result<()> {
        (**self).write(path, contents)
    }
    fn apply(&mut self, patch: &Patch) -> Result<()> {
        (**self).apply(patch)
    }
    fn reset(&mut self) -> Result<()> {
        (**self).reset()
    }
    fn run(&mut self, command: &CommandSpec, options: &RunOptions) -> Result<RunOutput> {
        (**self).run(command, options)
    }
    fn spawn(&mut self, command: &CommandSpec) -> Result<Box<dyn Service>> {
        (**self).spawn(command)
    }
}

/// Makes workspaces for one repository.
pub trait Sandbox: Send + Sync + Debug {
    /// Short name, e.g. `local`, `bwrap`.
    fn name(&self) -> &str;

    /// A new workspace holding the clean tree.
    fn workspace(&self) -> Result<Box<dyn Workspace>>;
}

macro_rules! forward_sandbox {
    ($($ty:ty),*) => {$(
        impl<T: Sandbox + ?Sized> Sandbox for $ty {
            fn name(&self) -> &str { (**self).name() }
            fn workspace(&self) -> Result<Box<dyn Workspace>> { (**self).workspace() }
        }
    )*};
}
forward_sandbox!(&T, Box<T>, Arc<T>);

// ---------------------------------------------------------------- Executor

/// Which tests to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TestSelection {
    /// The repository's whole suite.
    All,
    /// Exactly these tests.
    Only(Vec<TestId>),
    /// The whole suite, collected as for [`TestSelection::All`], of which
    /// only these tests need a result (a validator passes every test the
    /// clean suite ran). An executor may leave every other test out — the
    /// pytest executor never makes them into items, which on a suite that
    /// generates thousands of cases only to deselect them by marker saves
    /// their collection — or run them all. Judged like `All`.
    AllKnown(Vec<TestId>),
}

impl TestSelection {
    /// Whether the selection runs the whole suite ([`TestSelection::All`]
    /// or [`TestSelection::AllKnown`]).
    pub fn is_whole_suite(&self) -> bool {
        !matches!(self, TestSelection::Only(_))
    }

    /// The tests named, if any (`None` for [`TestSelection::All`]).
    pub fn ids(&self) -> Option<&[TestId]> {
        match self {
            TestSelection::All => None,
            TestSelection::Only(ids) | TestSelection::AllKnown(ids) => Some(ids),
        }
    }
}

/// Runs tests in a workspace and reports per-test outcomes.
pub trait Executor: Send + Sync + Debug {
    /// Run `selection` in `workspace`.
    fn run_tests(
        &self,
        workspace: &mut dyn Workspace,
        selection: &TestSelection,
        options: &RunOptions,
    ) -> Result<TestReport>;

    /// Get ready to run tests in `workspace`, which holds the clean tree
    /// (no candidate applied). A validator calls this before every
    /// candidate and a baseline before every run, so an executor may start
    /// long-lived helpers (fork servers) here, from the clean tree, and
    /// nowhere else: a helper lost in the middle of a candidate is
    /// replaced at the next call, never from a changed tree. It must be
    /// cheap when its helpers are up. An error stops the validator; an
    /// executor whose helper merely did not start should go on without it.
    /// The default does nothing.
    fn prepare(&self, workspace: &mut dyn Workspace) -> Result<()> {
        let _ = workspace;
        Ok(())
    }

    /// [`prepare`](Executor::prepare) for runs of `selection` only: an
    /// executor may get ready for exactly those runs (the pytest executor's
    /// collected server then collects only the files of the selected tests,
    /// as a fresh run of them does). `workspace` holds the tree later runs
    /// are compared with. The default is `prepare`.
    fn prepare_for(&self, workspace: &mut dyn Workspace, selection: &TestSelection) -> Result<()> {
        let _ = selection;
        self.prepare(workspace)
    }

    /// Stop the helpers started for `workspace`: it is about to be
    /// discarded, or it may now hold changes that no helper must ever see
    /// (an arbitrary command ran in it). The default does nothing.
    fn release(&self, workspace: &dyn Workspace) {
        let _ = workspace;
    }

    /// The same executor with every run in a fresh interpreter, as a
    /// grader runs tests, when this one's runs may not be (fork servers);
    /// `None` (the default) when its runs already are. Validators confirm
    /// labels obtained through this executor with the fresh one.
    fn fresh(&self) -> Option<Box<dyn Executor>> {
        None
    }

    /// The same executor with every run it starts under `seed`: the hash
    /// seed (Python's `PYTHONHASHSEED`) fixed at `seed`, and each test
    /// started from the random state `seed` gives the process's global
    /// random generators. Runs under different seeds show tests whose ids
    /// or outcomes depend on hash order or on the random state; `None` (the
    /// default) when it has no such seeds.
    fn with_seed(&self, seed: u32) -> Option<Box<dyn Executor>> {
        let _ = seed;
        None
    }
}

macro_rules! forward_executor {
    ($($ty:ty),*) => {$(
        impl<T: Executor + ?Sized> Executor for $ty {
            fn run_tests(&self, workspace: &mut dyn Workspace, selection: &TestSelection, options: &RunOptions) -> Result<TestReport> {
                (**self).run_tests(workspace, selection, options)
            }
            fn prepare(&self, workspace: &mut dyn Workspace) -> Result<()> {
                (**self).prepare(workspace)
            }
            fn prepare_for(&self, workspace: &mut dyn Workspace, selection: &TestSelection) -> Result<()> {
                (**self).prepare_for(workspace, selection)
            }
            fn release(&self, workspace: &dyn Workspace) {
                (**self).release(workspace)
            }
            fn fresh(&self) -> Option<Box<dyn Executor>> {
                (**self).fresh()
            }
            fn with_seed(&self, seed: u32) -> Option<Box<dyn Executor>> {
                (**self).with_seed(seed)
            }
        }
    )*};
}
forward_executor!(&T, Box<T>, Arc<T>);

// ---------------------------------------------------------------- IssueWriter

/// One failing test as an issue writer sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailingTest {
    /// The test's id.
    pub id: TestId,
    /// Source of the test function, if found.
    pub source: Option<String>,
    /// What the test printed when it failed (traceback, assertion message).
    pub output: String,
}

/// Everything an issue writer may use for one kept candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueContext {
    /// The candidate (its patch is for leak checks and LM prompts, never to quote).
    pub candidate: Candidate,
    /// The tests that the bug breaks, with source and output where known.
    pub failing: Vec<FailingTest>,
    /// Original (clean) source of the touched entities, for leak checks.
    pub original_code: Vec<String>,
    /// Seed for phrasing choices.
    pub seed: u64,
}

/// Writes a problem statement for a kept candidate.
pub trait IssueWriter: Send + Sync + Debug {
    /// Short name, e.g. `template`, `lm`.
    fn name(&self) -> &str;

    /// Write the problem statement.
    fn write(&self, context: &IssueContext) -> Result<String>;
}

macro_rules! forward_issue_writer {
    ($($ty:ty),*) => {$(
        impl<T: IssueWriter + ?Sized> IssueWriter for $ty {
            fn name(&self) -> &str { (**self).name() }
            fn write(&self, context: &IssueContext) -> Result<String> { (**self).write(context) }
        }
    )*};
}
forward_issue_writer!(&T, Box<T>, Arc<T>);

// ---------------------------------------------------------------- LanguageModel

/// Who says a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The request.
    User,
    /// A model reply.
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// Who says it.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Message {
            role: Role::System,
            content: content.into(),
        }
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// Sampling parameters for one completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionParams {
    /// Sampling temperature.
    pub temperature: f32,
    /// Maximum tokens to generate.
    pub max_tokens: Option<u32>,
    /// Seed, for backends that honour it.
    pub seed: Option<u64>,
}

impl Default for CompletionParams {
    fn default() -> Self {
        CompletionParams {
            temperature: 0.7,
            max_tokens: Some(2048),
            seed: None,
        }
    }
}

/// A model's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The reply text.
    pub text: String,
    /// Prompt tokens used, if the backend says.
    pub prompt_tokens: u64,
    /// Completion tokens used, if the backend says.
    pub completion_tokens: u64,
    /// Whether the answer came from a cache (no request was sent).
    pub cached: bool,
}

/// A chat language model.
pub trait LanguageModel: Send + Sync + Debug {
    /// The model's name, for records and cache keys.
    fn model(&self) -> &str;

    /// Complete a conversation.
    fn complete(&self, messages: &[Message], params: &CompletionParams) -> Result<Completion>;

    /// Complete a conversation in which the model may call `tools`
    /// (OpenAI function calling). Models that cannot call tools keep the
    /// default, an [`Error::LanguageModel`](crate::Error::LanguageModel)
    /// saying so.
    fn complete_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
        params: &CompletionParams,
    ) -> Result<ToolCompletion> {
        let _ = (messages, tools, params);
        Err(crate::Error::language_model(
            self.model(),
            "this model does not support tool calls",
        ))
    }
}

macro_rules! forward_lm {
    ($($ty:ty),*) => {$(
        impl<T: LanguageModel + ?Sized> LanguageModel for $ty {
            fn model(&self) -> &str { (**self).model() }
            fn complete(&self, messages: &[Message], params: &CompletionParams) -> Result<Completion> {
                (**self).complete(messages, params)
            }
            fn complete_with_tools(&self, messages: &[ChatMessage], tools: &[ToolSpec], params: &CompletionParams) -> Result<ToolCompletion> {
                (**self).complete_with_tools(messages, tools, params)
            }
        }
    )*};
}
forward_lm!(&T, Box<T>, Arc<T>);

/// `rel` if it names a place inside a workspace by its words alone:
/// relative, no `..` component and no NUL byte. Otherwise an
/// [`Error::Invalid`](crate::Error::Invalid) about `what` naming `rel`.
///
/// This is the lexical half of keeping a patch inside its workspace; a
/// sandbox whose files are on disk must also refuse symbolic links that
/// lead out (smith-env's workspaces do).
///
/// ```
/// use smith_core::workspace_rel;
/// assert!(workspace_rel("pkg/mod.py", "patch path").is_ok());
/// assert!(workspace_rel("../outside.py", "patch path").is_err());
/// assert!(workspace_rel("/etc/passwd", "patch path").is_err());
/// ```
pub fn workspace_rel<'a>(rel: &'a str, what: &str) -> crate::Result<&'a str> {
    let bad = |why: &str| {
        Err(crate::Error::invalid(
            what,
            format!("`{rel}` is not inside the workspace ({why})"),
        ))
    };
    if rel.starts_with('/') {
        return bad("absolute path");
    }
    if rel.split('/').any(|p| p == "..") {
        return bad("it climbs out with `..`");
    }
    if rel.contains('\0') {
        return bad("NUL byte");
    }
    Ok(rel)
}

/// Path helper: join a workspace-relative `/` path onto a root.
pub fn join_rel(root: &Path, rel: &str) -> PathBuf {
    rel.split('/')
        .filter(|p| !p.is_empty())
        .fold(root.to_path_buf(), |acc, part| acc.join(part))
}
