//! Building real venvs for small fixture projects and running their tests in
//! local workspaces.

mod common;

use smith_core::{CommandSpec, FileChange, Patch, RunOptions, Sandbox};
use smith_env::{
    build_environment, bwrap_works, BwrapOptions, BwrapSandbox, EnvOptions, Installer, LocalSandbox,
};

#[test]
fn builds_a_src_layout_project_and_workspaces_shadow_the_install() {
    // A fixed location under the test cache (the key follows content, not
    // location; the second half checks reuse).
    let repo = common::cache_dir().join("fixtures").join("calc");
    common::write_files(&repo, common::CALC);
    let options = EnvOptions::new(common::cache_dir());
    let env = build_environment(&repo, &options).unwrap();
    assert_eq!(env.spec.strategy, "pep621:tests");
    assert_eq!(env.spec.pythonpath, ["src"]);
    assert_eq!(env.collected, Some(2), "{:#?}", env.steps);
    assert!(env.python().is_file());

    let again = build_environment(&repo, &options).unwrap();
    assert!(
        again.reused,
        "second build should reuse the venv: {:#?}",
        again.steps
    );
    assert_eq!(again.venv, env.venv);
    assert_eq!(again.spec, env.spec);

    let sandbox = LocalSandbox::new(&env).unwrap();
    let mut ws = sandbox.workspace().unwrap();
    let out = ws.run(&env.test_command(), &RunOptions::default()).unwrap();
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("2 passed"), "{}", out.stdout);

    // The workspace copy, not the editable install of the original, is imported.
    let src = "def add(a, b):\n    return a + b\n";
    ws.apply(&Patch::from_changes(&[FileChange::modified(
        "src/calc/__init__.py",
        src,
        "def add(a, b):\n    return a - b\n",
    )]))
    .unwrap();
    let broken = ws.run(&env.test_command(), &RunOptions::default()).unwrap();
    assert_eq!(broken.exit_code, Some(1), "{}", broken.stdout);
    assert!(
        broken.stdout.contains("1 failed, 1 passed"),
        "{}",
        broken.stdout
    );
    let which = ws
        .run(
            &CommandSpec::new("python", ["-c", "import calc; print(calc.__file__)"]),
            &RunOptions::default(),
        )
        .unwrap();
    assert!(
        which
            .stdout
            .trim()
            .starts_with(&ws.root().display().to_string()),
        "imported {} instead of the workspace copy",
        which.stdout
    );
    ws.reset().unwrap();
    assert_eq!(ws.read("src/calc/__init__.py").unwrap(), src.as_bytes());
    let clean = ws.run(&env.test_command(), &RunOptions::default()).unwrap();
    assert!(clean.success(), "{}", clean.stdout);
    // Nothing wrote bytecode into the workspace.
    assert!(!ws.root().join("src/calc/__pycache__").exists());
    // The venv's installed modules are compiled once, so fresh interpreters
    // do not compile pytest again.
    let compiled = ws
        .run(
            &CommandSpec::new(
                "python",
                [
                    "-c",
                    "import importlib.util as u, os, _pytest.main as m; print(os.path.exists(u.cache_from_source(m.__file__)))",
                ],
            ),
            &RunOptions::default(),
        )
        .unwrap();
    assert_eq!(compiled.stdout.trim(), "True", "{}", compiled.stderr);

    // The same environment runs the suite under bubblewrap, with the venv read-only.
    if bwrap_works(&BwrapOptions::default()).is_ok() {
        let sandbox = BwrapSandbox::new(&env).unwrap();
        let mut ws = sandbox.workspace().unwrap();
        let out = ws.run(&env.test_command(), &RunOptions::default()).unwrap();
        assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("2 passed"), "{}", out.stdout);
        let write_venv = ws
            .run(
                &CommandSpec::new("sh", ["-c", "touch \"$VIRTUAL_ENV/escape\""]),
                &RunOptions::default(),
            )
            .unwrap();
        assert!(
            !write_venv.success(),
            "the venv is writable from the sandbox"
        );
    }
}

