//! PR mirror (`pr_mirror`): real past changes of a repository undone on
//! its current tree.
//!
//! A commit that changed library code (typically a fix or a feature, often
//! with tests) is mirrored by reversing the non-test part of its diff on the
//! current files. Where the reverse hunks still match (with offset search),
//! that is done in process; where the code has moved on, an optional
//! [`LanguageModel`] is given the original change and the current file and
//! asked to rewrite the file as it would be without the change. Commits that
//! touch only tests, docs or packaging are skipped.
//!
//! Walking the history is the caller's job (it runs `git`);
//! [`parse_git_log`] reads the output of
//! `git log --no-merges -p --format=format:%x1e%H%x1f%B%x1f`.

use std::collections::BTreeMap;

use smith_core::{
    Candidate, CompletionParams, Error, FileChange, FilePatch, LanguageModel, LineKind, Message,
    Patch, RepoRef, Result, SourceFile,
};

use crate::entities::extract_entities;
use crate::files::is_test_path;
use crate::lm::extract_code_block;
use smith_core::python::{changes_ast, parse, AstChange};

const DEFAULT_PROMPT: &str = include_str!("../prompts/pr_mirror.md");

/// The `git log` format [`parse_git_log`] reads.
pub const GIT_LOG_FORMAT: &str = "--format=format:%x1e%H%x1f%B%x1f";

/// One commit of the history: its id, message and unified diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryCommit {
    /// Full commit id.
    pub sha: String,
    /// Commit message.
    pub message: String,
    /// The commit's diff against its parent.
    pub diff: Patch,
}

/// Read `git log --no-merges -p` output made with [`GIT_LOG_FORMAT`]:
/// records start with `\x1e`, then the sha, `\x1f`, the message, `\x1f`,
/// and the diff.
pub fn parse_git_log(text: &str) -> Vec<HistoryCommit> {
    text.split('\x1e')
        .filter_map(|record| {
            let mut parts = record.splitn(3, '\x1f');
            let sha = parts.next()?.trim().to_string();
            let message = parts.next()?.trim().to_string();
            let diff = parts.next().unwrap_or_default().trim_start_matches('\n');
            (!sha.is_empty()).then(|| HistoryCommit {
                sha,
                message,
                diff: Patch::from_text(diff),
            })
        })
        .collect()
}

/// Whether a changed path is library code a mirrored bug may live in:
/// a Python file that is not a test, not under `docs/`, `doc/`,
/// `examples/`, `benchmarks/` or `scripts/`, and not packaging
/// (`setup.py`, `noxfile.py`, `conftest.py`, ...).
pub fn is_library_path(path: &str) -> bool {
    const NOT_LIBRARY_DIRS: &[&str] = &["docs", "doc", "examples", "benchmarks", "scripts"];
    const PACKAGING: &[&str] = &[
        "setup.py",
        "noxfile.py",
        "tasks.py",
        "fabfile.py",
        "conf.py",
        "manage.py",
    ];
    let file = path.rsplit('/').next().unwrap_or(path);
    path.ends_with(".py")
        && !is_test_path(path)
        && !PACKAGING.contains(&file)
        && !path
            .split('/')
            .any(|d| NOT_LIBRARY_DIRS.contains(&d) || d.starts_with('.'))
}

/// The part of a commit's diff that modifies library files (see
/// [`is_library_path`]); added, deleted and renamed files are left out.
pub fn library_part(diff: &Patch) -> Result<Vec<FilePatch>> {
    Ok(diff
        .files()?
        .into_iter()
        .filter(|f| {
            f.old_path.is_some()
                && f.old_path == f.new_path
                && !f.hunks.is_empty()
                && is_library_path(f.path())
        })
        .collect())
}

/// Why a commit was not mirrored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MirrorSkip {
    /// The commit changes no library file (tests, docs or packaging only).
    NoLibraryChange,
    /// A file the commit changed is gone from the current tree.
    FileMissing(String),
    /// The reverse did not apply and no model was given (or the model's
    /// answer was unusable).
    DoesNotApply(String),
    /// Undoing the change leaves every file's AST as it is.
    Unchanged,
    /// A file does not parse after undoing the change.
    Unparsable(String),
}

/// What became of one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorOutcome {
    /// A candidate; `via_model` lists files the model rewrote.
    Candidate {
        /// The bug: the current tree with the commit's library change undone.
        candidate: Candidate,
        /// Files rewritten by the model because the reverse did not apply.
        via_model: Vec<String>,
    },
    /// The commit was skipped.
    Skipped(MirrorSkip),
}

/// How to mirror commits.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorOptions {
    /// Repository and commit of the current (clean) tree.
    pub repo: RepoRef,
    /// Prompt for the model fallback, with `{{path}}`, `{{message}}`,
    /// `{{diff}}` and `{{file}}`.
    pub prompt: String,
    /// Sampling parameters for the fallback.
    pub params: CompletionParams,
}

impl MirrorOptions {
    /// Options with the default prompt.
    pub fn new(repo: RepoRef) -> Self {
        MirrorOptions {
            repo,
            prompt: DEFAULT_PROMPT.to_string(),
            params: CompletionParams {
                temperature: 0.0,
                max_tokens: Some(8192),
                seed: None,
            },
        }
    }
}

