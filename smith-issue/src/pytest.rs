//! What issue writers read from a repository and a pytest run: the source of
//! a test function ([`test_source`]) and the symptom a test's failure output
//! shows ([`Symptom`]). The failure output itself comes from
//! [`smith_core::pytest_log`].

use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;
use smith_core::{join_rel, TestId};

/// The source of a pytest test function, found by node id in a repository:
/// `path/test_x.py::Class::test_y[param]` gives the text of `def test_y`
/// (with its decorators) inside `class Class`. The module's import lines that
/// the function uses come first, so the text reads as a standalone snippet.
/// `None` when the file or the function is not there (doctests, generated
/// tests).
pub fn test_source(repo_root: &Path, test: &TestId) -> Option<String> {
    let mut parts = test.as_str().split("::");
    let file = parts.next()?;
    let path = join_rel(repo_root, file);
    let text = std::fs::read_to_string(path).ok()?;
    let names: Vec<&str> = parts.map(strip_param).collect();
    let (func, classes) = names.split_last()?;
    let def = find_def(&text, classes, func)?;
    let helpers = used_helpers(&text, &def, func);
    let mut code = helpers.join("\n\n");
    if !code.is_empty() {
        code.push_str("\n\n");
    }
    code.push_str(&def);
    let imports = used_imports(&text, &code);
    if imports.is_empty() {
        Some(code)
    } else {
        Some(format!("{}\n\n{code}", imports.join("\n")))
    }
}

/// Plain module-level functions of the test module that `def` calls
/// (`def skus(inventory, query): ...`), so a reproduction can carry them.
/// Tests and fixtures are not helpers.
fn used_helpers(module: &str, def: &str, func: &str) -> Vec<String> {
    let used = identifiers(def);
    let mut out = Vec::new();
    for name in &used {
        if name == func || name.starts_with("test") {
            continue;
        }
        let Some(text) = find_def(module, &[], name) else {
            continue;
        };
        if text.lines().any(|l| l.trim_start().starts_with("@")) {
            continue;
        }
        out.push(text.trim_end().to_string());
    }
    out
}

fn strip_param(name: &str) -> &str {
    name.split('[').next().unwrap_or(name)
}

/// Find `def func` nested in `classes`, return its dedented text with
/// decorators.
fn find_def(text: &str, classes: &[&str], func: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let (mut lo, mut hi, mut indent) = (0usize, lines.len(), 0usize);
    for class in classes {
        let (start, end, inner) = find_block(&lines[lo..hi], indent, &["class"], class)?;
        (lo, hi) = (lo + start + 1, lo + end);
        // Members sit deeper than the class header at `inner`.
        indent = lines[lo..hi]
            .iter()
            .find(|l| !l.trim().is_empty())
            .map_or(inner + 4, |l| indentation(l));
    }
    let (start, end, def_indent) = find_block(&lines[lo..hi], indent, &["def", "async def"], func)?;
    let (start, end) = (lo + start, lo + end);
    // Decorators sit directly above the def at the same indentation.
    let mut first = start;
    while first > lo {
        let prev = lines[first - 1];
        if indentation(prev) == def_indent && prev.trim_start().starts_with('@') {
            first -= 1;
        } else {
            break;
        }
    }
    let mut body: Vec<&str> = lines[first..end].to_vec();
    while body.last().is_some_and(|l| l.trim().is_empty()) {
        body.pop();
    }
    Some(
        body.iter()
            .map(|l| &l[indentation(l).min(def_indent)..])
            .collect::<Vec<_>>()
            .join("\n")
            + "\n",
    )
}

/// The block `keyword name` at exactly `indent` in `lines`: (header index,
/// end index exclusive, header indentation).
fn find_block(
    lines: &[&str],
    indent: usize,
    keywords: &[&str],
    name: &str,
) -> Option<(usize, usize, usize)> {
    let start = lines.iter().position(|l| {
        indentation(l) == indent
            && keywords.iter().any(|k| {
                l.trim_start()
                    .strip_prefix(k)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .map(str::trim_start)
                    .and_then(|rest| rest.strip_prefix(name))
                    .is_some_and(|rest| rest.starts_with(['(', ':']))
            })
    })?;
    Some((start, block_end(lines, start), indent))
}

