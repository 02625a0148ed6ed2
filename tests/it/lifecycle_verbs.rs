//! The lifecycle verbs on a `kamo lab` cluster (issue 6): 5 nodes (master, storage, three
//! compute of which one has a GPU). `deploy all` from bare nodes, `check` green, `plan` equal
//! to what `run` sends, `update app`, `update kube-certs`, `credentials db`, `clean app`, and a
//! `rebuild` that cleans with the deployed version's playbooks, interrupted and resumed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::kamo::Run;
use crate::support::lab::Lab;
use crate::support::pg_pod::Postgres;
use crate::support::planted::{Excused, Planted, journal_views};
use crate::support::walk;

fn playbooks() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks")
}

/// `kamo VERB ... -i LAB --playbooks DIR --state-dir STATE`.
fn verb(lab: &Lab, pb: &Path, args: &[&str]) -> Run {
    lab.kamo()
        .args(args)
        .args(["-i"])
        .arg_path(&lab.inventory())
        .args(["--playbooks"])
        .arg_path(pb)
        .args(["--state-dir"])
        .arg_path(&lab.home.path().join("state"))
        .run()
}

fn check(lab: &Lab, pb: &Path) -> Value {
    check_run(lab, pb).0
}

/// [`check`], also returning what `kamo check` printed.
fn check_run(lab: &Lab, pb: &Path) -> (Value, Run) {
    let r = lab
        .kamo()
        .args(["check", "--output", "json", "--timeout", "5", "-i"])
        .arg_path(&lab.inventory())
        .args(["--playbooks"])
        .arg_path(pb)
        .run();
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    let failed: Vec<&Value> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert!(failed.is_empty(), "check failed: {failed:#?}");
    r.assert_code(0);
    (v, r)
}

/// `r`, kept in `outputs` as `what`.
fn kept(outputs: &mut Vec<(String, Run)>, what: &str, r: Run) -> Run {
    outputs.push((what.to_owned(), r.clone()));
    r
}

/// The rows of `kamo credentials show`: KEY -> VALUE.
fn credentials(shown: &Run) -> BTreeMap<String, String> {
    shown
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.to_owned()))
        })
        .collect()
}

/// No planted value is in `outputs` (what the test's commands printed), in the views of the
/// journal of `state` (`history`, `show`, `log` of every run and host) or in any file of
/// `state`.
#[track_caller]
fn assert_nothing_holds(
    planted: &Planted,
    mut outputs: Vec<(String, Run)>,
    lab: &Lab,
    state: &Path,
) {
    outputs.extend(journal_views(&|| lab.kamo(), Some(state)));
    assert!(
        outputs.iter().any(|(w, _)| w.starts_with("log ")),
        "no run logged"
    );
    planted.assert_runs_clean(&outputs);
    planted.assert_files_clean(state);
}

/// A plan entry's or run event's key: (host, task, loop item).
fn key(e: &Value) -> (String, String, String) {
    (
        e["host"].as_str().unwrap().into(),
        e["task"].as_str().unwrap().into(),
        e["item"].to_string(),
    )
}

/// (host, task, item) -> script digest, from plan documents (one per line).
fn planned(stdout: &str) -> BTreeMap<(String, String, String), String> {
    let mut out = BTreeMap::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let doc: Value = serde_json::from_str(line).unwrap();
        for e in doc["plan"].as_array().unwrap() {
            if let Some(d) = e["script_sha256"].as_str() {
                out.insert(key(e), d.into());
            }
        }
    }
    out
}

/// (host, task, item) -> script digest, from a run's JSON events.
fn sent(r: &Run) -> BTreeMap<(String, String, String), String> {
    r.json_lines()
        .iter()
        .filter_map(|e| {
            let digest = e["data"]["script_sha256"].as_str()?.to_owned();
            Some((key(e), digest))
        })
        .collect()
}

