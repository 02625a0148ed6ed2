//! Real OpenSSH `sshd` processes on loopback addresses, as test peers for kamo.
//!
//! One [`SshCluster`] is a temp dir with a host key, client keys, an `authorized_keys` file and
//! one `sshd -D` per 16 addresses (sshd refuses more listen sockets than that). Every host of a
//! cluster has its own 127.x.y.z address and they all share one port, so `[addr]:port` names a
//! host uniquely in known_hosts. Dropping the cluster stops its sshd processes (by PID).
//!
//! Needs root (sshd must switch to the test user) and `/usr/sbin/sshd` (`openssh-server`).

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The unprivileged login user every cluster serves (shell `/bin/sh`, no rc files).
pub const TEST_USER: &str = "kamotest";
/// [`TEST_USER`]'s login password, also the password `sudo` asks it for.
pub const TEST_PASSWORD: &str = "kamo-Test-pw-7731";

const SSHD: &str = "/usr/sbin/sshd";
/// sshd refuses more listen sockets than this per process.
const ADDRS_PER_SSHD: usize = 16;
/// How long `start` waits for every address to send its SSH banner.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `Drop` waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts to find a port that is free on every address of a cluster.
const PORT_ATTEMPTS: usize = 10;
/// Set this variable (to anything) to keep cluster directories (configs, logs) after the test.
const KEEP_ENV: &str = "KAMO_KEEP_TEST_DIRS";

/// One simulated host: its inventory name and where its sshd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestHost {
    /// `node01`, `node02`, ...
    pub name: String,
    /// A loopback address (`127.x.y.z`) of its own.
    pub addr: String,
    pub port: u16,
}

/// A set of running sshd processes serving `hosts`; see the module docs.
#[derive(Debug)]
pub struct SshCluster {
    /// Everything of the cluster lives here (removed on drop unless `KAMO_KEEP_TEST_DIRS` is set).
    pub dir: tempfile::TempDir,
    pub hosts: Vec<TestHost>,
    /// The port of every host.
    pub port: u16,
    /// Unencrypted ed25519 private key, authorized for [`TEST_USER`] and root.
    pub client_key: PathBuf,
    /// One `[addr]:port ssh-ed25519 AAAA...` line per host.
    pub known_hosts: PathBuf,
    /// The public half of the host key every sshd of the cluster uses.
    pub host_key_pub: PathBuf,
    authorized_keys: PathBuf,
    host_key: PathBuf,
    extra_config: String,
    children: Vec<Child>,
    logs: Vec<PathBuf>,
    /// Serialises key generation and `authorized_keys` appends; counts generated files.
    keygen: Mutex<u32>,
    inventories: AtomicU32,
}

impl SshCluster {
    /// Starts sshd processes (one per 16 addresses) serving `n` hosts on distinct loopback
    /// addresses and one free port, and waits (bounded) until every address sends its banner.
    /// Panics with a clear message if not root, if sshd is missing, or if sshd fails to start.
    pub fn start(n: usize) -> SshCluster {
        SshCluster::start_with(n, "")
    }

    /// Like [`SshCluster::start`], with `extra_config` lines added to every sshd_config, so
    /// that they override the harness's settings (e.g. `"PasswordAuthentication no"`).
    /// sshd keeps the first value it reads for a keyword, so the lines before the first
    /// `Match` go before the harness's settings; a `Match` block and what follows go last.
    pub fn start_with(n: usize, extra_config: &str) -> SshCluster {
        assert!(n > 0, "SshCluster::start needs at least one host");
        ensure_environment();

        let dir = tempfile::Builder::new()
            .prefix("kamo-sshd-")
            .tempdir()
            .expect("create the cluster temp dir");
        // sshd reads AuthorizedKeysFile with the target user's uid: kamotest must get in.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .expect("chmod the cluster temp dir");
        let d = dir.path().to_path_buf();

        let host_key = d.join("ssh_host_ed25519_key");
        keygen(&host_key, "ed25519", "", "kamo-test-host");
        let client_key = d.join("id_ed25519");
        keygen(&client_key, "ed25519", "", "kamo-test-client");
        let authorized_keys = d.join("authorized_keys");
        fs::write(&authorized_keys, read_pub(&client_key)).expect("write authorized_keys");
        fs::set_permissions(&authorized_keys, fs::Permissions::from_mode(0o644))
            .expect("chmod authorized_keys");

        let addrs = allocate_addrs(n);
        let hosts: Vec<TestHost> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| TestHost {
                name: format!("node{:02}", i + 1),
                addr: a.to_string(),
                port: 0,
            })
            .collect();

