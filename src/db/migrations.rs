//! The migrations directory (`playbooks/migrations/<MigrationId>/{up,down}.sql`, see its
//! README): loading it, ordering it, and checking every script before any of it runs.
//!
//! Why kamo splits the scripts into statements itself instead of sending each file whole: a
//! failing statement is then known exactly (file and line, shown with PostgreSQL's message), and
//! what PostgreSQL cannot run inside the one transaction kamo wraps each script in
//! (`BEGIN`/`COMMIT`, `CREATE INDEX CONCURRENTLY`, `VACUUM`, ...) or what would corrupt the
//! history kamo keeps (`"__EFMigrationsHistory"`) is refused when the directory is loaded, with
//! its location, before a database is touched. The splitter knows PostgreSQL's lexical rules
//! that can hide a `;`: quoted strings and identifiers, dollar quoting, and both comment forms.
//! It does not parse SQL beyond that.

use std::path::{Path, PathBuf};

use crate::error::{Error, Located};

/// One statement of a script, with the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub line: usize,
    pub sql: String,
}

/// One script (`up.sql` or `down.sql`).
#[derive(Debug, Clone)]
pub struct Script {
    pub path: PathBuf,
    pub statements: Vec<Statement>,
}

/// One EF Core migration.
#[derive(Debug, Clone)]
pub struct Migration {
    /// The id EF Core records in `"__EFMigrationsHistory"`, e.g. `20200615001935_v2.1.0`.
    pub id: String,
    pub up: Script,
    pub down: Script,
}

impl Migration {
    /// The name part of the id (`v2.1.0`).
    #[must_use]
    pub fn name(&self) -> &str {
        self.id.split_once('_').map_or("", |(_, n)| n)
    }
}

/// A migrations directory, oldest migration first.
#[derive(Debug, Clone)]
pub struct Migrations {
    pub dir: PathBuf,
    pub list: Vec<Migration>,
}

impl Migrations {
    /// The newest migration, if any.
    #[must_use]
    pub fn newest(&self) -> Option<&Migration> {
        self.list.last()
    }

    #[must_use]
    pub fn get(&self, id: &str) -> Option<&Migration> {
        self.list.iter().find(|m| m.id == id)
    }
}

/// The shipped directory, `playbooks/migrations` next to the sources kamo was built from,
/// else under the current directory.
#[must_use]
pub fn default_dir() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/migrations");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("playbooks/migrations")
    }
}

/// Whether `name` is an EF Core migration id: 14 digits, `_`, a name of `[A-Za-z0-9._-]`.
#[must_use]
pub fn is_migration_id(name: &str) -> bool {
    let Some((stamp, rest)) = name.split_once('_') else {
        return false;
    };
    stamp.len() == 14
        && stamp.bytes().all(|b| b.is_ascii_digit())
        && !rest.is_empty()
        && name.len() <= 150
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Loads every migration in `dir`, sorted by id (so by timestamp). Files at the top level
/// (README.md) are ignored; a subdirectory that is not a migration id, a missing script, or a
/// statement kamo cannot run inside a transaction is a located error (exit 4).
pub fn load(dir: &Path) -> Result<Migrations, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot read", dir, e))?;
    let mut list = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot read", dir, e))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_migration_id(&name) {
            return Err(Located::new(
                &path,
                0,
                format!("{name:?} is not an EF Core migration id"),
            )
            .hint(
                "name each directory exactly as its MigrationId, e.g. 20200615001935_v2.1.0 \
                 (see playbooks/migrations/README.md)",
            )
            .into());
        }
        let up = load_script(&path.join("up.sql"))?;
        let down = load_script(&path.join("down.sql"))?;
        list.push(Migration { id: name, up, down });
    }
    list.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(w) = list.windows(2).find(|w| w[0].id[..14] == w[1].id[..14]) {
        return Err(Located::new(
            dir.join(&w[1].id),
            0,
            format!("{} and {} have the same timestamp", w[0].id, w[1].id),
        )
        .hint("EF Core orders migrations by their id; give each its own timestamp")
        .into());
    }
    Ok(Migrations {
        dir: dir.to_owned(),
        list,
    })
}

fn load_script(path: &Path) -> Result<Script, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Located::new(path, 0, "missing migration script")
                .hint("every migration directory has both up.sql and down.sql")
                .into());
        }
        Err(e) => return Err(Error::io("cannot read", path, e)),
    };
    let statements = split(&text)
        .map_err(|(line, msg)| Error::from(Located::new(path, line, msg).source(&text)))?;
    for s in &statements {
        if let Some(why) = refused(&s.sql) {
            let line_text = text.lines().nth(s.line - 1).unwrap_or_default();
            return Err(Located::new(path, s.line, why)
                .source(&text)
                .column(line_text.len() - line_text.trim_start().len() + 1, 0)
                .hint("scripts run inside one transaction that kamo opens and kamo records the history itself; see playbooks/migrations/README.md")
                .into());
        }
    }
    Ok(Script {
        path: path.to_owned(),
        statements,
    })
}

