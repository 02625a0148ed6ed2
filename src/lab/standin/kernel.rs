//! `sysctl`, `modprobe`, `lsmod`, `modinfo` and `hostnamectl` on a lab node.
//!
//! Lab nodes share this machine's kernel, so the real tools would change it for every node
//! (and the machine). These keep per-node kernel state instead, under the node's
//! `/var/lib/kamo-lab` (`sysctl.json`, `modules.json`), with the real tools' output and
//! errors for what a Kubernetes install uses: `net.bridge.*` keys exist only once
//! `br_netfilter` is loaded, as on Ubuntu.

use std::collections::BTreeMap;

use super::{Io, Node};

/// The running kernel the nodes report.
pub const KERNEL: &str = "5.15.0-105-generic";

/// Modules the node's kernel has: (name, path under /lib/modules/KERNEL, size).
const MODULES: &[(&str, &str, u32)] = &[
    ("overlay", "kernel/fs/overlayfs/overlay.ko", 151_552),
    ("br_netfilter", "kernel/net/bridge/br_netfilter.ko", 32_768),
    (
        "nf_conntrack",
        "kernel/net/netfilter/nf_conntrack.ko",
        172_032,
    ),
    ("ip_vs", "kernel/net/netfilter/ipvs/ip_vs.ko", 176_128),
    ("ip_vs_rr", "kernel/net/netfilter/ipvs/ip_vs_rr.ko", 16_384),
    (
        "ip_vs_wrr",
        "kernel/net/netfilter/ipvs/ip_vs_wrr.ko",
        16_384,
    ),
    ("ip_vs_sh", "kernel/net/netfilter/ipvs/ip_vs_sh.ko", 16_384),
    ("nfs", "kernel/fs/nfs/nfs.ko", 372_736),
    ("nfsd", "kernel/fs/nfsd/nfsd.ko", 520_192),
    ("rbd", "kernel/drivers/block/rbd.ko", 118_784),
    ("nvidia", "updates/dkms/nvidia.ko", 56_807_424),
];

/// sysctl keys and their values on a fresh node.
fn defaults() -> BTreeMap<String, String> {
    [
        ("net.ipv4.ip_forward", "0"),
        ("net.ipv6.conf.all.forwarding", "0"),
        ("vm.swappiness", "60"),
        ("vm.max_map_count", "65530"),
        ("vm.overcommit_memory", "0"),
        ("fs.inotify.max_user_watches", "8192"),
        ("fs.inotify.max_user_instances", "128"),
        ("fs.file-max", "9223372036854775807"),
        ("kernel.pid_max", "4194304"),
        ("kernel.panic", "0"),
        ("net.core.somaxconn", "4096"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

const BRIDGE_KEYS: &[&str] = &[
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.bridge.bridge-nf-call-arptables",
];

fn load_json<T: serde::de::DeserializeOwned + Default>(node: &Node, file: &str) -> T {
    std::fs::read_to_string(node.state_dir().join(file))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn save_json<T: serde::Serialize>(node: &Node, file: &str, v: &T) -> Result<(), String> {
    let dir = node.state_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(file);
    let tmp = dir.join(format!(".{file}.{}", std::process::id()));
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(v).map_err(|e| e.to_string())?,
    )
    .and_then(|()| std::fs::rename(&tmp, &path))
    .map_err(|e| format!("{}: {e}", path.display()))
}

fn loaded(node: &Node) -> Vec<String> {
    load_json(node, "modules.json")
}

/// The node's current sysctl values (defaults, bridge keys when br_netfilter is loaded,
/// then what was set).
fn sysctls(node: &Node) -> BTreeMap<String, String> {
    let mut all = defaults();
    if loaded(node).iter().any(|m| m == "br_netfilter") {
        for k in BRIDGE_KEYS {
            all.insert((*k).to_owned(), "1".to_owned());
        }
    }
    let set: BTreeMap<String, String> = load_json(node, "sysctl.json");
    for (k, v) in set {
        if all.contains_key(&k) {
            all.insert(k, v);
        }
    }
    all
}

fn proc_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

fn not_root(io: &mut Io, what: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    io.err(what);
    true
}

/// `sysctl [-n] [-e] [-q] KEY...`, `sysctl -w KEY=VALUE...`, `sysctl -p [FILE]`, `sysctl -a`.
pub fn sysctl(node: &Node, args: &[String], io: &mut Io) -> i32 {
    let (mut names_only, mut ignore, mut quiet, mut write, mut load) =
        (false, false, false, false, None::<String>);
    let mut words = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-n" | "--values" => names_only = true,
            "-e" | "--ignore" => ignore = true,
            "-q" | "--quiet" => quiet = true,
            "-w" | "--write" => write = true,
            "-a" | "--all" => {
                for (k, v) in sysctls(node) {
                    io.out(&format!("{k} = {v}\n"));
                }
                return 0;
            }
            "-p" | "--load" => {
                let file = match it.peek() {
                    Some(f) if !f.starts_with('-') => it.next().cloned().unwrap_or_default(),
                    _ => "/etc/sysctl.conf".to_owned(),
                };
                load = Some(file);
            }
            _ => words.push(a.clone()),
        }
    }
    if let Some(file) = load {
        let Ok(text) = std::fs::read_to_string(node.path(&file)) else {
            io.err(&format!(
                "sysctl: cannot open \"{file}\": No such file or directory\n"
            ));
            return 255;
        };
        words = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
            .map(|l| match l.split_once('=') {
                Some((k, v)) => format!("{}={}", k.trim(), v.trim()),
                None => l.to_owned(),
            })
            .collect();
        write = true;
    }
    let mut all = sysctls(node);
    let mut set: BTreeMap<String, String> = load_json(node, "sysctl.json");
    let mut code = 0;
    for w in &words {
        let (key, value) = match w.split_once('=') {
            Some((k, v)) => (k.trim().to_owned(), Some(v.trim().to_owned())),
            None => (w.clone(), None),
        };
        if !all.contains_key(&key) {
            if !ignore {
                io.err(&format!(
                    "sysctl: cannot stat {}: No such file or directory\n",
                    proc_path(&key)
                ));
                code = 255;
            }
            continue;
        }
        match value {
            Some(v) if write => {
                if not_root(io, &format!("sysctl: permission denied on key \"{key}\"\n")) {
                    code = 255;
                    continue;
                }
                all.insert(key.clone(), v.clone());
                set.insert(key.clone(), v.clone());
                if !quiet {
                    io.out(&format!("{key} = {v}\n"));
                }
            }
            Some(_) => {
                io.err(&format!(
                    "sysctl: \"{w}\" must be of the form name=value (use -w)\n"
                ));
                code = 255;
            }
            None => {
                let v = &all[&key];
                if names_only {
                    io.out(&format!("{v}\n"));
                } else {
                    io.out(&format!("{key} = {v}\n"));
                }
            }
        }
    }
    if write && let Err(e) = save_json(node, "sysctl.json", &set) {
        io.err(&format!("sysctl: {e}\n"));
        return 255;
    }
    code
}

fn module(name: &str) -> Option<&'static (&'static str, &'static str, u32)> {
    let n = name.replace('-', "_");
    MODULES.iter().find(|m| m.0 == n)
}

