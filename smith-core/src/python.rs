//! Parsing Python with ruff, with the guards that keep a bad file from
//! taking the run down, and AST comparison that ignores positions.
//!
//! Behind the `python` feature (which brings in ruff's parser): smith-mutate
//! parses files to find entities and check mutations, smith-validate parses
//! a candidate's file before and after to see which definitions it changed.
//! Neither depends on the other for it.

use std::path::PathBuf;

use crate::{Error, Result};
use ruff_python_ast::comparable::ComparableModModule;
use ruff_python_ast::ModModule;
use ruff_python_parser::{parse_module, Parsed};

/// Files larger than this are skipped: generated tables and vendored bundles
/// make poor bug sites, and the cap bounds memory per worker.
pub const MAX_FILE_BYTES: usize = 4 << 20;

/// Deepest bracket nesting accepted. AST walks recurse per level, so absurd
/// nesting (machine-generated code) is refused instead of risking the stack.
pub const MAX_NESTING: usize = 200;

/// Longest run of binary/boolean operators on one line. Operator chains
/// become left-deep trees whose depth is the chain length.
pub const MAX_OPERATOR_CHAIN: usize = 3000;

/// Why a file cannot be used, or `None` if it may be parsed.
pub fn precheck(text: &str) -> Option<String> {
    if text.len() > MAX_FILE_BYTES {
        return Some(format!(
            "file is {} bytes, larger than the {} byte limit",
            text.len(),
            MAX_FILE_BYTES
        ));
    }
    let mut depth = 0usize;
    let mut max_depth = 0usize;
    let mut ops_on_line = 0usize;
    let mut max_ops = 0usize;
    for b in text.bytes() {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                max_depth = max_depth.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'+' | b'-' | b'*' | b'/' | b'%' | b'&' | b'|' | b'^' => ops_on_line += 1,
            b'\n' => {
                max_ops = max_ops.max(ops_on_line);
                ops_on_line = 0;
            }
            _ => {}
        }
    }
    max_ops = max_ops.max(ops_on_line);
    if max_depth > MAX_NESTING {
        return Some(format!(
            "brackets nest {max_depth} deep, more than the limit of {MAX_NESTING}"
        ));
    }
    if max_ops > MAX_OPERATOR_CHAIN {
        return Some(format!(
            "a line holds {max_ops} operators, more than the limit of {MAX_OPERATOR_CHAIN}"
        ));
    }
    None
}

/// Parse a module, turning refusals and syntax errors into [`Error::Parse`]
/// naming `path`.
pub fn parse(path: &str, text: &str) -> Result<Parsed<ModModule>> {
    if let Some(reason) = precheck(text) {
        return Err(Error::Parse {
            path: PathBuf::from(path),
            message: reason,
        });
    }
    parse_module(text).map_err(|e| Error::Parse {
        path: PathBuf::from(path),
        message: e.to_string(),
    })
}

/// Whether `text` parses and its AST differs from `original` (positions,
/// parentheses and comments ignored). Mutations failing this are dropped.
pub fn changes_ast(original: &ModModule, text: &str) -> AstChange {
    if precheck(text).is_some() {
        return AstChange::Unparsable;
    }
    match parse_module(text) {
        Err(_) => AstChange::Unparsable,
        Ok(parsed) => {
            if ComparableModModule::from(original) == ComparableModModule::from(parsed.syntax()) {
                AstChange::Unchanged
            } else {
                AstChange::Changed
            }
        }
    }
}

/// What re-parsing a mutated file showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AstChange {
    /// Parses and differs: a real mutation.
    Changed,
    /// Parses to the same AST: the edit changed only formatting.
    Unchanged,
    /// Does not parse.
    Unparsable,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ast_comparison_ignores_formatting() {
        let original = parse("m.py", "x = a + b  # sum\n").unwrap();
        let m = original.syntax();
        assert_eq!(changes_ast(m, "x = (a + b)\n"), AstChange::Unchanged);
        assert_eq!(changes_ast(m, "x = a - b\n"), AstChange::Changed);
        assert_eq!(changes_ast(m, "x = a +\n"), AstChange::Unparsable);
    }

    #[test]
    fn refuses_absurd_files() {
        assert!(precheck(&"(".repeat(500)).is_some());
        assert!(precheck(&format!("x = {}1\n", "1+".repeat(5000))).is_some());
        assert!(precheck(&"x = 1\n".repeat(10)).is_none());
        let err = parse("bad.py", "def f(:\n").unwrap_err();
        assert!(err.to_string().contains("bad.py"), "{err}");
    }
}
