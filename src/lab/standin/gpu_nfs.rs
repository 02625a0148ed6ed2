//! `nvidia-smi`, `exportfs` and `showmount` stand-ins.
//!
//! nvidia-smi answers on nodes the lab marks as having a GPU, and only once an NVIDIA driver
//! package is installed when the node has a package database (exit 9 with the real message
//! otherwise, which is what a playbook's "is the driver up" check sees on a fresh machine).
//! exportfs reads the node's own /etc/exports and publishes what it exports to the cluster
//! directory, so `showmount -e HOST` on another node sees it, by name or by address.

use std::fs;

use serde::{Deserialize, Serialize};

use super::cluster::{self, Args};
use super::{Io, Node};

const DEFAULT_DRIVER: &str = "535.104.05";
const GPU_NAME: &str = "Tesla V100-SXM2-16GB";
const GPU_MEMORY_MIB: u32 = 16384;

const NO_DRIVER: &str = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n\n";

/// The driver version, or None when the node has no working driver.
fn driver(node: &Node) -> Option<String> {
    if !node.gpu {
        return None;
    }
    match cluster::packages_with_prefix(node, "nvidia-driver-") {
        None => Some(DEFAULT_DRIVER.into()),
        Some(found) => {
            let utils = cluster::packages_with_prefix(node, "nvidia-utils-").unwrap_or_default();
            let (name, version) = found.into_iter().chain(utils).next()?;
            let upstream = version.split('-').next().unwrap_or_default().to_string();
            if upstream.contains('.') {
                Some(upstream)
            } else {
                // A catalog that records only the branch (nvidia-driver-535).
                let branch = name.rsplit('-').next().unwrap_or("535");
                Some(format!("{branch}.104.05"))
            }
        }
    }
}

fn cuda_for(driver: &str) -> &'static str {
    match driver
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(535)
    {
        0..=449 => "10.2",
        450..=459 => "11.0",
        460..=469 => "11.2",
        470..=509 => "11.4",
        510..=514 => "11.6",
        515..=519 => "11.7",
        520..=524 => "11.8",
        525..=529 => "12.0",
        530..=534 => "12.1",
        535..=544 => "12.2",
        545..=549 => "12.3",
        550..=559 => "12.4",
        560..=569 => "12.6",
        _ => "12.8",
    }
}

