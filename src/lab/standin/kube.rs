//! `kubeadm` and `kubectl` stand-ins over the shared cluster state in [`super::cluster`].
//!
//! The aim is that a rebuild playbook which works against the lab works against a real
//! cluster, so what a real cluster would refuse is refused here too, with the real message:
//! joining with a wrong or expired token or CA pin, initializing twice, `kubectl` without a
//! kubeconfig or with one from a cluster that has since been re-initialized, draining without
//! `--ignore-daemonsets`. Likewise what a real cluster does on its own is modelled where
//! playbooks depend on it: nodes stay `NotReady` (and CoreDNS `Pending`) until a pod network
//! is applied, GPUs appear in a node's capacity once the NVIDIA device plugin runs, and
//! workloads leave a drained node. Pods are not stored: they are derived from the nodes and
//! the workloads (static pods, kube-proxy, CoreDNS, applied manifests, helm releases) each
//! time, with names that stay stable as long as their placement does.

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::cluster::{
    self, Args, CONTROL_PLANE_TAINT, Cluster, NodeRecord, Object, Reach, Store, Token, tabwrite,
};
use super::{Io, Node};

const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const TOKEN_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const KUSTOMIZE_VERSION: &str = "v5.0.4-0.20230601165947-6ce0bf390ce3";
const STACK_TRACE_HINT: &str =
    "To see the stack trace of this error execute with --v=5 or higher\n";

// ---------------------------------------------------------------------------------------------
// Workloads and pods

/// Something that runs pods.
#[derive(Debug, Clone)]
pub struct Workload {
    /// `Deployment`, `DaemonSet`, `StatefulSet`, `Pod` or `Node` (static pods of the control plane).
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub replicas: u32,
    pub created: u64,
    pub labels: BTreeMap<String, String>,
    pub image: String,
    /// Runs in the host's network namespace (does not wait for the pod network).
    pub host_network: bool,
    /// Tolerates the control-plane taint.
    pub tolerates_control_plane: bool,
    /// Uses an emptyDir volume (drain needs `--delete-emptydir-data`).
    pub local_storage: bool,
}

impl Workload {
    #[must_use]
    pub fn new(kind: &str, namespace: &str, name: &str, created: u64) -> Workload {
        Workload {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            replicas: 1,
            created,
            labels: BTreeMap::from([("app".to_string(), name.to_string())]),
            image: format!("registry.example/{name}:latest"),
            host_network: false,
            tolerates_control_plane: false,
            local_storage: false,
        }
    }
}

/// A pod as derived from the cluster state.
#[derive(Debug, Clone)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    pub running: bool,
    pub created: u64,
    pub ip: Option<String>,
    pub host_ip: Option<String>,
    pub owner_kind: String,
    pub owner_name: String,
    pub labels: BTreeMap<String, String>,
    pub image: String,
    pub local_storage: bool,
}

fn is_cni(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "calico",
        "flannel",
        "weave",
        "cilium",
        "canal",
        "antrea",
        "kube-router",
        "tigera",
    ]
    .iter()
    .any(|c| name.contains(c))
}

fn is_device_plugin(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("nvidia-device-plugin") || name.contains("gpu-operator")
}

/// The latest revision of every release that is deployed: (release, chart name, revision).
fn deployed_releases(c: &Cluster) -> impl Iterator<Item = (&cluster::Release, &cluster::Revision)> {
    c.releases.iter().filter_map(|r| {
        r.revisions
            .last()
            .filter(|rev| rev.status == "deployed")
            .map(|rev| (r, rev))
    })
}

/// Whether a pod network (CNI) has been installed: nodes are NotReady until then.
#[must_use]
pub fn network_ready(c: &Cluster) -> bool {
    c.objects
        .iter()
        .any(|o| o.kind == "DaemonSet" && is_cni(&o.name))
        || deployed_releases(c).any(|(r, rev)| is_cni(&rev.chart) || is_cni(&r.name))
}

/// Whether the NVIDIA device plugin runs, so GPU nodes advertise `nvidia.com/gpu`.
#[must_use]
pub fn device_plugin(c: &Cluster) -> bool {
    c.objects
        .iter()
        .any(|o| o.kind == "DaemonSet" && is_device_plugin(&o.name))
        || deployed_releases(c).any(|(_, rev)| is_device_plugin(&rev.chart))
}

fn object_workload(o: &Object) -> Option<Workload> {
    if !["Deployment", "DaemonSet", "StatefulSet", "Pod"].contains(&o.kind.as_str()) {
        return None;
    }
    let spec = o.manifest.get("spec");
    let pod_spec = if o.kind == "Pod" {
        spec
    } else {
        spec.and_then(|s| s.get("template"))
            .and_then(|t| t.get("spec"))
    };
    let mut w = Workload::new(
        &o.kind,
        o.namespace.as_deref().unwrap_or("default"),
        &o.name,
        o.created,
    );
    w.replicas = spec
        .and_then(|s| s.get("replicas"))
        .and_then(Value::as_u64)
        .map_or(1, |r| u32::try_from(r).unwrap_or(1));
    if let Some(labels) = o
        .manifest
        .pointer("/spec/template/metadata/labels")
        .or_else(|| o.manifest.pointer("/metadata/labels"))
        .and_then(Value::as_object)
    {
        w.labels = labels
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
    }
    if let Some(image) = pod_spec
        .and_then(|p| p.pointer("/containers/0/image"))
        .and_then(Value::as_str)
    {
        w.image = image.to_string();
    }
    w.host_network = pod_spec
        .and_then(|p| p.get("hostNetwork"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    w.tolerates_control_plane = o.kind == "DaemonSet"
        || pod_spec
            .and_then(|p| p.get("tolerations"))
            .and_then(Value::as_array)
            .is_some_and(|ts| {
                ts.iter().any(|t| {
                    t.get("operator").and_then(Value::as_str) == Some("Exists")
                        && t.get("key").is_none_or(|k| {
                            k.as_str()
                                .is_some_and(|k| k.starts_with("node-role.kubernetes.io/"))
                        })
                })
            });
    w.local_storage = pod_spec
        .and_then(|p| p.get("volumes"))
        .and_then(Value::as_array)
        .is_some_and(|vs| vs.iter().any(|v| v.get("emptyDir").is_some()));
    Some(w)
}

/// Every workload of the cluster.
#[must_use]
pub fn workloads(c: &Cluster) -> Vec<Workload> {
    let mut out = Vec::new();
    for component in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        let mut w = Workload::new("Node", "kube-system", component, c.created);
        w.labels = BTreeMap::from([
            ("component".to_string(), component.to_string()),
            ("tier".to_string(), "control-plane".to_string()),
        ]);
        w.image = format!("registry.k8s.io/{component}:{}", c.version);
        w.host_network = true;
        out.push(w);
    }
    let mut proxy = Workload::new("DaemonSet", "kube-system", "kube-proxy", c.created);
    proxy.labels = BTreeMap::from([("k8s-app".to_string(), "kube-proxy".to_string())]);
    proxy.image = format!("registry.k8s.io/kube-proxy:{}", c.version);
    proxy.host_network = true;
    out.push(proxy);
    let mut dns = Workload::new("Deployment", "kube-system", "coredns", c.created);
    dns.replicas = 2;
    dns.labels = BTreeMap::from([("k8s-app".to_string(), "kube-dns".to_string())]);
    dns.image = "registry.k8s.io/coredns/coredns:v1.10.1".into();
    dns.tolerates_control_plane = true;
    out.push(dns);
    for o in &c.objects {
        if let Some(mut w) = object_workload(o) {
            if is_cni(&w.name) {
                w.host_network = true;
            }
            out.push(w);
        }
    }
    for (release, rev) in deployed_releases(c) {
        let created = c
            .releases
            .iter()
            .find(|r| r.name == release.name && r.namespace == release.namespace)
            .and_then(|r| r.revisions.first())
            .map_or(0, |r| {
                u64::try_from(r.updated_ns / 1_000_000_000).unwrap_or(0)
            });
        out.extend(super::helm::workloads(release, rev, created));
    }
    out
}

fn schedulable(n: &NodeRecord, w: &Workload) -> bool {
    !n.unschedulable
        && n.taints.iter().all(|t| {
            !t.ends_with(":NoSchedule")
                || (w.tolerates_control_plane && t.starts_with("node-role.kubernetes.io/"))
        })
}

fn pod_ip(c: &Cluster, seed: &str) -> String {
    let cidr = c.pod_network_cidr.as_deref().unwrap_or("10.244.0.0/16");
    let base: Vec<&str> = cidr
        .split('/')
        .next()
        .unwrap_or("10.244.0.0")
        .split('.')
        .collect();
    let h = cluster::sha256_hex(seed.as_bytes());
    let a = u8::from_str_radix(&h[0..2], 16).unwrap_or(1);
    let b = u8::from_str_radix(&h[2..4], 16).unwrap_or(2).clamp(2, 250);
    format!(
        "{}.{}.{}.{}",
        base.first().unwrap_or(&"10"),
        base.get(1).unwrap_or(&"244"),
        a % 16,
        b
    )
}

/// Every pod of the cluster, derived from its nodes and workloads.
#[must_use]
pub fn pods(c: &Cluster, nodes: &[NodeRecord]) -> Vec<Pod> {
    let net = network_ready(c);
    let mut out = Vec::new();
    for w in workloads(c) {
        let make = |name: String, node: Option<&NodeRecord>, created: u64| {
            let running = node.is_some() && (w.host_network || net);
            Pod {
                namespace: w.namespace.clone(),
                name: name.clone(),
                node: node.map(|n| n.name.clone()),
                running,
                created,
                ip: node.map(|n| {
                    if w.host_network {
                        n.address.clone()
                    } else {
                        pod_ip(c, &format!("{}/{name}", w.namespace))
                    }
                }),
                host_ip: node.map(|n| n.address.clone()),
                owner_kind: w.kind.clone(),
                owner_name: w.name.clone(),
                labels: w.labels.clone(),
                image: w.image.clone(),
                local_storage: w.local_storage,
            }
        };
        match w.kind.as_str() {
            "Node" => {
                if let Some(cp) = nodes.iter().find(|n| n.name == c.control_plane) {
                    out.push(make(format!("{}-{}", w.name, cp.name), Some(cp), cp.joined));
                }
            }
            "DaemonSet" => {
                for n in nodes {
                    let suffix = cluster::chars_from(
                        format!("{}/{}/{}/{}", w.namespace, w.name, w.created, n.name).as_bytes(),
                        SUFFIX_ALPHABET,
                        5,
                    );
                    out.push(make(
                        format!("{}-{suffix}", w.name),
                        Some(n),
                        w.created.max(n.joined),
                    ));
                }
            }
            _ => {
                let candidates: Vec<&NodeRecord> =
                    nodes.iter().filter(|n| schedulable(n, &w)).collect();
                let template = cluster::chars_from(
                    format!("{}/{}/{}", w.namespace, w.name, w.created).as_bytes(),
                    SUFFIX_ALPHABET,
                    10,
                );
                let start = usize::from(cluster::sha256_hex(w.name.as_bytes()).as_bytes()[0]);
                for i in 0..w.replicas as usize {
                    let node = if candidates.is_empty() {
                        None
                    } else {
                        Some(candidates[(start + i) % candidates.len()])
                    };
                    let name = match w.kind.as_str() {
                        "Pod" => w.name.clone(),
                        "StatefulSet" => format!("{}-{i}", w.name),
                        _ => {
                            let suffix = cluster::chars_from(
                                format!("{template}/{i}/{}", node.map_or("", |n| n.name.as_str()))
                                    .as_bytes(),
                                SUFFIX_ALPHABET,
                                5,
                            );
                            format!("{}-{template}-{suffix}", w.name)
                        }
                    };
                    let created = node.map_or(w.created, |n| w.created.max(n.joined));
                    out.push(make(name, node, created));
                }
            }
        }
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

// ---------------------------------------------------------------------------------------------
// kubeadm

/// `kubeadm`.
pub fn kubeadm(node: &Node, args: &[String], io: &mut Io) -> i32 {
    let Some(sub) = args.first() else {
        io.out(KUBEADM_USAGE);
        return 0;
    };
    let rest = &args[1..];
    let result = match sub.as_str() {
        "init" => kubeadm_init(node, rest, io),
        "join" => kubeadm_join(node, rest, io),
        "reset" => kubeadm_reset(node, rest, io),
        "token" => kubeadm_token(node, rest, io),
        "certs" => kubeadm_certs(node, rest, io),
        "version" => kubeadm_version(node, rest, io),
        "-h" | "--help" | "help" => {
            io.out(KUBEADM_USAGE);
            Ok(())
        }
        other => Err(format!("unknown command \"{other}\" for \"kubeadm\"")),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            io.err(&e);
            if !e.ends_with('\n') {
                io.err("\n");
            }
            if !e.contains("--v=5") {
                io.err(STACK_TRACE_HINT);
            }
            1
        }
    }
}

const KUBEADM_USAGE: &str = "\n    ┌──────────────────────────────────────────────────────────┐\n    │ KUBEADM                                                  │\n    │ Easily bootstrap a secure Kubernetes cluster             │\n    └──────────────────────────────────────────────────────────┘\n\nUsage:\n  kubeadm [command]\n\nAvailable Commands:\n  certs       Commands related to handling kubernetes certificates\n  init        Run this command in order to set up the Kubernetes control plane\n  join        Run this on any machine you wish to join an existing cluster\n  reset       Performs a best effort revert of changes made to this host by 'kubeadm init' or 'kubeadm join'\n  token       Manage bootstrap tokens\n  version     Print the version of kubeadm\n";

fn kubeadm_flags(name: &str) -> Option<bool> {
    match name {
        "pod-network-cidr"
        | "apiserver-advertise-address"
        | "apiserver-bind-port"
        | "kubernetes-version"
        | "control-plane-endpoint"
        | "ignore-preflight-errors"
        | "service-cidr"
        | "cri-socket"
        | "node-name"
        | "token"
        | "token-ttl"
        | "ttl"
        | "config"
        | "skip-phases"
        | "certificate-key"
        | "discovery-token-ca-cert-hash"
        | "description"
        | "o"
        | "output"
        | "v"
        | "kubeconfig"
        | "cert-dir" => Some(true),
        "upload-certs"
        | "skip-token-print"
        | "discovery-token-unsafe-skip-ca-verification"
        | "control-plane"
        | "print-join-command"
        | "force"
        | "f"
        | "cleanup-tmp-dir"
        | "dry-run" => Some(false),
        _ => None,
    }
}

/// A preflight check that failed: (name, message).
type Failed = (String, String);

/// Reports failed checks the way kubeadm does; Err when any is not ignored.
fn preflight(failed: &[Failed], ignore: &[String], io: &mut Io) -> Result<(), String> {
    let ignored = |name: &str| {
        ignore
            .iter()
            .any(|i| i.eq_ignore_ascii_case("all") || i.eq_ignore_ascii_case(name))
    };
    let mut fatal = String::new();
    for (name, msg) in failed {
        if ignored(name) {
            io.err(&format!("\t[WARNING {name}]: {msg}\n"));
        } else {
            fatal.push_str(&format!("\t[ERROR {name}]: {msg}\n"));
        }
    }
    if fatal.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "error execution phase preflight: [preflight] Some fatal errors occurred:\n{fatal}[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`\n{STACK_TRACE_HINT}"
        ))
    }
}

fn ignore_list(a: &Args) -> Vec<String> {
    a.values(&["ignore-preflight-errors"])
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn file_check(node: &Node, abs: &str, failed: &mut Vec<Failed>) {
    if node.path(abs).exists() {
        failed.push((
            format!("FileAvailable-{}", abs.replace('/', "-")),
            format!("{abs} already exists"),
        ));
    }
}

fn kubelet_running(node: &Node) -> bool {
    node.path("/var/lib/kubelet/config.yaml").exists()
}

const MANIFESTS: [&str; 4] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
];

fn new_token() -> String {
    let seed = cluster::random_bytes(32);
    let t = cluster::chars_from(&seed, TOKEN_ALPHABET, 22);
    format!("{}.{}", &t[..6], &t[6..])
}

fn valid_token(t: &str) -> bool {
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    t.split_once('.')
        .is_some_and(|(a, b)| ok(a, 6) && ok(b, 16))
}

fn parse_ttl(s: &str) -> Result<u64, String> {
    if s == "0" {
        return Ok(u64::MAX / 2);
    }
    humantime::parse_duration(s)
        .map(|d| d.as_secs())
        .map_err(|_| {
            format!("invalid argument \"{s}\" for \"--ttl\" flag: time: invalid duration \"{s}\"")
        })
}

/// Settings `kubeadm init --config` may carry.
#[derive(Default)]
struct InitConfig {
    version: Option<String>,
    endpoint: Option<String>,
    pod_subnet: Option<String>,
    service_subnet: Option<String>,
    advertise: Option<String>,
    token: Option<String>,
}