/// Why a statement cannot be part of a migration script, if it cannot.
fn refused(sql: &str) -> Option<String> {
    let words: Vec<String> = sql
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .filter(|w| !w.is_empty())
        .take(4)
        .map(str::to_ascii_uppercase)
        .collect();
    let first = words.first().map_or("", String::as_str);
    let w = |i: usize| words.get(i).map_or("", String::as_str);
    if matches!(
        first,
        "BEGIN" | "COMMIT" | "ROLLBACK" | "START" | "END" | "SAVEPOINT" | "RELEASE" | "ABORT"
    ) {
        return Some(format!(
            "{first}: transaction control is not allowed in a migration script"
        ));
    }
    if first == "VACUUM"
        || (first == "CREATE" && w(1) == "DATABASE")
        || first == "ALTER" && w(1) == "SYSTEM"
    {
        return Some(format!(
            "{} cannot run inside a transaction",
            words.iter().take(2).cloned().collect::<Vec<_>>().join(" ")
        ));
    }
    if words.iter().any(|x| x == "CONCURRENTLY") {
        return Some("CONCURRENTLY cannot run inside a transaction".into());
    }
    if sql.contains("__EFMigrationsHistory") {
        return Some(
            "scripts must not touch \"__EFMigrationsHistory\": kamo writes the history row \
             itself, in the same transaction"
                .into(),
        );
    }
    None
}

