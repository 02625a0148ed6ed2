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

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::db::{Failure, Opened, report};
use crate::cli::{DbArgs, InventoryArgs, LifecycleArgs, MigrateDbArgs, ResumeArgs, RollbackArgs};
use crate::coordinator::confirm::{self, Question};
use crate::coordinator::dbjournal::{STEPS, Steps};
use crate::coordinator::dbplan::{self, Direction, Plan};
use crate::coordinator::matrix::Matrix;
use crate::coordinator::playbooks;
use crate::db::apply;
use crate::db::backup::{self, Backup};
use crate::error::{Error, ExitCode, Result};
use crate::journal::{FileHash, Journal, NewRun, RunState};

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
    let req: Request = serde_json::from_value(options.clone()).map_err(|e| {
        Error::Other(format!(
            "run {run_id}: its recorded options cannot be read: {e}"
        ))
    })?;
    let inventory = if args.inventory.inventory.is_empty() {
        InventoryArgs {
            inventory: req.inventory.clone(),
            limit: req.limit.clone(),
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
struct AppPlan {
    hosts: Vec<String>,
    clean: Vec<PathBuf>,
    /// deploy-app.yml and postflight.yml of the target version.
    deploy: Vec<PathBuf>,
    version: String,
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
        crate::ui::print_text(&render(&req, &o, &plan, app.as_ref(), &backup_path, holder));
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
async fn interrupted() {
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

fn names(files: &[PathBuf]) -> String {
    files
        .iter()
        .filter_map(|f| f.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the steps share.
struct Ctx<'a> {
    args: &'a DbArgs,
    plan: &'a Plan,
    app: Option<&'a AppPlan>,
    backup_path: &'a std::path::Path,
    verbose: u8,
    resuming: bool,
}

type StepResult<T> = std::result::Result<T, (&'static str, Failure)>;

fn progress(step: &str, text: &str) {
    let n = STEPS.iter().position(|(k, _)| *k == step).unwrap_or(0) + 1;
    crate::ui::eprint_line(&format!("[{n}/{}] {step}: {text}", STEPS.len() - 1));
}

/// Steps 1 and 3 to 7; returns the backup taken or reused.
async fn run_steps(c: &Ctx<'_>, o: &mut Opened, steps: &Steps) -> StepResult<Option<Backup>> {
    let j = |step: &'static str| move |e: Error| (step, Failure::from(e));
    let plan = c.plan;

    steps.begin("plan").await.map_err(j("plan"))?;
    let summary = if plan.steps.is_empty() {
        format!("history already ends at {}", plan.target)
    } else {
        format!(
            "{} {}",
            if plan.direction == Direction::Down {
                "revert"
            } else {
                "apply"
            },
            plan.steps
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let register = json!({
        "history": plan.history,
        "target": plan.target,
        "run": plan.steps.iter().map(|s| &s.id).collect::<Vec<_>>(),
        "losses": dbplan::loss_lines(plan),
    });
    steps
        .ok("plan", false, &summary, Some(&register))
        .await
        .map_err(j("plan"))?;
    progress("plan", &summary);

    // 3. Stop the app.
    match c.app {
        None => {
            let n = app_connections(&mut o.conn, &o.db.user).await.unwrap_or(0);
            if n > 0 && plan.direction == Direction::Down {
                crate::ui::eprint_line(&format!(
                    "warning: --db-only: {n} other connection(s) of {} are open; the \
                     transaction waits at most {} for their locks",
                    o.db.user,
                    dbplan::LOCK_TIMEOUT
                ));
            }
            steps
                .skipped("stop-app", "--db-only")
                .await
                .map_err(j("stop-app"))?;
        }
        Some(_) if steps.done_before("stop-app").is_some() => {
            steps
                .kept("stop-app", "done by an earlier attempt", None)
                .await
                .map_err(j("stop-app"))?;
            progress("stop-app", "done by an earlier attempt");
        }
        Some(_) if plan.steps.is_empty() => {
            steps
                .skipped("stop-app", "the database is already at the target")
                .await
                .map_err(j("stop-app"))?;
        }
        Some(app) => {
            steps.begin("stop-app").await.map_err(j("stop-app"))?;
            progress("stop-app", &format!("running {}", names(&app.clean)));
            let mut vars = serde_json::Map::new();
            vars.insert("kamo_version".into(), json!(env!("CARGO_PKG_VERSION")));
            vars.insert("purge_data".into(), json!(false));
            let code = super::lifecycle::run_playbooks(
                &lifecycle_args(c.args),
                app.clean.clone(),
                vars,
                c.verbose,
            )
            .await
            .map_err(j("stop-app"))?;
            if code != ExitCode::Ok {
                return Err((
                    "stop-app",
                    Failure::new(
                        code,
                        format!(
                            "stopping the app ({}) failed; the database was not touched",
                            names(&app.clean)
                        ),
                    ),
                ));
            }
            wait_for_app(&mut o.conn, &o.db.user)
                .await
                .map_err(|f| ("stop-app", f))?;
            steps
                .ok(
                    "stop-app",
                    true,
                    "app stopped; no app connection left",
                    None,
                )
                .await
                .map_err(j("stop-app"))?;
        }
    }

    // 4. The backup.
    let backup = backup_step(c, o, steps).await?;

    // 5. The transaction.
    if plan.steps.is_empty() {
        let msg = format!("the history already ends at {}: not run again", plan.target);
        steps
            .skipped("transaction", &msg)
            .await
            .map_err(j("transaction"))?;
        progress("transaction", &msg);
    } else {
        steps.begin("transaction").await.map_err(j("transaction"))?;
        run_transaction(&mut o.conn, plan)
            .await
            .map_err(|f| ("transaction", f))?;
        let msg = format!(
            "committed: {} statement(s) of {}",
            plan.statements.len(),
            plan.steps
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        steps
            .ok("transaction", true, &msg, None)
            .await
            .map_err(j("transaction"))?;
        progress("transaction", &msg);
    }

    // 6. Verify.
    steps.begin("verify").await.map_err(j("verify"))?;
    let now: Vec<String> = apply::applied(&mut o.conn)
        .await
        .map_err(|e| ("verify", Failure::new(ExitCode::HostFailed, e.to_string())))?
        .into_iter()
        .map(|a| a.id)
        .collect();
    let expected = plan.expected_history();
    if now.last() != Some(&plan.target) || (!plan.steps.is_empty() && now != expected) {
        return Err((
            "verify",
            Failure::new(
                ExitCode::HostFailed,
                format!(
                    "the history does not end at {}: it is {}",
                    plan.target,
                    now.join(", ")
                ),
            ),
        ));
    }
    let msg = format!("the history ends at {}", plan.target);
    steps
        .ok("verify", false, &msg, Some(&json!({ "history": now })))
        .await
        .map_err(j("verify"))?;
    progress("verify", &msg);

    // 7. Redeploy.
    redeploy_step(c, steps).await?;
    Ok(backup)
}

/// Step 4: reuses the recorded backup when its checksum still matches, else takes one.
async fn backup_step(c: &Ctx<'_>, o: &Opened, steps: &Steps) -> StepResult<Option<Backup>> {
    let j = |step: &'static str| move |e: Error| (step, Failure::from(e));
    let plan = c.plan;
    let recorded: Option<Backup> = steps
        .registered("backup")
        .and_then(|v| serde_json::from_value(v).ok());
    match recorded {
        Some(b) if backup::still_valid(&b) => {
            let msg = format!(
                "reusing {} (sha256 {} verified)",
                b.path.display(),
                b.sha256
            );
            // Recorded as done again, with its register, for a later resume.
            let reg = serde_json::to_value(&b).unwrap_or_default();
            steps
                .kept("backup", &msg, Some(&reg))
                .await
                .map_err(j("backup"))?;
            progress("backup", &msg);
            Ok(Some(b))
        }
        recorded if plan.steps.is_empty() => {
            let msg = match recorded {
                Some(b) => format!(
                    "warning: the backup {} is gone or changed since it was taken, and the \
                     database is already at the target: no backup of the state before exists",
                    b.path.display()
                ),
                None => "the database is already at the target; no backup taken".to_owned(),
            };
            steps.skipped("backup", &msg).await.map_err(j("backup"))?;
            progress("backup", &msg);
            Ok(None)
        }
        recorded => {
            if let Some(b) = recorded {
                crate::ui::eprint_line(&format!(
                    "warning: the backup {} is gone or changed since it was taken; taking a \
                     new one",
                    b.path.display()
                ));
            }
            steps.begin("backup").await.map_err(j("backup"))?;
            let dir = c.backup_path.parent().unwrap_or(std::path::Path::new("."));
            let name = c
                .backup_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let b = backup::dump(&o.db, o.via(), dir, &name)
                .await
                .map_err(|e| {
                    (
                        "backup",
                        Failure::new(
                            ExitCode::HostFailed,
                            format!("{e}; the database was not changed"),
                        ),
                    )
                })?;
            let reg = serde_json::to_value(&b).unwrap_or_default();
            let msg = format!(
                "{} ({} bytes, sha256 {}, {} entries)",
                b.path.display(),
                b.size,
                b.sha256,
                b.entries
            );
            steps
                .ok("backup", true, &msg, Some(&reg))
                .await
                .map_err(j("backup"))?;
            progress("backup", &msg);
            Ok(Some(b))
        }
    }
}

/// Step 7: the app at the target version, and the postflight check.
async fn redeploy_step(c: &Ctx<'_>, steps: &Steps) -> StepResult<()> {
    let j = |step: &'static str| move |e: Error| (step, Failure::from(e));
    let plan = c.plan;
    match c.app {
        None => {
            steps
                .skipped("redeploy", "--db-only")
                .await
                .map_err(j("redeploy"))?;
        }
        Some(_) if c.resuming && steps.done_before("redeploy").is_some() => {
            steps
                .kept("redeploy", "done by an earlier attempt", None)
                .await
                .map_err(j("redeploy"))?;
        }
        Some(app) => {
            steps.begin("redeploy").await.map_err(j("redeploy"))?;
            progress(
                "redeploy",
                &format!("app {}: running {}", app.version, names(&app.deploy)),
            );
            let mut vars = serde_json::Map::new();
            vars.insert("kamo_version".into(), json!(env!("CARGO_PKG_VERSION")));
            vars.insert("app_version".into(), json!(app.version));
            let code = super::lifecycle::run_playbooks(
                &lifecycle_args(c.args),
                app.deploy.clone(),
                vars,
                c.verbose,
            )
            .await
            .map_err(j("redeploy"))?;
            if code != ExitCode::Ok {
                return Err((
                    "redeploy",
                    Failure::new(
                        code,
                        format!(
                            "the database is at {}, but deploying app {} or its postflight \
                             check failed ({})",
                            plan.target,
                            app.version,
                            names(&app.deploy)
                        ),
                    ),
                ));
            }
            steps
                .ok(
                    "redeploy",
                    true,
                    &format!("app {} deployed, postflight green", app.version),
                    None,
                )
                .await
                .map_err(j("redeploy"))?;
        }
    }
    Ok(())
}

/// The lifecycle settings for the app's playbooks, from the database command's.
fn lifecycle_args(a: &DbArgs) -> LifecycleArgs {
    LifecycleArgs {
        inventory: a.inventory.clone(),
        connection: a.connection.clone(),
        playbooks: a.playbooks.clone(),
        extra_vars: Vec::new(),
        check: false,
        plan: false,
        ask_become_pass: false,
        state_dir: a.state_dir.clone(),
        output: crate::cli::OutputFormat::Text,
        grace_period: 30,
    }
}

/// Takes the advisory lock for the session, or says who holds it.
async fn take_lock(conn: &mut PgConnection, db: &str) -> std::result::Result<(), Failure> {
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
async fn lock_holder(conn: &mut PgConnection) -> Option<String> {
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
async fn app_connections(conn: &mut PgConnection, user: &str) -> std::result::Result<i64, Failure> {
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
async fn wait_for_app(conn: &mut PgConnection, user: &str) -> std::result::Result<(), Failure> {
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
async fn run_transaction(conn: &mut PgConnection, plan: &Plan) -> std::result::Result<(), Failure> {
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

/// The `--check` output: every step with its exact SQL or command, in order.
fn render(
    req: &Request,
    o: &Opened,
    plan: &Plan,
    app: Option<&AppPlan>,
    backup_path: &std::path::Path,
    holder: Option<String>,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "kamo {} --check: the plan; nothing is changed", req.verb);
    let _ = writeln!(
        s,
        "database: {}{}{}",
        o.db.display(),
        o.db.password_source
            .as_deref()
            .map(|p| format!(" (password from {p})"))
            .unwrap_or_default(),
        o.tunnel
            .as_ref()
            .map(|t| format!(" via {} (tunnel at {})", t.via, t.local))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "history: {}",
        if plan.history.is_empty() {
            "none".to_owned()
        } else {
            plan.history.join(", ")
        }
    );
    let _ = writeln!(s, "target: {}", plan.target);
    if plan.steps.is_empty() {
        let _ = writeln!(
            s,
            "the database is already at the target: nothing would run"
        );
        return s;
    }
    let _ = writeln!(
        s,
        "{}:",
        if plan.direction == Direction::Down {
            "revert, newest first"
        } else {
            "apply, oldest first"
        }
    );
    for st in &plan.steps {
        let _ = writeln!(
            s,
            "  {}{}: {}",
            st.id,
            st.app
                .as_deref()
                .map(|a| format!(" (app {a})"))
                .unwrap_or_default(),
            st.header
        );
    }
    if !plan.losses.is_empty() {
        let _ = writeln!(s, "data lost (counted on the data now):");
        for l in dbplan::loss_lines(plan) {
            let _ = writeln!(s, "  - {l}");
        }
    }
    if let Some(h) = holder {
        let _ = writeln!(
            s,
            "note: the lock is held now by {h}: a run now would be refused"
        );
    }
    let step = |s: &mut String, key: &str, body: &str| {
        let n = STEPS.iter().position(|(k, _)| *k == key).unwrap_or(0) + 1;
        let title = STEPS.iter().find(|(k, _)| *k == key).map_or("", |(_, t)| t);
        let _ = writeln!(s, "\nstep {n} {key}: {title}");
        for line in body.lines() {
            let _ = writeln!(s, "  {line}");
        }
    };
    step(&mut s, "plan", &format!("{};", dbplan::HISTORY_SQL));
    let _ = writeln!(
        s,
        "\nthen: the typed confirmation (the database's name), and the lock, held until kamo \
         ends:\n  {};  -- $1 = {}",
        dbplan::LOCK_SQL,
        dbplan::LOCK_KEY
    );
    match app {
        None => step(&mut s, "stop-app", "skipped (--db-only)"),
        Some(a) => step(
            &mut s,
            "stop-app",
            &format!(
                "the playbook(s) {} on {} host(s): {}\nthen every second, for up to {} s, until \
                 it is 0 ($1 = {}):\n{};",
                a.clean
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                a.hosts.len(),
                a.hosts.join(", "),
                APP_STOP_TIMEOUT.as_secs(),
                o.db.user,
                dbplan::APP_CONNECTIONS_SQL
            ),
        ),
    }
    step(
        &mut s,
        "backup",
        &format!(
            "{}\npg_restore --list {}\nsize and SHA-256 recorded in the journal",
            backup::dump_command_line(backup_path),
            backup_path.display()
        ),
    );
    step(&mut s, "transaction", &plan.transaction_sql());
    step(
        &mut s,
        "verify",
        &format!(
            "{};\nexpected: {}",
            dbplan::HISTORY_SQL,
            plan.expected_history().join(", ")
        ),
    );
    match app {
        None => step(&mut s, "redeploy", "skipped (--db-only)"),
        Some(a) => step(
            &mut s,
            "redeploy",
            &format!(
                "the playbook(s) {} with app_version={}",
                a.deploy
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                a.version
            ),
        ),
    }
    let _ = writeln!(s, "\ndry run (--check): nothing was changed");
    s
}
