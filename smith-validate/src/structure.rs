//! Patches that remove, move or rewrite whole functions, read on the syntax
//! tree.
//!
//! Line-level selection ([`crate::coverage`]) sends a patch that removes a
//! method, or moves methods around a class body, to the whole suite: the
//! `def` lines it removes run at import. Read on both sides' syntax trees,
//! most such patches are narrower. When the two sides of a file differ only
//! in whole functions:
//!
//! - a function whose text changed (same name, same decorators) is observed
//!   by the tests that call it, the same argument as for a function header;
//! - a removed method is observed by the tests that call it (they now reach
//!   a base class's method or an `AttributeError`) and, when its class has
//!   bases, by the tests that make instances of the class (a removed
//!   override of an abstract method makes the class impossible to
//!   instantiate): the class must then define `__init__` or `__new__`, and
//!   their callers are selected;
//! - methods moved within a class body change only the order of the class's
//!   namespace; the tests calling any method of the class are selected
//!   (calls at import are the same as before and are not counted).
//!
//! Anything that the class statement itself could observe stays on the
//! whole suite: a class with decorators or keywords (a metaclass), a moved
//! method whose name code run by its class body mentions (a default, a
//! class attribute), a removed method whose name any code run at import
//! mentions, a removed method Python treats specially
//! (`__eq__` and `__hash__` decide hashability together; hooks called while
//! classes are made), added methods, and decorated methods removed or moved.
//! What no rule here can see: a test that looks a method up without calling
//! it (`hasattr`), a metaclass or `__init_subclass__` inherited from a base
//! that reads the namespace, and a subclass whose own `__init__` does not
//! call the class's.

use std::collections::BTreeSet;

use ruff_python_ast::comparable::{
    ComparableArguments, ComparableDecorator, ComparableStmt, ComparableTypeParams,
};
use ruff_python_ast::{Decorator, Stmt, StmtClassDef, StmtFunctionDef};
use ruff_text_size::{Ranged, TextRange};

/// Methods whose absence changes a class beyond calls to them.
const SPECIAL: &[&str] = &[
    "__eq__",
    "__hash__",
    "__init_subclass__",
    "__set_name__",
    "__class_getitem__",
    "__mro_entries__",
];

/// Where a function is, on the old side of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FunctionAt {
    /// Line of the statement's first token (the first decorator if any).
    pub first: u32,
    /// Line of the `def` keyword's name.
    pub def: u32,
    /// Moved but otherwise unchanged: what its body did at import it still
    /// does, so only its calls from tests matter.
    pub moved: bool,
}

/// The old-side functions whose callers observe the change from `old` to
/// `new` (see the module docs), or `None` when the two differ in anything
/// else or either does not parse.
pub(crate) fn changed_functions(path: &str, old: &str, new: &str) -> Option<Vec<FunctionAt>> {
    let old_tree = smith_core::python::parse(path, old).ok()?;
    let new_tree = smith_core::python::parse(path, new).ok()?;
    let module = &old_tree.syntax().body;
    let sides = Sides {
        old,
        new,
        old_lines: line_starts(old),
        old_import: creation_ranges(module),
        new_import: creation_ranges(&new_tree.syntax().body),
    };
    let mut out = BTreeSet::new();
    sides.bodies(
        module.iter().collect(),
        new_tree.syntax().body.iter().collect(),
        &mut out,
    )?;
    Some(out.into_iter().collect())
}

struct Sides<'a> {
    old: &'a str,
    new: &'a str,
    old_lines: Vec<usize>,
    /// The code of each side that runs at import (see [`creation_code`]).
    old_import: Vec<TextRange>,
    new_import: Vec<TextRange>,
}

