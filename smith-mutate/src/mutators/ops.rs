//! Expression-level mutators: operators, operands, constants, names and
//! call arguments.

use std::collections::BTreeSet;

use ruff_python_ast::{
    self as ast, BoolOp, CmpOp, Expr, Number, Operator, OperatorPrecedence, Stmt, UnaryOp,
};
use ruff_text_size::Ranged;
use smith_core::Edit;

use super::{Ctx, Proposal, Rule};
use crate::entities::Def;
use crate::text::{find_token, operand, operand_text, span, text};
use smith_core::rng::Rng;

/// Replacement operators within an operator's family.
fn op_family(op: Operator) -> &'static [Operator] {
    use Operator::*;
    match op {
        Add => &[Sub],
        Sub => &[Add],
        Mult => &[Div, FloorDiv, Add],
        Div => &[Mult, FloorDiv],
        FloorDiv => &[Div, Mod],
        Mod => &[FloorDiv, Div],
        Pow => &[Mult],
        BitAnd => &[BitOr, BitXor],
        BitOr => &[BitAnd, BitXor],
        BitXor => &[BitOr, BitAnd],
        LShift => &[RShift],
        RShift => &[LShift],
        MatMult => &[],
    }
}

/// `func_pm_op_change`: an arithmetic or bitwise operator becomes another
/// of its family (`+`→`-`, `*`→`/`, `&`→`|`, `<<`→`>>`), also in `x += y`.
pub(crate) struct Change;

impl Rule for Change {
    fn name(&self) -> &'static str {
        "func_pm_op_change"
    }
    fn summary(&self) -> &'static str {
        "an arithmetic/bitwise operator becomes another of its family"
    }
    fn propose(&self, cx: &Ctx<'_>, rng: &mut Rng) -> Vec<Proposal> {
        let mut out = Vec::new();
        let mut site = |gap: (usize, usize), op: Operator, aug: bool| {
            let family = op_family(op);
            if family.is_empty() {
                return;
            }
            let new = *rng.pick(family);
            let (from, to) = if aug {
                (format!("{}=", op.as_str()), format!("{}=", new.as_str()))
            } else {
                (op.as_str().to_string(), new.as_str().to_string())
            };
            if let Some((s, e)) = find_token(cx.src, gap, &from) {
                out.push(Proposal::one(
                    Edit::replacement(to.clone(), s, e),
                    format!("`{from}` became `{to}`"),
                ));
            }
        };
        for expr in &cx.exprs {
            if let Expr::BinOp(b) = expr {
                site(
                    (b.left.end().to_usize(), b.right.start().to_usize()),
                    b.op,
                    false,
                );
            }
        }
        for (stmt, _) in &cx.stmts {
            if let Stmt::AugAssign(a) = stmt {
                site(
                    (a.target.end().to_usize(), a.value.start().to_usize()),
                    a.op,
                    true,
                );
            }
        }
        out
    }
}

/// Precedence a binary operator's operands need (left, right) to keep
/// their place without parentheses.
fn operand_precedence(op: Operator) -> (OperatorPrecedence, OperatorPrecedence) {
    let p = OperatorPrecedence::from(op);
    let tighter = next_level(p);
    if p.is_right_associative() {
        (tighter, p)
    } else {
        (p, tighter)
    }
}

/// The next tighter precedence level.
fn next_level(p: OperatorPrecedence) -> OperatorPrecedence {
    use OperatorPrecedence::*;
    match p {
        None => Yield,
        Yield => Assign,
        Assign => Starred,
        Starred => Lambda,
        Lambda => IfElse,
        IfElse => Or,
        Or => And,
        And => Not,
        Not => ComparisonsMembershipIdentity,
        ComparisonsMembershipIdentity => BitOr,
        BitOr => BitXor,
        BitXor => BitAnd,
        BitAnd => LeftRightShift,
        LeftRightShift => AddSub,
        AddSub => MulDivRemain,
        MulDivRemain => PosNegBitNot,
        PosNegBitNot => Exponent,
        Exponent => Await,
        Await => CallAttribute,
        CallAttribute | Atomic => Atomic,
    }
}

/// `func_pm_op_swap`: the operands of a binary operator or a single
/// comparison trade places (`a - b` → `b - a`, `i < n` → `n < i`).
pub(crate) struct Swap;