/// Index after the last line of the block headed at `start`: the first
/// later non-blank line indented no deeper than the header, outside brackets
/// and triple-quoted strings.
fn block_end(lines: &[&str], start: usize) -> usize {
    let header = indentation(lines[start]);
    let mut depth = 0i32;
    let mut in_string: Option<&str> = None;
    let mut i = start;
    // The header itself may span lines (long signatures).
    loop {
        scan_line(lines[i], &mut depth, &mut in_string);
        i += 1;
        if i >= lines.len() || (depth <= 0 && in_string.is_none()) {
            break;
        }
    }
    while i < lines.len() {
        let line = lines[i];
        let open = depth > 0 || in_string.is_some();
        if !open && !line.trim().is_empty() && indentation(line) <= header {
            return i;
        }
        scan_line(line, &mut depth, &mut in_string);
        i += 1;
    }
    lines.len()
}

/// Track bracket depth and triple-quoted strings across one line.
///
/// Works on bytes: every delimiter it looks for is ASCII, and no byte of a
/// multi-byte UTF-8 character is ASCII, so non-ASCII text (box-drawing
/// characters, arrows, non-ASCII identifiers) is skipped over without ever
/// slicing the line inside a character.
fn scan_line(line: &str, depth: &mut i32, in_string: &mut Option<&str>) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if let Some(delim) = *in_string {
            if bytes[i..].starts_with(delim.as_bytes()) {
                *in_string = None;
                i += 3;
            } else {
                i += 1;
            }
            continue;
        }
        let rest = &bytes[i..];
        if rest.starts_with(b"\"\"\"") || rest.starts_with(b"'''") {
            *in_string = Some(if rest[0] == b'"' { "\"\"\"" } else { "'''" });
            i += 3;
            continue;
        }
        match bytes[i] {
            b'#' => return,
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' | b'[' | b'{' => *depth += 1,
            b')' | b']' | b'}' => *depth -= 1,
            _ => {}
        }
        i += 1;
    }
}

/// Bytes of Python indentation (spaces, tabs, form feeds) at the start of
/// `line`. Only ASCII counts, as for Python itself; a prefix of this length
/// always ends on a character boundary, so slicing any line at the smaller
/// of two indentations is safe.
pub(crate) fn indentation(line: &str) -> usize {
    line.bytes()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\x0c'))
        .count()
}

/// Top-level import statements of `module` that bind a name `code` uses,
/// reduced to the names used (`from m import a, b` becomes `from m import a`
/// when only `a` is used).
pub(crate) fn used_imports(module: &str, code: &str) -> Vec<String> {
    let used = identifiers(code);
    parse_imports(module)
        .into_iter()
        .filter_map(|imp| imp.restricted_to(&used))
        .collect()
}

/// One import statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Import {
    /// `import a.b as c` (each name with its optional alias).
    Plain(Vec<(String, Option<String>)>),
    /// `from m import a as b, c`.
    From(String, Vec<(String, Option<String>)>),
}

impl Import {
    fn bound(name: &(String, Option<String>), plain: bool) -> String {
        match &name.1 {
            Some(alias) => alias.clone(),
            None if plain => name.0.split('.').next().unwrap_or(&name.0).to_string(),
            None => name.0.clone(),
        }
    }

    /// This import keeping only the names in `used`; `None` if none is used.
    pub(crate) fn restricted_to(&self, used: &[String]) -> Option<String> {
        let (names, plain) = match self {
            Import::Plain(n) => (n, true),
            Import::From(_, n) => (n, false),
        };
        let kept: Vec<String> = names
            .iter()
            .filter(|n| n.0 == "*" || used.contains(&Self::bound(n, plain)))
            .map(|(name, alias)| match alias {
                Some(a) => format!("{name} as {a}"),
                None => name.clone(),
            })
            .collect();
        if kept.is_empty() {
            return None;
        }
        Some(match self {
            Import::Plain(_) => format!("import {}", kept.join(", ")),
            Import::From(module, _) => format!("from {module} import {}", kept.join(", ")),
        })
    }
}

/// The module-level imports of a Python file (also those split over lines
/// with parentheses).
pub(crate) fn parse_imports(module: &str) -> Vec<Import> {
    let mut out = Vec::new();
    let mut lines = module.lines();
    while let Some(line) = lines.next() {
        if indentation(line) != 0 {
            continue;
        }
        let mut stmt = line.split('#').next().unwrap_or("").trim().to_string();
        if stmt.contains('(') && !stmt.contains(')') {
            for more in lines.by_ref() {
                stmt.push(' ');
                stmt.push_str(more.split('#').next().unwrap_or("").trim());
                if more.contains(')') {
                    break;
                }
            }
        }
        let names = |list: &str| -> Vec<(String, Option<String>)> {
            list.trim_matches(|c| c == '(' || c == ')' || c == ' ')
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| match n.split_once(" as ") {
                    Some((name, alias)) => {
                        (name.trim().to_string(), Some(alias.trim().to_string()))
                    }
                    None => (n.to_string(), None),
                })
                .collect()
        };
        if let Some(rest) = stmt.strip_prefix("import ") {
            out.push(Import::Plain(names(rest)));
        } else if let Some(rest) = stmt.strip_prefix("from ") {
            if let Some((module, list)) = rest.split_once(" import ") {
                out.push(Import::From(module.trim().to_string(), names(list)));
            }
        }
    }
    out
}

