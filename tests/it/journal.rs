//! The run journal on real sshd hosts (issue 4): SIGKILL and SIGINT at several points of a
//! multi-task, multi-host run, then `kamo resume`, checked on the hosts themselves (every task
//! ran once; only a task in flight at a SIGKILL or a second Ctrl-C may run twice); resume
//! after an unreachable host; resume refused after an edit; concurrent runs refused; a corrupt,
//! read-only or full journal; `history`, `show` and `log`.
//!
//! Every task appends its name to `BASE/<host>.log` on the host, so the hosts' own files are
//! the record of what ran, independent of kamo's journal.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::kamo::{Kamo, Run, empty_home};
use crate::support::sshd::SshCluster;

/// Six tasks with a register read later, a `when` on it, a handler notified by the first,
/// and a task that sleeps so that signals find it in flight.
const PLAYBOOK: &str = r#"
- hosts: all
  gather_facts: false
  vars:
    log: "{{ base }}/{{ inventory_hostname }}.log"
  tasks:
    - name: t1
      shell: echo t1 >> {{ log }}
      notify: h
    - name: t2
      shell: echo t2 >> {{ log }}; echo token-{{ inventory_hostname }}
      register: r2
    - name: t3
      shell: sleep {{ nap | default(0.4) }}; echo t3 >> {{ log }}
    - name: t4
      shell: sleep 0.4; echo t4 >> {{ log }}
      when: "'token' in r2.stdout"
    - name: t5
      shell: sleep 0.4; echo t5 >> {{ log }}
    - name: t6
      shell: echo t6-{{ r2.stdout }} >> {{ log }}
  handlers:
    - name: h
      shell: echo h >> {{ log }}
"#;

const TASKS: [&str; 6] = ["t1", "t2", "t3", "t4", "t5", "t6"];

struct Setup {
    home: tempfile::TempDir,
    base: tempfile::TempDir,
    state: PathBuf,
    playbook: PathBuf,
}

