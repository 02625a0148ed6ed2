//! The packages a lab node can install, and which repository each comes from.
//!
//! Why a catalog and not real `.deb` files: a rehearsal has to decide the same things apt
//! decides (is the package known, which versions, what it pulls in, what it replaces, which
//! binaries and services appear) but never needs the software itself. Every entry is one
//! version of one package, with its dependencies, conflicts, the binaries it puts in
//! `/usr/bin`, the systemd units it ships and the configuration files it owns.
//!
//! A package is *available* only from a repository the node's apt lists hold, and the lists
//! are what `apt-get update` read from the sources (see [`read_sources`]): the Ubuntu archive
//! is always there (a lab node is an Ubuntu server installed from the ISO, so its lists were
//! filled at install time); Kubernetes (`pkgs.k8s.io`, one repository per minor release),
//! Docker (`download.docker.com`), Helm (`baltocdn.com/helm`, `packages.buildkite.com/helm-linux`)
//! and the NVIDIA container toolkit (`nvidia.github.io/libnvidia-container`) need a source
//! line in `/etc/apt/sources.list.d/` and an `apt-get update` afterwards, as on real machines.
//! The legacy `apt.kubernetes.io` repository answers as it has since March 2024: it has no
//! Release file any more.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Node;

/// Where a package version comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Repo {
    /// The Ubuntu archive (`archive.ubuntu.com`), always configured.
    Ubuntu,
    /// `pkgs.k8s.io/core:/stable:/v1.MINOR/deb`.
    Kubernetes(u32),
    /// `download.docker.com/linux/ubuntu`.
    Docker,
    /// The Helm apt repository.
    Helm,
    /// `nvidia.github.io/libnvidia-container`.
    NvidiaContainer,
}

/// A systemd unit a package ships (or a lab node has from the start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitDef {
    pub name: String,
    pub description: String,
    /// Has an `[Install]` section (can be enabled); otherwise `static`.
    pub installable: bool,
    /// Enabled and started by the package's postinst (Debian policy for daemons).
    pub start_on_install: bool,
    /// A oneshot unit that stays `active (exited)`.
    pub oneshot: bool,
    /// Main program, for `systemctl status`.
    pub exec: String,
    pub docs: String,
}