fn gpu_uuid(node: &Node) -> String {
    let h = cluster::sha256_hex(format!("gpu/{}", node.name).as_bytes());
    format!(
        "GPU-{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `nvidia-smi`.
pub fn nvidia_smi(node: &Node, args: &[String], io: &mut Io) -> i32 {
    let Some(drv) = driver(node) else {
        io.out(NO_DRIVER);
        return 9;
    };
    let mut query = None;
    let mut format = None;
    let mut list = false;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let mut take = |flag: &str| -> Option<String> {
            if let Some(v) = arg.strip_prefix(&format!("{flag}=")) {
                Some(v.to_string())
            } else if arg == flag && i < args.len() {
                i += 1;
                Some(args[i - 1].clone())
            } else {
                None
            }
        };
        if let Some(q) = take("--query-gpu") {
            query = Some(q);
        } else if let Some(f) = take("--format") {
            format = Some(f);
        } else if arg == "-L" || arg == "--list-gpus" {
            list = true;
        } else {
            io.out(
                "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n\n",
            );
            return 2;
        }
    }
    if list {
        io.out(&format!("GPU 0: {GPU_NAME} (UUID: {})\n", gpu_uuid(node)));
        return 0;
    }
    if let Some(q) = query {
        return query_gpu(node, &drv, &q, format.as_deref(), io);
    }
    io.out(&table(node, &drv));
    0
}

fn query_gpu(node: &Node, drv: &str, query: &str, format: Option<&str>, io: &mut Io) -> i32 {
    let Some(format) = format else {
        io.out("Missing --format argument.\n\n");
        return 2;
    };
    let opts: Vec<&str> = format.split(',').map(str::trim).collect();
    if !opts.contains(&"csv") {
        io.out(&format!("\"{format}\" is not a valid format.\n\n"));
        return 2;
    }
    let units = !opts.contains(&"nounits");
    let mut header = Vec::new();
    let mut row = Vec::new();
    for field in query.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let (h, v, unit): (&str, String, &str) = match field {
            "name" | "gpu_name" => ("name", GPU_NAME.into(), ""),
            "memory.total" => ("memory.total [MiB]", GPU_MEMORY_MIB.to_string(), " MiB"),
            "memory.used" => ("memory.used [MiB]", "0".into(), " MiB"),
            "memory.free" => (
                "memory.free [MiB]",
                (GPU_MEMORY_MIB - 253).to_string(),
                " MiB",
            ),
            "driver_version" => ("driver_version", drv.into(), ""),
            "uuid" | "gpu_uuid" => ("uuid", gpu_uuid(node), ""),
            "index" => ("index", "0".into(), ""),
            "count" => ("count", "1".into(), ""),
            "pci.bus_id" | "gpu_bus_id" => ("pci.bus_id", "00000000:00:1E.0".into(), ""),
            "temperature.gpu" => ("temperature.gpu", "34".into(), ""),
            "utilization.gpu" => ("utilization.gpu [%]", "0".into(), " %"),
            "persistence_mode" => ("persistence_mode", "Enabled".into(), ""),
            other => {
                io.out(&format!(
                    "Field \"{other}\" is not a valid field to query.\n\n"
                ));
                return 2;
            }
        };
        header.push(if units {
            h.to_string()
        } else {
            h.split(" [").next().unwrap_or(h).to_string()
        });
        row.push(if units { format!("{v}{unit}") } else { v });
    }
    if !opts.contains(&"noheader") {
        io.out(&format!("{}\n", header.join(", ")));
    }
    io.out(&format!("{}\n", row.join(", ")));
    0
}

/// The default report, in the layout of the 535 driver series.
fn table(node: &Node, drv: &str) -> String {
    let _ = node;
    let bar = format!("+{}+", "-".repeat(87));
    let split = format!("+{}+{}+{}+", "-".repeat(41), "-".repeat(22), "-".repeat(22));
    let mut out = format!("{}       \n", cluster::ansic(cluster::now()));
    out.push_str(&format!("{bar}\n"));
    out.push_str(&format!(
        "| {:<34}{:<29}{:<23}|\n",
        format!("NVIDIA-SMI {drv}"),
        format!("Driver Version: {drv}"),
        format!("CUDA Version: {}", cuda_for(drv))
    ));
    out.push_str("|-----------------------------------------+----------------------+----------------------+\n");
    out.push_str("| GPU  Name                 Persistence-M | Bus-Id        Disp.A | Volatile Uncorr. ECC |\n");
    out.push_str("| Fan  Temp   Perf          Pwr:Usage/Cap |         Memory-Usage | GPU-Util  Compute M. |\n");
    out.push_str("|                                         |                      |               MIG M. |\n");
    out.push_str("|=========================================+======================+======================|\n");
    out.push_str(&format!(
        "|{:>4}  {:<29}{:>4}  | {} {:>3} |{:>21} |\n",
        0, GPU_NAME, "On", "00000000:00:1E.0", "Off", "0"
    ));
    out.push_str(&format!(
        "| {:<3}   {:>3}    {:<2}{:>24} |{:>21} |{:>8}{:>13} |\n",
        "N/A",
        "34C",
        "P0",
        "24W / 300W",
        format!("0MiB / {GPU_MEMORY_MIB}MiB"),
        "0%",
        "Default"
    ));
    out.push_str(&format!("|{:41}|{:22}|{:>21} |\n", "", "", "N/A"));
    out.push_str(&format!("{split}\n"));
    out.push_str(&format!("{:89}\n", ""));
    out.push_str(&format!("{bar}\n"));
    out.push_str(&format!("| {:<86}|\n", "Processes:"));
    out.push_str("|  GPU   GI   CI        PID   Type   Process name                            GPU Memory |\n");
    out.push_str("|        ID   ID                                                             Usage      |\n");
    out.push_str(&format!("|{}|\n", "=".repeat(87)));
    out.push_str(&format!("| {:<86}|\n", " No running processes found"));
    out.push_str(&format!("{bar}\n"));
    out
}

