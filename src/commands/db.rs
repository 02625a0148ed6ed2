//! `kamo db status` and `kamo db restore`, and what every database command shares: finding the
//! database (`--db` or the inventory's settings), its password, the `--via` tunnel, and a
//! connection whose failures say where and why (exit 3, as an unreachable host).
//!
//! `kamo rollback` and `kamo migrate-db` are in [`super::rollback`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use sqlx::{ConnectOptions, PgConnection};

use crate::cli::{DbArgs, DbRestoreArgs, DbStatusArgs, OutputFormat};
use crate::coordinator::confirm::{self, Question};
use crate::coordinator::matrix::Matrix;
use crate::coordinator::playbooks;
use crate::coordinator::tunnel::{self, Tunnel};
use crate::db::apply;
use crate::db::backup;
use crate::db::migrations::{self, Migrations};
use crate::db::target::DbTarget;
use crate::error::{Error, ExitCode, Result};
use crate::inventory::Inventory;

pub use super::rollback::{migrate, rollback};

/// A failure with its exit code (3 for a database that cannot be reached or logged in to).
#[derive(Debug)]
pub struct Failure {
    pub code: ExitCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: ExitCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self {
            code: e.exit_code(),
            message: e.render().trim_start_matches("error: ").to_owned(),
        }
    }
}

/// Prints a failure and returns its exit code.
#[must_use]
pub fn report(f: &Failure) -> ExitCode {
    crate::ui::eprint_line(&format!("error: {}", f.message));
    f.code
}

/// The inventory, when one is given or configured; `required` makes its absence an error.
pub fn inventory(args: &DbArgs, required: bool) -> Result<Option<Inventory>> {
    match super::inventory_sources(&args.inventory) {
        Ok(sources) => Ok(Some(Inventory::load(&sources)?)),
        Err(e) if required => Err(e),
        Err(_) => Ok(None),
    }
}

/// The database: `--db URL`, else the inventory's settings. The password is not looked for yet.
pub fn target(url: Option<&str>, inventory: Option<&Inventory>) -> Result<DbTarget> {
    if let Some(u) = url {
        let mut t = DbTarget::from_url(u)?;
        // The inventory may still name the password file for that database.
        if let Some(inv) = inventory
            && let Some(first) = inv.select("all").ok().and_then(|h| h.into_iter().next())
        {
            let vars = inv.vars_for(&first);
            if vars.get("db_host").and_then(|v| v.as_str()) == Some(t.host.as_str()) {
                t.password_file = DbTarget::from_settings(&vars)?.password_file;
            }
        }
        return Ok(t);
    }
    let Some(inv) = inventory else {
        return Err(Error::Usage(
            "no database: pass --db postgres://USER@HOST:PORT/DATABASE, or -i INVENTORY whose \
             settings have db_host"
                .into(),
        ));
    };
    let first = inv
        .select("all")?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Usage("the inventory has no host, so no settings".into()))?;
    DbTarget::from_settings(&inv.vars_for(&first))
}

/// The migrations directory: `--migrations`, else the shipped one.
pub fn load_migrations(flag: Option<&PathBuf>) -> Result<Migrations> {
    let dir = flag.cloned().unwrap_or_else(migrations::default_dir);
    migrations::load(&dir)
}

/// The matrix, when the playbook root has one.
#[must_use]
pub fn matrix(flag: Option<&std::path::Path>) -> Option<Matrix> {
    playbooks::root(flag)
        .ok()
        .and_then(|r| Matrix::load(&r).ok())
}

