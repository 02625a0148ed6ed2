//! `kamo run`, `kamo plan` and `kamo syntax-check` with real playbooks on real sshd hosts.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::kamo::{Kamo, Run, empty_home};
use crate::support::sshd::SshCluster;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/playbooks")
        .join(rel)
}

/// A directory every test host (user kamotest) can write below.
fn shared_base() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    d
}

fn kamo_run(c: &SshCluster, inv: &Path, playbook: &Path, base: &Path, extra: &[&str]) -> Run {
    let home = empty_home();
    Kamo::new(home.path())
        .args(["run"])
        .arg_path(playbook)
        .args(["-i"])
        .arg_path(inv)
        .args(["--known-hosts"])
        .arg_path(&c.known_hosts)
        .args(["--output", "json", "-e"])
        .arg_path(Path::new(&format!("base={}", base.display())))
        .args(extra)
        .run()
}

/// The recap line (always the last JSON line).
fn recap(run: &Run) -> Value {
    let last = run
        .json_lines()
        .pop()
        .unwrap_or_else(|| panic!("no output: {run:?}"));
    assert_eq!(last["event"], "recap", "{run:?}");
    last
}

fn nodes_inventory(c: &SshCluster) -> PathBuf {
    c.write_inventory("")
}

#[test]
fn a_playbook_runs_changes_once_and_is_idempotent() {
    let c = SshCluster::start(3);
    let inv = nodes_inventory(&c);
    let base = shared_base();
    let run = kamo_run(&c, &inv, &fixture("site.yml"), base.path(), &[]);
    run.assert_code(0);
    let r = recap(&run);
    for h in &c.hosts {
        let s = &r["hosts"][&h.name];
        assert_eq!(s["failed"], 0, "{run:?}");
        assert!(s["changed"].as_u64().unwrap() >= 8, "{s}");
        let root = base.path().join(&h.name);
        let conf = fs::read_to_string(root.join("etc/app.conf")).unwrap();
        assert_eq!(conf, format!("# managed by kamo\nname={}\n", h.name));
        assert_eq!(
            fs::read_to_string(root.join("etc/port.conf")).unwrap(),
            "port=8080\n"
        );
        let hosts = fs::read_to_string(root.join("etc/hosts")).unwrap();
        for other in &c.hosts {
            assert!(
                hosts.contains(&format!("{} {}", other.addr, other.name)),
                "{hosts}"
            );
        }
        for p in ["alpha", "beta", "gamma"] {
            assert_eq!(
                fs::read_to_string(root.join(format!("{p}.pkg"))).unwrap(),
                format!("{p}\n")
            );
        }
        assert!(root.join("initialised").exists());
        assert_eq!(
            fs::read_to_string(root.join("restarts")).unwrap(),
            "restarted\n",
            "the handler ran once"
        );
    }
    // The coordinator play saw every node's registered result through hostvars.
    assert!(r["hosts"]["localhost"]["ok"].as_u64().unwrap() >= 1);

    // Second run: nothing changes, the handler does not run again.
    let run = kamo_run(&c, &inv, &fixture("site.yml"), base.path(), &[]);
    run.assert_code(0);
    let r = recap(&run);
    for h in &c.hosts {
        assert_eq!(r["hosts"][&h.name]["changed"], 0, "{}", run.stdout);
        assert_eq!(
            fs::read_to_string(base.path().join(&h.name).join("restarts")).unwrap(),
            "restarted\n"
        );
    }
}

#[test]
fn check_mode_changes_nothing_but_reports_what_would() {
    let c = SshCluster::start(2);
    let inv = nodes_inventory(&c);
    let base = shared_base();
    let run = kamo_run(&c, &inv, &fixture("site.yml"), base.path(), &["--check"]);
    let r = recap(&run);
    for h in &c.hosts {
        assert!(
            r["hosts"][&h.name]["changed"].as_u64().unwrap() >= 1,
            "{run:?}"
        );
    }
    assert_eq!(
        fs::read_dir(base.path()).unwrap().count(),
        0,
        "check mode wrote something"
    );
}

