//! How many processes a task's script starts on the node, held by tests.
//!
//! Why: with one long-lived task shell per host, the processes a module's script forks are
//! what a task costs on the node (each fork+exec of a coreutils program is about a
//! millisecond of CPU, on the cores the node's sshd also needs). The file modules were cut
//! from 7-15 processes per task to 1-4 (see BENCHMARKS.md, "Case 2 again: fewer processes
//! per file task"); these tests fail if a change makes them grow back.
//!
//! The count is every process the script's shell creates (forks that exec a program and
//! subshells that do not), taken with `strace -f` around `/bin/sh -s`; strace is needed
//! (`.ci/run` installs it).

#![cfg(test)]

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::Flags;
use super::fsutil::testing::args;
use crate::playbook::model::Module;

/// The processes a script's run created, and the programs they ran.
#[derive(Debug)]
struct Count {
    processes: usize,
    programs: Vec<String>,
}

/// Runs `module` with `a` under strace.
fn count(module: Module, a: &Value, flags: Flags) -> Count {
    use std::io::Write;
    let step = super::build(module, &args(a.clone()), flags).expect("build");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("trace");
    let spawned = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=execve,clone,clone3,fork,vfork"])
        .arg("-o")
        .arg(&log)
        .args(["/bin/sh", "-s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut c = spawned.expect("strace, which these tests need (.ci/run installs it)");
    c.stdin
        .take()
        .unwrap()
        .write_all(step.script.as_bytes())
        .unwrap();
    let out = c.wait_with_output().unwrap();
    let r = super::interpret(
        Module::Ping,
        &out.stdout,
        &out.stderr,
        out.status.code().map(i64::from),
    );
    assert!(!r.failed, "{module:?} {a} failed: {r:?}");
    parse(&log)
}

fn parse(log: &Path) -> Count {
    let text = std::fs::read_to_string(log).unwrap();
    let mut processes = 0;
    let mut programs = Vec::new();
    let mut first_exec = true;
    for line in text.lines() {
        let rest = line.split_once(' ').map_or("", |(_, r)| r.trim_start());
        let call = rest.trim_start_matches("<... ");
        let forked = [
            "clone(",
            "clone3(",
            "fork(",
            "vfork(",
            "clone resumed",
            "clone3 resumed",
            "fork resumed",
            "vfork resumed",
        ]
        .iter()
        .any(|p| call.starts_with(p));
        if forked {
            // A call that blocks (vfork) shows twice: count the line with its result.
            if let Some((_, ret)) = line.rsplit_once("= ")
                && ret.trim().parse::<u32>().is_ok()
            {
                processes += 1;
            }
        } else if let Some(args) = call.strip_prefix("execve(\"") {
            if first_exec {
                first_exec = false; // the shell itself
                continue;
            }
            let prog = args.split('"').next().unwrap_or("");
            programs.push(prog.rsplit('/').next().unwrap_or(prog).to_owned());
        }
    }
    Count {
        processes,
        programs,
    }
}

/// Asserts at most `max` processes and prints the count.
fn at_most(what: &str, c: Count, max: usize) {
    let Count {
        processes,
        programs,
    } = c;
    eprintln!("{what}: {processes} processes, programs {programs:?}");
    assert!(
        processes <= max,
        "{what}: {processes} processes, at most {max} expected (programs {programs:?})"
    );
}

#[test]
fn copy_and_template_start_few_processes() {
    let dir = tempfile::tempdir().unwrap();
    for module in [Module::Copy, Module::Template] {
        let f = dir.path().join(format!("{module:?}.conf"));
        let a =
            json!({"dest": f.display().to_string(), "content": "name=node001\n", "mode": "0644"});
        let plain = json!({"dest": f.display().to_string(), "content": "name=node001\n"});
        at_most(
            &format!("{module:?} new file"),
            count(module, &a, Flags::default()),
            2,
        );
        at_most(
            &format!("{module:?} unchanged"),
            count(module, &a, Flags::default()),
            3,
        );
        at_most(
            &format!("{module:?} unchanged, no mode"),
            count(module, &plain, Flags::default()),
            3,
        );
        let b = json!({"dest": f.display().to_string(), "content": "name=node002\n"});
        at_most(
            &format!("{module:?} changed, same size"),
            count(module, &b, Flags::default()),
            6,
        );
        let c = json!({"dest": f.display().to_string(), "content": "other\n"});
        at_most(
            &format!("{module:?} changed, other size"),
            count(module, &c, Flags::default()),
            4,
        );
        std::fs::remove_file(&f).unwrap();
        at_most(
            &format!("{module:?} new file, no mode"),
            count(module, &plain, Flags::default()),
            2,
        );
    }
}

#[test]
fn lineinfile_starts_few_processes() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("port.conf");
    let a = json!({"path": f.display().to_string(), "regexp": "^port=", "line": "port=8080", "create": true});
    at_most(
        "lineinfile new file",
        count(Module::Lineinfile, &a, Flags::default()),
        2,
    );
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "port=8080\n");
    at_most(
        "lineinfile unchanged",
        count(Module::Lineinfile, &a, Flags::default()),
        7,
    );
    let b = json!({"path": f.display().to_string(), "regexp": "^port=", "line": "port=9090"});
    at_most(
        "lineinfile changed",
        count(Module::Lineinfile, &b, Flags::default()),
        8,
    );
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "port=9090\n");
    let present = json!({"path": f.display().to_string(), "line": "port=9090"});
    at_most(
        "lineinfile line present",
        count(Module::Lineinfile, &present, Flags::default()),
        6,
    );
    let g = dir.path().join("new/dir/port.conf");
    let c =
        json!({"path": g.display().to_string(), "line": "port=1", "create": true, "mode": "0600"});
    at_most(
        "lineinfile new file, new directory",
        count(Module::Lineinfile, &c, Flags::default()),
        3,
    );
    assert_eq!(std::fs::read_to_string(&g).unwrap(), "port=1\n");
    assert_eq!(super::fsutil::testing::mode_of(&g), 0o600);
}
