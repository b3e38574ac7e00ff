//! Feature-add bugs (`lm/feature_add`): a language-model agent is asked to
//! implement a small feature in a workspace; when its change breaks tests
//! that passed before, the library part of the change becomes a candidate.
//!
//! The bug is unintended, like most real ones: the agent was adding
//! behaviour, not planting a fault. The agent speaks a tiny protocol, one
//! action per reply: a ```` ```bash ```` block runs a command in the
//! workspace, a ```` ```write path ```` block replaces a file, `DONE`
//! ends. Steps are bounded. Tests added by the agent are left out of the
//! candidate, so the candidate is the feature's code change alone; the
//! caller validates it like any other candidate. Only files written with
//! `write` actions make up the change (a workspace cannot list what a shell
//! command changed); the candidate's entities are those file paths.

use std::collections::{BTreeMap, BTreeSet};

use smith_core::{
    Baseline, Candidate, CommandSpec, CompletionParams, Executor, FileChange, LanguageModel,
    Message, Patch, RepoRef, Result, RunOptions, TestId, TestSelection, Workspace,
};

use crate::pr_mirror::is_library_path;

const DEFAULT_PROMPT: &str = include_str!("../prompts/feature_add.md");

/// Bytes of command output shown back to the agent per step.
const OUTPUT_BYTES: usize = 4000;

/// How the agent runs.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureAddOptions {
    /// Repository and commit of the clean tree.
    pub repo: RepoRef,
    /// Most model replies before the agent is stopped.
    pub max_steps: usize,
    /// Prompt with `{{feature}}` and `{{steps}}`.
    pub prompt: String,
    /// Sampling parameters.
    pub params: CompletionParams,
    /// Limits of each agent command.
    pub command_limits: RunOptions,
}

impl FeatureAddOptions {
    /// Defaults: 10 steps, the bundled prompt, 60 s per command.
    pub fn new(repo: RepoRef) -> Self {
        FeatureAddOptions {
            repo,
            max_steps: 10,
            prompt: DEFAULT_PROMPT.to_string(),
            params: CompletionParams::default(),
            command_limits: RunOptions {
                timeout: Some(std::time::Duration::from_secs(60)),
                max_output: 1 << 20,
                test_timeout: None,
                ..RunOptions::default()
            },
        }
    }
}

/// What one agent session produced.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureAddOutcome {
    /// The candidate, when the change broke previously passing tests and
    /// touched library code.
    pub candidate: Option<Candidate>,
    /// Eligible tests (passing in the baseline) that fail after the change.
    pub broken: BTreeSet<TestId>,
    /// Model replies used.
    pub steps: usize,
    /// The agent said `DONE` (rather than running out of steps or failing).
    pub finished: bool,
    /// Files the agent wrote, in order of first write.
    pub written: Vec<String>,
}

/// One parsed agent reply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Run(String),
    Write { path: String, content: String },
    Done,
    Unknown,
}

fn parse_action(reply: &str) -> Action {
    let mut lines = reply.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed == "DONE" {
            return Action::Done;
        }
        let Some(label) = trimmed.strip_prefix("```") else {
            continue;
        };
        let mut body = String::new();
        for inner in lines.by_ref() {
            if inner.trim_start().starts_with("```") {
                break;
            }
            body.push_str(inner);
            body.push('\n');
        }
        let label = label.trim();
        if label == "bash" || label == "sh" {
            return Action::Run(body.trim().to_string());
        }
        if let Some(path) = label.strip_prefix("write ") {
            return Action::Write {
                path: path.trim().trim_start_matches("./").to_string(),
                content: body,
            };
        }
        return Action::Unknown;
    }
    Action::Unknown
}

/// Run the agent's shell command; the feedback is its exit code and output,
/// cut to [`OUTPUT_BYTES`].
fn run_shell(workspace: &mut dyn Workspace, command: &str, limits: &RunOptions) -> Result<String> {
    let spec = CommandSpec::new("sh", ["-c", command]);
    let out = workspace.run(&spec, limits)?;
    let mut text = format!(
        "exit code: {}\n{}{}",
        out.exit_code
            .map_or("killed".to_string(), |c| c.to_string()),
        out.stdout,
        out.stderr
    );
    if text.len() > OUTPUT_BYTES {
        let mut cut = OUTPUT_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n[output truncated]");
    }
    Ok(text)
}

