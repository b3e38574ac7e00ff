//! Entity extraction: the functions, methods and classes of a file, with
//! qualified names, byte and line ranges, complexity and selection flags.

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{self as ast, Expr, ModModule, Stmt, StmtClassDef, StmtFunctionDef};
use ruff_text_size::Ranged;
use smith_core::{ByteRange, Entity, EntityFlags, EntityKind, Result, SourceFile};

use crate::files::is_test_path;

/// The AST node an entity was made from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Def<'a> {
    Function(&'a StmtFunctionDef),
    Class(&'a StmtClassDef),
}

impl<'a> Def<'a> {
    pub(crate) fn body(&self) -> &'a [Stmt] {
        match self {
            Def::Function(f) => &f.body,
            Def::Class(c) => &c.body,
        }
    }
}

/// Which entities a run mutates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityFilter {
    /// Skip entities below this cyclomatic complexity.
    pub min_complexity: Option<u32>,
    /// Skip entities above this cyclomatic complexity.
    pub max_complexity: Option<u32>,
    /// Skip test code (on by default: bugs belong in the code under test).
    pub skip_tests: bool,
    /// Skip stub functions and methods (`pass`, `...`,
    /// `raise NotImplementedError`, abstract). Classes are kept: dropping the
    /// base of an empty exception class is a real bug.
    pub skip_stubs: bool,
    /// Only these kinds (`None` = all).
    pub kinds: Option<Vec<EntityKind>>,
}

impl Default for EntityFilter {
    fn default() -> Self {
        EntityFilter {
            min_complexity: None,
            max_complexity: None,
            skip_tests: true,
            skip_stubs: true,
            kinds: None,
        }
    }
}

impl EntityFilter {
    /// Whether `entity` passes the filter.
    pub fn accepts(&self, entity: &Entity) -> bool {
        let stub = entity.flags.is_stub && entity.kind != EntityKind::Class;
        let unwanted = (self.skip_tests && entity.flags.is_test) || (self.skip_stubs && stub);
        !unwanted
            && self.min_complexity.is_none_or(|m| entity.complexity >= m)
            && self.max_complexity.is_none_or(|m| entity.complexity <= m)
            && self
                .kinds
                .as_ref()
                .is_none_or(|kinds| kinds.contains(&entity.kind))
    }
}

/// Entities (functions, async functions, methods, nested functions, classes)
/// of one file, in source order. [`smith_core::Error::Parse`] (naming the
/// path) on syntax errors.
///
/// ```
/// use smith_core::SourceFile;
/// let file = SourceFile::new("m.py", "class A:\n    def f(self):\n        return 1\n");
/// let names: Vec<_> = smith_mutate::extract_entities(&file).unwrap()
///     .into_iter().map(|e| e.id()).collect();
/// assert_eq!(names, ["m.py::A", "m.py::A.f"]);
/// ```
pub fn extract_entities(file: &SourceFile) -> Result<Vec<Entity>> {
    let parsed = smith_core::python::parse(&file.path, &file.text)?;
    Ok(entities_with_defs(file, parsed.syntax())
        .into_iter()
        .map(|(e, _)| e)
        .collect())
}

/// Entities with their AST nodes, in source order.
pub(crate) fn entities_with_defs<'a>(
    file: &SourceFile,
    module: &'a ModModule,
) -> Vec<(Entity, Def<'a>)> {
    let mut collector = Collector {
        file,
        test_file: is_test_path(&file.path),
        line_starts: line_starts(&file.text),
        scope: Vec::new(),
        out: Vec::new(),
    };
    collector.body(&module.body);
    collector.out
}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

