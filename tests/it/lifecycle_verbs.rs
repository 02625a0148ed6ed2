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
    v
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

#[test]
fn deploy_all_from_bare_nodes_then_check_update_credentials_and_clean() {
    let lab = Lab::up(5, &["--gpu-nodes", "1"]);
    let pb = playbooks();
    // The per-node dry run, offline: nothing connects, so it works before anything exists.
    let plan = verb(
        &lab,
        &pb,
        &["deploy", "all", "--plan", "--yes", "--output", "json"],
    );
    plan.assert_code(0);
    let planned = planned(&plan.stdout);
    assert!(planned.len() > 20, "a real plan: {}", planned.len());

    let run = verb(&lab, &pb, &["deploy", "all", "--yes", "--output", "json"]);
    run.assert_code(0);
    assert_plan_equals_run(&planned, &sent(&run), 20);

    let v = check(&lab, &pb);
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

    // The generated passwords, for the operator who asks.
    let shown = verb(&lab, &pb, &["credentials", "show"]);
    shown.assert_code(0);
    for k in ["admin-password", "db-password", "storage-password"] {
        assert!(shown.stdout.contains(k), "{}", shown.stdout);
    }

    // App-only upgrade (here: to another deployable version) and back.
    verb(&lab, &pb, &["update", "app", "--version", "2.0.0"]).assert_code(0);
    assert_eq!(check(&lab, &pb)["app_version"], "2.0.0");
    verb(&lab, &pb, &["update", "app", "--version", "2.1.0"]).assert_code(0);
    verb(&lab, &pb, &["update", "kube-certs"]).assert_code(0);
    // The nodes' configuration applied again: nothing left to change on a healthy cluster.
    let r = verb(&lab, &pb, &["update", "node-conf", "--output", "json"]);
    r.assert_code(0);
    let changed: Vec<(String, String)> = r
        .json_lines()
        .into_iter()
        .filter(|e| e["event"] == "host_result" && e["changed"] == true)
        .map(|e| (e["host"].to_string(), e["task"].to_string()))
        .collect();
    assert!(changed.is_empty(), "update node-conf changed {changed:?}");

    // A new DB password through stdin reaches PostgreSQL (a real server standing in for the
    // app's database pod, whose psql `kubectl exec` runs on the master in a lab); it is not in
    // the output, the journal or the logs.
    let pg = Postgres::start();
    pg.superuser("CREATE USER platypus PASSWORD 'old-password'");
    pg.superuser("CREATE DATABASE platypusdb OWNER platypus");
    let secret = "Fresh-DB-pass-4242";
    let vars = lab.home.path().join("pod.json");
    std::fs::write(
        &vars,
        serde_json::json!({"kqi_db_host": pg.socket(), "kqi_db_port": pg.port}).to_string(),
    )
    .unwrap();
    // Every process's command line is watched while the password travels.
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let done = std::sync::Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (stop, done) = (stop.clone(), done.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut scans = 0;
            while !stop.load(Ordering::Relaxed) && scans < 100_000 {
                for e in std::fs::read_dir("/proc").unwrap().flatten() {
                    if let Ok(c) = std::fs::read(e.path().join("cmdline"))
                        && c.windows(secret.len()).any(|w| w == secret.as_bytes())
                    {
                        seen.push(String::from_utf8_lossy(&c).into_owned());
                    }
                }
                scans += 1;
                done.store(scans, Ordering::Relaxed);
            }
            (seen, scans)
        })
    };
    // The watcher is running before the password travels (bounded: 30 s on a loaded machine).
    let waited = std::time::Instant::now();
    while done.load(Ordering::Relaxed) == 0 && waited.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = done.load(Ordering::Relaxed);
    assert!(before > 0, "the process-list watcher did not start");
    let r = lab
        .kamo()
        .args(["credentials", "db", "--password-stdin", "-i"])
        .arg_path(&lab.inventory())
        .args(["--playbooks"])
        .arg_path(&pb)
        .args(["--state-dir"])
        .arg_path(&lab.home.path().join("state"))
        .args(["-e", &format!("@{}", vars.display())])
        .run_with_stdin(&format!("{secret}\n"));
    let during = done.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    let (seen, scans) = watcher.join().unwrap();
    assert!(
        seen.is_empty(),
        "the password was on a command line: {seen:?}"
    );
    // Whole scans made while kamo ran: how many depends on the machine's load, not zero.
    assert!(
        during > 0,
        "the process list was not watched during the run ({scans} scans)"
    );
    r.assert_code(0);
    assert!(pg.login_works("platypus", "platypusdb", secret));
    assert!(!pg.login_works("platypus", "platypusdb", "old-password"));
    assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret));
    for f in walk(&lab.home.path().join("state")) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(secret),
            "the password is in {}",
            f.display()
        );
    }

    // clean app: the release goes, Kubernetes stays.
    verb(&lab, &pb, &["clean", "app", "--yes"]).assert_code(0);
    let st = lab.status();
    assert!(
        !st.to_string().contains("\"kamonohashi\""),
        "release still listed: {st}"
    );
    verb(&lab, &pb, &["deploy", "app", "--yes"]).assert_code(0);
    assert_eq!(check(&lab, &pb)["app_version"], "2.1.0");
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
#[test]
fn rollback_full_mode_on_a_lab_with_its_database() {
    let lab = Lab::up(5, &["--gpu-nodes", "1", "--with-db"]);
    let pb = playbooks();
    verb(&lab, &pb, &["deploy", "all", "--yes", "--version", "2.1.0"]).assert_code(0);
    assert_eq!(check(&lab, &pb)["app_version"], "2.1.0");
    let status = || {
        let r = lab
            .kamo()
            .args(["db", "status", "--output", "json", "-i"])
            .arg_path(&lab.inventory())
            .args(["--playbooks"])
            .arg_path(&pb)
            .run();
        r.assert_code(0);
        serde_json::from_str::<Value>(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"))
    };
    let before = status();
    assert!(
        before.to_string().contains("20200615001935_v2.1.0"),
        "{before}"
    );

    let r = verb(&lab, &pb, &["rollback", "--to-version", "2.0.0", "--yes"]);
    r.assert_code(0);
    let password = std::fs::read_to_string(lab.dir.join("db-password")).unwrap();
    let password = password.trim();
    assert!(!password.is_empty());
    assert!(!r.stdout.contains(password) && !r.stderr.contains(password));

    let after = status();
    assert!(
        !after
            .to_string()
            .contains("20200615001935_v2.1.0\",\"applied\":true"),
        "{after}"
    );
    let text = after.to_string();
    assert!(text.contains("20200319064613_v2.0.0"), "{text}");
    // The app runs 2.0.0 again, on a cluster that passes its postflight check.
    assert_eq!(check(&lab, &pb)["app_version"], "2.0.0");
    // The backup is kept in the state directory.
    let backups: Vec<PathBuf> = walk(&lab.home.path().join("state"))
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().contains("backup") || p.extension().is_some_and(|e| e == "dump")
        })
        .collect();
    assert!(!backups.is_empty(), "no backup in the state directory");
}
