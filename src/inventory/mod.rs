//! Ansible inventories: hosts, groups, their variables, and host patterns.
//!
//! Purpose: read the same inventory files operators already feed to Ansible (INI or YAML, a
//! file or a directory of them, with `group_vars/` and `host_vars/` beside them) and answer the
//! questions a run needs: which hosts does a pattern select, and what are a host's variables.
//!
//! Key decision: one flat model (hosts and groups in insertion order, children as names) that
//! every parser fills through a few private builder methods, then [`Inventory::finalize`]
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
}

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
                inv.load_dir(source)?;
                source.clone()
            } else {
                inv.load_file(source)?;
                match source.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
                    _ => PathBuf::from("."),
                }
            };
            if !basedirs.contains(&basedir) {
                basedirs.push(basedir);
            }
        }
        inv.finalize();
        for dir in &basedirs {
            vars::load_vars_dirs(&mut inv, dir)?;
        }
        inv.finalize();
        Ok(inv)
    }

    fn load_dir(&mut self, dir: &Path) -> Result<()> {
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
                self.load_dir(&path)?;
            } else {
                self.load_file(&path)?;
            }
        }
        Ok(())
    }

    fn load_file(&mut self, file: &Path) -> Result<()> {
        let bytes = std::fs::read(file).map_err(|e| Error::io("read inventory", file, e))?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::parse(Located::new(file, 0, "inventory file is not valid UTF-8"))
        })?;
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

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.get(name)
    }

    /// All groups, in inventory order (`all` and `ungrouped` first).
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(name)
    }

    /// Every group the host belongs to, directly or through children, sorted, without `all`
    /// (Ansible's `group_names`; an ungrouped host gets `["ungrouped"]`).
    pub fn group_names(&self, host: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .host_groups(host)
            .into_iter()
            .filter(|g| g != ALL)
            .collect();
        names.sort();
        names
    }

    /// The host's effective variables by Ansible's precedence (lowest first):
    /// 1. inline vars of `all`, 2. inline vars of the host's other groups sorted by
    /// (depth, `ansible_group_priority`, name), 3. `group_vars/all`, 4. `group_vars/<group>` in
    /// the same order (each per inventory directory in source order), 5. inline host vars,
    /// 6. `host_vars/<host>`. Unknown hosts get empty vars.
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
        self.graph_group(group, 0, &mut out);
        Ok(out)
    }

    fn graph_group(&self, group: &Group, depth: usize, out: &mut String) {
        graph_line(out, depth, &format!("@{}:", group.name));
        // Cycles are rejected at load time; the depth bound only guards against bugs.
        if depth > self.groups.len() {
            return;
        }
        let mut kids: Vec<&Group> = group
            .children
            .iter()
            .filter_map(|c| self.groups.get(c))
            .collect();
        kids.sort_by(|a, b| a.name.cmp(&b.name));
        for kid in kids {
            self.graph_group(kid, depth + 1, out);
        }
        if group.name != ALL {
            let mut hosts: Vec<&String> = group.hosts.iter().collect();
            hosts.sort();
            for h in hosts {
                graph_line(out, depth + 1, h);
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
        if let Some(g) = self.groups.get_mut(group)
            && !g.hosts.iter().any(|h| h == name)
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

    /// Rebuilds the derived parts: `all` (every host; top-level groups as children),
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
            .filter(|n| *n != ALL && !has_parent.contains(*n))
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

    /// Names of the groups containing `host` directly or through children, including `all`.
    fn host_groups(&self, host: &str) -> Vec<String> {
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