impl Rule for Swap {
    fn name(&self) -> &'static str {
        "func_pm_op_swap"
    }
    fn summary(&self) -> &'static str {
        "the operands of a binary operator or comparison trade places"
    }
    fn propose(&self, cx: &Ctx<'_>, _rng: &mut Rng) -> Vec<Proposal> {
        let mut out = Vec::new();
        let mut swap = |parent: &Expr,
                        left: &Expr,
                        right: &Expr,
                        (lp, rp): (OperatorPrecedence, OperatorPrecedence),
                        op: &str| {
            if text(cx.src, left) == text(cx.src, right) {
                return;
            }
            let outer = span(parent);
            let ((ls, le), left_text) = operand(cx.src, left, outer, rp);
            let ((rs, re), right_text) = operand(cx.src, right, outer, lp);
            out.push(Proposal::new(
                vec![
                    Edit::replacement(right_text, ls, le),
                    Edit::replacement(left_text, rs, re),
                ],
                format!("swapped the operands of `{op}`"),
            ));
        };
        for expr in &cx.exprs {
            match expr {
                Expr::BinOp(b) => swap(
                    expr,
                    &b.left,
                    &b.right,
                    operand_precedence(b.op),
                    b.op.as_str(),
                ),
                // `==`, `!=`, `is` and `is not` are symmetric: swapping
                // their operands cannot plant a bug.
                Expr::Compare(c)
                    if c.ops.len() == 1
                        && !matches!(
                            c.ops[0],
                            CmpOp::Eq | CmpOp::NotEq | CmpOp::Is | CmpOp::IsNot
                        ) =>
                {
                    let p = next_level(OperatorPrecedence::ComparisonsMembershipIdentity);
                    swap(expr, &c.left, &c.comparators[0], (p, p), c.ops[0].as_str())
                }
                _ => {}
            }
        }
        out
    }
}

/// `func_pm_op_break_chains`: one link of an operator chain is dropped
/// (`a + b + c` → `a + c`, `a + (b + c)` → `a + b`).
pub(crate) struct BreakChains;

impl Rule for BreakChains {
    fn name(&self) -> &'static str {
        "func_pm_op_break_chains"
    }
    fn summary(&self) -> &'static str {
        "one link of a chain of binary operators is dropped"
    }
    fn propose(&self, cx: &Ctx<'_>, _rng: &mut Rng) -> Vec<Proposal> {
        let mut out = Vec::new();
        for expr in &cx.exprs {
            let Expr::BinOp(outer) = expr else { continue };
            let (lp, rp) = operand_precedence(outer.op);
            let outer_span = span(*expr);
            for (side, min) in [(outer.left.as_ref(), lp), (outer.right.as_ref(), rp)] {
                let Expr::BinOp(inner) = side else { continue };
                let ((s, e), _) = operand(cx.src, side, outer_span, min);
                let (_, kept) = operand(cx.src, &inner.left, span(side), min);
                out.push(Proposal::one(
                    Edit::replacement(kept, s, e),
                    format!(
                        "`{}` lost its `{} …` link",
                        text(cx.src, inner),
                        inner.op.as_str()
                    ),
                ));
            }
        }
        out
    }
}

/// The value of an integer literal (any base; rewritten in decimal).
fn int_literal(expr: &Expr) -> Option<u64> {
    match expr {
        Expr::NumberLiteral(ast::ExprNumberLiteral {
            value: Number::Int(i),
            ..
        }) => i.as_u64(),
        _ => None,
    }
}

/// `func_pm_op_change_const`: an integer literal moves by one.
pub(crate) struct ChangeConst;

impl Rule for ChangeConst {
    fn name(&self) -> &'static str {
        "func_pm_op_change_const"
    }
    fn summary(&self) -> &'static str {
        "an integer constant is off by one"
    }
    fn propose(&self, cx: &Ctx<'_>, rng: &mut Rng) -> Vec<Proposal> {
        let mut out = Vec::new();
        for expr in &cx.exprs {
            let Some(v) = int_literal(expr) else {
                continue;
            };
            let new = if v == 0 || rng.below(2) == 0 {
                v.saturating_add(1)
            } else {
                v - 1
            };
            let (s, e) = span(*expr);
            out.push(Proposal::one(
                Edit::replacement(new.to_string(), s, e),
                format!("constant `{v}` became `{new}`"),
            ));
        }
        out
    }
}