#[test]
fn plan_shows_exactly_what_run_sends() {
    let c = SshCluster::start(2);
    let inv = nodes_inventory(&c);
    let base = shared_base();
    let home = empty_home();
    let plan = Kamo::new(home.path())
        .args(["plan"])
        .arg_path(&fixture("site.yml"))
        .args(["-i"])
        .arg_path(&inv)
        .args(["--output", "json", "-e"])
        .arg_path(Path::new(&format!("base={}", base.path().display())))
        .run();
    plan.assert_code(0);
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(
        fs::read_dir(base.path()).unwrap().count(),
        0,
        "plan touched a host"
    );
    let mut planned: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for e in plan["plan"].as_array().unwrap() {
        if let Some(d) = e["script_sha256"].as_str() {
            planned.insert(
                (
                    e["host"].as_str().unwrap().into(),
                    e["task"].as_str().unwrap().into(),
                    e["item"].to_string(),
                ),
                d.into(),
            );
        }
    }
    // Tasks whose arguments read registered values are shown as run-time, not guessed.
    let conf_assert = plan["plan"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["task"] == "Only on Linux")
        .unwrap();
    assert_eq!(conf_assert["status"], "runtime", "{conf_assert}");

    let run = kamo_run(&c, &inv, &fixture("site.yml"), base.path(), &[]);
    run.assert_code(0);
    let mut sent: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for e in run.json_lines() {
        if let Some(d) = e["data"]["script_sha256"].as_str() {
            sent.insert(
                (
                    e["host"].as_str().unwrap().into(),
                    e["task"].as_str().unwrap().into(),
                    e["item"].to_string(),
                ),
                d.into(),
            );
        }
    }
    let mut compared = 0;
    for (k, d) in &planned {
        if let Some(s) = sent.get(k) {
            assert_eq!(s, d, "plan and run differ for {k:?}");
            compared += 1;
        }
    }
    assert!(
        compared >= 2 * 7,
        "compared only {compared} scripts: planned {planned:?} sent {sent:?}"
    );
}

#[test]
fn an_unknown_module_is_refused_before_any_host_is_touched() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory(&format!(
        "\n[dead]\nghost ansible_host={} ansible_port={}\n",
        c.dead_addr(),
        c.port
    ));
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("bad.yml");
    fs::write(
        &pb,
        "- hosts: all\n  tasks:\n    - name: typo\n      frobnicate: { level: 11 }\n",
    )
    .unwrap();
    let base = shared_base();
    let run = kamo_run(&c, &inv, &pb, base.path(), &[]);
    run.assert_code(4);
    assert!(run.stderr.contains("frobnicate"), "{}", run.stderr);
    assert!(run.stderr.contains("bad.yml:4"), "{}", run.stderr);
    let home = empty_home();
    Kamo::new(home.path())
        .args(["syntax-check"])
        .arg_path(&pb)
        .run()
        .assert_code(4);
    Kamo::new(home.path())
        .args(["syntax-check"])
        .arg_path(&fixture("site.yml"))
        .run()
        .assert_code(0);
}

#[test]
fn block_rescue_always_and_failures() {
    let c = SshCluster::start(2);
    let inv = nodes_inventory(&c);
    let base = shared_base();
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("blocks.yml");
    fs::write(
        &pb,
        r#"- hosts: nodes
  gather_facts: false
  tasks:
    - block:
        - name: Fails on the first node only
          shell: test {{ inventory_hostname }} != node01
      rescue:
        - name: Rescue
          shell: touch {{ base }}/rescued-{{ inventory_hostname }}
      always:
        - name: Always
          shell: touch {{ base }}/always-{{ inventory_hostname }}
    - name: Fails for real on node02
      shell: exit 3
      when: inventory_hostname == "node02"
    - name: After the failure
      shell: touch {{ base }}/after-{{ inventory_hostname }}
"#,
    )
    .unwrap();
    let run = kamo_run(&c, &inv, &pb, base.path(), &[]);
    run.assert_code(2);
    let r = recap(&run);
    assert_eq!(r["hosts"]["node01"]["rescued"], 1, "{run:?}");
    assert_eq!(r["hosts"]["node01"]["failed"], 0);
    assert_eq!(r["hosts"]["node02"]["failed"], 1);
    assert!(base.path().join("rescued-node01").exists());
    assert!(!base.path().join("rescued-node02").exists());
    assert!(
        base.path().join("always-node01").exists() && base.path().join("always-node02").exists()
    );
    assert!(base.path().join("after-node01").exists());
    assert!(
        !base.path().join("after-node02").exists(),
        "a failed host takes no further tasks"
    );
}

