//! The INI inventory format, with the semantics of Ansible's `ini` inventory plugin.
//!
//! Purpose: parse `[group]`, `[group:vars]` and `[group:children]` sections into the
//! [`Inventory`] model, expanding host ranges (`node[01:20]`, `gpu-[a:c]`, `[1:10:2]`).
//!
//! Key decision: values are converted like Ansible's `_parse_value`, i.e. Python's
//! `ast.literal_eval` with a fallback to the raw string, because inventories in the wild
//! depend on it (`ansible_port=22` is a number, `gpu_id=01` stays the string `"01"`, `flag=True`
//! is a boolean). That applies to host vars *and* `[g:vars]`. Host lines are split like
//! Python's `shlex.split(line, comments=True)`, so quotes are removed before the value is
//! evaluated and an unquoted `#` starts a comment. A `[g:vars]` line is split at the first
//! `=` only: a trailing ` # comment` disappears when the value is a Python literal
//! (`http_port=8080 # web`) and is kept verbatim otherwise (`user=ubuntu # x` is the string
//! `"ubuntu # x"`), exactly as in Ansible.
//!
//! Differences from Ansible: a `[x:children]` entry naming a group defined nowhere creates it
//! empty (Ansible errors); a descending numeric range (`node[05:01]`) is an error (Ansible
//! silently expands it to nothing); `host:port` with a non-numeric port is an error (Ansible
//! takes the whole text as a host name). Not supported: IPv6 `[addr]:port` host names,
//! Python complex numbers and `...` (kept as strings, as Ansible does).

use std::path::Path;

use serde_json::Value;

use super::{Inventory, Origin, UNGROUPED};
use crate::error::{Error, Located, Result};

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Hosts,
    Vars,
    Children,
}

/// Parses INI `text` into `inv`.
///
/// One pass over the lines as a small state machine (section kind); kept in one function so
/// the state transitions read top to bottom.
#[allow(clippy::too_many_lines)]
pub(super) fn parse(inv: &mut Inventory, text: &str, file: &Path) -> Result<()> {
    let err = |line: usize, msg: String| Located::new(file, line, msg).source(text);
    let mut group = UNGROUPED.to_owned();
    let mut state = State::Hosts;
    // [g:vars] sections for groups not (yet) declared: group -> line.
    let mut pending_vars: Vec<(String, usize)> = Vec::new();
    let mut declared: std::collections::HashSet<String> = inv.groups.keys().cloned().collect();

    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let origin = Origin {
            file: file.to_owned(),
            line: lineno,
        };
        if let Some((name, kind)) = parse_section(line) {
            state = match kind {
                None | Some("hosts") => State::Hosts,
                Some("children") => State::Children,
                Some("vars") => State::Vars,
                Some(other) => {
                    let col = raw.find(':').map_or(0, |i| raw[..i].chars().count() + 2);
                    return Err(Error::parse(
                        err(
                            lineno,
                            format!("section [{name}:{other}] has unknown type `{other}`"),
                        )
                        .column(col, other.chars().count())
                        .hint("a section is `[group]`, `[group:vars]` or `[group:children]`"),
                    ));
                }
            };
            name.clone_into(&mut group);
            if state == State::Vars {
                if !declared.contains(&group) && !pending_vars.iter().any(|(g, _)| *g == group) {
                    pending_vars.push((group.clone(), lineno));
                }
            } else {
                declared.insert(group.clone());
                pending_vars.retain(|(g, _)| *g != group);
            }
            inv.ensure_group(&group);
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            return Err(Error::parse(
                err(lineno, format!("invalid section header `{line}`"))
                    .hint("section names may not contain spaces, `:` (except before vars/children) or `]`"),
            ));
        }
        match state {
            State::Hosts => {
                let (hosts, port, vars) = parse_host_line(line)
                    .map_err(|(msg, col)| err(lineno, msg).column(col_in_raw(raw, line, col), 0))?;
                inv.charge(hosts.len(), line.len())
                    .map_err(|msg| Error::parse(err(lineno, msg)))?;
                for h in &hosts {
                    inv.add_host(h, &group, &origin);
                    if let Some(p) = port {
                        inv.set_host_var(h, "ansible_port", Value::from(p));
                    }
                    for (k, v) in &vars {
                        inv.set_host_var(h, k, v.clone());
                    }
                }
            }
            State::Vars => {
                let Some((k, v)) = line.split_once('=') else {
                    return Err(Error::parse(
                        err(
                            lineno,
                            format!("expected key=value in [{group}:vars], got `{line}`"),
                        )
                        .hint("group variables are written `name=value`"),
                    ));
                };
                inv.set_group_var(&group, k.trim(), parse_value(v.trim()));
            }
            State::Children => {
                let Some(child) = parse_group_name(line) else {
                    return Err(Error::parse(
                        err(
                            lineno,
                            format!("expected a group name in [{group}:children], got `{line}`"),
                        )
                        .hint("list one child group name per line"),
                    ));
                };
                if child == super::ALL {
                    return Err(Error::parse(
                        err(
                            lineno,
                            format!("group `all` is its own ancestor (child of `{group}`)"),
                        )
                        .hint("`all` contains every group and cannot be a child"),
                    ));
                }
                inv.add_child(&group, child, &origin);
                declared.insert(child.to_owned());
                pending_vars.retain(|(g, _)| g != child);
            }
        }
    }
    if let Some((g, line)) = pending_vars.first() {
        return Err(Error::parse(
            err(
                *line,
                format!("section [{g}:vars] is for group `{g}`, which is defined nowhere"),
            )
            .hint(format!(
                "declare the group with a `[{g}]` or `[parent:children]` section"
            )),
        ));
    }
    Ok(())
}

