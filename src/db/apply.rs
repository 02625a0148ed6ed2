//! Applying and reverting migrations on a PostgreSQL database, and reading what is applied.
//!
//! Each script runs in one transaction together with its `"__EFMigrationsHistory"` row (inserted
//! by `up`, deleted by `down`), so the history always says exactly what the schema is: a failing
//! statement rolls back the script's earlier statements and the history change alike. Statements
//! are sent one at a time (see [`super::migrations`]) so that a failure names its file and line.

use sqlx::{Connection, PgConnection};

use super::migrations::{Migration, Migrations, Script};
use crate::error::Error;

/// The `"ProductVersion"` kamo records: the EF Core version KAMONOHASHI 2.x's migrations were
/// made with (their model snapshots say so), so rows kamo writes look like the app's own.
pub const PRODUCT_VERSION: &str = "2.1.14-servicing-32113";

/// EF Core's history table, as its own scripts create it.
pub const HISTORY_DDL: &str = r#"CREATE TABLE IF NOT EXISTS "__EFMigrationsHistory" (
    "MigrationId" character varying(150) NOT NULL,
    "ProductVersion" character varying(32) NOT NULL,
    CONSTRAINT "PK___EFMigrationsHistory" PRIMARY KEY ("MigrationId")
)"#;

/// A row of `"__EFMigrationsHistory"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub id: String,
    pub product_version: String,
}

fn db_error(what: &str, e: &sqlx::Error) -> Error {
    Error::Other(format!("{what}: {}", describe(e)))
}

/// PostgreSQL's message with its SQLSTATE, detail and hint, or the client error.
#[must_use]
pub fn describe(e: &sqlx::Error) -> String {
    if let Some(pg) = e
        .as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
    {
        let mut s = format!("{} (SQLSTATE {})", pg.message(), pg.code());
        if let Some(d) = pg.detail() {
            s.push_str(&format!("; detail: {d}"));
        }
        if let Some(h) = pg.hint() {
            s.push_str(&format!("; hint: {h}"));
        }
        return s;
    }
    e.to_string()
}

/// The applied migrations, oldest first; none when the history table does not exist yet.
pub async fn applied(conn: &mut PgConnection) -> Result<Vec<Applied>, Error> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables \
         WHERE schemaname = current_schema() AND tablename = '__EFMigrationsHistory')",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| db_error("cannot read the migration history", &e))?;
    if !exists {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String)> = sqlx::query_as(
        r#"SELECT "MigrationId", "ProductVersion" FROM "__EFMigrationsHistory" ORDER BY "MigrationId""#,
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_error("cannot read \"__EFMigrationsHistory\"", &e))?;
    Ok(rows
        .into_iter()
        .map(|(id, product_version)| Applied {
            id,
            product_version,
        })
        .collect())
}

/// Runs every statement of `script` in `tx`; an error names the migration, file and line.
async fn run_script(conn: &mut PgConnection, id: &str, script: &Script) -> Result<(), Error> {
    for s in &script.statements {
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(s.sql.as_str()))
            .execute(&mut *conn)
            .await
        {
            let line = s.line + error_line_offset(&e, &s.sql);
            return Err(Error::Other(format!(
                "migration {id} failed at {}:{line}: {}; nothing of it was applied",
                script.path.display(),
                describe(&e)
            )));
        }
    }
    Ok(())
}

/// Lines into the statement where PostgreSQL located the error (0 when it did not).
#[must_use]
pub fn error_line_offset(e: &sqlx::Error, sql: &str) -> usize {
    let Some(pg) = e
        .as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
    else {
        return 0;
    };
    match pg.position() {
        Some(sqlx::postgres::PgErrorPosition::Original(p)) => sql
            .chars()
            .take(p.saturating_sub(1))
            .filter(|&c| c == '\n')
            .count(),
        _ => 0,
    }
}

/// Applies `m`'s `up.sql` and records it, in one transaction. Creates the history table first
/// when it is missing.
pub async fn up(conn: &mut PgConnection, m: &Migration) -> Result<(), Error> {
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| db_error("cannot begin a transaction", &e))?;
    sqlx::raw_sql(HISTORY_DDL)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error("cannot create \"__EFMigrationsHistory\"", &e))?;
    run_script(&mut tx, &m.id, &m.up).await?;
    sqlx::query(
        r#"INSERT INTO "__EFMigrationsHistory" ("MigrationId", "ProductVersion") VALUES ($1, $2)"#,
    )
    .bind(&m.id)
    .bind(PRODUCT_VERSION)
    .execute(&mut *tx)
    .await
    .map_err(|e| db_error(&format!("cannot record migration {}", m.id), &e))?;
    tx.commit()
        .await
        .map_err(|e| db_error(&format!("cannot commit migration {}", m.id), &e))
}

/// Reverts `m` with its `down.sql` and deletes its history row, in one transaction. Refuses
/// when `m` is not the newest applied migration.
pub async fn down(conn: &mut PgConnection, m: &Migration) -> Result<(), Error> {
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| db_error("cannot begin a transaction", &e))?;
    let newest = applied(&mut tx).await?.pop();
    if newest.as_ref().map(|a| a.id.as_str()) != Some(m.id.as_str()) {
        return Err(Error::Other(format!(
            "cannot revert {}: the newest applied migration is {}",
            m.id,
            newest.map_or_else(|| "none".to_owned(), |a| a.id)
        )));
    }
    run_script(&mut tx, &m.id, &m.down).await?;
    sqlx::query(r#"DELETE FROM "__EFMigrationsHistory" WHERE "MigrationId" = $1"#)
        .bind(&m.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error(&format!("cannot delete the history row of {}", m.id), &e))?;
    tx.commit()
        .await
        .map_err(|e| db_error(&format!("cannot commit the revert of {}", m.id), &e))
}

/// Applies, oldest first, every migration of `all` that is not applied yet; returns their ids.
/// Refuses a database whose history has a migration `all` does not know (it is newer than
/// this kamo's migrations, or from another app).
pub async fn up_to_newest(conn: &mut PgConnection, all: &Migrations) -> Result<Vec<String>, Error> {
    let done = applied(conn).await?;
    if let Some(unknown) = done.iter().find(|a| all.get(&a.id).is_none()) {
        return Err(Error::Other(format!(
            "the database has migration {} applied, which is not in {}",
            unknown.id,
            all.dir.display()
        )));
    }
    let mut ran = Vec::new();
    for m in &all.list {
        if done.iter().any(|a| a.id == m.id) {
            continue;
        }
        up(conn, m).await?;
        ran.push(m.id.clone());
    }
    Ok(ran)
}