fn read_init_config(node: &Node, path: &str) -> Result<InitConfig, String> {
    let text = fs::read_to_string(node.path(path)).map_err(|_| {
        format!("unable to read config from \"{path}\" : open {path}: no such file or directory")
    })?;
    let mut c = InitConfig::default();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v = <serde_yaml::Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| format!("unable to read config from \"{path}\" : {e}"))?;
        let s = |v: Option<&serde_yaml::Value>| v.and_then(|x| x.as_str()).map(str::to_string);
        match v.get("kind").and_then(|k| k.as_str()) {
            Some("ClusterConfiguration") => {
                c.version = s(v.get("kubernetesVersion"));
                c.endpoint = s(v.get("controlPlaneEndpoint"));
                c.pod_subnet = s(v.get("networking").and_then(|n| n.get("podSubnet")));
                c.service_subnet = s(v.get("networking").and_then(|n| n.get("serviceSubnet")));
            }
            Some("InitConfiguration") => {
                c.advertise = s(v
                    .get("localAPIEndpoint")
                    .and_then(|e| e.get("advertiseAddress")));
                c.token = v
                    .get("bootstrapTokens")
                    .and_then(|t| t.as_sequence())
                    .and_then(|t| t.first())
                    .and_then(|t| s(t.get("token")));
            }
            _ => {}
        }
    }
    Ok(c)
}

fn normalize_version(v: &str) -> Result<String, String> {
    let bare = v.trim_start_matches('v');
    let parts: Vec<&str> = bare.split('.').collect();
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    {
        Ok(format!("v{bare}"))
    } else {
        Err(format!(
            "unable to fetch file. URL: \"https://dl.k8s.io/release/{v}.txt\", status: 404 Not Found"
        ))
    }
}

fn minor(v: &str) -> u32 {
    v.trim_start_matches('v')
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

fn write_node_file(node: &Node, abs: &str, text: &str) -> Result<(), String> {
    cluster::write_atomic(&node.path(abs), text.as_bytes())
}

fn join_command(c: &Cluster, token: &str) -> String {
    format!(
        "kubeadm join {} --token {token} \\\n\t--discovery-token-ca-cert-hash sha256:{} ",
        c.endpoint(),
        c.ca_hash
    )
}

fn node_record(node: &Node, control_plane: bool, version: &str) -> NodeRecord {
    let runtime = match cluster::package_version(node, "containerd.io")
        .filter(|v| !v.is_empty())
        .or_else(|| cluster::package_version(node, "containerd").filter(|v| !v.is_empty()))
    {
        Some(v) => format!("containerd://{v}"),
        None => "containerd://1.7.2".into(),
    };
    let mut labels = BTreeMap::from([
        ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "amd64".to_string()),
        ("kubernetes.io/hostname".to_string(), node.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
    ]);
    let mut taints = Vec::new();
    if control_plane {
        labels.insert(
            "node-role.kubernetes.io/control-plane".into(),
            String::new(),
        );
        labels.insert(
            "node.kubernetes.io/exclude-from-external-load-balancers".into(),
            String::new(),
        );
        taints.push(CONTROL_PLANE_TAINT.to_string());
    }
    NodeRecord {
        name: node.name.clone(),
        address: node.address.clone(),
        gpu: node.gpu,
        control_plane,
        joined: cluster::now(),
        version: version.to_string(),
        os_image: cluster::os_image(node),
        kernel: cluster::kernel(),
        container_runtime: runtime,
        unschedulable: false,
        labels,
        taints,
    }
}

fn write_kubelet_files(node: &Node, c: &Cluster) -> Result<(), String> {
    write_node_file(
        node,
        "/etc/kubernetes/kubelet.conf",
        &cluster::kubeconfig(
            &c.endpoint(),
            &c.ca_pem,
            &format!("system:node:{}", node.name),
        ),
    )?;
    write_node_file(node, "/etc/kubernetes/pki/ca.crt", &c.ca_pem)?;
    write_node_file(
        node,
        "/var/lib/kubelet/config.yaml",
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\nclusterDNS:\n- 10.96.0.10\nclusterDomain: cluster.local\n",
    )?;
    write_node_file(
        node,
        "/var/lib/kubelet/kubeadm-flags.env",
        "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9\"\n",
    )
}

#[allow(clippy::too_many_lines)] // one straight sequence of kubeadm's phases and its printed log
fn kubeadm_init(node: &Node, args: &[String], io: &mut Io) -> Result<(), String> {
    let a = Args::parse(args, kubeadm_flags)?;
    let file = match a.value(&["config"]) {
        Some(p) => read_init_config(node, p)?,
        None => InitConfig::default(),
    };
    let own = cluster::kube_version(node, "kubeadm");
    let version = match a
        .value(&["kubernetes-version"])
        .map(str::to_string)
        .or(file.version)
    {
        Some(v) if v.starts_with("stable") || v == "latest" => own.clone(),
        Some(v) => normalize_version(&v)?,
        None => own.clone(),
    };
    if minor(&version) + 1 < minor(&own) {
        return Err(format!(
            "this version of kubeadm only supports deploying clusters with the control plane version >= 1.{}.0. Current version: {version}",
            minor(&own) - 1
        ));
    }
    if let Some(cidr) = a.value(&["pod-network-cidr"])
        && !is_cidr(cidr)
    {
        return Err(format!(
            "networking.podSubnet: Invalid value: \"{cidr}\": couldn't parse subnet"
        ));
    }
    let advertise = a
        .value(&["apiserver-advertise-address"])
        .map(str::to_string)
        .or(file.advertise)
        .unwrap_or_else(|| node.address.clone());
    let token = match a.value(&["token"]).map(str::to_string).or(file.token) {
        Some(t) if !valid_token(&t) => {
            return Err(format!(
                "bootstrapTokens[0].token: Invalid value: \"{t}\": the bootstrap token \"{t}\" was not of the form \"[a-z0-9]{{6}}.[a-z0-9]{{16}}\""
            ));
        }
        Some(t) => t,
        None => new_token(),
    };
    let ttl = parse_ttl(a.value(&["token-ttl"]).unwrap_or("24h0m0s"))?;

    io.out(&format!("[init] Using Kubernetes version: {version}\n"));
    io.out("[preflight] Running pre-flight checks\n");
    let mut failed = Vec::new();
    if !cluster::is_root() {
        failed.push((
            "IsPrivilegedUser".into(),
            "user is not running as root".into(),
        ));
    }
    let initialized = node
        .path("/etc/kubernetes/manifests/kube-apiserver.yaml")
        .exists();
    if initialized {
        for port in ["6443", "10259", "10257"] {
            failed.push((format!("Port-{port}"), format!("Port {port} is in use")));
        }
    }
    for m in MANIFESTS {
        file_check(
            node,
            &format!("/etc/kubernetes/manifests/{m}.yaml"),
            &mut failed,
        );
    }
    if kubelet_running(node) {
        failed.push(("Port-10250".into(), "Port 10250 is in use".into()));
    }
    if initialized {
        for port in ["2379", "2380"] {
            failed.push((format!("Port-{port}"), format!("Port {port} is in use")));
        }
    }
    if fs::read_dir(node.path("/var/lib/etcd")).is_ok_and(|mut d| d.next().is_some()) {
        failed.push((
            "DirAvailable--var-lib-etcd".into(),
            "/var/lib/etcd is not empty".into(),
        ));
    }
    file_check(node, "/etc/kubernetes/kubelet.conf", &mut failed);
    preflight(&failed, &ignore_list(&a), io)?;
    if minor(&version) > minor(&own) {
        io.err(&format!(
            "\t[WARNING KubernetesVersion]: Kubernetes version is greater than kubeadm version. Please consider to upgrade kubeadm. Kubernetes version: {}. Kubeadm version: 1.{}.x\n",
            version.trim_start_matches('v'),
            minor(&own)
        ));
    }

    let store = Store::new(node);
    let _lock = store.lock()?;
    if let Some(other) = store.cluster()?
        && other.control_plane != node.name
    {
        return Err(format!(
            "kamo lab: this lab already has a cluster, initialized on {}; run `kubeadm reset -f` there first (the lab holds one cluster)",
            other.control_plane
        ));
    }
    store.wipe()?;
    let ca_der = cluster::random_bytes(1066);
    let ca_pem = cluster::pem("CERTIFICATE", &ca_der);
    let now = cluster::now();
    let namespaces = ["default", "kube-node-lease", "kube-public", "kube-system"]
        .iter()
        .map(|n| ((*n).to_string(), now))
        .collect();
    let c = Cluster {
        control_plane: node.name.clone(),
        advertise_address: advertise.clone(),
        control_plane_endpoint: a
            .value(&["control-plane-endpoint"])
            .map(str::to_string)
            .or(file.endpoint),
        version: version.clone(),
        pod_network_cidr: a
            .value(&["pod-network-cidr"])
            .map(str::to_string)
            .or(file.pod_subnet),
        service_cidr: a
            .value(&["service-cidr"])
            .map(str::to_string)
            .or(file.service_subnet)
            .unwrap_or_else(|| "10.96.0.0/12".into()),
        ca_hash: cluster::sha256_hex(&ca_der),
        ca_pem,
        tokens: vec![Token {
            token: token.clone(),
            expires: now.saturating_add(ttl),
        }],
        created: now,
        certs_issued: now,
        namespaces,
        objects: Vec::new(),
        releases: Vec::new(),
    };
    store.save_cluster(&c)?;
    store.save_node(&node_record(
        node,
        true,
        &cluster::kube_version(node, "kubelet"),
    ))?;

    // The node's own files, as kubeadm leaves them.
    let pki = "/etc/kubernetes/pki";
    write_node_file(node, &format!("{pki}/ca.crt"), &c.ca_pem)?;
    for name in [
        "ca.key",
        "apiserver.crt",
        "apiserver.key",
        "apiserver-kubelet-client.crt",
        "apiserver-kubelet-client.key",
        "front-proxy-ca.crt",
        "front-proxy-ca.key",
        "front-proxy-client.crt",
        "front-proxy-client.key",
        "sa.key",
        "sa.pub",
        "etcd/ca.crt",
        "etcd/ca.key",
        "etcd/server.crt",
        "etcd/server.key",
    ] {
        let ext = std::path::Path::new(name)
            .extension()
            .and_then(|e| e.to_str());
        let label = if ext == Some("crt") {
            "CERTIFICATE"
        } else if ext == Some("pub") {
            "PUBLIC KEY"
        } else {
            "RSA PRIVATE KEY"
        };
        write_node_file(
            node,
            &format!("{pki}/{name}"),
            &cluster::pem(label, &cluster::random_bytes(900)),
        )?;
    }
    let server = c.endpoint();
    for (file, user) in [
        ("admin.conf", "kubernetes-admin".to_string()),
        ("kubelet.conf", format!("system:node:{}", node.name)),
        (
            "controller-manager.conf",
            "system:kube-controller-manager".into(),
        ),
        ("scheduler.conf", "system:kube-scheduler".into()),
    ] {
        write_node_file(
            node,
            &format!("/etc/kubernetes/{file}"),
            &cluster::kubeconfig(&server, &c.ca_pem, &user),
        )?;
    }
    for m in MANIFESTS {
        write_node_file(
            node,
            &format!("/etc/kubernetes/manifests/{m}.yaml"),
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {m}\n  namespace: kube-system\nspec:\n  containers:\n  - image: registry.k8s.io/{m}:{version}\n    name: {m}\n  hostNetwork: true\n"
            ),
        )?;
    }
    write_node_file(node, "/var/lib/etcd/member/snap/db", "")?;
    write_kubelet_files(node, &c)?;

    let host = &node.name;
    let addr = &advertise;
    io.out(&format!(
        "[preflight] Pulling images required for setting up a Kubernetes cluster\n[preflight] This might take a minute or two, depending on the speed of your internet connection\n[preflight] You can also perform this action in beforehand using 'kubeadm config images pull'\n[certs] Using certificateDir folder \"/etc/kubernetes/pki\"\n[certs] Generating \"ca\" certificate and key\n[certs] Generating \"apiserver\" certificate and key\n[certs] apiserver serving cert is signed for DNS names [{host} kubernetes kubernetes.default kubernetes.default.svc kubernetes.default.svc.cluster.local] and IPs [10.96.0.1 {addr}]\n[certs] Generating \"apiserver-kubelet-client\" certificate and key\n[certs] Generating \"front-proxy-ca\" certificate and key\n[certs] Generating \"front-proxy-client\" certificate and key\n[certs] Generating \"etcd/ca\" certificate and key\n[certs] Generating \"etcd/server\" certificate and key\n[certs] etcd/server serving cert is signed for DNS names [{host} localhost] and IPs [{addr} 127.0.0.1 ::1]\n[certs] Generating \"etcd/peer\" certificate and key\n[certs] etcd/peer serving cert is signed for DNS names [{host} localhost] and IPs [{addr} 127.0.0.1 ::1]\n[certs] Generating \"etcd/healthcheck-client\" certificate and key\n[certs] Generating \"apiserver-etcd-client\" certificate and key\n[certs] Generating \"sa\" key and public key\n[kubeconfig] Using kubeconfig folder \"/etc/kubernetes\"\n[kubeconfig] Writing \"admin.conf\" kubeconfig file\n[kubeconfig] Writing \"kubelet.conf\" kubeconfig file\n[kubeconfig] Writing \"controller-manager.conf\" kubeconfig file\n[kubeconfig] Writing \"scheduler.conf\" kubeconfig file\n[etcd] Creating static Pod manifest for local etcd in \"/etc/kubernetes/manifests\"\n[control-plane] Using manifest folder \"/etc/kubernetes/manifests\"\n[control-plane] Creating static Pod manifest for \"kube-apiserver\"\n[control-plane] Creating static Pod manifest for \"kube-controller-manager\"\n[control-plane] Creating static Pod manifest for \"kube-scheduler\"\n[kubelet-start] Writing kubelet environment file with flags to file \"/var/lib/kubelet/kubeadm-flags.env\"\n[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"\n[kubelet-start] Starting the kubelet\n[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from directory \"/etc/kubernetes/manifests\". This can take up to 4m0s\n[apiclient] All control plane components are healthy after 6.502 seconds\n[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace\n[kubelet] Creating a ConfigMap \"kubelet-config\" in namespace kube-system with the configuration for the kubelets in the cluster\n[upload-certs] Skipping phase. Please see --upload-certs\n[mark-control-plane] Marking the node {host} as control-plane by adding the labels: [node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]\n[mark-control-plane] Marking the node {host} as control-plane by adding the taints [node-role.kubernetes.io/control-plane:NoSchedule]\n[bootstrap-token] Using token: {token}\n[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles\n[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get nodes\n[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for nodes to get long term certificate credentials\n[bootstrap-token] Configured RBAC rules to allow the csrapprover controller automatically approve CSRs from a Node Bootstrap Token\n[bootstrap-token] Configured RBAC rules to allow certificate rotation for all node client certificates in the cluster\n[bootstrap-token] Creating the \"cluster-info\" ConfigMap in the \"kube-public\" namespace\n[kubelet-finalize] Updating \"/etc/kubernetes/kubelet.conf\" to point to a rotatable kubelet client certificate and key\n[addons] Applied essential addon: CoreDNS\n[addons] Applied essential addon: kube-proxy\n\nYour Kubernetes control-plane has initialized successfully!\n\nTo start using your cluster, you need to run the following as a regular user:\n\n  mkdir -p $HOME/.kube\n  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n\nAlternatively, if you are the root user, you can run:\n\n  export KUBECONFIG=/etc/kubernetes/admin.conf\n\nYou should now deploy a pod network to the cluster.\nRun \"kubectl apply -f [podnetwork].yaml\" with one of the options listed at:\n  https://kubernetes.io/docs/concepts/cluster-administration/addons/\n\n"
    ));
    if c.control_plane_endpoint.is_some() {
        io.out(&format!(
            "You can now join any number of control-plane nodes by copying certificate authorities\nand service account keys on each node and then running the following as root:\n\n  {} \\\n\t--control-plane \n\n",
            join_command(&c, &token).replace('\n', "\n  ")
        ));
    }
    io.out(&format!(
        "Then you can join any number of worker nodes by running the following on each as root:\n\n{}\n",
        join_command(&c, &token)
    ));
    Ok(())
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 128)
}

