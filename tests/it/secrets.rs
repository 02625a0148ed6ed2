//! Secrets planted and searched for (issue 10): an SSH password, a sudo password, a key
//! passphrase, a database password (a secret-named inventory variable that a task writes on
//! the node and reads back) and a `no_log` task's output. A playbook run (text and JSON),
//! `kamo exec`, `history`, `show` and `log` use them; then every byte kamo printed, every file
//! of its state directory, and the command line of every process on this machine (the
//! workstation and the loopback nodes alike) sampled during the run, must not hold any of
//! them.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::kamo::{Kamo, Run, empty_home};
use crate::support::sshd::{SshCluster, TEST_PASSWORD, TEST_USER};

const DB_PASSWORD: &str = "plant-db-5529-secret";
const PASSPHRASE: &str = "plant-pass-3391";
const NO_LOG_OUTPUT: &str = "plant-nolog-8812";

const PLAYBOOK: &str = r#"
- hosts: nodes
  gather_facts: false
  become: true
  tasks:
    - name: the password into a file
      copy:
        dest: "/tmp/kamo-plant-{{ inventory_hostname }}"
        content: "{{ app_db_password }}\n"
        mode: "0600"
    - name: read it back
      shell: "cat /tmp/kamo-plant-{{ inventory_hostname }}"
      register: back
      changed_when: false
    - name: quiet
      shell: "echo plant-nolog-8812"
      no_log: true
    - name: it arrived
      assert:
        that: back.stdout == app_db_password
    - name: tidy
      file:
        path: "/tmp/kamo-plant-{{ inventory_hostname }}"
        state: absent
"#;

fn planted() -> [&'static str; 4] {
    [TEST_PASSWORD, DB_PASSWORD, PASSPHRASE, NO_LOG_OUTPUT]
}

/// Every process's command line, NUL-separated arguments joined by spaces.
fn command_lines() -> Vec<String> {
    let mut all = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return all;
    };
    for e in dir.flatten() {
        if let Ok(b) = fs::read(e.path().join("cmdline")) {
            let text: String = String::from_utf8_lossy(&b).replace('\0', " ");
            if !text.is_empty() {
                all.push(text);
            }
        }
    }
    all
}

/// Every file under `dir`, read whole (the journal is SQLite: its bytes are searched).
fn files_under(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
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

fn assert_clean(what: &str, text: &[u8]) {
    for s in planted() {
        let found = text.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(
            !found,
            "{what} holds the secret {s:?}:\n{}",
            String::from_utf8_lossy(text)
        );
    }
}

#[test]
fn planted_secrets_appear_nowhere_kamo_prints_records_or_runs() {
    let c = SshCluster::start(2);
    let key = c.encrypted_client_key(PASSPHRASE);
    let home = empty_home();
    let inv = home.path().join("hosts.ini");
    let (a, b) = (&c.hosts[0], &c.hosts[1]);
    fs::write(
        &inv,
        format!(
            "[nodes]\n\
             node01 ansible_host={} ansible_port={} ansible_password={TEST_PASSWORD}\n\
             node02 ansible_host={} ansible_port={} ansible_ssh_private_key_file={}\n\
             [all:vars]\nansible_user={TEST_USER}\nansible_become_password={TEST_PASSWORD}\n\
             app_db_password={DB_PASSWORD}\n",
            a.addr,
            a.port,
            b.addr,
            b.port,
            key.display()
        ),
    )
    .unwrap();
    let pb = home.path().join("site.yml");
    fs::write(&pb, PLAYBOOK).unwrap();
    let state = home.path().join("state");
    let kamo = || {
        Kamo::new(home.path())
            .env("KAMO_KEY_PASSPHRASE", PASSPHRASE)
            .env("KAMO_STATE_DIR", &state)
    };
    let run = |extra: &[&str]| kamo().run_playbook(&pb, &inv, &c.known_hosts).args(extra);

    // The process list is sampled while the commands run.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            // Bounded by the commands below (at most a few minutes), sampled every 10 ms.
            for _ in 0..60_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                for l in command_lines() {
                    if planted().iter().any(|s| l.contains(s)) {
                        seen.push(l);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            seen
        })
    };
    let mut outputs: Vec<(String, Run)> = Vec::new();
    let text = run(&[]).run();
    text.assert_code(0);
    outputs.push(("run".into(), text));
    let json = run(&["--output", "json", "-vv"]).run();
    json.assert_code(0);
    outputs.push(("run --output json -vv".into(), json));
    let exec = kamo()
        .args(["exec", "all", "-b", "-i"])
        .arg_path(&inv)
        .args(["--known-hosts"])
        .arg_path(&c.known_hosts)
        .args(["--output", "json", "--", "id -u"])
        .run();
    exec.assert_code(0);
    outputs.push(("exec".into(), exec));
    stop.store(true, Ordering::Relaxed);
    let seen = sampler.join().unwrap();
    assert!(
        seen.is_empty(),
        "a process had a secret on its command line: {seen:?}"
    );
    for args in [
        vec!["history"],
        vec!["history", "--output", "json"],
        vec!["show", "latest"],
        vec!["show", "latest", "--output", "json"],
        vec!["show", "1", "--output", "json"],
        vec!["log", "1", "node01"],
        vec!["log", "1", "node02"],
        vec!["log", "1", "node01", "quiet"],
        vec!["log", "1", "node01", "read it back"],
    ] {
        let r = kamo().args(args.clone()).run();
        outputs.push((args.join(" "), r));
    }
    // The commands did their work (a failing one would print nothing to search), and the
    // task that printed the password shows it hidden.
    for (what, r) in &outputs {
        assert_eq!(r.code, 0, "{what}: {r:?}");
    }
    let shown = |what: &str| &outputs.iter().find(|(w, _)| w == what).unwrap().1.stdout;
    assert!(
        shown("run --output json -vv").contains("\"stdout\":\"********\\n\""),
        "{}",
        shown("run --output json -vv")
    );
    assert!(
        shown("log 1 node01 read it back").contains("********"),
        "{}",
        shown("log 1 node01 read it back")
    );
    for (what, r) in &outputs {
        assert_clean(&format!("{what} stdout"), r.stdout.as_bytes());
        assert_clean(&format!("{what} stderr"), r.stderr.as_bytes());
    }
    let mut files = Vec::new();
    files_under(&state, &mut files);
    assert!(
        !files.is_empty(),
        "no state was written in {}",
        state.display()
    );
    for (path, bytes) in &files {
        assert_clean(path, bytes);
    }
}

