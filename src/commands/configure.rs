//! `kamo configure`: write the cluster's inventory (DeepOps layout) and settings.
//!
//! The deploy tool's `configure` asked five questions with `read` and wrote its files from
//! templates; typos surfaced hours later as failed tasks. kamo asks the same questions
//! (dialoguer prompts on a terminal) or takes them as flags for scripts, checks the answers
//! (host names, no host in two incompatible places, paths absolute), resolves addresses the way
//! the deploy tool did (first non-loopback address), adds the cluster's names and addresses to
//! `no_proxy`, and keeps any earlier files as `*.bak.<unix time>` instead of overwriting them.
//!
//! Layout, as DeepOps and the deploy tool have it: `[all]` = master, app node, storage node,
//! compute nodes; `[kube-master]` and `[etcd]` = master; `[kube-node]` = app node, storage node,
//! compute nodes; `[k8s-cluster:children]`; `[nfs-server]` = storage node; `[gpu-node]` =
//! the nodes with NVIDIA GPUs (default: the compute nodes).

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};

use crate::cli::ConfigureArgs;
use crate::error::{Error, ExitCode, Result};

/// Default of `nfs_export_path`.
pub const DEFAULT_NFS_EXPORT: &str = "/export/kamonohashi";
/// Default of `minio_data_path`.
pub const DEFAULT_MINIO_DATA: &str = "/var/lib/kamonohashi/minio";

/// Everything the two files hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub master: String,
    pub app_node: String,
    pub storage_node: String,
    pub compute_nodes: Vec<String>,
    pub gpu_nodes: Vec<String>,
    pub ssh_user: String,
    pub app_version: String,
    pub kube_version: String,
    pub nfs_export_path: String,
    pub minio_data_path: String,
    pub http_proxy: String,
    pub https_proxy: String,
    pub no_proxy: String,
    /// Host name to address (empty when it did not resolve).
    pub addresses: Vec<(String, String)>,
}

pub fn run(args: &ConfigureArgs) -> Result<ExitCode> {
    let interactive = !args.yes && std::io::stdin().is_terminal();
    let (app_version, kube_version) = default_versions(args)?;
    let mut s = gather(args, interactive, app_version, kube_version)?;
    validate(&s)?;
    s.addresses = resolve_all(&s, &args.host_address)?;
    s.no_proxy = no_proxy(&s);
    let dir = &args.dir;
    let inventory = dir.join("hosts.ini");
    let settings = dir.join("group_vars/all/settings.yml");
    write_keeping_old(&inventory, &inventory_ini(&s))?;
    write_keeping_old(&settings, &settings_yml(&s))?;
    crate::ui::print_text(&format!(
        "wrote {} and {}\nnext: kamo check -i {} && kamo deploy all -i {}",
        inventory.display(),
        settings.display(),
        inventory.display(),
        inventory.display()
    ));
    Ok(ExitCode::Ok)
}

/// The app and Kubernetes versions: flags, else the newest deployable version of the matrix.
fn default_versions(args: &ConfigureArgs) -> Result<(String, String)> {
    if let (Some(a), Some(k)) = (&args.app_version, &args.kube_version) {
        return Ok((a.clone(), k.clone()));
    }
    let root = crate::coordinator::playbooks::root(args.playbooks.as_deref())?;
    let matrix = crate::coordinator::matrix::Matrix::load(&root)?;
    let app = match &args.app_version {
        Some(a) => matrix.deployable(a)?,
        None => matrix.newest_deployable().ok_or_else(|| {
            Error::Other("the compatibility matrix has no deployable version".into())
        })?,
    };
    let kube = args
        .kube_version
        .clone()
        .or_else(|| app.kube_version.clone())
        .ok_or_else(|| {
            Error::Usage(format!(
                "version {} has no Kubernetes version to install; pass --kube-version",
                app.version
            ))
        })?;
    Ok((app.version.clone(), kube))
}

