//! One model of a pytest log's failure output, shared by validation (which
//! keeps the failing tests' sections as [`Validation::log`](crate::Validation))
//! and issue writing (which reads one test's section to describe the
//! symptom).
//!
//! A log is made of parts (`==== FAILURES ====`, `==== ERRORS ====`,
//! `==== short test summary info ====`, ...). The FAILURES and ERRORS parts
//! hold [`Section`]s headed `____ title ____`, where the title is the test's
//! [headline](test_headline) (`Class.test_b[p::q]`), a subtest's
//! (`test_x (i=1)`), or an error's (`ERROR at setup of test_x`,
//! `ERROR at teardown of ...`, `ERROR at call of ...`,
//! `ERROR collecting tests/test_x.py`). Text before any part line counts as
//! inside one, so excerpts already cut down to bare sections read the same.
//!
//! ```
//! use smith_core::pytest_log::{test_failure, test_headline};
//! use smith_core::TestId;
//!
//! let log = "==== FAILURES ====\n____ TestA.test_b[p::q] ____\n\
//!            E   assert 1 == 2\nt/x.py:3: AssertionError\n==== 1 failed ====\n";
//! let test = TestId::from("t/x.py::TestA::test_b[p::q]");
//! assert_eq!(test_headline(&test), "TestA.test_b[p::q]");
//! assert!(test_failure(log, &test).unwrap().contains("assert 1 == 2"));
//! ```
//!
//! Every function works on any text: slicing happens only at ASCII
//! delimiters or on character boundaries.

use std::collections::BTreeMap;

use crate::TestId;

/// Default budget of a [`failure_excerpt`], in bytes.
pub const FAILURE_LOG_BYTES: usize = 8 * 1024;

/// One `____ title ____` section of a log's FAILURES or ERRORS part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section<'a> {
    /// The header line as printed.
    pub header: &'a str,
    /// The title inside the header's underscores.
    pub title: &'a str,
    /// The lines after the header, up to the next header or part line.
    pub body: Vec<&'a str>,
}

impl Section<'_> {
    /// Whether this section reports on `test`: its failure, a subtest of it,
    /// an error at its setup, call or teardown, or a collection error of its
    /// file.
    pub fn is_about(&self, test: &TestId) -> bool {
        let head = test_headline(test);
        let title = self.title;
        title == head
            // Subtests: `test_x (i=1)`.
            || title.strip_prefix(head.as_str()).is_some_and(|r| r.starts_with(" ("))
            || ["ERROR at setup of ", "ERROR at call of ", "ERROR at teardown of "]
                .iter()
                .any(|p| title.strip_prefix(p) == Some(head.as_str()))
            || title.strip_prefix("ERROR collecting ") == Some(test.file())
    }

    /// Whether the body names `file` in a location line (`file:12: ...`).
    fn names_file(&self, file: &str) -> bool {
        let needle = format!("{file}:");
        self.body.iter().any(|l| l.contains(&needle))
    }

    /// Whether a location line names a test file other than `file`: the
    /// section is then about a test of the same name in that file.
    fn names_other_test_file(&self, file: &str) -> bool {
        self.body
            .iter()
            .filter_map(|l| location_file(l))
            .any(|f| f != file && is_test_file(f))
    }
}

/// The file of a location line (`tests/test_x.py:12: AssertionError`).
fn location_file(line: &str) -> Option<&str> {
    let (path, rest) = line.split_once(".py:")?;
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    (digits > 0 && rest[digits..].starts_with(':') && !path.contains(' '))
        .then(|| &line[..path.len() + 3])
}

/// A path pytest collects tests from by its default patterns, or one under
/// a `test`/`tests` directory.
fn is_test_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("test")
        || name.ends_with("_test.py")
        || path.split('/').any(|d| d == "tests" || d == "test")
}

/// `left  title  right` with at least three `mark`s on each side and one
/// space between: the title, or `None`.
fn framed(line: &str, mark: char) -> Option<&str> {
    let rest = line.trim_end_matches(['\r', '\n']);
    let open = rest.len() - rest.trim_start_matches(mark).len();
    let close = rest.len() - rest.trim_end_matches(mark).len();
    if open < 3 || close < 3 || open + close >= rest.len() {
        return None;
    }
    let inner = rest[open..rest.len() - close]
        .strip_prefix(' ')?
        .strip_suffix(' ')?;
    (!inner.is_empty()).then_some(inner)
}

