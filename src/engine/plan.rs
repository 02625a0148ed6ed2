//! The per-node dry run: for every selected host, the ordered tasks it would run, with every
//! argument rendered for that host and the exact script `run` would send, offline.
//!
//! Exactness: the script comes from the same `modules::build` and `compose_script` calls that
//! `run` makes, and its SHA-256 is reported by both, so a test can hold plan and run to the
//! same bytes. What cannot be known offline is shown as such, never guessed: facts (when the
//! play gathers them) and values registered or set by earlier tasks make a condition, a loop
//! or an argument "known at run time", naming the variable.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::task::{compose_script, controller_inputs, script_digest};
use super::vars::{self, HostVars, PlayScope};
use super::{RunOptions, batches, tags_match};
use crate::error::Error;
use crate::inventory::Inventory;
use crate::playbook::model::{Loop, Module, Play, Playbook, Task, TaskKind};
use crate::playbook::modules::{self, Flags};
use crate::playbook::template::{TemplateError, Templater};

/// One task on one host (one loop item).
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub play: String,
    pub host: String,
    pub task: String,
    pub location: String,
    /// `run`, `skipped`, `runtime` (decided at run time), `controller`, `error`.
    pub status: &'static str,
    pub reason: Option<String>,
    pub module: Option<&'static str>,
    pub item: Option<Value>,
    pub summary: Vec<String>,
    pub script: Option<String>,
    pub script_sha256: Option<String>,
    /// Inside a block's `rescue` (runs only if the block fails) or `always`.
    pub section: Option<&'static str>,
}

pub struct Planner<'a> {
    /// Keep each task's full script in its entry (JSON output, `--scripts`); otherwise only
    /// its digest, which keeps a 1,000-host plan small.
    pub keep_scripts: bool,
    pub inventory: &'a Inventory,
    pub templater: &'a Templater,
    pub opts: &'a RunOptions,
    pub groups: Value,
    /// `hostvars` as the plan knows it (every host's inventory variables), built once per
    /// plan on first use. Built for every host of every task that reads it, it made a
    /// 1,000-host plan quadratic (15 s for five `template` tasks).
    hostvars: std::sync::OnceLock<Value>,
}

/// What every host of a play batch reads alike, layered under each host's own variables
/// (`Templater::with_shared`), as `run` does once per task: the wide magic variables, and
/// `hostvars` for the tasks that read it. Each is built and converted on first use.
struct Layers<'p> {
    planner: &'p Planner<'p>,
    wide: Map<String, Value>,
    plain: std::sync::OnceLock<Templater>,
    with_hostvars: std::sync::OnceLock<Templater>,
}

impl Layers<'_> {
    fn templater(&self, hostvars: bool) -> &Templater {
        let p = self.planner;
        if hostvars {
            self.with_hostvars.get_or_init(|| {
                let hv = p.hostvars.get_or_init(|| {
                    let empty = HostVars::default();
                    vars::hostvars_value(
                        p.inventory,
                        p.inventory.hosts().map(|h| (h.name.as_str(), &empty)),
                    )
                });
                let mut shared = self.wide.clone();
                shared.insert("hostvars".into(), hv.clone());
                p.templater.with_shared(Some(&Value::Object(shared)))
            })
        } else {
            self.plain.get_or_init(|| {
                p.templater
                    .with_shared(Some(&Value::Object(self.wide.clone())))
            })
        }
    }
}

/// What is known about a host while walking its tasks.
struct HostWalk<'l> {
    layers: &'l Layers<'l>,
    vars: HostVars,
    /// Names whose values exist only at run time.
    unknown: BTreeSet<String>,
}

impl<'a> Planner<'a> {
    #[must_use]
    pub fn new(
        keep_scripts: bool,
        inventory: &'a Inventory,
        templater: &'a Templater,
        opts: &'a RunOptions,
    ) -> Self {
        Self {
            keep_scripts,
            inventory,
            templater,
            opts,
            groups: vars::groups_value(inventory),
            hostvars: std::sync::OnceLock::new(),
        }
    }