impl Sides<'_> {
    fn line(&self, offset: usize) -> u32 {
        self.old_lines.partition_point(|&s| s <= offset) as u32
    }

    fn at(&self, f: &StmtFunctionDef) -> FunctionAt {
        FunctionAt {
            moved: false,
            first: self.line(f.range().start().to_usize()),
            def: self.line(f.name.range().start().to_usize()),
        }
    }

    /// Two statement lists that must pair up one to one.
    fn bodies(
        &self,
        old: Vec<&Stmt>,
        new: Vec<&Stmt>,
        out: &mut BTreeSet<FunctionAt>,
    ) -> Option<()> {
        if old.len() != new.len() {
            return None;
        }
        for (a, b) in old.into_iter().zip(new) {
            if ComparableStmt::from(a) == ComparableStmt::from(b) {
                continue;
            }
            match (a, b) {
                (Stmt::FunctionDef(fa), Stmt::FunctionDef(fb)) if same_header(fa, fb) => {
                    out.insert(self.at(fa));
                }
                (Stmt::ClassDef(ca), Stmt::ClassDef(cb)) => self.class(ca, cb, out)?,
                _ => return None,
            }
        }
        Some(())
    }

    fn class<'a>(
        &self,
        a: &'a StmtClassDef,
        b: &'a StmtClassDef,
        out: &mut BTreeSet<FunctionAt>,
    ) -> Option<()> {
        if !same_class_header(a, b) {
            return None;
        }
        let (old_defs, old_rest) = split(&a.body)?;
        let (new_defs, new_rest) = split(&b.body)?;
        self.bodies(old_rest, new_rest, out)?;
        let old_names: Vec<&str> = old_defs.iter().map(|f| f.name.as_str()).collect();
        let new_names: Vec<&str> = new_defs.iter().map(|f| f.name.as_str()).collect();
        if !new_names.iter().all(|n| old_names.contains(n)) {
            return None;
        }
        self.rewritten_methods(a, b, &new_names, out)?;
        let removed: Vec<&StmtFunctionDef> = old_defs
            .iter()
            .copied()
            .filter(|f| !new_names.contains(&f.name.as_str()))
            .collect();
        let moved = order(&a.body, &removed) != order(&b.body, &[]);
        if removed.is_empty() && !moved {
            return Some(());
        }
        let keywords = a
            .arguments
            .as_ref()
            .is_some_and(|args| !args.keywords.is_empty());
        if !a.decorator_list.is_empty() || keywords {
            return None;
        }
        let watched: Vec<&str> = if moved {
            old_names.clone()
        } else {
            removed.iter().map(|f| f.name.as_str()).collect()
        };
        // A moved method matters to what the class body itself runs; a
        // removed one to anything that runs at import.
        if named(&creation_ranges(&a.body), self.old, &watched)
            || named(&creation_ranges(&b.body), self.new, &watched)
        {
            return None;
        }
        if !removed.is_empty() {
            self.removed_methods(a, removed, out)?;
        }
        if moved {
            out.extend(old_defs.into_iter().map(|f| FunctionAt {
                moved: true,
                ..self.at(f)
            }));
        }
        Some(())
    }

    /// The methods kept by name in both versions of a class: each must be
    /// undecorated on both sides, and one whose text changed is observed
    /// by its callers.
    fn rewritten_methods<'a>(
        &self,
        a: &'a StmtClassDef,
        b: &'a StmtClassDef,
        names: &[&str],
        out: &mut BTreeSet<FunctionAt>,
    ) -> Option<()> {
        let plain = |body: &'a [Stmt], name: &str| {
            body.iter().find(|s| {
                matches!(s, Stmt::FunctionDef(f) if f.decorator_list.is_empty() && f.name.as_str() == name)
            })
        };
        for name in names {
            let (Some(sa @ Stmt::FunctionDef(fa)), Some(sb)) =
                (plain(&a.body, name), plain(&b.body, name))
            else {
                return None;
            };
            if ComparableStmt::from(sa) != ComparableStmt::from(sb) {
                out.insert(self.at(fa));
            }
        }
        Some(())
    }

    /// Methods removed from class `a`: observed by their callers and, when
    /// the class has bases, by the callers of its `__init__`/`__new__`;
    /// `None` when something at import could observe them instead.
    fn removed_methods(
        &self,
        a: &StmtClassDef,
        removed: Vec<&StmtFunctionDef>,
        out: &mut BTreeSet<FunctionAt>,
    ) -> Option<()> {
        let names: Vec<&str> = removed.iter().map(|f| f.name.as_str()).collect();
        if names.iter().any(|n| SPECIAL.contains(n))
            || named(&self.old_import, self.old, &names)
            || named(&self.new_import, self.new, &names)
        {
            return None;
        }
        let has_bases = a
            .arguments
            .as_ref()
            .is_some_and(|args| !args.args.is_empty());
        if has_bases {
            let makers: Vec<&StmtFunctionDef> = a
                .body
                .iter()
                .filter_map(|s| match s {
                    Stmt::FunctionDef(f)
                        if f.name.as_str() == "__init__" || f.name.as_str() == "__new__" =>
                    {
                        Some(f)
                    }
                    _ => None,
                })
                .collect();
            if makers.is_empty() {
                return None;
            }
            out.extend(makers.into_iter().map(|f| self.at(f)));
        }
        out.extend(removed.into_iter().map(|f| self.at(f)));
        Some(())
    }
}

