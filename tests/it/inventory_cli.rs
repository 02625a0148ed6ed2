//! `kamo inventory list|graph` and inventory errors, through the binary.

use std::fs;

use crate::support::kamo::{Kamo, empty_home};
use crate::support::sshd::{SshCluster, TEST_USER};

/// The DeepOps template's shape, with its comments, `[all]` host lines and trailing tabs.
const DEEPOPS: &str = "\
######
# ALL NODES
######
[all]
mgmt01     ansible_host=10.0.0.1
gpu01      ansible_host=10.0.0.11
gpu02      ansible_host=10.0.0.12\t
nfs01      ansible_host=10.0.0.21

######
# KUBERNETES
######
[kube-master]
mgmt01

[etcd]
mgmt01

[kube-node]
gpu01
gpu02

[k8s-cluster:children]
kube-master\t\t
kube-node\t

[nfs-server]
nfs01

[all:vars]
ansible_user=ubuntu
ansible_password=hunter2-secret
";

#[test]
fn list_json_of_a_deepops_inventory_redacts_secrets() {
    let home = empty_home();
    let inv = home.path().join("hosts.ini");
    fs::write(&inv, DEEPOPS).unwrap();
    let run = Kamo::new(home.path())
        .args(["inventory", "list", "k8s-cluster", "-i"])
        .arg_path(&inv)
        .args(["--output", "json"])
        .run();
    run.assert_code(0);
    assert!(!run.stdout.contains("hunter2-secret"), "{}", run.stdout);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mgmt01", "gpu01", "gpu02"]);
    let gpu02 = &v[2];
    assert_eq!(gpu02["address"], "10.0.0.12");
    assert_eq!(gpu02["port"], 22);
    assert_eq!(gpu02["user"], "ubuntu");
    assert_eq!(
        gpu02["groups"],
        serde_json::json!(["k8s-cluster", "kube-node"])
    );
    assert_eq!(gpu02["vars"]["ansible_password"], "********");
    assert_eq!(
        v[0]["groups"],
        serde_json::json!(["etcd", "k8s-cluster", "kube-master"])
    );
}

#[test]
fn list_table_and_graph() {
    let home = empty_home();
    let inv = home.path().join("hosts.ini");
    fs::write(&inv, DEEPOPS).unwrap();
    let run = Kamo::new(home.path())
        .args(["inventory", "list", "-i"])
        .arg_path(&inv)
        .run();
    run.assert_code(0);
    assert!(
        run.stdout.contains("HOST") && run.stdout.contains("ADDRESS"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains("nfs01") && l.contains("10.0.0.21") && l.contains("nfs-server"))
    );
    let run = Kamo::new(home.path())
        .args(["inventory", "graph", "-i"])
        .arg_path(&inv)
        .run();
    run.assert_code(0);
    assert!(run.stdout.starts_with("@all:\n"), "{}", run.stdout);
    assert!(run.stdout.contains("|--@k8s-cluster:"), "{}", run.stdout);
    assert!(run.stdout.contains("|  |--@kube-master:"), "{}", run.stdout);
}

#[test]
fn a_malformed_inventory_is_a_located_parse_error() {
    let home = empty_home();
    let inv = home.path().join("bad.ini");
    fs::write(&inv, "[web]\nnode1\n[web:nonsense]\nx\n").unwrap();
    let run = Kamo::new(home.path())
        .args(["inventory", "list", "-i"])
        .arg_path(&inv)
        .run();
    run.assert_code(4);
    assert!(
        run.stderr.contains(&format!("{}:3", inv.display())),
        "{}",
        run.stderr
    );
    // exec refuses it the same way, before touching any host.
    let run = Kamo::new(home.path())
        .args(["exec", "all", "-i"])
        .arg_path(&inv)
        .args(["--", "true"])
        .run();
    run.assert_code(4);

    let yml = home.path().join("bad.yml");
    fs::write(&yml, "all:\n  hosts:\n    a: {ansible_port: 1\n").unwrap();
    let run = Kamo::new(home.path())
        .args(["inventory", "list", "-i"])
        .arg_path(&yml)
        .run();
    run.assert_code(4);
    assert!(run.stderr.contains("bad.yml:"), "{}", run.stderr);
}

