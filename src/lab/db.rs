//! The lab's app database (`kamo lab up --with-db`): a real PostgreSQL server, as KAMONOHASHI's
//! database is in a real cluster, loaded with the schema from `playbooks/migrations/` and sample
//! rows.
//!
//! Decisions, and why:
//! - The server runs on the master node's address (`127.B.0.1`), in the machine's network
//!   namespace that the nodes share, so the nodes reach it where a cluster's database would be.
//!   It is not inside the node's mount namespace: it is the lab's, started and stopped by PID
//!   like the supervisor, and `lab down` stops it even when the nodes are gone.
//! - It runs as the `postgres` user (initdb refuses root) from the newest
//!   `/usr/lib/postgresql/<v>/bin`, with its data in `DIR/db/data` owned by that user.
//! - The superuser is reachable only through a socket directory that only root and `postgres`
//!   can enter (`trust` there); over TCP only the app user may log in, to the app database,
//!   with SCRAM. The app user's password is generated, written to `DIR/db-password` (0600) and
//!   sent to the server only as a SCRAM verifier ([`crate::db::scram`]), so it is in no log.
//! - Schema loading and status queries use sqlx, not psql: no client programs to find, and
//!   errors come back as values.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::error::Error;
use crate::secret::Secret;

/// Rows loaded after the schema (at the newest migration kamo ships).
pub const SAMPLE_ROWS: &str = include_str!("db_sample.sql");

/// The app's database and user, as KAMONOHASHI's chart names them.
pub const DB_NAME: &str = "kamonohashi";
pub const DB_USER: &str = "platypus";

/// Where the lab's database is, recorded in lab.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabDb {
    pub address: String,
    pub port: u16,
    pub name: String,
    pub user: String,
    /// The PostgreSQL server binaries used.
    pub bin: PathBuf,
    /// The server's socket directory (superuser access; root and postgres only).
    pub socket_dir: PathBuf,
    /// The postmaster's PID and start time while it runs.
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub pid_start: Option<i64>,
}

impl LabDb {
    #[must_use]
    pub fn data_dir(lab: &Path) -> PathBuf {
        lab.join("db/data")
    }

    #[must_use]
    pub fn password_file(lab: &Path) -> PathBuf {
        lab.join("db-password")
    }

