//! The Kubernetes cluster the kube stand-ins share: what etcd, the API server and helm's
//! release secrets hold on a real cluster, kept as JSON files in `<lab>/cluster/`.
//!
//! Every node of a lab sees the same lab directory, so `kubeadm join` on one node and
//! `kubectl get nodes` on another meet here. Several nodes run tools at once (kamo drives
//! hosts in parallel), so every read-modify-write holds [`Lock`], an `O_EXCL` lock file: no
//! new dependency, works on every filesystem the lab directory may sit on, and a holder that
//! died is detected by the file's age. Every write is a temp file plus `rename`, so a reader
//! without the lock never sees half a file.
//!
//! Also here: what several tools need alike: kubeconfig resolution (kubectl and helm fail the
//! same way without a cluster), installed package versions, clocks and table layout.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Node;

/// The Kubernetes version kubeadm and friends report when the package DB says nothing.
pub const DEFAULT_KUBE_VERSION: &str = "1.28.2";

/// A bootstrap token and when it stops working (kubeadm's default TTL is 24 hours).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    pub token: String,
    pub expires: u64,
}

/// An object recorded by `kubectl apply` (or a helm release's workload).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Object {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
    pub created: u64,
    /// sha256 of the manifest, to tell `configured` from `unchanged`.
    pub digest: String,
    /// The manifest as applied.
    pub manifest: serde_json::Value,
}

/// A helm release with its revisions (newest last).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Release {
    pub name: String,
    pub namespace: String,
    pub revisions: Vec<Revision>,
}

/// One revision of a release.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revision {
    pub revision: u32,
    /// Unix time in nanoseconds (helm prints it to the nanosecond).
    pub updated_ns: u128,
    /// `deployed`, `superseded`, `failed`, ...
    pub status: String,
    pub chart: String,
    pub chart_version: String,
    pub app_version: String,
    pub description: String,
    #[serde(default)]
    pub values: serde_json::Value,
}

/// The cluster: written by `kubeadm init`, removed by `kubeadm reset` on the control plane.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Cluster {
    /// The node `kubeadm init` ran on.
    pub control_plane: String,
    /// `--apiserver-advertise-address` (the control plane node's address by default).
    pub advertise_address: String,
    /// `--control-plane-endpoint`, `host[:port]`.
    pub control_plane_endpoint: Option<String>,
    /// `v1.28.2`.
    pub version: String,
    pub pod_network_cidr: Option<String>,
    pub service_cidr: String,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// Hex sha256 the join command pins (`--discovery-token-ca-cert-hash sha256:<this>`).
    pub ca_hash: String,
    pub tokens: Vec<Token>,
    /// When `kubeadm init` ran (unix seconds).
    pub created: u64,
    /// When the leaf certificates were last issued (init or `kubeadm certs renew`).
    pub certs_issued: u64,
    /// Namespace name -> creation time.
    pub namespaces: BTreeMap<String, u64>,
    pub objects: Vec<Object>,
    pub releases: Vec<Release>,
}

/// A node that joined the cluster: `<lab>/cluster/nodes/<name>.json`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct NodeRecord {
    pub name: String,
    pub address: String,
    pub gpu: bool,
    pub control_plane: bool,
    pub joined: u64,
    /// kubelet version, `v1.28.2`.
    pub version: String,
    pub os_image: String,
    pub kernel: String,
    pub container_runtime: String,
    pub unschedulable: bool,
    pub labels: BTreeMap<String, String>,
    /// `key[=value]:Effect`.
    pub taints: Vec<String>,
}

/// The control-plane taint kubeadm puts on the node it initializes.
pub const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane:NoSchedule";

impl Cluster {
    /// `host:port` clients and joining nodes dial.
    #[must_use]
    pub fn endpoint(&self) -> String {
        match &self.control_plane_endpoint {
            Some(e) if e.contains(':') => e.clone(),
            Some(e) => format!("{e}:6443"),
            None => format!("{}:6443", self.advertise_address),
        }
    }

    /// Whether `host:port` reaches this cluster's API server.
    #[must_use]
    pub fn serves(&self, host_port: &str, control_plane_name: &str) -> bool {
        let (host, port) = split_host_port(host_port);
        if port != "6443" && host_port != self.endpoint() {
            return false;
        }
        let endpoint = self.endpoint();
        let endpoint_host = split_host_port(&endpoint).0;
        [
            self.advertise_address.as_str(),
            endpoint_host,
            control_plane_name,
        ]
        .contains(&host)
    }
}

