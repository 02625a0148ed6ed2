//! Runs a loaded playbook on the inventory's hosts: plays in order, hosts in batches
//! (`serial`), tasks in lockstep across a batch (`strategy: linear`), handlers at the end of
//! each section, and the PLAY RECAP.
//!
//! Shape, after k0sctl's phase manager: the engine owns per-host state (connection, facts,
//! run-time variables, failure), emits [`report::Event`]s, and asks `playbook::modules` for
//! the exact script of each task on each host. One SSH connection per host for the whole
//! run, opened on the first task that needs it. Concurrency is bounded by `--forks` with a
//! buffered stream, not a thread per host.

pub mod facts;
pub mod plan;
pub mod put;
pub mod record;
pub mod report;
pub mod stop;
pub mod task;
pub mod vars;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::error::{Error, ExitCode};
use crate::inventory::Inventory;
use crate::playbook::model::{Meta, Play, Playbook, Serial, Task, TaskKind};
use crate::playbook::template::Templater;
use crate::transport::ssh::SshContext;
use crate::transport::{Connection, Target, TransportError};
use report::{Event, HostStats, Reporter};
use vars::{HostVars, PlayScope};

/// How long the connections may take to close at the end of a run.
const CLOSE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What the command line decided for the whole run (its flags mirror ansible-playbook's).
#[derive(Debug, Clone, Default)]
#[allow(clippy::struct_excessive_bools)]
pub struct RunOptions {
    pub check: bool,
    pub diff: bool,
    pub forks: usize,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub start_at_task: Option<String>,
    pub extra_vars: Map<String, Value>,
    /// `--become` on the command line.
    pub r#become: bool,
    pub become_user: Option<String>,
    pub limit: Vec<String>,
    /// `--step`: confirm each task on the terminal.
    pub step: bool,
}

/// Per-host state for the whole run.
pub struct HostState {
    pub name: String,
    pub target: Result<Target, TransportError>,
    pub conn: Option<Arc<Connection>>,
    pub vars: HostVars,
    /// Failed in this play: takes no further tasks.
    pub failed: bool,
    pub unreachable: bool,
    /// `meta: end_host`.
    pub ended: bool,
    /// Handlers (names or `listen` topics) notified and not yet run.
    pub notified: BTreeSet<String>,
    /// How many times this host reached each task (by location): names task runs in the journal.
    pub seen: HashMap<String, u32>,
    /// Task runs so far on this host (their order in the journal).
    pub seq: i64,
    /// The journal name of the task run that last failed here (marked when a rescue handles it).
    pub last_failed_key: Option<String>,
}

impl HostState {
    fn active(&self) -> bool {
        !self.failed && !self.unreachable && !self.ended
    }
}

pub struct Engine {
    pub inventory: Arc<Inventory>,
    pub templater: Arc<Templater>,
    pub opts: RunOptions,
    pub reporter: Arc<dyn Reporter>,
    pub ssh: Arc<SshContext>,
    pub hosts: IndexMap<String, HostState>,
    pub stats: IndexMap<String, HostStats>,
    pub groups: Value,
    /// `--start-at-task` not reached yet.
    pub waiting_for_start: Option<String>,
    /// Connection settings of every inventory host the plays select, resolved before the run.
    pub targets: HashMap<String, Result<Target, TransportError>>,
    /// The run journal (every `kamo run`); `None` in unit tests.
    pub recording: Option<Arc<record::Recording>>,
    /// Ctrl-C: stop starting tasks, then abandon the ones in flight.
    pub stop: stop::Stop,
}

/// How the run as a whole ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Interrupted,
}