/// `modprobe NAME [PARAM=V...]`, `modprobe -r NAME...`.
pub fn modprobe(node: &Node, args: &[String], io: &mut Io) -> i32 {
    let remove = args.iter().any(|a| a == "-r" || a == "--remove");
    let words: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let Some(name) = words.first() else {
        io.err("modprobe: ERROR: missing parameters. See -h.\n");
        return 1;
    };
    let nvidia_ok = node.gpu
        && super::cluster::packages_with_prefix(node, "nvidia-driver-")
            .is_none_or(|p| !p.is_empty());
    let Some(m) = module(name).filter(|m| m.0 != "nvidia" || nvidia_ok) else {
        io.err(&format!(
            "modprobe: FATAL: Module {name} not found in directory /lib/modules/{KERNEL}\n"
        ));
        return 1;
    };
    if not_root(
        io,
        &format!(
            "modprobe: ERROR: could not insert '{}': Operation not permitted\n",
            m.0
        ),
    ) {
        return 1;
    }
    let mut mods = loaded(node);
    let targets: Vec<String> = if remove {
        words.iter().map(|w| w.replace('-', "_")).collect()
    } else {
        vec![m.0.to_owned()]
    };
    for t in targets {
        if remove {
            mods.retain(|x| *x != t);
        } else if !mods.contains(&t) {
            mods.push(t);
        }
    }
    if let Err(e) = save_json(node, "modules.json", &mods) {
        io.err(&format!("modprobe: ERROR: {e}\n"));
        return 1;
    }
    0
}

/// `lsmod`.
pub fn lsmod(node: &Node, _args: &[String], io: &mut Io) -> i32 {
    io.out("Module                  Size  Used by\n");
    for name in loaded(node).iter().rev() {
        let size = module(name).map_or(16_384, |m| m.2);
        io.out(&format!("{name:<19} {size:>8}  0\n"));
    }
    0
}

/// `modinfo [-F FIELD] NAME`.
pub fn modinfo(node: &Node, args: &[String], io: &mut Io) -> i32 {
    let mut field = None;
    let mut name = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-F" | "--field" => field = it.next().cloned(),
            "-n" => field = Some("filename".into()),
            other => name = Some(other.to_owned()),
        }
    }
    let Some(name) = name else {
        io.err("modinfo: ERROR: missing module or filename.\n");
        return 1;
    };
    let Some(m) = module(&name).filter(|m| m.0 != "nvidia" || node.gpu) else {
        io.err(&format!("modinfo: ERROR: Module {name} not found.\n"));
        return 1;
    };
    let filename = format!("/lib/modules/{KERNEL}/{}", m.1);
    match field.as_deref() {
        Some("filename") => io.out(&format!("{filename}\n")),
        Some(_) => {}
        None => io.out(&format!(
            "filename:       {filename}\nlicense:        GPL\nname:           {}\nvermagic:       {KERNEL} SMP mod_unload modversions \n",
            m.0
        )),
    }
    0
}