fn negated(op: CmpOp) -> CmpOp {
    op.negate()
}

/// Find the token of comparison `i` of `c`.
fn cmp_token(src: &str, c: &ast::ExprCompare, i: usize) -> Option<(usize, usize)> {
    let before = if i == 0 {
        c.left.end()
    } else {
        c.comparators[i - 1].end()
    };
    let after = c.comparators[i].start();
    find_token(
        src,
        (before.to_usize(), after.to_usize()),
        c.ops[i].as_str(),
    )
}

/// `func_pm_op_flip_compare`: a comparison is negated (`<`→`>=`,
/// `==`→`!=`, `in`→`not in`, `is`→`is not`).
pub(crate) struct FlipCompare;

impl Rule for FlipCompare {
    fn name(&self) -> &'static str {
        "func_pm_op_flip_compare"
    }
    fn summary(&self) -> &'static str {
        "a comparison is negated (`<`/`>=`, `==`/`!=`, `in`/`not in`, `is`/`is not`)"
    }
    fn propose(&self, cx: &Ctx<'_>, rng: &mut Rng) -> Vec<Proposal> {
        let mut out = Vec::new();
        for expr in &cx.exprs {
            let Expr::Compare(c) = expr else { continue };
            let i = rng.below(c.ops.len());
            let Some((s, e)) = cmp_token(cx.src, c, i) else {
                continue;
            };
            let new = negated(c.ops[i]);
            out.push(Proposal::one(
                Edit::replacement(new.as_str(), s, e),
                format!("`{}` became `{}`", c.ops[i].as_str(), new.as_str()),
            ));
        }
        out
    }
}

/// `func_pm_op_boundary`: a strict comparison becomes inclusive or the
/// other way round (`<`↔`<=`, `>`↔`>=`).
pub(crate) struct Boundary;

impl Rule for Boundary {
    fn name(&self) -> &'static str {
        "func_pm_op_boundary"
    }
    fn summary(&self) -> &'static str {
        "a comparison boundary moves (`<`/`<=`, `>`/`>=`)"
    }
    fn propose(&self, cx: &Ctx<'_>, _rng: &mut Rng) -> Vec<Proposal> {
        let mut out = Vec::new();
        for expr in &cx.exprs {
            let Expr::Compare(c) = expr else { continue };
            for (i, op) in c.ops.iter().enumerate() {
                let new = match op {
                    CmpOp::Lt => CmpOp::LtE,
                    CmpOp::LtE => CmpOp::Lt,
                    CmpOp::Gt => CmpOp::GtE,
                    CmpOp::GtE => CmpOp::Gt,
                    _ => continue,
                };
                let Some((s, e)) = cmp_token(cx.src, c, i) else {
                    continue;
                };
                out.push(Proposal::one(
                    Edit::replacement(new.as_str(), s, e),
                    format!("`{}` became `{}`", op.as_str(), new.as_str()),
                ));
            }
        }
        out
    }
}

/// `func_pm_op_flip_bool`: one `and` becomes `or` or the other way round.
pub(crate) struct FlipBool;

impl Rule for FlipBool {
    fn name(&self) -> &'static str {
        "func_pm_op_flip_bool"
    }
    fn summary(&self) -> &'static str {
        "an `and` becomes `or` or the other way round"
    }
    fn propose(&self, cx: &Ctx<'_>, rng: &mut Rng) -> Vec<Proposal> {
        let mut out = Vec::new();
        for expr in &cx.exprs {
            let Expr::BoolOp(b) = expr else { continue };
            let i = rng.below(b.values.len() - 1);
            let (from, to) = match b.op {
                BoolOp::And => ("and", "or"),
                BoolOp::Or => ("or", "and"),
            };
            let gap = (
                b.values[i].end().to_usize(),
                b.values[i + 1].start().to_usize(),
            );
            let Some((s, e)) = find_token(cx.src, gap, from) else {
                continue;
            };
            out.push(Proposal::one(
                Edit::replacement(to, s, e),
                format!("`{from}` became `{to}`"),
            ));
        }
        out
    }
}

