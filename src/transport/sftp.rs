//! SFTP on a host's connection, for the file writes of `copy`, `template` and `file`.
//!
//! Why: a script that writes a changed file costs the node a subshell, a `stat` and an `mv`
//! (each a fork and an `exec` of a dynamically linked tool), about 3.5 ms of node CPU per file
//! on the benchmark's hosts; the SFTP server does the same work (lstat, an exclusive create,
//! write, fstat, chmod, an atomic rename) as a handful of system calls in one process that
//! is already running: sshd's `internal-sftp`, or one `sftp-server` per connection. See
//! BENCHMARKS.md ("copy and template over SFTP").
//!
//! One SFTP channel per connection, opened when the first such task runs and kept for the
//! run. A host whose sshd offers no `sftp` subsystem, or no `posix-rename@openssh.com` (the
//! atomic replace; plain SFTP `rename` refuses an existing target), keeps the scripts, as
//! does `KAMO_SFTP=0`. The client is the `russh-sftp` crate over a russh channel stream.

use std::time::Duration;

use russh::ChannelMsg;
use russh::client::Handle;
use russh_sftp::client::RawSftpSession;
use russh_sftp::extensions::HardlinkExtension;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};

/// The atomic-replace extension of OpenSSH's SFTP server.
const POSIX_RENAME: &str = "posix-rename@openssh.com";

/// At most this many bytes per SFTP read or write request (OpenSSH's server takes 256 KiB
/// packets; 32 KiB is what its own client sends).
const CHUNK: usize = 32 * 1024;

/// A request the server has not answered in this long ends the SFTP channel's use (the
/// task's own time limit, when it has one, ends the wait sooner).
const REQUEST_TIMEOUT_SECS: u64 = 3600;

/// Whether SFTP may be used at all (`KAMO_SFTP=0` keeps every file write in scripts).
#[must_use]
pub fn enabled() -> bool {
    std::env::var("KAMO_SFTP").map_or(true, |v| v != "0")
}

/// An SFTP session on one connection.
pub struct Sftp {
    raw: RawSftpSession,
}

/// Why an SFTP request failed: the path does not exist, or anything else (the caller then
/// falls back to the script, which reports the error in its own words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SftpError {
    Missing,
    Other(String),
}

impl From<russh_sftp::client::error::Error> for SftpError {
    fn from(e: russh_sftp::client::error::Error) -> Self {
        match e {
            russh_sftp::client::error::Error::Status(s)
                if s.status_code == StatusCode::NoSuchFile =>
            {
                SftpError::Missing
            }
            other => SftpError::Other(other.to_string()),
        }
    }
}

/// What `stat` says of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
}

impl Stat {
    fn from_attrs(a: &FileAttributes) -> Result<Self, SftpError> {
        match (a.permissions, a.uid, a.gid, a.size) {
            (Some(mode), Some(uid), Some(gid), Some(size)) => Ok(Self {
                mode,
                uid,
                gid,
                size,
            }),
            _ => Err(SftpError::Other(
                "the server left out a file's mode, owner or size".into(),
            )),
        }
    }

    /// Permission bits with set-id and sticky bits, as `stat -c %a` gives them.
    #[must_use]
    pub fn perms(&self) -> u32 {
        self.mode & 0o7777
    }

    #[must_use]
    pub fn is_regular(&self) -> bool {
        self.mode & 0o170_000 == 0o100_000
    }

    #[must_use]
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170_000 == 0o040_000
    }
}

fn attrs() -> FileAttributes {
    FileAttributes {
        size: None,
        uid: None,
        user: None,
        gid: None,
        group: None,
        permissions: None,
        atime: None,
        mtime: None,
    }
}

impl Sftp {
    /// Opens the `sftp` subsystem on a new channel and checks that the server can replace
    /// a file atomically; `None` when it cannot (no subsystem, no `posix-rename`, no answer
    /// within `timeout`).
    pub async fn start<H: russh::client::Handler>(
        handle: &Handle<H>,
        timeout: Duration,
    ) -> Option<Self> {
        let work = async {
            let mut ch = handle.channel_open_session().await.ok()?;
            ch.request_subsystem(true, "sftp").await.ok()?;
            loop {
                match ch.wait().await? {
                    ChannelMsg::Success => break,
                    ChannelMsg::Failure | ChannelMsg::Close | ChannelMsg::Eof => return None,
                    _ => {}
                }
            }
            let cfg = russh_sftp::client::Config {
                request_timeout_secs: REQUEST_TIMEOUT_SECS,
                ..russh_sftp::client::Config::default()
            };
            let raw = RawSftpSession::new_with_config(ch.into_stream(), cfg);
            let version = raw.init().await.ok()?;
            if version.extensions.get(POSIX_RENAME).map(String::as_str) != Some("1") {
                tracing::debug!("the host's SFTP server has no {POSIX_RENAME}: scripts it is");
                return None;
            }
            Some(Self { raw })
        };
        tokio::time::timeout(timeout, work).await.ok().flatten()
    }

