//! The state directory is private (issue 10): whatever the umask kamo starts with, every
//! directory it makes there is 0700 and every file 0600. The commands that write state (a
//! `copy`, which keeps manifests; a `run`, which keeps the journal and a run log; an `exec`)
//! run with umask 000, the most permissive, and then every entry of the directory is checked.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::copy::{MAKE_DATA, sh};
use crate::support::lab::Lab;

/// Every entry under `dir` (itself included) whose mode is not 0700 (directories) or 0600
/// (files), with its mode; and how many entries were looked at.
fn offenders(dir: &Path) -> (Vec<String>, usize) {
    let mut bad = Vec::new();
    let mut seen = 0;
    let mut todo = vec![dir.to_path_buf()];
    // Bounded by the directory's size (a handful of entries).
    while let Some(p) = todo.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        seen += 1;
        let mode = meta.permissions().mode() & 0o7777;
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        if mode != want || !(meta.is_dir() || meta.is_file()) {
            bad.push(format!("{} {mode:o} (want {want:o})", p.display()));
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap().flatten() {
                todo.push(e.path());
            }
        }
    }
    (bad, seen)
}

#[test]
fn the_state_directory_is_0700_and_its_files_0600_whatever_the_umask() {
    let lab = Lab::up(2, &[]);
    let state = lab.home.path().join("state");
    let kamo = || lab.kamo().umask(0o000).env("KAMO_STATE_DIR", &state);
    sh(&lab, "node01", MAKE_DATA, "/srv/state-data").assert_code(0);
    kamo()
        .args([
            "copy",
            "node01:/srv/state-data",
            "node02:/srv/state-data",
            "-i",
        ])
        .arg_path(&lab.inventory())
        .run()
        .assert_code(0);
    let pb = lab.home.path().join("site.yml");
    std::fs::write(
        &pb,
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: one\n      command: echo one\n",
    )
    .unwrap();
    kamo()
        .args(["run"])
        .arg_path(&pb)
        .args(["-i"])
        .arg_path(&lab.inventory())
        .run()
        .assert_code(0);
    kamo()
        .args(["exec", "all", "-i"])
        .arg_path(&lab.inventory())
        .args(["--", "true"])
        .run()
        .assert_code(0);
    // The commands did write state: a journal, a run log and the copy's manifests.
    let names: Vec<String> = walkdir(&state);
    for want in [
        "journal",
        "logs/run-",
        ".source.manifest",
        ".target.manifest",
    ] {
        assert!(
            names.iter().any(|n| n.contains(want)),
            "no {want} in the state directory: {names:?}"
        );
    }
    let (bad, seen) = offenders(&state);
    assert!(seen > 5, "{names:?}");
    assert!(
        bad.is_empty(),
        "state entries with the wrong mode:\n  {}",
        bad.join("\n  ")
    );
}

/// The paths under `dir`, relative to it.
fn walkdir(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        if let Ok(rd) = std::fs::read_dir(&p) {
            for e in rd.flatten() {
                let path = e.path();
                out.push(
                    path.strip_prefix(dir)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                );
                todo.push(path);
            }
        }
    }
    out
}
