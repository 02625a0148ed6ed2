//! One task on every active host of a batch: conditions, loops, templating, the module call
//! (remote script or controller-side action), `changed_when`/`failed_when`, `until`,
//! `register`, `notify`, and the events for each host.
//!
//! Host jobs run concurrently (bounded by `--forks`) and only *read* shared state; what they
//! change (registered values, facts, new connections, failures) comes back as a
//! `JobOut` and is applied in one place afterwards, so the order of results never matters.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt;
use serde_json::{Map, Value, json};
use sha2::Digest;

use super::report::{Event, HostEvent, Status};
use super::vars::{self, HostVars};
use super::{Engine, PlayCtx};
use crate::error::Error;
use crate::playbook::model::{Action, Loop, Module, Task, TaskKind};
use crate::playbook::modules::{self, Flags, ModuleResult, sh::as_bool};
use crate::playbook::template::{TemplateError, Templater};
use crate::transport::quote::Become;
use crate::transport::ssh::SshContext;
use crate::transport::{Connection, Exit, Target, TransportError};

/// A host event with nothing in it yet.
#[must_use]
pub fn host_event(host: &str, task: &str, status: Status, duration_ms: u64) -> HostEvent {
    HostEvent {
        host: host.to_owned(),
        task: task.to_owned(),
        status,
        ignored: false,
        rc: None,
        msg: None,
        stdout: String::new(),
        stderr: String::new(),
        item: None,
        duration_ms,
        data: Map::new(),
    }
}

/// What one host's job needs, owned.
struct Job {
    host: String,
    vars: Map<String, Value>,
    conn: Option<Arc<Connection>>,
    target: Result<Target, TransportError>,
    /// `delegate_to`: the task runs on this other host's connection, with this host's vars.
    delegated: bool,
    /// The journal's name of this task run on this host.
    key: Option<String>,
    /// `kamo resume`: the earlier attempt's finished record, replayed instead of running.
    replay: Option<super::record::Recorded>,
    /// `kamo resume`: the task was in flight when the run stopped; it runs again.
    rerun: bool,
}

/// What one host's job produced, applied by the engine afterwards.
#[allow(clippy::struct_excessive_bools)]
struct JobOut {
    host: String,
    delegated: bool,
    new_conn: Option<Arc<Connection>>,
    unreachable: Option<TransportError>,
    events: Vec<HostEvent>,
    register: Option<Value>,
    set_facts: Map<String, Value>,
    changed: bool,
    failed: bool,
    /// The journal's name of this task run (for marking a rescued failure).
    key: Option<String>,
    /// The journal could not be written: the run must stop.
    journal_error: Option<String>,
    /// Not sent: a stop was requested before its turn.
    not_started: bool,
    /// Abandoned in flight (second Ctrl-C or the grace period ran out).
    aborted: bool,
    /// Taken from the journal of an earlier attempt (not counted in this attempt's recap).
    replayed: bool,
}

impl JobOut {
    fn new(host: &str, delegated: bool) -> JobOut {
        JobOut {
            host: host.to_owned(),
            delegated,
            new_conn: None,
            unreachable: None,
            events: Vec::new(),
            register: None,
            set_facts: Map::new(),
            changed: false,
            failed: false,
            key: None,
            journal_error: None,
            not_started: false,
            aborted: false,
            replayed: false,
        }
    }
}

/// Read-only context of a task's jobs.
struct Runner<'a> {
    templater: &'a Templater,
    ssh: &'a SshContext,
    task: &'a Task,
    action: &'a Action,
    name: String,
    flags: Flags,
    sudo: Option<(bool, Option<String>)>,
    play_dir: &'a Path,
    play_env: &'a crate::playbook::model::Vars,
    forks: usize,
    recording: Option<&'a super::record::Recording>,
    stop: &'a super::stop::Stop,
}

/// The task's content as text, to find which magic variables it reads.
/// Every text of a task a template may sit in (arguments, conditions, loop, name,
/// `delegate_to`, task vars, environment), to decide which magic variables it needs.
pub(crate) fn task_text(t: &Task, a: &Action) -> String {
    let mut s = Value::Object(a.args.clone()).to_string();
    for w in t
        .when
        .iter()
        .chain(t.changed_when.iter().flatten())
        .chain(t.failed_when.iter().flatten())
        .chain(t.until.iter().flatten())
        .chain(t.name.iter())
        .chain(t.delegate_to.iter())
    {
        s.push_str(w);
        s.push(' ');
    }
    if let Some(Loop::Items(v) | Loop::Dict(v)) = &t.r#loop {
        s.push_str(&v.to_string());
    }
    for (k, v) in t.vars.iter().chain(&t.environment) {
        s.push_str(k);
        s.push_str(&v.to_string());
    }
    s
}