fn kubeadm_join(node: &Node, args: &[String], io: &mut Io) -> Result<(), String> {
    let a = Args::parse(args, kubeadm_flags)?;
    let Some(endpoint) = a.positional.first() else {
        return Err("discovery: Invalid value: \"\": bootstrapToken or file must be set".into());
    };
    let token = a.value(&["token"]).unwrap_or_default().to_string();
    if !valid_token(&token) {
        return Err(format!(
            "discovery.bootstrapToken.token: Invalid value: \"{token}\": the bootstrap token \"{token}\" was not of the form \"[a-z0-9]{{6}}.[a-z0-9]{{16}}\""
        ));
    }
    let pins: Vec<String> = a
        .values(&["discovery-token-ca-cert-hash"])
        .iter()
        .map(|s| (*s).to_string())
        .collect();
    let unsafe_skip = a.has(&["discovery-token-unsafe-skip-ca-verification"]);
    if pins.is_empty() && !unsafe_skip {
        return Err("discovery.bootstrapToken: Invalid value: \"\": using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue".into());
    }
    if a.has(&["control-plane"]) {
        return Err("kamo lab: joining additional control-plane nodes (--control-plane) is not modelled by the lab".into());
    }

    io.out("[preflight] Running pre-flight checks\n");
    let mut failed = Vec::new();
    if !cluster::is_root() {
        failed.push((
            "IsPrivilegedUser".into(),
            "user is not running as root".into(),
        ));
    }
    file_check(node, "/etc/kubernetes/kubelet.conf", &mut failed);
    if kubelet_running(node) {
        failed.push(("Port-10250".into(), "Port 10250 is in use".into()));
    }
    file_check(node, "/etc/kubernetes/pki/ca.crt", &mut failed);
    preflight(&failed, &ignore_list(&a), io)?;

    let store = Store::new(node);
    let _lock = store.lock()?;
    let cluster_info = format!(
        "https://{endpoint}/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s"
    );
    let c = match store.cluster()? {
        Some(c) if c.serves(endpoint, &c.control_plane) => c,
        _ => {
            return Err(format!(
                "error execution phase preflight: couldn't validate the identity of the API Server: Get \"{cluster_info}\": dial tcp {endpoint}: connect: connection refused"
            ));
        }
    };
    let now = cluster::now();
    let token_id = token.split('.').next().unwrap_or_default();
    if !c.tokens.iter().any(|t| t.token == token && t.expires > now) {
        return Err(format!(
            "error execution phase preflight: couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID \"{token_id}\""
        ));
    }
    if !unsafe_skip {
        let wanted = format!("sha256:{}", c.ca_hash);
        if !pins.iter().any(|p| p.eq_ignore_ascii_case(&wanted)) {
            return Err(format!(
                "error execution phase preflight: couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{wanted}\" are pinned"
            ));
        }
    }
    if let Some(existing) = store.node(&node.name)? {
        return Err(format!(
            "error execution phase kubelet-start: a Node with name \"{}\" and status \"Ready\" already exists in the cluster. You must delete the existing Node or change the name of this new joining Node",
            existing.name
        ));
    }
    store.save_node(&node_record(
        node,
        false,
        &cluster::kube_version(node, "kubelet"),
    ))?;
    write_kubelet_files(node, &c)?;
    io.out("[preflight] Reading configuration from the cluster...\n[preflight] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'\n[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"\n[kubelet-start] Writing kubelet environment file with flags to file \"/var/lib/kubelet/kubeadm-flags.env\"\n[kubelet-start] Starting the kubelet\n[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap...\n\nThis node has joined the cluster:\n* Certificate signing request was sent to apiserver and a response was received.\n* The Kubelet was informed of the new secure connection details.\n\nRun 'kubectl get nodes' on the control-plane to see this node join the cluster.\n\n");
    Ok(())
}

fn remove_under(node: &Node, abs: &str) {
    let dir = node.path(abs);
    if let Ok(entries) = fs::read_dir(&dir) {
        for e in entries.flatten() {
            let p = e.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}

fn kubeadm_reset(node: &Node, args: &[String], io: &mut Io) -> Result<(), String> {
    let a = Args::parse(args, kubeadm_flags)?;
    if !cluster::is_root() {
        io.out("[preflight] Running pre-flight checks\n");
        return preflight(
            &[(
                "IsPrivilegedUser".into(),
                "user is not running as root".into(),
            )],
            &ignore_list(&a),
            io,
        );
    }
    if !a.has(&["force", "f"]) {
        io.out("W0000 00:00:00.000000       1 preflight.go:56] [reset] WARNING: Changes made to this host by 'kubeadm init' or 'kubeadm join' will be reverted.\n[reset] Are you sure you want to proceed? [y/N]: ");
        return Err("error execution phase preflight: won't proceed; the user didn't answer (Y|y) in order to continue".into());
    }
    let store = Store::new(node);
    {
        let _lock = store.lock()?;
        match store.cluster()? {
            Some(c) if c.control_plane == node.name => {
                store.wipe()?;
                io.out("[reset] Reading configuration from the cluster...\n[reset] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'\n");
            }
            Some(_) => {
                store.remove_node(&node.name)?;
            }
            None => {
                io.err("W0000 00:00:00.000000       1 reset.go:124] [reset] Unable to fetch the kubeadm-config ConfigMap from cluster: failed to get config map: Get \"https://127.0.0.1:6443/api/v1/namespaces/kube-system/configmaps/kubeadm-config?timeout=10s\": dial tcp 127.0.0.1:6443: connect: connection refused\n");
            }
        }
    }
    let etcd = node.path("/var/lib/etcd").exists();
    remove_under(node, "/etc/kubernetes/manifests");
    remove_under(node, "/var/lib/kubelet");
    remove_under(node, "/etc/kubernetes/pki");
    remove_under(node, "/var/lib/etcd");
    let files = [
        "/etc/kubernetes/admin.conf",
        "/etc/kubernetes/super-admin.conf",
        "/etc/kubernetes/kubelet.conf",
        "/etc/kubernetes/bootstrap-kubelet.conf",
        "/etc/kubernetes/controller-manager.conf",
        "/etc/kubernetes/scheduler.conf",
    ];
    for f in files {
        let _ = fs::remove_file(node.path(f));
    }
    io.out("[preflight] Running pre-flight checks\n");
    if etcd {
        io.out("[reset] Deleted contents of the etcd data directory: /var/lib/etcd\n");
    } else {
        io.err("W0000 00:00:00.000000       1 removeetcdmember.go:106] [reset] No kubeadm config, using etcd pod spec to get data directory\n");
    }
    io.out(&format!(
        "[reset] Stopping the kubelet service\n[reset] Unmounting mounted directories in \"/var/lib/kubelet\"\n[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]\n[reset] Deleting files: [{}]\n\nThe reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d\n\nThe reset process does not reset or clean up iptables rules or IPVS tables.\nIf you wish to reset iptables, you must do so manually by using the \"iptables\" command.\n\nIf your cluster was setup to utilize IPVS, run ipvsadm --clear (or similar)\nto reset your system's IPVS tables.\n\nThe reset process does not clean your kubeconfig files and you must remove them manually.\nPlease, check the contents of the $HOME/.kube/config file.\n",
        files.join(" ")
    ));
    Ok(())
}

/// The cluster as seen from the control plane's admin.conf (kubeadm token/certs run there).
fn admin_cluster(node: &Node, a: &Args) -> Result<Cluster, String> {
    let config = a
        .value(&["kubeconfig"])
        .unwrap_or("/etc/kubernetes/admin.conf");
    match cluster::reach(node, Some(config)).map_err(|_| {
        format!("failed to load admin kubeconfig: open {config}: no such file or directory")
    })? {
        Reach::Up(c) => Ok(*c),
        Reach::Refused(hp) | Reach::UnknownAuthority(hp) => Err(format!(
            "failed to list bootstrap tokens: Get \"https://{hp}/api/v1/namespaces/kube-system/secrets?fieldSelector=type%3Dbootstrap.kubernetes.io%2Ftoken\": dial tcp {hp}: connect: connection refused"
        )),
        Reach::NoConfig => Err(format!(
            "failed to load admin kubeconfig: open {config}: no such file or directory"
        )),
    }
}

fn kubeadm_token(node: &Node, args: &[String], io: &mut Io) -> Result<(), String> {
    let a = Args::parse(args, kubeadm_flags)?;
    let sub = a.positional.first().map_or("", String::as_str);
    let store = Store::new(node);
    let _lock = store.lock()?;
    let mut c = admin_cluster(node, &a)?;
    match sub {
        "create" => {
            let token = match a.positional.get(1) {
                Some(t) if !valid_token(t) => {
                    return Err(format!(
                        "the bootstrap token \"{t}\" was not of the form \"[a-z0-9]{{6}}.[a-z0-9]{{16}}\""
                    ));
                }
                Some(t) => t.clone(),
                None => new_token(),
            };
            let ttl = parse_ttl(a.value(&["ttl"]).unwrap_or("24h0m0s"))?;
            c.tokens.retain(|t| t.token != token);
            c.tokens.push(Token {
                token: token.clone(),
                expires: cluster::now().saturating_add(ttl),
            });
            store.save_cluster(&c)?;
            if a.has(&["print-join-command"]) {
                io.out(&format!(
                    "{}\n",
                    join_command(&c, &token).replace(" \\\n\t", " ")
                ));
            } else {
                io.out(&format!("{token}\n"));
            }
            Ok(())
        }
        "list" => {
            let now = cluster::now();
            let mut rows = vec![
                [
                    "TOKEN",
                    "TTL",
                    "EXPIRES",
                    "USAGES",
                    "DESCRIPTION",
                    "EXTRA GROUPS",
                ]
                .map(String::from)
                .to_vec(),
            ];
            for t in c.tokens.iter().filter(|t| t.expires > now) {
                rows.push(vec![
                    t.token.clone(),
                    cluster::human_duration(i64::try_from(t.expires - now).unwrap_or(0))
                        .replace("<invalid>", "<forever>"),
                    cluster::rfc3339(t.expires),
                    "authentication,signing".into(),
                    "<none>".into(),
                    "system:bootstrappers:kubeadm:default-node-token".into(),
                ]);
            }
            io.out(&tabwrite(&rows, 10, 3));
            Ok(())
        }
        "delete" => {
            for t in &a.positional[1..] {
                let id = t.split('.').next().unwrap_or_default();
                c.tokens.retain(|x| !x.token.starts_with(&format!("{id}.")));
                io.out(&format!("bootstrap token \"{id}\" deleted\n"));
            }
            store.save_cluster(&c)?;
            Ok(())
        }
        _ => Err("unknown command for \"kubeadm token\"".into()),
    }
}

const LEAF_CERTS: [(&str, &str, &str); 10] = [
    (
        "admin.conf",
        "",
        "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself",
    ),
    (
        "apiserver",
        "ca",
        "certificate for serving the Kubernetes API",
    ),
    (
        "apiserver-etcd-client",
        "etcd-ca",
        "certificate the apiserver uses to access etcd",
    ),
    (
        "apiserver-kubelet-client",
        "ca",
        "certificate for the API server to connect to kubelet",
    ),
    (
        "controller-manager.conf",
        "",
        "certificate embedded in the kubeconfig file for the controller manager to use",
    ),
    (
        "etcd-healthcheck-client",
        "etcd-ca",
        "certificate for liveness probes to healthcheck etcd",
    ),
    (
        "etcd-peer",
        "etcd-ca",
        "certificate for etcd nodes to communicate with each other",
    ),
    ("etcd-server", "etcd-ca", "certificate for serving etcd"),
    (
        "front-proxy-client",
        "front-proxy-ca",
        "certificate for the front proxy client",
    ),
    (
        "scheduler.conf",
        "",
        "certificate embedded in the kubeconfig file for the scheduler manager to use",
    ),
];

const YEAR: u64 = 365 * 86_400;

/// kubeadm's `Jan 02, 2006 15:04 MST` in UTC.
fn cert_date(secs: u64) -> String {
    let (y, mo, d, h, mi, _, _) = cluster::civil(secs);
    format!(
        "{} {d:02}, {y} {h:02}:{mi:02} UTC",
        cluster::MONTHS[mo as usize - 1]
    )
}

/// `duration.ShortHumanDuration`.
fn short_duration(secs: i64) -> String {
    if secs < -1 {
        "<invalid>".into()
    } else if secs < 0 {
        "0s".into()
    } else if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m", secs / 60)
    } else if secs < 86_400 {
        format!("{}h", secs / 3600)
    } else if secs < 365 * 86_400 {
        format!("{}d", secs / 86_400)
    } else {
        format!("{}y", secs / 86_400 / 365)
    }
}

fn kubeadm_certs(node: &Node, args: &[String], io: &mut Io) -> Result<(), String> {
    let a = Args::parse(args, kubeadm_flags)?;
    if !node.path("/etc/kubernetes/pki/ca.crt").exists()
        || !node
            .path("/etc/kubernetes/manifests/kube-apiserver.yaml")
            .exists()
    {
        return Err(
            "[certs] couldn't load the certificate file /etc/kubernetes/pki/apiserver.crt: open /etc/kubernetes/pki/apiserver.crt: no such file or directory".into(),
        );
    }
    let store = Store::new(node);
    let _lock = store.lock()?;
    let Some(mut c) = store.cluster()? else {
        return Err("failed to load admin kubeconfig: the cluster is gone".into());
    };
    match a
        .positional
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["check-expiration"] => {
            let now = i64::try_from(cluster::now()).unwrap_or(0);
            // Certificates are checked at least a moment after they were issued: a fresh one
            // has 364d left, as on a real cluster.
            let left = |until: u64| short_duration(i64::try_from(until).unwrap_or(0) - now - 1);
            io.out("[check-expiration] Reading configuration from the cluster...\n[check-expiration] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'\n\n");
            let mut rows = vec![
                [
                    "CERTIFICATE",
                    "EXPIRES",
                    "RESIDUAL TIME",
                    "CERTIFICATE AUTHORITY",
                    "EXTERNALLY MANAGED",
                ]
                .map(String::from)
                .to_vec(),
            ];
            let until = c.certs_issued + YEAR;
            for (name, ca, _) in LEAF_CERTS {
                rows.push(vec![
                    name.into(),
                    cert_date(until),
                    left(until),
                    ca.into(),
                    "no".into(),
                ]);
            }
            io.out(&tabwrite(&rows, 10, 3));
            io.out("\n");
            let until = c.created + 10 * YEAR;
            let mut rows = vec![
                [
                    "CERTIFICATE AUTHORITY",
                    "EXPIRES",
                    "RESIDUAL TIME",
                    "EXTERNALLY MANAGED",
                ]
                .map(String::from)
                .to_vec(),
            ];
            for ca in ["ca", "etcd-ca", "front-proxy-ca"] {
                rows.push(vec![ca.into(), cert_date(until), left(until), "no".into()]);
            }
            io.out(&tabwrite(&rows, 10, 3));
            Ok(())
        }
        ["renew", what] => {
            let selected: Vec<_> = LEAF_CERTS
                .iter()
                .filter(|(n, _, _)| *what == "all" || n == what)
                .collect();
            if selected.is_empty() {
                return Err(format!(
                    "unknown command \"{what}\" for \"kubeadm certs renew\""
                ));
            }
            io.out("[renew] Reading configuration from the cluster...\n[renew] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'\n\n");
            for (_, _, desc) in &selected {
                io.out(&format!("{desc} renewed\n"));
            }
            c.certs_issued = cluster::now();
            store.save_cluster(&c)?;
            if *what == "all" {
                io.out("\nDone renewing certificates. You must restart the kube-apiserver, kube-controller-manager, kube-scheduler and etcd, so that they can use the new certificates.\n");
            }
            Ok(())
        }
        _ => Err("missing subcommand; \"certs\" is not meant to be run on its own".into()),
    }
}

