//! Verified host-to-host data transfer, for `kamo copy` and `kamo migrate`.
//!
//! Data sets (an NFS export, MinIO's data directory, `/etc/kamonohashi`) move between nodes as a
//! tar stream over SSH. A copy is trusted only when a manifest of every file, computed on the
//! source and again on the target, shows no difference; free space on the target is checked
//! before anything is sent. The modules here build the remote commands and read their output;
//! they open no connections themselves.

pub mod manifest;
pub mod space;