fn gather(
    args: &ConfigureArgs,
    interactive: bool,
    app_version: String,
    kube_version: String,
) -> Result<Settings> {
    let mut missing = Vec::new();
    let mut ask = |flag: &Option<String>, name: &str, prompt: &str, default: Option<String>| {
        if let Some(v) = flag {
            return Ok(v.trim().to_owned());
        }
        if interactive {
            let mut input = dialoguer::Input::<String>::new().with_prompt(prompt);
            if let Some(d) = default {
                input = input.default(d);
            }
            return input
                .interact_text()
                .map(|v| v.trim().to_owned())
                .map_err(|e| Error::Other(format!("cannot read the answer: {e}")));
        }
        if let Some(d) = default {
            Ok(d)
        } else {
            missing.push(name.to_owned());
            Ok(String::new())
        }
    };
    let this_host = || {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".to_owned())
    };
    let (master, app_node, storage_node, compute) = if args.single_node {
        let h = this_host();
        (h.clone(), h.clone(), h.clone(), h)
    } else {
        let master = ask(
            &args.master,
            "--master",
            "Kubernetes master (host name)",
            None,
        )?;
        let app = ask(
            &args.app_node,
            "--app-node",
            "Node that runs KAMONOHASHI (kqi_node)",
            Some(master.clone()).filter(|m| !m.is_empty()),
        )?;
        let storage = ask(
            &args.storage_node,
            "--storage-node",
            "Storage (NFS) node",
            None,
        )?;
        let compute = ask(
            &args.compute_nodes,
            "--compute-nodes",
            "Compute nodes (comma-separated)",
            None,
        )?;
        (master, app, storage, compute)
    };
    let ssh_user = ask(
        &args.ssh_user,
        "--ssh-user",
        "SSH user",
        std::env::var("USER").ok(),
    )?;
    let env = |k: &str| {
        std::env::var(k)
            .or_else(|_| std::env::var(k.to_uppercase()))
            .ok()
    };
    let http_proxy = ask(
        &args.http_proxy,
        "--http-proxy",
        "http_proxy (empty for none)",
        Some(env("http_proxy").unwrap_or_default()),
    )?;
    let secure_proxy = ask(
        &args.https_proxy,
        "--https-proxy",
        "https_proxy (empty for none)",
        Some(env("https_proxy").unwrap_or_else(|| http_proxy.clone())),
    )?;
    let user_no_proxy = args
        .no_proxy
        .clone()
        .or_else(|| env("no_proxy"))
        .unwrap_or_default();
    if !missing.is_empty() {
        return Err(Error::Usage(format!(
            "kamo configure needs {} (no terminal to ask on{}); or pass --single-node",
            missing.join(", "),
            if args.yes {
                ", and --yes was given"
            } else {
                ""
            }
        )));
    }
    let compute_nodes = split_list(&compute);
    let gpu_nodes = match &args.gpu_nodes {
        Some(g) if g.trim() == "none" => Vec::new(),
        Some(g) => split_list(g),
        None => compute_nodes.clone(),
    };
    Ok(Settings {
        master,
        app_node,
        storage_node,
        compute_nodes,
        gpu_nodes,
        ssh_user,
        app_version,
        kube_version,
        nfs_export_path: args.nfs_export_path.clone(),
        minio_data_path: args.minio_data_path.clone(),
        http_proxy,
        https_proxy: secure_proxy,
        no_proxy: user_no_proxy,
        addresses: Vec::new(),
    })
}

fn split_list(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in s.split([',', ' ']).map(str::trim).filter(|w| !w.is_empty()) {
        if !out.iter().any(|o| o == w) {
            out.push(w.to_owned());
        }
    }
    out
}

