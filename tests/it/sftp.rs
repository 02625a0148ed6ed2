//! `copy` and `template` over SFTP (src/engine/put.rs) against the scripts they stand in for:
//! the same playbook on the same starting files, once with SFTP and once with
//! `KAMO_SFTP=0`, must give the same results and leave the same files, and the cases the
//! SFTP path does not do (a link, a directory, a missing directory) must reach the script.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::Value;

use crate::support::kamo::{Kamo, Run, empty_home};
use crate::support::sshd::{SshCluster, TEST_USER};

const PLAY: &str = r##"
- hosts: nodes
  gather_facts: false
  tasks:
    - {copy: {dest: "{{ base }}/new_mode", content: "a=1\n", mode: "0640"}, register: r1}
    - {copy: {dest: "{{ base }}/new_plain", content: "plain\n"}, register: r2}
    - {copy: {dest: "{{ base }}/same", content: "same\n", mode: "0644"}, register: r3}
    - {copy: {dest: "{{ base }}/same_size", content: "BBBB\n"}, register: r4}
    - {copy: {dest: "{{ base }}/keep_mode", content: "longer content\n"}, register: r5}
    - {copy: {dest: "{{ base }}/mode_only", content: "m\n", mode: "0600"}, register: r6}
    - {copy: {dest: "{{ base }}/theirs", content: "new owner kept\n"}, register: r7}
    - {copy: {dest: "{{ base }}/link", content: "via link\n"}, register: r8}
    - {copy: {dest: "{{ base }}/adir", content: "x\n"}, register: r9, ignore_errors: true}
    - {copy: {dest: "{{ base }}/missing/f", content: "x\n"}, register: r10, ignore_errors: true}
    - {copy: {dest: "{{ base }}/setuid", content: "#!/bin/sh\n", mode: "4755"}, register: r11}
    - {template: {src: "t.j2", dest: "{{ base }}/templated", mode: "0644"}, register: r12}
    - {copy: {dest: "{{ base }}/empty", content: ""}, register: r13}
    - {copy: {dest: "{{ base }}/big", content: "{{ 'x' * 100000 }}"}, register: r14}
    - {copy: {dest: "{{ base }}/big_same", content: "{{ 'y' * 100000 }}"}, register: r15}
    - {copy: {dest: "{{ base }}/it's $(id) b", content: "odd name\n"}, register: r16}
    - {file: {path: "{{ base }}/d1/d2/d3", state: directory, mode: "0750"}, register: r17}
    - {file: {path: "{{ base }}/dmode", state: directory, mode: "0700"}, register: r18}
    - {file: {path: "{{ base }}/dsame", state: directory, mode: "0755"}, register: r19}
    - {file: {path: "{{ base }}/same", state: directory}, register: r20, ignore_errors: true}
    - {file: {path: "{{ base }}/dlink", state: directory, mode: "0711"}, register: r21}
    - {file: {path: "{{ base }}/dplain", state: directory}, register: r22}
    - {file: {path: "{{ base }}/dsgid", state: directory, mode: "0755"}, register: r23}
    - {lineinfile: {path: "{{ base }}/li_new", regexp: "^port=", line: "port=8080", create: true}, register: r24}
    - {lineinfile: {path: "{{ base }}/li_mode", line: "a=1", create: true, mode: "0600"}, register: r25}
    - {lineinfile: {path: "{{ base }}/same_size", regexp: "^B", line: "BBBB", create: true}, register: r26}
    - {lineinfile: {path: "{{ base }}/li_missing/f", line: "x", create: true}, register: r27}
    - debug:
        msg: "{{ [r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15, r16,
                 r17, r18, r19, r20, r21, r22, r23, r24, r25, r26, r27] }}"
"##;

/// The tasks the SFTP path finishes itself: r8-r10, r20, r21, r23, r26 (an existing file
/// to edit) and r27 (a missing directory) go to the script. (r2, a new file without `mode`,
/// needs the login's umask: kamo starts the host's task shell to learn it.)
const OVER_SFTP: usize = 19;

