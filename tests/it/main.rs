//! The one integration-test binary: `cargo test --test it`.
//! Tests that need SSH peers start real sshd processes via `support::SshCluster` (root only).

// The harness calls libc (kill, geteuid, setrlimit) to manage the sshd processes it starts;
// pedantic lints are for the product code, tests favour directness.
#![allow(unsafe_code, clippy::pedantic)]

mod support;

mod auth;
mod copy;
mod db;
mod exec;
mod exec_secrets;
mod faults;
mod harness;
mod host_keys;
mod hostile;
mod injection;
mod inventory_cli;
mod journal;
mod lab;
mod lifecycle;
mod lifecycle_verbs;
mod migrate;
mod playbook;
mod rollback;
mod secrets;
mod sftp;
mod state_dir;
mod vault;
mod verbs;
