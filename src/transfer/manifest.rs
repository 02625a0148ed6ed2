//! Manifests of a directory tree: what a verified transfer compares between source and target.
//!
//! [`command`] builds one `sh` command line that prints the manifest of a directory on a node;
//! [`parse`] reads its output; [`diff`] names every difference between two manifests;
//! [`Manifest::save`]/[`Manifest::load`] keep them in kamo's state directory.
//!
//! Key decision: file names are bytes and may contain anything but `/` and NUL, so the listing
//! is NUL-separated (`find -printf ...\0`) and paths stay `Vec<u8>` everywhere, never converted
//! lossily. Content hashes come from `sha256sum` batched by `xargs -0` (no process per file).
//! `sha256sum -z`, which would print names unescaped, arrived in coreutils 8.30 and Ubuntu 18.04
//! has 8.28; so the command uses the escaped form every version prints (a leading `\` on the
//! line, then `\\`, `\n` and, in newer versions, `\r` in the name) and [`parse`] undoes it.
//!
//! The output is: one record of three NUL-terminated fields per entry (`kind mode uid gid size
//! mtime blocks dev:inode`, the path relative to the directory, the symlink target), a `=sha256`
//! field, the `sha256sum` lines, and a final `=end` field, so a stream cut short is detected.
//! Paths are relative to the directory; the directory itself is `.`.
//!
//! Not covered: device numbers of block/char devices, ACLs, extended attributes, file
//! capabilities, and sub-second times (tar keeps whole seconds).

mod diff;
mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Write as _;

pub use diff::{Aspect, Difference, diff, summary};

/// The exit code of [`command`] (and of the [`super::space`] commands) when the directory does
/// not exist or is not a directory.
pub const MISSING: u32 = 3;

/// What kind of file an entry is (`find -printf %y`, symlinks not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    BlockDevice,
    CharDevice,
}

impl Kind {
    fn from_letter(c: &[u8]) -> Option<Kind> {
        Some(match c {
            b"f" => Kind::File,
            b"d" => Kind::Dir,
            b"l" => Kind::Symlink,
            b"p" => Kind::Fifo,
            b"s" => Kind::Socket,
            b"b" => Kind::BlockDevice,
            b"c" => Kind::CharDevice,
            _ => return None,
        })
    }

    /// The word used in messages: "file", "directory", ...
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "directory",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
            Kind::BlockDevice => "block device",
            Kind::CharDevice => "character device",
        }
    }
}

/// One file, directory or other entry of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// `st_size`, recorded for every kind; compared for regular files only.
    pub size: u64,
    /// Modification time in whole seconds since the epoch (rounded down). Compared for files
    /// and symlinks only: extraction changes directories' times as it fills them.
    pub mtime: i64,
    /// Bytes allocated on disk (`%b` 512-byte blocks): for information (sparse files, small
    /// files' partial blocks), never compared.
    pub allocated: u64,
    /// A symlink's target, as bytes.
    pub target: Option<Vec<u8>>,
    /// A regular file's SHA-256, 64 lower-case hex digits.
    pub sha256: Option<String>,
    /// Hard-link group: when other entries of this manifest share this one's (device, inode),
    /// the lexicographically first path of them all (possibly this entry's own path).
    pub link: Option<Vec<u8>>,
}

/// The manifest of a directory tree, keyed by path bytes relative to the directory (`.` is the
/// directory itself), in byte order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub entries: BTreeMap<Vec<u8>, Entry>,
}

impl Manifest {
    /// The number of regular files (paths: each hard link counts).
    #[must_use]
    pub fn files(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.kind == Kind::File)
            .count()
    }

    /// The sum of the regular files' sizes, each hard-link group counted once (as tar sends it).
    #[must_use]
    pub fn total_bytes(&self) -> u64 {
        self.once_per_inode()
            .filter(|(_, e)| e.kind == Kind::File)
            .map(|(_, e)| e.size)
            .fold(0, u64::saturating_add)
    }

    /// The bytes allocated on disk by all entries, each hard-link group counted once.
    #[must_use]
    pub fn allocated_bytes(&self) -> u64 {
        self.once_per_inode()
            .map(|(_, e)| e.allocated)
            .fold(0, u64::saturating_add)
    }

    /// Entries without the second and later members of each hard-link group.
    fn once_per_inode(&self) -> impl Iterator<Item = (&Vec<u8>, &Entry)> {
        self.entries
            .iter()
            .filter(|(p, e)| e.link.as_ref().is_none_or(|l| l == *p))
    }
}

