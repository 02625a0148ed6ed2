//! Shell injection: every module that builds a script is given values (names, paths, data)
//! holding quotes, spaces, `$()`, backticks, `;`, `#` and newlines, and the script is run with
//! the local `/bin/sh` in a sandbox (system tools stubbed, every path inside a temp dir). Had
//! any of those values been read as code, it would have created a file named `CANARY`; none
//! may exist afterwards. Where a module accepts the value, the test also checks that it
//! arrived as data (the file with that name exists, holds that content, the tool got it).
//! A module that refuses such a value at build time (a user or package name) passes too:
//! the value never reached a shell.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::syslib::testkit::Sandbox;
use super::{Flags, build, interpret};
use crate::playbook::model::Module;

/// A hostile file name: no `/`, so it is one path component; its canary is relative (the
/// scripts run in the sandbox directory).
const NAME: &str = "a b'c\"d$(touch CANARY)`touch CANARY`;touch CANARY\ntouch CANARY #x";

/// A hostile value for data and names, with an absolute canary inside `t`.
fn data(t: &str) -> String {
    format!(
        "x' \"y\" $(touch {t}/CANARY) `touch {t}/CANARY`; touch {t}/CANARY\ntouch {t}/CANARY # \\\" '\\''"
    )
}

/// A hostile value on one line (for arguments that must be one line).
fn line(t: &str) -> String {
    data(t).replace('\n', " ")
}

/// A hostile word: no space, newline or `/` (names that modules check), every other shell
/// metacharacter; its canary is relative.
const WORD: &str = "w$(touch${IFS}CANARY)`touch${IFS}CANARY`;touch${IFS}CANARY'\"|&<>#";

/// System tools the modules call: stubbed, each logging its arguments one per line.
const TOOLS: &[&str] = &[
    "useradd",
    "usermod",
    "userdel",
    "groupadd",
    "groupdel",
    "groupmod",
    "chpasswd",
    "getent",
    "apt-get",
    "apt-cache",
    "dpkg",
    "dpkg-query",
    "systemctl",
    "mount",
    "umount",
    "mountpoint",
    "findmnt",
    "sysctl",
    "modprobe",
    "lsmod",
    "hostnamectl",
    "hostname",
    "gpg",
    "curl",
    "wget",
];

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    for t in TOOLS {
        let exit = match *t {
            // "not found" answers, so the scripts go on to the changing branch.
            "getent" | "dpkg-query" | "mountpoint" => 2,
            _ => 0,
        };
        sb.stub(
            t,
            &format!("for a; do printf '%s\\n' \"$a\" >> \"$T/args\"; done; exit {exit}"),
        );
    }
    sb
}

/// Runs a module's script in the sandbox directory; returns the result's failed flag.
fn run(sb: &Sandbox, module: Module, args: &Value) -> Option<super::ModuleResult> {
    let Value::Object(a) = args else {
        unreachable!("test args are objects")
    };
    // Refused before any shell saw it: data never became code.
    let step = build(module, a, Flags::default()).ok()?;
    Some(run_step(sb, module, &step))
}

fn run_step(sb: &Sandbox, module: Module, step: &super::RemoteStep) -> super::ModuleResult {
    let path = format!("{}:/usr/bin:/bin:/usr/sbin:/sbin", sb.bin.display());
    let mut child = Command::new("/bin/sh")
        .arg("-s")
        .current_dir(sb.dir.path())
        .env("PATH", path)
        .env("T", sb.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), step.script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    interpret(
        module,
        &out.stdout,
        &out.stderr,
        out.status.code().map(i64::from),
    )
}

/// Every path under `dir`, symlinks not followed.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

fn assert_no_canary(dir: &Path, case: &str) {
    for e in walk(dir) {
        assert!(
            e.file_name().is_none_or(|n| n != "CANARY"),
            "{case}: a value ran as code (found {})",
            e.display()
        );
    }
}

