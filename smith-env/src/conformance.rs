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

use smith_core::{CommandSpec, FileChange, Patch, RunOptions, Sandbox, Workspace};

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
        generated: Vec::new(),
        steps: Vec::new(),
    }
}

/// Run every check that applies to all sandboxes that run real commands.
pub fn check_all(sandbox: &dyn Sandbox) {
    check_files(sandbox);
    check_timeout_kills_the_whole_group(sandbox);
    check_output_is_capped(sandbox);
    check_environment_passes_through(sandbox);
}

/// The checks that need only the [`Workspace`] trait's file operations and a
/// `cat` command: every sandbox passes them, the in-memory one included.
pub fn check_files(sandbox: &dyn Sandbox) {
    check_apply_reset_is_byte_identical(sandbox);
    check_workspaces_are_independent(sandbox);
}

/// The file the apply/reset check's patch adds, in directories it creates.
const NEW_FILE: &str = "pkg/fresh/sub/new.py";

/// The fixture's files and [`NEW_FILE`] as the workspace reads them
/// (`None`: absent).
fn snapshot(ws: &dyn Workspace) -> BTreeMap<String, Option<Vec<u8>>> {
    FIXTURE
        .iter()
        .map(|(path, _)| *path)
        .chain([NEW_FILE])
        .map(|path| (path.to_string(), ws.read(path).ok()))
        .collect()
}

/// Every file and directory under `root` on disk, for workspaces that are
/// directories: reset must also remove the directories a patch made and
/// leave no stray file.
fn disk_snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
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
    if root.is_dir() {
        walk(root, root, &mut out);
    }
    out
}

