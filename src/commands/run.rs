//! `kamo run PLAYBOOK...`: load and check everything first (exit 4 before any host is touched),
//! resolve every host's connection and keys once, then hand the plays to the engine.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::cli::{OutputFormat, PlaybookArgs, RunArgs};
use crate::engine::record::Recording;
use crate::engine::report::{Event, Reporter};
use crate::engine::stop::Stop;
use crate::engine::{Engine, RunOptions};
use crate::error::{Error, ExitCode, Located, Result};
use crate::inventory::Inventory;
use crate::journal::redact::{self, Redactor};
use crate::journal::{FileHash, Journal, NewRun, RunState};
use crate::playbook::model::Playbook;
use crate::playbook::template::Templater;
use crate::secret::Secret;
use crate::transport::target::Defaults;
use crate::transport::{Target, TransportError};
use crate::ui::reporter::{JsonReporter, TextReporter};

/// Parses `-e` values in order; later ones win.
pub fn extra_vars(values: &[String]) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for v in values {
        let v = v.trim();
        if let Some(file) = v.strip_prefix('@') {
            let path = Path::new(file);
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::io("cannot read extra vars file", path, e))?;
            if crate::vault::is_vault(&text) {
                merge_mapping(&mut out, vaulted_extra_vars(&text, path)?, file)?;
                continue;
            }
            let value: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| {
                let line = e.location().map_or(0, |l| l.line());
                let why = crate::input::yaml_limit_hint(&e)
                    .map_or_else(String::new, |why| format!(": {why}"));
                Error::parse(
                    Located::new(
                        path,
                        line,
                        format!("invalid YAML in extra vars file: {e}{why}"),
                    )
                    .source(&text),
                )
            })?;
            merge_mapping(&mut out, value, file)?;
        } else if v.starts_with('{') {
            let value: serde_yaml::Value = serde_yaml::from_str(v).map_err(|e| {
                Error::Usage(format!("-e {v:?}: not a valid JSON/YAML mapping: {e}"))
            })?;
            merge_mapping(&mut out, value, "-e")?;
        } else {
            let words = shlex::split(v)
                .ok_or_else(|| Error::Usage(format!("-e {v:?}: unbalanced quotes")))?;
            for w in words {
                let Some((k, val)) = w.split_once('=') else {
                    return Err(Error::Usage(format!(
                        "-e {w:?}: expected KEY=VALUE, @FILE or a JSON mapping"
                    )));
                };
                out.insert(k.to_owned(), Value::String(val.to_owned()));
            }
        }
    }
    Ok(out)
}

/// A vault-encrypted `-e @FILE`: decrypted, each value remembered as a secret; its errors
/// never quote the decrypted text.
fn vaulted_extra_vars(text: &str, path: &Path) -> Result<serde_yaml::Value> {
    let plain = zeroize::Zeroizing::new(crate::vault::keyring::open(text).map_err(|e| {
        Error::parse(
            Located::new(path, 1, format!("vault-encrypted extra vars file: {e}"))
                .hint(crate::vault::keyring::hint(&e)),
        )
    })?);
    let value: serde_yaml::Value = serde_yaml::from_str(&plain).map_err(|e| {
        let line = e.location().map_or(0, |l| l.line());
        Error::parse(Located::new(
            path,
            0,
            format!("the decrypted vault is not valid YAML (at its line {line})"),
        ))
    })?;
    if let Ok(json) = serde_json::to_value(&value) {
        crate::vault::keyring::remember_all(&json);
    }
    Ok(value)
}

fn merge_mapping(out: &mut Map<String, Value>, value: serde_yaml::Value, what: &str) -> Result<()> {
    match serde_json::to_value(value) {
        Ok(Value::Object(m)) => {
            out.extend(m);
            Ok(())
        }
        Ok(Value::Null) => Ok(()),
        _ => Err(Error::Usage(format!(
            "extra vars from {what} must be a mapping"
        ))),
    }
}

