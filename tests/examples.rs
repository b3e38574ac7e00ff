//! The examples run in CI: each example's pipeline function runs here on
//! the demo repository, and what it reports is checked.

mod common;

#[path = "../examples/custom_mutator.rs"]
#[allow(unreachable_pub)] // examples are binaries: their items are `pub` for readers
mod custom_mutator;

#[path = "../examples/counting_executor.rs"]
#[allow(unreachable_pub)] // examples are binaries: their items are `pub` for readers
mod counting_executor;

#[path = "../examples/logging_sandbox.rs"]
#[allow(unreachable_pub)] // examples are binaries: their items are `pub` for readers
mod logging_sandbox;

fn demo() -> std::path::PathBuf {
    common::manifest_dir().join("examples/demo-repo")
}

#[test]
fn custom_mutator_example_ends_in_validated_instances() {
    let out = tempfile::tempdir().unwrap();
    let cache = common::env_cache();
    let summary = custom_mutator::custom_mutator_run(&demo(), out.path(), Some(&cache)).unwrap();
    let ours = &summary.strategies["custom/len_off_by_one"];
    assert!(ours.validated >= 1, "{summary:#?}");
    assert!(summary.instances >= 1, "{summary:#?}");
    let instances: Vec<smith::TaskInstance> =
        smith::store::read_jsonl(&summary.instances_path).unwrap();
    assert!(instances
        .iter()
        .all(|i| i.strategy == "custom/len_off_by_one" && i.patch.contains("- 1)")));
}

#[test]
fn counting_executor_example_sees_every_run() {
    let out = tempfile::tempdir().unwrap();
    let cache = common::env_cache();
    let (summary, runs) =
        counting_executor::counting_executor_run(&demo(), out.path(), Some(&cache)).unwrap();
    assert!(summary.validated >= 1, "{summary:#?}");
    // Two baseline runs and at least one per candidate.
    assert!(runs >= 2 + summary.validated, "{runs} runs, {summary:#?}");
}

#[test]
fn logging_sandbox_example_logs_the_commands() {
    let out = tempfile::tempdir().unwrap();
    let cache = common::env_cache();
    let (summary, log) =
        logging_sandbox::logging_sandbox_run(&demo(), out.path(), Some(&cache)).unwrap();
    assert!(summary.validated >= 1, "{summary:#?}");
    assert!(!log.is_empty());
    assert!(
        log.iter().any(|l| l.contains("python")),
        "no test command logged: {log:?}"
    );
}