/// Apply a patch that modifies, adds and deletes files, then reset: the
/// tree must be byte-identical to the clean one.
pub fn check_apply_reset_is_byte_identical(sandbox: &dyn Sandbox) {
    let name = sandbox.name();
    let mut ws = sandbox.workspace().expect("workspace");
    let clean = snapshot(ws.as_ref());
    let clean_disk = disk_snapshot(ws.root());
    assert!(
        clean.values().filter(|v| v.is_some()).count() == FIXTURE.len(),
        "[{name}] workspace lacks fixture files: {:?}",
        clean
            .keys()
            .filter(|k| clean[*k].is_none())
            .collect::<Vec<_>>()
    );
    assert!(
        clean[NEW_FILE].is_none(),
        "[{name}] {NEW_FILE} exists early"
    );
    let calc = String::from_utf8(ws.read("pkg/calc.py").expect("read")).expect("utf-8");
    let patch = Patch::from_changes(&[
        FileChange::modified("pkg/calc.py", calc.clone(), calc.replace("a + b", "a - b")),
        FileChange {
            path: NEW_FILE.into(),
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
    assert_patched(ws.as_mut(), name);
    ws.reset().expect("reset");
    assert_eq!(
        snapshot(ws.as_ref()),
        clean,
        "[{name}] reset is not byte-identical"
    );
    assert_eq!(
        disk_snapshot(ws.root()),
        clean_disk,
        "[{name}] reset left the directory different"
    );
    // And again, to catch state kept across resets.
    ws.apply(&patch).expect("apply twice");
    ws.reset().expect("reset twice");
    assert_eq!(
        snapshot(ws.as_ref()),
        clean,
        "[{name}] second reset differs"
    );
    assert_eq!(
        disk_snapshot(ws.root()),
        clean_disk,
        "[{name}] second reset left the directory different"
    );
}

/// The patch of [`check_apply_reset_is_byte_identical`] is applied in `ws`:
/// the new file added, `data/blob.txt` deleted, `pkg/calc.py` modified, on
/// disk and for a command.
fn assert_patched(ws: &mut dyn Workspace, name: &str) {
    let applied = snapshot(ws);
    assert_eq!(
        applied[NEW_FILE].as_deref(),
        Some(&b"x = 1\n"[..]),
        "[{name}] apply did not add {NEW_FILE}"
    );
    assert_eq!(
        applied["data/blob.txt"], None,
        "[{name}] apply did not delete"
    );
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
}

/// Two workspaces of one sandbox do not see each other's changes.
pub fn check_workspaces_are_independent(sandbox: &dyn Sandbox) {
    let name = sandbox.name();
    let mut a = sandbox.workspace().expect("workspace a");
    let b = sandbox.workspace().expect("workspace b");
    if a.root().is_dir() {
        assert_ne!(a.root(), b.root(), "[{name}] workspaces share a directory");
    }
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
    let root = ws.command_root().display().to_string();
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
    let root = ws.command_root().display().to_string();
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

/// Run `script` with `sh -c` in `ws` with a 30-second limit.
fn sh(ws: &mut Box<dyn smith_core::Workspace>, script: &str) -> smith_core::RunOutput {
    ws.run(
        &CommandSpec::new("sh", ["-c", script]),
        &RunOptions {
            timeout: Some(Duration::from_secs(30)),
            ..RunOptions::default()
        },
    )
    .expect("run")
}

/// Run a Python `script` in `ws` with a `secs`-second limit.
fn python(
    ws: &mut Box<dyn smith_core::Workspace>,
    script: &str,
    secs: u64,
) -> smith_core::RunOutput {
    ws.run(
        &CommandSpec::new("python3", ["-c", script]),
        &RunOptions {
            timeout: Some(Duration::from_secs(secs)),
            ..RunOptions::default()
        },
    )
    .expect("run python")
}

/// A name no other test or process on the machine uses.
fn unique(what: &str) -> String {
    format!(
        "smith-{what}-{}-{}",
        std::process::id(),
        MARKER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Isolation checks for sandboxes that promise it (bubblewrap, docker), run
/// as whatever user the tests run as (CI: root). `repo` is the repository
/// the sandbox was made from; `out` a host directory standing for smith's
/// output directory. Every check looks at the host afterwards: an escape
/// that leaves no trace is contained.
///
/// - no network, not even a listener on the host's 127.0.0.1;
/// - no writes outside the workspace: `$HOME`, `/root`, `/etc`, the
///   original repository, the out dir; not through `mount --bind` and a
///   writable remount, nor after `unshare -r` (no capabilities inside);
/// - no reads of `/root` or of files other users cannot read (`/etc/shadow`);
/// - host processes invisible and out of reach of signals;
/// - `/tmp` and the workspace writable.
pub fn check_isolation(sandbox: &dyn Sandbox, repo: &Path, out: &Path) {
    check_no_network(sandbox);
    check_no_writes_outside(sandbox, repo, out);
    check_no_mount_escape(sandbox, repo);
    check_no_secret_reads(sandbox);
    check_host_processes_out_of_reach(sandbox);
}

/// No connection leaves the sandbox: not to the internet, not to a
/// listener this test starts on the host's 127.0.0.1; only `lo` exists.
pub fn check_no_network(sandbox: &dyn Sandbox) {
    let name = sandbox.name();
    let mut ws = sandbox.workspace().expect("workspace");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen on 127.0.0.1");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = listener.local_addr().expect("port").port();
    let net = python(
        &mut ws,
        &format!(
            "import socket\nfor host in [('127.0.0.1', {port}), ('1.1.1.1', 80)]:\n    s = socket.socket()\n    s.settimeout(3)\n    try:\n        s.connect(host)\n        print('CONNECTED', host)\n    except OSError as e:\n        print('blocked', e)\n"
        ),
        30,
    );
    let accepted = listener.accept().is_ok();
    assert!(
        !net.stdout.contains("CONNECTED") && !accepted,
        "[{name}] reached the network (host listener accepted: {accepted}): {net:?}"
    );
    assert!(
        net.stdout.matches("blocked").count() == 2,
        "[{name}] network probe did not run: {net:?}"
    );
    // /proc/self/net follows the network namespace (/sys may be the host's).
    let ifaces = sh(&mut ws, "tail -n +3 /proc/self/net/dev | cut -d: -f1");
    let names: Vec<&str> = ifaces.stdout.split_whitespace().collect();
    assert_eq!(names, ["lo"], "[{name}] interfaces: {ifaces:?}");
}

/// Writes to `$HOME`, `/root`, `/etc`, the original repository and the out
/// dir leave nothing on the host (inside they may fail, or land in a
/// private tmpfs); `/tmp` and the workspace are writable.
pub fn check_no_writes_outside(sandbox: &dyn Sandbox, repo: &Path, out: &Path) {
    let name = sandbox.name();
    let mut ws = sandbox.workspace().expect("workspace");
    let probe = unique("escape-probe");
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let targets = [
        PathBuf::from(&home).join(&probe),
        PathBuf::from("/root").join(&probe),
        repo.join(&probe),
        repo.join("pkg").join(&probe),
        out.join(&probe),
        PathBuf::from("/etc").join(&probe),
    ];
    for target in &targets {
        let t = target.display();
        let out = sh(&mut ws, &format!("echo escaped > '{t}'; cat '{t}'"));
        let exists = target.symlink_metadata().is_ok();
        let _ = std::fs::remove_file(target);
        assert!(!exists, "[{name}] wrote {t} on the host: {out:?}");
    }
    let before = std::fs::read(repo.join("pkg/calc.py")).expect("read the original repo");
    sh(
        &mut ws,
        &format!("echo broken > '{}'", repo.join("pkg/calc.py").display()),
    );
    assert_eq!(
        std::fs::read(repo.join("pkg/calc.py")).expect("read the original repo"),
        before,
        "[{name}] changed a file of the original repository"
    );
    let tmp = sh(
        &mut ws,
        "echo ok > /tmp/probe && cat /tmp/probe && echo in-ws > probe.txt && cat probe.txt",
    );
    assert_eq!(
        tmp.stdout, "ok\nin-ws\n",
        "[{name}] /tmp or workspace not writable: {tmp:?}"
    );
}

/// Sandboxed code cannot mount: `mount --bind /root /tmp/mnt` followed by
/// `mount -o remount,rw,bind` (the way out when capabilities are kept), a
/// writable remount of the read-only original repository, and the same
/// after `unshare -r` (a nested user namespace) all leave the host as it
/// was.
pub fn check_no_mount_escape(sandbox: &dyn Sandbox, repo: &Path) {
    let name = sandbox.name();
    let mut ws = sandbox.workspace().expect("workspace");
    let probe = unique("mount-probe");
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let r = repo.display();
    let attempts = [
        format!(
            "mkdir -p /tmp/mnt && mount --bind /root /tmp/mnt && mount -o remount,rw,bind /tmp/mnt && echo x > /tmp/mnt/{probe} && echo MOUNTED"
        ),
        format!(
            "mkdir -p /tmp/mnt && mount --bind '{home}' /tmp/mnt && mount -o remount,rw,bind /tmp/mnt && echo x > /tmp/mnt/{probe} && echo MOUNTED"
        ),
        format!("mount -o remount,rw,bind '{r}' && echo x > '{r}/{probe}' && echo MOUNTED"),
        format!(
            "unshare -r -m sh -c \"mount -o remount,rw,bind '{r}' && echo x > '{r}/{probe}'\" && echo MOUNTED"
        ),
        format!(
            "unshare -r -m sh -c \"mkdir -p /tmp/mnt && mount --bind /root /tmp/mnt && mount -o remount,rw,bind /tmp/mnt && echo x > /tmp/mnt/{probe}\" && echo MOUNTED"
        ),
    ];
    for script in &attempts {
        let out = sh(&mut ws, script);
        let traces: Vec<PathBuf> = [
            PathBuf::from("/root").join(&probe),
            PathBuf::from(&home).join(&probe),
            repo.join(&probe),
        ]
        .into_iter()
        .filter(|p| p.exists())
        .collect();
        for t in &traces {
            let _ = std::fs::remove_file(t);
        }
        assert!(
            traces.is_empty() && !out.stdout.contains("MOUNTED"),
            "[{name}] `{script}` escaped (host files {traces:?}): {out:?}"
        );
    }
}

/// A file the test puts in `$HOME` (and, as root, in `/root`), and files
/// only their owner's group may read (`/etc/shadow`), cannot be read.
pub fn check_no_secret_reads(sandbox: &dyn Sandbox) {
    let name = sandbox.name();
    let mut ws = sandbox.workspace().expect("workspace");
    let secret = unique("secret");
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let mut places = vec![PathBuf::from(&home), PathBuf::from("/root")];
    places.dedup();
    for dir in places {
        let file = dir.join(format!("{secret}.txt"));
        if std::fs::write(&file, &secret).is_err() {
            continue;
        }
        let out = sh(
            &mut ws,
            &format!("cat '{}'; ls -a '{}'", file.display(), dir.display()),
        );
        let _ = std::fs::remove_file(&file);
        assert!(
            !out.stdout.contains(&secret),
            "[{name}] read {}: {out:?}",
            file.display()
        );
    }
    // What the host lets only root (or group shadow) read stays hidden even
    // though the sandbox's uid maps to the caller's.
    if let Ok(shadow) = std::fs::read_to_string("/etc/shadow") {
        let out = sh(&mut ws, "cat /etc/shadow /etc/gshadow 2>/dev/null");
        for line in shadow.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                !out.stdout.contains(line),
                "[{name}] read /etc/shadow: {out:?}"
            );
        }
    }
}

/// Host processes are invisible, and a signal sent to a host process's pid
/// reaches nothing on the host.
pub fn check_host_processes_out_of_reach(sandbox: &dyn Sandbox) {
    let name = sandbox.name();
    let mut ws = sandbox.workspace().expect("workspace");
    let me = std::process::id();
    let procs = sh(
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
    let mut victim = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("start a host process");
    let pid = victim.id();
    let out = sh(&mut ws, &format!("kill -9 {pid}; echo sent"));
    std::thread::sleep(Duration::from_millis(100));
    let alive = victim.try_wait().expect("try_wait").is_none();
    let _ = victim.kill();
    let _ = victim.wait();
    assert!(alive, "[{name}] killed host process {pid}: {out:?}");
}

/// The process tree of one command is held to the sandbox's budget, for
/// sandboxes that count the whole tree: build `sandbox` with at most
/// `process_limit` processes and `memory_limit` bytes per command, both
/// small (say 64 and 256 MiB). Runs [`check_process_budget`] and
/// [`check_memory_budget`].
pub fn check_budget(sandbox: &dyn Sandbox, process_limit: u64, memory_limit: u64) {
    check_process_budget(sandbox, process_limit);
    check_memory_budget(sandbox, memory_limit);
}

/// A fork bomb stops at `process_limit` (forks fail), ends at the
/// command's time limit, and leaves no process behind.
pub fn check_process_budget(sandbox: &dyn Sandbox, process_limit: u64) {
    let name = sandbox.name();
    let mut ws = sandbox.workspace().expect("workspace");
    let tag = unique("forkbomb");
    // Count how many sleeping children can exist at once.
    let counted = python(
        &mut ws,
        &format!(
            "import os, sys, time\nn = 0\ntry:\n    for i in range({}):\n        if os.fork() == 0:\n            time.sleep(20)\n            os._exit(0)\n        n += 1\nexcept OSError as e:\n    print('stopped', e)\nprint('forked', n)\nsys.stdout.flush()\nos._exit(0)\n",
            process_limit * 4
        ),
        60,
    );
    let forked: u64 = counted
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("forked ")?.trim().parse().ok())
        .unwrap_or(u64::MAX);
    assert!(
        forked < process_limit,
        "[{name}] forked {forked} children under a limit of {process_limit}: {counted:?}"
    );
    // A real fork bomb, ended by the time limit; nothing of it survives.
    let bomb = ws
        .run(
            &CommandSpec::new(
                "python3",
                ["-c", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", &tag],
            ),
            &RunOptions {
                timeout: Some(Duration::from_secs(3)),
                ..RunOptions::default()
            },
        )
        .expect("run the fork bomb");
    assert!(
        bomb.timed_out,
        "[{name}] fork bomb not stopped by its limit: {bomb:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_with(&tag);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "[{name}] {} fork bomb processes left behind",
            left.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Children that each stay under `memory_limit` but together exceed it do
/// not all get their memory: at most `memory_limit` worth of them finish.
/// Needs a budget counted over the whole tree (control groups, docker).
pub fn check_memory_budget(sandbox: &dyn Sandbox, memory_limit: u64) {
    let name = sandbox.name();
    let mut ws = sandbox.workspace().expect("workspace");
    // Four children, each with 60% of the limit: at most one can hold it.
    let each = memory_limit * 6 / 10;
    let hog = python(
        &mut ws,
        &format!(
            "import os, time\npids = []\nfor i in range(4):\n    pid = os.fork()\n    if pid == 0:\n        try:\n            block = b'x' * {each}\n            time.sleep(3)\n            open('hog-%d' % i, 'w').write('held')\n        finally:\n            os._exit(0)\n    pids.append(pid)\nfor pid in pids:\n    os.waitpid(pid, 0)\n"
        ),
        60,
    );
    let held = (0..4)
        .filter(|i| ws.read(&format!("hog-{i}")).is_ok())
        .count() as u64;
    assert!(
        held * each <= memory_limit,
        "[{name}] {held} children held {each} bytes each under a limit of {memory_limit}: {hog:?}"
    );
}

/// What a command starts ends with it: a child that `setsid`s out of the
/// command's session and process group and ignores SIGTERM is gone once
/// `run` returns, and so is one a service started once the service is
/// dropped. Applies to every sandbox.
pub fn check_run_ends_every_process(sandbox: &dyn Sandbox) {
    let name = sandbox.name();
    let mut ws = sandbox.workspace().expect("workspace");
    // A sleep length no other process on the machine uses.
    let secs = format!(
        "1200.{}{}",
        std::process::id(),
        MARKER.fetch_add(1, Ordering::Relaxed)
    );
    let tag = format!("sleep {secs}");
    let script = format!(
        "import subprocess\nsubprocess.Popen(['setsid', 'sh', '-c', \"trap '' TERM HUP; sleep {secs}\"], start_new_session=True)\nprint('started')\n"
    );
    let out = python(&mut ws, &script, 30);
    assert!(out.stdout.contains("started"), "[{name}] {out:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_with(&tag);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "[{name}] a setsid child outlived its command: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