/// Write the agent's file (refusing a path outside the repository),
/// remembering its clean text in `clean` and its path in `written` the
/// first time; the feedback says which.
fn write_file(
    workspace: &mut dyn Workspace,
    clean: &mut BTreeMap<String, Option<String>>,
    written: &mut Vec<String>,
    path: String,
    content: &str,
) -> Result<String> {
    if path.is_empty() || path.starts_with('/') || path.split('/').any(|p| p == "..") {
        return Ok(format!(
            "refused: `{path}` is not a path inside the repository"
        ));
    }
    if !clean.contains_key(&path) {
        let before = workspace
            .read(&path)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        clean.insert(path.clone(), before);
        written.push(path.clone());
    }
    workspace.write(&path, content.as_bytes())?;
    Ok(format!("wrote {path}"))
}

/// The library files among `written` whose text differs from `clean`.
fn library_changes(
    workspace: &dyn Workspace,
    written: &[String],
    clean: &BTreeMap<String, Option<String>>,
) -> Vec<FileChange> {
    let mut changes = Vec::new();
    for path in written.iter().filter(|p| is_library_path(p)) {
        let after = workspace
            .read(path)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        let before = clean.get(path).cloned().flatten();
        if before != after {
            changes.push(FileChange {
                path: path.clone(),
                before,
                after,
            });
        }
    }
    changes
}

/// Run the agent on a fresh workspace state (the caller passes a clean
/// workspace; it is reset at the end), then run the suite with `executor`
/// and compare with `baseline`.
///
/// Errors only for workspace or executor failures; model failures end the
/// session like running out of steps.
pub fn feature_add(
    model: &dyn LanguageModel,
    workspace: &mut dyn Workspace,
    executor: &dyn Executor,
    baseline: &Baseline,
    feature: &str,
    options: &FeatureAddOptions,
) -> Result<FeatureAddOutcome> {
    let mut messages = vec![Message::user(
        options
            .prompt
            .replace("{{feature}}", feature.trim())
            .replace("{{steps}}", &options.max_steps.to_string()),
    )];
    let mut clean: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut written: Vec<String> = Vec::new();
    let (mut steps, mut finished) = (0, false);
    while steps < options.max_steps {
        let reply = match model.complete(&messages, &options.params) {
            Ok(c) => c.text,
            Err(e) => {
                tracing::debug!(error = %e, "feature_add model request failed");
                break;
            }
        };
        steps += 1;
        messages.push(Message::assistant(reply.clone()));
        let feedback = match parse_action(&reply) {
            Action::Done => {
                finished = true;
                break;
            }
            Action::Run(command) => run_shell(workspace, &command, &options.command_limits)?,
            Action::Write { path, content } => {
                write_file(workspace, &mut clean, &mut written, path, &content)?
            }
            Action::Unknown => {
                "no action found: reply with one ```bash block, one ```write block, or DONE"
                    .to_string()
            }
        };
        messages.push(Message::user(feedback));
    }

    let report = executor.run_tests(workspace, &TestSelection::All, &RunOptions::default())?;
    let failed = report.failed();
    let broken: BTreeSet<TestId> = baseline
        .passing
        .iter()
        .filter(|t| failed.contains(*t) || !report.outcomes.contains_key(*t))
        .cloned()
        .collect();

    let changes = library_changes(workspace, &written, &clean);
    workspace.reset()?;
    let candidate = (!broken.is_empty() && !changes.is_empty()).then(|| {
        let subject = feature.lines().next().unwrap_or_default().trim();
        Candidate::new(
            &options.repo,
            "lm/feature_add",
            changes.iter().map(|c| c.path.clone()).collect(),
            format!("{} implementing: {subject}", model.model()),
            Patch::from_changes(&changes),
        )
    });
    if candidate.is_none() && !broken.is_empty() && changes.is_empty() {
        tracing::debug!("feature_add broke tests without changing library files");
    }
    Ok(FeatureAddOutcome {
        candidate,
        broken,
        steps,
        finished,
        written,
    })
}