/// Loads every playbook and checks every template's syntax.
pub fn load_all(paths: &[PathBuf], templater: &Templater) -> Result<Vec<Playbook>> {
    let mut out = Vec::new();
    for p in paths {
        if !p.exists() {
            return Err(Error::Usage(format!(
                "playbook {} does not exist",
                p.display()
            )));
        }
        let pb = crate::playbook::load::load_playbook(p)?;
        crate::playbook::check::templates(&pb, templater)?;
        out.push(pb);
    }
    Ok(out)
}

/// The run options shared by `run` and `plan`.
pub fn options(args: &PlaybookArgs, limit: &[String]) -> Result<RunOptions> {
    Ok(RunOptions {
        extra_vars: extra_vars(&args.extra_vars)?,
        tags: args.tags.clone(),
        skip_tags: args.skip_tags.clone(),
        start_at_task: args.start_at_task.clone(),
        r#become: args.r#become,
        become_user: args.become_user.clone(),
        limit: limit.to_vec(),
        forks: 50,
        ..RunOptions::default()
    })
}

/// Every host any play of the playbooks selects, in first-seen order.
pub fn play_hosts(
    inventory: &Inventory,
    playbooks: &[Playbook],
    opts: &RunOptions,
    templater: &Templater,
) -> Result<Vec<String>> {
    let mut seen = Vec::new();
    let ctx = Value::Object(opts.extra_vars.clone());
    for pb in playbooks {
        for play in &pb.plays {
            let pattern = match templater.render_str(&play.hosts, &ctx) {
                Ok(Value::String(s)) => s,
                Ok(other) => other.to_string(),
                Err(e) => return Err(Error::Other(format!("play `hosts` at {}: {e}", play.span))),
            };
            let hosts = if pattern == "localhost" && inventory.host("localhost").is_none() {
                vec!["localhost".to_owned()]
            } else {
                inventory.select_limited(&pattern, &opts.limit)?
            };
            for h in hosts {
                if !seen.contains(&h) {
                    seen.push(h);
                }
            }
        }
    }
    Ok(seen)
}

/// The state directory: `--state-dir`, `$KAMO_STATE_DIR`, `$XDG_STATE_HOME/kamo`, `~/.local/state/kamo`.
#[must_use]
pub fn state_dir(flag: Option<&PathBuf>) -> PathBuf {
    if let Some(p) = flag {
        return p.clone();
    }
    if let Some(p) = std::env::var_os("KAMO_STATE_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(p).join("kamo");
    }
    std::env::home_dir().map_or_else(
        || PathBuf::from(".kamo-state"),
        |h| h.join(".local/state/kamo"),
    )
}

/// Writes every event as a JSON line to the run's log file (full task output per host).
struct LogReporter {
    file: std::sync::Mutex<std::fs::File>,
}

impl Reporter for LogReporter {
    fn event(&self, e: &Event) {
        let line = match e {
            Event::Host(h) => serde_json::to_string(h.as_ref()).unwrap_or_default(),
            Event::TaskStart { name, location, .. } => {
                serde_json::json!({"task": name, "location": location}).to_string()
            }
            Event::PlayStart { name, .. } => serde_json::json!({"play": name}).to_string(),
            Event::Warning(w) => serde_json::json!({"warning": w}).to_string(),
            Event::Recap { hosts, .. } => serde_json::json!({"recap": hosts}).to_string(),
        };
        let mut f = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(f, "{line}");
    }
}

/// Sends events to several reporters.
struct Tee(Vec<Arc<dyn Reporter>>);

impl Reporter for Tee {
    fn event(&self, e: &Event) {
        for r in &self.0 {
            r.event(e);
        }
    }
}

/// Replaces known secret values (secret-named variables, vault-decrypted values) in every
/// event before the console or the run log sees it.
struct Redacting {
    redactor: Redactor,
    inner: Tee,
}

