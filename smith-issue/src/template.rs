//! The offline issue writer: a GitHub-style issue assembled from what the
//! failing tests show, phrased by seed, checked against the leak rules
//! before it is returned.

use smith_core::rng::Rng;
use smith_core::{stable_hash, FailingTest, IssueContext, IssueWriter, Result, TestId};

use crate::leak::LeakChecker;
use crate::pytest::{identifiers, indentation, parse_imports, strip_strings, Symptom};

/// How many failing test names a statement lists.
const LISTED_TESTS: usize = 4;
/// How many `E   ` lines of output a statement pastes.
const PASTED_ERROR_LINES: usize = 8;
/// Longest reproduction snippet, in lines.
const MAX_SNIPPET_LINES: usize = 25;

/// Writes problem statements without a language model: the symptom (wrong
/// value or exception, expected vs actual) and a reproduction derived from
/// one failing test's source. Like SWE-bench's statements, they name no
/// test ids (the tests that judge a task are hidden from the solver); with
/// [`TemplateWriter::listing_failing_tests`] they end with a few. Phrasing is
/// chosen by [`IssueContext::seed`] (mixed with the candidate id, so tasks
/// sharing a seed still read differently); the same context always gives the
/// same statement. It never quotes the patch: every draft goes through the
/// leak check, and snippets that would leak are left out.
///
/// ```
/// use smith_core::{Candidate, FailingTest, IssueContext, IssueWriter, Patch, TestId};
/// use smith_issue::TemplateWriter;
///
/// let candidate = Candidate::new(&smith_core::RepoRef::new("o/calc", "abc"), "op", vec![], "", Patch::from_text(""));
/// let failing = vec![FailingTest {
///     id: TestId::from("tests/test_calc.py::test_add"),
///     source: Some("from calc import add\n\ndef test_add():\n    assert add(1, 2) == 3\n".into()),
///     output: "E       assert -1 == 3\nE        +  where -1 = add(1, 2)\n".into(),
/// }];
/// let context = IssueContext { candidate, failing, original_code: vec![], seed: 7 };
/// let statement = TemplateWriter::new().write(&context).unwrap();
/// assert!(statement.contains("add(1, 2)"));
/// assert!(!statement.contains("tests/test_calc.py::test_add"));
///
/// let listed = TemplateWriter::new().listing_failing_tests(true).write(&context).unwrap();
/// assert!(listed.contains("- `tests/test_calc.py::test_add`"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct TemplateWriter {
    list_failing_tests: bool,
}

impl TemplateWriter {
    /// A template writer whose statements name no test ids.
    pub fn new() -> Self {
        TemplateWriter::default()
    }

    /// Whether statements end with a list of (at most four) failing test
    /// ids. Off by default: SWE-bench's statements name none, and exported
    /// task branches remove the failing tests' files.
    pub fn listing_failing_tests(mut self, list: bool) -> Self {
        self.list_failing_tests = list;
        self
    }
}

impl IssueWriter for TemplateWriter {
    fn name(&self) -> &str {
        "template"
    }

    fn write(&self, context: &IssueContext) -> Result<String> {
        let checker = LeakChecker::new(context);
        let mut rng =
            Rng::new(context.seed ^ stable_hash(&[context.candidate.id.as_bytes()]) as u64);
        let tests: Vec<&TestId> = if self.list_failing_tests {
            context.failing.iter().map(|t| &t.id).collect()
        } else {
            Vec::new()
        };

        // Tests that show something are better subjects; the seed picks
        // among them so retries can describe the bug through another test.
        let mut order: Vec<&FailingTest> = context.failing.iter().collect();
        order.sort_by_key(|t| std::cmp::Reverse(informativeness(t)));
        let best = order.first().map_or(0, |t| informativeness(t));
        let top = order
            .iter()
            .take_while(|t| informativeness(t) == best)
            .count();
        if top > 1 {
            order[..top].rotate_left(rng.below(top));
        }

        let phrasing = Phrasing::pick(&mut rng);
        let mut last = None;
        for test in order.iter().take(4) {
            for detail in [Detail::Full, Detail::NoSnippet, Detail::NoOutput] {
                let facts = Facts::gather(test, &checker, detail);
                let statement = compose(&facts, &tests, &phrasing);
                if checker.check(&statement).is_none() {
                    return Ok(statement);
                }
                tracing::debug!(candidate = %context.candidate.id, test = %test.id, ?detail, "template draft leaked; trimming");
                last = Some(statement);
            }
        }
        let minimal = compose(&Facts::bare(order.first().copied()), &tests, &phrasing);
        if checker.check(&minimal).is_none() || last.is_none() {
            return Ok(minimal);
        }
        Ok(last.unwrap_or(minimal))
    }
}

