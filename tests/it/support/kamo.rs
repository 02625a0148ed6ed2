//! Running the built `kamo` binary in tests, isolated from the machine's own SSH setup.
//!
//! Every run gets its own `HOME` (no `~/.ssh/config`, keys or known_hosts of the machine),
//! no `SSH_AUTH_SOCK`, no `KAMO_*` variables, and null stdin.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A finished kamo run.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The JSON lines of stdout.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}\n{self:?}"))
            })
            .collect()
    }

    /// The JSON result line of one host.
    pub fn host(&self, name: &str) -> serde_json::Value {
        self.json_lines()
            .into_iter()
            .find(|v| v["host"] == name)
            .unwrap_or_else(|| panic!("no result for {name}: {self:?}"))
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Builds one kamo invocation.
pub struct Kamo {
    cmd: Command,
}

impl Kamo {
    /// `home` becomes `$HOME` for the run.
    pub fn new(home: &Path) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kamo"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("USER", "root")
            .current_dir(home)
            .stdin(Stdio::null());
        Self { cmd }
    }

    /// Like [`Kamo::new`], but runs `wrapper` (a program and its arguments) with the kamo
    /// binary as its last argument, e.g. `unshare -m sh -c '...' sh`.
    pub fn via(home: &Path, wrapper: &[&str]) -> Self {
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..])
            .arg(env!("CARGO_BIN_EXE_kamo"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("USER", "root")
            .current_dir(home)
            .stdin(Stdio::null());
        Self { cmd }
    }

    /// Runs the kamo binary `exe` as the ordinary `user` (through `runuser`), with `home` as
    /// its `$HOME` and working directory.
    pub fn as_user(home: &Path, user: &str, exe: &Path) -> Self {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", user, "--"])
            .arg(exe)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", home)
            .env("USER", user)
            .current_dir(home)
            .stdin(Stdio::null());
        Self { cmd }
    }

    /// Limits the size of every file kamo writes (RLIMIT_FSIZE), with SIGXFSZ ignored so a
    /// write past it fails with EFBIG as on a full disk instead of killing the process.
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        use std::os::unix::process::CommandExt;
        // SAFETY: between fork and exec only async-signal-safe calls (setrlimit, signal).
        unsafe {
            self.cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: bytes,
                    rlim_max: bytes,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
        self
    }

    /// Runs kamo with this umask (e.g. 0o000, to prove it sets its files' modes itself).
    pub fn umask(mut self, mask: u32) -> Self {
        use std::os::unix::process::CommandExt;
        // SAFETY: between fork and exec only an async-signal-safe call (umask).
        unsafe {
            self.cmd.pre_exec(move || {
                libc::umask(mask as libc::mode_t);
                Ok(())
            });
        }
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn arg_path(mut self, p: &Path) -> Self {
        self.cmd.arg(p);
        self
    }

    /// `run PLAYBOOK -i INVENTORY --known-hosts KNOWN_HOSTS`, to add to.
    pub fn run_playbook(self, playbook: &Path, inventory: &Path, known_hosts: &Path) -> Self {
        self.args(["run"])
            .arg_path(playbook)
            .args(["-i"])
            .arg_path(inventory)
            .args(["--known-hosts"])
            .arg_path(known_hosts)
    }

    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Runs kamo to the end, bounded: a run that hangs fails the test after two minutes.
    pub fn run(mut self) -> Run {
        let Output {
            status,
            stdout,
            stderr,
        } = super::run_bounded(&mut self.cmd, std::time::Duration::from_secs(120));
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Runs kamo to the end with `text` as its stdin (from a file, so it ends with EOF).
    pub fn run_with_stdin(mut self, text: &str) -> Run {
        let mut f = tempfile::tempfile().expect("temp stdin");
        std::io::Write::write_all(&mut f, text.as_bytes()).expect("write stdin");
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0)).expect("rewind stdin");
        let Output {
            status,
            stdout,
            stderr,
        } = super::run_bounded_in(
            &mut self.cmd,
            std::time::Duration::from_secs(120),
            Stdio::from(f),
        );
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Starts kamo without waiting (for signal tests).
    pub fn spawn(mut self) -> std::process::Child {
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        self.cmd.spawn().expect("kamo binary starts")
    }
}

/// `kamo exec all -i INV --known-hosts KNOWN_HOSTS EXTRA -- CMD` from a fresh home.
pub fn exec_all(known_hosts: &Path, inv: &Path, extra: &[&str], cmd: &str) -> Run {
    let home = empty_home();
    Kamo::new(home.path())
        .args(["exec", "all", "-i"])
        .arg_path(inv)
        .args(["--known-hosts"])
        .arg_path(known_hosts)
        .args(extra)
        .args(["--", cmd])
        .run()
}

/// A fresh, empty home directory for a run.
pub fn empty_home() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp home")
}