/// `func_pm_op_drop_not`: a `not` is dropped.
pub(crate) struct DropNot;

impl Rule for DropNot {
    fn name(&self) -> &'static str {
        "func_pm_op_drop_not"
    }
    fn summary(&self) -> &'static str {
        "a `not` is dropped"
    }
    fn propose(&self, cx: &Ctx<'_>, _rng: &mut Rng) -> Vec<Proposal> {
        let mut out = Vec::new();
        for expr in &cx.exprs {
            let Expr::UnaryOp(u) = expr else { continue };
            if u.op != UnaryOp::Not {
                continue;
            }
            let s = u.start().to_usize();
            if !cx.src[s..].starts_with("not") {
                continue;
            }
            let rest = &cx.src[s + 3..];
            let ws = rest.len() - rest.trim_start_matches([' ', '\t']).len();
            // `x in not y`-like contexts need the operand to bind as tightly
            // as the `not` did; comparisons and looser forms do not.
            if crate::text::precedence(&u.operand) <= OperatorPrecedence::Not {
                continue;
            }
            out.push(Proposal::one(
                Edit::deletion(s, s + 3 + ws),
                format!("dropped `not` before `{}`", text(cx.src, &*u.operand)),
            ));
        }
        out
    }
}

/// `func_pm_op_off_by_one`: a slice bound or `range()` bound moves by one.
pub(crate) struct OffByOne;

impl Rule for OffByOne {
    fn name(&self) -> &'static str {
        "func_pm_op_off_by_one"
    }
    fn summary(&self) -> &'static str {
        "a slice bound or `range()` bound is off by one"
    }
    fn propose(&self, cx: &Ctx<'_>, rng: &mut Rng) -> Vec<Proposal> {
        let mut bounds: Vec<&Expr> = Vec::new();
        for expr in &cx.exprs {
            match expr {
                Expr::Slice(s) => {
                    bounds.extend(s.lower.as_deref().into_iter().chain(s.upper.as_deref()))
                }
                Expr::Call(c)
                    if matches!(c.func.as_ref(), Expr::Name(n) if n.id.as_str() == "range")
                        && c.arguments.keywords.is_empty()
                        && (1..=2).contains(&c.arguments.args.len()) =>
                {
                    bounds.extend(c.arguments.args.iter().filter(|a| !a.is_starred_expr()))
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for bound in bounds {
            let (s, e) = span(bound);
            let up = rng.below(2) == 0;
            let new = match int_literal(bound) {
                Some(v) if up || v == 0 => (v + 1).to_string(),
                Some(v) => (v - 1).to_string(),
                None => {
                    let t = operand_text(cx.src, bound, OperatorPrecedence::AddSub);
                    format!("{t} {} 1", if up { "+" } else { "-" })
                }
            };
            out.push(Proposal::one(
                Edit::replacement(new.clone(), s, e),
                format!("bound `{}` became `{new}`", text(cx.src, bound)),
            ));
        }
        out
    }
}

/// `func_pm_const_flip_bool`: a `True` literal becomes `False` or back.
pub(crate) struct FlipBoolConst;

impl Rule for FlipBoolConst {
    fn name(&self) -> &'static str {
        "func_pm_const_flip_bool"
    }
    fn summary(&self) -> &'static str {
        "a `True`/`False` literal is flipped"
    }
    fn propose(&self, cx: &Ctx<'_>, _rng: &mut Rng) -> Vec<Proposal> {
        cx.exprs
            .iter()
            .filter_map(|expr| {
                let Expr::BooleanLiteral(b) = expr else {
                    return None;
                };
                let (s, e) = span(*expr);
                let (old, new) = if b.value {
                    ("True", "False")
                } else {
                    ("False", "True")
                };
                Some(Proposal::one(
                    Edit::replacement(new, s, e),
                    format!("`{old}` became `{new}`"),
                ))
            })
            .collect()
    }
}

/// `func_pm_param_default`: a parameter's default value changes (an
/// integer moves by one, a boolean flips, a string empties).
pub(crate) struct ParamDefault;

