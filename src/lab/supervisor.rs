//! The lab supervisor: one background process per lab that starts every node's sshd, keeps
//! track of them by PID, and carries out what nodes and operators ask for: a `reboot` run on a
//! node, or `kamo lab fault NODE ...`.
//!
//! Why a process of its own: a reboot must bring a node's sshd back after the process that
//! asked for it (a shell on that node) is gone, and faults must outlive the command that set
//! them. Requests are files in `<lab>/ctl/` (`NODE.ACTION`), so a stand-in running inside a
//! node's namespaces can ask with nothing but a write; the supervisor acknowledges each by
//! writing `NODE.ACTION.done`. It stops its nodes and exits on SIGTERM (`kamo lab down`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::{Lab, NodeSpec, disk, node, write_atomic};
use crate::error::Error;

/// Requests the supervisor understands.
pub const ACTIONS: &[&str] = &[
    "reboot",
    "down",
    "up",
    "hang",
    "hostkey-change",
    "slow",
    "disk-full",
    "clear",
];

/// The latency the `slow` fault adds to every chunk of data, each way.
pub const SLOW_DELAY: Duration = Duration::from_millis(200);

/// The longest a lab runs unattended (its main loop is bounded).
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Up,
    Down,
    Hung,
    Rebooting,
    Slow,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Hung => "hung",
            State::Rebooting => "rebooting",
            State::Slow => "slow",
        }
    }
}

struct Running {
    spec: NodeSpec,
    child: Option<Child>,
    state: State,
    start_at: Option<Instant>,
    /// When the node last started, and how many quick failures in a row it had: a node whose
    /// old namespace is still being torn down (its overlay work directories busy) fails to
    /// mount; it is started again a little later, a bounded number of times.
    started: Instant,
    retries: u32,
    /// The `slow` fault: a delaying proxy on the node's address while its sshd listens on
    /// another port.
    proxy: Option<tokio::task::JoinHandle<()>>,
}

/// Every process below `root` (children, grandchildren, ...), from /proc.
#[must_use]
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    // Bounded: each pid is visited once, and there are finitely many.
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &parent_of {
            if pp == p && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

fn signal_tree(root: u32, sig: Signal) {
    let mut all = descendants(root);
    all.push(root);
    for pid in all {
        if let Ok(p) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(p), sig);
        }
    }
}

fn spawn_node(lab: &Lab, spec: &NodeSpec) -> Result<Child, Error> {
    spawn_node_with(lab, spec, "sshd_config")
}

fn spawn_node_with(lab: &Lab, spec: &NodeSpec, config: &str) -> Result<Child, Error> {
    let d = node::dir(&lab.dir, &spec.name);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.join("sshd.log"))
        .map_err(|e| Error::io("cannot open", &d.join("sshd.log"), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Error::io("cannot open", &d.join("sshd.log"), e))?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::Other(format!("cannot find the kamo binary: {e}")))?;
    let child = Command::new(exe)
        .args(["lab", "node", "--config", config, "--dir"])
        .arg(&lab.dir)
        .arg(&spec.name)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| Error::Other(format!("cannot start node {}: {e}", spec.name)))?;
    if let Some(pid) = child.id() {
        let _ = write_atomic(&d.join("pid"), &format!("{pid}\n"));
    }
    Ok(child)
}

fn write_state(lab: &Lab, name: &str, state: State) {
    let _ = write_atomic(
        &node::dir(&lab.dir, name).join("state"),
        &format!("{}\n", state.as_str()),
    );
}

async fn stop(r: &mut Running) {
    if let Some(mut c) = r.child.take() {
        if let Some(pid) = c.id() {
            signal_tree(pid, Signal::SIGCONT);
            signal_tree(pid, Signal::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(5), c.wait())
            .await
            .is_err()
        {
            if let Some(pid) = c.id() {
                signal_tree(pid, Signal::SIGKILL);
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), c.wait()).await;
        }
    }
}

