//! What `kamo migrate` moves, and from which old host to which new one.
//!
//! The data sets of a KAMONOHASHI cluster, each on the host of a role (the first host of its
//! inventory group, as deploy-tools lays clusters out):
//! - `nfs`: the NFS export (`nfs_export_path`) on the `nfs-server` host: datasets, training
//!   outputs;
//! - `minio`: MinIO's object store (`minio_data_path`), on the same storage host;
//! - `etc`: the app's configuration, `/etc/kamonohashi` on the `kube-master` host;
//! - every entry of the settings key `migrate_paths`: a path (on the `kube-master` host), or a
//!   mapping `{path, group, to, name}` to take it from another role or to another path.
//!
//! Each goes to the host of the same role in the new inventory, unless `--map OLD=NEW` names
//! the new host, and to the path the new cluster's settings give (the same key read from the
//! new inventory). Everything is resolved before any host is touched, with a clear error for
//! a role or a key one of the clusters lacks.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::inventory::Inventory;

/// One directory to move.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataSet {
    /// Unique, also the journal step (`copy:NAME`) and the manifests' file names.
    pub name: String,
    pub from_host: String,
    pub from_path: String,
    pub to_host: String,
    pub to_path: String,
}

/// `--map OLD=NEW` arguments, checked against both inventories.
pub fn parse_map(
    items: &[String],
    old: &Inventory,
    new: &Inventory,
) -> Result<BTreeMap<String, String>> {
    let old_hosts = old.select("all")?;
    let new_hosts = new.select("all")?;
    let mut map = BTreeMap::new();
    for item in items {
        let Some((a, b)) = item.split_once('=') else {
            return Err(Error::Usage(format!(
                "--map {item:?}: expected OLD_HOST=NEW_HOST"
            )));
        };
        if !old_hosts.iter().any(|h| h == a) {
            return Err(Error::Usage(format!(
                "--map {item}: {a} is not a host of the old inventory"
            )));
        }
        if !new_hosts.iter().any(|h| h == b) {
            return Err(Error::Usage(format!(
                "--map {item}: {b} is not a host of the new inventory"
            )));
        }
        if map.insert(a.to_owned(), b.to_owned()).is_some() {
            return Err(Error::Usage(format!("--map names {a} twice")));
        }
    }
    Ok(map)
}

fn first_of(inv: &Inventory, group: &str, which: &str) -> Result<String> {
    inv.select(group)
        .ok()
        .and_then(|h| h.into_iter().next())
        .ok_or_else(|| {
            Error::Usage(format!(
                "the {which} inventory has no host in group [{group}]"
            ))
        })
}

fn string_var(inv: &Inventory, host: &str, key: &str) -> Option<String> {
    inv.vars_for(host)
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .filter(|s| !s.trim().is_empty())
}

fn required_var(inv: &Inventory, host: &str, key: &str, which: &str) -> Result<String> {
    string_var(inv, host, key).ok_or_else(|| {
        Error::Usage(format!(
            "the {which} cluster's settings have no {key} (for {host}); set it in \
             group_vars/all/settings.yml"
        ))
    })
}

/// The old host of `group` and where it goes.
fn hosts_of(
    group: &str,
    old: &Inventory,
    new: &Inventory,
    map: &BTreeMap<String, String>,
) -> Result<(String, String)> {
    let from = first_of(old, group, "old")?;
    let to = match map.get(&from) {
        Some(t) => t.clone(),
        None => first_of(new, group, "new")?,
    };
    Ok((from, to))
}

