//! `kamo migrate` (issue 8) between two `kamo lab` clusters, each with its own database: the
//! old one deployed and holding data of every awkward kind; a migration that fails at one
//! data set and is resumed (the verified ones are not sent again); the new cluster serving the
//! same version on the same data and database rows; the old one intact until `finalize`.
//!
//! Planted secrets (issue 10): both databases' passwords (read from the settings'
//! `db_password_file`), the nodes' sudo password (`ansible_become_password`) and the new
//! cluster's admin password (`--password-stdin`, given again to `kamo resume` by
//! `--extra-vars-stdin`) appear in nothing any command printed, no file of the state directory
//! (the database dump included), no view of the journal and no process's command line during
//! the run.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::copy::{DIGEST, MAKE_DATA, sh, stdout_of};
use crate::support::kamo::{Kamo, Run};
use crate::support::lab::Lab;
use crate::support::pg::{block_on, connect};
use crate::support::planted::{Excused, Planted, journal_views};

/// The nodes' sudo password, in both labs.
const SUDO_PASSWORD: &str = "plant-sudo-7707-migrate";
/// The new cluster's admin password, given to `kamo migrate --password-stdin`.
const ADMIN_PASSWORD: &str = "plant-admin-5813-migrate";

fn playbooks() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks")
}

fn kamo_cmd(lab: &Lab, state: &Path, args: &[&str]) -> Kamo {
    lab.kamo()
        .args(args)
        .args(["--playbooks"])
        .arg_path(&playbooks())
        .args(["--state-dir"])
        .arg_path(state)
}

fn kamo(lab: &Lab, state: &Path, args: &[&str]) -> Run {
    kamo_cmd(lab, state, args).run()
}

/// `r`, kept in `outputs` as `what`.
fn kept(outputs: &mut Vec<(String, Run)>, what: &str, r: Run) -> Run {
    outputs.push((what.to_owned(), r.clone()));
    r
}

/// The lab's database URL, password included (tests only).
fn db_url(lab: &Lab) -> String {
    let l: Value =
        serde_json::from_str(&std::fs::read_to_string(lab.dir.join("lab.json")).unwrap()).unwrap();
    let db = &l["db"];
    let pw = std::fs::read_to_string(lab.dir.join("db-password")).unwrap();
    format!(
        "postgres://{}:{}@{}:{}/{}",
        db["user"].as_str().unwrap(),
        pw.trim(),
        db["address"].as_str().unwrap(),
        db["port"],
        db["name"].as_str().unwrap()
    )
}

fn sql(lab: &Lab, q: &str) -> Vec<String> {
    let url = db_url(lab);
    block_on(async {
        let mut c = connect(&url).await;
        sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(q.to_owned()))
            .fetch_all(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"))
    })
}

