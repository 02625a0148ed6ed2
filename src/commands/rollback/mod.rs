//! `kamo rollback` and `kamo migrate-db`: the app database to another EF Core migration, as a
//! coordinator step run from the workstation.
//!
//! The sequence (issue 7), each step journaled (see [`crate::coordinator::dbjournal`]):
//! 1. read the history and plan ([`crate::coordinator::dbplan`]): what runs, the exact SQL,
//!    what data is lost; refuse an unknown or unapplied target and a missing `down.sql`;
//! 2. the typed confirmation (the database's name), unless `--yes`;
//! 3. unless `--db-only`: stop the app (`clean-app.yml`) and wait until none of its
//!    connections remain;
//! 4. back up (`pg_dump -Fc`, checked with `pg_restore --list`; size and SHA-256 journaled);
//! 5. every script and history change in one transaction;
//! 6. verify the history ends at the target;
//! 7. unless `--db-only`: deploy the app at the target's version (`deploy-app.yml`) and run the
//!    postflight check.
//!
//! The advisory lock ([`dbplan::LOCK_KEY`]) is taken right after connecting (not by
//! `--check`), on the connection every step uses, and held until kamo ends (the server releases it when the
//! connection closes, also after a crash): a second rollback is refused before it stops the
//! app or writes a backup, not only before its transaction.
//!
//! Resume: a step done by an earlier attempt is not repeated; the backup is reused when its
//! checksum still matches; the transaction is skipped when the history already ends at the
//! target (a crash between its commit and its record).

mod render;
mod session;
mod steps;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::db::{Failure, report};
use crate::cli::{DbArgs, InventoryArgs, MigrateDbArgs, ResumeArgs, RollbackArgs};
use crate::coordinator::confirm::{self, Question};
use crate::coordinator::dbjournal::Steps;
use crate::coordinator::dbplan::{self, Direction};
use crate::coordinator::matrix::Matrix;
use crate::coordinator::playbooks;
use crate::db::apply;
use crate::db::backup;
use crate::error::{Error, ExitCode, Result};
use crate::journal::{FileHash, Journal, NewRun, RunState};
use session::{lock_holder, take_lock};
use steps::{Ctx, run_steps};

/// How long the app may take to let go of the database after it was stopped.
pub const APP_STOP_TIMEOUT: Duration = Duration::from_secs(180);

/// What a database run is, as recorded in its journal options (so `kamo resume` can run it
/// again). The database URL is kept without its password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Always `db`: tells `kamo resume` this is not a playbook run.
    pub kind: String,
    /// `rollback` or `migrate-db`.
    pub verb: String,
    pub to: Option<String>,
    pub to_version: Option<String>,
    pub db: Option<String>,
    pub inventory: Vec<PathBuf>,
    pub limit: Vec<String>,
    pub via: Option<String>,
    pub migrations: Option<PathBuf>,
    pub playbooks: Option<PathBuf>,
    pub db_only: bool,
    pub backup_dir: Option<PathBuf>,
    /// The extra secret-name patterns in force (`--secret-vars`), for the resume.
    #[serde(default)]
    pub secret_vars: Vec<String>,
}

/// A URL with its password removed (for the journal).
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => crate::journal::redact::redact_url(url),
    }
}

impl Request {
    fn new(verb: &str, args: &DbArgs) -> Request {
        Request {
            kind: "db".into(),
            secret_vars: crate::secret::patterns().to_vec(),
            verb: verb.into(),
            to: None,
            to_version: None,
            db: args.db.as_deref().map(without_password),
            inventory: args.inventory.inventory.clone(),
            limit: args.inventory.limit.clone(),
            via: args.via.clone(),
            migrations: args.migrations.clone(),
            playbooks: args.playbooks.clone(),
            db_only: true,
            backup_dir: None,
        }
    }
}