/// The `sh` lines that refuse a `$d` that is missing or not a directory, exit code [`MISSING`].
pub(super) fn require_dir() -> String {
    format!(
        "if [ ! -e \"$d\" ] && [ ! -L \"$d\" ]; then \
         printf 'kamo: %s: no such file or directory\\n' \"$d\" >&2; exit {MISSING}; fi; \
         if [ ! -d \"$d\" ]; then \
         printf 'kamo: %s: not a directory\\n' \"$d\" >&2; exit {MISSING}; fi; "
    )
}

/// Quotes a directory argument. Relative paths are refused: over SSH they would be relative to
/// the login's home directory, which sudo may change.
pub(super) fn quote_dir(dir: &str) -> Result<String, String> {
    if !dir.starts_with('/') {
        return Err(format!("not an absolute path: {}", show(dir.as_bytes())));
    }
    crate::transport::quote::quote(dir)
}

const FORMAT: &str = r"%y %m %U %G %s %T@ %b %D:%i\0%P\0%l\0";

/// The command line that prints the manifest of `dir` (absolute) on a node, as root.
///
/// Exits [`MISSING`] with `kamo: DIR: no such file or directory` or `kamo: DIR: not a
/// directory` on stderr; 1 when `find`, or `sha256sum` on some file, fails. A `dir` that is a
/// symlink to a directory is followed; nothing below it is, and no mount point is crossed.
pub fn command(dir: &str) -> Result<String, String> {
    let d = quote_dir(dir)?;
    // `sh` has no pipefail: should the second `find` fail, a file lacks its hash, which
    // `parse` refuses.
    Ok(format!(
        "LC_ALL=C; export LC_ALL; d={d}; {}cd -P -- \"$d\" || exit 1; \
         find . -xdev -printf '{FORMAT}' || exit 1; printf '=sha256\\0'; \
         if command -v python3 >/dev/null 2>&1; then \
         find . -xdev -type f -print0 | python3 -c '{HASHER}' || exit 1; \
         else find . -xdev -type f -print0 | xargs -0 -r sha256sum -- || exit 1; fi; \
         printf '=end\\0'",
        require_dir()
    ))
}

/// `sha256sum`'s output (escapes included) for the NUL-separated paths on stdin, from
/// Python's `hashlib`, which uses OpenSSL and so the CPU's SHA instructions: about nine times
/// the speed of coreutils' own SHA-256 on a node with SHA-NI (1.4 GB/s against 160 MB/s seen
/// here), which is most of a verified copy's cost. `sha256sum` stays the fallback on a node
/// without python3. No single quote may appear here (it is quoted for `sh` as it is).
const HASHER: &str = r#"import sys, hashlib
out = sys.stdout.buffer
for p in sys.stdin.buffer.read().split(b"\0"):
    if not p:
        continue
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    d = h.hexdigest().encode()
    if b"\\" in p or b"\n" in p or b"\r" in p:
        e = p.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
        out.write(b"\\" + d + b"  " + e + b"\n")
    else:
        out.write(d + b"  " + p + b"\n")
"#;

/// `path` as text safe for a terminal: control characters, `\` and bytes that are not UTF-8
/// are escaped (`\n`, `\\`, `\x1b`, `\xff`, `\u{202e}`), so a file name cannot move the cursor,
/// recolour the screen or reorder the text around it.
#[must_use]
pub fn show(path: &[u8]) -> String {
    let mut out = String::with_capacity(path.len());
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_ascii_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                // C1 controls (a lone U+009B is a CSI), bidi overrides and isolates.
                c if c.is_control()
                    || ('\u{202a}'..='\u{202e}').contains(&c)
                    || ('\u{2066}'..='\u{2069}').contains(&c) =>
                {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// NUL-terminated fields of the listing, with the byte offset of each for messages.
struct Fields<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = &self.data[self.pos..];
        let end = rest.iter().position(|&b| b == 0)?;
        self.pos += end + 1;
        Some(&rest[..end])
    }
}

/// One listing record as `find` printed it, before hard links are grouped.
struct Raw {
    entry: Entry,
    inode: Option<(u64, u64)>,
}