/// Waits (bounded) until `addr:port` accepts connections.
pub async fn wait_listening(addr: &str, port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect((addr, port)).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Runs the supervisor of the lab in `dir` until SIGTERM.
pub async fn run(dir: &Path) -> Result<(), Error> {
    let lab = Lab::load(dir)?;
    let ctl = lab.ctl_dir();
    std::fs::create_dir_all(&ctl).map_err(|e| Error::io("cannot create", &ctl, e))?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Other(format!("cannot listen for SIGTERM: {e}")))?;
    // A lab starts without faults (a disk-full left by a supervisor that was killed included).
    for spec in &lab.nodes {
        let _ = std::fs::remove_file(disk::marker(&lab.dir, &spec.name));
    }
    let mut nodes: Vec<Running> = Vec::new();
    for spec in &lab.nodes {
        let child = spawn_node(&lab, spec)?;
        nodes.push(Running {
            spec: spec.clone(),
            child: Some(child),
            state: State::Up,
            start_at: None,
            started: Instant::now(),
            retries: 0,
            proxy: None,
        });
    }
    tracing::info!("{} nodes spawned", nodes.len());
    // One node at a time, in start order: polling all at once would flood the machine with
    // refused connections while the last nodes are still starting.
    let mut ready = Vec::with_capacity(lab.nodes.len());
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in &lab.nodes {
        let left = deadline.saturating_duration_since(Instant::now());
        ready.push(wait_listening(&n.address, n.port, left.max(Duration::from_millis(500))).await);
    }
    let down: Vec<&str> = lab
        .nodes
        .iter()
        .zip(&ready)
        .filter(|(_, ok)| !**ok)
        .map(|(n, _)| n.name.as_str())
        .collect();
    for n in &nodes {
        write_state(&lab, &n.spec.name, State::Up);
    }
    let ready_file = dir.join("ready");
    if down.is_empty() {
        let _ = write_atomic(&ready_file, "ok\n");
    } else {
        let _ = write_atomic(&ready_file, &format!("failed: {}\n", down.join(" ")));
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while started.elapsed() < MAX_LIFETIME {
        tokio::select! {
            _ = term.recv() => break,
            _ = tick.tick() => {}
        }
        handle_requests(&lab, &ctl, &mut nodes).await;
        for r in &mut nodes {
            if r.state == State::Rebooting && r.start_at.is_some_and(|t| Instant::now() >= t) {
                r.start_at = None;
                match spawn_node(&lab, &r.spec) {
                    Ok(c) => {
                        r.child = Some(c);
                        r.state = State::Up;
                        r.started = Instant::now();
                    }
                    Err(_) => r.state = State::Down,
                }
                write_state(&lab, &r.spec.name, r.state);
            }
            if let Some(c) = &mut r.child
                && let Ok(Some(_)) = c.try_wait()
            {
                r.child = None;
                if r.started.elapsed() < Duration::from_secs(5) && r.retries < 10 {
                    // Failed while starting: try again shortly (see `Running::retries`).
                    r.retries += 1;
                    r.state = State::Rebooting;
                    r.start_at = Some(Instant::now() + Duration::from_millis(500));
                } else {
                    // An sshd that died by itself: the node is down until `up` or `clear`.
                    r.retries = 0;
                    r.state = State::Down;
                }
                write_state(&lab, &r.spec.name, r.state);
            }
        }
    }
    futures::future::join_all(nodes.iter_mut().map(stop)).await;
    for n in &nodes {
        write_state(&lab, &n.spec.name, State::Down);
        let _ = std::fs::remove_file(disk::marker(&lab.dir, &n.spec.name));
    }
    let _ = std::fs::remove_file(&ready_file);
    let _ = std::fs::remove_file(Lab::supervisor_pid_file(dir));
    Ok(())
}

async fn handle_requests(lab: &Lab, ctl: &Path, nodes: &mut [Running]) {
    let Ok(rd) = std::fs::read_dir(ctl) else {
        return;
    };
    let mut requests: Vec<(PathBuf, String, String)> = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if Path::new(&name).extension().is_some_and(|e| e == "done") {
            continue;
        }
        if let Some((node, action)) = name.split_once('.')
            && ACTIONS.contains(&action)
        {
            requests.push((e.path(), node.to_owned(), action.to_owned()));
        }
    }
    requests.sort();
    let mut acks: HashMap<PathBuf, String> = HashMap::new();
    for (path, name, action) in requests {
        let _ = std::fs::remove_file(&path);
        let Some(r) = nodes.iter_mut().find(|r| r.spec.name == name) else {
            acks.insert(path, format!("error: no node {name}\n"));
            continue;
        };
        let result = act(lab, r, &action).await;
        write_state(lab, &r.spec.name, r.state);
        acks.insert(path, result);
    }
    for (path, text) in acks {
        let mut done = path.into_os_string();
        done.push(".done");
        let _ = write_atomic(&PathBuf::from(done), &text);
    }
}

