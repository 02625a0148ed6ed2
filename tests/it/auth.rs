//! Authentication paths that need more than a key file: the ssh-agent, and passwords and
//! passphrases typed at a terminal (`-k`, `-K`, encrypted keys), driven through a real pty.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::kamo::{Kamo, empty_home};
use crate::support::sshd::{SshCluster, TEST_PASSWORD, TEST_USER};

/// An inventory for the cluster's first host that names no key and no password.
fn bare_inventory(c: &SshCluster) -> std::path::PathBuf {
    let inv = c.dir.path().join("bare.ini");
    fs::write(
        &inv,
        format!(
            "node01 ansible_host={} ansible_port={} ansible_user={TEST_USER}\n",
            c.hosts[0].addr, c.port
        ),
    )
    .unwrap();
    inv
}

/// A real ssh-agent, stopped by PID when dropped.
struct Agent {
    child: std::process::Child,
    sock: std::path::PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_agent(dir: &Path) -> Agent {
    let sock = dir.join("agent.sock");
    let child = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssh-agent (openssh-client) is installed");
    let start = Instant::now();
    while !sock.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "ssh-agent did not create its socket"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Agent { child, sock }
}

#[test]
fn the_ssh_agent_authenticates() {
    let c = SshCluster::start(1);
    let agent = start_agent(c.dir.path());
    let inv = bare_inventory(&c);
    let home = empty_home();
    let run = |sock: Option<&Path>| {
        let mut k = Kamo::new(home.path())
            .args(["exec", "all", "-i"])
            .arg_path(&inv)
            .args(["--known-hosts"])
            .arg_path(&c.known_hosts)
            .args(["--output", "json", "--", "whoami"]);
        if let Some(s) = sock {
            k = k.env("SSH_AUTH_SOCK", s);
        }
        k.run()
    };
    // Without the agent there is no credential at all.
    let r = run(None);
    r.assert_code(3);
    assert!(
        r.host("node01")["error"]
            .as_str()
            .unwrap()
            .contains("no credentials"),
        "{r:?}"
    );
    // An empty agent: still refused.
    run(Some(&agent.sock)).assert_code(3);
    let added = Command::new("ssh-add")
        .arg(&c.client_key)
        .env("SSH_AUTH_SOCK", &agent.sock)
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    let r = run(Some(&agent.sock));
    r.assert_code(0);
    assert_eq!(r.host("node01")["stdout"], format!("{TEST_USER}\n"));
}

/// Runs kamo under `script` (a real pty), typing `answers` one per prompt after a pause.
fn kamo_on_a_terminal(home: &Path, args: &[String], answers: &[&str]) -> (i32, String) {
    let line = std::iter::once(env!("CARGO_BIN_EXE_kamo").to_owned())
        .chain(args.iter().cloned())
        .map(|a| shlex::try_quote(&a).unwrap().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TERM", "dumb")
        .current_dir(home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (bsdutils) is installed");
    let mut stdin = child.stdin.take().unwrap();
    for a in answers {
        std::thread::sleep(Duration::from_millis(1500));
        let _ = stdin.write_all(format!("{a}\n").as_bytes());
        let _ = stdin.flush();
    }
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("kamo under script did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    (status.code().unwrap_or(-1), out)
}

fn base_args(c: &SshCluster, inv: &Path) -> Vec<String> {
    vec![
        "exec".into(),
        "all".into(),
        "-i".into(),
        inv.display().to_string(),
        "--known-hosts".into(),
        c.known_hosts.display().to_string(),
        "--output".into(),
        "json".into(),
    ]
}

#[test]
fn ask_pass_and_ask_become_pass_prompt_on_the_terminal() {
    let c = SshCluster::start(1);
    let inv = bare_inventory(&c);
    let home = empty_home();
    let mut args = base_args(&c, &inv);
    args.extend(["-k", "-b", "-K", "--", "id -u"].map(String::from));
    let (code, out) = kamo_on_a_terminal(home.path(), &args, &[TEST_PASSWORD, TEST_PASSWORD]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("SSH password:") && out.contains("BECOME password:"),
        "{out}"
    );
    assert!(out.contains(r#""stdout":"0\n""#), "{out}");
}

#[test]
fn an_encrypted_key_asks_for_its_passphrase_once() {
    let c = SshCluster::start(2);
    let key = c.encrypted_client_key("typed passphrase");
    let inv = c.dir.path().join("enc.ini");
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
    fs::write(
        &inv,
        format!(
            "[n]\n{hosts}[all:vars]\nansible_user={TEST_USER}\nansible_ssh_private_key_file={}\n",
            key.display()
        ),
    )
    .unwrap();
    let home = empty_home();
    let mut args = base_args(&c, &inv);
    args.extend(["--", "echo in"].map(String::from));
    let (code, out) = kamo_on_a_terminal(home.path(), &args, &["typed passphrase"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("Enter passphrase for key").count(), 1, "{out}");
    assert_eq!(out.matches(r#""stdout":"in\n""#).count(), 2, "{out}");
}