/// Writes `text` as a playbook in a fresh directory and returns (dir, path).
fn playbook(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("play.yml");
    fs::write(&p, text).unwrap();
    (dir, p)
}

#[test]
fn serial_batches_and_max_fail_percentage_stop_the_play() {
    let c = SshCluster::start(4);
    let inv = nodes_inventory(&c);
    let base = shared_base();
    let (_d, pb) = playbook(
        r#"- hosts: nodes
  gather_facts: false
  serial: 2
  max_fail_percentage: 0
  tasks:
    - name: Fail on node02
      shell: test {{ inventory_hostname }} != node02
    - name: Mark
      shell: touch {{ base }}/marked-{{ inventory_hostname }}
"#,
    );
    let run = kamo_run(&c, &inv, &pb, base.path(), &[]);
    run.assert_code(2);
    // The first batch (node01, node02) exceeded 0 % failures: the play stopped there, so the
    // second batch never ran, and node01 never reached the second task.
    for n in ["node01", "node02", "node03", "node04"] {
        assert!(
            !base.path().join(format!("marked-{n}")).exists(),
            "{n} ran after the stop"
        );
    }
    let r = recap(&run);
    assert_eq!(r["hosts"]["node03"]["ok"], 0, "{run:?}");
}

#[test]
fn handlers_listen_become_delegate_and_fetch() {
    let c = SshCluster::start(2);
    let inv = c.write_inventory(&format!(
        "ansible_become_password={}\n",
        crate::support::sshd::TEST_PASSWORD
    ));
    let base = shared_base();
    let fetched = tempfile::tempdir().unwrap();
    let (_d, pb) = playbook(&format!(
        r#"- hosts: nodes
  gather_facts: false
  tasks:
    - name: As root
      command: id -u
      become: true
      register: who
      changed_when: false
    - name: Record
      copy:
        dest: "{{{{ base }}}}/who-{{{{ inventory_hostname }}}}"
        content: "{{{{ who.stdout }}}}\n"
      notify: announce
    - name: On the other node
      shell: echo $SSH_CONNECTION > {{{{ base }}}}/delegated-{{{{ inventory_hostname }}}}
      delegate_to: "{{{{ 'node02' if inventory_hostname == 'node01' else 'node01' }}}}"
    - name: Bring it home
      fetch:
        src: "{{{{ base }}}}/who-{{{{ inventory_hostname }}}}"
        dest: "{fetched}/"
  handlers:
    - name: say it
      shell: touch {{{{ base }}}}/announced-{{{{ inventory_hostname }}}}
      listen: announce
"#,
        fetched = fetched.path().display()
    ));
    let run = kamo_run(&c, &inv, &pb, base.path(), &[]);
    run.assert_code(0);
    for (i, h) in c.hosts.iter().enumerate() {
        assert_eq!(
            fs::read_to_string(base.path().join(format!("who-{}", h.name))).unwrap(),
            "0\n"
        );
        assert!(base.path().join(format!("announced-{}", h.name)).exists());
        let other = &c.hosts[1 - i];
        let d = fs::read_to_string(base.path().join(format!("delegated-{}", h.name))).unwrap();
        assert!(
            d.contains(&format!(" {} ", other.addr)),
            "{} delegated to {}: {d}",
            h.name,
            other.name
        );
        let local = fetched
            .path()
            .join(&h.name)
            .join(base.path().strip_prefix("/").unwrap())
            .join(format!("who-{}", h.name));
        assert_eq!(
            fs::read_to_string(&local).unwrap(),
            "0\n",
            "{}",
            local.display()
        );
    }
    assert!(!run.stdout.contains(crate::support::sshd::TEST_PASSWORD));
}