impl Engine {
    pub(crate) async fn run_task(
        &mut self,
        ctx: &PlayCtx<'_>,
        t: &Task,
        active: &mut Vec<String>,
    ) -> Result<(), Error> {
        let TaskKind::Action(action) = &t.kind else {
            return Ok(());
        };
        let name = t.display_name();
        self.reporter.event(&Event::TaskStart {
            name: name.clone(),
            location: t.span.to_string(),
            hosts: active.len(),
        });
        // Templates read hostvars from files the task text does not show.
        let text = task_text(t, action);
        let wants_hostvars = action.module == Module::Template || text.contains("hostvars");
        let hostvars = wants_hostvars.then(|| {
            let all: Vec<(String, HostVars)> = self
                .inventory
                .hosts()
                .map(|h| {
                    (
                        h.name.clone(),
                        self.hosts
                            .get(&h.name)
                            .map(|s| s.vars.clone())
                            .unwrap_or_default(),
                    )
                })
                .collect();
            vars::hostvars_value(&self.inventory, all.iter().map(|(n, v)| (n.as_str(), v)))
        });
        // One `hostvars`, `groups` and play host list for all the task's hosts, under each
        // host's own variables.
        let mut shared = vars::wide_magic(&self.scope(ctx));
        if let Some(hv) = hostvars {
            shared.insert("hostvars".into(), hv);
        }
        let templater = self.templater.with_shared(Some(&Value::Object(shared)));
        let run_hosts: Vec<String> = if t.run_once {
            active.iter().take(1).cloned().collect()
        } else {
            active.clone()
        };
        let jobs: Vec<Job> = {
            let scope = self.scope(ctx);
            run_hosts
                .iter()
                .filter_map(|h| self.hosts.get(h).map(|st| (h, st)))
                .map(|(h, st)| {
                    let mut v = vars::for_task(&scope, h, &st.vars, t.role.as_deref(), &t.vars);
                    vars::resolve_nested(&templater, &mut v);
                    Job {
                        host: h.clone(),
                        vars: v,
                        conn: st.conn.clone(),
                        target: st.target.clone(),
                        delegated: false,
                        key: None,
                        replay: None,
                        rerun: false,
                    }
                })
                .collect()
        };
        let mut jobs = jobs;
        self.name_jobs(t, &name, &mut jobs).await?;
        if let Some(d) = &t.delegate_to {
            for job in jobs.iter_mut().filter(|j| j.replay.is_none()) {
                self.delegate(ctx, &templater, d, job).await;
            }
        }
        let sudo = match t.r#become.or(ctx.play.r#become) {
            Some(true) => Some((
                true,
                t.become_user
                    .clone()
                    .or_else(|| ctx.play.become_user.clone()),
            )),
            None if self.opts.r#become => Some((true, self.opts.become_user.clone())),
            Some(false) | None => None,
        };
        let runner = Runner {
            templater: &templater,
            ssh: &self.ssh,
            task: t,
            action,
            name: name.clone(),
            flags: Flags {
                check: t.check_mode.unwrap_or(self.opts.check),
                diff: self.opts.diff,
            },
            sudo,
            play_dir: &ctx.play.dir,
            play_env: &ctx.play.environment,
            forks: self.opts.forks,
            recording: self.recording.as_deref(),
            stop: &self.stop,
        };
        let outs: Vec<JobOut> = futures::stream::iter(jobs)
            .map(|job| runner.run_job(job))
            .buffer_unordered(runner.forks.max(1))
            .collect()
            .await;
        drop(runner);
        let mut outs = outs;
        // Report in inventory order within the task, as Ansible's linear strategy prints.
        outs.sort_by_key(|o| {
            active
                .iter()
                .position(|h| *h == o.host)
                .unwrap_or(usize::MAX)
        });
        let others: Vec<String> = if t.run_once {
            active.iter().skip(1).cloned().collect()
        } else {
            Vec::new()
        };
        let journal_error = outs.iter().find_map(|o| o.journal_error.clone());
        let stopped = outs.iter().any(|o| o.not_started || o.aborted);
        for out in outs {
            if !out.not_started && !out.aborted {
                self.apply(t, &out, &others);
            }
        }
        active.retain(|h| self.hosts.get(h).is_some_and(super::HostState::active));
        if let Some(e) = journal_error {
            return Err(Error::Other(e));
        }
        if stopped || self.stop.requested() {
            return Err(Error::Interrupted);
        }
        Ok(())
    }

    /// Names each job's task run for the journal, takes finished ones from an earlier
    /// attempt, and records the others as pending before anything is sent.
    async fn name_jobs(&mut self, t: &Task, name: &str, jobs: &mut [Job]) -> Result<(), Error> {
        let Some(rec) = self.recording.clone() else {
            return Ok(());
        };
        let span = t.span.to_string();
        let mut pending = Vec::new();
        for job in jobs.iter_mut() {
            let Some(st) = self.hosts.get_mut(&job.host) else {
                continue;
            };
            let n = st.seen.entry(span.clone()).or_insert(0);
            *n += 1;
            st.seq += 1;
            let key = rec.key(&t.span, *n);
            match rec.replay.get(&(job.host.clone(), key.clone())) {
                Some(r) if r.replays() => job.replay = Some(r.clone()),
                old => {
                    job.rerun = old.is_some_and(super::record::Recorded::was_in_flight);
                    pending.push(crate::journal::Pending {
                        host: job.host.clone(),
                        key: key.clone(),
                        seq: st.seq,
                        task: name.to_owned(),
                        location: key
                            .rsplit_once('#')
                            .map_or(key.as_str(), |(l, _)| l)
                            .to_owned(),
                        rerun: job.rerun,
                    });
                }
            }
            job.key = Some(key);
        }
        rec.log.pending(pending).await
    }

    /// Points a job at the `delegate_to` host's connection (opened once and kept).
    async fn delegate(
        &mut self,
        ctx: &PlayCtx<'_>,
        templater: &Templater,
        spec: &str,
        job: &mut Job,
    ) {
        let name = match templater.render_str(spec, &Value::Object(job.vars.clone())) {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(e) => {
                job.target = Err(TransportError::new(
                    crate::transport::Phase::Resolve,
                    format!("delegate_to: {e}"),
                ));
                job.conn = None;
                job.delegated = true;
                return;
            }
        };
        if name == job.host {
            return;
        }
        self.ensure_host(&name, ctx.play);
        job.delegated = true;
        job.target = self.hosts.get(&name).map_or_else(
            || {
                Err(TransportError::new(
                    crate::transport::Phase::Resolve,
                    format!("delegate_to: unknown host {name}"),
                ))
            },
            |h| h.target.clone(),
        );
        job.conn = self.connection(&name).await.ok();
    }

    fn apply(&mut self, t: &Task, out: &JobOut, run_once_others: &[String]) {
        for ev in &out.events {
            if !out.replayed {
                self.count(ev);
            }
            self.reporter.event(&Event::Host(Box::new(ev.clone())));
        }
        let targets: Vec<String> = std::iter::once(out.host.clone())
            .chain(run_once_others.iter().cloned())
            .collect();
        for h in &targets {
            let Some(st) = self.hosts.get_mut(h) else {
                continue;
            };
            // A delegated job ran on another host's connection: never keep it as this host's.
            if let Some(c) = &out.new_conn
                && *h == out.host
                && !out.delegated
            {
                st.conn = Some(c.clone());
            }
            if let Some(e) = &out.unreachable
                && *h == out.host
            {
                st.unreachable = !t.ignore_unreachable;
                st.conn = None;
                tracing::debug!("{h}: unreachable: {e}");
            }
            if let (Some(name), Some(v)) = (&t.register, &out.register) {
                st.vars.runtime.insert(name.clone(), v.clone());
            }
            for (k, v) in &out.set_facts {
                st.vars.runtime.insert(k.clone(), v.clone());
            }
            if out.changed {
                for n in &t.notify {
                    st.notified.insert(n.clone());
                }
            }
            if out.failed {
                st.failed = true;
                st.last_failed_key.clone_from(&out.key);
            }
        }
    }
}