impl Engine {
    /// Runs every play; returns the exit code (2 failed, 3 unreachable, 0 ok).
    pub async fn run(&mut self, playbook: &Playbook) -> Result<ExitCode, Error> {
        let started = Instant::now();
        for play in &playbook.plays {
            // As Ansible's playbook executor: a play ended by any_errors_fatal or
            // max_fail_percentage, or one whose hosts all failed, ends the playbook.
            if self.run_play(play, playbook).await? {
                break;
            }
        }
        let stats = self.stats.clone();
        self.reporter.event(&Event::Recap {
            hosts: stats.clone(),
            duration: started.elapsed(),
        });
        let failed = stats.values().filter(|s| s.failed > 0).count();
        let unreachable = stats.values().filter(|s| s.unreachable > 0).count();
        Ok(ExitCode::for_hosts(failed, unreachable))
    }

    /// Ends every host's connection politely, all at once and within two seconds: idle
    /// task shells get an EOF and exit, then the connection is disconnected. Dropped at exit
    /// instead, each would end as a reset, with its idle shells left to notice their input
    /// gone.
    pub async fn close_connections(mut self) {
        let conns: Vec<Connection> = self
            .hosts
            .values_mut()
            .filter_map(|h| h.conn.take())
            .filter_map(|c| Arc::try_unwrap(c).ok())
            .collect();
        let closes = futures::future::join_all(conns.into_iter().map(Connection::close));
        if tokio::time::timeout(CLOSE_LIMIT, closes).await.is_err() {
            tracing::debug!("closing the connections took too long; the rest are dropped");
        }
    }

