//! Verified host-to-host data transfer, for `kamo copy` and `kamo migrate`.
//!
//! Data sets (an NFS export, MinIO's data directory, `/etc/kamonohashi`) move between nodes as a
//! tar stream over SSH. A copy is trusted only when a manifest of every file, computed on the
//! source and again on the target, shows no difference; free space on the target is checked
//! before anything is sent. `manifest` and `space` build the remote commands and read their
//! output; `copy` (through the workstation) and `direct` (node to node) drive the transfer on
//! the connections they are given.

pub mod copy;
pub mod direct;
pub mod manifest;
pub mod source;
pub mod space;