// ---------------------------------------------------------------------------------------------
// NFS

/// One export: a directory and who may mount it with which options.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Export {
    pub path: String,
    /// (client, options as written).
    pub clients: Vec<(String, Vec<String>)>,
}

/// What a node exports: `<lab>/cluster/nfs/<node>.json`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Exports {
    pub host: String,
    pub address: String,
    pub exports: Vec<Export>,
}

fn published_path(node: &Node, name: &str) -> std::path::PathBuf {
    node.cluster_dir().join("nfs").join(format!("{name}.json"))
}

/// Parses /etc/exports; warnings (as exportfs prints them) go to `warn`.
fn parse_exports(text: &str, warn: &mut String) -> Vec<Export> {
    let joined = text.replace("\\\n", " ");
    let mut out = Vec::new();
    for (lineno, line) in joined.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let Some(path) = words.next() else { continue };
        let path = path.trim_matches('"').to_string();
        let mut clients = Vec::new();
        for w in words {
            let (host, opts) = if let Some((h, o)) = w.split_once('(') {
                (
                    if h.is_empty() { "*" } else { h },
                    o.trim_end_matches(')')
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect::<Vec<_>>(),
                )
            } else {
                warn.push_str(&format!(
                    "exportfs: No options for {path} {w}: suggest {w}(sync) to avoid warning\n"
                ));
                (w, Vec::new())
            };
            if !opts
                .iter()
                .any(|o| o == "subtree_check" || o == "no_subtree_check")
            {
                warn.push_str(&format!(
                    "exportfs: /etc/exports [{}]: Neither 'subtree_check' or 'no_subtree_check' specified for export \"{host}:{path}\".\n  Assuming default behaviour ('no_subtree_check').\n  NOTE: this default has changed since nfs-utils version 1.0.x\n\n",
                    lineno + 1
                ));
            }
            clients.push((host.to_string(), opts));
        }
        if clients.is_empty() {
            warn.push_str(&format!(
                "exportfs: No host name given with {path} (ro,sync,no_subtree_check), suggest *(ro,sync,no_subtree_check) to avoid warning\n"
            ));
            clients.push(("*".into(), Vec::new()));
        }
        out.push(Export { path, clients });
    }
    out
}

/// The options exportfs -v shows: the defaults with the given ones applied, in kernel order.
fn effective_options(opts: &[String]) -> String {
    let has = |o: &str| opts.iter().any(|x| x == o);
    let mut out = vec![
        if has("async") { "async" } else { "sync" }.to_string(),
        if has("no_wdelay") {
            "no_wdelay"
        } else {
            "wdelay"
        }
        .to_string(),
        if has("nohide") { "nohide" } else { "hide" }.to_string(),
    ];
    if has("crossmnt") {
        out.push("crossmnt".into());
    }
    out.push(
        if has("subtree_check") {
            "subtree_check"
        } else {
            "no_subtree_check"
        }
        .into(),
    );
    if let Some(fsid) = opts.iter().find(|o| o.starts_with("fsid=")) {
        out.push(fsid.clone());
    }
    out.push("sec=sys".into());
    out.push(if has("rw") { "rw" } else { "ro" }.into());
    out.push(
        if has("insecure") {
            "insecure"
        } else {
            "secure"
        }
        .into(),
    );
    out.push(
        if has("no_root_squash") {
            "no_root_squash"
        } else {
            "root_squash"
        }
        .into(),
    );
    out.push(
        if has("all_squash") {
            "all_squash"
        } else {
            "no_all_squash"
        }
        .into(),
    );
    out.join(",")
}