/// Splits a script into statements at top-level `;`, keeping each statement's starting line
/// and dropping comments-only remainders. Errors: `(line, message)` of an unterminated quote
/// or comment.
pub fn split(text: &str) -> Result<Vec<Statement>, (usize, String)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut line = 1;
    let mut start = 0;
    let mut start_line = 1;
    // Whether the current statement has anything but whitespace and comments yet.
    let mut seen_code = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let opened = line;
                let mut depth = 0usize;
                loop {
                    if i >= b.len() {
                        return Err((opened, "unterminated /* comment".into()));
                    }
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if b[i] == b'\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            b'\'' | b'"' => {
                if !seen_code {
                    seen_code = true;
                    start = i;
                    start_line = line;
                }
                let opened = line;
                i += 1;
                loop {
                    if i >= b.len() {
                        let what = if c == b'\'' {
                            "string"
                        } else {
                            "quoted identifier"
                        };
                        return Err((opened, format!("unterminated {what}")));
                    }
                    if b[i] == c {
                        if b.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    if b[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
            b'$' if dollar_tag(&b[i..]).is_some() && (i == 0 || !is_ident(b[i - 1])) => {
                if !seen_code {
                    seen_code = true;
                    start = i;
                    start_line = line;
                }
                let tag = dollar_tag(&b[i..]).unwrap_or_default();
                let opened = line;
                i += tag.len();
                loop {
                    if i >= b.len() {
                        return Err((opened, "unterminated dollar-quoted string".into()));
                    }
                    if b[i..].starts_with(tag) {
                        i += tag.len();
                        break;
                    }
                    if b[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
            b';' => {
                if seen_code {
                    out.push(Statement {
                        line: start_line,
                        sql: text[start..=i].trim().to_owned(),
                    });
                }
                seen_code = false;
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                if !seen_code {
                    seen_code = true;
                    start = i;
                    start_line = line;
                }
                i += 1;
            }
        }
    }
    if seen_code {
        out.push(Statement {
            line: start_line,
            sql: text[start..].trim().to_owned(),
        });
    }
    Ok(out)
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The dollar-quote opener at the start of `b` (`$$` or `$tag$`), if it is one.
fn dollar_tag(b: &[u8]) -> Option<&[u8]> {
    let end = b[1..].iter().position(|&c| !is_ident(c))? + 1;
    (b.get(end) == Some(&b'$') && !b[1..end].first().is_some_and(u8::is_ascii_digit))
        .then(|| &b[..=end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, id: &str, up: &str, down: &str) {
        let d = dir.join(id);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("up.sql"), up).unwrap();
        std::fs::write(d.join("down.sql"), down).unwrap();
    }

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kamo-mig-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn ids() {
        assert!(is_migration_id("20200615001935_v2.1.0"));
        assert!(is_migration_id("20210127094051_v2.3.0a"));
        assert!(!is_migration_id("2020061500193_v2.1.0"));
        assert!(!is_migration_id("20200615001935"));
        assert!(!is_migration_id("20200615001935_"));
        assert!(!is_migration_id("20200615001935_v2 1"));
        assert!(!is_migration_id("notes"));
    }

    #[test]
    fn splits_statements_with_lines() {
        let sql = "-- header; not a statement\nCREATE TABLE \"A\" (\"x;\" text DEFAULT 'a;''b');\n\n\
                   /* block; /* nested; */ */ INSERT INTO \"A\" VALUES ($$;$$);\nDO $f$ BEGIN; END $f$;\n\
                   UPDATE \"A\" SET \"x;\" = 'y'\n-- trailing comment";
        let s = split(sql).unwrap();
        assert_eq!(s.len(), 4, "{s:?}");
        assert_eq!(s[0].line, 2);
        assert!(s[0].sql.ends_with("'a;''b');"), "{s:?}");
        assert_eq!(s[1].line, 4);
        assert_eq!(s[1].sql, "INSERT INTO \"A\" VALUES ($$;$$);");
        assert_eq!(s[2].sql, "DO $f$ BEGIN; END $f$;");
        assert_eq!(s[3].line, 6);
        assert!(s[3].sql.starts_with("UPDATE"));
    }

    #[test]
    fn unterminated_quotes_are_located() {
        assert_eq!(
            split("SELECT 1;\nSELECT 'x;\n").unwrap_err(),
            (2, "unterminated string".into())
        );
        assert_eq!(split("/* a\n").unwrap_err().0, 1);
        assert_eq!(split("SELECT $a$ x").unwrap_err().0, 1);
        // `$1` is a parameter, not a dollar quote.
        assert_eq!(split("SELECT $1;").unwrap().len(), 1);
    }

    #[test]
    fn loads_sorted_and_refuses_malformed_dirs() {
        let d = tempdir("load");
        write(&d, "20200615001935_v2.1.0", "SELECT 2;", "SELECT -2;");
        write(&d, "20200319064613_v2.0.0", "SELECT 1;", "SELECT -1;");
        std::fs::write(d.join("README.md"), "ignored").unwrap();
        let m = load(&d).unwrap();
        let ids: Vec<&str> = m.list.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["20200319064613_v2.0.0", "20200615001935_v2.1.0"]);
        assert_eq!(m.newest().unwrap().name(), "v2.1.0");

        std::fs::remove_file(d.join("20200615001935_v2.1.0/down.sql")).unwrap();
        let e = load(&d).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::ExitCode::Parse);
        let r = e.render();
        assert!(r.contains("missing migration script"), "{r}");
        assert!(r.contains("20200615001935_v2.1.0/down.sql"), "{r}");

        std::fs::write(
            d.join("20200615001935_v2.1.0/down.sql"),
            "-- x\nALTER TABLE \"T\" DROP COLUMN \"C\";\n  COMMIT;\n",
        )
        .unwrap();
        let r = load(&d).unwrap_err().render();
        assert!(r.contains("COMMIT: transaction control"), "{r}");
        assert!(r.contains("down.sql:3:3"), "{r}");

        std::fs::write(
            d.join("20200615001935_v2.1.0/down.sql"),
            "DELETE FROM \"__EFMigrationsHistory\";",
        )
        .unwrap();
        assert!(load(&d).unwrap_err().render().contains("must not touch"));

        std::fs::write(
            d.join("20200615001935_v2.1.0/down.sql"),
            "CREATE INDEX CONCURRENTLY \"IX\" ON \"T\" (\"C\");",
        )
        .unwrap();
        assert!(load(&d).unwrap_err().render().contains("CONCURRENTLY"));

        std::fs::write(d.join("20200615001935_v2.1.0/down.sql"), "SELECT 'x;").unwrap();
        assert!(
            load(&d)
                .unwrap_err()
                .render()
                .contains("unterminated string")
        );

        std::fs::write(d.join("20200615001935_v2.1.0/down.sql"), "SELECT 1;").unwrap();
        std::fs::create_dir(d.join("v2.2.0")).unwrap();
        let r = load(&d).unwrap_err().render();
        assert!(
            r.contains("\"v2.2.0\" is not an EF Core migration id"),
            "{r}"
        );
        std::fs::remove_dir(d.join("v2.2.0")).unwrap();

        write(&d, "20200615001935_v2.1.0a", "SELECT 3;", "SELECT -3;");
        assert!(load(&d).unwrap_err().render().contains("same timestamp"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn shipped_migrations_load() {
        let m = load(&default_dir()).unwrap();
        assert!(m.get("20200319064613_v2.0.0").is_some());
        assert!(m.get("20200615001935_v2.1.0").is_some());
        assert!(m.list.iter().all(|m| !m.up.statements.is_empty()));
    }
}