#[test]
fn an_undefined_variable_names_the_variable_task_and_place() {
    let c = SshCluster::start(1);
    let inv = nodes_inventory(&c);
    let base = shared_base();
    let (_d, pb) = playbook(
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - name: Uses a typo\n      shell: echo {{ no_such_var }}\n",
    );
    let run = kamo_run(&c, &inv, &pb, base.path(), &[]);
    run.assert_code(2);
    let ev = run
        .json_lines()
        .into_iter()
        .find(|e| e["event"] == "host_result")
        .unwrap();
    let msg = ev["msg"].as_str().unwrap();
    assert!(
        msg.contains("no_such_var") && msg.contains("Uses a typo") && msg.contains("play.yml:4"),
        "{msg}"
    );
}

#[test]
fn tags_select_tasks_and_json_ends_with_the_recap() {
    let c = SshCluster::start(1);
    let inv = nodes_inventory(&c);
    let base = shared_base();
    let (_d, pb) = playbook(
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - name: a\n      shell: touch {{ base }}/a\n      tags: [alpha]\n    - name: b\n      shell: touch {{ base }}/b\n      tags: beta\n    - name: c\n      shell: touch {{ base }}/c\n      tags: [always]\n",
    );
    let run = kamo_run(&c, &inv, &pb, base.path(), &["--tags", "beta"]);
    run.assert_code(0);
    assert!(
        !base.path().join("a").exists()
            && base.path().join("b").exists()
            && base.path().join("c").exists()
    );
    let events: Vec<String> = run
        .json_lines()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events.first().map(String::as_str), Some("play_start"));
    assert_eq!(events.last().map(String::as_str), Some("recap"));
    assert!(events.iter().any(|e| e == "task_start") && events.iter().any(|e| e == "host_result"));
}

#[test]
fn diff_shows_a_unified_diff_in_text_output() {
    let c = SshCluster::start(1);
    let inv = nodes_inventory(&c);
    let base = shared_base();
    fs::write(base.path().join("f.conf"), "a=1\nb=2\n").unwrap();
    let (_d, pb) = playbook(
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - copy:\n        dest: \"{{ base }}/f.conf\"\n        content: \"a=1\\nb=3\\n\"\n",
    );
    let home = empty_home();
    let run = Kamo::new(home.path())
        .args(["run"])
        .arg_path(&pb)
        .args(["-i"])
        .arg_path(&inv)
        .args(["--known-hosts"])
        .arg_path(&c.known_hosts)
        .args(["--diff", "--check", "-e"])
        .arg_path(Path::new(&format!("base={}", base.path().display())))
        .args(["--state-dir"])
        .arg_path(home.path())
        .run();
    run.assert_code(0);
    assert!(
        run.stdout.contains("-b=2") && run.stdout.contains("+b=3"),
        "{}",
        run.stdout
    );
    assert_eq!(
        fs::read_to_string(base.path().join("f.conf")).unwrap(),
        "a=1\nb=2\n",
        "check mode changed the file"
    );
}

#[test]
fn play_and_task_environment_reach_the_command() {
    let c = SshCluster::start(1);
    let inv = nodes_inventory(&c);
    let base = shared_base();
    let (_d, pb) = playbook(
        "- hosts: nodes\n  gather_facts: false\n  environment:\n    A: from-play\n    B: from-play\n  tasks:\n    - shell: echo \"$A $B\" > {{ base }}/env\n      environment:\n        B: \"from task {{ inventory_hostname }}\"\n",
    );
    kamo_run(&c, &inv, &pb, base.path(), &[]).assert_code(0);
    assert_eq!(
        fs::read_to_string(base.path().join("env")).unwrap(),
        "from-play from task node01\n"
    );
}