fn version_info(v: &str) -> Value {
    json!({
        "major": "1",
        "minor": minor(v).to_string(),
        "gitVersion": v,
        "gitCommit": "89a4ea3e1e4ddd7f7572286090359983e0387b2f",
        "gitTreeState": "clean",
        "buildDate": "2023-09-13T09:34:32Z",
        "goVersion": "go1.20.8",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn kubeadm_version(node: &Node, args: &[String], io: &mut Io) -> Result<(), String> {
    let a = Args::parse(args, kubeadm_flags)?;
    let v = cluster::kube_version(node, "kubeadm");
    match a.value(&["o", "output"]).unwrap_or("") {
        "short" => io.out(&format!("{v}\n")),
        "json" => io.out(&format!(
            "{}\n",
            pretty(&json!({ "clientVersion": version_info(&v) }), 2)
        )),
        "yaml" => io.out(
            &serde_yaml::to_string(&json!({ "clientVersion": version_info(&v) }))
                .unwrap_or_default(),
        ),
        "" => io.out(&format!(
            "kubeadm version: &version.Info{{Major:\"1\", Minor:\"{}\", GitVersion:\"{v}\", GitCommit:\"89a4ea3e1e4ddd7f7572286090359983e0387b2f\", GitTreeState:\"clean\", BuildDate:\"2023-09-13T09:34:32Z\", GoVersion:\"go1.20.8\", Compiler:\"gc\", Platform:\"linux/amd64\"}}\n",
            minor(&v)
        )),
        other => return Err(format!("invalid output format: {other}")),
    }
    Ok(())
}

/// JSON with `indent` spaces, keys as given.
#[must_use]
pub fn pretty(v: &Value, indent: usize) -> String {
    use serde::Serialize;
    let spaces = " ".repeat(indent);
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(spaces.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    let _ = v.serialize(&mut ser);
    String::from_utf8(buf).unwrap_or_default()
}

/// Sorts object keys recursively (the API server's JSON comes out sorted through kubectl).
#[must_use]
pub fn sorted(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// kubectl

fn kubectl_flags(name: &str) -> Option<bool> {
    match name {
        "kubeconfig"
        | "n"
        | "namespace"
        | "o"
        | "output"
        | "l"
        | "selector"
        | "field-selector"
        | "for"
        | "timeout"
        | "grace-period"
        | "f"
        | "filename"
        | "c"
        | "container"
        | "context"
        | "request-timeout"
        | "v"
        | "server"
        | "cluster"
        | "user"
        | "field-manager"
        | "pod-running-timeout" => Some(true),
        "A"
        | "all-namespaces"
        | "all"
        | "ignore-daemonsets"
        | "delete-emptydir-data"
        | "delete-local-data"
        | "force"
        | "overwrite"
        | "i"
        | "stdin"
        | "t"
        | "tty"
        | "client"
        | "no-headers"
        | "show-labels"
        | "wait"
        | "server-side"
        | "dry-run"
        | "quiet"
        | "q"
        | "watch"
        | "w"
        | "disable-eviction"
        | "ignore-not-found" => Some(false),
        _ => None,
    }
}

/// The outcome of a kubectl verb: output is already in `io`; `Err` is the message for stderr.
type Out = Result<i32, String>;

/// `kubectl`.
pub fn kubectl(node: &Node, args: &[String], io: &mut Io) -> i32 {
    let a = match Args::parse(args, kubectl_flags) {
        Ok(a) => a,
        Err(e) => {
            io.err(&format!("error: {e}\nSee 'kubectl --help' for usage.\n"));
            return 1;
        }
    };
    let Some(verb) = a.positional.first().cloned() else {
        io.out("kubectl controls the Kubernetes cluster manager.\n\n Find more information at: https://kubernetes.io/docs/reference/kubectl/\n");
        return 0;
    };
    if verb == "version" && a.has(&["client"]) {
        return kubectl_version(node, &a, None, io);
    }
    if verb == "config" {
        return kubectl_config(node, &a, io);
    }
    let cluster = match cluster::reach(node, a.value(&["kubeconfig"])) {
        Err(e) => {
            io.err(&format!("{e}\n"));
            return 1;
        }
        Ok(Reach::Up(c)) => *c,
        Ok(unreachable) => {
            if verb == "version" {
                kubectl_version(node, &a, None, io);
            }
            io.err(&unreachable_message(&unreachable));
            return 1;
        }
    };
    let result = match verb.as_str() {
        "version" => Ok(kubectl_version(node, &a, Some(&cluster), io)),
        "get" => kubectl_get(node, &a, io),
        "wait" => kubectl_wait(node, &a, io),
        "drain" => kubectl_drain(node, &a, io),
        "cordon" | "uncordon" => kubectl_cordon(node, &a, verb == "cordon", io),
        "delete" => kubectl_delete(node, &a, io),
        "label" => kubectl_label(node, &a, io),
        "taint" => kubectl_taint(node, &a, io),
        "apply" | "create" => kubectl_apply(node, &a, verb == "create", io),
        "exec" => kubectl_exec(node, &a, io),
        "rollout" => kubectl_rollout(node, &a, io),
        "cluster-info" => {
            let ep = cluster.endpoint();
            io.out(&format!("Kubernetes control plane is running at https://{ep}\nCoreDNS is running at https://{ep}/api/v1/namespaces/kube-system/services/kube-dns:dns/proxy\n\nTo further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.\n"));
            Ok(0)
        }
        other => Err(format!(
            "error: unknown command \"{other}\" for \"kubectl\"\n\nDid you mean this?\n\tget\n"
        )),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            io.err(&e);
            if !e.ends_with('\n') {
                io.err("\n");
            }
            1
        }
    }
}

/// What kubectl and helm print when the kubeconfig leads nowhere.
#[must_use]
pub fn unreachable_message(r: &Reach) -> String {
    match r {
        Reach::NoConfig => "The connection to the server localhost:8080 was refused - did you specify the right host or port?\n".into(),
        Reach::Refused(hp) => format!("The connection to the server {hp} was refused - did you specify the right host or port?\n"),
        Reach::UnknownAuthority(_) => "Unable to connect to the server: tls: failed to verify certificate: x509: certificate signed by unknown authority (possibly because of \"crypto/rsa: verification error\" while trying to verify candidate authority certificate \"kubernetes\")\n".into(),
        Reach::Up(_) => String::new(),
    }
}

fn kubectl_config(node: &Node, a: &Args, io: &mut Io) -> i32 {
    match a.positional.get(1).map(String::as_str) {
        Some("view") => {
            let path = a
                .value(&["kubeconfig"])
                .map(str::to_string)
                .or_else(|| cluster::env("KUBECONFIG"))
                .unwrap_or_else(|| format!("{}/.kube/config", cluster::home()));
            match fs::read_to_string(node.path(&path)) {
                Ok(t) => io.out(&t.replace('\r', "")),
                Err(_) => io.out("apiVersion: v1\nclusters: null\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {}\nusers: null\n"),
            }
            0
        }
        Some("current-context") => match cluster::reach(node, a.value(&["kubeconfig"])) {
            Ok(Reach::NoConfig) | Err(_) => {
                io.err("error: current-context is not set\n");
                1
            }
            Ok(_) => {
                io.out("kubernetes-admin@kubernetes\n");
                0
            }
        },
        _ => {
            io.err("error: unknown command for \"kubectl config\"\n");
            1
        }
    }
}

fn kubectl_version(node: &Node, a: &Args, server: Option<&Cluster>, io: &mut Io) -> i32 {
    let client = cluster::kube_version(node, "kubectl");
    match a.value(&["o", "output"]) {
        Some(fmt @ ("json" | "yaml")) => {
            let mut v = json!({ "clientVersion": version_info(&client), "kustomizeVersion": KUSTOMIZE_VERSION });
            if let Some(c) = server {
                v["serverVersion"] = version_info(&c.version);
            }
            if fmt == "json" {
                io.out(&format!("{}\n", pretty(&v, 2)));
            } else {
                io.out(&serde_yaml::to_string(&v).unwrap_or_default());
            }
        }
        Some(other) => {
            io.err(&format!(
                "error: --output must be 'yaml' or 'json', got {other}\n"
            ));
            return 1;
        }
        None => {
            io.out(&format!(
                "Client Version: {client}\nKustomize Version: {KUSTOMIZE_VERSION}\n"
            ));
            if let Some(c) = server {
                io.out(&format!("Server Version: {}\n", c.version));
            }
        }
    }
    0
}

/// A resource type as kubectl spells it, normalized: `nodes`, `pods`, `namespaces`, or a kind.
fn resource(word: &str) -> String {
    match word.to_ascii_lowercase().as_str() {
        "node" | "nodes" | "no" => "nodes".into(),
        "pod" | "pods" | "po" => "pods".into(),
        "namespace" | "namespaces" | "ns" => "namespaces".into(),
        "deployment" | "deployments" | "deploy" => "Deployment".into(),
        "daemonset" | "daemonsets" | "ds" => "DaemonSet".into(),
        "statefulset" | "statefulsets" | "sts" => "StatefulSet".into(),
        "configmap" | "configmaps" | "cm" => "ConfigMap".into(),
        "service" | "services" | "svc" => "Service".into(),
        "serviceaccount" | "serviceaccounts" | "sa" => "ServiceAccount".into(),
        other => other.trim_end_matches('s').to_string(),
    }
}

/// Splits `TYPE/NAME` or `TYPE NAME...` into (type, names).
fn targets(words: &[String]) -> Option<(String, Vec<String>)> {
    let first = words.first()?;
    if let Some((t, n)) = first.split_once('/') {
        let mut names = vec![n.to_string()];
        names.extend(
            words[1..]
                .iter()
                .filter_map(|w| w.split_once('/').map(|(_, n)| n.to_string())),
        );
        return Some((resource(t), names));
    }
    Some((resource(first), words[1..].to_vec()))
}

fn not_found(kind: &str, name: &str) -> String {
    format!("Error from server (NotFound): {kind} \"{name}\" not found\n")
}

fn load(node: &Node) -> Result<(Cluster, Vec<NodeRecord>), String> {
    let store = Store::new(node);
    let c = store
        .cluster()?
        .ok_or_else(|| unreachable_message(&Reach::NoConfig))?;
    Ok((c, store.nodes()?))
}

fn node_ready(c: &Cluster) -> bool {
    network_ready(c)
}

fn roles(n: &NodeRecord) -> String {
    let roles: Vec<&str> = n
        .labels
        .keys()
        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
        .collect();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

fn node_status(c: &Cluster, n: &NodeRecord) -> String {
    let mut s = if node_ready(c) { "Ready" } else { "NotReady" }.to_string();
    if n.unschedulable {
        s.push_str(",SchedulingDisabled");
    }
    s
}

fn uid(seed: &str) -> String {
    let h = cluster::sha256_hex(seed.as_bytes());
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn node_json(c: &Cluster, n: &NodeRecord) -> Value {
    let ready = node_ready(c);
    let ts = cluster::rfc3339(n.joined);
    let condition = |t: &str, status: &str, reason: &str, message: &str| json!({"lastHeartbeatTime": cluster::rfc3339(cluster::now()), "lastTransitionTime": ts, "message": message, "reason": reason, "status": status, "type": t});
    let mut capacity = json!({
        "cpu": "8", "ephemeral-storage": "101445540Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
        "memory": "32863332Ki", "pods": "110"
    });
    if n.gpu && device_plugin(c) {
        capacity["nvidia.com/gpu"] = json!("1");
    }
    let mut allocatable = capacity.clone();
    allocatable["memory"] = json!("32760932Ki");
    allocatable["ephemeral-storage"] = json!("93492209510");
    let mut spec = json!({
        "podCIDR": "10.244.0.0/24",
        "podCIDRs": ["10.244.0.0/24"],
    });
    if !n.taints.is_empty() || n.unschedulable {
        let mut taints: Vec<Value> = n.taints.iter().map(|t| taint_json(t)).collect();
        if n.unschedulable {
            taints.push(json!({"effect": "NoSchedule", "key": "node.kubernetes.io/unschedulable", "timeAdded": ts}));
        }
        spec["taints"] = Value::Array(taints);
    }
    if !ready {
        let taints = spec["taints"].as_array().cloned().unwrap_or_default();
        let mut taints = taints;
        taints.push(json!({"effect": "NoSchedule", "key": "node.kubernetes.io/not-ready"}));
        spec["taints"] = Value::Array(taints);
    }
    if n.unschedulable {
        spec["unschedulable"] = json!(true);
    }
    sorted(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "annotations": {
                "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock",
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true"
            },
            "creationTimestamp": ts,
            "labels": n.labels,
            "name": n.name,
            "resourceVersion": (n.joined % 100_000).to_string(),
            "uid": uid(&format!("node/{}/{}", n.name, n.joined)),
        },
        "spec": spec,
        "status": {
            "addresses": [
                {"address": n.address, "type": "InternalIP"},
                {"address": n.name, "type": "Hostname"}
            ],
            "allocatable": allocatable,
            "capacity": capacity,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                if ready {
                    condition("Ready", "True", "KubeletReady", "kubelet is posting ready status. AppArmor enabled")
                } else {
                    condition("Ready", "False", "KubeletNotReady", "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized")
                }
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": uid(&format!("boot/{}", n.name)),
                "containerRuntimeVersion": n.container_runtime,
                "kernelVersion": n.kernel,
                "kubeProxyVersion": n.version,
                "kubeletVersion": n.version,
                "machineID": cluster::sha256_hex(n.name.as_bytes())[..32],
                "operatingSystem": "linux",
                "osImage": n.os_image,
                "systemUUID": uid(&format!("system/{}", n.name)),
            }
        }
    }))
}

fn taint_json(t: &str) -> Value {
    let (kv, effect) = t.rsplit_once(':').unwrap_or((t, "NoSchedule"));
    match kv.split_once('=') {
        Some((k, v)) => json!({"effect": effect, "key": k, "value": v}),
        None => json!({"effect": effect, "key": kv}),
    }
}

fn pod_json(p: &Pod) -> Value {
    let ts = cluster::rfc3339(p.created);
    let phase = if p.running { "Running" } else { "Pending" };
    let container = p.owner_name.clone();
    let mut status = json!({
        "conditions": [
            {"lastProbeTime": null, "lastTransitionTime": ts, "status": if p.running {"True"} else {"False"}, "type": "Ready"},
            {"lastProbeTime": null, "lastTransitionTime": ts, "status": if p.node.is_some() {"True"} else {"False"}, "type": "PodScheduled"}
        ],
        "phase": phase,
        "qosClass": "BestEffort",
    });
    if p.running {
        status["containerStatuses"] = json!([{
            "image": p.image, "name": container, "ready": true, "restartCount": 0, "started": true,
            "state": {"running": {"startedAt": ts}}
        }]);
        status["podIP"] = json!(p.ip);
        status["podIPs"] = json!([{"ip": p.ip}]);
        status["startTime"] = json!(ts);
    }
    if let Some(h) = &p.host_ip {
        status["hostIP"] = json!(h);
    }
    let mut metadata = json!({
        "creationTimestamp": ts,
        "labels": p.labels,
        "name": p.name,
        "namespace": p.namespace,
        "uid": uid(&format!("pod/{}/{}/{}", p.namespace, p.name, p.created)),
    });
    if p.owner_kind != "Pod" {
        let (kind, api) = match p.owner_kind.as_str() {
            "Node" => ("Node", "v1"),
            "Deployment" => ("ReplicaSet", "apps/v1"),
            other => (other, "apps/v1"),
        };
        metadata["ownerReferences"] = json!([{"apiVersion": api, "blockOwnerDeletion": true, "controller": true, "kind": kind, "name": p.owner_name}]);
    }
    let mut spec = json!({"containers": [{"image": p.image, "imagePullPolicy": "IfNotPresent", "name": container}], "restartPolicy": "Always"});
    if let Some(n) = &p.node {
        spec["nodeName"] = json!(n);
    }
    sorted(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}),
    )
}

fn object_json(o: &Object) -> Value {
    let mut v = o.manifest.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "creationTimestamp".into(),
            json!(cluster::rfc3339(o.created)),
        );
        meta.insert(
            "uid".into(),
            json!(uid(&format!("{}/{}/{}", o.kind, o.name, o.created))),
        );
        if let Some(ns) = &o.namespace {
            meta.insert("namespace".into(), json!(ns));
        }
    }
    sorted(v)
}

fn matches_selector(labels: &BTreeMap<String, String>, selector: Option<&str>) -> bool {
    let Some(sel) = selector else { return true };
    sel.split(',').filter(|s| !s.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels.get(k.trim()).is_none_or(|x| x != v.trim())
        } else if let Some((k, v)) = term.split_once('=') {
            labels
                .get(k.trim().trim_end_matches('='))
                .is_some_and(|x| x == v.trim())
        } else if let Some(k) = term.strip_prefix('!') {
            !labels.contains_key(k.trim())
        } else {
            labels.contains_key(term.trim())
        }
    })
}

fn matches_fields(p: &Pod, selector: Option<&str>) -> bool {
    let Some(sel) = selector else { return true };
    sel.split(',').all(|term| {
        let (k, v, neg) = match term.split_once("!=") {
            Some((k, v)) => (k, v, true),
            None => match term.split_once('=') {
                Some((k, v)) => (k, v.trim_start_matches('='), false),
                None => return true,
            },
        };
        let actual = match k {
            "spec.nodeName" => p.node.clone().unwrap_or_default(),
            "status.phase" => if p.running { "Running" } else { "Pending" }.to_string(),
            "metadata.name" => p.name.clone(),
            "metadata.namespace" => p.namespace.clone(),
            _ => return true,
        };
        (actual == v) != neg
    })
}

/// Prints `items` (JSON objects) per `-o`; `table` renders the default/wide table.
fn print_objects(
    a: &Args,
    kind_word: &str,
    items: &[Value],
    single: bool,
    table: impl Fn(bool) -> Vec<Vec<String>>,
    io: &mut Io,
) -> Out {
    let output = a.value(&["o", "output"]).unwrap_or("");
    let as_value = || {
        if single && items.len() == 1 {
            items[0].clone()
        } else {
            json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
        }
    };
    match output {
        "" | "wide" => {
            let mut rows = table(output == "wide");
            if a.has(&["no-headers"]) && !rows.is_empty() {
                rows.remove(0);
            }
            io.out(&tabwrite(&rows, 6, 3));
        }
        "json" => io.out(&format!("{}\n", pretty(&as_value(), 4))),
        "yaml" => io.out(&serde_yaml::to_string(&as_value()).unwrap_or_default()),
        "name" => {
            for i in items {
                let name = i
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                io.out(&format!("{kind_word}/{name}\n"));
            }
        }
        other => {
            if let Some(template) = other
                .strip_prefix("jsonpath=")
                .or_else(|| other.strip_prefix("jsonpath-as-json="))
            {
                let template = template.trim_matches('\'');
                io.out(&jsonpath(template, &as_value())?);
            } else {
                return Err(format!(
                    "error: unable to match a printer suitable for the output format \"{other}\", allowed formats are: custom-columns,custom-columns-file,go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,template,templatefile,wide,yaml"
                ));
            }
        }
    }
    Ok(0)
}

fn kubectl_get(node: &Node, a: &Args, io: &mut Io) -> Out {
    let Some((res, names)) = targets(&a.positional[1..]) else {
        return Err("You must specify the type of resource to get. Use \"kubectl api-resources\" for a complete list of supported resources.\n\nerror: Required resource not specified.\nUse \"kubectl explain <resource>\" for a detailed description of that resource (e.g. kubectl explain pods).\nSee 'kubectl get -h' for help and examples".into());
    };
    let (c, nodes) = load(node)?;
    match res.as_str() {
        "nodes" => get_nodes(a, &c, &nodes, &names, io),
        "pods" => get_pods(a, &c, &nodes, &names, io),
        "namespaces" => get_namespaces(a, &c, &names, io),
        kind => get_objects(a, &c, kind, &names, io),
    }
}