/// How much of a failing test a draft uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    Full,
    NoSnippet,
    NoOutput,
}

fn informativeness(test: &FailingTest) -> u8 {
    let symptom = Symptom::parse(&test.output);
    u8::from(test.source.is_some())
        + u8::from(symptom.exception.is_some())
        + u8::from(symptom.expected.is_some())
}

/// What a statement can say about one failing test.
#[derive(Debug, Default)]
struct Facts {
    test: Option<TestId>,
    subject: String,
    call: Option<String>,
    symptom: Symptom,
    snippet: Option<String>,
    error_lines: Vec<String>,
}

impl Facts {
    fn gather(test: &FailingTest, checker: &LeakChecker, detail: Detail) -> Facts {
        let mut symptom = Symptom::parse(&test.output);
        let source = test.source.as_deref().unwrap_or("");
        // Under `with pytest.raises(...)` the call that should raise is the
        // next statement of the test.
        if let Some(line) = symptom.failing_line.clone() {
            if line.starts_with("with pytest.raises") || line.starts_with("with raises") {
                symptom.failing_line = line_after(source, &line).or(Some(line));
            }
        }
        let call = concrete_call(&symptom);
        let subject = call
            .as_deref()
            .and_then(callee)
            .map(|name| qualify(&name, source))
            .unwrap_or_else(|| humanize(&test.id));
        let snippet = match (detail, &test.source) {
            (Detail::Full, Some(source)) => reproduction(source, &symptom, checker),
            _ => None,
        };
        let error_lines = if detail == Detail::NoOutput {
            Vec::new()
        } else {
            symptom
                .error_lines
                .iter()
                .take(PASTED_ERROR_LINES)
                .map(|l| without_addresses(l))
                .collect()
        };
        Facts {
            test: Some(test.id.clone()),
            subject,
            call,
            symptom: if detail == Detail::NoOutput {
                Symptom::default()
            } else {
                symptom
            },
            snippet,
            error_lines,
        }
    }

    fn bare(test: Option<&FailingTest>) -> Facts {
        Facts {
            test: test.map(|t| t.id.clone()),
            subject: test.map_or_else(|| "the test suite".into(), |t| humanize(&t.id)),
            ..Facts::default()
        }
    }
}

/// `<calc.Stack object at 0x7f..>` becomes `<calc.Stack object>`: addresses
/// differ on every run and mean nothing to a reader.
fn without_addresses(line: &str) -> String {
    static ADDRESS: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    ADDRESS
        .get_or_init(|| regex::Regex::new(r" at 0x[0-9a-fA-F]+>").expect("valid regex"))
        .replace_all(line, ">")
        .into_owned()
}

/// The first non-blank line after `line` in `source`, trimmed.
fn line_after(source: &str, line: &str) -> Option<String> {
    let mut lines = source.lines().skip_while(|l| l.trim() != line);
    lines.next()?;
    lines
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}

/// `s.pop` becomes `Stack.pop` when the test says `s = Stack(...)`.
fn qualify(name: &str, source: &str) -> String {
    let Some((receiver, method)) = name.rsplit_once('.') else {
        return name.to_string();
    };
    let binding = format!("{receiver} = ");
    source
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&binding))
        .find_map(|rhs| {
            let class = rhs.split('(').next()?.trim();
            let head = class.rsplit('.').next()?;
            (rhs.contains('(') && head.chars().next()?.is_uppercase())
                .then(|| format!("{head}.{method}"))
        })
        .unwrap_or_else(|| name.to_string())
}