/// Whether the code in `ranges` of `text` mentions any of `names`.
fn named(ranges: &[TextRange], text: &str, names: &[&str]) -> bool {
    ranges
        .iter()
        .any(|r| names.iter().any(|n| mentions(&text[*r], n)))
}

/// Whether two versions of a function keep its name, async-ness and
/// decorators.
fn same_header(a: &StmtFunctionDef, b: &StmtFunctionDef) -> bool {
    a.name.as_str() == b.name.as_str()
        && a.is_async == b.is_async
        && same_decorators(&a.decorator_list, &b.decorator_list)
}

/// Whether two versions of a class keep its name, decorators, bases,
/// keywords and type parameters.
fn same_class_header(a: &StmtClassDef, b: &StmtClassDef) -> bool {
    a.name.as_str() == b.name.as_str()
        && same_decorators(&a.decorator_list, &b.decorator_list)
        && a.arguments.as_ref().map(ComparableArguments::from)
            == b.arguments.as_ref().map(ComparableArguments::from)
        && a.type_params.as_ref().map(ComparableTypeParams::from)
            == b.type_params.as_ref().map(ComparableTypeParams::from)
}

fn same_decorators(a: &[Decorator], b: &[Decorator]) -> bool {
    a.iter()
        .map(ComparableDecorator::from)
        .eq(b.iter().map(ComparableDecorator::from))
}

/// The parts of `stmts` that run when they do (at import for a module):
/// see [`creation_code`].
fn creation_ranges(stmts: &[Stmt]) -> Vec<TextRange> {
    let mut out = Vec::new();
    for s in stmts {
        creation_code(s, &mut out);
    }
    out
}

/// The parts of `stmt` that run when the body holding it runs: a function's
/// decorators, parameters (defaults, annotations) and return annotation —
/// not its name or body —, a class's decorators, bases and the same of its
/// body, anything else but a string (a docstring) whole.
fn creation_code(stmt: &Stmt, out: &mut Vec<TextRange>) {
    match stmt {
        Stmt::FunctionDef(f) => {
            out.extend(f.decorator_list.iter().map(|d| d.range()));
            out.push(f.parameters.range());
            out.extend(f.returns.iter().map(|r| r.range()));
            out.extend(f.type_params.iter().map(|t| t.range()));
        }
        Stmt::ClassDef(c) => {
            out.extend(c.decorator_list.iter().map(|d| d.range()));
            out.extend(c.arguments.iter().map(|a| a.range()));
            out.extend(c.type_params.iter().map(|t| t.range()));
            for s in &c.body {
                creation_code(s, out);
            }
        }
        // A docstring names things without referring to them.
        Stmt::Expr(e) if e.value.is_string_literal_expr() => {}
        _ => out.push(stmt.range()),
    }
}