fn get_nodes(a: &Args, c: &Cluster, nodes: &[NodeRecord], names: &[String], io: &mut Io) -> Out {
    let selector = a.value(&["l", "selector"]);
    let mut chosen = Vec::new();
    for name in names {
        match nodes.iter().find(|n| &n.name == name) {
            Some(n) => chosen.push(n.clone()),
            None => return Err(not_found("nodes", name)),
        }
    }
    if names.is_empty() {
        chosen = nodes
            .iter()
            .filter(|n| matches_selector(&n.labels, selector))
            .cloned()
            .collect();
    }
    if chosen.is_empty() {
        io.err("No resources found\n");
        return Ok(0);
    }
    let items: Vec<Value> = chosen.iter().map(|n| node_json(c, n)).collect();
    let label_col = a.has(&["show-labels"]);
    print_objects(
        a,
        "node",
        &items,
        !names.is_empty(),
        |wide| {
            let mut header: Vec<String> = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
                .map(String::from)
                .to_vec();
            if wide {
                header.extend(
                    [
                        "INTERNAL-IP",
                        "EXTERNAL-IP",
                        "OS-IMAGE",
                        "KERNEL-VERSION",
                        "CONTAINER-RUNTIME",
                    ]
                    .map(String::from),
                );
            }
            if label_col {
                header.push("LABELS".into());
            }
            let mut rows = vec![header];
            for n in &chosen {
                let mut row = vec![
                    n.name.clone(),
                    node_status(c, n),
                    roles(n),
                    cluster::age(n.joined),
                    n.version.clone(),
                ];
                if wide {
                    row.extend([
                        n.address.clone(),
                        "<none>".into(),
                        n.os_image.clone(),
                        n.kernel.clone(),
                        n.container_runtime.clone(),
                    ]);
                }
                if label_col {
                    row.push(
                        n.labels
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(","),
                    );
                }
                rows.push(row);
            }
            rows
        },
        io,
    )
}

fn get_pods(a: &Args, c: &Cluster, nodes: &[NodeRecord], names: &[String], io: &mut Io) -> Out {
    let selector = a.value(&["l", "selector"]);
    let all = a.has(&["A", "all-namespaces"]);
    let ns = a
        .value(&["n", "namespace"])
        .unwrap_or("default")
        .to_string();
    let mut chosen: Vec<Pod> = pods(c, nodes)
        .into_iter()
        .filter(|p| all || p.namespace == ns)
        .filter(|p| matches_selector(&p.labels, selector))
        .filter(|p| matches_fields(p, a.value(&["field-selector"])))
        .collect();
    if !names.is_empty() {
        let mut picked = Vec::new();
        for name in names {
            match chosen.iter().find(|p| &p.name == name) {
                Some(p) => picked.push(p.clone()),
                None => return Err(not_found("pods", name)),
            }
        }
        chosen = picked;
    }
    if chosen.is_empty() {
        io.err(&if all {
            "No resources found\n".to_string()
        } else {
            format!("No resources found in {ns} namespace.\n")
        });
        return Ok(0);
    }
    let items: Vec<Value> = chosen.iter().map(pod_json).collect();
    print_objects(
        a,
        "pod",
        &items,
        !names.is_empty(),
        |wide| pod_table(&chosen, all, wide),
        io,
    )
}

fn get_namespaces(a: &Args, c: &Cluster, names: &[String], io: &mut Io) -> Out {
    let mut chosen: Vec<(String, u64)> =
        c.namespaces.iter().map(|(k, v)| (k.clone(), *v)).collect();
    if !names.is_empty() {
        for name in names {
            if !c.namespaces.contains_key(name) {
                return Err(not_found("namespaces", name));
            }
        }
        chosen.retain(|(n, _)| names.contains(n));
    }
    let items: Vec<Value> = chosen.iter().map(|(n, t)| sorted(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"creationTimestamp": cluster::rfc3339(*t), "labels": {"kubernetes.io/metadata.name": n}, "name": n}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}))).collect();
    print_objects(
        a,
        "namespace",
        &items,
        !names.is_empty(),
        |_| {
            let mut rows = vec![["NAME", "STATUS", "AGE"].map(String::from).to_vec()];
            rows.extend(
                chosen
                    .iter()
                    .map(|(n, t)| vec![n.clone(), "Active".into(), cluster::age(*t)]),
            );
            rows
        },
        io,
    )
}

fn get_objects(a: &Args, c: &Cluster, kind: &str, names: &[String], io: &mut Io) -> Out {
    let all = a.has(&["A", "all-namespaces"]);
    let ns = a.value(&["n", "namespace"]).unwrap_or("default");
    let objects: Vec<&Object> = c
        .objects
        .iter()
        .filter(|o| o.kind.eq_ignore_ascii_case(kind))
        .filter(|o| all || o.namespace.as_deref().is_none_or(|n| n == ns))
        .filter(|o| names.is_empty() || names.contains(&o.name))
        .collect();
    if objects.is_empty() {
        if let Some(name) = names.first() {
            return Err(not_found(&format!("{}s", kind.to_ascii_lowercase()), name));
        }
        io.err(&format!("No resources found in {ns} namespace.\n"));
        return Ok(0);
    }
    let word = objects[0].kind.to_ascii_lowercase();
    let items: Vec<Value> = objects.iter().map(|o| object_json(o)).collect();
    print_objects(
        a,
        &word,
        &items,
        !names.is_empty(),
        |_| {
            let mut header = vec!["NAME".to_string(), "AGE".to_string()];
            if all {
                header.insert(0, "NAMESPACE".into());
            }
            let mut rows = vec![header];
            for o in &objects {
                let mut row = vec![o.name.clone(), cluster::age(o.created)];
                if all {
                    row.insert(0, o.namespace.clone().unwrap_or_default());
                }
                rows.push(row);
            }
            rows
        },
        io,
    )
}

fn pod_table(pods: &[Pod], all: bool, wide: bool) -> Vec<Vec<String>> {
    let mut header: Vec<String> = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        .map(String::from)
        .to_vec();
    if all {
        header.insert(0, "NAMESPACE".into());
    }
    if wide {
        header.extend(["IP", "NODE", "NOMINATED NODE", "READINESS GATES"].map(String::from));
    }
    let mut rows = vec![header];
    for p in pods {
        let mut row = vec![
            p.name.clone(),
            if p.running { "1/1" } else { "0/1" }.into(),
            if p.running { "Running" } else { "Pending" }.into(),
            "0".into(),
            cluster::age(p.created),
        ];
        if all {
            row.insert(0, p.namespace.clone());
        }
        if wide {
            row.extend([
                if p.running {
                    p.ip.clone().unwrap_or_else(|| "<none>".into())
                } else {
                    "<none>".into()
                },
                p.node.clone().unwrap_or_else(|| "<none>".into()),
                "<none>".into(),
                "<none>".into(),
            ]);
        }
        rows.push(row);
    }
    rows
}

fn parse_timeout(s: Option<&str>, default: Duration) -> Result<Duration, String> {
    match s {
        None => Ok(default),
        Some(t) if t.starts_with('-') => Ok(Duration::from_secs(7 * 86_400)),
        Some("0") => Ok(Duration::ZERO),
        Some(t) => humantime::parse_duration(t).map_err(|_| format!("error: invalid argument \"{t}\" for \"--timeout\" flag: time: invalid duration \"{t}\"")),
    }
}

fn kubectl_wait(node: &Node, a: &Args, io: &mut Io) -> Out {
    let Some((res, mut names)) = targets(&a.positional[1..]) else {
        return Err("error: resource(s) were provided, but no name was specified".into());
    };
    let cond = a
        .value(&["for"])
        .ok_or("error: --for must be set")?
        .to_string();
    let wanted = if cond == "delete" {
        None
    } else {
        Some(
            cond.strip_prefix("condition=")
                .ok_or_else(|| format!("error: unrecognized condition: \"{cond}\""))?
                .split('=')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase(),
        )
    };
    let timeout = parse_timeout(a.value(&["timeout"]), Duration::from_secs(30))?;
    let ns = a
        .value(&["n", "namespace"])
        .unwrap_or("default")
        .to_string();
    let selector = a.value(&["l", "selector"]);
    let (word, plural) = match res.as_str() {
        "nodes" => ("node", "nodes"),
        "pods" => ("pod", "pods"),
        other => {
            return Err(format!(
                "error: the server doesn't have a resource type \"{other}\""
            ));
        }
    };
    if names.is_empty() {
        if !a.has(&["all"]) && selector.is_none() {
            return Err("error: resource(s) were provided, but no name was specified".into());
        }
        let (c, nodes) = load(node)?;
        names = if word == "node" {
            nodes
                .iter()
                .filter(|n| matches_selector(&n.labels, selector))
                .map(|n| n.name.clone())
                .collect()
        } else {
            pods(&c, &nodes)
                .into_iter()
                .filter(|p| p.namespace == ns && matches_selector(&p.labels, selector))
                .map(|p| p.name)
                .collect()
        };
        if names.is_empty() {
            return Err("error: no matching resources found".into());
        }
    }
    let deadline = Instant::now() + timeout;
    for name in &names {
        loop {
            let (c, nodes) = load(node)?;
            let (exists, met) = if word == "node" {
                let exists = nodes.iter().any(|n| &n.name == name);
                (exists, exists && node_ready(&c))
            } else {
                let p = pods(&c, &nodes)
                    .into_iter()
                    .find(|p| p.namespace == ns && &p.name == name);
                (
                    p.is_some(),
                    p.is_some_and(|p| {
                        p.running || wanted.as_deref() == Some("podscheduled") && p.node.is_some()
                    }),
                )
            };
            let done = match &wanted {
                None => !exists,
                Some(_) if !exists => return Err(not_found(plural, name)),
                Some(_) => met,
            };
            if done {
                io.out(&format!("{word}/{name} condition met\n"));
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "error: timed out waiting for the condition on {plural}/{name}"
                ));
            }
            std::thread::sleep(
                Duration::from_millis(500).min(deadline.saturating_duration_since(Instant::now())),
            );
        }
    }
    Ok(0)
}

/// Sets `unschedulable` on `name`; Ok(false) when it already was so.
fn set_unschedulable(store: &Store, name: &str, value: bool) -> Result<bool, String> {
    let mut n = store.node(name)?.ok_or_else(|| not_found("nodes", name))?;
    if n.unschedulable == value {
        return Ok(false);
    }
    n.unschedulable = value;
    store.save_node(&n)?;
    Ok(true)
}

fn node_names(node: &Node, a: &Args) -> Result<Vec<String>, String> {
    let words: Vec<String> = a.positional[1..]
        .iter()
        .map(|w| {
            w.strip_prefix("node/")
                .or_else(|| w.strip_prefix("nodes/"))
                .unwrap_or(w)
                .to_string()
        })
        .filter(|w| !["node", "nodes", "no"].contains(&w.as_str()))
        .collect();
    if a.has(&["all"]) {
        return Ok(Store::new(node)
            .nodes()?
            .into_iter()
            .map(|n| n.name)
            .collect());
    }
    if words.is_empty() {
        return Err("error: resource(s) were provided, but no name was specified".into());
    }
    Ok(words)
}

fn kubectl_cordon(node: &Node, a: &Args, cordon: bool, io: &mut Io) -> Out {
    let store = Store::new(node);
    let _lock = store.lock()?;
    for name in node_names(node, a)? {
        let changed = set_unschedulable(&store, &name, cordon)?;
        let verb = if cordon { "cordoned" } else { "uncordoned" };
        io.out(&format!(
            "node/{name} {}{verb}\n",
            if changed { "" } else { "already " }
        ));
    }
    Ok(0)
}