fn setup(text: &str) -> Setup {
    let home = empty_home();
    let base = tempfile::tempdir().unwrap();
    fs::set_permissions(
        base.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let playbook = home.path().join("site.yml");
    fs::write(&playbook, text).unwrap();
    let state = home.path().join("state");
    Setup {
        home,
        base,
        state,
        playbook,
    }
}

impl Setup {
    fn kamo(&self) -> Kamo {
        Kamo::new(self.home.path())
    }

    fn run(&self, c: &SshCluster, inv: &Path, extra: &[&str]) -> Kamo {
        self.kamo()
            .args(["run"])
            .arg_path(&self.playbook)
            .args(["-i"])
            .arg_path(inv)
            .args(["--known-hosts"])
            .arg_path(&c.known_hosts)
            .args(["--state-dir"])
            .arg_path(&self.state)
            .args(["-e"])
            .arg_path(Path::new(&format!("base={}", self.base.path().display())))
            .args(extra)
    }

    fn resume(&self, extra: &[&str]) -> Run {
        self.kamo()
            .args(["resume", "--state-dir"])
            .arg_path(&self.state)
            .args(extra)
            .run()
    }

    fn history(&self) -> Vec<Value> {
        let r = self
            .kamo()
            .args(["history", "--output", "json", "--state-dir"])
            .arg_path(&self.state)
            .run();
        r.assert_code(0);
        serde_json::from_str::<Value>(&r.stdout)
            .unwrap_or_else(|e| panic!("history is not JSON: {e}: {r:?}"))
            .as_array()
            .cloned()
            .unwrap()
    }

    fn show(&self, run: &str) -> Value {
        let r = self
            .kamo()
            .args(["show", run, "--output", "json", "--state-dir"])
            .arg_path(&self.state)
            .run();
        r.assert_code(0);
        serde_json::from_str(&r.stdout).unwrap()
    }

    /// What ran on `host`, in order, from the host's own file.
    fn host_log(&self, host: &str) -> Vec<String> {
        fs::read_to_string(self.base.path().join(format!("{host}.log")))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Waits (bounded) until `cond` holds.
fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on the PID of a child this test started and has not reaped.
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill({}, {sig})", child.id());
}

/// A spawned kamo whose output is read from its start: a run on many hosts (or a resume
/// that shows what ran before) prints more than a pipe holds, and would block on it.
struct Spawned {
    child: Child,
    out: std::thread::JoinHandle<String>,
    err: std::thread::JoinHandle<String>,
}

fn spawned(mut child: Child) -> Spawned {
    fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    }
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    Spawned { child, out, err }
}

/// Waits (bounded) for a spawned kamo and collects what it printed.
fn finish(spawned: Spawned, timeout: Duration) -> Run {
    let Spawned {
        mut child,
        out,
        err,
    } = spawned;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kamo did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Every task of [`TASKS`] and the handler ran on `host`: each once, except that at most
/// `may_repeat` of them ran twice (tasks in flight at a hard stop). Returns the repeated ones.
fn assert_each_task_once(s: &Setup, host: &str, may_repeat: usize) -> Vec<String> {
    let lines = s.host_log(host);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for l in &lines {
        let name = l.split('-').next().unwrap().to_owned();
        *counts.entry(name).or_default() += 1;
    }
    for t in TASKS.iter().chain(&["h"]) {
        let n = counts.get(*t).copied().unwrap_or(0);
        assert!(
            (1..=2).contains(&n),
            "{host}: task {t} ran {n} times; host log: {lines:?}"
        );
    }
    let repeated: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k.clone())
        .collect();
    assert!(
        repeated.len() <= may_repeat,
        "{host}: tasks {repeated:?} ran twice (at most {may_repeat} may); log: {lines:?}"
    );
    // t6 read t2's registered result, restored from the journal when t2 was not re-run.
    assert!(
        lines.iter().any(|l| l == &format!("t6-token-{host}")),
        "{host}: t6 did not see t2's registered result: {lines:?}"
    );
    // The handler notified before a stop still runs (once, or twice when it was the task in
    // flight at a hard stop; counted in `repeated` above).
    if may_repeat == 0 {
        assert_eq!(counts.get("h"), Some(&1), "{host}: handler: {lines:?}");
    }
    repeated
}

#[test]
fn sigkill_at_several_points_then_resume_runs_every_task_once() {
    let c = SshCluster::start(3);
    let inv = c.write_inventory("");
    // Kill when node01 has finished 1, 3 and 5 tasks: before, in and after the register.
    for kill_after in [1usize, 3, 5] {
        let s = setup(PLAYBOOK);
        let child = spawned(s.run(&c, &inv, &[]).spawn());
        wait_until(
            &format!("node01 to finish {kill_after} tasks"),
            Duration::from_secs(60),
            || s.host_log("node01").len() >= kill_after,
        );
        signal(&child.child, libc::SIGKILL);
        let killed = finish(child, Duration::from_secs(10));
        assert_eq!(killed.code, -1, "SIGKILL ends kamo without an exit code");
        let h = s.history();
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h[0]["state"], "killed", "a killed run shows as such: {h:?}");

        let r = s.resume(&[]);
        r.assert_code(0);
        for host in ["node01", "node02", "node03"] {
            let repeated = assert_each_task_once(&s, host, 1);
            // A task that ran twice was in flight at the kill, and is marked as a re-run.
            let shown = s.show("latest");
            for t in repeated {
                let row = shown["hosts"][host]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["task"] == t.as_str())
                    .cloned()
                    .unwrap();
                assert_eq!(row["rerun"], true, "{host} {t}: {row}");
            }
        }
        let h = s.history();
        assert_eq!(h[0]["state"], "ok", "{h:?}");
        assert_eq!(h[0]["attempts"], 2, "{h:?}");
        assert_eq!(h[0]["hosts_ok"], 3, "{h:?}");
    }
}

