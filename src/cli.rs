//! Command-line types (clap derive) and nothing else.
//!
//! Flag names follow `ansible`/`ansible-playbook` where a flag means the same thing (`-i`,
//! `-l`, `-f`, `-u`, `-k`, `-K`, `-b`, `--private-key`, `--timeout`), so operators' habits carry
//! over. Bad options exit 5 (Ansible's code), not clap's default 2.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::transport::ssh::HostKeyChecking;

#[derive(Debug, Parser)]
#[command(
    name = "kamo",
    version,
    about = "Rebuild whole GPU Kubernetes clusters over SSH",
    max_term_width = 100
)]
pub struct Cli {
    /// More output: -v shows info, -vv debug, -vvv trace (also `KAMO_LOG=filter`).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one command on every host matching PATTERN, in parallel, over SSH.
    Exec(ExecArgs),
    /// Show the hosts and groups of an inventory.
    #[command(subcommand)]
    Inventory(InventoryCommand),
    /// Run playbooks on the inventory's hosts.
    Run(RunArgs),
    /// Per-node dry run, offline: what every task would run on every host, touching nothing.
    Plan(PlanArgs),
    /// Check playbooks for errors without an inventory or any connection.
    SyntaxCheck(SyntaxCheckArgs),
    /// Carry on with an interrupted or failed run where it stopped (default: the latest one).
    Resume(ResumeArgs),
    /// The recorded runs, newest first.
    History(HistoryArgs),
    /// Per-host task states of a recorded run.
    Show(ShowArgs),
    /// The recorded output of a host's tasks in a run.
    Log(LogArgs),
    /// A rehearsal cluster of real SSH nodes on this machine.
    #[command(subcommand)]
    Lab(LabCommand),
    /// Write the cluster's inventory and settings (asks, or takes flags).
    Configure(ConfigureArgs),
    /// Install Kubernetes, NFS and the app (all = k8s + nfs + app; infra = k8s + nfs).
    Deploy(DeployArgs),
    /// Uninstall: all (every node back to bare; data kept unless --purge-data), app,
    /// nvidia-repo, nvidia-packages.
    Clean(CleanArgs),
    /// Update the app (Helm upgrade), the nodes' configuration, or Kubernetes certificates.
    Update(UpdateArgs),
    /// Clean all with the deployed version's playbooks, then deploy all with the target's.
    Rebuild(RebuildArgs),
    /// Change the app's database or storage password, or show the credentials.
    Credentials(CredentialsArgs),
    /// Preflight and postflight checks of a cluster: a table, or JSON with --output json.
    Check(CheckArgs),
    /// The compatibility matrix: app version, Kubernetes, Ubuntu, MinIO, GitLab, LDAP.
    Versions(VersionsArgs),
    /// Shell completions for bash, zsh, fish, elvish or powershell, on stdout.
    Completions(CompletionsArgs),
    /// The manual page (roff) on stdout, or one page per command into --dir.
    Man(ManArgs),
    /// Take the app database back to an earlier EF Core migration (and the app to its version):
    /// stop the app, back up, revert in one transaction, verify, redeploy.
    Rollback(RollbackArgs),
    /// Take the app database forward to a newer migration with the up.sql scripts (backup,
    /// one transaction, verify).
    MigrateDb(MigrateDbArgs),
    /// The app database: its migrations, and restoring a backup.
    #[command(subcommand)]
    Db(DbCommand),
    /// Copy a directory from one host to others, verified file by file (SHA-256 manifests).
    Copy(CopyArgs),
    /// Move the cluster to new machines: stop the app, dump the database, copy and verify
    /// every data set, deploy the new cluster, restore, start; `finalize` cleans the old one.
    Migrate(MigrateArgs),
}

