//! The one integration-test binary: `cargo test --test it`.
//! Tests that need SSH peers start real sshd processes via `support::SshCluster` (root only).

mod support;

mod harness;