/// `hostnamectl [status]`, `hostnamectl set-hostname NAME`, `hostnamectl hostname`.
pub fn hostnamectl(node: &Node, args: &[String], io: &mut Io) -> i32 {
    let current = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| node.name.clone());
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match words.as_slice() {
        [] | ["status"] => {
            let os = std::fs::read_to_string(node.path("/etc/os-release"))
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                        .map(|v| v.trim_matches('"').to_owned())
                })
                .unwrap_or_else(|| "Ubuntu".into());
            io.out(&format!(
                " Static hostname: {current}\n       Icon name: computer-vm\n         Chassis: vm\n      Machine ID: {}\n Operating System: {os}\n          Kernel: Linux {KERNEL}\n    Architecture: x86-64\n",
                &super::cluster::sha256_hex(node.name.as_bytes())[..32]
            ));
            0
        }
        ["hostname"] => {
            io.out(&format!("{current}\n"));
            0
        }
        ["set-hostname", name] => {
            if not_root(io, "Could not set static hostname: Access denied\n") {
                return 1;
            }
            if nix::unistd::sethostname(name).is_err() {
                io.err("Could not set hostname: Operation not permitted\n");
                return 1;
            }
            match std::fs::write(node.path("/etc/hostname"), format!("{name}\n")) {
                Ok(()) => 0,
                Err(e) => {
                    io.err(&format!("Could not set static hostname: {e}\n"));
                    1
                }
            }
        }
        _ => {
            io.err(&format!("Unknown command verb {}.\n", words[0]));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> (tempfile::TempDir, Node) {
        let d = tempfile::tempdir().unwrap();
        let n = Node {
            name: "node01".into(),
            root: d.path().to_owned(),
            lab_dir: d.path().join("lab"),
            ..Node::default()
        };
        (d, n)
    }

    fn run(
        f: fn(&Node, &[String], &mut Io) -> i32,
        n: &Node,
        args: &[&str],
    ) -> (i32, String, String) {
        let mut io = Io::default();
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let code = f(n, &args, &mut io);
        (
            code,
            String::from_utf8(io.out).unwrap(),
            String::from_utf8(io.err).unwrap(),
        )
    }

    #[test]
    fn bridge_keys_appear_with_br_netfilter() {
        let (_d, n) = node();
        let (code, _, err) = run(sysctl, &n, &["-n", "net.bridge.bridge-nf-call-iptables"]);
        assert_eq!(code, 255);
        assert_eq!(
            err,
            "sysctl: cannot stat /proc/sys/net/bridge/bridge-nf-call-iptables: No such file or directory\n"
        );
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        assert_eq!(run(modprobe, &n, &["br_netfilter"]).0, 0);
        assert_eq!(
            run(sysctl, &n, &["-n", "net.bridge.bridge-nf-call-iptables"]).1,
            "1\n"
        );
        let (code, out, _) = run(lsmod, &n, &[]);
        assert_eq!(code, 0);
        assert!(
            out.starts_with("Module                  Size  Used by\nbr_netfilter"),
            "{out}"
        );
        assert_eq!(
            run(sysctl, &n, &["-w", "net.ipv4.ip_forward=1"]).1,
            "net.ipv4.ip_forward = 1\n"
        );
        assert_eq!(run(sysctl, &n, &["-n", "net.ipv4.ip_forward"]).1, "1\n");
        std::fs::create_dir_all(n.path("/etc/sysctl.d")).unwrap();
        std::fs::write(
            n.path("/etc/sysctl.d/k8s.conf"),
            "# k8s\nvm.swappiness = 10\n",
        )
        .unwrap();
        assert_eq!(
            run(sysctl, &n, &["-p", "/etc/sysctl.d/k8s.conf"]).1,
            "vm.swappiness = 10\n"
        );
        assert_eq!(run(modprobe, &n, &["-r", "br_netfilter"]).0, 0);
        assert_eq!(
            run(sysctl, &n, &["-n", "net.bridge.bridge-nf-call-iptables"]).0,
            255
        );
    }

    #[test]
    fn unknown_modules_fail_as_modprobe_does() {
        let (_d, n) = node();
        let (code, _, err) = run(modprobe, &n, &["nosuchmod"]);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            format!(
                "modprobe: FATAL: Module nosuchmod not found in directory /lib/modules/{KERNEL}\n"
            )
        );
        assert_eq!(
            run(modinfo, &n, &["-F", "filename", "overlay"]).1,
            format!("/lib/modules/{KERNEL}/kernel/fs/overlayfs/overlay.ko\n")
        );
        assert_eq!(
            run(modinfo, &n, &["nvidia"]).0,
            1,
            "no GPU, no nvidia module"
        );
    }
}
