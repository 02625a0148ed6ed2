//! Ansible Vault on real sshd hosts (issue 10): a vaulted group_vars file, a vaulted
//! `-e @FILE` (format 1.2, labelled) and an inline `!vault` value in the playbook are decrypted with `--vault-password-file` (a file, a script,
//! `$ANSIBLE_VAULT_PASSWORD_FILE`) and reach the nodes, while the decrypted values appear
//! nowhere in what kamo prints (text, `-v --diff`, `--output json`, plan, inventory listing)
//! or records (the journal's bytes, the run logs, `show`, `log`, `history`), nor on any
//! process's command line on the workstation or the nodes while kamo runs. A wrong or
//! missing password stops kamo before any host is touched.
//!
//! The vaults are the test vectors under tests/fixtures/vault (made by the real
//! `ansible-vault`; password `kamo-vault-test`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::kamo::{Kamo, Run, empty_home};
use crate::support::planted::{Excused, Planted};
use crate::support::sshd::SshCluster;

const PASSWORD: &str = "kamo-vault-test";
/// Every plaintext of the vaults the tests use.
const SECRETS: [&str; 4] = [
    "Sup3r-s3cret-db",
    "tok-8d1f0c2e",
    "inline-v4ult-value",
    "labelled-v4lue",
];

fn fixture(name: &str) -> String {
    fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/vault")
            .join(name),
    )
    .unwrap()
}

/// The playbook: a marker first (to tell whether any host was touched), the vaulted values
/// written to a file on each node, echoed, registered and shown with `debug`.
fn playbook_text() -> String {
    let inline = fixture("inline.yml").replace('\n', "\n    ");
    format!(
        r#"- hosts: all
  gather_facts: false
  vars:
    {inline}
  tasks:
    - name: marker
      shell: touch {{{{ base }}}}/{{{{ inventory_hostname }}}}.marker
    - name: write the secrets
      copy:
        dest: "{{{{ base }}}}/{{{{ inventory_hostname }}}}.secrets"
        content: "{{{{ db_note }}}} {{{{ inline_value }}}}\n"
    - name: echo them
      shell: echo "db={{{{ db_note }}}} token={{{{ api_word }}}} label={{{{ label_value | default('') }}}}"
      register: echoed
    - debug: var=echoed.stdout
    - debug:
        msg: "inline is {{{{ inline_value }}}}"
"#
    )
}

struct Setup {
    home: tempfile::TempDir,
    base: tempfile::TempDir,
    inv: PathBuf,
    playbook: PathBuf,
    password_file: PathBuf,
}

/// An inventory directory with `group_vars/nodes.yml` vaulted (format 1.1) and the cluster's
/// hosts; the playbook; a 0600 password file.
fn setup(c: &SshCluster) -> Setup {
    let home = empty_home();
    let base = tempfile::tempdir().unwrap();
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let dir = home.path().join("inventory");
    fs::create_dir_all(dir.join("group_vars")).unwrap();
    let inv = dir.join("hosts.ini");
    fs::write(&inv, fs::read_to_string(c.write_inventory("")).unwrap()).unwrap();
    fs::write(dir.join("group_vars/nodes.yml"), fixture("vars-1.1.yml")).unwrap();
    let playbook = home.path().join("site.yml");
    fs::write(&playbook, playbook_text()).unwrap();
    let password_file = home.path().join("vault-pass");
    fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    fs::set_permissions(&password_file, fs::Permissions::from_mode(0o600)).unwrap();
    Setup {
        home,
        base,
        inv,
        playbook,
        password_file,
    }
}

impl Setup {
    fn state(&self) -> PathBuf {
        self.home.path().join("state")
    }

    fn kamo(&self) -> Kamo {
        Kamo::new(self.home.path())
    }

    fn run(&self, c: &SshCluster, extra: &[&str]) -> Run {
        self.kamo()
            .run_playbook(&self.playbook, &self.inv, &c.known_hosts)
            .args(["--state-dir"])
            .arg_path(&self.state())
            .args(["-e"])
            .arg_path(Path::new(&format!("base={}", self.base.path().display())))
            .args(extra)
            .run()
    }

    fn node_file(&self, host: &str, ext: &str) -> PathBuf {
        self.base.path().join(format!("{host}.{ext}"))
    }
}

