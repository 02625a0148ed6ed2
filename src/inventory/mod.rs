//! Ansible inventories: hosts, groups, their variables, and host patterns.
//!
//! Purpose: read the same inventory files operators already feed to Ansible (INI or YAML, a
//! file or a directory of them, with `group_vars/` and `host_vars/` beside them) and answer the
//! questions a run needs: which hosts does a pattern select, and what are a host's variables.
//!
//! Key decision: one flat model (hosts and groups in insertion order, children as names) that
//! every parser fills through a few private builder methods, then `Inventory::finalize`
//! rebuilds what Ansible's `reconcile_inventory` derives (`all`, `ungrouped`, top-level
//! groups). Variables are kept in separate layers (inline INI/YAML vars, `group_vars/`,
//! `host_vars/`) so [`Inventory::vars_for`] can apply Ansible's documented precedence exactly
//! instead of a flattened approximation; `Host::vars`/`Group::vars` are the merged views.
//!
//! Not supported: dynamic inventory scripts and plugins (`plugin:` YAML files), TOML
//! inventories, `host,host,` comma lists given as `-i`, `localhost` as an implicit host,
//! `ansible_group_priority` from anywhere but the group's own vars, and `hash_behaviour=merge`
//! (variables always replace at the top level). See `docs/INVENTORY.md`.

mod ini;
mod pattern;
#[cfg(test)]
mod props;
mod vars;
mod yaml;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::error::{Error, Located, Result};

/// Variables, in definition order.
pub type Vars = IndexMap<String, serde_json::Value>;

/// Where a host was first defined.
#[derive(Debug, Clone)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    /// Host-level vars only: inline vars, then `host_vars/` files (which win).
    pub vars: Vars,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    /// Hosts listed directly in this group, in file order.
    pub hosts: Vec<String>,
    /// Child group names, in file order.
    pub children: Vec<String>,
    /// Inline `[g:vars]`/`vars:`, then `group_vars/` files (which win).
    pub vars: Vars,
}

impl Group {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            hosts: Vec::new(),
            children: Vec::new(),
            vars: Vars::new(),
        }
    }
}

/// Variable layers kept apart so precedence can be applied exactly (see `vars.rs`).
#[derive(Debug, Clone, Default)]
struct Layers {
    group_inline: IndexMap<String, Vars>,
    host_inline: IndexMap<String, Vars>,
    /// One entry per inventory base directory, in source order: group name -> vars.
    group_files: Vec<IndexMap<String, Vars>>,
    /// One entry per inventory base directory, in source order: host name -> vars.
    host_files: Vec<IndexMap<String, Vars>>,
}

/// A parsed inventory. Hosts and groups keep insertion order.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    hosts: IndexMap<String, Host>,
    groups: IndexMap<String, Group>,
    layers: Layers,
    /// Where each `parent -> child` edge was declared, to locate cycle errors.
    edges: HashMap<(String, String), Origin>,
    /// `(group, host)` pairs already recorded in `Group::hosts`, so adding stays O(1).
    members: HashSet<(String, String)>,
    /// Host -> groups, built on first use after loading: a 1,000-host run asks for every
    /// host's groups on every task, and scanning every group each time is quadratic.
    index: std::sync::OnceLock<MemberIndex>,
    /// Bytes host lines have expanded to so far (see [`Inventory::charge`]).
    expanded: usize,
}

/// Which groups each host is in, directly and through children, for one state of the inventory.
#[derive(Debug, Clone, Default)]
struct MemberIndex {
    /// `(hosts, groups, memberships)` when built; a mismatch means the inventory changed.
    fingerprint: (usize, usize, usize),
    groups_of: HashMap<String, Vec<String>>,
}

/// Reads an inventory or vars file through the size limit of [`crate::input`]; a file too
/// large or not UTF-8 is a parse error naming the file (exit 4).
pub(crate) fn read_input(file: &Path, what: &str) -> Result<String> {
    crate::input::read_text(file).map_err(|e| match e.describe(what) {
        Some(msg) => Error::parse(Located::new(file, 0, msg)),
        None => Error::io("read", file, e.into_io(what)),
    })
}

/// How large the hosts of an inventory may grow once ranges are expanded (see
/// [`Inventory::charge`]): far beyond any real cluster (1,000 hosts with 2 KiB of variables
/// each is 2 MiB).
pub(crate) const MAX_EXPANDED_BYTES: usize = 256 << 20;

/// What a host costs in memory besides its line's text (its map entries, its group
/// memberships, the index), as measured: a 2.6-million-host inventory took 2.8 GB.
const HOST_OVERHEAD: usize = 1024;

pub(crate) const ALL: &str = "all";
pub(crate) const UNGROUPED: &str = "ungrouped";

impl Inventory {
    /// An inventory with only the implicit groups `all` and `ungrouped`.
    fn new() -> Self {
        let mut inv = Self::default();
        inv.ensure_implicit_groups();
        inv
    }

