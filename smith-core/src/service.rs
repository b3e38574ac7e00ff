//! Long-lived processes in a workspace: the [`Service`] trait. Its
//! implementation over an operating-system process, `ChildService`, lives in
//! smith-env with the rest of smith's process handling.
//!
//! A service reads requests as lines on its stdin and answers with lines on
//! its stdout. smith's pytest executor uses one per workspace as a fork
//! server: Python and pytest are imported once, and every test run is a
//! forked child instead of a fresh interpreter.

use std::fmt::Debug;
use std::time::Duration;

use crate::Result;

/// A process that answers lines with lines. Dropping it ends the process.
pub trait Service: Send + Debug {
    /// Send one line (the newline is added).
    fn send(&mut self, line: &str) -> Result<()>;

    /// The next line the process writes, waiting at most `timeout`;
    /// `Ok(None)` if none came in time. An error once the process has exited
    /// (naming its exit status and the end of its stderr).
    fn receive(&mut self, timeout: Duration) -> Result<Option<String>>;
}

impl<T: Service + ?Sized> Service for Box<T> {
    fn send(&mut self, line: &str) -> Result<()> {
        (**self).send(line)
    }
    fn receive(&mut self, timeout: Duration) -> Result<Option<String>> {
        (**self).receive(timeout)
    }
}
