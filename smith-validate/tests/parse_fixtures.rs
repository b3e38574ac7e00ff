//! The log and JUnit parsers on recorded pytest 9 output, compared with what
//! SWE-bench 5.0.2's `parse_log_pytest` made of the same logs (recorded by
//! `tests/fixtures/logs/record_swebench.py`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use smith_core::{Outcome, TestId};
use smith_validate::{parse_junit_xml, parse_pytest_log};

fn logs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs")
}

fn swebench(name: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(logs().join(format!("{name}.swebench.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::from_value(v["statuses"].clone()).unwrap()
}

fn status(o: Outcome) -> &'static str {
    match o {
        Outcome::Passed => "PASSED",
        Outcome::Failed => "FAILED",
        Outcome::Error => "ERROR",
        Outcome::Skipped => "SKIPPED",
        Outcome::XFailed => "XFAIL",
        Outcome::XPassed => "XPASS",
    }
}

/// Every fixture: wherever SWE-bench names a whole test id (no whitespace
/// in the id, so its split did not cut it), we give the same status, except
/// for the documented SUBFAILED correction; and every id we give that
/// SWE-bench lacks is one it cannot represent.
#[test]
fn agrees_with_swebench_on_every_fixture() {
    let mut compared = 0;
    for name in [
        "weird",
        "segfault",
        "keyboard_interrupt",
        "collection_interrupted",
    ] {
        let log = std::fs::read_to_string(logs().join(format!("{name}.log"))).unwrap();
        let ours = parse_pytest_log(&log);
        let theirs = swebench(name);
        for (id, their_status) in &theirs {
            let truncated = ours.keys().any(|k| {
                k.as_str() != id
                    && k.as_str().starts_with(id.as_str())
                    && k.as_str()[id.len()..].starts_with(' ')
            });
            if truncated {
                continue;
            }
            let our = ours.get(&TestId::from(id.as_str())).copied();
            let subfailed = log
                .lines()
                .any(|l| l.starts_with("SUBFAILED") && l.contains(id.as_str()));
            if subfailed {
                assert_eq!(their_status, "PASSED", "{name}: {id}");
                assert_eq!(our, Some(Outcome::Failed), "{name}: {id}");
            } else {
                assert_eq!(our.map(status), Some(their_status.as_str()), "{name}: {id}");
            }
            compared += 1;
        }
        for (id, outcome) in &ours {
            if !theirs.contains_key(id.as_str()) {
                assert!(
                    id.as_str().contains(' ') || *outcome == Outcome::XPassed,
                    "{name}: {id} only in ours"
                );
            }
        }
    }
    assert!(compared >= 14, "compared {compared}");
}

#[test]
fn ids_with_spaces_are_kept_whole() {
    let log = std::fs::read_to_string(logs().join("weird.log")).unwrap();
    let ours = parse_pytest_log(&log);
    for id in [
        "tests/test_ids.py::test_param[a b]",
        "tests/test_ids.py::test_param[dash - here]",
        "tests/test_ids.py::test_param[\\xe9 \\xfc]",
    ] {
        assert_eq!(ours.get(&TestId::from(id)), Some(&Outcome::Passed), "{id}");
    }
    assert_eq!(
        ours.get(&TestId::from("tests/test_ids.py::test_xpass")),
        Some(&Outcome::XPassed)
    );
    assert_eq!(
        ours.get(&TestId::from("tests/test_collect_error.py")),
        Some(&Outcome::Error)
    );
    assert_eq!(ours.len(), 17);
}

#[test]
fn junit_xunit1_gives_node_ids_and_outcomes() {
    let xml = std::fs::read_to_string(logs().join("weird.xunit1.xml")).unwrap();
    let report = parse_junit_xml(&xml).unwrap();
    let outcomes = report.outcomes();
    let log = std::fs::read_to_string(logs().join("weird.log")).unwrap();
    let from_log = parse_pytest_log(&log);
    // JUnit knows skips by id, the log does not; the log knows xpass,
    // JUnit reports it as a pass. Both see the failed subtest.
    for (id, o) in &outcomes {
        match from_log.get(id) {
            Some(l) if id.as_str().ends_with("test_xpass") => {
                assert_eq!((*o, *l), (Outcome::Passed, Outcome::XPassed))
            }
            Some(l) => assert_eq!(o, l, "{id}"),
            None => assert_eq!(*o, Outcome::Skipped, "{id}"),
        }
    }
    assert_eq!(outcomes.len(), 18);
    let case = report.cases.iter().find(|c| c.name == "test_bad").unwrap();
    assert!(case.text.contains("assert 1 + 1 == 3"), "{}", case.text);
    assert!(case.text.contains('>'));
    assert_eq!(
        case.message.as_deref(),
        Some("AssertionError: arithmetic\nassert (1 + 1) == 3")
    );
    let flood = report.durations()[&TestId::from("tests/test_phases.py::test_flood")];
    assert!(flood > 0.0);
}

#[test]
fn junit_xunit2_has_outcomes_but_no_node_ids() {
    let xml = std::fs::read_to_string(logs().join("weird.xunit2.xml")).unwrap();
    let report = parse_junit_xml(&xml).unwrap();
    assert_eq!(report.cases.len(), 18);
    assert!(report.outcomes().is_empty());
    let failed = report
        .cases
        .iter()
        .filter(|c| c.outcome == Outcome::Failed)
        .count();
    assert_eq!(failed, 5);
}

#[test]
fn bad_xml_is_an_error() {
    assert!(parse_junit_xml("<testsuite><testcase name='a'></testsuite>").is_err());
}
