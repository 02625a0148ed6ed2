//! The plan of a database rollback (or forward migration) as data: which migrations run, the
//! exact statements of the one transaction, what data is lost, and the steps around it.
//!
//! Why data: `--check` prints this value and the run executes the very same value, so the SQL
//! an operator reviews is the SQL that runs (the history rows are written as literals for that
//! reason; migration ids are checked to hold no quote). What data a rollback loses is counted
//! on the current data, in a read-only transaction, for the statements whose effect can be
//! counted (`DELETE`, `DROP COLUMN`, `DROP TABLE`, `TRUNCATE`); a count that cannot be taken
//! (its table or column appears only after an earlier script of the same plan) is shown as
//! unknown, never guessed.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::LazyLock;

use regex::Regex;
use sqlx::{Connection, PgConnection};

use crate::db::apply::{self, Applied, HISTORY_DDL, PRODUCT_VERSION};
use crate::db::migrations::{Migration, Migrations, is_migration_id};
use crate::error::{Error, Result};

/// Which way the schema moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `down.sql`, newest first, deleting history rows (`kamo rollback`).
    Down,
    /// `up.sql`, oldest first, inserting history rows (`kamo migrate-db`).
    Up,
}

/// The advisory lock key every kamo database step takes (`pg_try_advisory_lock`): the bytes of
/// "kamo-db!" read as a big-endian integer, fixed so that any two kamo processes agree.
pub const LOCK_KEY: i64 = 0x6b61_6d6f_2d64_6221;

/// Takes the lock for the session (`$1` = [`LOCK_KEY`]).
pub const LOCK_SQL: &str = "SELECT pg_try_advisory_lock($1)";

/// The history as kamo reads it.
pub const HISTORY_SQL: &str =
    r#"SELECT "MigrationId", "ProductVersion" FROM "__EFMigrationsHistory" ORDER BY "MigrationId""#;

/// The app's open sessions (`$1` = its user), not counting kamo's own.
pub const APP_CONNECTIONS_SQL: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE datname = current_database() AND usename = $1 AND pid <> pg_backend_pid() \
     AND coalesce(application_name, '') NOT LIKE 'kamo%'";

/// How long a statement of the transaction waits for a table lock before the whole
/// transaction is given up (an app still connected would otherwise hold it forever).
pub const LOCK_TIMEOUT: &str = "30s";

/// One statement of the transaction and where it comes from.
#[derive(Debug, Clone)]
pub struct TxStatement {
    /// `Some((migration id, file, line))` for a script's statement; `None` for kamo's own.
    pub origin: Option<(String, PathBuf, usize)>,
    pub sql: String,
}

/// Data a statement destroys.
#[derive(Debug, Clone)]
pub struct Loss {
    /// "rows of \"Tags\"", "values of \"Tags\".\"Type\"".
    pub what: String,
    pub count: Option<i64>,
    /// `file:line` of the statement.
    pub origin: String,
    pub sql: String,
}

/// One migration the plan runs.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    /// The app version whose newest migration this is, from the matrix.
    pub app: Option<String>,
    pub script: PathBuf,
    /// The script's header comment (what it does, what it loses).
    pub header: String,
}

/// The whole plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub direction: Direction,
    pub target: String,
    /// The applied migrations before, oldest first.
    pub history: Vec<String>,
    /// In execution order.
    pub steps: Vec<Step>,
    /// The transaction body (between `BEGIN` and `COMMIT`).
    pub statements: Vec<TxStatement>,
    pub losses: Vec<Loss>,
}

impl Plan {
    /// The history the database must have once the plan ran.
    #[must_use]
    pub fn expected_history(&self) -> Vec<String> {
        match self.direction {
            Direction::Down => {
                let gone: Vec<&str> = self.steps.iter().map(|s| s.id.as_str()).collect();
                self.history
                    .iter()
                    .filter(|h| !gone.contains(&h.as_str()))
                    .cloned()
                    .collect()
            }
            Direction::Up => {
                let mut h = self.history.clone();
                h.extend(self.steps.iter().map(|s| s.id.clone()));
                h
            }
        }
    }

    /// The transaction as it is sent, statement by statement, with the origin of each as a
    /// comment.
    #[must_use]
    pub fn transaction_sql(&self) -> String {
        let mut s = format!("BEGIN;\nSET LOCAL lock_timeout = '{LOCK_TIMEOUT}';\n");
        for st in &self.statements {
            match &st.origin {
                Some((_, path, line)) => {
                    let _ = writeln!(s, "-- {}:{line}", path.display());
                }
                None => s.push_str("-- kamo: the migration history\n"),
            }
            s.push_str(&st.sql);
            if !st.sql.trim_end().ends_with(';') {
                s.push(';');
            }
            s.push('\n');
        }
        s.push_str("COMMIT;");
        s
    }
}

