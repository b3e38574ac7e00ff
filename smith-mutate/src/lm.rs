//! Bugs written by a language model: `lm/modify` (introduce a subtle bug
//! into one function or class) and `lm/rewrite` (re-implement a function
//! from its signature and docstring; the difference from the original is
//! the bug).
//!
//! Every request goes through [`LanguageModel`]. Prompts are plain text
//! templates ([`Prompts`]; the defaults live in `smith-mutate/prompts/` and
//! any file may replace them) with the placeholders `{{path}}`, `{{name}}`,
//! `{{file}}` and `{{code}}`. An answer becomes a [`Candidate`] only if it
//! holds a fenced code block, the block parses as exactly one definition of
//! the same kind and name, it adds no comment that gives the change away,
//! and the file with the entity replaced re-parses to a different AST. Every
//! rejection is counted by reason in [`LmStats`].

use std::collections::BTreeMap;
use std::path::Path;

use ruff_python_ast::token::TokenKind;
use ruff_python_ast::{Expr, Stmt};
use ruff_python_parser::parse_module;
use ruff_text_size::Ranged;
use smith_core::{
    Candidate, CompletionParams, Entity, EntityKind, Error, FileChange, LanguageModel, Message,
    Patch, RepoRef, Result, SourceFile,
};

use crate::entities::{entities_with_defs, Def};
use smith_core::python::{changes_ast, parse, AstChange};

const DEFAULT_MODIFY: &str = include_str!("../prompts/modify.md");
const DEFAULT_REWRITE: &str = include_str!("../prompts/rewrite.md");

/// Words that, in a comment the model added, point at the change.
const MARKER_WORDS: &[&str] = &[
    "bug",
    "changed",
    "change:",
    "modified",
    "fix",
    "introduc",
    "subtle",
    "mutat",
    "original",
    "wrong",
    "incorrect",
    "was:",
    "should be",
    "off-by-one",
    "off by one",
];

/// Which LM strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LmStrategy {
    /// Introduce a subtle bug into the entity (`lm/modify`).
    Modify,
    /// Re-implement a function from its signature and docstring (`lm/rewrite`).
    Rewrite,
}

impl LmStrategy {
    /// The strategy name written into candidates.
    pub fn name(self) -> &'static str {
        match self {
            LmStrategy::Modify => "lm/modify",
            LmStrategy::Rewrite => "lm/rewrite",
        }
    }
}

/// Prompt templates for the LM strategies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompts {
    /// Template for `lm/modify`.
    pub modify: String,
    /// Template for `lm/rewrite`.
    pub rewrite: String,
}

impl Default for Prompts {
    fn default() -> Self {
        Prompts {
            modify: DEFAULT_MODIFY.to_string(),
            rewrite: DEFAULT_REWRITE.to_string(),
        }
    }
}

impl Prompts {
    /// The defaults, with each template given a path replaced by that
    /// file's text.
    pub fn load(modify: Option<&Path>, rewrite: Option<&Path>) -> Result<Self> {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::io(p, e));
        let mut prompts = Prompts::default();
        if let Some(p) = modify {
            prompts.modify = read(p)?;
        }
        if let Some(p) = rewrite {
            prompts.rewrite = read(p)?;
        }
        Ok(prompts)
    }

    fn template(&self, strategy: LmStrategy) -> &str {
        match strategy {
            LmStrategy::Modify => &self.modify,
            LmStrategy::Rewrite => &self.rewrite,
        }
    }
}

/// Why an answer was not turned into a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rejection {
    /// The model request failed.
    ModelError,
    /// The answer holds no fenced code block.
    NoCode,
    /// The code block, or the file with it spliced in, does not parse.
    Unparsable,
    /// The code is not exactly one definition of the entity's kind and name.
    WrongShape,
    /// The code adds a comment that points at the change.
    RevealingComment,
    /// The file's AST did not change.
    Unchanged,
}

impl Rejection {
    /// A short name for summaries.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::ModelError => "model_error",
            Rejection::NoCode => "no_code",
            Rejection::Unparsable => "unparsable",
            Rejection::WrongShape => "wrong_shape",
            Rejection::RevealingComment => "revealing_comment",
            Rejection::Unchanged => "unchanged",
        }
    }
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LmOutcome {
    /// A candidate bug.
    Candidate(Candidate),
    /// The answer was rejected.
    Rejected(Rejection),
    /// The entity does not suit the strategy (e.g. a class or a body-less
    /// function for `lm/rewrite`); no request was sent.
    NotApplicable,
}

/// Counts over many requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LmStats {
    /// Requests sent.
    pub asked: usize,
    /// Candidates made.
    pub accepted: usize,
    /// Rejections by reason.
    pub rejected: BTreeMap<Rejection, usize>,
    /// Entities skipped without a request.
    pub not_applicable: usize,
}

