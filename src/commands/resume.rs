//! `kamo resume [RUN]`: take an interrupted or failed run up again where it stopped.
//!
//! The run's own settings (playbooks, limit, tags, check mode, extra vars) come from the
//! journal; only what the journal must not keep (secret extra vars, passwords) is asked for
//! again. Before anything is sent, every file the run read is hashed again: a changed
//! playbook, role, template or inventory file stops the resume (naming the file), since
//! replaying recorded results against different tasks would be wrong; `--force` overrides.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::cli::{ConnectionArgs, InventoryArgs, PlaybookArgs, ResumeArgs, RunArgs};
use crate::error::{Error, ExitCode, Result};
use crate::journal::{FileHash, Journal, query};
use crate::transport::ssh::HostKeyChecking;

pub async fn run(args: ResumeArgs, verbose: u8) -> Result<ExitCode> {
    let state = super::run::state_dir(args.state_dir.as_ref());
    let mut journal = Journal::open_existing(&state).await?;
    let run_id = match args.run.as_deref() {
        None => query::latest_unfinished(&mut journal).await?,
        Some(s) => query::resolve(&mut journal, Some(s)).await?,
    };
    let row = query::run(&mut journal, run_id).await?;
    match row.state.as_str() {
        "running" => {
            return Err(Error::Usage(format!(
                "run {run_id} is still running (pid {}); stop it first (Ctrl-C lets it record \
                 where it stopped)",
                row.pid
            )));
        }
        "ok" => {
            return Err(Error::Usage(format!(
                "run {run_id} finished without errors; there is nothing to resume"
            )));
        }
        _ => {}
    }
    drop(journal);
    let opts: Value = serde_json::from_str(&row.options).map_err(|e| {
        Error::Other(format!(
            "run {run_id}: its recorded options cannot be read: {e}"
        ))
    })?;
    // The run's secret-name patterns first, so that the resume hides what its run hid.
    let mut patterns = strings(&opts, "secret_vars");
    patterns.extend(args.inventory.vault.secret_vars.iter().cloned());
    crate::secret::install_patterns(&patterns)?;
    if opts.get("kind").and_then(Value::as_str) == Some("db") {
        return super::rollback::resume(run_id, &opts, &args, verbose).await;
    }
    if opts.get("kind").and_then(Value::as_str) == Some("migrate") {
        return super::migrate::resume(run_id, &opts, &args, verbose).await;
    }
    let run_args = run_args(&args, &opts, run_id)?;
    super::run::execute(
        run_args,
        verbose,
        Some(super::run::Resuming {
            run_id,
            force: args.force,
        }),
    )
    .await
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Extra variables from stdin (`--extra-vars-stdin`): one YAML or JSON mapping, at most 1 MiB.
pub(crate) fn stdin_vars() -> Result<Map<String, Value>> {
    use std::io::Read;
    let mut text = String::new();
    std::io::stdin()
        .take(1 << 20)
        .read_to_string(&mut text)
        .map_err(|e| Error::Usage(format!("--extra-vars-stdin: cannot read stdin: {e}")))?;
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    let value: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| {
        // The text may hold secrets: say where, never what.
        let at = e.location().map_or_else(String::new, |l| {
            format!(" (line {}, column {})", l.line(), l.column())
        });
        Error::Usage(format!(
            "--extra-vars-stdin: not a YAML or JSON mapping{at}"
        ))
    })?;
    match serde_json::to_value(value) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Error::Usage(
            "--extra-vars-stdin: expected a mapping of variable names to values".into(),
        )),
    }
}

