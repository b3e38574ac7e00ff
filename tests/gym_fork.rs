//! Gym episodes graded through fork servers give exactly the grades of a
//! fresh interpreter: for gold fixes, empty patches, wrong patches and
//! partial fixes, and when an earlier episode's patch monkeypatched a
//! module at import (nothing of it may reach the next episode).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use smith::grade::Grader;
use smith::gym::{Grade, Task};
use smith::validate::PytestExecutor;
use smith::{CommandSpec, FileChange, Patch, Sandbox, TaskInstance, TestId};

/// The demo run's sandbox and its test command.
fn environment() -> (Arc<dyn Sandbox>, Vec<String>) {
    let run = common::demo_run();
    let grader = Grader::from_run_dir(run).expect("grader from the run dir");
    let env: serde_json::Value = smith::store::read_json(&run.join("env.json"))
        .unwrap()
        .expect("env.json");
    let test_cmd: Vec<String> = serde_json::from_value(env["spec"]["test_cmd"].clone()).unwrap();
    (grader.sandbox().clone(), test_cmd)
}

/// The same task twice: graded through fork servers, and in fresh
/// interpreters. The forking executor is returned to read its counters.
fn twins(instance: &TaskInstance) -> (Task, Task, PytestExecutor) {
    let (sandbox, test_cmd) = environment();
    let forking = PytestExecutor::new("python", test_cmd.clone()).forking(true);
    let fresh = PytestExecutor::new("python", test_cmd);
    assert!(forking.is_forking(), "the demo's test command is -m pytest");
    let fork_task =
        Task::from_instance(instance.clone(), sandbox.clone(), Arc::new(forking.clone()));
    let fresh_task = Task::from_instance(instance.clone(), sandbox, Arc::new(fresh));
    (fork_task, fresh_task, forking)
}

fn files(i: &TaskInstance) -> BTreeSet<String> {
    Patch::from_text(i.patch.clone())
        .paths()
        .unwrap()
        .into_iter()
        .collect()
}

/// Two instances whose bugs are in different files.
fn two_file_pair(instances: &[TaskInstance]) -> (TaskInstance, TaskInstance) {
    for (n, a) in instances.iter().enumerate() {
        for b in &instances[n + 1..] {
            if files(a).is_disjoint(&files(b)) {
                return (a.clone(), b.clone());
            }
        }
    }
    panic!("two instances with bugs in different files")
}

/// An instance with both bugs, labelled by running its buggy tree in fresh
/// interpreters: of the tests either bug breaks or keeps, those failing are
/// its FAIL_TO_PASS.
fn combined(a: &TaskInstance, b: &TaskInstance) -> TaskInstance {
    let mut patch = a.patch.clone();
    if !patch.ends_with('\n') {
        patch.push('\n');
    }
    patch.push_str(&b.patch);
    let mut probe = a.clone();
    probe.instance_id = format!("{}+{}", a.instance_id, b.instance_id);
    probe.patch = patch;
    let tests: BTreeSet<TestId> = [a, b]
        .iter()
        .flat_map(|i| i.fail_to_pass.iter().chain(&i.pass_to_pass))
        .cloned()
        .collect();
    probe.fail_to_pass = Vec::new();
    probe.pass_to_pass = tests.into_iter().collect();
    let (_, fresh, _) = twins(&probe);
    let g = fresh.grade(&Patch::from_text("")).unwrap();
    probe.fail_to_pass = g.pass_to_pass.failed;
    probe.pass_to_pass = g.pass_to_pass.passed;
    assert!(!probe.fail_to_pass.is_empty() && !probe.pass_to_pass.is_empty());
    probe
}

/// Grade `patch` in a new episode of each task and check they agree.
fn same_grade(fork: &Task, fresh: &Task, patch: &Patch, what: &str) -> Grade {
    let forked = fork.episode().unwrap().grade(patch).unwrap();
    let expected = fresh.episode().unwrap().grade(patch).unwrap();
    assert_eq!(
        forked,
        expected,
        "{what} on {}: fork servers and a fresh interpreter disagree",
        fork.instance().instance_id
    );
    forked
}

fn gold(i: &TaskInstance) -> Patch {
    Patch::from_text(i.patch.clone()).reverse()
}

