//! Reading pytest's results: the `-rA` short test summary of a log, and JUnit
//! XML files.
//!
//! [`parse_pytest_log`] agrees with SWE-bench's `parse_log_pytest` on every
//! test id that contains no whitespace, with three deliberate differences:
//! ids with spaces inside their parameters are kept whole (SWE-bench cuts
//! them at the first space), `XPASS` lines are read (SWE-bench drops them),
//! and a `SUBFAILED` line marks its parent test failed (pytest 9 reports a
//! unittest test whose subtest failed as `PASSED` plus a `SUBFAILED` line;
//! SWE-bench keeps `PASSED`).

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use smith_core::{Error, Outcome, Result, TestId};

/// How bad an outcome is, for merging several summary lines of one test:
/// a test reported `PASSED` and then `ERROR` (at teardown) has errored.
fn severity(o: Outcome) -> u8 {
    match o {
        Outcome::Skipped => 0,
        Outcome::Passed => 1,
        Outcome::XFailed => 2,
        Outcome::XPassed => 3,
        Outcome::Error => 4,
        Outcome::Failed => 5,
    }
}

/// Record `outcome` for `id`, keeping the worse of two outcomes.
pub(crate) fn merge_outcome(map: &mut BTreeMap<TestId, Outcome>, id: TestId, outcome: Outcome) {
    map.entry(id)
        .and_modify(|o| {
            if severity(outcome) > severity(*o) {
                *o = outcome;
            }
        })
        .or_insert(outcome);
}

/// Split `rest` (the text after a status word) into the node id and the
/// message pytest appended after ` - `. A parameter id may itself contain
/// ` - `, so the split is taken at the first ` - ` after which the id's
/// brackets are balanced.
fn split_message(rest: &str) -> &str {
    let mut from = 0;
    while let Some(pos) = rest[from..].find(" - ") {
        let at = from + pos;
        let head = &rest[..at];
        if brackets_closed(head) {
            return head;
        }
        from = at + 3;
    }
    rest
}

/// Whether every `[` in a node id's parameter part has been closed: the id
/// has no parameters, or ends with `]`.
fn brackets_closed(id: &str) -> bool {
    match id.find('[') {
        None => true,
        Some(_) => id.ends_with(']'),
    }
}

/// Parse the `-rA` short test summary of a pytest log into outcomes by node
/// id.
///
/// Collection errors appear under the path of the module that failed to
/// import (`tests/test_x.py` → [`Outcome::Error`]). `SKIPPED [N] path:line`
/// lines name no test and are ignored, as SWE-bench ignores them.
///
/// ```
/// use smith_validate::parse_pytest_log;
/// use smith_core::{Outcome, TestId};
///
/// let log = "PASSED tests/t.py::test_a[x y]\nFAILED tests/t.py::test_b - assert 1 == 2\n";
/// let map = parse_pytest_log(log);
/// assert_eq!(map[&TestId::from("tests/t.py::test_a[x y]")], Outcome::Passed);
/// assert_eq!(map[&TestId::from("tests/t.py::test_b")], Outcome::Failed);
/// ```
pub fn parse_pytest_log(log: &str) -> BTreeMap<TestId, Outcome> {
    let mut map = BTreeMap::new();
    for line in log.lines() {
        let line = line.trim_end_matches('\r');
        let Some((word, rest)) = line.split_once(' ') else {
            continue;
        };
        let outcome = match word {
            "PASSED" => Outcome::Passed,
            "FAILED" => Outcome::Failed,
            "ERROR" => Outcome::Error,
            "SKIPPED" => Outcome::Skipped,
            "XFAIL" => Outcome::XFailed,
            "XPASS" => Outcome::XPassed,
            w if w.starts_with("SUBFAILED") => Outcome::Failed,
            _ => continue,
        };
        let rest = rest.trim();
        if rest.is_empty() || (word == "SKIPPED" && rest.starts_with('[')) {
            continue;
        }
        let id = if word == "PASSED" {
            rest
        } else {
            split_message(rest)
        };
        let id = id.trim_end();
        if id.is_empty() {
            continue;
        }
        merge_outcome(&mut map, TestId::new(id), outcome);
    }
    map
}