/// Every task both planned and sent has the same script; at least `min` were compared.
fn assert_plan_equals_run(
    planned: &BTreeMap<(String, String, String), String>,
    sent: &BTreeMap<(String, String, String), String>,
    min: usize,
) {
    let mut compared = 0;
    for (k, d) in planned {
        if let Some(s) = sent.get(k) {
            assert_eq!(s, d, "plan and run differ for {k:?}");
            compared += 1;
        }
    }
    assert!(compared > min, "only {compared} tasks compared");
}

/// Also plants secrets (issue 10): the passwords the first deploy generates (which
/// `credentials show` prints, by design, to the operator who asks: that command's stdout is
/// the one place they may appear), the DB password the app's database had before and the new
/// one given to `credentials db --password-stdin`. None is in anything else any command of the
/// test printed, in the state directory, in `history`/`show`/`log` of every run, or on a
/// process's command line from the first `credentials show` to the end.
#[test]
fn deploy_all_from_bare_nodes_then_check_update_credentials_and_clean() {
    let lab = Lab::up(5, &["--gpu-nodes", "1"]);
    let pb = playbooks();
    let state = lab.home.path().join("state");
    // What every command printed, searched for the planted values at the end.
    let mut outputs: Vec<(String, Run)> = Vec::new();
    // The per-node dry run, offline: nothing connects, so it works before anything exists.
    let plan = kept(
        &mut outputs,
        "deploy all --plan",
        verb(
            &lab,
            &pb,
            &["deploy", "all", "--plan", "--yes", "--output", "json"],
        ),
    );
    plan.assert_code(0);
    let planned = planned(&plan.stdout);
    assert!(planned.len() > 20, "a real plan: {}", planned.len());

    let run = kept(
        &mut outputs,
        "deploy all",
        verb(&lab, &pb, &["deploy", "all", "--yes", "--output", "json"]),
    );
    run.assert_code(0);
    assert_plan_equals_run(&planned, &sent(&run), 20);

    let (v, r) = check_run(&lab, &pb);
    kept(&mut outputs, "check", r);
    assert_eq!(v["app_version"], "2.1.0");
    let rows = v["checks"].as_array().unwrap();
    for n in ["node01", "node02", "node03", "node04", "node05"] {
        assert!(
            rows.iter()
                .any(|c| c["host"] == n && c["name"] == "node ready" && c["status"] == "ok"),
            "{n} not Ready: {rows:#?}"
        );
    }
    assert!(
        rows.iter()
            .any(|c| c["name"] == "app release" && c["status"] == "ok")
    );

    // The generated passwords, for the operator who asks: the planted values from here on.
    let shown = verb(&lab, &pb, &["credentials", "show"]);
    shown.assert_code(0);
    let generated = credentials(&shown);
    for k in ["admin-password", "db-password", "storage-password"] {
        assert!(
            generated.get(k).is_some_and(|v| v.len() >= 16),
            "{k}: {}",
            shown.stdout
        );
    }
    // The database pod's own password before the change, and the new one.
    let (old_db, new_db) = ("plant-old-db-pw-6143", "Fresh-DB-pass-4242");
    let mut planted = Planted::new(generated.values().cloned());
    planted.add(old_db);
    planted.add(new_db);
    // Only the stdout of `credentials show` is exempt.
    outputs.push((
        "credentials show (stderr)".into(),
        Run {
            stdout: String::new(),
            ..shown
        },
    ));
    // The database pod's server, whose user gets the old password on psql's command line:
    // before the watch, which is of kamo's command lines, not the test's.
    let pg = Postgres::start();
    pg.superuser(&format!("CREATE USER platypus PASSWORD '{old_db}'"));
    pg.superuser("CREATE DATABASE platypusdb OWNER platypus");
    let watch = planted.watch(Excused::Nothing);

    // App-only upgrade (here: to another deployable version) and back.
    kept(
        &mut outputs,
        "update app 2.0.0",
        verb(&lab, &pb, &["update", "app", "--version", "2.0.0"]),
    )
    .assert_code(0);
    let (v, r) = check_run(&lab, &pb);
    kept(&mut outputs, "check, at 2.0.0", r);
    assert_eq!(v["app_version"], "2.0.0");
    kept(
        &mut outputs,
        "update app 2.1.0",
        verb(&lab, &pb, &["update", "app", "--version", "2.1.0"]),
    )
    .assert_code(0);
    kept(
        &mut outputs,
        "update kube-certs",
        verb(&lab, &pb, &["update", "kube-certs"]),
    )
    .assert_code(0);
    // The nodes' configuration applied again: nothing left to change on a healthy cluster.
    let r = kept(
        &mut outputs,
        "update node-conf",
        verb(&lab, &pb, &["update", "node-conf", "--output", "json"]),
    );
    r.assert_code(0);
    let changed: Vec<(String, String)> = r
        .json_lines()
        .into_iter()
        .filter(|e| e["event"] == "host_result" && e["changed"] == true)
        .map(|e| (e["host"].to_string(), e["task"].to_string()))
        .collect();
    assert!(changed.is_empty(), "update node-conf changed {changed:?}");

    // A new DB password through stdin reaches PostgreSQL (a real server standing in for the
    // app's database pod, whose psql `kubectl exec` runs on the master in a lab) and the
    // cluster's secret. Every process's command line is watched while it travels.
    let vars = lab.home.path().join("pod.json");
    std::fs::write(
        &vars,
        serde_json::json!({"kqi_db_host": pg.socket(), "kqi_db_port": pg.port}).to_string(),
    )
    .unwrap();
    let r = kept(
        &mut outputs,
        "credentials db --password-stdin",
        lab.kamo()
            .args(["credentials", "db", "--password-stdin", "-i"])
            .arg_path(&lab.inventory())
            .args(["--playbooks"])
            .arg_path(&pb)
            .args(["--state-dir"])
            .arg_path(&state)
            .args(["-e", &format!("@{}", vars.display())])
            .run_with_stdin(&format!("{new_db}\n")),
    );
    r.assert_code(0);
    assert!(pg.login_works("platypus", "platypusdb", new_db));
    assert!(!pg.login_works("platypus", "platypusdb", old_db));
    // The secret holds the new DB password, the others unchanged.
    let again = verb(&lab, &pb, &["credentials", "show"]);
    again.assert_code(0);
    let mut want = generated.clone();
    want.insert("db-password".into(), new_db.into());
    assert_eq!(credentials(&again), want, "{}", again.stdout);
    outputs.push((
        "credentials show, after (stderr)".into(),
        Run {
            stdout: String::new(),
            ..again
        },
    ));

    // clean app: the release goes, Kubernetes stays.
    kept(
        &mut outputs,
        "clean app",
        verb(&lab, &pb, &["clean", "app", "--yes"]),
    )
    .assert_code(0);
    let st = lab.status();
    assert!(
        !st.to_string().contains("\"kamonohashi\""),
        "release still listed: {st}"
    );
    kept(
        &mut outputs,
        "deploy app",
        verb(&lab, &pb, &["deploy", "app", "--yes"]),
    )
    .assert_code(0);
    let (v, r) = check_run(&lab, &pb);
    kept(&mut outputs, "check, after", r);
    assert_eq!(v["app_version"], "2.1.0");
    watch.assert_clean();

    // Nothing kamo printed, recorded or showed of its journal holds a planted value.
    assert_nothing_holds(&planted, outputs, &lab, &state);
}