/// Host names as DNS and the inventory accept them; absolute paths; GPU nodes among the nodes.
fn validate(s: &Settings) -> Result<()> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 253
            && n.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    let mut roles: Vec<(&str, &str)> = vec![
        ("--master", &s.master),
        ("--app-node", &s.app_node),
        ("--storage-node", &s.storage_node),
    ];
    roles.extend(
        s.compute_nodes
            .iter()
            .map(|c| ("--compute-nodes", c.as_str())),
    );
    roles.extend(s.gpu_nodes.iter().map(|c| ("--gpu-nodes", c.as_str())));
    for (flag, n) in &roles {
        if !name_ok(n) {
            return Err(Error::Usage(format!(
                "{flag} {n:?}: not a host name (letters, digits, '-' and '.' only)"
            )));
        }
    }
    if s.compute_nodes.is_empty() {
        return Err(Error::Usage(
            "--compute-nodes: at least one compute node is needed".into(),
        ));
    }
    let nodes = all_hosts(s);
    for g in &s.gpu_nodes {
        if !nodes.contains(g) {
            return Err(Error::Usage(format!(
                "--gpu-nodes {g}: not one of the cluster's nodes ({})",
                nodes.join(", ")
            )));
        }
    }
    if s.ssh_user.is_empty() || s.ssh_user.contains(char::is_whitespace) {
        return Err(Error::Usage(format!(
            "--ssh-user {:?}: not a user name",
            s.ssh_user
        )));
    }
    for (flag, p) in [
        ("--nfs-export-path", &s.nfs_export_path),
        ("--minio-data-path", &s.minio_data_path),
    ] {
        if !p.starts_with('/') || p.trim_end_matches('/').is_empty() {
            return Err(Error::Usage(format!(
                "{flag} {p:?}: must be an absolute path below /"
            )));
        }
    }
    for (flag, v) in [
        ("--http-proxy", &s.http_proxy),
        ("--https-proxy", &s.https_proxy),
    ] {
        if !v.is_empty() && !v.contains("://") {
            return Err(Error::Usage(format!(
                "{flag} {v:?}: expected a URL such as http://proxy.example:3128"
            )));
        }
    }
    Ok(())
}

/// Every host once, in `[all]` order: master, app node, storage node, compute nodes.
fn all_hosts(s: &Settings) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in [&s.master, &s.app_node, &s.storage_node]
        .into_iter()
        .chain(&s.compute_nodes)
    {
        if !out.contains(h) {
            out.push(h.clone());
        }
    }
    out
}

/// `--host-address NAME=ADDR` first, else the first non-loopback address the resolver gives.
fn resolve_all(s: &Settings, given: &[String]) -> Result<Vec<(String, String)>> {
    let mut fixed = std::collections::HashMap::new();
    for g in given {
        let Some((n, a)) = g.split_once('=') else {
            return Err(Error::Usage(format!(
                "--host-address {g:?}: expected NAME=ADDRESS"
            )));
        };
        if a.parse::<std::net::IpAddr>().is_err() {
            return Err(Error::Usage(format!(
                "--host-address {g:?}: {a:?} is not an IP address"
            )));
        }
        fixed.insert(n.to_owned(), a.to_owned());
    }
    Ok(all_hosts(s)
        .into_iter()
        .map(|h| {
            let addr = fixed.get(&h).cloned().unwrap_or_else(|| {
                let found = (h.as_str(), 22)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut it| it.find(|a| !a.ip().is_loopback()))
                    .map(|a| a.ip().to_string());
                if found.is_none() {
                    tracing::warn!(
                        "{h}: no address found (not resolvable, or only loopback); the inventory \
                         names it without ansible_host"
                    );
                }
                found.unwrap_or_default()
            });
            (h, addr)
        })
        .collect())
}

/// The user's `no_proxy` plus every cluster name and address, localhost and `.local`, once each.
fn no_proxy(s: &Settings) -> String {
    let mut items: Vec<String> = Vec::new();
    let mut add = |v: &str| {
        let v = v.trim();
        if !v.is_empty() && !items.iter().any(|i| i == v) {
            items.push(v.to_owned());
        }
    };
    for v in s.no_proxy.split(',') {
        add(v);
    }
    for (h, a) in &s.addresses {
        add(h);
        add(a);
    }
    for v in ["localhost", "127.0.0.1", ".local"] {
        add(v);
    }
    items.join(",")
}