    /// Loads and merges inventory sources in order: files (INI or YAML, detected by extension
    /// `.yml`/`.yaml`/`.json` -> YAML, else by content) or directories (every inventory file in
    /// them, sorted, skipping `group_vars/`, `host_vars/`, hidden files and Ansible's ignored
    /// extensions). `group_vars/` and `host_vars/` beside each file (or inside each directory)
    /// are loaded after all sources are parsed. A missing source is an [`Error::Usage`].
    pub fn load(sources: &[PathBuf]) -> Result<Inventory> {
        let mut inv = Self::new();
        let mut basedirs: Vec<PathBuf> = Vec::new();
        for source in sources {
            if !source.exists() {
                return Err(Error::Usage(format!(
                    "inventory source {} does not exist",
                    source.display()
                )));
            }
            let basedir = if source.is_dir() {
                inv.load_dir(source, 0)?;
                source.clone()
            } else {
                inv.load_file(source)?;
                match source.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
                    _ => PathBuf::from("."),
                }
            };
            // Not de-duplicated: Ansible reads a directory's vars once per source in it.
            basedirs.push(basedir);
        }
        inv.finalize();
        for dir in &basedirs {
            vars::load_vars_dirs(&mut inv, dir)?;
        }
        inv.finalize();
        Ok(inv)
    }

    fn load_dir(&mut self, dir: &Path, depth: usize) -> Result<()> {
        if depth > 16 {
            return Err(Error::Usage(format!(
                "inventory directory {} is nested too deeply (a symlink loop?)",
                dir.display()
            )));
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io("read inventory directory", dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let Some(name) = name else { continue };
            if is_ignored_entry(&name) {
                continue;
            }
            if path.is_dir() {
                self.load_dir(&path, depth + 1)?;
            } else {
                self.load_file(&path)?;
            }
        }
        Ok(())
    }

    fn load_file(&mut self, file: &Path) -> Result<()> {
        let text = read_input(file, "inventory file")?;
        if crate::vault::is_vault(&text) {
            // Its errors would quote the decrypted lines; vaulting values is the usual way.
            return Err(Error::parse(
                Located::new(file, 1, "vault-encrypted inventory files are not supported")
                    .hint("vault the group_vars/host_vars files, or single values with `!vault`"),
            ));
        }
        if is_yaml_file(file, &text) {
            yaml::parse(self, &text, file)?;
        } else {
            ini::parse(self, &text, file)?;
        }
        self.check_cycles(file, &text)
    }

    /// Parses one INI text (for tests); `file` is used in error locations.
    pub fn from_ini(text: &str, file: &Path) -> Result<Inventory> {
        let mut inv = Self::new();
        ini::parse(&mut inv, text, file)?;
        inv.check_cycles(file, text)?;
        inv.finalize();
        Ok(inv)
    }

    /// Parses one YAML text (for tests); `file` is used in error locations.
    pub fn from_yaml(text: &str, file: &Path) -> Result<Inventory> {
        let mut inv = Self::new();
        yaml::parse(&mut inv, text, file)?;
        inv.check_cycles(file, text)?;
        inv.finalize();
        Ok(inv)
    }

    /// All hosts, in inventory order.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.values()
    }

    #[must_use]
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.get(name)
    }

    /// All groups, in inventory order (`all` and `ungrouped` first).
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    #[must_use]
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(name)
    }

    /// Every group the host belongs to, directly or through children, sorted, without `all`
    /// (Ansible's `group_names`; an ungrouped host gets `["ungrouped"]`).
    #[must_use]
    pub fn group_names(&self, host: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .host_groups(host)
            .into_iter()
            .filter(|g| g != ALL)
            .collect();
        names.sort();
        names
    }

    /// The host's effective variables by Ansible's precedence, lowest first:
    ///
    /// 1. inline vars of `all`;
    /// 2. inline vars of the host's other groups, sorted by (depth, `ansible_group_priority`,
    ///    name): parents before children, same depth alphabetically, later wins;
    /// 3. `group_vars/all`, per inventory directory in source order;
    /// 4. `group_vars/<group>`, per inventory directory, groups sorted as in 2;
    /// 5. inline host vars;
    /// 6. `host_vars/<host>`.
    ///
    /// Unknown hosts get empty vars. Magic variables (`inventory_hostname`, `group_names`, ...)
    /// are not included.
    #[must_use]
    pub fn vars_for(&self, host: &str) -> Vars {
        vars::effective_vars(self, host)
    }

    /// Hosts matching an Ansible host pattern, in inventory order, de-duplicated.
    /// [`Error::Usage`] for a malformed pattern; a pattern matching nothing gives an empty Vec.
    pub fn select(&self, pattern: &str) -> Result<Vec<String>> {
        pattern::select(self, pattern, &[])
    }

    /// `select(pattern)` narrowed by `--limit` values. As in Ansible, where `--limit` is a
    /// plain (not repeatable) option, the last value wins; it may hold several patterns
    /// (`a:b`, `a,!b`) and `@file` entries (one pattern per line).
    pub fn select_limited(&self, pattern: &str, limits: &[String]) -> Result<Vec<String>> {
        pattern::select(self, pattern, limits)
    }

    /// Text like `ansible-inventory --graph`, starting at group `root`: `@all:` then
    /// `  |--@group:` and `  |  |--host` lines, child groups before hosts, both sorted by name.
    /// The text ends with a newline. [`Error::Usage`] when `root` is not a group.
    pub fn graph(&self, root: &str) -> Result<String> {
        let Some(group) = self.groups.get(root) else {
            return Err(Error::Usage(format!(
                "`{root}` is not a group; --graph needs a group name"
            )));
        };
        let mut out = String::new();
        self.graph_group(group, &mut out);
        Ok(out)
    }

    fn graph_group(&self, root: &Group, out: &mut String) {
        enum Item<'a> {
            Group(&'a Group, usize),
            Host(&'a str, usize),
        }
        // An explicit stack: deep hierarchies must not overflow the call stack.
        let mut stack = vec![Item::Group(root, 0)];
        while let Some(item) = stack.pop() {
            match item {
                Item::Host(h, depth) => graph_line(out, depth, h),
                Item::Group(group, depth) => {
                    graph_line(out, depth, &format!("@{}:", group.name));
                    let mut kids: Vec<&Group> = group
                        .children
                        .iter()
                        .filter_map(|c| self.groups.get(c))
                        .collect();
                    kids.sort_by(|a, b| a.name.cmp(&b.name));
                    let mut hosts: Vec<&str> = if group.name == ALL {
                        Vec::new()
                    } else {
                        group.hosts.iter().map(String::as_str).collect()
                    };
                    hosts.sort_unstable();
                    for h in hosts.into_iter().rev() {
                        stack.push(Item::Host(h, depth + 1));
                    }
                    for kid in kids.into_iter().rev() {
                        stack.push(Item::Group(kid, depth + 1));
                    }
                }
            }
        }
    }

    // ----- builder, used by the parsers -----

    fn ensure_implicit_groups(&mut self) {
        for (i, name) in [ALL, UNGROUPED].into_iter().enumerate() {
            if !self.groups.contains_key(name) {
                self.groups.insert(name.to_owned(), Group::new(name));
            }
            if let Some(idx) = self.groups.get_index_of(name) {
                self.groups.move_index(idx, i);
            }
        }
    }

    pub(crate) fn ensure_group(&mut self, name: &str) {
        if !self.groups.contains_key(name) {
            self.groups.insert(name.to_owned(), Group::new(name));
        }
    }

    /// Accounts for a host line that defines `hosts` hosts with `bytes` of name and variables
    /// each, and refuses once the inventory would expand past [`MAX_EXPANDED_BYTES`].
    ///
    /// Why: a range multiplies a line (`n[0:99999] big=...` is 100,000 copies of its
    /// variables), so a small file can ask for gigabytes; the size limit on files alone does
    /// not bound memory. Each host costs its line's size plus [`HOST_OVERHEAD`].
    pub(crate) fn charge(&mut self, hosts: usize, bytes: usize) -> std::result::Result<(), String> {
        let cost = hosts.saturating_mul(bytes.saturating_add(HOST_OVERHEAD));
        self.expanded = self.expanded.saturating_add(cost);
        if self.expanded > MAX_EXPANDED_BYTES {
            return Err(format!(
                "the inventory's hosts and their variables expand to more than {} MiB (host ranges \
                 multiply a line's variables); kamo stops reading here",
                MAX_EXPANDED_BYTES >> 20
            ));
        }
        Ok(())
    }

    /// Adds the host (first definition sets its origin) and makes it a member of `group`.
    pub(crate) fn add_host(&mut self, name: &str, group: &str, origin: &Origin) {
        if !self.hosts.contains_key(name) {
            self.hosts.insert(
                name.to_owned(),
                Host {
                    name: name.to_owned(),
                    vars: Vars::new(),
                    origin: origin.clone(),
                },
            );
        }
        self.ensure_group(group);
        if self.members.insert((group.to_owned(), name.to_owned()))
            && let Some(g) = self.groups.get_mut(group)
        {
            g.hosts.push(name.to_owned());
        }
    }

    pub(crate) fn add_child(&mut self, parent: &str, child: &str, origin: &Origin) {
        self.ensure_group(parent);
        self.ensure_group(child);
        if let Some(g) = self.groups.get_mut(parent)
            && !g.children.iter().any(|c| c == child)
        {
            g.children.push(child.to_owned());
        }
        self.edges
            .entry((parent.to_owned(), child.to_owned()))
            .or_insert_with(|| origin.clone());
    }

    pub(crate) fn set_group_var(&mut self, group: &str, key: &str, value: serde_json::Value) {
        self.ensure_group(group);
        self.layers
            .group_inline
            .entry(group.to_owned())
            .or_default()
            .insert(key.to_owned(), value);
    }

    pub(crate) fn set_host_var(&mut self, host: &str, key: &str, value: serde_json::Value) {
        self.layers
            .host_inline
            .entry(host.to_owned())
            .or_default()
            .insert(key.to_owned(), value);
    }

    /// Rebuilds the derived parts: `all` (every host; as children the top-level groups and
    /// any group explicitly listed under `all`, as Ansible keeps those links),
    /// `ungrouped` (hosts in no other group) and the merged `vars` views.
    fn finalize(&mut self) {
        self.ensure_implicit_groups();
        let mut has_parent: HashSet<String> = HashSet::new();
        for g in self.groups.values() {
            if g.name != ALL {
                has_parent.extend(g.children.iter().cloned());
            }
        }
        let top: Vec<String> = self
            .groups
            .keys()
            .filter(|n| {
                *n != ALL
                    && (!has_parent.contains(*n)
                        || self.edges.contains_key(&(ALL.to_owned(), (*n).clone())))
            })
            .cloned()
            .collect();
        let mut grouped: HashSet<&str> = HashSet::new();
        for g in self.groups.values() {
            if g.name != ALL && g.name != UNGROUPED {
                grouped.extend(g.hosts.iter().map(String::as_str));
            }
        }
        let ungrouped: Vec<String> = self
            .hosts
            .keys()
            .filter(|h| !grouped.contains(h.as_str()))
            .cloned()
            .collect();
        let all_hosts: Vec<String> = self.hosts.keys().cloned().collect();
        if let Some(all) = self.groups.get_mut(ALL) {
            all.hosts = all_hosts;
            all.children = top;
        }
        if let Some(u) = self.groups.get_mut(UNGROUPED) {
            u.hosts = ungrouped;
        }
        for g in self.groups.values_mut() {
            let mut v = self
                .layers
                .group_inline
                .get(&g.name)
                .cloned()
                .unwrap_or_default();
            for layer in &self.layers.group_files {
                if let Some(fv) = layer.get(&g.name) {
                    v.extend(fv.clone());
                }
            }
            g.vars = v;
        }
        for h in self.hosts.values_mut() {
            let mut v = self
                .layers
                .host_inline
                .get(&h.name)
                .cloned()
                .unwrap_or_default();
            for layer in &self.layers.host_files {
                if let Some(fv) = layer.get(&h.name) {
                    v.extend(fv.clone());
                }
            }
            h.vars = v;
        }
    }

    /// Rejects a group that is its own ancestor, pointing at the `children` entry that closes
    /// the cycle. `text` is the file just parsed, used for the source line when it matches.
    fn check_cycles(&self, file: &Path, text: &str) -> Result<()> {
        let Some((parent, child)) = self.find_cycle() else {
            return Ok(());
        };
        let origin = self.edges.get(&(parent.clone(), child.clone()));
        let (ofile, line) = origin.map_or((file.to_owned(), 0), |o| (o.file.clone(), o.line));
        let mut loc = Located::new(
            &ofile,
            line,
            format!("group `{child}` is its own ancestor (cycle through `{parent}`)"),
        )
        .hint("a group cannot be a child of itself or of one of its descendants");
        if ofile == file {
            loc = loc.source(text);
        }
        Err(Error::parse(loc))
    }

    /// The `(parent, child)` edge that closes a cycle, if any (iterative DFS, no recursion).
    fn find_cycle(&self) -> Option<(String, String)> {
        // 0 = unvisited, 1 = on stack, 2 = done
        let mut state: HashMap<&str, u8> = HashMap::new();
        for start in self.groups.keys() {
            if state.get(start.as_str()).copied().unwrap_or(0) != 0 {
                continue;
            }
            let mut stack: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
            state.insert(start.as_str(), 1);
            while let Some((node, idx)) = stack.pop() {
                let children = self.groups.get(node).map_or(&[][..], |g| &g.children[..]);
                if idx < children.len() {
                    stack.push((node, idx + 1));
                    let child = children[idx].as_str();
                    match state.get(child).copied().unwrap_or(0) {
                        1 => return Some((node.to_owned(), child.to_owned())),
                        0 => {
                            state.insert(child, 1);
                            stack.push((child, 0));
                        }
                        _ => {}
                    }
                } else {
                    state.insert(node, 2);
                }
            }
        }
        None
    }

    fn fingerprint(&self) -> (usize, usize, usize) {
        (self.hosts.len(), self.groups.len(), self.members.len())
    }

    /// Names of the groups containing `host` directly or through children, including `all`.
    fn host_groups(&self, host: &str) -> Vec<String> {
        let index = self.index.get_or_init(|| self.build_index());
        if index.fingerprint == self.fingerprint() {
            return index.groups_of.get(host).cloned().unwrap_or_default();
        }
        self.host_groups_uncached(host)
    }

    fn build_index(&self) -> MemberIndex {
        MemberIndex {
            fingerprint: self.fingerprint(),
            groups_of: self
                .hosts
                .keys()
                .map(|h| (h.clone(), self.host_groups_uncached(h)))
                .collect(),
        }
    }

    fn host_groups_uncached(&self, host: &str) -> Vec<String> {
        if !self.hosts.contains_key(host) {
            return Vec::new();
        }
        let parents = self.parents_map();
        let mut out: Vec<String> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut todo: Vec<&str> = self
            .groups
            .values()
            .filter(|g| g.hosts.iter().any(|h| h == host))
            .map(|g| g.name.as_str())
            .collect();
        while let Some(g) = todo.pop() {
            if !seen.insert(g) {
                continue;
            }
            out.push(g.to_owned());
            if let Some(ps) = parents.get(g) {
                todo.extend(ps.iter().copied());
            }
        }
        if !seen.contains(ALL) {
            out.push(ALL.to_owned());
        }
        out
    }

    /// child -> parents.
    fn parents_map(&self) -> HashMap<&str, Vec<&str>> {
        let mut m: HashMap<&str, Vec<&str>> = HashMap::new();
        for g in self.groups.values() {
            for c in &g.children {
                m.entry(c.as_str()).or_default().push(g.name.as_str());
            }
        }
        m
    }

    /// Every host of a group and its descendants: own hosts first, then children breadth
    /// first (Ansible's `Group.get_hosts`), without duplicates.
    fn group_hosts(&self, name: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let mut seen_hosts: HashSet<&str> = HashSet::new();
        let mut seen_groups: HashSet<&str> = HashSet::new();
        let mut queue: std::collections::VecDeque<&str> = std::collections::VecDeque::new();
        queue.push_back(name);
        while let Some(g) = queue.pop_front() {
            if !seen_groups.insert(g) {
                continue;
            }
            let Some(group) = self.groups.get(g) else {
                continue;
            };
            for h in &group.hosts {
                if seen_hosts.insert(h.as_str()) {
                    out.push(h.as_str());
                }
            }
            queue.extend(group.children.iter().map(String::as_str));
        }
        out
    }
}