impl Rule for ParamDefault {
    fn name(&self) -> &'static str {
        "func_pm_param_default"
    }
    fn summary(&self) -> &'static str {
        "a parameter's default value changes"
    }
    fn propose(&self, cx: &Ctx<'_>, rng: &mut Rng) -> Vec<Proposal> {
        let Def::Function(f) = cx.def else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let params = f
            .parameters
            .posonlyargs
            .iter()
            .chain(&f.parameters.args)
            .chain(&f.parameters.kwonlyargs);
        for p in params {
            let Some(default) = p.default.as_deref() else {
                continue;
            };
            let (s, e) = span(default);
            let new = match default {
                Expr::BooleanLiteral(b) => (if b.value { "False" } else { "True" }).to_string(),
                Expr::StringLiteral(lit) if !lit.value.is_empty() => "\"\"".to_string(),
                Expr::NoneLiteral(_) => continue,
                _ => match int_literal(default) {
                    Some(v) if v == 0 || rng.below(2) == 0 => (v + 1).to_string(),
                    Some(v) => (v - 1).to_string(),
                    None => continue,
                },
            };
            out.push(Proposal::one(
                Edit::replacement(new.clone(), s, e),
                format!("default of `{}` became `{new}`", p.parameter.name.as_str()),
            ));
        }
        out
    }
}

/// `func_pm_var_swap`: a variable read uses another local variable of the
/// same function.
pub(crate) struct VarSwap;

impl Rule for VarSwap {
    fn name(&self) -> &'static str {
        "func_pm_var_swap"
    }
    fn summary(&self) -> &'static str {
        "a variable read uses another local variable of the same scope"
    }
    fn propose(&self, cx: &Ctx<'_>, rng: &mut Rng) -> Vec<Proposal> {
        let Def::Function(f) = cx.def else {
            return Vec::new();
        };
        let mut locals: BTreeSet<&str> = f
            .parameters
            .iter_non_variadic_params()
            .map(|p| p.parameter.name.as_str())
            .collect();
        for expr in &cx.exprs {
            if let Expr::Name(n) = expr {
                if n.ctx == ast::ExprContext::Store {
                    locals.insert(n.id.as_str());
                }
            }
        }
        locals.remove("self");
        locals.remove("cls");
        locals.remove("_");
        let locals: Vec<&str> = locals.into_iter().collect();
        if locals.len() < 2 {
            return Vec::new();
        }
        let mut out = Vec::new();
        for expr in &cx.exprs {
            let Expr::Name(n) = expr else { continue };
            let name = n.id.as_str();
            if n.ctx != ast::ExprContext::Load || !locals.contains(&name) {
                continue;
            }
            let others: Vec<&str> = locals.iter().copied().filter(|l| *l != name).collect();
            let new = *rng.pick(&others);
            let (s, e) = span(*expr);
            out.push(Proposal::one(
                Edit::replacement(new, s, e),
                format!("read `{new}` instead of `{name}`"),
            ));
        }
        out
    }
}

/// `func_pm_arg_swap`: two adjacent positional arguments of a call trade
/// places.
pub(crate) struct ArgSwap;

impl Rule for ArgSwap {
    fn name(&self) -> &'static str {
        "func_pm_arg_swap"
    }
    fn summary(&self) -> &'static str {
        "two adjacent positional call arguments trade places"
    }
    fn propose(&self, cx: &Ctx<'_>, rng: &mut Rng) -> Vec<Proposal> {
        let mut out = Vec::new();
        for expr in &cx.exprs {
            let Expr::Call(c) = expr else { continue };
            let args = &c.arguments.args;
            if args.len() < 2
                || args
                    .iter()
                    .any(|a| a.is_starred_expr() || a.is_generator_expr())
            {
                continue;
            }
            let i = rng.below(args.len() - 1);
            let (a, b) = (&args[i], &args[i + 1]);
            if text(cx.src, a) == text(cx.src, b) {
                continue;
            }
            let min = OperatorPrecedence::IfElse;
            let outer = span(&c.arguments);
            let ((as_, ae), a_text) = operand(cx.src, a, outer, min);
            let ((bs, be), b_text) = operand(cx.src, b, outer, min);
            out.push(Proposal::new(
                vec![
                    Edit::replacement(b_text, as_, ae),
                    Edit::replacement(a_text, bs, be),
                ],
                format!(
                    "swapped arguments {} and {} of `{}`",
                    i + 1,
                    i + 2,
                    text(cx.src, &*c.func)
                ),
            ));
        }
        out
    }
}
