//! Stand-ins for the tools a rebuild drives, run on lab nodes under the tool's own name.
//!
//! `kamo` looks at the name it was called by (`argv[0]`): when that is one of [`TOOLS`] it
//! behaves as that tool instead of parsing kamo's own command line. Lab nodes get symlinks
//! `apt-get -> kamo` and so on (in the node's own `/usr/local/sbin`, or `/usr/bin` once the
//! package that ships the tool is installed), so playbooks run the same commands, with the
//! same flags, output formats, exit codes and failure messages as on real machines.
//!
//! Each tool is a function `fn(&Node, &[String], &mut Io) -> i32` so it can be unit-tested
//! against a temporary root directory and fixtures of the real tools' output.

pub mod reboot;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod catalog;
pub mod cluster;
#[cfg(test)]
mod e2e_tests;
pub mod gpu_nfs;
pub mod helm;
pub mod kernel;
pub mod kube;
pub mod packages;
pub mod systemctl;

/// The tool names kamo answers to.
pub const TOOLS: &[&str] = &[
    "apt-get",
    "apt",
    "apt-cache",
    "apt-mark",
    "dpkg",
    "dpkg-query",
    "systemctl",
    "reboot",
    "kubeadm",
    "kubectl",
    "helm",
    "nvidia-smi",
    "exportfs",
    "showmount",
    "sysctl",
    "modprobe",
    "lsmod",
    "modinfo",
    "hostnamectl",
];

/// Where a node's description lives inside the node's view of the filesystem.
pub const NODE_FILE: &str = "/etc/kamo-lab/node.json";

/// Environment variable naming another node description (unit tests, debugging).
pub const NODE_ENV: &str = "KAMO_LAB_NODE";

/// What a stand-in knows about the node it runs on (written by `kamo lab up`).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Node {
    /// The node's inventory name (`node01`).
    pub name: String,
    /// Its address (`127.x.y.z`).
    pub address: String,
    /// The lab directory, shared by every node: cluster state lives in `<lab>/cluster/`.
    pub lab_dir: PathBuf,
    /// Has a (simulated) NVIDIA GPU.
    #[serde(default)]
    pub gpu: bool,
    /// `22.04`, `20.04` or `18.04`.
    pub os_release: String,
    /// The kamo binary the tool symlinks point at.
    pub kamo_bin: PathBuf,
    /// Prefix for every absolute path the tools touch: `/` on a node, a temp dir in tests.
    #[serde(default = "root_dir")]
    pub root: PathBuf,
}

fn root_dir() -> PathBuf {
    PathBuf::from("/")
}

impl Node {
    /// Reads the node description from `$KAMO_LAB_NODE`, else [`NODE_FILE`].
    pub fn load() -> Result<Node, String> {
        let path =
            std::env::var_os(NODE_ENV).map_or_else(|| PathBuf::from(NODE_FILE), PathBuf::from);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: this is not a kamo lab node ({e})", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// `abs` (an absolute path as the node sees it) under the node's root.
    #[must_use]
    pub fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    /// The cluster-wide state directory (what etcd and the registry hold on a real cluster).
    #[must_use]
    pub fn cluster_dir(&self) -> PathBuf {
        self.lab_dir.join("cluster")
    }

    /// This node's private state directory (`/var/lib/kamo-lab`).
    #[must_use]
    pub fn state_dir(&self) -> PathBuf {
        self.path("/var/lib/kamo-lab")
    }
}

/// What a tool prints; collected so unit tests can compare it with the real tool's output.
#[derive(Debug, Default)]
pub struct Io {
    pub out: Vec<u8>,
    pub err: Vec<u8>,
}

impl Io {
    pub fn out(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    pub fn err(&mut self, s: &str) {
        self.err.extend_from_slice(s.as_bytes());
    }
}

/// The tool kamo was called as, if any (the file name of `argv[0]`).
#[must_use]
pub fn called_as(argv0: &str) -> Option<&'static str> {
    let name = Path::new(argv0).file_name()?.to_str()?;
    TOOLS.iter().copied().find(|t| *t == name)
}

/// Runs tool `tool` with `args` (without `argv[0]`) on this node; returns the exit code.
#[must_use]
pub fn main(tool: &str, args: &[String]) -> i32 {
    let node = match Node::load() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("{tool}: {e}");
            return 127;
        }
    };
    let mut io = Io::default();
    let code = run(tool, &node, args, &mut io);
    let _ = std::io::stdout().write_all(&io.out);
    let _ = std::io::stderr().write_all(&io.err);
    code
}

/// Dispatches to the tool's implementation.
pub fn run(tool: &str, node: &Node, args: &[String], io: &mut Io) -> i32 {
    match tool {
        "reboot" => reboot::main(node, args, io),
        "systemctl" if args.first().is_some_and(|a| a == "reboot") => reboot::request(node, io),
        "apt-get" => packages::apt_get(node, args, io),
        "apt" => packages::apt(node, args, io),
        "apt-cache" => packages::apt_cache(node, args, io),
        "apt-mark" => packages::apt_mark(node, args, io),
        "dpkg" => packages::dpkg(node, args, io),
        "dpkg-query" => packages::dpkg_query(node, args, io),
        "systemctl" => systemctl::systemctl(node, args, io),
        "sysctl" => kernel::sysctl(node, args, io),
        "modprobe" => kernel::modprobe(node, args, io),
        "lsmod" => kernel::lsmod(node, args, io),
        "modinfo" => kernel::modinfo(node, args, io),
        "hostnamectl" => kernel::hostnamectl(node, args, io),
        "kubeadm" => kube::kubeadm(node, args, io),
        "kubectl" => kube::kubectl(node, args, io),
        "helm" => helm::helm(node, args, io),
        "nvidia-smi" => gpu_nfs::nvidia_smi(node, args, io),
        "exportfs" => gpu_nfs::exportfs(node, args, io),
        "showmount" => gpu_nfs::showmount(node, args, io),
        _ => {
            let _ = (node, args);
            io.err(&format!("{tool}: not available on this lab node yet\n"));
            127
        }
    }
}