/// A tiny HTTP server on loopback that answers `count` requests with `body`, then stops.
fn serve(body: &'static [u8], count: usize) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/files/tool.bin", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        for _ in 0..count {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(body);
        }
    });
    (url, handle)
}

#[test]
fn get_url_downloads_on_the_workstation_once_and_checks_the_checksum() {
    let c = SshCluster::start(2);
    let inv = nodes_inventory(&c);
    let base = shared_base();
    const BODY: &[u8] = b"tool v1\n";
    // sha256 of BODY.
    let sum = {
        use sha2::Digest;
        sha2::Sha256::digest(BODY)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let (url, server) = serve(BODY, 1);
    let (_d, pb) = playbook(&format!(
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - get_url:\n        url: {url}\n        dest: \"{{{{ base }}}}/{{{{ inventory_hostname }}}}-\"\n        checksum: sha256:{sum}\n        mode: \"0755\"\n"
    ));
    kamo_run(&c, &inv, &pb, base.path(), &[]).assert_code(0);
    server.join().unwrap(); // exactly one request served for two hosts
    for h in &c.hosts {
        assert_eq!(
            fs::read(base.path().join(format!("{}-", h.name))).unwrap(),
            BODY
        );
    }
    let (url, server) = serve(BODY, 1);
    let (_d, pb) = playbook(&format!(
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - get_url:\n        url: {url}\n        dest: \"{{{{ base }}}}/bad-{{{{ inventory_hostname }}}}\"\n        checksum: sha256:{}\n",
        "0".repeat(64)
    ));
    let run = kamo_run(&c, &inv, &pb, base.path(), &[]);
    run.assert_code(2);
    server.join().unwrap();
    assert!(run.stdout.contains("checksum mismatch"), "{}", run.stdout);
    assert!(!base.path().join("bad-node01").exists());
}

#[test]
fn reboot_waits_until_the_host_is_back() {
    let mut c = SshCluster::start(1);
    let inv = nodes_inventory(&c);
    let base = shared_base();
    let (_d, pb) = playbook(
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - name: Reboot\n      reboot:\n        reboot_command: \"true\"\n        reboot_timeout: 60\n    - name: After\n      shell: touch {{ base }}/after-reboot\n",
    );
    let home = empty_home();
    let mut child = Kamo::new(home.path())
        .args(["run"])
        .arg_path(&pb)
        .args(["-i"])
        .arg_path(&inv)
        .args(["--known-hosts"])
        .arg_path(&c.known_hosts)
        .args(["--output", "json", "-e"])
        .arg_path(Path::new(&format!("base={}", base.path().display())))
        .args(["--state-dir"])
        .arg_path(home.path())
        .spawn();
    // The harness takes the host down while kamo waits for it, then brings it back.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        child.try_wait().unwrap().is_none(),
        "kamo did not wait for the reboot"
    );
    c.reboot(std::time::Duration::from_secs(2));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed().as_secs() < 60,
            "kamo did not finish after the reboot"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(status.code(), Some(0), "{out}");
    let reboot: Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "host_result" && e["task"] == "Reboot")
        .unwrap_or_else(|| panic!("no reboot result: {out}"));
    assert_eq!(reboot["status"], "changed", "{reboot}");
    // It returned only after the host had been down (2 s after the start, for 2 s).
    assert!(reboot["duration_ms"].as_u64().unwrap() >= 3500, "{reboot}");
    assert!(
        base.path().join("after-reboot").exists(),
        "the task after the reboot ran on the new connection"
    );
}

