//! Control-flow mutators: inverted branches, shuffled statements, early
//! and wrong returns.

use ruff_python_ast::{Expr, Stmt};
use ruff_text_size::Ranged;
use smith_core::Edit;

use super::{Ctx, Proposal, Rule};
use crate::text::{ends_line, indent_at, line_start, newline_of, owns_lines, span, starts_line};
use smith_core::rng::Rng;

/// The text span of a block body: from the start of its first line to the
/// end of its last statement, or `None` if it shares a line with its header.
fn block_span(src: &str, body: &[Stmt]) -> Option<(usize, usize)> {
    let first = body.first()?;
    let last = body.last()?;
    let (s, _) = span(first);
    let (_, e) = span(last);
    (starts_line(src, s) && ends_line(src, e)).then(|| (line_start(src, s), e))
}

/// `func_pm_ctrl_invert_if`: the bodies of an `if`/`else` trade places
/// while the condition stays.
pub(crate) struct InvertIf;

impl Rule for InvertIf {
    fn name(&self) -> &'static str {
        "func_pm_ctrl_invert_if"
    }
    fn summary(&self) -> &'static str {
        "the `if` and `else` bodies trade places"
    }
    fn propose(&self, cx: &Ctx<'_>, _rng: &mut Rng) -> Vec<Proposal> {
        let mut out = Vec::new();
        for (stmt, _) in &cx.stmts {
            let Stmt::If(s) = stmt else { continue };
            let [clause] = s.elif_else_clauses.as_slice() else {
                continue;
            };
            if clause.test.is_some() {
                continue;
            }
            let (Some(a), Some(b)) = (
                block_span(cx.src, &s.body),
                block_span(cx.src, &clause.body),
            ) else {
                continue;
            };
            if indent_at(cx.src, a.1) != indent_at(cx.src, b.1) {
                continue;
            }
            out.push(Proposal::new(
                vec![
                    Edit::replacement(&cx.src[b.0..b.1], a.0, a.1),
                    Edit::replacement(&cx.src[a.0..a.1], b.0, b.1),
                ],
                format!(
                    "swapped the branches of `if {}`",
                    crate::text::text(cx.src, &*s.test)
                ),
            ));
        }
        out
    }
}

/// A random permutation of `0..n` that moves at least one element.
fn derangement_ish(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    while perm.iter().enumerate().all(|(i, p)| i == *p) {
        rng.shuffle(&mut perm);
    }
    perm
}

/// Edits that put the text of `spans[perm[i]]` where `spans[i]` was.
fn permute(src: &str, spans: &[(usize, usize)], perm: &[usize]) -> Vec<Edit> {
    perm.iter()
        .enumerate()
        .filter(|(i, p)| *i != **p)
        .map(|(i, p)| Edit::replacement(&src[spans[*p].0..spans[*p].1], spans[i].0, spans[i].1))
        .collect()
}

/// Spans of statements that each own their lines at one indentation.
pub(crate) fn movable_spans(src: &str, stmts: &[&Stmt]) -> Option<Vec<(usize, usize)>> {
    let indent = indent_at(src, stmts.first()?.start().to_usize());
    stmts
        .iter()
        .map(|s| {
            let (start, end) = span(*s);
            (owns_lines(src, *s) && indent_at(src, start) == indent)
                .then(|| (line_start(src, start), end))
        })
        .collect()
}

/// Up to three distinct shuffles of `spans`.
pub(crate) fn shuffles(
    src: &str,
    spans: &[(usize, usize)],
    rng: &mut Rng,
    what: &str,
) -> Vec<Proposal> {
    let mut out: Vec<Proposal> = Vec::new();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let perm = derangement_ish(rng, spans.len());
        if seen.contains(&perm) {
            continue;
        }
        let order: Vec<String> = perm.iter().map(|p| (p + 1).to_string()).collect();
        out.push(Proposal::new(
            permute(src, spans, &perm),
            format!("reordered {what} as {}", order.join(",")),
        ));
        seen.push(perm);
    }
    out
}

/// `func_pm_ctrl_shuffle`: the function's top-level statements are
/// reordered.
pub(crate) struct Shuffle;

impl Rule for Shuffle {
    fn name(&self) -> &'static str {
        "func_pm_ctrl_shuffle"
    }
    fn summary(&self) -> &'static str {
        "the function's top-level statements are reordered"
    }
    fn propose(&self, cx: &Ctx<'_>, rng: &mut Rng) -> Vec<Proposal> {
        let stmts: Vec<&Stmt> = cx.top_level().iter().collect();
        if stmts.len() < 2 {
            return Vec::new();
        }
        match movable_spans(cx.src, &stmts) {
            Some(spans) => shuffles(cx.src, &spans, rng, "the statements"),
            None => Vec::new(),
        }
    }
}

/// `func_pm_ctrl_early_return`: a bare `return` is inserted before one of
/// the function's top-level statements, skipping the rest.
pub(crate) struct EarlyReturn;

impl Rule for EarlyReturn {
    fn name(&self) -> &'static str {
        "func_pm_ctrl_early_return"
    }
    fn summary(&self) -> &'static str {
        "the function returns early, skipping its remaining statements"
    }
    fn propose(&self, cx: &Ctx<'_>, _rng: &mut Rng) -> Vec<Proposal> {
        let body = cx.top_level();
        let nl = newline_of(cx.src);
        body.iter()
            .enumerate()
            .skip(1)
            .filter(|(_, s)| {
                !matches!(s, Stmt::Return(_)) && starts_line(cx.src, s.start().to_usize())
            })
            .map(|(i, s)| {
                let at = line_start(cx.src, s.start().to_usize());
                let indent = indent_at(cx.src, s.start().to_usize());
                Proposal::one(
                    Edit::insertion(format!("{indent}return{nl}"), at),
                    format!("returned before statement {}", i + 1),
                )
            })
            .collect()
    }
}

/// `func_pm_ctrl_return_none`: a `return <value>` returns `None` instead.
pub(crate) struct ReturnNone;

impl Rule for ReturnNone {
    fn name(&self) -> &'static str {
        "func_pm_ctrl_return_none"
    }
    fn summary(&self) -> &'static str {
        "a `return <value>` returns `None` instead"
    }
    fn propose(&self, cx: &Ctx<'_>, _rng: &mut Rng) -> Vec<Proposal> {
        cx.stmts
            .iter()
            .filter_map(|(stmt, _)| {
                let Stmt::Return(r) = stmt else { return None };
                let value = r.value.as_deref()?;
                if matches!(value, Expr::NoneLiteral(_)) {
                    return None;
                }
                let (s, e) = span(value);
                Some(Proposal::one(
                    Edit::replacement("None", s, e),
                    format!(
                        "`return {}` became `return None`",
                        crate::text::text(cx.src, value)
                    ),
                ))
            })
            .collect()
    }
}