fn kubectl_drain(node: &Node, a: &Args, io: &mut Io) -> Out {
    let store = Store::new(node);
    let _lock = store.lock()?;
    for name in node_names(node, a)? {
        let (c, nodes) = load(node)?;
        let on_node: Vec<Pod> = pods(&c, &nodes)
            .into_iter()
            .filter(|p| p.node.as_deref() == Some(name.as_str()))
            .collect();
        let changed = set_unschedulable(&store, &name, true)?;
        io.out(&format!(
            "node/{name} {}cordoned\n",
            if changed { "" } else { "already " }
        ));
        let list = |f: &dyn Fn(&Pod) -> bool| {
            on_node
                .iter()
                .filter(|p| f(p))
                .map(|p| format!("{}/{}", p.namespace, p.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let daemons = list(&|p| p.owner_kind == "DaemonSet");
        let mut errors = Vec::new();
        if !daemons.is_empty() && !a.has(&["ignore-daemonsets"]) {
            errors.push(format!("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {daemons}"));
        }
        let bare = list(&|p| p.owner_kind == "Pod");
        if !bare.is_empty() && !a.has(&["force"]) {
            errors.push(format!(
                "cannot delete Pods declare no controller (use --force to override): {bare}"
            ));
        }
        let local = list(&|p| p.local_storage && p.owner_kind != "DaemonSet");
        if !local.is_empty() && !a.has(&["delete-emptydir-data", "delete-local-data"]) {
            errors.push(format!("cannot delete Pods with local storage (use --delete-emptydir-data to override): {local}"));
        }
        if !errors.is_empty() {
            let joined = if errors.len() == 1 {
                errors[0].clone()
            } else {
                format!("[{}]", errors.join(", "))
            };
            return Err(format!(
                "error: unable to drain node \"{name}\" due to error: {joined}, continuing command...\nThere are pending nodes to be drained:\n {name}\n{}",
                errors.join("\n")
            ));
        }
        if !daemons.is_empty() {
            io.err(&format!(
                "Warning: ignoring DaemonSet-managed Pods: {daemons}\n"
            ));
        }
        for p in on_node
            .iter()
            .filter(|p| p.owner_kind != "DaemonSet" && p.owner_kind != "Node")
        {
            io.out(&format!("evicting pod {}/{}\n", p.namespace, p.name));
        }
        for p in on_node
            .iter()
            .filter(|p| p.owner_kind != "DaemonSet" && p.owner_kind != "Node")
        {
            io.out(&format!("pod/{} evicted\n", p.name));
        }
        if on_node.iter().any(|p| p.owner_kind == "Pod") {
            let mut c = c;
            c.objects.retain(|o| {
                !(o.kind == "Pod"
                    && on_node
                        .iter()
                        .any(|p| p.owner_kind == "Pod" && p.name == o.name))
            });
            store.save_cluster(&c)?;
        }
        io.out(&format!("node/{name} drained\n"));
    }
    Ok(0)
}

fn kubectl_delete(node: &Node, a: &Args, io: &mut Io) -> Out {
    let store = Store::new(node);
    let _lock = store.lock()?;
    let files = a.values(&["f", "filename"]);
    if !files.is_empty() {
        let mut c = store
            .cluster()?
            .ok_or_else(|| unreachable_message(&Reach::NoConfig))?;
        let ns = a.value(&["n", "namespace"]).unwrap_or("default");
        for file in files {
            for doc in read_manifests(node, file)? {
                let (kind, api, name, obj_ns) = identity(&doc, ns)?;
                let before = c.objects.len();
                c.objects
                    .retain(|o| !(o.kind == kind && o.name == name && o.namespace == obj_ns));
                let word = kind_word(&kind, &api);
                if c.objects.len() == before && kind != "Namespace" {
                    if !a.has(&["ignore-not-found"]) {
                        io.err(&format!("Error from server (NotFound): error when deleting \"{file}\": {}s \"{name}\" not found\n", kind.to_ascii_lowercase()));
                    }
                    continue;
                }
                if kind == "Namespace" {
                    remove_namespace(&mut c, &name);
                }
                io.out(&format!("{word} \"{name}\" deleted\n"));
            }
        }
        store.save_cluster(&c)?;
        return Ok(0);
    }
    let Some((res, names)) = targets(&a.positional[1..]) else {
        return Err(
            "error: You must provide one or more resources by argument or filename.".into(),
        );
    };
    match res.as_str() {
        "nodes" => {
            let names = if a.has(&["all"]) {
                store.nodes()?.into_iter().map(|n| n.name).collect()
            } else {
                names
            };
            for name in names {
                if store.remove_node(&name)? {
                    io.out(&format!("node \"{name}\" deleted\n"));
                } else if !a.has(&["ignore-not-found"]) {
                    return Err(not_found("nodes", &name));
                }
            }
        }
        "namespaces" => {
            let mut c = store
                .cluster()?
                .ok_or_else(|| unreachable_message(&Reach::NoConfig))?;
            for name in names {
                if !c.namespaces.contains_key(&name) {
                    return Err(not_found("namespaces", &name));
                }
                if ["default", "kube-system", "kube-public", "kube-node-lease"]
                    .contains(&name.as_str())
                {
                    return Err(format!(
                        "Error from server (Forbidden): namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                    ));
                }
                remove_namespace(&mut c, &name);
                io.out(&format!("namespace \"{name}\" deleted\n"));
            }
            store.save_cluster(&c)?;
        }
        "pods" => {
            let mut c = store
                .cluster()?
                .ok_or_else(|| unreachable_message(&Reach::NoConfig))?;
            let ns = a.value(&["n", "namespace"]).unwrap_or("default");
            let all = pods(&c, &store.nodes()?);
            for name in names {
                let Some(p) = all.iter().find(|p| p.namespace == ns && p.name == name) else {
                    return Err(not_found("pods", &name));
                };
                if p.owner_kind == "Pod" {
                    c.objects.retain(|o| {
                        !(o.kind == "Pod" && o.name == name && o.namespace.as_deref() == Some(ns))
                    });
                }
                io.out(&format!("pod \"{name}\" deleted\n"));
            }
            store.save_cluster(&c)?;
        }
        kind => {
            let mut c = store
                .cluster()?
                .ok_or_else(|| unreachable_message(&Reach::NoConfig))?;
            let ns = a.value(&["n", "namespace"]).unwrap_or("default");
            for name in names {
                let Some(pos) = c.objects.iter().position(|o| {
                    o.kind.eq_ignore_ascii_case(kind)
                        && o.name == name
                        && o.namespace.as_deref().is_none_or(|n| n == ns)
                }) else {
                    return Err(not_found(&format!("{}s", kind.to_ascii_lowercase()), &name));
                };
                let o = c.objects.remove(pos);
                io.out(&format!(
                    "{} \"{name}\" deleted\n",
                    kind_word(&o.kind, &o.api_version)
                ));
            }
            store.save_cluster(&c)?;
        }
    }
    Ok(0)
}

fn remove_namespace(c: &mut Cluster, name: &str) {
    c.namespaces.remove(name);
    c.objects.retain(|o| o.namespace.as_deref() != Some(name));
    c.releases.retain(|r| r.namespace != name);
}

fn kubectl_label(node: &Node, a: &Args, io: &mut Io) -> Out {
    let store = Store::new(node);
    let _lock = store.lock()?;
    let words = &a.positional[1..];
    let (res, rest) = match words.first() {
        Some(w) if w.contains('/') => (w.split('/').next().unwrap_or_default().to_string(), words.to_vec()),
        Some(w) => (w.clone(), words[1..].to_vec()),
        None => return Err("error: one or more resources must be specified as <resource> <name> or <resource>/<name>".into()),
    };
    if resource(&res) != "nodes" {
        return Err(format!(
            "kamo lab: kubectl label {res} is not modelled (nodes only)"
        ));
    }
    let (changes, mut names): (Vec<String>, Vec<String>) = rest
        .into_iter()
        .partition(|w| w.contains('=') || (w.ends_with('-') && !w.contains('/')));
    names = names
        .into_iter()
        .map(|n| n.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    if a.has(&["all"]) {
        names = store.nodes()?.into_iter().map(|n| n.name).collect();
    }
    if changes.is_empty() {
        return Err("error: at least one label update is required".into());
    }
    for name in names {
        let mut n = store
            .node(&name)?
            .ok_or_else(|| not_found("nodes", &name))?;
        let before = n.labels.clone();
        for ch in &changes {
            if let Some((k, v)) = ch.split_once('=') {
                if let Some(old) = n.labels.get(k)
                    && old != v
                    && !a.has(&["overwrite"])
                {
                    return Err(format!(
                        "error: '{k}' already has a value ({old}), and --overwrite is false"
                    ));
                }
                n.labels.insert(k.to_string(), v.to_string());
            } else if let Some(k) = ch.strip_suffix('-') {
                n.labels.remove(k);
            }
        }
        let relabeled = n.labels != before;
        store.save_node(&n)?;
        io.out(&format!(
            "node/{name} {}labeled\n",
            if relabeled { "" } else { "not " }
        ));
    }
    Ok(0)
}

fn kubectl_taint(node: &Node, a: &Args, io: &mut Io) -> Out {
    let store = Store::new(node);
    let _lock = store.lock()?;
    let words = &a.positional[1..];
    let (names, specs): (Vec<String>, Vec<String>) = words
        .iter()
        .skip(1)
        .cloned()
        .partition(|w| !w.contains(':') && !w.ends_with('-') && !w.contains('='));
    let names = if a.has(&["all"]) {
        store.nodes()?.into_iter().map(|n| n.name).collect()
    } else {
        names
    };
    if names.is_empty() || specs.is_empty() {
        return Err("error: at least one taint update is required".into());
    }
    // Like kubectl, every node is tried; the errors come at the end.
    let mut errors = String::new();
    'nodes: for name in names {
        let mut n = store
            .node(&name)?
            .ok_or_else(|| not_found("nodes", &name))?;
        let mut removed = false;
        for spec in &specs {
            if let Some(key) = spec.strip_suffix('-') {
                let before = n.taints.len();
                n.taints.retain(|t| {
                    let (kv, effect) = t.rsplit_once(':').unwrap_or((t, ""));
                    let k = kv.split('=').next().unwrap_or_default();
                    !(key == k || key == format!("{k}:{effect}") || key == t)
                });
                if n.taints.len() == before {
                    errors.push_str(&format!("error: taint \"{key}\" not found\n"));
                    continue 'nodes;
                }
                removed = true;
            } else if n.taints.contains(spec) && !a.has(&["overwrite"]) {
                errors.push_str(&format!("error: node {name} already has {} taint(s) with same effect(s) and --overwrite is false\n", spec.split([':', '=']).next().unwrap_or_default()));
                continue 'nodes;
            } else {
                n.taints.push(spec.clone());
            }
        }
        store.save_node(&n)?;
        io.out(&format!(
            "node/{name} {}\n",
            if removed { "untainted" } else { "tainted" }
        ));
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(errors)
    }
}

/// The YAML documents of `-f FILE` (a file, a directory of manifests, or an http(s) URL).
fn read_manifests(node: &Node, file: &str) -> Result<Vec<Value>, String> {
    let mut texts = Vec::new();
    if file == "-" {
        let mut body = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut body)
            .map_err(|e| format!("error: reading from stdin: {e}"))?;
        texts.push(body);
    } else if file.starts_with("http://") || file.starts_with("https://") {
        let body = ureq::get(file)
            .call()
            .and_then(|mut r| r.body_mut().read_to_string())
            .map_err(|e| format!("error: unable to read URL \"{file}\", server reported {e}"))?;
        texts.push(body);
    } else {
        let path = node.path(file);
        if path.is_dir() {
            let mut entries: Vec<_> = fs::read_dir(&path)
                .map_err(|e| e.to_string())?
                .flatten()
                .map(|e| e.path())
                .collect();
            entries.sort();
            for p in entries {
                if matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                ) {
                    texts.push(fs::read_to_string(&p).map_err(|e| e.to_string())?);
                }
            }
        } else {
            texts.push(
                fs::read_to_string(&path)
                    .map_err(|_| format!("error: the path \"{file}\" does not exist"))?,
            );
        }
    }
    let mut docs = Vec::new();
    for text in texts {
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: Value = <Value as serde::Deserialize>::deserialize(doc)
                .map_err(|e| format!("error: error parsing {file}: {e}"))?;
            match v {
                Value::Null => {}
                Value::Object(ref o) if o.get("kind").and_then(Value::as_str) == Some("List") => {
                    docs.extend(
                        o.get("items")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default(),
                    );
                }
                other => docs.push(other),
            }
        }
    }
    Ok(docs)
}

const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "APIService",
    "PodSecurityPolicy",
    "IngressClass",
    "RuntimeClass",
    "CSIDriver",
    "ValidatingAdmissionPolicy",
];

/// (kind, apiVersion, name, namespace) of a manifest.
fn identity(
    doc: &Value,
    default_ns: &str,
) -> Result<(String, String, String, Option<String>), String> {
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let api = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if kind.is_empty() || api.is_empty() {
        return Err(format!(
            "error: error validating data: [apiVersion not set, kind not set]; if you choose to ignore these errors, turn validation off with --validate=false{}",
            ""
        ));
    }
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        return Err(
            "error: error when retrieving current configuration: resource name may not be empty"
                .into(),
        );
    }
    let ns = if CLUSTER_SCOPED.contains(&kind.as_str()) {
        None
    } else {
        Some(
            doc.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(default_ns)
                .to_string(),
        )
    };
    Ok((kind, api, name, ns))
}

/// `daemonset.apps/x` style: lower-case kind, then the API group when not core.
fn kind_word(kind: &str, api: &str) -> String {
    match api.split_once('/') {
        Some((group, _)) => format!("{}.{group}", kind.to_ascii_lowercase()),
        None => kind.to_ascii_lowercase(),
    }
}

fn kubectl_apply(node: &Node, a: &Args, create: bool, io: &mut Io) -> Out {
    let store = Store::new(node);
    let _lock = store.lock()?;
    let mut c = store
        .cluster()?
        .ok_or_else(|| unreachable_message(&Reach::NoConfig))?;
    let ns = a
        .value(&["n", "namespace"])
        .unwrap_or("default")
        .to_string();
    if create && a.values(&["f", "filename"]).is_empty() {
        // kubectl create namespace NAME
        let words = &a.positional[1..];
        return match words {
            [what, name] if resource(what) == "namespaces" => {
                if c.namespaces.contains_key(name) {
                    return Err(format!(
                        "Error from server (AlreadyExists): namespaces \"{name}\" already exists"
                    ));
                }
                c.namespaces.insert(name.clone(), cluster::now());
                store.save_cluster(&c)?;
                io.out(&format!("namespace/{name} created\n"));
                Ok(0)
            }
            _ => Err("error: must specify one of -f and -k".into()),
        };
    }
    let files = a.values(&["f", "filename"]);
    if files.is_empty() {
        return Err("error: must specify one of -f and -k".into());
    }
    let mut failed = false;
    for file in files {
        for doc in read_manifests(node, file)? {
            let (kind, api, name, obj_ns) = identity(&doc, &ns)?;
            let word = kind_word(&kind, &api);
            if let Some(n) = &obj_ns
                && !c.namespaces.contains_key(n)
            {
                io.err(&format!("Error from server (NotFound): error when creating \"{file}\": namespaces \"{n}\" not found\n"));
                failed = true;
                continue;
            }
            let digest = cluster::sha256_hex(doc.to_string().as_bytes());
            if kind == "Namespace" {
                let existed = c.namespaces.contains_key(&name);
                if existed && create {
                    io.err(&format!("Error from server (AlreadyExists): error when creating \"{file}\": namespaces \"{name}\" already exists\n"));
                    failed = true;
                    continue;
                }
                c.namespaces
                    .entry(name.clone())
                    .or_insert_with(cluster::now);
            }
            let existing = c
                .objects
                .iter_mut()
                .find(|o| o.kind == kind && o.name == name && o.namespace == obj_ns);
            let verb = match existing {
                Some(_) if create => {
                    io.err(&format!("Error from server (AlreadyExists): error when creating \"{file}\": {}s \"{name}\" already exists\n", word.split('.').next().unwrap_or_default()));
                    failed = true;
                    continue;
                }
                Some(o) if o.digest == digest => "unchanged",
                Some(o) => {
                    o.digest = digest;
                    o.manifest = doc;
                    o.api_version = api;
                    "configured"
                }
                None => {
                    c.objects.push(Object {
                        api_version: api,
                        kind,
                        namespace: obj_ns,
                        name: name.clone(),
                        created: cluster::now(),
                        digest,
                        manifest: doc,
                    });
                    "created"
                }
            };
            io.out(&format!("{word}/{name} {verb}\n"));
        }
    }
    store.save_cluster(&c)?;
    Ok(i32::from(failed))
}

fn kubectl_exec(node: &Node, a: &Args, io: &mut Io) -> Out {
    let Some(target) = a.positional.get(1) else {
        return Err("error: expected 'exec POD_NAME COMMAND [ARG1] [ARG2] ... [ARGN]'.\nPOD_NAME and COMMAND are required arguments for the exec command".into());
    };
    if a.rest.is_empty() {
        return Err("error: you must specify at least one command for the container".into());
    }
    let ns = a.value(&["n", "namespace"]).unwrap_or("default");
    let (c, nodes) = load(node)?;
    let all = pods(&c, &nodes);
    let pod = match target.split_once('/') {
        Some((kind, name)) if resource(kind) != "pods" => all
            .iter()
            .find(|p| p.namespace == ns && p.owner_name == name && p.running),
        Some((_, name)) => all.iter().find(|p| p.namespace == ns && p.name == name),
        None => all.iter().find(|p| p.namespace == ns && &p.name == target),
    };
    let Some(pod) = pod else {
        return Err(not_found(
            "pods",
            target.rsplit('/').next().unwrap_or_default(),
        ));
    };
    if !pod.running {
        return Err(format!(
            "error: unable to upgrade connection: container not found (\"{}\")",
            pod.owner_name
        ));
    }
    let mut cmd = std::process::Command::new(&a.rest[0]);
    cmd.args(&a.rest[1..]);
    // `output()` would give the command an empty stdin: `-i` passes kubectl's own through, as
    // `kubectl exec -i POD -- psql <<EOF` needs.
    if a.has(&["i", "stdin"]) {
        cmd.stdin(std::process::Stdio::inherit());
    } else {
        cmd.stdin(std::process::Stdio::null());
    }
    match cmd.output() {
        Ok(out) => {
            io.out.extend_from_slice(&out.stdout);
            io.err.extend_from_slice(&out.stderr);
            let code = out.status.code().unwrap_or(1);
            if code != 0 {
                io.err(&format!("command terminated with exit code {code}\n"));
            }
            Ok(code)
        }
        Err(_) => Err(format!(
            "error: Internal error occurred: error executing command in container: failed to exec in container: failed to start exec \"{}\": OCI runtime exec failed: exec failed: unable to start container process: exec: \"{}\": executable file not found in $PATH: unknown",
            cluster::sha256_hex(target.as_bytes()),
            a.rest[0]
        )),
    }
}

/// `kubectl rollout restart TYPE [NAME...]`: every named workload (all of that type in the
/// namespace without names) restarts. Pods are derived from the workloads, so only the output
/// and the errors are kubectl's; the pods a restart replaces keep their names in the lab.
fn kubectl_rollout_restart(node: &Node, a: &Args, io: &mut Io) -> Out {
    let Some((kind, names)) = targets(&a.positional[2..]) else {
        return Err("error: required resource not specified".into());
    };
    if !["Deployment", "DaemonSet", "StatefulSet"].contains(&kind.as_str()) {
        return Err(format!(
            "error: {}s \"{}\" restarting is not supported",
            kind.to_ascii_lowercase(),
            names.first().map_or("", String::as_str)
        ));
    }
    let ns = a.value(&["n", "namespace"]).unwrap_or("default");
    let (c, _) = load(node)?;
    let found: Vec<Workload> = workloads(&c)
        .into_iter()
        .filter(|w| w.kind == kind && w.namespace == ns)
        .filter(|w| names.is_empty() || names.contains(&w.name))
        .collect();
    for name in &names {
        if !found.iter().any(|w| &w.name == name) {
            return Err(format!(
                "Error from server (NotFound): {}s.apps \"{name}\" not found",
                kind.to_ascii_lowercase()
            ));
        }
    }
    if found.is_empty() {
        return Err("error: no objects passed to restart".into());
    }
    for w in found {
        io.out(&format!(
            "{}.apps/{} restarted\n",
            kind.to_ascii_lowercase(),
            w.name
        ));
    }
    Ok(0)
}

fn kubectl_rollout(node: &Node, a: &Args, io: &mut Io) -> Out {
    match a.positional.get(1).map(String::as_str) {
        Some("status") => {}
        Some("restart") => return kubectl_rollout_restart(node, a, io),
        _ => {
            return Err(
                "kamo lab: only `kubectl rollout status` and `rollout restart` are modelled".into(),
            );
        }
    }
    let Some((kind, names)) = targets(&a.positional[2..]) else {
        return Err("error: required resource not specified".into());
    };
    let ns = a.value(&["n", "namespace"]).unwrap_or("default");
    let (c, nodes) = load(node)?;
    let all = pods(&c, &nodes);
    let timeout = parse_timeout(a.value(&["timeout"]), Duration::ZERO)?;
    for name in names {
        let w = workloads(&c)
            .into_iter()
            .find(|w| w.kind == kind && w.name == name && w.namespace == ns);
        let Some(w) = w else {
            return Err(format!(
                "Error from server (NotFound): {}s.apps \"{name}\" not found",
                kind.to_ascii_lowercase()
            ));
        };
        let ready = all
            .iter()
            .filter(|p| p.owner_name == w.name && p.namespace == ns && p.running)
            .count();
        let total = all
            .iter()
            .filter(|p| p.owner_name == w.name && p.namespace == ns)
            .count();
        if ready < total {
            if !timeout.is_zero() {
                std::thread::sleep(timeout.min(Duration::from_secs(5)));
            }
            return Err(format!(
                "Waiting for deployment \"{name}\" rollout to finish: {ready} of {total} updated replicas are available...\nerror: timed out waiting for the condition"
            ));
        }
        match kind.as_str() {
            "DaemonSet" => io.out(&format!("daemon set \"{name}\" successfully rolled out\n")),
            _ => io.out(&format!("deployment \"{name}\" successfully rolled out\n")),
        }
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// JSONPath (the subset playbooks use: fields, indexes, [*], filters, range/end, literals)

fn jsonpath(template: &str, root: &Value) -> Result<String, String> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_string()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("error: error parsing jsonpath {template}, unclosed action"))?
            + open;
        let inner = rest[open + 1..close].trim();
        parts.push(if let Some(path) = inner.strip_prefix("range ") {
            Part::Range(path.trim().to_string())
        } else if inner == "end" {
            Part::End
        } else if let Some(lit) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Part::Text(lit.replace("\\n", "\n").replace("\\t", "\t"))
        } else {
            Part::Path(inner.to_string())
        });
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    let mut out = String::new();
    render(&parts, root, &mut out)?;
    Ok(out)
}

