//! The playbook as data: what the loader produces and the engine and planner consume.
//!
//! Values stay *untemplated* here (`serde_json::Value`, strings may hold `{{ }}`): templating
//! happens per host at run or plan time, so one model serves `plan`, `run` and `--check`
//! alike, and the plan shows exactly what the run sends. Every task keeps its [`Span`] so
//! errors found later (undefined variable, bad module argument) still point at the source.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

/// Untemplated variables, in source order.
pub type Vars = indexmap::IndexMap<String, Value>;

/// Where something was written: file, 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub file: Arc<PathBuf>,
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A whole playbook file, `import_playbook` already flattened into `plays`.
#[derive(Debug, Clone)]
pub struct Playbook {
    pub path: PathBuf,
    pub plays: Vec<Play>,
    /// Every file the playbook reads (itself, imports, roles, vars files, templates, files):
    /// for content hashes in the journal and for resume checks.
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    #[default]
    Linear,
    Free,
}

/// One batch size of `serial`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Serial {
    Count(usize),
    Percent(f64),
}

#[derive(Debug, Clone)]
pub struct Play {
    pub name: Option<String>,
    pub span: Span,
    /// Host pattern (may contain a template, rendered with extra vars only).
    pub hosts: String,
    pub vars: Vars,
    /// `vars_files` entries (paths relative to the playbook's directory, may be templates).
    pub vars_files: Vec<String>,
    /// Ansible's default is true.
    pub gather_facts: bool,
    pub r#become: Option<bool>,
    pub become_user: Option<String>,
    /// Empty = all hosts in one batch. The last entry repeats.
    pub serial: Vec<Serial>,
    pub strategy: Strategy,
    pub any_errors_fatal: bool,
    pub max_fail_percentage: Option<f64>,
    /// `connection: local` for the play.
    pub connection: Option<String>,
    pub environment: Vars,
    pub tags: Vec<String>,
    pub ignore_unreachable: bool,
    /// `pre_tasks`, then roles' tasks, then `tasks`, then `post_tasks`, each section followed
    /// by a handler flush as Ansible does.
    pub sections: Vec<Vec<Task>>,
    pub handlers: Vec<Task>,
    /// The defaults of every role the play names (dependencies included, later roles win):
    /// as in Ansible, they are visible to all of the play's tasks, not only the role's own,
    /// so a role of defaults alone (kubespray's `kubespray-defaults`) serves the whole play.
    pub role_defaults: Vars,
    /// The play's directory (for relative `src:` and templates when no role applies).
    pub dir: PathBuf,
}

/// The role a task came from: its files, templates and variables.
#[derive(Debug, Clone)]
pub struct RoleCtx {
    pub name: String,
    pub path: PathBuf,
    /// `defaults/main.yml` (lowest precedence).
    pub defaults: Vars,
    /// `vars/main.yml` (above play vars).
    pub vars: Vars,
}

/// A loop source.
#[derive(Debug, Clone)]
pub enum Loop {
    /// `loop:` / `with_items:` / `with_list:` (a template string or a literal list).
    Items(Value),
    /// `with_dict:` (each item becomes `{key, value}`).
    Dict(Value),
}

#[derive(Debug, Clone, Default)]
pub struct LoopControl {
    pub loop_var: Option<String>,
    pub label: Option<String>,
    pub index_var: Option<String>,
}

/// What a task does.
#[derive(Debug, Clone)]
pub enum TaskKind {
    /// A module call.
    Action(Action),
    Block {
        block: Vec<Task>,
        rescue: Vec<Task>,
        always: Vec<Task>,
    },
    /// `include_tasks:` resolved at run time (its file name may be a template).
    IncludeTasks { file: String, dir: PathBuf },
    /// `meta:` actions.
    Meta(Meta),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meta {
    FlushHandlers,
    EndPlay,
    EndHost,
    ClearHostErrors,
    Noop,
}

/// The modules kamo implements: one closed enum, matched in one place per concern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Module {
    Command,
    Shell,
    Raw,
    Script,
    Copy,
    Template,
    File,
    Lineinfile,
    Blockinfile,
    Replace,
    Stat,
    Slurp,
    Fetch,
    Apt,
    AptKey,
    AptRepository,
    Package,
    Systemd,
    Service,
    Reboot,
    WaitFor,
    WaitForConnection,
    GetUrl,
    Unarchive,
    User,
    Group,
    Hostname,
    Sysctl,
    Modprobe,
    Mount,
    Debug,
    Assert,
    Fail,
    Pause,
    SetFact,
    IncludeVars,
    Ping,
}