    fn select_hosts(&self, play: &Play) -> Result<Vec<String>, Error> {
        let pattern = match self
            .templater
            .render_str(&play.hosts, &Value::Object(self.opts.extra_vars.clone()))
        {
            Ok(Value::String(s)) => s,
            Ok(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            Ok(other) => other.to_string(),
            Err(e) => {
                return Err(Error::Other(format!("play `hosts` at {}: {e}", play.span)));
            }
        };
        if pattern == "localhost" && self.inventory.host("localhost").is_none() {
            return Ok(vec!["localhost".to_owned()]);
        }
        self.inventory.select_limited(&pattern, &self.opts.limit)
    }

    /// Runs one play; `Ok(true)` when the playbook must stop after it.
    async fn run_play(&mut self, play: &Play, playbook: &Playbook) -> Result<bool, Error> {
        let hosts = self.select_hosts(play)?;
        self.reporter.event(&Event::PlayStart {
            name: play.name.clone().unwrap_or_else(|| play.hosts.clone()),
            hosts: hosts.len(),
        });
        if hosts.is_empty() {
            self.reporter.event(&Event::Warning(format!(
                "play at {}: no hosts matched",
                play.span
            )));
            return Ok(false);
        }
        for h in &hosts {
            self.ensure_host(h, play);
            let st = self.hosts.get_mut(h).expect("just ensured");
            st.ended = false;
            self.stats.entry(h.clone()).or_default();
        }
        // As in Ansible, a host that failed (unrescued) or was unreachable in an earlier play
        // takes no part in the later ones: a play that records "deployed" after a failed
        // deploy play must not run there.
        let hosts: Vec<String> = hosts
            .into_iter()
            .filter(|h| {
                self.hosts
                    .get(h)
                    .is_some_and(|s| !s.failed && !s.unreachable)
            })
            .collect();
        if hosts.is_empty() {
            self.reporter.event(&Event::Warning(format!(
                "play at {}: no hosts left (every host failed or was unreachable earlier)",
                play.span
            )));
            return Ok(true);
        }
        let play_vars = self.play_vars(play, playbook)?;
        for batch in batches(&hosts, &play.serial) {
            let scope_hosts = batch.clone();
            let ctx = PlayCtx {
                play,
                play_vars: &play_vars,
                play_hosts: scope_hosts,
                playbook_dir: playbook
                    .path
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            };
            let mut active: Vec<String> = batch.clone();
            if play.gather_facts {
                self.gather_facts(&ctx, &mut active).await;
            }
            let mut aborted = false;
            for section in &play.sections {
                if aborted {
                    break;
                }
                aborted = if play.strategy == crate::playbook::model::Strategy::Free {
                    self.run_section_free(&ctx, section, &mut active).await?
                } else {
                    self.run_list(&ctx, section, &mut active).await?
                };
                self.flush_handlers(&ctx, &mut active).await?;
            }
            if aborted {
                // any_errors_fatal / max_fail_percentage: the play's hosts all count as failed
                // and no later play runs, as in Ansible.
                for h in &hosts {
                    if let Some(st) = self.hosts.get_mut(h) {
                        st.failed = true;
                    }
                }
                return Ok(true);
            }
        }
        let left = hosts.iter().any(|h| {
            self.hosts
                .get(h)
                .is_some_and(|s| !s.failed && !s.unreachable)
        });
        Ok(!left)
    }

    fn ensure_host(&mut self, name: &str, play: &Play) {
        if self.hosts.contains_key(name) {
            return;
        }
        let local = play.connection.as_deref() == Some("local")
            || (name == "localhost" && self.inventory.host(name).is_none());
        let target = match self.targets.get(name) {
            Some(Ok(t)) if local => Ok(Target {
                local: true,
                ..t.clone()
            }),
            Some(t) => t.clone(),
            None => Ok(local_target(name)),
        };
        self.hosts.insert(
            name.to_owned(),
            HostState {
                name: name.to_owned(),
                target,
                conn: None,
                vars: HostVars {
                    inventory: Some(Arc::new(self.inventory.vars_for(name))),
                    ..HostVars::default()
                },
                failed: false,
                unreachable: false,
                ended: false,
                notified: BTreeSet::new(),
                seen: HashMap::new(),
                seq: 0,
                last_failed_key: None,
            },
        );
    }

    /// Play vars and vars_files, templated against extra vars only (as Ansible resolves them
    /// lazily, values that need host data are rendered again per task).
    fn play_vars(&self, play: &Play, playbook: &Playbook) -> Result<Map<String, Value>, Error> {
        let mut m: Map<String, Value> = play.vars.clone().into_iter().collect();
        let base = playbook
            .path
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default();
        for f in &play.vars_files {
            let rendered = match self
                .templater
                .render_str(f, &Value::Object(self.opts.extra_vars.clone()))
            {
                Ok(Value::String(s)) => s,
                _ => f.clone(),
            };
            let path = base.join(rendered);
            let vars = crate::playbook::load::load_vars_file(&path)?;
            m.extend(vars);
        }
        Ok(m)
    }

    pub(crate) fn scope<'a>(&'a self, ctx: &'a PlayCtx<'a>) -> PlayScope<'a> {
        PlayScope {
            inventory: &self.inventory,
            role_defaults: &ctx.play.role_defaults,
            play_vars: ctx.play_vars,
            extra_vars: &self.opts.extra_vars,
            play_hosts: &ctx.play_hosts,
            groups: &self.groups,
            check_mode: self.opts.check,
            diff_mode: self.opts.diff,
            playbook_dir: &ctx.playbook_dir,
        }
    }

    async fn gather_facts(&mut self, ctx: &PlayCtx<'_>, active: &mut Vec<String>) {
        self.reporter.event(&Event::TaskStart {
            name: "Gathering Facts".into(),
            location: ctx.play.span.to_string(),
            hosts: active.len(),
        });
        let jobs: Vec<(String, Result<Arc<Connection>, TransportError>)> = {
            let mut v = Vec::new();
            for h in active.iter() {
                v.push((h.clone(), self.connection(h).await));
            }
            v
        };
        let results: Vec<(
            String,
            Result<crate::transport::Output, TransportError>,
            u64,
        )> = futures::stream::iter(jobs)
            .map(|(h, conn)| async move {
                let t = Instant::now();
                let out = match conn {
                    Ok(c) => {
                        c.exec("/bin/sh -s", Some(facts::SCRIPT.as_bytes().to_vec()), None)
                            .await
                    }
                    Err(e) => Err(e),
                };
                (
                    h,
                    out,
                    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX),
                )
            })
            .buffer_unordered(self.opts.forks.max(1))
            .collect()
            .await;
        for (h, out, ms) in results {
            let ev = match out {
                Ok(o) => {
                    let f = facts::parse(&String::from_utf8_lossy(&o.stdout));
                    if let Some(st) = self.hosts.get_mut(&h) {
                        st.vars.facts = f;
                    }
                    task::host_event(&h, "Gathering Facts", report::Status::Ok, ms)
                }
                Err(e) => self.mark_unreachable(&h, "Gathering Facts", &e, ms),
            };
            self.count(&ev);
            self.reporter.event(&Event::Host(Box::new(ev)));
        }
        active.retain(|h| self.hosts.get(h).is_some_and(HostState::active));
    }

    /// The host's connection, opened on first use and kept for the run.
    pub(crate) async fn connection(
        &mut self,
        host: &str,
    ) -> Result<Arc<Connection>, TransportError> {
        let Some(st) = self.hosts.get_mut(host) else {
            return Err(TransportError::new(
                crate::transport::Phase::Resolve,
                format!("unknown host {host}"),
            ));
        };
        if let Some(c) = &st.conn {
            return Ok(c.clone());
        }
        let target = st.target.clone()?;
        let conn = if target.local {
            Connection::Local
        } else {
            Connection::Ssh(crate::transport::ssh::Session::connect(&target, &self.ssh).await?)
        };
        let conn = Arc::new(conn);
        if let Some(st) = self.hosts.get_mut(host) {
            st.conn = Some(conn.clone());
        }
        Ok(conn)
    }

    pub(crate) fn mark_unreachable(
        &mut self,
        host: &str,
        task: &str,
        e: &TransportError,
        ms: u64,
    ) -> report::HostEvent {
        if let Some(st) = self.hosts.get_mut(host) {
            st.unreachable = true;
            st.conn = None;
        }
        let mut ev = task::host_event(host, task, report::Status::Unreachable, ms);
        ev.msg = Some(e.to_string());
        ev
    }

    pub(crate) fn count(&mut self, ev: &report::HostEvent) {
        let s = self.stats.entry(ev.host.clone()).or_default();
        match ev.status {
            report::Status::Ok => s.ok += 1,
            report::Status::Changed => {
                s.ok += 1;
                s.changed += 1;
            }
            report::Status::Failed if ev.ignored => {
                s.ignored += 1;
                s.ok += 1;
            }
            report::Status::Failed => s.failed += 1,
            report::Status::Skipped => s.skipped += 1,
            report::Status::Unreachable => s.unreachable += 1,
        }
    }

    /// Runs tasks in order on `active` hosts; hosts that fail leave `active`. Returns true when
    /// the play must stop (`any_errors_fatal`, `max_fail_percentage`, `meta: end_play`).
    pub(crate) async fn run_list(
        &mut self,
        ctx: &PlayCtx<'_>,
        tasks: &[Task],
        active: &mut Vec<String>,
    ) -> Result<bool, Error> {
        for t in tasks {
            if active.is_empty() {
                return Ok(false);
            }
            if self.stop.requested() {
                return Err(Error::Interrupted);
            }
            if let Some(start) = &self.waiting_for_start {
                if t.display_name() != *start && !matches!(t.kind, TaskKind::Block { .. }) {
                    continue;
                }
                if t.display_name() == *start {
                    self.waiting_for_start = None;
                }
            }
            match &t.kind {
                TaskKind::Block {
                    block,
                    rescue,
                    always,
                } => {
                    if !self.tags_match(t) && !has_tagged_child(t, &self.opts) {
                        continue;
                    }
                    if Box::pin(self.run_block(ctx, t, block, rescue, always, active)).await? {
                        return Ok(true);
                    }
                }
                TaskKind::Meta(m) => match m {
                    Meta::FlushHandlers => Box::pin(self.flush_handlers(ctx, active)).await?,
                    Meta::EndPlay => return Ok(true),
                    Meta::EndHost => {
                        for h in active.iter() {
                            if let Some(st) = self.hosts.get_mut(h) {
                                st.ended = true;
                            }
                        }
                        active.clear();
                    }
                    Meta::ClearHostErrors | Meta::Noop => {}
                },
                TaskKind::IncludeTasks { file, dir } => {
                    if !self.tags_match(t) {
                        continue;
                    }
                    let path = dir.join(file);
                    let included = crate::playbook::load::load_tasks(&path, t.role.clone())?;
                    if Box::pin(self.run_list(ctx, &included, active)).await? {
                        return Ok(true);
                    }
                }
                TaskKind::Action(_) => {
                    if !self.tags_match(t) {
                        continue;
                    }
                    if self.opts.step && !step_confirm(&t.display_name(), &mut self.opts.step)? {
                        continue;
                    }
                    let before = active.len();
                    self.run_task(ctx, t, active).await?;
                    let failed_now = before - active.len();
                    if failed_now > 0 && Self::must_stop(ctx, failed_now, before) {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    /// `strategy: free`: every host goes through the section at its own pace. Each host gets
    /// an engine of its own (its state moved in, shared parts shared), they run concurrently,
    /// and their states and counters are merged back; handlers then flush together.
    async fn run_section_free(
        &mut self,
        ctx: &PlayCtx<'_>,
        section: &[Task],
        active: &mut Vec<String>,
    ) -> Result<bool, Error> {
        let order: Vec<String> = self.hosts.keys().cloned().collect();
        let mut subs = Vec::new();
        for h in active.iter() {
            let Some(st) = self.hosts.shift_remove(h) else {
                continue;
            };
            let mut hosts = IndexMap::new();
            hosts.insert(h.clone(), st);
            subs.push(Engine {
                inventory: self.inventory.clone(),
                templater: self.templater.clone(),
                opts: self.opts.clone(),
                reporter: self.reporter.clone(),
                ssh: self.ssh.clone(),
                hosts,
                stats: IndexMap::new(),
                groups: self.groups.clone(),
                waiting_for_start: self.waiting_for_start.clone(),
                targets: self.targets.clone(),
                recording: self.recording.clone(),
                stop: self.stop.clone(),
            });
        }
        let done = futures::future::join_all(subs.into_iter().map(|mut e| async move {
            let mut mine: Vec<String> = e.hosts.keys().cloned().collect();
            let r = e.run_list(ctx, section, &mut mine).await;
            (e, r)
        }))
        .await;
        let mut stop = false;
        let mut first_err = None;
        for (e, r) in done {
            match r {
                Ok(s) => stop |= s,
                Err(err) => first_err = first_err.or(Some(err)),
            }
            for (name, st) in e.hosts {
                self.hosts.insert(name, st);
            }
            for (name, s) in e.stats {
                self.stats.entry(name).or_default().add(&s);
            }
        }
        self.hosts
            .sort_by_cached_key(|k, _| order.iter().position(|o| o == k).unwrap_or(usize::MAX));
        if let Some(err) = first_err {
            return Err(err);
        }
        active.retain(|h| self.hosts.get(h).is_some_and(HostState::active));
        Ok(stop)
    }

    fn must_stop(ctx: &PlayCtx<'_>, failed: usize, of: usize) -> bool {
        if ctx.play.any_errors_fatal {
            return true;
        }
        if let Some(pct) = ctx.play.max_fail_percentage {
            #[allow(clippy::cast_precision_loss)]
            let ratio = failed as f64 * 100.0 / of.max(1) as f64;
            return ratio > pct;
        }
        false
    }

    async fn run_block(
        &mut self,
        ctx: &PlayCtx<'_>,
        _t: &Task,
        block: &[Task],
        rescue: &[Task],
        always: &[Task],
        active: &mut Vec<String>,
    ) -> Result<bool, Error> {
        let entered = active.clone();
        let mut inner = active.clone();
        let mut stop = self.run_list(ctx, block, &mut inner).await?;
        let failed_in_block: Vec<String> = entered
            .iter()
            .filter(|h| !inner.contains(h))
            .filter(|h| {
                self.hosts
                    .get(*h)
                    .is_some_and(|s| s.failed && !s.unreachable)
            })
            .cloned()
            .collect();
        if !rescue.is_empty() && !failed_in_block.is_empty() && !stop {
            for h in &failed_in_block {
                let Some(st) = self.hosts.get_mut(h) else {
                    continue;
                };
                st.failed = false;
                // Resume replays a rescued failure (and so the rescue) instead of retrying it.
                if let (Some(rec), Some(key)) = (&self.recording, st.last_failed_key.take()) {
                    rec.log.rescued(h, &key).await?;
                }
            }
            let mut rescuers = failed_in_block.clone();
            stop = self.run_list(ctx, rescue, &mut rescuers).await?;
            for h in &rescuers {
                self.stats.entry(h.clone()).or_default().rescued += 1;
                // A rescued failure does not count as a failure in the recap.
                let s = self.stats.entry(h.clone()).or_default();
                s.failed = s.failed.saturating_sub(1);
            }
            inner.extend(rescuers);
        }
        // `always` runs on every host that entered, failed or not (not on unreachable ones).
        let mut always_hosts: Vec<String> = entered
            .iter()
            .filter(|h| {
                self.hosts
                    .get(*h)
                    .is_some_and(|s| !s.unreachable && !s.ended)
            })
            .cloned()
            .collect();
        if !always.is_empty() {
            let was_failed: Vec<String> = always_hosts
                .iter()
                .filter(|h| self.hosts.get(*h).is_some_and(|s| s.failed))
                .cloned()
                .collect();
            for h in &was_failed {
                if let Some(st) = self.hosts.get_mut(h) {
                    st.failed = false;
                }
            }
            let stop2 = self.run_list(ctx, always, &mut always_hosts).await?;
            for h in &was_failed {
                if let Some(st) = self.hosts.get_mut(h) {
                    st.failed = true;
                }
            }
            stop = stop || stop2;
        }
        active.retain(|h| self.hosts.get(h).is_some_and(HostState::active));
        Ok(stop)
    }

    /// Runs the notified handlers, in the order they are defined, on the hosts that notified.
    pub(crate) async fn flush_handlers(
        &mut self,
        ctx: &PlayCtx<'_>,
        active: &mut Vec<String>,
    ) -> Result<(), Error> {
        for handler in &ctx.play.handlers {
            let name = handler.name.clone().unwrap_or_default();
            let mut hosts: Vec<String> = active
                .iter()
                .filter(|h| {
                    self.hosts.get(*h).is_some_and(|s| {
                        s.notified.contains(&name)
                            || handler.listen.iter().any(|l| s.notified.contains(l))
                    })
                })
                .cloned()
                .collect();
            if hosts.is_empty() {
                continue;
            }
            for h in &hosts {
                if let Some(s) = self.hosts.get_mut(h) {
                    s.notified.remove(&name);
                    for l in &handler.listen {
                        s.notified.remove(l);
                    }
                }
            }
            self.run_task(ctx, handler, &mut hosts).await?;
        }
        active.retain(|h| self.hosts.get(h).is_some_and(HostState::active));
        Ok(())
    }

    /// `--tags`/`--skip-tags` as Ansible: `always` runs unless skipped, `never` only when asked.
    fn tags_match(&self, t: &Task) -> bool {
        tags_match(&t.tags, &self.opts)
    }
}

/// `--step`: asks `Perform task: NAME (N)o/(y)es/(c)ontinue:`; `c` stops asking.
fn step_confirm(name: &str, step: &mut bool) -> Result<bool, Error> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage("--step needs a terminal to ask on".into()));
    }
    let mut err = std::io::stderr();
    let _ = write!(err, "Perform task: {name} (N)o/(y)es/(c)ontinue: ");
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Other(format!("cannot read the answer: {e}")))?;
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(true),
        "c" | "continue" => {
            *step = false;
            Ok(true)
        }
        _ => Ok(false),
    }
}