/// The call a user would make: pytest's `where` explanation has it with
/// concrete arguments; otherwise the call in the failing line.
fn concrete_call(symptom: &Symptom) -> Option<String> {
    if let Some(call) = &symptom.call {
        // pytest drops the receiver of a method (`where 1 = pop()`); the
        // failing line has it.
        let receiverless = callee(call).is_some_and(|name| {
            !name.contains('.')
                && symptom
                    .failing_line
                    .as_deref()
                    .is_some_and(|l| l.contains(&format!(".{name}(")))
        });
        if call.contains('(') && !call.contains('<') && call.len() <= 80 && !receiverless {
            return Some(call.clone());
        }
    }
    let line = symptom.failing_line.as_deref()?;
    let line = line.strip_prefix("assert ").unwrap_or(line);
    let line = line.split(", \"").next().unwrap_or(line);
    let sides: Vec<&str> = line.splitn(2, " == ").map(str::trim).collect();
    // A call, or else an attribute of an object the test built
    // (`order.total`).
    let side = sides.iter().find(|s| s.contains('(')).or_else(|| {
        sides.iter().find(|s| {
            s.contains('.')
                && s.chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                && s.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        })
    })?;
    (side.len() <= 80).then(|| side.to_string())
}

/// `calc.add(1, 2)` gives `calc.add`; `"-".join(x)` gives `join`;
/// `order.total` stays itself.
fn callee(call: &str) -> Option<String> {
    let head = &call[..call.find('(').unwrap_or(call.len())];
    let name: String = head
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let name = name.trim_matches('.');
    (!name.is_empty()).then(|| name.to_string())
}

/// `tests/test_calc.py::TestStack::test_lifo[1]` gives `Stack lifo`.
fn humanize(test: &TestId) -> String {
    let last = test.as_str().rsplit("::").next().unwrap_or(test.as_str());
    let last = last.split('[').next().unwrap_or(last);
    let words = last.strip_prefix("test_").unwrap_or(last).replace('_', " ");
    if words.trim().is_empty() {
        test.as_str().to_string()
    } else {
        words
    }
}

// ---------------------------------------------------------------- snippet

/// A reproduction from a test's source: the imports and setup statements the
/// failing statement needs, then the failing statement itself. `None` when
/// the failing statement cannot be found or any line would leak.
fn reproduction(source: &str, symptom: &Symptom, checker: &LeakChecker) -> Option<String> {
    let lines: Vec<&str> = source.lines().collect();
    let def_at = test_def(&lines)?;
    let module_head = lines[..def_at].join("\n");
    let (params, body_start) = signature(&lines, def_at);
    let units = body_statements(&lines[body_start..], indentation(lines[def_at]))?;

    let target = symptom
        .failing_line
        .as_deref()
        .and_then(|f| units.iter().position(|u| u.iter().any(|l| l.trim() == f)))
        .or_else(|| {
            units.iter().rposition(|u| {
                u[0].starts_with("assert ") || u[0].starts_with("with pytest.raises")
            })
        })?;
    let (needed, code) = needed_statements(&units, target);
    let setup = parameter_setup(&params, &needed, symptom);

    let mut used = identifiers(&format!("{}\n{}", setup.join("\n"), code.join("\n")));
    let helpers: Vec<String> = top_level_defs(&module_head)
        .into_iter()
        .filter(|(name, _)| used.contains(name))
        .map(|(_, text)| text)
        .collect();
    for id in identifiers(&helpers.join("\n")) {
        if !used.contains(&id) {
            used.push(id);
        }
    }
    let imports: Vec<String> = parse_imports(&module_head)
        .into_iter()
        .filter_map(|imp| imp.restricted_to(&used))
        .collect();

    let mut out: Vec<String> = Vec::new();
    out.extend(imports.iter().cloned());
    if !imports.is_empty() {
        out.push(String::new());
    }
    for helper in helpers {
        out.extend(helper.lines().map(str::to_string));
        out.push(String::new());
    }
    out.extend(setup);
    out.extend(code);
    if out.len() > MAX_SNIPPET_LINES || out.iter().any(|l| checker.line_leaks(l)) {
        return None;
    }
    Some(out.join("\n"))
}

