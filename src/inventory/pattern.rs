//! Host patterns (`web:&gpu:!node03`, `node0?`, `~gpu-\d+`, `kube-node[0:2]`) and `--limit`,
//! with the semantics of Ansible's `InventoryManager`.
//!
//! Purpose: turn a pattern into the list of selected host names.
//!
//! Key decision: mirror `manager.py` step by step (`split_host_pattern`, `order_patterns`,
//! `_evaluate_patterns`, `_match_one_pattern`, `_split_subscript`, `_apply_subscript`,
//! `_enumerate_matches`, `subset`) so edge cases agree with Ansible:
//! - unions first, then `&` intersections, then `!` exclusions, whatever the written order;
//!   a pattern with only `&`/`!` parts starts from `all`;
//! - a plain word that is a host name selects that host, even if a group has the same name
//!   (Ansible's `_evaluate_patterns` short-cut); otherwise group names are tried first and
//!   host names only when no group matched or the pattern is a glob/regex (`.?*[` or `~`);
//! - globs are Python `fnmatch` (case-sensitive), `~regex` is `re.match` (anchored at the
//!   start only), both tried against group names and host names;
//! - subscripts `[i]`, `[-i]`, `[i:j]` (j inclusive), `[i:]`, and `[:j]` (a kamo extension)
//!   apply to the hosts of the matched groups in group order (own hosts, then children
//!   breadth first); an index out of range is an error as in Ansible;
//! - `--limit`: the last value wins (Ansible's option is not repeatable); `@file` reads one
//!   pattern per line.
//!
//! The result is returned in inventory order (not Ansible's evaluation order), de-duplicated.
//! An empty pattern selects nothing.
//!
//! Not supported: IPv6 addresses and `host:port` inside patterns, implicit `localhost`,
//! Python-only regex syntax (look-around, back-references: the `regex` crate's syntax is used).

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use super::Inventory;
use crate::error::{Error, Result};

/// `select_limited`: hosts of `pattern`, narrowed by the last `--limit` value if any.
pub(super) fn select(inv: &Inventory, pattern: &str, limits: &[String]) -> Result<Vec<String>> {
    let patterns = split_host_pattern(pattern);
    if patterns.is_empty() {
        return Ok(Vec::new());
    }
    let mut hosts = evaluate(inv, &patterns)?;
    if let Some(limit) = limits.last() {
        let subset = subset_patterns(limit)?;
        if !subset.is_empty() {
            let allowed: HashSet<usize> = evaluate(inv, &subset)?.into_iter().collect();
            hosts.retain(|h| allowed.contains(h));
        }
    }
    hosts.sort_unstable();
    hosts.dedup();
    Ok(hosts
        .into_iter()
        .filter_map(|i| inv.hosts.get_index(i).map(|(k, _)| k.clone()))
        .collect())
}

