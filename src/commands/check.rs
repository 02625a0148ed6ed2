//! `kamo check`: is this cluster fit for a deploy (preflight), and is the deploy healthy
//! (postflight)?
//!
//! The deploy tool's `check` printed `kubectl version`, `helm version` and `helm status` and
//! left the reading to the operator. kamo asks every host the questions that make deploys fail
//! halfway (reachable, sudo, OS release against the matrix, free disk, clock skew, ports already
//! taken, names that do not resolve) and, once the app is deployed, the questions that say it
//! works (Kubernetes answers, every node Ready, the Helm release deployed, the app version).
//! Each answer is one row: host, check, status (ok, warn, fail, skip), detail. Exit 2 when a
//! row failed.
//!
//! Shape: two read-only probes per host, each one remote command: the facts (no sudo), then a
//! sudo probe, which on the master also asks kubectl and helm. Everything is decided here, on
//! the workstation, from their output, so the rules are unit-tested without hosts.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::{CheckArgs, CheckPhase, OutputFormat};
use crate::commands::exec::{self, BecomeArgs, HostResult, Status as ExecStatus};
use crate::coordinator::matrix::Matrix;
use crate::error::{ExitCode, Result};
use crate::inventory::Inventory;

/// The app's Helm release and namespace.
pub const RELEASE: &str = "kamonohashi";
pub const NAMESPACE: &str = "kqi-system";
/// Where a deploy records itself on every node.
pub const DEPLOYED_JSON: &str = "/etc/kamonohashi/deployed.json";

/// Ports kubeadm needs free on a control-plane node and on every node.
const MASTER_PORTS: &[u16] = &[6443, 2379, 2380, 10250, 10257, 10259];
const NODE_PORTS: &[u16] = &[10250];

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub host: String,
    pub name: String,
    pub status: &'static str,
    pub detail: String,
}

fn row(host: &str, name: &str, status: &'static str, detail: impl Into<String>) -> Row {
    Row {
        host: host.to_owned(),
        name: name.to_owned(),
        status,
        detail: detail.into(),
    }
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    pub app_version: Option<String>,
    pub target_version: Option<String>,
    pub checks: Vec<Row>,
}

impl Report {
    #[must_use]
    pub fn failed(&self) -> usize {
        self.checks.iter().filter(|r| r.status == "fail").count()
    }
}

/// Settings the checks need, from the inventory.
pub struct Cluster {
    pub hosts: Vec<String>,
    pub master: Option<String>,
    pub storage: Option<String>,
    pub storage_paths: Vec<String>,
    pub k8s: Vec<String>,
    pub settings_version: Option<String>,
}

impl Cluster {
    pub fn from_inventory(inv: &Inventory, limit: &[String]) -> Result<Cluster> {
        let hosts = inv.select_limited("all", limit)?;
        let first = |g: &str| inv.select(g).ok().and_then(|v| v.into_iter().next());
        let master = first("kube-master");
        let storage = first("nfs-server");
        let vars = hosts.first().map(|h| inv.vars_for(h)).unwrap_or_default();
        let s = |k: &str| vars.get(k).and_then(Value::as_str).map(str::to_owned);
        let storage_paths = ["nfs_export_path", "minio_data_path"]
            .iter()
            .filter_map(|k| s(k))
            .collect();
        Ok(Cluster {
            k8s: inv.select("k8s-cluster").unwrap_or_default(),
            hosts,
            master,
            storage,
            storage_paths,
            settings_version: s("app_version"),
        })
    }
}

pub async fn run(args: CheckArgs) -> Result<ExitCode> {
    let sources = super::inventory_sources(&args.inventory)?;
    let inventory = Inventory::load(&sources)?;
    let cluster = Cluster::from_inventory(&inventory, &args.inventory.limit)?;
    let root = crate::coordinator::playbooks::root(args.playbooks.as_deref())?;
    let matrix = Matrix::load(&root)?;
    let opts = Options {
        phase: args.phase,
        version: args.version.clone(),
        max_skew: args.max_clock_skew,
        min_free_mib: args.min_free_mib,
        ports: true,
    };
    let report = gather(
        &args.connection,
        args.ask_become_pass,
        &inventory,
        &cluster,
        &matrix,
        &opts,
    )
    .await?;
    print(&report, args.output);
    Ok(if report.failed() > 0 {
        ExitCode::HostFailed
    } else {
        ExitCode::Ok
    })
}

