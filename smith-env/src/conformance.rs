//! A conformance suite every [`Sandbox`] implementation must pass, shared by
//! this crate's tests and by downstream sandboxes (call the `check_*`
//! functions from your own `#[test]`s). The checks panic with a message
//! naming the sandbox and the property that failed.
//!
//! Build the sandbox over [`write_fixture`]'s repository; [`fixture_environment`]
//! gives an [`Environment`] for it that needs no venv (commands use the
//! system's `python3` and `sh`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use smith_core::{CommandSpec, FileChange, Patch, RunOptions, Sandbox};

use crate::build::{Environment, Installer};
use crate::spec::EnvSpec;

/// The fixture repository's files.
pub const FIXTURE: &[(&str, &str)] = &[
    ("pkg/__init__.py", ""),
    (
        "pkg/calc.py",
        "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
    ),
    (
        "tests/test_calc.py",
        "from pkg.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
    ),
    ("data/blob.txt", "unchanged\n"),
];

/// Write the fixture repository into `dir`.
pub fn write_fixture(dir: &Path) -> std::io::Result<()> {
    for (path, text) in FIXTURE {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap_or(dir))?;
        std::fs::write(p, text)?;
    }
    Ok(())
}

/// An environment for the fixture at `repo` that installs nothing: its
/// "venv" does not exist, so `python3` comes from the system `PATH`.
pub fn fixture_environment(repo: &Path) -> Environment {
    let mut spec = EnvSpec {
        strategy: "conformance".into(),
        ..EnvSpec::default()
    };
    spec.env.insert("SMITH_SPEC_VAR".into(), "from-spec".into());
    Environment {
        spec,
        venv: repo.join(".no-venv"),
        repo: repo.to_path_buf(),
        installer: Installer::Pip,
        reused: false,
        collected: None,
        pytest_version: None,
        steps: Vec::new(),
    }
}

