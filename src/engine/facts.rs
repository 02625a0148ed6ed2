//! The small fact set, gathered with one remote command per host.
//!
//! One `sh` script prints `key=value` lines from `uname`, `/etc/os-release`, `/proc/meminfo`,
//! `nproc`, `hostname` and `ip route`; the controller turns them into Ansible's names
//! (`ansible_distribution`, `ansible_default_ipv4.address`, ...) and an `ansible_facts` dict.

use serde_json::{Map, Value, json};

/// The gathering script: read-only, POSIX sh, tolerant of missing tools.
pub const SCRIPT: &str = r#"set +e
LC_ALL=C; export LC_ALL
echo "hostname=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)"
echo "fqdn=$(hostname -f 2>/dev/null || hostname 2>/dev/null)"
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
if [ -r /etc/os-release ]; then
  . /etc/os-release
  echo "os_name=${NAME:-}"
  echo "os_id=${ID:-}"
  echo "os_id_like=${ID_LIKE:-}"
  echo "os_version=${VERSION_ID:-}"
  echo "os_codename=${VERSION_CODENAME:-${UBUNTU_CODENAME:-}}"
fi
echo "memtotal_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)"
echo "vcpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
if command -v ip >/dev/null 2>&1; then
  echo "ipv4=$(ip -4 route get 1.0.0.0 2>/dev/null | awk '{for (i=1;i<NF;i++) if ($i=="src") {print $(i+1); exit}}')"
fi
"#;

/// Turns the script's output into Ansible-named facts (top-level `ansible_*` variables).
#[must_use]
pub fn parse(stdout: &str) -> Map<String, Value> {
    let mut raw = std::collections::HashMap::new();
    for line in stdout.lines() {
        if let Some((k, v)) = line.split_once('=') {
            raw.insert(k.to_owned(), v.trim().to_owned());
        }
    }
    let get = |k: &str| raw.get(k).cloned().unwrap_or_default();
    let id = get("os_id");
    let like = get("os_id_like");
    let distribution = match id.as_str() {
        "ubuntu" => "Ubuntu".to_owned(),
        "debian" => "Debian".to_owned(),
        "" => get("os_name"),
        other => get("os_name")
            .split_whitespace()
            .next()
            .map_or_else(|| other.to_owned(), str::to_owned),
    };
    let family = if id == "debian" || id == "ubuntu" || like.contains("debian") {
        "Debian"
    } else if like.contains("rhel") || like.contains("fedora") {
        "RedHat"
    } else {
        "Unknown"
    };
    let hostname = get("hostname");
    let short = hostname.split('.').next().unwrap_or_default().to_owned();
    let mem_mb = get("memtotal_kb")
        .parse::<u64>()
        .map_or(Value::Null, |kb| json!(kb / 1024));
    let vcpus = get("vcpus")
        .parse::<u64>()
        .map_or(Value::Null, |n| json!(n));
    let ipv4 = get("ipv4");
    let facts = json!({
        "hostname": short,
        "fqdn": get("fqdn"),
        "distribution": distribution,
        "distribution_version": get("os_version"),
        "distribution_release": get("os_codename"),
        "distribution_major_version": get("os_version").split('.').next().unwrap_or_default(),
        "os_family": family,
        "architecture": get("arch"),
        "kernel": get("kernel"),
        "default_ipv4": if ipv4.is_empty() { json!({}) } else { json!({"address": ipv4}) },
        "memtotal_mb": mem_mb,
        "processor_vcpus": vcpus,
    });
    let mut out = Map::new();
    if let Value::Object(f) = &facts {
        for (k, v) in f {
            out.insert(format!("ansible_{k}"), v.clone());
        }
    }
    out.insert("ansible_facts".into(), facts);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ubuntu_facts() {
        let f = parse(
            "hostname=gpu01.lab\nfqdn=gpu01.lab\narch=x86_64\nkernel=5.15.0-91-generic\nos_name=Ubuntu\nos_id=ubuntu\nos_id_like=debian\nos_version=22.04\nos_codename=jammy\nmemtotal_kb=16384000\nvcpus=8\nipv4=10.0.0.11\n",
        );
        assert_eq!(f["ansible_distribution"], "Ubuntu");
        assert_eq!(f["ansible_distribution_version"], "22.04");
        assert_eq!(f["ansible_distribution_release"], "jammy");
        assert_eq!(f["ansible_os_family"], "Debian");
        assert_eq!(f["ansible_hostname"], "gpu01");
        assert_eq!(f["ansible_default_ipv4"]["address"], "10.0.0.11");
        assert_eq!(f["ansible_memtotal_mb"], 16000);
        assert_eq!(f["ansible_processor_vcpus"], 8);
        assert_eq!(f["ansible_facts"]["architecture"], "x86_64");
    }

    #[test]
    fn the_script_runs_here() {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(SCRIPT)
            .output()
            .unwrap();
        let f = parse(&String::from_utf8_lossy(&out.stdout));
        assert!(!f["ansible_kernel"].as_str().unwrap().is_empty());
        assert!(f["ansible_processor_vcpus"].as_u64().unwrap() >= 1);
    }
}