/// Column (1-based) in the raw line of a column (1-based) in the trimmed line.
fn col_in_raw(raw: &str, trimmed: &str, col: usize) -> usize {
    if col == 0 {
        return 0;
    }
    let lead = raw.len() - raw.trim_start().len();
    raw[..lead].chars().count() + col.min(trimmed.chars().count().max(1))
}

/// `[name]`, `[name:kind]`, optionally followed by whitespace and a `#` comment.
fn parse_section(line: &str) -> Option<(&str, Option<&str>)> {
    let rest = line.strip_prefix('[')?;
    let close = rest.find(']')?;
    let inner = &rest[..close];
    let after = rest[close + 1..].trim_start();
    if !(after.is_empty() || after.starts_with('#')) {
        return None;
    }
    let (name, kind) = match inner.split_once(':') {
        Some((n, k)) => (n, Some(k)),
        None => (inner, None),
    };
    let name_ok = !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == ':' || c == ']');
    let kind_ok =
        kind.is_none_or(|k| !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_'));
    (name_ok && kind_ok).then_some((name, kind))
}

/// A child group name: no whitespace, `:` or `]`, optionally followed by a `#` comment.
fn parse_group_name(line: &str) -> Option<&str> {
    let end = line
        .find(|c: char| c.is_whitespace() || c == '#')
        .unwrap_or(line.len());
    let name = &line[..end];
    let rest = line[end..].trim_start();
    let ok = !name.is_empty()
        && !name.contains([':', ']'])
        && (rest.is_empty() || rest.starts_with('#'));
    ok.then_some(name)
}

type HostLine = (Vec<String>, Option<u16>, Vec<(String, Value)>);

/// Parses `name[:port] [k=v ...]`; errors carry a message and a 1-based column.
fn parse_host_line(line: &str) -> std::result::Result<HostLine, (String, usize)> {
    let tokens = shlex_split(line)?;
    let Some(((first, first_col), rest)) = tokens.split_first() else {
        // Only a comment after all (`#` inside the line start is handled by the caller).
        return Ok((Vec::new(), None, Vec::new()));
    };
    let (hosts, port) = expand_host_pattern(first).map_err(|m| (m, *first_col))?;
    let mut vars = Vec::new();
    for (tok, col) in rest {
        let Some((k, v)) = tok.split_once('=') else {
            return Err((
                format!("expected key=value host variable, got `{tok}`"),
                *col,
            ));
        };
        vars.push((k.to_owned(), parse_value(v)));
    }
    Ok((hosts, port, vars))
}

