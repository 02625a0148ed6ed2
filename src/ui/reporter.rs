//! The playbook [`Reporter`]s: Ansible-like text for people, JSON lines for scripts.
//!
//! Text: `PLAY [..]`, `TASK [..]`, one line per host result (`ok:`, `changed:`, `fatal:`,
//! `skipping:`), failures with rc and stderr as they happen, and the PLAY RECAP table. When
//! stderr is a terminal a live progress line (indicatif) shows the current task, hosts done
//! out of total, the counts so far and the elapsed time; otherwise output stays line-oriented.
//! JSON: one event object per line; the recap is always the last line.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use super::{print_json, print_text, sanitize};
use crate::engine::report::{Event, HostEvent, HostStats, Reporter, Status};

/// Text output for people.
pub struct TextReporter {
    verbose: u8,
    bar: Option<ProgressBar>,
    state: Mutex<Progress>,
}

#[derive(Default)]
struct Progress {
    task: String,
    total: u64,
    done: u64,
    ok: u64,
    changed: u64,
    failed: u64,
}

impl TextReporter {
    #[must_use]
    pub fn new(verbose: u8) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(200));
            b
        });
        Self {
            verbose,
            bar,
            state: Mutex::new(Progress::default()),
        }
    }

    fn out(&self, text: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| print_text(text)),
            None => print_text(text),
        }
    }

    fn refresh(&self, p: &Progress) {
        if let Some(b) = &self.bar {
            b.set_message(format!(
                "TASK [{}] {}/{} hosts, ok={} changed={} failed={}",
                p.task, p.done, p.total, p.ok, p.changed, p.failed
            ));
        }
    }
}

fn banner(kind: &str, name: &str) -> String {
    let head = format!("{kind} [{name}] ");
    let stars = 79usize.saturating_sub(head.chars().count()).max(3);
    format!("\n{head}{}", "*".repeat(stars))
}

fn item_suffix(e: &HostEvent) -> String {
    match &e.item {
        Some(Value::String(s)) => format!(" => (item={})", sanitize(s.as_bytes())),
        Some(v) => format!(" => (item={v})"),
        None => String::new(),
    }
}

impl Reporter for TextReporter {
    fn event(&self, e: &Event) {
        let mut p = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match e {
            Event::PlayStart { name, .. } => self.out(&banner("PLAY", name)),
            Event::TaskStart {
                name,
                location,
                hosts,
            } => {
                let mut text = banner("TASK", name);
                if self.verbose > 0 {
                    text.push_str(&format!("\ntask path: {location}"));
                }
                self.out(&text);
                *p = Progress {
                    task: name.clone(),
                    total: *hosts as u64,
                    ..Progress::default()
                };
            }
            Event::Host(h) => {
                p.done += 1;
                match h.status {
                    Status::Ok | Status::Skipped => p.ok += 1,
                    Status::Changed => p.changed += 1,
                    Status::Failed | Status::Unreachable => p.failed += 1,
                }
                self.out(&host_line(h, self.verbose));
            }
            Event::Warning(w) => self.out(&format!("[WARNING]: {w}")),
            Event::Recap { hosts, duration } => {
                if let Some(b) = &self.bar {
                    b.finish_and_clear();
                }
                let mut text = banner("PLAY RECAP", "").replace(" [] ", " ");
                let width = hosts.keys().map(String::len).max().unwrap_or(0);
                for (name, s) in hosts {
                    text.push_str(&format!("\n{name:<width$} : {}", recap_counts(s)));
                }
                text.push_str(&format!("\n\nfinished in {:.2}s", duration.as_secs_f64()));
                self.out(&text);
                return;
            }
        }
        self.refresh(&p);
    }
}

fn recap_counts(s: &HostStats) -> String {
    format!(
        "ok={:<4} changed={:<4} unreachable={:<4} failed={:<4} skipped={:<4} rescued={:<4} ignored={}",
        s.ok, s.changed, s.unreachable, s.failed, s.skipped, s.rescued, s.ignored
    )
}