// One table of cases and its checks read best together.
#[allow(clippy::too_many_lines)]
#[test]
fn hostile_names_paths_and_data_reach_every_module_as_data() {
    let sb = sandbox();
    let t = sb.t();
    let d = data(&t);
    let l = line(&t);
    let w = WORD;
    let p = format!("{t}/{NAME}");
    std::fs::write(format!("{t}/plain.txt"), "x\n").unwrap();
    let cases: Vec<(&str, Module, Value)> = vec![
        (
            "command argv",
            Module::Command,
            json!({"argv": ["touch", p], "chdir": t}),
        ),
        (
            "command creates",
            Module::Command,
            json!({"argv": ["true"], "creates": format!("{p}.c"), "chdir": t}),
        ),
        (
            "shell stdin",
            Module::Shell,
            json!({"_raw_params": "cat > stdin.out", "stdin": d, "chdir": t}),
        ),
        (
            "copy",
            Module::Copy,
            json!({"content": d, "dest": format!("{p}.copy")}),
        ),
        (
            "file directory",
            Module::File,
            json!({"path": format!("{p}.dir"), "state": "directory"}),
        ),
        (
            "file touch",
            Module::File,
            json!({"path": format!("{p}.touch"), "state": "touch"}),
        ),
        (
            "file link",
            Module::File,
            json!({"src": format!("{p}.copy"), "dest": format!("{p}.link"), "state": "link"}),
        ),
        (
            "file absent",
            Module::File,
            json!({"path": format!("{p}.none"), "state": "absent"}),
        ),
        (
            "lineinfile",
            Module::Lineinfile,
            json!({"path": format!("{p}.lines"), "line": l, "create": true}),
        ),
        (
            "lineinfile regexp",
            Module::Lineinfile,
            json!({"path": format!("{t}/plain.txt"), "regexp": l, "line": l}),
        ),
        (
            "blockinfile",
            Module::Blockinfile,
            json!({"path": format!("{p}.block"), "block": d, "create": true, "marker": format!("# {{mark}} {l}")}),
        ),
        (
            "replace",
            Module::Replace,
            json!({"path": format!("{t}/plain.txt"), "regexp": "x", "replace": d}),
        ),
        ("stat", Module::Stat, json!({"path": p})),
        ("slurp", Module::Slurp, json!({"src": format!("{p}.copy")})),
        (
            "fetch",
            Module::Fetch,
            json!({"src": format!("{p}.copy"), "dest": "unused"}),
        ),
        (
            "unarchive",
            Module::Unarchive,
            json!({"src": format!("{p}.tar"), "dest": format!("{p}.dir"), "remote_src": true}),
        ),
        ("apt", Module::Apt, json!({"name": w, "state": "present"})),
        (
            "package",
            Module::Package,
            json!({"name": w, "state": "absent"}),
        ),
        (
            "systemd",
            Module::Systemd,
            json!({"name": w, "state": "started", "enabled": true}),
        ),
        (
            "service",
            Module::Service,
            json!({"name": d, "state": "restarted"}),
        ),
        (
            "sysctl",
            Module::Sysctl,
            json!({"name": format!("net.{w}"), "value": l, "sysctl_file": format!("{p}.sysctl")}),
        ),
        (
            "user",
            Module::User,
            json!({"name": w, "comment": l, "home": format!("{p}.home"), "shell": l}),
        ),
        ("group", Module::Group, json!({"name": w})),
        (
            "mount",
            Module::Mount,
            json!({"path": format!("{p}.mnt"), "src": l, "fstype": "ext4", "opts": w, "state": "present", "fstab": format!("{p}.fstab")}),
        ),
        (
            "wait_for path",
            Module::WaitFor,
            json!({"path": format!("{p}.copy"), "timeout": 1}),
        ),
        (
            "wait_for host",
            Module::WaitFor,
            json!({"host": l, "port": 1, "timeout": 1, "state": "stopped"}),
        ),
    ];
    let mut ran = Vec::new();
    let mut results = String::new();
    for (case, module, args) in &cases {
        if let Some(r) = run(&sb, *module, args) {
            ran.push(*case);
            results.push_str(&format!("{case}: failed={} msg={:?}\n", r.failed, r.msg));
        } else if let Value::Object(a) = args
            && let Err(e) = build(*module, a, Flags::default())
        {
            results.push_str(&format!("{case}: refused: {e}\n"));
        }
        assert_no_canary(sb.dir.path(), case);
    }
    // The value arrived as data where the module took it.
    let read = |suffix: &str| std::fs::read_to_string(format!("{p}{suffix}")).ok();
    assert!(Path::new(&p).exists(), "command argv made the file {p:?}");
    assert_eq!(read(".copy").as_deref(), Some(d.as_str()));
    assert!(Path::new(&format!("{p}.dir")).is_dir());
    assert!(Path::new(&format!("{p}.touch")).exists());
    assert!(Path::new(&format!("{p}.link")).is_symlink());
    assert_eq!(read(".lines"), Some(format!("{l}\n")), "{results}");
    assert!(
        read(".block").is_some_and(|b| b.contains(&d)),
        "{:?}",
        read(".block")
    );
    assert_eq!(
        std::fs::read_to_string(format!("{t}/stdin.out")).unwrap(),
        format!("{d}\n")
    );
    assert!(
        read(".fstab").is_some_and(|f| f.contains(".mnt")),
        "{:?}",
        read(".fstab")
    );
    for must in [
        "command argv",
        "shell stdin",
        "copy",
        "file link",
        "lineinfile",
        "blockinfile",
        "replace",
        "stat",
        "slurp",
        "systemd",
        "sysctl",
        "mount",
        "lineinfile regexp",
        "service",
        "user",
        "group",
        "fetch",
        "wait_for path",
        "wait_for host",
        "file directory",
        "file touch",
        "file absent",
        "command creates",
    ] {
        assert!(ran.contains(&must), "{must} refused the value:\n{results}");
    }
    // Names given to system tools arrived whole, as one argument each.
    let args = std::fs::read_to_string(format!("{t}/args")).unwrap_or_default();
    assert!(args.contains("x' \"y\" $(touch"), "{args}");
}

#[test]
fn a_hostile_kernel_module_name_and_params_stay_data() {
    let sb = sandbox();
    let t = sb.t();
    std::fs::create_dir_all(format!("{t}/etc/modules-load.d")).unwrap();
    std::fs::create_dir_all(format!("{t}/etc/modprobe.d")).unwrap();
    // No spaces or slashes (refused), but every other shell metacharacter.
    let name = "m$(touch${IFS}CANARY)`touch${IFS}CANARY`;touch${IFS}CANARY'\"|&<>";
    let params = format!("a=\"$(touch {t}/CANARY)\" b='`touch {t}/CANARY`;x' c=\\;touch\\ CANARY");
    let a = json!({"name": name, "params": params, "persistent": "present"});
    let Value::Object(a) = a else { unreachable!() };
    let step = super::kernel::modprobe(&a, Flags::default(), &t).unwrap();
    let r = run_step(&sb, Module::Modprobe, &step);
    assert!(!r.failed, "{r:?}");
    assert_no_canary(sb.dir.path(), "modprobe");
    let conf = std::fs::read_to_string(format!("{t}/etc/modules-load.d/{name}.conf")).unwrap();
    assert_eq!(conf.trim(), name);
    let args = std::fs::read_to_string(format!("{t}/args")).unwrap();
    assert!(args.lines().any(|l| l == name), "{args}");
}