impl Runner<'_> {
    /// One host's job with its journal records around it: replayed from an earlier attempt,
    /// not started after a stop, or started (committed), run, and its result committed.
    async fn run_job(&self, mut job: Job) -> JobOut {
        let key = job.key.clone();
        if let (Some(r), Some(key)) = (job.replay.take(), &key) {
            return self.replayed(&job, &r, key);
        }
        if self.stop.requested() {
            let mut out = JobOut::new(&job.host, job.delegated);
            out.not_started = true;
            return out;
        }
        let (Some(rec), Some(key)) = (self.recording, key) else {
            return self.run_stoppable(job).await;
        };
        if let Err(e) = rec.log.running(&job.host, &key).await {
            let mut out = JobOut::new(&job.host, job.delegated);
            out.journal_error = Some(e.to_string());
            return out;
        }
        let (host, rerun) = (job.host.clone(), job.rerun);
        let mut out = self.run_stoppable(job).await;
        if out.aborted {
            return out;
        }
        if rerun {
            for ev in &mut out.events {
                ev.data.insert("rerun".into(), json!(true));
            }
        }
        let done = rec.done(
            &host,
            &key,
            &super::record::JobSummary {
                events: &out.events,
                register: out.register.as_ref(),
                facts: &out.set_facts,
                changed: out.changed,
                failed: out.failed,
                unreachable: out.unreachable.is_some(),
                no_log: self.task.no_log,
                needed: self.task.register.is_some() || self.action.module == Module::SetFact,
            },
        );
        if let Err(e) = rec.log.done(done).await {
            out.journal_error = Some(e.to_string());
        }
        out.key = Some(key);
        out
    }

    /// Runs the job unless the run is aborted first (then it is abandoned in flight).
    async fn run_stoppable(&self, job: Job) -> JobOut {
        let (host, delegated) = (job.host.clone(), job.delegated);
        tokio::select! {
            out = self.execute(job) => out,
            () = self.stop.wait_abort() => {
                let mut out = JobOut::new(&host, delegated);
                out.aborted = true;
                out
            }
        }
    }

    /// A finished task run of an earlier attempt, as if it had run now.
    fn replayed(&self, job: &Job, r: &super::record::Recorded, key: &str) -> JobOut {
        let mut out = JobOut::new(&job.host, job.delegated);
        let mut ev = host_event(&job.host, &self.name, r.status(), 0);
        ev.ignored = r.ignored;
        ev.rc = r.rc;
        ev.msg.clone_from(&r.msg);
        ev.data.insert("replayed".into(), json!(r.attempt));
        out.events.push(ev);
        out.register.clone_from(&r.register);
        out.set_facts.clone_from(&r.facts);
        out.changed = r.changed;
        // A rescued failure fails again so the block takes its (replayed) rescue path.
        out.failed = r.state == "failed" && !r.ignored;
        out.replayed = true;
        out.key = Some(key.to_owned());
        out
    }

    async fn execute(&self, mut job: Job) -> JobOut {
        let mut out = JobOut::new(&job.host, job.delegated);
        let items = match self.loop_items(&job.vars) {
            Ok(items) => items,
            Err(e) => {
                let mut ev = host_event(&job.host, &self.name, Status::Failed, 0);
                ev.msg = Some(self.located(&e));
                out.failed = true;
                out.events.push(ev);
                return out;
            }
        };
        let looping = items.is_some();
        let loop_var = self
            .task
            .loop_control
            .loop_var
            .clone()
            .unwrap_or_else(|| "item".into());
        let mut results = Vec::new();
        for (idx, item) in items
            .unwrap_or_else(|| vec![Value::Null])
            .into_iter()
            .enumerate()
        {
            let mut vars = job.vars.clone();
            if looping {
                vars.insert(loop_var.clone(), item.clone());
                if let Some(iv) = &self.task.loop_control.index_var {
                    vars.insert(iv.clone(), json!(idx));
                }
            }
            for (k, v) in &out.set_facts {
                vars.insert(k.clone(), v.clone());
            }
            let started = Instant::now();
            let (result, unreachable) = self.run_item(&mut job, &vars).await;
            let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            if let Some(e) = unreachable {
                let mut ev = host_event(&job.host, &self.name, Status::Unreachable, ms);
                ev.msg = Some(e.to_string());
                out.events.push(ev);
                out.unreachable = Some(e);
                out.new_conn = None;
                return out;
            }
            out.new_conn.clone_from(&job.conn);
            let ignore = self.ignore_errors(&vars);
            let status = if result.failed {
                Status::Failed
            } else if result.skipped {
                Status::Skipped
            } else if result.changed {
                Status::Changed
            } else {
                Status::Ok
            };
            out.changed |= result.changed;
            if result.failed && !ignore {
                out.failed = true;
            }
            // set_fact and include_vars set per-host values, as documented in vars.rs.
            if matches!(self.action.module, Module::SetFact | Module::IncludeVars)
                && !result.failed
                && let Some(Value::Object(f)) = result.data.get("ansible_facts")
            {
                out.set_facts.extend(f.clone());
            }
            let mut ev = host_event(&job.host, &self.name, status, ms);
            ev.ignored = result.failed && ignore;
            if looping {
                ev.item = Some(self.label(&vars, &item));
            }
            if self.task.no_log {
                ev.msg = Some("the output has been hidden due to the fact that 'no_log: true' was specified for this result".into());
            } else {
                ev.rc = result.rc;
                ev.msg.clone_from(&result.msg);
                ev.stdout.clone_from(&result.stdout);
                ev.stderr.clone_from(&result.stderr);
                for k in ["script_sha256", "diff", "var"] {
                    if let Some(v) = result.data.get(k) {
                        ev.data.insert(k.into(), v.clone());
                    }
                }
                if self.action.module == Module::Debug {
                    ev.data.clone_from(&result.data);
                }
            }
            out.events.push(ev);
            let mut rv = result.to_value();
            if looping && let Value::Object(m) = &mut rv {
                m.insert(loop_var.clone(), item.clone());
                m.insert("item".into(), item.clone());
            }
            results.push(rv);
            if out.failed && !looping {
                break;
            }
        }
        out.register = Some(if looping {
            let any = |k: &str| {
                results
                    .iter()
                    .any(|r| r.get(k).and_then(Value::as_bool).unwrap_or(false))
            };
            json!({
                "changed": any("changed"),
                "failed": out.failed,
                "skipped": results.iter().all(|r| r.get("skipped").and_then(Value::as_bool).unwrap_or(false)),
                "msg": "All items completed",
                "results": results,
            })
        } else {
            results.pop().unwrap_or(Value::Null)
        });
        out
    }

    fn located(&self, e: &TemplateError) -> String {
        format!("{e} (in task `{}` at {})", self.name, self.task.span)
    }

    fn loop_items(&self, vars: &Map<String, Value>) -> Result<Option<Vec<Value>>, TemplateError> {
        let ctx = Value::Object(vars.clone());
        match &self.task.r#loop {
            None => Ok(None),
            Some(Loop::Items(v)) => match self.templater.render_value(v, &ctx)? {
                Value::Array(a) => Ok(Some(a)),
                Value::Null => Ok(Some(Vec::new())),
                Value::String(s) if s.is_empty() => Ok(Some(Vec::new())),
                other => Ok(Some(vec![other])),
            },
            Some(Loop::Dict(v)) => match self.templater.render_value(v, &ctx)? {
                Value::Object(m) => Ok(Some(
                    m.into_iter()
                        .map(|(k, v)| json!({"key": k, "value": v}))
                        .collect(),
                )),
                other => Err(TemplateError {
                    message: format!("with_dict needs a mapping, got {other}"),
                    undefined: None,
                    syntax: false,
                    line: None,
                }),
            },
        }
    }

    fn label(&self, vars: &Map<String, Value>, item: &Value) -> Value {
        match &self.task.loop_control.label {
            Some(l) => self
                .templater
                .render_str(l, &Value::Object(vars.clone()))
                .unwrap_or_else(|_| item.clone()),
            None => item.clone(),
        }
    }

    fn ignore_errors(&self, vars: &Map<String, Value>) -> bool {
        match &self.task.ignore_errors {
            Value::String(s) => self
                .templater
                .render_str(s, &Value::Object(vars.clone()))
                .ok()
                .and_then(|v| as_bool(&v))
                .unwrap_or(false),
            v => as_bool(v).unwrap_or(false),
        }
    }

    fn when_holds(&self, vars: &Map<String, Value>) -> Result<bool, TemplateError> {
        let ctx = Value::Object(vars.clone());
        for w in &self.task.when {
            if !self.templater.eval_condition(w, &ctx)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// One item: conditions, arguments, the module, retries. Returns the result, or the
    /// transport error that made the host unreachable.
    async fn run_item(
        &self,
        job: &mut Job,
        vars: &Map<String, Value>,
    ) -> (ModuleResult, Option<TransportError>) {
        match self.when_holds(vars) {
            Ok(true) => {}
            Ok(false) => {
                return (
                    ModuleResult {
                        skipped: true,
                        data: [(
                            "skip_reason".to_owned(),
                            json!("Conditional result was False"),
                        )]
                        .into_iter()
                        .collect(),
                        ..ModuleResult::default()
                    },
                    None,
                );
            }
            Err(e) => return (failed(self.located(&e)), None),
        }
        let retries = if self.task.until.is_some() {
            self.task.retries.unwrap_or(3)
        } else {
            0
        };
        let delay = Duration::from_secs(self.task.delay.unwrap_or(5));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut result, unreachable) = self.attempt(job, vars).await;
            if unreachable.is_some() {
                return (result, unreachable);
            }
            self.apply_conditions(&mut result, vars);
            let Some(until) = &self.task.until else {
                return (result, None);
            };
            let mut v = vars.clone();
            if let Some(r) = &self.task.register {
                v.insert(r.clone(), result.to_value());
            }
            let done = until.iter().all(|c| {
                self.templater
                    .eval_condition(c, &Value::Object(v.clone()))
                    .unwrap_or(false)
            });
            result.data.insert("attempts".into(), json!(attempt));
            if done || attempt > retries {
                if !done {
                    result.failed = true;
                    result.msg = Some(format!(
                        "retries exhausted after {attempt} attempts: until condition not met"
                    ));
                }
                return (result, None);
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// `changed_when` / `failed_when`, evaluated with the registered value in scope.
    fn apply_conditions(&self, result: &mut ModuleResult, vars: &Map<String, Value>) {
        let mut v = vars.clone();
        if let Some(r) = &self.task.register {
            v.insert(r.clone(), result.to_value());
        }
        let ctx = Value::Object(v);
        let eval = |conds: &[String]| -> Result<bool, TemplateError> {
            for c in conds {
                if !self.templater.eval_condition(c, &ctx)? {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        if let Some(c) = &self.task.changed_when {
            match eval(c) {
                Ok(b) => result.changed = b,
                Err(e) => {
                    result.failed = true;
                    result.msg = Some(format!("changed_when: {}", self.located(&e)));
                }
            }
        }
        if let Some(c) = &self.task.failed_when {
            match eval(c) {
                Ok(b) => result.failed = b,
                Err(e) => {
                    result.failed = true;
                    result.msg = Some(format!("failed_when: {}", self.located(&e)));
                }
            }
        }
    }

    async fn attempt(
        &self,
        job: &mut Job,
        vars: &Map<String, Value>,
    ) -> (ModuleResult, Option<TransportError>) {
        let ctx = Value::Object(vars.clone());
        let args = match self
            .templater
            .render_value(&Value::Object(self.action.args.clone()), &ctx)
        {
            Ok(Value::Object(m)) => m,
            Ok(_) => return (failed("module arguments must be a mapping".into()), None),
            Err(e) => return (failed(self.located(&e)), None),
        };
        match self.action.module {
            Module::Debug => (debug(&args, vars, self.templater), None),
            Module::SetFact => {
                let mut facts = args.clone();
                facts.remove("cacheable");
                (
                    ModuleResult {
                        data: [("ansible_facts".to_owned(), Value::Object(facts))]
                            .into_iter()
                            .collect(),
                        ..ModuleResult::default()
                    },
                    None,
                )
            }
            Module::Assert => (self.assert(&args, vars), None),
            Module::Fail => (
                failed(
                    args.get("msg")
                        .and_then(Value::as_str)
                        .unwrap_or("Failed as requested from task")
                        .to_owned(),
                ),
                None,
            ),
            Module::Pause => (pause(&args).await, None),
            Module::IncludeVars => (self.include_vars(&args), None),
            Module::Reboot => self.reboot(job, &args).await,
            Module::WaitForConnection => self.wait_for_connection(job, &args).await,
            _ => self.remote(job, args, vars).await,
        }
    }

    /// A fresh connection to the job's host, replacing the old one.
    async fn reconnect(&self, job: &mut Job) -> Result<Arc<Connection>, TransportError> {
        let target = job.target.clone()?;
        let conn = if target.local {
            Connection::Local
        } else {
            Connection::Ssh(crate::transport::ssh::Session::connect(&target, self.ssh).await?)
        };
        let c = Arc::new(conn);
        job.conn = Some(c.clone());
        Ok(c)
    }

    fn sudo_for(&self, job: &Job) -> Option<Become> {
        self.sudo.as_ref().map(|(_, user)| {
            let pw = job
                .target
                .as_ref()
                .ok()
                .and_then(|t| t.become_password.clone());
            let user = user
                .clone()
                .or_else(|| job.target.as_ref().ok().and_then(|t| t.become_user.clone()));
            Become::new(user, pw)
        })
    }

    /// `reboot`: issue the reboot, then wait (bounded by `reboot_timeout`, default 600 s) until
    /// the host has gone away and answers again, or reports a new boot id.
    async fn reboot(
        &self,
        job: &mut Job,
        args: &Map<String, Value>,
    ) -> (ModuleResult, Option<TransportError>) {
        let timeout = args
            .get("reboot_timeout")
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .unwrap_or(600);
        let command = args
            .get("reboot_command")
            .and_then(Value::as_str)
            .unwrap_or("systemctl reboot || reboot")
            .to_owned();
        let test = args
            .get("test_command")
            .and_then(Value::as_str)
            .unwrap_or("whoami")
            .to_owned();
        if self.flags.check {
            return (
                ModuleResult {
                    changed: true,
                    msg: Some("would reboot".into()),
                    ..ModuleResult::default()
                },
                None,
            );
        }
        let conn = match &job.conn {
            Some(c) => c.clone(),
            None => match self.reconnect(job).await {
                Ok(c) => c,
                Err(e) => return (ModuleResult::default(), Some(e)),
            },
        };
        let boot_id = "cat /proc/sys/kernel/random/boot_id 2>/dev/null";
        let before = conn
            .exec(boot_id, None, None)
            .await
            .map(|o| o.stdout)
            .unwrap_or_default();
        let sudo = self.sudo_for(job);
        // Detached, so the command's channel can close cleanly before the host goes down.
        let line = format!(
            "nohup /bin/sh -c {} >/dev/null 2>&1 &",
            modules::sh::q(&format!("sleep 1; {command}"))
        );
        let _ = conn.exec(&line, None, sudo.as_ref()).await;
        job.conn = None;
        drop(conn);
        let started = Instant::now();
        let mut went_down = false;
        while started.elapsed() < Duration::from_secs(timeout) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            match self.reconnect(job).await {
                Err(_) => went_down = true,
                Ok(c) => {
                    let now = c
                        .exec(boot_id, None, None)
                        .await
                        .map(|o| o.stdout)
                        .unwrap_or_default();
                    if went_down || (!now.is_empty() && now != before) {
                        let ok = c
                            .exec(&test, None, None)
                            .await
                            .is_ok_and(|o| o.exit == Exit::Code(0));
                        if ok {
                            return (
                                ModuleResult {
                                    changed: true,
                                    data: [
                                        ("rebooted".to_owned(), json!(true)),
                                        ("elapsed".to_owned(), json!(started.elapsed().as_secs())),
                                    ]
                                    .into_iter()
                                    .collect(),
                                    ..ModuleResult::default()
                                },
                                None,
                            );
                        }
                    }
                    job.conn = None;
                }
            }
        }
        (
            failed(format!(
                "the host did not come back within reboot_timeout={timeout}s"
            )),
            None,
        )
    }

    /// `wait_for_connection`: retry connecting (and `true`) until `timeout` (default 600 s).
    async fn wait_for_connection(
        &self,
        job: &mut Job,
        args: &Map<String, Value>,
    ) -> (ModuleResult, Option<TransportError>) {
        let num = |k: &str, d: u64| {
            args.get(k)
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                .unwrap_or(d)
        };
        let (timeout, delay, sleep) = (num("timeout", 600), num("delay", 0), num("sleep", 1));
        tokio::time::sleep(Duration::from_secs(delay)).await;
        let started = Instant::now();
        loop {
            let conn = match &job.conn {
                Some(c) => Ok(c.clone()),
                None => self.reconnect(job).await,
            };
            if let Ok(c) = conn {
                if c.exec("true", None, None)
                    .await
                    .is_ok_and(|o| o.exit == Exit::Code(0))
                {
                    return (
                        ModuleResult {
                            data: [("elapsed".to_owned(), json!(started.elapsed().as_secs()))]
                                .into_iter()
                                .collect(),
                            ..ModuleResult::default()
                        },
                        None,
                    );
                }
                job.conn = None;
            }
            if started.elapsed() >= Duration::from_secs(timeout) {
                return (
                    failed(format!(
                        "timed out waiting for the connection after {timeout}s"
                    )),
                    None,
                );
            }
            tokio::time::sleep(Duration::from_secs(sleep.max(1))).await;
        }
    }

    fn assert(&self, args: &Map<String, Value>, vars: &Map<String, Value>) -> ModuleResult {
        let that: Vec<String> = match args.get("that") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Bool(b)) => vec![b.to_string()],
            _ => return failed("assert: `that` is required".into()),
        };
        // `that` was rendered as templates already only if it held {{ }}; conditions are raw.
        let raw_that: Vec<String> = match self.action.args.get("that") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => that,
        };
        let ctx = Value::Object(vars.clone());
        for cond in &raw_that {
            match self.templater.eval_condition(cond, &ctx) {
                Ok(true) => {}
                Ok(false) => {
                    let msg = args
                        .get("fail_msg")
                        .or_else(|| args.get("msg"))
                        .and_then(Value::as_str)
                        .map_or_else(|| "Assertion failed".to_owned(), str::to_owned);
                    let mut r = failed(msg);
                    r.data.insert("assertion".into(), json!(cond));
                    r.data.insert("evaluated_to".into(), json!(false));
                    return r;
                }
                Err(e) => return failed(format!("assert `{cond}`: {}", self.located(&e))),
            }
        }
        ModuleResult {
            msg: Some(
                args.get("success_msg")
                    .and_then(Value::as_str)
                    .unwrap_or("All assertions passed")
                    .to_owned(),
            ),
            ..ModuleResult::default()
        }
    }

    fn include_vars(&self, args: &Map<String, Value>) -> ModuleResult {
        let file = args
            .get("file")
            .or_else(|| args.get("_raw_params"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let Some(file) = file else {
            return failed("include_vars: `file` is required".into());
        };
        let path = find_file(self.task, self.play_dir, "vars", &file);
        match crate::playbook::load::load_vars_file(&path) {
            Ok(v) => {
                let m: Map<String, Value> = v.into_iter().collect();
                let facts = match args.get("name").and_then(Value::as_str) {
                    Some(n) => [(n.to_owned(), Value::Object(m))].into_iter().collect(),
                    None => m,
                };
                ModuleResult {
                    data: [("ansible_facts".to_owned(), Value::Object(facts))]
                        .into_iter()
                        .collect(),
                    ..ModuleResult::default()
                }
            }
            Err(e) => failed(e.render()),
        }
    }

    /// Resolves controller-side inputs (`src:` of copy/template/script), builds the module's
    /// script and runs it on the host.
    async fn remote(
        &self,
        job: &mut Job,
        mut args: Map<String, Value>,
        vars: &Map<String, Value>,
    ) -> (ModuleResult, Option<TransportError>) {
        let module = match controller_inputs(
            self.templater,
            self.task,
            self.action.module,
            self.play_dir,
            &mut args,
            vars,
        ) {
            Ok(m) => m,
            Err(msg) => return (failed(msg), None),
        };
        let step = match modules::build(module, &args, self.flags) {
            Ok(s) => s,
            Err(e) => {
                return (
                    failed(format!(
                        "{e} (in task `{}` at {})",
                        self.name, self.task.span
                    )),
                    None,
                );
            }
        };
        let script = match compose_script(self.templater, self.play_env, self.task, &step, vars) {
            Ok(s) => s,
            Err(e) => return (failed(self.located(&e)), None),
        };
        let digest = script_digest(&script);
        let conn = if let Some(c) = &job.conn {
            c.clone()
        } else {
            let target = match &job.target {
                Ok(t) => t.clone(),
                Err(e) => return (ModuleResult::default(), Some(e.clone())),
            };
            let conn = if target.local {
                Connection::Local
            } else {
                match crate::transport::ssh::Session::connect(&target, self.ssh).await {
                    Ok(s) => Connection::Ssh(s),
                    Err(e) => return (ModuleResult::default(), Some(e)),
                }
            };
            let c = Arc::new(conn);
            job.conn = Some(c.clone());
            c
        };
        let sudo = self.sudo_for(job);
        // The task's `timeout:` wins over `--task-timeout`; either ends the command on the host.
        let limit = self
            .task
            .timeout
            .map(Duration::from_secs)
            .or(self.ssh.task_timeout);
        let apart = if modules::own_tools_only(module, &args) {
            crate::transport::shell::Apart::Subshell
        } else {
            crate::transport::shell::Apart::Session
        };
        // A plain `copy`, `template` or directory without become is done over SFTP when the
        // host allows (see `put`); the script runs otherwise, and whenever that path hands it
        // back.
        let over_sftp = match (&*conn, sudo.is_none()) {
            (Connection::Ssh(s), true) => match modules::sftp_step(module, &args, self.flags) {
                Some(step) => s.sftp().await.map(|sftp| (s, sftp, step)),
                None => None,
            },
            _ => None,
        };
        let mut done = None;
        if let Some((s, sftp, step)) = over_sftp {
            let cutoff = crate::transport::Cutoff::after(limit);
            tokio::select! {
                r = super::put::run(&sftp, &step, s) => {
                    if r.is_some() {
                        tracing::debug!(host = %job.host, path = step.path(), "done over SFTP");
                    }
                    done = r.map(|json| Ok(Some(crate::transport::Output {
                        stdout: format!("\n{} {json}\n", modules::MARKER).into_bytes(),
                        stderr: Vec::new(),
                        exit: Exit::Code(0),
                    })));
                }
                () = cutoff.reached() => done = Some(Ok(None)),
            }
        }
        let output = match done {
            Some(o) => o,
            None => {
                conn.run_script(
                    script.into_bytes(),
                    sudo.as_ref(),
                    crate::transport::Cutoff::after(limit),
                    apart,
                )
                .await
            }
        };
        let output = match output {
            Ok(Some(o)) => o,
            Ok(None) => {
                let secs = limit.map_or(0, |d| d.as_secs());
                let why = if self.task.timeout.is_some() {
                    "`timeout:`"
                } else {
                    "--task-timeout"
                };
                return (
                    failed(format!(
                        "the task timed out after {secs}s ({why}); its command was ended on the host"
                    )),
                    None,
                );
            }
            Err(e) => return (ModuleResult::default(), Some(e)),
        };
        let code = match output.exit {
            Exit::Code(c) => Some(i64::from(c)),
            _ => None,
        };
        let mut result = modules::interpret(module, &output.stdout, &output.stderr, code);
        if let Exit::Signal(s) = &output.exit {
            result.failed = true;
            result.msg = Some(format!("the module script was killed by signal {s}"));
        }
        result.data.insert("script_sha256".into(), json!(digest));
        if module == Module::Fetch
            && !result.failed
            && !result.skipped
            && let Err(msg) = fetch_to_controller(&job.host, &args, &mut result, self.flags.check)
        {
            result.failed = true;
            result.msg = Some(msg);
        }
        (result, None)
    }
}

/// A controller file for `src:`: the role's `<kind>/` dir, then the play's `<kind>/`, then
/// the play's dir; absolute paths as they are.
pub(crate) fn find_file(task: &Task, play_dir: &Path, kind: &str, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.to_owned();
    }
    let mut candidates = Vec::new();
    if let Some(r) = &task.role {
        candidates.push(r.path.join(kind).join(name));
        candidates.push(r.path.join(name));
    }
    candidates.push(play_dir.join(kind).join(name));
    candidates.push(play_dir.join(name));
    candidates
        .iter()
        .find(|c| c.exists())
        .cloned()
        .unwrap_or_else(|| candidates.swap_remove(candidates.len() - 2))
}

/// Controller-side inputs: reads `src:` of copy/template/script on the workstation and
/// passes the bytes to the module; returns the module that really runs.
pub(crate) fn controller_inputs(
    templater: &Templater,
    task: &Task,
    action_module: Module,
    play_dir: &Path,
    args: &mut Map<String, Value>,
    vars: &Map<String, Value>,
) -> Result<Module, String> {
    let mut module = action_module;
    match module {
        Module::Template => {
            let Some(src) = args
                .remove("src")
                .and_then(|v| v.as_str().map(str::to_owned))
            else {
                return Err("template: `src` is required".into());
            };
            let path = find_file(task, play_dir, "templates", &src);
            let text = match crate::input::read_text(&path) {
                Ok(t) => t,
                Err(e) => {
                    let e = e.into_io("template");
                    return Err(format!("template: cannot read {}: {e}", path.display()));
                }
            };
            match templater.render_file(&src, &text, &Value::Object(vars.clone())) {
                Ok(rendered) => {
                    args.insert(
                        "_content_b64".into(),
                        json!(base64::engine::general_purpose::STANDARD.encode(rendered)),
                    );
                }
                Err(e) => {
                    return Err(format!("template {}: {e}", path.display()));
                }
            }
        }
        Module::Copy
            if args.contains_key("src")
                && !as_bool(args.get("remote_src").unwrap_or(&Value::Bool(false)))
                    .unwrap_or(false) =>
        {
            let src = args
                .remove("src")
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let path = find_file(task, play_dir, "files", &src);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    args.insert(
                        "_content_b64".into(),
                        json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
                    );
                    if let Some(n) = path.file_name() {
                        args.insert("_src_name".into(), json!(n.to_string_lossy()));
                    }
                }
                Err(e) => {
                    return Err(format!("copy: cannot read {}: {e}", path.display()));
                }
            }
        }
        Module::GetUrl => {
            get_url(args)?;
            module = Module::Copy;
        }
        Module::Script => {
            let raw = args
                .remove("_raw_params")
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let mut words = shlex::split(&raw).unwrap_or_default().into_iter();
            let Some(file) = words.next() else {
                return Err("script: no script given".into());
            };
            let path = find_file(task, play_dir, "files", &file);
            let body = match std::fs::read_to_string(&path) {
                Ok(b) => b,
                Err(e) => {
                    return Err(format!("script: cannot read {}: {e}", path.display()));
                }
            };
            let script_args: Vec<String> = words.map(|w| modules::sh::q(&w)).collect();
            args.insert(
                "_raw_params".into(),
                json!(format!(
                    "/bin/sh -c {} {} {}",
                    modules::sh::q(&body),
                    modules::sh::q(&file),
                    script_args.join(" ")
                )),
            );
            module = Module::Shell;
        }
        _ => {}
    }
    Ok(module)
}

