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

/// `accept-new` records a new key in the file kamo reads for that host, never in the user's
/// `~/.ssh/known_hosts` when another file was named (issue 10): the inventory's
/// `-o UserKnownHostsFile` (created 0600, with its directory, when missing), the first
/// `--known-hosts` file over it, the ssh config's `UserKnownHostsFile`; only a host that
/// names none gets `~/.ssh/known_hosts`. Against a `kamo lab` node, each case in an empty
/// `HOME`.
#[test]
fn accept_new_writes_the_known_hosts_file_named_for_the_host_not_the_users() {
    use std::os::unix::fs::PermissionsExt;
    let lab = crate::support::lab::Lab::up(1, &[]);
    let lab_kh = lab.dir.join("known_hosts");
    let lab_keys = fs::read_to_string(&lab_kh).unwrap();
    let inventory = fs::read_to_string(lab.inventory()).unwrap();
    assert!(inventory.contains(&format!("UserKnownHostsFile={}", lab_kh.display())));
    let scratch = tempfile::tempdir().unwrap();
    let inventory_naming = |file: &Path| {
        let p = scratch.path().join(format!(
            "inv-{}.ini",
            fs::read_dir(scratch.path()).unwrap().count()
        ));
        let text = match file.to_str() {
            Some("") => inventory
                .lines()
                .filter(|l| !l.starts_with("ansible_ssh_common_args"))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => inventory.replace(&lab_kh.display().to_string(), &file.display().to_string()),
        };
        fs::write(&p, text).unwrap();
        p
    };
    let accept_new = |home: &Path, inv: &Path, mode: &str, extra: &[&str]| {
        Kamo::new(home)
            .args(["exec", "all", "-i"])
            .arg_path(inv)
            .args(["--host-key-checking", mode, "--output", "json"])
            .args(extra)
            .args(["--", "true"])
            .run()
    };
    // One line, the node's key (the lab recorded it too), in a private file.
    let learned = |file: &Path| {
        let text = fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("{} was not written: {e}", file.display()));
        assert_eq!(text.lines().count(), 1, "{text}");
        let key: Vec<&str> = text.split_whitespace().skip(1).take(2).collect();
        assert!(lab_keys.contains(&key.join(" ")), "{text} vs {lab_keys}");
        let mode = fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    };
    let users = |home: &Path| home.join(".ssh/known_hosts");

    // The inventory's file, missing with its directory.
    let home = empty_home();
    let named = scratch.path().join("new-dir/inventory_known_hosts");
    let inv = inventory_naming(&named);
    accept_new(home.path(), &inv, "accept-new", &[]).assert_code(0);
    learned(&named);
    assert!(
        !users(home.path()).exists(),
        "~/.ssh/known_hosts was written"
    );
    // ... and it is what kamo reads for the host.
    accept_new(home.path(), &inv, "strict", &[]).assert_code(0);

    // --known-hosts wins over the inventory's file.
    let home = empty_home();
    let given = scratch.path().join("given_known_hosts");
    let unused = scratch.path().join("unused_known_hosts");
    let inv = inventory_naming(&unused);
    accept_new(
        home.path(),
        &inv,
        "accept-new",
        &["--known-hosts", given.to_str().unwrap()],
    )
    .assert_code(0);
    learned(&given);
    assert!(!unused.exists() && !users(home.path()).exists());

    // The ssh config's UserKnownHostsFile, for an inventory that names none.
    let home = empty_home();
    fs::create_dir(home.path().join(".ssh")).unwrap();
    fs::write(
        home.path().join(".ssh/config"),
        "Host *\n  UserKnownHostsFile ~/config_known_hosts\n",
    )
    .unwrap();
    let bare = inventory_naming(Path::new(""));
    accept_new(home.path(), &bare, "accept-new", &[]).assert_code(0);
    learned(&home.path().join("config_known_hosts"));
    assert!(
        !users(home.path()).exists(),
        "~/.ssh/known_hosts was written"
    );

    // Nothing named: the user's file, as before.
    let home = empty_home();
    accept_new(home.path(), &bare, "accept-new", &[]).assert_code(0);
    learned(&users(home.path()));
}