enum Part {
    Text(String),
    Path(String),
    Range(String),
    End,
}

fn render(parts: &[Part], cur: &Value, out: &mut String) -> Result<(), String> {
    let mut i = 0;
    while i < parts.len() {
        match &parts[i] {
            Part::Text(t) => out.push_str(t),
            Part::Path(p) => {
                let vals = eval_path(p, cur)?;
                let texts: Vec<String> = vals
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.push_str(&texts.join(" "));
            }
            Part::Range(p) => {
                let mut depth = 0;
                let mut end = i + 1;
                while end < parts.len() {
                    match parts[end] {
                        Part::Range(_) => depth += 1,
                        Part::End if depth == 0 => break,
                        Part::End => depth -= 1,
                        _ => {}
                    }
                    end += 1;
                }
                let mut items = eval_path(p, cur)?;
                if items.len() == 1
                    && let Some(arr) = items[0].as_array()
                {
                    items = arr.clone();
                }
                for item in &items {
                    render(&parts[i + 1..end], item, out)?;
                }
                i = end;
            }
            Part::End => {}
        }
        i += 1;
    }
    Ok(())
}

fn eval_path(path: &str, root: &Value) -> Result<Vec<Value>, String> {
    let mut cur = vec![root.clone()];
    let p = path.trim_start_matches('$').trim_start_matches('@');
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                if name.is_empty() {
                    continue;
                }
                cur = cur
                    .iter()
                    .flat_map(|v| {
                        if name == "*" {
                            match v {
                                Value::Object(o) => o.values().cloned().collect(),
                                Value::Array(a) => a.clone(),
                                _ => vec![],
                            }
                        } else {
                            v.get(&name).cloned().into_iter().collect::<Vec<_>>()
                        }
                    })
                    .collect();
            }
            '[' => {
                let close = chars[i..]
                    .iter()
                    .position(|c| *c == ']')
                    .ok_or("error: unterminated [")?
                    + i;
                let inner: String = chars[i + 1..close].iter().collect();
                i = close + 1;
                cur = cur.iter().flat_map(|v| index(v, &inner)).collect();
            }
            _ => {
                return Err(format!(
                    "error: error parsing jsonpath {path}, unrecognized character"
                ));
            }
        }
    }
    Ok(cur)
}

