//! Byte-offset helpers over Python source: lines, indentation, operator
//! tokens and precedence-aware parenthesizing, so that edits stay minimal.

use ruff_python_ast::{Expr, OperatorPrecedence, Stmt};
use ruff_text_size::{Ranged, TextRange};
use smith_core::Edit;

/// `start..end` of a ruff range as `usize`s.
pub(crate) fn span(r: &impl Ranged) -> (usize, usize) {
    let range: TextRange = r.range();
    (range.start().to_usize(), range.end().to_usize())
}

/// The source text of a node.
pub(crate) fn text<'s>(src: &'s str, r: &impl Ranged) -> &'s str {
    let (s, e) = span(r);
    &src[s..e]
}

/// Offset of the first byte of the line holding `at`.
pub(crate) fn line_start(src: &str, at: usize) -> usize {
    src[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// Offset of the `\n` ending the line holding `at` (or the end of text).
pub(crate) fn line_end(src: &str, at: usize) -> usize {
    src[at..].find('\n').map_or(src.len(), |i| at + i)
}

/// Whether only spaces and tabs precede `at` on its line.
pub(crate) fn starts_line(src: &str, at: usize) -> bool {
    src[line_start(src, at)..at]
        .bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\x0c'))
}

/// Whether only whitespace or a comment follows `at` on its line.
pub(crate) fn ends_line(src: &str, at: usize) -> bool {
    let rest = src[at..line_end(src, at)].trim_start_matches([' ', '\t', '\r', '\x0c']);
    rest.is_empty() || rest.starts_with('#')
}

/// The indentation of the line holding `at`.
pub(crate) fn indent_at(src: &str, at: usize) -> &str {
    let start = line_start(src, at);
    let line = &src[start..];
    let n = line
        .bytes()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\x0c'))
        .count();
    &line[..n]
}

/// The line terminator the file uses (`\r\n` or `\n`).
pub(crate) fn newline_of(src: &str) -> &'static str {
    match src.find('\n') {
        Some(i) if i > 0 && src.as_bytes()[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

/// Whether a statement sits on lines of its own (no `;` neighbours), so
/// that whole lines can be moved or deleted.
pub(crate) fn owns_lines(src: &str, stmt: &impl Ranged) -> bool {
    let (s, e) = span(stmt);
    starts_line(src, s) && ends_line(src, e)
}

/// The full lines of a statement: from its line start through its
/// terminating newline (included).
pub(crate) fn full_lines(src: &str, stmt: &impl Ranged) -> (usize, usize) {
    let (s, e) = span(stmt);
    let end = line_end(src, e);
    (line_start(src, s), (end + 1).min(src.len()))
}

/// The edit deleting `stmt` from `body`: its lines, or `pass` in its place
/// when it is the only statement (a block cannot be empty).
pub(crate) fn delete_stmt(src: &str, stmt: &Stmt, body: &[Stmt]) -> Option<Edit> {
    let (s, e) = span(stmt);
    if body.len() == 1 {
        return Some(Edit::replacement("pass", s, e));
    }
    if !owns_lines(src, stmt) {
        return None;
    }
    let (ls, le) = full_lines(src, stmt);
    Some(Edit::deletion(ls, le))
}

/// Find operator token `op` between two operands (`gap` = end of the left
/// operand .. start of the right). Parentheses, whitespace, line
/// continuations and comments may surround it.
pub(crate) fn find_token(src: &str, gap: (usize, usize), op: &str) -> Option<(usize, usize)> {
    let bytes = src.as_bytes();
    let mut i = gap.0;
    while i < gap.1 {
        match bytes[i] {
            b' ' | b'\t' | b'\r' | b'\n' | b'\\' | b'(' | b')' | b'\x0c' => i += 1,
            b'#' => i = line_end(src, i),
            _ => break,
        }
    }
    let first = op.split(' ').next().unwrap_or(op);
    if !src[i..gap.1].starts_with(first) {
        return None;
    }
    let mut end = i + first.len();
    if let Some(second) = op.split(' ').nth(1) {
        // `not in` / `is not` may be split by any amount of whitespace.
        while end < gap.1 && matches!(bytes[end], b' ' | b'\t' | b'\\' | b'\r' | b'\n') {
            end += 1;
        }
        if !src[end..gap.1].starts_with(second) {
            return None;
        }
        end += second.len();
    }
    Some((i, end))
}

/// Binding strength of an expression as written without parentheses.
pub(crate) fn precedence(expr: &Expr) -> OperatorPrecedence {
    OperatorPrecedence::from_expr(expr)
}

/// The text of `expr`, parenthesized when it binds looser than `min`.
pub(crate) fn operand_text(src: &str, expr: &Expr, min: OperatorPrecedence) -> String {
    let t = text(src, expr);
    if precedence(expr) < min || t.contains('\n') {
        format!("({t})")
    } else {
        t.to_string()
    }
}

/// An operand as written: its span including any parentheses wrapping it
/// inside `outer` (the parent's range), and its text ready to be moved to a
/// position needing at least precedence `min`.
pub(crate) fn operand(
    src: &str,
    expr: &Expr,
    outer: (usize, usize),
    min: OperatorPrecedence,
) -> ((usize, usize), String) {
    let (mut s, mut e) = span(expr);
    let mut wrapped = false;
    loop {
        let before = src[outer.0..s].trim_end_matches([' ', '\t', '\r', '\n', '\\', '\x0c']);
        let after = src[e..outer.1].trim_start_matches([' ', '\t', '\r', '\n', '\\', '\x0c']);
        if before.ends_with('(') && after.starts_with(')') {
            s = outer.0 + before.len() - 1;
            e = outer.1 - after.len() + 1;
            wrapped = true;
        } else {
            break;
        }
    }
    let text = if wrapped {
        src[s..e].to_string()
    } else {
        operand_text(src, expr, min)
    };
    ((s, e), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_tokens() {
        let src = "a = 1\n    b = (x  # c\n  ) not  in y\n";
        assert_eq!(line_start(src, 8), 6);
        assert_eq!(line_end(src, 8), 21);
        assert_eq!(indent_at(src, 12), "    ");
        assert!(starts_line(src, 10));
        assert!(!starts_line(src, 12));
        let x_end = src.find('x').unwrap() + 1;
        let y = src.rfind('y').unwrap();
        let (s, e) = find_token(src, (x_end, y), "not in").unwrap();
        assert_eq!(&src[s..e], "not  in");
        assert_eq!(find_token(src, (x_end, y), "in"), None);
        assert_eq!(newline_of("a\r\nb"), "\r\n");
    }
}