/// The port a slowed node's sshd moves to (its own port stays with the proxy).
fn slow_port(port: u16) -> u16 {
    port.wrapping_add(20000).max(1024)
}

/// Ends the `slow` fault's proxy (the node's sshd is restarted on its own port by the caller).
fn unslow(r: &mut Running) -> bool {
    match r.proxy.take() {
        Some(p) => {
            p.abort();
            true
        }
        None => false,
    }
}

async fn slow(lab: &Lab, r: &mut Running) -> String {
    if r.proxy.is_some() {
        return "ok\n".into();
    }
    stop(r).await;
    let d = node::dir(&lab.dir, &r.spec.name);
    let alt = slow_port(r.spec.port);
    let config = std::fs::read_to_string(d.join("sshd_config"))
        .unwrap_or_default()
        .replace(
            &format!("ListenAddress {}:{}", r.spec.address, r.spec.port),
            &format!("ListenAddress {}:{alt}", r.spec.address),
        );
    if let Err(e) = write_atomic(&d.join("sshd_config.slow"), &config) {
        return format!("error: {e}\n");
    }
    match spawn_node_with(lab, &r.spec, "sshd_config.slow") {
        Ok(c) => {
            r.child = Some(c);
            r.started = Instant::now();
        }
        Err(e) => return format!("error: {e}\n"),
    }
    if !wait_listening(&r.spec.address, alt, Duration::from_secs(10)).await {
        return "error: the node's sshd did not come up on its slow port\n".into();
    }
    let addr = r.spec.address.clone();
    let listener = match tokio::net::TcpListener::bind((addr.as_str(), r.spec.port)).await {
        Ok(l) => l,
        Err(e) => return format!("error: cannot listen on {addr}:{}: {e}\n", r.spec.port),
    };
    r.proxy = Some(tokio::spawn(proxy(listener, addr, alt, SLOW_DELAY)));
    r.state = State::Slow;
    "ok\n".into()
}

