//! Backups of the app database with the workstation's `pg_dump -Fc`, checked with
//! `pg_restore --list`, and put back with `pg_restore --clean --if-exists --single-transaction`.
//!
//! Why the PostgreSQL client programs and not a dump written by kamo: the custom format is what
//! operators already restore with, it keeps every object PostgreSQL knows (kamo would have to
//! reimplement `pg_dump`'s catalog reading), and `pg_restore` can read it back to check it.
//! The password goes to the programs in `PGPASSWORD` in their environment, never on their
//! command line (which every user of the machine can read in /proc). A dump is written to a
//! `.partial` file (mode 0600) and renamed only once `pg_restore --list` has read it, so a
//! crash never leaves a file that looks like a finished backup.

use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::target::DbTarget;
use crate::error::{Error, Result};

/// A verified backup, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    /// How many entries `pg_restore --list` lists.
    pub entries: usize,
}

impl Backup {
    /// One line for the operator and the journal: path, size, SHA-256, entries.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "{} ({} bytes, sha256 {}, {} entries)",
            self.path.display(),
            self.size,
            self.sha256,
            self.entries
        )
    }
}

/// The client program `name`: `$KAMO_PG_BIN/name` when set, else from `PATH`.
fn program(name: &str) -> PathBuf {
    match std::env::var_os("KAMO_PG_BIN").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir).join(name),
        None => PathBuf::from(name),
    }
}

/// A client program with libpq's environment for `db`, stdin closed.
fn command(name: &str, db: &DbTarget, via: Option<SocketAddr>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program(name));
    // Only what the program needs: no inherited PG* variable can point it elsewhere.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(db.libpq_env(via))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `cmd`, returning its stdout; an error shows its stderr.
async fn output(mut cmd: tokio::process::Command, what: &str) -> Result<Vec<u8>> {
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| {
            Error::Other(format!(
                "cannot run {what}: {e} (the PostgreSQL client programs must be installed on \
                 this machine, e.g. apt-get install postgresql-client, or named by KAMO_PG_BIN)"
            ))
        })?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "{what} failed ({}): {}",
            out.status,
            crate::ui::sanitize(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// The file name of a new backup of `db` in `dir`.
#[must_use]
pub fn file_name(db: &DbTarget, label: &str) -> String {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-'], "");
    let safe = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect::<String>()
    };
    format!("{}-{stamp}-{}.dump", safe(&db.dbname), safe(label))
}

/// The `pg_dump` command line kamo runs (for plans; no secret in it).
#[must_use]
pub fn dump_command_line(path: &Path) -> String {
    format!(
        "pg_dump --format=custom --no-password > {} (PGPASSWORD in its environment)",
        path.display()
    )
}

/// Dumps `db` into `dir` (created 0700), checks the dump and returns what was written.
pub async fn dump(
    db: &DbTarget,
    via: Option<SocketAddr>,
    dir: &Path,
    name: &str,
) -> Result<Backup> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("cannot create the backup directory", dir, e))?;
    let path = dir.join(name);
    let partial = dir.join(format!("{name}.partial"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| Error::io("cannot create the backup", &partial, e))?;
    let mut cmd = command("pg_dump", db, via);
    cmd.args(["--format=custom", "--no-password"])
        .stdout(Stdio::from(file))
        .stderr(Stdio::piped());
    // `output()` would replace the file with a pipe: spawn, then collect stderr.
    let child = cmd.spawn().map_err(|e| {
        Error::Other(format!(
            "cannot run pg_dump: {e} (the PostgreSQL client programs must be installed on this \
             machine, or named by KAMO_PG_BIN)"
        ))
    })?;
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| Error::Other(format!("pg_dump: {e}")))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&partial);
        return Err(Error::Other(format!(
            "pg_dump of {} failed ({}): {}",
            db.display(),
            out.status,
            crate::ui::sanitize(&out.stderr).trim()
        )));
    }
    let entries = list(&partial).await?;
    std::fs::rename(&partial, &path).map_err(|e| Error::io("cannot rename", &partial, e))?;
    let (size, sha256) = hash(&path)?;
    Ok(Backup {
        path,
        size,
        sha256,
        entries,
    })
}

/// `pg_restore --list`: how many entries the dump holds; an error if it cannot be read.
pub async fn list(path: &Path) -> Result<usize> {
    let mut cmd = tokio::process::Command::new(program("pg_restore"));
    cmd.arg("--list")
        .arg(path)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = output(cmd, &format!("pg_restore --list {}", path.display())).await?;
    let n = String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .count();
    if n == 0 {
        return Err(Error::Other(format!(
            "the backup {} lists no entry: it is not a usable dump",
            path.display()
        )));
    }
    Ok(n)
}

/// Size and SHA-256 of a file.
pub fn hash(path: &Path) -> Result<(u64, String)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::io("cannot read", path, e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, crate::journal::hex(&h.finalize())))
}

/// Whether `b` is still on disk exactly as recorded.
#[must_use]
pub fn still_valid(b: &Backup) -> bool {
    hash(&b.path).is_ok_and(|(size, sha)| size == b.size && sha == b.sha256)
}

/// Puts `path` back into `db`: every object the dump holds is dropped and recreated, in one
/// transaction (an error leaves the database as it was).
pub async fn restore(db: &DbTarget, via: Option<SocketAddr>, path: &Path) -> Result<()> {
    let mut cmd = command("pg_restore", db, via);
    cmd.args([
        "--clean",
        "--if-exists",
        "--single-transaction",
        "--exit-on-error",
        "--no-owner",
        "--no-password",
    ])
    .arg(format!(
        "--dbname=dbname='{}'",
        db.dbname.replace('\\', "\\\\").replace('\'', "\\'")
    ))
    .arg(path);
    output(cmd, &format!("pg_restore of {}", path.display())).await?;
    Ok(())
}
