//! A YAML document as a tree whose every node, key or value, keeps its line and column.
//!
//! Why our own tree over `saphyr-parser`'s event stream rather than serde: the loader needs the
//! position of every key (to put a caret under `whn:`) and of every value (to point at
//! `loop: 5`), and the exact scalar text and style (Ansible reads YAML 1.1, so `become: yes` is
//! a boolean where a keyword expects one, while `mode: 0755` must not become decimal 755).
//! Building the tree from events lets us enforce limits while it grows: nesting deeper than
//! [`MAX_DEPTH`] and alias expansion beyond [`MAX_NODES`] (the "billion laughs") are refused
//! before they cost memory. Merge keys (`<<: *defaults`) are applied here, explicit keys winning.
//!
//! A `!vault` scalar is decrypted here, with the run's vault passwords (see
//! [`crate::vault::keyring`]), and becomes a quoted string: everything after this sees the
//! plaintext, and the value is remembered as a secret.
//!
//! Not supported: several documents in one file, tags other than YAML core tags and `!vault`
//! (`!unsafe`), complex (non-scalar) mapping keys.

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError};
use serde_json::Value;

/// Deepest nesting accepted, counting nodes brought in by aliases.
pub const MAX_DEPTH: usize = 128;
/// Most nodes a document may hold once aliases are expanded.
pub const MAX_NODES: usize = 200_000;

/// A node with its 1-based position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub line: usize,
    pub col: usize,
    /// Length in characters of the node's text on its first line (0 = unknown).
    pub len: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar with its text, and whether it was written plain (unquoted, not a block).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A document that could not be read as YAML, with the place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl YamlError {
    fn at(line: usize, col: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            col,
            message: message.into(),
            hint: None,
        }
    }
}

impl From<ScanError> for YamlError {
    fn from(e: ScanError) -> Self {
        Self::at(
            e.marker().line().max(1),
            e.marker().col() + 1,
            format!("YAML syntax error: {}", e.info()),
        )
    }
}

impl Node {
    /// The scalar's text, if this is a scalar.
    #[must_use]
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    #[must_use]
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, plain: true } if is_null(text))
    }

    /// Short description of the node's type, for messages.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
            Kind::Scalar { .. } if self.is_null() => "null",
            Kind::Scalar { .. } => match self.to_json(false) {
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                _ => "a string",
            },
        }
    }

    /// The node as JSON. Plain scalars resolve with the YAML 1.2 core schema (null, true/false,
    /// integers, floats); with `yaml11_bools`, `yes/no/on/off` (any case) are booleans too, as
    /// Ansible's YAML 1.1 reader makes them. Plain numbers with a leading zero (`0755`) stay
    /// strings: YAML 1.1 reads them as octal, 1.2 as decimal, and modules parse modes as text.
    #[must_use]
    pub fn to_json(&self, yaml11_bools: bool) -> Value {
        match &self.kind {
            Kind::Scalar { text, plain: false } => Value::String(text.clone()),
            Kind::Scalar { text, plain: true } => resolve_plain(text, yaml11_bools),
            Kind::Seq(items) => {
                Value::Array(items.iter().map(|n| n.to_json(yaml11_bools)).collect())
            }
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text(), v.to_json(yaml11_bools)))
                    .collect(),
            ),
        }
    }

    /// A mapping key as text (keys are scalars; see [`parse`]).
    #[must_use]
    pub fn key_text(&self) -> String {
        match &self.kind {
            Kind::Scalar { text, .. } => text.clone(),
            _ => String::new(),
        }
    }
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// A YAML 1.1 boolean word, any case.
#[must_use]
pub fn yaml11_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" => Some(true),
        "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

