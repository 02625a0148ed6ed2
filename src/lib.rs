//! kamo rebuilds whole GPU Kubernetes clusters over SSH.
//!
//! An Ansible inventory names the hosts; kamo opens one SSH connection per host (russh, no
//! OpenSSH client processes) and runs commands on all of them in parallel, bounded by `--forks`.
//!
//! Layout (dependencies point down):
//! - `cli`: clap types only.
//! - `commands/`: one file per subcommand: load inputs, run, report, pick the exit code.
//! - `inventory/`: INI and YAML inventories, `group_vars/`/`host_vars/`, host patterns.
//! - `db/`: the app's PostgreSQL schema: EF Core migrations as SQL (`playbooks/migrations/`),
//!   where the database is and its password (`~/.pgpass`), backups with `pg_dump`.
//! - `transport/`: SSH (russh), `known_hosts` verification, shell quoting, connection settings.
//! - `coordinator/`: workstation steps between playbooks: confirmations, the version matrix,
//!   which playbooks a lifecycle verb runs, the database rollback's plan and journal steps, the
//!   `--via` SSH tunnel.
//! - `transfer/`: verified host-to-host copies of data sets: manifests, free-space checks.
//! - `secret`, `error`: values that never print, and the one error type with its exit codes.
//! - `vault`: Ansible Vault data (`--vault-password-file`, `--ask-vault-pass`), decrypted at
//!   load time; every decrypted value is a secret.
//!
//! Files kamo reads: the inventory (`-i`, default `./inventory/hosts.ini`), `~/.ssh/config`,
//! `~/.ssh/known_hosts` (or `--known-hosts`), private keys, the ssh-agent socket.
//! `kamo rollback` and the `db` commands also read `~/.pgpass` (or `$PGPASSFILE`) and the
//! inventory's `db_password_file`. Vault password files (`--vault-password-file`,
//! `$ANSIBLE_VAULT_PASSWORD_FILE`) are read, or run when executable.
//! Files kamo writes: the `known_hosts` file, only under `--host-key-checking accept-new`; the
//! run journal in the state directory; database backups (`STATE_DIR/backups` or
//! `--backup-dir`, mode 0600).

pub mod cli;
pub mod commands;
pub mod coordinator;
pub mod db;
pub mod engine;
pub mod error;
pub mod input;
pub mod inventory;
pub mod journal;
pub mod lab;
pub mod playbook;
#[cfg(test)]
mod props;
pub mod secret;
pub mod transfer;
pub mod transport;
pub mod ui;
pub mod vault;