/// `hosts.ini` in the DeepOps layout.
#[must_use]
pub fn inventory_ini(s: &Settings) -> String {
    let mut out = String::from(
        "# KAMONOHASHI cluster inventory (DeepOps layout), written by `kamo configure`.\n\
         # Edit freely; `kamo configure` keeps the previous file as hosts.ini.bak.<time>.\n\n[all]\n",
    );
    for (h, a) in &s.addresses {
        if a.is_empty() {
            let _ = writeln!(out, "{h}");
        } else {
            let _ = writeln!(out, "{h} ansible_host={a}");
        }
    }
    let mut kube_nodes: Vec<&String> = Vec::new();
    for h in [&s.app_node, &s.storage_node]
        .into_iter()
        .chain(&s.compute_nodes)
    {
        if !kube_nodes.contains(&h) {
            kube_nodes.push(h);
        }
    }
    let list = |v: &[&String]| {
        v.iter().fold(String::new(), |mut acc, s| {
            let _ = writeln!(acc, "{s}");
            acc
        })
    };
    let gpu: Vec<&String> = s.gpu_nodes.iter().collect();
    let _ = write!(
        out,
        "\n[kube-master]\n{m}\n\n# Odd number of nodes required\n[etcd]\n{m}\n\n[kube-node]\n{kn}\n\
         [k8s-cluster:children]\nkube-master\nkube-node\n\n[nfs-server]\n{st}\n\n\
         # Nodes with NVIDIA GPUs: the driver and container toolkit go here.\n[gpu-node]\n{g}\n\
         [all:vars]\nansible_user={u}\n",
        m = s.master,
        kn = list(&kube_nodes),
        st = s.storage_node,
        g = list(&gpu),
        u = s.ssh_user,
    );
    out
}

fn yaml_str(v: &str) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "\"\"".to_owned())
}

/// `group_vars/all/settings.yml`, every key documented.
#[must_use]
pub fn settings_yml(s: &Settings) -> String {
    let compute = s
        .compute_nodes
        .iter()
        .map(|c| yaml_str(c))
        .collect::<Vec<_>>()
        .join(", ");
    let proxy_env = if s.http_proxy.is_empty() && s.https_proxy.is_empty() {
        "proxy_env: {}\n".to_owned()
    } else {
        format!(
            "proxy_env:\n  http_proxy: {}\n  https_proxy: {}\n  no_proxy: {}\n",
            yaml_str(&s.http_proxy),
            yaml_str(&s.https_proxy),
            yaml_str(&s.no_proxy)
        )
    };
    format!(
        "# KAMONOHASHI cluster settings, written by `kamo configure`; read with the inventory.\n\
         # Every key is documented in playbooks/README.md.\n\n\
         # Kubernetes control-plane host (group kube-master).\n\
         kube_master: {}\n\
         # Host that runs the KAMONOHASHI app pods.\n\
         kqi_node: {}\n\
         # Host that serves NFS (group nfs-server) and MinIO's data.\n\
         storage_node: {}\n\
         # Hosts that run training jobs.\n\
         compute_nodes: [{compute}]\n\
         # KAMONOHASHI version to deploy (see `kamo versions`).\n\
         app_version: {}\n\
         # Kubernetes version to install (kubeadm, kubelet, kubectl).\n\
         kube_version: {}\n\
         # NFS export on the storage node: datasets and training outputs. Kept by `clean all`\n\
         # unless --purge-data.\n\
         nfs_export_path: {}\n\
         # MinIO's data directory on the storage node. Kept like nfs_export_path.\n\
         minio_data_path: {}\n\
         # Proxies for apt, containerd and the app (empty mapping: no proxy). no_proxy holds every\n\
         # cluster name and address.\n\
         {proxy_env}",
        yaml_str(&s.master),
        yaml_str(&s.app_node),
        yaml_str(&s.storage_node),
        yaml_str(&s.app_version),
        yaml_str(&s.kube_version),
        yaml_str(&s.nfs_export_path),
        yaml_str(&s.minio_data_path),
    )
}