#[test]
fn strategy_free_lets_fast_hosts_go_ahead() {
    let c = SshCluster::start(2);
    let inv = nodes_inventory(&c);
    let base = shared_base();
    let text = |strategy: &str| {
        format!(
            "- hosts: nodes\n  gather_facts: false\n  strategy: {strategy}\n  tasks:\n    - shell: \"if [ {{{{ inventory_hostname }}}} = node01 ]; then sleep 2; fi; date +%s%N > {{{{ base }}}}/{strategy}-t1-{{{{ inventory_hostname }}}}\"\n    - shell: \"date +%s%N > {{{{ base }}}}/{strategy}-t2-{{{{ inventory_hostname }}}}\"\n"
        )
    };
    let read = |name: &str| -> u128 {
        fs::read_to_string(base.path().join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    for strategy in ["free", "linear"] {
        let (_d, pb) = playbook(&text(strategy));
        kamo_run(&c, &inv, &pb, base.path(), &[]).assert_code(0);
    }
    // free: node02 finished its second task while node01 was still in its first.
    assert!(read("free-t2-node02") < read("free-t1-node01"));
    // linear: nobody starts task 2 before everybody finished task 1.
    assert!(read("linear-t2-node02") > read("linear-t1-node01"));
}

#[test]
fn roles_with_defaults_templates_files_handlers_and_dependencies() {
    let c = SshCluster::start(1);
    let inv = nodes_inventory(&c);
    let base = shared_base();
    let dir = tempfile::tempdir().unwrap();
    let w = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    };
    w(
        "site.yml",
        "- hosts: nodes\n  gather_facts: false\n  roles:\n    - role: app\n      vars:\n        colour: blue\n",
    );
    w(
        "roles/base/tasks/main.yml",
        "- name: base first\n  shell: echo base >> {{ base }}/order\n",
    );
    w("roles/app/meta/main.yml", "dependencies:\n  - base\n");
    w("roles/app/defaults/main.yml", "port: 8080\ncolour: red\n");
    w(
        "roles/app/tasks/main.yml",
        "- name: app second\n  shell: echo app >> {{ base }}/order\n- name: config from the role's templates\n  template:\n    src: app.conf.j2\n    dest: \"{{ base }}/app.conf\"\n  notify: reload app\n- name: blob from the role's files\n  copy:\n    src: blob.txt\n    dest: \"{{ base }}/blob.txt\"\n",
    );
    w(
        "roles/app/templates/app.conf.j2",
        "port={{ port }} colour={{ colour }}\n",
    );
    w("roles/app/files/blob.txt", "blob\n");
    w(
        "roles/app/handlers/main.yml",
        "- name: reload app\n  shell: echo reloaded >> {{ base }}/order\n",
    );
    let run = kamo_run(&c, &inv, &dir.path().join("site.yml"), base.path(), &[]);
    run.assert_code(0);
    assert_eq!(
        fs::read_to_string(base.path().join("order")).unwrap(),
        "base\napp\nreloaded\n"
    );
    assert_eq!(
        fs::read_to_string(base.path().join("app.conf")).unwrap(),
        "port=8080 colour=blue\n"
    );
    assert_eq!(
        fs::read_to_string(base.path().join("blob.txt")).unwrap(),
        "blob\n"
    );
}

/// Every shipped playbook passes `kamo syntax-check` (`versions.yml` is data, not a
/// playbook); the lifecycle verbs' playbooks are all there.
#[test]
fn shipped_playbooks_pass_syntax_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks");
    for name in [
        "preflight.yml",
        "postflight.yml",
        "deploy-k8s.yml",
        "deploy-nfs.yml",
        "deploy-app.yml",
        "clean-all.yml",
        "clean-app.yml",
        "clean-nvidia-repo.yml",
        "clean-nvidia-packages.yml",
        "update-app.yml",
        "update-node-conf.yml",
        "update-kube-certs.yml",
        "credentials.yml",
        "versions.yml",
    ] {
        assert!(dir.join(name).is_file(), "playbooks/{name} is missing");
    }
    let mut checked = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().is_some_and(|n| n == "versions.yml") {
            continue;
        }
        if p.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            let home = empty_home();
            Kamo::new(home.path())
                .args(["syntax-check"])
                .arg_path(&p)
                .run()
                .assert_code(0);
            checked += 1;
        }
    }
    assert!(
        checked >= 13,
        "only {checked} playbooks in {}",
        dir.display()
    );
}

