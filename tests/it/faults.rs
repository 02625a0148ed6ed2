//! Faults in the middle of a playbook run (issue 10), on `kamo lab` nodes: while every node
//! is inside the same task, one node hangs (its sshd stopped: the TCP connection stays open
//! and silent), one goes down, one's disk fills and one reboots. Each is reported on that
//! host (unreachable or failed, with the reason), the healthy node finishes, the journal
//! records each host's state, and once the faults are cleared `kamo resume` finishes the run:
//! every task ran once per host, the one in flight at most twice.
//!
//! Every task appends a line to `/srv/faults/<task>` on the node, so the nodes' own files
//! are the record of what ran.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::kamo::Run;
use crate::support::lab::Lab;

const PLAYBOOK: &str = r#"
- hosts: all
  gather_facts: false
  become: true
  tasks:
    - name: one
      shell: mkdir -p /srv/faults && echo x >> /srv/faults/one
    - name: two
      shell: echo x >> /srv/faults/two && touch /srv/faults/in-two && sleep 6
    - name: three
      shell: echo x >> /srv/faults/three
"#;

/// `--keepalive` of the run: a hung node must be noticed within it.
const KEEPALIVE: u64 = 8;

fn lines(lab: &Lab, host: &str, file: &str) -> usize {
    let r = lab.exec(
        host,
        &["-b"],
        &format!("cat /srv/faults/{file} 2>/dev/null || true"),
    );
    r.host(host)["stdout"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .count()
}

fn json(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

/// The journal's last state of `task` on `host` in `show`'s JSON.
fn task_state(show: &Value, host: &str, task: &str) -> String {
    show["hosts"][host]
        .as_array()
        .unwrap_or_else(|| panic!("no {host} in {show}"))
        .iter()
        .rfind(|r| r["task"] == task)
        .map(|r| r["state"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[test]
fn hang_down_disk_full_and_reboot_mid_run_are_reported_per_host_and_resume_finishes() {
    let lab = Lab::up(5, &[]);
    let pb = lab.home.path().join("faults.yml");
    std::fs::write(&pb, PLAYBOOK).unwrap();
    let state = lab.home.path().join("state");
    let run = lab
        .run_playbook(&pb, &state)
        .args(["--keepalive", &KEEPALIVE.to_string()]);
    let started = Instant::now();
    let running = std::thread::spawn(move || run.run());
    // Bounded: every node reaches task two within a minute, or the test fails.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = lab.exec("all", &["-b"], "test -e /srv/faults/in-two");
        if r.code == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not every node reached task two");
        std::thread::sleep(Duration::from_millis(200));
    }
    let faulted = Instant::now();
    lab.lab(&["fault", "node02", "hang"]).assert_code(0);
    lab.lab(&["fault", "node03", "down"]).assert_code(0);
    lab.lab(&["fault", "node04", "disk-full"]).assert_code(0);
    // A reboot from the node itself (the lab's stand-in asks the supervisor), as an operator
    // or an unattended upgrade would; its own session may or may not see an exit status.
    let _ = lab.exec("node05", &["-b"], "reboot");
    let first = running.join().unwrap();
    let took = faulted.elapsed();
    // Unreachable (3) outranks failed (2).
    first.assert_code(3);
    let out = format!("{}\n{}", first.stdout, first.stderr);
    // The hung node is noticed by keepalives within --keepalive (plus the sleep it was in).
    assert!(
        took < Duration::from_secs(KEEPALIVE + 6 + 10),
        "the run took {took:?} after the faults (started {:?} ago)\n{out}",
        started.elapsed()
    );
    for host in ["node02", "node03", "node05"] {
        assert!(
            out.lines()
                .any(|l| l.contains(host) && l.to_lowercase().contains("unreachable")),
            "{host} not reported unreachable:\n{out}"
        );
    }
    assert!(
        out.contains("No space left on device"),
        "node04's reason is missing:\n{out}"
    );
    assert!(
        out.contains("no answer to SSH keepalives"),
        "the hang's reason is missing:\n{out}"
    );

    // The journal says the same.
    let show = lab
        .kamo()
        .args(["show", "last", "--output", "json", "--state-dir"])
        .arg_path(&state)
        .run();
    show.assert_code(0);
    let show = json(&show);
    assert_eq!(show["run"]["state"], "unreachable", "{show}");
    assert_eq!(task_state(&show, "node01", "three"), "changed", "{show}");
    assert_eq!(task_state(&show, "node04", "three"), "failed", "{show}");
    for host in ["node02", "node03", "node05"] {
        assert_eq!(
            task_state(&show, host, "two"),
            "unreachable",
            "{host}: {show}"
        );
    }

    // The healthy node finished; the others are back and the run is resumed.
    lab.lab(&["fault", "node02", "clear"]).assert_code(0);
    lab.lab(&["fault", "node03", "up"]).assert_code(0);
    lab.lab(&["fault", "node04", "clear"]).assert_code(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while lab.exec("all", &[], "true").code != 0 {
        assert!(Instant::now() < deadline, "the nodes did not come back");
        std::thread::sleep(Duration::from_millis(300));
    }
    let resumed = lab
        .kamo()
        .args(["resume", "--state-dir"])
        .arg_path(&state)
        .run();
    resumed.assert_code(0);
    for host in ["node01", "node02", "node03", "node04", "node05"] {
        assert_eq!(lines(&lab, host, "one"), 1, "{host}: task one ran once");
        let two = lines(&lab, host, "two");
        let in_flight = host != "node01" && host != "node04";
        assert!(
            two == 1 || (in_flight && two == 2),
            "{host}: task two ran {two} times"
        );
        assert_eq!(lines(&lab, host, "three"), 1, "{host}: task three ran once");
    }
}

/// A playbook whose second task fails until the test creates `/srv/faults/go` on the node.
const GATED: &str = r#"
- hosts: all
  gather_facts: false
  become: true
  tasks:
    - name: one
      shell: mkdir -p /srv/faults && echo x >> /srv/faults/one
    - name: gate
      command: test -e /srv/faults/go
    - name: three
      shell: echo x >> /srv/faults/three
"#;

/// The `ssh-keygen -R HOST -f FILE` that kamo's message tells the operator to run.
fn keygen_advice(text: &str) -> (String, String) {
    let at = text
        .find("ssh-keygen -R '")
        .unwrap_or_else(|| panic!("no ssh-keygen advice in:\n{text}"));
    let rest = &text[at + "ssh-keygen -R '".len()..];
    let (host, rest) = rest.split_once('\'').unwrap();
    let file = rest
        .trim_start()
        .strip_prefix("-f ")
        .unwrap()
        .split(|c: char| c == ')' || c.is_whitespace())
        .next()
        .unwrap();
    (host.to_owned(), file.to_owned())
}

#[test]
fn a_host_key_changed_between_a_run_and_its_resume_is_refused_until_the_operator_accepts_it() {
    let lab = Lab::up(3, &[]);
    let pb = lab.home.path().join("gated.yml");
    std::fs::write(&pb, GATED).unwrap();
    let state = lab.home.path().join("state");
    let first = lab.run_playbook(&pb, &state).run();
    // The gate fails on every node: the run stops after task one.
    first.assert_code(2);
    lab.exec("all", &["-b"], "touch /srv/faults/go")
        .assert_code(0);
    // node02 is "reinstalled" between the run and its resume.
    lab.lab(&["fault", "node02", "hostkey-change"])
        .assert_code(0);
    let resume = |extra: &[&str]| {
        lab.kamo()
            .args(["resume", "--state-dir"])
            .arg_path(&state)
            .args(extra)
            .run()
    };
    let refused = resume(&[]);
    refused.assert_code(3);
    let out = format!("{}\n{}", refused.stdout, refused.stderr);
    let known_hosts = lab.dir.join("known_hosts");
    let reason = out
        .lines()
        .find(|l| l.contains("node02") && l.contains("HAS CHANGED"))
        .unwrap_or_else(|| panic!("node02's host key change is not reported:\n{out}"));
    assert!(
        reason.to_lowercase().contains("unreachable")
            && reason.contains(&format!("{}:2", known_hosts.display())),
        "the reason names neither unreachable nor the known_hosts line:\n{out}"
    );
    for host in ["node01", "node03"] {
        assert_eq!(
            lines(&lab, host, "three"),
            1,
            "{host} did not finish:\n{out}"
        );
    }
    let show = |what: &str| {
        let r = lab
            .kamo()
            .args(["show", "last", "--output", "json", "--state-dir"])
            .arg_path(&state)
            .run();
        r.assert_code(0);
        let v = json(&r);
        eprintln!("{what}: {}", v["run"]["state"]);
        v
    };
    let after_refusal = show("after the refused resume");
    assert_eq!(
        after_refusal["run"]["state"], "unreachable",
        "{after_refusal}"
    );
    assert_eq!(
        task_state(&after_refusal, "node02", "gate"),
        "unreachable",
        "{after_refusal}"
    );
    for host in ["node01", "node03"] {
        assert_eq!(
            task_state(&after_refusal, host, "three"),
            "changed",
            "{host}: {after_refusal}"
        );
    }

    // The operator does what the message says: removes the old line and accepts the new key.
    let (host, file) = keygen_advice(&out);
    assert_eq!(file, known_hosts.display().to_string(), "{out}");
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-R", &host, "-f", &file])
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    let still_strict = resume(&[]);
    still_strict.assert_code(3);
    assert!(
        still_strict.stdout.contains("not known") || still_strict.stderr.contains("not known"),
        "{still_strict:?}"
    );
    resume(&["--host-key-checking", "accept-new"]).assert_code(0);
    let done = show("after the accepting resume");
    assert_eq!(done["run"]["state"], "ok", "{done}");
    for host in ["node01", "node02", "node03"] {
        assert_eq!(lines(&lab, host, "one"), 1, "{host}: task one ran once");
        assert_eq!(lines(&lab, host, "three"), 1, "{host}: task three ran once");
    }
}