    /// `lstat`: a symbolic link is described, not followed.
    pub async fn lstat(&self, path: &str) -> Result<Stat, SftpError> {
        Stat::from_attrs(&self.raw.lstat(path).await?.attrs)
    }

    /// `stat`: follows symbolic links.
    pub async fn stat(&self, path: &str) -> Result<Stat, SftpError> {
        Stat::from_attrs(&self.raw.stat(path).await?.attrs)
    }

    /// Creates `path`, which must not exist (`O_CREAT|O_EXCL`), with at most `perms` (the
    /// server's umask applies), open for writing; returns its handle.
    pub async fn create_new(&self, path: &str, perms: u32) -> Result<String, SftpError> {
        let a = FileAttributes {
            permissions: Some(perms),
            ..attrs()
        };
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUDE;
        Ok(self.raw.open(path, flags, a).await?.handle)
    }

    /// Writes `data` from offset 0 in requests of 32 KiB.
    pub async fn write_all(&self, handle: &str, data: &[u8]) -> Result<(), SftpError> {
        let mut off = 0usize;
        for part in data.chunks(CHUNK) {
            self.raw.write(handle, off as u64, part.to_vec()).await?;
            off += part.len();
        }
        Ok(())
    }

    pub async fn fstat(&self, handle: &str) -> Result<Stat, SftpError> {
        Stat::from_attrs(&self.raw.fstat(handle).await?.attrs)
    }

    pub async fn close(&self, handle: &str) -> Result<(), SftpError> {
        self.raw.close(handle).await?;
        Ok(())
    }

    /// `chmod`.
    pub async fn set_mode(&self, path: &str, perms: u32) -> Result<(), SftpError> {
        let a = FileAttributes {
            permissions: Some(perms),
            ..attrs()
        };
        self.raw.setstat(path, a).await?;
        Ok(())
    }

    /// `chown` to numeric ids.
    pub async fn set_ids(&self, path: &str, uid: u32, gid: u32) -> Result<(), SftpError> {
        let a = FileAttributes {
            uid: Some(uid),
            gid: Some(gid),
            ..attrs()
        };
        self.raw.setstat(path, a).await?;
        Ok(())
    }

    /// `mkdir` with the default mode (the server's umask applies).
    pub async fn mkdir(&self, path: &str) -> Result<(), SftpError> {
        self.raw.mkdir(path, attrs()).await?;
        Ok(())
    }

    pub async fn remove(&self, path: &str) -> Result<(), SftpError> {
        self.raw.remove(path).await?;
        Ok(())
    }

    /// Renames `from` over `to` atomically (`rename(2)`: an existing `to` is replaced).
    pub async fn rename_over(&self, from: &str, to: &str) -> Result<(), SftpError> {
        let data: Vec<u8> = HardlinkExtension {
            oldpath: from.to_owned(),
            newpath: to.to_owned(),
        }
        .try_into()
        .map_err(|e| SftpError::Other(format!("{e}")))?;
        match self.raw.extended(POSIX_RENAME, data).await? {
            Packet::Status(s) if s.status_code == StatusCode::Ok => Ok(()),
            Packet::Status(s) => Err(SftpError::Other(format!(
                "{}: {}",
                s.status_code, s.error_message
            ))),
            _ => Err(SftpError::Other("unexpected answer to a rename".into())),
        }
    }

    /// The content of `path` when it is at most `max` bytes long; `Ok(None)` when it is
    /// longer.
    pub async fn read_upto(&self, path: &str, max: usize) -> Result<Option<Vec<u8>>, SftpError> {
        let handle = self.raw.open(path, OpenFlags::READ, attrs()).await?.handle;
        let mut out = Vec::new();
        let result = loop {
            let want = u32::try_from(CHUNK.min(max + 1 - out.len().min(max))).unwrap_or(1 << 15);
            match self.raw.read(&handle, out.len() as u64, want).await {
                Ok(d) if d.data.is_empty() => break Ok(Some(())),
                Ok(d) => {
                    out.extend_from_slice(&d.data);
                    if out.len() > max {
                        break Ok(None);
                    }
                }
                Err(russh_sftp::client::error::Error::Status(s))
                    if s.status_code == StatusCode::Eof =>
                {
                    break Ok(Some(()));
                }
                Err(e) => break Err(SftpError::from(e)),
            }
        };
        let closed = self.close(&handle).await;
        match result {
            Ok(Some(())) => closed.map(|()| Some(out)),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_reads_type_and_permission_bits() {
        let reg = Stat {
            mode: 0o104_755,
            uid: 0,
            gid: 0,
            size: 1,
        };
        assert!(reg.is_regular() && !reg.is_dir());
        assert_eq!(reg.perms(), 0o4755);
        let dir = Stat {
            mode: 0o040_700,
            ..reg
        };
        assert!(dir.is_dir() && !dir.is_regular());
        let link = Stat {
            mode: 0o120_777,
            ..reg
        };
        assert!(!link.is_dir() && !link.is_regular());
        assert!(Stat::from_attrs(&attrs()).is_err());
    }
}
