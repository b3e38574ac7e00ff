//! [`ChildService`]: a [`Service`] over an operating-system process whose
//! stdin, stdout and stderr are pipes.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use smith_core::{Error, Result, Service};

/// How long a service may take to exit after its stdin is closed before it
/// is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// The most of a service's stderr kept for error messages.
const STDERR_TAIL: usize = 16 * 1024;

/// A [`Service`] over a child process whose stdin, stdout and stderr are
/// pipes. On drop, its stdin is closed (a well-behaved service exits and
/// cleans up after itself); a process still running after a grace period is
/// killed.
#[derive(Debug)]
pub struct ChildService {
    display: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_reader: thread::JoinHandle<()>,
    /// The control groups of the service's tree, emptied after the process
    /// itself is gone (fields drop after `Drop::drop`).
    lease: Option<crate::budget::Lease>,
}

impl ChildService {
    /// Wrap a spawned `child` (spawned with piped stdin, stdout and stderr).
    /// `display` names it in errors.
    pub fn new(mut child: Child, display: impl Into<String>) -> Result<Self> {
        let display = display.into();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::command(
                display,
                "a service needs piped stdin, stdout and stderr",
            ));
        };
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let tail = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&tail);
        let stderr_reader = thread::spawn(move || {
            let mut stderr = stderr;
            let mut buf = [0u8; 8192];
            loop {
                match stderr.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let Ok(mut kept) = sink.lock() else { break };
                        kept.extend_from_slice(&buf[..n]);
                        if kept.len() > STDERR_TAIL {
                            let cut = kept.len() - STDERR_TAIL;
                            kept.drain(..cut);
                        }
                    }
                }
            }
        });
        Ok(ChildService {
            display,
            child,
            stdin: Some(stdin),
            lines,
            stderr: tail,
            stderr_reader,
            lease: None,
        })
    }

    /// Keep `lease` until the service is dropped, then kill whatever is
    /// left in its groups.
    pub(crate) fn holding(mut self, lease: crate::budget::Lease) -> Self {
        self.lease = Some(lease);
        self
    }

    /// The process id on this machine.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Error {
        // Give the process a moment to be reaped so that the status is known.
        let deadline = Instant::now() + Duration::from_millis(500);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.to_string(),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => break "still running but closed its output".to_string(),
            }
        };
        // Its last words may still be on their way through the stderr pipe.
        let deadline = Instant::now() + Duration::from_millis(500);
        while !self.stderr_reader.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        let stderr = self
            .stderr
            .lock()
            .map(|s| String::from_utf8_lossy(&s).into_owned())
            .unwrap_or_default();
        Error::command(
            &self.display,
            format!("service exited ({status}); stderr ends with:\n{stderr}"),
        )
    }
}

impl Service for ChildService {
    fn send(&mut self, line: &str) -> Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.exited());
        };
        let written = stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.write_all(b"\n"))
            .and_then(|()| stdin.flush());
        if written.is_err() {
            self.stdin = None;
            return Err(self.exited());
        }
        Ok(())
    }

    fn receive(&mut self, timeout: Duration) -> Result<Option<String>> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(Some(line)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(self.exited()),
        }
    }
}

impl Drop for ChildService {
    fn drop(&mut self) {
        self.stdin = None;
        let deadline = Instant::now() + EXIT_GRACE;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn start(script: &str) -> ChildService {
        let child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        ChildService::new(child, "sh").unwrap()
    }

    #[test]
    fn lines_go_in_and_answers_come_out() {
        let mut s = start("while read line; do echo \"got $line\"; done");
        s.send("one").unwrap();
        assert_eq!(
            s.receive(Duration::from_secs(5)).unwrap().as_deref(),
            Some("got one")
        );
        s.send("two").unwrap();
        assert_eq!(
            s.receive(Duration::from_secs(5)).unwrap().as_deref(),
            Some("got two")
        );
        assert_eq!(s.receive(Duration::from_millis(50)).unwrap(), None);
    }

    #[test]
    fn an_exited_service_is_an_error_with_its_stderr() {
        let mut s = start("echo 'cannot import pytest' >&2; exit 3");
        let err = s.receive(Duration::from_secs(5)).unwrap_err().to_string();
        assert!(err.contains("cannot import pytest"), "{err}");
        assert!(err.contains('3'), "{err}");
    }

    #[test]
    fn dropping_ends_a_service_that_ignores_its_stdin() {
        let s = start("trap '' TERM; sleep 60");
        let pid = s.id();
        drop(s);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z"),
            "service {pid} still alive: {stat}"
        );
    }
}