fn resolve_plain(text: &str, yaml11_bools: bool) -> Value {
    if is_null(text) {
        return Value::Null;
    }
    match text {
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if yaml11_bools && let Some(b) = yaml11_bool(text) {
        return Value::Bool(b);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let leading_zero = digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0.");
    if !leading_zero
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = text.parse::<i64>()
    {
        return Value::from(i);
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Value::from(i);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Value::from(i);
    }
    if !leading_zero
        && digits
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

/// A container being built.
enum Open {
    Seq(Node, Vec<Node>, usize),
    Map(Node, Vec<(Node, Node)>, Option<Node>, usize),
}

/// A finished node with its size and height, as the limits count them.
struct Anchored {
    node: Node,
    size: usize,
    height: usize,
}

/// Parses one YAML document into a tree. An empty document is `None`.
pub fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Open> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, Anchored> = std::collections::HashMap::new();
    // Per open container: its node count and height so far, to size anchored nodes.
    let mut sizes: Vec<(usize, usize)> = Vec::new();
    let mut total = 0usize;
    let mut root: Option<Node> = None;
    let mut docs = 0usize;
    while let Some(ev) = parser.next_event() {
        let (ev, span) = ev?;
        let is_map = matches!(ev, Event::MappingStart(..));
        let line = span.start.line().max(1);
        let col = span.start.col() + 1;
        let depth = stack.len();
        let mut finished: Option<(Node, usize, usize, usize)> = None; // node, anchor, size, height
        match ev {
            Event::DocumentStart(_) => {
                docs += 1;
                if docs > 1 {
                    return Err(YamlError::at(
                        line,
                        col,
                        "a file may hold only one YAML document",
                    ));
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                let (value, plain) = scalar_text(value, style, tag.as_ref(), line, col)?;
                let len = span.end.index().saturating_sub(span.start.index());
                let len = if span.end.line() == span.start.line() {
                    len
                } else {
                    0
                };
                let node = Node {
                    kind: Kind::Scalar { text: value, plain },
                    line,
                    col,
                    len,
                };
                finished = Some((node, anchor, 1, 0));
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                if let Some(tag) = &tag {
                    check_tag(tag, line, col)?;
                }
                if depth >= MAX_DEPTH {
                    return Err(YamlError::at(
                        line,
                        col,
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                    ));
                }
                let node = Node {
                    kind: Kind::Seq(Vec::new()),
                    line,
                    col,
                    len: 1,
                };
                stack.push(if is_map {
                    Open::Map(node, Vec::new(), None, anchor)
                } else {
                    Open::Seq(node, Vec::new(), anchor)
                });
                sizes.push((1, 0));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let open = stack
                    .pop()
                    .ok_or_else(|| YamlError::at(line, col, "unbalanced YAML"))?;
                let (size, height) = sizes.pop().unwrap_or((1, 0));
                let (node, anchor) = match open {
                    Open::Seq(mut n, items, a) => {
                        n.kind = Kind::Seq(items);
                        (n, a)
                    }
                    Open::Map(mut n, entries, _, a) => {
                        n.kind = Kind::Map(apply_merge(entries)?);
                        (n, a)
                    }
                };
                finished = Some((node, anchor, size, height + 1));
            }
            Event::Alias(id) => {
                let a = anchors
                    .get(&id)
                    .ok_or_else(|| YamlError::at(line, col, "alias to an unknown anchor"))?;
                total += a.size;
                if total > MAX_NODES {
                    return Err(YamlError::at(
                        line,
                        col,
                        format!(
                            "aliases expand this document beyond {MAX_NODES} nodes (an alias bomb?)"
                        ),
                    ));
                }
                if depth + a.height > MAX_DEPTH {
                    return Err(YamlError::at(
                        line,
                        col,
                        format!("nesting deeper than {MAX_DEPTH} levels once aliases are expanded"),
                    ));
                }
                finished = Some((a.node.clone(), 0, a.size, a.height));
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        if let Some((node, anchor, size, height)) = finished {
            total += usize::from(size == 1 && height == 0);
            if total > MAX_NODES {
                return Err(YamlError::at(
                    line,
                    col,
                    format!("document larger than {MAX_NODES} nodes"),
                ));
            }
            if let Some(top) = sizes.last_mut() {
                top.0 += size;
                top.1 = top.1.max(height);
            }
            if anchor != 0 {
                anchors.insert(
                    anchor,
                    Anchored {
                        node: node.clone(),
                        size,
                        height,
                    },
                );
            }
            match stack.last_mut() {
                None => root = Some(node),
                Some(Open::Seq(_, items, _)) => items.push(node),
                Some(Open::Map(_, entries, pending, _)) => match pending.take() {
                    None => {
                        if !matches!(node.kind, Kind::Scalar { .. }) {
                            return Err(YamlError::at(
                                node.line,
                                node.col,
                                "mapping keys must be plain values, not lists or mappings",
                            ));
                        }
                        *pending = Some(node);
                    }
                    Some(key) => entries.push((key, node)),
                },
            }
        }
    }
    Ok(root)
}

/// A scalar's text (decrypted when tagged `!vault`) and whether it resolves as a plain scalar.
fn scalar_text(
    value: std::borrow::Cow<'_, str>,
    style: ScalarStyle,
    tag: Option<&std::borrow::Cow<'_, saphyr_parser::Tag>>,
    line: usize,
    col: usize,
) -> Result<(String, bool), YamlError> {
    let vaulted = tag.is_some_and(|t| is_vault_tag(t));
    if let Some(tag) = tag
        && !vaulted
    {
        check_tag(tag, line, col)?;
    }
    if vaulted {
        let plain = crate::vault::keyring::reveal(&value).map_err(|e| YamlError {
            hint: Some(crate::vault::keyring::hint(&e).to_owned()),
            ..YamlError::at(line, col, format!("`!vault` value: {e}"))
        })?;
        return Ok((plain, false));
    }
    let forced_str = tag.is_some_and(|t| t.suffix == "str");
    Ok((
        value.into_owned(),
        style == ScalarStyle::Plain && !forced_str,
    ))
}

/// Ansible's `!vault` local tag.
fn is_vault_tag(tag: &saphyr_parser::Tag) -> bool {
    tag.handle == "!" && tag.suffix == "vault"
}

fn check_tag(tag: &saphyr_parser::Tag, line: usize, col: usize) -> Result<(), YamlError> {
    if tag.is_yaml_core_schema() {
        Ok(())
    } else {
        Err(YamlError::at(
            line,
            col,
            format!("YAML tag `{}{}` is not supported", tag.handle, tag.suffix),
        ))
    }
}

/// Applies `<<` merge keys: entries of the merged mapping(s) that the mapping does not set
/// itself are added, the first merged mapping winning, as YAML 1.1 specifies.
fn apply_merge(entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, YamlError> {
    if !entries
        .iter()
        .any(|(k, _)| matches!(&k.kind, Kind::Scalar { text, plain: true } if text == "<<"))
    {
        return Ok(entries);
    }
    let mut own = Vec::new();
    let mut merged: Vec<(Node, Node)> = Vec::new();
    for (k, v) in entries {
        if !matches!(&k.kind, Kind::Scalar { text, plain: true } if text == "<<") {
            own.push((k, v));
            continue;
        }
        let sources = match v.kind {
            Kind::Map(m) => vec![m],
            Kind::Seq(items) => {
                let mut maps = Vec::new();
                for item in items {
                    match item.kind {
                        Kind::Map(m) => maps.push(m),
                        _ => {
                            return Err(YamlError::at(
                                item.line,
                                item.col,
                                "a merge key `<<` takes a mapping or a list of mappings",
                            ));
                        }
                    }
                }
                maps
            }
            Kind::Scalar { .. } => {
                return Err(YamlError::at(
                    v.line,
                    v.col,
                    "a merge key `<<` takes a mapping or a list of mappings",
                ));
            }
        };
        for m in sources {
            for (mk, mv) in m {
                if !merged.iter().any(|(e, _)| e.key_text() == mk.key_text()) {
                    merged.push((mk, mv));
                }
            }
        }
    }
    for (mk, mv) in merged {
        if !own.iter().any(|(e, _)| e.key_text() == mk.key_text()) {
            own.push((mk, mv));
        }
    }
    Ok(own)
}