/// Splits `name:port` and expands ranges; used by the YAML parser too.
pub(super) fn expand_host_pattern(
    pattern: &str,
) -> std::result::Result<(Vec<String>, Option<u16>), String> {
    let (name, port) = split_port(pattern)?;
    if name.trim().is_empty() {
        return Err("empty host name".to_owned());
    }
    if name.trim() == "---" {
        return Err("invalid host name `---`; this looks like a YAML file".to_owned());
    }
    let hosts = expand_ranges(name, 0)?;
    Ok((hosts, port))
}

/// `host:port` -> (host, port). A colon inside `[...]` belongs to a range.
fn split_port(pattern: &str) -> std::result::Result<(&str, Option<u16>), String> {
    let mut depth = 0i32;
    let mut colon = None;
    for (i, c) in pattern.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ':' if depth == 0 => {
                if colon.is_some() {
                    return Err(format!(
                        "host `{pattern}` has more than one `:` (IPv6 host names are not supported)"
                    ));
                }
                colon = Some(i);
            }
            _ => {}
        }
    }
    let Some(i) = colon else {
        return Ok((pattern, None));
    };
    let (name, port) = (&pattern[..i], &pattern[i + 1..]);
    if port.is_empty() {
        return Err(format!(
            "host `{pattern}` ends in `:`; that character is reserved for a port"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) => Ok((name, Some(p))),
        Err(_) => Err(format!(
            "port `{port}` of host `{name}` is not a number from 0 to 65535"
        )),
    }
}

const MAX_EXPANSION: usize = 100_000;

/// Expands every `[beg:end]` / `[beg:end:step]` range, leftmost first (Ansible's
/// `expand_hostname_range`).
fn expand_ranges(name: &str, depth: usize) -> std::result::Result<Vec<String>, String> {
    let (Some(open), Some(close)) = (name.find('['), name.find(']')) else {
        return Ok(vec![name.to_owned()]);
    };
    if close < open || !name[open..close].contains(':') {
        // Not a range (Ansible's detect_range needs `[`, `:` and `]` in that order).
        return Ok(vec![name.to_owned()]);
    }
    if depth > 16 {
        return Err(format!("too many ranges in host name `{name}`"));
    }
    let (head, range, tail) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let bounds: Vec<&str> = range.split(':').collect();
    if bounds.len() != 2 && bounds.len() != 3 {
        return Err(format!(
            "host range `[{range}]` must be begin:end or begin:end:step"
        ));
    }
    let beg = if bounds[0].is_empty() { "0" } else { bounds[0] };
    let end = bounds[1];
    if end.is_empty() {
        return Err(format!("host range `[{range}]` must specify an end value"));
    }
    let step: usize = match bounds.get(2) {
        None => 1,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("host range step `{s}` must be a positive number")),
        },
    };
    let mut items: Vec<String> = Vec::new();
    let is_letter = |s: &str| s.len() == 1 && s.chars().all(|c| c.is_ascii_alphabetic());
    if is_letter(beg) && is_letter(end) {
        // Ansible indexes string.ascii_letters: a..z then A..Z.
        let letters: Vec<char> = ('a'..='z').chain('A'..='Z').collect();
        let pos = |s: &str| letters.iter().position(|c| s.starts_with(*c)).unwrap_or(0);
        let (b, e) = (pos(beg), pos(end));
        if b > e {
            return Err(format!("host range `[{range}]` must have begin <= end"));
        }
        items.extend(letters[b..=e].iter().step_by(step).map(char::to_string));
    } else {
        let (Ok(b), Ok(e)) = (beg.parse::<u64>(), end.parse::<u64>()) else {
            return Err(format!(
                "host range `[{range}]` must be two numbers or two letters"
            ));
        };
        if b > e {
            return Err(format!("host range `[{range}]` must have begin <= end"));
        }
        let width = if beg.len() > 1 && beg.starts_with('0') {
            if beg.len() != end.len() {
                return Err(format!(
                    "host range `[{range}]` must have begin and end of the same length when zero-padded"
                ));
            }
            beg.len()
        } else {
            0
        };
        if (e - b) / step as u64 >= MAX_EXPANSION as u64 {
            return Err(format!("host range `[{range}]` expands to too many hosts"));
        }
        let mut i = b;
        while i <= e {
            items.push(format!("{i:0width$}"));
            let Some(next) = i.checked_add(step as u64) else {
                break;
            };
            i = next;
        }
    }
    let mut out = Vec::new();
    for item in items {
        out.extend(expand_ranges(&format!("{head}{item}{tail}"), depth + 1)?);
        if out.len() > MAX_EXPANSION {
            return Err(format!("host name `{name}` expands to too many hosts"));
        }
    }
    Ok(out)
}