/// [`TEST_USER`]'s uid (the cluster made the user).
fn test_uid() -> u32 {
    let out = std::process::Command::new("id")
        .args(["-u", TEST_USER])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The starting files, the same for both runs.
fn seed(base: &Path) {
    fs::create_dir_all(base).unwrap();
    fs::set_permissions(base, fs::Permissions::from_mode(0o755)).unwrap();
    let file = |name: &str, text: &str, mode: u32| {
        let p = base.join(name);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    file("same", "same\n", 0o644);
    file("same_size", "AAAA\n", 0o644);
    file("keep_mode", "old\n", 0o751);
    file("mode_only", "m\n", 0o644);
    file("theirs", "old\n", 0o640);
    file("target", "old\n", 0o644);
    file("big_same", &"y".repeat(100_000), 0o644);
    std::os::unix::fs::symlink("target", base.join("link")).unwrap();
    let dir = |name: &str, mode: u32| {
        let p = base.join(name);
        fs::create_dir(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    dir("adir", 0o755);
    dir("dmode", 0o755);
    dir("dsame", 0o755);
    dir("dtarget", 0o755);
    dir("dsgid", 0o2755);
    std::os::unix::fs::symlink("dtarget", base.join("dlink")).unwrap();
    let uid = test_uid();
    std::os::unix::fs::chown(base.join("theirs"), Some(uid), Some(uid)).unwrap();
}

/// Every entry below `base`, by path: kind, mode, owner, content (links: their target).
/// Links are not followed; bounded: each directory is listed once.
fn tree(base: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![base.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let what = if m.file_type().is_symlink() {
                format!("link -> {}", fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                todo.push(p.clone());
                format!("dir {:o} {}:{}", m.mode() & 0o7777, m.uid(), m.gid())
            } else {
                format!(
                    "file {:o} {}:{} {:?}",
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid(),
                    fs::read(&p).unwrap()
                )
            };
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            out.insert(rel, what);
        }
    }
    out
}

fn run(c: &SshCluster, inv: &Path, play: &Path, base: &Path, sftp: bool) -> Run {
    let home = empty_home();
    let mut k = Kamo::new(home.path())
        .args(["run", "-vv"])
        .arg_path(play)
        .args(["-i"])
        .arg_path(inv)
        .args(["--known-hosts"])
        .arg_path(&c.known_hosts)
        .args(["--output", "json", "-e"])
        .arg_path(Path::new(&format!("base={}", base.display())));
    if !sftp {
        k = k.env("KAMO_SFTP", "0");
    }
    k.run()
}

/// The registered results the debug task printed, with `base` written as `BASE`.
fn results(run: &Run, base: &Path) -> Vec<Value> {
    let ev = run
        .json_lines()
        .into_iter()
        .rev()
        .find(|v| v["data"]["msg"].is_array())
        .unwrap_or_else(|| panic!("no debug output: {run:?}"));
    let text = ev["data"]["msg"]
        .to_string()
        .replace(&base.display().to_string(), "BASE");
    let mut v: Vec<Value> = serde_json::from_str(&text).unwrap();
    for r in &mut v {
        if let Value::Object(m) = r {
            // Names the script, the same for both paths; stderr differs by design.
            m.remove("script_sha256");
        }
    }
    v
}

#[test]
fn copy_and_template_over_sftp_match_their_scripts() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory("\n[nodes:vars]\nansible_user=root\n");
    let dir = tempfile::tempdir().unwrap();
    let play = dir.path().join("play.yml");
    fs::write(&play, PLAY).unwrap();
    fs::create_dir(dir.path().join("templates")).unwrap();
    fs::write(
        dir.path().join("templates/t.j2"),
        "host={{ inventory_hostname }}\n",
    )
    .unwrap();

    let (a, b) = (dir.path().join("sftp"), dir.path().join("script"));
    seed(&a);
    seed(&b);
    let ino = |p: &Path| fs::metadata(p).unwrap().ino();
    let (mode_only_a, mode_only_b) = (ino(&a.join("mode_only")), ino(&b.join("mode_only")));

    let ra = run(&c, &inv, &play, &a, true);
    ra.assert_code(0);
    let rb = run(&c, &inv, &play, &b, false);
    rb.assert_code(0);

    // Both paths agree, result by result and file by file.
    let (res_a, res_b) = (results(&ra, &a), results(&rb, &b));
    assert_eq!(res_a.len(), 27);
    for (i, (x, y)) in res_a.iter().zip(&res_b).enumerate() {
        let (mut x, mut y) = (x.clone(), y.clone());
        for v in [&mut x, &mut y] {
            if let Value::Object(m) = v {
                m.remove("stderr");
                m.remove("stderr_lines");
            }
        }
        assert_eq!(x, y, "task r{} differs (left: SFTP, right: script)", i + 1);
    }
    assert_eq!(tree(&a), tree(&b));

    // And what they agree on is right.
    let r = |i: usize| &res_a[i - 1];
    assert_eq!(
        (r(1)["changed"].clone(), r(1)["mode"].clone()),
        (true.into(), "0640".into())
    );
    assert_eq!(r(3)["changed"], false);
    assert_eq!(
        (r(4)["changed"].clone(), r(4)["size"].clone()),
        (true.into(), 5.into())
    );
    assert_eq!(r(5)["mode"], "0751", "an existing file keeps its mode");
    assert_eq!(r(6)["changed"], true);
    assert_eq!(
        ino(&a.join("mode_only")),
        mode_only_a,
        "a mode change is a chmod"
    );
    assert_eq!(ino(&b.join("mode_only")), mode_only_b);
    assert_eq!(r(9)["failed"], true);
    assert!(
        r(9)["msg"].as_str().unwrap().contains("is a directory"),
        "{}",
        r(9)
    );
    assert_eq!(r(10)["failed"], true);
    assert!(
        r(10)["msg"].as_str().unwrap().contains("does not exist"),
        "{}",
        r(10)
    );
    assert_eq!(r(11)["mode"], "4755");
    assert_eq!(r(15)["changed"], false);
    let t = tree(&a);
    let uid = test_uid();
    assert!(
        t["theirs"].starts_with(&format!("file 640 {uid}:{uid} ")),
        "{}",
        t["theirs"]
    );
    assert!(
        t["link"].starts_with("file "),
        "the link is replaced: {}",
        t["link"]
    );
    assert!(
        t["target"].contains(&format!("{:?}", b"old\n")),
        "{}",
        t["target"]
    );
    assert!(t["setuid"].starts_with("file 4755 0:0 "), "{}", t["setuid"]);
    assert!(t["templated"].contains(&format!("{:?}", b"host=node01\n")));
    assert_eq!(t["d1/d2/d3"], "dir 750 0:0");
    assert_eq!(t["d1"], "dir 755 0:0", "parents get the default mode");
    assert_eq!(t["dmode"], "dir 700 0:0");
    assert_eq!(
        (r(17)["changed"].clone(), r(19)["changed"].clone()),
        (true.into(), false.into())
    );
    assert_eq!(r(20)["failed"], true);
    assert!(
        r(20)["msg"].as_str().unwrap().contains("not a directory"),
        "{}",
        r(20)
    );
    assert_eq!(t["dtarget"], "dir 711 0:0", "a link's target gets the mode");
    assert!(
        t["li_new"].ends_with(&format!("{:?}", b"port=8080\n")),
        "{}",
        t["li_new"]
    );
    assert!(
        t["li_mode"].starts_with("file 600 0:0 "),
        "{}",
        t["li_mode"]
    );
    assert_eq!(
        (r(24)["changed"].clone(), r(26)["changed"].clone()),
        (true.into(), false.into())
    );
    assert_eq!(r(24)["path"], "BASE/li_new");
    assert!(
        t["li_missing/f"].ends_with(&format!("{:?}", b"x\n")),
        "{}",
        t["li_missing/f"]
    );
    assert_eq!(
        t.keys().filter(|k| k.contains(".kamo")).count(),
        0,
        "no temp file left"
    );

    // The SFTP run did those tasks over SFTP; the other never used it.
    let over = |run: &Run| run.stderr.matches("done over SFTP").count();
    assert_eq!(over(&ra), OVER_SFTP, "{}", ra.stderr);
    assert_eq!(over(&rb), 0);
    // `-vv` names what was written, never its content (a template may hold secrets).
    for content in [&b"longer content\n"[..], b"host=node01\n"] {
        let shown = [
            String::from_utf8_lossy(content).into_owned(),
            format!("{:?}", content.to_vec()),
        ];
        for s in shown {
            assert!(!ra.stderr.contains(s.trim_end()), "{s:?} in the log");
        }
    }

    // A second SFTP run changes nothing.
    let again = run(&c, &inv, &play, &a, true);
    again.assert_code(0);
    let changed: Vec<usize> = results(&again, &a)
        .iter()
        .enumerate()
        .filter(|(_, v)| v["changed"] == true)
        .map(|(i, _)| i + 1)
        .collect();
    // r23: `chmod 0755` keeps a directory's setgid bit, so the script finds its mode
    // different on every run (the SFTP path hands such a directory to the script).
    assert_eq!(changed, vec![23]);
}