/// One `<testcase>` of a JUnit XML report.
#[derive(Debug, Clone, PartialEq)]
pub struct JunitCase {
    /// The `classname` attribute: the module's dotted path plus classes.
    pub classname: String,
    /// The `name` attribute: the test function with its parameter id.
    pub name: String,
    /// The `file` attribute (pytest writes it with `junit_family=xunit1`).
    pub file: Option<String>,
    /// Seconds, setup to teardown.
    pub time: f64,
    /// What happened.
    pub outcome: Outcome,
    /// The failure, error or skip message, if any.
    pub message: Option<String>,
    /// The body of the failure or error element (the traceback).
    pub text: String,
}

impl JunitCase {
    /// The pytest node id, reconstructed from `file`, `classname` and `name`.
    /// `None` without a `file` attribute (xunit2 reports), where a dotted
    /// classname cannot be told apart from a package path. A collection
    /// error's case gives the module's path.
    pub fn node_id(&self) -> Option<TestId> {
        let file = self.file.as_deref()?;
        if self.classname.is_empty() {
            return Some(TestId::new(file));
        }
        let module = file.trim_end_matches(".py").replace('/', ".");
        let classes = self
            .classname
            .strip_prefix(&module)
            .map(|r| r.trim_start_matches('.'))
            .unwrap_or("");
        let mut id = file.to_string();
        for class in classes.split('.').filter(|c| !c.is_empty()) {
            id.push_str("::");
            id.push_str(class);
        }
        id.push_str("::");
        id.push_str(&self.name);
        Some(TestId::new(id))
    }
}

/// A parsed JUnit XML report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JunitReport {
    /// Every test case, in file order.
    pub cases: Vec<JunitCase>,
}

impl JunitReport {
    /// Outcomes by node id, for the cases whose node id can be rebuilt
    /// (see [`JunitCase::node_id`]).
    pub fn outcomes(&self) -> BTreeMap<TestId, Outcome> {
        let mut map = BTreeMap::new();
        for case in &self.cases {
            if let Some(id) = case.node_id() {
                merge_outcome(&mut map, id, case.outcome);
            }
        }
        map
    }

    /// Seconds by node id.
    pub fn durations(&self) -> BTreeMap<TestId, f64> {
        self.cases
            .iter()
            .filter_map(|c| Some((c.node_id()?, c.time)))
            .collect()
    }
}

fn xml_error(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::test_run_source("bad JUnit XML", e)
}

