//! Planted secrets (issue 10): values a test gives kamo (passwords, a passphrase, a `no_log`
//! task's output), then searches for in every byte kamo printed, every file of its state
//! directory, the views of its journal (`history`, `show`, `log`) and the command line of every
//! process on this machine sampled while kamo ran (the workstation's and the loopback nodes':
//! the labs' and the test sshds' processes are all in this machine's `/proc`).
//!
//! Shared by the tests that plant (`secrets`, `migrate`, `lifecycle_verbs`), so that each
//! searches the same places the same way.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::kamo::{Kamo, Run};

/// Whether `text` holds `needle`, byte for byte (the journal is SQLite: its bytes are searched).
pub fn holds(text: &[u8], needle: &str) -> bool {
    text.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The values a test planted.
#[derive(Clone, Debug)]
pub struct Planted(Vec<String>);

impl Planted {
    /// Each value must be long enough that finding it by chance is impossible.
    pub fn new<S: Into<String>>(values: impl IntoIterator<Item = S>) -> Self {
        let mut p = Self(Vec::new());
        for v in values {
            p.add(v);
        }
        p
    }

    pub fn add(&mut self, value: impl Into<String>) {
        let v = value.into();
        assert!(
            v.len() >= 8,
            "a planted value too short to search for: {v:?}"
        );
        if !self.0.contains(&v) {
            self.0.push(v);
        }
    }

    pub fn values(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }

    /// `text` (what `what` names) holds none of the values.
    #[track_caller]
    pub fn assert_clean(&self, what: &str, text: &[u8]) {
        for s in &self.0 {
            assert!(
                !holds(text, s),
                "{what} holds the secret {s:?}:\n{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    /// Neither the stdout nor the stderr of any of `runs` holds a value.
    #[track_caller]
    pub fn assert_runs_clean(&self, runs: &[(String, Run)]) {
        for (what, r) in runs {
            self.assert_clean(&format!("{what} stdout"), r.stdout.as_bytes());
            self.assert_clean(&format!("{what} stderr"), r.stderr.as_bytes());
        }
    }

    /// No file under `dir` holds a value; returns how many files were searched (at least one).
    #[track_caller]
    pub fn assert_files_clean(&self, dir: &Path) -> usize {
        let mut files = Vec::new();
        files_under(dir, &mut files);
        assert!(!files.is_empty(), "no file in {}", dir.display());
        for (path, bytes) in &files {
            self.assert_clean(path, bytes);
        }
        files.len()
    }

    /// Samples every process's command line for the values until [`Watch::assert_clean`].
    pub fn watch(&self, excused: Excused) -> Watch {
        Watch::start(&self.values(), excused)
    }
}

/// Every process's arguments.
pub fn command_lines() -> Vec<Vec<String>> {
    let mut all = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return all;
    };
    for e in dir.flatten() {
        if let Ok(b) = fs::read(e.path().join("cmdline")) {
            let args: Vec<String> = String::from_utf8_lossy(&b)
                .split_terminator('\0')
                .map(str::to_owned)
                .collect();
            if !args.is_empty() {
                all.push(args);
            }
        }
    }
    all
}

/// The operator's own `kamo ... --db postgres://USER:PASSWORD@...`: a password the operator
/// chose to type into kamo's command line (kamo warns about it), not one kamo put on a
/// command line. Any other argument holding the needle is not excused.
pub fn operators_own_db_url(args: &[String], needle: &str) -> bool {
    args.first().map(String::as_str) == Some(env!("CARGO_BIN_EXE_kamo"))
        && args
            .iter()
            .enumerate()
            .all(|(i, a)| !a.contains(needle) || (i > 0 && args[i - 1] == "--db"))
}

/// Which sightings of a needle on kamo's own command line are the operator's doing (what
/// the test typed there), not kamo's: those are counted, not reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Excused {
    /// None: every sighting is reported.
    Nothing,
    /// A `--db` URL the test gave kamo ([`operators_own_db_url`]).
    DbUrls,
    /// Anything on kamo's own command line (e.g. the command of `kamo exec ... -- CMD`).
    KamoArgs,
}

impl Excused {
    fn covers(self, args: &[String], needle: &str) -> bool {
        match self {
            Self::Nothing => false,
            Self::DbUrls => operators_own_db_url(args, needle),
            Self::KamoArgs => args.first().map(String::as_str) == Some(env!("CARGO_BIN_EXE_kamo")),
        }
    }
}

/// Samples every process's command line while commands run, keeping those that hold one of
/// the needles.
pub struct Watch {
    stop: Arc<AtomicBool>,
    scans: Arc<AtomicUsize>,
    started_at: usize,
    handle: std::thread::JoinHandle<(Vec<String>, usize)>,
}

impl Watch {
    /// `excused`: which sightings on kamo's own command line are the test's doing. Returns
    /// once a first whole scan is done, so the commands that follow are watched from their
    /// start.
    pub fn start(needles: &[&str], excused: Excused) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let scans = Arc::new(AtomicUsize::new(0));
        let needles: Vec<String> = needles.iter().map(|s| (*s).to_owned()).collect();
        let (s, n, excuse) = (stop.clone(), scans.clone(), excused);
        let handle = std::thread::spawn(move || {
            let (mut seen, mut excused) = (Vec::new(), 0);
            // Bounded by the test, which stops it; at most 30 minutes in any case.
            let deadline = Instant::now() + Duration::from_secs(1800);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                for args in command_lines() {
                    for n in &needles {
                        if !args.iter().any(|a| a.contains(n.as_str())) {
                            continue;
                        }
                        if excuse.covers(&args, n) {
                            excused += 1;
                        } else {
                            seen.push(args.join(" "));
                        }
                    }
                }
                n.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
            (seen, excused)
        });
        // Bounded: 30 s on a loaded machine.
        let waited = Instant::now();
        while scans.load(Ordering::Relaxed) == 0 && waited.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let started_at = scans.load(Ordering::Relaxed);
        assert!(started_at > 0, "the process-list watcher did not start");
        Self {
            stop,
            scans,
            started_at,
            handle,
        }
    }

    /// Stops the sampling; no command line held a needle, and scans went on while the
    /// watched commands ran. Returns how many sightings were excused ([`Excused`]).
    #[track_caller]
    pub fn assert_clean(self) -> usize {
        self.assert_clean_for("")
    }

    /// [`Watch::assert_clean`], naming `what` was watched in its failures.
    #[track_caller]
    pub fn assert_clean_for(self, what: &str) -> usize {
        let during = self.scans.load(Ordering::Relaxed) - self.started_at;
        self.stop.store(true, Ordering::Relaxed);
        let (mut seen, excused) = self.handle.join().unwrap();
        assert!(
            during > 0,
            "{what}: the process list was not scanned while the commands ran"
        );
        seen.sort();
        seen.dedup();
        assert!(
            seen.is_empty(),
            "{what}: a process had a secret on its command line: {seen:?}"
        );
        excused
    }
}

/// Every file under `dir`, read whole.
pub fn files_under(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if let Ok(b) = fs::read(&p) {
            out.push((p.display().to_string(), b));
        }
    }
}

