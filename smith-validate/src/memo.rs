//! Functions whose results outlive the test that computed them.
//!
//! The coverage map credits a line to the tests that ran it. A memoized
//! function's body runs once per distinct argument in a process: the first
//! test that asks computes the value, and every later test that asks again
//! reads the cached copy without running a line of the body. Those later
//! tests observe a change to the body all the same, yet the map never names
//! them. A patch inside a memoized function therefore runs the whole suite.
//!
//! "Memoized" is read off the old side's syntax, by the idioms Python code
//! uses for it:
//!
//! - a decorator named for caching or memoizing (`functools.cache`,
//!   `lru_cache(...)`, `cached_property`, a project's own `@memoize`);
//! - a cache-named wrapper called on the function (`f = lru_cache()(f)`);
//! - the function's result stored where it outlives the call: an item of a
//!   cache-named container (`self._memo[key] = self._build(key)`,
//!   `_cache.setdefault(key, build(key))`), or a module global assigned
//!   under a `global` statement.
//!
//! Anything nested in such a function counts too: its code runs only when
//! the cache misses.

use std::collections::BTreeSet;

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{Decorator, Expr, Stmt, StmtFunctionDef};
use ruff_text_size::Ranged;

/// Whether any of `lines` (1-based, of `source`) lies in a memoized
/// function. `false` when `source` does not parse: the caller's other rules
/// decide then.
pub(crate) fn touches_memoized(path: &str, source: &str, lines: &BTreeSet<u32>) -> bool {
    let Ok(tree) = smith_core::python::parse(path, source) else {
        return false;
    };
    let mut scan = Scan {
        starts: std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
        functions: Vec::new(),
        stored: BTreeSet::new(),
        globals: Vec::new(),
    };
    for stmt in &tree.syntax().body {
        scan.visit_stmt(stmt);
    }
    scan.functions.iter().any(|f| {
        (f.memoized || scan.stored.contains(&f.name))
            && lines.iter().any(|l| (f.first..=f.last).contains(l))
    })
}

/// A function definition, by lines of the old side.
struct Function {
    name: String,
    first: u32,
    last: u32,
    /// Decorated or wrapped by a cache.
    memoized: bool,
}

struct Scan {
    starts: Vec<usize>,
    functions: Vec<Function>,
    /// Names of functions whose results are stored in a cache.
    stored: BTreeSet<String>,
    /// The names each enclosing function declares `global`.
    globals: Vec<BTreeSet<String>>,
}

impl Scan {
    fn line(&self, offset: usize) -> u32 {
        self.starts.partition_point(|&s| s <= offset) as u32
    }

    fn function(&mut self, f: &StmtFunctionDef) {
        let memoized = f.decorator_list.iter().any(cache_decorator);
        self.functions.push(Function {
            name: f.name.as_str().to_string(),
            first: self.line(f.range().start().to_usize()),
            last: self.line(f.range().end().to_usize().saturating_sub(1)),
            memoized,
        });
        let globals = f
            .body
            .iter()
            .filter_map(|s| match s {
                Stmt::Global(g) => Some(g.names.iter().map(|n| n.as_str().to_string())),
                _ => None,
            })
            .flatten()
            .collect();
        self.globals.push(globals);
    }

    /// Record the functions `value` calls when its result goes to `target`.
    fn assignment(&mut self, target: &Expr, value: &Expr) {
        let lasting = match target {
            Expr::Subscript(s) => cache_named(&s.value),
            Expr::Name(n) => self
                .globals
                .last()
                .is_some_and(|g| g.contains(n.id.as_str())),
            _ => false,
        };
        if lasting {
            self.stored.extend(called(value));
        }
    }
}