impl LmStats {
    /// Count one outcome.
    pub fn record(&mut self, outcome: &LmOutcome) {
        match outcome {
            LmOutcome::Candidate(_) => {
                self.asked += 1;
                self.accepted += 1;
            }
            LmOutcome::Rejected(r) => {
                self.asked += 1;
                *self.rejected.entry(*r).or_default() += 1;
            }
            LmOutcome::NotApplicable => self.not_applicable += 1,
        }
    }
}

/// Everything the LM strategies need besides the model.
#[derive(Debug, Clone, PartialEq)]
pub struct LmRequest<'a> {
    /// Repository and commit of the clean tree.
    pub repo: &'a RepoRef,
    /// Prompt templates.
    pub prompts: &'a Prompts,
    /// Sampling parameters.
    pub params: &'a CompletionParams,
}

/// Ask `model` for one `strategy` bug in `entity` of `file`.
///
/// Errors only for a file that does not parse or an entity outside it;
/// model failures and bad answers are [`LmOutcome::Rejected`].
pub fn lm_bug(
    model: &dyn LanguageModel,
    strategy: LmStrategy,
    file: &SourceFile,
    entity: &Entity,
    request: &LmRequest<'_>,
) -> Result<LmOutcome> {
    let parsed = parse(&file.path, &file.text)?;
    let def = entities_with_defs(file, parsed.syntax())
        .into_iter()
        .find(|(e, _)| e.range == entity.range && e.qualname == entity.qualname)
        .map(|(_, d)| d)
        .ok_or_else(|| {
            Error::invalid(
                "entity",
                format!("{} is not a definition of {}", entity.id(), file.path),
            )
        })?;
    let indent = indentation_before(&file.text, entity.range.start);
    let (shown_code, shown_file) = match strategy {
        LmStrategy::Modify => (dedent(file.slice(entity.range), indent), file.text.clone()),
        LmStrategy::Rewrite => {
            let Some(stub) = rewrite_stub(file, entity, def) else {
                return Ok(LmOutcome::NotApplicable);
            };
            let mut without_body = file.text.clone();
            without_body.replace_range(entity.range.start..entity.range.end, &stub);
            (dedent(&stub, indent), without_body)
        }
    };
    let prompt = request
        .prompts
        .template(strategy)
        .replace("{{path}}", &file.path)
        .replace("{{name}}", entity.name())
        .replace("{{file}}", shown_file.trim_end())
        .replace("{{code}}", shown_code.trim_end());
    let answer = match model.complete(&[Message::user(prompt)], request.params) {
        Ok(c) => c.text,
        Err(e) => {
            tracing::debug!(entity = %entity.id(), error = %e, "language model request failed");
            return Ok(LmOutcome::Rejected(Rejection::ModelError));
        }
    };
    let code = match check_answer(&answer, entity, file.slice(entity.range)) {
        Ok(code) => code,
        Err(r) => return Ok(LmOutcome::Rejected(r)),
    };
    let replacement = reindent(code.trim_end(), indent);
    let mut new_text = file.text.clone();
    new_text.replace_range(entity.range.start..entity.range.end, &replacement);
    match changes_ast(parsed.syntax(), &new_text) {
        AstChange::Unparsable => return Ok(LmOutcome::Rejected(Rejection::Unparsable)),
        AstChange::Unchanged => return Ok(LmOutcome::Rejected(Rejection::Unchanged)),
        AstChange::Changed => {}
    }
    let patch = Patch::from_changes(&[FileChange::modified(
        file.path.clone(),
        file.text.clone(),
        new_text,
    )]);
    let description = match strategy {
        LmStrategy::Modify => format!("{} asked to introduce a bug", model.model()),
        LmStrategy::Rewrite => format!("{} re-implemented the body", model.model()),
    };
    Ok(LmOutcome::Candidate(Candidate::new(
        request.repo,
        strategy.name(),
        vec![entity.id()],
        description,
        patch,
    )))
}

/// Run [`lm_bug`] over `entities` of `file`, in order, counting outcomes.
pub fn lm_bugs(
    model: &dyn LanguageModel,
    strategy: LmStrategy,
    file: &SourceFile,
    entities: &[Entity],
    request: &LmRequest<'_>,
) -> Result<(Vec<Candidate>, LmStats)> {
    let mut stats = LmStats::default();
    let mut out = Vec::new();
    for entity in entities {
        let outcome = lm_bug(model, strategy, file, entity, request)?;
        stats.record(&outcome);
        if let LmOutcome::Candidate(c) = outcome {
            out.push(c);
        }
    }
    Ok((out, stats))
}

/// The first fenced code block of `answer`, preferring one labelled
/// `python`/`py`.
pub fn extract_code_block(answer: &str) -> Option<String> {
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut lines = answer.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let Some(label) = trimmed.strip_prefix("```") else {
            continue;
        };
        let label = label.trim().to_ascii_lowercase();
        let mut body = String::new();
        let mut closed = false;
        for inner in lines.by_ref() {
            if inner.trim_start().starts_with("```") {
                closed = true;
                break;
            }
            body.push_str(inner);
            body.push('\n');
        }
        if closed {
            blocks.push((label, body));
        }
    }
    let python = blocks
        .iter()
        .find(|(l, _)| l == "python" || l == "py" || l == "python3");
    python
        .or_else(|| blocks.first())
        .map(|(_, b)| b.clone())
        .filter(|b| !b.trim().is_empty())
}

