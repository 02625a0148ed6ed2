//! The KAMONOHASHI lifecycle playbooks (playbooks/, issue #6) on a `kamo lab` cluster laid out
//! as the test cluster: 5 nodes, node01 the master and app node, node02 the storage
//! (NFS) node, node03-05 compute nodes of which node05 has a GPU.
//!
//! One lab runs the whole sequence (deploy all from bare nodes, postflight, a second deploy
//! that changes nothing, update-kube-certs, clean app, clean all keeping and then purging the
//! data), because each step starts from the state the one before left, as on a real cluster.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::kamo::Run;
use crate::support::lab::Lab;
use crate::support::pg_pod::Postgres;

fn playbook(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks")
        .join(name)
}

fn run(lab: &Lab, playbooks: &[&str], extra: &[&str]) -> Run {
    let mut k = lab.kamo();
    k = k.args(["run"]);
    for p in playbooks {
        k = k.arg_path(&playbook(p));
    }
    k.args(["-i"])
        .arg_path(&lab.inventory())
        .args(["--state-dir"])
        .arg_path(&lab.home.path().join("state"))
        .args(["--output", "json"])
        .args(extra)
        .run()
}

/// `(host, task)` of every result that reported a change.
fn changes(r: &Run) -> Vec<(String, String)> {
    r.json_lines()
        .into_iter()
        .filter(|e| e["event"] == "host_result" && e["changed"] == true)
        .map(|e| {
            (
                e["host"].as_str().unwrap_or_default().to_owned(),
                e["task"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// stdout of `cmd` run with sudo on `host`.
fn on(lab: &Lab, host: &str, cmd: &str) -> (i64, String) {
    let r = lab.exec(host, &["-b"], cmd);
    let h = r.host(host);
    (
        h["rc"].as_i64().unwrap_or(-1),
        h["stdout"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

const NODES: [&str; 5] = ["node01", "node02", "node03", "node04", "node05"];
const DEPLOY_ALL: [&str; 3] = ["deploy-k8s.yml", "deploy-nfs.yml", "deploy-app.yml"];
const KUBE_PACKAGES: [&str; 5] = ["kubeadm", "kubelet", "kubectl", "containerd.io", "helm"];

#[test]
fn deploy_all_check_redeploy_update_certs_and_clean_on_a_five_node_lab() {
    let lab = Lab::up(5, &["--gpu-nodes", "1"]);
    let inv = std::fs::read_to_string(lab.inventory()).unwrap();
    assert!(inv.contains("[nfs-server]\nnode02\n"), "{inv}");
    assert!(inv.contains("[gpu-node]\nnode05\n"), "{inv}");

    // deploy all from bare nodes.
    let first = run(
        &lab,
        &DEPLOY_ALL,
        &["-e", "app_version=2.1.0", "-e", "kamo_version=0.0.0-test"],
    );
    first.assert_code(0);
    let st = lab.status();
    for n in st["nodes"].as_array().unwrap() {
        assert_eq!(n["joined"], true, "{st}");
        assert_eq!(n["kubelet"], "active", "{st}");
        let pkgs: Vec<&str> = n["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert!(pkgs.contains(&"kubeadm=1.29.15-1.1"), "{st}");
        assert_eq!(
            pkgs.iter().any(|p| p.starts_with("nvidia-driver-535=")),
            n["name"] == "node05",
            "the NVIDIA driver is on the GPU node only: {st}"
        );
    }
    assert_eq!(st["cluster"]["control_plane"], "node01", "{st}");
    let releases = st["releases"].as_array().unwrap();
    assert!(
        releases.iter().any(|r| r["name"] == "kamonohashi"
            && r["namespace"] == "kqi-system"
            && r["status"] == "deployed"
            && r["app_version"] == "2.1.0"),
        "{st}"
    );
    for n in NODES {
        let (rc, text) = on(&lab, n, "cat /etc/kamonohashi/deployed.json");
        assert_eq!(rc, 0, "{n}");
        let d: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(d["app_version"], "2.1.0", "{n}: {d}");
        assert_eq!(d["kube_version"], "1.29.15", "{n}: {d}");
        assert_eq!(d["kamo_version"], "0.0.0-test", "{n}: {d}");
        assert!(d["deployed_at"].as_str().unwrap().ends_with('Z'), "{d}");
    }
    // containerd as kubeadm needs it; the GPU node's default runtime is NVIDIA's.
    let (_, toml) = on(&lab, "node05", "cat /etc/containerd/config.toml");
    assert!(
        toml.contains("SystemdCgroup = true") && toml.contains("default_runtime_name = \"nvidia\""),
        "{toml}"
    );
    let (_, toml) = on(&lab, "node03", "cat /etc/containerd/config.toml");
    assert!(toml.contains("default_runtime_name = \"runc\""), "{toml}");
    // The generated passwords live in the secret only: not in the run's output.
    let (rc, pw) = on(
        &lab,
        "node01",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf -n kqi-system get secret kamonohashi-credentials -o jsonpath='{.data.admin-password}' | base64 -d",
    );
    assert_eq!(rc, 0);
    assert_eq!(pw.len(), 32, "{pw:?}");
    assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()), "{pw:?}");
    assert!(!first.stdout.contains(&pw) && !first.stderr.contains(&pw));

    // check (postflight) passes.
    run(&lab, &["postflight.yml"], &["-e", "app_version=2.1.0"]).assert_code(0);

    // A second deploy all changes nothing and keeps the passwords.
    let second = run(
        &lab,
        &DEPLOY_ALL,
        &["-e", "app_version=2.1.0", "-e", "kamo_version=0.0.0-test"],
    );
    second.assert_code(0);
    assert_eq!(
        changes(&second),
        Vec::<(String, String)>::new(),
        "second deploy changed things"
    );
    let (_, pw2) = on(
        &lab,
        "node01",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf -n kqi-system get secret kamonohashi-credentials -o jsonpath='{.data.admin-password}' | base64 -d",
    );
    assert_eq!(pw, pw2);

    // credentials db: the new password reaches PostgreSQL through `kubectl exec -i` and psql's
    // stdin (a lab's kubectl exec runs on the master, here against a real PostgreSQL), and the
    // secret; the app restarts. It is in no output, run log or journal.
    let pg = Postgres::start();
    pg.superuser("CREATE USER platypus PASSWORD 'old-password'");
    pg.superuser("CREATE DATABASE platypusdb OWNER platypus");
    assert!(pg.login_works("platypus", "platypusdb", "old-password"));
    let new = "N3w'pass \"word\" $HOME";
    let vars = lab.home.path().join("credentials.json");
    std::fs::write(
        &vars,
        serde_json::json!({
            "credential_kind": "db", "new_password": new,
            "kqi_db_host": pg.socket(), "kqi_db_port": pg.port,
        })
        .to_string(),
    )
    .unwrap();
    let at_vars = format!("@{}", vars.display());
    let cred = run(&lab, &["credentials.yml"], &["-e", &at_vars]);
    cred.assert_code(0);
    assert!(pg.login_works("platypus", "platypusdb", new));
    assert!(!pg.login_works("platypus", "platypusdb", "old-password"));
    let (_, secret_db) = on(
        &lab,
        "node01",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf -n kqi-system get secret kamonohashi-credentials -o jsonpath='{.data.db-password}' | base64 -d",
    );
    assert_eq!(secret_db, new);
    assert!(
        changes(&cred)
            .iter()
            .any(|(_, t)| t == "The app restarts with the new secret"),
        "{cred:?}"
    );
    assert!(!cred.stdout.contains(new) && !cred.stderr.contains(new));
    for e in walk(&lab.home.path().join("state")) {
        let bytes = std::fs::read(&e).unwrap();
        assert!(
            !bytes.windows(new.len()).any(|w| w == new.as_bytes()),
            "the new password is in {}",
            e.display()
        );
    }
    drop(pg);

    // update app: the release alone moves to another version; the record follows.
    run(&lab, &["update-app.yml"], &["-e", "app_version=2.0.0"]).assert_code(0);
    let st = lab.status();
    assert_eq!(st["releases"][0]["app_version"], "2.0.0", "{st}");
    assert!(
        on(&lab, "node04", "cat /etc/kamonohashi/deployed.json")
            .1
            .contains("\"app_version\": \"2.0.0\"")
    );
    run(&lab, &["postflight.yml"], &["-e", "app_version=2.0.0"]).assert_code(0);
    // A version kamo cannot deploy is refused before helm runs.
    let old = run(&lab, &["update-app.yml"], &["-e", "app_version=1.0.0"]);
    old.assert_code(2);
    assert!(old.stdout.contains("not deployable"), "{old:?}");
    for n in NODES {
        let (_, record) = on(&lab, n, "cat /etc/kamonohashi/deployed.json");
        assert!(
            record.contains("\"app_version\": \"2.0.0\""),
            "{n}: {record}"
        );
    }

    // update kube-certs renews the certificates.
    run(
        &lab,
        &["update-kube-certs.yml"],
        &["-e", "control_plane_restart_wait=0"],
    )
    .assert_code(0);

    // clean app removes the release, nothing else.
    run(&lab, &["clean-app.yml"], &[]).assert_code(0);
    let st = lab.status();
    assert_eq!(st["releases"], serde_json::json!([]), "{st}");
    assert_eq!(st["nodes"][0]["joined"], true, "{st}");

    // clean all leaves the nodes bare but keeps the storage node's data.
    on(
        &lab,
        "node02",
        "echo dataset > /srv/kamonohashi/nfs/keep.txt",
    );
    run(&lab, &["clean-all.yml"], &[]).assert_code(0);
    let st = lab.status();
    for n in st["nodes"].as_array().unwrap() {
        assert_eq!(n["joined"], false, "{st}");
        for p in n["packages"].as_array().unwrap() {
            let p = p.as_str().unwrap();
            assert!(
                !KUBE_PACKAGES
                    .iter()
                    .any(|k| p.starts_with(&format!("{k}=")))
                    && !p.starts_with("nvidia"),
                "{p} left on {}: {st}",
                n["name"]
            );
        }
    }
    assert!(st["cluster"].is_null(), "{st}");
    for n in NODES {
        let (rc, _) = on(&lab, n, "test -e /etc/kamonohashi/deployed.json");
        assert_eq!(rc, 1, "{n} still has deployed.json");
    }
    assert_eq!(
        on(&lab, "node02", "cat /srv/kamonohashi/nfs/keep.txt").1,
        "dataset\n"
    );

    // Again with purge_data: nothing else is left to do, and the data goes.
    let purge = run(&lab, &["clean-all.yml"], &["-e", "purge_data=true"]);
    purge.assert_code(0);
    assert_eq!(on(&lab, "node02", "test -e /srv/kamonohashi/nfs").0, 1);
}

/// playbooks/versions.yml holds the published matrix as published (unknown cells null) and a
/// deployable Kubernetes version the lab's catalog has for each version kamo deploys.
#[test]
fn the_versions_matrix_is_the_published_table() {
    let text = std::fs::read_to_string(playbook("versions.yml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let v: Value = serde_json::to_value(&doc).unwrap();
    let versions = v["versions"].as_object().unwrap();
    let mut keys: Vec<&str> = versions.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["1.0.0", "1.0.1..1.1.7", "2.0.0", "2.1.0"]);
    let v2 = &versions["2.0.0"];
    assert_eq!(v2["db_migration"], "20200319064613_v2.0.0");
    assert_eq!(v2["kubernetes"], serde_json::json!(["1.15.3"]));
    assert_eq!(v2["ubuntu"], serde_json::json!(["18.04"]));
    assert_eq!(v2["minio"], "RELEASE.2020-03-09T18-26-53Z");
    assert_eq!(v2["ldap"], "version 3");
    let v21 = &versions["2.1.0"];
    assert_eq!(v21["db_migration"], "20200615001935_v2.1.0");
    for unknown in ["kubernetes", "ubuntu", "minio", "gitlab", "ldap"] {
        assert!(v21[unknown].is_null(), "2.1.0 {unknown} is not published");
    }
    let v1 = &versions["1.0.1..1.1.7"];
    assert_eq!(v1["kubernetes"], serde_json::json!(["1.12.7", "1.14.1"]));
    assert_eq!(v1["minio"], "RELEASE.2019-01-23T23-18-58Z");
    assert!(
        versions["1.0.0"]["gitlab"]
            .as_str()
            .unwrap()
            .contains("11.7")
    );
    for (name, row) in versions {
        let deploy = &row["deploy"];
        if name.starts_with('2') {
            let kube = deploy["kube_version"].as_str().unwrap();
            let minor: u32 = kube.split('.').nth(1).unwrap().parse().unwrap();
            assert!(
                (27..=31).contains(&minor),
                "{name}: {kube} is not in the lab's catalog"
            );
        } else {
            assert!(deploy.is_null(), "{name} cannot be deployed");
        }
    }
}