/// The recorded run's arguments, with what the resume command line adds.
fn run_args(args: &ResumeArgs, opts: &Value, run_id: i64) -> Result<RunArgs> {
    let mut extra: Map<String, Value> = opts
        .get("extra_vars")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut given = super::run::extra_vars(&args.extra_vars)?;
    if args.extra_vars_stdin {
        given.extend(stdin_vars()?);
    }
    let missing: Vec<String> = strings(opts, "secret_extra_vars")
        .into_iter()
        .filter(|k| !given.contains_key(k))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Usage(format!(
            "run {run_id} was given secret extra vars that the journal does not keep: {}; pass \
             them again on stdin (--extra-vars-stdin, a YAML or JSON mapping) or with -e {}=...",
            missing.join(", "),
            missing[0]
        )));
    }
    extra.extend(given);
    let inventory = if args.inventory.inventory.is_empty() {
        InventoryArgs {
            inventory: strings(opts, "inventory")
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            limit: strings(opts, "limit"),
            vault: args.inventory.vault.clone(),
        }
    } else {
        InventoryArgs {
            inventory: args.inventory.inventory.clone(),
            limit: if args.inventory.limit.is_empty() {
                strings(opts, "limit")
            } else {
                args.inventory.limit.clone()
            },
            vault: args.inventory.vault.clone(),
        }
    };
    let flag = |k: &str| opts.get(k).and_then(Value::as_bool).unwrap_or(false);
    let text = |k: &str| opts.get(k).and_then(Value::as_str).map(str::to_owned);
    let connection = connection(&args.connection, opts);
    Ok(RunArgs {
        playbooks: strings(opts, "playbooks")
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        inventory,
        connection,
        playbook: PlaybookArgs {
            extra_vars: vec![Value::Object(extra).to_string()],
            tags: strings(opts, "tags"),
            skip_tags: strings(opts, "skip_tags"),
            start_at_task: text("start_at_task"),
            r#become: flag("become"),
            become_user: text("become_user"),
            ask_become_pass: args.ask_become_pass,
        },
        check: flag("check"),
        diff: flag("diff"),
        step: false,
        state_dir: args.state_dir.clone(),
        output: args.output,
        grace_period: args.grace_period,
        // The resumed run keeps the bound its run had.
        task_timeout: opts.get("task_timeout").and_then(Value::as_u64),
    })
}

/// The run's recorded connection settings, except where the resume command line gives its own
/// (a value other than the default).
fn connection(given: &ConnectionArgs, opts: &Value) -> ConnectionArgs {
    let mut c = given.clone();
    let num = |k: &str| opts.get(k).and_then(Value::as_u64);
    let path = |k: &str| opts.get(k).and_then(Value::as_str).map(PathBuf::from);
    if c.forks == 50
        && let Some(f) = num("forks").and_then(|f| u32::try_from(f).ok())
    {
        c.forks = f;
    }
    if c.timeout == 10
        && let Some(t) = num("timeout")
    {
        c.timeout = t;
    }
    if c.keepalive == 30
        && let Some(k) = num("keepalive")
    {
        c.keepalive = k;
    }
    if c.known_hosts.is_empty() {
        c.known_hosts = strings(opts, "known_hosts")
            .into_iter()
            .map(PathBuf::from)
            .collect();
    }
    if c.host_key_checking == HostKeyChecking::Strict
        && let Some(h) = opts
            .get("host_key_checking")
            .and_then(Value::as_str)
            .and_then(|s| <HostKeyChecking as clap::ValueEnum>::from_str(s, true).ok())
    {
        c.host_key_checking = h;
    }
    if c.user.is_none() {
        c.user = opts.get("user").and_then(Value::as_str).map(str::to_owned);
    }
    if c.private_key.is_none() {
        c.private_key = path("private_key");
    }
    if c.ssh_config.is_none() {
        c.ssh_config = path("ssh_config");
    }
    c
}

/// Refuses (unless `force`) when a file the run read changed, vanished or was added.
pub async fn check_files(
    journal: &mut Journal,
    run_id: i64,
    now: &[FileHash],
    force: bool,
) -> Result<()> {
    let recorded = query::files(journal, run_id).await?;
    let mut changes = Vec::new();
    for r in &recorded {
        match now.iter().find(|f| f.path == r.path) {
            Some(f) if f.sha256 == r.sha256 => {}
            Some(_) => changes.push(format!("{} {} changed", r.kind, r.path.display())),
            None => {
                let current = FileHash::of(&r.kind, &r.path);
                if current.sha256 == "unreadable" {
                    changes.push(format!("{} {} is gone", r.kind, r.path.display()));
                } else if current.sha256 != r.sha256 {
                    changes.push(format!("{} {} changed", r.kind, r.path.display()));
                }
            }
        }
    }
    for f in now {
        if !recorded.iter().any(|r| r.path == f.path) {
            changes.push(format!("{} {} is new", f.kind, f.path.display()));
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    if force {
        for c in &changes {
            crate::ui::eprint_line(&format!("warning: resuming anyway (--force): {c}"));
        }
        return Ok(());
    }
    Err(Error::Other(format!(
        "cannot resume run {run_id}: what it runs changed since it started:\n  {}\nRecorded \
         results would be replayed against different tasks. Restore the files, start a new \
         run, or resume anyway with --force",
        changes.join("\n  ")
    )))
}

/// The recorded options of a coordinator run (`kind` db or migrate), read back.
pub(crate) fn recorded<T: serde::de::DeserializeOwned>(run_id: i64, options: &Value) -> Result<T> {
    serde_json::from_value(options.clone()).map_err(|e| {
        Error::Other(format!(
            "run {run_id}: its recorded options cannot be read: {e}"
        ))
    })
}