/// The answer's code, dedented, if it is acceptable as a replacement of
/// `entity` (whose current text is `original`).
fn check_answer(
    answer: &str,
    entity: &Entity,
    original: &str,
) -> std::result::Result<String, Rejection> {
    let block = extract_code_block(answer).ok_or(Rejection::NoCode)?;
    let code = dedent(&block, common_indent(&block));
    let parsed = parse_module(&code).map_err(|_| Rejection::Unparsable)?;
    let body = &parsed.syntax().body;
    let [stmt] = body.as_slice() else {
        return Err(Rejection::WrongShape);
    };
    let same = match stmt {
        Stmt::FunctionDef(f) => {
            entity.kind != EntityKind::Class && f.name.as_str() == entity.name()
        }
        Stmt::ClassDef(c) => entity.kind == EntityKind::Class && c.name.as_str() == entity.name(),
        _ => false,
    };
    if !same {
        return Err(Rejection::WrongShape);
    }
    let before: Vec<String> = comments(original);
    let revealing = parsed
        .tokens()
        .iter()
        .filter(|t| t.kind() == TokenKind::Comment)
        .map(|t| code[t.range()].to_string())
        .filter(|c| !before.contains(c))
        .any(|c| {
            let lower = c.to_lowercase();
            MARKER_WORDS.iter().any(|w| lower.contains(w))
        });
    if revealing {
        return Err(Rejection::RevealingComment);
    }
    Ok(code)
}

/// The comments of `code` (which may be indented: it is dedented first).
fn comments(code: &str) -> Vec<String> {
    let code = dedent(code, common_indent(code));
    match parse_module(&code) {
        Ok(parsed) => parsed
            .tokens()
            .iter()
            .filter(|t| t.kind() == TokenKind::Comment)
            .map(|t| code[t.range()].to_string())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The entity's signature and docstring with its body replaced by `...`,
/// as it stands in the file (first line unindented, the rest indented), or
/// `None` for classes, one-line definitions and functions whose body is only
/// a docstring.
fn rewrite_stub(file: &SourceFile, entity: &Entity, def: Def<'_>) -> Option<String> {
    let Def::Function(f) = def else {
        return None;
    };
    let first = f.body.first()?;
    let doc = match first {
        Stmt::Expr(e) if matches!(*e.value, Expr::StringLiteral(_)) => Some(first),
        _ => None,
    };
    let code_start = if doc.is_some() { f.body.get(1)? } else { first };
    let body_indent = indentation_before(&file.text, code_start.start().to_usize());
    let def_line_start = line_start(&file.text, entity.range.start);
    if line_start(&file.text, code_start.start().to_usize()) == def_line_start {
        return None;
    }
    let kept_end = match doc {
        Some(d) => d.end().to_usize(),
        None => {
            // End of the `def ...:` header: the line before the first statement.
            line_start(&file.text, code_start.start().to_usize()).saturating_sub(1)
        }
    };
    let head = &file.text[entity.range.start..kept_end];
    Some(format!("{head}\n{body_indent}..."))
}

fn line_start(text: &str, offset: usize) -> usize {
    text[..offset].rfind('\n').map_or(0, |i| i + 1)
}

/// The whitespace between the start of the line and `offset`.
fn indentation_before(text: &str, offset: usize) -> &str {
    let start = line_start(text, offset);
    let prefix = &text[start..offset];
    if prefix.chars().all(|c| c == ' ' || c == '\t') {
        prefix
    } else {
        ""
    }
}

/// The indentation shared by every non-blank line.
fn common_indent(code: &str) -> &str {
    code.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| &l[..l.len() - l.trim_start().len()])
        .min_by_key(|p| p.len())
        .unwrap_or("")
}

/// Remove `indent` from the start of every line that has it. The first
/// line of an entity slice has no indentation (the slice starts at `def`),
/// so it is left alone.
fn dedent(code: &str, indent: &str) -> String {
    if indent.is_empty() {
        return code.to_string();
    }
    code.split_inclusive('\n')
        .map(|l| l.strip_prefix(indent).unwrap_or(l))
        .collect()
}

/// Indent every line but the first by `indent` (the first line is spliced
/// where the original definition started, after its indentation).
fn reindent(code: &str, indent: &str) -> String {
    let mut out = String::with_capacity(code.len() + 64);
    for (i, line) in code.split_inclusive('\n').enumerate() {
        if i > 0 && !line.trim().is_empty() {
            out.push_str(indent);
        }
        out.push_str(line);
    }
    out
}
