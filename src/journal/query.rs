//! Reading the journal back: runs for `kamo history`, per-host task rows for `kamo show`,
//! `kamo log` and `kamo resume`.

use serde::Serialize;
use sqlx::Row;

use super::Journal;
use crate::error::Error;

/// One run as `kamo history` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// Seconds from start to end (or to now, while running).
    pub duration_s: f64,
    pub command: String,
    /// running, ok, failed, unreachable, interrupted, error; `killed` when the run's process
    /// is gone without having recorded an end.
    pub state: String,
    pub hosts: i64,
    pub hosts_ok: i64,
    pub hosts_failed: i64,
    pub hosts_unreachable: i64,
    pub user: String,
    pub pid: i64,
    pub kamo_version: String,
    pub playbook: String,
    pub playbook_hash: String,
    pub inventory_hash: String,
    pub extra_vars: serde_json::Value,
    pub attempts: i64,
    pub message: Option<String>,
    #[serde(skip)]
    pub options: String,
    #[serde(skip)]
    pub started_ms: i64,
}

/// One host's task as recorded (the flags mirror the journal columns).
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, Serialize)]
pub struct ResultRow {
    pub host: String,
    pub seq: i64,
    pub task: String,
    pub location: String,
    pub key: String,
    pub state: String,
    pub attempt: i64,
    pub rerun: bool,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub duration_s: Option<f64>,
    pub rc: Option<i64>,
    pub msg: Option<String>,
    pub changed: bool,
    pub ignored: bool,
    pub rescued: bool,
    pub restorable: bool,
    #[serde(skip)]
    pub register: Option<String>,
    #[serde(skip)]
    pub facts: Option<String>,
    #[serde(skip)]
    pub stdout: String,
    #[serde(skip)]
    pub stderr: String,
    pub stdout_size: i64,
    pub stderr_size: i64,
}

/// A time in the journal (ms since the epoch) as RFC 3339 UTC, to the second.
#[must_use]
pub fn format_time(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or_default());
    humantime::format_rfc3339_seconds(t).to_string()
}

#[allow(clippy::cast_precision_loss)]
fn seconds(from: i64, to: i64) -> f64 {
    (to - from).max(0) as f64 / 1000.0
}

fn err(j: &Journal) -> impl Fn(sqlx::Error) -> Error + '_ {
    move |e| {
        Error::Other(format!(
            "run journal {}: cannot read it: {e}",
            j.path.display()
        ))
    }
}

const RUN_COLUMNS: &str = "SELECT r.id, r.command, r.user, r.pid, r.pid_start, r.kamo_version, \
     r.playbook, r.playbook_hash, r.inventory_hash, r.extra_vars, r.options, r.state, r.message, \
     r.started_at, r.ended_at, r.attempts, \
     (SELECT COUNT(DISTINCT host) FROM results x WHERE x.run_id = r.id) AS hosts, \
     (SELECT COUNT(DISTINCT host) FROM results x WHERE x.run_id = r.id AND x.state = 'failed' \
        AND x.ignored = 0 AND x.rescued = 0) AS failed, \
     (SELECT COUNT(DISTINCT host) FROM results x WHERE x.run_id = r.id AND x.state = 'unreachable') \
        AS unreachable FROM runs r";

fn run_row(row: &sqlx::sqlite::SqliteRow) -> RunRow {
    let started: i64 = row.get("started_at");
    let ended: Option<i64> = row.get("ended_at");
    let mut state: String = row.get("state");
    let pid: i64 = row.get("pid");
    if state == "running" && !super::lock::alive(pid, row.get("pid_start")) {
        state = "killed".into();
    }
    let hosts: i64 = row.get("hosts");
    let failed: i64 = row.get("failed");
    let unreachable: i64 = row.get("unreachable");
    let extra: String = row.get("extra_vars");
    RunRow {
        id: row.get("id"),
        started_at: format_time(started),
        ended_at: ended.map(format_time),
        duration_s: seconds(started, ended.unwrap_or_else(super::now_ms)),
        command: row.get("command"),
        state,
        hosts,
        hosts_ok: (hosts - failed - unreachable).max(0),
        hosts_failed: failed,
        hosts_unreachable: unreachable,
        user: row.get("user"),
        pid,
        kamo_version: row.get("kamo_version"),
        playbook: row.get("playbook"),
        playbook_hash: row.get("playbook_hash"),
        inventory_hash: row.get("inventory_hash"),
        extra_vars: serde_json::from_str(&extra).unwrap_or(serde_json::Value::Null),
        attempts: row.get("attempts"),
        message: row.get("message"),
        options: row.get("options"),
        started_ms: started,
    }
}

