//! Manifests on disk: JSON lines, one entry a line, after a header line with the format
//! version and the entry count (a file cut short is refused).
//!
//! Paths and symlink targets are JSON strings when they are UTF-8 (JSON escapes newlines and
//! control characters exactly), and `{"hex": "..."}` otherwise, so any byte string round-trips
//! and the common case stays readable with `grep` and `jq`. Files are written to a temporary
//! name, mode 0600, and renamed into place: a reader never sees half a manifest.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Entry, Kind, Manifest};
use crate::error::{Error, Located};

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Bytes {
    Text(String),
    Hex { hex: String },
}

impl Bytes {
    fn from(b: &[u8]) -> Self {
        match std::str::from_utf8(b) {
            Ok(s) => Bytes::Text(s.to_owned()),
            Err(_) => Bytes::Hex {
                hex: crate::journal::hex(b),
            },
        }
    }

    fn into_vec(self) -> Result<Vec<u8>, String> {
        match self {
            Bytes::Text(s) => Ok(s.into_bytes()),
            Bytes::Hex { hex } => unhex(&hex).ok_or_else(|| format!("`{hex}` is not hex")),
        }
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[derive(Serialize, Deserialize)]
struct Header {
    kamo_manifest: u32,
    entries: usize,
}

#[derive(Serialize, Deserialize)]
struct Record {
    path: Bytes,
    kind: Kind,
    /// Octal, as `ls` and `chmod` show it.
    mode: String,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: i64,
    allocated: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<Bytes>,
}

impl Record {
    fn new(path: &[u8], e: &Entry) -> Self {
        Record {
            path: Bytes::from(path),
            kind: e.kind,
            mode: format!("{:04o}", e.mode),
            uid: e.uid,
            gid: e.gid,
            size: e.size,
            mtime: e.mtime,
            allocated: e.allocated,
            target: e.target.as_deref().map(Bytes::from),
            sha256: e.sha256.clone(),
            link: e.link.as_deref().map(Bytes::from),
        }
    }

    fn into_entry(self) -> Result<(Vec<u8>, Entry), String> {
        let mode = u32::from_str_radix(&self.mode, 8)
            .ok()
            .filter(|m| *m <= 0o7777 && !self.mode.starts_with('+'))
            .ok_or_else(|| format!("mode `{}` is not octal permission bits", self.mode))?;
        if let Some(h) = &self.sha256
            && !(h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            return Err(format!("sha256 `{h}` is not 64 lower-case hex digits"));
        }
        let entry = Entry {
            kind: self.kind,
            mode,
            uid: self.uid,
            gid: self.gid,
            size: self.size,
            mtime: self.mtime,
            allocated: self.allocated,
            target: self.target.map(Bytes::into_vec).transpose()?,
            sha256: self.sha256,
            link: self.link.map(Bytes::into_vec).transpose()?,
        };
        let path = self.path.into_vec()?;
        if !super::is_relative(&path) {
            return Err(format!("`{}` is not a relative path", super::show(&path)));
        }
        Ok((path, entry))
    }
}

impl Manifest {
    /// Writes the manifest to `path` (mode 0600) atomically: a temporary file in the same
    /// directory, renamed over `path`. The directory must exist.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let write = || -> std::io::Result<()> {
            // A leftover of an earlier crash may have another mode; start afresh.
            let _ = std::fs::remove_file(&tmp);
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            let mut out = std::io::BufWriter::new(file);
            let header = Header {
                kamo_manifest: VERSION,
                entries: self.entries.len(),
            };
            serde_json::to_writer(&mut out, &header)?;
            out.write_all(b"\n")?;
            for (p, e) in &self.entries {
                serde_json::to_writer(&mut out, &Record::new(p, e))?;
                out.write_all(b"\n")?;
            }
            out.into_inner()
                .map_err(std::io::IntoInnerError::into_error)?
                .sync_all()
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io("cannot write the manifest", &tmp, e));
        }
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io("cannot write the manifest", path, e)
        })
    }

    /// Reads a manifest [`Manifest::save`] wrote; errors name the line.
    pub fn load(path: &Path) -> Result<Manifest, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("cannot read the manifest", path, e))?;
        let located = |line: usize, msg: String| {
            Error::Parse(Box::new(Located::new(path, line, msg).source(&text)))
        };
        let mut lines = text.lines();
        let header: Header = lines
            .next()
            .and_then(|l| serde_json::from_str(l).ok())
            .filter(|h: &Header| h.kamo_manifest == VERSION)
            .ok_or_else(|| {
                located(
                    1,
                    format!("not a kamo manifest (version {VERSION} header expected)"),
                )
            })?;
        let mut m = Manifest::default();
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            let record: Record =
                serde_json::from_str(line).map_err(|e| located(n, format!("bad entry: {e}")))?;
            let (p, e) = record
                .into_entry()
                .map_err(|e| located(n, format!("bad entry: {e}")))?;
            if m.entries.insert(p, e).is_some() {
                return Err(located(n, "a path listed twice".to_owned()));
            }
        }
        if m.entries.len() != header.entries {
            return Err(located(
                0,
                format!(
                    "{} entries where the header announces {} (file cut short?)",
                    m.entries.len(),
                    header.entries
                ),
            ));
        }
        Ok(m)
    }
}