/// Writes `path`, renaming an existing different file to `<name>.bak.<unix time>` first.
fn write_keeping_old(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
    }
    if let Ok(old) = std::fs::read_to_string(path) {
        if old == text {
            return Ok(());
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut bak = path.as_os_str().to_owned();
        bak.push(format!(".bak.{stamp}"));
        let bak = PathBuf::from(bak);
        std::fs::rename(path, &bak)
            .map_err(|e| Error::io("cannot keep the old file as", &bak, e))?;
        crate::ui::eprint_line(&format!(
            "kept the previous {} as {}",
            path.display(),
            bak.display()
        ));
    }
    crate::lab::write_atomic(path, text).map_err(|e| Error::io("cannot write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Settings {
        Settings {
            master: "m1".into(),
            app_node: "m1".into(),
            storage_node: "s1".into(),
            compute_nodes: vec!["c1".into(), "c2".into()],
            gpu_nodes: vec!["c2".into()],
            ssh_user: "ubuntu".into(),
            app_version: "2.1.0".into(),
            kube_version: "1.29.3".into(),
            nfs_export_path: DEFAULT_NFS_EXPORT.into(),
            minio_data_path: DEFAULT_MINIO_DATA.into(),
            http_proxy: "http://proxy:3128".into(),
            https_proxy: "http://proxy:3128".into(),
            no_proxy: "corp.example,m1".into(),
            addresses: vec![
                ("m1".into(), "10.0.0.1".into()),
                ("s1".into(), "10.0.0.2".into()),
                ("c1".into(), String::new()),
                ("c2".into(), "10.0.0.4".into()),
            ],
        }
    }

    #[test]
    fn no_proxy_adds_every_name_and_address_once() {
        assert_eq!(
            no_proxy(&sample()),
            "corp.example,m1,10.0.0.1,s1,10.0.0.2,c1,c2,10.0.0.4,localhost,127.0.0.1,.local"
        );
    }

    #[test]
    fn the_inventory_has_the_deepops_groups() {
        let ini = inventory_ini(&sample());
        for part in [
            "[all]\nm1 ansible_host=10.0.0.1\ns1 ansible_host=10.0.0.2\nc1\nc2 ansible_host=10.0.0.4\n",
            "[kube-master]\nm1\n",
            "[etcd]\nm1\n",
            "[kube-node]\nm1\ns1\nc1\nc2\n",
            "[k8s-cluster:children]\nkube-master\nkube-node\n",
            "[nfs-server]\ns1\n",
            "[gpu-node]\nc2\n",
            "[all:vars]\nansible_user=ubuntu\n",
        ] {
            assert!(ini.contains(part), "{part:?} missing from\n{ini}");
        }
    }

    #[test]
    fn settings_parse_back_with_every_key() {
        let y: serde_yaml::Value = serde_yaml::from_str(&settings_yml(&sample())).unwrap();
        for k in [
            "kube_master",
            "kqi_node",
            "storage_node",
            "compute_nodes",
            "app_version",
            "kube_version",
            "nfs_export_path",
            "minio_data_path",
            "proxy_env",
        ] {
            assert!(y.get(k).is_some(), "{k}");
        }
        assert_eq!(y["proxy_env"]["https_proxy"], "http://proxy:3128");
        assert_eq!(y["compute_nodes"][1], "c2");
        let mut none = sample();
        none.http_proxy.clear();
        none.https_proxy.clear();
        let y: serde_yaml::Value = serde_yaml::from_str(&settings_yml(&none)).unwrap();
        assert!(y["proxy_env"].as_mapping().unwrap().is_empty());
    }

    #[test]
    fn bad_answers_are_refused_with_the_flag_named() {
        let mut s = sample();
        s.compute_nodes = vec!["c 1".into()];
        assert!(
            validate(&s)
                .unwrap_err()
                .to_string()
                .contains("--compute-nodes")
        );
        let mut s = sample();
        s.gpu_nodes = vec!["elsewhere".into()];
        assert!(
            validate(&s)
                .unwrap_err()
                .to_string()
                .contains("--gpu-nodes elsewhere")
        );
        let mut s = sample();
        s.nfs_export_path = "export".into();
        assert!(
            validate(&s)
                .unwrap_err()
                .to_string()
                .contains("--nfs-export-path")
        );
        let mut s = sample();
        s.http_proxy = "proxy:3128".into();
        assert!(
            validate(&s)
                .unwrap_err()
                .to_string()
                .contains("--http-proxy")
        );
        assert!(validate(&sample()).is_ok());
    }

    #[test]
    fn lists_split_on_commas_and_spaces_without_repeats() {
        assert_eq!(split_list("a, b,,c a"), vec!["a", "b", "c"]);
    }
}
