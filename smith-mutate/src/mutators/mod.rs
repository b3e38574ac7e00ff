//! The procedural mutators: SWE-smith's thirteen Python modifiers under
//! their original strategy names, plus the bug kinds they lack.
//!
//! Each mutator is a [`Rule`] over the ruff AST of one entity, wrapped in a
//! [`Procedural`] that carries its likelihood and entity conditions and
//! implements core [`Mutator`] (so built-ins and foreign mutators are used
//! the same way). Parsing is shared: the last parsed file is cached per
//! thread, so running all mutators over one file parses it once.

mod class;
mod ctrl;
mod ops;
mod remove;

use std::cell::RefCell;
use std::rc::Rc;

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{Expr, ModModule, Stmt};
use ruff_python_parser::Parsed;
use ruff_text_size::Ranged;
use smith_core::{Edit, Entity, EntityKind, Mutation, Mutator, SourceFile};

use crate::entities::Def;
use smith_core::rng::Rng;

/// One way a rule can plant a bug: edits plus what they do.
#[derive(Debug, Clone)]
pub(crate) struct Proposal {
    pub(crate) edits: Vec<Edit>,
    pub(crate) description: String,
}

impl Proposal {
    pub(crate) fn new(edits: Vec<Edit>, description: impl Into<String>) -> Self {
        Proposal {
            edits,
            description: description.into(),
        }
    }

    pub(crate) fn one(edit: Edit, description: impl Into<String>) -> Self {
        Self::new(vec![edit], description)
    }
}

/// What a rule sees: the file, the entity and its AST, and the entity's own
/// statements and expressions (nested definitions excluded: they are
/// entities of their own).
pub(crate) struct Ctx<'a> {
    pub(crate) src: &'a str,
    pub(crate) entity: &'a Entity,
    pub(crate) def: Def<'a>,
    /// Statements with the body that holds them, in source order.
    pub(crate) stmts: Vec<(&'a Stmt, &'a [Stmt])>,
    /// Expressions in source order (annotations excluded).
    pub(crate) exprs: Vec<&'a Expr>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(src: &'a str, entity: &'a Entity, def: Def<'a>) -> Self {
        let mut c = NodeCollector {
            parents: Vec::new(),
            stmts: Vec::new(),
            exprs: Vec::new(),
        };
        if let Def::Function(_) = def {
            c.visit_body(def.body());
        }
        Ctx {
            src,
            entity,
            def,
            stmts: c.stmts,
            exprs: c.exprs,
        }
    }

    /// The entity's top-level statements, after any docstring.
    pub(crate) fn top_level(&self) -> &'a [Stmt] {
        let body = self.def.body();
        match body.first() {
            Some(Stmt::Expr(e)) if e.value.is_string_literal_expr() => &body[1..],
            _ => body,
        }
    }
}

struct NodeCollector<'a> {
    parents: Vec<&'a [Stmt]>,
    stmts: Vec<(&'a Stmt, &'a [Stmt])>,
    exprs: Vec<&'a Expr>,
}

impl<'a> Visitor<'a> for NodeCollector<'a> {
    fn visit_body(&mut self, body: &'a [Stmt]) {
        self.parents.push(body);
        visitor::walk_body(self, body);
        self.parents.pop();
    }

    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        if matches!(stmt, Stmt::FunctionDef(_) | Stmt::ClassDef(_)) {
            return;
        }
        if let Some(parent) = self.parents.last() {
            self.stmts.push((stmt, parent));
        }
        visitor::walk_stmt(self, stmt);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        self.exprs.push(expr);
        visitor::walk_expr(self, expr);
    }

    // Type annotations do not run; mutating them plants no bug.
    fn visit_annotation(&mut self, _expr: &'a Expr) {}
}

/// Which entities a rule works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Targets {
    Functions,
    Classes,
}

/// A procedural bug kind over the ruff AST.
pub(crate) trait Rule: Send + Sync {
    fn name(&self) -> &'static str;
    fn targets(&self) -> Targets {
        Targets::Functions
    }
    /// One-line explanation for docs and `--list`.
    fn summary(&self) -> &'static str;
    /// Every site this rule could mutate, in any order; `rng` decides
    /// choices within a site (which operator, which permutation).
    fn propose(&self, cx: &Ctx<'_>, rng: &mut Rng) -> Vec<Proposal>;
}

/// A built-in procedural mutator: a rule plus when to apply it.
pub struct Procedural {
    rule: &'static dyn Rule,
    /// Probability that the rule is tried on an eligible entity (decided by
    /// the seed, so runs stay reproducible).
    pub likelihood: f64,
    /// Only entities at least this complex.
    pub min_complexity: u32,
    /// Only entities at most this complex.
    pub max_complexity: Option<u32>,
}

impl std::fmt::Debug for Procedural {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Procedural")
            .field("name", &self.rule.name())
            .field("likelihood", &self.likelihood)
            .field("min_complexity", &self.min_complexity)
            .field("max_complexity", &self.max_complexity)
            .finish()
    }
}