/// Splits `host:port` (port `6443` when missing).
#[must_use]
pub fn split_host_port(s: &str) -> (&str, &str) {
    match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => (h, p),
        _ => (s, "6443"),
    }
}

/// Holds `<lab>/cluster/.lock` while alive.
pub struct Lock {
    path: PathBuf,
}

/// How long to wait for another node's tool before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(20);
/// A lock file older than this was left by a tool that died.
const LOCK_STALE: Duration = Duration::from_secs(60);

impl Lock {
    /// Takes the cluster lock, waiting up to `LOCK_WAIT`.
    pub fn take(dir: &Path) -> Result<Lock, String> {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(".lock");
        let start = Instant::now();
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(Lock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > LOCK_STALE);
                    if stale {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    if start.elapsed() > LOCK_WAIT {
                        return Err(format!(
                            "kamo lab: the cluster state is locked by another tool ({})",
                            path.display()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes `bytes` to `path` through a temp file and `rename`, creating parent directories.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.{}.{}.tmp", std::process::id(), now_ns()));
    let result = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(format!("{}: {e}", path.display()));
    }
    Ok(())
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    match fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes a JSON file atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// The cluster-wide state of one lab.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    #[must_use]
    pub fn new(node: &Node) -> Store {
        Store {
            dir: node.cluster_dir(),
        }
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the lock; hold it across a read-modify-write.
    pub fn lock(&self) -> Result<Lock, String> {
        Lock::take(&self.dir)
    }

    pub fn cluster(&self) -> Result<Option<Cluster>, String> {
        read_json(&self.dir.join("cluster.json"))
    }

    pub fn save_cluster(&self, cluster: &Cluster) -> Result<(), String> {
        write_json(&self.dir.join("cluster.json"), cluster)
    }

    fn nodes_dir(&self) -> PathBuf {
        self.dir.join("nodes")
    }

    /// Every node of the cluster, sorted by name.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, String> {
        let mut nodes = Vec::new();
        let Ok(entries) = fs::read_dir(self.nodes_dir()) else {
            return Ok(nodes);
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            if let Some(n) = read_json::<NodeRecord>(&path)? {
                nodes.push(n);
            }
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nodes)
    }

    pub fn node(&self, name: &str) -> Result<Option<NodeRecord>, String> {
        read_json(&self.nodes_dir().join(format!("{name}.json")))
    }

    pub fn save_node(&self, node: &NodeRecord) -> Result<(), String> {
        write_json(&self.nodes_dir().join(format!("{}.json", node.name)), node)
    }

    pub fn remove_node(&self, name: &str) -> Result<bool, String> {
        let path = self.nodes_dir().join(format!("{name}.json"));
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Removes the cluster and every node record (`kubeadm reset` on the control plane).
    pub fn wipe(&self) -> Result<(), String> {
        for path in [self.dir.join("cluster.json")] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        match fs::remove_dir_all(self.nodes_dir()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("{}: {e}", self.nodes_dir().display())),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Clocks

/// Unix time in seconds.
#[must_use]
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix time in nanoseconds.
#[must_use]
pub fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Date and time (UTC) of a unix time: (year, month 1-12, day, hour, minute, second, weekday 0=Sunday).
#[must_use]
#[allow(
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::cast_possible_truncation
)] // every value is bounded by the calendar arithmetic
pub fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days_from_civil, inverted.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = (days + 4).rem_euclid(7) as u32;
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
        weekday,
    )
}

pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
pub const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// RFC 3339 in UTC, to the second (`2024-05-01T10:00:00Z`), as the API server prints times.
#[must_use]
pub fn rfc3339(secs: u64) -> String {
    let (y, mo, d, h, mi, s, _) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Go's `time.ANSIC` in UTC: `Thu Oct  5 07:20:38 2023` (helm status, nvidia-smi).
#[must_use]
pub fn ansic(secs: u64) -> String {
    let (y, mo, d, h, mi, s, wd) = civil(secs);
    format!(
        "{} {} {d:>2} {h:02}:{mi:02}:{s:02} {y}",
        WEEKDAYS[wd as usize],
        MONTHS[mo as usize - 1]
    )
}

/// kubectl's AGE column (`k8s.io/apimachinery/pkg/util/duration.HumanDuration`).
#[must_use]
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 60 * 2 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// kubectl's AGE of something created at `created`.
#[must_use]
pub fn age(created: u64) -> String {
    human_duration(i64::try_from(now()).unwrap_or(0) - i64::try_from(created).unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// Tables

/// Go's `text/tabwriter` with `flags = 0` and blank padding, as kubectl and kubeadm use it:
/// each cell but the last of a row is padded to its column's widest cell plus `padding`, and
/// to at least `min_width`.
#[must_use]
pub fn tabwrite(rows: &[Vec<String>], min_width: usize, padding: usize) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                widths[i] = widths[i].max((cell.chars().count() + padding).max(min_width));
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                out.push_str(&format!("{cell:<w$}", w = widths[i]));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

/// gosuri/uitable as helm uses it: every cell padded to its column's width, cells joined by a
/// tab.
#[must_use]
pub fn uitable(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(&cells.join("\t"));
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Randomness (no rand crate: names and tokens only need to differ, not to be secret)

/// `n` pseudo-random bytes.
#[must_use]
pub fn random_bytes(n: usize) -> Vec<u8> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut seed = Sha256::new();
    seed.update(now_ns().to_le_bytes());
    seed.update(std::process::id().to_le_bytes());
    seed.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let mut block = seed.finalize().to_vec();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.extend_from_slice(&block);
        block = Sha256::digest(&block).to_vec();
    }
    out.truncate(n);
    out
}

/// `n` characters of `alphabet` derived from `seed` (stable for the same seed).
#[must_use]
pub fn chars_from(seed: &[u8], alphabet: &[u8], n: usize) -> String {
    let mut block = Sha256::digest(seed).to_vec();
    let mut out = String::new();
    while out.len() < n {
        for b in &block {
            if out.len() == n {
                break;
            }
            out.push(alphabet[usize::from(*b) % alphabet.len()] as char);
        }
        block = Sha256::digest(&block).to_vec();
    }
    out
}

/// Hex sha256.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A PEM block of `der`.
#[must_use]
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER bytes inside the first PEM block of `text`.
#[must_use]
pub fn pem_der(text: &str) -> Option<Vec<u8>> {
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// The pin `kubeadm join` compares: hex sha256 of the CA certificate's DER.
#[must_use]
pub fn ca_hash(ca_pem: &str) -> String {
    sha256_hex(&pem_der(ca_pem).unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------
// Environment, kubeconfig, installed packages

#[cfg(not(test))]
#[must_use]
pub fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
thread_local! {
    /// Unit tests set the stand-ins' environment here instead of the process's.
    pub static TEST_ENV: std::cell::RefCell<BTreeMap<String, String>> =
        const { std::cell::RefCell::new(BTreeMap::new()) };
}

#[cfg(test)]
#[must_use]
pub fn env(key: &str) -> Option<String> {
    TEST_ENV.with(|e| e.borrow().get(key).cloned())
}

/// Whether the tool runs as root (kubeadm's IsPrivilegedUser check, exportfs's permission
/// check). Unit tests play an ordinary user by setting `TEST_NOT_ROOT`.
#[cfg(not(test))]
#[must_use]
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(test)]
#[must_use]
pub fn is_root() -> bool {
    env("TEST_NOT_ROOT").is_none()
}

/// The home directory of the user running the tool, as the node sees it.
#[must_use]
pub fn home() -> String {
    env("HOME").unwrap_or_else(|| "/root".into())
}

/// Where a client found its cluster.
#[derive(Debug)]
pub enum Reach {
    /// No kubeconfig: clients dial localhost:8080.
    NoConfig,
    /// The kubeconfig names `server` (`host:port`), which does not answer.
    Refused(String),
    /// The server answers but its certificate is not signed by the kubeconfig's CA.
    UnknownAuthority(String),
    /// Connected.
    Up(Box<Cluster>),
}

/// Follows kubectl's kubeconfig rules: `--kubeconfig`, else `$KUBECONFIG`, else
/// `~/.kube/config`; then dials the server it names.
pub fn reach(node: &Node, kubeconfig_flag: Option<&str>) -> Result<Reach, String> {
    let path = if let Some(p) = kubeconfig_flag {
        let path = node.path(p);
        if !path.exists() {
            return Err(format!("error: stat {p}: no such file or directory"));
        }
        Some(path)
    } else if let Some(list) = env("KUBECONFIG") {
        list.split(':')
            .filter(|p| !p.is_empty())
            .map(|p| node.path(p))
            .find(|p| p.exists())
    } else {
        Some(node.path(&format!("{}/.kube/config", home()))).filter(|p| p.exists())
    };
    let Some(path) = path else {
        return Ok(Reach::NoConfig);
    };
    let text = fs::read_to_string(&path).map_err(|e| format!("error: {}: {e}", path.display()))?;
    let config: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| {
        format!(
            "error: error loading config file \"{}\": {e}",
            path.display()
        )
    })?;
    let Some((server, ca)) = kubeconfig_server(&config) else {
        return Ok(Reach::NoConfig);
    };
    let host_port = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let store = Store::new(node);
    let Some(cluster) = store.cluster()? else {
        return Ok(Reach::Refused(host_port));
    };
    if !cluster.serves(&host_port, &cluster.control_plane) {
        return Ok(Reach::Refused(host_port));
    }
    if let Some(ca) = ca
        && ca_hash(&ca) != cluster.ca_hash
    {
        return Ok(Reach::UnknownAuthority(host_port));
    }
    Ok(Reach::Up(Box::new(cluster)))
}

/// The current context's server URL and CA certificate (PEM) in a kubeconfig.
fn kubeconfig_server(config: &serde_yaml::Value) -> Option<(String, Option<String>)> {
    let current = config.get("current-context")?.as_str()?;
    let context = config
        .get("contexts")?
        .as_sequence()?
        .iter()
        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(current))?;
    let cluster_name = context.get("context")?.get("cluster")?.as_str()?;
    let cluster = config
        .get("clusters")?
        .as_sequence()?
        .iter()
        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(cluster_name))?
        .get("cluster")?;
    let server = cluster.get("server")?.as_str()?.to_string();
    let ca = cluster
        .get("certificate-authority-data")
        .and_then(|d| d.as_str())
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    Some((server, ca))
}

/// A kubeconfig as kubeadm writes them.
#[must_use]
pub fn kubeconfig(server: &str, ca_pem: &str, user: &str) -> String {
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let cert = pem("CERTIFICATE", &random_bytes(720));
    let key = pem("RSA PRIVATE KEY", &random_bytes(1190));
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: https://{server}\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: {user}\n  name: {user}@kubernetes\ncurrent-context: {user}@kubernetes\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n",
        ca = b64(ca_pem.as_bytes()),
        cert = b64(cert.as_bytes()),
        key = b64(key.as_bytes()),
    )
}

/// The node's package database as the apt stand-in keeps it, or `None` on a bare test root
/// (no database and no dpkg status file), where callers fall back to defaults.
fn package_db(node: &Node) -> Option<super::packages::Db> {
    let has_db =
        node.state_dir().join("dpkg.json").exists() || node.path("/var/lib/dpkg/status").exists();
    if !has_db {
        return None;
    }
    super::packages::Db::load(node).ok()
}

/// The installed version of Debian package `name` on this node, upstream part only
/// (`1.28.2-1.1` -> `1.28.2`), from the apt stand-in's database (a lab node never reads this
/// machine's own dpkg status). `None` when not installed; `Some("")` on a bare test root, so
/// callers fall back to defaults.
#[must_use]
pub fn package_version(node: &Node, name: &str) -> Option<String> {
    let upstream = |v: &str| {
        let v = v.split_once(':').map_or(v, |(_, rest)| rest);
        v.split('-').next().unwrap_or(v).to_string()
    };
    let Some(db) = package_db(node) else {
        return Some(String::new());
    };
    db.packages
        .get(name)
        .filter(|e| e.status == "installed")
        .map(|e| upstream(&e.version))
}

/// Names and versions of installed packages starting with `prefix`; `None` on a bare test
/// root.
#[must_use]
pub fn packages_with_prefix(node: &Node, prefix: &str) -> Option<Vec<(String, String)>> {
    let db = package_db(node)?;
    Some(
        db.packages
            .iter()
            .filter(|(n, e)| n.starts_with(prefix) && e.status == "installed")
            .map(|(n, e)| (n.clone(), e.version.clone()))
            .collect(),
    )
}

/// `v1.28.2` for package `name`, or the default when the node has no package DB.
#[must_use]
pub fn kube_version(node: &Node, name: &str) -> String {
    match package_version(node, name) {
        Some(v) if !v.is_empty() => format!("v{v}"),
        _ => format!("v{DEFAULT_KUBE_VERSION}"),
    }
}

/// The node's OS as `/etc/os-release` names it (`Ubuntu 22.04.4 LTS`).
#[must_use]
pub fn os_image(node: &Node) -> String {
    fs::read_to_string(node.path("/etc/os-release"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| format!("Ubuntu {} LTS", node.os_release))
}

/// The running kernel (the host's: lab nodes share it).
#[must_use]
pub fn kernel() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "5.15.0-91-generic".into(), |s| s.trim().to_string())
}

/// Parses `--flag value` / `--flag=value` / boolean flags out of `args`.
pub struct Args {
    pub positional: Vec<String>,
    pub flags: Vec<(String, Option<String>)>,
    /// Everything after `--`.
    pub rest: Vec<String>,
}

impl Args {
    /// `takes_value(name)` says whether flag `name` (without dashes) consumes a value.
    /// Unknown flags are reported by name as cobra does: `unknown flag: --x`.
    pub fn parse(
        args: &[String],
        takes_value: impl Fn(&str) -> Option<bool>,
    ) -> Result<Args, String> {
        let mut out = Args {
            positional: Vec::new(),
            flags: Vec::new(),
            rest: Vec::new(),
        };
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            i += 1;
            if a == "--" {
                out.rest = args[i..].to_vec();
                break;
            }
            if let Some(long) = a.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                match takes_value(name) {
                    None => return Err(format!("unknown flag: --{name}")),
                    Some(true) => {
                        let value = match inline {
                            Some(v) => v,
                            None if i < args.len() => {
                                i += 1;
                                args[i - 1].clone()
                            }
                            None => {
                                return Err(format!("flag needs an argument: --{name}"));
                            }
                        };
                        out.flags.push((name.to_string(), Some(value)));
                    }
                    Some(false) => out.flags.push((name.to_string(), inline)),
                }
            } else if let Some(short) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
                let mut chars: Vec<char> = short.chars().collect();
                let mut j = 0;
                while j < chars.len() {
                    let c = chars[j].to_string();
                    j += 1;
                    match takes_value(&c) {
                        None => {
                            return Err(format!("unknown shorthand flag: '{c}' in -{short}"));
                        }
                        Some(true) => {
                            let rest: String = chars.split_off(j).into_iter().collect();
                            let rest = rest.strip_prefix('=').unwrap_or(&rest).to_string();
                            let value = if !rest.is_empty() {
                                rest
                            } else if i < args.len() {
                                i += 1;
                                args[i - 1].clone()
                            } else {
                                return Err(format!("flag needs an argument: '{c}' in -{short}"));
                            };
                            out.flags.push((c, Some(value)));
                            break;
                        }
                        Some(false) => out.flags.push((c, None)),
                    }
                }
            } else {
                out.positional.push(a.clone());
            }
        }
        Ok(out)
    }

    /// The last value of any of `names`.
    #[must_use]
    pub fn value(&self, names: &[&str]) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| names.contains(&n.as_str()))
            .and_then(|(_, v)| v.as_deref())
    }

    /// Every value of any of `names`, in order.
    #[must_use]
    pub fn values(&self, names: &[&str]) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }

    /// Whether a boolean flag is set (`--x`, `--x=true`).
    #[must_use]
    pub fn has(&self, names: &[&str]) -> bool {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| names.contains(&n.as_str()))
            .is_some_and(|(_, v)| v.as_deref().is_none_or(|v| v != "false"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_696_490_438), "2023-10-05T07:20:38Z");
        assert_eq!(ansic(1_696_490_438), "Thu Oct  5 07:20:38 2023");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn human_durations_follow_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(300), "5m");
        assert_eq!(human_duration(3 * 3600 + 120), "3h2m");
        assert_eq!(human_duration(20 * 3600), "20h");
        assert_eq!(human_duration(2 * 86_400), "2d");
        assert_eq!(human_duration(3 * 86_400 + 3600), "3d1h");
        assert_eq!(human_duration(40 * 86_400), "40d");
        assert_eq!(human_duration(3 * 365 * 86_400), "3y");
        assert_eq!(human_duration(-5), "<invalid>");
    }

    #[test]
    fn tabwriter_pads_all_but_the_last_cell() {
        let rows = vec![
            vec!["NAME".into(), "STATUS".into(), "AGE".into()],
            vec!["node01".into(), "Ready".into(), "5m".into()],
        ];
        assert_eq!(
            tabwrite(&rows, 6, 3),
            "NAME     STATUS   AGE\nnode01   Ready    5m\n"
        );
        assert_eq!(uitable(&rows), "NAME  \tSTATUS\tAGE\nnode01\tReady \t5m \n");
    }

    #[test]
    fn args_take_inline_separate_and_short_values() {
        let a: Vec<String> = [
            "-n",
            "ns",
            "--timeout=5s",
            "-owide",
            "x",
            "--",
            "psql",
            "-c",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let p = Args::parse(&a, |f| match f {
            "n" | "timeout" | "o" => Some(true),
            _ => None,
        })
        .unwrap();
        assert_eq!(p.value(&["n"]), Some("ns"));
        assert_eq!(p.value(&["timeout"]), Some("5s"));
        assert_eq!(p.value(&["o"]), Some("wide"));
        assert_eq!(p.positional, ["x"]);
        assert_eq!(p.rest, ["psql", "-c"]);
        let bad = Args::parse(&["--nope".to_string()], |_| None);
        assert_eq!(bad.err().unwrap(), "unknown flag: --nope");
    }

    #[test]
    fn lock_excludes_and_releases() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lock::take(dir.path()).unwrap();
        assert!(dir.path().join(".lock").exists());
        drop(first);
        assert!(!dir.path().join(".lock").exists());
        // Two threads incrementing a counter under the lock never lose an update.
        let path = dir.path().join("n");
        write_atomic(&path, b"0").unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let dir = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        let _lock = Lock::take(&dir).unwrap();
                        let p = dir.join("n");
                        let n: u32 = fs::read_to_string(&p).unwrap().parse().unwrap();
                        write_atomic(&p, (n + 1).to_string().as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(fs::read_to_string(&path).unwrap(), "100");
    }

    #[test]
    fn package_versions_from_json_or_dpkg_status() {
        let dir = tempfile::tempdir().unwrap();
        let node = Node {
            root: dir.path().to_path_buf(),
            ..Node::default()
        };
        assert_eq!(package_version(&node, "kubeadm").as_deref(), Some(""));
        fs::create_dir_all(node.path("/var/lib/dpkg")).unwrap();
        fs::write(
            node.path("/var/lib/dpkg/status"),
            "Package: kubeadm\nStatus: install ok installed\nVersion: 1.27.4-1.1\n\nPackage: helm\nStatus: deinstall ok config-files\nVersion: 3.1\n",
        )
        .unwrap();
        // A node with a dpkg status (this machine's, seen through the overlay) uses the
        // apt stand-in's database, never that file: a fresh node has no kubeadm.
        assert_eq!(package_version(&node, "kubeadm"), None);
        write_json(
            &node.state_dir().join("dpkg.json"),
            &serde_json::json!({"packages": {"kubeadm": {"version": "1.29.0-1.1", "status": "installed"}}, "lists": []}),
        )
        .unwrap();
        assert_eq!(kube_version(&node, "kubeadm"), "v1.29.0");
        assert_eq!(package_version(&node, "kubectl"), None);
    }
}

