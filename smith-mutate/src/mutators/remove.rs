//! Removal mutators: a statement, block, wrapper or keyword is dropped.

use ruff_python_ast::{Expr, Stmt};
use ruff_text_size::Ranged;
use smith_core::Edit;

use super::{Ctx, Proposal, Rule};
use crate::text::{delete_stmt, indent_at, line_start, span, starts_line, text};
use smith_core::rng::Rng;

/// Proposals deleting every statement that `pick` describes.
fn delete_where(cx: &Ctx<'_>, pick: impl Fn(&Stmt) -> Option<String>) -> Vec<Proposal> {
    cx.stmts
        .iter()
        .filter_map(|(stmt, body)| {
            let what = pick(stmt)?;
            let edit = delete_stmt(cx.src, stmt, body)?;
            Some(Proposal::one(edit, format!("removed {what}")))
        })
        .collect()
}

/// First line of a statement, for descriptions.
fn head(cx: &Ctx<'_>, stmt: &Stmt) -> String {
    let t = text(cx.src, stmt);
    let line = t.lines().next().unwrap_or_default().trim_end();
    format!("`{line}`")
}

macro_rules! removal {
    ($ty:ident, $name:literal, $summary:literal, |$cx:ident, $stmt:ident| $pick:expr) => {
        #[doc = concat!("`", $name, "`: ", $summary, ".")]
        pub(crate) struct $ty;

        impl Rule for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn summary(&self) -> &'static str {
                $summary
            }
            fn propose(&self, $cx: &Ctx<'_>, _rng: &mut Rng) -> Vec<Proposal> {
                delete_where($cx, |$stmt| $pick)
            }
        }
    };
}

removal!(
    Assign,
    "func_pm_remove_assign",
    "an assignment is removed",
    |cx, s| match s {
        Stmt::Assign(_) | Stmt::AugAssign(_) => Some(head(cx, s)),
        Stmt::AnnAssign(a) if a.value.is_some() => Some(head(cx, s)),
        _ => None,
    }
);
removal!(
    Cond,
    "func_pm_remove_cond",
    "an `if` statement is removed with its branches",
    |cx, s| { matches!(s, Stmt::If(_)).then(|| head(cx, s)) }
);
removal!(
    Loop,
    "func_pm_remove_loop",
    "a `for` or `while` loop is removed",
    |cx, s| { matches!(s, Stmt::For(_) | Stmt::While(_)).then(|| head(cx, s)) }
);
removal!(
    Raise,
    "func_pm_remove_raise",
    "a `raise` statement is removed",
    |cx, s| { matches!(s, Stmt::Raise(_)).then(|| head(cx, s)) }
);
removal!(
    Break,
    "func_pm_remove_break",
    "a `break` is removed",
    |_cx, s| { matches!(s, Stmt::Break(_)).then(|| "`break`".to_string()) }
);
removal!(
    Continue,
    "func_pm_remove_continue",
    "a `continue` is removed",
    |_cx, s| { matches!(s, Stmt::Continue(_)).then(|| "`continue`".to_string()) }
);
removal!(
    Call,
    "func_pm_remove_call",
    "a call made for its side effect is removed",
    |cx, s| match s {
        Stmt::Expr(e) if matches!(e.value.as_ref(), Expr::Call(_)) => Some(head(cx, s)),
        Stmt::Expr(e) if matches!(e.value.as_ref(), Expr::Await(a) if a.value.is_call_expr()) =>
            Some(head(cx, s)),
        _ => None,
    }
);

/// `func_pm_remove_wrapper`: a `with` or `try` is replaced by its body.
pub(crate) struct Wrapper;

impl Rule for Wrapper {
    fn name(&self) -> &'static str {
        "func_pm_remove_wrapper"
    }
    fn summary(&self) -> &'static str {
        "a `with` or `try` block is replaced by its body"
    }
    fn propose(&self, cx: &Ctx<'_>, _rng: &mut Rng) -> Vec<Proposal> {
        let mut out = Vec::new();
        for (stmt, _) in &cx.stmts {
            let body = match stmt {
                Stmt::With(w) => &w.body,
                Stmt::Try(t) => &t.body,
                _ => continue,
            };
            if let Some(edit) = unwrap_block(cx.src, stmt, body) {
                out.push(Proposal::one(edit, format!("unwrapped {}", head(cx, stmt))));
            }
        }
        out
    }
}

/// Replace `stmt` by `body` moved one indentation level out.
fn unwrap_block(src: &str, stmt: &Stmt, body: &[Stmt]) -> Option<Edit> {
    let (first, last) = (body.first()?, body.last()?);
    let (ss, se) = span(stmt);
    if !starts_line(src, ss) || !starts_line(src, first.start().to_usize()) {
        return None;
    }
    let outer = indent_at(src, ss);
    let inner = indent_at(src, first.start().to_usize());
    inner.strip_prefix(outer).filter(|e| !e.is_empty())?;
    let from = line_start(src, first.start().to_usize());
    let block = &src[from..last.end().to_usize()];
    // Re-indenting would change the text of multi-line strings.
    if block.contains("\"\"\"") || block.contains("'''") {
        return None;
    }
    let mut out = String::with_capacity(block.len());
    for line in block.split_inclusive('\n') {
        if line.trim().is_empty() {
            out.push_str(line);
        } else {
            out.push_str(outer);
            // A line indented less than the block (a continuation inside
            // brackets) cannot be moved safely.
            out.push_str(line.strip_prefix(inner)?);
        }
    }
    Some(Edit::replacement(out, line_start(src, ss), se))
}

/// `func_pm_remove_await`: an `await` is dropped, leaving the coroutine
/// unawaited.
pub(crate) struct Await;

impl Rule for Await {
    fn name(&self) -> &'static str {
        "func_pm_remove_await"
    }
    fn summary(&self) -> &'static str {
        "an `await` is dropped"
    }
    fn propose(&self, cx: &Ctx<'_>, _rng: &mut Rng) -> Vec<Proposal> {
        cx.exprs
            .iter()
            .filter_map(|expr| {
                let Expr::Await(a) = expr else { return None };
                let s = a.start().to_usize();
                let rest = cx.src[s..].strip_prefix("await")?;
                let ws = rest.len() - rest.trim_start_matches([' ', '\t']).len();
                Some(Proposal::one(
                    Edit::deletion(s, s + 5 + ws),
                    format!("dropped `await` before `{}`", text(cx.src, &*a.value)),
                ))
            })
            .collect()
    }
}
