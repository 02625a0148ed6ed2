//! `kamo lab`: a rehearsal cluster of real OpenSSH servers on this machine (issue 5).
//!
//! Each node is its own `sshd` with its own host key and loopback address, running in a mount
//! namespace of its own where `/etc`, `/var/lib`, `/opt`, `/usr/local`, `/root`, `/home` and
//! `/usr/bin` are overlays on the machine's own directories: a node sees a normal system, but
//! what a playbook writes there stays on that node. The programs a rebuild drives (apt, dpkg,
//! systemctl, kubeadm, kubectl, helm, nvidia-smi, exportfs, reboot) are stand-ins: this very
//! binary, called under the tool's name (see [`standin`]), keeping per-node state under the
//! node's `/var/lib/kamo-lab` and cluster state in the lab directory that every node sees.

pub mod standin;