/// What the journal shows of every run it holds: `history` (text and JSON), and per run
/// `show` (text and JSON) and `log RUN HOST` for every host `show` names; each exits 0.
/// `kamo` builds an invocation with the state directory set (by `$KAMO_STATE_DIR`, or
/// `state_flag` appended as `--state-dir DIR`).
pub fn journal_views(kamo: &dyn Fn() -> Kamo, state_flag: Option<&Path>) -> Vec<(String, Run)> {
    let run = |args: Vec<String>| {
        let mut k = kamo().args(&args);
        if let Some(dir) = state_flag {
            k = k.args(["--state-dir"]).arg_path(dir);
        }
        let r = k.run();
        assert_eq!(r.code, 0, "kamo {args:?}: {r:?}");
        (args.join(" "), r)
    };
    let mut out = vec![run(vec!["history".into()])];
    let json = run(vec!["history".into(), "--output".into(), "json".into()]);
    let runs: serde_json::Value = serde_json::from_str(&json.1.stdout)
        .unwrap_or_else(|e| panic!("history --output json: {e}: {:?}", json.1));
    out.push(json);
    let ids: Vec<String> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].to_string())
        .collect();
    assert!(!ids.is_empty(), "no run in the journal");
    for id in ids {
        out.push(run(vec!["show".into(), id.clone()]));
        let json = run(vec![
            "show".into(),
            id.clone(),
            "--output".into(),
            "json".into(),
        ]);
        let shown: serde_json::Value = serde_json::from_str(&json.1.stdout)
            .unwrap_or_else(|e| panic!("show {id} --output json: {e}: {:?}", json.1));
        out.push(json);
        for host in shown["hosts"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|h| h.0)
        {
            out.push(run(vec!["log".into(), id.clone(), host.clone()]));
        }
    }
    out
}