/// Reads the output of [`command`].
///
/// Errors name the record (its number, byte offset and, once known, its path) or the
/// `sha256sum` line. Output cut short, a regular file without a hash, or a hash of something
/// that was not a regular file in the listing (the tree changed during the scan) are errors.
pub fn parse(stdout: &[u8]) -> Result<Manifest, String> {
    let mut fields = Fields {
        data: stdout,
        pos: 0,
    };
    let mut raws: BTreeMap<Vec<u8>, Raw> = BTreeMap::new();
    let mut n = 0usize;
    loop {
        n += 1;
        let start = fields.pos;
        let at = |what: &str| format!("manifest record {n} (byte {start}): {what}");
        let Some(header) = fields.next() else {
            return Err(at(
                "output ends early: no `=sha256` section (was it cut short?)",
            ));
        };
        if header == b"=sha256" {
            break;
        }
        let (Some(path), Some(target)) = (fields.next(), fields.next()) else {
            return Err(at("output ends inside the record (was it cut short?)"));
        };
        let path = if path.is_empty() {
            b".".to_vec()
        } else {
            path.to_vec()
        };
        let at = |what: &str| at(&format!("{}: {what}", show(&path)));
        if !is_relative(&path) {
            return Err(at("not a relative path below the directory"));
        }
        let (entry, inode) = parse_header(header, target).map_err(|e| at(&e))?;
        if raws.contains_key(&path) {
            return Err(at("listed twice"));
        }
        raws.insert(path, Raw { entry, inode });
    }
    let hashed = &stdout[fields.pos..];
    let Some(lines) = hashed.strip_suffix(b"=end\0") else {
        return Err(
            "manifest output ends early: no `=end` after the sha256 lines \
                    (was it cut short?)"
                .to_owned(),
        );
    };
    if !lines.is_empty() && !lines.ends_with(b"\n") {
        return Err("manifest output: the last sha256 line is incomplete".to_owned());
    }
    let lines = lines.strip_suffix(b"\n").unwrap_or(lines);
    if !lines.is_empty() {
        for (i, line) in lines.split(|&b| b == b'\n').enumerate() {
            let at = |what: &str| format!("manifest sha256 line {}: {what}", i + 1);
            let (path, hash) = parse_hash_line(line).map_err(|e| at(&e))?;
            let raw = raws.get_mut(&path).filter(|r| r.entry.kind == Kind::File);
            let Some(raw) = raw else {
                return Err(at(&format!(
                    "{}: hashed but not a regular file in the listing (did the tree change \
                     while the manifest was computed?)",
                    show(&path)
                )));
            };
            if raw.entry.sha256.replace(hash).is_some() {
                return Err(at(&format!("{}: hashed twice", show(&path))));
            }
        }
    }
    finish(raws)
}

