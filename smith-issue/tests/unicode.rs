//! No text handling panics on any Unicode input: test sources with
//! box-drawing characters and arrows (a real project's table renderer made
//! `test_source` slice inside `╔`), and property tests over every reader of
//! test source and pytest output and over the template writer.

mod common;

use std::path::Path;

use proptest::prelude::*;
use smith_core::{Candidate, FailingTest, FileChange, IssueContext, IssueWriter, Patch, TestId};
use smith_issue::{check_leak, test_failure, test_source, Symptom, TemplateWriter};

fn unicode_repo() -> std::path::PathBuf {
    common::fixtures().join("unicode_repo")
}

#[test]
fn test_source_reads_tests_with_box_drawing_characters_and_arrows() {
    let repo = unicode_repo();
    let id = |name: &str| TestId::from(format!("tests/test_render.py::{name}").as_str());

    let boxed = test_source(&repo, &id("test_box")).expect("test_box is found");
    assert!(boxed.starts_with("from boxes import render\n\n"), "{boxed}");
    assert!(boxed.contains("╔══╗\n║ab║\n╚══╝"), "{boxed}");
    assert!(
        boxed.ends_with("    assert render(\"ab\") == expected\n"),
        "{boxed}"
    );

    let arrow = test_source(&repo, &id("test_arrow_outside_strings")).unwrap();
    assert!(arrow.ends_with("    assert café == \"→ ⇒ ⟶\"\n"), "{arrow}");
    // The block ends where the next test starts, non-ASCII code or not.
    assert!(!arrow.contains("test_escape"), "{arrow}");

    let escaped = test_source(&repo, &id("test_escape_before_wide_char")).unwrap();
    assert!(escaped.ends_with("'\\→'\n"), "{escaped}");

    let method = test_source(&repo, &id("TestTable::test_row")).unwrap();
    assert!(method.contains("'│ ⟶ │'"), "{method}");

    let last = test_source(&repo, &id("test_after_all")).unwrap();
    assert!(last.contains("def test_after_all():"), "{last}");
}

#[test]
fn indentation_with_non_ascii_whitespace_is_not_sliced_into() {
    let dir = tempfile::tempdir().unwrap();
    // U+00A0 and U+3000 are whitespace to Rust's `trim_start` but not
    // indentation to Python.
    write(
        dir.path(),
        "tests/test_ws.py",
        "\u{3000}def test_a():\n\u{a0}\u{a0}x = 1\n    assert x\n\ndef test_b():\n  \u{3000}assert 1\n    assert 2\n",
    );
    let b = test_source(dir.path(), &TestId::from("tests/test_ws.py::test_b")).unwrap();
    assert!(b.starts_with("def test_b():\n"), "{b}");
    // Not a def Python would see; must not panic either way.
    let _ = test_source(dir.path(), &TestId::from("tests/test_ws.py::test_a"));
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Pieces that steer the parsers into each of their branches (strings,
/// brackets, comments, escapes, defs, classes, decorators, imports, pytest
/// section headers and `E` lines), mixed with arbitrary characters.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<char>().prop_map(String::from),
        "\\PC{0,6}",
        prop::sample::select(vec![
            "\n",
            "    ",
            "\t",
            " ",
            "\u{a0}",
            "\u{3000}",
            "\"",
            "'",
            "\"\"\"",
            "'''",
            "\\",
            "#",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            ":",
            "=",
            " == ",
            ",",
            ".",
            "@",
            "╔",
            "═",
            "║",
            "→",
            "⟶",
            "é",
            "😀",
            "\u{301}",
            "def ",
            "async def ",
            "class ",
            "test_x",
            "TestA",
            "import ",
            "from ",
            " import ",
            " as ",
            "assert ",
            "return ",
            "with pytest.raises(",
            "E   ",
            "E       assert ",
            "E        +  where ",
            ">",
            "___ ",
            " ___",
            "=== ",
            " ===",
            "FAILURES",
            "ERRORS",
            "ERROR collecting ",
            "ERROR at setup of ",
            "tests/t.py",
            ":12: in ",
            "::",
            "[",
            "a = 1",
            "Error",
            ": ",
            "DID NOT RAISE ",
            "<class '",
            " at 0x7f>",
            "\r",
            "\0",
        ])
        .prop_map(str::to_string),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..80).prop_map(|v| v.concat())
}

/// A node id: a path and names made of the same pieces.
fn node_id() -> impl Strategy<Value = TestId> {
    (
        prop::sample::select(vec!["tests/t.py", "t.py", "tests/é.py"]),
        prop::collection::vec(text(), 0..3),
        prop::option::of(text()),
    )
        .prop_map(|(file, names, param)| {
            let mut id = file.to_string();
            for n in names {
                id.push_str("::");
                id.push_str(&n);
            }
            // A parameter belongs to a name; the file part stays a path.
            if let (Some(p), true) = (param, id.contains("::")) {
                id.push_str(&format!("[{p}]"));
            }
            TestId::from(id.as_str())
        })
}

fn context(failing: Vec<FailingTest>, old: &str, new: &str, seed: u64) -> IssueContext {
    let patch = Patch::from_changes(&[FileChange::modified("m.py", old, new)]);
    let candidate = Candidate::new(
        &smith_core::RepoRef::new("o/r", "abc"),
        "op",
        vec!["m.py::f".into()],
        "",
        patch,
    );
    IssueContext {
        candidate,
        failing,
        original_code: vec![old.to_string()],
        seed,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn test_source_never_panics(module in text(), test in node_id(), name in text()) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), test.file(), &module);
        let _ = test_source(dir.path(), &test);
        // Also with a def of that name somewhere in the text.
        let named = TestId::from(format!("{}::{}", test.file(), name.replace("::", "")).as_str());
        write(dir.path(), test.file(), &format!("{module}\ndef {name}():\n{module}"));
        let _ = test_source(dir.path(), &named);
    }

    #[test]
    fn test_failures_and_symptoms_never_panic(log in text(), test in node_id()) {
        let excerpt = test_failure(&log, &test);
        if let Some(e) = &excerpt {
            let _ = Symptom::parse(e);
        }
        let _ = Symptom::parse(&log);
    }

    #[test]
    fn the_template_writer_never_panics(
        tests in prop::collection::vec((node_id(), prop::option::of(text()), text()), 0..4),
        old in text(),
        new in text(),
        statement in text(),
        seed in any::<u64>(),
    ) {
        let failing: Vec<FailingTest> = tests
            .into_iter()
            .map(|(id, source, output)| FailingTest { id, source, output })
            .collect();
        let ctx = context(failing, &old, &new, seed);
        let written = TemplateWriter::new().write(&ctx).unwrap();
        prop_assert!(!written.trim().is_empty());
        let _ = check_leak(&written, &ctx);
        let _ = check_leak(&statement, &ctx);
    }
}
