//! Where the app database is and how kamo logs in: from `--db URL` or the inventory's settings
//! (`db_host`, `db_port`, `db_name`, `db_user`, `db_password_file`), with the password from, in
//! this order, the URL, `PGPASSWORD`, `~/.pgpass` (see [`super::pgpass`]), the settings'
//! `db_password_file`, or a hidden prompt.
//!
//! Why kamo resolves the password itself instead of leaving it to sqlx: kamo must say where the
//! password came from (never what it is), hand the very same password to `pg_dump` and
//! `pg_restore` (through their environment, never their command line), and keep it out of
//! every message; a [`DbTarget`] prints as `user@host:port/db` and holds the password only as a
//! [`Secret`].
//!
//! TLS: `sslmode` from the URL (`disable`, `allow`, `prefer`, `require`, `verify-ca`,
//! `verify-full`; default `prefer`, as libpq) and `sslrootcert`; sqlx does TLS with rustls.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::pgpass;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// PostgreSQL's default port.
pub const DEFAULT_PORT: u16 = 5432;

/// The app database to work on.
#[derive(Debug, Clone)]
pub struct DbTarget {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password: Option<Secret<String>>,
    /// Where the password came from, for messages ("the URL", "PGPASSWORD", "~/.pgpass:3").
    pub password_source: Option<String>,
    pub sslmode: String,
    pub sslrootcert: Option<PathBuf>,
    /// The settings' `db_password_file`, when the target came from an inventory.
    pub password_file: Option<PathBuf>,
}

const SSLMODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

