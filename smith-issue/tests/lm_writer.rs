//! The LM issue writer over the in-memory scripted model: prompt contents,
//! replaceable templates, seed-chosen tests, several statements per task.

mod common;

use common::{calc_repo, mutation};
use smith_core::memory::ScriptedModel;
use smith_core::{IssueWriter, Role};
use smith_issue::{write_checked, LmIssueWriter, PromptTemplates};

#[test]
fn prompt_holds_patch_one_test_source_and_its_output() {
    let m = mutation("mean_len");
    let context = m.context(&calc_repo(), &m.log(), 0);
    let writer = LmIssueWriter::new(ScriptedModel::new(Vec::<String>::new()));
    let messages = writer.messages(&context);
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].role, Role::System);
    let user = &messages[1].content;
    assert!(
        user.contains("+    return total / (len(values) - 1)"),
        "{user}"
    );
    assert!(user.contains("smith/calc"), "{user}");
    let chosen = writer.chosen_test(&context).unwrap();
    assert!(user.contains(chosen.id.as_str()), "{user}");
    assert!(
        user.contains(chosen.source.as_deref().unwrap().trim()),
        "{user}"
    );
    assert!(
        user.contains(chosen.output.lines().find(|l| l.starts_with('E')).unwrap()),
        "{user}"
    );
    assert!(!user.contains("{{"), "unfilled placeholder: {user}");
}

#[test]
fn the_seed_chooses_the_test_shown() {
    let m = mutation("add_op");
    let mut context = m.context(&calc_repo(), &m.log(), 0);
    assert!(context.failing.len() >= 3);
    let writer = LmIssueWriter::new(ScriptedModel::new(Vec::<String>::new()));
    let mut shown = std::collections::BTreeSet::new();
    for seed in 0..30 {
        context.seed = seed;
        let id = writer.chosen_test(&context).unwrap().id.clone();
        assert_eq!(
            writer.chosen_test(&context).unwrap().id,
            id,
            "not deterministic"
        );
        shown.insert(id);
    }
    assert!(shown.len() >= 2, "{shown:?}");
}

#[test]
fn templates_from_a_directory_replace_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("user.md"),
        "Bug in {{repo}} seen by {{test_id}}:\n{{test_output}}",
    )
    .unwrap();
    let prompts = PromptTemplates::from_dir(dir.path()).unwrap();
    assert_eq!(prompts.system, PromptTemplates::default().system);
    let m = mutation("stack_pop");
    let context = m.context(&calc_repo(), &m.log(), 0);
    let writer = LmIssueWriter::new(ScriptedModel::new(Vec::<String>::new())).with_prompts(prompts);
    let user = &writer.messages(&context)[1].content;
    assert!(
        user.starts_with("Bug in smith/calc seen by tests/test_calc.py::TestStack::test_lifo:\n"),
        "{user}"
    );

    std::fs::write(dir.path().join("system.md"), "{{nonsense}}").unwrap();
    let err = PromptTemplates::from_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("nonsense"), "{err}");
}

#[test]
fn write_many_sends_one_request_per_statement() {
    let m = mutation("add_op");
    let context = m.context(&calc_repo(), &m.log(), 40);
    let model = std::sync::Arc::new(ScriptedModel::new([
        "Title one\n\nbody",
        "```\nTitle two\n\nbody\n```",
    ]));
    let writer = LmIssueWriter::new(model.clone());
    let statements = writer.write_many(&context, 2).unwrap();
    assert_eq!(
        statements,
        vec!["Title one\n\nbody".to_string(), "Title two\n\nbody".into()]
    );
    assert_eq!(model.requests().len(), 2);
    // Out of replies: the model's error surfaces.
    assert!(writer.write(&context).is_err());
}

#[test]
fn leaking_model_replies_are_regenerated() {
    let m = mutation("add_op");
    let context = m.context(&calc_repo(), &m.log(), 0);
    let model = ScriptedModel::new([
        "add is wrong\n\nIt does `return a - b`.",
        "add is wrong\n\n```diff\n@@ -5,2 +5,2 @@\n```",
        "add is wrong\n\n`add(1, 2)` returns -1 instead of 3.",
    ]);
    let checked = write_checked(&LmIssueWriter::new(model), &context, 5).unwrap();
    assert_eq!((checked.attempts, checked.leaked), (3, 2));
    assert_eq!(
        checked.statement,
        "add is wrong\n\n`add(1, 2)` returns -1 instead of 3."
    );
}

#[test]
fn empty_replies_are_errors() {
    let m = mutation("add_op");
    let context = m.context(&calc_repo(), &m.log(), 0);
    let writer = LmIssueWriter::new(ScriptedModel::new(["<think>nothing</think>"]));
    let err = writer.write(&context).unwrap_err().to_string();
    assert!(err.contains("empty statement"), "{err}");
}