/// The migrations to run from `history` to `target`, in execution order. Refuses an unknown
/// target, a target that is not applied (down) or already passed (up), and an applied
/// migration the directory does not have (its down.sql would be missing).
pub fn select<'a>(
    direction: Direction,
    history: &[Applied],
    all: &'a Migrations,
    target: &str,
) -> Result<Vec<&'a Migration>> {
    let applied: Vec<&str> = history.iter().map(|a| a.id.as_str()).collect();
    let shown = || {
        if applied.is_empty() {
            "none".to_owned()
        } else {
            applied.join(", ")
        }
    };
    if !is_migration_id(target) {
        return Err(Error::Usage(format!(
            "{target:?} is not an EF Core migration id (e.g. 20200319064613_v2.0.0); the \
             database has: {}",
            shown()
        )));
    }
    match direction {
        Direction::Down => {
            if !applied.contains(&target) {
                let known = if all.get(target).is_some() {
                    "it is in the migrations directory but not applied"
                } else {
                    "it is unknown: neither applied nor in the migrations directory"
                };
                return Err(Error::Usage(format!(
                    "cannot roll back to {target}: {known}; the database has: {}",
                    shown()
                )));
            }
            let mut out = Vec::new();
            for id in applied.iter().rev().take_while(|id| **id != target) {
                let m = all.get(id).ok_or_else(|| {
                    Error::Usage(format!(
                        "cannot roll back past {id}: it is applied but {} has no \
                         {id}/down.sql; add the migration (see playbooks/migrations/README.md) \
                         or pass --migrations DIR",
                        all.dir.display()
                    ))
                })?;
                out.push(m);
            }
            Ok(out)
        }
        Direction::Up => {
            if let Some(unknown) = applied.iter().find(|id| all.get(id).is_none()) {
                return Err(Error::Usage(format!(
                    "the database has migration {unknown} applied, which is not in {}",
                    all.dir.display()
                )));
            }
            if all.get(target).is_none() {
                return Err(Error::Usage(format!(
                    "cannot migrate to {target}: it is not in {} (known: {})",
                    all.dir.display(),
                    all.list
                        .iter()
                        .map(|m| m.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if let Some(newest) = applied.last()
                && *newest > target
            {
                return Err(Error::Usage(format!(
                    "cannot migrate forward to {target}: the database is at {newest}, which is \
                     newer; use kamo rollback --to {target}"
                )));
            }
            Ok(all
                .list
                .iter()
                .filter(|m| m.id.as_str() <= target && !applied.contains(&m.id.as_str()))
                .collect())
        }
    }
}

/// Builds the plan (without the loss counts: see [`count_losses`]).
#[must_use]
pub fn build(
    direction: Direction,
    history: &[Applied],
    target: &str,
    chosen: &[&Migration],
    app_of: impl Fn(&str) -> Option<String>,
) -> Plan {
    let mut statements = Vec::new();
    let mut steps = Vec::new();
    if direction == Direction::Up && !chosen.is_empty() {
        statements.push(TxStatement {
            origin: None,
            sql: HISTORY_DDL.to_owned(),
        });
    }
    for m in chosen {
        let script = match direction {
            Direction::Down => &m.down,
            Direction::Up => &m.up,
        };
        for s in &script.statements {
            statements.push(TxStatement {
                origin: Some((m.id.clone(), script.path.clone(), s.line)),
                sql: s.sql.clone(),
            });
        }
        // Ids are checked to be [0-9A-Za-z._-] when the directory is loaded: safe as literals.
        statements.push(TxStatement {
            origin: None,
            sql: match direction {
                Direction::Down => format!(
                    "DELETE FROM \"__EFMigrationsHistory\" WHERE \"MigrationId\" = '{}'",
                    m.id
                ),
                Direction::Up => format!(
                    "INSERT INTO \"__EFMigrationsHistory\" (\"MigrationId\", \"ProductVersion\") \
                     VALUES ('{}', '{PRODUCT_VERSION}')",
                    m.id
                ),
            },
        });
        steps.push(Step {
            id: m.id.clone(),
            app: app_of(&m.id),
            script: script.path.clone(),
            header: header_comment(&script.path),
        });
    }
    Plan {
        direction,
        target: target.to_owned(),
        history: history.iter().map(|a| a.id.clone()).collect(),
        steps,
        statements,
        losses: Vec::new(),
    }
}

/// The leading `--` comment lines of a script, without the markers.
fn header_comment(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .take_while(|l| l.trim_start().starts_with("--"))
        .map(|l| l.trim_start().trim_start_matches("--").trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

static DELETE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)^DELETE\s+FROM\s+(?:ONLY\s+)?("(?:[^"]|"")+"|[\w.]+)(?:\s+WHERE\s+(.*?))?\s*;?\s*$"#)
        .expect("valid regex")
});
static DROP_COLUMN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?("(?:[^"]|"")+"|[\w.]+)\s+DROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?("(?:[^"]|"")+"|\w+)\s*(?:CASCADE|RESTRICT)?\s*;?\s*$"#)
        .expect("valid regex")
});
static DROP_TABLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?("(?:[^"]|"")+"|[\w.]+)\s*(?:CASCADE|RESTRICT)?\s*;?\s*$"#)
        .expect("valid regex")
});
static TRUNCATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)^TRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?("(?:[^"]|"")+"|[\w.]+)\s*(?:CASCADE|RESTRICT)?\s*;?\s*$"#)
        .expect("valid regex")
});