#[test]
fn the_preflight_playbook_runs_on_real_hosts_and_changes_nothing() {
    let c = SshCluster::start(2);
    let inv = c.write_inventory(&format!(
        "ansible_become_password={}\n",
        crate::support::sshd::TEST_PASSWORD
    ));
    let pb = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/preflight.yml");
    let base = shared_base();
    // The test hosts run Debian, so the Ubuntu check must fail, located, on every host.
    let run = kamo_run(&c, &inv, &pb, base.path(), &["-e", "min_var_free_mb=1"]);
    run.assert_code(2);
    let fails: Vec<Value> = run
        .json_lines()
        .into_iter()
        .filter(|e| e["event"] == "host_result" && e["status"] == "failed")
        .collect();
    assert_eq!(fails.len(), 2, "{run:?}");
    for f in &fails {
        assert_eq!(f["task"], "The OS is Ubuntu");
        assert!(f["msg"].as_str().unwrap().contains("not Ubuntu"), "{f}");
    }
    let r = recap(&run);
    assert_eq!(
        r["hosts"]["node01"]["changed"], 0,
        "preflight must change nothing"
    );
}

/// As in Ansible: a host that failed in one play takes no part in the later plays of the
/// playbook, and `any_errors_fatal` leaves no host for them at all.
#[test]
fn a_failed_host_takes_no_part_in_later_plays() {
    let c = SshCluster::start(3);
    let inv = nodes_inventory(&c);
    let base = shared_base();
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("two-plays.yml");
    fs::write(
        &pb,
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: fail on the first host\n      command: \"false\"\n      when: inventory_hostname == ansible_play_hosts[0]\n\
         - hosts: all\n  gather_facts: false\n  tasks:\n    - name: mark\n      copy: {dest: \"{{ base }}/{{ inventory_hostname }}\", content: x}\n\
         - hosts: all\n  gather_facts: false\n  any_errors_fatal: true\n  tasks:\n    - name: fail everywhere\n      command: \"false\"\n      when: inventory_hostname == ansible_play_hosts[0]\n\
         - hosts: all\n  gather_facts: false\n  tasks:\n    - name: never\n      copy: {dest: \"{{ base }}/never\", content: x}\n",
    )
    .unwrap();
    let r = kamo_run(&c, &inv, &pb, base.path(), &[]);
    r.assert_code(2);
    let marked: Vec<String> = fs::read_dir(base.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        marked.len(),
        2,
        "only the hosts that did not fail mark: {marked:?}"
    );
    assert!(
        !base.path().join("never").exists(),
        "any_errors_fatal left hosts for the next play"
    );
}