impl Procedural {
    fn new(rule: &'static dyn Rule) -> Self {
        Procedural {
            rule,
            likelihood: 1.0,
            min_complexity: 0,
            max_complexity: None,
        }
    }

    /// The built-in mutator named `name`, if there is one.
    pub fn by_name(name: &str) -> Option<Self> {
        RULES
            .iter()
            .find(|r| r.name() == name)
            .map(|r| Self::new(*r))
    }

    /// One line saying what the mutator does.
    pub fn summary(&self) -> &'static str {
        self.rule.summary()
    }

    /// Set the likelihood.
    pub fn with_likelihood(mut self, likelihood: f64) -> Self {
        self.likelihood = likelihood;
        self
    }

    /// Set the complexity bounds.
    pub fn with_complexity(mut self, min: u32, max: Option<u32>) -> Self {
        self.min_complexity = min;
        self.max_complexity = max;
        self
    }

    fn eligible(&self, entity: &Entity) -> bool {
        let kind_ok = match self.rule.targets() {
            Targets::Classes => entity.kind == EntityKind::Class,
            Targets::Functions => entity.kind != EntityKind::Class,
        };
        kind_ok
            && entity.complexity >= self.min_complexity
            && self.max_complexity.is_none_or(|m| entity.complexity <= m)
    }

    /// Mutations of one entity whose AST is at hand, in seeded order.
    pub(crate) fn run(&self, cx: &Ctx<'_>, path: &str, seed: u64) -> Vec<Mutation> {
        let mut rng = Rng::new(seed);
        if !self.eligible(cx.entity) || (self.likelihood < 1.0 && rng.unit() >= self.likelihood) {
            return Vec::new();
        }
        let mut proposals = self.rule.propose(cx, &mut rng);
        rng.shuffle(&mut proposals);
        proposals
            .into_iter()
            .map(|p| Mutation {
                file: path.to_string(),
                edits: p.edits,
                strategy: self.rule.name().to_string(),
                description: format!("{} in {}", p.description, cx.entity.qualname),
                entities: vec![cx.entity.id()],
            })
            .collect()
    }
}

impl Mutator for Procedural {
    fn name(&self) -> &str {
        self.rule.name()
    }

    /// Parses `file` (or reuses this thread's last parse of the same text),
    /// finds the entity's node by its range and runs the rule. Returns every
    /// site in seeded order; callers validate and cap.
    fn mutate(&self, file: &SourceFile, entity: &Entity, seed: u64) -> Vec<Mutation> {
        if !self.eligible(entity) {
            return Vec::new();
        }
        let parsed = cached_parse(file);
        let Ok(module) = parsed.module() else {
            return Vec::new();
        };
        let Some(def) = find_def(module, entity) else {
            return Vec::new();
        };
        let cx = Ctx::new(&file.text, entity, def);
        self.run(&cx, &file.path, seed)
    }
}

/// A parsed file, shared between the mutators run on it.
pub(crate) struct CachedParse {
    /// The text parsed, kept to recognise the same file by content.
    text: Option<String>,
    parsed: std::result::Result<Parsed<ModModule>, String>,
}

impl CachedParse {
    /// Parse `file` (the error is the parser's message).
    pub(crate) fn parse(file: &SourceFile, keep_text: bool) -> Rc<CachedParse> {
        let parsed = smith_core::python::parse(&file.path, &file.text).map_err(|e| match e {
            smith_core::Error::Parse { message, .. } => message,
            other => other.to_string(),
        });
        Rc::new(CachedParse {
            text: keep_text.then(|| file.text.clone()),
            parsed,
        })
    }

    /// The module, or the parse error.
    pub(crate) fn module(&self) -> std::result::Result<&ModModule, &str> {
        match &self.parsed {
            Ok(parsed) => Ok(parsed.syntax()),
            Err(message) => Err(message),
        }
    }
}

thread_local! {
    /// The last file parsed through the standalone [`Mutator`] interface.
    static LAST_PARSE: RefCell<Option<Rc<CachedParse>>> = const { RefCell::new(None) };
    /// The file `generate` is working on: its text's address and length
    /// (exact while the text is alive, which the guard ensures) and parse.
    static ACTIVE: RefCell<Option<(usize, usize, Rc<CachedParse>)>> = const { RefCell::new(None) };
}

/// While alive, mutators on this thread reuse `parsed` for `file` without
/// comparing its text.
pub(crate) struct ActiveFile(());