pub async fn rollback(args: RollbackArgs, verbose: u8) -> Result<ExitCode> {
    let mut req = Request::new("rollback", &args.db);
    req.to.clone_from(&args.to);
    req.to_version.clone_from(&args.to_version);
    req.db_only = args.db_only;
    req.backup_dir.clone_from(&args.backup_dir);
    execute(req, args.db, args.check, args.yes, None, verbose).await
}

pub async fn migrate(args: MigrateDbArgs, verbose: u8) -> Result<ExitCode> {
    let mut req = Request::new("migrate-db", &args.db);
    req.to = Some(args.to.clone());
    req.backup_dir.clone_from(&args.backup_dir);
    execute(req, args.db, args.check, args.yes, None, verbose).await
}

/// `kamo resume` of a database run.
pub async fn resume(
    run_id: i64,
    options: &Value,
    args: &ResumeArgs,
    verbose: u8,
) -> Result<ExitCode> {
    let req: Request = super::resume::recorded(run_id, options)?;
    let inventory = if args.inventory.inventory.is_empty() {
        InventoryArgs {
            inventory: req.inventory.clone(),
            limit: req.limit.clone(),
            vault: args.inventory.vault.clone(),
        }
    } else {
        args.inventory.clone()
    };
    let db_args = DbArgs {
        inventory,
        connection: args.connection.clone(),
        db: req.db.clone(),
        via: req.via.clone(),
        migrations: req.migrations.clone(),
        state_dir: args.state_dir.clone(),
        playbooks: req.playbooks.clone(),
    };
    execute(
        req,
        db_args,
        false,
        true,
        Some((run_id, args.force)),
        verbose,
    )
    .await
}

/// The app's part of a full rollback: which playbooks stop it and deploy it again.
pub(super) struct AppPlan {
    pub(super) hosts: Vec<String>,
    pub(super) clean: Vec<PathBuf>,
    /// deploy-app.yml and postflight.yml of the target version.
    pub(super) deploy: Vec<PathBuf>,
    pub(super) version: String,
}

fn app_plan(
    args: &DbArgs,
    matrix: Option<&Matrix>,
    inventory: Option<&crate::inventory::Inventory>,
    newest: Option<&str>,
    target: &str,
) -> Result<AppPlan> {
    let hint = "; pass --db-only to roll back only the database and deploy the app yourself";
    let root = playbooks::root(args.playbooks.as_deref())?;
    let matrix = matrix.ok_or_else(|| {
        Error::Usage(format!(
            "{}/versions.yml cannot be read, so the app version of {target} is unknown{hint}",
            root.display()
        ))
    })?;
    let entry = matrix.by_migration(target).ok_or_else(|| {
        Error::Usage(format!(
            "no version in {}/versions.yml has db_migration {target}, so kamo cannot tell \
             which app version to deploy{hint}",
            root.display()
        ))
    })?;
    let to = matrix
        .deployable(&entry.app)
        .map_err(|e| Error::Usage(format!("{e}{hint}")))?;
    let now_dir = newest
        .and_then(|id| matrix.by_migration(id))
        .and_then(|e| matrix.deployable(&e.app).ok())
        .map_or_else(|| root.clone(), |d| d.playbooks);
    let with_hint = |e: Error| Error::Usage(format!("{e}{hint}"));
    let clean = playbooks::paths(&now_dir, "clean", "app").map_err(with_hint)?;
    let mut deploy = playbooks::paths(&to.playbooks, "deploy", "app").map_err(with_hint)?;
    deploy.extend(playbooks::paths(&to.playbooks, "check", "post").map_err(with_hint)?);
    let hosts = inventory
        .map(|i| i.select_limited("all", &args.inventory.limit))
        .transpose()?
        .unwrap_or_default();
    if hosts.is_empty() {
        return Err(Error::Usage(format!(
            "stopping and redeploying the app needs the cluster's inventory (-i){hint}"
        )));
    }
    Ok(AppPlan {
        hosts,
        clean,
        deploy,
        version: to.version,
    })
}

