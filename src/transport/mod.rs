//! How commands reach a host: SSH (russh) or the local shell, behind one small closed enum.
//!
//! Key decision: one connection per host, opened once and reused for every command sent to
//! that host during a run; each command is a channel on it. A closed enum ([`Connection`])
//! rather than a trait object keeps dispatch in one place and the contract easy to test.
//!
//! Every failure carries the phase it happened in ([`Phase`]), so the operator can tell a
//! network problem from a host-key problem from a credential problem at a glance. Failures
//! before a command ran make the host *unreachable* (exit 3), as in Ansible.

pub mod capped;
pub mod keys;
pub mod known_hosts;
pub mod limits;
pub mod local;
pub mod quote;
pub mod sftp;
pub mod shell;
pub mod ssh;
pub mod stream;
pub mod target;

use std::fmt;
use std::time::Duration;

pub use target::{Jump, Target};

/// When a running command is ended early: at its time limit (`--task-timeout`, a task's
/// `timeout:`) or when the operator interrupts kamo (`stop` turns true). Both end it on the
/// host the same way (TERM, then KILL, to its process group): closing the connection alone
/// would leave a command that does not write, such as `sleep`, running on the node.
#[derive(Debug, Clone, Default)]
pub struct Cutoff {
    pub limit: Option<Duration>,
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Cutoff {
    /// Only a time limit (none: the command may run as long as it likes).
    #[must_use]
    pub fn after(limit: Option<Duration>) -> Self {
        Self { limit, stop: None }
    }

    /// Whether the stop was asked for already.
    #[must_use]
    pub fn stopped(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| *s.borrow())
    }

    /// Resolves when the command must end; never, without a limit or a stop.
    pub async fn reached(self) {
        let Self { limit, stop } = self;
        let stopped = async move {
            match stop {
                // A dropped sender means no stop will come.
                Some(mut rx) => {
                    if rx.wait_for(|s| *s).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        match limit {
            Some(d) => {
                tokio::select! {
                    () = tokio::time::sleep(d) => {}
                    () = stopped => {}
                }
            }
            None => stopped.await,
        }
    }
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(u32),
    /// Killed by a signal (name as SSH reports it, e.g. `TERM`).
    Signal(String),
    /// The channel closed without a status: the connection dropped mid-command.
    NoStatus,
}

/// The separate streams and the end of one command.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit: Exit,
}

/// Where in reaching a host something failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Working out address, user, keys from inventory and ssh config.
    Resolve,
    /// TCP, SSH banner and key exchange (including through a jump host).
    Connect,
    /// The host's key was refused.
    HostKey,
    /// No credential was accepted.
    Auth,
    /// The connection failed while a command was being started or run.
    Exec,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Resolve => "resolve",
            Self::Connect => "connect",
            Self::HostKey => "host key",
            Self::Auth => "authentication",
            Self::Exec => "exec",
        })
    }
}

/// A failure to reach a host or to run a command on it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{phase}: {message}")]
pub struct TransportError {
    pub phase: Phase,
    pub message: String,
}

impl TransportError {
    pub fn new(phase: Phase, message: impl Into<String>) -> Self {
        Self {
            phase,
            message: message.into(),
        }
    }
}

/// An open way to run commands on one host.
pub enum Connection {
    Ssh(ssh::Session),
    Local,
}

impl Connection {
    /// Runs `cmd` with the remote login shell (`sh -c` for local), feeding `stdin` then EOF;
    /// through sudo when `become` is given.
    pub async fn exec(
        &self,
        cmd: &str,
        stdin: Option<Vec<u8>>,
        sudo: Option<&quote::Become>,
    ) -> Result<Output, TransportError> {
        match self {
            Self::Ssh(s) => s.exec(cmd, stdin, sudo).await,
            Self::Local => local::exec(cmd, stdin, sudo).await,
        }
    }

    /// [`Connection::exec`] bounded by `limit`: `Ok(None)` when the command did not end in
    /// time; it has then been ended (its process group killed) on the host.
    pub async fn exec_limited(
        &self,
        cmd: &str,
        stdin: Option<Vec<u8>>,
        sudo: Option<&quote::Become>,
        cutoff: Cutoff,
    ) -> Result<Option<Output>, TransportError> {
        match self {
            Self::Ssh(s) => s.exec_limited(cmd, stdin, sudo, cutoff).await,
            Self::Local => local::exec_limited(cmd, stdin, sudo, cutoff).await,
        }
    }

    /// Runs a task script with `/bin/sh -s` (the script on its stdin), bounded like
    /// [`Connection::exec_limited`]; over SSH in a long-lived task shell ([`shell`]), kept
    /// apart from it as `apart` says.
    pub async fn run_script(
        &self,
        script: Vec<u8>,
        sudo: Option<&quote::Become>,
        cutoff: Cutoff,
        apart: shell::Apart,
    ) -> Result<Option<Output>, TransportError> {
        match self {
            Self::Ssh(s) => s.run_script(script, sudo, cutoff, apart).await,
            Self::Local => local::exec_limited("/bin/sh -s", Some(script), sudo, cutoff).await,
        }
    }

    /// Closes the connection politely; errors are irrelevant at that point.
    /// "the connection was lost `what`", with the cause when the connection knows it.
    pub async fn lost_message(&self, what: &str) -> String {
        match self {
            Connection::Ssh(s) => s.lost_message(what).await,
            Connection::Local if what.is_empty() => "the connection was lost".to_owned(),
            Connection::Local => format!("the connection was lost {what}"),
        }
    }

    pub async fn close(self) {
        if let Self::Ssh(s) = self {
            s.close().await;
        }
    }
}