/// The line of the test's `def`: the last top-level one (helper functions
/// come before the test), else the first indented one.
fn test_def(lines: &[&str]) -> Option<usize> {
    lines
        .iter()
        .rposition(|l| l.starts_with("def ") || l.starts_with("async def "))
        .or_else(|| {
            lines.iter().position(|l| {
                let t = l.trim_start();
                t.starts_with("def ") || t.starts_with("async def ")
            })
        })
}

/// The parameters of the function defined at line `def_at` (without
/// `self`, `cls` and starred ones), and the line its body starts at.
fn signature(lines: &[&str], def_at: usize) -> (Vec<String>, usize) {
    // The signature may span lines; the body starts after the `:` that
    // closes it.
    let mut signature = String::new();
    let mut body_start = def_at;
    for (i, line) in lines.iter().enumerate().skip(def_at) {
        signature.push_str(line.trim());
        signature.push(' ');
        body_start = i + 1;
        if signature.matches('(').count() <= signature.matches(')').count()
            && line.trim_end().ends_with(':')
        {
            break;
        }
    }
    let params: Vec<String> = signature
        .split_once('(')
        .and_then(|(_, rest)| rest.rsplit_once(')'))
        .map(|(list, _)| {
            list.split(',')
                .map(|p| p.split([':', '=']).next().unwrap_or("").trim().to_string())
                .filter(|p| !p.is_empty() && p != "self" && p != "cls" && !p.starts_with('*'))
                .collect()
        })
        .unwrap_or_default();
    (params, body_start)
}

/// The statements of a function body (the lines from its start, indented
/// deeper than `def_indent`), dedented, without a docstring; `None` when
/// there are none.
fn body_statements(from_body: &[&str], def_indent: usize) -> Option<Vec<Vec<String>>> {
    let body: Vec<&str> = from_body
        .iter()
        .copied()
        .take_while(|l| l.trim().is_empty() || indentation(l) > def_indent)
        .collect();
    let body_indent = body
        .iter()
        .find(|l| !l.trim().is_empty())
        .map(|l| indentation(l))?;
    let dedented: Vec<String> = body
        .iter()
        .map(|l| l[indentation(l).min(body_indent)..].trim_end().to_string())
        .collect();
    let mut units = statements(&dedented);
    if units.first().is_some_and(|u| {
        u[0].starts_with("\"\"\"") || u[0].starts_with("'''") || u[0].starts_with("r\"\"\"")
    }) {
        units.remove(0);
    }
    (!units.is_empty()).then_some(units)
}

/// The names the statement `units[target]` needs and the code that gives
/// them: walking back from it, the statements that bind or mutate a needed
/// name (whose own names are then needed too), in order, then the target.
fn needed_statements(units: &[Vec<String>], target: usize) -> (Vec<String>, Vec<String>) {
    let mut needed = identifiers(&units[target].join("\n"));
    let mut keep = vec![target];
    for i in (0..target).rev() {
        let unit = &units[i];
        let first = &unit[0];
        let binds = bound_names(first);
        let mutates = needed.iter().any(|n| first.starts_with(&format!("{n}.")));
        if binds.iter().any(|b| needed.contains(b)) || mutates {
            keep.push(i);
            for id in identifiers(&unit.join("\n")) {
                if !needed.contains(&id) {
                    needed.push(id);
                }
            }
        }
    }
    keep.sort_unstable();
    let mut code: Vec<String> = Vec::new();
    for i in keep {
        code.extend(units[i].iter().cloned());
    }
    (needed, code)
}