#[test]
fn sigint_lets_tasks_in_flight_finish_and_resume_carries_on() {
    let c = SshCluster::start(2);
    let inv = c.write_inventory("");
    for stop_after in [1usize, 4] {
        let s = setup(PLAYBOOK);
        let child = spawned(s.run(&c, &inv, &[]).spawn());
        wait_until("tasks to run", Duration::from_secs(60), || {
            s.host_log("node01").len() >= stop_after
        });
        signal(&child.child, libc::SIGINT);
        let r = finish(child, Duration::from_secs(60));
        r.assert_code(99);
        assert!(
            r.stderr.contains("kamo resume 1"),
            "the interrupt tells how to resume: {}",
            r.stderr
        );
        assert_eq!(s.history()[0]["state"], "interrupted");
        let before = s.host_log("node01");
        assert!(before.len() < 7, "the run stopped early: {before:?}");

        s.resume(&[]).assert_code(0);
        // A graceful stop lets the task in flight finish and records it: nothing runs twice.
        for host in ["node01", "node02"] {
            assert_each_task_once(&s, host, 0);
        }
    }
}

#[test]
fn a_second_sigint_abandons_the_task_in_flight_which_runs_again_on_resume() {
    let c = SshCluster::start(2);
    let inv = c.write_inventory("");
    let s = setup(PLAYBOOK);
    // t3 sleeps 6 s: the second signal finds it in flight.
    let child = spawned(s.run(&c, &inv, &["-e", "nap=6"]).spawn());
    wait_until("t2 to finish", Duration::from_secs(60), || {
        s.host_log("node01").len() >= 2 && s.host_log("node02").len() >= 2
    });
    std::thread::sleep(Duration::from_millis(300));
    signal(&child.child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child.child, libc::SIGINT);
    let r = finish(child, Duration::from_secs(60));
    r.assert_code(99);
    // kamo did not wait for t3 (which would have written its line after 6 s).
    assert!(
        !s.host_log("node01").contains(&"t3".to_owned()),
        "kamo waited for the task in flight: {:?}",
        s.host_log("node01")
    );
    let shown = s.show("1");
    let t3 = shown["hosts"]["node01"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["task"] == "t3")
        .cloned()
        .unwrap();
    assert_eq!(t3["state"], "running", "in flight at the stop: {t3}");
    // Let the abandoned remote t3 finish writing, so the count below is final.
    wait_until(
        "the abandoned t3 to end on the host",
        Duration::from_secs(20),
        || s.host_log("node01").contains(&"t3".to_owned()),
    );
    let r = s.resume(&["-e", "nap=0"]);
    r.assert_code(0);
    assert!(r.stdout.contains("re-run"), "{}", r.stdout);
    for host in ["node01", "node02"] {
        let repeated = assert_each_task_once(&s, host, 1);
        assert!(repeated.iter().all(|t| t == "t3"), "{host}: {repeated:?}");
    }
}

