//! Ansible inventories (placeholder until the inventory module lands).
use crate::error::Result;
use std::path::PathBuf;
pub type Vars = indexmap::IndexMap<String, serde_json::Value>;
#[derive(Debug, Clone, Default)]
pub struct Inventory;
impl Inventory {
    pub fn load(_sources: &[PathBuf]) -> Result<Inventory> {
        Ok(Inventory)
    }
    pub fn select_limited(&self, _p: &str, _l: &[String]) -> Result<Vec<String>> {
        Ok(vec![])
    }
    #[must_use]
    pub fn vars_for(&self, _h: &str) -> Vars {
        Vars::default()
    }
    #[must_use]
    pub fn group_names(&self, _h: &str) -> Vec<String> {
        vec![]
    }
    pub fn graph(&self, _r: &str) -> Result<String> {
        Ok(String::new())
    }
}
