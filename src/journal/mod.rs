//! The run journal: every run, every file it read and every task on every host, in a SQLite
//! database (`journal.sqlite3`) in the state directory.
//!
//! Why a database and not a log file: `kamo resume` must find, per host, which tasks
//! finished and restore what they registered, and `kamo history/show/log` query it; a crash
//! must never leave it half-written. SQLite in WAL mode gives both: each write is an atomic
//! transaction that a SIGKILL cannot tear, and readers never block the run.
//!
//! Ordering rule (issue 4): a task's start is committed before its script is sent and its
//! result right after it returns, so a SIGKILL loses at most the tasks in flight. Writes of
//! concurrent host jobs are grouped into one transaction by a writer task ([`RunLog`]), so
//! 1,000 hosts do not pay 1,000 commits per task. A write that fails stops the run before the
//! next task is sent: kamo never runs without a record.

pub mod lock;
pub mod query;
pub mod redact;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;

/// The journal's file name inside the state directory.
pub const FILE: &str = "journal.sqlite3";

/// Captured stdout/stderr kept per task and stream; the rest is dropped and the size noted.
pub const OUTPUT_CAP: usize = 256 * 1024;

static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| Migrator {
    migrations: Cow::Owned(vec![Migration::new(
        1,
        Cow::Borrowed("init"),
        MigrationType::Simple,
        sqlx::SqlStr::from_static(include_str!("migrations/0001_init.sql")),
        false,
    )]),
    ..Migrator::DEFAULT
});

/// Milliseconds since the Unix epoch, now.
#[must_use]
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An open journal (one connection; the run's task writes use a second one, see [`RunLog`]).
pub struct Journal {
    pub path: PathBuf,
    pub(crate) conn: SqliteConnection,
}

fn journal_error(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("run journal {}: {what}: {e}", path.display()))
}

async fn connect(path: &Path) -> Result<SqliteConnection, Error> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    SqliteConnection::connect_with(&opts)
        .await
        .map_err(|e| unreadable(path, &e))
}

fn unreadable(path: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::Other(format!(
        "cannot open the run journal {}: {e}. If it is damaged, move it aside (kamo then starts \
         a new, empty journal) or restore it from a backup; nothing was sent to any host",
        path.display()
    ))
}