/// One version of one package.
#[derive(Debug, Clone)]
pub struct Pkg {
    pub name: String,
    pub version: String,
    pub repo: Repo,
    pub section: &'static str,
    pub priority: &'static str,
    pub essential: bool,
    pub depends: Vec<String>,
    /// Dependencies that must have exactly this package's version.
    pub depends_same: Vec<String>,
    pub conflicts: Vec<String>,
    pub provides: Vec<String>,
    /// Programs installed in `/usr/bin`.
    pub bins: Vec<&'static str>,
    pub units: Vec<UnitDef>,
    /// Configuration files and their shipped content.
    pub conffiles: Vec<(&'static str, String)>,
    pub description: &'static str,
    /// Installed size in kB.
    pub size_kb: u64,
}

/// The Ubuntu release a node runs: `(version, codename)`; 22.04 when unknown.
#[must_use]
pub fn release(node: &Node) -> (&'static str, &'static str) {
    match node.os_release.as_str() {
        "18.04" => ("18.04", "bionic"),
        "20.04" => ("20.04", "focal"),
        _ => ("22.04", "jammy"),
    }
}

fn unit(name: &str, description: &str, exec: &str, docs: &str) -> UnitDef {
    UnitDef {
        name: name.to_owned(),
        description: description.to_owned(),
        installable: true,
        start_on_install: true,
        oneshot: false,
        exec: exec.to_owned(),
        docs: docs.to_owned(),
    }
}

/// Units every lab node has, whatever is installed.
#[must_use]
pub fn base_units() -> Vec<UnitDef> {
    let mut v = vec![
        unit(
            "ssh.service",
            "OpenBSD Secure Shell server",
            "/usr/sbin/sshd -D",
            "man:sshd(8) man:sshd_config(5)",
        ),
        unit(
            "cron.service",
            "Regular background program processing daemon",
            "/usr/sbin/cron -f -P",
            "man:cron(8)",
        ),
        unit(
            "rsyslog.service",
            "System Logging Service",
            "/usr/sbin/rsyslogd -n -iNONE",
            "man:rsyslogd(8) https://www.rsyslog.com/doc/",
        ),
        unit(
            "systemd-networkd.service",
            "Network Configuration",
            "/lib/systemd/systemd-networkd",
            "man:systemd-networkd.service(8)",
        ),
        unit(
            "systemd-resolved.service",
            "Network Name Resolution",
            "/lib/systemd/systemd-resolved",
            "man:systemd-resolved.service(8)",
        ),
        unit(
            "systemd-timesyncd.service",
            "Network Time Synchronization",
            "/lib/systemd/systemd-timesyncd",
            "man:systemd-timesyncd.service(8)",
        ),
        unit(
            "unattended-upgrades.service",
            "Unattended Upgrades Shutdown",
            "/usr/share/unattended-upgrades/unattended-upgrade-shutdown --wait-for-signal",
            "man:unattended-upgrade(8)",
        ),
    ];
    let mut ufw = unit(
        "ufw.service",
        "Uncomplicated firewall",
        "/lib/ufw/ufw-init start quiet",
        "man:ufw(8)",
    );
    ufw.oneshot = true;
    v.push(ufw);
    for (name, desc, exec) in [
        (
            "systemd-journald.service",
            "Journal Service",
            "/lib/systemd/systemd-journald",
        ),
        (
            "systemd-logind.service",
            "User Login Management",
            "/lib/systemd/systemd-logind",
        ),
        (
            "systemd-modules-load.service",
            "Load Kernel Modules",
            "/lib/systemd/systemd-modules-load",
        ),
        (
            "systemd-sysctl.service",
            "Apply Kernel Variables",
            "/lib/systemd/systemd-sysctl",
        ),
    ] {
        let mut u = unit(name, desc, exec, &format!("man:{name}(8)"));
        u.installable = false;
        u.oneshot = name.contains("load") || name.contains("sysctl");
        v.push(u);
    }
    v
}

/// Packages of a fresh Ubuntu server: `(name, version on 18.04, 20.04, 22.04)`.
const BASE: &[(&str, [&str; 3])] = &[
    ("apt", ["1.6.17", "2.0.10", "2.4.11"]),
    (
        "bash",
        ["4.4.18-2ubuntu1.3", "5.0-6ubuntu1.2", "5.1-6ubuntu1.1"],
    ),
    (
        "ca-certificates",
        [
            "20230311ubuntu0.18.04.1",
            "20230311ubuntu0.20.04.1",
            "20230311ubuntu0.22.04.1",
        ],
    ),
    (
        "coreutils",
        ["8.28-1ubuntu1", "8.30-3ubuntu2", "8.32-4.1ubuntu1.2"],
    ),
    (
        "cron",
        [
            "3.0pl1-128.1ubuntu1.2",
            "3.0pl1-136ubuntu1",
            "3.0pl1-137ubuntu3",
        ],
    ),
    (
        "curl",
        [
            "7.58.0-2ubuntu3.24",
            "7.68.0-1ubuntu2.21",
            "7.81.0-1ubuntu1.15",
        ],
    ),
    (
        "dpkg",
        ["1.19.0.5ubuntu2.4", "1.19.7ubuntu3.2", "1.21.1ubuntu2.3"],
    ),
    (
        "gnupg",
        ["2.2.4-1ubuntu1.6", "2.2.19-3ubuntu2.2", "2.2.27-3ubuntu2.1"],
    ),
    ("grep", ["3.1-2build1", "3.4-1", "3.7-1build1"]),
    (
        "gzip",
        ["1.6-5ubuntu1.2", "1.10-0ubuntu4.1", "1.10-4ubuntu4.1"],
    ),
    (
        "iproute2",
        ["4.15.0-2ubuntu1.3", "5.5.0-1ubuntu1", "5.15.0-1ubuntu2"],
    ),
    (
        "iptables",
        ["1.6.1-2ubuntu2", "1.8.4-3ubuntu2.1", "1.8.7-1ubuntu5.2"],
    ),
    ("kmod", ["24-1ubuntu3.5", "27-1ubuntu2.1", "29-1ubuntu1"]),
    (
        "lsb-release",
        ["9.20170808ubuntu1", "11.1.0ubuntu2", "11.1.0ubuntu4"],
    ),
    (
        "mount",
        [
            "2.31.1-0.4ubuntu3.7",
            "2.34-0.1ubuntu9.6",
            "2.37.2-4ubuntu3",
        ],
    ),
    (
        "openssh-client",
        [
            "1:7.6p1-4ubuntu0.7",
            "1:8.2p1-4ubuntu0.11",
            "1:8.9p1-3ubuntu0.6",
        ],
    ),
    (
        "openssh-server",
        [
            "1:7.6p1-4ubuntu0.7",
            "1:8.2p1-4ubuntu0.11",
            "1:8.9p1-3ubuntu0.6",
        ],
    ),
    (
        "python3",
        ["3.6.7-1~18.04", "3.8.2-0ubuntu2", "3.10.6-1~22.04"],
    ),
    (
        "rsyslog",
        [
            "8.32.0-1ubuntu4.2",
            "8.2001.0-1ubuntu1.3",
            "8.2112.0-2ubuntu2.2",
        ],
    ),
    ("sed", ["4.4-2", "4.7-1", "4.8-1ubuntu2"]),
    (
        "sudo",
        [
            "1.8.21p2-3ubuntu1.6",
            "1.8.31-1ubuntu1.5",
            "1.9.9-1ubuntu2.4",
        ],
    ),
    (
        "systemd",
        [
            "237-3ubuntu10.57",
            "245.4-4ubuntu3.23",
            "249.11-0ubuntu3.12",
        ],
    ),
    (
        "systemd-sysv",
        [
            "237-3ubuntu10.57",
            "245.4-4ubuntu3.23",
            "249.11-0ubuntu3.12",
        ],
    ),
    (
        "tar",
        [
            "1.29b-2ubuntu0.4",
            "1.30+dfsg-7ubuntu0.20.04.4",
            "1.34+dfsg-1ubuntu0.1.22.04.2",
        ],
    ),
    (
        "ufw",
        [
            "0.36-0ubuntu0.18.04.2",
            "0.36-6ubuntu1.1",
            "0.36.1-4ubuntu0.1",
        ],
    ),
    (
        "unattended-upgrades",
        ["1.1ubuntu1.18.04.14", "2.3ubuntu0.3", "2.8ubuntu1"],
    ),
    (
        "util-linux",
        [
            "2.31.1-0.4ubuntu3.7",
            "2.34-0.1ubuntu9.6",
            "2.37.2-4ubuntu3",
        ],
    ),
];

/// Other Ubuntu archive packages a rebuild installs: `(name, versions per release)`.
const MAIN: &[(&str, [&str; 3])] = &[
    ("apt-transport-https", ["1.6.17", "2.0.10", "2.4.11"]),
    (
        "chrony",
        ["3.2-4ubuntu4.7", "3.5-6ubuntu6.2", "4.2-2ubuntu2"],
    ),
    (
        "conntrack",
        [
            "1:1.4.4+snapshot20161117-6ubuntu2",
            "1:1.4.5-2",
            "1:1.4.6-2build2",
        ],
    ),
    (
        "ebtables",
        [
            "2.0.10.4-3.5ubuntu2.18.04.3",
            "2.0.11-3build1",
            "2.0.11-4build2",
        ],
    ),
    (
        "ethtool",
        ["1:4.15-0ubuntu1", "1:5.4-1", "1:5.16-1ubuntu0.1"],
    ),
    (
        "git",
        [
            "1:2.17.1-1ubuntu0.18",
            "1:2.25.1-1ubuntu3.11",
            "1:2.34.1-1ubuntu1.10",
        ],
    ),
    ("htop", ["2.1.0-3", "2.2.0-2build1", "3.0.5-7build2"]),
    ("ipset", ["6.34-1", "7.5-1~exp1", "7.15-1build1"]),
    (
        "jq",
        ["1.5+dfsg-2", "1.6-1ubuntu0.20.04.1", "1.6-2.1ubuntu3"],
    ),
    (
        "keyutils",
        ["1.5.9-9.2ubuntu2.1", "1.6-6ubuntu1.1", "1.6.1-2ubuntu3"],
    ),
    (
        "libjq1",
        ["1.5+dfsg-2", "1.6-1ubuntu0.20.04.1", "1.6-2.1ubuntu3"],
    ),
    ("libonig5", ["6.7.0-1", "6.9.4-1", "6.9.7.1-2build1"]),
    (
        "nfs-common",
        [
            "1:1.3.4-2.1ubuntu5.5",
            "1:1.3.4-2.5ubuntu3.7",
            "1:2.6.1-1ubuntu1.2",
        ],
    ),
    (
        "nfs-kernel-server",
        [
            "1:1.3.4-2.1ubuntu5.5",
            "1:1.3.4-2.5ubuntu3.7",
            "1:2.6.1-1ubuntu1.2",
        ],
    ),
    (
        "open-iscsi",
        [
            "2.0.874-5ubuntu2.11",
            "2.0.874-7.1ubuntu6.4",
            "2.1.5-1ubuntu1.1",
        ],
    ),
    (
        "python3-pip",
        [
            "9.0.1-2.3~ubuntu1.18.04.8",
            "20.0.2-5ubuntu1.10",
            "22.0.2+dfsg-1ubuntu0.4",
        ],
    ),
    (
        "rpcbind",
        ["0.2.3-0.6ubuntu0.18.04.4", "1.2.5-8", "1.2.6-2build1"],
    ),
    (
        "socat",
        ["1.7.3.2-2ubuntu2", "1.7.3.3-2", "1.7.4.1-3ubuntu4"],
    ),
    (
        "unzip",
        ["6.0-21ubuntu1.2", "6.0-25ubuntu1.1", "6.0-26ubuntu3.1"],
    ),
    (
        "vim",
        [
            "2:8.0.1453-1ubuntu1.13",
            "2:8.1.2269-1ubuntu5.21",
            "2:8.2.3995-1ubuntu2.15",
        ],
    ),
    (
        "containerd",
        [
            "1.6.12-0ubuntu1~18.04.1",
            "1.7.12-0ubuntu2~20.04.1",
            "1.7.12-0ubuntu2~22.04.1",
        ],
    ),
    (
        "runc",
        [
            "1.1.4-0ubuntu1~18.04.2",
            "1.1.12-0ubuntu2~20.04.1",
            "1.1.12-0ubuntu2~22.04.1",
        ],
    ),
];

/// NVIDIA driver series in the Ubuntu archive (`restricted`), newest build per series.
const NVIDIA_DRIVERS: &[(&str, &str)] = &[
    ("470", "470.256.02"),
    ("535", "535.183.01"),
    ("550", "550.120"),
];

/// Kubernetes minors published at pkgs.k8s.io, with their newest patch release.
pub const KUBE_MINORS: &[(u32, u32)] = &[(27, 16), (28, 15), (29, 15), (30, 14), (31, 10)];

const CONTAINERD_CONFIG: &str = "#   Copyright 2018-2022 Docker Inc.\n\n\
#   Licensed under the Apache License, Version 2.0 (the \"License\");\n\
#   you may not use this file except in compliance with the License.\n\n\
disabled_plugins = [\"cri\"]\n\n\
#root = \"/var/lib/containerd\"\n\
#state = \"/run/containerd\"\n\
#subreaper = true\n\
#oom_score = 0\n\n\
#[grpc]\n\
#  address = \"/run/containerd/containerd.sock\"\n\
#  uid = 0\n\
#  gid = 0\n\n\
#[debug]\n\
#  address = \"/run/containerd/debug.sock\"\n\
#  uid = 0\n\
#  gid = 0\n\
#  level = \"info\"\n";

const EXPORTS: &str = "# /etc/exports: the access control list for filesystems which may be exported\n\
#\t\tto NFS clients.  See exports(5).\n\
#\n\
# Example for NFSv2 and NFSv3:\n\
# /srv/homes       hostname1(rw,sync,no_subtree_check) hostname2(ro,sync,no_subtree_check)\n\
#\n\
# Example for NFSv4:\n\
# /srv/nfs4        gss/krb5i(rw,sync,fsid=0,crossmnt,no_subtree_check)\n\
# /srv/nfs4/homes  gss/krb5i(rw,sync,no_subtree_check)\n\
#\n";

fn pkg(name: &str, version: &str, repo: Repo) -> Pkg {
    Pkg {
        name: name.to_owned(),
        version: version.to_owned(),
        repo,
        section: "admin",
        priority: "optional",
        essential: false,
        depends: Vec::new(),
        depends_same: Vec::new(),
        conflicts: Vec::new(),
        provides: Vec::new(),
        bins: Vec::new(),
        units: Vec::new(),
        conffiles: Vec::new(),
        description: "",
        size_kb: 1024,
    }
}

fn deps(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Fills in what is known about an Ubuntu package beyond its name and version.
#[allow(clippy::too_many_lines)]
fn describe(p: &mut Pkg) {
    let (section, desc, size, bins, essential): (&str, &str, u64, &[&str], bool) =
        match p.name.as_str() {
            "apt" => (
                "admin",
                "commandline package manager",
                4156,
                &["apt", "apt-get", "apt-cache"],
                false,
            ),
            "bash" => ("shells", "GNU Bourne Again SHell", 1864, &[], true),
            "ca-certificates" => ("misc", "Common CA certificates", 384, &[], false),
            "coreutils" => ("utils", "GNU core utilities", 7112, &[], true),
            "cron" => ("admin", "process scheduling daemon", 249, &[], false),
            "curl" => (
                "web",
                "command line tool for transferring data with URL syntax",
                453,
                &[],
                false,
            ),
            "dpkg" => (
                "admin",
                "Debian package management system",
                6732,
                &["dpkg", "dpkg-query"],
                true,
            ),
            "gnupg" => (
                "utils",
                "GNU privacy guard - a free PGP replacement",
                458,
                &[],
                false,
            ),
            "grep" => ("utils", "GNU grep, egrep and fgrep", 512, &[], true),
            "gzip" => ("utils", "GNU compression utilities", 245, &[], true),
            "iproute2" => (
                "net",
                "networking and traffic control tools",
                3400,
                &[],
                false,
            ),
            "iptables" => (
                "net",
                "administration tools for packet filtering and NAT",
                2854,
                &[],
                false,
            ),
            "kmod" => (
                "admin",
                "tools for managing Linux kernel modules",
                250,
                &[],
                false,
            ),
            "lsb-release" => (
                "misc",
                "Linux Standard Base version reporting utility",
                37,
                &[],
                false,
            ),
            "mount" => (
                "admin",
                "tools for mounting and manipulating filesystems",
                402,
                &[],
                false,
            ),
            "openssh-client" => (
                "net",
                "secure shell (SSH) client, for secure access to remote machines",
                4600,
                &[],
                false,
            ),
            "openssh-server" => (
                "net",
                "secure shell (SSH) server, for secure access from remote machines",
                1480,
                &[],
                false,
            ),
            "python3" => (
                "python",
                "interactive high-level object-oriented language (default python3 version)",
                95,
                &[],
                false,
            ),
            "rsyslog" => (
                "admin",
                "reliable system and kernel logging daemon",
                1700,
                &[],
                false,
            ),
            "sed" => (
                "utils",
                "GNU stream editor for filtering/transforming text",
                324,
                &[],
                true,
            ),
            "sudo" => (
                "admin",
                "Provide limited super user privileges to specific users",
                2500,
                &[],
                false,
            ),
            "systemd" => (
                "admin",
                "system and service manager",
                15000,
                &["systemctl"],
                false,
            ),
            "systemd-sysv" => (
                "admin",
                "system and service manager - SysV links",
                100,
                &["reboot"],
                false,
            ),
            "tar" => (
                "utils",
                "GNU version of the tar archiving utility",
                960,
                &[],
                true,
            ),
            "ufw" => (
                "admin",
                "program for managing a Netfilter firewall",
                860,
                &[],
                false,
            ),
            "unattended-upgrades" => (
                "admin",
                "automatic installation of security upgrades",
                420,
                &[],
                false,
            ),
            "util-linux" => ("utils", "miscellaneous system utilities", 4100, &[], true),
            "apt-transport-https" => (
                "admin",
                "transitional package for https support",
                36,
                &[],
                false,
            ),
            "chrony" => (
                "net",
                "Versatile implementation of the Network Time Protocol",
                640,
                &[],
                false,
            ),
            "conntrack" => (
                "net",
                "Program to modify the conntrack tables",
                112,
                &[],
                false,
            ),
            "ebtables" => (
                "net",
                "Ethernet bridge frame table administration",
                260,
                &[],
                false,
            ),
            "ethtool" => (
                "net",
                "display or change Ethernet device settings",
                700,
                &[],
                false,
            ),
            "git" => (
                "vcs",
                "fast, scalable, distributed revision control system",
                36000,
                &[],
                false,
            ),
            "htop" => ("utils", "interactive processes viewer", 342, &[], false),
            "ipset" => (
                "net",
                "administration tool for kernel IP sets",
                92,
                &[],
                false,
            ),
            "jq" => (
                "utils",
                "lightweight and flexible command-line JSON processor",
                102,
                &[],
                false,
            ),
            "keyutils" => ("admin", "Linux Key Management Utilities", 170, &[], false),
            "libjq1" => (
                "libs",
                "lightweight and flexible command-line JSON processor - shared library",
                360,
                &[],
                false,
            ),
            "libonig5" => ("libs", "regular expressions library", 600, &[], false),
            "nfs-common" => (
                "net",
                "NFS support files common to client and server",
                1000,
                &["showmount"],
                false,
            ),
            "nfs-kernel-server" => (
                "net",
                "support for NFS kernel server",
                500,
                &["exportfs"],
                false,
            ),
            "open-iscsi" => ("net", "iSCSI initiator tools", 1400, &[], false),
            "python3-pip" => ("python", "Python package installer", 7000, &[], false),
            "rpcbind" => (
                "net",
                "converts RPC program numbers into universal addresses",
                150,
                &[],
                false,
            ),
            "socat" => (
                "net",
                "multipurpose relay for bidirectional data transfer",
                1200,
                &[],
                false,
            ),
            "unzip" => ("utils", "De-archiver for .zip files", 385, &[], false),
            "vim" => (
                "editors",
                "Vi IMproved - enhanced vi editor",
                3900,
                &[],
                false,
            ),
            "containerd" => (
                "admin",
                "daemon to control runC",
                140_000,
                &["containerd", "ctr"],
                false,
            ),
            "runc" => (
                "admin",
                "Open Container Project - runtime",
                33_000,
                &["runc"],
                false,
            ),
            _ => ("misc", "", 1024, &[], false),
        };
    p.section = section;
    p.description = desc;
    p.size_kb = size;
    p.bins = bins.to_vec();
    p.essential = essential;
    if essential {
        p.priority = "required";
    }
    match p.name.as_str() {
        "jq" => p.depends = deps(&["libjq1"]),
        "libjq1" => p.depends = deps(&["libonig5"]),
        "nfs-common" => p.depends = deps(&["rpcbind", "keyutils"]),
        "nfs-kernel-server" => {
            p.depends = deps(&["nfs-common"]);
            p.units = vec![unit(
                "nfs-server.service",
                "NFS server and services",
                "/usr/sbin/rpc.nfsd",
                "man:rpc.nfsd(8) man:exportfs(8)",
            )];
            p.units[0].oneshot = true;
            p.conffiles = vec![("/etc/exports", EXPORTS.to_owned())];
        }
        "rpcbind" => {
            p.units = vec![unit(
                "rpcbind.service",
                "RPC bind portmap service",
                "/sbin/rpcbind -f -w",
                "man:rpcbind(8)",
            )];
        }
        "chrony" => {
            p.units = vec![unit(
                "chrony.service",
                "chrony, an NTP client/server",
                "/usr/sbin/chronyd -F 1",
                "man:chronyd(8) man:chronyc(1) man:chrony.conf(5)",
            )];
        }
        "open-iscsi" => {
            p.units = vec![unit(
                "iscsid.service",
                "iSCSI initiator daemon (iscsid)",
                "/sbin/iscsid",
                "man:iscsid(8)",
            )];
        }
        "containerd" => {
            p.depends = deps(&["runc"]);
            p.conflicts = deps(&["containerd.io"]);
            p.units = vec![containerd_unit()];
        }
        "runc" => p.conflicts = deps(&["containerd.io"]),
        "python3-pip" => p.depends = deps(&["python3"]),
        _ => {}
    }
}

fn containerd_unit() -> UnitDef {
    unit(
        "containerd.service",
        "containerd container runtime",
        "/usr/bin/containerd",
        "https://containerd.io",
    )
}

fn kubelet_unit() -> UnitDef {
    unit(
        "kubelet.service",
        "kubelet: The Kubernetes Node Agent",
        "/usr/bin/kubelet",
        "https://kubernetes.io/docs/",
    )
}

/// Every package version known to a node of `release` (`18.04`, `20.04`, `22.04`), whatever
/// repositories it has; see `available` for what a node can install.
#[must_use]
#[allow(clippy::too_many_lines)]
pub fn catalog(node: &Node) -> Vec<Pkg> {
    let (version, codename) = release(node);
    let idx = match version {
        "18.04" => 0,
        "20.04" => 1,
        _ => 2,
    };
    let mut out = Vec::new();
    for (name, vers) in BASE.iter().chain(MAIN) {
        let mut p = pkg(name, vers[idx], Repo::Ubuntu);
        describe(&mut p);
        if BASE.iter().any(|(b, _)| b == name) && p.priority == "optional" {
            p.priority = "important";
        }
        out.push(p);
    }
    for (series, build) in NVIDIA_DRIVERS {
        let ver = format!("{build}-0ubuntu0.{version}.1");
        let mut utils = pkg(&format!("nvidia-utils-{series}"), &ver, Repo::Ubuntu);
        utils.section = "restricted/libs";
        utils.description = "NVIDIA driver support binaries";
        utils.bins = vec!["nvidia-smi"];
        utils.size_kb = 2600;
        let mut compute = pkg(
            &format!("nvidia-compute-utils-{series}"),
            &ver,
            Repo::Ubuntu,
        );
        compute.section = "restricted/libs";
        compute.description = "NVIDIA compute utilities";
        compute.units = vec![UnitDef {
            name: "nvidia-persistenced.service".to_owned(),
            description: "NVIDIA Persistence Daemon".to_owned(),
            installable: false,
            start_on_install: true,
            oneshot: false,
            exec: "/usr/bin/nvidia-persistenced --user nvidia-persistenced --no-persistence-mode --verbose".to_owned(),
            docs: String::new(),
        }];
        let mut lib = pkg(&format!("libnvidia-compute-{series}"), &ver, Repo::Ubuntu);
        lib.section = "restricted/libs";
        lib.description = "NVIDIA libcompute package";
        lib.size_kb = 120_000;
        let mut driver = pkg(&format!("nvidia-driver-{series}"), &ver, Repo::Ubuntu);
        driver.section = "restricted/libs";
        driver.description = "NVIDIA driver metapackage";
        driver.size_kb = 50;
        driver.depends_same = vec![utils.name.clone(), compute.name.clone(), lib.name.clone()];
        for (other, _) in NVIDIA_DRIVERS.iter().filter(|(s, _)| s != series) {
            utils.conflicts.push(format!("nvidia-utils-{other}"));
            driver.conflicts.push(format!("nvidia-driver-{other}"));
        }
        out.extend([driver, utils, compute, lib]);
    }
    for &(minor, last) in KUBE_MINORS {
        let repo = Repo::Kubernetes(minor);
        let cni = match minor {
            ..=28 => "1.2.0-2.1",
            29 => "1.3.0-1.1",
            _ => "1.4.0-1.1",
        };
        let mut p = pkg("kubernetes-cni", cni, repo);
        p.description = "Binaries required to provision kubernetes container networking";
        p.size_kb = 60_000;
        out.push(p);
        let mut p = pkg("cri-tools", &format!("1.{minor}.0-1.1"), repo);
        p.description = "Command-line utility for interacting with a container runtime";
        p.size_kb = 40_000;
        out.push(p);
        for patch in 0..=last {
            let ver = format!("1.{minor}.{patch}-1.1");
            let mut kubeadm = pkg("kubeadm", &ver, repo);
            kubeadm.description = "Command-line utility for administering a Kubernetes cluster";
            kubeadm.depends = deps(&["cri-tools"]);
            kubeadm.bins = vec!["kubeadm"];
            kubeadm.size_kb = 50_000;
            let mut kubectl = pkg("kubectl", &ver, repo);
            kubectl.description = "Command-line utility for interacting with a Kubernetes cluster";
            kubectl.bins = vec!["kubectl"];
            kubectl.size_kb = 50_000;
            let mut kubelet = pkg("kubelet", &ver, repo);
            kubelet.description = "Node agent for Kubernetes clusters";
            kubelet.depends = deps(&[
                "iptables",
                "iproute2",
                "socat",
                "util-linux",
                "mount",
                "ebtables",
                "ethtool",
                "conntrack",
                "kubernetes-cni",
            ]);
            kubelet.bins = vec!["kubelet"];
            kubelet.units = vec![kubelet_unit()];
            kubelet.size_kb = 78_000;
            out.extend([kubeadm, kubectl, kubelet]);
        }
    }
    for v in [
        "1.6.28-2", "1.6.31-1", "1.6.33-1", "1.7.19-1", "1.7.22-1", "1.7.24-1",
    ] {
        let mut p = pkg("containerd.io", v, Repo::Docker);
        p.section = "devel";
        p.description = "An open and reliable container runtime";
        p.conflicts = deps(&["containerd", "runc"]);
        p.provides = deps(&["containerd", "runc"]);
        p.bins = vec!["containerd", "ctr", "runc"];
        p.units = vec![containerd_unit()];
        p.conffiles = vec![("/etc/containerd/config.toml", CONTAINERD_CONFIG.to_owned())];
        p.size_kb = 120_000;
        out.push(p);
    }
    for v in ["24.0.9", "25.0.5", "26.1.4", "27.3.1"] {
        let ver = format!("5:{v}-1~ubuntu.{version}~{codename}");
        let mut cli = pkg("docker-ce-cli", &ver, Repo::Docker);
        cli.description = "Docker CLI: the open-source application container engine";
        cli.size_kb = 40_000;
        let mut ce = pkg("docker-ce", &ver, Repo::Docker);
        ce.description = "Docker: the open-source application container engine";
        ce.depends = deps(&["containerd.io", "docker-ce-cli", "iptables"]);
        ce.units = vec![unit(
            "docker.service",
            "Docker Application Container Engine",
            "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",
            "https://docs.docker.com",
        )];
        ce.size_kb = 100_000;
        out.extend([ce, cli]);
    }
    for v in ["3.13.3-1", "3.14.4-1", "3.15.4-1", "3.16.3-1"] {
        let mut p = pkg("helm", v, Repo::Helm);
        p.description = "The Kubernetes Package Manager";
        p.bins = vec!["helm"];
        p.size_kb = 50_000;
        out.push(p);
    }
    for v in ["1.14.6-1", "1.15.0-1", "1.16.2-1", "1.17.3-1"] {
        let mut base = pkg("nvidia-container-toolkit-base", v, Repo::NvidiaContainer);
        base.section = "utils";
        base.description = "NVIDIA Container Toolkit Base";
        base.size_kb = 30_000;
        let mut tk = pkg("nvidia-container-toolkit", v, Repo::NvidiaContainer);
        tk.section = "utils";
        tk.description = "NVIDIA Container toolkit";
        tk.depends_same = vec![base.name.clone(), "libnvidia-container-tools".to_owned()];
        tk.size_kb = 6000;
        let mut tools = pkg("libnvidia-container-tools", v, Repo::NvidiaContainer);
        tools.section = "utils";
        tools.description = "NVIDIA container runtime library (command-line tools)";
        tools.depends_same = vec!["libnvidia-container1".to_owned()];
        let mut lib = pkg("libnvidia-container1", v, Repo::NvidiaContainer);
        lib.section = "libs";
        lib.description = "NVIDIA container runtime library";
        out.extend([tk, base, tools, lib]);
    }
    out
}

/// The names of the packages a fresh lab node has installed.
#[must_use]
pub fn base_packages() -> Vec<&'static str> {
    BASE.iter().map(|(n, _)| *n).collect()
}

/// One source a node's apt reads (one `deb` line, or one URI/suite of a deb822 stanza).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub uri: String,
    pub suite: String,
    pub components: Vec<String>,
    /// `signed-by=` / `Signed-By:` as given (a path, or inline key text).
    pub signed_by: Option<String>,
    /// The file the line came from (for error messages).
    pub file: String,
    pub line: usize,
}