    /// Whether the recorded postmaster is still running (same PID, same start time, and its
    /// command line names this lab's data directory).
    #[must_use]
    pub fn running(&self, lab: &Path) -> Option<u32> {
        let pid = self.pid?;
        let start = crate::journal::lock::process_start(pid)?;
        if self.pid_start.is_some_and(|s| s != start) {
            return None;
        }
        let proc_stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        if proc_stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
        {
            return None;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let data = Self::data_dir(lab);
        String::from_utf8_lossy(&cmdline)
            .contains(&*data.to_string_lossy())
            .then_some(pid)
    }
}

/// The newest PostgreSQL server binaries on this machine; when there are none, the
/// distribution's `postgresql` package is installed first (as root, with apt-get), as the
/// issue asks of the lab, and said so on stderr.
pub fn bin_dir() -> Result<PathBuf, Error> {
    if let Ok(b) = find_bin_dir() {
        return Ok(b);
    }
    let apt = Path::new("/usr/bin/apt-get");
    if nix::unistd::geteuid().is_root() && apt.is_file() {
        crate::ui::eprint_line(
            "--with-db: no PostgreSQL server on this machine; installing the distribution's \
             `postgresql` package (apt-get install -y postgresql)",
        );
        let install = |args: &[&str]| {
            std::process::Command::new(apt)
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !install(&["install", "-y", "-q", "postgresql"]) {
            // A fresh machine may have no package lists yet.
            let _ = install(&["update", "-q"]);
            let _ = install(&["install", "-y", "-q", "postgresql"]);
        }
    }
    find_bin_dir()
}

fn find_bin_dir() -> Result<PathBuf, Error> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let v: u32 = e.file_name().to_str()?.parse().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("postgres").is_file().then_some((v, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().map(|(_, b)| b).ok_or_else(|| {
        Error::Other(
            "--with-db needs the PostgreSQL server: no /usr/lib/postgresql/<version>/bin/postgres \
             on this machine (install the distribution's package: apt-get install postgresql)"
                .into(),
        )
    })
}

fn postgres_user() -> Result<(nix::unistd::Uid, nix::unistd::Gid), Error> {
    let u = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .ok_or_else(|| {
            Error::Other(
                "--with-db runs PostgreSQL as the `postgres` user, which does not exist (the \
                 postgresql package creates it)"
                    .into(),
            )
        })?;
    Ok((u.uid, u.gid))
}

/// The server runs as `postgres`: every parent of the lab directory must let it through.
fn check_reachable(dir: &Path, uid: nix::unistd::Uid, gid: nix::unistd::Gid) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    for p in dir.ancestors().skip(1) {
        let Ok(m) = std::fs::metadata(p) else {
            continue;
        };
        let mode = m.permissions().mode();
        let ok = if m.uid() == uid.as_raw() {
            mode & 0o100 != 0
        } else if m.gid() == gid.as_raw() {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return Err(Error::Usage(format!(
                "--with-db: the database server runs as the `postgres` user, which cannot enter \
                 {} (mode {:o}); `chmod o+x {}` or use a --dir elsewhere",
                p.display(),
                mode & 0o7777,
                p.display()
            )));
        }
    }
    Ok(())
}

/// What `--with-db` needs, checked before the lab creates anything: the server binaries, the
/// `postgres` user, and a way for that user into `lab` (the lab directory, existing or not).
pub fn preflight(lab: &Path) -> Result<(), Error> {
    bin_dir()?;
    let (uid, gid) = postgres_user()?;
    check_reachable(&lab.join("db"), uid, gid)
}

/// A strong random password: 24 bytes from the kernel, URL-safe base64 (32 characters).
fn generate_password() -> Result<Secret<String>, Error> {
    use base64::Engine as _;
    let mut bytes = [0u8; 24];
    random(&mut bytes)?;
    Ok(Secret::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ))
}

fn random(buf: &mut [u8]) -> Result<(), Error> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(|e| Error::io("cannot read", Path::new("/dev/urandom"), e))
}

/// Reads the app user's password from `DIR/db-password`.
pub fn read_password(lab: &Path) -> Result<Secret<String>, Error> {
    let f = LabDb::password_file(lab);
    std::fs::read_to_string(&f)
        .map(|s| Secret::new(s.trim().to_owned()))
        .map_err(|e| Error::io("cannot read", &f, e))
}

fn as_postgres(
    program: &Path,
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.uid(uid.as_raw())
        .gid(gid.as_raw())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C.UTF-8")
        .current_dir("/")
        .stdin(std::process::Stdio::null());
    cmd
}

/// Creates the cluster: `DIR/db/data` (initdb, as postgres), its pg_hba.conf, the password file.
/// Returns the description to record; the server is not started.
pub fn create(lab: &Path, address: &str, port: u16, socket_dir: PathBuf) -> Result<LabDb, Error> {
    let bin = bin_dir()?;
    let (uid, gid) = postgres_user()?;
    check_reachable(&lab.join("db"), uid, gid)?;
    let root = lab.join("db");
    std::fs::create_dir_all(&root).map_err(|e| Error::io("cannot create", &root, e))?;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("cannot chmod", &root, e))?;
    nix::unistd::chown(&root, Some(uid), Some(gid))
        .map_err(|e| Error::Other(format!("cannot chown {} to postgres: {e}", root.display())))?;
    let data = LabDb::data_dir(lab);
    let out = as_postgres(&bin.join("initdb"), uid, gid)
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth-local=trust", "--auth-host=reject"])
        .args(["--no-locale", "-E", "UTF8", "--no-sync"])
        .output()
        .map_err(|e| Error::Other(format!("cannot run {}/initdb: {e}", bin.display())))?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "initdb of the lab database failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let hba = data.join("pg_hba.conf");
    std::fs::write(
        &hba,
        format!(
            "# kamo lab: the superuser only through the server's own socket directory (root and\n\
             # postgres may enter it); over TCP only the app user, to the app database.\n\
             local all postgres trust\n\
             host {DB_NAME} {DB_USER} 127.0.0.0/8 scram-sha-256\n"
        ),
    )
    .map_err(|e| Error::io("cannot write", &hba, e))?;
    Ok(LabDb {
        address: address.to_owned(),
        port,
        name: DB_NAME.into(),
        user: DB_USER.into(),
        bin,
        socket_dir,
        pid: None,
        pid_start: None,
    })
}