/// Forwards every connection to `addr:to`, holding each chunk back by `delay`. Runs until
/// aborted (`clear`); its connections end with it.
async fn proxy(listener: tokio::net::TcpListener, addr: String, to: u16, delay: Duration) {
    let mut conns = tokio::task::JoinSet::new();
    while let Ok((inbound, _)) = listener.accept().await {
        let addr = addr.clone();
        conns.spawn(async move {
            let Ok(outbound) = tokio::net::TcpStream::connect((addr.as_str(), to)).await else {
                return;
            };
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            let _ = tokio::join!(pipe(ri, wo, delay), pipe(ro, wi, delay));
        });
        while conns.try_join_next().is_some() {}
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tokio::time::sleep(delay).await;
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

async fn act(lab: &Lab, r: &mut Running, action: &str) -> String {
    if action == "slow" {
        return slow(lab, r).await;
    }
    if action == "disk-full" {
        return disk_full(lab, r).await;
    }
    // `clear` and `up` also give a full disk its space back.
    let marker = disk::marker(&lab.dir, &r.spec.name);
    if matches!(action, "clear" | "up") && marker.exists() {
        let _ = std::fs::remove_file(&marker);
        if let Err(e) = disk_helper(lab, r, "free").await {
            return format!("error: {e}\n");
        }
    }
    // Every other action starts from the node on its own port.
    if unslow(r) {
        stop(r).await;
        if action == "clear" {
            start(lab, r).await;
            r.start_at = None;
            return "ok\n".into();
        }
        if matches!(action, "up" | "hang") {
            start(lab, r).await;
        }
    }
    match action {
        "reboot" => {
            // The command that asked gets its exit status back before the node goes away.
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop(r).await;
            r.state = State::Rebooting;
            r.start_at = Some(Instant::now() + Duration::from_secs(lab.reboot_seconds));
            "ok\n".into()
        }
        "down" => {
            stop(r).await;
            r.state = State::Down;
            r.start_at = None;
            "ok\n".into()
        }
        "hang" => {
            if let Some(pid) = r.child.as_ref().and_then(Child::id) {
                signal_tree(pid, Signal::SIGSTOP);
                r.state = State::Hung;
                "ok\n".into()
            } else {
                "error: the node is down\n".into()
            }
        }
        "hostkey-change" => {
            stop(r).await;
            let key = node::dir(&lab.dir, &r.spec.name).join("host_key");
            // The first key is kept, so `clear` can undo the change.
            let orig = key.with_extension("orig");
            if !orig.exists() {
                let _ = std::fs::rename(&key, &orig);
                let _ = std::fs::rename(key.with_extension("pub"), orig.with_extension("orig.pub"));
            }
            let res = node::keygen(&key, &format!("root@{}", r.spec.name));
            start(lab, r).await;
            match res {
                Ok(()) => "ok\n".into(),
                Err(e) => format!("error: {e}\n"),
            }
        }
        "clear" => {
            let key = node::dir(&lab.dir, &r.spec.name).join("host_key");
            let orig = key.with_extension("orig");
            if orig.exists() {
                stop(r).await;
                let _ = std::fs::rename(&orig, &key);
                let _ = std::fs::rename(orig.with_extension("orig.pub"), key.with_extension("pub"));
                start(lab, r).await;
            } else if let Some(pid) = r.child.as_ref().and_then(Child::id) {
                signal_tree(pid, Signal::SIGCONT);
                r.state = State::Up;
            } else {
                start(lab, r).await;
            }
            r.start_at = None;
            "ok\n".into()
        }
        // up
        _ => {
            if let Some(pid) = r.child.as_ref().and_then(Child::id) {
                signal_tree(pid, Signal::SIGCONT);
                r.state = State::Up;
            } else {
                start(lab, r).await;
            }
            r.start_at = None;
            "ok\n".into()
        }
    }
}

/// The `disk-full` fault (see [`disk`]): recorded by its marker, which a booting node obeys,
/// and put in place at once on a node that is running.
async fn disk_full(lab: &Lab, r: &mut Running) -> String {
    let marker = disk::marker(&lab.dir, &r.spec.name);
    if let Err(e) = write_atomic(&marker, "") {
        return format!("error: cannot write {}: {e}\n", marker.display());
    }
    if matches!(r.state, State::Up | State::Hung | State::Slow)
        && let Err(e) = disk_helper(lab, r, "fill").await
    {
        let _ = std::fs::remove_file(&marker);
        return format!("error: {e}\n");
    }
    "ok\n".into()
}

/// Runs `kamo lab disk NODE fill|free` in the running node's mount namespace (nothing to do
/// when the node has no process: it boots with the marker's say).
async fn disk_helper(lab: &Lab, r: &Running, action: &str) -> Result<(), String> {
    let Some(pid) = r.child.as_ref().and_then(Child::id) else {
        return Ok(());
    };
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the kamo binary: {e}"))?;
    let run = Command::new(exe)
        .args(["lab", "disk", "--dir"])
        .arg(&lab.dir)
        .args(["--pid", &pid.to_string(), &r.spec.name, action])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .map_err(|_| format!("{} the disk of {} took over 30 s", action, r.spec.name))?
        .map_err(|e| format!("cannot run kamo lab disk: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    Err(text.trim().trim_start_matches("error: ").to_owned())
}

async fn start(lab: &Lab, r: &mut Running) {
    match spawn_node(lab, &r.spec) {
        Ok(c) => {
            r.child = Some(c);
            r.started = Instant::now();
            r.state = if wait_listening(&r.spec.address, r.spec.port, Duration::from_secs(10)).await
            {
                State::Up
            } else {
                State::Down
            };
        }
        Err(_) => r.state = State::Down,
    }
}