        let mut cluster = SshCluster {
            host_key_pub: host_key.with_extension("pub"),
            known_hosts: d.join("known_hosts"),
            dir,
            hosts,
            port: 0,
            client_key,
            authorized_keys,
            host_key,
            extra_config: extra_config.to_string(),
            children: Vec::new(),
            logs: Vec::new(),
            keygen: Mutex::new(0),
            inventories: AtomicU32::new(0),
        };
        // `cluster` owns every child from here on: a panic below still stops them (Drop).
        cluster.launch(&addrs);

        let key = fs::read_to_string(&cluster.host_key_pub).expect("read the host public key");
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        let key = key.join(" ");
        let mut kh = String::new();
        for h in &mut cluster.hosts {
            h.port = cluster.port;
            writeln!(kh, "[{}]:{} {}", h.addr, h.port, key).unwrap();
        }
        fs::write(&cluster.known_hosts, kh).expect("write known_hosts");
        cluster
    }

    /// Finds a port free on every address, starts the sshd processes and waits for them.
    /// Retries with another port when sshd loses a bind race with another process.
    fn launch(&mut self, addrs: &[Ipv4Addr]) {
        let mut last_failure = String::new();
        for attempt in 0..PORT_ATTEMPTS {
            let Some(port) = free_port(addrs) else {
                last_failure = "no port was free on every address".into();
                continue;
            };
            self.port = port;
            for (k, chunk) in addrs.chunks(ADDRS_PER_SSHD).enumerate() {
                self.spawn_sshd(k, attempt, chunk, port);
            }
            match self.wait_ready(addrs, port) {
                Ok(()) => return,
                Err(Retry::BindRace(why)) => {
                    last_failure = why;
                    self.stop_all();
                }
                Err(Retry::Fatal(why)) => panic!("{why}"),
            }
        }
        panic!("sshd could not start after {PORT_ATTEMPTS} attempts: {last_failure}");
    }

    fn spawn_sshd(&mut self, k: usize, attempt: usize, addrs: &[Ipv4Addr], port: u16) {
        let d = self.dir.path();
        let config = d.join(format!("sshd_{k}.conf"));
        let log = d.join(format!("sshd_{k}.{attempt}.log"));
        let (overrides, matches) = split_extra_config(&self.extra_config);
        let mut c = String::from("# extra settings first: sshd keeps the first value it reads\n");
        c.push_str(&overrides);
        c.push_str("# harness settings\n");
        for a in addrs {
            writeln!(c, "ListenAddress {a}").unwrap();
        }
        writeln!(c, "Port {port}").unwrap();
        writeln!(c, "HostKey {}", self.host_key.display()).unwrap();
        writeln!(c, "PidFile {}", d.join(format!("sshd_{k}.pid")).display()).unwrap();
        writeln!(c, "AuthorizedKeysFile {}", self.authorized_keys.display()).unwrap();
        c.push_str(
            "PubkeyAuthentication yes\n\
             PasswordAuthentication yes\n\
             PermitEmptyPasswords no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             UsePAM no\n\
             StrictModes no\n\
             MaxStartups 2000:30:2000\n\
             MaxSessions 100\n\
             MaxAuthTries 20\n\
             LoginGraceTime 60\n\
             SetEnv SHLVL=1\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             UseDNS no\n\
             LogLevel ERROR\n\
             Subsystem sftp internal-sftp\n",
        );
        c.push_str(&matches);
        fs::write(&config, c).expect("write sshd_config");
        let log_file = File::create(&log).expect("create the sshd log");
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup the sshd log"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {SSHD}: {e}"));
        self.children.push(child);
        self.logs.push(log);
    }

    /// Waits until every address sends an `SSH-2.0-` banner, then checks that no sshd
    /// reported a failed bind (which would mean another process answers on that address).
    fn wait_ready(&mut self, addrs: &[Ipv4Addr], port: u16) -> Result<(), Retry> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut pending: Vec<Ipv4Addr> = addrs.to_vec();
        while !pending.is_empty() {
            let exited = self
                .children
                .iter_mut()
                .find_map(|c| Some((c.id(), c.try_wait().ok()??)));
            if let Some((pid, status)) = exited {
                let logs = self.log_text();
                if is_bind_race(&logs) {
                    return Err(Retry::BindRace(logs));
                }
                return Err(Retry::Fatal(format!(
                    "sshd (pid {pid}) exited with {status} while starting; sshd logs:\n{logs}"
                )));
            }
            pending.retain(|a| !has_banner(SocketAddr::new(IpAddr::V4(*a), port)));
            if pending.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Retry::Fatal(format!(
                    "sshd did not answer on {} of {} addresses (first: {}:{port}) within {:?}; \
                     sshd logs:\n{}",
                    pending.len(),
                    addrs.len(),
                    pending[0],
                    READY_TIMEOUT,
                    self.log_text()
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let logs = self.log_text();
        if is_bind_race(&logs) {
            return Err(Retry::BindRace(logs));
        }
        Ok(())
    }

    fn log_text(&self) -> String {
        let mut s = String::new();
        for (log, child) in self.logs.iter().zip(&self.children) {
            let text = fs::read_to_string(log).unwrap_or_else(|e| format!("(unreadable: {e})"));
            writeln!(
                s,
                "--- {} (pid {}) ---\n{}",
                log.display(),
                child.id(),
                text
            )
            .unwrap();
        }
        s
    }

    /// PIDs of this cluster's sshd listener processes.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// The sshd logs (stderr of every sshd process) so far, for diagnosing a failed test.
    pub fn sshd_logs(&self) -> String {
        self.log_text()
    }

    /// Writes an INI inventory into `dir`: `[nodes]` with one
    /// `nodeNN ansible_host=ADDR ansible_port=PORT` line per host, then `[all:vars]` with
    /// `ansible_user=kamotest` and `ansible_ssh_private_key_file=<client_key>`; `extra` is
    /// appended verbatim. Each call writes a new file (`inventory.ini`, `inventory-2.ini`, ...).
    pub fn write_inventory(&self, extra: &str) -> PathBuf {
        let mut s = String::from("[nodes]\n");
        for h in &self.hosts {
            writeln!(
                s,
                "{} ansible_host={} ansible_port={}",
                h.name, h.addr, h.port
            )
            .unwrap();
        }
        writeln!(s, "\n[all:vars]\nansible_user={TEST_USER}").unwrap();
        writeln!(
            s,
            "ansible_ssh_private_key_file={}",
            self.client_key.display()
        )
        .unwrap();
        s.push_str(extra);
        let k = self.inventories.fetch_add(1, Ordering::Relaxed) + 1;
        let name = if k == 1 {
            "inventory.ini".to_string()
        } else {
            format!("inventory-{k}.ini")
        };
        let path = self.dir.path().join(name);
        fs::write(&path, s).expect("write the inventory");
        path
    }

    /// A loopback address on which nothing listens at [`SshCluster::port`] (connections are
    /// refused at once), for unreachable-host tests. Never one that a cluster uses.
    pub fn dead_addr(&self) -> String {
        // Clusters use 127.10.0.0 and up; 127.0.250.0/24 is never allocated.
        for last in 1..=254u8 {
            let a = Ipv4Addr::new(127, 0, 250, last);
            let sa = SocketAddr::new(IpAddr::V4(a), self.port);
            if TcpStream::connect_timeout(&sa, Duration::from_millis(500)).is_err() {
                return a.to_string();
            }
        }
        panic!(
            "something listens on port {} of every 127.0.250.x",
            self.port
        );
    }

    /// Writes an ed25519 key pair encrypted with `passphrase`, authorizes it, and returns
    /// the private key path. Each call writes a new key.
    pub fn encrypted_client_key(&self, passphrase: &str) -> PathBuf {
        assert!(
            !passphrase.is_empty(),
            "an encrypted key needs a passphrase"
        );
        self.authorized_key("ed25519", passphrase)
    }

    /// An unencrypted RSA (3072-bit) key pair, authorized; returns the private key path.
    pub fn rsa_client_key(&self) -> PathBuf {
        self.authorized_key("rsa", "")
    }

    /// An unencrypted ECDSA (nistp256) key pair, authorized; returns the private key path.
    pub fn ecdsa_client_key(&self) -> PathBuf {
        self.authorized_key("ecdsa", "")
    }

    fn authorized_key(&self, kind: &str, passphrase: &str) -> PathBuf {
        let mut n = self.keygen.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        let enc = if passphrase.is_empty() {
            ""
        } else {
            "_encrypted"
        };
        let path = self.dir.path().join(format!("id_{kind}{enc}_{n}"));
        keygen(&path, kind, passphrase, &format!("kamo-test-{kind}{enc}"));
        let mut f = OpenOptions::new()
            .append(true)
            .open(&self.authorized_keys)
            .expect("open authorized_keys");
        f.write_all(read_pub(&path).as_bytes())
            .expect("append to authorized_keys");
        path
    }

    /// Simulates a reboot as an SSH client sees it: every sshd of the cluster and every open
    /// session stop, nothing answers for `down`, then the same daemons start again.
    pub fn reboot(&mut self, down: Duration) {
        self.stop_all();
        std::thread::sleep(down);
        let addrs: Vec<Ipv4Addr> = self
            .hosts
            .iter()
            .map(|h| h.addr.parse().expect("IPv4 test address"))
            .collect();
        let port = self.port;
        for (k, chunk) in addrs.chunks(16).enumerate() {
            self.spawn_sshd(k, 99, chunk, port);
        }
        if self.wait_ready(&addrs, port).is_err() {
            panic!(
                "sshd did not come back after the simulated reboot:\n{}",
                self.log_text()
            );
        }
    }

    fn stop_all(&mut self) {
        for child in &self.children {
            // Connection handlers forked by our sshd: stop them first, while they are
            // still its children (their PIDs cannot have been reused).
            for pid in child_pids(child.id()) {
                signal(pid, libc::SIGTERM);
            }
            signal(child.id(), libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        for child in &mut self.children {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    _ => {
                        let _ = child.kill(); // SIGKILL
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        self.children.clear();
        self.logs.clear();
    }
}

impl Drop for SshCluster {
    fn drop(&mut self) {
        self.stop_all();
        if std::env::var_os(KEEP_ENV).is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("kept sshd cluster dir {}", self.dir.path().display());
        }
    }
}

/// Splits extra sshd_config text into the lines before the first `Match` line and the rest,
/// each ending in a newline when not empty.
fn split_extra_config(extra: &str) -> (String, String) {
    let mut before = String::new();
    let mut after = String::new();
    for line in extra.lines() {
        let is_match = line
            .split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("match"));
        let target = if is_match || !after.is_empty() {
            &mut after
        } else {
            &mut before
        };
        target.push_str(line);
        target.push('\n');
    }
    (before, after)
}

enum Retry {
    /// sshd could not bind the port on some address: another process took it. Try another.
    BindRace(String),
    Fatal(String),
}

fn is_bind_race(logs: &str) -> bool {
    logs.contains("Address already in use")
}

fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid > 1 {
        // SAFETY: kill(2) with a positive PID of a process this harness started.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// PIDs whose parent is `ppid`, from /proc.
fn child_pids(ppid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may contain spaces and parens; split after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        if rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
            == Some(ppid)
        {
            out.push(pid);
        }
    }
    out
}

/// Connects and reads until the `SSH-2.0-` identification line (bounded by timeouts).
fn has_banner(sa: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&sa, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    while buf.len() < 8192 {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
        let text = String::from_utf8_lossy(&buf);
        if text.starts_with("SSH-2.0-") || text.contains("\nSSH-2.0-") {
            return true;
        }
    }
    false
}

/// A port that can be bound on every one of `addrs` right now.
fn free_port(addrs: &[Ipv4Addr]) -> Option<u16> {
    let first = TcpListener::bind((addrs[0], 0)).ok()?;
    let port = first.local_addr().ok()?.port();
    let mut held = vec![first];
    for a in &addrs[1..] {
        held.push(TcpListener::bind((*a, port)).ok()?);
    }
    Some(port)
}

/// `n` loopback addresses no other cluster of this process uses, and (by mixing in the PID)
/// unlikely to be used by another test process; the port check covers the rest.
fn allocate_addrs(n: usize) -> Vec<Ipv4Addr> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const PER_OCTET: u32 = 254;
    const THIRD_OCTETS: u32 = 250;
    let n32 = u32::try_from(n).expect("too many hosts");
    let start = NEXT.fetch_add(n32, Ordering::Relaxed);
    assert!(
        start + n32 <= PER_OCTET * THIRD_OCTETS,
        "this test process used up its {} loopback addresses",
        PER_OCTET * THIRD_OCTETS
    );
    let second = u8::try_from(10 + std::process::id() % 240).unwrap();
    (start..start + n32)
        .map(|i| {
            let third = u8::try_from(i / PER_OCTET).unwrap();
            let fourth = u8::try_from(i % PER_OCTET + 1).unwrap();
            Ipv4Addr::new(127, second, third, fourth)
        })
        .collect()
}

/// `ssh-keygen -t kind -N passphrase -f path` (an existing file is replaced).
fn keygen(path: &Path, kind: &str, passphrase: &str, comment: &str) {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind]);
    match kind {
        "rsa" => {
            cmd.args(["-b", "3072"]);
        }
        "ecdsa" => {
            cmd.args(["-b", "256"]);
        }
        _ => {}
    }
    cmd.arg("-N")
        .arg(passphrase)
        .arg("-C")
        .arg(comment)
        .arg("-f")
        .arg(path);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ssh-keygen (install openssh-client): {e}"));
    assert!(
        out.status.success(),
        "ssh-keygen -t {kind} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `.pub` file next to private key `key`, ending in a newline.
fn read_pub(key: &Path) -> String {
    let pub_path = format!("{}.pub", key.display());
    let mut s = fs::read_to_string(&pub_path).unwrap_or_else(|e| panic!("read {pub_path}: {e}"));
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// Root, sshd, /run/sshd, the open-file limit and the test user: once per process.
fn ensure_environment() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = DONE.get_or_init(setup_environment) {
        panic!("sshd test environment: {e}");
    }
}

fn setup_environment() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("the sshd tests must run as root (sshd switches to the test user)".into());
    }
    if !Path::new(SSHD).exists() {
        return Err(format!(
            "{SSHD} is missing: install openssh-server (apt-get install -y openssh-server)"
        ));
    }
    fs::create_dir_all("/run/sshd").map_err(|e| format!("mkdir /run/sshd: {e}"))?;
    raise_nofile_limit();
    ensure_test_user()
}