/// Opens the `--via` tunnel to the database's address, if asked.
pub async fn open_tunnel(
    args: &DbArgs,
    inventory: Option<&Inventory>,
    db: &DbTarget,
) -> std::result::Result<Option<Tunnel>, Failure> {
    let Some(via) = &args.via else {
        return Ok(None);
    };
    let empty;
    let inv = if let Some(i) = inventory {
        i
    } else {
        empty = Inventory::default();
        &empty
    };
    let become_args = super::exec::BecomeArgs {
        r#become: false,
        user: None,
        ask_pass: false,
    };
    let (ctx, plan) = super::exec::prepare_hosts(
        &args.connection,
        &become_args,
        inv,
        std::slice::from_ref(via),
    )?;
    let target = match plan.into_iter().next() {
        Some((_, Ok((t, _)))) => t,
        Some((_, Err(e))) => {
            return Err(Failure::new(
                ExitCode::Unreachable,
                format!("--via {via}: {e}"),
            ));
        }
        None => {
            return Err(Failure::new(
                ExitCode::Usage,
                format!("--via {via}: no such host"),
            ));
        }
    };
    let t = tunnel::open(&target, &ctx, via, &db.host, db.port)
        .await
        .map_err(|e| Failure::new(ExitCode::Unreachable, e.to_string()))?;
    crate::ui::eprint_line(&format!(
        "tunnel: {} -> {via} -> {}:{}",
        t.local, db.host, db.port
    ));
    Ok(Some(t))
}

/// Connects (bounded), naming the database on failure; exit 3 for every connection failure
/// (refused, timed out, wrong password, no such database), as for an unreachable host.
pub async fn connect(
    db: &DbTarget,
    via: Option<SocketAddr>,
    app_name: &str,
) -> std::result::Result<PgConnection, Failure> {
    // sqlx's statement log would put kamo's queries (and slow-lock warnings) on stderr.
    let opts = db
        .connect_options(via, app_name)?
        .disable_statement_logging();
    let shown = match via {
        Some(a) => format!("{} (through the tunnel at {a})", db.display()),
        None => db.display(),
    };
    let conn = match tokio::time::timeout(Duration::from_secs(15), opts.connect()).await {
        Err(_) => {
            return Err(Failure::new(
                ExitCode::Unreachable,
                format!("cannot connect to {shown}: no answer within 15 s; nothing was changed"),
            ));
        }
        Ok(Err(e)) => {
            let source = db
                .password_source
                .as_deref()
                .map(|s| format!(" (password from {s})"))
                .unwrap_or_default();
            return Err(Failure::new(
                ExitCode::Unreachable,
                format!(
                    "cannot connect to {shown}: {}{source}; nothing was changed",
                    apply::describe(&e)
                ),
            ));
        }
        Ok(Ok(c)) => c,
    };
    let mut conn = conn;
    // PostgreSQL 14+: notice within 2 s that kamo is gone even while waiting for a lock, so a
    // killed kamo's session (and its advisory lock) ends promptly. Older servers lack it.
    let _ = sqlx::raw_sql("SET client_connection_check_interval = '2s'")
        .execute(&mut conn)
        .await;
    Ok(conn)
}

/// Everything a database command needs before its first query.
pub struct Opened {
    pub db: DbTarget,
    pub tunnel: Option<Tunnel>,
    pub conn: PgConnection,
    pub inventory: Option<Inventory>,
}

impl Opened {
    pub fn via(&self) -> Option<SocketAddr> {
        self.tunnel.as_ref().map(|t| t.local)
    }
}

/// Finds the database and its password, opens the tunnel and connects.
pub async fn open(
    args: &DbArgs,
    app_name: &str,
    need_inventory: bool,
) -> std::result::Result<Opened, Failure> {
    let inventory = inventory(args, need_inventory || args.db.is_none())?;
    let mut db = target(args.db.as_deref(), inventory.as_ref())?;
    if let Some(w) = db.url_password_warning() {
        crate::ui::eprint_line(&w);
    }
    db.resolve_password(true)?;
    let tunnel = open_tunnel(args, inventory.as_ref(), &db).await?;
    let conn = connect(&db, tunnel.as_ref().map(|t| t.local), app_name).await?;
    Ok(Opened {
        db,
        tunnel,
        conn,
        inventory,
    })
}

