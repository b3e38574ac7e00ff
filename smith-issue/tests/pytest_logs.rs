//! Reading pytest output: test sources by node id, failure excerpts and
//! symptoms, over logs of real pytest runs of the calc fixture.

mod common;

use common::{calc_repo, failing_tests, fixtures, mutation};
use smith_core::TestId;
use smith_issue::{test_failure, test_source, Symptom};

#[test]
fn test_source_finds_functions_methods_and_parametrized_tests() {
    let repo = calc_repo();
    let plain = test_source(&repo, &TestId::from("tests/test_calc.py::test_add")).unwrap();
    assert_eq!(
        plain,
        "from calc import add\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    );

    let param = test_source(
        &repo,
        &TestId::from("tests/test_calc.py::test_add_many[2-3-5]"),
    )
    .unwrap();
    assert!(
        param.starts_with("import pytest\nfrom calc import add\n\n@pytest.mark.parametrize"),
        "{param}"
    );
    assert!(
        param.ends_with("def test_add_many(a, b, want):\n    assert add(a, b) == want\n"),
        "{param}"
    );

    let method = test_source(
        &repo,
        &TestId::from("tests/test_calc.py::TestStack::test_lifo"),
    )
    .unwrap();
    assert!(
        method.starts_with("from calc import Stack\n\ndef test_lifo(self):\n"),
        "{method}"
    );
    assert!(method.contains("    assert s.pop() == 2"), "{method}");
    assert!(!method.contains("test_len"), "{method}");

    assert!(test_source(&repo, &TestId::from("tests/test_calc.py::test_missing")).is_none());
    assert!(test_source(&repo, &TestId::from("tests/nope.py::test_add")).is_none());
    assert!(test_source(
        &repo,
        &TestId::from("tests/test_calc.py::TestOther::test_lifo")
    )
    .is_none());
}

#[test]
fn test_source_handles_nested_classes_and_multiline_signatures() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("t")).unwrap();
    std::fs::write(
        dir.path().join("t/test_n.py"),
        "import os\n\nclass TestOuter:\n    class TestInner:\n        @staticmethod\n        def test_x(\n            a=1,\n        ):\n            s = \"\"\"\nnot code\n\"\"\"\n            assert os.sep\n\n        def test_y(self):\n            pass\n\n    def test_x(self):\n        pass\n",
    )
    .unwrap();
    let src = test_source(
        dir.path(),
        &TestId::from("t/test_n.py::TestOuter::TestInner::test_x"),
    )
    .unwrap();
    assert_eq!(
        src,
        "import os\n\n@staticmethod\ndef test_x(\n    a=1,\n):\n    s = \"\"\"\nnot code\n\"\"\"\n    assert os.sep\n"
    );
    let outer = test_source(dir.path(), &TestId::from("t/test_n.py::TestOuter::test_x")).unwrap();
    assert_eq!(outer, "def test_x(self):\n    pass\n");
}

#[test]
fn test_failure_takes_one_tests_section_from_long_tracebacks() {
    let log = mutation("mean_len").log();
    let single = test_failure(&log, &TestId::from("tests/test_calc.py::test_mean_single")).unwrap();
    assert!(single.starts_with("_"), "{single}");
    assert!(
        single.contains("E       ZeroDivisionError: division by zero"),
        "{single}"
    );
    assert!(
        single.contains("calc/__init__.py:12: ZeroDivisionError"),
        "{single}"
    );
    assert!(
        !single.contains("test_mean()"),
        "other test leaked in: {single}"
    );
    assert!(!single.contains("PASSED"), "{single}");

    let mean = test_failure(&log, &TestId::from("tests/test_calc.py::test_mean")).unwrap();
    assert!(mean.contains("E       assert 6.0 == 4"), "{mean}");
    assert!(!mean.contains("ZeroDivisionError"), "{mean}");

    // A passing test has no failure section.
    assert!(test_failure(&log, &TestId::from("tests/test_calc.py::test_add")).is_none());
    // Same name in another file: not this section (it names its own file).
    assert_eq!(
        test_failure(&log, &TestId::from("tests/other.py::test_mean")),
        None
    );
}

#[test]
fn test_failure_reads_methods_params_and_short_tracebacks() {
    let log = mutation("stack_pop").log();
    let lifo = test_failure(
        &log,
        &TestId::from("tests/test_calc.py::TestStack::test_lifo"),
    )
    .unwrap();
    assert!(
        lifo.contains("AssertionError: stack must be last-in, first-out"),
        "{lifo}"
    );

    let short = std::fs::read_to_string(fixtures().join("logs/add_op_short.log")).unwrap();
    let ids = failing_tests(&short);
    assert_eq!(ids.len(), 3, "{ids:?}");
    let p = test_failure(
        &short,
        &TestId::from("tests/test_calc.py::test_add_many[-1-1-0]"),
    )
    .unwrap();
    assert!(p.contains("E   assert -2 == 0"), "{p}");
    assert!(!p.contains("assert -1 == 5"), "{p}");
}