/// A copy of the shipped playbooks whose v2.0.0 row points at its own directory, a copy
/// whose clean-all leaves a mark: so a test sees which version's playbooks cleaned.
fn versioned_playbooks(into: &Path) -> PathBuf {
    let root = into.join("playbooks");
    copy_dir(&playbooks(), &root);
    copy_dir(&playbooks(), &root.join("v2.0.0"));
    let clean = root.join("v2.0.0/clean-all.yml");
    let mut text = std::fs::read_to_string(&clean).unwrap();
    text.push_str(
        "\n- name: mark who cleaned\n  hosts: all\n  gather_facts: false\n  become: true\n  tasks:\n    - name: leave the mark\n      copy:\n        dest: /root/cleaned-by\n        content: \"v2.0.0 playbooks\\n\"\n",
    );
    std::fs::write(&clean, text).unwrap();
    let versions = root.join("versions.yml");
    let v = std::fs::read_to_string(&versions).unwrap();
    assert!(v.contains("  \"2.0.0\":"), "versions.yml layout changed");
    let mut out = String::new();
    let mut in_v2 = false;
    let mut replaced = false;
    for line in v.lines() {
        if line.starts_with("  \"") {
            in_v2 = line.starts_with("  \"2.0.0\":");
        }
        if in_v2 && line.trim_start().starts_with("playbooks:") {
            out.push_str("      playbooks: \"v2.0.0\"\n");
            replaced = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(replaced, "no playbooks: key in the 2.0.0 row");
    std::fs::write(&versions, out).unwrap();
    root
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == "v2.0.0" || name == "migrations" {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &to.join(&name));
        } else {
            std::fs::copy(&p, to.join(&name)).unwrap();
        }
    }
}