/// Identifiers used in `code`, outside string literals and comments.
pub(crate) fn identifiers(code: &str) -> Vec<String> {
    static IDENT: OnceLock<Regex> = OnceLock::new();
    let ident = IDENT.get_or_init(|| Regex::new(r"[A-Za-z_][A-Za-z0-9_]*").expect("valid regex"));
    let mut out: Vec<String> = Vec::new();
    for line in code.lines() {
        let bare = strip_strings(line);
        for m in ident.find_iter(&bare) {
            let word = m.as_str();
            // An attribute (`x.name`) is not a binding.
            if bare[..m.start()].ends_with('.') {
                continue;
            }
            if !out.iter().any(|w| w == word) {
                out.push(word.to_string());
            }
        }
    }
    out
}

/// `line` with string literal contents and comments blanked.
pub(crate) fn strip_strings(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in line.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                    out.push(c);
                }
            }
            None => {
                if c == '#' {
                    break;
                }
                if c == '"' || c == '\'' {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

/// What a failing test's output shows a user: the exception, the assertion,
/// the values compared, the failing line of the test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Symptom {
    /// Exception type, e.g. `ZeroDivisionError`, `AssertionError`.
    pub exception: Option<String>,
    /// Exception message (for assertions: the assertion's own message).
    pub message: Option<String>,
    /// The assertion as pytest explains it, e.g. `assert -1 == 3`.
    pub assertion: Option<String>,
    /// The value the test got, when an `==` assertion shows it.
    pub actual: Option<String>,
    /// The value the test expected, when an `==` assertion shows it.
    pub expected: Option<String>,
    /// The call that produced the actual value (`add(1, 2)`), from pytest's
    /// `where` explanation.
    pub call: Option<String>,
    /// The statement of the test that failed (`assert add(1, 2) == 3`).
    pub failing_line: Option<String>,
    /// Test arguments pytest showed (`a = 1`), in order.
    pub arguments: Vec<(String, String)>,
    /// The `E   ` lines of the first failure, verbatim.
    pub error_lines: Vec<String>,
}

impl Symptom {
    /// Read the symptom from one test's failure output (from
    /// [`test_failure`](smith_core::pytest_log::test_failure), or any text
    /// with pytest's `E   ` lines).
    pub fn parse(output: &str) -> Symptom {
        let mut s = Symptom::default();
        let lines: Vec<&str> = output.lines().collect();
        s.failing_line = failing_line(&lines);
        s.arguments = split_arguments(&argument_lines(&lines).join(", "));
        let mut in_first = false;
        for line in &lines {
            if line.starts_with('E')
                && (line.len() == 1 || line[1..].starts_with(char::is_whitespace))
            {
                in_first = true;
                s.read_error_line(line);
            } else if in_first && !line.trim().is_empty() {
                // Only the first block of `E` lines describes the failure.
                break;
            }
        }
        s
    }

    /// Take in one `E` line of the failure: the first assertion and the
    /// values it compares, the call of the first `where` explanation, the
    /// first exception.
    fn read_error_line(&mut self, line: &str) {
        static EXC: OnceLock<Regex> = OnceLock::new();
        static ASSERT: OnceLock<Regex> = OnceLock::new();
        static EQ: OnceLock<Regex> = OnceLock::new();
        static WHERE: OnceLock<Regex> = OnceLock::new();
        let exc = EXC.get_or_init(|| {
            Regex::new(r"^E\s+(?P<ty>[A-Za-z_][\w.]*)(?::\s*(?P<msg>.*))?$").expect("valid regex")
        });
        let assert_re = ASSERT.get_or_init(|| {
            Regex::new(r"^E\s+(?:AssertionError:\s*)?(?P<a>assert\s.+)$").expect("valid regex")
        });
        let eq = EQ
            .get_or_init(|| Regex::new(r"^assert (?P<l>.+?) == (?P<r>.+)$").expect("valid regex"));
        let where_re = WHERE.get_or_init(|| {
            Regex::new(r"^E\s+\+\s+where (?P<v>.+?) = (?P<call>.+)$").expect("valid regex")
        });

        self.error_lines.push(line.trim_end().to_string());
        if self.assertion.is_none() {
            if let Some(caps) = assert_re.captures(line) {
                let a = caps["a"].trim().to_string();
                if let Some(eqc) = eq.captures(&a) {
                    self.actual = Some(eqc["l"].trim().to_string());
                    self.expected = Some(eqc["r"].trim().to_string());
                }
                self.assertion = Some(a);
                self.exception
                    .get_or_insert_with(|| "AssertionError".into());
                return;
            }
        }
        if let Some(caps) = where_re.captures(line) {
            if self.call.is_none() {
                let (v, call) = (caps["v"].trim(), caps["call"].trim());
                self.call = Some(call.to_string());
                // `assert expected == f()` puts the value on the right.
                if self.expected.as_deref() == Some(v) && self.actual.as_deref() != Some(v) {
                    std::mem::swap(&mut self.actual, &mut self.expected);
                }
            }
            return;
        }
        if self.exception.is_none() {
            if let Some(caps) = exc.captures(line) {
                let ty = caps["ty"].to_string();
                let is_type = ty.chars().next().is_some_and(char::is_uppercase)
                    && caps.name("msg").is_some()
                    || ty.ends_with("Error")
                    || ty.ends_with("Exception");
                if is_type {
                    self.message = caps.name("msg").map(|m| m.as_str().trim().to_string());
                    self.exception = Some(ty);
                }
            }
        }
    }
}

/// The failing line of the test: the first `>` line (long tracebacks) or
/// the line under the first `path:N: in name` (short ones).
fn failing_line(lines: &[&str]) -> Option<String> {
    static SHORT_LOC: OnceLock<Regex> = OnceLock::new();
    let short_loc =
        SHORT_LOC.get_or_init(|| Regex::new(r"^\S+:\d+: in \S+$").expect("valid regex"));
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix('>') {
            return Some(rest.trim().to_string());
        }
        if short_loc.is_match(line) {
            return lines.get(i + 1).map(|next| next.trim().to_string());
        }
    }
    None
}