#[test]
fn test_failure_finds_setup_errors() {
    let log = "\
==================================== ERRORS ====================================
_____________________ ERROR at setup of test_uses_fixture ______________________

    @pytest.fixture
    def broken():
>       raise RuntimeError(\"fixture boom\")
E       RuntimeError: fixture boom

tests/test_f.py:34: RuntimeError
=========================== short test summary info ============================
ERROR tests/test_f.py::test_uses_fixture - RuntimeError: fixture boom
";
    let e = test_failure(log, &TestId::from("tests/test_f.py::test_uses_fixture")).unwrap();
    assert!(e.contains("ERROR at setup of test_uses_fixture"));
    let s = Symptom::parse(&e);
    assert_eq!(s.exception.as_deref(), Some("RuntimeError"));
    assert_eq!(s.message.as_deref(), Some("fixture boom"));
}

#[test]
fn symptoms_of_each_fixture_bug() {
    let repo = calc_repo();
    let _ = repo;
    let excerpt = |m: &str, t: &str| test_failure(&mutation(m).log(), &TestId::from(t)).unwrap();

    let s = Symptom::parse(&excerpt(
        "add_op",
        "tests/test_calc.py::test_add_many[2-3-5]",
    ));
    assert_eq!(s.exception.as_deref(), Some("AssertionError"));
    assert_eq!(
        (s.actual.as_deref(), s.expected.as_deref()),
        (Some("-1"), Some("5"))
    );
    assert_eq!(s.call.as_deref(), Some("add(2, 3)"));
    assert_eq!(s.failing_line.as_deref(), Some("assert add(a, b) == want"));
    assert_eq!(
        s.arguments,
        vec![
            ("a".into(), "2".into()),
            ("b".into(), "3".into()),
            ("want".into(), "5".into())
        ]
    );

    let s = Symptom::parse(&excerpt("mean_len", "tests/test_calc.py::test_mean_single"));
    assert_eq!(s.exception.as_deref(), Some("ZeroDivisionError"));
    assert_eq!(s.message.as_deref(), Some("division by zero"));
    assert_eq!(s.failing_line.as_deref(), Some("assert mean([5]) == 5"));
    assert!(s.arguments.is_empty(), "{:?}", s.arguments);

    let s = Symptom::parse(&excerpt(
        "parse_age_guard",
        "tests/test_calc.py::test_parse_age_rejects_negative",
    ));
    assert_eq!(s.exception.as_deref(), Some("Failed"));
    assert_eq!(s.message.as_deref(), Some("DID NOT RAISE ValueError"));

    let s = Symptom::parse(&excerpt(
        "stack_pop",
        "tests/test_calc.py::TestStack::test_lifo",
    ));
    assert_eq!(s.exception.as_deref(), Some("AssertionError"));
    assert_eq!(
        s.message.as_deref(),
        Some("stack must be last-in, first-out")
    );
    assert_eq!(
        (s.actual.as_deref(), s.expected.as_deref()),
        (Some("1"), Some("2"))
    );
}

#[test]
fn expected_on_the_left_is_recognised() {
    let s = Symptom::parse("E       assert 3 == -1\nE        +  where -1 = add(1, 2)\n");
    assert_eq!(s.actual.as_deref(), Some("-1"));
    assert_eq!(s.expected.as_deref(), Some("3"));
}

#[test]
fn test_failure_reads_logs_already_cut_to_sections() {
    // A validator keeps only the failure sections of a run, re-headed.
    let cut = "\
____ test_mean ____

    def test_mean():
>       assert mean(values) == 4
E       assert 6.0 == 4

tests/test_calc.py:18: AssertionError
____ ERROR collecting tests/test_broken.py ____
E   ImportError: cannot import name 'gone'
____ test_loop (i=2) ____
E       assert 3 == 2
";
    let mean = test_failure(cut, &TestId::from("tests/test_calc.py::test_mean")).unwrap();
    assert!(mean.contains("E       assert 6.0 == 4"), "{mean}");
    assert!(!mean.contains("ImportError"), "{mean}");
    let collect = test_failure(cut, &TestId::from("tests/test_broken.py::test_any")).unwrap();
    assert!(collect.contains("ImportError"), "{collect}");
    let sub = test_failure(cut, &TestId::from("tests/test_s.py::test_loop")).unwrap();
    assert!(sub.contains("assert 3 == 2"), "{sub}");
    // Passing tests' captured output in a full log is not a failure.
    let full = "==== PASSES ====\n____ test_ok ____\nprinted\n==== short test summary info ====\n";
    assert!(test_failure(full, &TestId::from("t.py::test_ok")).is_none());
}

#[test]
fn test_source_brings_module_helpers_and_wrapped_arguments_are_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    std::fs::write(
        dir.path().join("tests/test_q.py"),
        "import pytest\nfrom shop.query import select\n\n\ndef skus(inventory, query):\n    return [i.sku for i in select(inventory, query)]\n\n\n@pytest.fixture\ndef query():\n    return 'x'\n\n\ndef test_q(inventory, query):\n    assert skus(inventory, query) == ['A']\n",
    )
    .unwrap();
    let src = test_source(dir.path(), &TestId::from("tests/test_q.py::test_q")).unwrap();
    assert_eq!(
        src,
        "from shop.query import select\n\ndef skus(inventory, query):\n    return [i.sku for i in select(inventory, query)]\n\ndef test_q(inventory, query):\n    assert skus(inventory, query) == ['A']\n"
    );

    let excerpt = "\
_________________ test_q[qty > 12-expected0] _________________

inventory = <shop.inventory.Inventory object at 0x7f7ea739c550>
query = 'qty > 12', expected = ['FR-0001']

    def test_q(inventory, query, expected):
>       assert skus(inventory, query) == expected
";
    let s = Symptom::parse(excerpt);
    let names: Vec<&str> = s.arguments.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["inventory", "query", "expected"]);
    assert_eq!(s.arguments[1].1, "'qty > 12'");
    assert_eq!(s.arguments[2].1, "['FR-0001']");
}
