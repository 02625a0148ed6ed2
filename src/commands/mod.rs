//! One file per subcommand: load the inputs, do the work, report, pick the exit code.

pub mod check;
pub mod configure;
pub mod copy;
pub mod db;
pub mod docs;
pub mod exec;
pub mod history;
pub mod inventory;
pub mod lab;
pub mod lifecycle;
pub mod migrate;
pub mod plan;
pub mod resume;
pub mod rollback;
pub mod run;
pub mod versions;

use std::path::PathBuf;

use crate::cli::InventoryArgs;
use crate::error::{Error, Result};
use crate::inventory::Inventory;
use crate::transport::target::SshConfigFile;

/// Environment variable naming inventories when `-i` is not given.
pub const INVENTORY_ENV: &str = "KAMO_INVENTORY";

/// The inventory sources: `-i` values, else `./inventory/hosts.ini` if it exists, else
/// `$KAMO_INVENTORY` (comma-separated).
pub fn inventory_sources(args: &InventoryArgs) -> Result<Vec<PathBuf>> {
    if !args.inventory.is_empty() {
        return Ok(args.inventory.clone());
    }
    let default = PathBuf::from("inventory/hosts.ini");
    if default.exists() {
        return Ok(vec![default]);
    }
    match std::env::var(INVENTORY_ENV) {
        Ok(v) if !v.trim().is_empty() => Ok(v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect()),
        _ => Err(Error::Usage(format!(
            "no inventory: pass -i FILE, create ./inventory/hosts.ini, or set {INVENTORY_ENV}"
        ))),
    }
}

/// Loads the inventory and selects the hosts matching `pattern` narrowed by `--limit`.
pub fn load_and_select(args: &InventoryArgs, pattern: &str) -> Result<(Inventory, Vec<String>)> {
    let sources = inventory_sources(args)?;
    let inventory = Inventory::load(&sources)?;
    let hosts = inventory.select_limited(pattern, &args.limit)?;
    if hosts.is_empty() {
        tracing::warn!("no hosts matched {pattern:?}; nothing to do");
    }
    Ok((inventory, hosts))
}

/// The ssh config to read: `--ssh-config FILE`, `none`, or `~/.ssh/config`.
pub fn ssh_config(flag: Option<&PathBuf>) -> Result<SshConfigFile> {
    let path = match flag {
        Some(p) if p.as_os_str() == "none" => None,
        Some(p) => Some(p.clone()),
        None => std::env::home_dir().map(|h| h.join(".ssh").join("config")),
    };
    SshConfigFile::load(path.as_deref())
}
