//! The engine's side of the journal: naming each task run on each host, turning results into
//! journal rows, and replaying finished tasks on `kamo resume`.
//!
//! A task run is named by where the task is written (file:line:column, the file relative to
//! the playbook's directory) and how many times this host reached that task before (`#1`,
//! `#2` for handlers flushed twice or a role applied twice). Given the same playbook and the
//! restored registered results and facts, a resumed run reaches the same names in the same
//! order, so each one either replays its record or runs.
//!
//! What is replayed: tasks that ended ok, changed or skipped, and failures that were ignored
//! or rescued (replaying them keeps the run's path through `rescue`). What runs again: tasks
//! in flight at the stop (marked as re-runs), tasks that failed or found the host
//! unreachable, and tasks whose result held a secret that was not written down.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::report::{HostEvent, Status};
use crate::journal::redact::Redactor;
use crate::journal::{Done, RunLog, query::ResultRow};
use crate::playbook::model::Span;

/// Registered results above this size are not kept (the task runs again on resume).
const REGISTER_CAP: usize = 4 * 1024 * 1024;

/// A task run recorded by an earlier attempt of this run.
#[derive(Debug, Clone)]
#[allow(clippy::struct_excessive_bools)]
pub struct Recorded {
    pub state: String,
    pub attempt: i64,
    pub rc: Option<i64>,
    pub msg: Option<String>,
    pub changed: bool,
    pub ignored: bool,
    pub rescued: bool,
    pub restorable: bool,
    pub register: Option<Value>,
    pub facts: Map<String, Value>,
}

impl Recorded {
    /// Whether resume takes this record instead of running the task.
    #[must_use]
    pub fn replays(&self) -> bool {
        self.restorable
            && match self.state.as_str() {
                "ok" | "changed" | "skipped" => true,
                "failed" => self.ignored || self.rescued,
                _ => false,
            }
    }

    /// Whether the task was in flight when the run stopped.
    #[must_use]
    pub fn was_in_flight(&self) -> bool {
        self.state == "running"
    }

    /// The status to report for a replayed record.
    #[must_use]
    pub fn status(&self) -> Status {
        match self.state.as_str() {
            "changed" => Status::Changed,
            "skipped" => Status::Skipped,
            "failed" => Status::Failed,
            _ => Status::Ok,
        }
    }
}

/// Recording of one run attempt, shared by every job.
pub struct Recording {
    pub log: RunLog,
    /// Task keys name files relative to this directory (the first playbook's).
    pub base: PathBuf,
    pub replay: HashMap<(String, String), Recorded>,
    pub redactor: Redactor,
    /// The run's number, shown on replayed tasks.
    pub run_id: i64,
}

impl Recording {
    /// The name of the `n`th run of the task at `span` on one host.
    #[must_use]
    pub fn key(&self, span: &Span, n: u32) -> String {
        let file: &Path = span.file.as_ref();
        let rel = file.strip_prefix(&self.base).unwrap_or(file);
        format!("{}:{}:{}#{n}", rel.display(), span.line, span.column)
    }

    /// Loads the replay map from an earlier attempt's rows.
    #[must_use]
    pub fn replay_from(rows: Vec<ResultRow>) -> HashMap<(String, String), Recorded> {
        rows.into_iter()
            .map(|r| {
                let register = r
                    .register
                    .as_deref()
                    .and_then(|s| serde_json::from_str(s).ok());
                let facts = r
                    .facts
                    .as_deref()
                    .and_then(|s| serde_json::from_str::<Map<String, Value>>(s).ok())
                    .unwrap_or_default();
                (
                    (r.host, r.key),
                    Recorded {
                        state: r.state,
                        attempt: r.attempt,
                        rc: r.rc,
                        msg: r.msg,
                        changed: r.changed,
                        ignored: r.ignored,
                        rescued: r.rescued,
                        restorable: r.restorable,
                        register,
                        facts,
                    },
                )
            })
            .collect()
    }

    /// The journal row of a finished job.
    #[must_use]
    pub fn done(&self, host: &str, key: &str, job: &JobSummary<'_>) -> Done {
        let state = if job.unreachable {
            "unreachable"
        } else if job.failed || job.events.iter().any(|e| e.status == Status::Failed) {
            "failed"
        } else if !job.events.is_empty() && job.events.iter().all(|e| e.status == Status::Skipped) {
            "skipped"
        } else if job.changed {
            "changed"
        } else {
            "ok"
        };
        let ignored = !job.failed && job.events.iter().any(|e| e.ignored);
        let last = job.events.last();
        let join = |f: fn(&HostEvent) -> &str| {
            job.events
                .iter()
                .map(f)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let (mut stdout, mut stderr) = (join(|e| &e.stdout), join(|e| &e.stderr));
        let mut msg = last.and_then(|e| e.msg.clone());
        for text in [&mut stdout, &mut stderr] {
            if let Some(r) = self.redactor.redact(text) {
                *text = r;
            }
        }
        if let Some(m) = &msg
            && let Some(r) = self.redactor.redact(m)
        {
            msg = Some(r);
        }
        let mut restorable = true;
        let mut keep = |v: Option<String>| -> Option<String> {
            let v = v?;
            if job.no_log || v.len() > REGISTER_CAP {
                restorable = false;
                return None;
            }
            match self.redactor.redact(&v) {
                Some(r) => {
                    restorable = false;
                    Some(r)
                }
                None => Some(v),
            }
        };
        let register = keep(job.register.map(Value::to_string));
        let facts =
            keep((!job.facts.is_empty()).then(|| Value::Object(job.facts.clone()).to_string()));
        Done {
            host: host.to_owned(),
            key: key.to_owned(),
            state,
            rc: last.and_then(|e| e.rc),
            msg,
            changed: job.changed,
            ignored,
            register,
            facts,
            // A result nobody reads later needs no restoring.
            restorable: restorable || !job.needed,
            stdout,
            stderr,
        }
    }
}

/// What [`Recording::done`] needs of a job's result.
#[allow(clippy::struct_excessive_bools)]
pub struct JobSummary<'a> {
    pub events: &'a [HostEvent],
    pub register: Option<&'a Value>,
    pub facts: &'a Map<String, Value>,
    pub changed: bool,
    pub failed: bool,
    pub unreachable: bool,
    pub no_log: bool,
    /// The task registers or sets facts: later tasks may read what it produced.
    pub needed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(state: &str) -> Recorded {
        Recorded {
            state: state.into(),
            attempt: 1,
            rc: None,
            msg: None,
            changed: false,
            ignored: false,
            rescued: false,
            restorable: true,
            register: None,
            facts: Map::new(),
        }
    }

    #[test]
    fn what_replays() {
        assert!(rec("ok").replays());
        assert!(rec("changed").replays());
        assert!(rec("skipped").replays());
        assert!(!rec("failed").replays());
        assert!(!rec("unreachable").replays());
        assert!(!rec("running").replays());
        assert!(!rec("pending").replays());
        assert!(rec("running").was_in_flight());
        let mut r = rec("failed");
        r.rescued = true;
        assert!(r.replays());
        let mut r = rec("ok");
        r.restorable = false;
        assert!(!r.replays());
    }
}
