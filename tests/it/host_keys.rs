//! Host-key verification against real sshd host keys: changed, unknown, accept-new, hashed, off.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::kamo::{Kamo, Run, empty_home};
use crate::support::sshd::SshCluster;

fn exec(c: &SshCluster, known_hosts: &Path, mode: &str, cmd: &str) -> Run {
    let inv = c.write_inventory("");
    let home = empty_home();
    Kamo::new(home.path())
        .args(["exec", "all", "-i"])
        .arg_path(&inv)
        .args(["--known-hosts"])
        .arg_path(known_hosts)
        .args(["--host-key-checking", mode, "--output", "json", "--", cmd])
        .run()
}

/// A fresh ed25519 public key line body (`ssh-ed25519 AAAA...`), not the cluster's.
fn other_key(dir: &Path) -> String {
    let path = dir.join(format!("other_{}", std::process::id()));
    let _ = fs::remove_file(&path);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let pubkey = fs::read_to_string(path.with_extension("pub")).unwrap();
    pubkey
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Marker directory where hosts record that the command ran.
fn marks() -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().unwrap();
    fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let cmd = format!(
        "touch {}/ran-$(echo $SSH_CONNECTION | cut -d' ' -f3)",
        d.path().display()
    );
    (d, cmd)
}

#[test]
fn a_changed_key_is_refused_with_fingerprint_and_file_line() {
    let c = SshCluster::start(3);
    let victim = &c.hosts[1];
    let good = fs::read_to_string(&c.known_hosts).unwrap();
    let kh: PathBuf = c.dir.path().join("changed_known_hosts");
    let mut text = String::from("# managed by ops\n");
    let mut bad_line = 0;
    for (i, line) in good.lines().enumerate() {
        if line.starts_with(&format!("[{}]:", victim.addr)) {
            text.push_str(&format!(
                "[{}]:{} {}\n",
                victim.addr,
                c.port,
                other_key(c.dir.path())
            ));
            bad_line = i + 2;
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    fs::write(&kh, &text).unwrap();
    let (m, cmd) = marks();
    let run = exec(&c, &kh, "strict", &cmd);
    run.assert_code(3);
    let r = run.host(&victim.name);
    assert_eq!(r["status"], "unreachable");
    let e = r["error"].as_str().unwrap();
    assert!(e.starts_with("host key:"), "{e}");
    assert!(e.contains("CHANGED"), "{e}");
    assert!(e.contains("SHA256:"), "{e}");
    assert!(e.contains(&format!("{}:{bad_line}", kh.display())), "{e}");
    assert!(
        !m.path().join(format!("ran-{}", victim.addr)).exists(),
        "nothing may run on it"
    );
    for h in [&c.hosts[0], &c.hosts[2]] {
        assert!(m.path().join(format!("ran-{}", h.addr)).exists());
    }
    // accept-new never replaces a changed key.
    let run = exec(&c, &kh, "accept-new", "true");
    run.assert_code(3);
    assert_eq!(fs::read_to_string(&kh).unwrap(), text);
}

#[test]
fn an_unknown_key_is_refused_under_strict() {
    let c = SshCluster::start(2);
    let kh = c.dir.path().join("empty_known_hosts");
    fs::write(&kh, "").unwrap();
    let (m, cmd) = marks();
    let run = exec(&c, &kh, "strict", &cmd);
    run.assert_code(3);
    for h in &c.hosts {
        let e = run.host(&h.name)["error"].as_str().unwrap().to_owned();
        assert!(e.contains("not known") && e.contains("accept-new"), "{e}");
    }
    assert_eq!(fs::read_dir(m.path()).unwrap().count(), 0);
}

#[test]
fn accept_new_records_unknown_keys_then_strict_accepts_them() {
    let c = SshCluster::start(3);
    let kh = c.dir.path().join("sub/new_known_hosts");
    let run = exec(&c, &kh, "accept-new", "true");
    run.assert_code(0);
    let text = fs::read_to_string(&kh).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    for h in &c.hosts {
        assert!(text.contains(&format!("[{}]:{} ssh-ed25519 ", h.addr, c.port)));
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&kh).unwrap().permissions());
    assert_eq!(
        mode & 0o077,
        0,
        "known_hosts must not be readable by others"
    );
    exec(&c, &kh, "strict", "true").assert_code(0);
    // The same keys are not appended twice.
    exec(&c, &kh, "accept-new", "true").assert_code(0);
    assert_eq!(fs::read_to_string(&kh).unwrap(), text);
}

#[test]
fn hashed_known_hosts_entries_are_understood() {
    let c = SshCluster::start(2);
    let kh = c.dir.path().join("hashed_known_hosts");
    fs::copy(&c.known_hosts, &kh).unwrap();
    let ok = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&kh)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    let text = fs::read_to_string(&kh).unwrap();
    assert!(text.lines().all(|l| l.starts_with("|1|")), "{text}");
    exec(&c, &kh, "strict", "true").assert_code(0);
}

#[test]
fn off_accepts_anything_with_a_warning() {
    let c = SshCluster::start(1);
    let kh = c.dir.path().join("nothing_known");
    let run = exec(&c, &kh, "off", "echo fine");
    run.assert_code(0);
    assert!(
        run.stderr.contains("host keys are not verified"),
        "{}",
        run.stderr
    );
    assert!(!kh.exists(), "off must not write known_hosts");
}
