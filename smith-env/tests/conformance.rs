//! The shared conformance suite against the local, bubblewrap and in-memory
//! sandboxes.

use smith_core::memory::MemorySandbox;
use smith_core::RunOutput;
use smith_env::conformance::{self, fixture_environment, write_fixture};
use smith_env::{bwrap_works, BwrapOptions, BwrapSandbox, LocalSandbox};

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path()).unwrap();
    dir
}

#[test]
fn local_sandbox_conforms() {
    let repo = fixture();
    let sandbox = LocalSandbox::new(&fixture_environment(repo.path())).unwrap();
    conformance::check_all(&sandbox);
    conformance::check_services(&sandbox);
    conformance::check_run_ends_every_process(&sandbox);
}

/// The in-memory sandbox over the fixture, answering `cat FILE` from its
/// files: the file checks work through the `Workspace` trait alone.
#[test]
fn memory_sandbox_passes_the_file_checks() {
    let files = conformance::FIXTURE
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()));
    let sandbox = MemorySandbox::new(files).with_handler(|files, command| {
        let text = match (command.program.as_str(), command.args.as_slice()) {
            ("cat", [path]) => files.get(path).cloned(),
            _ => None,
        };
        RunOutput {
            exit_code: Some(if text.is_some() { 0 } else { 1 }),
            stdout: String::from_utf8_lossy(&text.unwrap_or_default()).into_owned(),
            ..Default::default()
        }
    });
    conformance::check_files(&sandbox);
}

/// Small budgets for the budget checks: a fork bomb and a memory hog hit
/// them within a second.
const PROCESS_LIMIT: u64 = 64;
const MEMORY_LIMIT: u64 = 256 << 20;

#[test]
fn local_sandbox_holds_the_whole_tree_to_its_budget_where_cgroups_exist() {
    let enforcement = smith_env::budget::enforcement();
    if !enforcement.counts_the_whole_tree() {
        // Without control groups the local sandbox has only per-process
        // rlimits; the bubblewrap checks below still run.
        eprintln!("no control groups here ({enforcement:?}); local budget not checked");
        return;
    }
    let repo = fixture();
    let sandbox = LocalSandbox::new(&fixture_environment(repo.path()))
        .unwrap()
        .with_memory_limit(Some(MEMORY_LIMIT))
        .with_process_limit(Some(PROCESS_LIMIT));
    conformance::check_budget(&sandbox, PROCESS_LIMIT, MEMORY_LIMIT);
}

/// bubblewrap is installed by scripts/setup.sh; where it cannot run at all,
/// the reason is printed and the bwrap tests are vacuous on that machine
/// only if SMITH_ALLOW_NO_BWRAP=1 says so explicitly.
fn bwrap_sandbox(repo: &std::path::Path) -> Option<BwrapSandbox> {
    match bwrap_works(&BwrapOptions::default()) {
        Ok(()) => Some(BwrapSandbox::new(&fixture_environment(repo)).unwrap()),
        Err(e) if std::env::var_os("SMITH_ALLOW_NO_BWRAP").is_some() => {
            eprintln!("bubblewrap unavailable, skipping: {e}");
            None
        }
        Err(e) => panic!(
            "bubblewrap unavailable (run scripts/setup.sh, or set SMITH_ALLOW_NO_BWRAP=1): {e}"
        ),
    }
}

#[test]
fn bwrap_sandbox_conforms() {
    let repo = fixture();
    if let Some(sandbox) = bwrap_sandbox(repo.path()) {
        conformance::check_all(&sandbox);
        conformance::check_services(&sandbox);
        conformance::check_run_ends_every_process(&sandbox);
    }
}

#[test]
fn bwrap_sandbox_isolates() {
    let repo = fixture();
    let out = tempfile::tempdir().unwrap();
    if let Some(sandbox) = bwrap_sandbox(repo.path()) {
        conformance::check_isolation(&sandbox, repo.path(), out.path());
    }
}