    /// Plans every play of the playbook for its hosts, in order.
    pub fn plan(
        &self,
        pb: &Playbook,
        hosts_of: impl Fn(&Play) -> Result<Vec<String>, Error>,
    ) -> Result<Vec<Entry>, Error> {
        let mut out = Vec::new();
        self.plan_each(
            pb,
            hosts_of,
            |entries| entries,
            |entries| out.extend(entries),
        )?;
        Ok(out)
    }

    /// Plans every play of the playbook for its hosts, streaming: each host's entries (one
    /// play) go through `each` on the thread that planned them, and what it returns reaches
    /// `sink` in plan order, a few dozen hosts at a time, so a large plan need not be held
    /// whole (JSON output serializes on the planning threads). Every play's hosts are
    /// resolved before anything is planned, so an error there comes before any output.
    pub fn plan_each<T: Send>(
        &self,
        pb: &Playbook,
        hosts_of: impl Fn(&Play) -> Result<Vec<String>, Error>,
        each: impl Fn(Vec<Entry>) -> T + Sync,
        mut sink: impl FnMut(T),
    ) -> Result<(), Error> {
        let playbook_dir = pb
            .path
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let play_hosts = pb
            .plays
            .iter()
            .map(hosts_of)
            .collect::<Result<Vec<_>, _>>()?;
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut set_before: BTreeSet<String> = BTreeSet::new();
        for (play, hosts) in pb.plays.iter().zip(play_hosts) {
            let earlier = &set_before.clone();
            for t in play.sections.iter().flatten().chain(&play.handlers) {
                set_names(t, &mut set_before);
            }
            let play_vars: Map<String, Value> = play.vars.clone().into_iter().collect();
            let play_name = play.name.clone().unwrap_or_else(|| play.hosts.clone());
            for batch in batches(&hosts, &play.serial) {
                let scope = PlayScope {
                    inventory: self.inventory,
                    role_defaults: &play.role_defaults,
                    play_vars: &play_vars,
                    extra_vars: &self.opts.extra_vars,
                    play_hosts: &batch,
                    groups: &self.groups,
                    check_mode: self.opts.check,
                    diff_mode: self.opts.diff,
                    playbook_dir: &playbook_dir,
                };
                let layers = Layers {
                    planner: self,
                    wide: vars::wide_magic(&scope),
                    plain: std::sync::OnceLock::new(),
                    with_hostvars: std::sync::OnceLock::new(),
                };
                // Hosts are planned independently: a round of hosts at a time, split over the
                // cores, order kept.
                for round in batch.chunks(threads * 32) {
                    let chunk = round.len().div_ceil(threads).max(1);
                    let parts: Vec<Vec<T>> = std::thread::scope(|s| {
                        let handles: Vec<_> = round
                            .chunks(chunk)
                            .map(|hosts| {
                                let scope = &scope;
                                let layers = &layers;
                                let play_name = &play_name;
                                let each = &each;
                                s.spawn(move || {
                                    hosts
                                        .iter()
                                        .map(|host| {
                                            let mut out = Vec::new();
                                            self.plan_host(
                                                scope, layers, play, play_name, host, earlier,
                                                &mut out,
                                            );
                                            each(out)
                                        })
                                        .collect()
                                })
                            })
                            .collect();
                        handles
                            .into_iter()
                            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                            .collect()
                    });
                    parts.into_iter().flatten().for_each(&mut sink);
                }
            }
        }
        Ok(())
    }