/// Ansible's `subset`: split the limit, reading `@file` entries one pattern per line.
fn subset_patterns(limit: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for p in split_host_pattern(limit) {
        if let Some(path) = p.strip_prefix('@') {
            let meta = std::fs::metadata(path)
                .map_err(|_| Error::Usage(format!("limit file {path} does not exist")))?;
            if !meta.is_file() {
                return Err(Error::Usage(format!(
                    "limit starting with `@` must be a file, not a directory: {path}"
                )));
            }
            let text = crate::input::read_text(std::path::Path::new(path))
                .map_err(|e| e.into_io("limit file"))
                .map_err(|e| Error::io("read limit file", std::path::Path::new(path), e))?;
            out.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            );
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

/// Ansible's `split_host_pattern`: commas if any, else `:` outside `[...]`; whitespace also
/// separates. IPv6 addresses are not recognised.
pub(super) fn split_host_pattern(pattern: &str) -> Vec<String> {
    static COLON_SPLIT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?:[^\s:\[\]]|\[[^\]]*\])+").expect("static regex"));
    if pattern.contains(',') {
        pattern
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    } else {
        COLON_SPLIT
            .find_iter(pattern)
            .map(|m| m.as_str().trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect()
    }
}

/// Ansible's `order_patterns` + `_evaluate_patterns`; returns host indexes, Ansible order.
fn evaluate(inv: &Inventory, patterns: &[String]) -> Result<Vec<usize>> {
    let mut regular: Vec<&str> = Vec::new();
    let mut inter: Vec<&str> = Vec::new();
    let mut excl: Vec<&str> = Vec::new();
    for p in patterns {
        match p.chars().next() {
            None => {}
            Some('!') => excl.push(p),
            Some('&') => inter.push(p),
            Some(_) => regular.push(p),
        }
    }
    if regular.is_empty() {
        regular.push(super::ALL);
    }
    let mut hosts: Vec<usize> = Vec::new();
    for p in regular.into_iter().chain(inter).chain(excl) {
        if let Some(i) = inv.hosts.get_index_of(p) {
            if !hosts.contains(&i) {
                hosts.push(i);
            }
            continue;
        }
        let that = match_one(inv, p)?;
        if p.starts_with('!') {
            let that: HashSet<usize> = that.into_iter().collect();
            hosts.retain(|h| !that.contains(h));
        } else if p.starts_with('&') {
            let that: HashSet<usize> = that.into_iter().collect();
            hosts.retain(|h| that.contains(h));
        } else {
            let mut seen: HashSet<usize> = hosts.iter().copied().collect();
            hosts.extend(that.into_iter().filter(|h| seen.insert(*h)));
        }
    }
    Ok(hosts)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subscript {
    Index(i64),
    /// Inclusive end; `None` = to the last host.
    Range(usize, Option<usize>),
}

/// Ansible's `_match_one_pattern` (without the `&`/`!` prefix).
fn match_one(inv: &Inventory, pattern: &str) -> Result<Vec<usize>> {
    let bare = pattern.strip_prefix(['&', '!']).unwrap_or(pattern);
    if bare.is_empty() {
        return Err(Error::Usage(format!(
            "host pattern `{pattern}` has nothing after `{pattern}`"
        )));
    }
    let (expr, sub) = split_subscript(bare)?;
    let hosts = enumerate(inv, expr)?;
    apply_subscript(hosts, sub)
        .ok_or_else(|| Error::Usage(format!("no hosts matched the subscripted pattern `{bare}`")))
}

/// Ansible's `PATTERN_WITH_SUBSCRIPT`, plus an empty start (`[:2]`).
fn split_subscript(pattern: &str) -> Result<(&str, Option<Subscript>)> {
    static SUB: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(.+)\[(?:(-?[0-9]+)|([0-9]*)([:-])([0-9]*))\]$").expect("static regex")
    });
    static LOOKS_LIKE_SUB: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^(.+)\[[0-9:\-]*\]$").expect("static regex"));
    if pattern.starts_with('~') {
        return Ok((pattern, None));
    }
    let bad = || Error::Usage(format!("malformed subscript in host pattern `{pattern}`"));
    let Some(c) = SUB.captures(pattern) else {
        // `web[1:2:3]`, `web[--1]`: digits and separators only, but not a valid subscript.
        // (A bracket with other characters is a glob character class, as in Ansible.)
        if LOOKS_LIKE_SUB.is_match(pattern) && pattern.contains(':') {
            return Err(bad());
        }
        return Ok((pattern, None));
    };
    let base = c.get(1).map_or("", |m| m.as_str());
    if let Some(idx) = c.get(2) {
        let i: i64 = idx.as_str().parse().map_err(|_| bad())?;
        return Ok((base, Some(Subscript::Index(i))));
    }
    let start = c.get(3).map_or("", |m| m.as_str());
    let end = c.get(5).map_or("", |m| m.as_str());
    let start: usize = if start.is_empty() {
        0
    } else {
        start.parse().map_err(|_| bad())?
    };
    let end: Option<usize> = if end.is_empty() {
        None
    } else {
        Some(end.parse().map_err(|_| bad())?)
    };
    Ok((base, Some(Subscript::Range(start, end))))
}

/// Ansible's `_apply_subscript`; `None` when an index is out of range.
fn apply_subscript(hosts: Vec<usize>, sub: Option<Subscript>) -> Option<Vec<usize>> {
    let Some(sub) = sub else { return Some(hosts) };
    if hosts.is_empty() {
        return Some(hosts);
    }
    let n = hosts.len();
    let index = |i: i64| -> Option<Vec<usize>> {
        let i = if i < 0 {
            i.checked_add(i64::try_from(n).ok()?)?
        } else {
            i
        };
        let i = usize::try_from(i).ok()?;
        hosts.get(i).map(|h| vec![*h])
    };
    match sub {
        Subscript::Index(i) => index(i),
        // Ansible: `if end:` is false for 0, so `[x:0]` is the single host x.
        Subscript::Range(start, Some(0)) => index(i64::try_from(start).ok()?),
        Subscript::Range(start, end) => {
            let end = end.unwrap_or(n - 1);
            let lo = start.min(n);
            let hi = end.saturating_add(1).min(n);
            Some(if lo < hi {
                hosts[lo..hi].to_vec()
            } else {
                Vec::new()
            })
        }
    }
}

/// Ansible's `_enumerate_matches`: groups first, hosts when no group matched or for globs and
/// regexes.
fn enumerate(inv: &Inventory, pattern: &str) -> Result<Vec<usize>> {
    let re = compile(pattern)?;
    let mut out: Vec<usize> = Vec::new();
    let mut matched_group = false;
    for name in inv.groups.keys() {
        if re.is_match(name) {
            matched_group = true;
            out.extend(
                inv.group_hosts(name)
                    .into_iter()
                    .filter_map(|h| inv.hosts.get_index_of(h)),
            );
        }
    }
    let special = pattern.starts_with('~') || pattern.contains(['.', '?', '*', '[']);
    if !matched_group || special {
        for (i, name) in inv.hosts.keys().enumerate() {
            if re.is_match(name) {
                out.push(i);
            }
        }
    }
    Ok(out)
}