#[test]
fn default_inventory_then_environment() {
    let home = empty_home();
    fs::create_dir_all(home.path().join("inventory")).unwrap();
    fs::write(
        home.path().join("inventory/hosts.ini"),
        "[a]\nfrom-default\n",
    )
    .unwrap();
    let other = home.path().join("other.ini");
    fs::write(&other, "[b]\nfrom-env\n").unwrap();
    let run = Kamo::new(home.path())
        .args(["inventory", "list", "--output", "json"])
        .env("KAMO_INVENTORY", &other)
        .run();
    run.assert_code(0);
    assert!(
        run.stdout.contains("from-default") && !run.stdout.contains("from-env"),
        "{}",
        run.stdout
    );
    let elsewhere = empty_home();
    let run = Kamo::new(elsewhere.path())
        .args(["inventory", "list", "--output", "json"])
        .env("KAMO_INVENTORY", &other)
        .run();
    run.assert_code(0);
    assert!(run.stdout.contains("from-env"), "{}", run.stdout);
}

#[test]
fn example_inventories_parse() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["inventory/hosts.ini", "inventory/hosts.yml"] {
        let home = empty_home();
        let run = Kamo::new(home.path())
            .args(["inventory", "list", "-i"])
            .arg_path(&root.join(f))
            .run();
        run.assert_code(0);
    }
}

/// A DeepOps-style inventory (groups, `[all:vars]`, children) drives exec on real hosts: only
/// the selected group's hosts run the command.
#[test]
fn deepops_inventory_selects_hosts_for_exec() {
    let c = SshCluster::start(4);
    let h = &c.hosts;
    let inv = c.dir.path().join("deepops.ini");
    fs::write(&inv, format!(
        "[all]\nmgmt01 ansible_host={} ansible_port={p}\ngpu01 ansible_host={} ansible_port={p}\ngpu02 ansible_host={} ansible_port={p}\t\nnfs01 ansible_host={} ansible_port={p}\n\n\
         [kube-master]\nmgmt01\n[etcd]\nmgmt01\n[kube-node]\ngpu01\ngpu02\n[k8s-cluster:children]\nkube-master\t\nkube-node\n[nfs-server]\nnfs01\n\n\
         [all:vars]\nansible_user={TEST_USER}\nansible_ssh_private_key_file={key}\n",
        h[0].addr, h[1].addr, h[2].addr, h[3].addr, p = c.port, key = c.client_key.display()
    )).unwrap();
    let home = empty_home();
    let run = Kamo::new(home.path())
        .args(["exec", "k8s-cluster:!kube-master", "-i"])
        .arg_path(&inv)
        .args(["--known-hosts"])
        .arg_path(&c.known_hosts)
        .args(["--output", "json", "--", "echo $SSH_CONNECTION"])
        .run();
    run.assert_code(0);
    let names: std::collections::BTreeSet<String> = run
        .json_lines()
        .iter()
        .map(|v| v["host"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["gpu01", "gpu02"].iter().map(|s| (*s).to_owned()).collect()
    );
    assert!(
        run.host("gpu02")["stdout"]
            .as_str()
            .unwrap()
            .contains(&h[2].addr)
    );
    // --limit narrows further.
    let run = Kamo::new(home.path())
        .args(["exec", "all", "-l", "nfs-server", "-i"])
        .arg_path(&inv)
        .args(["--known-hosts"])
        .arg_path(&c.known_hosts)
        .args(["--output", "json", "--", "true"])
        .run();
    run.assert_code(0);
    assert_eq!(run.json_lines().len(), 1);
    assert_eq!(run.json_lines()[0]["host"], "nfs01");
}