    /// Every task of the play for one host.
    #[allow(clippy::too_many_arguments)]
    fn plan_host(
        &self,
        scope: &PlayScope<'_>,
        layers: &Layers<'_>,
        play: &Play,
        play_name: &str,
        host: &str,
        earlier: &BTreeSet<String>,
        out: &mut Vec<Entry>,
    ) {
        let mut walk = HostWalk {
            layers,
            vars: HostVars {
                inventory: Some(std::sync::Arc::new(self.inventory.vars_for(host))),
                ..HostVars::default()
            },
            // What earlier plays registered or set on a host stays with it, as at run time;
            // offline its value is not known.
            unknown: earlier.clone(),
        };
        if play.gather_facts {
            walk.unknown.insert("ansible_facts".into());
            for f in FACT_NAMES {
                walk.unknown.insert(format!("ansible_{f}"));
            }
        }
        for section in &play.sections {
            self.walk(scope, play, play_name, host, section, &mut walk, None, out);
        }
        for h in &play.handlers {
            self.walk(
                scope,
                play,
                play_name,
                host,
                std::slice::from_ref(h),
                &mut walk,
                Some("handler"),
                out,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        scope: &PlayScope<'_>,
        play: &Play,
        play_name: &str,
        host: &str,
        tasks: &[Task],
        walk: &mut HostWalk,
        section: Option<&'static str>,
        out: &mut Vec<Entry>,
    ) {
        for t in tasks {
            match &t.kind {
                TaskKind::Block {
                    block,
                    rescue,
                    always,
                } => {
                    self.walk(scope, play, play_name, host, block, walk, section, out);
                    self.walk(
                        scope,
                        play,
                        play_name,
                        host,
                        rescue,
                        walk,
                        Some("rescue"),
                        out,
                    );
                    self.walk(
                        scope,
                        play,
                        play_name,
                        host,
                        always,
                        walk,
                        Some("always"),
                        out,
                    );
                }
                TaskKind::Meta(_) | TaskKind::IncludeTasks { .. } => {
                    if tags_match(&t.tags, self.opts) {
                        out.push(Self::entry(
                            play_name,
                            host,
                            t,
                            section,
                            "runtime",
                            Some("included or meta task: resolved at run time".into()),
                        ));
                    }
                }
                TaskKind::Action(_) => {
                    if tags_match(&t.tags, self.opts) {
                        // A task variable (`vars:`) computed from a run-time value is itself a
                        // run-time value for this task: what reads it is shown as run-time,
                        // not as an error.
                        let derived: Vec<String> = t
                            .vars
                            .iter()
                            .filter(|(k, v)| {
                                !walk.unknown.contains(*k)
                                    && !self.unknown_in(&v.to_string(), walk).is_empty()
                            })
                            .map(|(k, _)| k.clone())
                            .collect();
                        walk.unknown.extend(derived.iter().cloned());
                        self.plan_task(scope, play, play_name, host, t, walk, section, out);
                        for k in &derived {
                            walk.unknown.remove(k);
                        }
                    }
                }
            }
        }
    }

    fn entry(
        play: &str,
        host: &str,
        t: &Task,
        section: Option<&'static str>,
        status: &'static str,
        reason: Option<String>,
    ) -> Entry {
        Entry {
            play: play.to_owned(),
            host: host.to_owned(),
            task: t.display_name(),
            location: t.span.to_string(),
            status,
            reason,
            module: match &t.kind {
                TaskKind::Action(a) => Some(a.module.name()),
                _ => None,
            },
            item: None,
            summary: Vec::new(),
            script: None,
            script_sha256: None,
            section,
        }
    }

    /// The names of run-time values a template reads.
    fn unknown_in(&self, text: &str, walk: &HostWalk) -> Vec<String> {
        self.templater
            .referenced_vars(text)
            .into_iter()
            .filter(|v| walk.unknown.contains(v))
            .collect()
    }

    fn explain(&self, e: &TemplateError, text: &str, walk: &HostWalk) -> (&'static str, String) {
        let unknown = self.unknown_in(text, walk);
        if let Some(u) = e.undefined.as_ref().filter(|u| walk.unknown.contains(*u)) {
            return (
                "runtime",
                format!(
                    "known at run time: reads `{u}` (set by an earlier task or gathered facts)"
                ),
            );
        }
        if !unknown.is_empty() {
            return (
                "runtime",
                format!("known at run time: reads `{}`", unknown.join("`, `")),
            );
        }
        runtime_attr(&e.message, walk).unwrap_or_else(|| ("error", e.to_string()))
    }

    #[allow(clippy::too_many_arguments, clippy::too_many_lines)]
    fn plan_task(
        &self,
        scope: &PlayScope<'_>,
        play: &Play,
        play_name: &str,
        host: &str,
        t: &Task,
        walk: &mut HostWalk,
        section: Option<&'static str>,
        out: &mut Vec<Entry>,
    ) {
        let TaskKind::Action(action) = &t.kind else {
            return;
        };
        // What depends on the task only is decided once per task, not once per host: whether
        // it reads `hostvars`, and its arguments as one value.
        thread_local! {
            static PER_TASK: std::cell::RefCell<std::collections::HashMap<usize, std::rc::Rc<TaskFacts>>> = std::cell::RefCell::default();
        }
        let key = std::ptr::from_ref(t) as usize;
        let facts = PER_TASK.with(|m| {
            std::rc::Rc::clone(m.borrow_mut().entry(key).or_insert_with(|| {
                let raw = Value::Object(action.args.clone());
                let text = super::task::task_text(t, action);
                std::rc::Rc::new(TaskFacts {
                    // Templates read hostvars from files the task text does not show.
                    hostvars: action.module == Module::Template || text.contains("hostvars"),
                    raw,
                })
            }))
        });
        let mut base = vars::for_task(scope, host, &walk.vars, t.role.as_deref(), &t.vars);
        // Offline, every host's inventory variables are known; its facts and registered or
        // `set_fact` values are not (they are run-time names in `walk.unknown`).
        let tpl = walk.layers.templater(facts.hostvars);
        for u in &walk.unknown {
            base.remove(u);
        }
        vars::resolve_nested(tpl, &mut base);
        // Loop items.
        let items: Option<Vec<Value>> = match &t.r#loop {
            None => None,
            Some(Loop::Items(v) | Loop::Dict(v)) => {
                match tpl.render_value(v, &Value::Object(base.clone())) {
                    Ok(Value::Array(a)) => Some(a),
                    Ok(Value::Object(m)) if matches!(t.r#loop, Some(Loop::Dict(_))) => Some(
                        m.into_iter()
                            .map(|(k, v)| json!({"key": k, "value": v}))
                            .collect(),
                    ),
                    Ok(Value::Null) => Some(Vec::new()),
                    Ok(other) => Some(vec![other]),
                    Err(e) => {
                        let (status, reason) = self.explain(&e, &v.to_string(), walk);
                        out.push(Self::entry(
                            play_name,
                            host,
                            t,
                            section,
                            status,
                            Some(format!("loop items {reason}")),
                        ));
                        self.learn(t, walk);
                        return;
                    }
                }
            }
        };
        let looping = items.is_some();
        let loop_var = t
            .loop_control
            .loop_var
            .clone()
            .unwrap_or_else(|| "item".into());
        for item in items.unwrap_or_else(|| vec![Value::Null]) {
            // Without a loop there is one pass: the variables move instead of being copied.
            let mut vars = if looping {
                base.clone()
            } else {
                std::mem::take(&mut base)
            };
            if looping {
                vars.insert(loop_var.clone(), item.clone());
            }
            let ctx = Value::Object(vars);
            let Value::Object(vars) = &ctx else {
                unreachable!("built as an object")
            };
            let mut e = Self::entry(play_name, host, t, section, "run", None);
            if looping {
                e.item = Some(item.clone());
            }
            // Conditions.
            let mut decided = true;
            for w in &t.when {
                match tpl.eval_condition(w, &ctx) {
                    Ok(true) => {}
                    Ok(false) => {
                        e.status = "skipped";
                        e.reason = Some(format!("condition `{w}` is false"));
                        decided = false;
                        break;
                    }
                    Err(err) => {
                        let (status, reason) = self.explain(&err, w, walk);
                        e.status = status;
                        e.reason = Some(format!("condition `{w}` {reason}"));
                        // A run-time condition still shows what the task would send.
                        decided = status == "runtime";
                        break;
                    }
                }
            }
            if decided {
                let raw = &facts.raw;
                match tpl.render_value(raw, &ctx) {
                    Ok(Value::Object(mut args)) => {
                        if action.module == Module::GetUrl {
                            // Offline: nothing is downloaded, so the bytes and the script are
                            // known only at run time.
                            e.status = "runtime";
                            e.reason = Some("the download happens at run time".into());
                            e.summary.push(format!(
                                "download {} on the workstation{}, then write it to {}",
                                args.get("url").and_then(Value::as_str).unwrap_or("?"),
                                args.get("checksum")
                                    .and_then(Value::as_str)
                                    .map_or_else(String::new, |c| format!(" (verify {c})")),
                                args.get("dest").and_then(Value::as_str).unwrap_or("?")
                            ));
                        } else if action.module == Module::Reboot {
                            // The engine drives a reboot itself (several commands and a
                            // reconnection), so there is no one script to show.
                            let get = |k: &str, d: &str| {
                                args.get(k).map_or_else(
                                    || d.to_owned(),
                                    |v| v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                                )
                            };
                            e.summary.push(format!(
                                "reboot: run `{}`, wait up to {} s until the host is back with a \
                                 new boot id and answers `{}`",
                                get("reboot_command", "systemctl reboot || reboot"),
                                get("reboot_timeout", "600"),
                                get("test_command", "whoami")
                            ));
                        } else if action.module.controller_only() {
                            if e.status == "run" {
                                e.status = "controller";
                            }
                            e.summary.push(describe_controller(action.module, &args));
                        } else {
                            match controller_inputs(
                                tpl,
                                t,
                                action.module,
                                &play.dir,
                                &mut args,
                                vars,
                            ) {
                                Err(msg) => {
                                    let (status, reason) =
                                        runtime_attr(&msg, walk).unwrap_or(("error", msg));
                                    e.status = status;
                                    e.reason = Some(reason);
                                }
                                Ok(module) => match modules::build(
                                    module,
                                    &args,
                                    Flags {
                                        check: t.check_mode.unwrap_or(self.opts.check),
                                        diff: self.opts.diff,
                                    },
                                ) {
                                    Ok(step)
                                        if !self.keep_scripts
                                            && play.environment.is_empty()
                                            && t.environment.is_empty() =>
                                    {
                                        // Nothing to render in front of the module's script and
                                        // no script to show: composing it would only copy it.
                                        e.script = Some(String::new());
                                        e.summary = step.summary;
                                    }
                                    Ok(step) => {
                                        match compose_script(tpl, &play.environment, t, &step, vars)
                                        {
                                            Ok(script) => {
                                                // The digest is for comparing with a run: only
                                                // worth its time when the plan is printed in full.
                                                if self.keep_scripts {
                                                    e.script_sha256 = Some(script_digest(&script));
                                                }
                                                let script = if self.keep_scripts {
                                                    script
                                                } else {
                                                    String::new()
                                                };
                                                // Exact text, even when the condition waits for the run.
                                                e.script = Some(script);
                                                e.summary = step.summary;
                                            }
                                            Err(err) => {
                                                let (status, reason) = self.explain(
                                                    &err,
                                                    &Value::Object(
                                                        t.environment.clone().into_iter().collect(),
                                                    )
                                                    .to_string(),
                                                    walk,
                                                );
                                                e.status = status;
                                                e.reason = Some(format!("environment {reason}"));
                                            }
                                        }
                                    }
                                    Err(err) => {
                                        e.status = "error";
                                        e.reason = Some(err.to_string());
                                    }
                                },
                            }
                        }
                    }
                    Ok(_) => {
                        e.status = "error";
                        e.reason = Some("module arguments must be a mapping".into());
                    }
                    Err(err) => {
                        let (status, reason) = self.explain(&err, &raw.to_string(), walk);
                        e.status = status;
                        e.reason = Some(format!("arguments {reason}"));
                    }
                }
            }
            if t.no_log {
                e.script = None;
                e.summary = vec!["(hidden: no_log)".into()];
            }
            out.push(e);
        }
        self.learn(t, walk);
    }

    /// After a task: its registered name is a run-time value; `set_fact` with values known now
    /// stays known, otherwise becomes run-time.
    fn learn(&self, t: &Task, walk: &mut HostWalk) {
        if let Some(r) = &t.register {
            walk.unknown.insert(r.clone());
        }
        if let TaskKind::Action(a) = &t.kind
            && matches!(a.module, Module::SetFact | Module::IncludeVars)
        {
            for k in a.args.keys() {
                walk.unknown.insert(k.clone());
            }
        }
        let _ = self;
    }
}

/// A run-time value read as an attribute (`hostvars[host].registered`, often from a template
/// file whose text the task does not show) is a run-time value, not an error.
fn runtime_attr(message: &str, walk: &HostWalk) -> Option<(&'static str, String)> {
    let attr = message
        .split_once("has no attribute '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(name, _)| name)
        .filter(|name| walk.unknown.contains(*name))?;
    Some((
        "runtime",
        format!("known at run time: reads `{attr}` (set by an earlier task or gathered facts)"),
    ))
}

/// The names a task (and the tasks inside it) registers or sets with `set_fact`/`include_vars`.
fn set_names(t: &Task, out: &mut BTreeSet<String>) {
    if let Some(r) = &t.register {
        out.insert(r.clone());
    }
    match &t.kind {
        TaskKind::Action(a) if matches!(a.module, Module::SetFact | Module::IncludeVars) => {
            out.extend(a.args.keys().cloned());
        }
        TaskKind::Block {
            block,
            rescue,
            always,
        } => {
            for inner in block.iter().chain(rescue).chain(always) {
                set_names(inner, out);
            }
        }
        _ => {}
    }
}

/// What [`Planner::plan_task`] decides once per task.
struct TaskFacts {
    hostvars: bool,
    raw: Value,
}

const FACT_NAMES: &[&str] = &[
    "hostname",
    "fqdn",
    "distribution",
    "distribution_version",
    "distribution_release",
    "distribution_major_version",
    "os_family",
    "architecture",
    "kernel",
    "default_ipv4",
    "memtotal_mb",
    "processor_vcpus",
];

fn describe_controller(module: Module, args: &Map<String, Value>) -> String {
    let show = |v: Option<&Value>| {
        v.map_or_else(String::new, |v| {
            v.as_str().map_or_else(|| v.to_string(), str::to_owned)
        })
    };
    match module {
        Module::Debug => match args.get("var") {
            Some(v) => format!("print the value of {}", show(Some(v))),
            None => format!("print: {}", show(args.get("msg"))),
        },
        Module::SetFact => format!(
            "set {}",
            args.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        Module::Assert => format!("check: {}", show(args.get("that"))),
        Module::Fail => format!("fail: {}", show(args.get("msg"))),
        Module::Pause => match args.get("prompt") {
            Some(p) => format!("ask the operator: {}", show(Some(p))),
            None => format!("wait {} s", show(args.get("seconds"))),
        },
        Module::IncludeVars => format!(
            "load variables from {}",
            show(args.get("file").or_else(|| args.get("_raw_params")))
        ),
        other => other.name().to_owned(),
    }
}