impl Reporter for Redacting {
    fn event(&self, e: &Event) {
        let r = &self.redactor;
        if r.is_empty() {
            // Most runs know no secret: no copy of every event's output.
            return self.inner.event(e);
        }
        let text = |t: &str| r.redact(t).unwrap_or_else(|| t.to_owned());
        let json = |v: Value| r.redact_json(&v).unwrap_or(v);
        let redacted = match e {
            Event::Host(h) => {
                let mut h = h.clone();
                h.task = text(&h.task);
                h.msg = h.msg.as_deref().map(text);
                h.stdout = text(&h.stdout);
                h.stderr = text(&h.stderr);
                h.item = h.item.map(json);
                if let Some(Value::Object(m)) = r.redact_json(&Value::Object(h.data.clone())) {
                    h.data = m;
                }
                Event::Host(h)
            }
            Event::TaskStart {
                name,
                location,
                hosts,
            } => Event::TaskStart {
                name: text(name),
                location: location.clone(),
                hosts: *hosts,
            },
            Event::PlayStart { name, hosts } => Event::PlayStart {
                name: text(name),
                hosts: *hosts,
            },
            Event::Warning(w) => Event::Warning(text(w)),
            Event::Recap { .. } => e.clone(),
        };
        self.inner.event(&redacted);
    }
}

fn open_log(dir: &Path) -> Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let logs = dir.join("logs");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&logs)
        .map_err(|e| Error::io("cannot create the state directory", &logs, e))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let path = logs.join(format!("run-{stamp}-{}.log", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io("cannot create the run log", &path, e))?;
    Ok((path, file))
}

pub async fn run(args: RunArgs, verbose: u8) -> Result<ExitCode> {
    execute(args, verbose, None).await
}

/// What `kamo resume` adds to a run: which run, and whether to ignore changed files.
pub struct Resuming {
    pub run_id: i64,
    pub force: bool,
}

/// Loads everything, opens the journal, locks the hosts and runs the playbooks; shared by
/// `kamo run` (a new run) and `kamo resume` (an earlier run taken up again).
pub async fn execute(args: RunArgs, verbose: u8, resuming: Option<Resuming>) -> Result<ExitCode> {
    let interrupt = super::exec::Interrupt::install()?;
    let templater = Arc::new(Templater::new());
    let playbooks = load_all(&args.playbooks, &templater)?;
    let sources = super::inventory_sources(&args.inventory)?;
    let inventory = Arc::new(Inventory::load(&sources)?);
    let mut opts = options(&args.playbook, &args.inventory.limit)?;
    opts.check = args.check;
    opts.diff = args.diff;
    opts.forks = args.connection.forks as usize;
    opts.step = args.step;
    let hosts = play_hosts(&inventory, &playbooks, &opts, &templater)?;
    let (ssh, targets, defaults) = connect_settings(&args, &inventory, &hosts)?;
    // The engine keeps one connection per host for the whole run (two through a jump host).
    let jumps = targets
        .values()
        .filter(|t| t.as_ref().is_ok_and(|t| t.jump.is_some()))
        .count();
    crate::transport::limits::check(hosts.len() + jumps)?;

    let state = state_dir(args.state_dir.as_ref());
    let mut redactor = Redactor::default();
    redactor.add_vars(&opts.extra_vars);
    for h in &hosts {
        redactor.add_vars(&inventory.vars_for(h));
    }
    for secret in [&defaults.password, &defaults.become_password]
        .into_iter()
        .flatten()
    {
        redactor.add(secret.expose());
    }
    let files = read_files(&playbooks, &sources);
    let mut journal = Journal::open(&state).await?;
    let locked_hosts: Vec<String> = hosts
        .iter()
        .filter(|h| *h != "localhost")
        .cloned()
        .collect();
    let (run_id, attempt, replay) = open_run(
        &mut journal,
        resuming.as_ref(),
        &args,
        &opts,
        &sources,
        files,
        &locked_hosts,
    )
    .await?;
    let recording = Arc::new(Recording {
        log: journal.run_log(run_id, attempt).await?,
        base: args
            .playbooks
            .first()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        replay,
        redactor,
        run_id,
    });

    let (log_path, log_file) = open_log(&state)?;
    let console: Arc<dyn Reporter> = match args.output {
        OutputFormat::Json => Arc::new(JsonReporter::default()),
        OutputFormat::Text => Arc::new(TextReporter::new(verbose)),
    };
    let reporter = Arc::new(Redacting {
        redactor: recording.redactor.clone(),
        inner: Tee(vec![
            Arc::new(LogReporter {
                file: std::sync::Mutex::new(log_file),
            }),
            console,
        ]),
    });
    let stop = Stop::default();
    let watcher = tokio::spawn(watch_signals(
        interrupt,
        stop.clone(),
        Duration::from_secs(args.grace_period),
    ));
    let mut engine = Engine {
        groups: crate::engine::vars::groups_value(&inventory),
        inventory,
        templater,
        waiting_for_start: opts.start_at_task.clone(),
        opts,
        reporter,
        ssh,
        hosts: indexmap::IndexMap::new(),
        stats: indexmap::IndexMap::new(),
        targets,
        recording: Some(recording.clone()),
        stop: stop.clone(),
    };
    let mut outcome: Result<ExitCode> = Ok(ExitCode::Ok);
    for pb in &playbooks {
        outcome = tokio::select! {
            r = engine.run(pb) => r,
            () = stop.wait_abort() => Err(Error::Interrupted),
        };
        if !matches!(outcome, Ok(ExitCode::Ok)) {
            break;
        }
    }
    engine.close_connections().await;
    watcher.abort();
    recording.log.close().await;
    finish(&mut journal, run_id, outcome, &args, &log_path).await
}

