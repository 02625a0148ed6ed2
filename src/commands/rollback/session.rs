//! What a database run asks of its PostgreSQL session: the advisory lock, the app's
//! connections, and the one transaction.

use std::time::{Duration, Instant};

use sqlx::PgConnection;

use super::APP_STOP_TIMEOUT;
use crate::commands::db::Failure;
use crate::coordinator::dbplan::{self, Plan};
use crate::db::apply;
use crate::error::ExitCode;

/// Takes the advisory lock for the session, or says who holds it.
pub(super) async fn take_lock(
    conn: &mut PgConnection,
    db: &str,
) -> std::result::Result<(), Failure> {
    let got: bool = sqlx::query_scalar(dbplan::LOCK_SQL)
        .bind(dbplan::LOCK_KEY)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| {
            Failure::new(
                ExitCode::HostFailed,
                format!(
                    "cannot take the rollback lock on {db}: {}",
                    apply::describe(&e)
                ),
            )
        })?;
    if got {
        return Ok(());
    }
    let holder = lock_holder(conn)
        .await
        .unwrap_or_else(|| "another session".into());
    Err(Failure::new(
        ExitCode::Other,
        format!(
            "another kamo rollback or migration is running on {db}: the lock is held by \
             {holder}; nothing was changed. Wait for it to end (the server releases the lock \
             when that session ends, also when its kamo was killed)"
        ),
    ))
}

/// Who holds the advisory lock now, if anyone.
pub(super) async fn lock_holder(conn: &mut PgConnection) -> Option<String> {
    let key = dbplan::LOCK_KEY;
    let (class, obj) = (key >> 32, key & 0xffff_ffff);
    let row: Option<(i32, String, String, String)> = sqlx::query_as(
        "SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'), \
         coalesce(to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ'), '?') \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
         AND l.classid::bigint = $1 AND l.objid::bigint = $2",
    )
    .bind(class)
    .bind(obj)
    .fetch_optional(&mut *conn)
    .await
    .ok()
    .flatten();
    row.map(|(pid, app, addr, since)| {
        format!("server process {pid} ({app:?} from {addr}, connected since {since})")
    })
}

/// Other sessions of the app's user in this database (not kamo's).
pub(super) async fn app_connections(
    conn: &mut PgConnection,
    user: &str,
) -> std::result::Result<i64, Failure> {
    sqlx::query_scalar(dbplan::APP_CONNECTIONS_SQL)
        .bind(user)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| {
            Failure::new(
                ExitCode::HostFailed,
                format!("cannot read pg_stat_activity: {}", apply::describe(&e)),
            )
        })
}

/// Waits (bounded) until the stopped app's connections are gone.
pub(super) async fn wait_for_app(
    conn: &mut PgConnection,
    user: &str,
) -> std::result::Result<(), Failure> {
    let deadline = Instant::now() + APP_STOP_TIMEOUT;
    loop {
        let n = app_connections(conn, user).await?;
        if n == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Failure::new(
                ExitCode::HostFailed,
                format!(
                    "the app was stopped, but {n} connection(s) of {user} are still open after \
                     {} s; the database was not touched. Find them with: {}",
                    APP_STOP_TIMEOUT.as_secs(),
                    dbplan::APP_CONNECTIONS_SQL
                        .replace("count(*)", "pid, client_addr, application_name")
                ),
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Step 5: the plan's statements in one transaction; any error rolls all of it back.
pub(super) async fn run_transaction(
    conn: &mut PgConnection,
    plan: &Plan,
) -> std::result::Result<(), Failure> {
    use sqlx::Connection;
    let fail = |what: &str, e: &sqlx::Error| {
        Failure::new(
            ExitCode::HostFailed,
            format!("{what}: {}; nothing was changed", apply::describe(e)),
        )
    };
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| fail("cannot begin the transaction", &e))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = '{}'",
        dbplan::LOCK_TIMEOUT
    )))
    .execute(&mut *tx)
    .await
    .map_err(|e| fail("cannot set lock_timeout", &e))?;
    // The history must still be what the plan was made from.
    let now: Vec<String> = apply::applied(&mut tx)
        .await
        .map_err(|e| Failure::new(ExitCode::HostFailed, e.to_string()))?
        .into_iter()
        .map(|a| a.id)
        .collect();
    if now != plan.history {
        return Err(Failure::new(
            ExitCode::HostFailed,
            format!(
                "the migration history changed since the plan was made (now: {}); nothing was \
                 changed, run kamo again",
                now.join(", ")
            ),
        ));
    }
    for st in &plan.statements {
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(st.sql.as_str()))
            .execute(&mut *tx)
            .await
        {
            let _ = tx.rollback().await;
            let msg = match &st.origin {
                Some((id, path, line)) => format!(
                    "migration {id} failed at {}:{}: {}; the transaction was rolled back: the \
                     database is exactly as before",
                    path.display(),
                    line + apply::error_line_offset(&e, &st.sql),
                    apply::describe(&e)
                ),
                None => format!(
                    "kamo's history statement `{}` failed: {}; the transaction was rolled back: \
                     the database is exactly as before",
                    st.sql,
                    apply::describe(&e)
                ),
            };
            return Err(Failure::new(ExitCode::HostFailed, msg));
        }
    }
    tx.commit()
        .await
        .map_err(|e| fail("cannot commit the transaction", &e))
}