#[test]
fn bwrap_sandbox_holds_the_whole_tree_to_its_budget() {
    let repo = fixture();
    if bwrap_sandbox(repo.path()).is_none() {
        return;
    }
    let options = BwrapOptions {
        memory_limit: Some(MEMORY_LIMIT),
        process_limit: Some(PROCESS_LIMIT),
        ..BwrapOptions::default()
    };
    let sandbox = BwrapSandbox::with_options(&fixture_environment(repo.path()), options).unwrap();
    conformance::check_process_budget(&sandbox, PROCESS_LIMIT);
    let enforcement = smith_env::budget::enforcement();
    if enforcement.counts_the_whole_tree() {
        conformance::check_memory_budget(&sandbox, MEMORY_LIMIT);
    } else {
        // rlimits cap memory per process only (CI runs as root, with
        // control groups, and checks the whole tree).
        eprintln!("no control groups here ({enforcement:?}); tree memory not checked");
    }
}

#[test]
fn local_sandbox_is_not_isolated_and_the_isolation_check_notices() {
    // The isolation check must be able to fail: the local sandbox sees host
    // processes, so running it there panics.
    let repo = fixture();
    let sandbox = LocalSandbox::new(&fixture_environment(repo.path())).unwrap();
    let out = tempfile::tempdir().unwrap();
    let result = std::panic::catch_unwind(|| {
        conformance::check_isolation(&sandbox, repo.path(), out.path())
    });
    assert!(result.is_err());
}

/// The Docker sandbox over the fixture, or `None` (said loudly) where no
/// engine answers. scripts/setup.sh builds the local base image
/// (scripts/docker-base.sh) wherever an engine answers, so a missing base
/// image is a failure, not a skip.
fn docker_sandbox(
    repo: &std::path::Path,
    options: smith_env::DockerOptions,
) -> Option<smith_env::DockerSandbox> {
    use smith_env::docker::docker_available;
    if let Err(e) = docker_available(&options.program) {
        eprintln!(
            "\n!!! DOCKER ENGINE UNAVAILABLE: the DockerSandbox conformance checks DID NOT RUN: {e}\n"
        );
        return None;
    }
    let env = fixture_environment(repo);
    let base = smith_env::image::default_base_image(&options.program, &env);
    assert!(
        smith_env::image::image_exists(&options.program, &base),
        "docker base image {base} is missing: run scripts/setup.sh (it runs scripts/docker-base.sh)"
    );
    Some(smith_env::DockerSandbox::new(&env, options).expect("docker sandbox"))
}

/// One image for every Docker test here: built once, found by the others.
fn docker_options() -> smith_env::DockerOptions {
    smith_env::DockerOptions {
        image: Some("smith-test/conformance:fixture".into()),
        ..smith_env::DockerOptions::default()
    }
}

#[test]
fn docker_sandbox_conforms() {
    let repo = fixture();
    if let Some(sandbox) = docker_sandbox(repo.path(), docker_options()) {
        conformance::check_all(&sandbox);
        conformance::check_services(&sandbox);
        conformance::check_run_ends_every_process(&sandbox);
    }
}

#[test]
fn docker_sandbox_isolates() {
    let repo = fixture();
    let out = tempfile::tempdir().unwrap();
    if let Some(sandbox) = docker_sandbox(repo.path(), docker_options()) {
        conformance::check_isolation(&sandbox, repo.path(), out.path());
    }
}

#[test]
fn docker_sandbox_holds_the_container_to_its_limits() {
    let repo = fixture();
    let options = smith_env::DockerOptions {
        memory: Some(MEMORY_LIMIT),
        processes: Some(PROCESS_LIMIT),
        ..docker_options()
    };
    if let Some(sandbox) = docker_sandbox(repo.path(), options) {
        conformance::check_budget(&sandbox, PROCESS_LIMIT, MEMORY_LIMIT);
    }
}
