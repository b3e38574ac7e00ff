//! Mutators over the Python AST, for crates that depend on smith.
//!
//! The built-in procedural mutators work on ruff's AST of one entity. An
//! [`AstMutator`] gets the same view: the parsed module, the entity, its
//! definition node, and the entity's own statements and expressions (nested
//! definitions excluded: they are entities of their own) — and emits
//! minimal [`Edit`]s with [`AstContext::replace`] and friends. Wrapped by
//! [`ast_mutator`] it is a core [`Mutator`], usable by [`crate::generate`]
//! and smith's pipeline next to the built-ins.
//!
//! Parsing is shared: while [`crate::generate`] works on a file, every
//! mutator (built-in or yours) reuses one parse of it, so a pass parses
//! each file once, not once per entity. The ruff crates are re-exported
//! here ([`python_ast`], [`text_size`]), so a downstream crate needs no
//! ruff dependency of its own and never pins ruff's versions by hand.
//!
//! ```
//! use smith_core::{Mutation, Mutator, SourceFile};
//! use smith_mutate::ast::{ast_mutator, AstContext, AstMutator, python_ast::{CmpOp, Expr}};
//! use smith_mutate::extract_entities;
//!
//! /// `==` becomes `is`.
//! #[derive(Debug)]
//! struct EqToIs;
//!
//! impl AstMutator for EqToIs {
//!     fn name(&self) -> &str { "custom/eq_to_is" }
//!     fn mutate(&self, cx: &AstContext<'_>, _seed: u64) -> Vec<Mutation> {
//!         let mut out = Vec::new();
//!         for expr in cx.expressions() {
//!             let Expr::Compare(c) = expr else { continue };
//!             if c.ops.as_ref() == [CmpOp::Eq] {
//!                 let (l, r) = (cx.text(&*c.left), cx.text(&c.comparators[0]));
//!                 out.push(cx.mutation(self.name(), vec![cx.replace(expr, format!("{l} is {r}"))],
//!                     "`==` became `is`"));
//!             }
//!         }
//!         out
//!     }
//! }
//!
//! let file = SourceFile::new("m.py", "def f(x):\n    return x == 1\n");
//! let entity = &extract_entities(&file).unwrap()[0];
//! let mutation = &ast_mutator(EqToIs).mutate(&file, entity, 0)[0];
//! assert_eq!(mutation.apply(&file.text).unwrap(), "def f(x):\n    return x is 1\n");
//! ```

use std::fmt::Debug;

use smith_core::{Edit, Entity, EntityKind, Mutation, Mutator, SourceFile};

pub use ruff_python_ast as python_ast;
pub use ruff_python_ast::visitor;
pub use ruff_python_ast::{Expr, ModModule, Stmt, StmtClassDef, StmtFunctionDef};
pub use ruff_text_size as text_size;
pub use ruff_text_size::{Ranged, TextRange, TextSize};

use crate::entities::Def;
use crate::mutators::{cached_parse, find_def, Ctx};

/// The definition an entity was made from.
#[derive(Debug, Clone, Copy)]
pub enum Definition<'a> {
    /// A function or method (`def` or `async def`).
    Function(&'a StmtFunctionDef),
    /// A class.
    Class(&'a StmtClassDef),
}

impl<'a> Definition<'a> {
    /// The definition's body.
    pub fn body(&self) -> &'a [Stmt] {
        match self {
            Definition::Function(f) => &f.body,
            Definition::Class(c) => &c.body,
        }
    }
}

/// What an [`AstMutator`] sees of one entity.
pub struct AstContext<'a> {
    file: &'a SourceFile,
    module: &'a ModModule,
    cx: Ctx<'a>,
}

impl Debug for AstContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AstContext")
            .field("file", &self.file.path)
            .field("entity", &self.cx.entity.qualname)
            .finish()
    }
}