const CREDENTIAL: &str = "plant-cred-6620";

/// Prints a variable the fixed rules do not call secret (`site_credential`) before and after
/// a gate that fails until the test opens it, so a run stops there and its resume goes on.
const CREDENTIAL_PLAYBOOK: &str = r#"
- hosts: nodes
  gather_facts: false
  tasks:
    - name: show before
      shell: "echo cred={{ site_credential }}"
    - name: gate
      command: "test -e {{ gate }}/go"
    - name: show after
      shell: "echo cred={{ site_credential }}"
"#;

/// One state directory's worth of kamo commands against one node.
struct CredentialRun {
    home: tempfile::TempDir,
    gate: tempfile::TempDir,
    state: std::path::PathBuf,
}

impl CredentialRun {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let home = empty_home();
        fs::write(home.path().join("site.yml"), CREDENTIAL_PLAYBOOK).unwrap();
        // The node's user (not the test's) looks for the gate file.
        let gate = tempfile::tempdir().unwrap();
        fs::set_permissions(gate.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let state = home.path().join("state");
        Self { home, gate, state }
    }

    fn open_gate(&self) {
        fs::write(self.gate.path().join("go"), "").unwrap();
    }

    fn kamo(&self) -> Kamo {
        Kamo::new(self.home.path()).env("KAMO_STATE_DIR", &self.state)
    }

    fn run(&self, c: &SshCluster, inv: &Path, extra: &[&str]) -> Kamo {
        self.kamo()
            .run_playbook(&self.home.path().join("site.yml"), inv, &c.known_hosts)
            .args([
                "-e".to_owned(),
                format!("gate={}", self.gate.path().display()),
            ])
            .args(extra)
    }

    /// What `history`, `show` and `log` print about run 1, text and JSON, all exit 0.
    fn journal_views(&self) -> Vec<(String, Run)> {
        let mut out = Vec::new();
        for args in [
            vec!["history"],
            vec!["history", "--output", "json"],
            vec!["show", "1"],
            vec!["show", "1", "--output", "json"],
            vec!["log", "1", "node01"],
            vec!["log", "1", "node01", "show before"],
            vec!["log", "1", "node01", "show after"],
        ] {
            let r = self.kamo().args(args.clone()).run();
            r.assert_code(0);
            out.push((args.join(" "), r));
        }
        out
    }

    /// Every byte of every file of the state directory (the SQLite journal, the run logs).
    fn state_bytes(&self) -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        files_under(&self.state, &mut files);
        assert!(!files.is_empty(), "nothing in {}", self.state.display());
        files
    }
}

fn holds(text: &[u8], s: &str) -> bool {
    text.windows(s.len()).any(|w| w == s.as_bytes())
}