impl DbTarget {
    /// Parses a `postgres://` or `postgresql://` URL. Errors never show the password.
    pub fn from_url(text: &str) -> Result<DbTarget> {
        let shown = crate::journal::redact::redact_url(text);
        let bad = |why: &str| Error::Usage(format!("--db {shown}: {why}"));
        let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(bad(
                "expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
            ));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| bad("a part of it is not valid percent-encoded UTF-8"))
        };
        let user = decode(url.username())?;
        if user.is_empty() {
            return Err(bad("no user (postgres://USER@HOST/DATABASE)"));
        }
        let dbname = decode(url.path().trim_start_matches('/'))?;
        if dbname.is_empty() {
            return Err(bad("no database name (postgres://USER@HOST/DATABASE)"));
        }
        let password = url.password().map(decode).transpose()?.map(Secret::new);
        let mut t = DbTarget {
            host,
            port: url.port().unwrap_or(DEFAULT_PORT),
            dbname,
            user,
            password_source: password.as_ref().map(|_| "the URL".to_owned()),
            password,
            sslmode: "prefer".into(),
            sslrootcert: None,
            password_file: None,
        };
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "sslmode" => {
                    if !SSLMODES.contains(&v.as_ref()) {
                        return Err(bad(&format!(
                            "sslmode={v}: expected one of {}",
                            SSLMODES.join(", ")
                        )));
                    }
                    t.sslmode = v.into_owned();
                }
                "sslrootcert" => t.sslrootcert = Some(PathBuf::from(v.as_ref())),
                "application_name" | "connect_timeout" => {}
                other => return Err(bad(&format!("unsupported parameter {other:?}"))),
            }
        }
        Ok(t)
    }

    /// From the inventory's settings (the variables of its first host).
    pub fn from_settings(vars: &crate::inventory::Vars) -> Result<DbTarget> {
        let s = |k: &str| match vars.get(k) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let host = s("db_host").ok_or_else(|| {
            Error::Usage(
                "no database location: pass --db postgres://USER@HOST:PORT/DATABASE, or set \
                 db_host (and db_port, db_name, db_user, db_password_file) in the inventory's \
                 group_vars/all/settings.yml"
                    .into(),
            )
        })?;
        let port = match s("db_port") {
            None => DEFAULT_PORT,
            Some(p) => p.parse().map_err(|_| {
                Error::Usage(format!(
                    "the inventory's db_port {p:?} is not a port number"
                ))
            })?,
        };
        Ok(DbTarget {
            host,
            port,
            dbname: s("db_name").unwrap_or_else(|| crate::lab::db::DB_NAME.to_owned()),
            user: s("db_user").unwrap_or_else(|| crate::lab::db::DB_USER.to_owned()),
            password: None,
            password_source: None,
            sslmode: s("db_sslmode").unwrap_or_else(|| "prefer".into()),
            sslrootcert: None,
            password_file: s("db_password_file").map(PathBuf::from),
        })
    }

    /// `user@host:port/db`: what kamo shows (never the password).
    #[must_use]
    pub fn display(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{}@{host}:{}/{}", self.user, self.port, self.dbname)
    }

    /// The URL as recorded in the journal: no password.
    #[must_use]
    pub fn url_without_password(&self) -> String {
        let mut s = format!("postgres://{}", self.display());
        if self.sslmode != "prefer" {
            s.push_str(&format!("?sslmode={}", self.sslmode));
        }
        s
    }

    /// The warning for a password given in the `--db` URL: kamo cannot take it off its own
    /// command line, where every local user can read it (`/proc/PID/cmdline`) while kamo
    /// runs. `None` for a password from anywhere else.
    #[must_use]
    pub fn url_password_warning(&self) -> Option<String> {
        (self.password.is_some() && self.password_source.as_deref() == Some("the URL")).then(|| {
            format!(
                "warning: the --db URL for {} holds its password: other local users can read \
                 kamo's command line while it runs; PGPASSWORD, ~/.pgpass or the inventory's \
                 db_password_file keep it off the process list",
                self.display()
            )
        })
    }

    /// Finds the password (see the module doc for the order). `prompt`: whether a hidden
    /// prompt may be used when nothing else gives one. Warnings go to stderr.
    pub fn resolve_password(&mut self, prompt: bool) -> Result<()> {
        if self.password.is_some() {
            return Ok(());
        }
        if let Some(p) = std::env::var_os("PGPASSWORD").filter(|v| !v.is_empty()) {
            self.password = Some(Secret::new(p.to_string_lossy().into_owned()));
            self.password_source = Some("PGPASSWORD".into());
            return Ok(());
        }
        if let Some(file) = pgpass::path() {
            let key = pgpass::Key {
                host: &self.host,
                port: self.port,
                database: &self.dbname,
                user: &self.user,
            };
            match pgpass::lookup(&file, &key) {
                pgpass::Lookup::Found(pw, line) => {
                    self.password = Some(pw);
                    self.password_source = Some(format!("{}:{line}", file.display()));
                    return Ok(());
                }
                pgpass::Lookup::Ignored(why) => {
                    crate::ui::eprint_line(&format!("warning: {why}; it is ignored"));
                }
                pgpass::Lookup::None => {}
            }
        }
        if let Some(f) = &self.password_file {
            let text = std::fs::read_to_string(f)
                .map_err(|e| Error::io("cannot read the database password file", f, e))?;
            let pw = text.trim_end_matches(['\n', '\r']).to_owned();
            if pw.is_empty() {
                return Err(Error::Usage(format!(
                    "the database password file {} is empty",
                    f.display()
                )));
            }
            self.password = Some(Secret::new(pw));
            self.password_source = Some(f.display().to_string());
            return Ok(());
        }
        if prompt && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            let pw = rpassword::prompt_password(format!("Password for {}: ", self.display()))
                .map_err(|e| Error::Other(format!("cannot read the password: {e}")))?;
            self.password = Some(Secret::new(pw));
            self.password_source = Some("the prompt".into());
            return Ok(());
        }
        Err(Error::Usage(format!(
            "no password for {}: give it in the URL, PGPASSWORD, ~/.pgpass (or $PGPASSFILE) or \
             the inventory's db_password_file, or run kamo on a terminal to be asked",
            self.display()
        )))
    }

    /// sqlx's options; `via` replaces the host and port with a tunnel's local end.
    pub fn connect_options(
        &self,
        via: Option<SocketAddr>,
        app_name: &str,
    ) -> Result<PgConnectOptions> {
        let (host, port) = match via {
            Some(a) => (a.ip().to_string(), a.port()),
            None => (self.host.clone(), self.port),
        };
        if via.is_some() && self.sslmode == "verify-full" {
            return Err(Error::Usage(
                "sslmode=verify-full cannot be checked through --via: kamo connects to the \
                 tunnel's local end, which the server's certificate does not name; use \
                 sslmode=verify-ca"
                    .into(),
            ));
        }
        let mode = PgSslMode::from_str(&self.sslmode)
            .map_err(|e| Error::Usage(format!("sslmode={}: {e}", self.sslmode)))?;
        let mut o = PgConnectOptions::new_without_pgpass()
            .host(&host)
            .port(port)
            .username(&self.user)
            .database(&self.dbname)
            .ssl_mode(mode)
            .application_name(app_name);
        if let Some(pw) = &self.password {
            o = o.password(pw.expose());
        }
        if let Some(c) = &self.sslrootcert {
            o = o.ssl_root_cert(c);
        }
        Ok(o)
    }

    /// The environment for `pg_dump`/`pg_restore` (libpq's variables): the password travels
    /// here, never on a command line.
    #[must_use]
    pub fn libpq_env(&self, via: Option<SocketAddr>) -> Vec<(&'static str, String)> {
        let (host, port) = match via {
            Some(a) => (a.ip().to_string(), a.port()),
            None => (self.host.clone(), self.port),
        };
        let mut env = vec![
            ("PGHOST", host),
            ("PGPORT", port.to_string()),
            ("PGUSER", self.user.clone()),
            ("PGDATABASE", self.dbname.clone()),
            ("PGSSLMODE", self.sslmode.clone()),
            ("PGCONNECT_TIMEOUT", "10".into()),
            ("PGAPPNAME", "kamo".into()),
        ];
        if let Some(pw) = &self.password {
            env.push(("PGPASSWORD", pw.expose().clone()));
        }
        if let Some(c) = &self.sslrootcert {
            env.push(("PGSSLROOTCERT", c.display().to_string()));
        }
        env
    }
}

