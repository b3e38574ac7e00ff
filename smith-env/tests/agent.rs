//! The LM install agent against a scripted model, with real venvs.

mod common;

use smith_core::memory::ScriptedModel;
use smith_env::{install_with_agent, AgentOptions, EnvOptions};

const NEEDS_HELPER: &[(&str, &str)] = &[
    (
        "vendor/helper/pyproject.toml",
        "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
         [project]\nname = \"helper\"\nversion = \"1.0\"\n\n[tool.setuptools]\npy-modules = [\"helper\"]\n",
    ),
    ("vendor/helper/helper.py", "def answer():\n    return 42\n"),
    (
        "tests/test_app.py",
        "from helper import answer\n\n\ndef test_answer():\n    assert answer() == 42\n",
    ),
];

#[test]
fn agent_commands_that_work_become_the_spec() {
    let repo = common::write_repo(NEEDS_HELPER);
    let model = ScriptedModel::new([
        "Let me try something first.\n```sh\nfalse\n```",
        "The tests import `helper`, vendored in the repo:\n```sh\npip install ./vendor/helper\n```",
    ]);
    let outcome = install_with_agent(
        repo.path(),
        &model,
        &EnvOptions::new(common::cache_dir()),
        &AgentOptions::default(),
    )
    .unwrap();
    let env = &outcome.environment;
    assert_eq!(env.spec.strategy, "agent:scripted");
    assert_eq!(env.spec.install, ["pip install ./vendor/helper"]);
    assert_eq!(env.collected, Some(1));
    assert_eq!(outcome.steps.len(), 2);
    assert_eq!(outcome.steps[0].exit_code, Some(1));
    assert_eq!(outcome.steps[1].collected, Some(1));
    // The model saw the collection error, then the failed command's result.
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[0]
        .iter()
        .any(|m| m.content.contains("No module named 'helper'")));
    assert!(requests[1]
        .iter()
        .any(|m| m.content.contains("`false` exited with Some(1)")));
    let _ = std::fs::remove_dir_all(&env.venv);
}

#[test]
fn agent_that_gives_up_is_an_environment_error() {
    let repo = common::write_repo(NEEDS_HELPER);
    let model = ScriptedModel::new(["I cannot do this. GIVE UP"]);
    let err = install_with_agent(
        repo.path(),
        &model,
        &EnvOptions::new(common::cache_dir()),
        &AgentOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, smith_core::Error::Environment { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("gave up after 1 steps"), "{err}");
}

#[test]
fn agent_stops_at_its_step_limit() {
    let repo = common::write_repo(NEEDS_HELPER);
    let model = ScriptedModel::new(["```sh\ntrue\n```"; 5]);
    let options = AgentOptions {
        max_steps: 3,
        ..AgentOptions::default()
    };
    let err = install_with_agent(
        repo.path(),
        &model,
        &EnvOptions::new(common::cache_dir()),
        &options,
    )
    .unwrap_err();
    assert!(err.to_string().contains("after 3 steps"), "{err}");
    assert_eq!(model.requests().len(), 3);
}