/// Raises the soft open-file limit to the hard one (inherited by sshd and kamo children).
fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn run(cmd: &mut Command, stdin: &str) -> Result<std::process::Output, String> {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{desc}: {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .map_err(|e| format!("{desc}: writing stdin: {e}"))?;
    child.wait_with_output().map_err(|e| format!("{desc}: {e}"))
}

fn run_ok(cmd: &mut Command, stdin: &str) -> Result<String, String> {
    let desc = format!("{cmd:?}");
    let out = run(cmd, stdin)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{desc} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs `cmd`, retrying (bounded) while another process holds the passwd/shadow locks.
fn run_retrying(cmd: &mut Command, stdin: &str, ok_codes: &[i32]) -> Result<(), String> {
    let desc = format!("{cmd:?}");
    let mut last = String::new();
    for _ in 0..50 {
        let out = run(cmd, stdin)?;
        let code = out.status.code().unwrap_or(-1);
        if out.status.success() || ok_codes.contains(&code) {
            return Ok(());
        }
        last = format!(
            "{desc} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

/// Creates or repairs [`TEST_USER`]: `/bin/sh`, the known password, not locked or expired, no
/// rc files, and `kamotest ALL=(ALL) ALL` (password required, never cached) in
/// `/etc/sudoers.d/kamotest`.
/// Serialised across test processes by a lock file.
pub fn ensure_test_user() -> Result<(), String> {
    let lock = File::create("/run/kamo-test-user.lock").map_err(|e| format!("lock file: {e}"))?;
    lock.lock()
        .map_err(|e| format!("locking /run/kamo-test-user.lock: {e}"))?;

    let exists = Command::new("id")
        .arg("-u")
        .arg(TEST_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("id: {e}"))?
        .success();
    if !exists {
        // Exit code 9: the user exists already (created meanwhile by someone else).
        run_retrying(
            Command::new("useradd").args(["-m", "-s", "/bin/sh", TEST_USER]),
            "",
            &[9],
        )?;
    }
    run_retrying(
        Command::new("usermod").args(["-s", "/bin/sh", TEST_USER]),
        "",
        &[],
    )?;
    run_retrying(
        &mut Command::new("chpasswd"),
        &format!("{TEST_USER}:{TEST_PASSWORD}\n"),
        &[],
    )?;
    // Never expire the account or its password (sshd checks both itself with UsePAM no).
    run_retrying(
        Command::new("chage").args(["-E", "-1", "-I", "-1", "-m", "0", "-M", "99999", TEST_USER]),
        "",
        &[],
    )?;

    // `passwd -S` prints "kamotest P ..." for a usable password ("L": locked, "NP": none).
    let status = run_ok(Command::new("passwd").args(["-S", TEST_USER]), "")?;
    if status.split_whitespace().nth(1) != Some("P") {
        return Err(format!("{TEST_USER}'s password is not usable: {status}"));
    }

    let passwd = run_ok(Command::new("getent").args(["passwd", TEST_USER]), "")?;
    let home = passwd
        .trim()
        .split(':')
        .nth(5)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("no home in {passwd:?}"))?
        .to_string();
    for rc in [
        ".bashrc",
        ".bash_profile",
        ".bash_login",
        ".profile",
        ".bash_logout",
        ".kshrc",
        ".shrc",
    ] {
        let p = Path::new(&home).join(rc);
        if p.exists() {
            fs::remove_file(&p).map_err(|e| format!("rm {}: {e}", p.display()))?;
        }
    }

    let sudoers = "/etc/sudoers.d/kamotest";
    // Every sudo asks for the password (no cached timestamp) and prints no first-time lecture,
    // so become tests see the same prompt each time.
    let wanted =
        format!("Defaults:{TEST_USER} timestamp_timeout=0, !lecture\n{TEST_USER} ALL=(ALL) ALL\n");
    if fs::read_to_string(sudoers).ok().as_deref() != Some(wanted.as_str()) {
        // sudo skips files whose name contains a '.': the temp file is never read by sudo.
        let tmp = "/etc/sudoers.d/kamotest.tmp";
        fs::write(tmp, &wanted).map_err(|e| format!("write {tmp}: {e}"))?;
        fs::set_permissions(tmp, fs::Permissions::from_mode(0o440))
            .map_err(|e| format!("chmod {tmp}: {e}"))?;
        run_ok(Command::new("visudo").args(["-cf", tmp]), "")?;
        fs::rename(tmp, sudoers).map_err(|e| format!("rename to {sudoers}: {e}"))?;
    }
    drop(lock);
    Ok(())
}