fn graph_line(out: &mut String, depth: usize, name: &str) {
    if depth > 0 {
        out.push_str(&"  |".repeat(depth));
        out.push_str("--");
    }
    out.push_str(name);
    out.push('\n');
}

/// Ansible's `IGNORED_ALWAYS` plus the default `INVENTORY_IGNORE_EXTS` (and `.j2`).
fn is_ignored_entry(name: &str) -> bool {
    const EXTS: &[&str] = &[
        "~", ".orig", ".bak", ".retry", ".pyc", ".pyo", ".swp", ".rpm", ".cfg", ".md", ".txt",
        ".rst", ".j2",
    ];
    name.starts_with('.')
        || matches!(name, "group_vars" | "host_vars" | "vars_plugins")
        || EXTS.iter().any(|e| name.ends_with(e))
}

/// YAML by extension, else YAML only when the text is a mapping of mappings.
fn is_yaml_file(file: &Path, text: &str) -> bool {
    let ext = file
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    if matches!(ext.as_deref(), Some("yml" | "yaml" | "json")) {
        return true;
    }
    match serde_yaml::from_str::<serde_yaml::Value>(text) {
        Ok(serde_yaml::Value::Mapping(m)) => {
            !m.is_empty() && m.values().all(serde_yaml::Value::is_mapping)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ExitCode;
    use serde_json::json;
    use std::fs;

    fn ini(text: &str) -> Inventory {
        Inventory::from_ini(text, Path::new("hosts.ini")).unwrap()
    }

    fn yaml(text: &str) -> Inventory {
        Inventory::from_yaml(text, Path::new("hosts.yml")).unwrap()
    }

    fn names(inv: &Inventory) -> Vec<&str> {
        inv.hosts().map(|h| h.name.as_str()).collect()
    }

    fn group_hosts<'a>(inv: &'a Inventory, g: &str) -> Vec<&'a str> {
        inv.group(g)
            .unwrap()
            .hosts
            .iter()
            .map(String::as_str)
            .collect()
    }

    /// A parse error: exit code 4, message and line checked; returns the rendered text.
    fn parse_err(r: Result<Inventory>, line: usize, msg: &str) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::Parse, "{e}");
        let Error::Parse(loc) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(loc.line, line, "{e}");
        assert!(
            loc.message.contains(msg),
            "{} does not contain {msg}",
            loc.message
        );
        e.render()
    }

    fn ini_err(text: &str, line: usize, msg: &str) -> String {
        parse_err(Inventory::from_ini(text, Path::new("hosts.ini")), line, msg)
    }

    fn yaml_err(text: &str, line: usize, msg: &str) -> String {
        parse_err(
            Inventory::from_yaml(text, Path::new("hosts.yml")),
            line,
            msg,
        )
    }

    fn example(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("inventory")
            .join(name)
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    const DEEPOPS_GRAPH: &str = "\
@all:
  |--@etcd:
  |  |--mgmt01
  |--@k8s-cluster:
  |  |--@kube-master:
  |  |  |--mgmt01
  |  |--@kube-node:
  |  |  |--gpu01
  |  |  |--gpu02
  |--@nfs-server:
  |  |--nfs01
  |--@ungrouped:
";

    // ----- INI -----

    #[test]
    fn ini_deepops_example() {
        let inv = Inventory::load(&[example("hosts.ini")]).unwrap();
        assert_eq!(names(&inv), ["mgmt01", "gpu01", "gpu02", "nfs01"]);
        assert_eq!(
            inv.group("k8s-cluster").unwrap().children,
            ["kube-master", "kube-node"]
        );
        assert_eq!(group_hosts(&inv, "kube-node"), ["gpu01", "gpu02"]);
        assert_eq!(
            group_hosts(&inv, "all"),
            ["mgmt01", "gpu01", "gpu02", "nfs01"]
        );
        assert!(group_hosts(&inv, "ungrouped").is_empty());
        assert_eq!(inv.group_names("gpu01"), ["k8s-cluster", "kube-node"]);
        assert_eq!(
            inv.group_names("mgmt01"),
            ["etcd", "k8s-cluster", "kube-master"]
        );
        let v = inv.vars_for("gpu02");
        assert_eq!(v["ansible_user"], json!("ubuntu"));
        assert_eq!(v["ansible_host"], json!("10.0.2.2"));
        assert!(!v.contains_key("ansible_ssh_common_args"));
        assert_eq!(inv.host("gpu01").unwrap().origin.line, 9);
        assert_eq!(inv.graph("all").unwrap(), DEEPOPS_GRAPH);
    }

    #[test]
    fn ini_ranges_expand_in_file_order() {
        let inv = ini("[gpu]\nnode[01:03] rack=1\ngpu-[a:c]\nn[1:10:4]\n");
        assert_eq!(
            group_hosts(&inv, "gpu"),
            [
                "node01", "node02", "node03", "gpu-a", "gpu-b", "gpu-c", "n1", "n5", "n9"
            ]
        );
        assert_eq!(inv.host("node02").unwrap().vars["rack"], json!(1));
        assert_eq!(inv.host("node03").unwrap().origin.line, 2);
    }

    #[test]
    fn ini_tabs_whitespace_and_comments() {
        let text = "# comment\n; another\n  [web]   # trailing comment\n\tw1\t\tansible_host=10.0.0.1\t\n  w2 # inline comment\n\n[p:children]\t\nweb\t\t\n[p:vars]\t\nk = v \t\n";
        let inv = ini(text);
        assert_eq!(group_hosts(&inv, "web"), ["w1", "w2"]);
        assert_eq!(inv.group("p").unwrap().children, ["web"]);
        assert_eq!(
            inv.host("w1").unwrap().vars["ansible_host"],
            json!("10.0.0.1")
        );
        assert_eq!(inv.group("p").unwrap().vars["k"], json!("v"));
        // CRLF files
        let inv = ini("[web]\r\nw1 a=1\r\n");
        assert_eq!(inv.host("w1").unwrap().vars["a"], json!(1));
    }

    #[test]
    fn ini_inline_host_vars_with_quotes() {
        let inv = ini(
            "[web]\nh1 a=\"x y\" b='1' c=1 d=True e=01 f=\"'03#pa33'\" g=a=b h= i=1.5 # gone=1\n",
        );
        let v = &inv.host("h1").unwrap().vars;
        assert_eq!(v["a"], json!("x y"));
        // shlex removes the quotes first, then the value is evaluated: '1' is the number 1.
        assert_eq!(v["b"], json!(1));
        assert_eq!(v["c"], json!(1));
        assert_eq!(v["d"], json!(true));
        assert_eq!(v["e"], json!("01"));
        assert_eq!(v["f"], json!("03#pa33"));
        assert_eq!(v["g"], json!("a=b"));
        assert_eq!(v["h"], json!(""));
        assert_eq!(v["i"], json!(1.5));
        assert!(!v.contains_key("gone"));
    }

    #[test]
    fn ini_group_vars_are_evaluated_like_ansible() {
        let inv = ini(
            "[web]\nh1\n[web:vars]\nhttp_port=8080 # port\nuser=ubuntu # who\nq = \"quoted\"\nflag=True\nlist=[1, 2]\nempty=\nurl=http://x/?a=b\n",
        );
        let v = &inv.group("web").unwrap().vars;
        assert_eq!(v["http_port"], json!(8080));
        assert_eq!(v["user"], json!("ubuntu # who"));
        assert_eq!(v["q"], json!("quoted"));
        assert_eq!(v["flag"], json!(true));
        assert_eq!(v["list"], json!([1, 2]));
        assert_eq!(v["empty"], json!(""));
        assert_eq!(v["url"], json!("http://x/?a=b"));
    }

    #[test]
    fn ini_ungrouped_hosts() {
        let inv = ini("lonely\nboth\n[web]\nboth\nw1\n");
        assert_eq!(names(&inv), ["lonely", "both", "w1"]);
        assert_eq!(group_hosts(&inv, "ungrouped"), ["lonely"]);
        assert_eq!(inv.group_names("lonely"), ["ungrouped"]);
        assert_eq!(inv.group_names("both"), ["web"]);
        assert_eq!(inv.group("all").unwrap().children, ["ungrouped", "web"]);
        // hosts only under [all] are ungrouped too
        let inv = ini("[all]\na\n[web]\nb\n");
        assert_eq!(group_hosts(&inv, "ungrouped"), ["a"]);
        assert_eq!(inv.group_names("a"), ["ungrouped"]);
    }

    #[test]
    fn ini_host_port() {
        let inv = ini("[web]\nh1:2222\nh2:22 ansible_port=2200\nn[1:2]:23\n");
        assert_eq!(inv.host("h1").unwrap().vars["ansible_port"], json!(2222));
        assert_eq!(inv.host("h2").unwrap().vars["ansible_port"], json!(2200));
        assert_eq!(inv.host("n2").unwrap().vars["ansible_port"], json!(23));
    }

    #[test]
    fn ini_children_and_vars_sections() {
        let inv =
            ini("[k8s:children]\nmaster\nnode\nghost\n[master]\nm1\n[node]\nn1\n[k8s:vars]\nx=1\n");
        assert_eq!(
            inv.group("k8s").unwrap().children,
            ["master", "node", "ghost"]
        );
        let ghost = inv.group("ghost").unwrap();
        assert!(ghost.hosts.is_empty() && ghost.children.is_empty());
        assert_eq!(inv.group("all").unwrap().children, ["ungrouped", "k8s"]);
        assert_eq!(inv.vars_for("n1")["x"], json!(1));
        // vars for a group declared later in the file are fine
        let inv = ini("[web:vars]\na=1\n[web]\nh\n");
        assert_eq!(inv.vars_for("h")["a"], json!(1));
    }

    #[test]
    fn ini_repeated_hosts_merge_vars_and_keep_first_origin() {
        let inv = ini("[a]\nh1 x=1 y=1\n[b]\nh1 y=2\n");
        let h = inv.host("h1").unwrap();
        assert_eq!(h.vars["x"], json!(1));
        assert_eq!(h.vars["y"], json!(2));
        assert_eq!(h.origin.line, 2);
        assert_eq!(h.origin.file, Path::new("hosts.ini"));
        assert_eq!(inv.group_names("h1"), ["a", "b"]);
    }

    #[test]
    fn ini_errors_are_located() {
        let out = ini_err("[web]\nh1\n[web:foo]\n", 3, "unknown type `foo`");
        assert!(
            out.contains("hosts.ini:3:6") && out.contains("[web:foo]"),
            "{out}"
        );
        let out = ini_err(
            "[web]\nh\n[web:vars]\njust_a_word\n",
            4,
            "expected key=value",
        );
        assert!(out.contains("just_a_word"), "{out}");
        ini_err("[web]\nnode[05:01]\n", 2, "begin <= end");
        ini_err("[web]\nnode[a:05]\n", 2, "two numbers or two letters");
        let out = ini_err("[web]\n  h1:abc\n", 2, "port `abc`");
        assert!(out.contains("hosts.ini:2:3"), "{out}");
        ini_err("[web]\nh1 a='open\n", 2, "unterminated quote");
        ini_err("[web]\nh1 novalue\n", 2, "expected key=value host variable");
        ini_err("[a:children]\nb\n[b:children]\na\n", 4, "its own ancestor");
        ini_err("[a:children]\na\n", 2, "its own ancestor");
        ini_err("[a:children]\nall\n", 2, "its own ancestor");
        ini_err("[h]\nx\n[nope:vars]\na=1\n", 3, "defined nowhere");
        ini_err("[web server]\n", 1, "invalid section header");
        ini_err("[p:children]\na b\n", 2, "expected a group name");
        ini_err("[web]\n---\n", 2, "YAML");
        ini_err("[web]\n'' a=1\n", 2, "empty host name");
        yaml_err("all:\n  hosts:\n    ~:\n", 3, "empty host name");
    }

    #[test]
    fn ini_never_panics() {
        let pieces = [
            "[",
            "]",
            ":",
            "=",
            "'",
            "\"",
            "#",
            ";",
            "\\",
            "\t",
            " ",
            "web",
            "vars",
            "children",
            "[1:3]",
            "[a:",
            "node[",
            "é",
            "\n",
            "[x:children]\n",
            "[x:vars]\n",
            "h:",
            "0",
            "-1",
            "{",
            "}",
            "(",
            "[:]",
            "[05:1]",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..3000 {
            let mut s = String::new();
            for _ in 0..(seed % 24) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push_str(pieces[usize::try_from(seed % pieces.len() as u64).unwrap_or(0)]);
            }
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            if let Ok(inv) = Inventory::from_ini(&s, Path::new("f")) {
                let _ = inv.graph("all");
                let _ = inv.select(&s);
            }
            let _ = Inventory::from_yaml(&s, Path::new("f"));
        }
    }

    // ----- YAML -----

    #[test]
    fn yaml_example_matches_ini_example() {
        let y = Inventory::load(&[example("hosts.yml")]).unwrap();
        let i = Inventory::load(&[example("hosts.ini")]).unwrap();
        assert_eq!(y.graph("all").unwrap(), DEEPOPS_GRAPH);
        let mut a: Vec<&str> = names(&y);
        let mut b: Vec<&str> = names(&i);
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        for h in i.hosts() {
            assert_eq!(y.vars_for(&h.name), i.vars_for(&h.name), "{}", h.name);
            assert_eq!(y.group_names(&h.name), i.group_names(&h.name), "{}", h.name);
        }
        assert_eq!(y.host("gpu01").unwrap().origin.line, 5);
    }

    #[test]
    fn yaml_features() {
        let inv = yaml(
            "all:\n  hosts:\n    h1: {ansible_host: 10.0.0.1, n: 3, list: [a, 1]}\n    \"node[01:03]\":\n    'p:2222':\n  vars:\n  children:\n    web:\n      hosts: w1\n      vars: {x: 1}\n      children:\n    empty:\ndb:\n  hosts:\n    d1:\n  vars:\n    1: one\n    on: yes\n",
        );
        assert_eq!(
            names(&inv),
            ["h1", "node01", "node02", "node03", "p", "w1", "d1"]
        );
        let h1 = &inv.host("h1").unwrap().vars;
        assert_eq!(h1["n"], json!(3));
        assert_eq!(h1["list"], json!(["a", 1]));
        assert_eq!(inv.host("p").unwrap().vars["ansible_port"], json!(2222));
        assert_eq!(group_hosts(&inv, "web"), ["w1"]);
        assert!(inv.group("empty").unwrap().hosts.is_empty());
        assert_eq!(inv.group("db").unwrap().vars["1"], json!("one"));
        // YAML 1.2: `yes` is a string
        assert_eq!(inv.group("db").unwrap().vars["on"], json!("yes"));
        assert_eq!(
            inv.group("all").unwrap().children,
            ["ungrouped", "web", "empty", "db"]
        );
        assert_eq!(inv.host("node02").unwrap().origin.line, 4);
        assert_eq!(inv.host("d1").unwrap().origin.line, 15);
        // JSON is YAML
        let inv = Inventory::from_yaml(
            r#"{"all": {"hosts": {"j1": {"a": 1}}}}"#,
            Path::new("h.json"),
        )
        .unwrap();
        assert_eq!(inv.host("j1").unwrap().vars["a"], json!(1));
        // tab-indented JSON works in a .json file
        let tabbed = "{\n\t\"all\": {\n\t\t\"hosts\": {\"j2\": null}\n\t}\n}\n";
        let inv = Inventory::from_yaml(tabbed, Path::new("h.json")).unwrap();
        assert_eq!(names(&inv), ["j2"]);
        // a null group
        let inv = yaml("all:\nweb:\n");
        assert!(inv.group("web").is_some());
    }

    #[test]
    fn yaml_errors_are_located() {
        // The error is at the end of the text: the last line is shown, as for playbooks.
        let out = yaml_err("all:\n  hosts:\n    h1: {a: 1\n", 3, "invalid YAML");
        assert!(out.contains("hosts.yml:3:14"), "{out}");
        assert!(out.contains("h1: {a: 1"), "{out}");
        // A lone CR is a line break to YAML, not to `str::lines`: still a line of the text.
        yaml_err("all:\r1", 1, "invalid YAML");
        let out = yaml_err(
            "all:\n  children:\n    web:\n      hosts:\n        - w1\n        - w2\n",
            4,
            "`hosts` of group `web` must be a mapping",
        );
        assert!(out.contains("hint:"), "{out}");
        let out = yaml_err(
            "all:\n  children:\n    web:\n      host:\n        w1:\n",
            4,
            "unknown key `host` in group `web`",
        );
        assert!(out.contains("did you mean `hosts`?"), "{out}");
        yaml_err("all:\n  varz:\n    a: 1\n", 2, "unknown key `varz`");
        yaml_err(
            "all:\n  hosts:\n    h1: 5\n",
            3,
            "host `h1` must map to its variables",
        );
        yaml_err("web:\n  - a\n", 1, "group `web` must be a mapping");
        yaml_err("- a\n", 1, "must be a mapping of groups");
        yaml_err("", 0, "empty YAML inventory");
        yaml_err("all:\n  hosts:\n    \"n[5:1]\":\n", 3, "begin <= end");
        yaml_err(
            "a:\n  children:\n    b:\n      children:\n        a:\n",
            5,
            "its own ancestor",
        );
        yaml_err("plugin: aws_ec2\nx: {}\n", 1, "plugin");
    }

    // ----- loading, group_vars/host_vars, precedence -----

    #[test]
    fn precedence_all_parent_child_host_and_alphabetical() {
        let inv = ini(
            "[all:vars]\nv=all\nonly_all=1\n[alpha]\nh1\n[alpha:vars]\nv=alpha\nsame=alpha\n[beta]\nh1\n[beta:vars]\nv=beta\nsame=beta\n[alpha:children]\nkid\n[kid]\nh1\n[kid:vars]\nv=kid\n[other]\nh2 v=host\n",
        );
        let v = inv.vars_for("h1");
        assert_eq!(v["v"], json!("kid"));
        assert_eq!(v["same"], json!("beta"));
        assert_eq!(v["only_all"], json!(1));
        assert_eq!(inv.vars_for("h2")["v"], json!("host"));
        assert!(inv.vars_for("nobody").is_empty());
        // ansible_group_priority outranks the name within a depth
        let inv = ini(
            "[alpha]\nh\n[alpha:vars]\nx=alpha\nansible_group_priority=10\n[beta]\nh\n[beta:vars]\nx=beta\n",
        );
        assert_eq!(inv.vars_for("h")["x"], json!("alpha"));
        // depth is the longest path from all
        let inv = ini(
            "[a:children]\nb\n[b:children]\nc\n[z:children]\nc\n[c]\nh\n[c:vars]\nx=c\n[z:vars]\nx=z\n[a:vars]\nx=a\n",
        );
        assert_eq!(inv.vars_for("h")["x"], json!("c"));
    }

    #[test]
    fn group_vars_and_host_vars_dirs() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        write(
            &p.join("hosts.ini"),
            "[all:vars]\nx=inline_all\n[parent:children]\nchild\n[child]\nh1 hv=inline_host\n[child:vars]\ny=inline_child\nz=inline_child\n[parent:vars]\ny=inline_parent\n",
        );
        write(&p.join("group_vars/all.yml"), "x: file_all\nz: file_all\n");
        write(&p.join("group_vars/parent/01.yml"), "y: file_parent\n");
        write(&p.join("group_vars/parent/02.yml"), "w: file_parent\n");
        write(&p.join("group_vars/child.yml"), "w: file_child\n");
        write(&p.join("group_vars/unknown.yml"), "q: 1\n");
        write(&p.join("host_vars/h1"), "hv: file_host\n");
        let inv = Inventory::load(&[p.join("hosts.ini")]).unwrap();
        let v = inv.vars_for("h1");
        assert_eq!(v["x"], json!("file_all"));
        assert_eq!(v["y"], json!("file_parent"));
        assert_eq!(v["w"], json!("file_child"));
        // Ansible: group_vars/all beats inline vars of any group
        assert_eq!(v["z"], json!("file_all"));
        assert_eq!(v["hv"], json!("file_host"));
        assert!(!v.contains_key("q"));
        let child = &inv.group("child").unwrap().vars;
        assert_eq!(child["y"], json!("inline_child"));
        assert_eq!(child["w"], json!("file_child"));
        assert_eq!(inv.host("h1").unwrap().vars["hv"], json!("file_host"));

        // a second source directory: its files win
        let d2 = tempfile::tempdir().unwrap();
        write(&d2.path().join("more.yml"), "all:\n  hosts:\n    h9:\n");
        write(&d2.path().join("group_vars/all.yaml"), "x: second\n");
        write(&d2.path().join("host_vars/h9.json"), "{\"k\": 9}");
        let inv = Inventory::load(&[p.join("hosts.ini"), d2.path().to_owned()]).unwrap();
        assert_eq!(inv.vars_for("h1")["x"], json!("second"));
        assert_eq!(inv.vars_for("h9")["k"], json!(9));
    }

    #[test]
    fn deepops_fixture_with_vars_dirs() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory/deepops");
        let inv = Inventory::load(&[dir.join("hosts.ini")]).unwrap();
        let gpu01 = inv.vars_for("gpu01");
        assert_eq!(gpu01["ansible_user"], json!("ubuntu"));
        assert_eq!(gpu01["ansible_host"], json!("192.168.2.1"));
        assert_eq!(gpu01["role"], json!("gpu-node"));
        assert_eq!(gpu01["mig_strategy"], json!("mixed"));
        assert_eq!(gpu01["kube_version"], json!("v1.29.4"));
        assert_eq!(gpu01["ntp_servers"], json!(["ntp.ubuntu.com"]));
        let gpu02 = inv.vars_for("gpu02");
        assert_eq!(gpu02["mig_strategy"], json!("single"));
        assert_eq!(gpu02["ansible_host"], json!("10.0.2.2"));
        assert_eq!(inv.vars_for("mgmt01")["role"], json!("k8s"));
        assert_eq!(inv.vars_for("nfs01")["role"], json!("generic"));
        assert!(!inv.vars_for("nfs01").contains_key("kube_version"));
        // the same directory as a source reads the same files
        let inv2 = Inventory::load(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(inv2.vars_for("gpu01"), gpu01);
    }

    #[test]
    fn bad_group_vars_file_is_a_parse_error() {
        let d = tempfile::tempdir().unwrap();
        write(&d.path().join("hosts"), "[web]\nh\n");
        write(&d.path().join("group_vars/web.yml"), "a: 1\n  b: 2\n");
        let e = Inventory::load(&[d.path().join("hosts")]).unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::Parse);
        assert!(e.to_string().contains("web.yml:2"), "{e}");
    }

    #[test]
    fn load_directory_skips_ignored_and_detects_format() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        write(&p.join("01-hosts"), "[web]\nw1\n");
        write(
            &p.join("02-cluster"),
            "all:\n  children:\n    db:\n      hosts:\n        d1:\n",
        );
        write(&p.join("03.yaml"), "gpu:\n  hosts:\n    g1:\n");
        write(&p.join("sub/04.ini"), "[sub]\ns1\n");
        for ignored in [
            "x.bak",
            "x~",
            "x.orig",
            "x.retry",
            "x.cfg",
            "README.md",
            "notes.txt",
            "t.j2",
            "hosts.ini~",
            ".hidden",
            "x.pyc",
        ] {
            write(&p.join(ignored), "[bad\n");
        }
        write(&p.join("group_vars/web.yml"), "gv: 1\n");
        write(&p.join("host_vars/d1.yml"), "hv: 2\n");
        let inv = Inventory::load(&[p.to_owned()]).unwrap();
        assert_eq!(names(&inv), ["w1", "d1", "g1", "s1"]);
        assert_eq!(inv.vars_for("w1")["gv"], json!(1));
        assert_eq!(inv.vars_for("d1")["hv"], json!(2));
        assert_eq!(inv.host("d1").unwrap().origin.file, p.join("02-cluster"));
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loop_in_inventory_dir_is_an_error_not_a_crash() {
        let d = tempfile::tempdir().unwrap();
        write(&d.path().join("hosts"), "[web]\nh\n");
        std::os::unix::fs::symlink(d.path(), d.path().join("loop")).unwrap();
        let e = Inventory::load(&[d.path().to_owned()]).unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::Usage);
        assert!(e.to_string().contains("nested too deeply"), "{e}");
    }

    #[test]
    fn missing_source_is_usage_error() {
        let e = Inventory::load(&[PathBuf::from("/nonexistent/inv.ini")]).unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::Usage);
        assert!(e.to_string().contains("/nonexistent/inv.ini"), "{e}");
    }

    #[test]
    fn cycle_across_files_is_located() {
        let d = tempfile::tempdir().unwrap();
        write(&d.path().join("a.ini"), "[a:children]\nb\n");
        write(&d.path().join("b.ini"), "[x]\nh\n[b:children]\na\n");
        let e = Inventory::load(&[d.path().join("a.ini"), d.path().join("b.ini")]).unwrap_err();
        let Error::Parse(loc) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            (loc.file.file_name().unwrap().to_str().unwrap(), loc.line),
            ("b.ini", 4)
        );
    }

    #[test]
    fn default_inventory_is_empty_and_safe() {
        let inv = Inventory::default();
        assert_eq!(inv.hosts().count(), 0);
        assert!(inv.select("all").unwrap().is_empty());
        assert!(inv.graph("all").is_err());
        let inv = ini("");
        assert_eq!(inv.graph("all").unwrap(), "@all:\n  |--@ungrouped:\n");
    }

    // ----- patterns -----

    fn pat_inv() -> Inventory {
        ini(
            "[web]\nweb1\nweb2\n[db]\ndb1\nweb2\n[gpu]\ngpu-01\ngpu-02\ngpu-03\n[cluster:children]\nweb\ngpu\n[dup]\nx1\n[solo]\ndup\n",
        )
    }

    fn sel(inv: &Inventory, p: &str) -> Vec<String> {
        inv.select(p).unwrap()
    }

    #[test]
    fn patterns_basic() {
        let inv = pat_inv();
        let every = names(&inv);
        assert_eq!(sel(&inv, "all"), every);
        assert_eq!(sel(&inv, "*"), every);
        assert!(sel(&inv, "").is_empty());
        assert!(sel(&inv, "nomatch").is_empty());
        assert_eq!(sel(&inv, "web1"), ["web1"]);
        assert_eq!(sel(&inv, "db"), ["web2", "db1"]);
        assert_eq!(
            sel(&inv, "cluster"),
            ["web1", "web2", "gpu-01", "gpu-02", "gpu-03"]
        );
        assert_eq!(sel(&inv, "ungrouped"), Vec::<String>::new());
    }

    #[test]
    fn patterns_globs_and_regex() {
        let inv = pat_inv();
        assert_eq!(sel(&inv, "gpu-*"), ["gpu-01", "gpu-02", "gpu-03"]);
        assert_eq!(sel(&inv, "gpu-0?"), ["gpu-01", "gpu-02", "gpu-03"]);
        assert_eq!(sel(&inv, "web?"), ["web1", "web2"]);
        // a glob matching a group name selects the group's hosts
        assert_eq!(
            sel(&inv, "clus*"),
            ["web1", "web2", "gpu-01", "gpu-02", "gpu-03"]
        );
        assert_eq!(sel(&inv, "gpu-0[!2]"), ["gpu-01", "gpu-03"]);
        assert_eq!(sel(&inv, "~gpu-0[12]"), ["gpu-01", "gpu-02"]);
        // re.match: anchored at the start only
        assert_eq!(sel(&inv, "~web"), ["web1", "web2"]);
        assert!(sel(&inv, "~eb1").is_empty());
        assert_eq!(sel(&inv, "~(web|db)1"), ["web1", "db1"]);
        let e = inv.select("~web(").unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::Usage);
    }

    #[test]
    fn patterns_set_operations() {
        let inv = pat_inv();
        assert_eq!(sel(&inv, "web:db"), ["web1", "web2", "db1"]);
        assert_eq!(sel(&inv, "db,web"), ["web1", "web2", "db1"]);
        assert_eq!(sel(&inv, "web:&db"), ["web2"]);
        assert_eq!(sel(&inv, "web:!db"), ["web1"]);
        // exclusions apply last whatever the order
        assert_eq!(sel(&inv, "!db:web"), ["web1"]);
        assert_eq!(sel(&inv, "!web1,cluster,&web"), ["web2"]);
        // only & / ! parts start from all
        assert_eq!(sel(&inv, "!cluster"), ["db1", "x1", "dup"]);
        assert_eq!(sel(&inv, "&web"), ["web1", "web2"]);
        assert_eq!(sel(&inv, "web1:web1:web"), ["web1", "web2"]);
        assert!(inv.select("web:!").is_err());
    }

    #[test]
    fn patterns_subscripts() {
        let inv = pat_inv();
        assert_eq!(sel(&inv, "gpu[0]"), ["gpu-01"]);
        assert_eq!(sel(&inv, "gpu[-1]"), ["gpu-03"]);
        assert_eq!(sel(&inv, "gpu[1:2]"), ["gpu-02", "gpu-03"]);
        assert_eq!(sel(&inv, "gpu[:1]"), ["gpu-01", "gpu-02"]);
        assert_eq!(sel(&inv, "gpu[1:]"), ["gpu-02", "gpu-03"]);
        assert_eq!(sel(&inv, "cluster[2]"), ["gpu-01"]);
        assert_eq!(sel(&inv, "gpu[0]:web[1]"), ["web2", "gpu-01"]);
        for bad in ["gpu[3]", "gpu[-4]", "gpu[1:2:3]"] {
            let e = inv.select(bad).unwrap_err();
            assert_eq!(e.exit_code(), ExitCode::Usage, "{bad}");
        }
    }

    #[test]
    fn patterns_host_and_group_with_same_name() {
        // Ansible's _evaluate_patterns resolves a plain host name first.
        let inv = pat_inv();
        assert_eq!(sel(&inv, "dup"), ["dup"]);
        // in & and ! parts, and for globs, the group is matched first (and hosts for globs).
        assert_eq!(
            sel(&inv, "all:!dup"),
            ["web1", "web2", "db1", "gpu-01", "gpu-02", "gpu-03", "dup"]
        );
        assert_eq!(sel(&inv, "du?"), ["x1", "dup"]);
    }

    #[test]
    fn limits() {
        let inv = pat_inv();
        let l = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(inv.select_limited("all", &[]).unwrap(), names(&inv));
        assert_eq!(
            inv.select_limited("cluster", &l(&["db"])).unwrap(),
            ["web2"]
        );
        assert_eq!(
            inv.select_limited("cluster", &l(&["gpu:!gpu-02"])).unwrap(),
            ["gpu-01", "gpu-03"]
        );
        // as in Ansible, the last --limit wins
        assert_eq!(
            inv.select_limited("all", &l(&["web", "db"])).unwrap(),
            ["web2", "db1"]
        );
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("retry");
        fs::write(&f, "gpu-01\n\nweb1\n").unwrap();
        let lim = format!("@{}", f.display());
        assert_eq!(
            inv.select_limited("all", &[lim]).unwrap(),
            ["web1", "gpu-01"]
        );
        let e = inv
            .select_limited("all", &l(&["@/nonexistent/file"]))
            .unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::Usage);
        let e = inv
            .select_limited("all", &[format!("@{}", d.path().display())])
            .unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::Usage);
    }

    #[test]
    fn graph_from_a_subgroup_and_unknown_root() {
        let inv = pat_inv();
        assert_eq!(
            inv.graph("cluster").unwrap(),
            "@cluster:\n  |--@gpu:\n  |  |--gpu-01\n  |  |--gpu-02\n  |  |--gpu-03\n  |--@web:\n  |  |--web1\n  |  |--web2\n"
        );
        let e = inv.graph("nope").unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::Usage);
    }

    #[test]
    fn yaml_inventories_decrypt_vault_values() {
        crate::vault::keyring::install_test_keyring();
        let inline = fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vault/inline.yml"),
        )
        .unwrap()
        .replace('\n', "\n      ");
        let text = format!("all:\n  hosts:\n    h1:\n  vars:\n    {inline}\n");
        let inv = Inventory::from_yaml(&text, Path::new("hosts.yml")).unwrap();
        assert_eq!(
            inv.vars_for("h1")["inline_value"],
            json!("inline-v4ult-value")
        );
        let e = Inventory::from_yaml(
            "all:\n  hosts:\n    h1:\n      x: !vault |\n        $ANSIBLE_VAULT;1.1;AES256\n        3031\n",
            Path::new("hosts.yml"),
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::Parse);
        assert!(e.render().contains("hosts.yml:4"), "{}", e.render());
    }
}
