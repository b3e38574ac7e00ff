//! A command run in a local workspace dies with the process that started
//! it, even when that process is killed by a signal (no cleanup code runs):
//! this test binary runs itself as that process and kills it.

use std::process::Command;
use std::time::{Duration, Instant};

use smith_core::{CommandSpec, RunOptions, Sandbox};
use smith_env::conformance::{fixture_environment, write_fixture};
use smith_env::LocalSandbox;

const CHILD_MODE: &str = "SMITH_TEST_KILLED_CALLER_SLEEP";

/// Host processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    processes_where(|cmdline| cmdline.contains(needle))
}

/// Host processes whose command line passes `test`.
fn processes_where(test: impl Fn(&str) -> bool) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| test(&String::from_utf8_lossy(&c).replace('\0', " ")))
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn a_local_command_dies_when_its_caller_is_killed() {
    if let Ok(secs) = std::env::var(CHILD_MODE) {
        // The caller: run a long command and be killed while it runs.
        let repo = tempfile::tempdir().unwrap();
        write_fixture(repo.path()).unwrap();
        let sandbox = LocalSandbox::new(&fixture_environment(repo.path())).unwrap();
        let mut ws = sandbox.workspace().unwrap();
        let _ = ws.run(
            &CommandSpec::new("sleep", [secs.as_str()]),
            &RunOptions {
                timeout: None,
                ..RunOptions::default()
            },
        );
        return;
    }
    let secs = format!("1400.{}", std::process::id());
    let needle = format!("sleep {secs}");
    let mut caller = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_local_command_dies_when_its_caller_is_killed",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, &secs)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    // The command itself, not the launcher that arms its death signal
    // and then becomes it: killed before that, it has nothing to die of.
    while processes_where(|cmdline| cmdline.starts_with(&needle)).is_empty() {
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let caller_pid = caller.id();
    caller.kill().unwrap();
    caller.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_with(&needle);
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            for pid in &left {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            panic!("the command outlived its killed caller: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The killed caller never removed its control groups; the next process
    // to use them (this one, here) does.
    assert_eq!(
        smith_env::budget::groups_of(caller_pid),
        Vec::<std::path::PathBuf>::new(),
        "control groups of a dead run left behind"
    );
}