impl Journal {
    /// Opens (creating if needed, mode 0600 in a 0700 directory) and migrates the journal of
    /// `state_dir`.
    pub async fn open(state_dir: &Path) -> Result<Journal, Error> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(|e| Error::io("cannot create the state directory", state_dir, e))?;
        let path = state_dir.join(FILE);
        if !path.exists() {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| Error::io("cannot create the run journal", &path, e))?;
        }
        let mut conn = connect(&path).await?;
        MIGRATOR
            .run(&mut conn)
            .await
            .map_err(|e| unreadable(&path, &e))?;
        Ok(Journal { path, conn })
    }

    /// Opens the journal only if it exists (for `history`, `show`, `log`).
    pub async fn open_existing(state_dir: &Path) -> Result<Journal, Error> {
        let path = state_dir.join(FILE);
        if !path.exists() {
            return Err(Error::Usage(format!(
                "no run journal at {} (no run was recorded in this state directory; see \
                 --state-dir and KAMO_STATE_DIR)",
                path.display()
            )));
        }
        Self::open(state_dir).await
    }

    /// Records a new run and its files; returns its id.
    pub async fn start_run(&mut self, run: &NewRun) -> Result<i64, Error> {
        let path = self.path.clone();
        let err = |e: sqlx::Error| {
            journal_error(
                &path,
                "cannot record the run (nothing was sent to any host)",
                e,
            )
        };
        let mut tx = self.conn.begin().await.map_err(err)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO runs (command, user, pid, pid_start, kamo_version, playbook, \
             playbook_hash, inventory_hash, extra_vars, options, state, started_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?) RETURNING id",
        )
        .bind(&run.command)
        .bind(&run.user)
        .bind(i64::from(std::process::id()))
        .bind(lock::process_start(std::process::id()))
        .bind(env!("CARGO_PKG_VERSION"))
        .bind(&run.playbook)
        .bind(&run.playbook_hash)
        .bind(&run.inventory_hash)
        .bind(&run.extra_vars)
        .bind(&run.options)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        for f in &run.files {
            sqlx::query(
                "INSERT OR REPLACE INTO run_files (run_id, kind, path, sha256) VALUES (?, ?, ?, ?)",
            )
            .bind(id)
            .bind(&f.kind)
            .bind(f.path.to_string_lossy().as_ref())
            .bind(&f.sha256)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(id)
    }

    /// Marks a run as taken up again by this process (`kamo resume`); returns the attempt number.
    pub async fn reopen_run(&mut self, id: i64) -> Result<i64, Error> {
        let path = self.path.clone();
        let err = |e: sqlx::Error| journal_error(&path, "cannot record the resume", e);
        sqlx::query_scalar(
            "UPDATE runs SET state = 'running', pid = ?, pid_start = ?, ended_at = NULL, \
             message = NULL, attempts = attempts + 1 WHERE id = ? RETURNING attempts",
        )
        .bind(i64::from(std::process::id()))
        .bind(lock::process_start(std::process::id()))
        .bind(id)
        .fetch_one(&mut self.conn)
        .await
        .map_err(err)
    }

    /// Removes a run that never started (its host locks were refused).
    pub async fn delete_run(&mut self, id: i64) -> Result<(), Error> {
        let path = self.path.clone();
        sqlx::query("DELETE FROM runs WHERE id = ?")
            .bind(id)
            .execute(&mut self.conn)
            .await
            .map_err(|e| journal_error(&path, "cannot remove a refused run", e))?;
        Ok(())
    }

    /// Records how the run ended.
    pub async fn finish_run(
        &mut self,
        id: i64,
        state: RunState,
        message: Option<&str>,
    ) -> Result<(), Error> {
        let path = self.path.clone();
        sqlx::query("UPDATE runs SET state = ?, message = ?, ended_at = ? WHERE id = ?")
            .bind(state.as_str())
            .bind(message)
            .bind(now_ms())
            .bind(id)
            .execute(&mut self.conn)
            .await
            .map_err(|e| journal_error(&path, "cannot record the end of the run", e))?;
        Ok(())
    }

    /// A second connection that records the tasks of run `id`, grouping concurrent writes.
    pub async fn run_log(&self, id: i64, attempt: i64) -> Result<RunLog, Error> {
        let conn = connect(&self.path).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = tokio::spawn(writer(conn, rx, id, attempt));
        Ok(RunLog {
            tx,
            path: self.path.clone(),
            handle: std::sync::Mutex::new(Some(handle)),
        })
    }
}

/// A run as it starts.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    pub command: String,
    pub user: String,
    pub playbook: String,
    pub playbook_hash: String,
    pub inventory_hash: String,
    pub extra_vars: String,
    pub options: String,
    pub files: Vec<FileHash>,
}

/// One file a run read, with its content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHash {
    pub kind: String,
    pub path: PathBuf,
    pub sha256: String,
}

impl FileHash {
    /// Hashes `path` now; a file that cannot be read gets the hash `unreadable`.
    #[must_use]
    pub fn of(kind: &str, path: &Path) -> FileHash {
        use sha2::Digest;
        let sha256 = std::fs::read(path).map_or_else(
            |_| "unreadable".to_owned(),
            |b| hex(&sha2::Sha256::digest(&b)),
        );
        FileHash {
            kind: kind.to_owned(),
            path: path.to_owned(),
            sha256,
        }
    }
}

/// Lower-case hex of a digest.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// SHA-256 over a list of file hashes (path and hash of each, in order).
#[must_use]
pub fn combined_hash(files: &[FileHash]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for f in files {
        h.update(f.path.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(f.sha256.as_bytes());
        h.update([b'\n']);
    }
    hex(&h.finalize())
}

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    Ok,
    Failed,
    Unreachable,
    Interrupted,
    Error,
}

impl RunState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Ok => "ok",
            RunState::Failed => "failed",
            RunState::Unreachable => "unreachable",
            RunState::Interrupted => "interrupted",
            RunState::Error => "error",
        }
    }
}

/// A host's task as it is about to be sent.
#[derive(Debug, Clone)]
pub struct Pending {
    pub host: String,
    pub key: String,
    pub seq: i64,
    pub task: String,
    pub location: String,
    pub rerun: bool,
}