/// Parametrized arguments among the `needed` names become assignments, when
/// pytest showed their values and the values are plain literals; others
/// are named as fixtures.
fn parameter_setup(params: &[String], needed: &[String], symptom: &Symptom) -> Vec<String> {
    let mut setup: Vec<String> = Vec::new();
    for param in params {
        if !needed.contains(param) {
            continue;
        }
        match symptom.arguments.iter().find(|(n, _)| n == param) {
            Some((_, value)) if !value.contains('<') && value.len() <= 60 => {
                setup.push(format!("{param} = {value}"));
            }
            // A fixture: say where the name comes from rather than leave the
            // reader guessing.
            _ => setup.push(format!("# `{param}` is a fixture of the test suite")),
        }
    }
    setup
}

/// The top-level functions in `code` (helpers that `test_source` put before
/// the test), by name, each with its text.
fn top_level_defs(code: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(rest) = lines[i].strip_prefix("def ") else {
            i += 1;
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let end = (i + 1..lines.len())
            .find(|&j| !lines[j].trim().is_empty() && indentation(lines[j]) == 0)
            .unwrap_or(lines.len());
        let mut text: Vec<&str> = lines[i..end].to_vec();
        while text.last().is_some_and(|l| l.trim().is_empty()) {
            text.pop();
        }
        out.push((name, text.join("\n")));
        i = end;
    }
    out
}

/// Group dedented body lines into top-level statements: a statement is its
/// first line plus continuation lines (open brackets) and its indented block.
fn statements(lines: &[String]) -> Vec<Vec<String>> {
    let mut units: Vec<Vec<String>> = Vec::new();
    let mut depth = 0i32;
    for line in lines {
        let continuing = depth > 0 || (!line.trim().is_empty() && indentation(line) > 0);
        if line.trim().is_empty() {
            continue;
        }
        if continuing {
            if let Some(last) = units.last_mut() {
                last.push(line.clone());
            }
        } else {
            units.push(vec![line.clone()]);
        }
        for c in strip_strings(line).chars() {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                _ => {}
            }
        }
        depth = depth.max(0);
    }
    units
}

/// Names a statement binds: `a, b = ...`, `x += 1`, `with f() as x`,
/// `for x in ...`.
fn bound_names(first: &str) -> Vec<String> {
    let bare = strip_strings(first);
    if let Some(rest) = bare.strip_prefix("with ") {
        return rest
            .split(" as ")
            .skip(1)
            .flat_map(|s| identifiers(s.split([',', ':']).next().unwrap_or("")))
            .collect();
    }
    if let Some(rest) = bare.strip_prefix("for ") {
        return identifiers(rest.split(" in ").next().unwrap_or(""));
    }
    // An assignment's target is left of the first `=` that is not part of
    // `==`, `<=`, `>=`, `!=`.
    let bytes = bare.as_bytes();
    for i in 0..bytes.len() {
        if bytes[i] == b'=' {
            let prev = if i > 0 { bytes[i - 1] } else { b' ' };
            let next = bytes.get(i + 1).copied().unwrap_or(b' ');
            if next == b'=' || matches!(prev, b'=' | b'<' | b'>' | b'!') {
                return Vec::new();
            }
            let target = bare[..i].trim_end_matches(['+', '-', '*', '/', '%', '|', '&', '^', '@']);
            if target.contains('(') {
                return Vec::new();
            }
            let target = target.split(':').next().unwrap_or(target);
            return identifiers(target);
        }
        if matches!(bytes[i], b'(' | b'[') {
            // `f(x=1)` is a call, not an assignment; `d[k] = v` mutates d.
            if bytes[i] == b'[' {
                return identifiers(&bare[..i]);
            }
            return Vec::new();
        }
    }
    Vec::new()
}

// ---------------------------------------------------------------- phrasing

/// Phrasing choices for one statement, drawn once from the seed.
#[derive(Debug, Clone, Copy)]
struct Phrasing {
    title: usize,
    intro: usize,
    symptom: usize,
    repro: usize,
    actual: usize,
    expected: usize,
    tests: usize,
    markdown_headers: bool,
}