#[test]
fn a_cluster_moves_to_new_machines_with_its_data_resumes_and_is_finalized() {
    let old = Lab::up_with_sudo_password(3, &["--with-db"], SUDO_PASSWORD);
    let new = Lab::up_with_sudo_password(3, &["--with-db"], SUDO_PASSWORD);
    let state = old.home.path().join("state");
    let old_inv = old.inventory();
    let new_inv = new.inventory();
    let mut planted = Planted::new([SUDO_PASSWORD, ADMIN_PASSWORD]);
    for lab in [&old, &new] {
        let pw = std::fs::read_to_string(lab.dir.join("db-password")).unwrap();
        planted.add(pw.trim());
    }
    // What every command printed, searched at the end; the process list, from here on.
    let mut outputs: Vec<(String, Run)> = Vec::new();
    let watch = planted.watch(Excused::Nothing);
    kept(
        &mut outputs,
        "deploy all",
        kamo(
            &old,
            &state,
            &[
                "deploy",
                "all",
                "--yes",
                "--version",
                "2.1.0",
                "-i",
                old_inv.to_str().unwrap(),
            ],
        ),
    )
    .assert_code(0);

    // Data: the NFS export and MinIO's store on the storage node (node02), the app's
    // configuration on the master, one extra path from the settings; a row only the old
    // database has.
    sh(&old, "node02", MAKE_DATA, "/srv/kamonohashi/nfs").assert_code(0);
    sh(
        &old,
        "node02",
        "mkdir -p \"$1/bucket\" && head -c 200000 /dev/urandom > \"$1/bucket/obj\"",
        "/srv/kamonohashi/minio",
    )
    .assert_code(0);
    sh(
        &old,
        "node01",
        "mkdir -p \"$1\" && echo 'tls: on' > \"$1/app.yml\"",
        "/etc/kamonohashi",
    )
    .assert_code(0);
    sh(
        &old,
        "node01",
        "mkdir -p \"$1\" && echo extra > \"$1/x\"",
        "/opt/kqi-extra",
    )
    .assert_code(0);
    let settings = old.dir.join("group_vars/all/settings.yml");
    let mut text = std::fs::read_to_string(&settings).unwrap();
    text.push_str(
        "migrate_paths:\n  - {path: /opt/kqi-extra, to: /opt/blocker/kqi-extra, name: extra}\n",
    );
    std::fs::write(&settings, text).unwrap();
    sql(
        &old,
        "INSERT INTO \"DataTypes\" (\"Id\", \"CreatedBy\", \"CreatedAt\", \"ModifiedBy\", \"ModifiedAt\", \"TenantId\", \"Name\", \"SortOrder\") SELECT 9901, 'test', now(), 'test', now(), \"TenantId\", 'only-in-old', 99 FROM \"DataTypes\" LIMIT 1 RETURNING \"Name\"",
    );
    let before = stdout_of(
        &sh(&old, "node02", DIGEST, "/srv/kamonohashi/nfs"),
        "node02",
    );

    // On the new master, /opt/blocker is a file: the extra path cannot land there.
    sh(&new, "node01", "echo in-the-way > /opt/blocker", "").assert_code(0);

    // The admin password on stdin: the prompt's way, off the command line.
    let migrate = |extra: &[&str]| {
        let mut args = vec![
            "migrate",
            "--from",
            old_inv.to_str().unwrap(),
            "--to",
            new_inv.to_str().unwrap(),
        ];
        args.extend(extra);
        let k = kamo_cmd(&old, &state, &args);
        if extra.contains(&"--check") {
            k.run()
        } else {
            k.args(["--password-stdin"])
                .run_with_stdin(&format!("{ADMIN_PASSWORD}\n"))
        }
    };
    // A database that does not answer stops the preflight, before the app is stopped.
    let new_settings = new.dir.join("group_vars/all/settings.yml");
    let good = std::fs::read_to_string(&new_settings).unwrap();
    let port_line = good
        .lines()
        .find(|l| l.starts_with("db_port:"))
        .unwrap()
        .to_owned();
    std::fs::write(&new_settings, good.replace(&port_line, "db_port: 1")).unwrap();
    let r = kept(
        &mut outputs,
        "migrate, a dead database",
        migrate(&["--yes"]),
    );
    r.assert_code(2);
    assert!(r.stderr.contains("new cluster's database"), "{}", r.stderr);
    std::fs::write(&new_settings, &good).unwrap();
    // --check: the plan, and nothing touched.
    let r = kept(&mut outputs, "migrate --check", migrate(&["--check"]));
    r.assert_code(0);
    for s in [
        "nfs: node02:/srv/kamonohashi/nfs",
        "minio:",
        "etc: node01:/etc/kamonohashi",
        "extra:",
    ] {
        assert!(r.stdout.contains(s), "{s} missing:\n{}", r.stdout);
    }
    sh(&new, "node02", "test ! -e /srv/kamonohashi/nfs", "").assert_code(0);

    let r = kept(&mut outputs, "migrate", migrate(&["--yes"]));
    r.assert_code(2);
    assert!(r.stderr.contains("copy:extra failed"), "{}", r.stderr);
    let run_id: String = r
        .stderr
        .split("kamo resume ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no resume hint: {}", r.stderr))
        .trim_end_matches('`')
        .to_owned();
    // The verified data sets are in place on the new cluster already.
    let after = stdout_of(
        &sh(&new, "node02", DIGEST, "/srv/kamonohashi/nfs"),
        "node02",
    );
    assert_eq!(after, before, "the NFS data differs on the new cluster");

    sh(&new, "node01", "rm -f /opt/blocker", "").assert_code(0);
    let r = kept(
        &mut outputs,
        "resume",
        old.kamo()
            .args(["resume", &run_id, "--extra-vars-stdin", "--state-dir"])
            .arg_path(&state)
            .run_with_stdin(&serde_json::json!({ "admin_password": ADMIN_PASSWORD }).to_string()),
    );
    r.assert_code(0);
    assert!(
        r.stderr
            .contains("[copy:nfs] verified by an earlier attempt: not sent again"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("migrated"), "{}", r.stdout);

    // The new cluster: the same version, data, configuration and rows.
    let c = kept(
        &mut outputs,
        "check the new cluster",
        new.kamo()
            .args(["check", "--output", "json", "-i"])
            .arg_path(&new_inv)
            .args(["--playbooks"])
            .arg_path(&playbooks())
            .run(),
    );
    c.assert_code(0);
    let v: Value = serde_json::from_str(&c.stdout).unwrap();
    assert_eq!(v["app_version"], "2.1.0", "{v}");
    assert_eq!(
        stdout_of(
            &sh(&new, "node02", DIGEST, "/srv/kamonohashi/nfs"),
            "node02"
        ),
        before
    );
    let r = sh(
        &new,
        "node01",
        "cat /etc/kamonohashi/app.yml /opt/blocker/kqi-extra/x",
        "",
    );
    assert_eq!(stdout_of(&r, "node01"), "tls: on\nextra");
    assert_eq!(
        sql(
            &new,
            "SELECT \"Name\" FROM \"DataTypes\" WHERE \"Id\" = 9901"
        ),
        ["only-in-old"]
    );
    // The old cluster keeps its data until finalize.
    assert_eq!(
        stdout_of(
            &sh(&old, "node02", DIGEST, "/srv/kamonohashi/nfs"),
            "node02"
        ),
        before
    );

    // finalize refuses a cluster that was not migrated, then cleans the old one.
    let r = kept(
        &mut outputs,
        "migrate finalize of the new cluster",
        kamo(
            &new,
            &state,
            &[
                "migrate",
                "finalize",
                "--from",
                new_inv.to_str().unwrap(),
                "--yes",
            ],
        ),
    );
    r.assert_code(5);
    assert!(r.stderr.contains("no finished"), "{}", r.stderr);
    kept(
        &mut outputs,
        "migrate finalize",
        kamo(
            &old,
            &state,
            &[
                "migrate",
                "finalize",
                "--from",
                old_inv.to_str().unwrap(),
                "--yes",
            ],
        ),
    )
    .assert_code(0);
    let r = kept(
        &mut outputs,
        "exec after finalize",
        old.exec("node01", &["-b"], "command -v kubeadm || echo gone"),
    );
    assert_eq!(r.host("node01")["stdout"].as_str().unwrap().trim(), "gone");
    watch.assert_clean();

    // Nothing kamo printed, recorded (the dump too) or showed of its journal holds a planted
    // value.
    let views = journal_views(&|| old.kamo(), Some(&state));
    assert!(
        views.iter().any(|(w, _)| w.starts_with("log ")),
        "no log of the migration's hosts"
    );
    outputs.extend(views);
    planted.assert_runs_clean(&outputs);
    let mut files = Vec::new();
    crate::support::planted::files_under(&state.join("backups"), &mut files);
    assert!(!files.is_empty(), "no database dump in the state directory");
    planted.assert_files_clean(&state);
}
