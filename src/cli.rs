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
}

#[derive(Debug, Args, Clone)]
pub struct ConnectionArgs {
    /// How many hosts to work on at once.
    #[arg(short = 'f', long = "forks", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub forks: u32,
    /// Seconds allowed to connect and authenticate to a host.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// `known_hosts` file to check host keys against (repeatable). Default: ~/.`ssh/known_hosts`
    /// and /`etc/ssh/ssh_known_hosts`; `accept-new` writes to the first one.
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
