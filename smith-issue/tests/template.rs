//! The template writer over contexts built from real pytest logs of the calc
//! fixture: snapshots of what it writes, and the properties every statement
//! must have (no leaks, deterministic, varied by seed, useful content).

mod common;

use std::collections::BTreeSet;

use common::{calc_repo, mutation, mutations};
use smith_core::IssueWriter;
use smith_issue::{check_leak, write_checked, TemplateWriter};

fn statement(name: &str, seed: u64) -> String {
    let m = mutation(name);
    let context = m.context(&calc_repo(), &m.log(), seed);
    TemplateWriter::new().write(&context).unwrap()
}

#[test]
fn snapshot_add_op() {
    insta::assert_snapshot!(statement("add_op", 0));
}

#[test]
fn snapshot_mean_len() {
    insta::assert_snapshot!(statement("mean_len", 0));
}

#[test]
fn snapshot_parse_age_guard() {
    insta::assert_snapshot!(statement("parse_age_guard", 0));
}

#[test]
fn snapshot_stack_pop() {
    insta::assert_snapshot!(statement("stack_pop", 3));
}

#[test]
fn statements_never_leak_and_vary_with_the_seed() {
    let writer = TemplateWriter::new();
    for m in mutations() {
        let mut distinct = BTreeSet::new();
        for seed in 0..24 {
            let context = m.context(&calc_repo(), &m.log(), seed);
            let text = writer.write(&context).unwrap();
            assert_eq!(text, writer.write(&context).unwrap(), "not deterministic");
            assert!(
                check_leak(&text, &context).is_none(),
                "{}: {:?}\n{text}",
                m.name,
                check_leak(&text, &context)
            );
            assert!(
                !text.contains(m.to.trim()),
                "{}: quotes the bug\n{text}",
                m.name
            );
            assert!(
                !text.contains(m.from.trim()),
                "{}: quotes the fix\n{text}",
                m.name
            );
            let checked = write_checked(&writer, &context, 3).unwrap();
            assert_eq!(checked.leaked, 0);
            distinct.insert(text);
        }
        assert!(
            distinct.len() >= 8,
            "{}: only {} phrasings in 24 seeds",
            m.name,
            distinct.len()
        );
    }
}

#[test]
fn reproduction_keeps_needed_setup_and_drops_the_rest() {
    // test_mean binds `values` (needed) and `unrelated` (not needed).
    let mut seen = false;
    for seed in 0..16 {
        let text = statement("mean_len", seed);
        if text.contains("values = [2, 4, 6]") {
            seen = true;
            assert!(text.contains("from calc import mean"), "{text}");
            assert!(!text.contains("unrelated"), "{text}");
            assert!(!text.contains("import pytest"), "{text}");
        }
    }
    assert!(seen, "no seed showed the test_mean reproduction");

    // Parametrized tests get their arguments as assignments.
    let text = statement("add_op", 0);
    let has_params = ["a = ", "b = ", "want = "].iter().all(|p| text.contains(p));
    let has_literal_call = text.contains("assert add(1, 2) == 3");
    assert!(has_params || has_literal_call, "{text}");
}

#[test]
fn method_reproduction_keeps_mutating_calls() {
    let text = statement("stack_pop", 3);
    assert!(
        text.contains("s = Stack()\ns.push(1)\ns.push(2)\nassert s.pop() == 2"),
        "{text}"
    );
    assert!(!text.contains("other = Stack()"), "{text}");
}

#[test]
fn fixtures_are_named_in_the_reproduction() {
    use smith_core::{Candidate, FailingTest, IssueContext, Patch, TestId};
    let source = "from shop import Order\n\ndef test_total(inventory, monkeypatch):\n    \"\"\"Totals add up.\"\"\"\n    order = Order(\"o1\", inventory)\n    order.add_line(\"FR-1\", 2)\n    assert order.total == 250\n";
    let output = "\
____ test_total ____

inventory = <shop.Inventory object at 0x7f00>, monkeypatch = <_pytest.monkeypatch.MonkeyPatch object at 0x7f01>

    def test_total(inventory, monkeypatch):
        order = Order(\"o1\", inventory)
        order.add_line(\"FR-1\", 2)
>       assert order.total == 250
E       assert 125 == 250
E        +  where 125 = <shop.Order object at 0x7f02>.total

tests/test_shop.py:7: AssertionError
";
    let context = IssueContext {
        candidate: Candidate::new(
            &smith_core::RepoRef::new("o/shop", "c"),
            "s",
            vec![],
            "",
            Patch::from_text(""),
        ),
        failing: vec![FailingTest {
            id: TestId::from("tests/test_shop.py::test_total"),
            source: Some(source.into()),
            output: output.into(),
        }],
        original_code: vec![],
        seed: 0,
    };
    let text = TemplateWriter::new().write(&context).unwrap();
    println!("{text}");
    assert!(
        text.contains("from shop import Order\n\n# `inventory` is a fixture of the test suite\norder = Order(\"o1\", inventory)\norder.add_line(\"FR-1\", 2)\nassert order.total == 250\n"),
        "{text}"
    );
    assert!(!text.contains("monkeypatch"), "{text}");
    assert!(!text.contains("Totals add up"), "{text}");
    assert!(!text.contains("0x7f"), "{text}");
    assert!(
        text.contains("E        +  where 125 = <shop.Order object>.total"),
        "{text}"
    );
}

#[test]
fn statements_name_no_test_ids_unless_asked() {
    for m in mutations() {
        for seed in 0..8 {
            let context = m.context(&calc_repo(), &m.log(), seed);
            let plain = TemplateWriter::new().write(&context).unwrap();
            let listed = TemplateWriter::new()
                .listing_failing_tests(true)
                .write(&context)
                .unwrap();
            for t in &context.failing {
                assert!(
                    !plain.contains(t.id.as_str()),
                    "{}: names {}\n{plain}",
                    m.name,
                    t.id
                );
            }
            let first = &context.failing[0].id;
            assert!(
                listed.contains(&format!("- `{first}`")),
                "{}: does not list {first}\n{listed}",
                m.name
            );
            // The list is all the option adds.
            assert!(
                listed.starts_with(plain.trim_end()),
                "{plain}\n---\n{listed}"
            );
        }
    }
}