impl Source {
    /// `URI SUITE` as apt writes it in `Hit:`/`Get:` lines and policy output: a flat
    /// repository (suite ending in `/`) shows as `URI  ` (with two spaces).
    #[must_use]
    pub fn label(&self) -> String {
        let uri = self.uri.trim_end_matches('/');
        if self.suite.ends_with('/') {
            let sub = self.suite.trim_end_matches('/').trim_start_matches("./");
            if sub.is_empty() {
                format!("{uri} ")
            } else {
                format!("{uri}/{sub} ")
            }
        } else {
            format!("{uri} {}", self.suite)
        }
    }

    /// The host part of the URI.
    #[must_use]
    pub fn host(&self) -> &str {
        let rest = self
            .uri
            .split_once("://")
            .map_or(self.uri.as_str(), |x| x.1);
        rest.split('/').next().unwrap_or(rest)
    }

    /// What this source is, as far as the lab knows.
    #[must_use]
    pub fn kind(&self) -> SourceKind {
        let u = self.uri.as_str();
        if u.contains("archive.ubuntu.com")
            || u.contains("security.ubuntu.com")
            || u.contains("ports.ubuntu.com")
        {
            SourceKind::Repo(Repo::Ubuntu)
        } else if u.contains("pkgs.k8s.io") {
            let minor = u
                .split("/v1.")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .and_then(|m| m.parse::<u32>().ok());
            match minor {
                Some(m) if KUBE_MINORS.iter().any(|(k, _)| *k == m) => {
                    SourceKind::Repo(Repo::Kubernetes(m))
                }
                _ => SourceKind::NoRelease,
            }
        } else if u.contains("apt.kubernetes.io") || u.contains("packages.cloud.google.com/apt") {
            SourceKind::NoRelease
        } else if u.contains("download.docker.com") {
            SourceKind::Repo(Repo::Docker)
        } else if u.contains("baltocdn.com/helm") || u.contains("packages.buildkite.com/helm-linux")
        {
            SourceKind::Repo(Repo::Helm)
        } else if u.contains("nvidia.github.io/libnvidia-container") {
            SourceKind::Repo(Repo::NvidiaContainer)
        } else {
            SourceKind::Unreachable
        }
    }
}

