//! `group_vars/` and `host_vars/` loading, and the precedence merge behind
//! [`Inventory::vars_for`](super::Inventory::vars_for).
//!
//! Purpose: find and read the variable files Ansible's `host_group_vars` plugin reads, and
//! combine every variable layer of a host in Ansible's order.
//!
//! Key decision: follow Ansible's documented precedence literally rather than "group, then its
//! files": from lowest to highest,
//! 1. inline vars of `all` (INI `[all:vars]`, YAML `all: vars:`),
//! 2. inline vars of the host's other groups, sorted by (depth, `ansible_group_priority`,
//!    name): parents before children, same depth alphabetically, later wins,
//! 3. `group_vars/all` of each inventory directory, in source order,
//! 4. `group_vars/<group>` of each inventory directory (source order), groups sorted as in 2,
//! 5. inline host vars, 6. `host_vars/<host>` of each inventory directory.
//!
//! So a `group_vars/all.yml` value beats an inline `[child:vars]` value; that surprises people
//! but it is what Ansible does (`VARIABLE_PRECEDENCE` = all_inventory, groups_inventory,
//! all_plugins_inventory, groups_plugins_inventory). Merging replaces top-level keys
//! (`hash_behaviour=replace`).
//!
//! Files found for a name `N` are, like Ansible's `find_vars_files`, the first that exists of
//! `N`, `N.yml`, `N.yaml`, `N.json`; a directory `N/` is read recursively in sorted order
//! (files with no extension or one of those, skipping hidden files and `~` backups).
//!
//! A vault-encrypted file is decrypted with the run's vault passwords, and each of its values
//! remembered as a secret (see [`crate::vault::keyring`]).
//!
//! Not supported: playbook-level `group_vars/` (beside the playbook), `ansible_group_priority`
//! from `group_vars/` files affecting the sort.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::{ALL, Inventory, Vars};
use crate::error::{Error, Located, Result};

const VARS_EXTS: [&str; 4] = ["", ".yml", ".yaml", ".json"];

/// Loads `group_vars/` and `host_vars/` under `basedir` for every known group and host, as one
/// more layer (layers later in source order win).
pub(super) fn load_vars_dirs(inv: &mut Inventory, basedir: &Path) -> Result<()> {
    let group_names: Vec<String> = inv.groups.keys().cloned().collect();
    let host_names: Vec<String> = inv.hosts.keys().cloned().collect();
    let groups = load_layer(&basedir.join("group_vars"), &group_names)?;
    let hosts = load_layer(&basedir.join("host_vars"), &host_names)?;
    inv.layers.group_files.push(groups);
    inv.layers.host_files.push(hosts);
    Ok(())
}

fn load_layer(dir: &Path, names: &[String]) -> Result<IndexMap<String, Vars>> {
    let mut layer = IndexMap::new();
    if !dir.is_dir() {
        return Ok(layer);
    }
    for name in names {
        let files = find_vars_files(dir, name);
        if files.is_empty() {
            continue;
        }
        let mut vars = Vars::new();
        for f in &files {
            vars.extend(load_vars_file(f)?);
        }
        layer.insert(name.clone(), vars);
    }
    Ok(layer)
}

/// The files holding vars for `name` in `dir`, in merge order.
fn find_vars_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    if name.is_empty() || name.contains(['/', '\\', '\0']) || name == "." || name == ".." {
        return Vec::new();
    }
    for ext in VARS_EXTS {
        let path = dir.join(format!("{name}{ext}"));
        if path.is_dir() {
            let mut found = Vec::new();
            dir_vars_files(&path, &mut found, 0);
            return found;
        }
        if path.is_file() {
            return vec![path];
        }
    }
    Vec::new()
}

fn dir_vars_files(dir: &Path, found: &mut Vec<PathBuf>, depth: usize) {
    if depth > 32 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let Some(fname) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if fname.starts_with('.') || fname.ends_with('~') {
            continue;
        }
        let ext = path
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        if path.is_dir() && ext.is_empty() {
            dir_vars_files(&path, found, depth + 1);
        } else if path.is_file() && VARS_EXTS.contains(&ext.as_str()) {
            found.push(path);
        }
    }
}