impl Module {
    /// Every supported module with its short name.
    pub const ALL: &'static [(&'static str, Module)] = &[
        ("command", Module::Command),
        ("shell", Module::Shell),
        ("raw", Module::Raw),
        ("script", Module::Script),
        ("copy", Module::Copy),
        ("template", Module::Template),
        ("file", Module::File),
        ("lineinfile", Module::Lineinfile),
        ("blockinfile", Module::Blockinfile),
        ("replace", Module::Replace),
        ("stat", Module::Stat),
        ("slurp", Module::Slurp),
        ("fetch", Module::Fetch),
        ("apt", Module::Apt),
        ("apt_key", Module::AptKey),
        ("apt_repository", Module::AptRepository),
        ("package", Module::Package),
        ("systemd", Module::Systemd),
        ("systemd_service", Module::Systemd),
        ("service", Module::Service),
        ("reboot", Module::Reboot),
        ("wait_for", Module::WaitFor),
        ("wait_for_connection", Module::WaitForConnection),
        ("get_url", Module::GetUrl),
        ("unarchive", Module::Unarchive),
        ("user", Module::User),
        ("group", Module::Group),
        ("hostname", Module::Hostname),
        ("sysctl", Module::Sysctl),
        ("modprobe", Module::Modprobe),
        ("mount", Module::Mount),
        ("debug", Module::Debug),
        ("assert", Module::Assert),
        ("fail", Module::Fail),
        ("pause", Module::Pause),
        ("set_fact", Module::SetFact),
        ("include_vars", Module::IncludeVars),
        ("ping", Module::Ping),
    ];

    /// Looks a module up by `name`, `ansible.builtin.name`, `ansible.legacy.name` (and the
    /// `ansible.posix`/`community.general` homes of `sysctl`, `modprobe`, `mount`).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        let short = name
            .strip_prefix("ansible.builtin.")
            .or_else(|| name.strip_prefix("ansible.legacy."))
            .or_else(|| name.strip_prefix("ansible.posix."))
            .or_else(|| name.strip_prefix("community.general."))
            .unwrap_or(name);
        Self::ALL.iter().find(|(n, _)| *n == short).map(|(_, m)| *m)
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("?", |(n, _)| n)
    }

    /// Modules that take a free-form string (`command: ls -l`, `shell: ...`).
    #[must_use]
    pub fn free_form(self) -> bool {
        matches!(
            self,
            Self::Command | Self::Shell | Self::Raw | Self::Script | Self::IncludeVars
        )
    }

    /// Modules that run on the controller only, never touching the host.
    #[must_use]
    pub fn controller_only(self) -> bool {
        matches!(
            self,
            Self::Debug
                | Self::Assert
                | Self::Fail
                | Self::Pause
                | Self::SetFact
                | Self::IncludeVars
        )
    }
}

/// A module call with its untemplated arguments.
#[derive(Debug, Clone)]
pub struct Action {
    pub module: Module,
    /// Arguments as a mapping; a free-form string is stored under `_raw_params`, and `k=v`
    /// words of a free-form line are parsed into keys as Ansible does.
    pub args: serde_json::Map<String, Value>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub name: Option<String>,
    pub span: Span,
    pub kind: TaskKind,
    /// Conditions joined with `and` (a list in YAML); bare Jinja expressions.
    pub when: Vec<String>,
    pub r#loop: Option<Loop>,
    pub loop_control: LoopControl,
    pub register: Option<String>,
    pub changed_when: Option<Vec<String>>,
    pub failed_when: Option<Vec<String>>,
    /// A bool or a template.
    pub ignore_errors: Value,
    pub ignore_unreachable: bool,
    pub tags: Vec<String>,
    pub notify: Vec<String>,
    /// Handler topics this task listens to (handlers only).
    pub listen: Vec<String>,
    pub delegate_to: Option<String>,
    pub run_once: bool,
    pub no_log: bool,
    pub environment: Vars,
    pub r#become: Option<bool>,
    pub become_user: Option<String>,
    pub until: Option<Vec<String>>,
    pub retries: Option<u32>,
    pub delay: Option<u64>,
    pub vars: Vars,
    pub role: Option<Arc<RoleCtx>>,
    /// Task-level `check_mode:` override.
    pub check_mode: Option<bool>,
    /// Seconds after which the task is stopped on a host (kamo extension of Ansible's `timeout`).
    pub timeout: Option<u64>,
}

impl Task {
    /// The display name: `name:`, else `module` with its free-form text, as Ansible shows it.
    #[must_use]
    pub fn display_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match &self.kind {
            TaskKind::Action(a) => match a.args.get("_raw_params").and_then(Value::as_str) {
                Some(raw) => format!("{} {raw}", a.module.name()),
                None => a.module.name().to_owned(),
            },
            TaskKind::Block { .. } => "block".to_owned(),
            TaskKind::IncludeTasks { file, .. } => format!("include_tasks {file}"),
            TaskKind::Meta(m) => format!("meta {m:?}"),
        }
    }
}