#[test]
fn resume_after_a_host_was_unreachable() {
    let up = SshCluster::start(1);
    let mut flaky = SshCluster::start(1);
    let s = setup(PLAYBOOK);
    let (a, b) = (&up.hosts[0], &flaky.hosts[0]);
    let inv = s.home.path().join("hosts.ini");
    fs::write(
        &inv,
        format!(
            "[nodes]\nnode01 ansible_host={} ansible_port={} ansible_ssh_private_key_file={}\n\
             node02 ansible_host={} ansible_port={} ansible_ssh_private_key_file={}\n\
             [all:vars]\nansible_user=kamotest\n",
            a.addr,
            a.port,
            up.client_key.display(),
            b.addr,
            b.port,
            flaky.client_key.display()
        ),
    )
    .unwrap();
    let (b_addr, b_port) = (b.addr.clone(), b.port);
    let flaky_known_hosts = flaky.known_hosts.clone();
    let first = std::thread::scope(|scope| {
        // node02's sshd goes down for 10 s while the run happens.
        let reboot = scope.spawn(|| flaky.reboot(Duration::from_secs(10)));
        wait_until("node02 to go down", Duration::from_secs(10), || {
            std::net::TcpStream::connect((b_addr.as_str(), b_port)).is_err()
        });
        let r = s
            .kamo()
            .args(["run"])
            .arg_path(&s.playbook)
            .args(["-i"])
            .arg_path(&inv)
            .args(["--known-hosts"])
            .arg_path(&up.known_hosts)
            .args(["--known-hosts"])
            .arg_path(&flaky_known_hosts)
            .args(["--state-dir"])
            .arg_path(&s.state)
            .args(["--timeout", "2", "-e"])
            .arg_path(Path::new(&format!("base={}", s.base.path().display())))
            .run();
        reboot.join().unwrap();
        r
    });
    first.assert_code(3);
    assert_each_task_once(&s, "node01", 0);
    assert!(s.host_log("node02").is_empty());
    assert_eq!(s.history()[0]["state"], "unreachable");

    let r = s.resume(&[]);
    r.assert_code(0);
    assert_each_task_once(&s, "node01", 0);
    assert_each_task_once(&s, "node02", 0);
    assert!(
        r.stdout.contains("done: [node01]"),
        "node01's tasks are replayed, not run: {}",
        r.stdout
    );
}

#[test]
fn resume_is_refused_after_an_edit_and_retries_the_failed_task() {
    let c = SshCluster::start(2);
    let inv = c.write_inventory("");
    let text = r#"
- hosts: all
  gather_facts: false
  vars_files: [settings.yml]
  tasks:
    - name: t1
      shell: echo t1 >> {{ base }}/{{ inventory_hostname }}.log
    - name: gate
      shell: test -e {{ base }}/go && echo gate >> {{ base }}/{{ inventory_hostname }}.log
    - name: t3
      shell: echo t3-{{ colour }} >> {{ base }}/{{ inventory_hostname }}.log
"#;
    let s = setup(text);
    let settings = s.home.path().join("settings.yml");
    fs::write(&settings, "colour: blue\n").unwrap();
    s.run(&c, &inv, &[]).run().assert_code(2);
    assert_eq!(s.history()[0]["state"], "failed");

    // An edited vars file: refused, naming it; nothing runs.
    fs::write(&settings, "colour: red\n").unwrap();
    let r = s.resume(&[]);
    r.assert_code(1);
    assert!(
        r.stderr.contains("settings.yml changed") && r.stderr.contains("--force"),
        "{}",
        r.stderr
    );
    assert_eq!(s.host_log("node01"), ["t1"]);
    // Put back, fix the cause, resume: t1 is not re-run, the failed gate is retried.
    fs::write(&settings, "colour: blue\n").unwrap();
    fs::write(s.base.path().join("go"), "").unwrap();
    s.resume(&[]).assert_code(0);
    for host in ["node01", "node02"] {
        assert_eq!(s.host_log(host), ["t1", "gate", "t3-blue"], "{host}");
    }

    // A fresh failing run, then an edit of the playbook itself, resumed with --force.
    let s2 = setup(text);
    fs::write(s2.home.path().join("settings.yml"), "colour: blue\n").unwrap();
    s2.run(&c, &inv, &[]).run().assert_code(2);
    fs::write(&s2.playbook, format!("{text}\n# edited\n")).unwrap();
    let r = s2.resume(&[]);
    r.assert_code(1);
    assert!(r.stderr.contains("site.yml changed"), "{}", r.stderr);
    fs::write(s2.base.path().join("go"), "").unwrap();
    s2.resume(&["--force"]).assert_code(0);
    assert_eq!(s2.host_log("node01"), ["t1", "gate", "t3-blue"]);
}

