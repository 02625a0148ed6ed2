//! `kamo history`, `kamo show RUN`, `kamo log RUN HOST [TASK]`: what ran where, read back
//! from the journal. Read-only: they never take a lock or change a run.

use std::collections::BTreeMap;

use crate::cli::{HistoryArgs, LogArgs, OutputFormat, ShowArgs};
use crate::error::{Error, ExitCode, Result};
use crate::journal::{Journal, query};

pub async fn history(args: &HistoryArgs) -> Result<ExitCode> {
    let state = super::run::state_dir(args.state_dir.as_ref());
    let runs = if state.join(crate::journal::FILE).exists() {
        let mut j = Journal::open(&state).await?;
        query::runs(&mut j).await?
    } else {
        Vec::new()
    };
    if args.output == OutputFormat::Json {
        crate::ui::write_json(&runs);
        return Ok(ExitCode::Ok);
    }
    if runs.is_empty() {
        crate::ui::eprint_line(&format!("no runs recorded in {}", state.display()));
        return Ok(ExitCode::Ok);
    }
    let rows = runs
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.started_at.clone(),
                format!("{:.1}s", r.duration_s),
                r.state.clone(),
                format!("{}/{}", r.hosts_ok, r.hosts_failed + r.hosts_unreachable),
                r.command.clone(),
            ]
        })
        .collect();
    crate::ui::print_table(
        &[
            "RUN",
            "STARTED",
            "DURATION",
            "STATE",
            "OK/FAILED",
            "COMMAND",
        ],
        rows,
    );
    Ok(ExitCode::Ok)
}

pub async fn show(args: &ShowArgs) -> Result<ExitCode> {
    let state = super::run::state_dir(args.state_dir.as_ref());
    let mut j = Journal::open_existing(&state).await?;
    let id = query::resolve(&mut j, Some(&args.run)).await?;
    let run = query::run(&mut j, id).await?;
    let rows = query::results(&mut j, id, args.host.as_deref()).await?;
    if let Some(h) = &args.host
        && rows.is_empty()
    {
        return Err(Error::Usage(format!("run {id} did not reach host {h}")));
    }
    if args.output == OutputFormat::Json {
        let mut hosts: BTreeMap<&str, Vec<&query::ResultRow>> = BTreeMap::new();
        for r in &rows {
            hosts.entry(&r.host).or_default().push(r);
        }
        crate::ui::write_json(&serde_json::json!({"run": run, "hosts": hosts}));
        return Ok(ExitCode::Ok);
    }
    crate::ui::print_text(&format!(
        "run {} ({}): {}\nstarted {} by {}, {:.1}s, attempt(s) {}{}",
        run.id,
        run.state,
        run.command,
        run.started_at,
        run.user,
        run.duration_s,
        run.attempts,
        run.message
            .as_deref()
            .map(|m| format!("\n{m}"))
            .unwrap_or_default()
    ));
    let mut current = "";
    let mut table = Vec::new();
    let flush = |host: &str, table: &mut Vec<Vec<String>>| {
        if !table.is_empty() {
            crate::ui::print_text(&format!("\n{host}:"));
            crate::ui::print_table(
                &["#", "STATE", "RC", "TIME", "TASK", "WHERE"],
                std::mem::take(table),
            );
        }
    };
    for r in &rows {
        if r.host != current {
            flush(current, &mut table);
            current = &r.host;
        }
        let mut state = r.state.clone();
        if r.ignored {
            state.push_str(" (ignored)");
        }
        if r.rescued {
            state.push_str(" (rescued)");
        }
        if r.rerun {
            state.push_str(" (re-run)");
        }
        table.push(vec![
            r.seq.to_string(),
            state,
            r.rc.map_or_else(|| "-".into(), |c| c.to_string()),
            r.duration_s
                .map_or_else(|| "-".into(), |d| format!("{d:.2}s")),
            r.task.clone(),
            r.location.clone(),
        ]);
    }
    flush(current, &mut table);
    Ok(ExitCode::Ok)
}

pub async fn log(args: &LogArgs) -> Result<ExitCode> {
    let state = super::run::state_dir(args.state_dir.as_ref());
    let mut j = Journal::open_existing(&state).await?;
    let id = query::resolve(&mut j, Some(&args.run)).await?;
    let rows = query::results(&mut j, id, Some(&args.host)).await?;
    if rows.is_empty() {
        return Err(Error::Usage(format!(
            "run {id} has no tasks on host {}",
            args.host
        )));
    }
    let picked: Vec<&query::ResultRow> = match &args.task {
        None => rows.iter().collect(),
        Some(t) => rows
            .iter()
            .filter(|r| r.task == *t || r.seq.to_string() == *t)
            .collect(),
    };
    if picked.is_empty() {
        return Err(Error::Usage(format!(
            "run {id}, host {}: no task named or numbered {:?} (see `kamo show {id} --host {}`)",
            args.host,
            args.task.as_deref().unwrap_or_default(),
            args.host
        )));
    }
    let mut out = String::new();
    for r in picked {
        out.push_str(&format!(
            "=== {} #{} {} [{}]{} ({})\n",
            r.host,
            r.seq,
            r.task,
            r.state,
            r.rc.map(|c| format!(" rc={c}")).unwrap_or_default(),
            r.location
        ));
        if let Some(m) = &r.msg {
            out.push_str(&format!("msg: {m}\n"));
        }
        for (name, text, size) in [
            ("stdout", &r.stdout, r.stdout_size),
            ("stderr", &r.stderr, r.stderr_size),
        ] {
            if text.is_empty() {
                continue;
            }
            out.push_str(&format!(
                "--- {name}\n{}",
                crate::ui::sanitize(text.as_bytes())
            ));
            if !text.ends_with('\n') {
                out.push('\n');
            }
            if usize::try_from(size).unwrap_or(0) > text.len() {
                out.push_str(&format!("[{name} cut at {} of {size} bytes]\n", text.len()));
            }
        }
    }
    crate::ui::print_text(&out);
    Ok(ExitCode::Ok)
}
