//! A real PostgreSQL server as the app's database pod has it (local socket trusted, TCP with a
//! password), for the playbooks that reach it through `kubectl exec` and psql on a socket
//! (credentials.yml). `support::pg` is the general harness (password everywhere).
//!
//! A real PostgreSQL server for a test: `initdb` as the `postgres` user in a temporary
//! directory, listening on 127.0.0.1 at a free port and on a socket in that directory; stopped
//! with `pg_ctl -m fast stop` when dropped. Missing PostgreSQL is a test failure, not a skip.
//!
//! Authentication: local socket connections are trusted (as inside the official postgres
//! image), TCP ones need a password (scram-sha-256), so a test can tell which password works.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::run_bounded;

pub struct Postgres {
    pub dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
}

fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries in /usr/lib/postgresql (apt-get install postgresql)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .expect("no initdb under /usr/lib/postgresql/*/bin")
}

fn as_postgres(bin: &Path, tool: &str, args: &[&str]) -> std::process::Output {
    run_bounded(
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join(tool))
            .args(args),
        Duration::from_secs(60),
    )
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("kamo-pg")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let uid = run_bounded(
            Command::new("id").args(["-u", "postgres"]),
            Duration::from_secs(5),
        );
        let uid: u32 = String::from_utf8_lossy(&uid.stdout).trim().parse().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(uid), None).unwrap();
        let data = dir.path().join("data");
        let d = data.to_str().unwrap();
        let out = as_postgres(&bin, "initdb", &["-D", d, "-U", "postgres", "-A", "trust"]);
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1",
            dir.path().display()
        );
        let log = dir.path().join("log");
        let out = as_postgres(
            &bin,
            "pg_ctl",
            &[
                "-D",
                d,
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Postgres { dir, port, bin }
    }

    /// Runs `sql` as the superuser over the socket; panics on failure.
    pub fn superuser(&self, sql: &str) {
        let out = self.psql(&["-U", "postgres", "-h", self.socket(), "-c", sql], None);
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The socket directory (for `psql -h`).
    pub fn socket(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    /// Whether `user` can log in over TCP with `password` (given in PGPASSWORD, not argv).
    pub fn login_works(&self, user: &str, db: &str, password: &str) -> bool {
        self.psql(
            &[
                "-h",
                "127.0.0.1",
                "-U",
                user,
                "-d",
                db,
                "-w",
                "-c",
                "select 1",
            ],
            Some(password),
        )
        .status
        .success()
    }

    fn psql(&self, args: &[&str], password: Option<&str>) -> std::process::Output {
        let mut cmd = Command::new("psql");
        cmd.args(["-X", "-q", "-p", &self.port.to_string()])
            .args(args);
        cmd.env_remove("PGPASSWORD");
        if let Some(p) = password {
            cmd.env("PGPASSWORD", p);
        }
        run_bounded(&mut cmd, Duration::from_secs(30))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "stop"],
        );
    }
}