impl ActiveFile {
    pub(crate) fn set(file: &SourceFile, parsed: Rc<CachedParse>) -> ActiveFile {
        let key = (file.text.as_ptr() as usize, file.text.len());
        ACTIVE.with(|a| *a.borrow_mut() = Some((key.0, key.1, parsed)));
        ActiveFile(())
    }
}

impl Drop for ActiveFile {
    fn drop(&mut self) {
        ACTIVE.with(|a| *a.borrow_mut() = None);
    }
}

/// This thread's parse of `file`: the active file, the last parsed file if
/// its text is the same, or a fresh parse.
pub(crate) fn cached_parse(file: &SourceFile) -> Rc<CachedParse> {
    let key = (file.text.as_ptr() as usize, file.text.len());
    let active = ACTIVE.with(|a| {
        a.borrow()
            .as_ref()
            .filter(|(ptr, len, _)| (*ptr, *len) == key)
            .map(|(_, _, parsed)| parsed.clone())
    });
    if let Some(parsed) = active {
        return parsed;
    }
    let hit = LAST_PARSE.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|p| p.text.as_deref() == Some(file.text.as_str()))
            .cloned()
    });
    hit.unwrap_or_else(|| {
        let entry = CachedParse::parse(file, true);
        LAST_PARSE.with(|c| *c.borrow_mut() = Some(entry.clone()));
        entry
    })
}

/// The definition whose range (decorators included) is the entity's.
pub(crate) fn find_def<'a>(module: &'a ModModule, entity: &Entity) -> Option<Def<'a>> {
    fn search<'a>(body: &'a [Stmt], start: usize, end: usize) -> Option<Def<'a>> {
        for stmt in body {
            let (s, e) = (stmt.start().to_usize(), stmt.end().to_usize());
            if e < end || s > end {
                continue;
            }
            let found = match stmt {
                Stmt::FunctionDef(f) => {
                    let fs = f.decorator_list.first().map_or(s, |d| d.start().to_usize());
                    if fs == start && e == end {
                        return Some(Def::Function(f));
                    }
                    search(&f.body, start, end)
                }
                Stmt::ClassDef(c) => {
                    let cs = c.decorator_list.first().map_or(s, |d| d.start().to_usize());
                    if cs == start && e == end {
                        return Some(Def::Class(c));
                    }
                    search(&c.body, start, end)
                }
                Stmt::If(i) => search(&i.body, start, end).or_else(|| {
                    i.elif_else_clauses
                        .iter()
                        .find_map(|c| search(&c.body, start, end))
                }),
                Stmt::Try(t) => search(&t.body, start, end)
                    .or_else(|| {
                        t.handlers.iter().find_map(|h| {
                            let ruff_python_ast::ExceptHandler::ExceptHandler(h) = h;
                            search(&h.body, start, end)
                        })
                    })
                    .or_else(|| search(&t.orelse, start, end))
                    .or_else(|| search(&t.finalbody, start, end)),
                Stmt::With(w) => search(&w.body, start, end),
                Stmt::For(f) => {
                    search(&f.body, start, end).or_else(|| search(&f.orelse, start, end))
                }
                Stmt::While(w) => {
                    search(&w.body, start, end).or_else(|| search(&w.orelse, start, end))
                }
                Stmt::Match(m) => m.cases.iter().find_map(|c| search(&c.body, start, end)),
                _ => None,
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }
    search(&module.body, entity.range.start, entity.range.end)
}

/// Every built-in rule, SWE-smith's thirteen first.
static RULES: &[&dyn Rule] = &[
    &class::RmBase,
    &class::RmFuncs,
    &class::ShuffleFuncs,
    &ctrl::InvertIf,
    &ctrl::Shuffle,
    &remove::Assign,
    &remove::Cond,
    &remove::Loop,
    &remove::Wrapper,
    &ops::BreakChains,
    &ops::ChangeConst,
    &ops::Change,
    &ops::Swap,
    // Beyond SWE-smith.
    &ops::FlipCompare,
    &ops::Boundary,
    &ops::FlipBool,
    &ops::DropNot,
    &ops::OffByOne,
    &ops::FlipBoolConst,
    &ctrl::EarlyReturn,
    &ctrl::ReturnNone,
    &remove::Raise,
    &remove::Break,
    &remove::Continue,
    &remove::Await,
    &remove::Call,
    &ops::ParamDefault,
    &ops::VarSwap,
    &ops::ArgSwap,
];

/// Names of every built-in procedural mutator, in catalogue order.
pub fn procedural_names() -> Vec<&'static str> {
    RULES.iter().map(|r| r.name()).collect()
}

/// Every built-in procedural mutator, as core [`Mutator`]s.
pub fn procedural_mutators() -> Vec<Box<dyn Mutator>> {
    RULES
        .iter()
        .map(|r| Box::new(Procedural::new(*r)) as Box<dyn Mutator>)
        .collect()
}