/// Parse a JUnit XML report as pytest writes it (`--junitxml`).
///
/// `<failure>` → failed, `<error>` → error (setup/teardown or collection),
/// `<skipped type="pytest.xfail">` → xfailed, other `<skipped>` → skipped,
/// no child → passed.
pub fn parse_junit_xml(xml: &str) -> Result<JunitReport> {
    let mut reader = Reader::from_str(xml);
    let mut report = JunitReport::default();
    let mut current: Option<JunitCase> = None;
    // Which child element's text we are inside, so only failure/error bodies are kept.
    let mut in_body = false;
    loop {
        match reader.read_event().map_err(xml_error)? {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                report.cases.extend(current.take());
                current = Some(junit_case(&e)?);
            }
            Event::End(e) if e.name().as_ref() == b"testcase" => {
                report.cases.extend(current.take());
            }
            Event::Start(e) | Event::Empty(e)
                if matches!(e.name().as_ref(), b"failure" | b"error" | b"skipped") =>
            {
                let Some(case) = current.as_mut() else {
                    continue;
                };
                let (outcome, message) = case_result(&e)?;
                if severity(outcome) >= severity(case.outcome) || case.outcome == Outcome::Passed {
                    case.outcome = outcome;
                    case.message = message;
                }
                in_body = outcome.is_failure();
            }
            Event::End(e) if matches!(e.name().as_ref(), b"failure" | b"error" | b"skipped") => {
                in_body = false;
            }
            Event::Text(t) if in_body => {
                if let Some(case) = current.as_mut() {
                    let text = t.xml_content().map_err(xml_error)?;
                    case.text.push_str(&text);
                }
            }
            Event::GeneralRef(r) if in_body => {
                if let Some(case) = current.as_mut() {
                    push_entity(&mut case.text, &String::from_utf8_lossy(r.as_ref()));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    report.cases.extend(current.take());
    Ok(report)
}

/// The unescaped attributes of `element`, as (name, value) pairs.
fn attributes(element: &BytesStart<'_>) -> Result<Vec<(Vec<u8>, String)>> {
    element
        .attributes()
        .map(|attr| {
            let attr = attr.map_err(xml_error)?;
            let value = attr.unescape_value().map_err(xml_error)?.into_owned();
            Ok((attr.key.as_ref().to_vec(), value))
        })
        .collect()
}

/// A `<testcase>` from its attributes, passed until a child says otherwise.
fn junit_case(element: &BytesStart<'_>) -> Result<JunitCase> {
    let mut case = JunitCase {
        classname: String::new(),
        name: String::new(),
        file: None,
        time: 0.0,
        outcome: Outcome::Passed,
        message: None,
        text: String::new(),
    };
    for (key, value) in attributes(element)? {
        match key.as_slice() {
            b"classname" => case.classname = value,
            b"name" => case.name = value,
            b"file" => case.file = Some(value),
            b"time" => case.time = value.parse().unwrap_or(0.0),
            _ => {}
        }
    }
    Ok(case)
}

/// The outcome a `<failure>`, `<error>` or `<skipped>` child gives its
/// test case, and its `message` attribute.
fn case_result(element: &BytesStart<'_>) -> Result<(Outcome, Option<String>)> {
    let mut message = None;
    let mut kind = None;
    for (key, value) in attributes(element)? {
        match key.as_slice() {
            b"message" => message = Some(value),
            b"type" => kind = Some(value),
            _ => {}
        }
    }
    let outcome = match element.name().as_ref() {
        b"failure" => Outcome::Failed,
        b"error" => Outcome::Error,
        _ if kind.as_deref() == Some("pytest.xfail") => Outcome::XFailed,
        _ => Outcome::Skipped,
    };
    Ok((outcome, message))
}

/// Append the character an entity reference (`lt`, `#10`, `#x41`, ...)
/// stands for; an unknown name adds nothing.
fn push_entity(text: &mut String, name: &str) {
    text.push_str(match name {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "quot" => "\"",
        "apos" => "'",
        _ => "",
    });
    if let Some(code) = name.strip_prefix('#') {
        let n = code
            .strip_prefix('x')
            .map(|h| u32::from_str_radix(h, 16))
            .unwrap_or_else(|| code.parse());
        if let Some(c) = n.ok().and_then(char::from_u32) {
            text.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_split_respects_parameter_brackets() {
        assert_eq!(split_message("t.py::a[x - y] - boom"), "t.py::a[x - y]");
        assert_eq!(split_message("t.py::a - boom - more"), "t.py::a");
        assert_eq!(split_message("t.py::a"), "t.py::a");
    }

    #[test]
    fn worse_outcome_wins() {
        let map = parse_pytest_log("PASSED t.py::a\nERROR t.py::a - teardown\n");
        assert_eq!(map[&TestId::from("t.py::a")], Outcome::Error);
    }

    #[test]
    fn junit_node_ids_rebuild_classes() {
        let case = JunitCase {
            classname: "tests.test_x.TestA.TestB".into(),
            name: "test_c[1]".into(),
            file: Some("tests/test_x.py".into()),
            time: 0.0,
            outcome: Outcome::Passed,
            message: None,
            text: String::new(),
        };
        assert_eq!(
            case.node_id().unwrap().as_str(),
            "tests/test_x.py::TestA::TestB::test_c[1]"
        );
    }
}