struct Collector<'f, 'a> {
    file: &'f SourceFile,
    test_file: bool,
    line_starts: Vec<usize>,
    /// Enclosing definitions: (name, is a class).
    scope: Vec<(String, bool)>,
    out: Vec<(Entity, Def<'a>)>,
}

impl<'a> Collector<'_, 'a> {
    fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|s| *s <= offset)
    }

    fn body(&mut self, body: &'a [Stmt]) {
        for stmt in body {
            self.stmt(stmt);
        }
    }

    /// Definitions may sit inside compound statements (`if TYPE_CHECKING:`,
    /// `try: ... except ImportError:`), so those are searched too.
    fn stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::FunctionDef(f) => self.function(f),
            Stmt::ClassDef(c) => self.class(c),
            Stmt::If(s) => {
                self.body(&s.body);
                for clause in &s.elif_else_clauses {
                    self.body(&clause.body);
                }
            }
            Stmt::Try(s) => {
                self.body(&s.body);
                for h in &s.handlers {
                    let ast::ExceptHandler::ExceptHandler(h) = h;
                    self.body(&h.body);
                }
                self.body(&s.orelse);
                self.body(&s.finalbody);
            }
            Stmt::With(s) => self.body(&s.body),
            Stmt::For(s) => {
                self.body(&s.body);
                self.body(&s.orelse);
            }
            Stmt::While(s) => {
                self.body(&s.body);
                self.body(&s.orelse);
            }
            Stmt::Match(s) => {
                for case in &s.cases {
                    self.body(&case.body);
                }
            }
            _ => {}
        }
    }

    /// A function or method, then the definitions in its body.
    fn function(&mut self, f: &'a StmtFunctionDef) {
        let in_class = self.scope.last().is_some_and(|(_, c)| *c);
        let kind = if in_class {
            EntityKind::Method
        } else if f.is_async {
            EntityKind::AsyncFunction
        } else {
            EntityKind::Function
        };
        let flags = EntityFlags {
            is_test: self.test_file
                || f.name.as_str().starts_with("test")
                || self.scope.iter().any(|(n, c)| *c && n.starts_with("Test")),
            is_property: f.decorator_list.iter().any(|d| is_property(&d.expression)),
            has_docstring: has_docstring(&f.body),
            is_stub: is_stub_body(&f.body)
                || f.decorator_list
                    .iter()
                    .any(|d| decorator_name(&d.expression) == Some("abstractmethod")),
            is_async: f.is_async,
        };
        let start = f
            .decorator_list
            .first()
            .map_or(f.start(), |d| d.start())
            .to_usize();
        self.push(
            f.name.as_str(),
            kind,
            start,
            f.end().to_usize(),
            flags,
            Def::Function(f),
            complexity_of_function(f),
        );
        self.scope.push((f.name.to_string(), false));
        self.body(&f.body);
        self.scope.pop();
    }

    /// A class, then the definitions in its body.
    fn class(&mut self, c: &'a StmtClassDef) {
        let flags = EntityFlags {
            is_test: self.test_file || c.name.as_str().starts_with("Test"),
            is_property: false,
            has_docstring: has_docstring(&c.body),
            is_stub: is_stub_body(&c.body),
            is_async: false,
        };
        let start = c
            .decorator_list
            .first()
            .map_or(c.start(), |d| d.start())
            .to_usize();
        let mut counter = Complexity(1);
        counter.visit_body(&c.body);
        self.push(
            c.name.as_str(),
            EntityKind::Class,
            start,
            c.end().to_usize(),
            flags,
            Def::Class(c),
            counter.0,
        );
        self.scope.push((c.name.to_string(), true));
        self.body(&c.body);
        self.scope.pop();
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        name: &str,
        kind: EntityKind,
        start: usize,
        end: usize,
        flags: EntityFlags,
        def: Def<'a>,
        complexity: u32,
    ) {
        let qualname = self
            .scope
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(std::iter::once(name))
            .collect::<Vec<_>>()
            .join(".");
        let entity = Entity {
            file: self.file.path.clone(),
            qualname,
            kind,
            range: ByteRange::new(start, end),
            lines: (
                self.line(start),
                self.line(end.saturating_sub(1).max(start)),
            ),
            complexity,
            flags,
        };
        self.out.push((entity, def));
    }
}

fn decorator_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Name(n) => Some(n.id.as_str()),
        Expr::Attribute(a) => Some(a.attr.as_str()),
        Expr::Call(c) => decorator_name(&c.func),
        _ => None,
    }
}

fn is_property(expr: &Expr) -> bool {
    matches!(
        decorator_name(expr),
        Some("property" | "cached_property" | "setter" | "getter" | "deleter")
    )
}

fn is_docstring(stmt: &Stmt) -> bool {
    matches!(stmt, Stmt::Expr(e) if e.value.is_string_literal_expr())
}

fn has_docstring(body: &[Stmt]) -> bool {
    body.first().is_some_and(is_docstring)
}

/// A body that does nothing: only a docstring, `pass`, `...` or
/// `raise NotImplementedError`.
fn is_stub_body(body: &[Stmt]) -> bool {
    body.iter().all(|s| match s {
        Stmt::Pass(_) => true,
        Stmt::Expr(e) => e.value.is_string_literal_expr() || e.value.is_ellipsis_literal_expr(),
        Stmt::Raise(r) => r
            .exc
            .as_deref()
            .and_then(decorator_name)
            .is_some_and(|n| n == "NotImplementedError"),
        _ => false,
    })
}

/// Cyclomatic complexity of a function, not counting nested definitions
/// (they are entities of their own).
fn complexity_of_function(f: &StmtFunctionDef) -> u32 {
    let mut counter = Complexity(1);
    counter.visit_body(&f.body);
    counter.0
}