fn client_name(c: &str) -> &str {
    if c == "*" { "<world>" } else { c }
}

/// `exportfs`.
pub fn exportfs(node: &Node, args: &[String], io: &mut Io) -> i32 {
    let mut flags = String::new();
    for a in args {
        match a.strip_prefix('-') {
            Some(f) if f.chars().all(|c| "arvusf".contains(c)) => flags.push_str(f),
            _ => {
                io.err(&format!("exportfs: invalid option -- '{}'\nusage: exportfs [-adfhioruvs] [host:/path]\n", a.trim_start_matches('-')));
                return 1;
            }
        }
    }
    if !cluster::is_root() {
        io.err("exportfs: could not open /var/lib/nfs/.etab.lock for locking: errno 13 (Permission denied)\n");
        return 1;
    }
    let verbose = flags.contains('v');
    let path = published_path(node, &node.name);
    let current = cluster::read_json::<Exports>(&path)
        .ok()
        .flatten()
        .unwrap_or_default();
    if flags.contains('a') || flags.contains('r') {
        let unexport = flags.contains('u');
        let mut warn = String::new();
        let wanted = if unexport {
            Vec::new()
        } else {
            let text = fs::read_to_string(node.path("/etc/exports")).unwrap_or_default();
            parse_exports(&text, &mut warn)
        };
        io.err(&warn);
        let mut code = 0;
        let mut kept = Vec::new();
        for e in wanted {
            if !node.path(&e.path).is_dir() {
                io.err(&format!(
                    "exportfs: Failed to stat {}: No such file or directory\n",
                    e.path
                ));
                code = 1;
                continue;
            }
            if verbose {
                for (c, _) in &e.clients {
                    io.out(&format!("exporting {c}:{}\n", e.path));
                }
            }
            kept.push(e);
        }
        if unexport && verbose {
            for e in &current.exports {
                for (c, _) in &e.clients {
                    io.out(&format!("unexporting {c}:{}\n", e.path));
                }
            }
        }
        let published = Exports {
            host: node.name.clone(),
            address: node.address.clone(),
            exports: kept,
        };
        let write = node
            .cluster_dir()
            .join("nfs")
            .parent()
            .map(cluster::Lock::take)
            .transpose()
            .and_then(|_lock| cluster::write_json(&path, &published));
        if let Err(e) = write {
            io.err(&format!("exportfs: {e}\n"));
            return 1;
        }
        return code;
    }
    // List the current export table.
    for e in &current.exports {
        for (c, opts) in &e.clients {
            if flags.contains('s') {
                io.out(&format!("{}  {}({})\n", e.path, c, effective_options(opts)));
            } else {
                let sep = if e.path.len() > 14 { "\n\t\t" } else { "\t" };
                let opts = if verbose {
                    format!("({})", effective_options(opts))
                } else {
                    String::new()
                };
                io.out(&format!("{:<14}{sep}{}{opts}\n", e.path, client_name(c)));
            }
        }
    }
    0
}

