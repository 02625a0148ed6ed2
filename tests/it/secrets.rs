//! Secrets planted and searched for (issue 10): an SSH password, a sudo password, a key
//! passphrase, a database password (a secret-named inventory variable that a task writes on
//! the node and reads back) and a `no_log` task's output. A playbook run (text and JSON),
//! `kamo exec`, `history`, `show` and `log` use them; then every byte kamo printed, every file
//! of its state directory, and the command line of every process on this machine (the
//! workstation and the loopback nodes alike) sampled during the run, must not hold any of
//! them.

use std::fs;
use std::path::Path;

use crate::support::kamo::{Kamo, Run, empty_home};
use crate::support::planted::{Excused, Planted, files_under, holds, journal_views};
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

fn planted() -> Planted {
    Planted::new([TEST_PASSWORD, DB_PASSWORD, PASSPHRASE, NO_LOG_OUTPUT])
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
    let watch = planted().watch(Excused::Nothing);
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
    watch.assert_clean();
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
    planted().assert_runs_clean(&outputs);
    planted().assert_files_clean(&state);
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

/// The database password planted for the database commands (the lab's app user is given it).
const DB_PLANTED: &str = "plant-dbpw-7731";
const V200: &str = "20200319064613_v2.0.0";
const V210: &str = "20200615001935_v2.1.0";

/// The shipped migrations copied into `dir`, with v2.1.0's up.sql and down.sql each failing at
/// their first statement (after `BEGIN`, inside kamo's transaction).
fn failing_migrations(dir: &Path) {
    let src = kamo::db::migrations::default_dir();
    for id in [V200, V210] {
        fs::create_dir_all(dir.join(id)).unwrap();
        for f in ["up.sql", "down.sql"] {
            let mut text = fs::read_to_string(src.join(id).join(f)).unwrap();
            if id == V210 {
                text = format!("ALTER TABLE \"Tags\" DROP COLUMN \"NoSuchColumn\";\n{text}");
            }
            fs::write(dir.join(id).join(f), text).unwrap();
        }
    }
}

/// The database commands with a planted password, given every way they take one: in the
/// `--db` URL, `PGPASSWORD`, `~/.pgpass`, `$PGPASSFILE` and the inventory's `db_password_file`
/// (the hidden prompt needs a terminal and is not run). `kamo rollback` (its `--check` plan,
/// through `--via`, a failing down.sql, an unknown target, `kamo resume`), `kamo migrate-db`
/// (its `--check` plan, a failing up.sql), `kamo db status` (text and JSON) and `kamo db
/// restore`, `kamo migrate --check` (its preflight connects to both clusters' databases), and
/// failures around the connection (a wrong user, a dead port, a malformed URL): the password is
/// in nothing they print, nothing in the state directory, no command line during the run.
/// One lab with its database serves every step.
#[test]
fn planted_db_password_appears_nowhere_the_database_commands_print_record_or_run() {
    use crate::support::lab::Lab;
    use crate::support::pg::{block_on, connect};
    use std::os::unix::fs::PermissionsExt;

    let lab = Lab::up(2, &["--with-db"]);
    let st = lab.status();
    let (addr, port) = (
        st["database"]["address"].as_str().unwrap().to_owned(),
        st["database"]["port"].as_u64().unwrap(),
    );
    // The app user's password becomes the planted one (sent as a SCRAM verifier), and the
    // lab's password file, which the inventory's settings name, holds it.
    let password_file = lab.dir.join("db-password");
    let old = fs::read_to_string(&password_file).unwrap();
    block_on(async {
        let mut c = connect(&format!(
            "postgres://platypus:{}@{addr}:{port}/kamonohashi",
            old.trim()
        ))
        .await;
        let v = kamo::db::scram::verifier(DB_PLANTED, b"kamo-plant-salt!", 4096);
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER ROLE platypus PASSWORD '{v}'"
        )))
        .execute(&mut c)
        .await
        .unwrap();
    });
    fs::write(&password_file, format!("{DB_PLANTED}\n")).unwrap();
    let with_pw = format!("postgres://platypus:{DB_PLANTED}@{addr}:{port}/kamonohashi");
    let bare = format!("postgres://platypus@{addr}:{port}/kamonohashi");
    let history = |url: &str| -> Vec<String> {
        block_on(async {
            let mut c = connect(url).await;
            kamo::db::apply::applied(&mut c)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.id)
                .collect()
        })
    };

    let home = lab.home.path();
    let state = home.join("state");
    let inv = lab.inventory();
    let broken = home.join("broken-migrations");
    failing_migrations(&broken);
    // A $PGPASSFILE with a wildcard line, and ~/.pgpass naming this database exactly.
    let pgpassfile = home.join("other.pgpass");
    fs::write(
        &pgpassfile,
        format!("*:*:kamonohashi:platypus:{DB_PLANTED}\n"),
    )
    .unwrap();
    fs::write(
        home.join(".pgpass"),
        format!("{addr}:{port}:kamonohashi:platypus:{DB_PLANTED}\n"),
    )
    .unwrap();
    for f in [&pgpassfile, &home.join(".pgpass")] {
        fs::set_permissions(f, fs::Permissions::from_mode(0o600)).unwrap();
    }
    // A second inventory whose settings name a user the database does not know, for a
    // preflight that fails at the login.
    let other = home.join("other-cluster");
    fs::create_dir_all(other.join("group_vars/all")).unwrap();
    fs::copy(&inv, other.join("inventory.ini")).unwrap();
    let settings = fs::read_to_string(lab.dir.join("group_vars/all/settings.yml")).unwrap();
    fs::write(
        other.join("group_vars/all/settings.yml"),
        settings.replace("db_user: platypus", "db_user: nobody"),
    )
    .unwrap();
    let dead_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let playbooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks");

    // No PGPASSWORD and no ~/.pgpass unless a step asks for them.
    let kamo = || {
        Kamo::new(home)
            .env("KAMO_STATE_DIR", &state)
            .env("PGPASSFILE", home.join("none.pgpass"))
    };
    let inv_s = inv.to_str().unwrap().to_owned();
    let broken_s = broken.to_str().unwrap().to_owned();
    let mut outputs: Vec<(String, Run)> = Vec::new();
    let mut step = |what: &str, code: i32, k: Kamo| {
        let r = k.run();
        assert_eq!(r.code, code, "{what}: {r:?}");
        outputs.push((what.to_owned(), r));
    };

    let watch = Planted::new([DB_PLANTED]).watch(Excused::DbUrls);
    step(
        "db status -i (db_password_file)",
        0,
        kamo().args(["-vv", "db", "status", "-i", &inv_s]),
    );
    step(
        "db status --output json (URL)",
        0,
        kamo().args(["db", "status", "--output", "json", "--db", &with_pw]),
    );
    step(
        "rollback --check (URL)",
        0,
        kamo().args([
            "rollback",
            "--to",
            V200,
            "--db-only",
            "--check",
            "--db",
            &with_pw,
        ]),
    );
    step(
        "rollback to an unknown migration (URL)",
        5,
        kamo().args([
            "rollback",
            "--to",
            "20990101000000_v9.9.9",
            "--db-only",
            "--yes",
            "--db",
            &with_pw,
        ]),
    );
    step(
        "rollback with a failing down.sql (PGPASSWORD)",
        2,
        kamo().env("PGPASSWORD", DB_PLANTED).args([
            "-vv",
            "rollback",
            "--to",
            V200,
            "--db-only",
            "--yes",
            "--migrations",
            &broken_s,
            "--db",
            &bare,
        ]),
    );
    step(
        "resume of the failed rollback (PGPASSWORD)",
        2,
        kamo().env("PGPASSWORD", DB_PLANTED).args(["resume"]),
    );
    assert_eq!(history(&with_pw), [V200, V210]);
    step(
        "rollback --via node02 ($PGPASSFILE)",
        0,
        kamo()
            .env("PGPASSFILE", &pgpassfile)
            .args([
                "-vv",
                "rollback",
                "--to-version",
                "2.0.0",
                "--db-only",
                "--yes",
            ])
            .args(["--via", "node02", "-i", &inv_s, "--db"])
            .args([format!("postgres://platypus@node01:{port}/kamonohashi")]),
    );
    assert_eq!(history(&with_pw), [V200]);
    step(
        "migrate-db --check (URL)",
        0,
        kamo().args(["migrate-db", "--to", V210, "--check", "--db", &with_pw]),
    );
    step(
        "migrate-db with a failing up.sql (db_password_file)",
        2,
        kamo().args([
            "migrate-db",
            "--to",
            V210,
            "--yes",
            "--migrations",
            &broken_s,
            "-i",
            &inv_s,
        ]),
    );
    assert_eq!(history(&with_pw), [V200]);
    step(
        "migrate-db (~/.pgpass)",
        0,
        Kamo::new(home).env("KAMO_STATE_DIR", &state).args([
            "-vv",
            "migrate-db",
            "--to",
            V210,
            "--yes",
            "--db",
            &bare,
        ]),
    );
    assert_eq!(history(&with_pw), [V200, V210]);
    // The newest backup is migrate-db's, taken at v2.0.0: restoring it (pg_restore, with the
    // password in its environment) takes the database back there.
    let newest = fs::read_dir(state.join("backups"))
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().modified().unwrap())
        .unwrap()
        .path();
    step(
        "db restore (db_password_file)",
        0,
        kamo()
            .args(["-vv", "db", "restore"])
            .arg_path(&newest)
            .args(["--yes", "-i", &inv_s]),
    );
    assert_eq!(history(&with_pw), [V200]);
    step(
        "db status as a user the database does not know (URL)",
        3,
        kamo().args([
            "db",
            "status",
            "--db",
            &format!("postgres://nobody:{DB_PLANTED}@{addr}:{port}/kamonohashi"),
        ]),
    );
    step(
        "rollback to a dead port (URL)",
        3,
        kamo()
            .args(["rollback", "--to", V200, "--db-only", "--yes", "--db"])
            .args([format!(
                "postgres://platypus:{DB_PLANTED}@127.0.0.1:{dead_port}/kamonohashi"
            )]),
    );
    for (what, url) in [
        (
            "a port out of range",
            format!("postgres://platypus:{DB_PLANTED}@{addr}:99999/kamonohashi"),
        ),
        (
            "no database name",
            format!("postgres://platypus:{DB_PLANTED}@{addr}:{port}/"),
        ),
        (
            "a wrong scheme",
            format!("mysql://platypus:{DB_PLANTED}@{addr}:{port}/kamonohashi"),
        ),
    ] {
        step(
            &format!("db status with {what} (URL)"),
            5,
            kamo().args(["db", "status", "--db", &url]),
        );
    }
    // `kamo migrate --check`: the preflight logs in to both clusters' databases (here the
    // same one) with the settings' password file; then to one whose user is unknown.
    let migrate = |to: &Path| {
        kamo()
            .args(["migrate", "--check", "--from", &inv_s, "--to"])
            .arg_path(to)
            .args(["--playbooks"])
            .arg_path(&playbooks)
            .args(["--state-dir"])
            .arg_path(&state)
    };
    step("migrate --check (db_password_file)", 2, migrate(&inv));
    step(
        "migrate --check, a wrong user on the new side (db_password_file)",
        2,
        migrate(&other.join("inventory.ini")),
    );
    // The watch saw kamo's processes (those given the password in their own URL): it would
    // have seen a pg_dump or a node's process the same way.
    assert!(watch.assert_clean() > 0, "the watch saw no kamo process");

    // Each step failed where it was meant to, not earlier for an unrelated reason.
    let out = |what: &str| {
        let r = &outputs.iter().find(|(w, _)| w == what).unwrap().1;
        format!("{}{}", r.stdout, r.stderr)
    };
    for (what, want) in [
        ("rollback to an unknown migration (URL)", "it is unknown"),
        (
            "rollback with a failing down.sql (PGPASSWORD)",
            "\"NoSuchColumn\" of relation \"Tags\" does not exist",
        ),
        (
            "resume of the failed rollback (PGPASSWORD)",
            "\"NoSuchColumn\" of relation \"Tags\" does not exist",
        ),
        (
            "migrate-db with a failing up.sql (db_password_file)",
            "\"NoSuchColumn\" of relation \"Tags\" does not exist",
        ),
        (
            "db status as a user the database does not know (URL)",
            "cannot connect to nobody@",
        ),
        ("rollback to a dead port (URL)", "cannot connect to"),
        (
            "rollback --check (URL)",
            "dry run (--check): nothing was changed",
        ),
        ("rollback --via node02 ($PGPASSFILE)", "-> node02 -> node01"),
        ("migrate --check (db_password_file)", "source path missing"),
        (
            "migrate --check, a wrong user on the new side (db_password_file)",
            "new cluster's database: cannot connect",
        ),
    ] {
        assert!(
            out(what).contains(want),
            "{what}: {want:?} missing:\n{}",
            out(what)
        );
    }
    // A password in kamo's own --db URL is warned about, wherever the URL parsed.
    for (what, r) in &outputs {
        let parsed = !what.starts_with("db status with ");
        assert_eq!(
            what.ends_with("(URL)") && parsed,
            r.stderr
                .contains("holds its password: other local users can read"),
            "{what}: {}",
            r.stderr
        );
    }
    assert!(
        !out("migrate --check (db_password_file)").contains("database: cannot connect"),
        "{}",
        out("migrate --check (db_password_file)")
    );

    // What kamo recorded, in every view (`log` of every host a run names: here `db`).
    let views = journal_views(&kamo, None);
    let runs = views
        .iter()
        .filter(|(w, _)| w.starts_with("show ") && w.ends_with(" json"))
        .count();
    assert!(runs >= 4, "{runs} runs in the journal");
    assert!(
        views
            .iter()
            .any(|(w, _)| w.starts_with("log ") && w.ends_with(" db")),
        "no log of the database steps"
    );
    outputs.extend(views);
    let planted = Planted::new([DB_PLANTED]);
    planted.assert_runs_clean(&outputs);
    assert!(
        planted.assert_files_clean(&state) > 2,
        "{}",
        state.display()
    );
}
