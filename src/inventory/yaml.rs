//! The YAML (and JSON) inventory format, with the semantics of Ansible's `yaml` plugin.
//!
//! Purpose: read `all: {hosts: {...}, vars: {...}, children: {...}}` trees (top-level keys other
//! than `all` are groups too) into the [`Inventory`] model, with host ranges and `host:port`
//! keys as in INI. Also converts YAML values to `serde_json::Value` for `vars.rs`.
//!
//! Key decision: serde_yaml gives no positions for values, so structural errors and host
//! origins are located by searching the text for the key (best effort, starting from the
//! enclosing group's line); syntax errors use serde_yaml's own location. Where Ansible only
//! warns and skips (an unknown key under a group such as `host:`, a group or host whose value
//! is not a mapping) kamo stops with a located error and a hint, because a silently skipped
//! host is worse than a failed start.
//!
//! `!vault` values are decrypted as the file is loaded (see [`crate::vault::keyring`]), in
//! inventories and in `group_vars`/`host_vars` files alike.
//!
//! Not supported: YAML 1.1 booleans (`yes`/`no`/`on`/`off` stay strings with serde_yaml's
//! YAML 1.2 rules; write `true`/`false`), other Ansible tags such as `!unsafe` (the tag is
//! dropped, the value kept), inventory plugin configuration files (`plugin: ...`).

use std::path::Path;

use serde_json::Value;
use serde_yaml::Value as Y;

use super::{Inventory, Origin};
use crate::error::{Error, Located, Result};

const SECTIONS: [&str; 3] = ["hosts", "vars", "children"];

/// Parses YAML `text` into `inv`.
pub(super) fn parse(inv: &mut Inventory, text: &str, file: &Path) -> Result<()> {
    let data = load_yaml(text, file)?;
    let loc = |line: usize, msg: String| Located::new(file, line, msg).source(text);
    let map = match data {
        Y::Mapping(m) if !m.is_empty() => m,
        Y::Null => {
            return Err(Error::parse(Located::new(file, 0, "empty YAML inventory")));
        }
        Y::Mapping(_) => return Err(Error::parse(Located::new(file, 0, "empty YAML inventory"))),
        other => {
            return Err(Error::parse(
                loc(
                    1,
                    format!(
                        "a YAML inventory must be a mapping of groups, found {}",
                        kind(&other)
                    ),
                )
                .hint("start with `all:` and put hosts under `all: {hosts: ...}`"),
            ));
        }
    };
    if map.contains_key("plugin") {
        return Err(Error::parse(
            loc(
                find_key_line(text, "plugin", 1),
                "inventory plugin configuration files are not supported".into(),
            )
            .hint("kamo reads static INI and YAML inventories only"),
        ));
    }
    let mut p = Parser { inv, text, file };
    for (k, v) in &map {
        let name = key_string(k);
        p.group(&name, v, 1, 0)?;
    }
    Ok(())
}

struct Parser<'a> {
    inv: &'a mut Inventory,
    text: &'a str,
    file: &'a Path,
}

