//! Ansible inventories (placeholder; filled in by the inventory work).
pub type Vars = indexmap::IndexMap<String, serde_json::Value>;
