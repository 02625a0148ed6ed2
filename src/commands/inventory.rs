//! `kamo inventory list|graph`: what the inventory says, resolved as a run would resolve it.

use serde_json::{Value, json};

use crate::cli::{InventoryGraphArgs, InventoryListArgs, OutputFormat};
use crate::error::{ExitCode, Result};
use crate::inventory::Inventory;
use crate::secret::{REDACTED, is_secret_var};
use crate::transport::Target;
use crate::transport::target::Defaults;
use crate::ui;

pub fn list(args: &InventoryListArgs) -> Result<ExitCode> {
    let pattern = args.pattern.as_deref().unwrap_or("all");
    let (inventory, hosts) = super::load_and_select(&args.inventory, pattern)?;
    let ssh_config = super::ssh_config(args.ssh_config.as_ref())?;
    let mut rows = Vec::new();
    for name in &hosts {
        let vars = inventory.vars_for(name);
        let groups = inventory.group_names(name);
        let (address, port, user) =
            match Target::resolve(name, &vars, &Defaults::default(), &ssh_config) {
                Ok(t) if t.local => ("(local)".to_owned(), Value::Null, Value::String(t.user)),
                Ok(t) => (t.address, json!(t.port), Value::String(t.user)),
                Err(e) => (format!("(error: {})", e.message), Value::Null, Value::Null),
            };
        let vars: serde_json::Map<String, Value> = vars
            .into_iter()
            .map(|(k, v)| {
                let v = redact(&k, v);
                (k, v)
            })
            .collect();
        rows.push(json!({
            "name": name,
            "address": address,
            "port": port,
            "user": user,
            "groups": groups,
            "vars": vars,
        }));
    }
    // Vault-decrypted values are secrets whatever their variable's name.
    let redactor = crate::journal::redact::Redactor::default();
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|r| redactor.redact_json(&r).unwrap_or(r))
        .collect();
    match args.output {
        OutputFormat::Json => ui::print_json(&Value::Array(rows)),
        OutputFormat::Text => ui::print_host_table(&rows),
    }
    Ok(ExitCode::Ok)
}

/// Replaces secret values (by variable name), also inside nested mappings.
fn redact(key: &str, value: Value) -> Value {
    if is_secret_var(key) && !value.is_null() {
        return Value::String(REDACTED.to_owned());
    }
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = redact(&k, v);
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| redact("", v)).collect()),
        other => other,
    }
}

pub fn graph(args: &InventoryGraphArgs) -> Result<ExitCode> {
    let sources = super::inventory_sources(&args.inventory)?;
    let inventory = Inventory::load(&sources)?;
    let text = inventory.graph(args.group.as_deref().unwrap_or("all"))?;
    ui::print_text(&text);
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_nested_secrets() {
        let v = redact(
            "settings",
            json!({"db_password": "pw", "host": "h", "list": [{"api_token": "t"}]}),
        );
        assert_eq!(
            v,
            json!({"db_password": REDACTED, "host": "h", "list": [{"api_token": REDACTED}]})
        );
        assert_eq!(redact("ansible_password", json!("x")), json!(REDACTED));
    }
}