/// The exact script sent for a task on a host: its `environment:` exports, then the module's
/// script. `plan` and `run` both call this, so what the plan shows is what the run sends.
pub(crate) fn compose_script(
    templater: &Templater,
    play_env: &crate::playbook::model::Vars,
    task: &Task,
    step: &modules::RemoteStep,
    vars: &Map<String, Value>,
) -> Result<String, TemplateError> {
    let mut script = String::new();
    // The play's environment first, the task's on top (it wins for the same name).
    for (k, v) in play_env.iter().chain(&task.environment) {
        let value = match templater.render_value(v, &Value::Object(vars.clone()))? {
            Value::String(s) => s,
            other => other.to_string(),
        };
        script.push_str(&format!("{}={}; export {}\n", k, modules::sh::q(&value), k));
    }
    script.push_str(&step.script);
    Ok(script)
}

/// `fetch`: writes the bytes the host sent to `dest` on the workstation: `dest/HOST/PATH`, or
/// `dest` itself with `flat: yes` (`dest/BASENAME` when `dest` ends with `/`). Changed only
/// when the local copy differs.
fn fetch_to_controller(
    host: &str,
    args: &Map<String, Value>,
    result: &mut ModuleResult,
    check: bool,
) -> Result<(), String> {
    let Some(content) = result
        .data
        .remove("content")
        .and_then(|v| v.as_str().map(str::to_owned))
    else {
        return Ok(()); // fail_on_missing: false and the file was missing
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(content.as_bytes())
        .map_err(|e| format!("fetch: the host sent invalid base64: {e}"))?;
    let src = args
        .get("src")
        .and_then(Value::as_str)
        .ok_or("fetch: `src` is required")?;
    let dest = args
        .get("dest")
        .and_then(Value::as_str)
        .ok_or("fetch: `dest` is required")?;
    let flat = args.get("flat").and_then(as_bool).unwrap_or(false);
    let path = if flat {
        if dest.ends_with('/') {
            PathBuf::from(dest).join(Path::new(src).file_name().unwrap_or_default())
        } else {
            PathBuf::from(dest)
        }
    } else {
        PathBuf::from(dest)
            .join(host)
            .join(src.trim_start_matches('/'))
    };
    let same = std::fs::read(&path).is_ok_and(|old| old == bytes);
    result.changed = !same;
    result
        .data
        .insert("dest".into(), json!(path.display().to_string()));
    if same || check {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("fetch: cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(&path, &bytes)
        .map_err(|e| format!("fetch: cannot write {}: {e}", path.display()))
}

/// `get_url`: the workstation downloads the URL (through its proxy settings, with TLS
/// verification), checks `checksum` (`sha256:HEX` or `sha1:HEX`) and hands the bytes to `copy`.
/// Each URL is downloaded once per run, however many hosts need it.
fn get_url(args: &mut Map<String, Value>) -> Result<(), String> {
    use std::sync::{LazyLock, Mutex};
    static CACHE: LazyLock<Mutex<std::collections::HashMap<String, Arc<Vec<u8>>>>> =
        LazyLock::new(Default::default);
    let url = args
        .remove("url")
        .and_then(|v| v.as_str().map(str::to_owned))
        .ok_or("get_url: `url` is required")?;
    let checksum = args
        .remove("checksum")
        .and_then(|v| v.as_str().map(str::to_owned));
    let timeout = args
        .remove("timeout")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(10);
    for unsupported in [
        "url_username",
        "url_password",
        "client_cert",
        "client_key",
        "headers",
        "use_proxy",
        "http_agent",
        "tmp_dest",
    ] {
        if args.contains_key(unsupported) {
            return Err(format!("get_url: `{unsupported}` is not supported"));
        }
    }
    if args.remove("validate_certs").and_then(|v| as_bool(&v)) == Some(false) {
        return Err("get_url: validate_certs: false is not supported; kamo always verifies TLS certificates".into());
    }
    args.remove("force");
    let cached = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&url)
        .cloned();
    let bytes = if let Some(b) = cached {
        b
    } else {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(timeout)))
            .build()
            .new_agent();
        let mut resp = agent
            .get(&url)
            .call()
            .map_err(|e| format!("get_url: cannot download {url}: {e}"))?;
        let body = resp
            .body_mut()
            .with_config()
            .limit(4 * 1024 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| format!("get_url: reading {url}: {e}"))?;
        let b = Arc::new(body);
        CACHE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(url.clone(), b.clone());
        b
    };
    if let Some(c) = checksum {
        let (alg, want) = c
            .split_once(':')
            .ok_or_else(|| format!("get_url: checksum {c:?} must look like sha256:HEX"))?;
        let got = match alg {
            "sha256" => hex(&sha2::Sha256::digest(bytes.as_slice())),
            "sha1" => {
                use sha1::Digest as _;
                hex(&sha1::Sha1::digest(bytes.as_slice()))
            }
            other => {
                return Err(format!(
                    "get_url: checksum algorithm {other} is not supported (use sha256 or sha1)"
                ));
            }
        };
        if !got.eq_ignore_ascii_case(want.trim()) {
            return Err(format!(
                "get_url: checksum mismatch for {url}: expected {alg}:{want}, got {alg}:{got}; nothing was written"
            ));
        }
    }
    if args
        .get("dest")
        .and_then(Value::as_str)
        .is_some_and(|d| d.ends_with('/'))
    {
        let name = url
            .rsplit('/')
            .next()
            .unwrap_or("download")
            .split('?')
            .next()
            .unwrap_or("download");
        args.insert("_src_name".into(), json!(name));
    }
    args.insert(
        "_content_b64".into(),
        json!(base64::engine::general_purpose::STANDARD.encode(bytes.as_slice())),
    );
    Ok(())
}