/// `groups`, the play's host lists and `hostvars` are built once per task and shared by its
/// hosts (a copy per host made a 1,000-host plan quadratic). They still reach a template
/// file, a variable that reads them indirectly, and a host's own `set_fact` values through
/// `hostvars` (a run-time value in the plan, named as such); a variable of the same name
/// cannot shadow them; and the plan's scripts are the bytes the run sends.
#[test]
fn shared_magic_variables_reach_templates_and_plan_matches_run() {
    let c = SshCluster::start(2);
    let inv = c.write_inventory("groups=shadowed\nplay_hosts=shadowed\n");
    let base = shared_base();
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("templates")).unwrap();
    fs::write(
        dir.path().join("templates/view.j2"),
        "{{ groups['nodes'] | join(',') }} {{ play_hosts | length }} \
         {{ hostvars[groups['nodes'][0]].ansible_port }}\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("templates/mark.j2"),
        "{{ hostvars[inventory_hostname].mark }}\n",
    )
    .unwrap();
    let pb = dir.path().join("play.yml");
    fs::write(
        &pb,
        "- hosts: nodes\n  gather_facts: false\n  vars:\n    everyone: \"{{ groups['nodes'] | join('+') }}\"\n  tasks:\n    - name: Mark\n      set_fact:\n        mark: \"m-{{ inventory_hostname }}\"\n    - name: View\n      template:\n        src: view.j2\n        dest: \"{{ base }}/{{ inventory_hostname }}.view\"\n    - name: Own\n      template:\n        src: mark.j2\n        dest: \"{{ base }}/{{ inventory_hostname }}.mark\"\n    - name: Indirect\n      copy:\n        dest: \"{{ base }}/{{ inventory_hostname }}.all\"\n        content: \"{{ everyone }}\\n\"\n",
    )
    .unwrap();
    let home = empty_home();
    let plan = Kamo::new(home.path())
        .args(["plan"])
        .arg_path(&pb)
        .args(["-i"])
        .arg_path(&inv)
        .args(["--output", "json", "-e"])
        .arg_path(Path::new(&format!("base={}", base.path().display())))
        .run();
    plan.assert_code(0);
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    let mut planned = BTreeMap::new();
    for e in plan["plan"].as_array().unwrap() {
        if e["task"] == "View" || e["task"] == "Indirect" {
            assert_eq!(e["status"], "run", "{e}");
            planned.insert(
                (
                    e["host"].as_str().unwrap().to_owned(),
                    e["task"].to_string(),
                ),
                e["script_sha256"].as_str().unwrap().to_owned(),
            );
        }
        if e["task"] == "Own" {
            assert_eq!(e["status"], "runtime", "{e}");
            assert!(e["reason"].as_str().unwrap().contains("`mark`"), "{e}");
        }
    }
    assert_eq!(planned.len(), 4, "{plan}");
    let run = kamo_run(&c, &inv, &pb, base.path(), &[]);
    run.assert_code(0);
    let names: Vec<&str> = c.hosts.iter().map(|h| h.name.as_str()).collect();
    for h in &c.hosts {
        let read = |ext: &str| fs::read_to_string(base.path().join(format!("{}.{ext}", h.name)));
        assert_eq!(
            read("view").unwrap(),
            format!("{} 2 {}\n", names.join(","), c.hosts[0].port)
        );
        assert_eq!(read("mark").unwrap(), format!("m-{}\n", h.name));
        assert_eq!(read("all").unwrap(), format!("{}\n", names.join("+")));
    }
    let mut compared = 0;
    for e in run.json_lines() {
        if let Some(d) = e["data"]["script_sha256"].as_str()
            && let Some(p) = planned.get(&(
                e["host"].as_str().unwrap_or_default().to_owned(),
                e["task"].to_string(),
            ))
        {
            assert_eq!(p, d, "plan and run differ: {e}");
            compared += 1;
        }
    }
    assert_eq!(compared, 4, "{run:?}");
}

/// At the end of a run every connection is closed politely (idle task shells get EOF, then an
/// SSH disconnect), not dropped when kamo exits: sshd logs a disconnect, not a closed or reset
/// connection.
#[test]
fn a_run_ends_its_connections_with_a_disconnect() {
    let c = SshCluster::start_with(2, "LogLevel INFO");
    let inv = nodes_inventory(&c);
    let (_d, pb) = playbook(
        "- hosts: nodes\n  gather_facts: false\n  tasks:\n    - command: 'true'\n    - command: 'true'\n",
    );
    let base = shared_base();
    let run = kamo_run(&c, &inv, &pb, base.path(), &[]);
    run.assert_code(0);
    // sshd writes its log as the session ends, a moment after kamo exits.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut logs = c.sshd_logs();
    while logs.matches("Received disconnect").count() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        logs = c.sshd_logs();
    }
    assert_eq!(logs.matches("Received disconnect").count(), 2, "{logs}");
    // The cluster's readiness probes close their connections before any login: only what
    // follows the first login is kamo's.
    let sessions = &logs[logs.find("Accepted publickey").expect("a login")..];
    assert!(
        !sessions.contains("Connection closed by") && !sessions.contains("Connection reset by"),
        "{logs}"
    );
}
