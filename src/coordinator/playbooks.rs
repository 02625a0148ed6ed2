//! Which playbooks a lifecycle verb runs, and where the shipped playbooks are.
//!
//! The procedures are plain playbooks in `playbooks/` (one per verb, readable and runnable
//! with `kamo run` on their own); this file is the one table from verbs to files, so the
//! mapping is data that `kamo plan`, tests and the README can all see.
//!
//! The playbook root is, in order: `--playbooks DIR`, `$KAMO_PLAYBOOKS`, `./playbooks` when it
//! holds `versions.yml`, the `share/kamo/playbooks` directory of an installed kamo (next to
//! `bin/`), and the source tree kamo was built from.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Environment variable naming the playbook root.
pub const PLAYBOOKS_ENV: &str = "KAMO_PLAYBOOKS";

/// The playbook root (see the module doc for the order).
pub fn root(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return checked(p.to_path_buf(), "--playbooks");
    }
    if let Some(p) = std::env::var_os(PLAYBOOKS_ENV).filter(|v| !v.is_empty()) {
        return checked(PathBuf::from(p), PLAYBOOKS_ENV);
    }
    let local = PathBuf::from("playbooks");
    if local.join("versions.yml").is_file() {
        return Ok(local);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(prefix) = exe.parent().and_then(Path::parent)
    {
        let shared = prefix.join("share/kamo/playbooks");
        if shared.join("versions.yml").is_file() {
            return Ok(shared);
        }
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks");
    if built.join("versions.yml").is_file() {
        return Ok(built);
    }
    Err(Error::Usage(format!(
        "cannot find the shipped playbooks: pass --playbooks DIR or set {PLAYBOOKS_ENV} \
         (a directory with versions.yml and deploy-k8s.yml, ...)"
    )))
}

fn checked(p: PathBuf, from: &str) -> Result<PathBuf> {
    if p.join("versions.yml").is_file() {
        Ok(p)
    } else {
        Err(Error::Usage(format!(
            "{from} {}: not a playbook directory (no versions.yml in it)",
            p.display()
        )))
    }
}

/// The files of a verb and its target, relative to a playbook root, in run order.
pub fn files(verb: &str, target: &str) -> Result<&'static [&'static str]> {
    Ok(match (verb, target) {
        ("deploy", "all") => &["deploy-k8s.yml", "deploy-nfs.yml", "deploy-app.yml"],
        ("deploy", "infra") => &["deploy-k8s.yml", "deploy-nfs.yml"],
        ("deploy", "k8s") => &["deploy-k8s.yml"],
        ("deploy", "nfs") => &["deploy-nfs.yml"],
        ("deploy", "app") => &["deploy-app.yml"],
        ("clean", "all") => &["clean-all.yml"],
        ("clean", "app") => &["clean-app.yml"],
        ("clean", "nvidia-repo") => &["clean-nvidia-repo.yml"],
        ("clean", "nvidia-packages") => &["clean-nvidia-packages.yml"],
        ("update", "app") => &["update-app.yml"],
        ("update", "node-conf") => &["update-node-conf.yml"],
        ("update", "kube-certs") => &["update-kube-certs.yml"],
        ("credentials", _) => &["credentials.yml"],
        ("check", "pre") => &["preflight.yml"],
        ("check", "post") => &["postflight.yml"],
        _ => {
            return Err(Error::Usage(format!(
                "kamo {verb} {target}: unknown target"
            )));
        }
    })
}

/// The paths of a verb's playbooks under `root`; a missing one is an error naming it.
pub fn paths(root: &Path, verb: &str, target: &str) -> Result<Vec<PathBuf>> {
    files(verb, target)?
        .iter()
        .map(|f| {
            let p = root.join(f);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::Usage(format!(
                    "kamo {verb} {target} needs {}, which does not exist",
                    p.display()
                )))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verb_maps_to_shipped_playbooks() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks");
        for (verb, targets) in [
            ("deploy", &["all", "infra", "k8s", "nfs", "app"][..]),
            (
                "clean",
                &["all", "app", "nvidia-repo", "nvidia-packages"][..],
            ),
            ("update", &["app", "node-conf", "kube-certs"][..]),
            ("credentials", &["db"][..]),
            ("check", &["pre", "post"][..]),
        ] {
            for t in targets {
                let p = paths(&root, verb, t).unwrap();
                assert!(!p.is_empty(), "{verb} {t}");
            }
        }
        assert!(files("deploy", "everything").is_err());
    }
}
