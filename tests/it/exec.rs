//! `kamo exec` against real OpenSSH servers on loopback addresses.

use std::fs;

use crate::support::kamo::{Kamo, empty_home};
use crate::support::sshd::{SshCluster, TEST_PASSWORD, TEST_USER};

/// `kamo exec all --output json` with the cluster's inventory and known_hosts.
fn exec_json(
    c: &SshCluster,
    inv: &std::path::Path,
    extra: &[&str],
    cmd: &[&str],
) -> crate::support::kamo::Run {
    let home = empty_home();
    let mut args: Vec<String> = vec![
        "exec".into(),
        "all".into(),
        "-i".into(),
        inv.display().to_string(),
    ];
    args.extend([
        "--known-hosts".into(),
        c.known_hosts.display().to_string(),
        "--output".into(),
        "json".into(),
    ]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.push("--".into());
    args.extend(cmd.iter().map(|s| (*s).to_owned()));
    Kamo::new(home.path()).args(args).run()
}

#[test]
fn runs_on_twenty_hosts_in_parallel_each_on_its_own_address() {
    let c = SshCluster::start(20);
    let inv = c.write_inventory("");
    let run = exec_json(&c, &inv, &[], &["echo $SSH_CONNECTION; whoami"]);
    run.assert_code(0);
    let lines = run.json_lines();
    assert_eq!(lines.len(), 20, "{run:?}");
    for h in &c.hosts {
        let r = run.host(&h.name);
        assert_eq!(r["rc"], 0, "{r}");
        assert_eq!(r["status"], "ok");
        assert!(r["error"].is_null());
        let out = r["stdout"].as_str().unwrap();
        // sshd reports the server address of the connection: proof it reached that host.
        assert!(out.contains(&format!(" {} {}", h.addr, h.port)), "{out}");
        assert!(out.ends_with(&format!("{TEST_USER}\n")), "{out}");
        assert!(r["duration_ms"].as_u64().is_some());
    }
}

#[test]
fn a_failing_host_gives_exit_2_and_keeps_streams_apart() {
    let c = SshCluster::start(3);
    let inv = c.write_inventory("");
    let bad = &c.hosts[1];
    let script = format!(
        "echo to-out; echo to-err >&2; case \"$SSH_CONNECTION\" in *' {} '*) exit 7;; esac",
        bad.addr
    );
    let run = exec_json(&c, &inv, &[], &[&script]);
    run.assert_code(2);
    let r = run.host(&bad.name);
    assert_eq!(r["rc"], 7);
    assert_eq!(r["status"], "failed");
    assert_eq!(r["stdout"], "to-out\n");
    assert_eq!(r["stderr"], "to-err\n");
    assert_eq!(run.host(&c.hosts[0].name)["rc"], 0);
}

#[test]
fn text_output_has_a_header_per_host_and_a_summary() {
    let c = SshCluster::start(2);
    let inv = c.write_inventory("");
    let home = empty_home();
    let run = Kamo::new(home.path())
        .args(["exec", "all", "-i"])
        .arg_path(&inv)
        .args(["--known-hosts"])
        .arg_path(&c.known_hosts)
        .args(["--", "echo hello; echo oops >&2"])
        .run();
    run.assert_code(0);
    for h in &c.hosts {
        assert!(
            run.stdout.contains(&format!("{} | OK | rc=0 |", h.name)),
            "{}",
            run.stdout
        );
    }
    // Each host's block is whole: header, stdout, stderr, never mixed with another host's.
    let blocks: Vec<&str> = run.stdout.split_inclusive("stderr:\noops\n").collect();
    assert_eq!(blocks.len(), 2, "{}", run.stdout);
    for b in blocks {
        assert!(
            b.contains("| OK | rc=0 |") && b.contains("hello\nstderr:\noops\n"),
            "{b}"
        );
    }
    assert!(
        run.stderr
            .contains("2 hosts: 2 ok, 0 failed, 0 unreachable"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unreachable_host_gives_exit_3_and_the_others_still_run() {
    let c = SshCluster::start(3);
    let dead = c.dead_addr();
    let inv = c.write_inventory(&format!(
        "\n[dead]\nghost ansible_host={dead} ansible_port={}\n",
        c.port
    ));
    let marks = tempfile::tempdir().unwrap();
    fs::set_permissions(
        marks.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let cmd = format!(
        "touch {}/ran-$(echo $SSH_CONNECTION | cut -d' ' -f3)",
        marks.path().display()
    );
    let run = exec_json(&c, &inv, &["--timeout", "3"], &[&cmd]);
    run.assert_code(3);
    let g = run.host("ghost");
    assert!(g["rc"].is_null());
    assert_eq!(g["status"], "unreachable");
    assert!(g["error"].as_str().unwrap().starts_with("connect:"), "{g}");
    for h in &c.hosts {
        assert_eq!(run.host(&h.name)["rc"], 0);
        assert!(marks.path().join(format!("ran-{}", h.addr)).exists());
    }
}

#[test]
fn unreachable_takes_precedence_over_failed() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory(&format!(
        "\n[dead]\nghost ansible_host={} ansible_port={}\n",
        c.dead_addr(),
        c.port
    ));
    let run = exec_json(&c, &inv, &["--timeout", "3"], &["exit 1"]);
    run.assert_code(3);
    assert_eq!(run.host("node01")["rc"], 1);
}

#[test]
fn argv_is_quoted_for_the_remote_shell() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory("");
    let run = exec_json(
        &c,
        &inv,
        &[],
        &["printf", "[%s]\\n", "a b", "$(id)", "it's", ";", "x\ny"],
    );
    run.assert_code(0);
    assert_eq!(
        run.host("node01")["stdout"],
        "[a b]\n[$(id)]\n[it's]\n[;]\n[x\ny]\n"
    );
}

#[test]
fn a_signal_is_reported_as_such() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory("");
    let run = exec_json(&c, &inv, &[], &["kill -TERM $$"]);
    run.assert_code(2);
    let r = run.host("node01");
    assert!(r["rc"].is_null(), "{r}");
    assert_eq!(r["signal"], "TERM");
    assert!(r["error"].as_str().unwrap().contains("signal TERM"));
}

#[test]
fn password_authentication_and_a_wrong_password() {
    let c = SshCluster::start(2);
    // No key anywhere: the inventory gives only the password.
    let inv = c.dir.path().join("pw.ini");
    let hosts: String = c
        .hosts
        .iter()
        .map(|h| {
            format!(
                "{} ansible_host={} ansible_port={}\n",
                h.name, h.addr, h.port
            )
        })
        .collect();
    fs::write(&inv, format!("[nodes]\n{hosts}\n[all:vars]\nansible_user={TEST_USER}\nansible_password={TEST_PASSWORD}\n")).unwrap();
    let run = exec_json(&c, &inv, &[], &["whoami"]);
    run.assert_code(0);
    assert_eq!(run.host("node01")["stdout"], format!("{TEST_USER}\n"));

    fs::write(&inv, format!("[nodes]\n{hosts}\n[all:vars]\nansible_user={TEST_USER}\nansible_password=wrong-Pw-991\n")).unwrap();
    let run = exec_json(&c, &inv, &[], &["whoami"]);
    run.assert_code(3);
    let e = run.host("node02")["error"].as_str().unwrap().to_owned();
    assert!(e.starts_with("authentication: permission denied"), "{e}");
    assert!(!run.stdout.contains("wrong-Pw-991") && !run.stderr.contains("wrong-Pw-991"));
}

#[test]
fn rsa_and_ecdsa_keys_authenticate() {
    let c = SshCluster::start(1);
    for key in [c.rsa_client_key(), c.ecdsa_client_key()] {
        let home = empty_home();
        // The inventory names no key, so --private-key applies.
        let inv2 = c.dir.path().join("nokey.ini");
        fs::write(
            &inv2,
            format!(
                "node01 ansible_host={} ansible_port={} ansible_user={TEST_USER}\n",
                c.hosts[0].addr, c.port
            ),
        )
        .unwrap();
        let run = Kamo::new(home.path())
            .args(["exec", "all", "-i"])
            .arg_path(&inv2)
            .args(["--known-hosts"])
            .arg_path(&c.known_hosts)
            .args(["--output", "json", "--private-key"])
            .arg_path(&key)
            .args(["--", "whoami"])
            .run();
        run.assert_code(0);
        assert_eq!(
            run.host("node01")["stdout"],
            format!("{TEST_USER}\n"),
            "{}",
            key.display()
        );
    }
}

#[test]
fn encrypted_key_with_passphrase_from_the_environment() {
    let c = SshCluster::start(1);
    let key = c.encrypted_client_key("correct horse");
    let inv = c.dir.path().join("enc.ini");
    fs::write(&inv, format!(
        "node01 ansible_host={} ansible_port={} ansible_user={TEST_USER} ansible_ssh_private_key_file={}\n",
        c.hosts[0].addr, c.port, key.display()
    )).unwrap();
    let home = empty_home();
    let base = |pass: &str| {
        Kamo::new(home.path())
            .args(["exec", "all", "-i"])
            .arg_path(&inv)
            .args(["--known-hosts"])
            .arg_path(&c.known_hosts)
            .args(["--output", "json", "--", "echo ok"])
            .env("KAMO_KEY_PASSPHRASE", pass)
            .run()
    };
    let run = base("correct horse");
    run.assert_code(0);
    assert_eq!(run.host("node01")["stdout"], "ok\n");
    let run = base("wrong horse");
    run.assert_code(1);
    assert!(run.stderr.contains("wrong passphrase"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "nothing ran: {}", run.stdout);
    assert!(!run.stderr.contains("wrong horse"));
}

#[test]
fn key_readable_by_others_is_refused() {
    let c = SshCluster::start(1);
    let loose = c.dir.path().join("loose_key");
    fs::copy(&c.client_key, &loose).unwrap();
    fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let inv = c.dir.path().join("loose.ini");
    fs::write(&inv, format!(
        "node01 ansible_host={} ansible_port={} ansible_user={TEST_USER} ansible_ssh_private_key_file={}\n",
        c.hosts[0].addr, c.port, loose.display()
    )).unwrap();
    let run = exec_json(&c, &inv, &[], &["true"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("accessible by others"),
        "{}",
        run.stderr
    );
}

#[test]
fn sudo_with_a_password_on_stdin() {
    let c = SshCluster::start(2);
    let inv = c.write_inventory(&format!("ansible_become_password={TEST_PASSWORD}\n"));
    let run = exec_json(
        &c,
        &inv,
        &["--become"],
        &["id -u; ps -eo args | grep -c '[k]amo-Test-pw' || true"],
    );
    run.assert_code(0);
    for h in &c.hosts {
        // root, and no process on the node had the password on its command line.
        assert_eq!(run.host(&h.name)["stdout"], "0\n0\n");
    }
    assert!(!run.stdout.contains(TEST_PASSWORD));

    // A wrong sudo password fails the host (exit 2), it does not hang.
    let inv = c.write_inventory("ansible_become_password=not-the-pw\n");
    let run = exec_json(&c, &inv, &["--become"], &["id -u"]);
    run.assert_code(2);
    assert!(!run.stdout.contains("not-the-pw"));
    let err = run.host("node01")["stderr"].as_str().unwrap().to_owned();
    assert!(err.contains("incorrect password"), "{err}");

    // When sudo does not ask (root here, NOPASSWD elsewhere), the password is not handed to
    // the command: `cat` reads the command's stdin and must find nothing.
    let inv = c.write_inventory(&format!(
        "ansible_user=root\nansible_become_password={TEST_PASSWORD}\n"
    ));
    let run = exec_json(&c, &inv, &["--become"], &["cat; id -u"]);
    run.assert_code(0);
    assert_eq!(run.host("node01")["stdout"], "0\n", "{run:?}");

    // No password at all: sudo -n refuses at once.
    let inv = c.write_inventory("");
    let run = exec_json(&c, &inv, &["-b"], &["id -u"]);
    run.assert_code(2);
    assert!(
        run.host("node01")["stderr"]
            .as_str()
            .unwrap()
            .contains("password"),
        "{run:?}"
    );
}

#[test]
fn forks_one_still_reaches_every_host() {
    let c = SshCluster::start(4);
    let inv = c.write_inventory("");
    let run = exec_json(&c, &inv, &["-f", "1"], &["true"]);
    run.assert_code(0);
    assert_eq!(run.json_lines().len(), 4);
}

#[test]
fn local_connection_runs_on_the_workstation() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory("\n[coordinator]\nlocalhost ansible_connection=local\n");
    let run = exec_json(&c, &inv, &[], &["echo $SSH_CONNECTION; echo here"]);
    run.assert_code(0);
    assert_eq!(run.host("localhost")["stdout"], "\nhere\n");
}

#[test]
fn proxy_jump_through_one_bastion() {
    let c = SshCluster::start(2);
    let (bastion, inner) = (&c.hosts[0], &c.hosts[1]);
    let cfg = c.dir.path().join("ssh_config");
    fs::write(
        &cfg,
        format!(
            "Host {inner}\n  ProxyJump {TEST_USER}@{b}:{p}\nHost {b}\n  IdentityFile {key}\n",
            inner = inner.addr,
            b = bastion.addr,
            p = c.port,
            key = c.client_key.display()
        ),
    )
    .unwrap();
    let inv = c.dir.path().join("jump.ini");
    fs::write(&inv, format!(
        "inner ansible_host={} ansible_port={} ansible_user={TEST_USER} ansible_ssh_private_key_file={}\n",
        inner.addr, c.port, c.client_key.display()
    )).unwrap();
    let home = empty_home();
    let run = Kamo::new(home.path())
        .args(["exec", "all", "-i"])
        .arg_path(&inv)
        .args(["--known-hosts"])
        .arg_path(&c.known_hosts)
        .args(["--ssh-config"])
        .arg_path(&cfg)
        .args(["--output", "json", "--", "echo $SSH_CONNECTION"])
        .run();
    run.assert_code(0);
    assert!(
        run.host("inner")["stdout"]
            .as_str()
            .unwrap()
            .contains(&inner.addr)
    );

    // The jump host is really used: with its key gone from the config, the inner host is
    // unreachable and the error names the jump host.
    fs::write(
        &cfg,
        format!(
            "Host {}\n  ProxyJump nobody@{}:{}\n",
            inner.addr, bastion.addr, c.port
        ),
    )
    .unwrap();
    let run = Kamo::new(home.path())
        .args(["exec", "all", "-i"])
        .arg_path(&inv)
        .args(["--known-hosts"])
        .arg_path(&c.known_hosts)
        .args(["--ssh-config"])
        .arg_path(&cfg)
        .args(["--output", "json", "--", "true"])
        .run();
    run.assert_code(3);
    let e = run.host("inner")["error"].as_str().unwrap().to_owned();
    assert!(e.contains("jump host"), "{e}");
}

#[test]
fn bad_options_exit_5() {
    let home = empty_home();
    for args in [
        vec!["exec", "all"],
        vec!["exec", "all", "-f", "0", "--", "true"],
        vec!["exec", "all", "--host-key-checking", "maybe", "--", "true"],
        vec!["frobnicate"],
    ] {
        Kamo::new(home.path()).args(&args).run().assert_code(5);
    }
    // No inventory anywhere is a usage error too.
    let run = Kamo::new(home.path())
        .args(["exec", "all", "--", "true"])
        .run();
    run.assert_code(5);
    assert!(run.stderr.contains("no inventory"), "{}", run.stderr);
}

#[test]
fn interrupt_exits_99() {
    let c = SshCluster::start(2);
    let inv = c.write_inventory("");
    let home = empty_home();
    let mut child = Kamo::new(home.path())
        .args(["exec", "all", "-i"])
        .arg_path(&inv)
        .args(["--known-hosts"])
        .arg_path(&c.known_hosts)
        .args(["--", "sleep 30"])
        .spawn();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed().as_secs() < 10,
            "kamo did not stop after SIGINT"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(99));
}

/// Ctrl-C ends the commands still running on the nodes (their whole process group, as
/// `--task-timeout` does) before kamo exits 99: closing the connections alone would leave a
/// quiet command (`sleep`) running there, and what follows it in the command line would run
/// once it ended.
#[test]
fn interrupt_ends_the_remote_commands_on_the_nodes() {
    let lab = crate::support::lab::Lab::up(2, &[]);
    // A sleep length no other test uses, so the node's process list can be searched for it.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = 900_000 + u64::from(nanos % 90_000);
    let mark = format!("/tmp/kamo-interrupted-{n}");
    // `slee[p]`: the pattern does not match the command line of the shell that runs pgrep.
    let running = format!("pgrep -f 'slee[p] {n}'");
    let mut child = lab
        .kamo()
        .args(["exec", "all", "-i"])
        .arg_path(&lab.inventory())
        .args(["--", &format!("sleep {n}; touch {mark}")])
        .spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = lab.exec("all", &[], &format!("{running} >/dev/null"));
        if r.code == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the command never ran on both nodes: {r:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // SAFETY: kill(2) on the kamo process this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed().as_secs() >= 15 {
            let _ = child.kill();
            panic!("kamo did not stop within 15 s of SIGINT");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // What is left on the nodes, a moment later (then removed, whatever the verdict).
    std::thread::sleep(std::time::Duration::from_millis(500));
    let left = lab.exec(
        "all",
        &[],
        &format!("{running}; test -e {mark} && echo MARK; true"),
    );
    let _ = lab.exec(
        "all",
        &[],
        &format!("pkill -f 'slee[p] {n}'; rm -f {mark}; true"),
    );
    left.assert_code(0);
    for host in ["node01", "node02"] {
        let shown = left.host(host)["stdout"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_owned();
        assert!(
            shown.is_empty(),
            "{host} still runs the interrupted command (or ran what followed it): {shown:?}"
        );
    }
    assert_eq!(status.code(), Some(99), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
}

/// sshd's `MaxStartups` drops connections beyond a few unauthenticated ones (here 1 per sshd,
/// as a crowded bastion or a 1,000-host run through few daemons sees it): every host still
/// answers, dropped connections being tried again (issue 9).
#[test]
fn a_crowded_sshd_that_drops_connections_is_retried_until_every_host_answers() {
    let c = SshCluster::start_with(96, "MaxStartups 1:100:1");
    let inv = c.write_inventory("");
    let run = exec_json(&c, &inv, &["-f", "96"], &["true"]);
    run.assert_code(0);
    assert_eq!(run.json_lines().len(), 96, "{}", run.stdout);
}

/// A soft limit of 64 open files (with a higher hard limit) does not stop a run over 100 hosts
/// at once: kamo raises it at start. A hard limit of 64 does, before any host is touched, with
/// the figures and the fix (issue 9).
#[test]
fn the_open_file_limit_is_raised_or_named_before_anything_starts() {
    let c = SshCluster::start(100);
    let inv = c.write_inventory("");
    let home = empty_home();
    let run = |limit: &str| {
        Kamo::via(home.path(), &["prlimit", limit])
            .args(["exec", "all", "-f", "100", "-i"])
            .arg_path(&inv)
            .args(["--known-hosts"])
            .arg_path(&c.known_hosts)
            .args(["--output", "json", "--", "true"])
            .run()
    };
    let r = run("--nofile=64:4096");
    r.assert_code(0);
    assert_eq!(r.json_lines().len(), 100);
    let r = run("--nofile=64:64");
    r.assert_code(1);
    assert!(
        r.stderr.contains("100 connections at once") && r.stderr.contains("ulimit -n"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

/// 1,000 hosts at once (`-f 1000`) on this small machine: each handshake gets its own
/// `--timeout` instead of sharing the CPU with 999 others until most time out (903 of 1,000
/// did before handshakes were bounded), and the open-file limit is raised (issue 9).
#[test]
fn a_thousand_hosts_at_once_all_answer() {
    let c = SshCluster::start(1000);
    let inv = c.write_inventory("");
    let run = exec_json(&c, &inv, &["-f", "1000"], &["true"]);
    run.assert_code(0);
    assert_eq!(run.json_lines().len(), 1000);
}

/// kamo offers `ecdh-sha2-nistp256` first (cheaper for sshd than its reference curve25519)
/// and gets curve25519 from a server whose `KexAlgorithms` leaves P-256 out; sshd's own
/// debug log says which one it agreed.
#[test]
fn key_exchange_is_p256_first_and_curve25519_where_the_server_leaves_it_out() {
    for (server, agreed) in [
        ("", "ecdh-sha2-nistp256"),
        ("KexAlgorithms curve25519-sha256\n", "curve25519-sha256"),
    ] {
        let c = SshCluster::start_with(1, &format!("{server}LogLevel DEBUG1\n"));
        let inv = c.write_inventory("");
        let run = crate::support::kamo::exec_all(&c.known_hosts, &inv, &[], "echo kex-ok");
        run.assert_code(0);
        assert!(run.stdout.contains("kex-ok"), "{run:?}");
        let logs = c.sshd_logs();
        assert!(
            logs.contains(&format!("kex: algorithm: {agreed}")),
            "sshd did not agree {agreed}:\n{logs}"
        );
    }
}