/// `.` or a path below it without empty, `.` or `..` components: what `find %P` prints, and
/// what a caller may safely join to the directory.
pub(super) fn is_relative(path: &[u8]) -> bool {
    path == b"."
        || path
            .split(|&b| b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

/// Checks that every file got a hash and the root is a directory, and groups hard links.
fn finish(raws: BTreeMap<Vec<u8>, Raw>) -> Result<Manifest, String> {
    match raws.get(b".".as_slice()) {
        Some(r) if r.entry.kind == Kind::Dir => {}
        Some(_) => return Err("manifest: `.` is not a directory".to_owned()),
        None => return Err("manifest: no record for the directory itself (`.`)".to_owned()),
    }
    let mut groups: BTreeMap<(u64, u64), Vec<&Vec<u8>>> = BTreeMap::new();
    for (path, raw) in &raws {
        if raw.entry.kind == Kind::File && raw.entry.sha256.is_none() {
            return Err(format!(
                "manifest: {}: a regular file without a sha256 (did the tree change while the \
                 manifest was computed?)",
                show(path)
            ));
        }
        if let Some(inode) = raw.inode {
            groups.entry(inode).or_default().push(path);
        }
    }
    let mut link: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for members in groups.into_values().filter(|m| m.len() > 1) {
        // Paths come out of a BTreeMap in byte order: the first is the least.
        let first = members[0].clone();
        for m in members {
            link.insert(m.clone(), first.clone());
        }
    }
    let entries = raws
        .into_iter()
        .map(|(path, raw)| {
            let mut entry = raw.entry;
            entry.link = link.remove(&path);
            (path, entry)
        })
        .collect();
    Ok(Manifest { entries })
}

/// `kind mode uid gid size mtime blocks dev:inode` and the symlink target field.
fn parse_header(header: &[u8], target: &[u8]) -> Result<(Entry, Option<(u64, u64)>), String> {
    let text = std::str::from_utf8(header)
        .map_err(|_| format!("header `{}` is not text", show(header)))?;
    let f: Vec<&str> = text.split(' ').collect();
    let [kind, mode, uid, gid, size, mtime, blocks, inode] = f[..] else {
        return Err(format!("header `{}` does not have 8 fields", show(header)));
    };
    let kind = Kind::from_letter(kind.as_bytes())
        .ok_or_else(|| format!("unknown file kind `{}`", show(kind.as_bytes())))?;
    let mode = u32::from_str_radix(mode, 8)
        .ok()
        .filter(|m| *m <= 0o7777 && !mode.starts_with('+'))
        .ok_or_else(|| format!("mode `{mode}` is not octal permission bits"))?;
    let number = |what: &str, s: &str| {
        s.parse::<u64>()
            .ok()
            .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| format!("{what} `{s}` is not a number"))
    };
    let id = |what: &str, s: &str| {
        number(what, s).and_then(|v| u32::try_from(v).map_err(|_| format!("{what} {v} too large")))
    };
    let (dev, ino) = inode
        .split_once(':')
        .ok_or_else(|| format!("`{inode}` is not device:inode"))?;
    let inode = (number("device", dev)?, number("inode", ino)?);
    let target = match (kind, target.is_empty()) {
        (Kind::Symlink, false) => Some(target.to_vec()),
        (Kind::Symlink, true) => return Err("a symlink without a target".to_owned()),
        (_, true) => None,
        (_, false) => return Err(format!("a {} with a link target", kind.name())),
    };
    let entry = Entry {
        kind,
        mode,
        uid: id("uid", uid)?,
        gid: id("gid", gid)?,
        size: number("size", size)?,
        mtime: parse_mtime(mtime).ok_or_else(|| format!("mtime `{mtime}` is not a time"))?,
        allocated: number("blocks", blocks)?.saturating_mul(512),
        target,
        sha256: None,
        link: None,
    };
    // Directories cannot be hard-linked; their inode says nothing about links.
    Ok((entry, (kind != Kind::Dir).then_some(inode)))
}

/// `%T@` (`1700000000.1234567890`, maybe negative) as whole seconds, rounded down.
fn parse_mtime(s: &str) -> Option<i64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = int.strip_prefix('-').unwrap_or(int);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let below = int.starts_with('-') && frac.bytes().any(|b| b != b'0');
    secs.checked_sub(i64::from(below))
}

/// One `sha256sum` line: `HASH  ./path`, or `\HASH  ./escaped` when the name needed escapes.
fn parse_hash_line(line: &[u8]) -> Result<(Vec<u8>, String), String> {
    let (escaped, line) = match line.strip_prefix(b"\\") {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let bad = || format!("not a sha256sum line: `{}`", show(line));
    if line.len() < 66 || !(line[64] == b' ' && matches!(line[65], b' ' | b'*')) {
        return Err(bad());
    }
    let hash = &line[..64];
    if !hash
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return Err(bad());
    }
    let name = if escaped {
        unescape(&line[66..]).ok_or_else(bad)?
    } else {
        line[66..].to_vec()
    };
    let Some(path) = name.strip_prefix(b"./").filter(|p| !p.is_empty()) else {
        return Err(format!("`{}` is not below `.`", show(&name)));
    };
    Ok((path.to_vec(), String::from_utf8_lossy(hash).into_owned()))
}

/// Undoes sha256sum's file name escapes: `\\`, `\n`, `\r`.
fn unescape(name: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len());
    let mut bytes = name.iter();
    while let Some(&b) = bytes.next() {
        if b == b'\\' {
            out.push(match bytes.next()? {
                b'\\' => b'\\',
                b'n' => b'\n',
                b'r' => b'\r',
                _ => return None,
            });
        } else {
            out.push(b);
        }
    }
    Some(out)
}