/// SHA-256 of a script, hex.
#[must_use]
pub fn script_digest(script: &str) -> String {
    hex(&sha2::Sha256::digest(script.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    modules::fsutil::hex(bytes)
}

fn failed(msg: String) -> ModuleResult {
    ModuleResult {
        failed: true,
        msg: Some(msg),
        ..ModuleResult::default()
    }
}

fn debug(
    args: &Map<String, Value>,
    vars: &Map<String, Value>,
    templater: &Templater,
) -> ModuleResult {
    let mut data = Map::new();
    if let Some(var) = args.get("var").and_then(Value::as_str) {
        let v = templater
            .render_str(&format!("{{{{ {var} }}}}"), &Value::Object(vars.clone()))
            .unwrap_or_else(|_| json!("VARIABLE IS NOT DEFINED!"));
        data.insert(var.to_owned(), v);
    } else {
        data.insert(
            "msg".into(),
            args.get("msg")
                .cloned()
                .unwrap_or_else(|| json!("Hello world!")),
        );
    }
    ModuleResult {
        data,
        ..ModuleResult::default()
    }
}

/// `pause`: `seconds`/`minutes` wait (bounded to one hour); `prompt` asks on the terminal.
async fn pause(args: &Map<String, Value>) -> ModuleResult {
    let secs = args
        .get("seconds")
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .or_else(|| {
            args.get("minutes")
                .and_then(|v| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                })
                .map(|m| m * 60)
        });
    if let Some(s) = secs {
        tokio::time::sleep(Duration::from_secs(s.min(3600))).await;
        return ModuleResult::default();
    }
    let prompt = args
        .get("prompt")
        .and_then(Value::as_str)
        .unwrap_or("Press enter to continue");
    let prompt = prompt.to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{BufRead, IsTerminal, Write};
        if !std::io::stdin().is_terminal() {
            return Err("pause with a prompt needs a terminal; run kamo interactively".to_owned());
        }
        let mut err = std::io::stderr();
        let _ = write!(err, "{prompt}: ");
        let _ = err.flush();
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        Ok(line.trim_end().to_owned())
    })
    .await;
    match answer {
        Ok(Ok(a)) => ModuleResult {
            data: [("user_input".to_owned(), json!(a))].into_iter().collect(),
            ..ModuleResult::default()
        },
        Ok(Err(e)) => failed(e),
        Err(e) => failed(e.to_string()),
    }
}