/// How a source answers `apt-get update` in the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Repo(Repo),
    /// The server answers, but not with a repository (`does not have a Release file`).
    NoRelease,
    /// The lab has no network: unknown hosts do not resolve.
    Unreachable,
}

/// The sources the Ubuntu installer configures (`/etc/apt/sources.list` on a fresh server).
#[must_use]
pub fn ubuntu_sources(node: &Node) -> Vec<Source> {
    let (_, codename) = release(node);
    let mk = |uri: &str, suite: String| Source {
        uri: uri.to_owned(),
        suite,
        components: deps(&["main", "restricted", "universe", "multiverse"]),
        signed_by: None,
        file: "/etc/apt/sources.list".to_owned(),
        line: 0,
    };
    vec![
        mk("http://archive.ubuntu.com/ubuntu", codename.to_owned()),
        mk(
            "http://archive.ubuntu.com/ubuntu",
            format!("{codename}-updates"),
        ),
        mk(
            "http://archive.ubuntu.com/ubuntu",
            format!("{codename}-backports"),
        ),
        mk(
            "http://security.ubuntu.com/ubuntu",
            format!("{codename}-security"),
        ),
    ]
}

/// A source file apt cannot parse: `(file, entry number, what is missing)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub file: String,
    pub entry: usize,
    pub what: &'static str,
    pub stanza: bool,
}

