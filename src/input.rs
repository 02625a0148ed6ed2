//! Reading the operator's input files (inventories, playbooks, vars files, known_hosts,
//! templates) with a size limit.
//!
//! Why a limit: every parser here builds a tree of the whole file, which costs several times
//! the file's size in memory. A 200 MB file (a log passed by mistake as `-i`, `/dev/zero`, a
//! generated inventory gone wrong) would take gigabytes before anything could say it is not an
//! inventory. [`MAX_INPUT_BYTES`] is far above any real inventory or playbook (the largest
//! ones we know, 1,000-host inventories, are under 1 MiB), and the file is refused before it is
//! read: its size is checked first, and the read itself stops one byte past the limit, so a
//! file that grows or has no size (a FIFO, a device) is bounded too.

use std::io::Read;
use std::path::Path;

/// The largest input file kamo reads: 64 MiB.
pub const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;

/// Why an input file could not be read as text.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    /// More than the limit; `size` is the size found (at least `limit + 1`).
    TooLarge {
        size: u64,
        limit: u64,
    },
    NotUtf8,
}

impl ReadError {
    /// The message for a file that is not I/O-unreadable (too large, not UTF-8), naming the
    /// file kind (`inventory file`, `playbook`), or `None` for an I/O error.
    #[must_use]
    pub fn describe(&self, what: &str) -> Option<String> {
        match self {
            Self::Io(_) => None,
            Self::TooLarge { size, limit } => Some(format!(
                "{what} is {}, more than the {} kamo reads (is it the file you meant?)",
                human(*size),
                human(*limit)
            )),
            Self::NotUtf8 => Some(format!("{what} is not valid UTF-8")),
        }
    }

    /// As an `io::Error` (for callers whose error type is one), keeping the message.
    #[must_use]
    pub fn into_io(self, what: &str) -> std::io::Error {
        match self {
            Self::Io(e) => e,
            other => std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                other.describe(what).unwrap_or_default(),
            ),
        }
    }
}

/// Reads `path` as UTF-8 text of at most [`MAX_INPUT_BYTES`].
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    read_text_limited(path, MAX_INPUT_BYTES)
}

/// Reads `path` as UTF-8 text of at most `limit` bytes.
pub fn read_text_limited(path: &Path, limit: u64) -> Result<String, ReadError> {
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if meta.is_file() && meta.len() > limit {
        return Err(ReadError::TooLarge {
            size: meta.len(),
            limit,
        });
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            size: bytes.len() as u64,
            limit,
        });
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8)
}

/// `64 MiB`, `200.0 MiB`, `512 bytes`.
fn human(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= MIB {
        #[allow(clippy::cast_precision_loss)]
        let m = n as f64 / MIB as f64;
        format!("{m:.1} MiB")
    } else {
        format!("{n} bytes")
    }
}

/// A hint for the YAML parser's refusals that protect kamo's memory, whose own words
/// ("repetition limit exceeded", "recursion limit exceeded") do not say what is wrong with
/// the file. `None` for every other YAML error.
#[must_use]
pub fn yaml_limit_hint(e: &serde_yaml::Error) -> Option<&'static str> {
    let msg = e.to_string();
    if msg.contains("repetition limit exceeded") {
        Some(
            "the file's aliases (`*name`) expand to too many nodes (a \"billion laughs\" \
             YAML bomb, or aliases of aliases): refused before it fills memory; write the \
             repeated values out or reference them less deeply",
        )
    } else if msg.contains("recursion limit exceeded") {
        Some("the document nests deeper than 128 levels: refused; flatten the structure")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_limit_is_refused_before_it_is_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big.ini");
        // A sparse 200 MiB file: reading it whole would cost 200 MiB.
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(200 * 1024 * 1024).unwrap();
        let e = read_text(&p).unwrap_err();
        assert!(
            matches!(e, ReadError::TooLarge { size, .. } if size == 200 * 1024 * 1024),
            "{e:?}"
        );
        assert_eq!(
            e.describe("inventory file").unwrap(),
            "inventory file is 200 MiB, more than the 64 MiB kamo reads (is it the file you meant?)"
        );
    }

    #[test]
    fn a_stream_without_a_size_stops_one_byte_past_the_limit() {
        let e = read_text_limited(Path::new("/dev/zero"), 1000).unwrap_err();
        assert!(
            matches!(
                e,
                ReadError::TooLarge {
                    size: 1001,
                    limit: 1000
                }
            ),
            "{e:?}"
        );
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ok");
        std::fs::write(&p, "x".repeat(1000)).unwrap();
        assert_eq!(read_text_limited(&p, 1000).unwrap().len(), 1000);
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(matches!(read_text(&p), Err(ReadError::NotUtf8)));
    }
}