/// What a statement destroys and the query that counts it, if it destroys data.
#[must_use]
pub fn loss_query(sql: &str) -> Option<(String, String)> {
    let sql = sql.trim();
    if let Some(c) = DELETE.captures(sql) {
        let table = &c[1];
        let q = match c.get(2) {
            Some(w) => format!("SELECT count(*) FROM {table} WHERE {}", w.as_str()),
            None => format!("SELECT count(*) FROM {table}"),
        };
        return Some((format!("rows of {table}"), q));
    }
    if let Some(c) = DROP_COLUMN.captures(sql) {
        let (table, column) = (&c[1], &c[2]);
        if column.eq_ignore_ascii_case("CONSTRAINT") {
            return None;
        }
        return Some((
            format!("values of {table}.{column}"),
            format!("SELECT count(*) FROM {table} WHERE {column} IS NOT NULL"),
        ));
    }
    if let Some(c) = DROP_TABLE.captures(sql).or_else(|| TRUNCATE.captures(sql)) {
        let table = &c[1];
        return Some((
            format!("rows of {table} (the whole table)"),
            format!("SELECT count(*) FROM {table}"),
        ));
    }
    None
}

/// Counts what each destroying statement of the plan loses, on the current data, in a
/// read-only transaction that is rolled back (a count that fails, or waits more than 3 s for a
/// lock, is unknown).
pub async fn count_losses(conn: &mut PgConnection, plan: &mut Plan) -> Result<()> {
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| Error::Other(format!("cannot begin: {}", apply::describe(&e))))?;
    // Read only, and never queued for long behind a lock another session waits for.
    sqlx::raw_sql("SET TRANSACTION READ ONLY; SET LOCAL lock_timeout = '3s'")
        .execute(&mut *tx)
        .await
        .map_err(|e| Error::Other(format!("cannot count: {}", apply::describe(&e))))?;
    let mut losses = Vec::new();
    for st in &plan.statements {
        let Some((path_line, (what, q))) = st
            .origin
            .as_ref()
            .and_then(|(_, p, l)| loss_query(&st.sql).map(|x| (format!("{}:{l}", p.display()), x)))
        else {
            continue;
        };
        sqlx::raw_sql("SAVEPOINT kamo_count")
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::Other(format!("cannot count: {}", apply::describe(&e))))?;
        let count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(q))
            .fetch_one(&mut *tx)
            .await
            .ok();
        sqlx::raw_sql("ROLLBACK TO SAVEPOINT kamo_count")
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::Other(format!("cannot count: {}", apply::describe(&e))))?;
        losses.push(Loss {
            what,
            count,
            origin: path_line,
            sql: st.sql.clone(),
        });
    }
    let _ = tx.rollback().await;
    plan.losses = losses;
    Ok(())
}

/// The lines of the data-loss summary (for the plan and the confirmation).
#[must_use]
pub fn loss_lines(plan: &Plan) -> Vec<String> {
    plan.losses
        .iter()
        .map(|l| {
            let n = l
                .count
                .map_or_else(|| "an unknown number of".to_owned(), |n| n.to_string());
            let what = if l.count == Some(1) {
                l.what
                    .replacen("rows of", "row of", 1)
                    .replacen("values of", "value of", 1)
            } else {
                l.what.clone()
            };
            format!("{n} {what} ({})", l.origin)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destroying_statements_get_a_count_query() {
        let (what, q) = loss_query("DELETE FROM \"Tags\" WHERE \"Type\" = 2;").unwrap();
        assert_eq!(what, "rows of \"Tags\"");
        assert_eq!(q, "SELECT count(*) FROM \"Tags\" WHERE \"Type\" = 2");
        let (what, q) =
            loss_query("ALTER TABLE \"NotebookHistories\" DROP COLUMN \"EntryPoint\";").unwrap();
        assert_eq!(what, "values of \"NotebookHistories\".\"EntryPoint\"");
        assert_eq!(
            q,
            "SELECT count(*) FROM \"NotebookHistories\" WHERE \"EntryPoint\" IS NOT NULL"
        );
        let (what, _) = loss_query("DROP TABLE IF EXISTS \"Tenants\" CASCADE;").unwrap();
        assert!(what.contains("whole table"));
        assert!(loss_query("ALTER TABLE \"T\" ADD \"C\" integer;").is_none());
        assert!(loss_query("ALTER TABLE \"T\" DROP CONSTRAINT \"FK_x\";").is_none());
        assert!(loss_query("CREATE INDEX \"IX\" ON \"T\" (\"C\");").is_none());
    }
}