#[test]
fn concurrent_runs_on_the_same_host_are_refused() {
    let c = SshCluster::start(2);
    let inv = c.write_inventory("");
    let s = setup(PLAYBOOK);
    let first = spawned(s.run(&c, &inv, &["-l", "node01", "-e", "nap=5"]).spawn());
    let pid = first.child.id();
    wait_until("the first run to start", Duration::from_secs(60), || {
        !s.host_log("node01").is_empty()
    });
    let second = s.run(&c, &inv, &[]).run();
    second.assert_code(1);
    assert!(
        second.stderr.contains(&format!(
            "host node01 is in use by run 1 (pid {pid}, user root, started "
        )),
        "{}",
        second.stderr
    );
    assert!(s.host_log("node02").is_empty(), "nothing was sent");
    assert_eq!(s.history().len(), 1, "a refused run is not listed");
    // Another host is free.
    s.run(&c, &inv, &["-l", "node02"]).run().assert_code(0);
    finish(first, Duration::from_secs(60)).assert_code(0);
    // Once the first run is over, its host is free again.
    s.run(&c, &inv, &["-l", "node01"]).run().assert_code(0);
}

#[test]
fn a_corrupt_journal_is_refused_before_any_host_is_touched() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory("");
    let s = setup(PLAYBOOK);
    fs::create_dir_all(&s.state).unwrap();
    fs::write(s.state.join("journal.sqlite3"), vec![0x5a; 16384]).unwrap();
    let r = s.run(&c, &inv, &[]).run();
    r.assert_code(1);
    assert!(
        r.stderr.contains("cannot open the run journal") && r.stderr.contains("move it aside"),
        "{}",
        r.stderr
    );
    assert!(s.host_log("node01").is_empty(), "a host was touched");
}

#[test]
fn a_read_only_state_directory_is_refused_before_any_host_is_touched() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory("");
    let s = setup(PLAYBOOK);
    // A journal that exists, on a read-only mount (root ignores file modes, so the test mounts
    // the state directory read-only in a private mount namespace).
    s.run(&c, &inv, &["--tags", "none"]).run().assert_code(0);
    let state = s.state.display().to_string();
    let script = r#"mount --bind -o ro "$0" "$0" && exec "$@""#;
    let r = Kamo::via(
        s.home.path(),
        &["unshare", "-m", "sh", "-c", script, &state],
    )
    .args(["run"])
    .arg_path(&s.playbook)
    .args(["-i"])
    .arg_path(&inv)
    .args(["--known-hosts"])
    .arg_path(&c.known_hosts)
    .args(["--state-dir"])
    .arg_path(&s.state)
    .args(["-e"])
    .arg_path(Path::new(&format!("base={}", s.base.path().display())))
    .run();
    r.assert_code(1);
    assert!(r.stderr.contains("run journal"), "{}", r.stderr);
    assert!(s.host_log("node01").is_empty(), "a host was touched");
}

#[test]
fn a_journal_that_fills_up_stops_the_run_before_the_next_task() {
    let c = SshCluster::start(2);
    let inv = c.write_inventory("");
    let mut text = String::from("- hosts: all\n  gather_facts: false\n  tasks:\n");
    for i in 1..=60 {
        text.push_str(&format!(
            "    - name: task {i}\n      shell: echo {i} >> {{{{ base }}}}/{{{{ inventory_hostname }}}}.log; \
             echo some output to keep the journal growing {i}\n"
        ));
    }
    let s = setup(&text);
    // Create the journal first, then let it grow by a bounded amount only.
    s.run(&c, &inv, &["--tags", "none"]).run().assert_code(0);
    let r = s.run(&c, &inv, &[]).max_file_size(256 * 1024).run();
    r.assert_code(1);
    assert!(
        r.stderr.contains("cannot write the run journal"),
        "{}",
        r.stderr
    );
    let ran = s.host_log("node01").len();
    assert!(
        ran > 0 && ran < 60,
        "the run stopped part way: {ran} tasks ran"
    );
    // Every task that reached a host has a record (started, at least): none ran unrecorded.
    let shown = s.show("2");
    for host in ["node01", "node02"] {
        let rows = shown["hosts"][host].as_array().unwrap();
        let recorded = rows.iter().filter(|r| r["state"] != "pending").count();
        let on_host = s.host_log(host).len();
        assert!(
            on_host <= recorded,
            "{host}: {on_host} tasks ran, {recorded} recorded as started"
        );
    }
}