/// The lines of the test's arguments: pytest prints `name = repr, ...`
/// (wrapped over lines when long) between the section header and the
/// first source line of the first frame.
fn argument_lines<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    static LONG_LOC: OnceLock<Regex> = OnceLock::new();
    let long_loc = LONG_LOC.get_or_init(|| Regex::new(r"^\S+:\d+:( \S+)?$").expect("valid regex"));
    let mut argument_lines: Vec<&str> = Vec::new();
    for line in lines.iter().skip_while(|l| l.starts_with("___")) {
        if line.starts_with("    ") || line.starts_with('>') || long_loc.is_match(line) {
            break;
        }
        if line.contains(" = ") && !line.starts_with('E') {
            argument_lines.push(line.trim());
        } else if !argument_lines.is_empty() {
            break;
        }
    }
    argument_lines
}

/// Split pytest's `a = 1, b = 'x, y', c = [1]` into pairs, splitting only
/// where a new `name = ` starts.
fn split_arguments(line: &str) -> Vec<(String, String)> {
    static NAME: OnceLock<Regex> = OnceLock::new();
    let name = NAME
        .get_or_init(|| Regex::new(r"(?:^|, )([A-Za-z_][A-Za-z0-9_]*) = ").expect("valid regex"));
    let starts: Vec<(usize, usize, String)> = name
        .captures_iter(line)
        .filter_map(|c| {
            let whole = c.get(0)?;
            Some((whole.start(), whole.end(), c[1].to_string()))
        })
        .collect();
    let mut out = Vec::new();
    for (i, (_, value_start, n)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(line.len(), |s| s.0);
        out.push((n.clone(), line[*value_start..end].trim().to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_at_names_only() {
        assert_eq!(
            split_arguments("a = 1, b = 'x, y', want = [1, 2]"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "'x, y'".into()),
                ("want".into(), "[1, 2]".into())
            ]
        );
    }

    #[test]
    fn imports_are_reduced_to_used_names() {
        let module =
            "import os\nimport numpy as np\nfrom calc import (\n    add,\n    div,  # comment\n)\n";
        assert_eq!(
            used_imports(module, "x = np.zeros(add(1, 2))"),
            vec![
                "import numpy as np".to_string(),
                "from calc import add".into()
            ]
        );
    }

    #[test]
    fn identifiers_skip_strings_and_attributes() {
        assert_eq!(identifiers("s.push(x) # y\nz = 'w'"), vec!["s", "x", "z"]);
    }
}