/// Reads one YAML/JSON vars file: a mapping, or empty.
pub(super) fn load_vars_file(path: &Path) -> Result<Vars> {
    let text = super::read_input(path, "vars file")?;
    let vaulted = crate::vault::is_vault(&text);
    let value = if vaulted {
        let plain = zeroize::Zeroizing::new(crate::vault::keyring::open(&text).map_err(|e| {
            Error::parse(
                Located::new(path, 1, format!("vault-encrypted vars file: {e}"))
                    .hint(crate::vault::keyring::hint(&e)),
            )
        })?);
        let value = super::yaml::load_decrypted_yaml(&plain, path)?;
        crate::vault::keyring::remember_all(&super::yaml::to_json(&value));
        value
    } else {
        super::yaml::load_yaml(&text, path)?
    };
    match value {
        serde_yaml::Value::Null => Ok(Vars::new()),
        serde_yaml::Value::Mapping(m) => Ok(m
            .iter()
            .map(|(k, v)| (super::yaml::key_string(k), super::yaml::to_json(v)))
            .collect()),
        other => Err(Error::parse(
            Located::new(
                path,
                1,
                format!(
                    "a vars file must be a mapping, found {}",
                    super::yaml::kind(&other)
                ),
            )
            .source(&text)
            .hint("write `name: value` lines"),
        )),
    }
}

