//! Projects whose own configuration used to defeat the environment stage:
//! verbosity in `addopts`, plugins named like a tool's, hooks of an older
//! pytest, and test packages that come in through extras and groups. Each
//! builds a real venv from a fixture under `tests/fixtures/`.

mod common;

use smith_env::{build_environment, EnvOptions, Environment};

fn build(fixture: &str) -> (tempfile::TempDir, Environment) {
    let repo = common::copy_fixture(fixture);
    let env = build_environment(repo.path(), &EnvOptions::new(common::cache_dir()))
        .unwrap_or_else(|e| panic!("{fixture}: {e}"));
    (repo, env)
}

fn run_suite(env: &Environment) -> smith_core::RunOutput {
    let args: Vec<&str> = env.spec.test_cmd.iter().map(String::as_str).collect();
    common::run_in_workspace(env, &args)
}

#[test]
fn collection_reads_node_ids_whatever_verbosity_the_project_sets() {
    let (_repo, env) = build("quiet-addopts");
    assert_eq!(env.collected, Some(2), "{:#?}", env.steps);
    let _ = std::fs::remove_dir_all(&env.venv);
}

#[test]
fn smiths_collection_plugin_takes_no_name_a_project_uses() {
    let (_repo, env) = build("plugin-names");
    assert_eq!(env.collected, Some(1), "{:#?}", env.steps);
    let out = run_suite(&env);
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("1 passed"), "{}", out.stdout);
    let _ = std::fs::remove_dir_all(&env.venv);
}

#[test]
fn a_conftest_with_the_old_path_hook_gets_an_older_pytest() {
    let (_repo, env) = build("old-path-hook");
    assert_eq!(env.collected, Some(1), "{:#?}", env.steps);
    let version = env.pytest_version.clone().expect("the runner's version");
    let major: u32 = version.split('.').next().unwrap().parse().unwrap();
    // The spec names the release line that worked, so a rebuild from it
    // (or an image made from it) gets the same runner.
    let pin = env
        .spec
        .test_deps
        .iter()
        .find(|d| d.starts_with("pytest<"))
        .unwrap_or_else(|| panic!("no pytest bound in {:?}", env.spec.test_deps));
    let bound: u32 = pin["pytest<".len()..].parse().unwrap();
    assert!(major < bound, "pytest {version} under {pin}");
    assert!(
        env.spec
            .notes
            .iter()
            .any(|n| n.contains("can not be found in the hookspec")),
        "{:?}",
        env.spec.notes
    );
    let out = run_suite(&env);
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("1 passed"), "{}", out.stdout);
    // The version is recorded with the venv, for every later run.
    let reopened = Environment::open(&env.venv).unwrap();
    assert_eq!(reopened.pytest_version.as_deref(), Some(version.as_str()));
    let _ = std::fs::remove_dir_all(&env.venv);
}

#[test]
fn packages_a_test_group_names_through_an_extra_are_installed() {
    let (_repo, env) = build("test-group");
    let out = run_suite(&env);
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("skipped"), "{}", out.stdout);
    assert!(out.stdout.contains("2 passed"), "{}", out.stdout);
    assert_eq!(env.spec.strategy, "pep621:dev+dependency-groups:test");
    let _ = std::fs::remove_dir_all(&env.venv);
}

#[test]
fn files_that_fail_to_collect_are_ignored_by_name_from_the_plugins_report() {
    let repo = common::write_repo(&[
        ("mod.py", "def one():\n    return 1\n"),
        (
            "tests/test_one.py",
            "from mod import one\n\ndef test_one():\n    assert one() == 1\n",
        ),
        (
            "tests/test_extra.py",
            "import a_module_nobody_installs\n\ndef test_extra():\n    pass\n",
        ),
        // Quiet output on top of smith's: nothing of it is read.
        ("pytest.ini", "[pytest]\naddopts = -q\n"),
    ]);
    let env = build_environment(repo.path(), &EnvOptions::new(common::cache_dir())).unwrap();
    assert_eq!(env.collected, Some(1), "{:#?}", env.steps);
    assert!(
        env.spec
            .test_cmd
            .contains(&"--ignore=tests/test_extra.py".to_string()),
        "{:?}",
        env.spec.test_cmd
    );
    let _ = std::fs::remove_dir_all(&env.venv);
}
