//! `kamo lab`: a rehearsal cluster of real OpenSSH servers on this machine (issue 5).
//!
//! Each node is its own `sshd` with its own host key and loopback address, running in a mount
//! namespace of its own where `/etc`, `/var/lib`, `/opt`, `/usr/local`, `/root`, `/home` and
//! `/usr/bin` are overlays on the machine's own directories: a node sees a normal system, but
//! what a playbook writes there stays on that node. The programs a rebuild drives (apt, dpkg,
//! systemctl, kubeadm, kubectl, helm, nvidia-smi, exportfs, reboot) are stand-ins: this very
//! binary, called under the tool's name (see [`standin`]), keeping per-node state under the
//! node's `/var/lib/kamo-lab` and cluster state in the lab directory that every node sees.
//! With `--with-db`, the lab also runs the app's PostgreSQL database ([`db`]).

pub mod db;
pub mod disk;
pub mod node;
pub mod standin;
pub mod supervisor;
pub mod userns;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
pub use node::NodeSpec;

/// The lab's description, `<dir>/lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lab {
    pub dir: PathBuf,
    pub nodes: Vec<NodeSpec>,
    pub port: u16,
    pub os_release: String,
    pub with_db: bool,
    pub created_at: i64,
    /// Seconds a rebooted node stays down.
    pub reboot_seconds: u64,
    /// The app database (`--with-db`).
    #[serde(default)]
    pub db: Option<db::LabDb>,
    /// Started by an ordinary user, in a user namespace (see [`userns`]).
    #[serde(default)]
    pub userns: bool,
}

impl Lab {
    #[must_use]
    pub fn file(dir: &Path) -> PathBuf {
        dir.join("lab.json")
    }

    /// Reads `<dir>/lab.json`.
    pub fn load(dir: &Path) -> Result<Lab, Error> {
        let f = Self::file(dir);
        let text = std::fs::read_to_string(&f).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Usage(format!(
                    "no lab in {} (start one with `kamo lab up --dir {}`)",
                    dir.display(),
                    dir.display()
                ))
            } else {
                Error::io("cannot read", &f, e)
            }
        })?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Other(format!("{}: not a lab description: {e}", f.display())))
    }

    pub fn save(&self) -> Result<(), Error> {
        let f = Self::file(&self.dir);
        let tmp = f.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self).unwrap_or_default())
            .map_err(|e| Error::io("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, &f).map_err(|e| Error::io("cannot write", &f, e))
    }

    /// The node named `name` (an inventory host name).
    pub fn node(&self, name: &str) -> Result<&NodeSpec, Error> {
        self.nodes.iter().find(|n| n.name == name).ok_or_else(|| {
            Error::Usage(format!(
                "no node {name} in the lab at {} (nodes: {})",
                self.dir.display(),
                self.nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// The control directory the supervisor watches for requests.
    #[must_use]
    pub fn ctl_dir(&self) -> PathBuf {
        self.dir.join("ctl")
    }

    /// The supervisor's pid file.
    #[must_use]
    pub fn supervisor_pid_file(dir: &Path) -> PathBuf {
        dir.join("supervisor.pid")
    }
}

/// Writes `text` to `path` so that a reader sees either the old file or the whole new one
/// (supervisor and commands poll each other's files).
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Node names: `node01`..`node99`, then `node100`...
#[must_use]
pub fn node_name(i: usize, n: usize) -> String {
    let width = n.to_string().len().max(2);
    format!("node{i:0width$}")
}