/// Test helpers comparing a stand-in's output with a fixture of the real tool's by shape.
#[cfg(test)]
pub mod shape {
    use std::collections::BTreeSet;

    use serde_json::Value;

    /// Reads `tests/fixtures/standin/<name>`.
    #[must_use]
    pub fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/standin")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// (name, start) of each column of a tabwriter header (names may hold single spaces).
    fn columns(header: &str) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        let bytes = header.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b' ' {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len()
                && !(bytes[i] == b' ' && bytes.get(i + 1).is_none_or(|b| *b == b' '))
            {
                i += 1;
            }
            out.push((header[start..i].to_string(), start));
        }
        out
    }

    /// Checks a kubectl/kubeadm table: returns its column names after checking that every
    /// row's cells start at the header's offsets and each column is exactly as wide as its
    /// widest cell plus three spaces (text/tabwriter with padding 3).
    #[must_use]
    pub fn tabwriter_columns(table: &str) -> Vec<String> {
        let lines: Vec<&str> = table.lines().collect();
        let cols = columns(lines[0]);
        for line in &lines {
            for (_, start) in cols.iter().skip(1) {
                assert!(
                    line.len() > *start,
                    "row too short for its columns: {line:?}"
                );
                assert_eq!(
                    &line[start - 1..*start],
                    " ",
                    "cell not aligned at {start}: {line:?}"
                );
            }
        }
        for w in cols.windows(2) {
            let (_, start) = &w[0];
            let (_, next) = &w[1];
            let widest = lines
                .iter()
                .map(|l| l[*start..*next].trim_end().len())
                .max()
                .unwrap_or(0);
            assert_eq!(
                next - start,
                (widest + 3).max(6),
                "column at {start} is not widest+3 in:\n{table}"
            );
        }
        cols.into_iter().map(|(n, _)| n).collect()
    }

    /// Checks a helm (uitable) table: cells joined by tabs, every column padded to one width.
    #[must_use]
    pub fn uitable_columns(table: &str) -> Vec<String> {
        let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split('\t').collect()).collect();
        for row in &rows {
            assert_eq!(row.len(), rows[0].len(), "ragged row in:\n{table}");
            for (i, cell) in row.iter().enumerate() {
                assert_eq!(
                    cell.chars().count(),
                    rows[0][i].chars().count(),
                    "column {i} not padded in:\n{table}"
                );
            }
        }
        rows[0].iter().map(|c| c.trim_end().to_string()).collect()
    }

    /// Every key path in a JSON document (`a.b[].c`).
    #[must_use]
    pub fn key_paths(v: &Value) -> BTreeSet<String> {
        fn walk(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
            match v {
                Value::Object(map) => {
                    for (k, v) in map {
                        let p = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        out.insert(p.clone());
                        walk(v, &p, out);
                    }
                }
                Value::Array(items) => {
                    for item in items {
                        walk(item, &format!("{prefix}[]"), out);
                    }
                }
                _ => {}
            }
        }
        let mut out = BTreeSet::new();
        walk(v, "", &mut out);
        out
    }

    /// Asserts every key path of `fixture` is in `ours`.
    pub fn assert_has_keys_of(ours: &Value, fixture: &Value) {
        let ours = key_paths(ours);
        let missing: Vec<_> = key_paths(fixture)
            .into_iter()
            .filter(|k| !ours.contains(k))
            .collect();
        assert!(missing.is_empty(), "missing JSON keys: {missing:?}");
    }

    #[test]
    fn fixtures_pass_their_own_checks() {
        for f in [
            "kubectl_get_nodes.txt",
            "kubectl_get_nodes_wide.txt",
            "kubectl_get_pods_all.txt",
            "kubectl_get_pods_wide.txt",
        ] {
            let _ = tabwriter_columns(&fixture(f));
        }
        let certs = fixture("kubeadm_certs_check_expiration.txt");
        let tables: Vec<&str> = certs.split("\n\n").collect();
        assert_eq!(
            tabwriter_columns(tables[1]),
            [
                "CERTIFICATE",
                "EXPIRES",
                "RESIDUAL TIME",
                "CERTIFICATE AUTHORITY",
                "EXTERNALLY MANAGED"
            ]
        );
        let _ = tabwriter_columns(tables[2]);
        assert_eq!(uitable_columns(&fixture("helm_history.txt")).len(), 6);
        assert_eq!(uitable_columns(&fixture("helm_list.txt")).len(), 7);
    }

    #[test]
    fn misaligned_tables_are_caught() {
        let bad = "NAME   STATUS\nnode01 Ready\n";
        assert!(std::panic::catch_unwind(|| tabwriter_columns(bad)).is_err());
        let wide = "NAME          STATUS\nnode01        Ready\n";
        assert!(std::panic::catch_unwind(|| tabwriter_columns(wide)).is_err());
        assert!(std::panic::catch_unwind(|| uitable_columns("A\tB\nlong\tx\n")).is_err());
    }
}
