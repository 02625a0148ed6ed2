//! A real PostgreSQL server for a test: `initdb` into a temporary directory owned by the
//! `postgres` user (initdb refuses root), the server on 127.0.0.1 and a free port, stopped with
//! `pg_ctl -m fast stop` and then by PID when the value drops, however the test ends.
//!
//! A missing PostgreSQL is a test failure, never a skip (`.ci/run` installs it).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::run_bounded;

/// The superuser's name in the test cluster.
pub const SUPERUSER: &str = "postgres";

/// A running test server.
pub struct Pg {
    /// Owned by `postgres`; holds `data/`, the log and the superuser's password file.
    pub dir: tempfile::TempDir,
    pub bin: PathBuf,
    pub port: u16,
    pub pid: u32,
    superuser_password: String,
    child: Option<Child>,
}

/// The newest PostgreSQL server binaries on this machine.
pub fn bin_dir() -> PathBuf {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (/usr/lib/postgresql is missing; .ci/run installs it)")
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop()
        .expect("no /usr/lib/postgresql/*/bin/postgres (.ci/run installs it)")
        .1
}

fn postgres_ids() -> (u32, u32) {
    let u = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("no `postgres` user on this machine (the postgresql package creates it)");
    (u.uid.as_raw(), u.gid.as_raw())
}

/// A command run as the `postgres` user.
fn as_postgres(program: &Path) -> Command {
    let (uid, gid) = postgres_ids();
    let mut cmd = Command::new(program);
    cmd.uid(uid)
        .gid(gid)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C.UTF-8")
        .current_dir("/");
    cmd
}

/// A port on 127.0.0.1 that nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// psql as the superuser over TCP, bounded.
fn psql(port: u16, password: &str, db: &str, sql: &str) -> std::process::Output {
    run_bounded(
        Command::new("psql")
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-h",
                "127.0.0.1",
            ])
            .args(["-p", &port.to_string(), "-U", SUPERUSER, "-d", db])
            .args(["-c", sql])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5"),
        Duration::from_secs(60),
    )
}

impl Pg {
    /// initdb and start; panics (with the server's log) when it does not come up.
    pub fn start() -> Pg {
        Self::start_with(false)
    }

    /// Like [`Pg::start`], with TLS: a test CA (`ca.crt` in the server's directory, see
    /// [`Pg::ca_cert`]) signs the server's certificate for `localhost` and 127.0.0.1.
    pub fn start_tls() -> Pg {
        Self::start_with(true)
    }

