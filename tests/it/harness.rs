//! Self-tests of the sshd harness, using the system OpenSSH client (`ssh`), never kamo.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{SshCluster, TEST_PASSWORD, TEST_USER, TestHost, kamo_bin, run_bounded};

const SSH_TIMEOUT: Duration = Duration::from_secs(30);

/// `ssh` with no user config, strict host key checking against `known_hosts`, and `key`.
fn ssh_cmd(known_hosts: &Path, host: &TestHost, user: &str) -> Command {
    let mut c = Command::new("ssh");
    c.args(["-F", "/dev/null", "-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .args(["-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"])
        .arg("-p")
        .arg(host.port.to_string())
        .arg(format!("{user}@{}", host.addr));
    c
}

/// Key-only, non-interactive login.
fn ssh_key(cluster: &SshCluster, key: &Path, host: &TestHost, user: &str, cmd: &str) -> Output {
    let mut c = Command::new("ssh");
    c.args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"])
        .arg(key);
    // Our options go before the common ones, which end with the destination.
    let base = ssh_cmd(&cluster.known_hosts, host, user);
    c.args(base.get_args()).arg(cmd);
    run_bounded(&mut c, SSH_TIMEOUT)
}

/// Login where ssh asks `secret` of an askpass script: the password (password auth only) or
/// the passphrase of `key` (public key auth only). No sshpass needed.
fn ssh_askpass(
    cluster: &SshCluster,
    host: &TestHost,
    key: Option<&Path>,
    secret: &str,
    cmd: &str,
) -> Output {
    let askpass = cluster
        .dir
        .path()
        .join(format!("askpass-{}", rand_suffix()));
    fs::write(&askpass, format!("#!/bin/sh\nprintf '%s\\n' '{secret}'\n")).unwrap();
    fs::set_permissions(&askpass, fs::Permissions::from_mode(0o700)).unwrap();
    let mut c = Command::new("setsid");
    c.arg("ssh");
    match key {
        Some(k) => {
            c.args(["-o", "PreferredAuthentications=publickey", "-o"])
                .arg("IdentitiesOnly=yes")
                .arg("-i")
                .arg(k);
        }
        None => {
            c.args(["-o", "PreferredAuthentications=password"])
                .args(["-o", "PubkeyAuthentication=no"]);
        }
    }
    c.args(["-o", "NumberOfPasswordPrompts=1"]);
    let base = ssh_cmd(&cluster.known_hosts, host, TEST_USER);
    c.args(base.get_args())
        .arg(cmd)
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .env_remove("SSH_AUTH_SOCK");
    run_bounded(&mut c, SSH_TIMEOUT)
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn assert_ok(o: &Output, what: &str, cluster: &SshCluster) {
    assert!(
        o.status.success(),
        "{what} failed ({}): stdout {:?} stderr {:?}\nsshd logs:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        cluster.sshd_logs()
    );
}

fn port_closed(addr: &str, port: u16) -> bool {
    let sa: SocketAddr = format!("{addr}:{port}").parse().unwrap();
    TcpStream::connect_timeout(&sa, Duration::from_millis(500)).is_err()
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn twenty_hosts_answer_as_the_test_user_with_strict_host_keys() {
    let cluster = SshCluster::start(20);
    assert_eq!(cluster.hosts.len(), 20);
    assert_eq!(cluster.pids().len(), 2, "one sshd per 16 addresses");
    let mut addrs: Vec<&str> = cluster.hosts.iter().map(|h| h.addr.as_str()).collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 20, "every host has its own address");
    assert_eq!(cluster.hosts[0].name, "node01");
    assert_eq!(cluster.hosts[19].name, "node20");
    for h in &cluster.hosts {
        assert!(h.addr.starts_with("127."), "{h:?}");
        assert_eq!(h.port, cluster.port);
    }

    let known = fs::read_to_string(&cluster.known_hosts).unwrap();
    let host_pub = fs::read_to_string(&cluster.host_key_pub).unwrap();
    let host_key: Vec<&str> = host_pub.split_whitespace().take(2).collect();
    assert_eq!(host_key[0], "ssh-ed25519");
    for h in &cluster.hosts {
        let line = format!("[{}]:{} {} {}", h.addr, h.port, host_key[0], host_key[1]);
        assert!(known.lines().any(|l| l == line), "{line} not in {known}");
    }

    // All hosts at once, as kamo will do.
    let results: Vec<(TestHost, Output)> = std::thread::scope(|s| {
        let handles: Vec<_> = cluster
            .hosts
            .iter()
            .map(|h| {
                let cluster = &cluster;
                s.spawn(move || {
                    let o = ssh_key(cluster, &cluster.client_key, h, TEST_USER, "whoami");
                    (h.clone(), o)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (h, o) in &results {
        assert_ok(o, &format!("ssh to {}", h.name), &cluster);
        assert_eq!(stdout(o), TEST_USER, "on {}", h.name);
    }
}

#[test]
fn strict_checking_rejects_an_unknown_host_key() {
    let cluster = SshCluster::start(1);
    let empty = cluster.dir.path().join("empty_known_hosts");
    fs::write(&empty, "").unwrap();
    let mut c = Command::new("ssh");
    c.args(["-o", "BatchMode=yes", "-i"])
        .arg(&cluster.client_key);
    let base = ssh_cmd(&empty, &cluster.hosts[0], TEST_USER);
    c.args(base.get_args()).arg("true");
    let o = run_bounded(&mut c, SSH_TIMEOUT);
    assert!(!o.status.success(), "an unknown host key must be refused");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("ost key verification failed"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn root_logs_in_with_the_client_key_and_shells_skip_rc_files() {
    let cluster = SshCluster::start(1);
    let h = &cluster.hosts[0];
    let o = ssh_key(&cluster, &cluster.client_key, h, "root", "whoami");
    assert_ok(&o, "ssh root", &cluster);
    assert_eq!(stdout(&o), "root");
    let o = ssh_key(
        &cluster,
        &cluster.client_key,
        h,
        TEST_USER,
        "echo $SHELL; ls -A ~",
    );
    assert_ok(&o, "ssh kamotest", &cluster);
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("/bin/sh"), "{out}");
    for rc in [".bashrc", ".profile", ".bash_logout"] {
        assert!(!out.lines().any(|l| l == rc), "{rc} left in home: {out}");
    }
}

#[test]
fn rsa_and_ecdsa_client_keys_work() {
    let cluster = SshCluster::start(2);
    let rsa = cluster.rsa_client_key();
    let ecdsa = cluster.ecdsa_client_key();
    for (key, kind) in [(&rsa, "ssh-rsa"), (&ecdsa, "ecdsa-sha2-nistp256")] {
        let pubkey = fs::read_to_string(format!("{}.pub", key.display())).unwrap();
        assert!(pubkey.starts_with(kind), "{pubkey}");
        for h in &cluster.hosts {
            let o = ssh_key(&cluster, key, h, TEST_USER, "whoami");
            assert_ok(&o, &format!("ssh with {kind}"), &cluster);
            assert_eq!(stdout(&o), TEST_USER);
        }
    }
}

#[test]
fn encrypted_key_is_encrypted_and_authorized() {
    let cluster = SshCluster::start(1);
    let pass = "secret phrase 42";
    let key: PathBuf = cluster.encrypted_client_key(pass);
    let keygen = |p: &str| {
        run_bounded(
            Command::new("ssh-keygen")
                .args(["-y", "-P", p, "-f"])
                .arg(&key),
            SSH_TIMEOUT,
        )
    };
    assert!(
        !keygen("").status.success(),
        "the key must need a passphrase"
    );
    assert!(!keygen("wrong").status.success());
    let o = keygen(pass);
    assert_ok(&o, "ssh-keygen -y with the passphrase", &cluster);
    assert!(stdout(&o).starts_with("ssh-ed25519 "));

    let h = &cluster.hosts[0];
    // BatchMode cannot ask for the passphrase: the key is refused without it.
    let o = ssh_key(&cluster, &key, h, TEST_USER, "true");
    assert!(!o.status.success());
    let o = ssh_askpass(&cluster, h, Some(&key), pass, "whoami");
    assert_ok(&o, "ssh with the encrypted key", &cluster);
    assert_eq!(stdout(&o), TEST_USER);
}

#[test]
fn password_login_works_and_wrong_password_fails() {
    let cluster = SshCluster::start(1);
    let h = &cluster.hosts[0];
    let o = ssh_askpass(&cluster, h, None, TEST_PASSWORD, "whoami");
    assert_ok(&o, "ssh with the password", &cluster);
    assert_eq!(stdout(&o), TEST_USER);
    let o = ssh_askpass(&cluster, h, None, "not-the-password", "whoami");
    assert!(!o.status.success(), "a wrong password must fail");
}

#[test]
fn start_with_overrides_settings() {
    let cluster = SshCluster::start_with(1, "PasswordAuthentication no");
    let h = &cluster.hosts[0];
    let o = ssh_askpass(&cluster, h, None, TEST_PASSWORD, "whoami");
    assert!(!o.status.success(), "password auth must be off");
    let o = ssh_key(&cluster, &cluster.client_key, h, TEST_USER, "whoami");
    assert_ok(&o, "key login", &cluster);

    let cluster = SshCluster::start_with(1, "Match User root\n  PermitRootLogin no");
    let h = &cluster.hosts[0];
    let o = ssh_key(&cluster, &cluster.client_key, h, "root", "true");
    assert!(
        !o.status.success(),
        "root must be refused by the Match block"
    );
    let o = ssh_key(&cluster, &cluster.client_key, h, TEST_USER, "true");
    assert_ok(&o, "key login", &cluster);
}

#[test]
fn sudo_needs_and_accepts_the_password() {
    let cluster = SshCluster::start(1);
    let h = &cluster.hosts[0];
    let cmd = format!("echo '{TEST_PASSWORD}' | sudo -S -k -p '' whoami");
    let o = ssh_key(&cluster, &cluster.client_key, h, TEST_USER, &cmd);
    assert_ok(&o, "sudo with the password", &cluster);
    assert_eq!(stdout(&o), "root");
    let o = ssh_key(
        &cluster,
        &cluster.client_key,
        h,
        TEST_USER,
        "echo wrong | sudo -S -k -p '' true",
    );
    assert!(!o.status.success(), "sudo must reject a wrong password");
    let o = ssh_key(
        &cluster,
        &cluster.client_key,
        h,
        TEST_USER,
        "sudo -n -k true",
    );
    assert!(!o.status.success(), "sudo must ask for a password");
}

#[test]
fn sftp_subsystem_works() {
    let cluster = SshCluster::start(1);
    let h = &cluster.hosts[0];
    let batch = cluster.dir.path().join("sftp-batch");
    fs::write(&batch, "pwd\n").unwrap();
    let mut c = Command::new("sftp");
    c.args([
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
    ])
    .arg("-o")
    .arg(format!(
        "UserKnownHostsFile={}",
        cluster.known_hosts.display()
    ))
    .arg("-i")
    .arg(&cluster.client_key)
    .arg("-b")
    .arg(&batch)
    .arg("-P")
    .arg(h.port.to_string())
    .arg(format!("{TEST_USER}@{}", h.addr));
    let o = run_bounded(&mut c, SSH_TIMEOUT);
    assert_ok(&o, "sftp", &cluster);
    assert!(stdout(&o).contains("/home/kamotest"), "{}", stdout(&o));
}

#[test]
fn drop_stops_sshd_and_closes_the_port() {
    let cluster = SshCluster::start(17);
    let pids = cluster.pids();
    assert_eq!(pids.len(), 2);
    // An open session must not keep anything running after drop.
    let h = cluster.hosts[16].clone();
    let mut c = Command::new("ssh");
    c.args(["-o", "BatchMode=yes", "-i"])
        .arg(&cluster.client_key);
    let base = ssh_cmd(&cluster.known_hosts, &h, TEST_USER);
    c.args(base.get_args()).arg("sleep 30");
    let mut session = c
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let hosts = cluster.hosts.clone();
    let dir = cluster.dir.path().to_path_buf();
    drop(cluster);
    for pid in &pids {
        assert!(!pid_alive(*pid), "sshd {pid} still runs");
    }
    for h in &hosts {
        assert!(
            port_closed(&h.addr, h.port),
            "{}:{} still open",
            h.addr,
            h.port
        );
    }
    assert!(!dir.exists(), "the cluster dir is removed");
    // The session's connection is gone, so the client ends (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if session.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() >= deadline {
            let _ = session.kill();
            let _ = session.wait();
            panic!("the ssh session survived the cluster's drop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dead_addr_refuses_connections() {
    let cluster = SshCluster::start(1);
    let dead = cluster.dead_addr();
    assert!(dead.starts_with("127."));
    assert!(cluster.hosts.iter().all(|h| h.addr != dead));
    assert!(port_closed(&dead, cluster.port));
}

#[test]
fn inventory_lists_every_host() {
    let cluster = SshCluster::start(3);
    let inv = cluster.write_inventory("[nodes:vars]\nfoo=bar\n");
    let text = fs::read_to_string(&inv).unwrap();
    assert!(inv.starts_with(cluster.dir.path()));
    let mut expected = String::from("[nodes]\n");
    for h in &cluster.hosts {
        expected.push_str(&format!(
            "{} ansible_host={} ansible_port={}\n",
            h.name, h.addr, h.port
        ));
    }
    expected.push_str(&format!(
        "\n[all:vars]\nansible_user=kamotest\nansible_ssh_private_key_file={}\n[nodes:vars]\nfoo=bar\n",
        cluster.client_key.display()
    ));
    assert_eq!(text, expected);
    let second = cluster.write_inventory("");
    assert_ne!(
        second, inv,
        "a second inventory does not overwrite the first"
    );
}

#[test]
fn parallel_clusters_get_distinct_addresses() {
    let clusters: Vec<SshCluster> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4).map(|_| s.spawn(|| SshCluster::start(3))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut addrs: Vec<String> = clusters
        .iter()
        .flat_map(|c| c.hosts.iter().map(|h| h.addr.clone()))
        .collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 12);
    for c in &clusters {
        let o = ssh_key(c, &c.client_key, &c.hosts[2], TEST_USER, "true");
        assert_ok(&o, "ssh", c);
    }
}

#[test]
fn kamo_binary_is_built() {
    // Not run: the binary is only a stub so far.
    assert!(kamo_bin().is_file(), "{}", kamo_bin().display());
}

#[test]
fn a_bad_config_panics_with_the_sshd_log() {
    let err = std::panic::catch_unwind(|| SshCluster::start_with(1, "NoSuchKeyword yes"))
        .expect_err("sshd must refuse an unknown keyword");
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(msg.contains("exited with"), "{msg}");
    assert!(
        msg.contains("NoSuchKeyword"),
        "the panic shows sshd's log: {msg}"
    );
}
