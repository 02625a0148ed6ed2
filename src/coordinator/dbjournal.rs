//! Database steps in the run journal, so that `kamo resume` continues a rollback after a crash.
//!
//! Design: a rollback is a run like any other (`kamo history` lists it, `kamo show` shows
//! it), whose tasks are its steps on one pseudo-host, [`HOST`]. A step's start is committed
//! before it runs and its end right after, with what later steps need in its registered result
//! (the backup's path, size and SHA-256). The run's `options` say how to run it again
//! (`"kind": "db"`), without the password, which `kamo resume` finds again the way the first
//! run did. On resume, a step recorded as done is not run again; the steps decide themselves
//! what "done" means when the journal cannot know (the transaction looks at the migration
//! history, the backup checks its checksum).

use std::path::Path;

use serde_json::Value;

use crate::error::Result;
use crate::journal::query::{self, ResultRow};
use crate::journal::{Done, Journal, NewRun, Pending, RunLog, RunState};

/// The pseudo-host the steps are recorded on.
pub const HOST: &str = "db";

/// The steps, in order: (key, title).
pub const STEPS: [(&str, &str); 7] = [
    ("plan", "read the history and plan"),
    (
        "stop-app",
        "stop the app and wait for its connections to end",
    ),
    ("backup", "back up the database (pg_dump -Fc), verify it"),
    (
        "transaction",
        "run the scripts and the history changes in one transaction",
    ),
    ("verify", "verify the migration history"),
    (
        "redeploy",
        "redeploy the app at the target version, postflight check",
    ),
    ("done", "done"),
];

/// The journal of one coordinator run (a database run, or `kamo migrate`).
pub struct Steps {
    journal: Journal,
    log: RunLog,
    pub run_id: i64,
    recorded: Vec<ResultRow>,
    /// The pseudo-host the steps are recorded on.
    host: &'static str,
    /// The known steps, in order: (key, title). Others (one per data set) come after them.
    list: &'static [(&'static str, &'static str)],
}

impl Steps {
    fn seq(&self, step: &str) -> i64 {
        let known = self.list.iter().position(|(k, _)| *k == step);
        known.and_then(|p| i64::try_from(p).ok()).unwrap_or(99) + 1
    }

    fn key(&self, step: &str) -> String {
        format!("{}:{step}", self.host)
    }

    fn title(&self, step: &str) -> String {
        self.list
            .iter()
            .find(|(k, _)| *k == step)
            .map_or_else(|| step.to_owned(), |(_, t)| (*t).to_owned())
    }

    /// Records a new database run.
    pub async fn start(state_dir: &Path, run: &NewRun) -> Result<Steps> {
        Self::start_on(state_dir, run, HOST, &STEPS).await
    }

    /// Records a new run whose steps are `list`, on the pseudo-host `host`.
    pub async fn start_on(
        state_dir: &Path,
        run: &NewRun,
        host: &'static str,
        list: &'static [(&'static str, &'static str)],
    ) -> Result<Steps> {
        let mut journal = Journal::open(state_dir).await?;
        let run_id = journal.start_run(run).await?;
        let log = journal.run_log(run_id, 1).await?;
        Ok(Steps {
            journal,
            log,
            run_id,
            recorded: Vec::new(),
            host,
            list,
        })
    }

    /// Takes database run `run_id` up again.
    pub async fn resume(state_dir: &Path, run_id: i64) -> Result<Steps> {
        Self::resume_on(state_dir, run_id, HOST, &STEPS).await
    }

    /// Takes run `run_id` (of steps `list` on `host`) up again.
    pub async fn resume_on(
        state_dir: &Path,
        run_id: i64,
        host: &'static str,
        list: &'static [(&'static str, &'static str)],
    ) -> Result<Steps> {
        let mut journal = Journal::open_existing(state_dir).await?;
        let recorded = query::results(&mut journal, run_id, Some(host)).await?;
        let attempt = journal.reopen_run(run_id).await?;
        let log = journal.run_log(run_id, attempt).await?;
        Ok(Steps {
            journal,
            log,
            run_id,
            recorded,
            host,
            list,
        })
    }

    /// The journal itself (to check the files a resumed run read).
    pub fn journal(&mut self) -> &mut Journal {
        &mut self.journal
    }

    /// The recorded result of `step` when an earlier attempt finished it.
    #[must_use]
    pub fn done_before(&self, step: &str) -> Option<&ResultRow> {
        let k = self.key(step);
        self.recorded
            .iter()
            .find(|r| r.key == k && matches!(r.state.as_str(), "ok" | "changed"))
    }

    /// What an earlier attempt registered for `step`.
    #[must_use]
    pub fn registered(&self, step: &str) -> Option<Value> {
        self.done_before(step)
            .and_then(|r| r.register.as_deref())
            .and_then(|s| serde_json::from_str(s).ok())
    }

    /// Committed before the step runs.
    pub async fn begin(&self, step: &str) -> Result<()> {
        let k = self.key(step);
        self.log
            .pending(vec![Pending {
                host: self.host.into(),
                key: k.clone(),
                seq: self.seq(step),
                // The key is the task's name, so `kamo log RUN db backup` finds it.
                task: step.into(),
                location: self.title(step),
                rerun: self.recorded.iter().any(|r| r.key == k),
            }])
            .await?;
        self.log.running(self.host, &k).await
    }

    /// Committed right after the step succeeded.
    pub async fn ok(
        &self,
        step: &str,
        changed: bool,
        msg: &str,
        register: Option<&Value>,
    ) -> Result<()> {
        self.log
            .done(Done {
                host: self.host.into(),
                key: self.key(step),
                state: if changed { "changed" } else { "ok" },
                rc: Some(0),
                msg: Some(msg.to_owned()),
                changed,
                register: register.map(Value::to_string),
                restorable: true,
                stdout: msg.to_owned(),
                ..Done::default()
            })
            .await
    }

    /// Records a step an earlier attempt did as done again (keeping what it registered), so
    /// that a later resume still finds it.
    pub async fn kept(&self, step: &str, msg: &str, register: Option<&Value>) -> Result<()> {
        self.begin(step).await?;
        self.ok(step, false, msg, register).await
    }

    /// Records a skipped step (done by an earlier attempt, or not part of this run).
    pub async fn skipped(&self, step: &str, msg: &str) -> Result<()> {
        self.begin(step).await?;
        self.log
            .done(Done {
                host: self.host.into(),
                key: self.key(step),
                state: "skipped",
                msg: Some(msg.to_owned()),
                restorable: true,
                ..Done::default()
            })
            .await
    }

    /// Records a failed step.
    pub async fn failed(&self, step: &str, msg: &str) -> Result<()> {
        self.log
            .done(Done {
                host: self.host.into(),
                key: self.key(step),
                state: "failed",
                rc: Some(1),
                msg: Some(msg.to_owned()),
                stderr: msg.to_owned(),
                restorable: true,
                ..Done::default()
            })
            .await
    }

    /// Records how the run ended.
    pub async fn finish(&mut self, state: RunState, msg: Option<&str>) -> Result<()> {
        self.log.close().await;
        self.journal.finish_run(self.run_id, state, msg).await
    }
}