impl Command {
    /// The vault passwords the command was given, if it reads inventories or playbooks.
    #[must_use]
    pub fn vault(&self) -> Option<&VaultArgs> {
        Some(match self {
            Self::Exec(a) => &a.inventory.vault,
            Self::Inventory(InventoryCommand::List(a)) => &a.inventory.vault,
            Self::Inventory(InventoryCommand::Graph(a)) => &a.inventory.vault,
            Self::Run(a) => &a.inventory.vault,
            Self::Plan(a) => &a.inventory.vault,
            Self::SyntaxCheck(a) => &a.vault,
            Self::Resume(a) => &a.inventory.vault,
            Self::Deploy(a) => &a.common.inventory.vault,
            Self::Clean(a) => &a.common.inventory.vault,
            Self::Update(a) => &a.common.inventory.vault,
            Self::Rebuild(a) => &a.common.inventory.vault,
            Self::Credentials(a) => &a.common.inventory.vault,
            Self::Check(a) => &a.inventory.vault,
            Self::Copy(a) => &a.inventory.vault,
            Self::Rollback(a) => &a.db.inventory.vault,
            Self::MigrateDb(a) => &a.db.inventory.vault,
            Self::Db(DbCommand::Status(a)) => &a.db.inventory.vault,
            Self::Db(DbCommand::Restore(a)) => &a.db.inventory.vault,
            Self::Migrate(a) => match &a.command {
                Some(MigrateCommand::Finalize(f)) => &f.vault,
                None => &a.vault,
            },
            Self::History(_)
            | Self::Show(_)
            | Self::Log(_)
            | Self::Lab(_)
            | Self::Configure(_)
            | Self::Versions(_)
            | Self::Completions(_)
            | Self::Man(_) => return None,
        })
    }
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
#[allow(clippy::struct_excessive_bools)] // each bool is one command-line switch
pub struct MigrateArgs {
    #[command(subcommand)]
    pub command: Option<MigrateCommand>,
    /// The old cluster's inventory.
    #[arg(long, value_name = "OLD_INV", required = true)]
    pub from: Option<PathBuf>,
    /// The new cluster's inventory (its settings give the new paths).
    #[arg(long, value_name = "NEW_INV", required = true)]
    pub to: Option<PathBuf>,
    /// Send a role's data to this new host instead of the first of its group.
    #[arg(long = "map", value_name = "OLD=NEW")]
    pub map: Vec<String>,
    /// Send the data node to node (a one-time key for each source on its target, removed
    /// afterwards) instead of through this workstation.
    #[arg(long)]
    pub direct: bool,
    /// Only the preflight: both clusters, every data set, the room on each target.
    #[arg(long)]
    pub check: bool,
    /// Do not ask for the confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Read the app's admin password (for the new cluster's deploy) from stdin.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Ask for the sudo password once (hidden).
    #[arg(short = 'K', long = "ask-become-pass")]
    pub ask_become_pass: bool,
    /// The playbook directory (versions.yml and each version's playbooks).
    #[arg(long, value_name = "DIR")]
    pub playbooks: Option<PathBuf>,
    /// Where the journal, the database dump and the manifests are kept.
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub vault: VaultArgs,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Clean the old cluster (clean all) once the migration finished; its own confirmation.
    Finalize(MigrateFinalizeArgs),
}

#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // each bool is one command-line switch
pub struct MigrateFinalizeArgs {
    /// The old cluster's inventory.
    #[arg(long, value_name = "OLD_INV")]
    pub from: PathBuf,
    /// Also delete the old cluster's data (the NFS export and MinIO's data).
    #[arg(long = "purge-data")]
    pub purge_data: bool,
    /// Clean even without a finished migration from this inventory in the journal.
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[arg(short = 'K', long = "ask-become-pass")]
    pub ask_become_pass: bool,
    #[arg(long, value_name = "DIR")]
    pub playbooks: Option<PathBuf>,
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub vault: VaultArgs,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// `PATTERN:/PATH` on exactly one host: the directory to copy (its content).
    #[arg(value_name = "SRC_PATTERN:PATH")]
    pub source: String,
    /// `PATTERN:/PATH`: the directory to create on every matching host (new or empty).
    #[arg(value_name = "DST_PATTERN:PATH")]
    pub dest: String,
    #[command(flatten)]
    pub inventory: InventoryArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Send node to node (a one-time key for the source on the target, removed afterwards)
    /// instead of through this workstation.
    #[arg(long)]
    pub direct: bool,
    /// Only the checks: source present, room on every target, target new or empty.
    #[arg(long)]
    pub check: bool,
    /// Ask for the sudo password once (hidden).
    #[arg(short = 'K', long = "ask-become-pass")]
    pub ask_become_pass: bool,
    /// How many targets receive at once. Through the workstation, they share one read of the
    /// source (each chunk goes to all of them), so more targets at once read the source fewer
    /// times; with --direct, each pulls from the source on its own.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub parallel: usize,
    /// Where the manifests are kept (STATE_DIR/manifests), as `kamo run`.
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Where the app database is and how to reach it (shared by rollback, migrate-db and db).
#[derive(Debug, Args, Clone)]
pub struct DbArgs {
    /// The inventory whose settings locate the database (db_host, db_port, db_name, db_user,
    /// db_password_file) and resolve --via.
    #[command(flatten)]
    pub inventory: InventoryArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The database, `postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=MODE` (password, port
    /// and sslmode optional). Without a password in it: PGPASSWORD, ~/.pgpass, the settings'
    /// db_password_file, or a prompt.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Reach the database through an SSH tunnel to HOST (direct-tcpip): its address is
    /// connected to as HOST sees it.
    #[arg(long, value_name = "HOST")]
    pub via: Option<String>,
    /// The migrations directory (default: playbooks/migrations).
    #[arg(long, value_name = "DIR")]
    pub migrations: Option<PathBuf>,
    /// Where the run journal is kept (as `kamo run`).
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The playbook directory (versions.yml and the app's playbooks).
    #[arg(long, value_name = "DIR")]
    pub playbooks: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to", "to_version"])))]
pub struct RollbackArgs {
    /// The EF Core migration to go back to (it stays applied).
    #[arg(long, value_name = "MIGRATION_ID")]
    pub to: Option<String>,
    /// The app version to go back to; its migration comes from playbooks/versions.yml.
    #[arg(long = "to-version", value_name = "V")]
    pub to_version: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
    /// Only the database: do not stop or redeploy the app.
    #[arg(long = "db-only")]
    pub db_only: bool,
    /// Where the backup is written (default: the state directory's backups/).
    #[arg(long = "backup-dir", value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Print the plan and the exact SQL of every step; change nothing.
    #[arg(long)]
    pub check: bool,
    /// Do not ask for the typed confirmation (for scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct MigrateDbArgs {
    /// The EF Core migration to go forward to.
    #[arg(long, value_name = "MIGRATION_ID")]
    pub to: String,
    #[command(flatten)]
    pub db: DbArgs,
    /// Where the backup is written (default: the state directory's backups/).
    #[arg(long = "backup-dir", value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Print the plan and the exact SQL of every step; change nothing.
    #[arg(long)]
    pub check: bool,
    /// Do not ask for the typed confirmation (for scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Applied migrations, the app version each belongs to, pending and unknown ones.
    Status(DbStatusArgs),
    /// Put a backup (pg_dump -Fc) back: every object in it is dropped and recreated, in one
    /// transaction.
    Restore(DbRestoreArgs),
}

#[derive(Debug, Args)]
pub struct DbStatusArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DbRestoreArgs {
    /// The backup file (custom format, as `kamo rollback` writes).
    #[arg(value_name = "BACKUP")]
    pub backup: PathBuf,
    #[command(flatten)]
    pub db: DbArgs,
    /// Do not ask for the typed confirmation (for scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct ConfigureArgs {
    /// The Kubernetes master's host name.
    #[arg(long)]
    pub master: Option<String>,
    /// The node that runs the KAMONOHASHI app (`kqi_node`; default: the master).
    #[arg(long = "app-node")]
    pub app_node: Option<String>,
    /// The storage (NFS) node.
    #[arg(long = "storage-node")]
    pub storage_node: Option<String>,
    /// The compute nodes, comma-separated.
    #[arg(long = "compute-nodes", value_name = "HOSTS")]
    pub compute_nodes: Option<String>,
    /// The nodes with NVIDIA GPUs, comma-separated, or `none` (default: the compute nodes).
    #[arg(long = "gpu-nodes", value_name = "HOSTS")]
    pub gpu_nodes: Option<String>,
    /// The SSH user kamo logs in as (`ansible_user`).
    #[arg(long = "ssh-user", value_name = "USER")]
    pub ssh_user: Option<String>,
    /// Proxy for http (default: $http_proxy).
    #[arg(long = "http-proxy", value_name = "URL")]
    pub http_proxy: Option<String>,
    /// Proxy for https (default: $https_proxy, else the http proxy).
    #[arg(long = "https-proxy", value_name = "URL")]
    pub https_proxy: Option<String>,
    /// Extra no_proxy entries (default: $no_proxy); the cluster's names and addresses are
    /// always added.
    #[arg(long = "no-proxy", value_name = "LIST")]
    pub no_proxy: Option<String>,
    /// Address of a host that DNS does not resolve: NAME=ADDRESS (repeatable).
    #[arg(long = "host-address", value_name = "NAME=ADDRESS")]
    pub host_address: Vec<String>,
    /// One machine for every role: this machine's host name.
    #[arg(long = "single-node")]
    pub single_node: bool,
    /// App version to deploy (default: the newest deployable one in the matrix).
    #[arg(long = "app-version", value_name = "V")]
    pub app_version: Option<String>,
    /// Kubernetes version to install (default: the matrix's for the app version).
    #[arg(long = "kube-version", value_name = "V")]
    pub kube_version: Option<String>,
    /// The NFS export on the storage node.
    #[arg(
        long = "nfs-export-path",
        value_name = "PATH",
        default_value = "/export/kamonohashi"
    )]
    pub nfs_export_path: String,
    /// MinIO's data directory on the storage node.
    #[arg(
        long = "minio-data-path",
        value_name = "PATH",
        default_value = "/var/lib/kamonohashi/minio"
    )]
    pub minio_data_path: String,
    /// Where to write hosts.ini and group_vars/all/settings.yml.
    #[arg(long, value_name = "DIR", default_value = "inventory")]
    pub dir: PathBuf,
    /// Never prompt: a missing answer is an error.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The playbook directory (for the matrix; default: see `kamo versions --help`).
    #[arg(long, value_name = "DIR")]
    pub playbooks: Option<PathBuf>,
}

/// What every lifecycle verb takes: where, how to connect, where to record.
#[derive(Debug, Args, Clone)]
pub struct LifecycleArgs {
    #[command(flatten)]
    pub inventory: InventoryArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The playbook directory: --playbooks, $KAMO_PLAYBOOKS, ./playbooks, the installed
    /// share/kamo/playbooks, the source tree.
    #[arg(long, value_name = "DIR")]
    pub playbooks: Option<PathBuf>,
    /// Extra variables for the playbooks (as `kamo run -e`).
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
    /// Connect and report what would change, changing nothing.
    #[arg(short = 'C', long = "check")]
    pub check: bool,
    /// Per-node dry run, offline (as `kamo plan`): every task of the verb's playbooks with
    /// its rendered commands for every host; nothing connects, nothing asks, nothing changes.
    /// With --output json, one plan document per playbook, one per line.
    #[arg(long, conflicts_with = "check")]
    pub plan: bool,
    /// Ask for the sudo password once (hidden).
    #[arg(short = 'K', long = "ask-become-pass")]
    pub ask_become_pass: bool,
    /// Where the run journal and logs are kept (as `kamo run`).
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// After Ctrl-C, how long the tasks in flight may take to finish before they are abandoned.
    #[arg(long = "grace-period", value_name = "SECONDS", default_value_t = 30)]
    pub grace_period: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeployTarget {
    All,
    Infra,
    Nfs,
    K8s,
    App,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[arg(value_enum)]
    pub target: DeployTarget,
    #[command(flatten)]
    pub common: LifecycleArgs,
    /// App version (default: the settings' app_version); `2.1.0` or the deploy tool's `2.1.0.3`.
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// Read the admin password (also the DB and storage password) from stdin.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// Do not ask anything: the first deploy generates the passwords.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CleanTarget {
    All,
    App,
    NvidiaRepo,
    NvidiaPackages,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    #[arg(value_enum)]
    pub target: CleanTarget,
    #[command(flatten)]
    pub common: LifecycleArgs,
    /// Skip the typed confirmation (for scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also delete the data on the storage node (NFS export, MinIO data).
    #[arg(long = "purge-data")]
    pub purge_data: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpdateTarget {
    App,
    NodeConf,
    KubeCerts,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[arg(value_enum)]
    pub target: UpdateTarget,
    #[command(flatten)]
    pub common: LifecycleArgs,
    /// App version for `update app` (default: the settings' app_version).
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub common: LifecycleArgs,
    /// The version to deploy after the clean.
    #[arg(long = "to-version", value_name = "V", required = true)]
    pub to_version: String,
    /// The version deployed now, whose playbooks clean the cluster (default: what
    /// /etc/kamonohashi/deployed.json on the hosts says; needed with --plan, which reads no
    /// host).
    #[arg(long = "from-version", value_name = "V")]
    pub from_version: Option<String>,
    /// Skip the typed confirmation (for scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also delete the data on the storage node (NFS export, MinIO data).
    #[arg(long = "purge-data")]
    pub purge_data: bool,
    /// Read the admin password for the new deploy from stdin (default: keep the cluster's).
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CredentialsTarget {
    Db,
    Storage,
    All,
    Show,
}

#[derive(Debug, Args)]
pub struct CredentialsArgs {
    #[arg(value_enum)]
    pub target: CredentialsTarget,
    #[command(flatten)]
    pub common: LifecycleArgs,
    /// Read the new password from stdin instead of a hidden prompt.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckPhase {
    /// Preflight, plus postflight where the app is deployed.
    Auto,
    /// Before a deploy: reachability, sudo, OS, disk, clock, ports, names.
    Pre,
    /// After a deploy: Kubernetes, nodes Ready, the app release and version.
    Post,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub inventory: InventoryArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Which checks.
    #[arg(long, value_enum, default_value_t = CheckPhase::Auto)]
    pub phase: CheckPhase,
    /// Hold the hosts against this version's row of the matrix (default: the settings').
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// The playbook directory (for the matrix).
    #[arg(long, value_name = "DIR")]
    pub playbooks: Option<PathBuf>,
    /// Largest clock difference to the workstation, in seconds.
    #[arg(long = "max-clock-skew", value_name = "SECONDS", default_value_t = 5)]
    pub max_clock_skew: u64,
    /// Least free space on /var and the storage path, in MiB.
    #[arg(long = "min-free-mib", value_name = "MIB", default_value_t = 2048)]
    pub min_free_mib: u64,
    /// Ask for the sudo password once (hidden).
    #[arg(short = 'K', long = "ask-become-pass")]
    pub ask_become_pass: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct VersionsArgs {
    /// The playbook directory (default: --playbooks, $KAMO_PLAYBOOKS, ./playbooks, the
    /// installed share/kamo/playbooks, the source tree).
    #[arg(long, value_name = "DIR")]
    pub playbooks: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write kamo.1 and one page per command (kamo-run.1, ...) into DIR instead of printing
    /// kamo.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Start N nodes and write their inventory, known_hosts and key into DIR.
    Up(LabUpArgs),
    /// Each node's state and the cluster's.
    Status(LabStatusArgs),
    /// Stop every process the lab started (by PID); --purge also removes its files.
    Down(LabDownArgs),
    /// Break a node on purpose: down, up, hang, hostkey-change, slow, disk-full, clear.
    Fault(LabFaultArgs),
    /// (internal) The lab's background supervisor.
    #[command(hide = true)]
    Supervise(LabStatusArgs),
    /// (internal) Become one node: namespaces, overlays, then exec sshd.
    #[command(hide = true)]
    Node(LabNodeArgs),
    /// (internal) Fill or free a running node's disk from inside its mount namespace.
    #[command(hide = true)]
    Disk(LabDiskArgs),
}

#[derive(Debug, Args)]
pub struct LabDiskArgs {
    pub node: String,
    /// `fill` or `free`.
    #[arg(value_parser = ["fill", "free"])]
    pub action: String,
    /// The node's sshd, whose mount namespace is entered.
    #[arg(long)]
    pub pid: u32,
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct LabNodeArgs {
    pub node: String,
    /// The sshd_config in the node's directory to use.
    #[arg(long, default_value = "sshd_config")]
    pub config: String,
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct LabUpArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// How many of them (the last ones) have a simulated NVIDIA GPU.
    #[arg(long = "gpu-nodes", default_value_t = 0)]
    pub gpu_nodes: usize,
    /// The lab's directory (default ./lab).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Also start the app's PostgreSQL database.
    #[arg(long = "with-db")]
    pub with_db: bool,
    /// The Ubuntu release the nodes claim to be.
    #[arg(long = "os-release", default_value = "22.04", value_parser = ["18.04", "20.04", "22.04"])]
    pub os_release: String,
    /// Make sudo ask the ubuntu user for a password ($KAMO_LAB_SUDO_PASSWORD, else prompted).
    #[arg(long = "sudo-password")]
    pub sudo_password: bool,
}

#[derive(Debug, Args)]
pub struct LabStatusArgs {
    /// The lab's directory (default ./lab).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct LabDownArgs {
    /// The lab's directory (default ./lab).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Also remove every file the lab created (nodes' state, inventory, keys).
    #[arg(long)]
    pub purge: bool,
}

#[derive(Debug, Args)]
pub struct LabFaultArgs {
    /// The node (its inventory host name).
    pub node: String,
    /// down, up, hang, hostkey-change, slow (200 ms added each way), disk-full (writes fail
    /// with ENOSPC) or clear.
    pub action: String,
    /// The lab's directory (default ./lab).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct PlaybookArgs {
    /// Extra variables: KEY=VALUE, @FILE (YAML or JSON), or a JSON/YAML mapping (repeatable;
    /// highest precedence).
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
    /// Only run tasks and blocks with these tags (comma-separated, repeatable).
    #[arg(short = 't', long = "tags", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Skip tasks with these tags (comma-separated, repeatable).
    #[arg(long = "skip-tags", value_delimiter = ',')]
    pub skip_tags: Vec<String>,
    /// Start at the first task with this name.
    #[arg(long = "start-at-task", value_name = "NAME")]
    pub start_at_task: Option<String>,
    /// Run every task with sudo (plays and tasks may still say `become: false`).
    #[arg(short = 'b', long = "become")]
    pub r#become: bool,
    /// sudo to this user instead of root.
    #[arg(long = "become-user", value_name = "USER")]
    pub become_user: Option<String>,
    /// Ask for the sudo password once (hidden).
    #[arg(short = 'K', long = "ask-become-pass")]
    pub ask_become_pass: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Playbook files, run in order.
    #[arg(required = true, value_name = "PLAYBOOK")]
    pub playbooks: Vec<PathBuf>,
    #[command(flatten)]
    pub inventory: InventoryArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub playbook: PlaybookArgs,
    /// Seconds any task may run on a host (a task's own `timeout:` wins); then its command is
    /// ended there (its process group gets TERM, then KILL) and the task fails on that host.
    #[arg(long = "task-timeout", value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub task_timeout: Option<u64>,
    /// Connect and report what would change, changing nothing.
    #[arg(short = 'C', long = "check")]
    pub check: bool,
    /// Show unified diffs of files that change (or would change with --check).
    #[arg(short = 'D', long = "diff")]
    pub diff: bool,
    /// Confirm each task before it runs (needs a terminal).
    #[arg(long)]
    pub step: bool,
    /// Where the run journal and logs are kept. Default: $KAMO_STATE_DIR, else
    /// $XDG_STATE_HOME/kamo, else ~/.local/state/kamo.
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// After Ctrl-C, how long the tasks in flight may take to finish before they are abandoned.
    #[arg(long = "grace-period", value_name = "SECONDS", default_value_t = 30)]
    pub grace_period: u64,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run to resume (a number from `kamo history`; default: the latest unfinished run).
    #[arg(value_name = "RUN")]
    pub run: Option<String>,
    /// Inventory (default: the one the run used).
    #[command(flatten)]
    pub inventory: InventoryArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Extra variables, added to the run's own (needed again for secret ones, which the
    /// journal does not keep).
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
    /// Read more extra variables (a YAML or JSON mapping) from stdin: the way to give the
    /// secret ones again without putting them on a command line.
    #[arg(long = "extra-vars-stdin")]
    pub extra_vars_stdin: bool,
    /// Ask for the sudo password once (hidden).
    #[arg(short = 'K', long = "ask-become-pass")]
    pub ask_become_pass: bool,
    /// Resume even though the playbook, a file it reads or the inventory changed.
    #[arg(long)]
    pub force: bool,
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// After Ctrl-C, how long the tasks in flight may take to finish before they are abandoned.
    #[arg(long = "grace-period", value_name = "SECONDS", default_value_t = 30)]
    pub grace_period: u64,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A run number from `kamo history`, or `latest`.
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Only this host.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// A run number from `kamo history`, or `latest`.
    #[arg(value_name = "RUN")]
    pub run: String,
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Only this task: its name, or its number on the host (as `kamo show` lists them).
    #[arg(value_name = "TASK")]
    pub task: Option<String>,
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The playbook to plan.
    #[arg(value_name = "PLAYBOOK")]
    pub playbook: PathBuf,
    #[command(flatten)]
    pub inventory: InventoryArgs,
    #[command(flatten)]
    pub vars: PlaybookArgs,
    /// Include each task's full script in text output (JSON always has it).
    #[arg(long)]
    pub scripts: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct SyntaxCheckArgs {
    #[arg(required = true, value_name = "PLAYBOOK")]
    pub playbooks: Vec<PathBuf>,
    #[command(flatten)]
    pub vault: VaultArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// For people.
    #[default]
    Text,
    /// One JSON value per line (exec) or one JSON document (inventory list), for scripts.
    Json,
}

#[derive(Debug, Args, Clone)]
pub struct InventoryArgs {
    /// Inventory file or directory (repeatable). Default: ./inventory/hosts.ini if it exists,
    /// else $`KAMO_INVENTORY` (several separated by commas).
    #[arg(short = 'i', long = "inventory", value_name = "INV")]
    pub inventory: Vec<PathBuf>,
    /// Narrow the selection further with a host pattern, or @FILE of patterns (repeatable).
    #[arg(short = 'l', long = "limit", value_name = "SUBSET")]
    pub limit: Vec<String>,
    #[command(flatten)]
    pub vault: VaultArgs,
}

/// What makes a value secret: Ansible Vault passwords, for vault-encrypted vars files and
/// `!vault` values, and extra secret-name patterns (every command that reads inventories or
/// playbooks takes them).
#[derive(Debug, Args, Clone, Default)]
pub struct VaultArgs {
    /// Vault password file (repeatable); an executable file is run and its output is the
    /// password. $ANSIBLE_VAULT_PASSWORD_FILE is read too.
    #[arg(
        long = "vault-password-file",
        visible_alias = "vault-pass-file",
        value_name = "FILE"
    )]
    pub password_files: Vec<PathBuf>,
    /// Ask for the vault password once (hidden).
    #[arg(
        short = 'J',
        long = "ask-vault-pass",
        visible_alias = "ask-vault-password"
    )]
    pub ask: bool,
    /// A labelled vault password, LABEL@FILE or LABEL@prompt (repeatable); tried first for
    /// vaults with that label (format 1.2).
    #[arg(long = "vault-id", value_name = "[LABEL@]SOURCE")]
    pub ids: Vec<String>,
    /// Variables whose names match this glob (`*`, `?`; case-insensitive) are secrets too,
    /// besides *password*, *passwd*, *secret*, *token* and *_key (repeatable;
    /// $`KAMO_SECRET_VARS` adds comma-separated ones). A resume keeps its run's patterns.
    #[arg(long = "secret-vars", value_name = "GLOB")]
    pub secret_vars: Vec<String>,
}

#[derive(Debug, Args, Clone)]
pub struct ConnectionArgs {
    /// How many hosts to work on at once.
    #[arg(short = 'f', long = "forks", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub forks: u32,
    /// Seconds allowed to connect and authenticate to a host.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// Seconds a connected host may answer nothing, not even SSH keepalives (sent every
    /// quarter of it), before it counts as unreachable: a hung host or a cut network is
    /// noticed within this, a quiet long-running command is not cut.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(4..=86_400))]
    pub keepalive: u64,
    /// `known_hosts` file to check host keys against (repeatable). Default: ~/.`ssh/known_hosts`
    /// and /`etc/ssh/ssh_known_hosts`, and a host's `UserKnownHostsFile`; `accept-new` writes
    /// to the first `--known-hosts` file, else the host's `UserKnownHostsFile`, else ~/.ssh.
    #[arg(long = "known-hosts", value_name = "FILE")]
    pub known_hosts: Vec<PathBuf>,
    /// strict: refuse unknown and changed keys; accept-new: record unknown keys, refuse
    /// changed ones; off: accept anything (warned on every run).
    #[arg(long = "host-key-checking", value_enum, default_value_t = HostKeyChecking::Strict, value_name = "MODE")]
    pub host_key_checking: HostKeyChecking,
    /// Log in as this user where the inventory does not say (`ansible_user`).
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Private key file, where the inventory does not say (`ansible_ssh_private_key_file`).
    #[arg(long = "private-key", visible_alias = "key-file", value_name = "FILE")]
    pub private_key: Option<PathBuf>,
    /// Ask for the SSH password once (hidden), for hosts without `ansible_password`.
    #[arg(short = 'k', long = "ask-pass")]
    pub ask_pass: bool,
    /// OpenSSH client config to read `HostName`, Port, User, `IdentityFile`, `ProxyJump` from.
    /// Default: ~/.ssh/config; `none` reads none.
    #[arg(long = "ssh-config", value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Host pattern: `all`, `group`, `host`, `glob*`, `~regex`, `a:b`, `a:&b`, `a:!b`, `group[0:2]`.
    pub pattern: String,
    #[command(flatten)]
    pub inventory: InventoryArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Run the command with sudo.
    #[arg(short = 'b', long = "become")]
    pub r#become: bool,
    /// sudo to this user instead of root.
    #[arg(long = "become-user", value_name = "USER")]
    pub become_user: Option<String>,
    /// Ask for the sudo password once (hidden), for hosts without `ansible_become_password`.
    #[arg(short = 'K', long = "ask-become-pass")]
    pub ask_become_pass: bool,
    /// Seconds the command may run on a host; then it is ended there (its process group gets
    /// TERM, then KILL) and the host counts as failed.
    #[arg(long = "task-timeout", value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub task_timeout: Option<u64>,
    /// The command: one argument is a shell command line; several are an argv that kamo
    /// quotes for the remote shell.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// A table of hosts (address, port, user, groups), or JSON with --output json.
    List(InventoryListArgs),
    /// The group tree, like `ansible-inventory --graph`.
    Graph(InventoryGraphArgs),
}

#[derive(Debug, Args)]
pub struct InventoryListArgs {
    /// Host pattern (default: all).
    pub pattern: Option<String>,
    #[command(flatten)]
    pub inventory: InventoryArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// OpenSSH client config used to resolve addresses (default ~/.ssh/config; `none`).
    #[arg(long = "ssh-config", value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InventoryGraphArgs {
    /// The group to start from (default: all).
    pub group: Option<String>,
    #[command(flatten)]
    pub inventory: InventoryArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command that reads inventories or playbooks takes the vault flags.
    #[test]
    fn vault_flags_on_every_loading_command() {
        let commands: &[&[&str]] = &[
            &["exec", "all", "--", "true"],
            &["inventory", "list"],
            &["inventory", "graph"],
            &["run", "site.yml"],
            &["plan", "site.yml"],
            &["syntax-check", "site.yml"],
            &["resume"],
            &["deploy", "all"],
            &["clean", "app"],
            &["update", "app"],
            &["rebuild", "--to-version", "2.1.0"],
            &["credentials", "show"],
            &["check"],
            &["copy", "a:/x", "b:/y"],
            &["rollback", "--to", "M"],
            &["migrate-db", "--to", "M"],
            &["db", "status"],
            &["migrate", "--from", "a", "--to", "b"],
            &["migrate", "finalize", "--from", "a"],
        ];
        for c in commands {
            let mut argv = vec!["kamo"];
            argv.extend_from_slice(c);
            let at = argv.iter().position(|a| *a == "--").unwrap_or(argv.len());
            argv.splice(
                at..at,
                [
                    "--vault-password-file",
                    "pw",
                    "-J",
                    "--vault-id",
                    "prod@f",
                    "--secret-vars",
                    "*_cred",
                ],
            );
            let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            let v = cli.command.vault().unwrap_or_else(|| panic!("{argv:?}"));
            assert_eq!(v.password_files, [PathBuf::from("pw")], "{argv:?}");
            assert!(v.ask, "{argv:?}");
            assert_eq!(v.ids, ["prod@f"], "{argv:?}");
            assert_eq!(v.secret_vars, ["*_cred"], "{argv:?}");
        }
    }
}