/// Starts the server (in the background, its own process group) and waits until it accepts
/// connections; records its PID in `db`.
pub async fn start(lab: &Path, db: &mut LabDb) -> Result<(), Error> {
    let (uid, gid) = postgres_user()?;
    std::fs::create_dir_all(&db.socket_dir)
        .map_err(|e| Error::io("cannot create", &db.socket_dir, e))?;
    std::fs::set_permissions(&db.socket_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("cannot chmod", &db.socket_dir, e))?;
    nix::unistd::chown(&db.socket_dir, Some(uid), Some(gid))
        .map_err(|e| Error::Other(format!("cannot chown {}: {e}", db.socket_dir.display())))?;
    let log_path = lab.join("db/postgres.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| Error::io("cannot open", &log_path, e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Error::io("cannot open", &log_path, e))?;
    let mut child = as_postgres(&db.bin.join("postgres"), uid, gid)
        .arg("-D")
        .arg(LabDb::data_dir(lab))
        .args(["-p", &db.port.to_string()])
        .arg("-c")
        .arg(format!("listen_addresses={}", db.address))
        .arg("-c")
        .arg(format!(
            "unix_socket_directories={}",
            db.socket_dir.display()
        ))
        .args(["-c", "unix_socket_permissions=0700"])
        // A failing statement is not copied into the log (it could hold a value).
        .args(["-c", "log_min_error_statement=panic"])
        .args(["-c", "max_connections=50", "-c", "shared_buffers=32MB"])
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| Error::Other(format!("cannot start {}/postgres: {e}", db.bin.display())))?;
    let pid = child.id();
    db.pid = Some(pid);
    db.pid_start = crate::journal::lock::process_start(pid);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            db.pid = None;
            return Err(Error::Other(format!(
                "the lab database did not start ({status}) on {}:{}: {}",
                db.address,
                db.port,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n  ")
            )));
        }
        if superuser(db).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            stop(lab, db).await;
            return Err(Error::Other(format!(
                "the lab database did not accept connections within 60 s; see {}",
                log_path.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn superuser(db: &LabDb) -> Result<PgConnection, sqlx::Error> {
    PgConnectOptions::new()
        .socket(&db.socket_dir)
        .port(db.port)
        .username("postgres")
        .database("postgres")
        .disable_statement_logging()
        .connect()
        .await
}

/// The app user's connection options (over TCP, as the nodes connect).
#[must_use]
pub fn app_options(db: &LabDb, password: &Secret<String>) -> PgConnectOptions {
    PgConnectOptions::new()
        .host(&db.address)
        .port(db.port)
        .username(&db.user)
        .password(password.expose())
        .database(&db.name)
        .disable_statement_logging()
}

/// Creates the app user (a new password in `DIR/db-password`) and database, applies every
/// migration in `migrations` and loads the sample rows.
pub async fn load(
    lab: &Path,
    db: &LabDb,
    migrations: &crate::db::migrations::Migrations,
) -> Result<Vec<String>, Error> {
    let password = generate_password()?;
    let pw_file = LabDb::password_file(lab);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&pw_file)
            .map_err(|e| Error::io("cannot write", &pw_file, e))?;
        writeln!(f, "{}", password.expose()).map_err(|e| Error::io("cannot write", &pw_file, e))?;
    }
    let mut salt = [0u8; 16];
    random(&mut salt)?;
    let verifier =
        crate::db::scram::verifier(password.expose(), &salt, crate::db::scram::ITERATIONS);
    let mut su = superuser(db).await.map_err(|e| {
        Error::Other(format!(
            "cannot connect to the lab database as its superuser: {e}"
        ))
    })?;
    let fail = |what: &str, e: &sqlx::Error| {
        Error::Other(format!("{what}: {}", crate::db::apply::describe(e)))
    };
    // The verifier is not the password; it is what the server stores.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE \"{}\" LOGIN PASSWORD '{verifier}'",
        db.user
    )))
    .execute(&mut su)
    .await
    .map_err(|e| fail("cannot create the app user", &e))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{}\" OWNER \"{}\"",
        db.name, db.user
    )))
    .execute(&mut su)
    .await
    .map_err(|e| fail("cannot create the app database", &e))?;
    let _ = su.close().await;
    let mut app = app_options(db, &password).connect().await.map_err(|e| {
        Error::Other(format!(
            "cannot connect to the lab database as {} on {}:{}: {}",
            db.user,
            db.address,
            db.port,
            crate::db::apply::describe(&e)
        ))
    })?;
    let applied = crate::db::apply::up_to_newest(&mut app, migrations).await?;
    let mut tx = app
        .begin()
        .await
        .map_err(|e| fail("cannot begin a transaction", &e))?;
    sqlx::raw_sql(SAMPLE_ROWS)
        .execute(&mut *tx)
        .await
        .map_err(|e| fail("cannot load the sample rows", &e))?;
    tx.commit()
        .await
        .map_err(|e| fail("cannot load the sample rows", &e))?;
    let _ = app.close().await;
    Ok(applied)
}