#[track_caller]
fn assert_no_secret(what: &str, bytes: &[u8]) {
    for s in SECRETS {
        assert!(
            !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
            "the vaulted value {s:?} appears in {what}:\n{}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert!(
        !bytes
            .windows(PASSWORD.len())
            .any(|w| w == PASSWORD.as_bytes()),
        "the vault password appears in {what}"
    );
}

#[test]
fn vaulted_values_reach_the_nodes_and_nothing_kamo_prints_or_records() {
    let c = SshCluster::start(2);
    let s = setup(&c);
    let pw = s.password_file.to_str().unwrap().to_owned();
    let extra = s.home.path().join("extra.yml");
    fs::write(&extra, fixture("vars-1.2.yml")).unwrap();
    let extra = format!("@{}", extra.display());

    // Every process's command line, the nodes' included, is watched during both runs.
    let watch = Planted::new(SECRETS.iter().copied().chain([PASSWORD])).watch(Excused::Nothing);
    let text = s.run(
        &c,
        &["--vault-password-file", &pw, "-v", "--diff", "-e", &extra],
    );
    text.assert_code(0);
    for h in &c.hosts {
        assert_eq!(
            fs::read_to_string(s.node_file(&h.name, "secrets")).unwrap(),
            "Sup3r-s3cret-db inline-v4ult-value\n",
            "the decrypted values did not reach {}",
            h.name
        );
    }
    assert_no_secret("the text output", text.stdout.as_bytes());
    assert_no_secret("stderr", text.stderr.as_bytes());
    // The values were shown, as ********: the redaction did it, not silence.
    assert!(
        text.stdout.contains("inline is ********"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("db=********"), "{}", text.stdout);
    assert!(text.stdout.contains("label=********"), "{}", text.stdout);

    let json = s.run(
        &c,
        &[
            "--vault-password-file",
            &pw,
            "--output",
            "json",
            "-e",
            &extra,
        ],
    );
    json.assert_code(0);
    watch.assert_clean();
    assert_no_secret("--output json", json.stdout.as_bytes());
    assert_no_secret("stderr (json)", json.stderr.as_bytes());
    assert!(json.stdout.contains("********"), "{}", json.stdout);

    // What was recorded: the journal's bytes, the run logs, and what show/log/history print.
    let state = s.state();
    for f in ["journal.sqlite3", "journal.sqlite3-wal"] {
        assert_no_secret(f, &fs::read(state.join(f)).unwrap_or_default());
    }
    let logs: Vec<PathBuf> = fs::read_dir(state.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(logs.len(), 2, "{logs:?}");
    for l in &logs {
        let bytes = fs::read(l).unwrap();
        assert!(bytes.windows(8).any(|w| w == b"********"), "{l:?}");
        assert_no_secret(&l.display().to_string(), &bytes);
    }
    let state_arg = state.to_str().unwrap();
    let mut views = vec![
        vec!["history", "--state-dir", state_arg],
        vec!["history", "--output", "json", "--state-dir", state_arg],
    ];
    for run in ["1", "2"] {
        views.push(vec!["show", run, "--state-dir", state_arg]);
        views.push(vec![
            "show",
            run,
            "--output",
            "json",
            "--state-dir",
            state_arg,
        ]);
        for h in &c.hosts {
            views.push(vec!["log", run, &h.name, "--state-dir", state_arg]);
        }
    }
    for args in views {
        let r = s.kamo().args(&args).run();
        r.assert_code(0);
        assert_no_secret(&format!("kamo {}", args.join(" ")), r.stdout.as_bytes());
        assert_no_secret("its stderr", r.stderr.as_bytes());
    }
    let history = s
        .kamo()
        .args(["history", "--output", "json", "--state-dir", state_arg])
        .run();
    let runs: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    assert_eq!(runs[0]["extra_vars"]["label_value"], "********", "{runs}");
    let log = s
        .kamo()
        .args(["log", "2", "node01", "echo them", "--state-dir", state_arg])
        .run();
    assert!(log.stdout.contains("db=********"), "{log:?}");
}

#[test]
fn a_wrong_or_missing_password_stops_before_any_host_is_touched() {
    let c = SshCluster::start(1);
    let s = setup(&c);
    let wrong = s.home.path().join("wrong-pass");
    fs::write(&wrong, "not-the-password\n").unwrap();
    fs::set_permissions(&wrong, fs::Permissions::from_mode(0o600)).unwrap();

    let r = s.run(&c, &["--vault-password-file", wrong.to_str().unwrap()]);
    r.assert_code(4);
    assert!(
        !s.node_file("node01", "marker").exists(),
        "a host was touched"
    );
    // The first vault met is the playbook's inline value; its place and vault id are named.
    assert!(r.stderr.contains("site.yml:"), "{}", r.stderr);
    assert!(r.stderr.contains("vault id `default`"), "{}", r.stderr);
    assert!(r.stderr.contains("wrong"), "{}", r.stderr);
    assert!(!r.stderr.contains("not-the-password"), "{}", r.stderr);
    assert_no_secret("the error", r.stderr.as_bytes());

    // Without the inline value, the vaulted group_vars file is the one named.
    let plain = s.home.path().join("plain.yml");
    fs::write(
        &plain,
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - shell: touch {{ base }}/{{ inventory_hostname }}.marker\n",
    )
    .unwrap();
    let r = s
        .kamo()
        .run_playbook(&plain, &s.inv, &c.known_hosts)
        .args(["--state-dir"])
        .arg_path(&s.state())
        .args(["-e"])
        .arg_path(Path::new(&format!("base={}", s.base.path().display())))
        .run();
    r.assert_code(4);
    assert!(
        !s.node_file("node01", "marker").exists(),
        "a host was touched"
    );
    assert!(r.stderr.contains("group_vars/nodes.yml:1"), "{}", r.stderr);
    assert!(r.stderr.contains("--vault-password-file"), "{}", r.stderr);
    assert!(r.stderr.contains("--ask-vault-pass"), "{}", r.stderr);

    // A password file that is not there is a bad option.
    let r = s.run(&c, &["--vault-password-file", "/nonexistent/vault-pass"]);
    r.assert_code(5);
    assert!(r.stderr.contains("/nonexistent/vault-pass"), "{}", r.stderr);
    assert!(
        !s.node_file("node01", "marker").exists(),
        "a host was touched"
    );
}

/// The offline commands, a password script named by `$ANSIBLE_VAULT_PASSWORD_FILE`, and the
/// warning for a password file others can read.
#[test]
fn password_scripts_env_plan_and_inventory_listing() {
    let c = SshCluster::start(1);
    let s = setup(&c);
    let script = s.home.path().join("vault-pass.sh");
    fs::write(&script, format!("#!/bin/sh\necho '{PASSWORD}'\n")).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();

    let plan = s
        .kamo()
        .env("ANSIBLE_VAULT_PASSWORD_FILE", &script)
        .args(["plan"])
        .arg_path(&s.playbook)
        .args(["-i"])
        .arg_path(&s.inv)
        .args(["--scripts", "-e", "base=/tmp/x"])
        .run();
    plan.assert_code(0);
    assert!(plan.stdout.contains("********"), "{}", plan.stdout);
    assert_no_secret("kamo plan --scripts", plan.stdout.as_bytes());
    assert!(
        !plan.stderr.contains("readable by other"),
        "{}",
        plan.stderr
    );

    let json = s
        .kamo()
        .env("ANSIBLE_VAULT_PASSWORD_FILE", &script)
        .args(["plan", "--output", "json"])
        .arg_path(&s.playbook)
        .args(["-i"])
        .arg_path(&s.inv)
        .args(["-e", "base=/tmp/x"])
        .run();
    json.assert_code(0);
    assert_no_secret("kamo plan --output json", json.stdout.as_bytes());

    fs::set_permissions(&s.password_file, fs::Permissions::from_mode(0o644)).unwrap();
    let list = s
        .kamo()
        .args([
            "inventory",
            "list",
            "--output",
            "json",
            "--vault-password-file",
        ])
        .arg_path(&s.password_file)
        .args(["-i"])
        .arg_path(&s.inv)
        .run();
    list.assert_code(0);
    assert!(
        list.stderr.contains("readable by other users"),
        "{}",
        list.stderr
    );
    let hosts: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(hosts[0]["vars"]["db_note"], "********", "{hosts}");
    assert_no_secret("kamo inventory list", list.stdout.as_bytes());

    // The same listing without a password says which file is vaulted and what to pass.
    let r = s
        .kamo()
        .args(["inventory", "list", "-i"])
        .arg_path(&s.inv)
        .run();
    r.assert_code(4);
    assert!(r.stderr.contains("nodes.yml"), "{}", r.stderr);
    assert!(r.stderr.contains("--vault-password-file"), "{}", r.stderr);
}

/// `--ask-vault-pass` asks on the terminal: kamo runs under `script`, which gives it a pty,
/// and the password is typed once the prompt is up.
#[test]
fn ask_vault_pass_reads_the_terminal() {
    let c = SshCluster::start(1);
    let s = setup(&c);
    let kamo_line = format!(
        "{} plan {} -i {} -e base=/tmp/x -J",
        crate::support::kamo_bin().display(),
        s.playbook.display(),
        s.inv.display()
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", s.home.path())
        .arg("-c")
        .arg(format!(
            "(sleep 1; cat '{}') | script -qec '{kamo_line}' /dev/null",
            // Typed from the password file: on no command line (the vault test watches them).
            s.password_file.display()
        ));
    let out = crate::support::run_bounded(&mut cmd, std::time::Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Vault password:"), "{stdout}");
    assert!(stdout.contains("dry run: nothing was changed"), "{stdout}");
    assert_no_secret("kamo plan -J", stdout.as_bytes());
}