fn has_tagged_child(t: &Task, opts: &RunOptions) -> bool {
    match &t.kind {
        TaskKind::Block {
            block,
            rescue,
            always,
        } => block
            .iter()
            .chain(rescue)
            .chain(always)
            .any(|c| tags_match(&c.tags, opts) || has_tagged_child(c, opts)),
        _ => false,
    }
}

pub(crate) fn tags_match(tags: &[String], opts: &RunOptions) -> bool {
    let has = |t: &str| tags.iter().any(|x| x == t);
    if opts.skip_tags.iter().any(|s| {
        has(s) || (s == "tagged" && !tags.is_empty()) || (s == "untagged" && tags.is_empty())
    }) {
        return false;
    }
    if has("never") && !opts.tags.iter().any(|t| has(t)) {
        return false;
    }
    if opts.tags.is_empty() || opts.tags.iter().any(|t| t == "all") {
        return !has("never");
    }
    has("always")
        || opts.tags.iter().any(|t| {
            has(t) || (t == "tagged" && !tags.is_empty()) || (t == "untagged" && tags.is_empty())
        })
}

/// The implicit `localhost` (not in the inventory): the workstation itself.
#[must_use]
pub fn local_target(name: &str) -> Target {
    Target {
        name: name.to_owned(),
        address: "127.0.0.1".into(),
        port: 22,
        user: std::env::var("USER").unwrap_or_else(|_| "root".into()),
        identity_files: Vec::new(),
        password: None,
        become_user: None,
        become_password: None,
        jump: None,
        local: true,
        known_hosts_files: Vec::new(),
    }
}