    /// The test CA's certificate (TLS servers only).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn start_with(tls: bool) -> Pg {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("kamo-pg-")
            .tempdir()
            .unwrap();
        let (uid, gid) = postgres_ids();
        // The server runs as postgres: it must own its directory, and reach it (the temp
        // directory's parent, /tmp, is world-searchable).
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        let pwfile = dir.path().join("superuser-password");
        let password = format!("pw-{}-{}", std::process::id(), free_port());
        std::fs::write(&pwfile, &password).unwrap();
        std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).unwrap();
        let out = run_bounded(
            as_postgres(&bin.join("initdb"))
                .arg("-D")
                .arg(dir.path().join("data"))
                .args(["-U", SUPERUSER, "--auth=scram-sha-256", "--no-locale"])
                .args(["-E", "UTF8", "--no-sync"])
                .arg(format!("--pwfile={}", pwfile.display())),
            Duration::from_secs(120),
        );
        assert!(
            out.status.success(),
            "initdb failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut tls_args: Vec<String> = Vec::new();
        if tls {
            make_certs(dir.path(), uid, gid);
            let d = dir.path().display();
            tls_args = vec![
                "-c".into(),
                "ssl=on".into(),
                "-c".into(),
                format!("ssl_cert_file={d}/server.crt"),
                "-c".into(),
                format!("ssl_key_file={d}/server.key"),
            ];
        }
        // A port picked by binding 0 can be taken before the server binds it: retry, bounded.
        let log = dir.path().join("postgres.log");
        for _attempt in 0..5 {
            let port = free_port();
            let logf = std::fs::File::create(&log).unwrap();
            std::os::unix::fs::chown(&log, Some(uid), Some(gid)).unwrap();
            let mut child = as_postgres(&bin.join("postgres"))
                .arg("-D")
                .arg(dir.path().join("data"))
                .args(["-p", &port.to_string()])
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "unix_socket_directories="])
                .args(["-c", "fsync=off", "-c", "max_connections=30"])
                .args(&tls_args)
                .stdin(Stdio::null())
                .stdout(logf.try_clone().unwrap())
                .stderr(logf)
                .process_group(0)
                .spawn()
                .expect("start postgres");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: most likely the port was taken
                }
                if psql(port, &password, "postgres", "SELECT 1")
                    .status
                    .success()
                {
                    return Pg {
                        dir,
                        bin,
                        port,
                        pid: child.id(),
                        superuser_password: password,
                        child: Some(child),
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "postgres did not accept connections within 60 s:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!(
            "postgres did not start on any of 5 free ports:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn psql(&self, db: &str, sql: &str) -> std::process::Output {
        psql(self.port, &self.superuser_password, db, sql)
    }

    /// Runs `sql` as the superuser in `db` and returns its unaligned output; panics on error.
    pub fn superuser_sql(&self, db: &str, sql: &str) -> String {
        let out = self.psql(db, sql);
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates role `name` (login, with a password) and database `name` owned by it; returns
    /// its sqlx/libpq URL.
    pub fn create_db(&self, name: &str) -> String {
        let password = format!("{name}-secret-{}", self.port);
        self.superuser_sql(
            "postgres",
            &format!("CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'"),
        );
        self.superuser_sql(
            "postgres",
            &format!("CREATE DATABASE \"{name}\" OWNER \"{name}\""),
        );
        format!(
            "postgres://{name}:{password}@127.0.0.1:{}/{name}",
            self.port
        )
    }

    /// `pg_dump --schema-only` of `db` (without the header lines that carry versions).
    pub fn dump_schema(&self, db: &str) -> String {
        self.dump(db, &["--schema-only"])
    }

    /// `pg_dump` of `db`, schema and data, as plain SQL (without the lines that differ
    /// between two dumps of the same database): two equal dumps mean an equal database.
    pub fn dump_all(&self, db: &str) -> String {
        self.dump(db, &[])
    }

    fn dump(&self, db: &str, extra: &[&str]) -> String {
        let out = run_bounded(
            Command::new("pg_dump")
                .args(extra)
                .args(["--no-owner", "-h", "127.0.0.1"])
                .args(["-p", &self.port.to_string(), "-U", SUPERUSER, "-d", db])
                .env("PGPASSWORD", &self.superuser_password),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            // `\restrict` lines carry a random key per dump (PostgreSQL 15.14 and later).
            .filter(|l| {
                !l.starts_with("-- Dumped")
                    && !l.starts_with("\\restrict")
                    && !l.starts_with("\\unrestrict")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether the server process is still there.
    pub fn alive(&self) -> bool {
        Path::new(&format!("/proc/{}", self.pid)).exists()
            && std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
                .is_ok_and(|s| !s.contains(") Z "))
    }

    /// `pg_ctl -m fast stop`, then by PID if the server is still there.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = run_bounded(
            as_postgres(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .args(["-m", "fast", "-w", "-t", "30", "stop"]),
            Duration::from_secs(60),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A CA and a server certificate it signs (for `localhost` and 127.0.0.1), with openssl.
fn make_certs(dir: &Path, uid: u32, gid: u32) {
    let openssl = |args: &[&str]| {
        let out = run_bounded(
            Command::new("openssl").args(args).current_dir(dir),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=kamo test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
    for f in ["server.key", "server.crt"] {
        std::os::unix::fs::chown(dir.join(f), Some(uid), Some(gid)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a future to the end on a runtime of its own (the tests are synchronous).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A connection to `url`, or a test failure naming why not.
pub async fn connect(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection as _;
    sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}
