//! The sending end of a transfer: `tar --create` on an SSH host, or on this workstation for a
//! source that is the inventory's local host (`localhost`, `ansible_connection=local`), so
//! that `kamo copy localhost:/DIR 'nodes:/DIR'` pushes a directory to a fleet.
//!
//! Either way the stream is read a chunk at a time (one SSH packet, or 64 KiB from the local
//! pipe), and a receiver that stops taking data ends the sender ([`Source::stop`]) instead of
//! having its output drained to the end.

use std::process::Stdio;

use tokio::io::AsyncReadExt;

use crate::transport::quote::Become;
use crate::transport::stream::{StreamReader, StreamWriter};
use crate::transport::{Connection, Exit, Phase, TransportError};

/// How much of the local tar's stderr is kept.
const STDERR_LIMIT: u64 = 64 * 1024;

/// A running `tar --create`.
pub enum Source {
    Ssh {
        rd: StreamReader,
        wr: StreamWriter,
    },
    Local {
        child: tokio::process::Child,
        out: tokio::process::ChildStdout,
        err: tokio::task::JoinHandle<Vec<u8>>,
    },
}

impl Source {
    /// Starts `cmd` on `conn` (through sudo with `sudo`, on SSH hosts).
    pub async fn start(
        conn: &Connection,
        cmd: &str,
        sudo: Option<&Become>,
    ) -> Result<Source, TransportError> {
        match conn {
            Connection::Ssh(s) => {
                let (rd, wr) = s.exec_stream(cmd, sudo).await?;
                wr.eof().await;
                Ok(Source::Ssh { rd, wr })
            }
            Connection::Local => {
                let mut child = tokio::process::Command::new("/bin/sh")
                    .args(["-c", cmd])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| {
                        TransportError::new(Phase::Exec, format!("cannot run /bin/sh: {e}"))
                    })?;
                let (Some(out), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
                    return Err(TransportError::new(
                        Phase::Exec,
                        "no pipes to the local tar",
                    ));
                };
                let err = tokio::spawn(async move {
                    let mut kept = Vec::new();
                    let _ = stderr.take(STDERR_LIMIT).read_to_end(&mut kept).await;
                    kept
                });
                Ok(Source::Local { child, out, err })
            }
        }
    }

    /// The next chunk of the stream; `None` at its end.
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        match self {
            Source::Ssh { rd, .. } => rd.next().await,
            Source::Local { out, .. } => {
                let mut buf = vec![0u8; 64 * 1024];
                match out.read(&mut buf).await {
                    Ok(0) | Err(_) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some(buf)
                    }
                }
            }
        }
    }

    /// Ends the sender early (the receiver stopped).
    pub async fn stop(&mut self) {
        match self {
            Source::Ssh { wr, .. } => wr.close_ref().await,
            Source::Local { child, .. } => {
                let _ = child.start_kill();
            }
        }
    }

    /// How the sender ended and its stderr.
    pub async fn finish(self) -> (Exit, Vec<u8>) {
        match self {
            Source::Ssh { rd, .. } => rd.finish().await,
            Source::Local {
                mut child,
                out,
                err,
            } => {
                drop(out);
                let status = child.wait().await;
                let stderr = err.await.unwrap_or_default();
                let exit = match status.ok().and_then(|s| s.code()) {
                    Some(c) => Exit::Code(u32::try_from(c).unwrap_or(1)),
                    None => Exit::Signal("KILL".into()),
                };
                (exit, stderr)
            }
        }
    }
}