impl<'a> AstContext<'a> {
    /// The file being mutated.
    pub fn file(&self) -> &'a SourceFile {
        self.file
    }

    /// The whole file's AST.
    pub fn module(&self) -> &'a ModModule {
        self.module
    }

    /// The entity being mutated.
    pub fn entity(&self) -> &'a Entity {
        self.cx.entity
    }

    /// The entity's definition node.
    pub fn definition(&self) -> Definition<'a> {
        match self.cx.def {
            Def::Function(f) => Definition::Function(f),
            Def::Class(c) => Definition::Class(c),
        }
    }

    /// The entity's own statements in source order, each with the body
    /// that holds it (empty for classes; nested definitions excluded).
    pub fn statements(&self) -> impl Iterator<Item = (&'a Stmt, &'a [Stmt])> + '_ {
        self.cx.stmts.iter().copied()
    }

    /// The entity's own expressions in source order (empty for classes;
    /// annotations and nested definitions excluded).
    pub fn expressions(&self) -> impl Iterator<Item = &'a Expr> + '_ {
        self.cx.exprs.iter().copied()
    }

    /// The entity's top-level statements, after any docstring.
    pub fn top_level(&self) -> &'a [Stmt] {
        self.cx.top_level()
    }

    /// The source text of `node`.
    pub fn text<N: Ranged + ?Sized>(&self, node: &N) -> &'a str {
        &self.file.text[node.range().start().to_usize()..node.range().end().to_usize()]
    }

    /// An edit replacing `node` with `with`.
    pub fn replace<N: Ranged + ?Sized>(&self, node: &N, with: impl Into<String>) -> Edit {
        let r = node.range();
        Edit::replacement(with, r.start().to_usize(), r.end().to_usize())
    }

    /// An edit replacing the bytes `range` with `with`.
    pub fn replace_range(&self, range: TextRange, with: impl Into<String>) -> Edit {
        Edit::replacement(with, range.start().to_usize(), range.end().to_usize())
    }

    /// An edit deleting the whole lines of `stmt` (a statement alone on its
    /// lines); the caller must keep the block non-empty.
    pub fn delete_lines(&self, stmt: &Stmt) -> Edit {
        let text = self.file.text.as_str();
        let r = stmt.range();
        let start = text[..r.start().to_usize()]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let end = text[r.end().to_usize()..]
            .find('\n')
            .map_or(text.len(), |i| r.end().to_usize() + i + 1);
        Edit::deletion(start, end)
    }

    /// A mutation of this entity under `strategy`, described as
    /// `description` "in" the entity's qualified name.
    pub fn mutation(
        &self,
        strategy: &str,
        edits: Vec<Edit>,
        description: impl std::fmt::Display,
    ) -> Mutation {
        Mutation {
            file: self.file.path.clone(),
            edits,
            strategy: strategy.to_string(),
            description: format!("{description} in {}", self.cx.entity.qualname),
            entities: vec![self.cx.entity.id()],
        }
    }
}

/// A mutator over the AST of one entity: the interface smith's built-in
/// mutators have. Must be deterministic for a given seed; mutations that do
/// not re-parse or do not change the AST are dropped by the generator.
pub trait AstMutator: Send + Sync + Debug {
    /// Strategy name written into candidates.
    fn name(&self) -> &str;

    /// Which entities to visit: functions and methods (the default) or
    /// classes too.
    fn targets_classes(&self) -> bool {
        false
    }

    /// Propose mutations of the entity in `cx`.
    fn mutate(&self, cx: &AstContext<'_>, seed: u64) -> Vec<Mutation>;
}

/// An [`AstMutator`] as a core [`Mutator`] (see [`ast_mutator`]).
#[derive(Debug)]
pub struct Ast<M>(pub M);

impl<M: AstMutator> Mutator for Ast<M> {
    fn name(&self) -> &str {
        self.0.name()
    }

    /// Reuses the parse of `file` the generator made for every mutator (or
    /// this thread's last parse of the same text), finds the entity's node
    /// and runs the AST mutator.
    fn mutate(&self, file: &SourceFile, entity: &Entity, seed: u64) -> Vec<Mutation> {
        if entity.kind == EntityKind::Class && !self.0.targets_classes() {
            return Vec::new();
        }
        let parsed = cached_parse(file);
        let Ok(module) = parsed.module() else {
            return Vec::new();
        };
        let Some(def) = find_def(module, entity) else {
            return Vec::new();
        };
        let cx = AstContext {
            file,
            module,
            cx: Ctx::new(&file.text, entity, def),
        };
        self.0.mutate(&cx, seed)
    }
}

/// `mutator` as a boxed core [`Mutator`], ready for [`crate::generate`] or
/// the pipeline.
pub fn ast_mutator<M: AstMutator + 'static>(mutator: M) -> Box<dyn Mutator> {
    Box::new(Ast(mutator))
}