#[test]
fn history_show_and_log_read_back_what_ran() {
    let c = SshCluster::start(2);
    let inv = c.write_inventory("");
    let s = setup(PLAYBOOK);
    s.run(&c, &inv, &["-e", "db_password=hunter22xyz"])
        .run()
        .assert_code(0);
    let h = s.history();
    assert_eq!(h.len(), 1);
    let run = &h[0];
    for k in [
        "id",
        "started_at",
        "duration_s",
        "command",
        "state",
        "hosts_ok",
        "hosts_failed",
    ] {
        assert!(run.get(k).is_some(), "history lacks {k}: {run}");
    }
    assert_eq!(run["state"], "ok");
    assert_eq!(run["hosts_ok"], 2);
    let command = run["command"].as_str().unwrap();
    assert!(command.starts_with("kamo run "), "{command}");
    assert!(
        !command.contains("hunter22xyz"),
        "a secret in the journal: {command}"
    );
    assert_eq!(run["extra_vars"]["db_password"], "********");

    let text = s
        .kamo()
        .args(["show", "1", "--host", "node02", "--state-dir"])
        .arg_path(&s.state)
        .run();
    text.assert_code(0);
    for t in TASKS {
        assert!(text.stdout.contains(t), "{}", text.stdout);
    }
    let log = s
        .kamo()
        .args(["log", "1", "node02", "t2", "--state-dir"])
        .arg_path(&s.state)
        .run();
    log.assert_code(0);
    assert!(log.stdout.contains("token-node02"), "{}", log.stdout);
    // The journal file itself holds no secret.
    let raw = fs::read(s.state.join("journal.sqlite3")).unwrap();
    let wal = fs::read(s.state.join("journal.sqlite3-wal")).unwrap_or_default();
    let needle = b"hunter22xyz";
    for bytes in [&raw, &wal] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the secret reached the journal file"
        );
    }
    let missing = s
        .kamo()
        .args(["show", "7", "--state-dir"])
        .arg_path(&s.state)
        .run();
    missing.assert_code(5);
}

/// A run given a secret extra var, resumed: without the secret kamo refuses and says how to
/// give it; `--extra-vars-stdin` gives it without a command line, and the run finishes with it.
#[test]
fn resume_takes_secret_extra_vars_from_stdin() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory("");
    let s = setup(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: gate\n      command: test -e {{ base }}/go\n    - name: use the secret\n      no_log: true\n      copy: {dest: \"{{ base }}/{{ inventory_hostname }}.pw\", content: \"{{ db_password }}\"}\n",
    );
    s.run(&c, &inv, &["-e", "db_password=hunter22xyz"])
        .run()
        .assert_code(2);
    fs::write(s.base.path().join("go"), "").unwrap();
    let refused = s.resume(&[]);
    refused.assert_code(5);
    assert!(
        refused.stderr.contains("db_password") && refused.stderr.contains("--extra-vars-stdin"),
        "{}",
        refused.stderr
    );
    let bad = s
        .kamo()
        .args(["resume", "--extra-vars-stdin", "--state-dir"])
        .arg_path(&s.state)
        .run_with_stdin("db_password: [unclosed hunter22xyz\n");
    bad.assert_code(5);
    assert!(
        !bad.stderr.contains("hunter22xyz"),
        "the secret in an error: {}",
        bad.stderr
    );
    let r = s
        .kamo()
        .args(["resume", "--extra-vars-stdin", "--state-dir"])
        .arg_path(&s.state)
        .run_with_stdin("{\"db_password\": \"hunter22xyz\"}\n");
    r.assert_code(0);
    let written =
        fs::read_to_string(s.base.path().join(format!("{}.pw", c.hosts[0].name))).unwrap();
    assert_eq!(written, "hunter22xyz");
}