/// What `lab status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub state: &'static str,
    pub pid: Option<u32>,
    pub newest_migration: Option<String>,
    pub migrations: usize,
    pub error: Option<String>,
}

/// Asks the server, as the app user, which migrations are applied (bounded: 5 s).
pub async fn status(lab: &Path, db: &LabDb) -> Status {
    let pid = db.running(lab);
    let query = async {
        let password = read_password(lab)?;
        let mut c = app_options(db, &password)
            .connect()
            .await
            .map_err(|e| Error::Other(crate::db::apply::describe(&e)))?;
        let applied = crate::db::apply::applied(&mut c).await;
        let _ = c.close().await;
        applied
    };
    match tokio::time::timeout(Duration::from_secs(5), query).await {
        Ok(Ok(applied)) => Status {
            state: "up",
            pid,
            newest_migration: applied.last().map(|a| a.id.clone()),
            migrations: applied.len(),
            error: None,
        },
        Ok(Err(e)) => Status {
            state: "down",
            pid,
            newest_migration: None,
            migrations: 0,
            error: pid.map(|_| e.to_string()),
        },
        Err(_) => Status {
            state: "down",
            pid,
            newest_migration: None,
            migrations: 0,
            error: Some("no answer within 5 s".into()),
        },
    }
}

/// Stops the server by PID: a fast shutdown (SIGINT, as `pg_ctl -m fast`), then immediate
/// (SIGQUIT), then SIGKILL of it and its children, each bounded.
pub async fn stop(lab: &Path, db: &mut LabDb) {
    use nix::sys::signal::{Signal, kill};
    let Some(pid) = db.running(lab) else {
        db.pid = None;
        return;
    };
    let raw = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    for (sig, wait) in [
        (Signal::SIGINT, Duration::from_secs(30)),
        (Signal::SIGQUIT, Duration::from_secs(5)),
    ] {
        let _ = kill(raw, sig);
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if db.running(lab).is_none() {
                db.pid = None;
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    for p in crate::lab::supervisor::descendants(pid)
        .into_iter()
        .chain([pid])
    {
        let _ = kill(
            nix::unistd::Pid::from_raw(i32::try_from(p).unwrap_or(i32::MAX)),
            Signal::SIGKILL,
        );
    }
    db.pid = None;
}

/// Removes the database's files (`down --purge`).
pub fn purge(lab: &Path, db: &LabDb) -> Result<(), Error> {
    let root = lab.join("db");
    if root.exists() {
        std::fs::remove_dir_all(&root).map_err(|e| Error::io("cannot remove", &root, e))?;
    }
    let _ = std::fs::remove_file(LabDb::password_file(lab));
    let _ = std::fs::remove_dir_all(&db.socket_dir);
    Ok(())
}