/// What to check.
pub struct Options {
    pub phase: CheckPhase,
    pub version: Option<String>,
    pub max_skew: u64,
    pub min_free_mib: u64,
    /// Check that kubeadm's ports are free (not when the cluster is about to be cleaned).
    pub ports: bool,
}

/// Runs both probes on every host and judges the answers.
pub async fn gather(
    connection: &crate::cli::ConnectionArgs,
    ask_become_pass: bool,
    inventory: &Inventory,
    cluster: &Cluster,
    matrix: &Matrix,
    opts: &Options,
) -> Result<Report> {
    let forks = connection.forks as usize;
    let plain = BecomeArgs {
        r#become: false,
        user: None,
        ask_pass: false,
    };
    let (ssh, hosts_plan) = exec::prepare_hosts(connection, &plain, inventory, &cluster.hosts)?;
    let facts_cmd: HashMap<String, String> = cluster
        .hosts
        .iter()
        .map(|h| (h.clone(), facts_script(cluster, h)))
        .collect();
    let sent = now();
    let facts = exec::run_all(&ssh, hosts_plan, &facts_cmd, forks).await;
    let received = now();
    let sudo = BecomeArgs {
        r#become: true,
        user: None,
        ask_pass: ask_become_pass,
    };
    let reachable: Vec<String> = facts
        .iter()
        .filter(|r| r.status != ExecStatus::Unreachable)
        .map(|r| r.host.clone())
        .collect();
    let (ssh, hosts_plan) = exec::prepare_hosts(connection, &sudo, inventory, &reachable)?;
    let want_post = opts.phase != CheckPhase::Pre;
    let sudo_cmd: HashMap<String, String> = reachable
        .iter()
        .map(|h| {
            let post = want_post && cluster.master.as_deref() == Some(h.as_str());
            (
                h.clone(),
                if post {
                    POST_SCRIPT.to_owned()
                } else {
                    "true".to_owned()
                },
            )
        })
        .collect();
    let sudo = exec::run_all(&ssh, hosts_plan, &sudo_cmd, forks).await;
    Ok(judge(
        cluster,
        matrix,
        opts,
        &facts,
        &sudo,
        f64::midpoint(sent, received),
    ))
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The read-only facts probe: `key=value` lines.
fn facts_script(cluster: &Cluster, host: &str) -> String {
    let q = |s: &str| crate::transport::quote::quote(s).unwrap_or_else(|_| "''".to_owned());
    let mut s = String::from(
        "export LC_ALL=C\n\
         . /etc/os-release 2>/dev/null\n\
         echo \"os_id=$ID\"\n\
         echo \"os_version=$VERSION_ID\"\n\
         echo \"epoch=$(date +%s)\"\n\
         echo \"free_kb /var=$(df -Pk /var 2>/dev/null | awk 'NR==2{print $4}')\"\n",
    );
    if cluster.storage.as_deref() == Some(host) {
        for p in &cluster.storage_paths {
            // The path may not exist before the first deploy: measure its nearest ancestor.
            s.push_str(&format!(
                "p={}; i=0; while [ ! -e \"$p\" ] && [ $i -lt 64 ]; do p=$(dirname \"$p\"); i=$((i+1)); done\n\
                 echo \"free_kb {}=$(df -Pk \"$p\" 2>/dev/null | awk 'NR==2{{print $4}}')\"\n",
                q(p),
                p.replace(['\n', '='], "_")
            ));
        }
    }
    s.push_str(
        "echo \"listening=$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4==\"0A\"{split($2,a,\":\"); printf \"%s \", a[2]}')\"\n",
    );
    for other in cluster.k8s.iter().filter(|o| *o != host) {
        s.push_str(&format!(
            "if getent hosts {n} >/dev/null 2>&1; then echo \"resolves={o}\"; else echo \"unresolved={o}\"; fi\n",
            n = q(other),
            o = other.replace('\n', "_")
        ));
    }
    s.push_str(&format!(
        "[ -r {DEPLOYED_JSON} ] && echo \"deployed=$(tr -d '\\n' < {DEPLOYED_JSON})\"\nexit 0\n"
    ));
    s
}

/// The master's postflight probe, run with sudo; sections separated by marker lines.
const POST_SCRIPT: &str = "export LC_ALL=C KUBECONFIG=/etc/kubernetes/admin.conf\n\
    echo '@@kubectl-version'; kubectl version -o json 2>&1; echo \"@@rc=$?\"\n\
    echo '@@nodes'; kubectl get nodes -o json 2>&1; echo \"@@rc=$?\"\n\
    echo '@@helm'; helm status kamonohashi -n kqi-system -o json 2>&1; echo \"@@rc=$?\"\n\
    exit 0\n";

/// Splits the postflight output into (section, text, rc).
fn sections(out: &str) -> HashMap<String, (String, i32)> {
    let mut map = HashMap::new();
    let mut name: Option<String> = None;
    let mut body = String::new();
    for line in out.lines() {
        if let Some(rc) = line.strip_prefix("@@rc=") {
            if let Some(n) = name.take() {
                map.insert(
                    n,
                    (std::mem::take(&mut body), rc.trim().parse().unwrap_or(1)),
                );
            }
        } else if let Some(n) = line.strip_prefix("@@") {
            name = Some(n.to_owned());
            body.clear();
        } else if name.is_some() {
            body.push_str(line);
            body.push('\n');
        }
    }
    map
}

fn kv(out: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// Decides every row from the probes' output.
#[allow(clippy::too_many_lines)]
#[must_use]
pub fn judge(
    cluster: &Cluster,
    matrix: &Matrix,
    opts: &Options,
    facts: &[HostResult],
    sudo: &[HostResult],
    local_epoch: f64,
) -> Report {
    let mut rows = Vec::new();
    let mut deployed_versions: Vec<(String, String)> = Vec::new();
    let facts_of: HashMap<&str, Vec<(String, String)>> = facts
        .iter()
        .filter(|r| r.status == ExecStatus::Ok)
        .map(|r| (r.host.as_str(), kv(&r.stdout)))
        .collect();
    for r in facts {
        if let Some(d) = facts_of
            .get(r.host.as_str())
            .and_then(|f| f.iter().find(|(k, _)| k == "deployed"))
            .and_then(|(_, v)| serde_json::from_str::<Value>(v).ok())
            .and_then(|v| v["app_version"].as_str().map(str::to_owned))
        {
            deployed_versions.push((r.host.clone(), d));
        }
    }
    let deployed = cluster
        .master
        .as_ref()
        .and_then(|m| deployed_versions.iter().find(|(h, _)| h == m))
        .or(deployed_versions.first())
        .map(|(_, v)| v.clone());
    let is_deployed = deployed.is_some();
    let target = opts
        .version
        .clone()
        .or_else(|| cluster.settings_version.clone())
        .or_else(|| deployed.clone());
    let row_of = target.as_deref().and_then(|v| matrix.lookup(v));
    let pre = opts.phase != CheckPhase::Post;
    let post = match opts.phase {
        CheckPhase::Pre => false,
        CheckPhase::Post => true,
        CheckPhase::Auto => is_deployed,
    };
    for r in facts {
        let h = r.host.as_str();
        match r.status {
            ExecStatus::Unreachable => {
                rows.push(row(
                    h,
                    "reachable",
                    "fail",
                    r.error.clone().unwrap_or_default(),
                ));
                continue;
            }
            ExecStatus::Failed => {
                rows.push(row(
                    h,
                    "reachable",
                    "fail",
                    format!(
                        "the probe failed: {}",
                        crate::ui::sanitize(&r.stderr).trim()
                    ),
                ));
                continue;
            }
            ExecStatus::Ok => rows.push(row(h, "reachable", "ok", "ssh works")),
        }
        let f = &facts_of[h];
        let get = |k: &str| f.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str());
        match sudo.iter().find(|s| s.host == h) {
            Some(s) if s.status == ExecStatus::Ok => rows.push(row(h, "sudo", "ok", "sudo works")),
            Some(s) => rows.push(row(
                h,
                "sudo",
                "fail",
                first_line(&s.stderr).unwrap_or_else(|| s.error.clone().unwrap_or_default()),
            )),
            None => rows.push(row(h, "sudo", "skip", "not asked")),
        }
        if pre {
            rows.push(os_row(
                h,
                get("os_id"),
                get("os_version"),
                target.as_deref(),
                row_of,
                matrix,
            ));
            for (k, v) in f.iter().filter(|(k, _)| k.starts_with("free_kb ")) {
                let path = &k["free_kb ".len()..];
                rows.push(match v.trim().parse::<u64>() {
                    Ok(kb) if kb / 1024 >= opts.min_free_mib => row(
                        h,
                        &format!("disk {path}"),
                        "ok",
                        format!("{} MiB free", kb / 1024),
                    ),
                    Ok(kb) => row(
                        h,
                        &format!("disk {path}"),
                        "fail",
                        format!("{} MiB free, {} MiB needed", kb / 1024, opts.min_free_mib),
                    ),
                    Err(_) => row(h, &format!("disk {path}"), "warn", "cannot measure"),
                });
            }
            rows.push(
                match get("epoch").and_then(|e| e.trim().parse::<f64>().ok()) {
                    Some(e) => {
                        let skew = (e - local_epoch).abs();
                        // One second of resolution on each side, plus the round trip's share.
                        #[allow(clippy::cast_precision_loss)]
                        let allowed = opts.max_skew as f64 + 1.5;
                        if skew <= allowed {
                            row(h, "clock", "ok", format!("{skew:.0}s from the workstation"))
                        } else {
                            row(
                                h,
                                "clock",
                                "fail",
                                format!(
                                    "{skew:.0}s from the workstation (at most {}s)",
                                    opts.max_skew
                                ),
                            )
                        }
                    }
                    None => row(h, "clock", "warn", "no time from the host"),
                },
            );
            if opts.ports && !is_deployed && cluster.k8s.iter().any(|k| k == h) {
                rows.push(ports_row(
                    h,
                    get("listening").unwrap_or(""),
                    cluster.master.as_deref() == Some(h),
                ));
            }
            let unresolved: Vec<&str> = f
                .iter()
                .filter(|(k, _)| k == "unresolved")
                .map(|(_, v)| v.as_str())
                .collect();
            if cluster.k8s.iter().any(|k| k == h) {
                rows.push(if unresolved.is_empty() {
                    row(h, "names", "ok", "every cluster node resolves")
                } else {
                    row(
                        h,
                        "names",
                        "fail",
                        format!("cannot resolve {}", unresolved.join(", ")),
                    )
                });
            }
        }
    }
    if post {
        post_rows(
            cluster,
            sudo,
            deployed.as_deref(),
            &deployed_versions,
            &mut rows,
        );
    }
    Report {
        app_version: deployed,
        target_version: target,
        checks: rows,
    }
}

fn first_line(b: &[u8]) -> Option<String> {
    let s = crate::ui::sanitize(b);
    s.lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
}

fn os_row(
    h: &str,
    id: Option<&str>,
    version: Option<&str>,
    target: Option<&str>,
    entry: Option<&crate::coordinator::matrix::Entry>,
    matrix: &Matrix,
) -> Row {
    let (id, version) = (id.unwrap_or(""), version.unwrap_or(""));
    if id != "ubuntu" {
        return row(
            h,
            "os",
            "fail",
            format!("{id} {version}: KAMONOHASHI runs on Ubuntu"),
        );
    }
    let Some(target) = target else {
        return row(
            h,
            "os",
            "warn",
            format!("Ubuntu {version}; no app version to hold it against"),
        );
    };
    let Some(entry) = entry else {
        return row(
            h,
            "os",
            "warn",
            format!("Ubuntu {version}; version {target} is not in the matrix"),
        );
    };
    let tested = entry.ubuntu.as_ref();
    if let Ok(d) = matrix.deployable(target) {
        if !d.ubuntu.iter().any(|u| u == version) {
            return row(
                h,
                "os",
                "fail",
                format!(
                    "Ubuntu {version}: kamo deploys {target} on Ubuntu {} only",
                    d.ubuntu.join(", ")
                ),
            );
        }
        return match tested {
            Some(t) if !t.iter().any(|u| u == version) => row(
                h,
                "os",
                "warn",
                format!(
                    "Ubuntu {version}: {target} was published as tested on Ubuntu {}",
                    t.join(", ")
                ),
            ),
            _ => row(h, "os", "ok", format!("Ubuntu {version} for {target}")),
        };
    }
    match tested {
        Some(t) if t.iter().any(|u| u == version) => {
            row(h, "os", "ok", format!("Ubuntu {version} for {target}"))
        }
        Some(t) => row(
            h,
            "os",
            "fail",
            format!("Ubuntu {version}: {target} needs Ubuntu {}", t.join(", ")),
        ),
        None => row(
            h,
            "os",
            "warn",
            format!("Ubuntu {version}: no Ubuntu release known for {target}"),
        ),
    }
}

/// Listening ports from /proc/net/tcp* (hex) against kubeadm's.
fn ports_row(h: &str, listening: &str, master: bool) -> Row {
    let open: Vec<u16> = listening
        .split_whitespace()
        .filter_map(|p| u16::from_str_radix(p, 16).ok())
        .collect();
    let need = if master { MASTER_PORTS } else { NODE_PORTS };
    let taken: Vec<String> = need
        .iter()
        .filter(|p| open.contains(p))
        .map(ToString::to_string)
        .collect();
    if taken.is_empty() {
        row(
            h,
            "ports",
            "ok",
            format!(
                "free: {}",
                need.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else {
        row(
            h,
            "ports",
            "fail",
            format!("already in use: {}", taken.join(", ")),
        )
    }
}

fn post_rows(
    cluster: &Cluster,
    sudo: &[HostResult],
    deployed: Option<&str>,
    deployed_versions: &[(String, String)],
    rows: &mut Vec<Row>,
) {
    let Some(master) = cluster.master.as_deref() else {
        rows.push(row(
            "-",
            "kubernetes",
            "fail",
            "no kube-master host in the inventory",
        ));
        return;
    };
    let Some(out) = sudo
        .iter()
        .find(|s| s.host == master && s.status == ExecStatus::Ok)
    else {
        rows.push(row(
            master,
            "kubernetes",
            "fail",
            "the master did not answer the postflight probe",
        ));
        return;
    };
    let sec = sections(&String::from_utf8_lossy(&out.stdout));
    let json_of = |name: &str| -> std::result::Result<Value, String> {
        match sec.get(name) {
            Some((body, 0)) => {
                serde_json::from_str(body).map_err(|e| format!("unreadable output: {e}"))
            }
            Some((body, rc)) => Err(format!(
                "rc={rc}: {}",
                body.lines().next().unwrap_or("").trim()
            )),
            None => Err("no answer".to_owned()),
        }
    };
    match json_of("kubectl-version") {
        Ok(v) => rows.push(row(
            master,
            "kubernetes",
            "ok",
            format!(
                "server {} (client {})",
                v["serverVersion"]["gitVersion"].as_str().unwrap_or("?"),
                v["clientVersion"]["gitVersion"].as_str().unwrap_or("?")
            ),
        )),
        Err(e) => rows.push(row(
            master,
            "kubernetes",
            "fail",
            format!("kubectl version: {e}"),
        )),
    }
    match json_of("nodes") {
        Ok(v) => {
            let items = v["items"].as_array().cloned().unwrap_or_default();
            for h in &cluster.k8s {
                let node = items.iter().find(|n| n["metadata"]["name"] == h.as_str());
                rows.push(match node {
                    None => row(h, "node ready", "fail", "not a member of the cluster"),
                    Some(n) => {
                        let ready = n["status"]["conditions"]
                            .as_array()
                            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                            .map(|c| c["status"] == "True");
                        if ready == Some(true) {
                            row(h, "node ready", "ok", "Ready")
                        } else {
                            row(h, "node ready", "fail", "NotReady")
                        }
                    }
                });
            }
        }
        Err(e) => rows.push(row(
            master,
            "node ready",
            "fail",
            format!("kubectl get nodes: {e}"),
        )),
    }
    match json_of("helm") {
        Ok(v) => {
            let status = v["info"]["status"].as_str().unwrap_or("?");
            let app = v["chart"]["metadata"]["appVersion"].as_str().unwrap_or("?");
            rows.push(row(
                master,
                "app release",
                if status == "deployed" { "ok" } else { "fail" },
                format!(
                    "{RELEASE} in {NAMESPACE}: {status}, app {app}, revision {}",
                    v["version"]
                ),
            ));
            if let Some(d) = deployed
                && d != app
            {
                rows.push(row(
                    master,
                    "app version",
                    "fail",
                    format!("{DEPLOYED_JSON} says {d}, the release runs {app}"),
                ));
            }
        }
        Err(e) => rows.push(row(
            master,
            "app release",
            "fail",
            format!("helm status: {e}"),
        )),
    }
    let differ: Vec<String> = deployed_versions
        .iter()
        .filter(|(_, v)| Some(v.as_str()) != deployed)
        .map(|(h, v)| format!("{h}: {v}"))
        .collect();
    rows.push(match (deployed, differ.is_empty()) {
        (None, _) => row(
            master,
            "app version",
            "fail",
            format!("no {DEPLOYED_JSON}: nothing deployed"),
        ),
        (Some(d), true) => row(master, "app version", "ok", format!("{d} on every node")),
        (Some(d), false) => row(
            master,
            "app version",
            "fail",
            format!("{d} on the master, but {}", differ.join(", ")),
        ),
    });
}

fn print(report: &Report, format: OutputFormat) {
    match format {
        OutputFormat::Json => crate::ui::print_json(&json!(report)),
        OutputFormat::Text => {
            let rows = report
                .checks
                .iter()
                .map(|r| {
                    vec![
                        r.host.clone(),
                        r.name.clone(),
                        r.status.to_uppercase(),
                        r.detail.clone(),
                    ]
                })
                .collect();
            crate::ui::print_table(&["HOST", "CHECK", "STATUS", "DETAIL"], rows);
            let failed = report.failed();
            crate::ui::print_text(&format!(
                "{} checks, {failed} failed; deployed app version: {}",
                report.checks.len(),
                report.app_version.as_deref().unwrap_or("none")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ok(host: &str, out: &str) -> HostResult {
        HostResult {
            host: host.into(),
            status: ExecStatus::Ok,
            rc: Some(0),
            signal: None,
            stdout: out.as_bytes().to_vec(),
            stderr: Vec::new(),
            duration: Duration::ZERO,
            error: None,
        }
    }

    fn cluster() -> Cluster {
        Cluster {
            hosts: vec!["m1".into(), "c1".into()],
            master: Some("m1".into()),
            storage: Some("m1".into()),
            storage_paths: vec!["/export/kamonohashi".into()],
            k8s: vec!["m1".into(), "c1".into()],
            settings_version: Some("2.1.0".into()),
        }
    }

    fn matrix() -> Matrix {
        Matrix::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks")).unwrap()
    }

    fn opts(phase: CheckPhase) -> Options {
        Options {
            phase,
            version: None,
            max_skew: 5,
            min_free_mib: 1024,
            ports: true,
        }
    }

    fn find<'a>(r: &'a Report, host: &str, name: &str) -> &'a Row {
        r.checks
            .iter()
            .find(|c| c.host == host && c.name == name)
            .unwrap_or_else(|| panic!("no {host}/{name} in {:#?}", r.checks))
    }

    #[test]
    fn a_fit_bare_cluster_passes_preflight() {
        let m1 = "os_id=ubuntu\nos_version=22.04\nepoch=1000\nfree_kb /var=4194304\nfree_kb /export/kamonohashi=4194304\nlistening=0016 \nresolves=c1\n";
        let c1 = "os_id=ubuntu\nos_version=22.04\nepoch=1001\nfree_kb /var=4194304\nlistening=\nresolves=m1\n";
        let r = judge(
            &cluster(),
            &matrix(),
            &opts(CheckPhase::Auto),
            &[ok("m1", m1), ok("c1", c1)],
            &[ok("m1", ""), ok("c1", "")],
            1000.0,
        );
        assert_eq!(r.failed(), 0, "{:#?}", r.checks);
        assert_eq!(find(&r, "m1", "ports").status, "ok");
        assert_eq!(find(&r, "m1", "disk /export/kamonohashi").status, "ok");
        assert!(r.app_version.is_none());
        assert!(
            !r.checks.iter().any(|c| c.name == "node ready"),
            "no postflight before a deploy"
        );
    }

    #[test]
    fn each_preflight_problem_fails_its_row() {
        let m1 = "os_id=ubuntu\nos_version=16.04\nepoch=1100\nfree_kb /var=1024\nlistening=192B 0016\nunresolved=c1\n";
        let r = judge(
            &cluster(),
            &matrix(),
            &opts(CheckPhase::Pre),
            &[ok("m1", m1)],
            &[],
            1000.0,
        );
        assert_eq!(find(&r, "m1", "os").status, "fail");
        assert!(find(&r, "m1", "os").detail.contains("on Ubuntu 22.04 only"));
        assert_eq!(find(&r, "m1", "disk /var").status, "fail");
        assert_eq!(find(&r, "m1", "clock").status, "fail");
        assert_eq!(find(&r, "m1", "ports").detail, "already in use: 6443");
        assert_eq!(find(&r, "m1", "names").detail, "cannot resolve c1");
        assert_eq!(find(&r, "m1", "sudo").status, "skip");
    }

    #[test]
    fn an_unreachable_host_fails_and_the_others_go_on() {
        let mut down = ok("c1", "");
        down.status = ExecStatus::Unreachable;
        down.error = Some("connect: Connection refused".into());
        let m1 = "os_id=ubuntu\nos_version=22.04\nepoch=1000\nresolves=c1\n";
        let r = judge(
            &cluster(),
            &matrix(),
            &opts(CheckPhase::Pre),
            &[ok("m1", m1), down],
            &[ok("m1", "")],
            1000.0,
        );
        assert_eq!(find(&r, "c1", "reachable").status, "fail");
        assert_eq!(find(&r, "m1", "os").status, "ok");
    }

    #[test]
    fn postflight_reads_kubectl_and_helm() {
        let deployed = "deployed={\"app_version\": \"2.1.0\"}\n";
        let m1 = format!("os_id=ubuntu\nos_version=22.04\nepoch=1000\n{deployed}");
        let post = "@@kubectl-version\n{\"clientVersion\":{\"gitVersion\":\"v1.29.15\"},\"serverVersion\":{\"gitVersion\":\"v1.29.15\"}}\n@@rc=0\n\
                    @@nodes\n{\"items\":[{\"metadata\":{\"name\":\"m1\"},\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}},{\"metadata\":{\"name\":\"c1\"},\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"}]}}]}\n@@rc=0\n\
                    @@helm\n{\"info\":{\"status\":\"deployed\"},\"chart\":{\"metadata\":{\"appVersion\":\"2.1.0\"}},\"version\":2}\n@@rc=0\n";
        let r = judge(
            &cluster(),
            &matrix(),
            &opts(CheckPhase::Auto),
            &[
                ok("m1", &m1),
                ok(
                    "c1",
                    &format!("os_id=ubuntu\nos_version=22.04\nepoch=1000\n{deployed}"),
                ),
            ],
            &[ok("m1", post), ok("c1", "")],
            1000.0,
        );
        assert_eq!(r.app_version.as_deref(), Some("2.1.0"));
        assert_eq!(
            find(&r, "m1", "kubernetes").detail,
            "server v1.29.15 (client v1.29.15)"
        );
        assert_eq!(find(&r, "m1", "node ready").status, "ok");
        assert_eq!(find(&r, "c1", "node ready").status, "fail");
        assert_eq!(find(&r, "m1", "app release").status, "ok");
        assert!(
            !r.checks.iter().any(|c| c.name == "ports"),
            "ports are taken once deployed"
        );
        let v = r.checks.iter().find(|c| c.name == "app version").unwrap();
        assert_eq!(v.status, "ok", "{v:?}");
    }

    #[test]
    fn postflight_without_a_release_fails() {
        let post = "@@kubectl-version\nThe connection to the server localhost:8080 was refused\n@@rc=1\n@@nodes\nx\n@@rc=1\n@@helm\nError: release: not found\n@@rc=1\n";
        let r = judge(
            &cluster(),
            &matrix(),
            &opts(CheckPhase::Post),
            &[ok("m1", "os_id=ubuntu\n")],
            &[ok("m1", post)],
            1000.0,
        );
        assert!(find(&r, "m1", "kubernetes").detail.contains("refused"));
        assert!(
            find(&r, "m1", "app release")
                .detail
                .contains("release: not found")
        );
        assert_eq!(
            r.checks
                .iter()
                .rfind(|c| c.name == "app version")
                .unwrap()
                .status,
            "fail"
        );
    }
}
