//! `kamo lab` (issue 5): nodes are real sshds with their own address, host name, host key and
//! filesystem view; up/status/down leave nothing behind; reboots and faults look to kamo as
//! they would on real machines; two labs run side by side.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::kamo::{Kamo, Run, empty_home};
use crate::support::lab::{Lab, processes_of};

#[test]
fn up_status_down_on_20_nodes_leaves_no_process_or_mount_behind() {
    let lab = Lab::up(20, &["--gpu-nodes", "2"]);
    let inv = std::fs::read_to_string(lab.inventory()).unwrap();
    for section in [
        "[kube-master]",
        "[etcd]",
        "[kube-node]",
        "[k8s-cluster:children]",
        "[nfs-server]",
        "[gpu-node]\nnode19\nnode20\n",
        "[all:vars]",
        "ansible_user=ubuntu",
    ] {
        assert!(inv.contains(section), "{section} missing:\n{inv}");
    }
    let settings = std::fs::read_to_string(lab.dir.join("group_vars/all/settings.yml")).unwrap();
    assert!(settings.contains("nfs_export_path:"), "{settings}");
    let st = lab.status();
    let nodes = st["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 20);
    assert!(nodes.iter().all(|n| n["state"] == "up"), "{st}");
    let addresses: std::collections::HashSet<&str> = nodes
        .iter()
        .map(|n| n["address"].as_str().unwrap())
        .collect();
    assert_eq!(addresses.len(), 20, "every node has its own address");

    // Each node answers as itself, as ubuntu on Ubuntu, with passwordless sudo; the
    // inventory alone is enough (its known_hosts comes with it).
    let r = lab.exec(
        "all",
        &[],
        "echo $(hostname) $(id -un) $(. /etc/os-release; echo $ID $VERSION_ID) $(sudo -n id -u)",
    );
    r.assert_code(0);
    for i in 1..=20 {
        let name = format!("node{i:02}");
        let line = r.host(&name)["stdout"].as_str().unwrap().trim().to_owned();
        assert_eq!(line, format!("{name} ubuntu ubuntu 22.04 0"));
    }
    // What one node writes under /etc stays on that node and off this machine.
    lab.exec("node03", &["-b"], "echo mine > /etc/kamo-lab-probe")
        .assert_code(0);
    let r = lab.exec("node03:node04", &[], "cat /etc/kamo-lab-probe");
    assert_eq!(r.host("node03")["stdout"].as_str().unwrap().trim(), "mine");
    assert_eq!(r.host("node04")["status"], "failed");
    assert!(!Path::new("/etc/kamo-lab-probe").exists());

    // `up` again reports the running lab instead of starting another.
    let again = lab.lab(&["up", "--nodes", "20"]);
    again.assert_code(0);
    assert!(again.stdout.contains("already running"), "{}", again.stdout);

    assert!(
        processes_of(&lab.dir).len() >= 21,
        "supervisor and 20 sshds"
    );
    lab.lab(&["down"]).assert_code(0);
    let left = processes_of(&lab.dir);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.contains(&lab.dir.to_string_lossy().into_owned()),
        "mounts left behind:\n{mounts}"
    );
    // Down without --purge keeps the nodes' state: up again finds node03's file.
    lab.lab(&["up", "--nodes", "20"]).assert_code(0);
    let r = lab.exec("node03", &[], "cat /etc/kamo-lab-probe");
    r.assert_code(0);
    lab.lab(&["down", "--purge"]).assert_code(0);
    assert!(
        !lab.dir.exists(),
        "left behind: {:?}",
        std::fs::read_dir(&lab.dir).map(|rd| rd.flatten().map(|e| e.path()).collect::<Vec<_>>())
    );
}

