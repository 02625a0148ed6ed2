//! The `--check` output: the plan and, per step, the exact SQL or command it runs, rendered
//! from the same values the run executes.

use super::{APP_STOP_TIMEOUT, AppPlan, Request};
use crate::commands::db::Opened;
use crate::coordinator::dbjournal::STEPS;
use crate::coordinator::dbplan::{self, Direction, Plan};
use crate::db::backup;

/// The `--check` output: every step with its exact SQL or command, in order.
pub(super) fn render(
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