/// The title of a section header line (`____ name ____` gives `name`).
pub fn section_title(line: &str) -> Option<&str> {
    framed(line, '_')
}

/// The name of a part line (`==== FAILURES ====` gives `FAILURES`).
pub fn part_title(line: &str) -> Option<&str> {
    framed(line, '=')
}

/// The sections of the FAILURES and ERRORS parts of `log` (and of text
/// before any part line), in log order.
pub fn sections(log: &str) -> Vec<Section<'_>> {
    let mut out: Vec<Section<'_>> = Vec::new();
    let mut open = false;
    let mut in_failures = true;
    for line in log.lines() {
        if let Some(part) = part_title(line) {
            in_failures = matches!(part, "FAILURES" | "ERRORS");
            open = false;
            continue;
        }
        if !in_failures {
            continue;
        }
        if let Some(title) = section_title(line) {
            out.push(Section {
                header: line,
                title,
                body: Vec::new(),
            });
            open = true;
        } else if open {
            if let Some(section) = out.last_mut() {
                section.body.push(line);
            }
        }
    }
    out
}

/// The headline pytest prints for a node id: the part after the file, with
/// `::` between classes written as `.` and the parameters left as they are
/// (`t/x.py::A::test_b[p::q]` gives `A.test_b[p::q]`).
pub fn test_headline(test: &TestId) -> String {
    let s = test.as_str();
    match s.split_once("::") {
        Some((_, rest)) => {
            let (name, params) = rest.split_at(rest.find('[').unwrap_or(rest.len()));
            format!("{}{params}", name.replace("::", "."))
        }
        None => s.to_string(),
    }
}

/// The sections of `sections` about `test`, in order. Two files may have
/// tests of the same headline; when some sections name the test's file in a
/// location line, only those are kept.
pub fn sections_of<'s, 'a>(sections: &'s [Section<'a>], test: &TestId) -> Vec<&'s Section<'a>> {
    let all: Vec<&Section<'a>> = sections.iter().filter(|s| s.is_about(test)).collect();
    let file = test.file();
    let named: Vec<&Section<'a>> = all.iter().copied().filter(|s| s.names_file(file)).collect();
    if !named.is_empty() {
        return named;
    }
    // No section names the file (a cut excerpt can lose the line, or the
    // test's own sections can be cut out whole): those that name another
    // test file are another test's of the same name.
    all.into_iter()
        .filter(|s| !s.names_other_test_file(file))
        .collect()
}

/// The failure output of one test in `log`: its sections (header and body,
/// trimmed of blank lines at both ends), joined in log order. `None` if the
/// log has no section about the test.
pub fn test_failure(log: &str, test: &TestId) -> Option<String> {
    let sections = sections(log);
    let chosen = sections_of(&sections, test);
    if chosen.is_empty() {
        return None;
    }
    let parts: Vec<String> = chosen
        .iter()
        .map(|s| {
            let body = s.body.join("\n");
            format!("{}\n{}", s.header, body.trim_matches('\n'))
        })
        .collect();
    Some(parts.join("\n") + "\n")
}

/// The failure sections of `tests` from `log`, joined and cut to about
/// `budget` bytes (each test gets an equal share, at least 1 KiB). Falls
/// back to the log's short-summary lines that name the tests, and then to
/// the log's tail, so an issue writer always has something to work from.
pub fn failure_excerpt(log: &str, tests: &[&TestId], budget: usize) -> String {
    let sections = sections(log);
    let mut by_test: BTreeMap<&TestId, String> = BTreeMap::new();
    for test in tests {
        for s in sections_of(&sections, test) {
            let entry = by_test.entry(test).or_default();
            entry.push_str(&format!("____ {} ____\n", s.title));
            for line in &s.body {
                entry.push_str(line);
                entry.push('\n');
            }
        }
    }
    if by_test.is_empty() {
        let mut out = String::new();
        for line in log.lines() {
            if tests.iter().any(|t| line.contains(t.as_str()))
                && (line.starts_with("FAILED ") || line.starts_with("ERROR "))
            {
                out.push_str(line);
                out.push('\n');
            }
        }
        if out.is_empty() {
            out = tail(log, budget);
        }
        return cut(&out, budget);
    }
    let share = (budget / by_test.len()).max(1024);
    let out: String = by_test.values().map(|text| cut(text, share)).collect();
    cut(&out, budget)
}

