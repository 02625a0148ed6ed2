//! Host locks: two kamo runs from the same state directory never work on the same host at
//! the same time.
//!
//! A lock is a row per host in the journal, taken inside one `BEGIN IMMEDIATE` transaction
//! for all the run's hosts, so two runs starting together cannot both win. A row whose
//! process is gone (no `/proc/PID`, or a PID reused by a process that started later) is
//! taken over, so a SIGKILLed run never blocks the next one. Unlike a lock file per host,
//! the holder's run id, user and start time come with the refusal.

use sqlx::Row;

use super::{Journal, now_ms};
use crate::error::Error;

/// The start time of process `pid` (clock ticks after boot, field 22 of `/proc/PID/stat`).
#[must_use]
pub fn process_start(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that wrote (`pid`, `start`) is still the one running as `pid`.
#[must_use]
pub fn alive(pid: i64, start: Option<i64>) -> bool {
    let Ok(pid) = u32::try_from(pid) else {
        return false;
    };
    match (process_start(pid), start) {
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Who holds a host.
#[derive(Debug, Clone)]
pub struct Holder {
    pub host: String,
    pub run_id: i64,
    pub pid: i64,
    pub user: String,
    pub started_at: i64,
}

impl Journal {
    /// Locks every host for run `run_id`, or refuses naming the run that holds one.
    pub async fn lock_hosts(
        &mut self,
        run_id: i64,
        user: &str,
        hosts: &[String],
    ) -> Result<(), Error> {
        let path = self.path.clone();
        let err = |e: sqlx::Error| {
            Error::Other(format!(
                "run journal {}: cannot lock the hosts: {e}",
                path.display()
            ))
        };
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut self.conn)
            .await
            .map_err(err)?;
        let r = self.lock_in_tx(run_id, user, hosts).await;
        let end = if r.is_ok() { "COMMIT" } else { "ROLLBACK" };
        sqlx::query(end)
            .execute(&mut self.conn)
            .await
            .map_err(err)?;
        r
    }

    async fn lock_in_tx(&mut self, run_id: i64, user: &str, hosts: &[String]) -> Result<(), Error> {
        let path = self.path.clone();
        let err = |e: sqlx::Error| {
            Error::Other(format!(
                "run journal {}: cannot lock the hosts: {e}",
                path.display()
            ))
        };
        let rows =
            sqlx::query("SELECT host, run_id, pid, pid_start, user, started_at FROM host_locks")
                .fetch_all(&mut self.conn)
                .await
                .map_err(err)?;
        let wanted: std::collections::HashSet<&str> = hosts.iter().map(String::as_str).collect();
        let mut held = Vec::new();
        for row in rows {
            let host: String = row.get("host");
            let holder_run: i64 = row.get("run_id");
            if !wanted.contains(host.as_str()) {
                continue;
            }
            let pid: i64 = row.get("pid");
            // Any live process but this one holds it, even for the same run (two resumes).
            if alive(pid, row.get("pid_start")) && i64::from(std::process::id()) != pid {
                held.push(Holder {
                    host,
                    run_id: holder_run,
                    pid,
                    user: row.get("user"),
                    started_at: row.get("started_at"),
                });
            }
        }
        if let Some(h) = held.first() {
            let more = if held.len() > 1 {
                format!(" (and {} more of this run's hosts)", held.len() - 1)
            } else {
                String::new()
            };
            return Err(Error::Other(format!(
                "host {} is in use by run {} (pid {}, user {}, started {}){more}; wait for it \
                 to finish, or stop it first. Nothing was sent to any host",
                h.host,
                h.run_id,
                h.pid,
                h.user,
                super::query::format_time(h.started_at)
            )));
        }
        let me = i64::from(std::process::id());
        let start = process_start(std::process::id());
        let now = now_ms();
        for h in hosts {
            sqlx::query(
                "INSERT OR REPLACE INTO host_locks (host, run_id, pid, pid_start, user, started_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(h)
            .bind(run_id)
            .bind(me)
            .bind(start)
            .bind(user)
            .bind(now)
            .execute(&mut self.conn)
            .await
            .map_err(err)?;
        }
        Ok(())
    }

    /// Releases the hosts of run `run_id` held by this process.
    pub async fn unlock_hosts(&mut self, run_id: i64) -> Result<(), Error> {
        let path = self.path.clone();
        sqlx::query("DELETE FROM host_locks WHERE run_id = ? AND pid = ?")
            .bind(run_id)
            .bind(i64::from(std::process::id()))
            .execute(&mut self.conn)
            .await
            .map_err(|e| {
                Error::Other(format!(
                    "run journal {}: cannot release the host locks: {e}",
                    path.display()
                ))
            })?;
        Ok(())
    }
}

/// The user running kamo, for the journal and lock messages.
#[must_use]
pub fn current_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(u) = std::env::var(var)
            && !u.is_empty()
        {
            return u;
        }
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        });
    let Some(uid) = uid else {
        return "unknown".into();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid).then(|| f[0].to_owned())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = std::process::id();
        let start = process_start(me);
        assert!(start.is_some());
        assert!(alive(i64::from(me), start));
        assert!(!alive(i64::from(me), start.map(|s| s + 1)));
        assert!(!alive(i64::from(u32::MAX), None));
    }

    #[tokio::test]
    async fn a_live_holder_is_named_and_a_dead_one_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).await.unwrap();
        let hosts = vec!["h1".to_owned(), "h2".to_owned()];
        // A lock of a process that is not running (pid 0 has no /proc entry).
        sqlx::query("INSERT INTO host_locks VALUES ('h1', 7, 999999999, 1, 'old', 0)")
            .execute(&mut j.conn)
            .await
            .unwrap();
        j.lock_hosts(8, "me", &hosts).await.unwrap();
        // A live holder: pid 1 (init) with its real start time.
        sqlx::query("UPDATE host_locks SET run_id = 9, pid = 1, pid_start = ? WHERE host = 'h2'")
            .bind(process_start(1))
            .execute(&mut j.conn)
            .await
            .unwrap();
        let e = j
            .lock_hosts(10, "me", &hosts)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("host h2 is in use by run 9 (pid 1, user me"),
            "{e}"
        );
        j.unlock_hosts(8).await.unwrap();
    }
}