/// [`twenty_kills_of_a_fifty_host_run_then_resume_run_every_task_once`]'s playbook: 96 tasks,
/// each appending its name to the host's log.
fn long_playbook() -> String {
    let mut s = String::from(
        "- hosts: all\n  gather_facts: false\n  vars:\n    log: \"{{ base }}/{{ inventory_hostname }}.log\"\n  tasks:\n",
    );
    for i in 1..=LONG_TASKS {
        s.push_str(&format!(
            "    - name: k{i}\n      shell: sleep 0.2; echo k{i} >> {{{{ log }}}}\n"
        ));
    }
    s
}

const LONG_TASKS: usize = 96;

#[test]
fn twenty_kills_of_a_fifty_host_run_then_resume_run_every_task_once() {
    // One run of 96 tasks on 50 hosts (enough that 20 stops never reach its end), stopped 20 times (SIGKILL and SIGINT in turn), each
    // time once every host has logged a task since the last resume (so the task that was in
    // flight on a host at a kill has finished before the next kill), then resumed; the last
    // resume finishes it. On every host each task ran once, or twice when it was in flight at
    // a SIGKILL; never more.
    let c = SshCluster::start(50);
    let inv = c.write_inventory("");
    let s = setup(&long_playbook());
    let hosts: Vec<String> = c.hosts.iter().map(|h| h.name.clone()).collect();
    let counts = |s: &Setup| -> Vec<usize> { hosts.iter().map(|h| s.host_log(h).len()).collect() };
    let mut child = spawned(s.run(&c, &inv, &["-f", "50"]).spawn());
    let mut sigkills = 0;
    for kill in 0..20 {
        let before = counts(&s);
        wait_until(
            &format!("every host to log a task before kill {kill}"),
            Duration::from_secs(120),
            || counts(&s).iter().zip(&before).all(|(now, was)| now > was),
        );
        let hard = kill % 2 == 0;
        signal(
            &child.child,
            if hard { libc::SIGKILL } else { libc::SIGINT },
        );
        let stopped = finish(child, Duration::from_secs(60));
        if hard {
            sigkills += 1;
            assert_eq!(stopped.code, -1, "kill {kill}: {stopped:?}");
        } else {
            assert_eq!(stopped.code, 99, "kill {kill}: {stopped:?}");
        }
        child = spawned(
            s.kamo()
                .args(["resume", "--state-dir"])
                .arg_path(&s.state)
                .spawn(),
        );
    }
    let last = finish(child, Duration::from_secs(300));
    last.assert_code(0);
    for h in &hosts {
        let lines = s.host_log(h);
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for l in &lines {
            *seen.entry(l.as_str()).or_default() += 1;
        }
        assert_eq!(seen.len(), LONG_TASKS, "{h}: {lines:?}");
        assert!(
            seen.values().all(|n| (1..=2).contains(n)),
            "{h}: a task ran more than twice: {lines:?}"
        );
        let repeated = lines.len() - LONG_TASKS;
        assert!(
            repeated <= sigkills,
            "{h}: {repeated} tasks ran twice, more than the {sigkills} SIGKILLs: {lines:?}"
        );
    }
    let h = s.history();
    assert_eq!(h.len(), 1, "one run, resumed: {h:?}");
    assert_eq!(h[0]["state"], "ok", "{h:?}");
    assert_eq!(h[0]["attempts"], 21, "{h:?}");
    assert_eq!(h[0]["hosts_ok"], 50, "{h:?}");
}