/// At most about `n` bytes of `s`: its head and tail with a `[...]` line
/// between.
pub fn cut(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut head = n / 3;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - (n - head);
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}\n[...]\n{}", &s[..head], &s[tail..])
}

/// The last `n` bytes of `s` (fewer, to start on a character boundary).
pub fn tail(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut start = s.len() - n;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> TestId {
        TestId::from(s)
    }

    #[test]
    fn headlines_keep_double_colons_inside_params() {
        assert_eq!(
            test_headline(&id("t/x.py::A::test_b[p::q]")),
            "A.test_b[p::q]"
        );
        assert_eq!(test_headline(&id("t/x.py::A::B::test_c")), "A.B.test_c");
        assert_eq!(test_headline(&id("t/x.py")), "t/x.py");
    }

    #[test]
    fn header_and_part_lines_are_framed() {
        assert_eq!(section_title("____ A.b ____"), Some("A.b"));
        assert_eq!(section_title("___ _x_ ___"), Some("_x_"));
        assert_eq!(section_title("____x ____"), None);
        assert_eq!(section_title("___ ___"), None);
        assert_eq!(section_title("plain"), None);
        assert_eq!(part_title("==== FAILURES ===="), Some("FAILURES"));
        assert_eq!(part_title("==== é ===="), Some("é"));
        assert_eq!(part_title("======"), None);
    }

    #[test]
    fn sections_come_from_failures_and_errors_only() {
        let log = "\
==== test session starts ====
____ not a section ____
==== ERRORS ====
____ ERROR at setup of test_a ____
fixture broke
==== FAILURES ====
____ test_b ____
E   assert 1 == 2
==== PASSES ====
____ test_c ____
captured
==== 1 failed ====
";
        let got = sections(log);
        let titles: Vec<&str> = got.iter().map(|s| s.title).collect();
        assert_eq!(titles, ["ERROR at setup of test_a", "test_b"]);
        assert_eq!(got[0].body, ["fixture broke"]);
        assert_eq!(got[1].body, ["E   assert 1 == 2"]);
    }

    #[test]
    fn a_test_matches_its_failure_subtests_errors_and_collection() {
        let log = "\
____ A.test_b[p::q] ____
one
____ A.test_b[p::q] (i=1) ____
two
____ ERROR at setup of A.test_b[p::q] ____
three
____ ERROR at call of A.test_b[p::q] ____
four
____ ERROR at teardown of A.test_b[p::q] ____
five
____ ERROR collecting t/x.py ____
six
____ A.test_b[p::r] ____
seven
____ A.test_bc ____
eight
";
        let text = test_failure(log, &id("t/x.py::A::test_b[p::q]")).unwrap();
        for part in ["one", "two", "three", "four", "five", "six"] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
        assert!(!text.contains("seven") && !text.contains("eight"), "{text}");
        assert!(test_failure(log, &id("t/y.py::test_z")).is_none());
    }

    #[test]
    fn sections_naming_the_file_win() {
        let log = "\
____ test_mean ____
tests/other.py:3: AssertionError
____ test_mean ____
tests/test_calc.py:9: AssertionError
";
        let mine = test_failure(log, &id("tests/test_calc.py::test_mean")).unwrap();
        assert!(mine.contains("test_calc.py:9") && !mine.contains("other.py"));
        // Sections that name other test files are those tests'.
        assert_eq!(test_failure(log, &id("tests/third.py::test_mean")), None);
        // Without location lines, every section of the headline.
        let bare = "____ test_mean ____\nE  1 != 2\n____ test_mean ____\nE  3 != 4\n";
        let both = test_failure(bare, &id("tests/third.py::test_mean")).unwrap();
        assert!(both.contains("1 != 2") && both.contains("3 != 4"));
    }

    #[test]
    fn sections_naming_another_test_file_are_that_tests() {
        // The first section's own location line was cut out of an excerpt;
        // its traceback ends in the library.
        let log = "\
____ test_typed ____
[...]
pkg/core.py:40: IndexError
____ test_typed ____
    def test_typed():
>       check('{x:d}')
tests/test_pattern.py:12: in test_typed
pkg/core.py:40: IndexError
";
        let mine = test_failure(log, &id("tests/test_parse.py::test_typed")).unwrap();
        assert!(!mine.contains("check("), "{mine}");
        assert!(mine.contains("[...]"), "{mine}");
        // With its own section cut out whole, the other test's is not taken.
        let rest = &log[log.rfind("____ test_typed").unwrap()..];
        assert_eq!(
            test_failure(rest, &id("tests/test_parse.py::test_typed")),
            None
        );
        let theirs = test_failure(log, &id("tests/test_pattern.py::test_typed")).unwrap();
        assert!(
            theirs.contains("check(") && !theirs.contains("[...]"),
            "{theirs}"
        );
        assert_eq!(location_file("tests/a.py:3: in f"), Some("tests/a.py"));
        assert_eq!(location_file("E   x.py:3 is not a location"), None);
    }

    #[test]
    fn excerpts_reread_as_the_same_sections() {
        let log = "\
==== FAILURES ====
____ TestA.test_b[x::y] ____

    def test_b():
>       assert f() == 1
E       assert 2 == 1

t/x.py:4: AssertionError
==== short test summary info ====
FAILED t/x.py::TestA::test_b[x::y] - assert 2 == 1
";
        let test = id("t/x.py::TestA::test_b[x::y]");
        let excerpt = failure_excerpt(log, &[&test], FAILURE_LOG_BYTES);
        assert!(
            excerpt.starts_with("____ TestA.test_b[x::y] ____\n"),
            "{excerpt}"
        );
        assert!(!excerpt.contains("short test summary"), "{excerpt}");
        assert_eq!(test_failure(&excerpt, &test), test_failure(log, &test));
    }

    #[test]
    fn excerpts_fall_back_to_summary_lines_then_tail() {
        let test = id("t/x.py::test_gone");
        let log = "noise\nFAILED t/x.py::test_gone - boom\nmore\n";
        assert_eq!(
            failure_excerpt(log, &[&test], 100),
            "FAILED t/x.py::test_gone - boom\n"
        );
        assert_eq!(failure_excerpt("ab\ncd\n", &[&test], 3), "cd\n");
    }

    #[test]
    fn non_ascii_lines_are_cut_on_character_boundaries() {
        let body = "É→€😀".repeat(50);
        let log = format!("____ test_ü ____\n{body}\n");
        let test = id("t/ü.py::test_ü");
        let excerpt = failure_excerpt(&log, &[&test], 10);
        assert!(excerpt.contains("[...]"), "{excerpt}");
        assert!(test_failure(&log, &test).unwrap().contains("😀"));
        assert_eq!(tail("a😀", 2), "");
        assert_eq!(cut("😀😀😀", 5), "\n[...]\n😀");
    }

    #[test]
    fn cut_keeps_both_ends() {
        let s = "a".repeat(100) + &"b".repeat(100);
        let c = cut(&s, 50);
        assert!(c.starts_with('a') && c.ends_with('b') && c.len() < 70);
    }

    proptest::proptest! {
        #[test]
        fn any_text_reads_without_panics(
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    "\\PC{0,12}",
                    "(_{3,5}|={3,5}) \\PC{0,6}(::\\PC{0,3})? (_{3,5}|={3,5})",
                    "(ERROR at (setup|call|teardown) of |ERROR collecting )\\PC{0,8}",
                ],
                0..12,
            ),
            test in "\\PC{0,6}(::\\PC{0,6}(\\[\\PC{0,4}\\])?)?",
            budget in 0usize..64,
        ) {
            let log = lines.join("\n");
            let test = TestId::from(test.as_str());
            let excerpt = failure_excerpt(&log, &[&test], budget);
            // Cut to the budget, give or take the `[...]` marker and one
            // character's bytes.
            proptest::prop_assert!(excerpt.len() <= budget + 10, "{} > {budget}", excerpt.len());
            let _ = test_failure(&log, &test);
            let _ = test_failure(&excerpt, &test);
            let _ = tail(&log, budget);
        }
    }
}
