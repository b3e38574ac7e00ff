//! lm/feature_add with a scripted agent in an in-memory sandbox: a change
//! that breaks old tests becomes a candidate (without the agent's tests),
//! a harmless one does not, and steps are bounded.

use std::collections::BTreeSet;

use smith_core::memory::{MemorySandbox, ScriptedExecutor, ScriptedModel};
use smith_core::{
    Baseline, Executor, RunOptions, RunOutput, Sandbox, TestId, TestSelection, Workspace,
};
use smith_mutate::{feature_add, FeatureAddOptions};

const CALC: &str = "def add(a, b):\n    return a + b\n\n\ndef neg(a):\n    return -a\n";

fn sandbox() -> MemorySandbox {
    MemorySandbox::new([
        ("calc.py".to_string(), CALC.to_string()),
        ("tests/test_calc.py".to_string(), "# tests\n".to_string()),
    ])
    .with_handler(|files, cmd| RunOutput {
        exit_code: Some(0),
        stdout: if cmd.args.last().is_some_and(|a| a.starts_with("cat ")) {
            String::from_utf8_lossy(&files["calc.py"]).into_owned()
        } else {
            String::new()
        },
        ..Default::default()
    })
}

/// Tests pass while their needle is in calc.py.
fn executor() -> ScriptedExecutor {
    ScriptedExecutor::new()
        .test("tests/test_calc.py::test_add", "calc.py", "return a + b")
        .test("tests/test_calc.py::test_neg", "calc.py", "return -a")
}

fn baseline(ws: &mut dyn Workspace) -> Baseline {
    let report = executor()
        .run_tests(ws, &TestSelection::All, &RunOptions::default())
        .unwrap();
    Baseline::from_reports(&smith_core::RepoRef::new("acme/calc", "c0ffee"), &[report])
}

#[test]
fn breaking_feature_becomes_a_candidate_without_the_agent_tests() {
    let model = ScriptedModel::new([
        "Let me look.\n```bash\ncat calc.py\n```",
        "```write calc.py\ndef add(*xs):\n    return sum(xs)\n\n\ndef neg(a):\n    return -a\n```",
        "```write tests/test_calc.py\ndef test_add_many():\n    assert add(1, 2, 3) == 6\n```",
        "DONE",
    ]);
    let sb = sandbox();
    let mut ws = sb.workspace().unwrap();
    let base = baseline(&mut ws);
    assert_eq!(base.passing.len(), 2);
    let options = FeatureAddOptions::new(smith_core::RepoRef::new("acme/calc", "c0ffee"));
    let out = feature_add(
        &model,
        &mut ws,
        &executor(),
        &base,
        "add() should accept any number of arguments",
        &options,
    )
    .unwrap();
    assert!(out.finished);
    assert_eq!(out.steps, 4);
    assert_eq!(out.written, ["calc.py", "tests/test_calc.py"]);
    assert_eq!(
        out.broken,
        BTreeSet::from([TestId::from("tests/test_calc.py::test_add")])
    );
    let c = out.candidate.expect("candidate");
    assert_eq!(c.strategy, "lm/feature_add");
    assert_eq!(c.patch.paths().unwrap(), ["calc.py"]);
    assert!(c
        .patch
        .apply_to_text("calc.py", CALC)
        .unwrap()
        .contains("return sum(xs)"));
    // The command's output went back to the agent.
    let requests = model.requests();
    assert!(requests[1]
        .last()
        .unwrap()
        .content
        .contains("def add(a, b):"));
    // The workspace is clean again.
    assert_eq!(ws.read("calc.py").unwrap(), CALC.as_bytes());
}

#[test]
fn harmless_feature_is_no_candidate_and_steps_are_bounded() {
    let harmless = "```write calc.py\ndef add(a, b):\n    return a + b\n\n\ndef neg(a):\n    return -a\n\n\ndef double(a):\n    return 2 * a\n```";
    let model = ScriptedModel::new([harmless, "hmm", "still thinking", "never done"]);
    let sb = sandbox();
    let mut ws = sb.workspace().unwrap();
    let base = baseline(&mut ws);
    let options = FeatureAddOptions {
        max_steps: 3,
        ..FeatureAddOptions::new(smith_core::RepoRef::new("acme/calc", "c0ffee"))
    };
    let out = feature_add(
        &model,
        &mut ws,
        &executor(),
        &base,
        "add double()",
        &options,
    )
    .unwrap();
    assert_eq!(out.steps, 3);
    assert!(!out.finished);
    assert!(out.broken.is_empty());
    assert!(out.candidate.is_none());
    assert_eq!(model.requests().len(), 3);
    // An unparsable reply is answered with the protocol reminder.
    assert!(model.requests()[2]
        .last()
        .unwrap()
        .content
        .contains("no action found"));
}

#[test]
fn writes_outside_the_repository_are_refused() {
    let model = ScriptedModel::new(["```write ../evil.py\nx = 1\n```", "DONE"]);
    let sb = sandbox();
    let mut ws = sb.workspace().unwrap();
    let base = baseline(&mut ws);
    let options = FeatureAddOptions::new(smith_core::RepoRef::new("acme/calc", "c0ffee"));
    let out = feature_add(&model, &mut ws, &executor(), &base, "x", &options).unwrap();
    assert!(out.written.is_empty());
    assert!(model.requests()[1]
        .last()
        .unwrap()
        .content
        .starts_with("refused"));
}