/// `showmount`.
pub fn showmount(node: &Node, args: &[String], io: &mut Io) -> i32 {
    let a = match Args::parse(args, |f| match f {
        "e" | "exports" | "a" | "all" | "d" | "directories" | "no-headers" => Some(false),
        _ => None,
    }) {
        Ok(a) => a,
        Err(e) => {
            io.err(&format!("showmount: {e}\nUsage: showmount [-adehv]\n       [--all] [--directories] [--exports]\n       [--no-headers] [--help] [--version] [host]\n"));
            return 1;
        }
    };
    let host = a.positional.first().map_or("localhost", String::as_str);
    let published = find_exports(node, host);
    let Some(exports) = published else {
        let known = host.parse::<std::net::IpAddr>().is_ok()
            || host == "localhost"
            || fs::read_to_string(node.path("/etc/hosts")).is_ok_and(|t| {
                t.lines()
                    .any(|l| l.split_whitespace().skip(1).any(|h| h == host))
            });
        if known {
            io.err("clnt_create: RPC: Port mapper failure - Unable to receive: errno 111 (Connection refused)\n");
        } else {
            io.err("clnt_create: RPC: Unknown host\n");
        }
        return 1;
    };
    if !a.has(&["e", "exports"]) {
        if !a.has(&["no-headers"]) {
            io.out(&format!("Hosts on {host}:\n"));
        }
        return 0;
    }
    if !a.has(&["no-headers"]) {
        io.out(&format!("Export list for {host}:\n"));
    }
    let width = exports
        .exports
        .iter()
        .map(|e| e.path.len())
        .max()
        .unwrap_or(0);
    for e in &exports.exports {
        let clients: Vec<&str> = e.clients.iter().map(|(c, _)| c.as_str()).collect();
        io.out(&format!("{:<width$} {}\n", e.path, clients.join(",")));
    }
    0
}