/// Counts decision points: branches, loops, handlers, boolean operands,
/// conditional expressions, comprehension clauses and match cases.
struct Complexity(u32);

impl<'a> Visitor<'a> for Complexity {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::FunctionDef(_) => return,
            Stmt::If(s) => {
                self.0 += 1 + s
                    .elif_else_clauses
                    .iter()
                    .filter(|c| c.test.is_some())
                    .count() as u32
            }
            Stmt::For(_) | Stmt::While(_) => self.0 += 1,
            Stmt::Try(s) => self.0 += s.handlers.len() as u32,
            Stmt::Match(s) => self.0 += s.cases.len().saturating_sub(1) as u32,
            _ => {}
        }
        visitor::walk_stmt(self, stmt);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::BoolOp(b) => self.0 += b.values.len().saturating_sub(1) as u32,
            Expr::If(_) => self.0 += 1,
            Expr::ListComp(ast::ExprListComp { generators, .. })
            | Expr::SetComp(ast::ExprSetComp { generators, .. })
            | Expr::DictComp(ast::ExprDictComp { generators, .. })
            | Expr::Generator(ast::ExprGenerator { generators, .. }) => {
                self.0 += generators
                    .iter()
                    .map(|g| 1 + g.ifs.len() as u32)
                    .sum::<u32>()
            }
            _ => {}
        }
        visitor::walk_expr(self, expr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r#"import abc

def free(a, b):
    """Adds."""
    if a and b:
        return a
    elif a:
        return b
    return [x for x in a if x]

class Shape(abc.ABC):
    @property
    def area(self):
        return 0

    @abc.abstractmethod
    def draw(self):
        ...

    async def load(self):
        def inner():
            pass
        return inner

async def fetch():
    await x

try:
    def optional():
        return 1
except ImportError:
    pass
"#;

    #[test]
    fn extracts_names_kinds_ranges_flags() {
        let file = SourceFile::new("pkg/geo.py", SRC);
        let ents = extract_entities(&file).unwrap();
        let ids: Vec<_> = ents.iter().map(|e| (e.qualname.as_str(), e.kind)).collect();
        assert_eq!(
            ids,
            [
                ("free", EntityKind::Function),
                ("Shape", EntityKind::Class),
                ("Shape.area", EntityKind::Method),
                ("Shape.draw", EntityKind::Method),
                ("Shape.load", EntityKind::Method),
                ("Shape.load.inner", EntityKind::Function),
                ("fetch", EntityKind::AsyncFunction),
                ("optional", EntityKind::Function),
            ]
        );
        let free = &ents[0];
        assert!(file.slice(free.range).starts_with("def free"));
        assert!(file.slice(free.range).ends_with("if x]"));
        assert_eq!(free.lines, (3, 9));
        // 1 + if + elif + `and` + comprehension for + comprehension if
        assert_eq!(free.complexity, 6);
        assert!(free.flags.has_docstring);
        let area = &ents[2];
        assert!(file.slice(area.range).starts_with("@property"));
        assert!(area.flags.is_property);
        assert!(ents[3].flags.is_stub, "abstract + ellipsis");
        assert!(ents[4].flags.is_async);
        assert!(ents[5].flags.is_stub);
        assert!(!ents.iter().any(|e| e.flags.is_test));
    }

    #[test]
    fn test_code_is_flagged_and_filtered() {
        let file = SourceFile::new(
            "m.py",
            "def test_a():\n    assert f()\n\nclass TestX:\n    def check(self):\n        return 1\n\ndef f():\n    return 2\n",
        );
        let ents = extract_entities(&file).unwrap();
        let flags: Vec<_> = ents.iter().map(|e| e.flags.is_test).collect();
        assert_eq!(flags, [true, true, true, false]);
        let filter = EntityFilter::default();
        let kept: Vec<_> = ents
            .iter()
            .filter(|e| filter.accepts(e))
            .map(|e| e.qualname.as_str())
            .collect();
        assert_eq!(kept, ["f"]);
        let complex = EntityFilter {
            min_complexity: Some(2),
            skip_tests: false,
            ..Default::default()
        };
        assert!(ents.iter().all(|e| !complex.accepts(e)));
    }

    #[test]
    fn syntax_error_names_the_file() {
        let err =
            extract_entities(&SourceFile::new("pkg/bad.py", "def f(:\n  pass\n")).unwrap_err();
        assert!(matches!(err, smith_core::Error::Parse { .. }));
        assert!(err.to_string().contains("pkg/bad.py"));
    }
}
