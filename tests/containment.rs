//! What test code starts ends with its run: a test that `setsid`s a child
//! which ignores SIGTERM leaves nothing behind once the validation of its
//! candidate returns, in the local sandbox, through the fork server (which
//! stays up for the next candidate).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use smith::env::{build_environment, EnvOptions, LocalSandbox};
use smith::validate::{run_baseline, validate_one, PytestExecutor, ValidateOptions};
use smith::{Candidate, Executor, FileChange, Patch, RunOptions, Sandbox, Verdict};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

const CALC: &str = "def add(a, b):\n    return a + b\n";

/// A suite whose every test starts a daemon in a session of its own that
/// ignores SIGTERM and SIGHUP, named by a sleep length unique to the run.
const TESTS: &str = "import os\nimport subprocess\n\nfrom orphans.calc import add\n\n\n\
def _daemon():\n    secs = os.environ['SMITH_ORPHAN_SECS']\n    subprocess.Popen(\n        ['setsid', 'sh', '-c', \"trap '' TERM HUP; sleep \" + secs],\n        start_new_session=True,\n    )\n\n\n\
def test_add():\n    _daemon()\n    assert add(1, 2) == 3\n\n\n\
def test_other():\n    _daemon()\n    assert 2 + 2 == 4\n";

/// Host processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Wait up to two seconds for processes matching `needle` to be gone;
/// the ones still there.
fn left_after_a_moment(needle: &str) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = processes_with(needle);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_setsid_child_that_ignores_sigterm_is_gone_when_its_candidates_validation_ends() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("orphans");
    write(
        &repo,
        &[
            (
                "pyproject.toml",
                "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
                 [project]\nname = \"orphans\"\nversion = \"0.1\"\n\n\
                 [tool.setuptools]\npackages = [\"orphans\"]\n",
            ),
            ("orphans/__init__.py", ""),
            ("orphans/calc.py", CALC),
            ("tests/test_calc.py", TESTS),
        ],
    );
    let env = build_environment(
        &repo,
        &EnvOptions::new(manifest_dir().join("target/test-cache/envs")),
    )
    .expect("environment");
    let sandbox = LocalSandbox::new(&env).unwrap();
    let secs = format!("1300.{}", std::process::id());
    let needle = format!("sleep {secs}");
    let executor = PytestExecutor::new("python", env.spec.test_cmd.clone())
        .forking(true)
        .env("SMITH_ORPHAN_SECS", &secs);
    let mut ws = sandbox.workspace().unwrap();
    let baseline = run_baseline(
        ws.as_mut(),
        &executor,
        2,
        &smith::RepoRef::new("local/orphans", "clean"),
        &RunOptions::default(),
    )
    .expect("baseline");
    assert_eq!(baseline.passing.len(), 2, "{baseline:?}");
    assert!(
        executor.served_runs() >= 1,
        "no run went through the fork server"
    );
    assert_eq!(
        left_after_a_moment(&needle),
        Vec::<u32>::new(),
        "after the baseline"
    );

    let bug = Patch::from_changes(&[FileChange::modified(
        "orphans/calc.py",
        CALC,
        CALC.replace("a + b", "a - b"),
    )]);
    let candidate = Candidate::new(
        &smith::RepoRef::new("local/orphans", "clean"),
        "test/op",
        vec![],
        "",
        bug,
    );
    let served = executor.served_runs();
    // As the validator does before every candidate: servers start on the
    // clean tree only.
    executor.prepare(ws.as_mut()).expect("prepare");
    let validation = validate_one(
        ws.as_mut(),
        &executor,
        &baseline,
        None,
        &candidate,
        &ValidateOptions::default(),
    )
    .expect("validate");
    assert!(
        matches!(validation.verdict, Verdict::Kept { .. }),
        "{validation:?}"
    );
    assert!(
        executor.served_runs() > served,
        "the candidate's run was not forked"
    );
    // The workspace and its fork server are still there; the daemons are not.
    assert_eq!(
        left_after_a_moment(&needle),
        Vec::<u32>::new(),
        "a test's setsid child outlived its candidate's validation"
    );
    drop(ws);
}