/// A host's task as it ended.
#[derive(Debug, Clone, Default)]
pub struct Done {
    pub host: String,
    pub key: String,
    pub state: &'static str,
    pub rc: Option<i64>,
    pub msg: Option<String>,
    pub changed: bool,
    pub ignored: bool,
    pub register: Option<String>,
    pub facts: Option<String>,
    pub restorable: bool,
    pub stdout: String,
    pub stderr: String,
}

enum Op {
    Pending(Vec<Pending>),
    Running { host: String, key: String },
    Done(Box<Done>),
    Rescued { host: String, key: String },
}

type Ack = oneshot::Sender<Result<(), String>>;

/// Records one run's tasks. Cheap to share; every call waits until its write is committed.
pub struct RunLog {
    tx: mpsc::UnboundedSender<(Op, Ack)>,
    path: PathBuf,
    handle: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl RunLog {
    async fn send(&self, op: Op) -> Result<(), Error> {
        let (ack, done) = oneshot::channel();
        let fail = |e: &str| {
            Error::Other(format!(
                "cannot write the run journal {}: {e}; the run stopped so that nothing runs \
                 without a record",
                self.path.display()
            ))
        };
        self.tx
            .send((op, ack))
            .map_err(|_| fail("its writer has stopped"))?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(fail(&e)),
            Err(_) => Err(fail("its writer has stopped")),
        }
    }

    /// The hosts of a task, before any of them is sent anything.
    pub async fn pending(&self, rows: Vec<Pending>) -> Result<(), Error> {
        if rows.is_empty() {
            return Ok(());
        }
        self.send(Op::Pending(rows)).await
    }

    /// Committed before the host's script is sent.
    pub async fn running(&self, host: &str, key: &str) -> Result<(), Error> {
        self.send(Op::Running {
            host: host.to_owned(),
            key: key.to_owned(),
        })
        .await
    }

    /// Committed right after the host's result came back.
    pub async fn done(&self, done: Done) -> Result<(), Error> {
        self.send(Op::Done(Box::new(done))).await
    }

    /// A failure that a block's `rescue` handled: resume replays it instead of retrying.
    pub async fn rescued(&self, host: &str, key: &str) -> Result<(), Error> {
        self.send(Op::Rescued {
            host: host.to_owned(),
            key: key.to_owned(),
        })
        .await
    }

    /// Waits for the writer to finish what it has.
    pub async fn close(&self) {
        let handle = self
            .handle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        // The channel closes when the last sender goes; the writer drains and ends.
        if let Some(h) = handle {
            h.abort();
            let _ = h.await;
        }
    }
}

/// Cuts `s` to the output cap at a character boundary.
#[must_use]
pub fn cap(s: &str) -> &str {
    if s.len() <= OUTPUT_CAP {
        return s;
    }
    let mut end = OUTPUT_CAP;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Set to `1`, the run journal's task writes are dropped (acknowledged, not applied): the benchmark
/// of the journal's overhead only.
pub const DISCARD_ENV: &str = "KAMO_BENCH_DISCARD_JOURNAL";

async fn writer(
    mut conn: SqliteConnection,
    mut rx: mpsc::UnboundedReceiver<(Op, Ack)>,
    run_id: i64,
    attempt: i64,
) {
    // For the benchmark of the journal's own cost only (bench/run, issue 9): every write is
    // acknowledged and dropped, so a run has no record to resume from. Not an operator switch.
    let discard = std::env::var_os(DISCARD_ENV).is_some_and(|v| v == "1");
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(x) => batch.push(x),
                Err(_) => break,
            }
        }
        let r = if discard {
            Ok(())
        } else {
            apply(&mut conn, run_id, attempt, &batch)
                .await
                .map_err(|e| e.to_string())
        };
        for (_, ack) in batch {
            let _ = ack.send(r.clone());
        }
    }
}

