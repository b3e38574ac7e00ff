//! Class-level mutators: bases and methods.

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{ArgOrKeyword, Expr, Stmt, StmtFunctionDef};
use ruff_text_size::Ranged;
use smith_core::Edit;

use super::ctrl::{movable_spans, shuffles};
use super::{Ctx, Proposal, Rule, Targets};
use crate::entities::Def;
use crate::text::{delete_stmt, span, text};
use smith_core::rng::Rng;

/// `func_pm_class_rm_base`: a base class is dropped from a class
/// definition.
pub(crate) struct RmBase;

impl Rule for RmBase {
    fn name(&self) -> &'static str {
        "func_pm_class_rm_base"
    }
    fn targets(&self) -> Targets {
        Targets::Classes
    }
    fn summary(&self) -> &'static str {
        "a base class is dropped"
    }
    fn propose(&self, cx: &Ctx<'_>, _rng: &mut Rng) -> Vec<Proposal> {
        let Def::Class(c) = cx.def else {
            return Vec::new();
        };
        let Some(arguments) = c.arguments.as_deref() else {
            return Vec::new();
        };
        let items: Vec<ArgOrKeyword> = arguments.iter_source_order().collect();
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ArgOrKeyword::Arg(base) = item else {
                continue;
            };
            let name = text(cx.src, base);
            if name == "object" || base.is_starred_expr() {
                continue;
            }
            let edit = if items.len() == 1 {
                let (s, e) = span(arguments);
                Edit::deletion(s, e)
            } else if let Some(next) = items.get(i + 1) {
                Edit::deletion(base.start().to_usize(), next.start().to_usize())
            } else {
                Edit::deletion(items[i - 1].end().to_usize(), base.end().to_usize())
            };
            out.push(Proposal::one(edit, format!("dropped base class `{name}`")));
        }
        out
    }
}

fn methods(body: &[Stmt]) -> Vec<&StmtFunctionDef> {
    body.iter()
        .filter_map(|s| match s {
            Stmt::FunctionDef(f) => Some(f),
            _ => None,
        })
        .collect()
}

/// Ranges of `self.<name>(...)` calls in a class body.
struct SelfCalls<'n> {
    name: &'n str,
    found: Vec<(usize, usize)>,
}

impl<'a> Visitor<'a> for SelfCalls<'_> {
    fn visit_expr(&mut self, expr: &'a Expr) {
        if let Expr::Call(call) = expr {
            if let Expr::Attribute(attr) = call.func.as_ref() {
                if attr.attr.as_str() == self.name
                    && matches!(attr.value.as_ref(), Expr::Name(n) if n.id.as_str() == "self")
                {
                    self.found.push(span(expr));
                    return;
                }
            }
        }
        visitor::walk_expr(self, expr);
    }
}

/// `func_pm_class_rm_funcs`: a method is deleted and the class's own calls
/// to it (`self.method(...)`) become `None`.
pub(crate) struct RmFuncs;

impl Rule for RmFuncs {
    fn name(&self) -> &'static str {
        "func_pm_class_rm_funcs"
    }
    fn targets(&self) -> Targets {
        Targets::Classes
    }
    fn summary(&self) -> &'static str {
        "a method is deleted; calls to it through `self` become `None`"
    }
    fn propose(&self, cx: &Ctx<'_>, _rng: &mut Rng) -> Vec<Proposal> {
        let Def::Class(c) = cx.def else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for method in methods(&c.body) {
            let stmt = c
                .body
                .iter()
                .find(|s| s.range() == method.range)
                .expect("method comes from this body");
            let Some(delete) = delete_stmt(cx.src, stmt, &c.body) else {
                continue;
            };
            let name = method.name.as_str();
            let mut calls = SelfCalls {
                name,
                found: Vec::new(),
            };
            calls.visit_body(&c.body);
            let mut edits = vec![delete.clone()];
            let gone = delete.range;
            for (s, e) in calls.found {
                if gone.start <= s && e <= gone.end {
                    continue;
                }
                edits.push(Edit::replacement("None", s, e));
            }
            out.push(Proposal::new(edits, format!("deleted method `{name}`")));
        }
        out
    }
}

/// `func_pm_class_shuffle_funcs`: the methods of a class are reordered.
pub(crate) struct ShuffleFuncs;

impl Rule for ShuffleFuncs {
    fn name(&self) -> &'static str {
        "func_pm_class_shuffle_funcs"
    }
    fn targets(&self) -> Targets {
        Targets::Classes
    }
    fn summary(&self) -> &'static str {
        "the methods of a class are reordered"
    }
    fn propose(&self, cx: &Ctx<'_>, rng: &mut Rng) -> Vec<Proposal> {
        let Def::Class(c) = cx.def else {
            return Vec::new();
        };
        let defs: Vec<&Stmt> = c.body.iter().filter(|s| s.is_function_def_stmt()).collect();
        if defs.len() < 2 {
            return Vec::new();
        }
        match movable_spans(cx.src, &defs) {
            Some(spans) => shuffles(cx.src, &spans, rng, "the methods"),
            None => Vec::new(),
        }
    }
}
