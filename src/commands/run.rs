//! `kamo run PLAYBOOK...`: load and check everything first (exit 4 before any host is touched),
//! resolve every host's connection and keys once, then hand the plays to the engine.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::cli::{OutputFormat, PlaybookArgs, RunArgs};
use crate::engine::report::{Event, Reporter};
use crate::engine::{Engine, RunOptions};
use crate::error::{Error, ExitCode, Located, Result};
use crate::inventory::Inventory;
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
            let value: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| {
                let line = e.location().map_or(0, |l| l.line());
                Error::parse(
                    Located::new(path, line, format!("invalid YAML in extra vars file: {e}"))
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
    let mut interrupt = super::exec::Interrupt::install()?;
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
    let ssh = Arc::new(super::exec::ssh_context(&args.connection, &resolved)?);
    let targets: HashMap<String, std::result::Result<Target, TransportError>> =
        resolved.into_iter().collect();

    let (log_path, log_file) = open_log(&state_dir(args.state_dir.as_ref()))?;
    let console: Arc<dyn Reporter> = match args.output {
        OutputFormat::Json => Arc::new(JsonReporter::default()),
        OutputFormat::Text => Arc::new(TextReporter::new(verbose)),
    };
    let reporter = Arc::new(Tee(vec![
        Arc::new(LogReporter {
            file: std::sync::Mutex::new(log_file),
        }),
        console,
    ]));
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
    };
    let mut code = ExitCode::Ok;
    for pb in &playbooks {
        tokio::select! {
            r = engine.run(pb) => {
                code = r?;
            }
            () = interrupt.recv() => {
                crate::ui::eprint_line(&format!("interrupted; the run log is {}", log_path.display()));
                return Ok(ExitCode::Interrupted);
            }
        }
        if code != ExitCode::Ok {
            break;
        }
    }
    if args.output == OutputFormat::Text {
        crate::ui::eprint_line(&format!("run log: {}", log_path.display()));
    }
    Ok(code)
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
