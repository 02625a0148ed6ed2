//! `~/.pgpass` as libpq reads it, so that an operator's existing password file works with kamo.
//!
//! Why not sqlx's own lookup: sqlx reads the file silently and ignores its permissions; kamo
//! must say where a password came from (never what it is) and must refuse, as libpq does, a
//! file that other users can read. The rules followed are libpq's (`PasswordFromFile` in
//! `fe-connect.c`): the file is `$PGPASSFILE` or `~/.pgpass`; each line is
//! `hostname:port:database:username:password` (what follows a further colon is ignored); `*` in one of the first four fields matches
//! anything; `\:` and `\\` are a literal colon and backslash; lines starting with `#` and lines
//! with fewer than five fields are skipped; the first matching line wins; a file that is not a
//! regular file, or that has any group or world permission bits, is ignored with a warning.
//! Not supported: the Windows location, and matching of Unix-socket connections (kamo connects
//! over TCP only).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::secret::Secret;

/// What the connection is to (as given, not resolved: libpq compares the names).
pub struct Key<'a> {
    pub host: &'a str,
    pub port: u16,
    pub database: &'a str,
    pub user: &'a str,
}

/// The password file to read: `$PGPASSFILE`, else `~/.pgpass`.
#[must_use]
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PGPASSFILE").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::home_dir().map(|h| h.join(".pgpass"))
}

/// The outcome of a lookup.
#[derive(Debug)]
pub enum Lookup {
    /// No file, or no line matches.
    None,
    /// The file exists but is ignored; the reason says why (for a warning).
    Ignored(String),
    /// The password of the first matching line, and its 1-based line number.
    Found(Secret<String>, usize),
}

/// Looks `key` up in the file at `file`.
#[must_use]
pub fn lookup(file: &Path, key: &Key<'_>) -> Lookup {
    let Ok(meta) = std::fs::metadata(file) else {
        return Lookup::None;
    };
    if !meta.is_file() {
        return Lookup::Ignored(format!(
            "password file {} is not a plain file",
            file.display()
        ));
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Lookup::Ignored(format!(
            "password file {} has group or world access (mode {:04o}); permissions should be \
             u=rw (0600) or less, as libpq requires: chmod 600 {}",
            file.display(),
            mode & 0o7777,
            file.display()
        ));
    }
    let Ok(text) = std::fs::read_to_string(file) else {
        return Lookup::Ignored(format!("password file {} cannot be read", file.display()));
    };
    find(&text, key).map_or(Lookup::None, |(pw, line)| Lookup::Found(pw, line))
}

/// The first line of `text` matching `key`.
#[must_use]
pub fn find(text: &str, key: &Key<'_>) -> Option<(Secret<String>, usize)> {
    let port = key.port.to_string();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((matchers, password)) = fields(line) else {
            continue;
        };
        let want = [key.host, port.as_str(), key.database, key.user];
        let hit = matchers
            .iter()
            .zip(want)
            .all(|(f, w)| f.as_deref().is_none_or(|f| f == w));
        if hit {
            return Some((Secret::new(password), i + 1));
        }
    }
    None
}

/// One of the first four fields: `None` is the wildcard (an unescaped `*` alone).
type Field = Option<String>;

/// Splits a line into its four match fields and the password (up to the next colon),
/// unescaping `\\x` to `x`; `None` when it has fewer than five fields.
fn fields(line: &str) -> Option<([Field; 4], String)> {
    let mut out: Vec<Field> = Vec::with_capacity(4);
    let mut cur = String::new();
    let mut escaped = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                escaped = true;
                cur.push(chars.next().unwrap_or('\\'));
            }
            // libpq ends the password at an unescaped colon too.
            ':' if out.len() == 4 => break,
            ':' => {
                let wildcard = cur == "*" && !escaped;
                out.push((!wildcard).then(|| std::mem::take(&mut cur)));
                cur.clear();
                escaped = false;
            }
            c => cur.push(c),
        }
    }
    let matchers: [Field; 4] = out.try_into().ok()?;
    Some((matchers, cur))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(host: &'a str, port: u16, db: &'a str, user: &'a str) -> Key<'a> {
        Key {
            host,
            port,
            database: db,
            user,
        }
    }

    #[test]
    fn first_match_wins_with_wildcards_and_escapes() {
        let text = "# comment:with:colons:and:more\n\
                    db1:5432:app:alice:first\n\
                    *:5432:app:alice:second\n\
                    db\\:x:*:*:bob:pa\\:ss\\\\word:tail\n\
                    short:line\n\
                    *:*:*:*:fallback\n";
        let pw = |k: Key<'_>| find(text, &k).map(|(p, l)| (p.expose().clone(), l));
        assert_eq!(
            pw(key("db1", 5432, "app", "alice")),
            Some(("first".into(), 2))
        );
        assert_eq!(
            pw(key("db2", 5432, "app", "alice")),
            Some(("second".into(), 3))
        );
        assert_eq!(
            pw(key("db:x", 6000, "other", "bob")),
            Some(("pa:ss\\word".into(), 4))
        );
        assert_eq!(
            pw(key("db2", 5433, "app", "alice")),
            Some(("fallback".into(), 6))
        );
    }

    #[test]
    fn an_escaped_star_is_not_a_wildcard() {
        let text = "\\*:5432:app:u:literal\n";
        assert!(find(text, &key("db", 5432, "app", "u")).is_none());
        assert!(find(text, &key("*", 5432, "app", "u")).is_some());
    }

    #[test]
    fn group_or_world_readable_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pgpass");
        std::fs::write(&f, "*:*:*:*:pw\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let k = key("h", 5432, "d", "u");
        match lookup(&f, &k) {
            Lookup::Ignored(why) => assert!(why.contains("chmod 600"), "{why}"),
            other => panic!("{other:?}"),
        }
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(lookup(&f, &k), Lookup::Found(_, 1)));
        assert!(matches!(
            lookup(&dir.path().join("missing"), &k),
            Lookup::None
        ));
        assert!(matches!(lookup(dir.path(), &k), Lookup::Ignored(_)));
    }
}