#[test]
fn fork_servers_grade_gold_empty_wrong_and_partial_patches_as_fresh_interpreters_do() {
    let instances = common::demo_instances();
    let (a, b) = two_file_pair(&instances);
    let both = combined(&a, &b);
    let mut cases: Vec<(TaskInstance, Vec<(&str, Patch)>)> = Vec::new();
    for inst in [&a, &b] {
        // A wrong patch: the other instance's bug on top of this one.
        let other = if inst == &a { &b } else { &a };
        cases.push((
            inst.clone(),
            vec![
                ("gold", gold(inst)),
                ("empty", Patch::from_text("")),
                ("wrong", Patch::from_text(other.patch.clone())),
                ("gold", gold(inst)),
            ],
        ));
    }
    // A partial fix: one of the two bugs fixed.
    cases.push((
        both.clone(),
        vec![
            ("half", gold(&a)),
            ("other half", gold(&b)),
            ("gold", gold(&both)),
            ("empty", Patch::from_text("")),
        ],
    ));
    for (inst, patches) in cases {
        let (fork, fresh, executor) = twins(&inst);
        // A workspace's first episode grades fresh; the rest through its
        // servers.
        same_grade(&fork, &fresh, &Patch::from_text(""), "first episode");
        let served = executor.served_runs();
        for (what, patch) in &patches {
            let g = same_grade(&fork, &fresh, patch, what);
            match *what {
                "gold" => assert!(g.resolved, "{what}: {g:?}"),
                _ => assert!(!g.resolved, "{what}: {g:?}"),
            }
        }
        let (collected, _) = executor.collected_runs();
        assert_eq!(
            executor.served_runs() - served,
            patches.len(),
            "every later grade went through a fork server"
        );
        assert!(collected > 0, "a collected server graded");
    }
}

#[test]
fn a_patch_that_monkeypatches_at_import_leaves_nothing_for_the_next_episode() {
    let instances = common::demo_instances();
    let inst = instances
        .iter()
        .find(|i| files(i).len() == 1)
        .expect("a one-file bug");
    let path = files(inst).into_iter().next().unwrap();
    let (fork, fresh, executor) = twins(inst);
    // The buggy text, and the clean text the leaking patch restores at
    // import: it keeps the buggy definitions and then re-executes the
    // clean module over them, which fixes the bug only when imported.
    let buggy = {
        let mut e = fork.episode().unwrap();
        String::from_utf8(e.workspace().read(&path).unwrap()).unwrap()
    };
    let clean = gold(inst).apply_to_text(&path, &buggy).unwrap();
    let leaky = format!(
        "{buggy}\n# Replaces this module's functions at import.\nexec(compile({}, __file__, \"exec\"))\n",
        serde_json::to_string(&clean).unwrap()
    );
    let leak = Patch::from_changes(&[FileChange::modified(&path, &buggy, &leaky)]);

    // The episode that read the buggy text was the workspace's first: the
    // leaking patch's episode is the first through fork servers, so they
    // start there, on the buggy tree before the patch is applied.
    assert_eq!(executor.served_runs(), 0);
    let g = same_grade(&fork, &fresh, &leak, "leaking patch");
    assert!(g.resolved, "the import-time fix works: {g:?}");
    let (collected_before, _) = executor.collected_runs();
    for _ in 0..2 {
        let g = same_grade(&fork, &fresh, &Patch::from_text(""), "empty after the leak");
        assert!(!g.resolved && !g.fail_to_pass.failed.is_empty(), "{g:?}");
        assert_eq!(g.fail_to_pass.failed.len(), inst.fail_to_pass.len());
    }
    let (collected_after, _) = executor.collected_runs();
    assert!(
        collected_after >= collected_before + 2,
        "the empty patches were graded by the collected server"
    );
}

#[test]
fn after_a_command_an_episode_grades_in_a_fresh_interpreter_and_stays_exact() {
    let instances = common::demo_instances();
    let inst = &instances[0];
    let (fork, fresh, executor) = twins(inst);
    same_grade(&fork, &fresh, &Patch::from_text(""), "first episode");
    same_grade(&fork, &fresh, &gold(inst), "gold");
    let served = executor.served_runs();
    let mut e = fork.episode().unwrap();
    let out = e
        .exec(&CommandSpec::new(
            "sh",
            ["-c", "echo 'raise SystemExit(3)' > conftest.py"],
        ))
        .unwrap();
    assert!(out.success(), "{out:?}");
    // The command's conftest stops every test: a server that collected
    // before it would not see it.
    let g = e.grade_current().unwrap();
    assert!(!g.resolved && g.pass_to_pass.passed.is_empty(), "{g:?}");
    assert_eq!(executor.served_runs(), served, "no server graded it");
    // Grading resets to a new copy of the buggy tree.
    let g = e.grade(&gold(inst)).unwrap();
    assert!(g.resolved, "{g:?}");
    drop(e);
    same_grade(&fork, &fresh, &gold(inst), "gold after a dirty episode");
}