/// Run every check that applies to all sandboxes.
pub fn check_all(sandbox: &dyn Sandbox) {
    check_apply_reset_is_byte_identical(sandbox);
    check_workspaces_are_independent(sandbox);
    check_timeout_kills_the_whole_group(sandbox);
    check_output_is_capped(sandbox);
    check_environment_passes_through(sandbox);
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                // Directories count too: reset must remove the ones a patch made.
                let rel = path.strip_prefix(root).unwrap_or(&path).join("");
                out.insert(rel, b"<dir>".to_vec());
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Apply a patch that modifies, adds and deletes files, then reset: the
/// tree must be byte-identical to the clean one.
pub fn check_apply_reset_is_byte_identical(sandbox: &dyn Sandbox) {
    let name = sandbox.name();
    let mut ws = sandbox.workspace().expect("workspace");
    let clean = snapshot(ws.root());
    assert!(!clean.is_empty(), "[{name}] workspace is empty");
    let calc = String::from_utf8(ws.read("pkg/calc.py").expect("read")).expect("utf-8");
    let patch = Patch::from_changes(&[
        FileChange::modified("pkg/calc.py", calc.clone(), calc.replace("a + b", "a - b")),
        FileChange {
            path: "pkg/fresh/sub/new.py".into(),
            before: None,
            after: Some("x = 1\n".into()),
        },
        FileChange {
            path: "data/blob.txt".into(),
            before: Some("unchanged\n".into()),
            after: None,
        },
    ]);
    ws.apply(&patch).expect("apply");
    assert_ne!(snapshot(ws.root()), clean, "[{name}] apply changed nothing");
    assert!(ws
        .read("pkg/calc.py")
        .expect("read")
        .windows(5)
        .any(|w| w == b"a - b"));
    // A command sees the patched tree.
    let out = ws
        .run(
            &CommandSpec::new("cat", ["pkg/calc.py"]),
            &RunOptions::default(),
        )
        .expect("run");
    assert!(
        out.stdout.contains("a - b"),
        "[{name}] command did not see the patch: {out:?}"
    );
    ws.reset().expect("reset");
    assert_eq!(
        snapshot(ws.root()),
        clean,
        "[{name}] reset is not byte-identical"
    );
    // And again, to catch state kept across resets.
    ws.apply(&patch).expect("apply twice");
    ws.reset().expect("reset twice");
    assert_eq!(snapshot(ws.root()), clean, "[{name}] second reset differs");
}

/// Two workspaces of one sandbox do not see each other's changes.
pub fn check_workspaces_are_independent(sandbox: &dyn Sandbox) {
    let name = sandbox.name();
    let mut a = sandbox.workspace().expect("workspace a");
    let b = sandbox.workspace().expect("workspace b");
    assert_ne!(a.root(), b.root(), "[{name}] workspaces share a root");
    a.write("pkg/calc.py", b"broken").expect("write");
    assert_ne!(
        b.read("pkg/calc.py").expect("read"),
        b"broken",
        "[{name}] workspaces share files"
    );
}

static MARKER: AtomicUsize = AtomicUsize::new(0);

/// Host processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
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

/// A command that backgrounds a child and then sleeps is killed at its time
/// limit, quickly, and leaves no process behind.
pub fn check_timeout_kills_the_whole_group(sandbox: &dyn Sandbox) {
    let name = sandbox.name();
    let mut ws = sandbox.workspace().expect("workspace");
    // A sleep length no other process on the machine uses.
    let secs = format!(
        "1000.{}{}",
        std::process::id(),
        MARKER.fetch_add(1, Ordering::Relaxed)
    );
    let script = format!("sleep {secs} & sleep {secs}; echo never");
    let start = Instant::now();
    let out = ws
        .run(
            &CommandSpec::new("sh", ["-c", &script]),
            &RunOptions {
                timeout: Some(Duration::from_millis(500)),
                ..RunOptions::default()
            },
        )
        .expect("run");
    assert!(out.timed_out, "[{name}] not reported as timed out: {out:?}");
    assert_eq!(
        out.exit_code, None,
        "[{name}] a killed command has no exit code"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "[{name}] took {:?} to kill",
        start.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_with(&format!("sleep {secs}"));
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "[{name}] processes left behind: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Output beyond `max_output` is dropped, the command still completes.
pub fn check_output_is_capped(sandbox: &dyn Sandbox) {
    let name = sandbox.name();
    let mut ws = sandbox.workspace().expect("workspace");
    let out = ws
        .run(
            &CommandSpec::new(
                "sh",
                [
                    "-c",
                    "yes smith | head -c 2000000; yes err | head -c 500000 >&2",
                ],
            ),
            &RunOptions {
                max_output: 1000,
                ..RunOptions::default()
            },
        )
        .expect("run");
    assert_eq!(out.exit_code, Some(0), "[{name}] {out:?}");
    assert!(
        out.stdout.len() <= 1000,
        "[{name}] stdout {} bytes",
        out.stdout.len()
    );
    assert!(
        out.stderr.len() <= 1000,
        "[{name}] stderr {} bytes",
        out.stderr.len()
    );
    assert!(
        out.stdout.starts_with("smith\n"),
        "[{name}] stdout lost its start"
    );
}

/// The command's own variables, the spec's variables and the Python
/// settings every run needs reach the process; `cwd` is honoured.
pub fn check_environment_passes_through(sandbox: &dyn Sandbox) {
    let name = sandbox.name();
    let mut ws = sandbox.workspace().expect("workspace");
    let cmd = CommandSpec::new(
        "sh",
        [
            "-c",
            "echo \"$SMITH_CMD_VAR|$SMITH_SPEC_VAR|$PYTHONDONTWRITEBYTECODE|$PYTHONPATH|$(pwd)\"",
        ],
    )
    .env("SMITH_CMD_VAR", "from-command");
    let out = ws.run(&cmd, &RunOptions::default()).expect("run");
    let root = ws.root().display().to_string();
    let fields: Vec<&str> = out.stdout.trim().split('|').collect();
    assert_eq!(fields.len(), 5, "[{name}] {out:?}");
    assert_eq!(fields[0], "from-command", "[{name}] command env");
    assert_eq!(fields[1], "from-spec", "[{name}] spec env");
    assert_eq!(fields[2], "1", "[{name}] PYTHONDONTWRITEBYTECODE");
    assert!(
        fields[3].starts_with(&root),
        "[{name}] PYTHONPATH {} not in {root}",
        fields[3]
    );
    assert_eq!(fields[4], root, "[{name}] cwd");
    let mut sub = CommandSpec::new("pwd", Vec::<String>::new());
    sub.cwd = Some("pkg".into());
    let out = ws.run(&sub, &RunOptions::default()).expect("run in pkg");
    assert_eq!(
        out.stdout.trim(),
        format!("{root}/pkg"),
        "[{name}] relative cwd"
    );
}

/// For sandboxes whose workspaces implement `spawn`: a long-lived process
/// starts in the workspace with the command's environment and directory,
/// answers line after line, and is gone once its handle is dropped.
pub fn check_services(sandbox: &dyn Sandbox) {
    let name = sandbox.name();
    let mut ws = sandbox.workspace().expect("workspace");
    let cmd = CommandSpec::new(
        "sh",
        [
            "-c",
            "echo ready; while read line; do echo \"$line|$SMITH_CMD_VAR|$(pwd)\"; done",
        ],
    )
    .env("SMITH_CMD_VAR", "from-command");
    let mut service = ws.spawn(&cmd).expect("spawn");
    let wait = Duration::from_secs(20);
    assert_eq!(
        service.receive(wait).expect("first line").as_deref(),
        Some("ready"),
        "[{name}] service did not start"
    );
    let root = ws.root().display().to_string();
    for request in ["one", "two"] {
        service.send(request).expect("send");
        let answer = service.receive(wait).expect("answer");
        assert_eq!(
            answer,
            Some(format!("{request}|from-command|{root}")),
            "[{name}] service answer"
        );
    }
    drop(service);
    // A service that never reads its stdin is killed after a grace period.
    let mut quiet = CommandSpec::new("sh", ["-c", "echo ready; exec sleep 30"]);
    quiet.env.insert("SMITH_CMD_VAR".into(), "x".into());
    let started = Instant::now();
    let mut sleeper = ws.spawn(&quiet).expect("spawn sleeper");
    assert_eq!(
        sleeper.receive(wait).expect("first line").as_deref(),
        Some("ready")
    );
    drop(sleeper);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "[{name}] dropping a service that ignores its stdin took {:?}",
        started.elapsed()
    );
}

/// Isolation checks for sandboxes that promise it (bubblewrap, docker):
/// no network, no writes outside the workspace (`$HOME`, the original
/// repository, `/etc`), no view of host processes, and writable `/tmp`.
pub fn check_isolation(sandbox: &dyn Sandbox, repo: &Path) {
    let name = sandbox.name();
    let mut ws = sandbox.workspace().expect("workspace");
    let run = |ws: &mut Box<dyn smith_core::Workspace>, script: &str| {
        ws.run(
            &CommandSpec::new("sh", ["-c", script]),
            &RunOptions {
                timeout: Some(Duration::from_secs(30)),
                ..RunOptions::default()
            },
        )
        .expect("run")
    };

    let net = ws
        .run(
            &CommandSpec::new(
                "python3",
                [
                    "-c",
                    "import socket\nfor host in [('1.1.1.1', 80), ('8.8.8.8', 53)]:\n    s = socket.socket()\n    s.settimeout(3)\n    try:\n        s.connect(host)\n        print('CONNECTED', host)\n    except OSError as e:\n        print('blocked', e)\n",
                ],
            ),
            &RunOptions::default(),
        )
        .expect("run python");
    assert!(
        !net.stdout.contains("CONNECTED"),
        "[{name}] reached the network: {net:?}"
    );
    assert!(
        net.stdout.contains("blocked"),
        "[{name}] network probe did not run: {net:?}"
    );
    // /proc/self/net follows the network namespace (/sys may be the host's).
    let ifaces = run(&mut ws, "tail -n +3 /proc/self/net/dev | cut -d: -f1");
    let names: Vec<&str> = ifaces.stdout.split_whitespace().collect();
    assert_eq!(names, ["lo"], "[{name}] interfaces: {ifaces:?}");

    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let targets = [
        PathBuf::from(&home).join("smith-escape-probe"),
        repo.join("smith-escape-probe"),
        PathBuf::from("/etc/smith-escape-probe"),
    ];
    for target in &targets {
        let t = target.display();
        let out = run(&mut ws, &format!("echo escaped > '{t}' && echo WROTE"));
        let exists = target.exists();
        let _ = std::fs::remove_file(target);
        assert!(
            !out.stdout.contains("WROTE") && !exists,
            "[{name}] wrote {t}: {out:?}"
        );
    }
    let tmp = run(
        &mut ws,
        "echo ok > /tmp/probe && cat /tmp/probe && echo in-ws > probe.txt && cat probe.txt",
    );
    assert_eq!(
        tmp.stdout, "ok\nin-ws\n",
        "[{name}] /tmp or workspace not writable: {tmp:?}"
    );

    let me = std::process::id();
    let procs = run(
        &mut ws,
        &format!("ls /proc | grep -c '^[0-9]'; test -e /proc/{me} && echo SEES-HOST"),
    );
    let visible: usize = procs
        .stdout
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .unwrap_or(usize::MAX);
    assert!(
        !procs.stdout.contains("SEES-HOST"),
        "[{name}] sees host pid {me}: {procs:?}"
    );
    assert!(visible < 10, "[{name}] sees {visible} processes: {procs:?}");
}
