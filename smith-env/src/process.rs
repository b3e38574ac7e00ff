//! Running one command with a time limit, an output cap and a clean kill.
//!
//! Every command gets its own process group so that a time-out can kill the
//! whole tree it started (pytest plus anything the code under test spawned),
//! not just the direct child. After the direct child exits, the group is
//! killed too: a mutated test suite that leaves a daemon behind must not keep
//! the output pipes open or eat the CPU of the next run.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use smith_core::{Error, Result, RunOptions, RunOutput};

use crate::budget::{Budget, Lease};
use crate::service::ChildService;

/// How long to wait for output pipes after the process group is gone. A
/// grandchild that escaped the group (`setsid`) can hold them open forever.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// Address space a sandboxed command may map by default: enough for any
/// ordinary test suite, small enough that a mutant which allocates without
/// end (`while True: xs.append(...)`) fails with `MemoryError` instead of
/// pushing the machine into swap long before its time limit.
pub const DEFAULT_MEMORY_LIMIT: u64 = 6 << 30;

/// Run `command` to completion or until `options.timeout`, whichever comes
/// first, keeping at most `options.max_output` bytes of stdout and of stderr.
///
/// `display` names the command in errors. Stdin is closed.
pub fn run_command(command: Command, display: &str, options: &RunOptions) -> Result<RunOutput> {
    run_command_limited(command, display, options, None)
}

/// [`run_command`] with the child's address space capped at `memory_limit`
/// bytes (`RLIMIT_AS`; children it forks inherit the cap). The cap is set
/// right after the process starts, before it has done any real work.
pub fn run_command_limited(
    command: Command,
    display: &str,
    options: &RunOptions,
    memory_limit: Option<u64>,
) -> Result<RunOutput> {
    run_with(command, display, options, memory_limit, None)
}

/// [`run_command`] held to `budget` over its whole process tree: in
/// control groups of its own where the machine offers them (memory and
/// processes counted together, every process killed when the command ends,
/// whichever session it moved to), and with every process's address space
/// capped at `budget.memory` in any case. See [`crate::budget`].
pub fn run_contained(
    command: Command,
    display: &str,
    options: &RunOptions,
    budget: &Budget,
) -> Result<RunOutput> {
    let lease = Lease::new(budget)?;
    let command = match &lease {
        Some(lease) => lease.wrap(&command),
        None => command,
    };
    run_with(command, display, options, budget.memory, lease.as_ref())
}

fn run_with(
    mut command: Command,
    display: &str,
    options: &RunOptions,
    memory_limit: Option<u64>,
    lease: Option<&Lease>,
) -> Result<RunOutput> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| Error::command_source(display, "cannot start", e))?;
    let pgid = child.id();
    if let Err(e) = cap_memory(pgid, memory_limit, display) {
        let _ = child.wait();
        return Err(e);
    }
    let max = options.max_output;
    let stdout = child.stdout.take().map(|pipe| spawn_reader(pipe, max));
    let stderr = child.stderr.take().map(|pipe| spawn_reader(pipe, max));

    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(status);
    });
    let mut timed_out = false;
    let status = match options.timeout {
        Some(limit) => match rx.recv_timeout(limit) {
            Ok(status) => status,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                kill_group(pgid);
                if let Some(lease) = lease {
                    lease.kill_all();
                }
                rx.recv()
                    .map_err(|_| Error::command(display, "lost track of the process"))?
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::command(display, "lost track of the process"))
            }
        },
        None => rx
            .recv()
            .map_err(|_| Error::command(display, "lost track of the process"))?,
    };
    let duration = start.elapsed();
    // Whatever the command left running goes with it: its group, and with
    // control groups every process of its tree, so that no escaped
    // grandchild holds the output pipes open.
    kill_group(pgid);
    if let Some(lease) = lease {
        lease.kill_all();
    }
    let _ = waiter.join();
    let status = status.map_err(|e| Error::command_source(display, "wait failed", e))?;
    let stdout = stdout.map(collect_reader).unwrap_or_default();
    let stderr = stderr.map(collect_reader).unwrap_or_default();
    Ok(RunOutput {
        exit_code: if timed_out { None } else { status.code() },
        stdout,
        stderr,
        timed_out,
        duration,
    })
}

/// Start `command` as a [`ChildService`] in its own process group, its
/// address space capped at `memory_limit` bytes like
/// [`run_command_limited`]'s commands.
pub fn spawn_service(
    command: Command,
    display: &str,
    memory_limit: Option<u64>,
) -> Result<ChildService> {
    spawn_with(command, display, memory_limit)
}

/// [`spawn_service`] held to `budget` like [`run_contained`]'s commands:
/// every process of the service's tree is killed when it is dropped.
pub fn spawn_contained(command: Command, display: &str, budget: &Budget) -> Result<ChildService> {
    let Some(lease) = Lease::new(budget)? else {
        return spawn_with(command, display, budget.memory);
    };
    let service = spawn_with(lease.wrap(&command), display, budget.memory)?;
    Ok(service.holding(lease))
}

fn spawn_with(
    mut command: Command,
    display: &str,
    memory_limit: Option<u64>,
) -> Result<ChildService> {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = command
        .spawn()
        .map_err(|e| Error::command_source(display, "cannot start", e))?;
    let pid = child.id();
    let service = ChildService::new(child, display)?;
    cap_memory(pid, memory_limit, display)?;
    Ok(service)
}