/// A class body's undecorated functions and its other statements; `None`
/// when two undecorated functions share a name.
fn split(body: &[Stmt]) -> Option<(Vec<&StmtFunctionDef>, Vec<&Stmt>)> {
    let mut defs: Vec<&StmtFunctionDef> = Vec::new();
    let mut rest = Vec::new();
    for s in body {
        match s {
            Stmt::FunctionDef(f) if f.decorator_list.is_empty() => {
                if defs.iter().any(|d| d.name.as_str() == f.name.as_str()) {
                    return None;
                }
                defs.push(f);
            }
            _ => rest.push(s),
        }
    }
    Some((defs, rest))
}

/// The body's layout: undecorated functions by name, anything else as
/// `None`, leaving out `skip`.
fn order<'a>(body: &'a [Stmt], skip: &[&StmtFunctionDef]) -> Vec<Option<&'a str>> {
    body.iter()
        .filter_map(|s| match s {
            Stmt::FunctionDef(f) if f.decorator_list.is_empty() => {
                (!skip.iter().any(|k| k.name.as_str() == f.name.as_str()))
                    .then_some(Some(f.name.as_str()))
            }
            _ => Some(None),
        })
        .collect()
}

/// Whether `code` contains `name` as a whole word.
fn mentions(code: &str, name: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(name).any(|(i, _)| {
        !code[..i].chars().next_back().is_some_and(word)
            && !code[i + name.len()..].chars().next().is_some_and(word)
    })
}

/// Byte offset of the start of each line (line 1 at index 0).
fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "\
import abc


class Plain:
    \"\"\"Keeps one value: get() reads it.\"\"\"

    limit = 3

    def __init__(self, x):
        self.x = x

    def get(self):
        return self.x

    def put(self, x):
        self.x = x

    def __eq__(self, other):
        return self.x == other.x


class Child(Plain):
    def twice(self):
        return self.get() * 2

    def half(self):
        return self.get() / 2


class NoInit(abc.ABC):
    def size(self):
        return 1


def helper():
    return Plain(1).get()
