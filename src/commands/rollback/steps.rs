//! The steps of a database run after the confirmation, each recorded before and after it
//! runs (see the parent module for the sequence and the resume rules).

use serde_json::json;

use super::session::{app_connections, run_transaction, wait_for_app};
use super::{AppPlan, names};
use crate::cli::{DbArgs, LifecycleArgs};
use crate::commands::db::{Failure, Opened};
use crate::coordinator::dbjournal::{STEPS, Steps};
use crate::coordinator::dbplan::{self, Direction, Plan};
use crate::db::apply;
use crate::db::backup::{self, Backup};
use crate::error::{Error, ExitCode};

/// What the steps share.
pub(super) struct Ctx<'a> {
    pub(super) args: &'a DbArgs,
    pub(super) plan: &'a Plan,
    pub(super) app: Option<&'a AppPlan>,
    pub(super) backup_path: &'a std::path::Path,
    pub(super) verbose: u8,
    pub(super) resuming: bool,
}

pub(super) type StepResult<T> = std::result::Result<T, (&'static str, Failure)>;

fn progress(step: &str, text: &str) {
    let n = STEPS.iter().position(|(k, _)| *k == step).unwrap_or(0) + 1;
    crate::ui::eprint_line(&format!("[{n}/{}] {step}: {text}", STEPS.len() - 1));
}

/// Steps 1 and 3 to 7; returns the backup taken or reused.
pub(super) async fn run_steps(
    c: &Ctx<'_>,
    o: &mut Opened,
    steps: &Steps,
) -> StepResult<Option<Backup>> {
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
            let code = crate::commands::lifecycle::run_playbooks(
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
            let msg = b.describe();
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
            let code = crate::commands::lifecycle::run_playbooks(
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