/// Python's `shlex.split(line, comments=True)`: tokens with their 1-based start column.
fn shlex_split(line: &str) -> std::result::Result<Vec<(String, usize)>, (String, usize)> {
    let chars: Vec<char> = line.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '#' {
            break;
        }
        let start = i;
        let mut tok = String::new();
        let mut comment = false;
        while i < chars.len() && !chars[i].is_whitespace() {
            match chars[i] {
                '#' => {
                    comment = true;
                    break;
                }
                q @ ('\'' | '"') => {
                    let open = i;
                    i += 1;
                    loop {
                        let Some(&ch) = chars.get(i) else {
                            return Err(("unterminated quote".to_owned(), open + 1));
                        };
                        if ch == q {
                            break;
                        }
                        if q == '"' && ch == '\\' && matches!(chars.get(i + 1), Some('"' | '\\')) {
                            i += 1;
                            tok.push(chars[i]);
                        } else {
                            tok.push(ch);
                        }
                        i += 1;
                    }
                    i += 1;
                }
                '\\' => {
                    i += 1;
                    let Some(&ch) = chars.get(i) else {
                        return Err(("no character after `\\`".to_owned(), i));
                    };
                    tok.push(ch);
                    i += 1;
                }
                ch => {
                    tok.push(ch);
                    i += 1;
                }
            }
        }
        if !tok.is_empty() || i > start {
            tokens.push((tok, start + 1));
        }
        if comment {
            break;
        }
    }
    Ok(tokens)
}

/// Ansible's `_parse_value`: a Python literal when `ast.literal_eval` accepts it, else the
/// text itself.
pub(super) fn parse_value(v: &str) -> Value {
    let mut p = PyLit {
        s: v.trim_start_matches([' ', '\t']).chars().collect(),
        i: 0,
    };
    match p.top() {
        Some(val) => val,
        None => Value::String(v.to_owned()),
    }
}

/// A small parser for the subset of Python literals `ast.literal_eval` accepts.
struct PyLit {
    s: Vec<char>,
    i: usize,
}

