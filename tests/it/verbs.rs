//! The lifecycle verbs' own contract, without a cluster (issue 6): `configure` writes the
//! DeepOps inventory and settings, `versions` prints the matrix, `completions` and `man`
//! come from the real flags, destructive verbs refuse without a typed confirmation before any
//! host is touched, and bad versions are refused with exit 5.

use std::path::Path;

use serde_json::Value;

use crate::support::kamo::{Kamo, empty_home};

fn playbooks() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks")
}

#[test]
fn configure_writes_the_deepops_inventory_and_every_settings_key() {
    let home = empty_home();
    let r = Kamo::new(home.path())
        .args([
            "configure",
            "--master",
            "kmaster",
            "--app-node",
            "kmaster",
            "--storage-node",
            "kstore",
            "--compute-nodes",
            "gpu1,gpu2",
            "--gpu-nodes",
            "gpu2",
            "--ssh-user",
            "ubuntu",
            "--http-proxy",
            "http://proxy.example:3128",
            "--no-proxy",
            "corp.example",
            "--host-address",
            "kmaster=10.1.0.1",
            "--host-address",
            "kstore=10.1.0.2",
            "--host-address",
            "gpu1=10.1.0.3",
            "--host-address",
            "gpu2=10.1.0.4",
            "--yes",
            "--playbooks",
        ])
        .arg_path(&playbooks())
        .run();
    r.assert_code(0);
    let ini = std::fs::read_to_string(home.path().join("inventory/hosts.ini")).unwrap();
    for part in [
        "kmaster ansible_host=10.1.0.1\n",
        "[kube-master]\nkmaster\n",
        "[etcd]\nkmaster\n",
        "[kube-node]\nkmaster\nkstore\ngpu1\ngpu2\n",
        "[k8s-cluster:children]\nkube-master\nkube-node\n",
        "[nfs-server]\nkstore\n",
        "[gpu-node]\ngpu2\n",
        "ansible_user=ubuntu",
    ] {
        assert!(ini.contains(part), "{part:?} missing:\n{ini}");
    }
    // The files are an inventory kamo reads, settings included (group_vars beside it).
    let r = Kamo::new(home.path())
        .args([
            "inventory",
            "list",
            "--output",
            "json",
            "-i",
            "inventory/hosts.ini",
        ])
        .run();
    r.assert_code(0);
    let settings: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(home.path().join("inventory/group_vars/all/settings.yml"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(settings["kube_master"], "kmaster");
    assert_eq!(settings["kqi_node"], "kmaster");
    assert_eq!(settings["storage_node"], "kstore");
    assert_eq!(settings["nfs_export_path"], "/export/kamonohashi");
    assert_eq!(
        settings["app_version"], "2.1.0",
        "the newest deployable version"
    );
    assert!(settings["kube_version"].as_str().unwrap().starts_with("1."));
    assert!(settings["minio_data_path"].as_str().is_some());
    let no_proxy = settings["proxy_env"]["no_proxy"].as_str().unwrap();
    for n in [
        "corp.example",
        "kmaster",
        "10.1.0.1",
        "kstore",
        "10.1.0.2",
        "gpu1",
        "gpu2",
        "localhost",
    ] {
        assert!(no_proxy.split(',').any(|x| x == n), "{n} not in {no_proxy}");
    }
    assert_eq!(
        settings["proxy_env"]["https_proxy"],
        "http://proxy.example:3128"
    );

    // Configuring again keeps the earlier files.
    let r = Kamo::new(home.path())
        .args([
            "configure",
            "--single-node",
            "--ssh-user",
            "admin",
            "--yes",
            "--http-proxy",
            "",
            "--https-proxy",
            "",
            "--playbooks",
        ])
        .arg_path(&playbooks())
        .run();
    r.assert_code(0);
    assert!(r.stderr.contains("kept the previous"), "{}", r.stderr);
    let baks = std::fs::read_dir(home.path().join("inventory"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("hosts.ini.bak.")
        })
        .count();
    assert_eq!(baks, 1);
    let ini = std::fs::read_to_string(home.path().join("inventory/hosts.ini")).unwrap();
    let me = nix_hostname();
    assert!(ini.contains(&format!("[kube-master]\n{me}\n")), "{ini}");
    assert!(ini.contains(&format!("[nfs-server]\n{me}\n")), "{ini}");
    assert!(ini.contains("ansible_user=admin"), "{ini}");
}

fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn configure_without_answers_or_terminal_names_what_is_missing() {
    let home = empty_home();
    let r = Kamo::new(home.path())
        .args(["configure", "--master", "m1", "--yes", "--playbooks"])
        .arg_path(&playbooks())
        .run();
    r.assert_code(5);
    assert!(
        r.stderr.contains("--storage-node") && r.stderr.contains("--compute-nodes"),
        "{}",
        r.stderr
    );
    assert!(!home.path().join("inventory").exists(), "nothing written");
    let r = Kamo::new(home.path())
        .args([
            "configure",
            "--master",
            "m1",
            "--storage-node",
            "s1",
            "--compute-nodes",
            "c 1;rm",
            "--ssh-user",
            "u",
            "--yes",
            "--playbooks",
        ])
        .arg_path(&playbooks())
        .run();
    r.assert_code(5);
    assert!(r.stderr.contains("not a host name"), "{}", r.stderr);
}

#[test]
fn versions_prints_the_published_matrix() {
    let home = empty_home();
    let r = Kamo::new(home.path())
        .args(["versions", "--playbooks"])
        .arg_path(&playbooks())
        .run();
    r.assert_code(0);
    for s in [
        "v2.0.0",
        "v1.15.3",
        "RELEASE.2020-03-09T18-26-53Z",
        "20200319064613_v2.0.0",
        "20200615001935_v2.1.0",
        "v1.0.1 - v1.1.7",
        "v1.12.7, v1.14.1",
        "11.7 or earlier",
        "unknown",
    ] {
        assert!(r.stdout.contains(s), "{s} missing:\n{}", r.stdout);
    }
    let r = Kamo::new(home.path())
        .args(["versions", "--output", "json", "--playbooks"])
        .arg_path(&playbooks())
        .run();
    r.assert_code(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let rows = v.as_array().unwrap();
    let v2 = rows.iter().find(|e| e["app"] == "2.0.0").unwrap();
    assert_eq!(v2["ldap"], "version 3");
    assert_eq!(v2["gitlab"], "11.8 or later");
    let v21 = rows.iter().find(|e| e["app"] == "2.1.0").unwrap();
    assert!(v21["minio"].is_null(), "unknown cells stay unknown");
}

#[test]
fn completions_and_man_page_come_from_the_real_flags() {
    let home = empty_home();
    let r = Kamo::new(home.path()).args(["completions", "bash"]).run();
    r.assert_code(0);
    assert!(
        r.stdout.contains("rebuild") && r.stdout.contains("--to-version"),
        "bash completion"
    );
    let r = Kamo::new(home.path()).args(["completions", "zsh"]).run();
    r.assert_code(0);
    assert!(r.stdout.contains("#compdef kamo"));
    let r = Kamo::new(home.path()).args(["man"]).run();
    r.assert_code(0);
    assert!(
        r.stdout.contains(".TH kamo"),
        "{}",
        &r.stdout[..200.min(r.stdout.len())]
    );
    let dir = home.path().join("man");
    Kamo::new(home.path())
        .args(["man", "--dir"])
        .arg_path(&dir)
        .run()
        .assert_code(0);
    assert!(dir.join("kamo.1").exists());
    assert!(dir.join("kamo-rebuild.1").exists());
    let r = Kamo::new(home.path()).args(["completions", "tcsh"]).run();
    r.assert_code(5);
}

/// An inventory whose hosts would refuse any connection (nothing listens on port 1).
fn dead_inventory(home: &Path) -> std::path::PathBuf {
    let inv = home.join("hosts.ini");
    std::fs::write(
        &inv,
        "[all]\nm1 ansible_host=127.0.0.1 ansible_port=1\nc1 ansible_host=127.0.0.1 ansible_port=1\n\
         [kube-master]\nm1\n[kube-node]\nc1\n[k8s-cluster:children]\nkube-master\nkube-node\n\
         [nfs-server]\nm1\n[all:vars]\napp_version=2.1.0\n",
    )
    .unwrap();
    inv
}

#[test]
fn destructive_verbs_need_the_typed_cluster_name_before_touching_any_host() {
    let home = empty_home();
    let inv = dead_inventory(home.path());
    let state = home.path().join("state");
    let clean = |input: Option<&str>| {
        let k = Kamo::new(home.path())
            .args(["clean", "all", "-i"])
            .arg_path(&inv)
            .args(["--state-dir"])
            .arg_path(&state)
            .args(["--playbooks"])
            .arg_path(&playbooks());
        match input {
            Some(t) => k.run_with_stdin(t),
            None => k.run(),
        }
    };
    // No terminal and nothing on stdin: refused, pointing at --yes.
    let r = clean(None);
    r.assert_code(5);
    assert!(r.stderr.contains("pass --yes"), "{}", r.stderr);
    assert!(
        r.stderr.contains("  - m1\n  - c1"),
        "names every host: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("Kubernetes on every host"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("kept: the data"), "{}", r.stderr);
    // `yes` is not the cluster's name.
    let r = clean(Some("yes\n"));
    r.assert_code(5);
    assert!(r.stderr.contains("not confirmed"), "{}", r.stderr);
    // Nothing ran: no run was recorded.
    let r = Kamo::new(home.path())
        .args(["history", "--output", "json", "--state-dir"])
        .arg_path(&state)
        .run();
    assert!(!r.stdout.contains("clean"), "{}", r.stdout);
    // The typed name goes on: the run starts and finds the hosts unreachable (exit 3).
    let r = clean(Some("m1\n"));
    r.assert_code(3);
}

#[test]
fn unknown_or_undeployable_versions_are_refused_before_any_host() {
    let home = empty_home();
    let inv = dead_inventory(home.path());
    for (v, msg) in [
        ("9.9.9", "not in the compatibility matrix"),
        ("1.1.7", "cannot deploy"),
        ("2.x", "not in the"),
    ] {
        let r = Kamo::new(home.path())
            .args(["deploy", "app", "--yes", "--version", v, "-i"])
            .arg_path(&inv)
            .args(["--playbooks"])
            .arg_path(&playbooks())
            .run();
        r.assert_code(5);
        assert!(r.stderr.contains(msg), "{v}: {}", r.stderr);
    }
    let r = Kamo::new(home.path())
        .args(["rebuild", "--yes", "--to-version", "1.0.0", "-i"])
        .arg_path(&inv)
        .args(["--playbooks"])
        .arg_path(&playbooks())
        .run();
    r.assert_code(5);
}

/// `kamo check` on a bare lab: every preflight row passes; a node on an Ubuntu release the
/// target version does not support, and a node that is down, each fail their row (exit 2)
/// while the other hosts are still checked.
#[test]
fn check_preflight_on_a_lab() {
    use crate::support::lab::Lab;
    let lab = Lab::up(3, &[]);
    let check = |extra: &[&str]| {
        lab.kamo()
            .args(["check", "-i"])
            .arg_path(&lab.inventory())
            .args(["--timeout", "5", "--output", "json", "--playbooks"])
            .arg_path(&playbooks())
            .args(extra)
            .run()
    };
    let r = check(&[]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    let rows = v["checks"].as_array().unwrap();
    let failed: Vec<&Value> = rows.iter().filter(|c| c["status"] == "fail").collect();
    assert!(failed.is_empty(), "{failed:#?}");
    r.assert_code(0);
    for name in [
        "reachable",
        "sudo",
        "os",
        "disk /var",
        "clock",
        "ports",
        "names",
    ] {
        for host in ["node01", "node02", "node03"] {
            assert!(
                rows.iter()
                    .any(|c| c["host"] == host && c["name"] == name && c["status"] == "ok"),
                "{host}/{name} not ok: {rows:#?}"
            );
        }
    }
    assert!(v["app_version"].is_null(), "nothing deployed yet");
    assert!(rows.iter().all(|c| c["detail"].is_string()));

    // The matrix decides: version 2.0.0 deploys on 22.04 (ok) but was published for 18.04 (warn).
    let r = check(&["--version", "2.0.0", "--phase", "pre"]);
    r.assert_code(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let os = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "os")
        .unwrap()
        .clone();
    assert_eq!(os["status"], "warn", "{os}");
    assert!(os["detail"].as_str().unwrap().contains("18.04"), "{os}");

    // A node down: its row fails, the others are still judged; exit 2.
    lab.lab(&["fault", "node02", "down"]).assert_code(0);
    let r = check(&[]);
    r.assert_code(2);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let rows = v["checks"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|c| c["host"] == "node02" && c["name"] == "reachable" && c["status"] == "fail")
    );
    assert!(
        rows.iter()
            .any(|c| c["host"] == "node03" && c["name"] == "os" && c["status"] == "ok")
    );
    // node01 cannot resolve node02? It still can (names stay); but node02 gave no answers.
    assert!(
        !rows
            .iter()
            .any(|c| c["host"] == "node02" && c["name"] == "os")
    );
    // The text table for people.
    lab.lab(&["fault", "node02", "up"]).assert_code(0);
    let r = lab
        .kamo()
        .args(["check", "-i"])
        .arg_path(&lab.inventory())
        .args(["--timeout", "5", "--playbooks"])
        .arg_path(&playbooks())
        .run();
    r.assert_code(0);
    assert!(
        r.stdout.contains("HOST")
            && r.stdout.contains("STATUS")
            && r.stdout.contains("deployed app version: none"),
        "{}",
        r.stdout
    );
}