/// Whether process `pid` exists and is not a zombie.
pub(crate) fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Cap the address space of the process `pid` (the leader of its own
/// group) at `bytes`; on failure its group is killed and the error names
/// `display`.
fn cap_memory(pid: u32, bytes: Option<u64>, display: &str) -> Result<()> {
    let Some(bytes) = bytes else {
        return Ok(());
    };
    let limit = rustix::process::Rlimit {
        current: Some(bytes),
        maximum: Some(bytes),
    };
    let raw = rustix::process::Pid::from_raw(pid as i32);
    rustix::process::prlimit(raw, rustix::process::Resource::As, limit)
        .map(|_| ())
        .map_err(|e| {
            kill_group(pid);
            Error::command_source(display, "cannot cap its memory", e)
        })
}

/// SIGKILL every process in group `pgid`; a group that is already gone is fine.
pub(crate) fn kill_group(pgid: u32) {
    let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
}

type Reader = (thread::JoinHandle<Captured>, mpsc::Receiver<()>);

fn spawn_reader(mut pipe: impl Read + Send + 'static, max: usize) -> Reader {
    let (done_tx, done_rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let mut captured = Captured::new(max);
        let mut buf = [0u8; 16 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => captured.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = done_tx.send(());
        captured
    });
    (handle, done_rx)
}

fn collect_reader((handle, done): Reader) -> String {
    match done.recv_timeout(PIPE_GRACE) {
        // The sender is dropped only after `captured` is ready, so join is quick.
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            handle.join().map(Captured::finish).unwrap_or_default()
        }
        // An escaped grandchild holds the pipe; leave the reader thread behind.
        Err(mpsc::RecvTimeoutError::Timeout) => String::new(),
    }
}

/// Output kept from one stream: the first half of the budget and a rolling
/// last half, because both the start (collection errors) and the end (the
/// summary) of a pytest log matter.
#[derive(Debug)]
pub(crate) struct Captured {
    max: usize,
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    total: usize,
}

impl Captured {
    pub(crate) fn new(max: usize) -> Self {
        Captured {
            max,
            head: Vec::new(),
            tail: std::collections::VecDeque::new(),
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len();
        let head_budget = self.max / 2;
        if self.head.len() < head_budget {
            let take = (head_budget - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        let tail_budget = self.max - head_budget;
        if tail_budget == 0 {
            return;
        }
        if bytes.len() >= tail_budget {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - tail_budget..]);
        } else {
            let overflow = (self.tail.len() + bytes.len()).saturating_sub(tail_budget);
            self.tail.drain(..overflow);
            self.tail.extend(bytes);
        }
    }

    /// The kept text, at most `max` bytes, with a marker where bytes were dropped.
    pub(crate) fn finish(self) -> String {
        let kept = self.head.len() + self.tail.len();
        let tail: Vec<u8> = self.tail.into_iter().collect();
        if kept == self.total {
            let mut all = self.head;
            all.extend_from_slice(&tail);
            return truncate_to(String::from_utf8_lossy(&all).into_owned(), self.max);
        }
        let marker = format!("\n[... {} bytes omitted ...]\n", self.total - kept);
        let head = String::from_utf8_lossy(&self.head).into_owned();
        let tail = String::from_utf8_lossy(&tail).into_owned();
        if marker.len() >= self.max {
            return truncate_to(head, self.max);
        }
        let room = self.max - marker.len();
        let head = truncate_to(head, room / 2);
        let tail = keep_last(tail, room - head.len());
        format!("{head}{marker}{tail}")
    }
}

fn truncate_to(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

fn keep_last(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut cut = s.len() - max;
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    s[cut..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_keeps_everything_under_the_cap() {
        let mut c = Captured::new(100);
        c.push(b"hello ");
        c.push(b"world");
        assert_eq!(c.finish(), "hello world");
    }

    #[test]
    fn captured_keeps_head_and_tail_within_the_cap() {
        let mut c = Captured::new(64);
        for i in 0..1000 {
            c.push(format!("line {i}\n").as_bytes());
        }
        let out = c.finish();
        assert!(out.len() <= 64, "{} bytes: {out:?}", out.len());
        assert!(out.starts_with("line 0\n"), "{out:?}");
        assert!(out.ends_with("line 999\n"), "{out:?}");
        assert!(out.contains("bytes omitted"), "{out:?}");
    }

    #[test]
    fn captured_never_splits_a_character_into_more_bytes_than_the_cap() {
        let mut c = Captured::new(41);
        for _ in 0..100 {
            c.push("é".as_bytes());
        }
        assert!(c.finish().len() <= 41);
        let mut tiny = Captured::new(3);
        tiny.push("ééééé".as_bytes());
        assert!(tiny.finish().len() <= 3);
    }

    #[test]
    fn run_reports_exit_code_and_output() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = run_command(cmd, "sh", &RunOptions::default()).unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert!(!out.timed_out);
    }

    #[test]
    fn a_memory_cap_turns_runaway_allocation_into_an_error() {
        // Wait a moment before allocating so the cap is surely in place.
        let script = "import time; time.sleep(0.2); x = bytearray(768 << 20); print('allocated')";
        let run = |limit| {
            let mut cmd = Command::new("python3");
            cmd.args(["-c", script]);
            run_command_limited(cmd, "python3", &RunOptions::default(), limit).unwrap()
        };
        let capped = run(Some(256 << 20));
        assert_ne!(capped.exit_code, Some(0), "{capped:?}");
        assert!(capped.stderr.contains("MemoryError"), "{capped:?}");
        let free = run(None);
        assert_eq!(free.exit_code, Some(0), "{free:?}");
        assert_eq!(free.stdout, "allocated\n");
    }

    #[test]
    fn missing_program_is_a_command_error_naming_it() {
        let cmd = Command::new("/nonexistent/smith-no-such-program");
        let err = run_command(cmd, "smith-no-such-program", &RunOptions::default()).unwrap_err();
        assert!(err.to_string().contains("smith-no-such-program"), "{err}");
    }
}