/// The host's variables by Ansible's precedence (see the module doc).
pub(super) fn effective_vars(inv: &Inventory, host: &str) -> Vars {
    let mut out = Vars::new();
    if !inv.hosts.contains_key(host) {
        return out;
    }
    let groups: Vec<String> = inv
        .host_groups(host)
        .into_iter()
        .filter(|g| g != ALL)
        .collect();
    let groups = sort_groups(inv, groups);
    let layers = &inv.layers;
    let mut merge = |v: Option<&Vars>| {
        if let Some(v) = v {
            out.extend(v.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    };
    merge(layers.group_inline.get(ALL));
    for g in &groups {
        merge(layers.group_inline.get(g));
    }
    for layer in &layers.group_files {
        merge(layer.get(ALL));
    }
    for layer in &layers.group_files {
        for g in &groups {
            merge(layer.get(g));
        }
    }
    merge(layers.host_inline.get(host));
    for layer in &layers.host_files {
        merge(layer.get(host));
    }
    out
}

/// Ansible's `sort_groups`: by (depth, priority, name).
fn sort_groups(inv: &Inventory, groups: Vec<String>) -> Vec<String> {
    let depths = group_depths(inv);
    let mut keyed: Vec<(usize, i64, String)> = groups
        .into_iter()
        .map(|g| {
            let depth = depths.get(g.as_str()).copied().unwrap_or(1);
            (depth, group_priority(inv, &g), g)
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, _, g)| g).collect()
}

/// `ansible_group_priority` of a group (default 1), as in Ansible's `Group.set_priority`.
fn group_priority(inv: &Inventory, group: &str) -> i64 {
    let v = inv
        .layers
        .group_inline
        .get(group)
        .and_then(|v| v.get("ansible_group_priority"));
    match v {
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(1),
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(1),
        _ => 1,
    }
}

/// Longest distance from `all` for every group (`all` = 0, top-level groups = 1), computed
/// in topological order so deep hierarchies need no recursion.
pub(super) fn group_depths(inv: &Inventory) -> HashMap<&str, usize> {
    let mut indegree: HashMap<&str, usize> = inv.groups.keys().map(|k| (k.as_str(), 0)).collect();
    for g in inv.groups.values() {
        let kids: HashSet<&str> = g.children.iter().map(String::as_str).collect();
        for k in kids {
            if let Some(d) = indegree.get_mut(k) {
                *d += 1;
            }
        }
    }
    let mut depth: HashMap<&str, usize> = HashMap::new();
    let mut queue: VecDeque<&str> = inv
        .groups
        .keys()
        .map(String::as_str)
        .filter(|k| indegree.get(k).copied() == Some(0))
        .collect();
    for q in &queue {
        depth.insert(q, usize::from(*q != ALL));
    }
    while let Some(g) = queue.pop_front() {
        let d = depth.get(g).copied().unwrap_or(0);
        let Some(group) = inv.groups.get(g) else {
            continue;
        };
        let kids: HashSet<&str> = group.children.iter().map(String::as_str).collect();
        for k in kids {
            let e = depth.entry(k).or_insert(0);
            *e = (*e).max(d + 1);
            if let Some(n) = indegree.get_mut(k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    queue.push_back(k);
                }
            }
        }
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fs;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn finds_first_existing_name_and_directories() {
        let d = tempfile::tempdir().unwrap();
        let gv = d.path().join("group_vars");
        write(&gv.join("web"), "a: 1\n");
        write(&gv.join("web.yml"), "a: 2\n");
        write(&gv.join("db.yaml"), "a: 3\n");
        write(&gv.join("gpu/10-base.yml"), "a: 4\n");
        write(&gv.join("gpu/20-more.json"), "{\"a\": 5}\n");
        write(&gv.join("gpu/sub/x"), "b: 6\n");
        write(&gv.join("gpu/.hidden.yml"), "a: 7\n");
        write(&gv.join("gpu/old.yml~"), "a: 8\n");
        write(&gv.join("gpu/notes.txt"), "a: 9\n");
        assert_eq!(find_vars_files(&gv, "web"), vec![gv.join("web")]);
        assert_eq!(find_vars_files(&gv, "db"), vec![gv.join("db.yaml")]);
        assert_eq!(
            find_vars_files(&gv, "gpu"),
            vec![
                gv.join("gpu/10-base.yml"),
                gv.join("gpu/20-more.json"),
                gv.join("gpu/sub/x")
            ]
        );
        assert!(find_vars_files(&gv, "none").is_empty());
        assert!(find_vars_files(&gv, "../group_vars/web").is_empty());
        let layer = load_layer(&gv, &["gpu".into()]).unwrap();
        assert_eq!(layer["gpu"]["a"], json!(5));
        assert_eq!(layer["gpu"]["b"], json!(6));
    }

    #[test]
    fn bad_vars_files_are_located_parse_errors() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x.yml");
        write(&f, "a: 1\nb: [unclosed\n");
        let e = load_vars_file(&f).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::ExitCode::Parse);
        assert!(e.to_string().contains("x.yml:"), "{e}");
        write(&f, "- a\n- b\n");
        let e = load_vars_file(&f).unwrap_err();
        assert!(e.to_string().contains("must be a mapping"), "{e}");
        write(&f, "$ANSIBLE_VAULT;1.1;AES256\n3031\n");
        let e = load_vars_file(&f).unwrap_err();
        assert!(e.to_string().contains("vault"), "{e}");
        write(&f, "");
        assert!(load_vars_file(&f).unwrap().is_empty());
    }

    fn vault_fixture(name: &str) -> String {
        fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/vault")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn vault_files_and_values_are_decrypted_and_remembered() {
        crate::vault::keyring::install_test_keyring();
        let d = tempfile::tempdir().unwrap();
        let gv = d.path().join("group_vars");
        write(&gv.join("all.yml"), &vault_fixture("vars-1.1.yml"));
        write(&gv.join("web.yml"), &vault_fixture("vars-1.2.yml"));
        let inline = vault_fixture("inline.yml");
        write(
            &d.path().join("host_vars/h1.yml"),
            &format!("plain: 1\n{inline}"),
        );
        let layer = load_layer(&gv, &["all".into(), "web".into()]).unwrap();
        assert_eq!(layer["all"]["db_note"], json!("Sup3r-s3cret-db"));
        assert_eq!(layer["web"]["label_value"], json!("labelled-v4lue"));
        let hv = load_vars_file(&d.path().join("host_vars/h1.yml")).unwrap();
        assert_eq!(hv["inline_value"], json!("inline-v4ult-value"));
        assert_eq!(hv["plain"], json!(1));
        let revealed = crate::vault::keyring::revealed();
        for v in [
            "Sup3r-s3cret-db",
            "tok-8d1f0c2e",
            "labelled-v4lue",
            "inline-v4ult-value",
        ] {
            assert!(revealed.iter().any(|r| r == v), "{v} not remembered");
        }
    }

    #[test]
    fn a_broken_inline_vault_is_located_and_quotes_no_secret() {
        crate::vault::keyring::install_test_keyring();
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x.yml");
        write(
            &f,
            "a: 1\nb: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162zz\nc: 2\n",
        );
        let e = load_vars_file(&f).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::ExitCode::Parse);
        let out = e.render();
        assert!(out.contains("x.yml:2"), "{out}");
        assert!(out.contains("malformed vault data"), "{out}");
    }
}