impl PyLit {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    /// Skips spaces and a trailing `# comment`; `nl` also skips newlines (inside brackets).
    fn ws(&mut self) {
        while let Some(c) = self.peek() {
            if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
                self.i += 1;
            } else if c == '#' {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.i += 1;
                }
            } else {
                break;
            }
        }
    }

    fn top(&mut self) -> Option<Value> {
        let first = self.expr(0)?;
        self.ws();
        if self.peek() == Some(',') {
            // A bare tuple: `1, 2`.
            let mut items = vec![first];
            while self.peek() == Some(',') {
                self.i += 1;
                self.ws();
                if self.peek().is_none() {
                    break;
                }
                items.push(self.expr(0)?);
                self.ws();
            }
            self.ws();
            return self.peek().is_none().then_some(Value::Array(items));
        }
        self.peek().is_none().then_some(first)
    }

    fn expr(&mut self, depth: usize) -> Option<Value> {
        if depth > 64 {
            return None;
        }
        self.ws();
        let c = self.peek()?;
        match c {
            '[' => self.seq(']', depth).map(Value::Array),
            '(' => self.seq(')', depth).map(Value::Array),
            '{' => self.dict(depth),
            '\'' | '"' => self.strings(),
            '+' | '-' | '0'..='9' | '.' => self.number(),
            c if c.is_alphabetic() || c == '_' => {
                let start = self.i;
                while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.i += 1;
                }
                let word: String = self.s[start..self.i].iter().collect();
                match word.as_str() {
                    "True" => Some(Value::Bool(true)),
                    "False" => Some(Value::Bool(false)),
                    "None" => Some(Value::Null),
                    w if matches!(self.peek(), Some('\'' | '"'))
                        && [
                            "r", "u", "b", "R", "U", "B", "br", "rb", "Br", "bR", "BR", "Rb", "rB",
                            "RB",
                        ]
                        .contains(&w) =>
                    {
                        let raw = w.contains(['r', 'R']);
                        self.string(raw).map(Value::String).and_then(|first| {
                            // adjacent literals concatenate
                            let Value::String(mut s) = first else {
                                return None;
                            };
                            self.ws();
                            while matches!(self.peek(), Some('\'' | '"')) {
                                s.push_str(&self.string(false)?);
                                self.ws();
                            }
                            Some(Value::String(s))
                        })
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn seq(&mut self, close: char, depth: usize) -> Option<Vec<Value>> {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.peek() == Some(close) {
                self.i += 1;
                return Some(items);
            }
            items.push(self.expr(depth + 1)?);
            self.ws();
            match self.peek()? {
                ',' => self.i += 1,
                c if c == close => {}
                _ => return None,
            }
        }
    }

    fn dict(&mut self, depth: usize) -> Option<Value> {
        self.i += 1;
        let mut map = serde_json::Map::new();
        let mut set: Vec<Value> = Vec::new();
        loop {
            self.ws();
            if self.peek() == Some('}') {
                self.i += 1;
                return Some(if set.is_empty() {
                    Value::Object(map)
                } else {
                    Value::Array(set)
                });
            }
            let key = self.expr(depth + 1)?;
            self.ws();
            if self.peek() == Some(':') && set.is_empty() {
                self.i += 1;
                let val = self.expr(depth + 1)?;
                let key = match key {
                    Value::String(s) => s,
                    Value::Null => "None".to_owned(),
                    Value::Bool(b) => if b { "True" } else { "False" }.to_owned(),
                    Value::Number(n) => n.to_string(),
                    _ => return None,
                };
                map.insert(key, val);
            } else if map.is_empty() {
                set.push(key);
            } else {
                return None;
            }
            self.ws();
            match self.peek()? {
                ',' => self.i += 1,
                '}' => {}
                _ => return None,
            }
        }
    }

    fn strings(&mut self) -> Option<Value> {
        let mut s = self.string(false)?;
        self.ws();
        while matches!(self.peek(), Some('\'' | '"')) {
            s.push_str(&self.string(false)?);
            self.ws();
        }
        Some(Value::String(s))
    }

    /// One quoted string (single, double, or triple quoted), with Python escapes.
    fn string(&mut self, raw: bool) -> Option<String> {
        let q = self.peek()?;
        let triple = self.s.get(self.i + 1) == Some(&q) && self.s.get(self.i + 2) == Some(&q);
        self.i += if triple { 3 } else { 1 };
        let mut out = String::new();
        loop {
            let c = self.peek()?;
            if c == q {
                if !triple {
                    self.i += 1;
                    return Some(out);
                }
                if self.s.get(self.i + 1) == Some(&q) && self.s.get(self.i + 2) == Some(&q) {
                    self.i += 3;
                    return Some(out);
                }
            }
            if c == '\n' && !triple {
                return None;
            }
            self.i += 1;
            if c == '\\' {
                let e = self.peek()?;
                self.i += 1;
                if raw {
                    out.push('\\');
                    out.push(e);
                    continue;
                }
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '\\' | '\'' | '"' => out.push(e),
                    '\n' => {}
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String = self.s.get(self.i..self.i + n)?.iter().collect();
                        self.i += n;
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            } else {
                out.push(c);
            }
        }
    }

    fn number(&mut self) -> Option<Value> {
        // literal_eval accepts one sign on a number literal, not `--5`.
        let mut neg = false;
        if let Some(c @ ('+' | '-')) = self.peek() {
            neg = c == '-';
            self.i += 1;
            self.ws();
        }
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            || (matches!(self.peek(), Some('+' | '-'))
                && matches!(self.s.get(self.i.wrapping_sub(1)), Some('e' | 'E'))
                && !self.s[start..self.i]
                    .iter()
                    .any(|c| matches!(c, 'x' | 'X' | 'b' | 'B' | 'o' | 'O')))
        {
            self.i += 1;
        }
        let text: String = self.s[start..self.i].iter().collect();
        let v = py_number(&text)?;
        Some(if neg {
            match v {
                Value::Number(n) => {
                    if let Some(i) = n.as_i64() {
                        Value::from(-i)
                    } else {
                        Value::from(-n.as_f64()?)
                    }
                }
                _ => return None,
            }
        } else {
            v
        })
    }
}

/// A Python int or float literal (no sign). Complex numbers are rejected (kept as text).
fn py_number(text: &str) -> Option<Value> {
    if text.is_empty() || text.starts_with('_') || text.ends_with('_') || text.contains("__") {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(digits) = lower.strip_prefix(prefix) {
            let digits = digits.strip_prefix('_').unwrap_or(digits).replace('_', "");
            if !digits.chars().all(|c| c.is_ascii_alphanumeric()) {
                return None;
            }
            return i64::from_str_radix(&digits, radix).ok().map(Value::from);
        }
    }
    let clean = text.replace('_', "");
    if clean.chars().all(|c| c.is_ascii_digit()) {
        // Python 3 rejects leading zeros in non-zero decimals: `01` stays a string.
        if clean.len() > 1 && clean.starts_with('0') && clean.chars().any(|c| c != '0') {
            return None;
        }
        return clean.parse::<i64>().ok().map(Value::from);
    }
    let ok = clean
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && clean.chars().any(|c| c.is_ascii_digit())
        && clean.matches('.').count() <= 1;
    if !ok || clean.starts_with(['e', 'E']) {
        return None;
    }
    let f: f64 = clean.parse().ok()?;
    serde_json::Number::from_f64(f).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literal_values_like_ansible() {
        assert_eq!(parse_value("22"), json!(22));
        assert_eq!(parse_value("-3"), json!(-3));
        assert_eq!(parse_value("--3"), json!("--3"));
        assert_eq!(parse_value("-"), json!("-"));
        assert_eq!(parse_value("1.5"), json!(1.5));
        assert_eq!(parse_value("1e3"), json!(1000.0));
        assert_eq!(parse_value("0x1f"), json!(31));
        assert_eq!(parse_value("01"), json!("01"));
        assert_eq!(parse_value("00"), json!(0));
        assert_eq!(parse_value("True"), json!(true));
        assert_eq!(parse_value("False"), json!(false));
        assert_eq!(parse_value("None"), json!(null));
        assert_eq!(parse_value("true"), json!("true"));
        assert_eq!(parse_value("yes"), json!("yes"));
        assert_eq!(parse_value("'quoted'"), json!("quoted"));
        assert_eq!(parse_value("\"a\\tb\""), json!("a\tb"));
        assert_eq!(parse_value("10.0.0.1"), json!("10.0.0.1"));
        assert_eq!(parse_value("[1, 'a']"), json!([1, "a"]));
        assert_eq!(parse_value("{'a': 1, 2: None}"), json!({"a": 1, "2": null}));
        assert_eq!(parse_value("1, 2"), json!([1, 2]));
        assert_eq!(parse_value("8080 # web port"), json!(8080));
        assert_eq!(parse_value("ubuntu # the user"), json!("ubuntu # the user"));
        assert_eq!(parse_value(""), json!(""));
        assert_eq!(parse_value("1+2j"), json!("1+2j"));
        assert_eq!(parse_value("1_000"), json!(1000));
        assert_eq!(parse_value("'unterminated"), json!("'unterminated"));
        assert_eq!(parse_value("/dev/nvme0n1"), json!("/dev/nvme0n1"));
    }

    #[test]
    fn shlex_like_python() {
        let toks = |s: &str| -> Vec<String> {
            shlex_split(s)
                .unwrap()
                .into_iter()
                .map(|(t, _)| t)
                .collect()
        };
        assert_eq!(
            toks("h1 a=1 b='x y' c=\"q\\\"z\""),
            ["h1", "a=1", "b=x y", "c=q\"z"]
        );
        assert_eq!(toks("h1 a=1 # comment"), ["h1", "a=1"]);
        assert_eq!(toks("h1 a=b#c"), ["h1", "a=b"]);
        assert_eq!(toks("h1 a='#x'"), ["h1", "a=#x"]);
        assert_eq!(toks("h1 a=''"), ["h1", "a="]);
        assert!(shlex_split("h1 a='x").is_err());
    }

    #[test]
    fn ranges_expand_like_ansible() {
        let e = |s: &str| expand_host_pattern(s).map(|(h, _)| h);
        assert_eq!(e("node[01:03]").unwrap(), ["node01", "node02", "node03"]);
        assert_eq!(e("gpu-[a:c]").unwrap(), ["gpu-a", "gpu-b", "gpu-c"]);
        assert_eq!(e("n[1:10:4]").unwrap(), ["n1", "n5", "n9"]);
        assert_eq!(e("n[:2]").unwrap(), ["n0", "n1", "n2"]);
        assert_eq!(
            e("r[1:2]-n[a:b]").unwrap(),
            ["r1-na", "r1-nb", "r2-na", "r2-nb"]
        );
        assert_eq!(
            e("db[1:2].example.com").unwrap(),
            ["db1.example.com", "db2.example.com"]
        );
        assert_eq!(e("plain").unwrap(), ["plain"]);
        assert_eq!(expand_host_pattern("h:2222").unwrap().1, Some(2222));
        assert_eq!(
            expand_host_pattern("n[1:2]:22").unwrap(),
            (vec!["n1".into(), "n2".into()], Some(22))
        );
        for bad in [
            "node[05:01]",
            "node[a:05]",
            "node[01:5]",
            "n[1:]",
            "n[1:2:0]",
            "h:abc",
            "h:",
            "n[1:2:3:4]",
        ] {
            assert!(expand_host_pattern(bad).is_err(), "{bad}");
        }
        assert!(expand_host_pattern("n[0:99999999]").is_err());
        let top = format!("n[{}:{}]", u64::MAX - 1, u64::MAX);
        assert_eq!(expand_host_pattern(&top).unwrap().0.len(), 2);
    }

    #[test]
    fn sections_and_group_names() {
        assert_eq!(parse_section("[web]"), Some(("web", None)));
        assert_eq!(parse_section("[web:vars] # c"), Some(("web", Some("vars"))));
        assert_eq!(parse_section("[web server]"), None);
        assert_eq!(parse_group_name("kube-master"), Some("kube-master"));
        assert_eq!(parse_group_name("kube-master # c"), Some("kube-master"));
        assert_eq!(parse_group_name("a b"), None);
    }
}