/// Mirror one commit on the current tree.
///
/// `current` gives the current text of a repository path (`None` if the
/// file does not exist). `model` is the fallback for files where the
/// reversed hunks no longer match; without it such commits are skipped.
pub fn mirror_commit(
    commit: &HistoryCommit,
    current: &dyn Fn(&str) -> Option<String>,
    model: Option<&dyn LanguageModel>,
    options: &MirrorOptions,
) -> Result<MirrorOutcome> {
    let files = library_part(&commit.diff)?;
    if files.is_empty() {
        return Ok(MirrorOutcome::Skipped(MirrorSkip::NoLibraryChange));
    }
    let mut changes = Vec::new();
    let mut via_model = Vec::new();
    let mut any_changed = false;
    for forward in &files {
        let path = forward.path().to_string();
        let Some(text) = current(&path) else {
            return Ok(MirrorOutcome::Skipped(MirrorSkip::FileMissing(path)));
        };
        let Ok(original) = parse(&path, &text) else {
            return Ok(MirrorOutcome::Skipped(MirrorSkip::Unparsable(path)));
        };
        let reversed = forward.reversed();
        let undone = match reversed.apply(Some(&text)) {
            Ok(Some(undone)) => undone,
            Ok(None) | Err(_) => {
                let Some(model) = model else {
                    return Ok(MirrorOutcome::Skipped(MirrorSkip::DoesNotApply(path)));
                };
                match ask_model(model, commit, forward, &path, &text, options) {
                    Some(undone) => {
                        via_model.push(path.clone());
                        undone
                    }
                    None => return Ok(MirrorOutcome::Skipped(MirrorSkip::DoesNotApply(path))),
                }
            }
        };
        match changes_ast(original.syntax(), &undone) {
            AstChange::Unparsable => {
                return Ok(MirrorOutcome::Skipped(MirrorSkip::Unparsable(path)))
            }
            AstChange::Changed => any_changed = true,
            AstChange::Unchanged => {}
        }
        changes.push(FileChange::modified(path, text, undone));
    }
    if !any_changed {
        return Ok(MirrorOutcome::Skipped(MirrorSkip::Unchanged));
    }
    let patch = Patch::from_changes(&changes);
    let entities = touched_entities(&patch, &changes)?;
    let subject = commit.message.lines().next().unwrap_or_default();
    let candidate = Candidate::new(
        &options.repo,
        "pr_mirror",
        entities,
        format!(
            "undo {} ({subject})",
            &commit.sha[..commit.sha.len().min(12)]
        ),
        patch,
    );
    Ok(MirrorOutcome::Candidate {
        candidate,
        via_model,
    })
}

/// Mirror every commit, in order; skips are counted by reason.
pub fn mirror_history(
    commits: &[HistoryCommit],
    current: &dyn Fn(&str) -> Option<String>,
    model: Option<&dyn LanguageModel>,
    options: &MirrorOptions,
) -> Result<(Vec<Candidate>, BTreeMap<String, usize>)> {
    let mut out = Vec::new();
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    for commit in commits {
        match mirror_commit(commit, current, model, options)? {
            MirrorOutcome::Candidate { candidate, .. } => out.push(candidate),
            MirrorOutcome::Skipped(reason) => {
                let label = match reason {
                    MirrorSkip::NoLibraryChange => "no_library_change",
                    MirrorSkip::FileMissing(_) => "file_missing",
                    MirrorSkip::DoesNotApply(_) => "does_not_apply",
                    MirrorSkip::Unchanged => "unchanged",
                    MirrorSkip::Unparsable(_) => "unparsable",
                };
                *skipped.entry(label.to_string()).or_default() += 1;
            }
        }
    }
    Ok((out, skipped))
}

/// The model's rewrite of `text` without the change, if it is a whole
/// Python file that parses.
fn ask_model(
    model: &dyn LanguageModel,
    commit: &HistoryCommit,
    forward: &FilePatch,
    path: &str,
    text: &str,
    options: &MirrorOptions,
) -> Option<String> {
    let prompt = options
        .prompt
        .replace("{{path}}", path)
        .replace("{{message}}", commit.message.trim())
        .replace("{{diff}}", forward.to_patch().as_str().trim_end())
        .replace("{{file}}", text.trim_end());
    let answer = match model.complete(&[Message::user(prompt)], &options.params) {
        Ok(c) => c.text,
        Err(e) => {
            tracing::debug!(commit = %commit.sha, error = %e, "pr_mirror model request failed");
            return None;
        }
    };
    let mut code = extract_code_block(&answer)?;
    if !text.ends_with('\n') {
        code.truncate(code.trim_end_matches('\n').len());
    }
    parse(path, &code).ok()?;
    Some(code)
}

/// Innermost entities of the current files that contain a changed line.
fn touched_entities(patch: &Patch, changes: &[FileChange]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for fp in patch.files()? {
        let Some(text) = changes
            .iter()
            .find(|c| c.path == fp.path())
            .and_then(|c| c.before.clone())
        else {
            continue;
        };
        let file = SourceFile::new(fp.path(), text);
        let entities = extract_entities(&file).map_err(|e| Error::Parse {
            path: fp.path().into(),
            message: e.to_string(),
        })?;
        for hunk in &fp.hunks {
            let mut line = hunk.old_start.max(1);
            for l in &hunk.lines {
                if l.kind != LineKind::Context {
                    let inner = entities
                        .iter()
                        .filter(|e| e.lines.0 <= line && line <= e.lines.1)
                        .min_by_key(|e| e.lines.1 - e.lines.0);
                    if let Some(e) = inner {
                        let id = e.id();
                        if !out.contains(&id) {
                            out.push(id);
                        }
                    }
                }
                if l.kind != LineKind::Added {
                    line += 1;
                }
            }
        }
    }
    Ok(out)
}
