//! Building the variables a template sees on one host, in Ansible's order of precedence.
//!
//! Lowest first: role defaults, inventory (group then host vars), gathered facts, play vars
//! and vars_files, role vars, task vars, per-host values set at run time (`set_fact`,
//! `register`, `include_vars`), extra vars (`-e`). Magic variables (`inventory_hostname`,
//! `groups`, `group_names`, `hostvars`, `play_hosts`, `ansible_check_mode`, `omit`, ...) are
//! added last and cannot be overridden, as in Ansible.

use serde_json::{Map, Value};

use crate::inventory::Inventory;
use crate::playbook::model::{RoleCtx, Vars};
use crate::playbook::template::OMIT;

/// Values shared by every host of a play batch.
pub struct PlayScope<'a> {
    pub inventory: &'a Inventory,
    /// The defaults of every role of the play (visible to all its tasks, as in Ansible).
    pub role_defaults: &'a Vars,
    pub play_vars: &'a Map<String, Value>,
    pub extra_vars: &'a Map<String, Value>,
    pub play_hosts: &'a [String],
    pub groups: &'a Value,
    pub check_mode: bool,
    pub diff_mode: bool,
    pub playbook_dir: &'a str,
}

/// Everything known about one host beyond the inventory.
#[derive(Debug, Clone, Default)]
pub struct HostVars {
    /// The host's inventory variables, computed once per run (group merging is not free).
    pub inventory: Option<std::sync::Arc<crate::inventory::Vars>>,
    pub facts: Map<String, Value>,
    /// `set_fact`, `register`, `include_vars`.
    pub runtime: Map<String, Value>,
}

fn extend(into: &mut Map<String, Value>, from: impl IntoIterator<Item = (String, Value)>) {
    for (k, v) in from {
        into.insert(k, v);
    }
}

/// The variables of `host` for one task, without the magic variables whose size grows with
/// the inventory ([`WIDE`], and `hostvars`): those are the same for every host of the task,
/// so the caller builds them once ([`wide_magic`]) and layers them under every host's own
/// variables (`Templater::with_shared`).
#[must_use]
pub fn for_task(
    scope: &PlayScope<'_>,
    host: &str,
    hv: &HostVars,
    role: Option<&RoleCtx>,
    task_vars: &Vars,
) -> Map<String, Value> {
    let mut m = Map::new();
    extend(
        &mut m,
        scope
            .role_defaults
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    if let Some(r) = role {
        extend(&mut m, r.defaults.clone());
    }
    match &hv.inventory {
        Some(v) => extend(&mut m, v.as_ref().clone()),
        None => extend(&mut m, scope.inventory.vars_for(host)),
    }
    extend(&mut m, hv.facts.clone());
    extend(&mut m, scope.play_vars.clone());
    if let Some(r) = role {
        extend(&mut m, r.vars.clone());
        m.insert("role_name".into(), Value::String(r.name.clone()));
        m.insert(
            "role_path".into(),
            Value::String(r.path.display().to_string()),
        );
    }
    extend(&mut m, task_vars.clone());
    extend(&mut m, hv.runtime.clone());
    extend(&mut m, scope.extra_vars.clone());
    magic(&mut m, scope, host);
    m
}

/// The magic variables whose size grows with the inventory, other than `hostvars`. Copied
/// into every host's variables, they made a task on 1,000 hosts build and convert four
/// 1,000-name lists a thousand times.
pub const WIDE: [&str; 4] = [
    "groups",
    "play_hosts",
    "ansible_play_hosts",
    "ansible_play_batch",
];

/// [`WIDE`]'s values, the same for every host of a play batch: built once per task (`run`) or
/// batch (`plan`) and layered under each host's variables.
#[must_use]
pub fn wide_magic(scope: &PlayScope<'_>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("groups".into(), scope.groups.clone());
    let hosts = Value::Array(
        scope
            .play_hosts
            .iter()
            .cloned()
            .map(Value::String)
            .collect(),
    );
    m.insert("play_hosts".into(), hosts.clone());
    m.insert("ansible_play_hosts".into(), hosts.clone());
    m.insert("ansible_play_batch".into(), hosts);
    m
}

fn magic(m: &mut Map<String, Value>, scope: &PlayScope<'_>, host: &str) {
    // Magic variables cannot be overridden: a variable of the same name as a wide one must
    // not shadow the shared value.
    for name in WIDE.iter().chain(&["hostvars"]) {
        m.remove(*name);
    }
    m.insert("inventory_hostname".into(), Value::String(host.to_owned()));
    m.insert(
        "inventory_hostname_short".into(),
        Value::String(host.split('.').next().unwrap_or(host).to_owned()),
    );
    m.insert(
        "group_names".into(),
        Value::Array(
            scope
                .inventory
                .group_names(host)
                .into_iter()
                .map(Value::String)
                .collect(),
        ),
    );
    m.insert("ansible_check_mode".into(), Value::Bool(scope.check_mode));
    m.insert("ansible_diff_mode".into(), Value::Bool(scope.diff_mode));
    m.insert(
        "playbook_dir".into(),
        Value::String(scope.playbook_dir.to_owned()),
    );
    m.insert("omit".into(), Value::String(OMIT.to_owned()));
}

/// `groups`: every group with its hosts, as Ansible's magic variable.
#[must_use]
pub fn groups_value(inventory: &Inventory) -> Value {
    let mut m = Map::new();
    for g in inventory.groups() {
        let hosts = inventory.select(&g.name).unwrap_or_default();
        m.insert(
            g.name.clone(),
            Value::Array(hosts.into_iter().map(Value::String).collect()),
        );
    }
    Value::Object(m)
}

/// `hostvars`: inventory vars, facts and run-time values of every host.
#[must_use]
pub fn hostvars_value<'a>(
    inventory: &Inventory,
    hosts: impl Iterator<Item = (&'a str, &'a HostVars)>,
) -> Value {
    let mut m = Map::new();
    for (name, hv) in hosts {
        let mut v = Map::new();
        extend(&mut v, inventory.vars_for(name));
        extend(&mut v, hv.facts.clone());
        extend(&mut v, hv.runtime.clone());
        v.insert("inventory_hostname".into(), Value::String(name.to_owned()));
        m.insert(name.to_owned(), Value::Object(v));
    }
    Value::Object(m)
}

/// Renders variables whose values are themselves templates (`greeting: "hi {{ name }}"`),
/// as Ansible resolves them lazily. A few passes settle chains of references; a value that
/// cannot be rendered yet (it reads a run-time value) stays as written and fails, located,
/// where a task uses it.
pub fn resolve_nested(
    templater: &crate::playbook::template::Templater,
    vars: &mut Map<String, Value>,
) {
    fn is_template(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains("{{") || s.contains("{%"),
            Value::Array(a) => a.iter().any(is_template),
            Value::Object(m) => m.values().any(is_template),
            _ => false,
        }
    }
    for _ in 0..4 {
        let pending: Vec<String> = vars
            .iter()
            .filter(|(k, v)| *k != "hostvars" && is_template(v))
            .map(|(k, _)| k.clone())
            .collect();
        if pending.is_empty() {
            return;
        }
        let ctx = Value::Object(vars.clone());
        let mut progressed = false;
        for k in pending {
            if let Ok(v) = templater.render_value(&vars[&k], &ctx) {
                if v != vars[&k] {
                    progressed = true;
                }
                vars.insert(k, v);
            }
        }
        if !progressed {
            return;
        }
    }
}
