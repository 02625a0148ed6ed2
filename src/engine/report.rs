//! What the engine tells the outside world while it runs: a small event vocabulary and the
//! per-host counters of the recap.
//!
//! The engine only emits [`Event`]s to a [`Reporter`]; how they look (Ansible-like text for
//! people, JSON lines for scripts) lives in `ui`. Tests use a recording reporter.

use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;

/// How one task ended on one host (or one loop item).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Changed,
    Failed,
    Skipped,
    Unreachable,
}

/// PLAY RECAP counters of one host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HostStats {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

impl HostStats {
    /// Adds another set of counters (merging per-host engines of `strategy: free`).
    pub fn add(&mut self, o: &HostStats) {
        self.ok += o.ok;
        self.changed += o.changed;
        self.unreachable += o.unreachable;
        self.failed += o.failed;
        self.skipped += o.skipped;
        self.rescued += o.rescued;
        self.ignored += o.ignored;
    }
}

/// One host's result of one task, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct HostEvent {
    pub host: String,
    pub task: String,
    pub status: Status,
    /// The failure was ignored (`ignore_errors`).
    pub ignored: bool,
    pub rc: Option<i64>,
    pub msg: Option<String>,
    pub stdout: String,
    pub stderr: String,
    /// Loop item label, when the task loops.
    pub item: Option<Value>,
    pub duration_ms: u64,
    /// Extra result fields worth showing (debug's `msg`/`var`, a diff, the script digest).
    pub data: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone)]
pub enum Event {
    PlayStart {
        name: String,
        hosts: usize,
    },
    TaskStart {
        name: String,
        location: String,
        hosts: usize,
    },
    Host(Box<HostEvent>),
    Warning(String),
    Recap {
        hosts: IndexMap<String, HostStats>,
        duration: Duration,
    },
}

/// Receives the engine's events, in order.
pub trait Reporter: Send + Sync {
    fn event(&self, e: &Event);
}

/// Keeps every event (tests, and the run log).
#[derive(Default)]
pub struct Recorder {
    pub events: std::sync::Mutex<Vec<Event>>,
}

impl Reporter for Recorder {
    fn event(&self, e: &Event) {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(e.clone());
    }
}