#[test]
fn secret_vars_patterns_hide_more_names_in_output_journal_and_resume() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory(&format!("site_credential={CREDENTIAL}\n"));

    // Without a pattern the value is an ordinary one: printed and journaled as it is (what
    // makes the checks below able to fail).
    let plain = CredentialRun::new();
    plain.open_gate();
    let text = plain.run(&c, &inv, &["-v"]).run();
    text.assert_code(0);
    assert!(text.stdout.contains(CREDENTIAL), "{}", text.stdout);
    let json = plain.run(&c, &inv, &["--output", "json"]).run();
    json.assert_code(0);
    assert!(json.stdout.contains(CREDENTIAL), "{}", json.stdout);
    let views = plain.journal_views();
    let log = &views
        .iter()
        .find(|(w, _)| w == "log 1 node01 show before")
        .unwrap()
        .1;
    assert!(log.stdout.contains(CREDENTIAL), "{}", log.stdout);
    assert!(
        plain
            .state_bytes()
            .iter()
            .any(|(_, b)| holds(b, CREDENTIAL)),
        "the journal does not hold the plain value"
    );

    // With `--secret-vars` (any case): hidden in the run, in its resume (which is not given
    // the pattern again: the journal keeps it) and in everything recorded.
    let hidden = CredentialRun::new();
    let first = hidden
        .run(&c, &inv, &["-v", "--secret-vars", "*_CREDENTIAL"])
        .run();
    first.assert_code(2);
    hidden.open_gate();
    let resumed = hidden.kamo().args(["resume", "--output", "json"]).run();
    resumed.assert_code(0);
    assert!(
        first.stdout.contains("cred=********"),
        "the run:\n{}",
        first.stdout
    );
    assert!(
        resumed.stdout.contains("cred=********"),
        "the resume:\n{}",
        resumed.stdout
    );
    let mut outputs = vec![("run".to_owned(), first), ("resume".to_owned(), resumed)];
    outputs.extend(hidden.journal_views());
    let log = &outputs
        .iter()
        .find(|(w, _)| w == "log 1 node01 show after")
        .unwrap()
        .1;
    assert!(log.stdout.contains("cred=********"), "{}", log.stdout);
    for (what, r) in &outputs {
        for (stream, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            assert!(
                !text.contains(CREDENTIAL),
                "{what} {stream} shows the value:\n{text}"
            );
        }
    }
    for (path, bytes) in hidden.state_bytes() {
        assert!(!holds(&bytes, CREDENTIAL), "{path} holds the value");
    }

    // `$KAMO_SECRET_VARS` (comma-separated) does the same.
    let by_env = CredentialRun::new();
    by_env.open_gate();
    let r = by_env
        .run(&c, &inv, &["--output", "json"])
        .env("KAMO_SECRET_VARS", "nothing_*,site_cred*")
        .run();
    r.assert_code(0);
    assert!(
        r.stdout.contains("cred=********") && !r.stdout.contains(CREDENTIAL),
        "{}",
        r.stdout
    );
    for (path, bytes) in by_env.state_bytes() {
        assert!(!holds(&bytes, CREDENTIAL), "{path} holds the value");
    }

    // An empty pattern is a usage error, before any host is touched.
    for (flag, env) in [(Some(""), None), (None, Some("a,,b")), (None, Some("x,"))] {
        let mut k = by_env.run(&c, &inv, &[]);
        if let Some(f) = flag {
            k = k.args(["--secret-vars", f]);
        }
        if let Some(e) = env {
            k = k.env("KAMO_SECRET_VARS", e);
        }
        let r = k.run();
        r.assert_code(5);
        assert!(
            r.stderr.contains("empty secret-name pattern"),
            "{flag:?} {env:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn secret_vars_patterns_apply_to_plan_and_inventory_list() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory(&format!("site_credential={CREDENTIAL}\n"));
    let s = CredentialRun::new();
    let plan = |extra: &[&str]| {
        s.kamo()
            .args(["plan"])
            .arg_path(&s.home.path().join("site.yml"))
            .args(["-i"])
            .arg_path(&inv)
            .args(["-e", "gate=/x", "--scripts"])
            .args(extra)
            .run()
    };
    let clear = plan(&[]);
    clear.assert_code(0);
    assert!(clear.stdout.contains(CREDENTIAL), "{}", clear.stdout);
    for extra in [
        &["--secret-vars", "site_?redential"][..],
        &["--secret-vars", "site_?redential", "--output", "json"][..],
    ] {
        let r = plan(extra);
        r.assert_code(0);
        assert!(
            !r.stdout.contains(CREDENTIAL) && r.stdout.contains("********"),
            "{extra:?}: {}",
            r.stdout
        );
    }
    let list = |extra: &[&str]| {
        s.kamo()
            .args(["inventory", "list", "--output", "json", "-i"])
            .arg_path(&inv)
            .args(extra)
            .run()
    };
    let r = list(&[]);
    r.assert_code(0);
    assert!(r.stdout.contains(CREDENTIAL), "{}", r.stdout);
    let r = list(&["--secret-vars", "*credential"]);
    r.assert_code(0);
    assert!(!r.stdout.contains(CREDENTIAL), "{}", r.stdout);
}
