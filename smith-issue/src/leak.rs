//! The leak check: does a problem statement give away the fix?
//!
//! A statement must describe the symptom a user saw, never the change that
//! caused it. [`check_leak`] rejects statements that quote the bug patch's
//! added or removed lines, distinctive lines of the mutated entity's original
//! code, diff hunks, or spell out a fix ("change `-` to `+`", "should be
//! `a + b`"). Code is compared as token sequences, so spacing and quote style
//! do not hide a quote.

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use smith_core::{IssueContext, LineKind};

/// How a statement leaks the fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LeakKind {
    /// Quotes a line the bug patch adds (the buggy code).
    AddedLine,
    /// Quotes a line the bug patch removes (the correct code).
    RemovedLine,
    /// Quotes a distinctive line of the mutated entity's original source.
    OriginalCode,
    /// Contains diff syntax: `@@` hunk headers, `---`/`+++` file headers or
    /// `+`/`-` prefixed code lines.
    DiffHunk,
    /// Tells the reader what to change ("change X to Y", "should be `...`"
    /// quoting patch text).
    ExplicitFix,
}

impl LeakKind {
    /// A short name for summaries: `added_line`, `diff_hunk`, ...
    pub fn label(self) -> &'static str {
        match self {
            LeakKind::AddedLine => "added_line",
            LeakKind::RemovedLine => "removed_line",
            LeakKind::OriginalCode => "original_code",
            LeakKind::DiffHunk => "diff_hunk",
            LeakKind::ExplicitFix => "explicit_fix",
        }
    }
}

impl std::fmt::Display for LeakKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// One reason a statement was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leak {
    /// How it leaks.
    pub kind: LeakKind,
    /// The leaked text (the patch line, code line or phrase found).
    pub detail: String,
}

impl std::fmt::Display for Leak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

/// Check `statement` against what it must not reveal about `context`'s bug.
/// Returns the first leak found, `None` for a clean statement.
///
/// ```
/// use smith_core::{Candidate, FileChange, IssueContext, Patch};
/// use smith_issue::{check_leak, LeakKind};
///
/// let patch = Patch::from_changes(&[FileChange::modified(
///     "calc.py",
///     "def add(a, b):\n    return a + b\n",
///     "def add(a, b):\n    return a - b\n",
/// )]);
/// let candidate = Candidate::new(&smith_core::RepoRef::new("o/calc", "abc"), "op", vec!["calc.py::add".into()], "", patch);
/// let context = IssueContext { candidate, failing: vec![], original_code: vec![], seed: 0 };
///
/// assert!(check_leak("`add(1, 2)` returns -1 instead of 3.", &context).is_none());
/// let leak = check_leak("The line `return a - b` looks wrong.", &context).unwrap();
/// assert_eq!(leak.kind, LeakKind::AddedLine);
/// ```
pub fn check_leak(statement: &str, context: &IssueContext) -> Option<Leak> {
    LeakChecker::new(context).check(statement)
}

/// The leak check prepared for one context, reusable over many statements
/// (the template writer checks each draft it makes).
#[derive(Debug, Clone)]
pub(crate) struct LeakChecker {
    /// Non-trivial lines the patch adds: (display text, token string).
    added: Vec<(String, String)>,
    /// Non-trivial lines the patch removes.
    removed: Vec<(String, String)>,
    /// Distinctive lines of the original entity source.
    original: Vec<(String, String)>,
    /// Token strings of every changed line, trivial or not.
    changed_any: Vec<String>,
    /// The token spans that differ between paired removed/added lines.
    removed_fragments: Vec<String>,
    added_fragments: Vec<String>,
    /// Token string of all failing tests' source and output: text the
    /// statement may legitimately quote.
    symptom_text: String,
}

