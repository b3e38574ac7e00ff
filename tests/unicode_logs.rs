//! The pytest output readers that feed validation and issue writing never
//! panic on any Unicode input: the `-rA` short-summary parser, JUnit XML,
//! the failure excerpts validation records (cut to a byte budget) and the
//! issue writer's excerpt of one test.

use proptest::prelude::*;
use smith::validate::{failure_excerpt, parse_junit_xml, parse_pytest_log};
use smith::TestId;

/// Pieces of pytest output (status words, section rules, ids with
/// parameters, XML) mixed with arbitrary characters.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<char>().prop_map(String::from),
        "\\PC{0,6}",
        prop::sample::select(vec![
            "\n",
            " ",
            "PASSED ",
            "FAILED ",
            "ERROR ",
            "SKIPPED ",
            "XFAIL ",
            "XPASS ",
            " - ",
            "::",
            "[",
            "]",
            "tests/t.py",
            "test_x",
            "TestA",
            "=== ",
            " ===",
            "FAILURES",
            "ERRORS",
            "short test summary info",
            "___ ",
            " ___",
            "ERROR at setup of ",
            "ERROR collecting ",
            " (",
            ")",
            "E   ",
            "╔",
            "═",
            "→",
            "é",
            "😀",
            "\u{301}",
            "<testcase classname=\"t\" name=\"x\">",
            "</testcase>",
            "<failure message=\"",
            "\">",
            "</failure>",
            "<skipped type=\"pytest.xfail\"/>",
            "<testsuite>",
            "&amp;",
            "&#9556;",
            "\r",
            "\0",
        ])
        .prop_map(str::to_string),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..120).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn log_readers_never_panic(log in text(), ids in prop::collection::vec(text(), 0..4), budget in 0usize..400) {
        let outcomes = parse_pytest_log(&log);
        let _ = parse_junit_xml(&log);
        let mut tests: Vec<TestId> = ids.iter().map(|s| TestId::from(s.as_str())).collect();
        tests.extend(outcomes.keys().take(3).cloned());
        let refs: Vec<&TestId> = tests.iter().collect();
        let excerpt = failure_excerpt(&log, &refs, budget);
        for t in &tests {
            let _ = smith::issue::test_failure(&log, t);
            let _ = smith::issue::test_failure(&excerpt, t);
        }
    }
}