impl Phrasing {
    fn pick(rng: &mut Rng) -> Phrasing {
        Phrasing {
            title: rng.below(4),
            intro: rng.below(6),
            symptom: rng.below(3),
            repro: rng.below(4),
            actual: rng.below(3),
            expected: rng.below(3),
            tests: rng.below(4),
            markdown_headers: rng.below(2) == 0,
        }
    }
}

/// What a statement says follows from the shape of the failure: an
/// exception (or one that was not raised), a wrong value, or neither.
struct Shape<'a> {
    symptom: &'a Symptom,
    subject: &'a str,
    call: Option<&'a str>,
    /// The exception raised, unless it is a plain assertion.
    exception: Option<&'a str>,
    /// `pytest.raises` failed: the exception was expected, not raised.
    did_not_raise: bool,
    /// (actual, expected), when both are short enough to quote.
    values: Option<(&'a str, &'a str)>,
    /// How the call relates to its value: a call `returns`, a name `is`.
    returns: &'static str,
}

impl<'a> Shape<'a> {
    fn of(facts: &'a Facts) -> Shape<'a> {
        let s = &facts.symptom;
        let call = facts.call.as_deref();
        let exception = s.exception.as_deref().filter(|e| *e != "AssertionError");
        let did_not_raise = exception == Some("Failed")
            && s.message
                .as_deref()
                .is_some_and(|m| m.starts_with("DID NOT RAISE"));
        let values = match (&s.actual, &s.expected) {
            (Some(a), Some(e)) if a.len() <= 60 && e.len() <= 60 => Some((a.as_str(), e.as_str())),
            _ => None,
        };
        let returns = if call.is_some_and(|c| c.contains('(')) {
            "returns"
        } else {
            "is"
        };
        Shape {
            symptom: s,
            subject: &facts.subject,
            call,
            exception,
            did_not_raise,
            values,
            returns,
        }
    }

    /// The exception `pytest.raises` expected, by name.
    fn expected_raise(&self) -> String {
        raised_name(self.symptom.message.as_deref().unwrap_or(""))
    }

    /// The statement's title.
    fn title(&self, p: &Phrasing) -> String {
        let (subject, returns) = (self.subject, self.returns);
        let title = match (self.values, self.exception, self.call) {
            (_, Some(_), _) if self.did_not_raise => {
                let what = self.expected_raise();
                [
                    format!("`{subject}` no longer raises {what}"),
                    format!("Missing {what} from `{subject}`"),
                    format!("`{subject}` silently accepts input it should reject"),
                    format!("Expected {what} is not raised by `{subject}`"),
                ][p.title]
                    .clone()
            }
            (_, Some(exc), Some(call)) => [
                format!("`{call}` raises {exc}"),
                format!("{exc} when calling `{subject}`"),
                format!("Unexpected {exc} from `{subject}`"),
                format!("`{subject}` fails with {exc}"),
            ][p.title]
                .clone(),
            (_, Some(exc), None) => [
                format!("{exc} in {subject}"),
                format!("Unexpected {exc} in {subject}"),
                format!("{subject} fails with {exc}"),
                format!("{subject}: {exc} raised"),
            ][p.title]
                .clone(),
            (Some((actual, expected)), None, Some(call)) => [
                format!("`{call}` {returns} {actual} instead of {expected}"),
                format!("Wrong result from `{subject}`"),
                format!("`{subject}` gives an incorrect result"),
                format!("Unexpected return value from `{subject}`"),
            ][p.title]
                .clone(),
            _ => [
                format!("`{subject}` does not behave as expected"),
                format!("Incorrect behaviour in {subject}"),
                format!("Regression in {subject}"),
                format!("{subject} is broken"),
            ][p.title]
                .clone(),
        };
        if self.call.is_none() && !title.contains('`') {
            capitalize(&title)
        } else {
            title
        }
    }

    /// The first paragraph: an introduction and, when there is one, the
    /// symptom in a sentence.
    fn opening(&self, p: &Phrasing) -> String {
        let subject = self.subject;
        let intro = [
            format!("I ran into a problem with `{subject}`."),
            format!("It looks like `{subject}` is broken."),
            format!("`{subject}` stopped working for me after updating to the latest code."),
            format!("`{subject}` does not do what I expect."),
            format!("I think there is a bug in `{subject}`."),
            format!("While using `{subject}` I noticed something odd."),
        ][p.intro]
            .clone();
        let intro = if self.call.is_some() {
            intro
        } else {
            capitalize(&intro.replace('`', ""))
        };
        match self.symptom_line(p) {
            Some(line) => format!("{intro} {line}"),
            None => intro,
        }
    }

    /// The symptom in a sentence, when there is something to say.
    fn symptom_line(&self, p: &Phrasing) -> Option<String> {
        let s = self.symptom;
        let returns = self.returns;
        match (self.values, self.exception, self.call) {
            (_, Some(_), Some(call)) if self.did_not_raise => Some(format!(
                "`{call}` is expected to raise {}, but it returns normally.",
                self.expected_raise()
            )),
            (_, Some(exc), Some(call)) => Some(match (&s.message, p.symptom) {
                (Some(m), 0) if !m.is_empty() => format!("Calling `{call}` raises `{exc}: {m}`."),
                (Some(m), 1) if !m.is_empty() => {
                    format!("I get a `{exc}` (\"{m}\") when I call `{call}`.")
                }
                _ => format!("`{call}` fails with `{exc}`."),
            }),
            (_, Some(exc), None) => Some(format!("The code fails with `{exc}`.")),
            (Some((actual, expected)), None, Some(call)) => Some(
                [
                    format!("`{call}` {returns} `{actual}`, but it should be `{expected}`."),
                    format!("`{call}` gives `{actual}`; I expected `{expected}`."),
                    format!(
                        "The result of `{call}` is `{actual}`, while `{expected}` is expected."
                    ),
                ][p.symptom]
                    .clone(),
            ),
            _ => s
                .message
                .as_ref()
                .filter(|m| !m.is_empty())
                .map(|m| format!("A check fails with the message \"{m}\".")),
        }
    }

    /// What should happen instead, when the failure says.
    fn expected_line(&self, p: &Phrasing) -> Option<String> {
        match (self.values, self.exception, self.call) {
            (_, Some(_), Some(call)) if self.did_not_raise => {
                Some(format!("`{call}` should raise {}.", self.expected_raise()))
            }
            (_, Some(exc), Some(call)) => Some(
                [
                    format!("`{call}` should not raise `{exc}`."),
                    format!("I would expect `{call}` to succeed."),
                    format!("No `{exc}` here; the call worked before."),
                ][p.expected]
                    .clone(),
            ),
            (Some((_, expected)), None, Some(call)) => Some(
                [
                    format!("`{call}` should give `{expected}`."),
                    format!("I would expect `{expected}`."),
                    format!("The result should be `{expected}`, as it was before."),
                ][p.expected]
                    .clone(),
            ),
            _ => None,
        }
    }
}

impl Phrasing {
    /// A section header: markdown (`### md`) or a plain line.
    fn header(&self, md: &str, plain: &str) -> String {
        if self.markdown_headers {
            format!("### {md}")
        } else {
            plain.to_string()
        }
    }
}

/// The problem statement of `facts`, phrased by `p`, listing `tests`.
fn compose(facts: &Facts, tests: &[&TestId], p: &Phrasing) -> String {
    let shape = Shape::of(facts);
    let mut out = vec![shape.title(p), String::new()];
    out.push(shape.opening(p));

    if let Some(snippet) = &facts.snippet {
        out.push(String::new());
        out.push(p.header(
            [
                "Steps to reproduce",
                "Reproduction",
                "Minimal example",
                "How to reproduce",
            ][p.repro],
            [
                "To reproduce:",
                "Here is a minimal example:",
                "This reproduces it for me:",
                "Reproducer:",
            ][p.repro],
        ));
        out.push(String::new());
        out.push("```python".into());
        out.push(snippet.clone());
        out.push("```".into());
    }

    if !facts.error_lines.is_empty() {
        out.push(String::new());
        out.push(p.header(
            ["Actual behaviour", "Actual result", "What happens"][p.actual],
            ["This fails with:", "Output:", "What I get:"][p.actual],
        ));
        out.push(String::new());
        out.push("```".into());
        out.extend(facts.error_lines.iter().cloned());
        out.push("```".into());
    }

    if let Some(line) = shape.expected_line(p) {
        out.push(String::new());
        out.push(p.header(
            ["Expected behaviour", "Expected result", "What I expected"][p.expected],
            ["Expected:", "Expected result:", "What I expected:"][p.expected],
        ));
        out.push(String::new());
        out.push(line);
    }

    if !tests.is_empty() {
        push_failing_tests(&mut out, facts.test.as_ref(), tests, p);
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// The list of failing tests: the one the statement is about first, then
/// the others, at most [`LISTED_TESTS`] and a count of the rest.
fn push_failing_tests(
    out: &mut Vec<String>,
    first: Option<&TestId>,
    tests: &[&TestId],
    p: &Phrasing,
) {
    let mut listed: Vec<&TestId> = Vec::new();
    if let Some(t) = first {
        listed.push(t);
    }
    for t in tests {
        if listed.len() >= LISTED_TESTS {
            break;
        }
        if !listed.contains(t) {
            listed.push(t);
        }
    }
    out.push(String::new());
    out.push(
        [
            "The following tests fail:",
            "Failing tests:",
            "This also shows up in the test suite:",
            "These tests fail because of it:",
        ][p.tests]
            .to_string(),
    );
    out.push(String::new());
    for t in &listed {
        out.push(format!("- `{t}`"));
    }
    if tests.len() > listed.len() {
        out.push(format!("- ... and {} more", tests.len() - listed.len()));
    }
}

/// `DID NOT RAISE <class 'IndexError'>` (older pytest) or `DID NOT RAISE
/// IndexError` gives `` `IndexError` ``.
fn raised_name(message: &str) -> String {
    let name = message
        .rsplit(['\'', ' ', '.'])
        .find(|w| w.chars().next().is_some_and(char::is_alphabetic) && !w.contains('>'))
        .unwrap_or("an exception");
    let name = message
        .split('\'')
        .nth(1)
        .map(|n| n.rsplit('.').next().unwrap_or(n))
        .unwrap_or(name);
    format!("`{name}`")
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_names_of_common_statements() {
        assert_eq!(bound_names("s = Stack()"), vec!["s"]);
        assert_eq!(bound_names("a, b = f(x)"), vec!["a", "b"]);
        assert_eq!(bound_names("total += 1"), vec!["total"]);
        assert_eq!(bound_names("d[k] = 1"), vec!["d"]);
        assert!(bound_names("assert a == b").is_empty());
        assert!(bound_names("f(x=1)").is_empty());
        assert_eq!(bound_names("with open(p) as fh:"), vec!["fh"]);
        assert_eq!(bound_names("for i, x in enumerate(y):"), vec!["i", "x"]);
    }

    #[test]
    fn callee_and_humanize() {
        assert_eq!(callee("calc.add(1, 2)").as_deref(), Some("calc.add"));
        assert_eq!(callee("\"-\".join(x)").as_deref(), Some("join"));
        assert_eq!(
            humanize(&TestId::from("t.py::TestA::test_pop_empty[1]")),
            "pop empty"
        );
    }

    #[test]
    fn raised_name_reads_pytest_message() {
        assert_eq!(
            raised_name("DID NOT RAISE <class 'IndexError'>"),
            "`IndexError`"
        );
        assert_eq!(
            raised_name("DID NOT RAISE <class 'pkg.errors.Bad'>"),
            "`Bad`"
        );
        assert_eq!(raised_name("DID NOT RAISE ValueError"), "`ValueError`");
    }
}