#[test]
fn a_reboot_task_sees_the_node_go_down_and_come_back() {
    let lab = Lab::up(2, &[]);
    let pb = lab.home.path().join("reboot.yml");
    std::fs::write(
        &pb,
        "- hosts: node02\n  gather_facts: false\n  become: true\n  tasks:\n    - name: reboot\n      reboot:\n        reboot_timeout: 60\n      register: r\n    - assert:\n        that: r.rebooted\n",
    )
    .unwrap();
    let run = lab
        .run_playbook(&pb, &lab.home.path().join("state"))
        .args(["--output", "json"])
        .run();
    assert_eq!(
        run.code,
        0,
        "{run:?}\nnode02 log: {}",
        std::fs::read_to_string(lab.dir.join("nodes/node02/sshd.log")).unwrap_or_default()
    );
    let reboot = run
        .json_lines()
        .into_iter()
        .find(|l| l["task"] == "reboot" && l["host"] == "node02")
        .unwrap();
    assert_eq!(reboot["status"], "changed", "{reboot}");
    let st = lab.status();
    assert!(
        st["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "up"),
        "{st}"
    );
}

#[test]
fn faults_hang_down_hostkey_change_and_clear() {
    let lab = Lab::up(2, &[]);
    lab.lab(&["fault", "node01", "hang"]).assert_code(0);
    let r = lab.exec("node01", &[], "true");
    r.assert_code(3);
    lab.lab(&["fault", "node01", "clear"]).assert_code(0);
    lab.exec("node01", &[], "true").assert_code(0);

    lab.lab(&["fault", "node02", "down"]).assert_code(0);
    lab.exec("node02", &[], "true").assert_code(3);
    lab.exec("node01", &[], "true").assert_code(0);
    lab.lab(&["fault", "node02", "up"]).assert_code(0);
    lab.exec("node02", &[], "true").assert_code(0);

    lab.lab(&["fault", "node02", "hostkey-change"])
        .assert_code(0);
    let r = lab.exec("node02", &[], "true");
    r.assert_code(3);
    assert!(r.stdout.contains("CHANGED"), "{r:?}");
    lab.lab(&["fault", "node02", "clear"]).assert_code(0);
    lab.exec("node02", &[], "true").assert_code(0);

    // `slow`: every chunk waits 200 ms each way, so even `true` takes several round trips'
    // worth (the SSH handshake alone is four); `clear` takes the delay away again.
    lab.lab(&["fault", "node01", "slow"]).assert_code(0);
    let r = lab.exec("node01", &[], "true");
    r.assert_code(0);
    let ms = r.host("node01")["duration_ms"].as_u64().unwrap();
    assert!(ms >= 800, "a slow node answered in {ms} ms");
    assert_eq!(lab.status()["nodes"][0]["state"], "slow");
    lab.lab(&["fault", "node01", "clear"]).assert_code(0);
    lab.exec("node01", &[], "true").assert_code(0);
    assert_eq!(lab.status()["nodes"][0]["state"], "up");

    let bad = lab.lab(&["fault", "node09", "down"]);
    bad.assert_code(5);
    assert!(bad.stderr.contains("no node node09"), "{}", bad.stderr);
}

#[test]
fn two_labs_side_by_side() {
    let a = Lab::up(2, &[]);
    let b = Lab::up(2, &["--os-release", "20.04"]);
    let addr = |l: &Lab| {
        l.status()["nodes"][0]["address"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_ne!(addr(&a), addr(&b));
    let r = b.exec("node01", &[], ". /etc/os-release; echo $VERSION_ID");
    assert_eq!(r.host("node01")["stdout"].as_str().unwrap().trim(), "20.04");
    a.lab(&["down"]).assert_code(0);
    b.exec("all", &[], "true").assert_code(0);
    std::thread::sleep(Duration::from_millis(100));
    assert!(processes_of(&a.dir).is_empty());
}

#[test]
fn sudo_password_mode_asks_for_one() {
    let home = empty_home();
    let dir = home.path().join("lab");
    Kamo::new(home.path())
        .env("KAMO_LAB_SUDO_PASSWORD", "lab-sudo-pw")
        .args(["lab", "up", "--nodes", "1", "--sudo-password", "--dir"])
        .arg_path(&dir)
        .run()
        .assert_code(0);
    let lab = Lab { home, dir };
    let r = lab.exec("node01", &[], "sudo -n true");
    r.assert_code(2);
    let inv = lab.home.path().join("pw.ini");
    std::fs::write(
        &inv,
        std::fs::read_to_string(lab.inventory()).unwrap() + "ansible_become_password=lab-sudo-pw\n",
    )
    .unwrap();
    let r = lab
        .kamo()
        .args(["exec", "node01", "-b", "--output", "json", "-i"])
        .arg_path(&inv)
        .args(["--", "id -u"])
        .run();
    r.assert_code(0);
    assert_eq!(r.host("node01")["stdout"].as_str().unwrap().trim(), "0");
}

/// The system modules on real (lab) hosts over SSH with become: repositories, packages,
/// services, users and groups; check mode changes nothing; the second run changes nothing.
#[test]
fn system_modules_run_on_lab_nodes_and_are_idempotent() {
    let lab = Lab::up(2, &[]);
    let pb = lab.home.path().join("system.yml");
    std::fs::write(
        &pb,
        r#"
- hosts: all
  become: true
  gather_facts: false
  tasks:
    - name: keyring directory
      file: { path: /etc/apt/keyrings, state: directory, mode: "0755" }
    - name: Kubernetes signing key
      copy: { dest: /etc/apt/keyrings/kubernetes-apt-keyring.gpg, content: "key\n", mode: "0644" }
    - name: Kubernetes repository
      copy:
        dest: /etc/apt/sources.list.d/kubernetes.list
        content: "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.29/deb/ /\n"
    - name: Kubernetes packages
      apt:
        name: [kubeadm=1.29.3-1.1, kubelet=1.29.3-1.1, kubectl=1.29.3-1.1]
        update_cache: true
        cache_valid_time: 3600
    - name: container runtime
      package: { name: containerd, state: present }
    - name: containerd runs
      systemd: { name: containerd, enabled: true, state: started }
    - name: app group
      group: { name: kqi, gid: 2345 }
    - name: app user
      user: { name: kqi, uid: 2345, group: kqi, shell: /bin/bash }
    - name: no jq
      apt: { name: jq, state: absent, purge: true }
"#,
    )
    .unwrap();
    let run = |extra: &[&str]| {
        lab.run_playbook(&pb, &lab.home.path().join("state"))
            .args(["--output", "json"])
            .args(extra)
            .run()
    };
    let recap = |r: &Run| r.json_lines().pop().unwrap()["hosts"].clone();
    // Check mode installs nothing, so (as with Ansible) the service of a package that is not
    // installed yet cannot be found: the run fails there, having changed nothing.
    let check = run(&["--check"]);
    check.assert_code(2);
    let failed: Vec<Value> = check
        .json_lines()
        .into_iter()
        .filter(|l| l["status"] == "failed")
        .collect();
    assert!(
        failed.iter().all(|l| l["task"] == "containerd runs"),
        "{failed:?}"
    );
    let probe = lab.exec("all", &[], "command -v kubeadm kubectl || echo none");
    assert_eq!(
        probe.host("node01")["stdout"].as_str().unwrap().trim(),
        "none"
    );

    let first = run(&[]);
    first.assert_code(0);
    assert!(
        recap(&first)["node01"]["changed"].as_u64().unwrap() >= 6,
        "{first:?}"
    );
    let second = run(&[]);
    second.assert_code(0);
    for h in ["node01", "node02"] {
        assert_eq!(recap(&second)[h]["changed"], 0, "second run: {second:?}");
    }
    let r = lab.exec(
        "all",
        &[],
        "dpkg-query -W -f='${Version}' kubeadm; echo; command -v kubectl; systemctl is-active containerd; id -u kqi",
    );
    r.assert_code(0);
    for h in ["node01", "node02"] {
        assert_eq!(
            r.host(h)["stdout"].as_str().unwrap(),
            "1.29.3-1.1\n/usr/bin/kubectl\nactive\n2345\n"
        );
    }
    // A fresh Ubuntu node has Ubuntu's apt sources, none of this machine's.
    let r = lab.exec(
        "node01",
        &[],
        "ls /etc/apt/sources.list.d; grep -c ubuntu.com /etc/apt/sources.list",
    );
    assert_eq!(
        r.host("node01")["stdout"].as_str().unwrap(),
        "kubernetes.list\n3\n"
    );
    // None of it reached this machine.
    assert!(!Path::new("/usr/bin/kubeadm").exists());
    assert!(!Path::new("/etc/apt/sources.list.d/kubernetes.list").exists());
}

/// Cluster state is shared like etcd's: `kubeadm join` on the workers shows in `kubectl get
/// nodes` on the master; helm releases and GPU nodes show in `kamo lab status`.
#[test]
fn kubeadm_join_on_workers_shows_on_the_master() {
    let lab = Lab::up(3, &["--gpu-nodes", "1"]);
    let pb = lab.home.path().join("cluster.yml");
    std::fs::write(
        &pb,
        r#"
- hosts: all
  become: true
  gather_facts: false
  tasks:
    - copy: { dest: /etc/apt/keyrings/kubernetes-apt-keyring.gpg, content: "key\n" }
    - copy:
        dest: /etc/apt/sources.list.d/kubernetes.list
        content: "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.29/deb/ /\n"
    - apt: { name: [kubeadm, kubelet, kubectl, containerd], update_cache: true }
- hosts: kube-master
  become: true
  gather_facts: false
  tasks:
    - command: kubeadm init --pod-network-cidr 10.244.0.0/16
      args: { creates: /etc/kubernetes/admin.conf }
    - command: kubeadm token create --print-join-command
      register: join
- hosts: kube-node
  become: true
  gather_facts: false
  tasks:
    - command: "{{ hostvars[groups['kube-master'][0]].join.stdout }}"
      args: { creates: /etc/kubernetes/kubelet.conf }
"#,
    )
    .unwrap();
    let run = lab.run_playbook(&pb, &lab.home.path().join("state")).run();
    run.assert_code(0);
    let r = lab.exec(
        "node01",
        &["-b"],
        "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o json",
    );
    r.assert_code(0);
    let nodes: Value = serde_json::from_str(r.host("node01")["stdout"].as_str().unwrap()).unwrap();
    let mut names: Vec<&str> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["node01", "node02", "node03"]);
    // A wrong token is refused as kubeadm refuses it.
    let bad = lab.exec(
        "node02",
        &["-b"],
        "kubeadm reset -f >/dev/null && kubeadm join 127.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:00",
    );
    assert_eq!(bad.host("node02")["status"], "failed", "{bad:?}");
    let st = lab.status();
    let joined: Vec<bool> = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["joined"].as_bool().unwrap())
        .collect();
    assert_eq!(joined, [true, false, true], "{st}");
    assert_eq!(st["nodes"][0]["kubelet"], "active", "{st}");
    assert!(
        st["nodes"][0]["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("kubeadm=1.29")),
        "{st}"
    );
    assert_eq!(st["cluster"]["control_plane"], "node01", "{st}");
}

/// The kernel and host modules on lab nodes: sysctl, modprobe, hostname, mount, plus
/// apt_repository, service, wait_for and unarchive; the second run changes nothing, and the
/// kernel settings stay on the node (this machine's are untouched).
#[test]
fn kernel_and_host_modules_on_lab_nodes() {
    let lab = Lab::up(1, &[]);
    let forward_before =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    let archive = lab.home.path().join("app.tar");
    let src = lab.home.path().join("app");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("VERSION"), "2.1.0\n").unwrap();
    let tar = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(lab.home.path())
        .arg("app")
        .status()
        .unwrap();
    assert!(tar.success());
    let pb = lab.home.path().join("kernel.yml");
    std::fs::write(
        &pb,
        format!(
            r#"
- hosts: all
  become: true
  gather_facts: false
  tasks:
    - modprobe: {{ name: br_netfilter, state: present, persistent: present }}
    - sysctl: {{ name: net.bridge.bridge-nf-call-iptables, value: "1", sysctl_file: /etc/sysctl.d/k8s.conf }}
    - sysctl: {{ name: net.ipv4.ip_forward, value: "1", sysctl_file: /etc/sysctl.d/k8s.conf, sysctl_set: true }}
    - hostname: {{ name: master-1 }}
    - file: {{ path: /srv/scratch, state: directory }}
    - mount: {{ path: /srv/scratch, src: tmpfs, fstype: tmpfs, opts: size=16m, state: mounted }}
    - apt_repository: {{ repo: "deb https://baltocdn.com/helm/stable/debian/ all main", filename: helm, update_cache: false }}
    - service: {{ name: cron, state: started, enabled: true }}
    - wait_for: {{ path: /etc/hostname, search_regex: master-1, timeout: 5 }}
    - copy: {{ src: "{archive}", dest: /root/app.tar }}
    - unarchive: {{ src: /root/app.tar, remote_src: true, dest: /opt, creates: /opt/app/VERSION }}
"#,
            archive = archive.display()
        ),
    )
    .unwrap();
    let run = || {
        lab.run_playbook(&pb, &lab.home.path().join("state"))
            .args(["--output", "json"])
            .run()
    };
    let first = run();
    first.assert_code(0);
    let second = run();
    second.assert_code(0);
    let recap = second.json_lines().pop().unwrap();
    assert_eq!(recap["hosts"]["node01"]["changed"], 0, "{second:?}");
    let r = lab.exec(
        "node01",
        &[],
        "sysctl -n net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables; hostname; \
         lsmod | grep -c br_netfilter; mountpoint -q /srv/scratch && echo mounted; \
         cat /opt/app/VERSION /etc/apt/sources.list.d/helm.list",
    );
    r.assert_code(0);
    assert_eq!(
        r.host("node01")["stdout"].as_str().unwrap(),
        "1\n1\nmaster-1\n1\nmounted\n2.1.0\ndeb https://baltocdn.com/helm/stable/debian/ all main\n"
    );
    // This machine's kernel setting did not move.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default(),
        forward_before
    );
}