fn index(v: &Value, inner: &str) -> Vec<Value> {
    let arr = v.as_array();
    if inner == "*" {
        return match v {
            Value::Array(a) => a.clone(),
            Value::Object(o) => o.values().cloned().collect(),
            _ => vec![],
        };
    }
    if let Some(filter) = inner.strip_prefix("?(").and_then(|s| s.strip_suffix(')')) {
        let (lhs, rhs, neg) = match filter.split_once("!=") {
            Some((l, r)) => (l, r, true),
            None => match filter.split_once("==") {
                Some((l, r)) => (l, r, false),
                None => (filter, "", false),
            },
        };
        let want = rhs.trim().trim_matches(|c| c == '"' || c == '\'');
        return arr
            .map(|a| {
                a.iter()
                    .filter(|item| {
                        let got = eval_path(lhs.trim(), item).unwrap_or_default();
                        if rhs.is_empty() {
                            return !got.is_empty();
                        }
                        let hit = got.iter().any(|g| {
                            g.as_str().map_or_else(|| g.to_string(), str::to_string) == want
                        });
                        hit != neg
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
    }
    if let Some(key) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return v.get(key).cloned().into_iter().collect();
    }
    if let Ok(n) = inner.parse::<i64>() {
        return arr
            .and_then(|a| {
                let len = i64::try_from(a.len()).ok()?;
                let idx = if n < 0 { len + n } else { n };
                a.get(usize::try_from(idx).ok()?).cloned()
            })
            .into_iter()
            .collect();
    }
    vec![]
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use super::super::cluster::shape;
    use super::*;

    /// A lab of nodes sharing one lab directory: `master`, `node01` (GPU), `node02`.
    pub struct Lab {
        pub _dir: tempfile::TempDir,
        pub nodes: Vec<Node>,
    }

    impl Lab {
        pub fn new() -> Lab {
            let dir = tempfile::tempdir().unwrap();
            let nodes = [
                ("master", "10.1.0.10", false),
                ("node01", "10.1.0.11", true),
                ("node02", "10.1.0.12", false),
            ]
            .iter()
            .map(|(name, addr, gpu)| {
                let root = dir.path().join(name);
                fs::create_dir_all(root.join("etc")).unwrap();
                fs::write(
                    root.join("etc/os-release"),
                    "NAME=\"Ubuntu\"\nPRETTY_NAME=\"Ubuntu 22.04.3 LTS\"\n",
                )
                .unwrap();
                Node {
                    name: (*name).into(),
                    address: (*addr).into(),
                    lab_dir: dir.path().to_path_buf(),
                    gpu: *gpu,
                    os_release: "22.04".into(),
                    kamo_bin: "/usr/local/bin/kamo".into(),
                    root,
                }
            })
            .collect();
            cluster::TEST_ENV.with(|e| {
                e.borrow_mut()
                    .insert("KUBECONFIG".into(), "/etc/kubernetes/admin.conf".into())
            });
            Lab { _dir: dir, nodes }
        }

        pub fn node(&self, name: &str) -> &Node {
            self.nodes.iter().find(|n| n.name == name).unwrap()
        }

        /// Runs `tool` on node `on`; (exit code, stdout, stderr).
        pub fn run(&self, on: &str, tool: &str, args: &[&str]) -> (i32, String, String) {
            let mut io = Io::default();
            let args: Vec<String> = args.iter().map(ToString::to_string).collect();
            let code = super::super::run(tool, self.node(on), &args, &mut io);
            (
                code,
                String::from_utf8(io.out).unwrap(),
                String::from_utf8(io.err).unwrap(),
            )
        }

        pub fn ok(&self, on: &str, tool: &str, args: &[&str]) -> String {
            let (code, out, err) = self.run(on, tool, args);
            assert_eq!(code, 0, "{tool} {args:?} on {on} failed:\n{out}\n{err}");
            out
        }

        pub fn write(&self, on: &str, abs: &str, text: &str) {
            let p = self.node(on).path(abs);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }

        /// init on master; returns the printed (token, hash).
        pub fn init(&self) -> (String, String) {
            let out = self.ok(
                "master",
                "kubeadm",
                &["init", "--pod-network-cidr=10.244.0.0/16"],
            );
            let join = out
                .lines()
                .skip_while(|l| !l.starts_with("kubeadm join"))
                .collect::<Vec<_>>()
                .join(" ");
            let words: Vec<&str> = join.split_whitespace().collect();
            let after =
                |flag: &str| words[words.iter().position(|w| *w == flag).unwrap() + 1].to_string();
            (after("--token"), after("--discovery-token-ca-cert-hash"))
        }

        pub fn join(&self, on: &str, token: &str, hash: &str) -> (i32, String, String) {
            self.run(
                on,
                "kubeadm",
                &[
                    "join",
                    "10.1.0.10:6443",
                    "--token",
                    token,
                    "--discovery-token-ca-cert-hash",
                    hash,
                ],
            )
        }

        /// A cluster of three nodes with a pod network.
        pub fn cluster(&self) {
            let (token, hash) = self.init();
            for n in ["node01", "node02"] {
                assert_eq!(self.join(n, &token, &hash).0, 0);
            }
            self.write("master", "/root/flannel.yml", FLANNEL);
            self.ok("master", "kubectl", &["apply", "-f", "/root/flannel.yml"]);
        }
    }

    pub const FLANNEL: &str = "---\nkind: Namespace\napiVersion: v1\nmetadata:\n  name: kube-flannel\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: flannel\n  namespace: kube-flannel\n---\nkind: ClusterRole\napiVersion: rbac.authorization.k8s.io/v1\nmetadata:\n  name: flannel\nrules: []\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: kube-flannel-ds\n  namespace: kube-flannel\nspec:\n  template:\n    metadata:\n      labels:\n        app: flannel\n    spec:\n      hostNetwork: true\n      containers:\n      - name: kube-flannel\n        image: docker.io/flannel/flannel:v0.22.3\n";

    const DEVICE_PLUGIN: &str = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: nvidia-device-plugin-daemonset\n  namespace: kube-system\nspec:\n  template:\n    metadata:\n      labels:\n        name: nvidia-device-plugin-ds\n    spec:\n      tolerations:\n      - key: nvidia.com/gpu\n        operator: Exists\n        effect: NoSchedule\n      containers:\n      - image: nvcr.io/nvidia/k8s-device-plugin:v0.14.1\n        name: nvidia-device-plugin-ctr\n";

    fn json_of(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn init_writes_the_node_files_and_records_the_cluster() {
        let lab = Lab::new();
        let out = lab.ok(
            "master",
            "kubeadm",
            &[
                "init",
                "--pod-network-cidr=10.244.0.0/16",
                "--kubernetes-version",
                "v1.28.2",
            ],
        );
        assert!(out.starts_with("[init] Using Kubernetes version: v1.28.2\n"));
        let fixture = shape::fixture("kubeadm_init_tail.txt");
        let tail_start = out.find("Your Kubernetes control-plane").unwrap();
        let ours: Vec<&str> = out[tail_start..].lines().collect();
        let theirs: Vec<&str> = fixture.lines().collect();
        assert_eq!(ours.len(), theirs.len());
        for (o, t) in ours.iter().zip(&theirs) {
            if t.starts_with("kubeadm join") || t.starts_with("\t--discovery") {
                assert!(
                    o.starts_with(&t[..14])
                        && o.ends_with(if t.ends_with(' ') { " " } else { "\\" }),
                    "{o:?} vs {t:?}"
                );
            } else {
                assert_eq!(o, t);
            }
        }
        let m = lab.node("master");
        for f in [
            "/etc/kubernetes/admin.conf",
            "/etc/kubernetes/kubelet.conf",
            "/etc/kubernetes/pki/ca.crt",
            "/etc/kubernetes/manifests/kube-apiserver.yaml",
        ] {
            assert!(m.path(f).exists(), "{f}");
        }
        let c = Store::new(m).cluster().unwrap().unwrap();
        assert_eq!(c.control_plane, "master");
        assert_eq!(c.version, "v1.28.2");
        assert_eq!(
            c.ca_hash,
            cluster::ca_hash(&fs::read_to_string(m.path("/etc/kubernetes/pki/ca.crt")).unwrap())
        );
        assert!(out.contains(&format!("--token {}", c.tokens[0].token)));
        assert!(out.contains(&format!("sha256:{}", c.ca_hash)));
    }

    #[test]
    fn init_twice_fails_preflight_unless_ignored() {
        let lab = Lab::new();
        lab.init();
        let (code, out, err) = lab.run("master", "kubeadm", &["init"]);
        assert_eq!(code, 1);
        assert!(out.contains("[preflight] Running pre-flight checks"));
        assert!(
            err.starts_with(
                "error execution phase preflight: [preflight] Some fatal errors occurred:\n"
            ),
            "{err}"
        );
        assert!(err.contains("\t[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists\n"));
        assert!(err.contains("\t[ERROR Port-6443]: Port 6443 is in use\n"));
        assert!(err.contains("To see the stack trace of this error execute with --v=5 or higher"));
        let (code, _, err) = lab.run(
            "master",
            "kubeadm",
            &["init", "--ignore-preflight-errors=all"],
        );
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("[WARNING FileAvailable--etc-kubernetes-kubelet.conf]"));
    }

    #[test]
    fn not_root_is_refused() {
        let lab = Lab::new();
        cluster::TEST_ENV.with(|e| e.borrow_mut().insert("TEST_NOT_ROOT".into(), "1".into()));
        let (code, _, err) = lab.run("master", "kubeadm", &["init"]);
        cluster::TEST_ENV.with(|e| e.borrow_mut().remove("TEST_NOT_ROOT"));
        assert_eq!(code, 1);
        assert!(err.contains("[ERROR IsPrivilegedUser]: user is not running as root"));
        assert!(Store::new(lab.node("master")).cluster().unwrap().is_none());
    }

    #[test]
    fn join_checks_token_and_ca_pin() {
        let lab = Lab::new();
        let (token, hash) = lab.init();
        let (code, _, err) = lab.join("node01", "abcdef.0123456789abcdef", &hash);
        assert_eq!(code, 1);
        assert!(err.contains("could not find a JWS signature in the cluster-info ConfigMap for token ID \"abcdef\""), "{err}");
        let bad = format!("sha256:{}", "0".repeat(64));
        let (code, _, err) = lab.join("node01", &token, &bad);
        assert_eq!(code, 1);
        assert!(
            err.contains(
                "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys"
            ),
            "{err}"
        );
        let (code, _, err) = lab.join("node01", "short", &hash);
        assert_eq!(code, 1);
        assert!(err.contains("was not of the form \"[a-z0-9]{6}.[a-z0-9]{16}\""));
        let (code, _, err) = lab.run(
            "node01",
            "kubeadm",
            &[
                "join",
                "10.9.9.9:6443",
                "--token",
                &token,
                "--discovery-token-ca-cert-hash",
                &hash,
            ],
        );
        assert_eq!(code, 1);
        assert!(err.contains("dial tcp 10.9.9.9:6443: connect: connection refused"));
        assert!(
            Store::new(lab.node("master"))
                .node("node01")
                .unwrap()
                .is_none()
        );

        let (code, out, _) = lab.join("node01", &token, &hash);
        assert_eq!(code, 0);
        assert!(out.contains("This node has joined the cluster:"));
        assert!(
            lab.node("node01")
                .path("/etc/kubernetes/kubelet.conf")
                .exists()
        );
        assert!(
            lab.node("master")
                .cluster_dir()
                .join("nodes/node01.json")
                .exists()
        );
        let (code, _, err) = lab.join("node01", &token, &hash);
        assert_eq!(code, 1);
        assert!(err.contains("[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists"));
    }

    #[test]
    fn expired_tokens_are_refused_and_new_ones_work() {
        let lab = Lab::new();
        let (token, hash) = lab.init();
        let store = Store::new(lab.node("master"));
        let mut c = store.cluster().unwrap().unwrap();
        c.tokens[0].expires = cluster::now() - 1;
        store.save_cluster(&c).unwrap();
        assert_eq!(lab.join("node01", &token, &hash).0, 1);
        let line = lab.ok(
            "master",
            "kubeadm",
            &["token", "create", "--print-join-command"],
        );
        assert!(
            line.starts_with("kubeadm join 10.1.0.10:6443 --token ") && line.ends_with(" \n"),
            "{line:?}"
        );
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(lab.join("node01", words[4], words[6]).0, 0);
    }

    #[test]
    fn get_nodes_shows_joined_nodes_not_ready_until_a_pod_network() {
        let lab = Lab::new();
        let (token, hash) = lab.init();
        lab.join("node01", &token, &hash);
        let out = lab.ok("master", "kubectl", &["get", "nodes"]);
        assert_eq!(
            shape::tabwriter_columns(&out),
            shape::tabwriter_columns(&shape::fixture("kubectl_get_nodes.txt"))
        );
        let rows: Vec<Vec<&str>> = out
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows[0][..3], ["master", "NotReady", "control-plane"]);
        assert_eq!(rows[1][..3], ["node01", "NotReady", "<none>"]);
        assert_eq!(rows[1][4], "v1.28.2");
        lab.write("master", "/root/flannel.yml", FLANNEL);
        let applied = lab.ok("master", "kubectl", &["apply", "-f", "/root/flannel.yml"]);
        assert_eq!(
            applied,
            "namespace/kube-flannel created\nserviceaccount/flannel created\nclusterrole.rbac.authorization.k8s.io/flannel created\ndaemonset.apps/kube-flannel-ds created\n"
        );
        assert!(
            lab.ok("master", "kubectl", &["apply", "-f", "/root/flannel.yml"])
                .contains("daemonset.apps/kube-flannel-ds unchanged")
        );
        let out = lab.ok("master", "kubectl", &["get", "nodes", "-o", "wide"]);
        assert_eq!(
            shape::tabwriter_columns(&out),
            shape::tabwriter_columns(&shape::fixture("kubectl_get_nodes_wide.txt"))
        );
        assert!(
            out.lines().nth(1).unwrap().contains(" Ready ")
                && out.contains("Ubuntu 22.04.3 LTS")
                && out.contains("10.1.0.11")
        );
    }

    #[test]
    fn nodes_json_has_the_real_keys_and_gpus_once_the_device_plugin_runs() {
        let lab = Lab::new();
        lab.cluster();
        let ours = json_of(&lab.ok("master", "kubectl", &["get", "nodes", "-o", "json"]));
        let items = ours["items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert!(
            items
                .iter()
                .all(|n| n["status"]["capacity"].get("nvidia.com/gpu").is_none())
        );
        lab.write("master", "/root/dp.yml", DEVICE_PLUGIN);
        lab.ok("master", "kubectl", &["apply", "-f", "/root/dp.yml"]);
        let ours = json_of(&lab.ok("master", "kubectl", &["get", "nodes", "-o", "json"]));
        shape::assert_has_keys_of(&ours, &json_of(&shape::fixture("kubectl_get_nodes.json")));
        let by_name = |n: &str| {
            ours["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["metadata"]["name"] == n)
                .unwrap()
                .clone()
        };
        assert_eq!(
            by_name("node01")["status"]["capacity"]["nvidia.com/gpu"],
            "1"
        );
        assert!(
            by_name("node02")["status"]["capacity"]
                .get("nvidia.com/gpu")
                .is_none()
        );
        assert_eq!(
            by_name("master")["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
            ""
        );
        assert_eq!(
            by_name("node01")["status"]["nodeInfo"]["osImage"],
            "Ubuntu 22.04.3 LTS"
        );
        let ready = by_name("node02")["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["status"], "True");
        // kubectl prints JSON with four-space indentation.
        assert!(
            lab.ok("master", "kubectl", &["get", "nodes", "-o", "json"])
                .starts_with("{\n    \"apiVersion\": \"v1\",\n")
        );
    }

    #[test]
    fn jsonpath_and_name_outputs() {
        let lab = Lab::new();
        lab.cluster();
        assert_eq!(
            lab.ok(
                "master",
                "kubectl",
                &["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"]
            ),
            "master node01 node02"
        );
        assert_eq!(
            lab.ok(
                "master",
                "kubectl",
                &[
                    "get",
                    "nodes",
                    "-o",
                    "jsonpath={.items[0].status.nodeInfo.kubeletVersion}"
                ]
            ),
            "v1.28.2"
        );
        assert_eq!(
            lab.ok(
                "master",
                "kubectl",
                &[
                    "get",
                    "node",
                    "node01",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"
                ]
            ),
            "True"
        );
        assert_eq!(
            lab.ok(
                "master",
                "kubectl",
                &[
                    "get",
                    "nodes",
                    "-o",
                    "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}"
                ]
            ),
            "master\nnode01\nnode02\n"
        );
        assert_eq!(
            lab.ok("master", "kubectl", &["get", "nodes", "-o", "name"]),
            "node/master\nnode/node01\nnode/node02\n"
        );
    }

    #[test]
    fn kubectl_needs_a_kubeconfig_that_reaches_the_cluster() {
        let lab = Lab::new();
        cluster::TEST_ENV.with(|e| e.borrow_mut().clear());
        let (code, out, err) = lab.run("master", "kubectl", &["get", "nodes"]);
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(
            err,
            "The connection to the server localhost:8080 was refused - did you specify the right host or port?\n"
        );
        lab.init();
        assert_eq!(lab.run("master", "kubectl", &["get", "nodes"]).0, 1);
        assert_eq!(
            lab.run(
                "master",
                "kubectl",
                &["--kubeconfig", "/etc/kubernetes/admin.conf", "get", "nodes"]
            )
            .0,
            0
        );
        cluster::TEST_ENV.with(|e| e.borrow_mut().insert("HOME".into(), "/root".into()));
        let admin =
            fs::read_to_string(lab.node("master").path("/etc/kubernetes/admin.conf")).unwrap();
        lab.write("master", "/root/.kube/config", &admin);
        assert_eq!(lab.run("master", "kubectl", &["get", "nodes"]).0, 0);
        // Reset and re-init: the old ~/.kube/config names a CA the new cluster does not have.
        lab.ok("master", "kubeadm", &["reset", "-f"]);
        let (code, _, err) = lab.run("master", "kubectl", &["get", "nodes"]);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "The connection to the server 10.1.0.10:6443 was refused - did you specify the right host or port?\n"
        );
        lab.init();
        let (code, _, err) = lab.run("master", "kubectl", &["get", "nodes"]);
        assert_eq!(code, 1);
        assert!(err.starts_with("Unable to connect to the server: tls: failed to verify certificate: x509: certificate signed by unknown authority"), "{err}");
    }

    #[test]
    fn reset_removes_a_worker_and_wipes_on_the_control_plane() {
        let lab = Lab::new();
        lab.cluster();
        let out = lab.ok("node02", "kubeadm", &["reset", "-f"]);
        assert!(out.contains("[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]"));
        assert!(
            !lab.node("node02")
                .path("/etc/kubernetes/kubelet.conf")
                .exists()
        );
        let names = lab.ok("master", "kubectl", &["get", "nodes", "-o", "name"]);
        assert_eq!(names, "node/master\nnode/node01\n");
        let (code, _, err) = lab.run("node02", "kubeadm", &["reset"]);
        assert_eq!(code, 1);
        assert!(err.contains("didn't answer"));
        lab.ok("master", "kubeadm", &["reset", "-f"]);
        assert!(Store::new(lab.node("master")).cluster().unwrap().is_none());
        assert!(Store::new(lab.node("master")).nodes().unwrap().is_empty());
        assert!(
            !lab.node("master")
                .path("/etc/kubernetes/admin.conf")
                .exists()
        );
        assert!(
            !lab.node("master")
                .path("/etc/kubernetes/manifests/etcd.yaml")
                .exists()
        );
        // After the reset the node can be initialized again without ignoring anything.
        lab.init();
    }

    #[test]
    fn pods_are_derived_and_listed_like_kubectl() {
        let lab = Lab::new();
        let (token, hash) = lab.init();
        lab.join("node01", &token, &hash);
        let out = lab.ok("master", "kubectl", &["get", "pods", "-A"]);
        assert_eq!(
            shape::tabwriter_columns(&out),
            shape::tabwriter_columns(&shape::fixture("kubectl_get_pods_all.txt"))
        );
        assert!(
            out.lines().any(|l| l.starts_with("kube-system")
                && l.contains("coredns-")
                && l.contains("Pending")),
            "{out}"
        );
        assert!(out.contains("etcd-master ") && out.contains("kube-apiserver-master "));
        assert_eq!(out.matches("kube-proxy-").count(), 2);
        lab.write("master", "/root/flannel.yml", FLANNEL);
        lab.ok("master", "kubectl", &["apply", "-f", "/root/flannel.yml"]);
        let out = lab.ok(
            "master",
            "kubectl",
            &["get", "pods", "-n", "kube-system", "-o", "wide"],
        );
        assert_eq!(
            shape::tabwriter_columns(&out),
            shape::tabwriter_columns(&shape::fixture("kubectl_get_pods_wide.txt"))
        );
        assert!(!out.contains("Pending"));
        let (code, out, err) = lab.run("master", "kubectl", &["get", "pods", "-n", "kamonohashi"]);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (0, "", "No resources found in kamonohashi namespace.\n")
        );
        let pods = json_of(&lab.ok(
            "master",
            "kubectl",
            &[
                "get",
                "pods",
                "-n",
                "kube-system",
                "-l",
                "k8s-app=kube-dns",
                "-o",
                "json",
            ],
        ));
        assert_eq!(pods["items"].as_array().unwrap().len(), 2);
        assert_eq!(pods["items"][0]["status"]["phase"], "Running");
    }

    #[test]
    fn wait_times_out_before_the_network_and_succeeds_after() {
        let lab = Lab::new();
        let (token, hash) = lab.init();
        lab.join("node01", &token, &hash);
        let (code, out, err) = lab.run(
            "master",
            "kubectl",
            &[
                "wait",
                "--for=condition=Ready",
                "nodes",
                "--all",
                "--timeout=0s",
            ],
        );
        assert_eq!(code, 1);
        assert_eq!(out, "");
        assert_eq!(
            err,
            "error: timed out waiting for the condition on nodes/master\n"
        );
        lab.write("master", "/root/flannel.yml", FLANNEL);
        lab.ok("master", "kubectl", &["apply", "-f", "/root/flannel.yml"]);
        assert_eq!(
            lab.ok(
                "master",
                "kubectl",
                &[
                    "wait",
                    "--for=condition=Ready",
                    "nodes",
                    "--all",
                    "--timeout=300s"
                ]
            ),
            "node/master condition met\nnode/node01 condition met\n"
        );
        assert_eq!(
            lab.ok(
                "master",
                "kubectl",
                &["wait", "--for=condition=Ready", "node/node01"]
            ),
            "node/node01 condition met\n"
        );
        let (code, _, err) = lab.run(
            "master",
            "kubectl",
            &["wait", "--for=condition=Ready", "node/nope", "--timeout=0s"],
        );
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "Error from server (NotFound): nodes \"nope\" not found\n"
        );
    }

    #[test]
    fn drain_cordon_uncordon_delete() {
        let lab = Lab::new();
        lab.cluster();
        let (code, out, err) = lab.run("master", "kubectl", &["drain", "node01"]);
        assert_eq!(code, 1);
        assert_eq!(out, "node/node01 cordoned\n");
        assert!(err.starts_with("error: unable to drain node \"node01\" due to error: cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): kube-flannel/kube-flannel-ds-"), "{err}");
        let out = lab.ok("master", "kubectl", &["get", "nodes"]);
        assert!(
            out.lines()
                .any(|l| l.starts_with("node01 ") && l.contains("Ready,SchedulingDisabled")),
            "{out}"
        );
        lab.ok("master", "kubectl", &["uncordon", "node01"]);
        // CoreDNS may run on node01 or node02; after draining both workers, none is left there.
        for n in ["node01", "node02"] {
            let (code, out, err) = lab.run(
                "master",
                "kubectl",
                &["drain", n, "--ignore-daemonsets", "--delete-emptydir-data"],
            );
            assert_eq!(code, 0, "{err}");
            assert!(out.ends_with(&format!("node/{n} drained\n")));
            assert!(err.starts_with("Warning: ignoring DaemonSet-managed Pods: "));
        }
        let pods = lab.ok(
            "master",
            "kubectl",
            &[
                "get",
                "pods",
                "-n",
                "kube-system",
                "-l",
                "k8s-app=kube-dns",
                "-o",
                "wide",
            ],
        );
        assert!(
            pods.lines().skip(1).all(|l| l.contains(" master ")),
            "{pods}"
        );
        assert_eq!(
            lab.ok("master", "kubectl", &["cordon", "node01"]),
            "node/node01 already cordoned\n"
        );
        assert_eq!(
            lab.ok("master", "kubectl", &["uncordon", "node01"]),
            "node/node01 uncordoned\n"
        );
        assert_eq!(
            lab.ok("master", "kubectl", &["delete", "node", "node02"]),
            "node \"node02\" deleted\n"
        );
        let (code, _, err) = lab.run("master", "kubectl", &["delete", "node", "node02"]);
        assert_eq!(
            (code, err.as_str()),
            (
                1,
                "Error from server (NotFound): nodes \"node02\" not found\n"
            )
        );
    }

    #[test]
    fn label_and_taint_nodes() {
        let lab = Lab::new();
        lab.cluster();
        assert_eq!(
            lab.ok(
                "master",
                "kubectl",
                &["label", "node", "node01", "accelerator=v100"]
            ),
            "node/node01 labeled\n"
        );
        let (code, _, err) = lab.run(
            "master",
            "kubectl",
            &["label", "node", "node01", "accelerator=a100"],
        );
        assert_eq!(
            (code, err.as_str()),
            (
                1,
                "error: 'accelerator' already has a value (v100), and --overwrite is false\n"
            )
        );
        lab.ok(
            "master",
            "kubectl",
            &["label", "node", "node01", "accelerator=a100", "--overwrite"],
        );
        assert_eq!(
            lab.ok(
                "master",
                "kubectl",
                &["get", "nodes", "-l", "accelerator=a100", "-o", "name"]
            ),
            "node/node01\n"
        );
        assert_eq!(
            lab.ok(
                "master",
                "kubectl",
                &["label", "node", "node01", "node-role.kubernetes.io/worker="]
            ),
            "node/node01 labeled\n"
        );
        assert!(
            lab.ok("master", "kubectl", &["get", "nodes"])
                .lines()
                .any(|l| l.starts_with("node01") && l.contains(" worker "))
        );
        // As on a real cluster, --all reports the workers that never had the taint.
        let (code, out, err) = lab.run(
            "master",
            "kubectl",
            &[
                "taint",
                "nodes",
                "--all",
                "node-role.kubernetes.io/control-plane-",
            ],
        );
        assert_eq!(code, 1);
        assert_eq!(out, "node/master untainted\n");
        assert_eq!(
            err.matches("error: taint \"node-role.kubernetes.io/control-plane\" not found\n")
                .count(),
            2
        );
        let node = Store::new(lab.node("master"))
            .node("master")
            .unwrap()
            .unwrap();
        assert!(node.taints.is_empty());
        assert_eq!(
            lab.ok(
                "master",
                "kubectl",
                &["taint", "nodes", "node02", "dedicated=db:NoSchedule"]
            ),
            "node/node02 tainted\n"
        );
    }

    #[test]
    fn exec_runs_the_command_in_a_pod() {
        let lab = Lab::new();
        lab.cluster();
        let pod = lab.ok(
            "master",
            "kubectl",
            &[
                "get",
                "pods",
                "-n",
                "kube-system",
                "-l",
                "k8s-app=kube-dns",
                "-o",
                "jsonpath={.items[0].metadata.name}",
            ],
        );
        assert_eq!(
            lab.ok(
                "master",
                "kubectl",
                &["exec", "-n", "kube-system", &pod, "--", "echo", "hello"]
            ),
            "hello\n"
        );
        let (code, _, err) = lab.run(
            "master",
            "kubectl",
            &[
                "exec",
                "-n",
                "kube-system",
                &pod,
                "--",
                "sh",
                "-c",
                "exit 3",
            ],
        );
        assert_eq!(
            (code, err.as_str()),
            (3, "command terminated with exit code 3\n")
        );
        let (code, _, err) = lab.run(
            "master",
            "kubectl",
            &["exec", "-n", "kube-system", "nope", "--", "true"],
        );
        assert_eq!(
            (code, err.as_str()),
            (1, "Error from server (NotFound): pods \"nope\" not found\n")
        );
    }

    #[test]
    fn certs_check_expiration_has_the_real_layout() {
        let lab = Lab::new();
        lab.init();
        let store = Store::new(lab.node("master"));
        let mut c = store.cluster().unwrap().unwrap();
        c.certs_issued = 1_577_748_960; // Dec 30 2019 23:36 UTC
        c.created = 1_577_748_960;
        store.save_cluster(&c).unwrap();
        let out = lab.ok("master", "kubeadm", &["certs", "check-expiration"]);
        let fixture = shape::fixture("kubeadm_certs_check_expiration.txt");
        let ours: Vec<&str> = out.split("\n\n").collect();
        let theirs: Vec<&str> = fixture.split("\n\n").collect();
        assert_eq!(ours[0], theirs[0]);
        for i in 1..3 {
            assert_eq!(
                shape::tabwriter_columns(ours[i]),
                shape::tabwriter_columns(theirs[i])
            );
            let rows = |t: &str| {
                t.lines()
                    .map(|l| l.split("   ").next().unwrap().to_string())
                    .collect::<Vec<_>>()
            };
            assert_eq!(rows(ours[i]), rows(theirs[i]));
        }
        // Expired leaf certificates show <invalid>; the CAs (10 years) do not.
        assert!(
            ours[1]
                .lines()
                .nth(1)
                .unwrap()
                .contains("Dec 29, 2020 23:36 UTC   <invalid>"),
            "{}",
            ours[1]
        );
        assert!(ours[2].contains("Dec 27, 2029 23:36 UTC"));
        let renewed = lab.ok("master", "kubeadm", &["certs", "renew", "all"]);
        assert!(renewed.contains("certificate for serving the Kubernetes API renewed\n"));
        assert!(renewed.ends_with("so that they can use the new certificates.\n"));
        let out = lab.ok("master", "kubeadm", &["certs", "check-expiration"]);
        assert!(out.contains("   364d   "), "{out}");
    }

    #[test]
    fn versions() {
        let lab = Lab::new();
        assert_eq!(
            lab.ok("master", "kubeadm", &["version", "-o", "short"]),
            "v1.28.2\n"
        );
        let (code, out, _) = lab.run("master", "kubectl", &["version", "-o", "json"]);
        assert_eq!(code, 1);
        assert!(json_of(&out).get("serverVersion").is_none());
        lab.init();
        let ours = json_of(&lab.ok("master", "kubectl", &["version", "-o", "json"]));
        let theirs = json_of(&shape::fixture("kubectl_version.json"));
        assert_eq!(shape::key_paths(&ours), shape::key_paths(&theirs));
        let order = |v: &Value| {
            v["clientVersion"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(order(&ours), order(&theirs));
    }

    #[test]
    fn concurrent_joins_all_land() {
        let lab = Lab::new();
        let (token, hash) = lab.init();
        let lab_dir = lab.node("master").lab_dir.clone();
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let (token, hash, lab_dir) = (token.clone(), hash.clone(), lab_dir.clone());
                std::thread::spawn(move || {
                    let root = lab_dir.join(format!("w{i}"));
                    fs::create_dir_all(&root).unwrap();
                    let node = Node {
                        name: format!("w{i}"),
                        address: format!("10.1.1.{i}"),
                        lab_dir,
                        root,
                        ..Node::default()
                    };
                    let mut io = Io::default();
                    let args: Vec<String> = [
                        "join",
                        "10.1.0.10:6443",
                        "--token",
                        &token,
                        "--discovery-token-ca-cert-hash",
                        &hash,
                    ]
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                    kubeadm(&node, &args, &mut io)
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 0);
        }
        assert_eq!(Store::new(lab.node("master")).nodes().unwrap().len(), 7);
        assert!(!Path::new(&lab_dir.join("cluster/.lock")).exists());
    }
}