impl<'a> Visitor<'a> for Scan {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::FunctionDef(f) => {
                self.function(f);
                visitor::walk_stmt(self, stmt);
                self.globals.pop();
                return;
            }
            Stmt::Assign(a) => {
                for target in &a.targets {
                    self.assignment(target, &a.value);
                }
            }
            Stmt::AnnAssign(a) => {
                if let Some(value) = &a.value {
                    self.assignment(&a.target, value);
                }
            }
            _ => {}
        }
        visitor::walk_stmt(self, stmt);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        if let Expr::Call(call) = expr {
            match &*call.func {
                // `cache.setdefault(key, build(key))`
                Expr::Attribute(a) if a.attr.as_str() == "setdefault" && cache_named(&a.value) => {
                    for arg in call.arguments.args.iter().skip(1) {
                        self.stored.extend(called(arg));
                    }
                }
                // `lru_cache(maxsize=None)(build)`, `memoize(build)`
                func if cache_call(func) => {
                    for arg in call.arguments.args.iter() {
                        if let Expr::Name(n) = arg {
                            self.stored.insert(n.id.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        visitor::walk_expr(self, expr);
    }
}

/// A name that says "cache" or "memo", in any case.
fn says_cache(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("cache") || name.contains("memo")
}

/// The last name of a dotted expression (`functools.lru_cache` → `lru_cache`).
fn last_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Name(n) => Some(n.id.as_str()),
        Expr::Attribute(a) => Some(a.attr.as_str()),
        _ => None,
    }
}

fn cache_named(expr: &Expr) -> bool {
    last_name(expr).is_some_and(says_cache)
}

/// `cache`, `lru_cache(...)`, `functools.lru_cache(maxsize=None)`.
fn cache_call(func: &Expr) -> bool {
    match func {
        Expr::Call(inner) => cache_named(&inner.func),
        other => cache_named(other),
    }
}

fn cache_decorator(d: &Decorator) -> bool {
    cache_call(&d.expression)
}

/// The names of the functions `expr` calls at its top (`f(x)`,
/// `self.build(x)`), where a stored result comes from.
fn called(expr: &Expr) -> Vec<String> {
    match expr {
        Expr::Call(call) => last_name(&call.func)
            .map(|n| vec![n.to_string()])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "\
import functools

_CONFIG = None


@functools.lru_cache(maxsize=None)
def cached(x):
    return x + 1


@cache
def plain_cache(x):
    return x * 2


def wrapped(x):
    return x - 1


wrapped = functools.lru_cache()(wrapped)


class Memoizer:
    def __init__(self):
        self._memoized = {}

    def _build(self, key):
        def inner():
            return key
        return inner()

    def __call__(self, key):
        if key not in self._memoized:
            self._memoized[key] = self._build(key)
        return self._memoized[key]


def load():
    return {'a': 1}


def config():
    global _CONFIG
    if _CONFIG is None:
        _CONFIG = load()
    return _CONFIG


_table = {}


def compute(k):
    return k


def lookup(k):
    return _table_cache.setdefault(k, compute(k))


def ordinary(items):
    out = {}
    for k in items:
        out[k] = compute(k)
    return out
";

    /// Whether a change on the line holding `needle` touches a memoized
    /// function.
    fn at(needle: &str) -> bool {
        let line = SOURCE
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in the source")) as u32
            + 1;
        touches_memoized("m.py", SOURCE, &BTreeSet::from([line]))
    }

    #[test]
    fn cache_decorators_and_wrappers_memoize() {
        assert!(at("return x + 1"));
        assert!(at("return x * 2"));
        assert!(at("return x - 1"));
    }

    #[test]
    fn results_stored_in_a_cache_or_a_global_memoize() {
        assert!(at("return inner()"));
        assert!(at("return key"), "nested in a memoized function");
        assert!(at("return {'a': 1}"));
        assert!(at("def compute"));
    }

    #[test]
    fn ordinary_code_does_not() {
        assert!(!at("if key not in self._memoized"));
        assert!(!at("out[k] = compute(k)"));
        assert!(!at("self._memoized = {}"));
        assert!(!touches_memoized("m.py", "def f(:\n", &BTreeSet::from([1])));
    }
}