fn find_exports(node: &Node, host: &str) -> Option<Exports> {
    let is_self = matches!(host, "localhost" | "127.0.0.1" | "::1")
        || host == node.name
        || host == node.address;
    if is_self {
        return cluster::read_json::<Exports>(&published_path(node, &node.name))
            .ok()
            .flatten();
    }
    let entries = fs::read_dir(node.cluster_dir().join("nfs")).ok()?;
    for e in entries.flatten() {
        if let Ok(Some(x)) = cluster::read_json::<Exports>(&e.path())
            && (x.host == host
                || x.address == host
                || host.split('.').next() == Some(x.host.as_str()))
        {
            return Some(x);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::cluster::shape;
    use super::super::kube::tests::Lab;
    use super::*;

    #[test]
    fn nvidia_smi_on_gpu_and_non_gpu_nodes() {
        let lab = Lab::new();
        let (code, out, _) = lab.run("master", "nvidia-smi", &[]);
        assert_eq!((code, out.as_str()), (9, NO_DRIVER));
        let out = lab.ok("node01", "nvidia-smi", &[]);
        let fixture = shape::fixture("nvidia_smi.txt");
        let ours: Vec<&str> = out.lines().collect();
        let theirs: Vec<&str> = fixture.lines().collect();
        assert_eq!(ours.len(), theirs.len());
        // Same lines but the clock, and every table line as wide as the real one.
        assert_eq!(ours[1..], theirs[1..]);
        assert_eq!(ours[0].len(), theirs[0].len());
        assert_eq!(
            lab.ok("node01", "nvidia-smi", &["-L"])
                .split(" (UUID: GPU-")
                .next(),
            Some("GPU 0: Tesla V100-SXM2-16GB")
        );
        assert_eq!(
            lab.ok(
                "node01",
                "nvidia-smi",
                &[
                    "--query-gpu=name,memory.total,driver_version",
                    "--format=csv"
                ]
            ),
            "name, memory.total [MiB], driver_version\nTesla V100-SXM2-16GB, 16384 MiB, 535.104.05\n"
        );
        assert_eq!(
            lab.ok(
                "node01",
                "nvidia-smi",
                &[
                    "--query-gpu=name,memory.total",
                    "--format=csv,noheader,nounits"
                ]
            ),
            "Tesla V100-SXM2-16GB, 16384\n"
        );
        let (code, out, _) = lab.run(
            "node01",
            "nvidia-smi",
            &["--query-gpu=bogus", "--format=csv"],
        );
        assert_eq!(
            (code, out.as_str()),
            (2, "Field \"bogus\" is not a valid field to query.\n\n")
        );
    }

    #[test]
    fn nvidia_smi_follows_the_installed_driver() {
        let lab = Lab::new();
        let state = lab.node("node01").state_dir().join("dpkg.json");
        cluster::write_json(
            &state,
            &serde_json::json!({"packages": {"curl": {"version": "7.81.0-1", "status": "installed"}}, "lists": []}),
        )
        .unwrap();
        assert_eq!(lab.run("node01", "nvidia-smi", &[]).0, 9);
        cluster::write_json(&state, &serde_json::json!({"packages": {"nvidia-driver-470": {"version": "470.223.02-0ubuntu0.22.04.1", "status": "installed"}}, "lists": []})).unwrap();
        let out = lab.ok("node01", "nvidia-smi", &[]);
        assert!(out.contains("| NVIDIA-SMI 470.223.02             Driver Version: 470.223.02   CUDA Version: 11.4     |"), "{out}");
    }

    #[test]
    fn exportfs_publishes_and_showmount_lists() {
        let lab = Lab::new();
        let (code, _, err) = lab.run("node01", "showmount", &["-e", "master"]);
        assert_eq!(
            (code, err.as_str()),
            (1, "clnt_create: RPC: Unknown host\n")
        );
        let (code, _, err) = lab.run("node01", "showmount", &["-e", "10.1.0.10"]);
        assert_eq!(
            (code, err.as_str()),
            (
                1,
                "clnt_create: RPC: Port mapper failure - Unable to receive: errno 111 (Connection refused)\n"
            )
        );

        fs::create_dir_all(lab.node("master").path("/srv/nfs/kamonohashi")).unwrap();
        lab.write("master", "/etc/exports", "# /etc/exports\n/srv/nfs 10.1.0.0/24(rw,sync,no_subtree_check,no_root_squash)\n/srv/nfs/kamonohashi 10.1.0.0/24(rw,sync,no_subtree_check) \\\n  10.2.0.0/24(ro,no_subtree_check)\n/srv/missing *(ro)\n");
        let (code, _, err) = lab.run("master", "exportfs", &["-ra"]);
        assert_eq!(code, 1);
        assert!(err.contains("exportfs: Failed to stat /srv/missing: No such file or directory\n"));
        assert!(err.contains(
            "Neither 'subtree_check' or 'no_subtree_check' specified for export \"*:/srv/missing\""
        ));

        let fixture = shape::fixture("showmount_e.txt");
        for host in ["master", "10.1.0.10"] {
            let out = lab.ok("node01", "showmount", &["-e", host]);
            assert_eq!(
                out,
                format!(
                    "Export list for {host}:\n/srv/nfs             10.1.0.0/24\n/srv/nfs/kamonohashi 10.1.0.0/24,10.2.0.0/24\n"
                )
            );
        }
        // Same layout as the real one: the path column as wide as the longest path, one space.
        let path_col = |t: &str| {
            t.lines()
                .skip(1)
                .map(|l| l.rfind(' ').unwrap())
                .collect::<Vec<_>>()
        };
        assert!(path_col(&fixture).windows(2).all(|w| w[0] == w[1]));
        assert!(
            path_col(&lab.ok("node01", "showmount", &["-e", "master"]))
                .windows(2)
                .all(|w| w[0] == w[1])
        );

        let verbose = lab.ok("master", "exportfs", &["-v"]);
        let theirs = shape::fixture("exportfs_v.txt");
        assert_eq!(
            verbose
                .replace("10.1.0.0/24", "192.168.10.0/24")
                .lines()
                .take(3)
                .collect::<Vec<_>>(),
            theirs.lines().collect::<Vec<_>>()
        );
        assert_eq!(
            lab.ok("master", "exportfs", &["-s"]).lines().next(),
            Some(
                "/srv/nfs  10.1.0.0/24(sync,wdelay,hide,no_subtree_check,sec=sys,rw,secure,no_root_squash,no_all_squash)"
            )
        );
        lab.ok("master", "exportfs", &["-ua"]);
        assert_eq!(
            lab.ok("node01", "showmount", &["-e", "master"]),
            "Export list for master:\n"
        );
    }
}