/// A repository holding symbolic links that lead out of it, as a cloned
/// repository may: `hostile/ext.py` to a host file, `outlink` to a host
/// directory. The environment is built once per test binary.
struct Hostile {
    _dir: tempfile::TempDir,
    outside: PathBuf,
    env: smith::env::Environment,
    instance: smith::TaskInstance,
}

fn hostile() -> Hostile {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("ext.py"), "host = 1\n").unwrap();
    let repo = dir.path().join("hostile");
    write(
        &repo,
        &[
            (
                "pyproject.toml",
                "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
                 [project]\nname = \"hostile\"\nversion = \"0.1\"\n\n\
                 [tool.setuptools]\npackages = [\"hostile\"]\n",
            ),
            ("hostile/__init__.py", ""),
            ("hostile/calc.py", CALC),
            (
                "tests/test_calc.py",
                "from hostile.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\n\
                 def test_zero():\n    assert add(0, 0) == 0\n",
            ),
        ],
    );
    std::os::unix::fs::symlink(outside.join("ext.py"), repo.join("hostile/ext.py")).unwrap();
    std::os::unix::fs::symlink(&outside, repo.join("outlink")).unwrap();
    // A clean git repository, which smith uses in place, links and all.
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "clean",
        ],
    ] {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(&repo)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }
    let env = build_environment(
        &repo,
        &EnvOptions::new(manifest_dir().join("target/test-cache/envs")),
    )
    .expect("environment");
    let bug = Patch::from_changes(&[FileChange::modified(
        "hostile/calc.py",
        CALC,
        CALC.replace("a + b", "a * b"),
    )]);
    let candidate = Candidate::new(
        &smith::RepoRef::new("local/hostile", "clean"),
        "test/op",
        vec![],
        "",
        bug,
    );
    let instance = smith::TaskInstance::new(
        &candidate,
        vec!["tests/test_calc.py::test_add".into()],
        vec!["tests/test_calc.py::test_zero".into()],
        String::new(),
        String::new(),
        String::new(),
    );
    Hostile {
        _dir: dir,
        outside,
        env,
        instance,
    }
}

fn grader(h: &Hostile, kind: smith::pipeline::SandboxKind) -> smith::grade::Grader {
    let chosen = kind.make(&h.env).expect("sandbox");
    let executor = PytestExecutor::new("python", h.env.spec.test_cmd.clone());
    smith::grade::Grader::new(chosen.sandbox, std::sync::Arc::new(executor))
}

/// The bug's fix plus `extra` changes.
fn fix_with(h: &Hostile, extra: &[FileChange]) -> smith::grade::Prediction {
    let mut changes = vec![FileChange::modified(
        "hostile/calc.py",
        CALC.replace("a + b", "a * b"),
        CALC,
    )];
    changes.extend_from_slice(extra);
    smith::grade::Prediction::new(
        &h.instance.instance_id,
        Patch::from_changes(&changes).as_str(),
        "red-team",
    )
}

#[test]
fn model_code_writing_outside_the_workspace_at_import_leaves_the_host_unchanged_under_bwrap() {
    use smith::pipeline::SandboxKind;
    let h = hostile();
    let probe = format!("smith-grade-probe-{}", std::process::id());
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let targets = [
        PathBuf::from(&home).join(&probe),
        PathBuf::from("/root").join(&probe),
        h.outside.join(&probe),
        h.env.repo.join(&probe),
    ];
    // At import, the fixed package tries to write each target (and carries
    // on where that fails, so the fix itself still grades).
    let mut init = String::from("import os\n");
    for t in &targets {
        init.push_str(&format!(
            "try:\n    open({:?}, 'w').write('escaped')\nexcept OSError:\n    pass\n",
            t.display().to_string()
        ));
    }
    let prediction = fix_with(&h, &[FileChange::modified("hostile/__init__.py", "", init)]);
    let report = grader(&h, SandboxKind::Bwrap)
        .grade(std::slice::from_ref(&h.instance), &[prediction])
        .expect("grade");
    let one = &report.instances[&h.instance.instance_id];
    assert!(one.resolved, "{one:?}");
    for t in &targets {
        let escaped = t.exists();
        let _ = std::fs::remove_file(t);
        assert!(!escaped, "model code wrote {} on the host", t.display());
    }
}

