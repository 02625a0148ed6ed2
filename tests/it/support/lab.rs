//! A `kamo lab` for a test: started in a temporary home, taken down by its own `kamo lab down
//! --purge` however the test ends.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::kamo::{Kamo, Run, empty_home};

/// A lab in a temporary directory, taken down (by its own `kamo lab down`) however the test
/// ends.
pub struct Lab {
    pub home: tempfile::TempDir,
    pub dir: PathBuf,
}

impl Lab {
    pub fn up(nodes: usize, extra: &[&str]) -> Lab {
        Self::start(nodes, extra).0
    }

    /// Like [`Lab::up`], the nodes' sudo asking for `password` (`kamo lab up --sudo-password`),
    /// which the lab's settings give as `ansible_become_password`.
    pub fn up_with_sudo_password(nodes: usize, extra: &[&str], password: &str) -> Lab {
        let mut extra = extra.to_vec();
        extra.push("--sudo-password");
        let lab = Self::start_env(nodes, &extra, &[("KAMO_LAB_SUDO_PASSWORD", password)]).0;
        let settings = lab.dir.join("group_vars/all/settings.yml");
        let mut text = std::fs::read_to_string(&settings).unwrap();
        text.push_str(&format!("ansible_become_password: \"{password}\"\n"));
        std::fs::write(&settings, text).unwrap();
        lab
    }

    /// Like [`Lab::up`], also returning what `kamo lab up` printed.
    pub fn start(nodes: usize, extra: &[&str]) -> (Lab, Run) {
        Self::start_env(nodes, extra, &[])
    }

    fn start_env(nodes: usize, extra: &[&str], env: &[(&str, &str)]) -> (Lab, Run) {
        let home = empty_home();
        if extra.contains(&"--with-db") {
            // The database server runs as `postgres`, which must pass through the home
            // (whatever the umask made of it).
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        }
        let dir = home.path().join("lab");
        let lab = Lab { home, dir };
        let mut k = lab.kamo();
        for (name, value) in env {
            k = k.env(name, value);
        }
        let r = k
            .args(["lab", "up", "--nodes", &nodes.to_string(), "--dir"])
            .arg_path(&lab.dir)
            .args(extra)
            .run();
        r.assert_code(0);
        (lab, r)
    }

    pub fn kamo(&self) -> Kamo {
        Kamo::new(self.home.path())
    }

    pub fn inventory(&self) -> PathBuf {
        self.dir.join("inventory.ini")
    }

    /// `kamo run PLAYBOOK -i <the lab's inventory> --state-dir STATE`, to add to and run.
    pub fn run_playbook(&self, playbook: &Path, state: &Path) -> Kamo {
        self.kamo()
            .args(["run"])
            .arg_path(playbook)
            .args(["-i"])
            .arg_path(&self.inventory())
            .args(["--state-dir"])
            .arg_path(state)
    }

    pub fn exec(&self, pattern: &str, extra: &[&str], cmd: &str) -> Run {
        self.kamo()
            .args(["exec", pattern, "-i"])
            .arg_path(&self.inventory())
            .args(["--timeout", "3", "--output", "json"])
            .args(extra)
            .args(["--", cmd])
            .run()
    }

    pub fn lab(&self, args: &[&str]) -> Run {
        self.kamo()
            .args(["lab"])
            .args(args)
            .args(["--dir"])
            .arg_path(&self.dir)
            .run()
    }

    pub fn status(&self) -> Value {
        let r = self.lab(&["status", "--output", "json"]);
        r.assert_code(0);
        serde_json::from_str(&r.stdout).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.dir.join("lab.json").exists() {
            let _ = self.lab(&["down", "--purge"]);
        }
    }
}

/// PIDs of processes whose command line mentions `dir` (the supervisor and every node).
pub fn processes_of(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(c) = std::fs::read(format!("/proc/{pid}/cmdline"))
            && String::from_utf8_lossy(&c).contains(&needle)
        {
            out.push(pid);
        }
    }
    out
}