/// `kamo db status`.
pub async fn status(args: DbStatusArgs) -> Result<ExitCode> {
    let all = load_migrations(args.db.migrations.as_ref())?;
    let matrix = matrix(args.db.playbooks.as_deref());
    let mut o = match open(&args.db, "kamo db status", false).await {
        Ok(o) => o,
        Err(f) => return Ok(report(&f)),
    };
    let applied = match apply::applied(&mut o.conn).await {
        Ok(a) => a,
        Err(e) => return Ok(report(&Failure::new(ExitCode::HostFailed, e.to_string()))),
    };
    let app_of = |id: &str| {
        matrix
            .as_ref()
            .and_then(|m| m.by_migration(id))
            .map(|e| e.app.clone())
    };
    let mut rows = Vec::new();
    for a in &applied {
        let state = if all.get(&a.id).is_some() {
            "applied"
        } else {
            "applied, unknown to kamo"
        };
        rows.push((
            a.id.clone(),
            app_of(&a.id),
            state.to_owned(),
            a.product_version.clone(),
        ));
    }
    for m in &all.list {
        if !applied.iter().any(|a| a.id == m.id) {
            rows.push((m.id.clone(), app_of(&m.id), "pending".into(), String::new()));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let newest = applied.last().map(|a| a.id.clone());
    if args.output == OutputFormat::Json {
        crate::ui::print_json(&json!({
            "database": o.db.display(),
            "newest": newest,
            "app_version": newest.as_deref().and_then(app_of),
            "migrations": rows.iter().map(|(id, app, state, pv)| json!({
                "id": id, "app_version": app, "state": state, "product_version": pv,
            })).collect::<Vec<_>>(),
        }));
    } else {
        crate::ui::print_text(&format!(
            "database: {}\nnewest applied: {}{}",
            o.db.display(),
            newest.as_deref().unwrap_or("none"),
            newest
                .as_deref()
                .and_then(app_of)
                .map(|v| format!(" (app {v})"))
                .unwrap_or_default()
        ));
        crate::ui::print_table(
            &["MIGRATION", "APP VERSION", "STATE"],
            rows.into_iter()
                .map(|(id, app, state, _)| vec![id, app.unwrap_or_else(|| "-".into()), state])
                .collect(),
        );
    }
    Ok(ExitCode::Ok)
}

/// `kamo db restore BACKUP`.
pub async fn restore(args: DbRestoreArgs) -> Result<ExitCode> {
    let path = args.backup.clone();
    if !path.is_file() {
        return Err(Error::Usage(format!(
            "{}: no such backup file",
            path.display()
        )));
    }
    // The dump must be readable before anything is dropped.
    let entries = match backup::list(&path).await {
        Ok(n) => n,
        Err(e) => return Ok(report(&Failure::new(ExitCode::Usage, e.to_string()))),
    };
    let (size, sha) = backup::hash(&path)?;
    let mut o = match open(&args.db, "kamo db restore", false).await {
        Ok(o) => o,
        Err(f) => return Ok(report(&f)),
    };
    let before = apply::applied(&mut o.conn)
        .await
        .map(|a| a.last().map(|a| a.id.clone()))
        .unwrap_or_default();
    let destroys = vec![
        format!(
            "every object of {} that the backup holds is dropped and recreated from it ({} \
             entries, {size} bytes, sha256 {sha})",
            o.db.display(),
            entries
        ),
        format!(
            "the database now is at migration {}; afterwards it is at the backup's",
            before.as_deref().unwrap_or("none")
        ),
    ];
    let hosts = vec![o.db.display()];
    confirm::ask(
        &Question {
            action: &format!("restore {} into the database", path.display()),
            hosts: &hosts,
            destroys: &destroys,
            word: &o.db.dbname,
        },
        args.yes,
        false,
    )?;
    if let Err(e) = backup::restore(&o.db, o.via(), &path).await {
        return Ok(report(&Failure::new(
            ExitCode::HostFailed,
            format!("{e}; pg_restore ran in one transaction: the database is as before"),
        )));
    }
    let after = apply::applied(&mut o.conn)
        .await
        .map(|a| a.last().map(|a| a.id.clone()))
        .unwrap_or_default();
    crate::ui::eprint_line(&format!(
        "restored {} into {}: the newest migration is now {}",
        path.display(),
        o.db.display(),
        after.as_deref().unwrap_or("none")
    ));
    Ok(ExitCode::Ok)
}