#[test]
fn patches_through_in_repository_links_are_rejected_under_every_sandbox() {
    use smith::pipeline::SandboxKind;
    let h = hostile();
    let through_file = fix_with(
        &h,
        &[FileChange::modified(
            "hostile/ext.py",
            "host = 1\n",
            "host = 2\n",
        )],
    );
    let through_dir = fix_with(
        &h,
        &[FileChange {
            path: "outlink/pwned.txt".into(),
            before: None,
            after: Some("pwned\n".into()),
        }],
    );
    for kind in [SandboxKind::Local, SandboxKind::Bwrap, SandboxKind::Auto] {
        for (prediction, path) in [
            (&through_file, "hostile/ext.py"),
            (&through_dir, "outlink/pwned.txt"),
        ] {
            let report = grader(&h, kind)
                .grade(
                    std::slice::from_ref(&h.instance),
                    std::slice::from_ref(prediction),
                )
                .expect("grade");
            let one = &report.instances[&h.instance.instance_id];
            let error = one.error.as_deref().unwrap_or_default();
            assert!(
                !one.patch_successfully_applied && !one.resolved,
                "[{kind:?}] {one:?}"
            );
            assert!(
                error.contains(path) && error.contains("symbolic link"),
                "[{kind:?}] error does not name {path}: {error}"
            );
            assert_eq!(
                report.error_ids,
                std::slice::from_ref(&h.instance.instance_id)
            );
        }
        assert_eq!(
            std::fs::read_to_string(h.outside.join("ext.py")).unwrap(),
            "host = 1\n",
            "[{kind:?}] a host file changed"
        );
        assert!(
            !h.outside.join("pwned.txt").exists(),
            "[{kind:?}] a host file appeared"
        );
    }
}

#[test]
fn smith_grade_runs_model_code_in_the_sandbox_it_is_given_and_isolates_by_default() {
    use smith::pipeline::{Config, Pipeline};
    let h = hostile();
    let run = h._dir.path().join("run");
    let mut config = Config::new(&h.env.repo, &run);
    config.cache_dir = Some(manifest_dir().join("target/test-cache/envs"));
    Pipeline::new(config)
        .prepare()
        .expect("prepare the run dir");
    let probe = format!("smith-cli-grade-probe-{}", std::process::id());
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let target = PathBuf::from(&home).join(&probe);
    let init = format!(
        "try:\n    open({:?}, 'w').write('escaped')\nexcept OSError:\n    pass\n",
        target.display().to_string()
    );
    let prediction = fix_with(&h, &[FileChange::modified("hostile/__init__.py", "", init)]);
    let instances = h._dir.path().join("instances.jsonl");
    let predictions = h._dir.path().join("predictions.jsonl");
    smith::store::write_jsonl(&instances, std::slice::from_ref(&h.instance)).unwrap();
    smith::store::write_jsonl(&predictions, &[prediction]).unwrap();
    for sandbox in [Some("bwrap"), None] {
        let mut args = vec![
            "--json".to_string(),
            "grade".into(),
            "--instances".into(),
            instances.display().to_string(),
            "--predictions".into(),
            predictions.display().to_string(),
            "--run-dir".into(),
            run.display().to_string(),
        ];
        if let Some(kind) = sandbox {
            args.extend(["--sandbox".to_string(), kind.to_string()]);
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_smith"))
            .args(&args)
            .output()
            .expect("run smith grade");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{sandbox:?}: {stderr}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
        assert_eq!(report["resolved_instances"], 1, "{sandbox:?}: {report}");
        let escaped = target.exists();
        let _ = std::fs::remove_file(&target);
        assert!(
            !escaped,
            "{sandbox:?}: model code wrote {} on the host",
            target.display()
        );
        assert!(!stderr.contains("no isolating sandbox"), "{stderr}");
    }
}