/// `disk-full`: writes on the node's own directories fail with ENOSPC, for ubuntu and root,
/// in `kamo exec` and in a playbook's `copy`, while the other node writes as before; the
/// node's earlier state stays readable; a reboot keeps the disk full; `clear` gives the
/// space back with the state intact; nothing of it shows in this machine's mounts.
#[test]
fn disk_full_fails_writes_on_that_node_until_clear() {
    let lab = Lab::up(2, &[]);
    lab.exec(
        "node01",
        &["-b"],
        "echo before > /etc/kamo-before && mkdir -p /var/lib/app && echo v1 > /var/lib/app/data",
    )
    .assert_code(0);
    lab.lab(&["fault", "node01", "disk-full"]).assert_code(0);
    let st = lab.status();
    assert_eq!(st["nodes"][0]["state"], "up", "{st}");
    assert_eq!(st["nodes"][0]["disk_full"], true, "{st}");
    assert_eq!(st["nodes"][1]["disk_full"], false, "{st}");
    let text = lab.lab(&["status"]);
    assert!(text.stdout.contains("up, disk full"), "{}", text.stdout);

    let write = "echo x > /etc/kamo-probe && echo y > /var/lib/kamo-probe && echo written";
    let r = lab.exec("all", &["-b"], write);
    r.assert_code(2);
    let full = r.host("node01");
    assert_eq!(full["status"], "failed", "{r:?}");
    assert!(
        full["stderr"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{full}"
    );
    assert_eq!(r.host("node02")["stdout"], "written\n", "{r:?}");
    for cmd in [
        "echo x > ~/probe",
        "sudo -n mkdir /opt/app",
        "sudo -n touch /srv/empty",
        "sudo -n rm /etc/kamo-before",
    ] {
        let r = lab.exec("node01", &[], cmd);
        assert!(
            r.host("node01")["stderr"]
                .as_str()
                .unwrap()
                .contains("No space left on device"),
            "{cmd}: {r:?}"
        );
    }
    let r = lab.exec(
        "node01",
        &[],
        "cat /etc/kamo-before /var/lib/app/data; df -P /etc | tail -1",
    );
    r.assert_code(0);
    let out = r.host("node01")["stdout"].as_str().unwrap().to_owned();
    assert!(
        out.starts_with("before\nv1\n") && out.contains("100%"),
        "{out}"
    );
    // The stacked layers live in the node's namespace only.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("kamo-lab-full"), "{mounts}");

    // A playbook's copy fails on the full node, with the reason, and works on the other.
    let pb = lab.home.path().join("copy.yml");
    std::fs::write(
        &pb,
        "- hosts: all\n  become: true\n  gather_facts: false\n  tasks:\n    - name: settings\n      copy: { dest: /etc/kamo-settings.conf, content: \"a=1\\n\" }\n",
    )
    .unwrap();
    let run = || {
        lab.run_playbook(&pb, &lab.home.path().join("state"))
            .args(["--output", "json"])
            .run()
    };
    let r = run();
    r.assert_code(2);
    let results: Vec<Value> = r
        .json_lines()
        .into_iter()
        .filter(|l| l["task"] == "settings" && l["event"] == "host_result")
        .collect();
    let of = |h: &str| results.iter().find(|l| l["host"] == h).unwrap().clone();
    assert_eq!(of("node01")["status"], "failed", "{r:?}");
    assert!(
        of("node01").to_string().contains("No space left on device"),
        "{}",
        of("node01")
    );
    assert_eq!(of("node02")["status"], "changed", "{r:?}");

    // A reboot does not empty a full disk.
    let pid = |l: &Lab| std::fs::read_to_string(l.dir.join("nodes/node01/pid")).unwrap_or_default();
    let before = pid(&lab);
    lab.exec("node01", &["-b"], "reboot");
    let mut back = false;
    for _ in 0..150 {
        std::thread::sleep(Duration::from_millis(100));
        if pid(&lab) != before && lab.exec("node01", &[], "true").code == 0 {
            back = true;
            break;
        }
    }
    assert!(back, "node01 did not come back from its reboot");
    let r = lab.exec("node01", &["-b"], "echo x > /etc/kamo-probe");
    assert!(
        r.host("node01")["stderr"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{r:?}"
    );

    lab.lab(&["fault", "node01", "clear"]).assert_code(0);
    assert_eq!(lab.status()["nodes"][0]["disk_full"], false);
    let r = lab.exec(
        "node01",
        &["-b"],
        "echo after > /etc/kamo-probe && cat /etc/kamo-before /var/lib/app/data /etc/kamo-probe",
    );
    r.assert_code(0);
    assert_eq!(r.host("node01")["stdout"], "before\nv1\nafter\n");
    run().assert_code(0);

    // `up` undoes it too, and a fresh `lab up` starts without it.
    lab.lab(&["fault", "node02", "disk-full"]).assert_code(0);
    lab.exec("node02", &["-b"], "touch /etc/x").assert_code(2);
    lab.lab(&["fault", "node02", "up"]).assert_code(0);
    lab.exec("node02", &["-b"], "touch /etc/x").assert_code(0);
    lab.lab(&["fault", "node02", "disk-full"]).assert_code(0);
    lab.lab(&["down"]).assert_code(0);
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.contains(&lab.dir.to_string_lossy().into_owned()),
        "{mounts}"
    );
    lab.lab(&["up", "--nodes", "2"]).assert_code(0);
    lab.exec("node02", &["-b"], "touch /etc/y").assert_code(0);
}

/// Regression: a lab below one of the overlaid directories (`/root/lab`, the default `./lab`
/// of a root shell in its home) failed to boot any node ("overlay on /home: EINVAL"): once
/// `/root` was overlaid, the layers of the next overlays resolved inside it. It boots, shares
/// the lab directory with its nodes, and takes the disk-full fault.
#[test]
fn regression_a_lab_below_an_overlaid_directory_boots() {
    let home = tempfile::tempdir_in("/root").unwrap();
    let dir = home.path().join("lab");
    let lab = Lab { home, dir };
    lab.kamo()
        .args(["lab", "up", "--nodes", "1", "--dir"])
        .arg_path(&lab.dir)
        .run()
        .assert_code(0);
    let ls = format!("ls {}", lab.dir.join("ctl").display());
    lab.exec("node01", &["-b"], &format!("touch /root/mine && {ls}"))
        .assert_code(0);
    lab.lab(&["fault", "node01", "disk-full"]).assert_code(0);
    let r = lab.exec("node01", &["-b"], &format!("{ls} && touch /root/x"));
    r.assert_code(2);
    assert!(
        r.host("node01")["stderr"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{r:?}"
    );
    lab.lab(&["fault", "node01", "clear"]).assert_code(0);
    lab.exec("node01", &["-b"], "touch /root/x && ls /root/mine")
        .assert_code(0);
    assert!(!Path::new("/root/mine").exists());
}

/// An ordinary user's lab runs in a user namespace of its own (issue 5): the same nodes as
/// root's (own address, host name and filesystem view, `ubuntu` with passwordless sudo,
/// packages through apt, reboots, faults), on port 2222; root may not take it over; down and
/// purge leave no process and no file behind.
#[test]
fn an_ordinary_user_gets_a_lab_in_a_user_namespace() {
    use crate::support::sshd::TEST_USER;
    use std::os::unix::fs::PermissionsExt;
    crate::support::sshd::ensure_test_user().unwrap();
    ensure_subordinate_ids(TEST_USER);
    for helper in ["/usr/bin/newuidmap", "/usr/bin/newgidmap"] {
        assert!(
            Path::new(helper).exists(),
            "{helper} is missing: `apt-get install uidmap` (.ci/run does)"
        );
    }
    let home = empty_home();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The user's own copy of kamo: the build directory may lie where the user cannot reach.
    let exe = home.path().join("kamo");
    std::fs::copy(env!("CARGO_BIN_EXE_kamo"), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_to(home.path(), TEST_USER);
    let dir = home.path().join("lab");
    let user = |args: &[&str]| Kamo::as_user(home.path(), TEST_USER, &exe).args(args).run();
    let inv = dir.join("inventory.ini");
    let inv = inv.to_str().unwrap();
    let lab_dir = dir.to_str().unwrap();
    struct Down<'a>(&'a dyn Fn(&[&str]) -> Run, &'a str);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            (self.0)(&["lab", "down", "--purge", "--dir", self.1]);
        }
    }
    user(&["lab", "up", "--nodes", "3", "--dir", lab_dir]).assert_code(0);
    let _down = Down(&user, lab_dir);
    let described: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("lab.json")).unwrap()).unwrap();
    assert_eq!(described["userns"], true, "{described}");
    assert_eq!(described["nodes"][0]["port"], 2222, "{described}");

    let exec = |pattern: &str, become_: bool, cmd: &str| {
        let mut args = vec![
            "exec",
            pattern,
            "-i",
            inv,
            "--timeout",
            "5",
            "--output",
            "json",
        ];
        if become_ {
            args.push("-b");
        }
        args.extend(["--", cmd]);
        user(&args)
    };
    let r = exec("all", false, "echo $(hostname) $(id -un) $(sudo -n id -u)");
    r.assert_code(0);
    for name in ["node01", "node02", "node03"] {
        let line = r.host(name)["stdout"].as_str().unwrap().trim().to_owned();
        assert_eq!(line, format!("{name} ubuntu 0"));
    }
    // Become writes the node's own /etc, nobody else's; apt installs on that node only.
    exec(
        "node01",
        true,
        "echo mine > /etc/kamo-lab-probe && apt-get install -y nfs-common >/dev/null",
    )
    .assert_code(0);
    let r = exec("node01:node02", false, "cat /etc/kamo-lab-probe");
    assert_eq!(r.host("node01")["stdout"].as_str().unwrap().trim(), "mine");
    assert_eq!(r.host("node02")["status"], "failed");
    assert!(!Path::new("/etc/kamo-lab-probe").exists());
    let r = exec("all", false, "dpkg-query -W -f '${Status}' nfs-common");
    assert_eq!(
        r.host("node01")["stdout"].as_str().unwrap(),
        "install ok installed"
    );
    assert_eq!(r.host("node02")["status"], "failed");
    let st = user(&["lab", "status", "--output", "json", "--dir", lab_dir]);
    st.assert_code(0);
    assert!(st.stdout.contains("nfs-common"), "{}", st.stdout);

    // A reboot task sees the node go and come back.
    let pb = home.path().join("reboot.yml");
    std::fs::write(
        &pb,
        "- hosts: node02\n  gather_facts: false\n  become: true\n  tasks:\n    - reboot:\n        \
         reboot_timeout: 60\n      register: r\n    - assert:\n        that: r.rebooted\n",
    )
    .unwrap();
    std::fs::set_permissions(&pb, std::fs::Permissions::from_mode(0o644)).unwrap();
    user(&["run", pb.to_str().unwrap(), "-i", inv]).assert_code(0);

    // A full disk, then its space back.
    user(&["lab", "fault", "node03", "disk-full", "--dir", lab_dir]).assert_code(0);
    let r = exec("node03", true, "echo x > /etc/kamo-full");
    assert!(
        r.host("node03")["stderr"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{}",
        r.stdout
    );
    user(&["lab", "fault", "node03", "clear", "--dir", lab_dir]).assert_code(0);
    exec("node03", true, "echo x > /etc/kamo-full").assert_code(0);

    // Root does not take over an ordinary user's lab.
    let r = Kamo::new(home.path())
        .args(["lab", "down", "--dir", lab_dir])
        .run();
    r.assert_code(5);
    assert!(
        r.stderr.contains("started by an ordinary user"),
        "{}",
        r.stderr
    );

    assert!(processes_of(&dir).len() >= 4, "supervisor and 3 sshds");
    user(&["lab", "down", "--dir", lab_dir]).assert_code(0);
    let left = processes_of(&dir);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    // The nodes keep their state across down and up.
    user(&["lab", "up", "--nodes", "3", "--dir", lab_dir]).assert_code(0);
    exec("node01", false, "cat /etc/kamo-lab-probe").assert_code(0);
    user(&["lab", "down", "--purge", "--dir", lab_dir]).assert_code(0);
    assert!(processes_of(&dir).is_empty());
    let rest: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        rest.is_empty(),
        "left behind in the lab directory: {rest:?}"
    );
}

/// Grants `user` the subordinate ids a user-namespace lab needs, as `useradd` does by default
/// (an older account may lack them).
fn ensure_subordinate_ids(user: &str) {
    for (file, flag) in [
        ("/etc/subuid", "--add-subuids"),
        ("/etc/subgid", "--add-subgids"),
    ] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.lines().any(|l| l.starts_with(&format!("{user}:"))) {
            continue;
        }
        let ok = std::process::Command::new("usermod")
            .args([flag, "300000-365535", user])
            .status()
            .unwrap()
            .success();
        assert!(ok, "usermod {flag} failed");
    }
}

fn chown_to(path: &Path, user: &str) {
    let ok = std::process::Command::new("chown")
        .args(["-R", user])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown {user} {}", path.display());
}