impl LeakChecker {
    pub(crate) fn new(context: &IssueContext) -> Self {
        let mut checker = LeakChecker {
            added: Vec::new(),
            removed: Vec::new(),
            original: Vec::new(),
            changed_any: Vec::new(),
            removed_fragments: Vec::new(),
            added_fragments: Vec::new(),
            symptom_text: String::new(),
        };
        let mut symptom = String::new();
        for test in &context.failing {
            if let Some(src) = &test.source {
                symptom.push_str(src);
                symptom.push('\n');
            }
            symptom.push_str(&test.output);
            symptom.push('\n');
        }
        checker.symptom_text = padded(&token_string(&symptom));

        for file in context.candidate.patch.files().unwrap_or_default() {
            for hunk in &file.hunks {
                let mut run_removed: Vec<String> = Vec::new();
                let mut run_added: Vec<String> = Vec::new();
                let mut flush = |removed: &mut Vec<String>, added: &mut Vec<String>| {
                    for (r, a) in removed.iter().zip(added.iter()) {
                        let (rf, af) = differing_span(r, a);
                        if !rf.is_empty() {
                            checker.removed_fragments.push(rf);
                        }
                        if !af.is_empty() {
                            checker.added_fragments.push(af);
                        }
                    }
                    removed.clear();
                    added.clear();
                };
                for line in &hunk.lines {
                    let text = line.text.trim_end_matches(['\n', '\r']);
                    let tokens = token_string(text);
                    match line.kind {
                        LineKind::Context => flush(&mut run_removed, &mut run_added),
                        LineKind::Removed | LineKind::Added => {
                            if !tokens.is_empty() {
                                checker.changed_any.push(tokens.clone());
                            }
                            let target = if line.kind == LineKind::Removed {
                                run_removed.push(tokens.clone());
                                &mut checker.removed
                            } else {
                                run_added.push(tokens.clone());
                                &mut checker.added
                            };
                            if is_nontrivial_code(text, &tokens) {
                                target.push((text.trim().to_string(), tokens));
                            }
                        }
                    }
                }
                flush(&mut run_removed, &mut run_added);
            }
        }

        for code in &context.original_code {
            for line in code_lines(code) {
                let tokens = token_string(line);
                if is_distinctive_code(line, &tokens)
                    && !checker.symptom_text.contains(&padded(&tokens))
                {
                    checker.original.push((line.trim().to_string(), tokens));
                }
            }
        }
        checker
    }

    /// The first leak in `statement`, if any.
    pub(crate) fn check(&self, statement: &str) -> Option<Leak> {
        if let Some(detail) = find_diff_syntax(statement) {
            return Some(Leak {
                kind: LeakKind::DiffHunk,
                detail,
            });
        }
        let tokens = padded(&token_string(statement));
        for (kind, lines) in [
            (LeakKind::AddedLine, &self.added),
            (LeakKind::RemovedLine, &self.removed),
            (LeakKind::OriginalCode, &self.original),
        ] {
            if let Some((text, _)) = lines.iter().find(|(_, t)| tokens.contains(&padded(t))) {
                return Some(Leak {
                    kind,
                    detail: text.clone(),
                });
            }
        }
        self.find_explicit_fix(statement).map(|detail| Leak {
            kind: LeakKind::ExplicitFix,
            detail,
        })
    }

    /// Whether one line of code (e.g. a line of a reproduction snippet) would
    /// leak on its own.
    pub(crate) fn line_leaks(&self, line: &str) -> bool {
        let tokens = padded(&token_string(line));
        !tokens.trim().is_empty()
            && self
                .added
                .iter()
                .chain(&self.removed)
                .chain(&self.original)
                .any(|(_, t)| tokens.contains(&padded(t)))
    }

    fn find_explicit_fix(&self, statement: &str) -> Option<String> {
        // "change X to Y": one side from the buggy code, the other from the
        // correct code, in either direction.
        for caps in change_re().captures_iter(statement) {
            let x = token_string(unquote(&caps["x"]));
            let y = token_string(unquote(&caps["y"]));
            if x.is_empty() || y.is_empty() {
                continue;
            }
            let in_added = |t: &str| self.side_contains(t, &self.added_fragments, LineKind::Added);
            let in_removed =
                |t: &str| self.side_contains(t, &self.removed_fragments, LineKind::Removed);
            if (in_added(&x) && in_removed(&y)) || (in_removed(&x) && in_added(&y)) {
                return Some(caps[0].trim().to_string());
            }
        }
        // "should be `Q`": a quoted piece of patch text that the failing
        // tests do not show (an expected value from the test is a symptom).
        for caps in should_re().captures_iter(statement) {
            let quoted = token_string(&caps["q"]);
            if quoted.is_empty() || self.symptom_text.contains(&padded(&quoted)) {
                continue;
            }
            let is_fragment = self
                .removed_fragments
                .iter()
                .chain(&self.added_fragments)
                .any(|f| *f == quoted);
            let in_changed_line = quoted.split(' ').count() >= 2
                && self
                    .changed_any
                    .iter()
                    .any(|line| padded(line).contains(&padded(&quoted)));
            if is_fragment || in_changed_line {
                return Some(caps[0].trim().to_string());
            }
        }
        None
    }

    fn side_contains(&self, tokens: &str, fragments: &[String], kind: LineKind) -> bool {
        if fragments.iter().any(|f| *f == tokens) {
            return true;
        }
        let lines = if kind == LineKind::Added {
            &self.added
        } else {
            &self.removed
        };
        tokens.split(' ').count() >= 2
            && lines
                .iter()
                .any(|(_, line)| padded(line).contains(&padded(tokens)))
    }
}

fn change_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?i)\b(?:change|changing|changed|replace|replacing|replaced|swap|swapping|revert|reverting|turn|turning)\s+(?P<x>`[^`\n]+`|[^\s`]+)\s+(?:back\s+)?(?:to|with|into|by|for)\s+(?P<y>`[^`\n]+`|[^\s`]+)",
        )
        .expect("valid regex")
    })
}