/// The migration the run goes to: `--to`, or the matrix's migration of `--to-version`.
fn target_of(req: &Request, matrix: Option<&Matrix>) -> Result<String> {
    if let Some(t) = &req.to {
        return Ok(t.clone());
    }
    let v = req.to_version.as_deref().unwrap_or_default();
    let m = matrix.ok_or_else(|| {
        Error::Usage("--to-version needs playbooks/versions.yml, which cannot be read".into())
    })?;
    let e = m.lookup(v).ok_or_else(|| {
        Error::Usage(format!(
            "version {v} is not in the compatibility matrix; see `kamo versions`"
        ))
    })?;
    e.db_migration.clone().ok_or_else(|| {
        Error::Usage(format!(
            "the compatibility matrix does not know the database migration of {v} \
             (db_migration is null); pass --to MIGRATION_ID"
        ))
    })
}

#[allow(clippy::too_many_lines)]
async fn execute(
    req: Request,
    args: DbArgs,
    check: bool,
    yes: bool,
    resuming: Option<(i64, bool)>,
    verbose: u8,
) -> Result<ExitCode> {
    let direction = if req.verb == "rollback" {
        Direction::Down
    } else {
        Direction::Up
    };
    let all = super::db::load_migrations(args.migrations.as_ref())?;
    let matrix = super::db::matrix(args.playbooks.as_deref());
    let target = target_of(&req, matrix.as_ref())?;
    let full = direction == Direction::Down && !req.db_only;
    let app_name = format!("kamo {} pid {}", req.verb, std::process::id());
    let mut o = match super::db::open(&args, &app_name, full).await {
        Ok(o) => o,
        Err(f) => return Ok(report(&f)),
    };

    // The lock first: a second rollback is refused before it reads (or waits for) anything.
    if !check && let Err(f) = take_lock(&mut o.conn, &o.db.display()).await {
        return Ok(report(&f));
    }

    // 1. The history and the plan.
    let history = match apply::applied(&mut o.conn).await {
        Ok(h) => h,
        Err(e) => return Ok(report(&Failure::new(ExitCode::HostFailed, e.to_string()))),
    };
    let chosen = dbplan::select(direction, &history, &all, &target)?;
    let app_of = |id: &str| {
        matrix
            .as_ref()
            .and_then(|m| m.by_migration(id))
            .map(|e| e.app.clone())
    };
    let mut plan = dbplan::build(direction, &history, &target, &chosen, app_of);
    if let Err(e) = dbplan::count_losses(&mut o.conn, &mut plan).await {
        return Ok(report(&Failure::new(ExitCode::HostFailed, e.to_string())));
    }
    let app = if full {
        Some(app_plan(
            &args,
            matrix.as_ref(),
            o.inventory.as_ref(),
            history.last().map(|a| a.id.as_str()),
            &target,
        )?)
    } else {
        None
    };
    let state_dir = super::run::state_dir(args.state_dir.as_ref());
    let backup_dir = req
        .backup_dir
        .clone()
        .unwrap_or_else(|| state_dir.join("backups"));
    let backup_path = backup_dir.join(backup::file_name(&o.db, &format!("before-{target}")));

    if check {
        let holder = lock_holder(&mut o.conn).await;
        crate::ui::print_text(&render::render(
            &req,
            &o,
            &plan,
            app.as_ref(),
            &backup_path,
            holder,
        ));
        return Ok(ExitCode::Ok);
    }
    if plan.steps.is_empty() && resuming.is_none() {
        crate::ui::eprint_line(&format!(
            "{} is already at {target}: nothing to do",
            o.db.display()
        ));
        return Ok(ExitCode::Ok);
    }

    // 2. The confirmation (a resumed run was confirmed when it started).
    if resuming.is_none() {
        let mut hosts = vec![format!("database {}", o.db.display())];
        if let Some(a) = &app {
            hosts.extend(a.hosts.iter().cloned());
        }
        let mut destroys = dbplan::loss_lines(&plan);
        if let Some(a) = &app {
            destroys.insert(
                0,
                format!(
                    "the app is stopped ({}), then deployed at {} ({})",
                    names(&a.clean),
                    a.version,
                    names(&a.deploy)
                ),
            );
        }
        let action = match direction {
            Direction::Down => format!(
                "roll the database back to {target} (reverting {})",
                plan.steps
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Direction::Up => format!("migrate the database forward to {target}"),
        };
        confirm::ask(
            &Question {
                action: &action,
                hosts: &hosts,
                destroys: &destroys,
                word: &o.db.dbname,
            },
            yes,
            false,
        )?;
    }

    let files: Vec<FileHash> = plan
        .steps
        .iter()
        .map(|s| FileHash::of("migration", &s.script))
        .collect();
    let mut steps = match resuming {
        None => {
            let run = NewRun {
                command: crate::journal::redact::redact_argv(&std::env::args().collect::<Vec<_>>()),
                user: crate::journal::lock::current_user(),
                playbook: format!("db {} to {target}", req.verb),
                playbook_hash: crate::journal::combined_hash(&files),
                inventory_hash: String::new(),
                extra_vars: "{}".into(),
                options: serde_json::to_string(&req).unwrap_or_default(),
                files,
            };
            Steps::start(&state_dir, &run).await?
        }
        Some((id, force)) => {
            let mut j = Journal::open_existing(&state_dir).await?;
            super::resume::check_files(&mut j, id, &files, force).await?;
            drop(j);
            crate::ui::eprint_line(&format!("resuming run {id}"));
            Steps::resume(&state_dir, id).await?
        }
    };
    let ctx = Ctx {
        args: &args,
        plan: &plan,
        app: app.as_ref(),
        backup_path: &backup_path,
        verbose,
        resuming: resuming.is_some(),
    };
    let run_id = steps.run_id;
    // Ctrl-C or SIGTERM: the step in flight is abandoned (a transaction in progress is rolled
    // back by the server when its connection goes), the run is recorded as interrupted, and
    // `kamo resume` runs that step again.
    let outcome = tokio::select! {
        r = run_steps(&ctx, &mut o, &steps) => r,
        () = interrupted() => {
            steps.finish(RunState::Interrupted, Some("interrupted")).await?;
            crate::ui::eprint_line(&format!(
                "interrupted: the step in flight was abandoned (a transaction in progress is \
                 rolled back); `kamo resume {run_id}` continues"
            ));
            return Ok(ExitCode::Interrupted);
        }
    };
    match outcome {
        Ok(b) => {
            steps.finish(RunState::Ok, None).await?;
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(dbplan::LOCK_KEY)
                .execute(&mut o.conn)
                .await;
            let verb = if direction == Direction::Down {
                "rolled back"
            } else {
                "migrated"
            };
            let mut msg = format!(
                "{verb} {} to {target}{} (run {run_id})",
                o.db.display(),
                app_of(&target)
                    .map(|v| format!(", app {v}"))
                    .unwrap_or_default()
            );
            if let Some(b) = b {
                msg.push_str(&format!(
                    "\nbackup of the state before: {} ({} bytes, sha256 {}); to undo: kamo db \
                     restore {}",
                    b.path.display(),
                    b.size,
                    b.sha256,
                    b.path.display()
                ));
            }
            crate::ui::eprint_line(&msg);
            Ok(ExitCode::Ok)
        }
        Err((step, f)) => {
            let _ = steps.failed(step, &f.message).await;
            let _ = steps.finish(RunState::Failed, Some(&f.message)).await;
            let code = report(&f);
            crate::ui::eprint_line(&format!(
                "run {run_id} stopped at step `{step}`; `kamo resume {run_id}` continues from \
                 there (steps already done are not repeated)"
            ));
            Ok(code)
        }
    }
}

/// Resolves on the first Ctrl-C or SIGTERM.
/// Ctrl-C or SIGTERM, whichever comes first.
pub(crate) async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub(super) fn names(files: &[PathBuf]) -> String {
    files
        .iter()
        .filter_map(|f| f.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}