/// `~regex` as Python's `re.match` (anchored at the start), else `fnmatch.translate`.
fn compile(pattern: &str) -> Result<Regex> {
    let (src, what) = match pattern.strip_prefix('~') {
        Some(re) => (format!("^(?:{re})"), "regular expression"),
        None => (fnmatch_to_regex(pattern), "glob"),
    };
    Regex::new(&src)
        .map_err(|e| Error::Usage(format!("invalid {what} in host pattern `{pattern}`: {e}")))
}

/// Python's `fnmatch.translate`: `*`, `?`, `[seq]`, `[!seq]`; a `[` without `]` is literal.
fn fnmatch_to_regex(pat: &str) -> String {
    let chars: Vec<char> = pat.chars().collect();
    let mut out = String::from("^(?s:");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if chars.get(j) == Some(&'!') {
                    j += 1;
                }
                if chars.get(j) == Some(&']') {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str("\\[");
                    continue;
                }
                let stuff: Vec<char> = chars[i..j].to_vec();
                i = j + 1;
                out.push('[');
                let mut k = 0;
                if stuff.first() == Some(&'!') {
                    out.push('^');
                    k = 1;
                }
                let body = &stuff[k..];
                for (n, ch) in body.iter().enumerate() {
                    if *ch == '-' && n > 0 && n + 1 < body.len() {
                        out.push('-');
                    } else if ch.is_ascii_punctuation() {
                        // regex allows escaping any ASCII punctuation; this also defuses
                        // class-set operators such as `&&`, `--`, `~~` and nested `[`.
                        out.push('\\');
                        out.push(*ch);
                    } else {
                        out.push(*ch);
                    }
                }
                out.push(']');
            }
            other => out.push_str(&regex::escape(&other.to_string())),
        }
    }
    out.push_str(")\\z");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting_like_ansible() {
        assert_eq!(split_host_pattern("web:db"), ["web", "db"]);
        assert_eq!(split_host_pattern("web, db ,"), ["web", "db"]);
        assert_eq!(split_host_pattern("web:!db:&gpu"), ["web", "!db", "&gpu"]);
        assert_eq!(split_host_pattern("node[1:3]:db"), ["node[1:3]", "db"]);
        assert_eq!(split_host_pattern("a b"), ["a", "b"]);
        assert!(split_host_pattern("").is_empty());
        assert!(split_host_pattern(" , ").is_empty());
    }

    #[test]
    fn fnmatch_translation() {
        let m = |p: &str, s: &str| Regex::new(&fnmatch_to_regex(p)).unwrap().is_match(s);
        assert!(m("gpu-*", "gpu-01"));
        assert!(!m("gpu-*", "xgpu-01"));
        assert!(m("node0?", "node01"));
        assert!(!m("node0?", "node011"));
        assert!(m("n[0-2]", "n1"));
        assert!(!m("n[!0-2]", "n1"));
        assert!(m("n[!0-2]", "n5"));
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "axb"));
        assert!(m("x[", "x["));
        assert!(m("n[-a]", "n-"));
        assert!(!m("[]", "a"));
        assert!(!m("GPU*", "gpu1"));
    }

    #[test]
    fn subscripts() {
        assert_eq!(
            split_subscript("web[0]").unwrap(),
            ("web", Some(Subscript::Index(0)))
        );
        assert_eq!(
            split_subscript("web[-1]").unwrap(),
            ("web", Some(Subscript::Index(-1)))
        );
        assert_eq!(
            split_subscript("web[1:3]").unwrap(),
            ("web", Some(Subscript::Range(1, Some(3))))
        );
        assert_eq!(
            split_subscript("web[2:]").unwrap(),
            ("web", Some(Subscript::Range(2, None)))
        );
        assert_eq!(
            split_subscript("web[:2]").unwrap(),
            ("web", Some(Subscript::Range(0, Some(2))))
        );
        assert_eq!(split_subscript("~web[0]").unwrap(), ("~web[0]", None));
        assert_eq!(split_subscript("web[ab]").unwrap(), ("web[ab]", None));
        assert!(split_subscript("web[1:2:3]").is_err());
        let h = vec![10, 11, 12, 13];
        assert_eq!(
            apply_subscript(h.clone(), Some(Subscript::Index(-1))),
            Some(vec![13])
        );
        assert_eq!(apply_subscript(h.clone(), Some(Subscript::Index(4))), None);
        assert_eq!(apply_subscript(h.clone(), Some(Subscript::Index(-5))), None);
        assert_eq!(
            apply_subscript(h.clone(), Some(Subscript::Range(1, Some(2)))),
            Some(vec![11, 12])
        );
        assert_eq!(
            apply_subscript(h.clone(), Some(Subscript::Range(2, None))),
            Some(vec![12, 13])
        );
        assert_eq!(
            apply_subscript(h.clone(), Some(Subscript::Range(1, Some(0)))),
            Some(vec![11])
        );
        assert_eq!(
            apply_subscript(h.clone(), Some(Subscript::Range(9, Some(12)))),
            Some(vec![])
        );
        assert_eq!(
            apply_subscript(vec![], Some(Subscript::Index(3))),
            Some(vec![])
        );
    }
}