/// Percent-decoding of a URL part into UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_never_shows_the_password() {
        let t = DbTarget::from_url(
            "postgres://platypus:p%40ss%3Aw@db.example:6432/kqi?sslmode=require",
        )
        .unwrap();
        assert_eq!(t.display(), "platypus@db.example:6432/kqi");
        assert_eq!(t.password.as_ref().unwrap().expose(), "p@ss:w");
        assert_eq!(t.password_source.as_deref(), Some("the URL"));
        assert_eq!(t.sslmode, "require");
        assert!(!format!("{t:?}").contains("p@ss"));
        assert_eq!(
            t.url_without_password(),
            "postgres://platypus@db.example:6432/kqi?sslmode=require"
        );
        let e = DbTarget::from_url("postgres://u:hunter2@h/db?sslmode=sometimes")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sslmode=sometimes") && !e.contains("hunter2"),
            "{e}"
        );
        let e = DbTarget::from_url("mysql://u:hunter2@h/db")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(DbTarget::from_url("postgres://h/db").is_err(), "no user");
        assert!(DbTarget::from_url("postgres://u@h").is_err(), "no database");
        assert_eq!(DbTarget::from_url("postgresql://u@h/d").unwrap().port, 5432);
    }

    #[test]
    fn a_password_in_the_url_is_warned_about_without_showing_it() {
        let t = DbTarget::from_url("postgres://app:s3cr3t-9@db:5433/app").unwrap();
        let w = t.url_password_warning().unwrap();
        assert!(
            w.contains("app@db:5433/app") && w.contains("process list"),
            "{w}"
        );
        assert!(!w.contains("s3cr3t-9"), "{w}");
        let mut bare = DbTarget::from_url("postgres://app@db:5433/app").unwrap();
        assert_eq!(bare.url_password_warning(), None);
        bare.password = Some(Secret::new("from-elsewhere".into()));
        bare.password_source = Some("PGPASSWORD".into());
        assert_eq!(bare.url_password_warning(), None);
    }

    #[test]
    fn settings_give_the_location_and_the_password_file() {
        let vars: crate::inventory::Vars = serde_json::from_str(
            r#"{"db_host":"10.0.0.5","db_port":15432,"db_name":"kamonohashi","db_user":"platypus","db_password_file":"/x/pw"}"#,
        )
        .unwrap();
        let t = DbTarget::from_settings(&vars).unwrap();
        assert_eq!(t.display(), "platypus@10.0.0.5:15432/kamonohashi");
        assert_eq!(
            t.password_file.as_deref(),
            Some(std::path::Path::new("/x/pw"))
        );
        let e = DbTarget::from_settings(&crate::inventory::Vars::new()).unwrap_err();
        assert!(e.to_string().contains("--db postgres://"), "{e}");
    }

    #[test]
    fn libpq_env_carries_the_password_and_the_tunnel() {
        let t = DbTarget::from_url("postgres://u:pw@db:5432/d").unwrap();
        let env = t.libpq_env(Some("127.0.0.1:40000".parse().unwrap()));
        assert!(env.contains(&("PGHOST", "127.0.0.1".into())));
        assert!(env.contains(&("PGPORT", "40000".into())));
        assert!(env.contains(&("PGPASSWORD", "pw".into())));
    }
}