";

    /// `def` lines of what [`changed_functions`] names after `edit`, or
    /// `None`.
    fn defs(edit: impl Fn(&str) -> String) -> Option<Vec<u32>> {
        let new = edit(OLD);
        assert_ne!(new, OLD, "the edit changed nothing");
        changed_functions("m.py", OLD, &new).map(|fs| fs.into_iter().map(|f| f.def).collect())
    }

    fn cut(text: &str, piece: &str) -> String {
        assert!(text.contains(piece), "{piece:?}");
        text.replacen(piece, "", 1)
    }

    const GET: &str = "    def get(self):\n        return self.x\n\n";
    const PUT: &str = "    def put(self, x):\n        self.x = x\n\n";
    const HALF: &str = "\n    def half(self):\n        return self.get() / 2\n";

    #[test]
    fn removed_methods_select_their_callers_and_the_class_makers() {
        // A class without bases: the removed method's callers.
        assert_eq!(defs(|t| cut(t, PUT)), Some(vec![15]));
        // With bases: also `__init__`, which every instantiation runs
        // (an abstract method may have lost its override).
        assert_eq!(
            defs(|t| cut(t, HALF)),
            None,
            "Child has bases but no __init__ of its own"
        );
        let with_init = |t: &str| {
            t.replace(
                "class Child(Plain):\n",
                "class Child(Plain):\n    def __init__(self):\n        super().__init__(1)\n\n",
            )
        };
        let old = with_init(OLD);
        let new = cut(&old, HALF);
        let got = changed_functions("m.py", &old, &new).unwrap();
        assert_eq!(got.iter().map(|f| f.def).collect::<Vec<_>>(), vec![23, 29]);
        // A function changed in place and a method removed.
        assert_eq!(
            defs(|t| cut(t, PUT).replace("return Plain(1).get()", "return Plain(2).get()")),
            Some(vec![15, 35])
        );
    }

    #[test]
    fn what_the_class_statement_could_observe_stays_on_the_whole_suite() {
        let eq = "    def __eq__(self, other):\n        return self.x == other.x\n";
        assert_eq!(defs(|t| cut(t, eq)), None, "__eq__ decides hashability");
        // Named by the class body or the module's top level.
        assert_eq!(
            defs(|t| cut(t, PUT).replace("limit = 3", "limit = put")),
            None
        );
        assert_eq!(
            defs(|t| format!("{}\nPUT = Plain.put\n", cut(t, PUT))),
            None
        );
        let alias = |t: &str| {
            t.replace(
                "class Child(Plain):\n",
                "class Child(Plain):\n    alias = Plain.put\n\n",
            )
        };
        assert_eq!(
            defs(|t| cut(&alias(t), PUT)),
            None,
            "another class body names it"
        );
        // Named inside another method's body: that runs only when called.
        assert_eq!(
            defs(|t| cut(t, PUT).replace("return self.x\n", "return self.put\n")),
            Some(vec![12, 15])
        );
        // Class decorators and keywords see the namespace.
        assert_eq!(
            defs(|t| cut(t, PUT).replace("class Plain:", "@register\nclass Plain:")),
            None
        );
        assert_eq!(
            defs(|t| cut(t, PUT).replace("class Plain:", "class Plain(metaclass=Meta):")),
            None
        );
        // Added methods, decorated methods, module-level changes.
        assert_eq!(
            defs(|t| t.replace(PUT, &format!("{PUT}    def more(self):\n        pass\n\n"))),
            None
        );
        let decorated = OLD.replace(PUT, &format!("    @property\n{PUT}"));
        let without = cut(&decorated, &format!("    @property\n{PUT}"));
        assert_eq!(changed_functions("m.py", &decorated, &without), None);
        assert_eq!(
            defs(|t| t.replace("import abc", "import abc as abc_")),
            None
        );
        assert_eq!(defs(|t| format!("{t}\nx = 1\n")), None);
        assert_eq!(defs(|t| t.replace("def get(self):", "def get(self:")), None);
    }

    #[test]
    fn moved_methods_select_the_callers_of_every_method_of_their_class() {
        let moved =
            |t: &str| cut(t, GET).replace("    def __eq__", &format!("{}    def __eq__", GET));
        // Across `limit = 3`, which names none of them.
        let across =
            |t: &str| cut(t, PUT).replace("    limit = 3\n", &format!("{PUT}    limit = 3\n"));
        // The class docstring names `get`; a docstring refers to nothing.
        assert_eq!(defs(moved), Some(vec![9, 12, 15, 18]));
        assert_eq!(defs(across), Some(vec![9, 12, 15, 18]));
        assert_eq!(
            defs(|t| across(t).replace("limit = 3", "limit = get")),
            None
        );
        // Code after the class sees the finished class, whatever its order.
        let after = format!("{OLD}\nGET = Plain.get\n");
        let got = changed_functions("m.py", &after, &moved(&after)).unwrap();
        assert_eq!(
            got.iter().map(|f| f.def).collect::<Vec<_>>(),
            vec![9, 12, 15, 18]
        );
        // A decorated class keeps them all on the whole suite.
        assert_eq!(
            defs(|t| moved(t).replace("class Plain:", "@dataclass\nclass Plain:")),
            None
        );
    }

    #[test]
    fn names_are_whole_words() {
        assert!(mentions("x = put(1)", "put"));
        assert!(mentions("self.put", "put"));
        assert!(!mentions("output = 1", "put"));
        assert!(!mentions("put_all", "put"));
    }
}