impl Parser<'_> {
    fn err(&self, line: usize, msg: String) -> Located {
        Located::new(self.file, line, msg).source(self.text)
    }

    /// One group; `from` is the line to start searching for its key.
    #[allow(clippy::too_many_lines)]
    fn group(&mut self, name: &str, data: &Y, from: usize, depth: usize) -> Result<()> {
        let line = find_key_line(self.text, name, from);
        if depth > 256 {
            return Err(Error::parse(
                self.err(line, format!("groups nested too deeply at `{name}`")),
            ));
        }
        self.inv.ensure_group(name);
        let map = match data {
            Y::Null => return Ok(()),
            Y::Mapping(m) => m,
            other => {
                return Err(Error::parse(
                    self.err(
                        line,
                        format!("group `{name}` must be a mapping, found {}", kind(other)),
                    )
                    .hint("a group is a mapping with `hosts`, `vars` and `children` keys"),
                ));
            }
        };
        for (k, v) in map {
            let key = key_string(k);
            let kline = find_key_line(self.text, &key, line);
            if !SECTIONS.contains(&key.as_str()) {
                let hint = match closest(&key) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "a group may only have `hosts`, `vars` and `children` keys".to_owned(),
                };
                return Err(Error::parse(
                    self.err(kline, format!("unknown key `{key}` in group `{name}`"))
                        .hint(hint),
                ));
            }
            // A plain string is allowed and means one entry with no value.
            let section: serde_yaml::Mapping = match v {
                Y::Null => continue,
                Y::Mapping(m) => m.clone(),
                Y::String(s) => {
                    let mut m = serde_yaml::Mapping::new();
                    m.insert(Y::String(s.clone()), Y::Null);
                    m
                }
                other => {
                    let hint = match key.as_str() {
                        "hosts" => {
                            "write hosts as keys: `hosts: {node01: , node02: }` or one `node01:` per line"
                        }
                        "children" => "write child groups as keys: `children: {web: , db: }`",
                        _ => "write variables as `name: value` pairs",
                    };
                    return Err(Error::parse(
                        self.err(
                            kline,
                            format!(
                                "`{key}` of group `{name}` must be a mapping, found {}",
                                kind(other)
                            ),
                        )
                        .hint(hint),
                    ));
                }
            };
            match key.as_str() {
                "vars" => {
                    for (vk, vv) in &section {
                        self.inv.set_group_var(name, &key_string(vk), to_json(vv));
                    }
                }
                "children" => {
                    for (ck, cv) in &section {
                        let child = key_string(ck);
                        if child == super::ALL {
                            return Err(Error::parse(
                                self.err(
                                    find_key_line(self.text, &child, kline),
                                    format!("group `all` is its own ancestor (child of `{name}`)"),
                                )
                                .hint("`all` contains every group and cannot be a child"),
                            ));
                        }
                        self.group(&child, cv, kline, depth + 1)?;
                        let origin = Origin {
                            file: self.file.to_owned(),
                            line: find_key_line(self.text, &child, kline),
                        };
                        self.inv.add_child(name, &child, &origin);
                    }
                }
                _ => {
                    for (hk, hv) in &section {
                        let pattern = key_string(hk);
                        let hline = find_key_line(self.text, &pattern, kline);
                        let (hosts, port) = super::ini::expand_host_pattern(&pattern)
                            .map_err(|m| Error::parse(self.err(hline, m)))?;
                        let vars = match hv {
                            Y::Null => serde_yaml::Mapping::new(),
                            Y::Mapping(m) => m.clone(),
                            other => {
                                return Err(Error::parse(
                                    self.err(hline, format!("host `{pattern}` must map to its variables, found {}", kind(other)))
                                        .hint(format!("write `{pattern}:` alone, or `{pattern}: {{ansible_host: ...}}`")),
                                ));
                            }
                        };
                        let size = pattern.len()
                            + serde_json::to_string(&to_json(hv)).map_or(0, |s| s.len());
                        self.inv
                            .charge(hosts.len(), size)
                            .map_err(|m| Error::parse(self.err(hline, m)))?;
                        let origin = Origin {
                            file: self.file.to_owned(),
                            line: hline,
                        };
                        for h in &hosts {
                            self.inv.add_host(h, name, &origin);
                            if let Some(p) = port {
                                self.inv.set_host_var(h, "ansible_port", Value::from(p));
                            }
                            for (vk, vv) in &vars {
                                self.inv.set_host_var(h, &key_string(vk), to_json(vv));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Parses YAML with merge keys applied; syntax errors are located.
pub(super) fn load_yaml(text: &str, file: &Path) -> Result<Y> {
    // JSON that YAML rejects (tab indentation) is still valid in a `.json` file.
    let is_json = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json
        && let Ok(v) = serde_json::from_str::<Value>(text)
        && let Ok(y) = serde_yaml::to_value(v)
    {
        return Ok(y);
    }
    let mut value: Y = serde_yaml::from_str(text).map_err(|e| {
        let (mut line, mut col) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        // An error at the end of the text (or after a lone `\r`, which YAML counts as a line
        // break and `str::lines` does not) points past the last line: show the last line.
        let lines = text.lines().count().max(1);
        if line > lines {
            line = lines;
            col = text.lines().last().map_or(1, |l| l.chars().count() + 1);
        }
        let msg = e.to_string();
        // serde_yaml appends " at line X column Y"; the location is shown separately.
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
        let msg = match crate::input::yaml_limit_hint(&e) {
            Some(why) => format!("{msg}: {why}"),
            None => msg,
        };
        Error::parse(
            Located::new(file, line, format!("invalid YAML: {msg}"))
                .column(col, 1)
                .source(text),
        )
    })?;
    decrypt_vault_tags(&mut value, text, file)?;
    value.apply_merge().map_err(|e| {
        Error::parse(Located::new(
            file,
            0,
            format!("invalid YAML merge key: {e}"),
        ))
    })?;
    Ok(value)
}

/// The YAML of a decrypted vault file: errors give the line only, never the (secret) text.
pub(super) fn load_decrypted_yaml(plain: &str, file: &Path) -> Result<Y> {
    let mut value: Y = serde_yaml::from_str(plain).map_err(|e| {
        let line = e.location().map_or(0, |l| l.line());
        Error::parse(Located::new(
            file,
            0,
            format!("the decrypted vault is not valid YAML (at its line {line})"),
        ))
    })?;
    value.apply_merge().map_err(|_| {
        Error::parse(Located::new(
            file,
            0,
            "the decrypted vault has an invalid YAML merge key",
        ))
    })?;
    Ok(value)
}

/// Replaces every `!vault` value with its plaintext, remembered as a secret.
fn decrypt_vault_tags(v: &mut Y, text: &str, file: &Path) -> Result<()> {
    match v {
        Y::Tagged(t) if t.tag == "vault" => {
            let Y::String(envelope) = &t.value else {
                return Err(Error::parse(
                    Located::new(file, vault_line(text, ""), "`!vault` must tag a string")
                        .source(text),
                ));
            };
            let plain = crate::vault::keyring::reveal(envelope).map_err(|e| {
                Error::parse(
                    Located::new(
                        file,
                        vault_line(text, envelope),
                        format!("`!vault` value: {e}"),
                    )
                    .source(text)
                    .hint(crate::vault::keyring::hint(&e)),
                )
            })?;
            *v = Y::String(plain);
        }
        Y::Tagged(t) => decrypt_vault_tags(&mut t.value, text, file)?,
        Y::Sequence(items) => {
            for item in items {
                decrypt_vault_tags(item, text, file)?;
            }
        }
        Y::Mapping(m) => {
            for item in m.values_mut() {
                decrypt_vault_tags(item, text, file)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Best-effort line of the `!vault` tag whose envelope is `envelope`: the line before the
/// envelope's first data line, else the first `!vault` in the file.
fn vault_line(text: &str, envelope: &str) -> usize {
    let first_data = envelope.lines().nth(1).map(str::trim).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if !first_data.is_empty()
        && let Some(i) = lines.iter().position(|l| l.trim() == first_data)
    {
        // The header line sits between the tag and the data, in a `!vault |` block.
        return (0..i)
            .rev()
            .find(|&j| lines[j].contains("!vault"))
            .map_or(i, |j| j + 1);
    }
    lines
        .iter()
        .position(|l| l.contains("!vault"))
        .map_or(0, |i| i + 1)
}

/// A YAML value as JSON: tags are dropped, non-string keys become strings, non-finite floats
/// become strings.
pub(super) fn to_json(v: &Y) -> Value {
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map_or_else(|| Value::String(n.to_string()), Value::Number)
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(s) => Value::Array(s.iter().map(to_json).collect()),
        Y::Mapping(m) => {
            Value::Object(m.iter().map(|(k, v)| (key_string(k), to_json(v))).collect())
        }
        Y::Tagged(t) => to_json(&t.value),
    }
}

/// A mapping key as a string (`1` -> "1", `true` -> "true", `~` -> "").
pub(super) fn key_string(k: &Y) -> String {
    match k {
        Y::String(s) => s.clone(),
        Y::Null => String::new(),
        Y::Bool(b) => b.to_string(),
        Y::Number(n) => n.to_string(),
        Y::Tagged(t) => key_string(&t.value),
        other => serde_json::to_string(&to_json(other)).unwrap_or_default(),
    }
}

pub(super) fn kind(v: &Y) -> &'static str {
    match v {
        Y::Null => "nothing",
        Y::Bool(_) => "a boolean",
        Y::Number(_) => "a number",
        Y::String(_) => "a string",
        Y::Sequence(_) => "a list",
        Y::Mapping(_) => "a mapping",
        Y::Tagged(_) => "a tagged value",
    }
}

/// The closest valid section name for a misspelt key.
fn closest(key: &str) -> Option<&'static str> {
    let k = key.to_ascii_lowercase();
    SECTIONS
        .iter()
        .map(|s| (edit_distance(&k, s), *s))
        .filter(|(d, s)| *d <= (s.len() / 2).max(2))
        .min()
        .map(|(_, s)| s)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Best-effort 1-based line of `key:` at or after line `from` (falls back to anywhere, then 0).
pub(super) fn find_key_line(text: &str, key: &str, from: usize) -> usize {
    // A null key (`~:`) is read as the empty string.
    let key = if key.is_empty() { "~" } else { key };
    let candidates = [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ];
    let is_key_at = |line: &str| {
        candidates.iter().any(|c| {
            line.match_indices(c.as_str()).any(|(i, _)| {
                let before = line[..i].chars().last();
                let after = line[i + c.len()..].chars().next();
                before.is_none_or(|b| b.is_whitespace() || matches!(b, '{' | ',' | '-' | '?'))
                    && after.is_none_or(|a| a.is_whitespace() || a == ',' || a == '}')
            })
        })
    };
    let lines: Vec<&str> = text.lines().collect();
    let start = from.saturating_sub(1).min(lines.len());
    lines[start..]
        .iter()
        .position(|l| is_key_at(l))
        .map(|i| start + i + 1)
        .or_else(|| lines.iter().position(|l| is_key_at(l)).map(|i| i + 1))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lines_are_found_after_the_group() {
        let text =
            "all:\n  hosts:\n    a:\n  children:\n    web:\n      hosts:\n        b: {x: 1}\n";
        assert_eq!(find_key_line(text, "hosts", 1), 2);
        assert_eq!(find_key_line(text, "hosts", 5), 6);
        assert_eq!(find_key_line(text, "b", 6), 7);
        assert_eq!(find_key_line(text, "x", 1), 7);
        assert_eq!(find_key_line(text, "nope", 1), 0);
    }

    #[test]
    fn suggestions() {
        assert_eq!(closest("host"), Some("hosts"));
        assert_eq!(closest("var"), Some("vars"));
        assert_eq!(closest("childs"), Some("children"));
        assert_eq!(closest("zzzzzz"), None);
    }

    #[test]
    fn yaml_to_json() {
        let y: Y = serde_yaml::from_str("{1: a, true: [1, 2.5, null], s: !vault x}").unwrap();
        assert_eq!(
            to_json(&y),
            serde_json::json!({"1": "a", "true": [1, 2.5, null], "s": "x"})
        );
    }
}