#[test]
fn another_copy_of_a_repository_reuses_its_venv_and_runs_its_own_tree() {
    // Two copies with the same packaging files in different places (two
    // runs' snapshots): one venv, each environment on its own tree.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("one/calc"), dir.path().join("two/calc"));
    common::write_files(&a, common::CALC);
    common::write_files(&b, common::CALC);
    let broken = "def add(a, b):\n    return a - b\n";
    std::fs::write(b.join("src/calc/__init__.py"), broken).unwrap();
    let options = EnvOptions::new(common::cache_dir());
    let first = build_environment(&a, &options).unwrap();
    let second = build_environment(&b, &options).unwrap();
    assert!(second.reused, "{:#?}", second.steps);
    assert_eq!(second.venv, first.venv);
    assert_eq!(second.repo, b.canonicalize().unwrap());
    let run = |env: &smith_env::Environment| {
        let mut ws = LocalSandbox::new(env).unwrap().workspace().unwrap();
        ws.run(&env.test_command(), &RunOptions::default()).unwrap()
    };
    let out = run(&first);
    assert!(out.stdout.contains("2 passed"), "{}", out.stdout);
    let out = run(&second);
    assert!(out.stdout.contains("1 failed, 1 passed"), "{}", out.stdout);
}

#[test]
fn pip_only_builds_a_plain_module_repo() {
    let repo = common::write_repo(&[
        ("mod.py", "def double(x):\n    return 2 * x\n"),
        (
            "tests/test_mod.py",
            "from mod import double\n\ndef test_double():\n    assert double(2) == 4\n",
        ),
    ]);
    let mut options = EnvOptions::new(common::cache_dir());
    options.use_uv = Some(false);
    let env = build_environment(repo.path(), &options).unwrap();
    assert_eq!(env.installer, Installer::Pip);
    assert_eq!(env.spec.strategy, "no-install");
    assert_eq!(env.collected, Some(1));
    let _ = std::fs::remove_dir_all(&env.venv);
}

#[test]
fn a_repo_whose_tests_cannot_be_collected_is_an_environment_error() {
    let repo = common::write_repo(&[
        ("mod.py", "x = 1\n"),
        (
            "tests/test_mod.py",
            "import no_such_module_anywhere\n\ndef test_x():\n    pass\n",
        ),
    ]);
    let err = build_environment(repo.path(), &EnvOptions::new(common::cache_dir())).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, smith_core::Error::Environment { .. }),
        "{text}"
    );
    assert!(text.contains("no-install"), "{text}");
    assert!(text.contains("no_such_module_anywhere"), "{text}");
}

#[test]
fn a_spec_file_in_the_repo_overrides_detection() {
    let repo = common::write_repo(&[
        (
            "smith-env.toml",
            "test_cmd = [\"-m\", \"pytest\", \"-p\", \"no:cacheprovider\", \"checks\"]\n\
             [env]\nSMITH_FIXTURE_MODE = \"strict\"\n",
        ),
        ("lib.py", "MODE = 'lenient'\n"),
        // Not in a standard test directory: only the spec's test_cmd finds it.
        (
            "checks/check_mode.py",
            "import os\n\ndef test_mode():\n    assert os.environ['SMITH_FIXTURE_MODE'] == 'strict'\n",
        ),
        ("checks/conftest.py", "collect_ignore = []\n\ndef pytest_configure(config):\n    config.addinivalue_line('python_files', 'check_*.py')\n"),
    ]);
    let env = build_environment(repo.path(), &EnvOptions::new(common::cache_dir())).unwrap();
    assert_eq!(env.spec.strategy, "user");
    assert_eq!(env.collected, Some(1), "{:#?}", env.steps);
    let sandbox = LocalSandbox::new(&env).unwrap();
    let mut ws = sandbox.workspace().unwrap();
    let out = ws.run(&env.test_command(), &RunOptions::default()).unwrap();
    assert!(out.success(), "{}", out.stdout);
    let _ = std::fs::remove_dir_all(&env.venv);
}

#[test]
fn a_missing_repository_is_a_repo_error() {
    let err = build_environment(
        std::path::Path::new("/nonexistent/smith-repo"),
        &EnvOptions::new(common::cache_dir()),
    )
    .unwrap_err();
    assert!(matches!(err, smith_core::Error::Repo { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/smith-repo"), "{err}");
}

#[test]
fn a_cache_dir_inside_the_repository_is_not_copied_into_itself() {
    let repo = common::write_repo(&[
        ("mod.py", "def double(x):\n    return 2 * x\n"),
        (
            "tests/test_mod.py",
            "from mod import double\n\ndef test_double():\n    assert double(2) == 4\n",
        ),
    ]);
    let mut options = EnvOptions::new(repo.path().join(".smith-cache"));
    options.use_uv = Some(false);
    let env = build_environment(repo.path(), &options).unwrap();
    assert_eq!(env.collected, Some(1), "{:#?}", env.steps);
    assert!(
        !repo.path().join(".smith-cache").join("build").exists(),
        "install steps ran in a copy under the repository"
    );
}