impl Malformed {
    /// apt's two error lines.
    #[must_use]
    pub fn message(&self) -> String {
        if self.stanza {
            format!(
                "E: Malformed stanza {} in source list {} ({})\nE: The list of sources could not be read.\n",
                self.entry, self.file, self.what
            )
        } else {
            format!(
                "E: Malformed entry {} in list file {} ({})\nE: The list of sources could not be read.\n",
                self.entry, self.file, self.what
            )
        }
    }
}

/// The third-party sources configured on the node: `/etc/apt/sources.list.d/*.list` (one-line
/// format) and `*.sources` (deb822), in file-name order. `/etc/apt/sources.list` is the
/// Ubuntu archive's ([`ubuntu_sources`]); lines in it for other repositories count too.
pub fn read_sources(node: &Node) -> Result<Vec<Source>, Malformed> {
    let mut files: Vec<(String, PathBuf)> = vec![(
        "/etc/apt/sources.list".to_owned(),
        node.path("/etc/apt/sources.list"),
    )];
    if let Ok(rd) = std::fs::read_dir(node.path("/etc/apt/sources.list.d")) {
        let mut names: Vec<String> = rd
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| {
                std::path::Path::new(n)
                    .extension()
                    .is_some_and(|e| e == "list" || e == "sources")
            })
            .collect();
        names.sort();
        for n in names {
            let abs = format!("/etc/apt/sources.list.d/{n}");
            let p = node.path(&abs);
            files.push((abs, p));
        }
    }
    let mut out = Vec::new();
    for (abs, path) in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let parsed = if abs.ends_with(".sources") {
            parse_deb822(&abs, &text)?
        } else {
            parse_one_line(&abs, &text)?
        };
        let is_main_list = abs == "/etc/apt/sources.list";
        out.extend(
            parsed
                .into_iter()
                .filter(|s| !is_main_list || s.kind() != SourceKind::Repo(Repo::Ubuntu))
                .filter(|s| !is_main_list || s.kind() != SourceKind::Unreachable),
        );
    }
    Ok(out)
}