fn host_line(h: &HostEvent, verbose: u8) -> String {
    // `kamo resume`: a task that finished before the stop is not run again.
    if let Some(attempt) = h.data.get("replayed") {
        let what = match h.status {
            Status::Changed => "changed",
            Status::Skipped => "skipped",
            Status::Failed if h.ignored => "failed, ignored",
            Status::Failed => "failed, rescued",
            _ => "ok",
        };
        return format!(
            "done: [{}] ({what} in attempt {attempt}, not run again)",
            h.host
        );
    }
    let mut item = item_suffix(h);
    if h.data.contains_key("rerun") {
        item.push_str(" (re-run: it was in flight when the run stopped)");
    }
    let mut line = match h.status {
        Status::Ok => format!("ok: [{}]{item}", h.host),
        Status::Changed => format!("changed: [{}]{item}", h.host),
        Status::Skipped => format!("skipping: [{}]{item}", h.host),
        Status::Unreachable => format!(
            "fatal: [{}]: UNREACHABLE! => {}",
            h.host,
            h.msg.as_deref().unwrap_or("unreachable")
        ),
        Status::Failed => {
            let mut l = format!("fatal: [{}]: FAILED!{item} =>", h.host);
            if let Some(rc) = h.rc {
                l.push_str(&format!(" rc={rc}"));
            }
            if let Some(m) = &h.msg {
                l.push_str(&format!(" msg={}", sanitize(m.as_bytes())));
            }
            if !h.stderr.is_empty() {
                l.push_str(&format!(
                    "\n  stderr: {}",
                    sanitize(h.stderr.trim_end().as_bytes()).replace('\n', "\n          ")
                ));
            }
            if !h.stdout.is_empty() && verbose == 0 {
                l.push_str(&format!(
                    "\n  stdout: {}",
                    sanitize(h.stdout.trim_end().as_bytes()).replace('\n', "\n          ")
                ));
            }
            if h.ignored {
                l.push_str("\n...ignoring");
            }
            l
        }
    };
    if let Some(diff) = h.data.get("diff") {
        line.push_str(&unified_diff(diff));
    }
    if !h.data.is_empty() && h.status != Status::Failed {
        let shown: serde_json::Map<String, Value> = h
            .data
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "script_sha256" | "diff" | "rerun"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !shown.is_empty() {
            line.push_str(&format!(
                " => {}",
                serde_json::to_string_pretty(&Value::Object(shown)).unwrap_or_default()
            ));
        }
    }
    if verbose > 0 && h.status != Status::Unreachable {
        if !h.stdout.is_empty() {
            line.push_str(&format!(
                "\n  stdout: {}",
                sanitize(h.stdout.trim_end().as_bytes()).replace('\n', "\n          ")
            ));
        }
        if !h.stderr.is_empty() && h.status != Status::Failed {
            line.push_str(&format!(
                "\n  stderr: {}",
                sanitize(h.stderr.trim_end().as_bytes()).replace('\n', "\n          ")
            ));
        }
    }
    line
}

/// A module's `diff` (`before`/`after` texts) as a unified diff, like `ansible --diff`.
fn unified_diff(diff: &Value) -> String {
    let text = |k: &str| {
        diff.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (before, after) = (text("before"), text("after"));
    let header = |k: &str, d: &str| diff.get(k).and_then(Value::as_str).unwrap_or(d).to_owned();
    let rendered = similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("before: {}", header("before_header", "before")),
            &format!("after: {}", header("after_header", "after")),
        )
        .to_string();
    if rendered.is_empty() {
        String::new()
    } else {
        format!("\n{}", sanitize(rendered.trim_end().as_bytes()))
    }
}

/// One JSON event per line; the recap is the last line.
pub struct JsonReporter {
    started: Instant,
}

impl Default for JsonReporter {
    fn default() -> Self {
        Self {
            started: Instant::now(),
        }
    }
}

impl Reporter for JsonReporter {
    fn event(&self, e: &Event) {
        let v = match e {
            Event::PlayStart { name, hosts } => {
                json!({"event": "play_start", "play": name, "hosts": hosts})
            }
            Event::TaskStart {
                name,
                location,
                hosts,
            } => {
                json!({"event": "task_start", "task": name, "location": location, "hosts": hosts})
            }
            Event::Host(h) => {
                let mut v = serde_json::to_value(h.as_ref()).unwrap_or_else(|_| json!({}));
                v["event"] = json!("host_result");
                v["changed"] = json!(h.status == Status::Changed);
                v["failed"] = json!(h.status == Status::Failed && !h.ignored);
                v
            }
            Event::Warning(w) => json!({"event": "warning", "msg": w}),
            Event::Recap { hosts, duration } => json!({
                "event": "recap",
                "hosts": hosts,
                "duration_ms": u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
                "wall_ms": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            }),
        };
        print_json(&v);
    }
}