/// Records how the run ended, releases its hosts, and tells the operator how to carry on.
async fn finish(
    journal: &mut Journal,
    run_id: i64,
    outcome: Result<ExitCode>,
    args: &RunArgs,
    log_path: &Path,
) -> Result<ExitCode> {
    let (state_now, message) = match &outcome {
        Ok(ExitCode::Ok) => (RunState::Ok, None),
        Ok(ExitCode::Unreachable) => (RunState::Unreachable, None),
        Ok(_) => (RunState::Failed, None),
        Err(Error::Interrupted) => (RunState::Interrupted, None),
        Err(e) => (RunState::Error, Some(e.to_string())),
    };
    let recorded = journal
        .finish_run(run_id, state_now, message.as_deref())
        .await;
    let _ = journal.unlock_hosts(run_id).await;
    if let Err(e) = recorded {
        crate::ui::eprint_line(&format!("warning: {e}"));
    }
    let hint = resume_hint(run_id, args);
    match &outcome {
        Err(Error::Interrupted) => crate::ui::eprint_line(&format!(
            "interrupted: run {run_id} stopped; tasks in flight run again on resume. \
             Carry on with: {hint}"
        )),
        Ok(ExitCode::Ok) => {
            if args.output == OutputFormat::Text {
                crate::ui::eprint_line(&format!(
                    "run {run_id} recorded; run log: {}",
                    log_path.display()
                ));
            }
        }
        _ => crate::ui::eprint_line(&format!(
            "run {run_id} recorded ({}); after fixing the cause, carry on with: {hint}",
            state_now.as_str()
        )),
    }
    match outcome {
        Err(Error::Interrupted) => Ok(ExitCode::Interrupted),
        other => other,
    }
}