async fn apply(
    conn: &mut SqliteConnection,
    run_id: i64,
    attempt: i64,
    batch: &[(Op, Ack)],
) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    let now = now_ms();
    for (op, _) in batch {
        match op {
            Op::Pending(rows) => {
                for p in rows {
                    sqlx::query(
                        "INSERT INTO results (run_id, host, task_key, seq, task, location, state, \
                         attempt, rerun) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?) \
                         ON CONFLICT (run_id, host, task_key) DO UPDATE SET state = 'pending', \
                         seq = excluded.seq, attempt = excluded.attempt, rerun = excluded.rerun, \
                         started_at = NULL, ended_at = NULL",
                    )
                    .bind(run_id)
                    .bind(&p.host)
                    .bind(&p.key)
                    .bind(p.seq)
                    .bind(&p.task)
                    .bind(&p.location)
                    .bind(attempt)
                    .bind(p.rerun)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            Op::Running { host, key } => {
                sqlx::query(
                    "UPDATE results SET state = 'running', started_at = ? \
                     WHERE run_id = ? AND host = ? AND task_key = ?",
                )
                .bind(now)
                .bind(run_id)
                .bind(host)
                .bind(key)
                .execute(&mut *tx)
                .await?;
            }
            Op::Done(d) => {
                let (out, err) = (cap(&d.stdout), cap(&d.stderr));
                sqlx::query(
                    "UPDATE results SET state = ?, ended_at = ?, rc = ?, msg = ?, changed = ?, \
                     ignored = ?, register = ?, facts = ?, restorable = ?, stdout = ?, stderr = ?, \
                     stdout_size = ?, stderr_size = ? WHERE run_id = ? AND host = ? AND task_key = ?",
                )
                .bind(d.state)
                .bind(now)
                .bind(d.rc)
                .bind(&d.msg)
                .bind(d.changed)
                .bind(d.ignored)
                .bind(&d.register)
                .bind(&d.facts)
                .bind(d.restorable)
                .bind(out)
                .bind(err)
                .bind(i64::try_from(d.stdout.len()).unwrap_or(i64::MAX))
                .bind(i64::try_from(d.stderr.len()).unwrap_or(i64::MAX))
                .bind(run_id)
                .bind(&d.host)
                .bind(&d.key)
                .execute(&mut *tx)
                .await?;
            }
            Op::Rescued { host, key } => {
                sqlx::query(
                    "UPDATE results SET rescued = 1 WHERE run_id = ? AND host = ? AND task_key = ?",
                )
                .bind(run_id)
                .bind(host)
                .bind(key)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_a_run_and_its_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).await.unwrap();
        let id = j
            .start_run(&NewRun {
                command: "kamo run site.yml".into(),
                user: "ops".into(),
                playbook: "site.yml".into(),
                options: "{}".into(),
                extra_vars: "{}".into(),
                files: vec![FileHash {
                    kind: "playbook".into(),
                    path: "site.yml".into(),
                    sha256: "ab".into(),
                }],
                ..NewRun::default()
            })
            .await
            .unwrap();
        let log = j.run_log(id, 1).await.unwrap();
        log.pending(vec![Pending {
            host: "h1".into(),
            key: "site.yml:3:5#1".into(),
            seq: 1,
            task: "t".into(),
            location: "site.yml:3:5".into(),
            rerun: false,
        }])
        .await
        .unwrap();
        log.running("h1", "site.yml:3:5#1").await.unwrap();
        log.done(Done {
            host: "h1".into(),
            key: "site.yml:3:5#1".into(),
            state: "changed",
            rc: Some(0),
            changed: true,
            restorable: true,
            stdout: "x".repeat(OUTPUT_CAP + 10),
            ..Done::default()
        })
        .await
        .unwrap();
        j.finish_run(id, RunState::Ok, None).await.unwrap();
        let rows = query::results(&mut j, id, None).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, "changed");
        assert_eq!(rows[0].stdout.len(), OUTPUT_CAP);
        assert_eq!(rows[0].stdout_size, i64::try_from(OUTPUT_CAP + 10).unwrap());
        let runs = query::runs(&mut j).await.unwrap();
        assert_eq!(runs[0].state, "ok");
        // Reopening migrates nothing twice.
        drop(j);
        Journal::open(dir.path()).await.unwrap();
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), vec![0x42u8; 8192]).unwrap();
        let Err(e) = Journal::open(dir.path()).await else {
            panic!("a corrupt journal opened");
        };
        let msg = e.to_string();
        assert!(msg.contains("cannot open the run journal"), "{msg}");
        assert!(msg.contains("move it aside"), "{msg}");
    }
}