/// The play's context for one batch.
pub struct PlayCtx<'a> {
    pub play: &'a Play,
    pub play_vars: &'a Map<String, Value>,
    pub play_hosts: Vec<String>,
    pub playbook_dir: String,
}

/// Splits hosts into `serial` batches; the last size repeats.
#[must_use]
pub fn batches(hosts: &[String], serial: &[Serial]) -> Vec<Vec<String>> {
    if serial.is_empty() || hosts.is_empty() {
        return vec![hosts.to_vec()];
    }
    let mut out = Vec::new();
    let mut i = 0;
    let mut k = 0;
    while i < hosts.len() {
        let spec = serial[k.min(serial.len() - 1)];
        let size = match spec {
            Serial::Count(n) => n.max(1),
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            Serial::Percent(p) => ((hosts.len() as f64 * p / 100.0).floor() as usize).max(1),
        };
        let end = (i + size).min(hosts.len());
        out.push(hosts[i..end].to_vec());
        i = end;
        k += 1;
    }
    out
}

/// Built once per run for every host: used by `run` and `plan`.
#[must_use]
pub fn empty_stats(hosts: &[String]) -> HashMap<String, HostStats> {
    hosts
        .iter()
        .map(|h| (h.clone(), HostStats::default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("h{i}")).collect()
    }

    #[test]
    fn serial_batches() {
        let b = batches(&names(5), &[Serial::Count(2)]);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        let b = batches(&names(10), &[Serial::Count(1), Serial::Percent(50.0)]);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [1, 5, 4]);
        assert_eq!(batches(&names(3), &[]).len(), 1);
    }

    #[test]
    fn tag_selection() {
        let o = |tags: &[&str], skip: &[&str]| RunOptions {
            tags: tags.iter().map(|s| (*s).to_owned()).collect(),
            skip_tags: skip.iter().map(|s| (*s).to_owned()).collect(),
            ..RunOptions::default()
        };
        let t = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(tags_match(&t(&[]), &o(&[], &[])));
        assert!(!tags_match(&t(&["never"]), &o(&[], &[])));
        assert!(tags_match(&t(&["never", "x"]), &o(&["x"], &[])));
        assert!(tags_match(&t(&["always"]), &o(&["x"], &[])));
        assert!(!tags_match(&t(&["always"]), &o(&["x"], &["always"])));
        assert!(!tags_match(&t(&["y"]), &o(&["x"], &[])));
        assert!(!tags_match(&t(&["x"]), &o(&[], &["x"])));
        assert!(tags_match(&t(&[]), &o(&["untagged"], &[])));
    }
}