/// Every host's connection settings, resolved once, and the prompted passwords.
#[allow(clippy::type_complexity)]
fn connect_settings(
    args: &RunArgs,
    inventory: &Inventory,
    hosts: &[String],
) -> Result<(
    Arc<crate::transport::ssh::SshContext>,
    HashMap<String, std::result::Result<Target, TransportError>>,
    Defaults,
)> {
    let mut defaults = Defaults {
        user: args.connection.user.clone(),
        private_key: args.connection.private_key.clone(),
        become_user: args.playbook.become_user.clone(),
        ..Defaults::default()
    };
    if args.connection.ask_pass {
        defaults.password = Some(prompt("SSH password: ")?);
    }
    if args.playbook.ask_become_pass {
        defaults.become_password = Some(prompt("BECOME password: ")?);
    }
    let ssh_config = super::ssh_config(args.connection.ssh_config.as_ref())?;
    let resolved: Vec<(String, std::result::Result<Target, TransportError>)> = hosts
        .iter()
        .map(|h| {
            if h == "localhost" && inventory.host(h).is_none() {
                (h.clone(), Ok(crate::engine::local_target(h)))
            } else {
                (
                    h.clone(),
                    Target::resolve(h, &inventory.vars_for(h), &defaults, &ssh_config),
                )
            }
        })
        .collect();
    let mut ssh = super::exec::ssh_context(&args.connection, &resolved)?;
    ssh.task_timeout = args.task_timeout.map(std::time::Duration::from_secs);
    let ssh = Arc::new(ssh);
    let targets: HashMap<String, std::result::Result<Target, TransportError>> =
        resolved.into_iter().collect();

    Ok((ssh, targets, defaults))
}

/// Records a new run, or takes an earlier one up again: (run id, attempt, what to replay).
async fn open_run(
    journal: &mut Journal,
    resuming: Option<&Resuming>,
    args: &RunArgs,
    opts: &RunOptions,
    sources: &[PathBuf],
    files: Vec<FileHash>,
    hosts: &[String],
) -> Result<(
    i64,
    i64,
    HashMap<(String, String), crate::engine::record::Recorded>,
)> {
    let user = crate::journal::lock::current_user();
    if let Some(r) = resuming {
        super::resume::check_files(journal, r.run_id, &files, r.force).await?;
        journal.lock_hosts(r.run_id, &user, hosts).await?;
        let rows = crate::journal::query::results(journal, r.run_id, None).await?;
        let attempt = journal.reopen_run(r.run_id).await?;
        return Ok((r.run_id, attempt, Recording::replay_from(rows)));
    }
    let id = journal
        .start_run(&new_run(args, opts, sources, files))
        .await?;
    if let Err(e) = journal.lock_hosts(id, &user, hosts).await {
        // Refused before it began: not a run worth listing or resuming.
        let _ = journal.delete_run(id).await;
        return Err(e);
    }
    Ok((id, 1, HashMap::new()))
}

/// The command that resumes this run.
fn resume_hint(run_id: i64, args: &RunArgs) -> String {
    let mut hint = format!("kamo resume {run_id}");
    if let Some(d) = &args.state_dir {
        hint.push_str(&format!(" --state-dir {}", quote_path(d)));
    }
    hint
}

fn quote_path(p: &Path) -> String {
    let s = p.display().to_string();
    shlex::try_quote(&s).map_or(s.clone(), std::borrow::Cow::into_owned)
}

/// First signal: stop starting tasks; second signal or the grace period: abandon the rest.
async fn watch_signals(mut interrupt: super::exec::Interrupt, stop: Stop, grace: Duration) {
    interrupt.recv().await;
    stop.request();
    crate::ui::eprint_line(&format!(
        "stopping: no new task starts; the tasks in flight may finish for up to {}s \
         (interrupt again to abandon them now)",
        grace.as_secs()
    ));
    tokio::select! {
        () = interrupt.recv() => {}
        () = tokio::time::sleep(grace) => {
            crate::ui::eprint_line("stopping: the grace period is over; abandoning the tasks in flight");
        }
    }
    stop.abort();
}