fn parse_one_line(file: &str, text: &str) -> Result<Vec<Source>, Malformed> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = |what| Malformed {
            file: file.to_owned(),
            entry: i + 1,
            what,
            stanza: false,
        };
        let mut rest = line;
        let ty = rest.split_whitespace().next().unwrap_or("");
        if ty != "deb" && ty != "deb-src" {
            return Err(bad("Type"));
        }
        rest = rest[ty.len()..].trim_start();
        let mut signed_by = None;
        if let Some(r) = rest.strip_prefix('[') {
            let Some((opts, after)) = r.split_once(']') else {
                return Err(bad("Options"));
            };
            for o in opts.split_whitespace() {
                if let Some(v) = o.strip_prefix("signed-by=") {
                    signed_by = Some(v.to_owned());
                }
            }
            rest = after.trim_start();
        }
        let mut words = rest.split_whitespace();
        let Some(uri) = words.next() else {
            return Err(bad("URI"));
        };
        let Some(suite) = words.next() else {
            return Err(bad("Suite"));
        };
        let components: Vec<String> = words.map(str::to_owned).collect();
        if !suite.ends_with('/') && components.is_empty() {
            return Err(bad("Component"));
        }
        if ty == "deb" {
            out.push(Source {
                uri: uri.to_owned(),
                suite: suite.to_owned(),
                components,
                signed_by,
                file: file.to_owned(),
                line: i + 1,
            });
        }
    }
    Ok(out)
}