#[test]
fn rebuild_cleans_with_the_deployed_versions_playbooks_and_resumes_after_an_interrupt() {
    let lab = Lab::up(5, &["--gpu-nodes", "1"]);
    let pb = versioned_playbooks(lab.home.path());
    verb(&lab, &pb, &["deploy", "all", "--yes", "--version", "2.0.0"]).assert_code(0);
    assert_eq!(check(&lab, &pb)["app_version"], "2.0.0");

    // The confirmation names every host and what goes; without --yes and stdin it refuses.
    let r = verb(&lab, &pb, &["rebuild", "--to-version", "2.1.0"]);
    r.assert_code(5);
    for n in ["node01", "node05"] {
        assert!(r.stderr.contains(&format!("  - {n}\n")), "{}", r.stderr);
    }
    assert!(
        r.stderr.contains("then: deploy KAMONOHASHI 2.1.0"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("now deployed: 2.0.0"), "{}", r.stderr);

    // The rebuild's per-node dry run (clean-all of 2.0.0, deploy all of 2.1.0, postflight),
    // offline, shows exactly the scripts the rebuild then sends.
    let plan = verb(
        &lab,
        &pb,
        &[
            "rebuild",
            "--to-version",
            "2.1.0",
            "--from-version",
            "2.0.0",
            "--plan",
            "--output",
            "json",
        ],
    );
    plan.assert_code(0);
    let planned = planned(&plan.stdout);
    let r = verb(
        &lab,
        &pb,
        &[
            "rebuild",
            "--to-version",
            "2.1.0",
            "--yes",
            "--output",
            "json",
        ],
    );
    r.assert_code(0);
    assert_plan_equals_run(&planned, &sent(&r), 40);
    assert!(
        planned.keys().any(|(_, t, _)| t.contains("kubeadm reset")),
        "the plan covers clean-all: {:?}",
        planned
            .keys()
            .map(|k| &k.1)
            .collect::<std::collections::BTreeSet<_>>()
    );
    let marks = lab.exec("all", &["-b"], "cat /root/cleaned-by");
    marks.assert_code(0);
    for n in ["node01", "node02", "node03", "node04", "node05"] {
        assert_eq!(
            marks.host(n)["stdout"].as_str().unwrap().trim(),
            "v2.0.0 playbooks",
            "{n} was not cleaned by the deployed version's playbooks"
        );
    }
    assert_eq!(check(&lab, &pb)["app_version"], "2.1.0");

    // Interrupted (SIGINT once the run has sent some tasks), then resumed to the end.
    let mut child = lab
        .kamo()
        .args([
            "rebuild",
            "--to-version",
            "2.0.0",
            "--yes",
            "--output",
            "json",
            "--grace-period",
            "60",
            "-i",
        ])
        .arg_path(&lab.inventory())
        .args(["--playbooks"])
        .arg_path(&pb)
        .args(["--state-dir"])
        .arg_path(&lab.home.path().join("state"))
        .spawn();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads to the end (so kamo never blocks on a full pipe); says when 15 results are in.
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut results = 0;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("\"event\":\"host_result\"") {
                results += 1;
                if results == 15 {
                    let _ = tx.send(());
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("the rebuild reported 15 task results");
    nix_kill(child.id());
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "rebuild did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = reader.join();
    assert_eq!(status.code(), Some(99), "interrupted run exits 99");
    let r = lab
        .kamo()
        .args(["resume", "--state-dir"])
        .arg_path(&lab.home.path().join("state"))
        .run();
    r.assert_code(0);
    assert_eq!(check(&lab, &pb)["app_version"], "2.0.0");
}

fn nix_kill(pid: u32) {
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: kill(2) on the PID of a child this test started and has not reaped.
    let rc = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(rc, 0, "kill({pid}, SIGINT)");
}

/// Issue 7's full mode on a `kamo lab --with-db` cluster: KAMONOHASHI 2.1.0 deployed, then
/// `kamo rollback --to-version 2.0.0` stops the app, backs the database up, reverts it to
/// 2.0.0's migration in one transaction and deploys 2.0.0; the postflight check is green.
///
/// Also plants secrets (issue 10): the database's password (the settings' `db_password_file`)
/// and the nodes' sudo password (`ansible_become_password`) are in nothing any command
/// printed, no file of the state directory (the backup included), no view of the journal and
/// no process's command line during the run.
#[test]
fn rollback_full_mode_on_a_lab_with_its_database() {
    const SUDO_PASSWORD: &str = "plant-sudo-2291-rollback";
    let lab = Lab::up_with_sudo_password(5, &["--gpu-nodes", "1", "--with-db"], SUDO_PASSWORD);
    let pb = playbooks();
    let state = lab.home.path().join("state");
    let password = std::fs::read_to_string(lab.dir.join("db-password")).unwrap();
    let planted = Planted::new([password.trim(), SUDO_PASSWORD]);
    let mut outputs: Vec<(String, Run)> = Vec::new();
    let watch = planted.watch(Excused::Nothing);
    kept(
        &mut outputs,
        "deploy all",
        verb(&lab, &pb, &["deploy", "all", "--yes", "--version", "2.1.0"]),
    )
    .assert_code(0);
    let (v, r) = check_run(&lab, &pb);
    kept(&mut outputs, "check", r);
    assert_eq!(v["app_version"], "2.1.0");
    let status = |outputs: &mut Vec<(String, Run)>, what: &str| {
        let r = kept(
            outputs,
            what,
            lab.kamo()
                .args(["db", "status", "--output", "json", "-i"])
                .arg_path(&lab.inventory())
                .args(["--playbooks"])
                .arg_path(&pb)
                .run(),
        );
        r.assert_code(0);
        serde_json::from_str::<Value>(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"))
    };
    let before = status(&mut outputs, "db status");
    assert!(
        before.to_string().contains("20200615001935_v2.1.0"),
        "{before}"
    );

    kept(
        &mut outputs,
        "rollback",
        verb(&lab, &pb, &["rollback", "--to-version", "2.0.0", "--yes"]),
    )
    .assert_code(0);

    let after = status(&mut outputs, "db status, after");
    assert!(
        !after
            .to_string()
            .contains("20200615001935_v2.1.0\",\"applied\":true"),
        "{after}"
    );
    let text = after.to_string();
    assert!(text.contains("20200319064613_v2.0.0"), "{text}");
    // The app runs 2.0.0 again, on a cluster that passes its postflight check.
    let (v, r) = check_run(&lab, &pb);
    kept(&mut outputs, "check, after", r);
    assert_eq!(v["app_version"], "2.0.0");
    watch.assert_clean();
    // The backup is kept in the state directory.
    let backups: Vec<PathBuf> = walk(&state)
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().contains("backup") || p.extension().is_some_and(|e| e == "dump")
        })
        .collect();
    assert!(!backups.is_empty(), "no backup in the state directory");

    // Nothing kamo printed, recorded (the backup too) or showed of its journal holds a planted
    // value.
    assert_nothing_holds(&planted, outputs, &lab, &state);
}