/// Every file the run reads: the playbooks with everything they load, and the inventory.
fn read_files(playbooks: &[Playbook], sources: &[PathBuf]) -> Vec<FileHash> {
    let mut out: Vec<FileHash> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for pb in playbooks {
        for f in std::iter::once(&pb.path).chain(&pb.files) {
            let abs = absolute(f);
            if seen.insert(abs.clone()) {
                out.push(FileHash::of("playbook", &abs));
            }
        }
    }
    for f in inventory_files(sources) {
        let abs = absolute(&f);
        if seen.insert(abs.clone()) {
            out.push(FileHash::of("inventory", &abs));
        }
    }
    out
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// The inventory's files: each source file (or every file in a source directory) and the
/// `group_vars/` and `host_vars/` trees beside it.
#[must_use]
pub fn inventory_files(sources: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
        if depth > 16 {
            return;
        }
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            if p.is_dir() {
                walk(&p, out, depth + 1);
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for s in sources {
        if s.is_dir() {
            walk(s, &mut out, 0);
        } else {
            out.push(s.clone());
            let dir = s
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            for sub in ["group_vars", "host_vars"] {
                walk(&dir.join(sub), &mut out, 0);
            }
        }
    }
    out.dedup();
    out
}

/// The journal's record of a new run (secrets left out).
fn new_run(args: &RunArgs, opts: &RunOptions, sources: &[PathBuf], files: Vec<FileHash>) -> NewRun {
    let command_line: Vec<String> = std::iter::once("kamo".to_owned())
        .chain(std::env::args().skip(1))
        .collect();
    let extra = redact::redact_value(&Value::Object(opts.extra_vars.clone()));
    let options = serde_json::json!({
        "playbooks": args.playbooks.iter().map(|p| absolute(p)).collect::<Vec<_>>(),
        "inventory": sources.iter().map(|p| absolute(p)).collect::<Vec<_>>(),
        "limit": args.inventory.limit,
        "tags": args.playbook.tags,
        "skip_tags": args.playbook.skip_tags,
        "start_at_task": args.playbook.start_at_task,
        "become": args.playbook.r#become,
        "become_user": args.playbook.become_user,
        "check": args.check,
        "diff": args.diff,
        "forks": args.connection.forks,
        "timeout": args.connection.timeout,
        "keepalive": args.connection.keepalive,
        "task_timeout": args.task_timeout,
        "known_hosts": args.connection.known_hosts.iter().map(|p| absolute(p)).collect::<Vec<_>>(),
        "host_key_checking": clap::ValueEnum::to_possible_value(&args.connection.host_key_checking)
            .map(|v| v.get_name().to_owned()),
        "user": args.connection.user,
        "private_key": args.connection.private_key.as_ref().map(|p| absolute(p)),
        "ssh_config": args.connection.ssh_config.as_ref().map(|p| if p.as_os_str() == "none" { p.clone() } else { absolute(p) }),
        "extra_vars": extra,
        "secret_extra_vars": redact::secret_keys(&opts.extra_vars),
        "secret_vars": crate::secret::patterns(),
    });
    let (pb_files, inv_files): (Vec<FileHash>, Vec<FileHash>) =
        files.into_iter().partition(|f| f.kind == "playbook");
    NewRun {
        command: redact::redact_argv(&command_line),
        user: crate::journal::lock::current_user(),
        playbook: args
            .playbooks
            .first()
            .map(|p| absolute(p).display().to_string())
            .unwrap_or_default(),
        playbook_hash: crate::journal::combined_hash(&pb_files),
        inventory_hash: crate::journal::combined_hash(&inv_files),
        extra_vars: extra.to_string(),
        options: options.to_string(),
        files: pb_files.into_iter().chain(inv_files).collect(),
    }
}

fn prompt(text: &str) -> Result<Secret<String>> {
    rpassword::prompt_password(text)
        .map(Secret::new)
        .map_err(|e| Error::Other(format!("cannot read a password from the terminal: {e}")))
}

pub fn syntax_check(args: &crate::cli::SyntaxCheckArgs) -> Result<ExitCode> {
    let templater = Templater::new();
    let playbooks = load_all(&args.playbooks, &templater)?;
    for (pb, path) in playbooks.iter().zip(&args.playbooks) {
        let tasks: usize = pb
            .plays
            .iter()
            .map(|p| p.sections.iter().map(Vec::len).sum::<usize>() + p.handlers.len())
            .sum();
        crate::ui::print_text(&format!(
            "playbook: {} ({} plays, {tasks} top-level tasks): ok",
            path.display(),
            pb.plays.len()
        ));
    }
    Ok(ExitCode::Ok)
}