/// Every run, newest first.
pub async fn runs(j: &mut Journal) -> Result<Vec<RunRow>, Error> {
    let sql = format!("{RUN_COLUMNS} ORDER BY r.id DESC");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut j.conn)
        .await
        .map_err(err(j))?;
    Ok(rows.iter().map(run_row).collect())
}

/// One run by id.
pub async fn run(j: &mut Journal, id: i64) -> Result<RunRow, Error> {
    let sql = format!("{RUN_COLUMNS} WHERE r.id = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut j.conn)
        .await
        .map_err(err(j))?;
    row.as_ref().map(run_row).ok_or_else(|| {
        Error::Usage(format!(
            "no run {id} in {} (see `kamo history`)",
            j.path.display()
        ))
    })
}

/// Resolves a run argument: a number, or `latest`/none for the newest run.
pub async fn resolve(j: &mut Journal, arg: Option<&str>) -> Result<i64, Error> {
    match arg {
        None | Some("latest" | "last") => {
            let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM runs")
                .fetch_one(&mut j.conn)
                .await
                .map_err(err(j))?;
            id.ok_or_else(|| Error::Usage("no run is recorded yet".into()))
        }
        Some(s) => s.parse::<i64>().map_err(|_| {
            Error::Usage(format!(
                "run {s:?}: expected a run number from `kamo history`, or `latest`"
            ))
        }),
    }
}

/// The task rows of a run (of one host, if given), per host in task order.
pub async fn results(
    j: &mut Journal,
    run_id: i64,
    host: Option<&str>,
) -> Result<Vec<ResultRow>, Error> {
    let rows = sqlx::query(
        "SELECT host, seq, task, location, task_key, state, attempt, rerun, started_at, ended_at, \
         rc, msg, changed, ignored, rescued, restorable, register, facts, stdout, stderr, \
         stdout_size, stderr_size FROM results WHERE run_id = ? AND (? IS NULL OR host = ?) \
         ORDER BY host, seq",
    )
    .bind(run_id)
    .bind(host)
    .bind(host)
    .fetch_all(&mut j.conn)
    .await
    .map_err(err(j))?;
    Ok(rows
        .iter()
        .map(|r| {
            let started: Option<i64> = r.get("started_at");
            let ended: Option<i64> = r.get("ended_at");
            ResultRow {
                host: r.get("host"),
                seq: r.get("seq"),
                task: r.get("task"),
                location: r.get("location"),
                key: r.get("task_key"),
                state: r.get("state"),
                attempt: r.get("attempt"),
                rerun: r.get("rerun"),
                started_at: started.map(format_time),
                ended_at: ended.map(format_time),
                duration_s: started.zip(ended).map(|(a, b)| seconds(a, b)),
                rc: r.get("rc"),
                msg: r.get("msg"),
                changed: r.get("changed"),
                ignored: r.get("ignored"),
                rescued: r.get("rescued"),
                restorable: r.get("restorable"),
                register: r.get("register"),
                facts: r.get("facts"),
                stdout: r.get("stdout"),
                stderr: r.get("stderr"),
                stdout_size: r.get("stdout_size"),
                stderr_size: r.get("stderr_size"),
            }
        })
        .collect())
}

/// The files a run read, with their recorded hashes.
pub async fn files(j: &mut Journal, run_id: i64) -> Result<Vec<super::FileHash>, Error> {
    let rows = sqlx::query(
        "SELECT kind, path, sha256 FROM run_files WHERE run_id = ? ORDER BY kind, path",
    )
    .bind(run_id)
    .fetch_all(&mut j.conn)
    .await
    .map_err(err(j))?;
    Ok(rows
        .iter()
        .map(|r| super::FileHash {
            kind: r.get("kind"),
            path: std::path::PathBuf::from(r.get::<String, _>("path")),
            sha256: r.get("sha256"),
        })
        .collect())
}

/// The newest run that did not end well (running with a dead process, interrupted, failed,
/// unreachable, error): what `kamo resume` takes without an argument.
pub async fn latest_unfinished(j: &mut Journal) -> Result<i64, Error> {
    let all = runs(j).await?;
    all.iter()
        .find(|r| r.state != "ok" && r.state != "running")
        .map(|r| r.id)
        .ok_or_else(|| Error::Usage("no unfinished run to resume (see `kamo history`)".into()))
}
