//! What differs between a source and a target manifest, worded for the operator.
//!
//! Directories' mtimes and allocated bytes are never compared: extraction changes the former
//! and file systems differ in the latter. When a file's size differs its content does too;
//! only the size is reported then.

use std::fmt;

use super::{Entry, Kind, Manifest, show};

/// One difference at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub path: Vec<u8>,
    pub aspect: Aspect,
}

/// What differs; where there are two values, the source's comes first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aspect {
    /// In the source, not on the target.
    Missing,
    /// On the target, not in the source.
    Extra,
    Kind(Kind, Kind),
    Mode(u32, u32),
    /// (uid, gid) on each side.
    Owner((u32, u32), (u32, u32)),
    Size(u64, u64),
    /// Hex SHA-256 on each side (same size).
    Content(String, String),
    Mtime(i64, i64),
    SymlinkTarget(Vec<u8>, Vec<u8>),
    /// The hard-link group (its first path) on each side; `None`: not hard-linked.
    HardLink(Option<Vec<u8>>, Option<Vec<u8>>),
}

/// Every difference between `source` and `target`, in path order.
#[must_use]
pub fn diff(source: &Manifest, target: &Manifest) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut add = |path: &Vec<u8>, aspect| {
        out.push(Difference {
            path: path.clone(),
            aspect,
        });
    };
    let mut s = source.entries.iter().peekable();
    let mut t = target.entries.iter().peekable();
    loop {
        match (s.peek(), t.peek()) {
            (None, None) => break,
            (Some((sp, _)), Some((tp, _))) if sp < tp => {
                add(sp, Aspect::Missing);
                s.next();
            }
            (Some((sp, _)), None) => {
                add(sp, Aspect::Missing);
                s.next();
            }
            (Some((sp, _)), Some((tp, _))) if sp > tp => {
                add(tp, Aspect::Extra);
                t.next();
            }
            (None, Some((tp, _))) => {
                add(tp, Aspect::Extra);
                t.next();
            }
            (Some((path, a)), Some((_, b))) => {
                for aspect in compare(a, b) {
                    add(path, aspect);
                }
                s.next();
                t.next();
            }
        }
    }
    out
}

/// The differing aspects of one path present on both sides.
fn compare(a: &Entry, b: &Entry) -> Vec<Aspect> {
    if a.kind != b.kind {
        // Nothing else is comparable between a file and a directory.
        return vec![Aspect::Kind(a.kind, b.kind)];
    }
    let mut out = Vec::new();
    if a.mode != b.mode {
        out.push(Aspect::Mode(a.mode, b.mode));
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        out.push(Aspect::Owner((a.uid, a.gid), (b.uid, b.gid)));
    }
    if a.kind == Kind::File {
        if a.size != b.size {
            out.push(Aspect::Size(a.size, b.size));
        } else if a.sha256 != b.sha256 {
            out.push(Aspect::Content(
                a.sha256.clone().unwrap_or_default(),
                b.sha256.clone().unwrap_or_default(),
            ));
        }
    }
    if a.target != b.target {
        out.push(Aspect::SymlinkTarget(
            a.target.clone().unwrap_or_default(),
            b.target.clone().unwrap_or_default(),
        ));
    }
    if matches!(a.kind, Kind::File | Kind::Symlink) && a.mtime != b.mtime {
        out.push(Aspect::Mtime(a.mtime, b.mtime));
    }
    if a.link != b.link {
        out.push(Aspect::HardLink(a.link.clone(), b.link.clone()));
    }
    out
}

/// A time as RFC 3339 UTC, or the raw seconds when out of range.
fn time(secs: i64) -> String {
    let t = if secs >= 0 {
        std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs.unsigned_abs()))
    } else {
        std::time::UNIX_EPOCH.checked_sub(std::time::Duration::from_secs(secs.unsigned_abs()))
    };
    t.filter(|t| *t >= std::time::UNIX_EPOCH).map_or_else(
        || format!("{secs} s since the epoch"),
        |t| humantime::format_rfc3339_seconds(t).to_string(),
    )
}

/// The first 12 hex digits of a hash: enough to tell two apart.
fn short(hash: &str) -> String {
    let head: String = hash.chars().take(12).collect();
    format!("{head}…")
}

fn group(link: Option<&Vec<u8>>) -> String {
    link.map_or_else(
        || "not hard-linked".to_owned(),
        |p| format!("in the hard-link group of {}", show(p)),
    )
}

impl fmt::Display for Aspect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Aspect::Missing => write!(f, "missing on the target"),
            Aspect::Extra => write!(f, "on the target but not in the source"),
            Aspect::Kind(a, b) => write!(
                f,
                "a {} in the source, a {} on the target",
                a.name(),
                b.name()
            ),
            Aspect::Mode(a, b) => write!(f, "mode differs ({a:04o} vs {b:04o})"),
            Aspect::Owner(a, b) => write!(
                f,
                "owner differs (uid:gid {}:{} vs {}:{})",
                a.0, a.1, b.0, b.1
            ),
            Aspect::Size(a, b) => write!(f, "size differs ({a} vs {b} bytes)"),
            Aspect::Content(a, b) => {
                write!(f, "content differs (sha256 {} vs {})", short(a), short(b))
            }
            Aspect::Mtime(a, b) => write!(f, "mtime differs ({} vs {})", time(*a), time(*b)),
            Aspect::SymlinkTarget(a, b) => {
                write!(f, "symlink target differs ({} vs {})", show(a), show(b))
            }
            Aspect::HardLink(a, b) => write!(
                f,
                "hard links differ (source: {}; target: {})",
                group(a.as_ref()),
                group(b.as_ref())
            ),
        }
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", show(&self.path), self.aspect)
    }
}

/// Up to `limit` differences, one a line, then how many more there are.
#[must_use]
pub fn summary(diffs: &[Difference], limit: usize) -> String {
    let mut lines: Vec<String> = diffs.iter().take(limit).map(ToString::to_string).collect();
    if diffs.len() > limit {
        lines.push(format!(
            "... and {} more ({} differences in all)",
            diffs.len() - limit,
            diffs.len()
        ));
    }
    lines.join("\n")
}