fn parse_deb822(file: &str, text: &str) -> Result<Vec<Source>, Malformed> {
    let mut out = Vec::new();
    let mut stanza: Vec<(String, String)> = Vec::new();
    let mut n = 0;
    let mut flush = |stanza: &mut Vec<(String, String)>, n: &mut usize| {
        if stanza.is_empty() {
            return Ok(());
        }
        *n += 1;
        let get = |k: &str| {
            stanza
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let bad = |what| Malformed {
            file: file.to_owned(),
            entry: *n,
            what,
            stanza: true,
        };
        let enabled = get("Enabled").is_none_or(|v| v.trim() != "no");
        let types = get("Types").ok_or_else(|| bad("Type"))?;
        let uris = get("URIs").ok_or_else(|| bad("URI"))?;
        let suites = get("Suites").ok_or_else(|| bad("Suite"))?;
        let components: Vec<String> = get("Components")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let signed_by = get("Signed-By").map(|s| s.trim().to_owned());
        if enabled && types.split_whitespace().any(|t| t == "deb") {
            for uri in uris.split_whitespace() {
                for suite in suites.split_whitespace() {
                    if !suite.ends_with('/') && components.is_empty() {
                        return Err(bad("Component"));
                    }
                    out.push(Source {
                        uri: uri.to_owned(),
                        suite: suite.to_owned(),
                        components: components.clone(),
                        signed_by: signed_by.clone(),
                        file: file.to_owned(),
                        line: *n,
                    });
                }
            }
        }
        stanza.clear();
        Ok(())
    };
    for raw in text.lines() {
        if raw.starts_with('#') {
            continue;
        }
        if raw.trim().is_empty() {
            flush(&mut stanza, &mut n)?;
        } else if raw.starts_with([' ', '\t']) {
            if let Some(last) = stanza.last_mut() {
                last.1.push('\n');
                last.1.push_str(raw.trim());
            }
        } else if let Some((k, v)) = raw.split_once(':') {
            stanza.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    flush(&mut stanza, &mut n)?;
    Ok(out)
}

/// Compares two Debian version strings as dpkg does (epoch, upstream, revision; `~` sorts
/// before everything, letters before other characters).
#[must_use]
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((u, r)) => (epoch, u, r),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<char>) -> i32 {
        match c {
            None => 0,
            Some('~') => -1,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(c) => c as i32 + 256,
        }
    }
    fn part(a: &str, b: &str) -> std::cmp::Ordering {
        let (mut a, mut b) = (a.chars().peekable(), b.chars().peekable());
        loop {
            // Non-digit prefix.
            loop {
                let ca = a.peek().copied().filter(|c| !c.is_ascii_digit());
                let cb = b.peek().copied().filter(|c| !c.is_ascii_digit());
                if ca.is_none() && cb.is_none() {
                    break;
                }
                let o = order(ca).cmp(&order(cb));
                if o.is_ne() {
                    return o;
                }
                a.next();
                b.next();
            }
            let mut na = String::new();
            while let Some(c) = a.peek().copied().filter(char::is_ascii_digit) {
                na.push(c);
                a.next();
            }
            let mut nb = String::new();
            while let Some(c) = b.peek().copied().filter(char::is_ascii_digit) {
                nb.push(c);
                b.next();
            }
            let (x, y) = (na.trim_start_matches('0'), nb.trim_start_matches('0'));
            let o = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
            if o.is_ne() {
                return o;
            }
            if a.peek().is_none() && b.peek().is_none() {
                return std::cmp::Ordering::Equal;
            }
        }
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| part(ua, ub))
        .then_with(|| part(ra, rb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::{Equal, Greater, Less};

    #[test]
    fn debian_version_order() {
        assert_eq!(version_cmp("1.29.3-1.1", "1.29.10-1.1"), Less);
        assert_eq!(version_cmp("1:1.4.6-2build2", "1.9"), Greater);
        assert_eq!(version_cmp("1.0~rc1", "1.0"), Less);
        assert_eq!(version_cmp("1.0", "1.0-0"), Equal);
        assert_eq!(version_cmp("2.4.11", "2.4.11"), Equal);
        assert_eq!(version_cmp("1.6-2.1ubuntu3", "1.6-2.1"), Greater);
        assert_eq!(version_cmp("1.0a", "1.0+"), Less);
    }

    #[test]
    fn sources_in_both_formats_and_malformed_lines() {
        let dir = tempfile::tempdir().unwrap();
        let node = Node {
            root: dir.path().to_path_buf(),
            ..Node::default()
        };
        let d = node.path("/etc/apt/sources.list.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("kubernetes.list"),
            "# comment\ndeb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.29/deb/ /\n",
        )
        .unwrap();
        std::fs::write(
            d.join("docker.sources"),
            "Types: deb\nURIs: https://download.docker.com/linux/ubuntu\nSuites: jammy\nComponents: stable\nSigned-By: /etc/apt/keyrings/docker.asc\n\nTypes: deb\nURIs: https://example.com/x\nSuites: a\nComponents: main\nEnabled: no\n",
        )
        .unwrap();
        std::fs::write(d.join("ignored.save"), "garbage\n").unwrap();
        let s = read_sources(&node).unwrap();
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].kind(), SourceKind::Repo(Repo::Docker));
        assert_eq!(
            s[0].signed_by.as_deref(),
            Some("/etc/apt/keyrings/docker.asc")
        );
        assert_eq!(s[1].kind(), SourceKind::Repo(Repo::Kubernetes(29)));
        assert_eq!(s[1].label(), "https://pkgs.k8s.io/core:/stable:/v1.29/deb ");
        std::fs::write(d.join("bad.list"), "deb https://x.example/ubuntu jammy\n").unwrap();
        let e = read_sources(&node).unwrap_err();
        assert_eq!(
            e.message(),
            "E: Malformed entry 1 in list file /etc/apt/sources.list.d/bad.list (Component)\nE: The list of sources could not be read.\n"
        );
    }

    #[test]
    fn kube_repositories_hold_one_minor_and_the_legacy_one_is_gone() {
        let s = |uri: &str| Source {
            uri: uri.to_owned(),
            suite: "/".to_owned(),
            components: vec![],
            signed_by: None,
            file: String::new(),
            line: 1,
        };
        assert_eq!(
            s("https://pkgs.k8s.io/core:/stable:/v1.31/deb/").kind(),
            SourceKind::Repo(Repo::Kubernetes(31))
        );
        assert_eq!(
            s("https://pkgs.k8s.io/core:/stable:/v1.99/deb/").kind(),
            SourceKind::NoRelease
        );
        assert_eq!(
            s("https://apt.kubernetes.io/").kind(),
            SourceKind::NoRelease
        );
        assert_eq!(s("http://mirror.example/x").kind(), SourceKind::Unreachable);
        let node = Node::default();
        let cat = catalog(&node);
        let kubeadm: Vec<&Pkg> = cat
            .iter()
            .filter(|p| p.name == "kubeadm" && p.repo == Repo::Kubernetes(29))
            .collect();
        assert_eq!(kubeadm.len(), 16);
        assert!(kubeadm.iter().all(|p| p.version.starts_with("1.29.")));
    }
}