/// Every data set, in the order they are moved.
pub fn plan(
    old: &Inventory,
    new: &Inventory,
    map: &BTreeMap<String, String>,
) -> Result<Vec<DataSet>> {
    let mut sets = Vec::new();
    let (from, to) = hosts_of("nfs-server", old, new, map)?;
    sets.push(DataSet {
        name: "nfs".into(),
        from_path: required_var(old, &from, "nfs_export_path", "old")?,
        to_path: required_var(new, &to, "nfs_export_path", "new")?,
        from_host: from.clone(),
        to_host: to.clone(),
    });
    if let Some(p) = string_var(old, &from, "minio_data_path") {
        sets.push(DataSet {
            name: "minio".into(),
            from_path: p,
            to_path: required_var(new, &to, "minio_data_path", "new")?,
            from_host: from,
            to_host: to,
        });
    }
    let (from, to) = hosts_of("kube-master", old, new, map)?;
    sets.push(DataSet {
        name: "etc".into(),
        from_host: from.clone(),
        from_path: "/etc/kamonohashi".into(),
        to_host: to,
        to_path: "/etc/kamonohashi".into(),
    });
    let extra = old
        .vars_for(&from)
        .get("migrate_paths")
        .cloned()
        .unwrap_or(Value::Null);
    let items = match extra {
        Value::Null => Vec::new(),
        Value::Array(a) => a,
        other => {
            return Err(Error::Usage(format!(
                "migrate_paths must be a list of paths or of {{path, group, to, name}}, not {other}"
            )));
        }
    };
    for (i, item) in items.iter().enumerate() {
        let (path, group, dest, name) = match item {
            Value::String(p) => (p.clone(), "kube-master".to_owned(), p.clone(), None),
            Value::Object(m) => {
                let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
                let Some(path) = s("path") else {
                    return Err(Error::Usage(format!("migrate_paths[{i}] has no path")));
                };
                let dest = s("to").unwrap_or_else(|| path.clone());
                (
                    path,
                    s("group").unwrap_or_else(|| "kube-master".into()),
                    dest,
                    s("name"),
                )
            }
            other => {
                return Err(Error::Usage(format!(
                    "migrate_paths[{i}] must be a path or a mapping, not {other}"
                )));
            }
        };
        let (from, to) = hosts_of(&group, old, new, map)?;
        let name = name.unwrap_or_else(|| format!("path{}", i + 1));
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::Usage(format!(
                "migrate_paths[{i}]: the name {name:?} may hold only letters, digits, - and _"
            )));
        }
        sets.push(DataSet {
            name,
            from_host: from,
            from_path: path,
            to_host: to,
            to_path: dest,
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in &sets {
        if !seen.insert(s.name.clone()) {
            return Err(Error::Usage(format!("two data sets are named {}", s.name)));
        }
    }
    let mut targets = std::collections::BTreeSet::new();
    for s in &sets {
        if !targets.insert((s.to_host.clone(), s.to_path.clone())) {
            return Err(Error::Usage(format!(
                "two data sets go to {}:{}",
                s.to_host, s.to_path
            )));
        }
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(text: &str, settings: &str) -> (tempfile::TempDir, Inventory) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("hosts.ini"), text).unwrap();
        std::fs::create_dir_all(d.path().join("group_vars/all")).unwrap();
        std::fs::write(d.path().join("group_vars/all/settings.yml"), settings).unwrap();
        let inv = Inventory::load(&[d.path().join("hosts.ini")]).unwrap();
        (d, inv)
    }

    const OLD: &str = "[kube-master]\na1\n[nfs-server]\na2\n[kube-node]\na1\na2\na3\n";
    const NEW: &str = "[kube-master]\nb1\n[nfs-server]\nb2\n[kube-node]\nb1\nb2\nb3\n";
    const SETTINGS: &str = "nfs_export_path: /srv/nfs\nminio_data_path: /srv/minio\n";

    #[test]
    fn roles_match_by_group_and_paths_come_from_each_clusters_settings() {
        let (_a, old) = inv(
            OLD,
            &format!(
                "{SETTINGS}migrate_paths:\n  - /opt/extra\n  - {{path: /data/x, group: kube-node, to: /data/y, name: scratch}}\n"
            ),
        );
        let (_b, new) = inv(
            NEW,
            "nfs_export_path: /export/nfs\nminio_data_path: /export/minio\n",
        );
        let sets = plan(&old, &new, &BTreeMap::new()).unwrap();
        let got: Vec<_> = sets
            .iter()
            .map(|s| {
                format!(
                    "{} {}:{} -> {}:{}",
                    s.name, s.from_host, s.from_path, s.to_host, s.to_path
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                "nfs a2:/srv/nfs -> b2:/export/nfs",
                "minio a2:/srv/minio -> b2:/export/minio",
                "etc a1:/etc/kamonohashi -> b1:/etc/kamonohashi",
                "path1 a1:/opt/extra -> b1:/opt/extra",
                "scratch a1:/data/x -> b1:/data/y",
            ]
        );
    }

    #[test]
    fn map_overrides_the_group_match_and_is_checked() {
        let (_a, old) = inv(OLD, SETTINGS);
        let (_b, new) = inv(NEW, SETTINGS);
        let map = parse_map(&["a2=b3".into()], &old, &new).unwrap();
        let sets = plan(&old, &new, &map).unwrap();
        assert_eq!(sets[0].to_host, "b3");
        assert_eq!(sets[2].to_host, "b1");
        for bad in ["a2", "zz=b1", "a1=zz"] {
            assert!(parse_map(&[bad.into()], &old, &new).is_err(), "{bad}");
        }
        assert!(parse_map(&["a1=b1".into(), "a1=b2".into()], &old, &new).is_err());
    }

    #[test]
    fn a_missing_role_or_key_is_named() {
        let (_a, old) = inv(OLD, SETTINGS);
        let (_b, new) = inv("[kube-master]\nb1\n", SETTINGS);
        let e = plan(&old, &new, &BTreeMap::new()).unwrap_err().to_string();
        assert!(
            e.contains("new inventory has no host in group [nfs-server]"),
            "{e}"
        );
        let (_c, new) = inv(NEW, "minio_data_path: /m\n");
        let e = plan(&old, &new, &BTreeMap::new()).unwrap_err().to_string();
        assert!(
            e.contains("new cluster's settings have no nfs_export_path"),
            "{e}"
        );
        let (_d, old2) = inv(OLD, &format!("{SETTINGS}migrate_paths: 7\n"));
        assert!(plan(&old2, &new, &BTreeMap::new()).is_err());
    }
}