fn should_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?i)\b(?:(?:should|must|needs\s+to|ought\s+to)\s+(?:be|read|use|return|say|call|compute|check|do)|instead\s+of|rather\s+than|fix(?:ed)?\s+(?:is|by|with)|correct\s+(?:code|line|version)\s+is)\s*:?\s*`(?P<q>[^`\n]+)`",
        )
        .expect("valid regex")
    })
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches('`').trim()
}

/// Diff syntax in a statement: hunk headers, file headers, or at least two
/// `+`/`-` prefixed lines that look like indented code.
fn find_diff_syntax(statement: &str) -> Option<String> {
    static HUNK: OnceLock<Regex> = OnceLock::new();
    static FILE: OnceLock<Regex> = OnceLock::new();
    static CODE: OnceLock<Regex> = OnceLock::new();
    let hunk = HUNK.get_or_init(|| {
        Regex::new(r"(?m)^\s*@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@").expect("valid regex")
    });
    let file = FILE.get_or_init(|| {
        Regex::new(r"(?m)^\s*(?:diff --git |(?:---|\+\+\+) (?:a/|b/|/dev/null))")
            .expect("valid regex")
    });
    let code = CODE.get_or_init(|| {
        Regex::new(
            r"^[+-](?:[ \t]{2,}\S|(?:def|class|return|import|from|raise|if|elif|for|while|with|try|except|yield|assert)\b)",
        )
        .expect("valid regex")
    });
    if let Some(m) = hunk.find(statement) {
        return Some(m.as_str().trim().to_string());
    }
    if let Some(m) = file.find(statement) {
        let line_end = statement[m.start()..]
            .find('\n')
            .map_or(statement.len(), |i| m.start() + i);
        return Some(statement[m.start()..line_end].trim().to_string());
    }
    let diff_lines: Vec<&str> = statement
        .lines()
        .filter(|l| code.is_match(l) && l[1..].chars().any(|c| "()=[]:.".contains(c)))
        .collect();
    if diff_lines.len() >= 2 {
        return Some(diff_lines[..2].join("\n"));
    }
    None
}

/// A line of code that is worth protecting: at least three tokens and six
/// non-blank characters (so `else:`, `pass`, `x = 1` do not count).
fn is_nontrivial_code(text: &str, tokens: &str) -> bool {
    let trimmed = text.trim();
    !trimmed.starts_with('#')
        && tokens.split(' ').filter(|t| !t.is_empty()).count() >= 3
        && trimmed.chars().filter(|c| !c.is_whitespace()).count() >= 6
}

/// A line of original code distinctive enough that quoting it points at the
/// fix: at least four tokens and ten non-blank characters.
fn is_distinctive_code(text: &str, tokens: &str) -> bool {
    tokens.split(' ').filter(|t| !t.is_empty()).count() >= 4
        && text.trim().chars().filter(|c| !c.is_whitespace()).count() >= 10
}

/// The lines of `code` that are code: not blank, not comments, not inside
/// triple-quoted strings (docstrings describe intent, which a statement may
/// paraphrase).
fn code_lines(code: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_string: Option<&str> = None;
    for line in code.lines() {
        let trimmed = line.trim();
        if let Some(delim) = in_string {
            if trimmed.contains(delim) {
                in_string = None;
            }
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let opener = ["\"\"\"", "'''"].into_iter().find(|d| {
            let t = trimmed
                .trim_start_matches(|c: char| "rRbBuUfF".contains(c))
                .to_string();
            t.starts_with(d)
        });
        if let Some(delim) = opener {
            let after = &trimmed[trimmed.find(delim).map_or(0, |i| i + 3)..];
            if !after.contains(delim) {
                in_string = Some(delim);
            }
            continue;
        }
        out.push(line);
    }
    out
}

/// Tokenize text as code: identifiers and numbers whole, every other
/// non-blank character alone, quotes unified. Joined with single spaces.
pub(crate) fn token_string(text: &str) -> String {
    tokens(text).join(" ")
}

pub(crate) fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if c.is_whitespace() {
            continue;
        }
        out.push(if c == '\'' {
            "\"".into()
        } else {
            c.to_string()
        });
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

fn padded(tokens: &str) -> String {
    format!(" {tokens} ")
}

/// The token spans where two lines differ, after removing their common
/// prefix and suffix: `return a + b` vs `return a - b` gives (`+`, `-`).
fn differing_span(removed: &str, added: &str) -> (String, String) {
    let r: Vec<&str> = removed.split(' ').filter(|t| !t.is_empty()).collect();
    let a: Vec<&str> = added.split(' ').filter(|t| !t.is_empty()).collect();
    let prefix = r.iter().zip(&a).take_while(|(x, y)| x == y).count();
    let suffix = r[prefix..]
        .iter()
        .rev()
        .zip(a[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    (
        r[prefix..r.len() - suffix].join(" "),
        a[prefix..a.len() - suffix].join(" "),
    )
}
