//! Hostile remote output and commands that never end, against real sshd peers: what a node
//! prints must not drive the operator's terminal, must not take the workstation's memory,
//! and a command past its time limit is ended on the node, not only abandoned.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::kamo::{Kamo, Run, empty_home, exec_all};
use crate::support::sshd::SshCluster;

/// Bytes that would drive a terminal: ESC (CSI/OSC), BEL, CR, backspace, DEL, C1 CSI.
const TERMINAL_CONTROLS: &[u8] = &[0x1b, 0x07, b'\r', 0x08, 0x7f, 0x9b];

/// A command printing an OSC window title, a screen clear, a CR overwrite and colour, on both
/// streams, in UTF-8 and as a raw C1 CSI byte.
const HOSTILE_PRINT: &str = r"printf '\033]0;pwned\007\033[2J\033[31mred\rX\010\177\302\233Y\n'; printf '\033[1Aerr\033[K\n' >&2";

/// `kamo exec all` on the cluster's hosts, with its known_hosts.
fn exec(c: &SshCluster, inv: &Path, extra: &[&str], cmd: &str) -> Run {
    exec_all(&c.known_hosts, inv, extra, cmd)
}

fn assert_no_controls(what: &str, text: &str) {
    let bad: Vec<u8> = text
        .bytes()
        .filter(|b| TERMINAL_CONTROLS.contains(b))
        .collect();
    assert!(
        bad.is_empty() && !text.contains('\u{9b}'),
        "{what} passes terminal controls {bad:x?} through: {text:?}"
    );
}

/// Hosts' processes whose command line contains `needle` (the sshd peers run on this machine).
fn processes_with(needle: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            found.push((pid, cmd));
        }
    }
    found
}

/// Waits (bounded, 5 s) until no process has `needle` on its command line; returns the
/// survivors, after ending them (they are this test's own) so a failure leaves nothing behind.
fn survivors(needle: &str) -> Vec<(i32, String)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_with(needle);
        if left.is_empty() || Instant::now() >= deadline {
            for (pid, _) in &left {
                // SAFETY: kill(2) on a PID this test's command started.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One sshd host, its inventory, a home for kamo and the playbook `text` in it.
fn one_host_playbook(
    text: &str,
) -> (
    SshCluster,
    std::path::PathBuf,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    let c = SshCluster::start(1);
    let inv = c.write_inventory("");
    let home = empty_home();
    let pb = home.path().join("site.yml");
    fs::write(&pb, text).unwrap();
    (c, inv, home, pb)
}

/// A sleep length no other test uses, so its processes can be found by command line.
fn unique_secs() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    700_000 + u64::from(nanos % 200_000) * 3 + u64::from(std::process::id() % 3)
}

#[test]
fn escape_sequences_from_a_node_are_escaped_in_exec_text_and_json() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory("");
    let run = exec(&c, &inv, &[], HOSTILE_PRINT);
    run.assert_code(0);
    assert_no_controls("exec text stdout", &run.stdout);
    assert_no_controls("exec text stderr", &run.stderr);
    // Escaped, not dropped: the operator can still see what the node printed.
    assert!(run.stdout.contains(r"\u{1b}]0;pwned\u{7}"), "{run:?}");
    assert!(run.stdout.contains(r"\u{1b}[1Aerr"), "{run:?}");

    let run = exec(&c, &inv, &["--output", "json"], HOSTILE_PRINT);
    run.assert_code(0);
    // JSON escapes control characters itself; the values decode to exactly what was printed.
    assert_no_controls("exec json", &run.stdout);
    let r = run.host("node01");
    assert_eq!(
        r["stdout"],
        "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31mred\rX\u{8}\u{7f}\u{9b}Y\n"
    );
    assert_eq!(r["stderr"], "\u{1b}[1Aerr\u{1b}[K\n");
}

#[test]
fn escape_sequences_in_a_failing_task_are_escaped_in_text_and_json() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory("");
    let home = empty_home();
    let pb = home.path().join("site.yml");
    fs::write(
        &pb,
        format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: hostile\n      shell: |\n        {HOSTILE_PRINT}\n        exit 3\n"
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        Kamo::new(home.path())
            .run_playbook(&pb, &inv, &c.known_hosts)
            .args(extra)
            .run()
    };
    let text = run(&[]);
    text.assert_code(2);
    assert_no_controls("run text stdout", &text.stdout);
    assert_no_controls("run text stderr", &text.stderr);
    assert!(text.stdout.contains(r"\u{1b}]0;pwned"), "{text:?}");
    let json = run(&["--output", "json"]);
    json.assert_code(2);
    assert_no_controls("run json", &json.stdout);
    let failed: Vec<Value> = json
        .json_lines()
        .into_iter()
        .filter(|l| l["host"] == "node01" && l["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{json:?}");
    let out = failed[0].to_string();
    assert!(out.contains(r"\u001b]0;pwned\u0007"), "{out}");
}

#[test]
fn binary_junk_and_a_last_line_without_newline_arrive_whole_and_safe() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory("");
    // Every byte value, invalid UTF-8 included, then a line with no newline.
    let cmd = r#"i=0; while [ $i -lt 256 ]; do printf "\\$(printf %o $i)"; i=$((i+1)); done; printf 'tail-without-newline'"#;
    let run = exec(&c, &inv, &[], cmd);
    run.assert_code(0);
    assert_no_controls("text", &run.stdout);
    assert!(
        run.stdout.contains("tail-without-newline\n"),
        "the last line is shown, ended: {run:?}"
    );
    let run = exec(&c, &inv, &["--output", "json"], cmd);
    run.assert_code(0);
    let out = run.host("node01")["stdout"].as_str().unwrap().to_owned();
    assert!(out.ends_with("tail-without-newline"), "{out:?}");
    assert!(
        out.contains('\u{fffd}'),
        "invalid UTF-8 is replaced: {out:?}"
    );
    assert!(out.starts_with("\0\u{1}\u{2}"), "{out:?}");
}

/// Peak RSS in KiB, from `/usr/bin/time -f` on kamo's stderr.
fn peak_kib(run: &Run) -> u64 {
    run.stderr
        .lines()
        .find_map(|l| l.strip_prefix("MAXRSS_KIB="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no MAXRSS line: {run:?}"))
}

/// What the node prints in the memory tests: 400 MB, then an end marker.
const FLOOD: &str = "head -c 400000000 /dev/zero | tr '\\0' x; echo; echo END-OF-FLOOD";
/// The bound the tests assert on kamo's peak memory: far below the 400 MB printed.
const PEAK_BOUND_KIB: u64 = 160 * 1024;

#[test]
fn hundreds_of_megabytes_of_stdout_keep_exec_memory_bounded() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory("");
    let home = empty_home();
    let run = Kamo::via(home.path(), &["/usr/bin/time", "-f", "MAXRSS_KIB=%M"])
        .args(["exec", "all", "-i"])
        .arg_path(&inv)
        .args(["--known-hosts"])
        .arg_path(&c.known_hosts)
        .args(["--output", "json", "--", FLOOD])
        .run();
    run.assert_code(0);
    let peak = peak_kib(&run);
    eprintln!("kamo peak RSS: {peak} KiB");
    assert!(
        peak < PEAK_BOUND_KIB,
        "kamo peaked at {peak} KiB for 400 MB of output"
    );
    let out = run
        .json_lines()
        .into_iter()
        .find(|l| l["host"] == "node01")
        .unwrap();
    let out = out["stdout"].as_str().unwrap();
    assert!(out.len() < 9 << 20, "{} bytes kept", out.len());
    assert!(out.contains("bytes of output not kept here]"));
    assert!(out.ends_with("END-OF-FLOOD\n"), "the tail is kept");
}

#[test]
fn hundreds_of_megabytes_from_a_task_keep_memory_and_the_journal_bounded() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory("");
    let home = empty_home();
    let pb = home.path().join("site.yml");
    fs::write(
        &pb,
        format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: flood\n      shell: |\n        {FLOOD}\n"
        ),
    )
    .unwrap();
    let state = home.path().join("state");
    let run = Kamo::via(home.path(), &["/usr/bin/time", "-f", "MAXRSS_KIB=%M"])
        .run_playbook(&pb, &inv, &c.known_hosts)
        .args(["--state-dir"])
        .arg_path(&state)
        .args(["--output", "json"])
        .run();
    run.assert_code(0);
    let peak = peak_kib(&run);
    eprintln!("kamo peak RSS: {peak} KiB");
    assert!(
        peak < PEAK_BOUND_KIB,
        "kamo peaked at {peak} KiB for 400 MB of output"
    );
    let show = Kamo::new(home.path())
        .args(["show", "latest", "--output", "json", "--state-dir"])
        .arg_path(&state)
        .run();
    show.assert_code(0);
    let v: Value = serde_json::from_str(&show.stdout).unwrap_or_else(|e| panic!("{e}: {show:?}"));
    // What the journal was told: the bounded part kamo kept (8 MiB), not the 400 MB printed.
    let size = find_key(&v, "stdout_size").and_then(Value::as_u64).unwrap();
    assert!(size <= 8 << 20 | 4096, "{size}");
    let log = Kamo::new(home.path())
        .args(["log", "latest", "node01", "flood", "--state-dir"])
        .arg_path(&state)
        .run();
    log.assert_code(0);
    // The journal keeps 256 KiB of it, and says so.
    assert!(log.stdout.len() < 300 * 1024, "{} bytes", log.stdout.len());
    assert!(log.stdout.contains("xxxxxxxx"), "{}", &log.stdout[..200]);
    assert!(
        log.stdout
            .contains(&format!("[stdout cut at {} of {size} bytes]", 256 * 1024)),
        "{}",
        &log.stdout[log.stdout.len() - 300..]
    );
}

fn find_key<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m
            .get(key)
            .or_else(|| m.values().find_map(|x| find_key(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}

#[test]
fn task_timeout_ends_an_exec_command_and_its_children_on_the_node() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory("");
    let n = unique_secs();
    // A child in the background and one in the foreground: both must end.
    let cmd = format!("sleep {n} & sleep {}; wait", n + 1);
    let start = Instant::now();
    let run = exec(&c, &inv, &["--task-timeout", "2", "--output", "json"], &cmd);
    run.assert_code(2);
    assert!(start.elapsed() < Duration::from_secs(20), "{run:?}");
    let r = run.host("node01");
    assert_eq!(r["status"], "failed");
    assert!(
        r["error"].as_str().unwrap().contains("timed out after 2s"),
        "{r}"
    );
    let left = survivors(&format!("sleep {n}"));
    assert!(left.is_empty(), "still running on the node: {left:?}");
    let left = survivors(&format!("sleep {}", n + 1));
    assert!(left.is_empty(), "still running on the node: {left:?}");
}

#[test]
fn a_task_timeout_keyword_and_task_timeout_flag_end_the_command_on_the_node() {
    let c = SshCluster::start(2);
    let inv = c.write_inventory("");
    let home = empty_home();
    let n = unique_secs();
    let pb = home.path().join("site.yml");
    fs::write(
        &pb,
        format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: own timeout\n      shell: sleep {n} & sleep {}; wait\n      timeout: 2\n",
            n + 1
        ),
    )
    .unwrap();
    let pb2 = home.path().join("site2.yml");
    fs::write(
        &pb2,
        format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: flag timeout\n      command: sleep {}\n",
            n + 2
        ),
    )
    .unwrap();
    let run = |pb: &Path, extra: &[&str]| {
        Kamo::new(home.path())
            .run_playbook(pb, &inv, &c.known_hosts)
            .args(["--output", "json"])
            .args(extra)
            .run()
    };
    let start = Instant::now();
    let r = run(&pb, &[]);
    r.assert_code(2);
    assert!(start.elapsed() < Duration::from_secs(30), "{r:?}");
    assert!(
        r.stdout.contains("timed out after 2s (`timeout:`)"),
        "{r:?}"
    );
    for s in [n, n + 1] {
        let left = survivors(&format!("sleep {s}"));
        assert!(left.is_empty(), "still running on the node: {left:?}");
    }
    let start = Instant::now();
    let r = run(&pb2, &["--task-timeout", "2"]);
    r.assert_code(2);
    assert!(start.elapsed() < Duration::from_secs(30), "{r:?}");
    assert!(
        r.stdout.contains("timed out after 2s (--task-timeout)"),
        "{r:?}"
    );
    let recap = r.json_lines().pop().unwrap();
    assert_eq!(recap["event"], "recap");
    let left = survivors(&format!("sleep {}", n + 2));
    assert!(left.is_empty(), "still running on the node: {left:?}");
}

/// The task shell (src/transport/shell.rs): tasks of one host run in turn in one long-lived
/// shell, yet each in a process group of its own: a time limit ends the task that ran over
/// it (even one that ignores TERM) and not a daemon an earlier task left behind; the next
/// task gets a new shell. `KAMO_TASK_SHELL=0` gives every task a channel of its own.
#[test]
fn the_task_shell_keeps_tasks_apart_and_a_timeout_ends_only_its_task() {
    let n = unique_secs();
    let (c, inv, home, pb) = one_host_playbook(&format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n\
             \x20   - name: p1\n      shell: echo $PPID\n\
             \x20   - name: daemon\n      shell: nohup sleep {n} >/dev/null 2>&1 &\n\
             \x20   - name: p2\n      shell: echo $PPID; echo to-stderr >&2\n\
             \x20   - name: stubborn\n      shell: trap '' TERM; sleep {} & wait; wait\n      timeout: 2\n      ignore_errors: true\n\
             \x20   - name: p3\n      shell: echo $PPID\n",
        n + 1
    ));
    let run = |env_off: bool| {
        let mut k = Kamo::new(home.path());
        if env_off {
            k = k.env("KAMO_TASK_SHELL", "0");
        }
        k.run_playbook(&pb, &inv, &c.known_hosts)
            .args(["--output", "json"])
            .run()
    };
    let parents = |r: &crate::support::kamo::Run| -> Vec<String> {
        r.json_lines()
            .iter()
            .filter(|e| e["event"] == "host_result" && e["task"].as_str().unwrap().starts_with('p'))
            .map(|e| e["stdout"].as_str().unwrap().trim().to_owned())
            .collect()
    };
    // After the run: the task that ignores TERM is gone, the daemon is not.
    let check_after = |r: &crate::support::kamo::Run| {
        let left = survivors(&format!("sleep {}", n + 1));
        assert!(
            left.is_empty(),
            "the task that ignores TERM still runs: {left:?}"
        );
        let daemon = processes_with(&format!("sleep {n}"));
        assert_eq!(
            daemon.len(),
            1,
            "the earlier task's daemon was ended too: {r:?}"
        );
        for (pid, _) in daemon {
            // SAFETY: kill(2) on a PID this test's playbook started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    };
    let r = run(false);
    r.assert_code(0);
    assert!(
        r.stdout.contains("timed out after 2s (`timeout:`)"),
        "{r:?}"
    );
    let p = parents(&r);
    assert_eq!(p.len(), 3, "{r:?}");
    assert_eq!(p[0], p[1], "one shell ran the tasks in turn: {r:?}");
    assert_ne!(
        p[1], p[2],
        "the timeout ended that shell; a new one ran p3: {r:?}"
    );
    let stderr_of_p2 = r
        .json_lines()
        .into_iter()
        .find(|e| e["event"] == "host_result" && e["task"] == "p2")
        .unwrap();
    assert_eq!(stderr_of_p2["stderr"], "to-stderr\n", "{r:?}");
    check_after(&r);
    let r = run(true);
    r.assert_code(0);
    let p = parents(&r);
    assert_ne!(p[0], p[1], "KAMO_TASK_SHELL=0: a channel per task: {r:?}");
    // (How a channel's command is ended at its limit is the exec tests' subject.)
    survivors(&format!("sleep {}", n + 1));
    survivors(&format!("sleep {n}"));
}

/// A task can leave a background process that writes to the task shell's output after the
/// task ended. That late output, arriving while the shell is idle, is a leftover, not the
/// shell's end: the next task still runs in the same shell, and the leftover is not taken for
/// its output.
#[test]
fn late_output_of_an_earlier_task_does_not_end_the_idle_task_shell() {
    let n = unique_secs();
    let (c, inv, home, pb) = one_host_playbook(&format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n\
             \x20   - name: p1\n      shell: echo $PPID; (sleep 1; echo LATE-{n}; echo LATE-ERR-{n} >&2) &\n\
             \x20   - name: wait\n      pause:\n        seconds: 3\n\
             \x20   - name: p2\n      shell: echo $PPID\n"
    ));
    let r = Kamo::new(home.path())
        .run_playbook(&pb, &inv, &c.known_hosts)
        .args(["--output", "json"])
        .run();
    r.assert_code(0);
    let outs: Vec<String> = r
        .json_lines()
        .iter()
        .filter(|e| e["event"] == "host_result" && e["task"].as_str().unwrap().starts_with('p'))
        .map(|e| e["stdout"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(outs.len(), 2, "{r:?}");
    assert_eq!(
        outs[0].lines().next(),
        outs[1].lines().next(),
        "the late output ended the idle shell; p2 ran in a new one: {r:?}"
    );
    assert!(!outs[1].contains("LATE"), "{r:?}");
}

/// Runs `kamo exec all -b --task-timeout 2 ... -- CMD` and checks the verdict.
fn become_exec_times_out(k: Kamo, inv: &Path, extra: &[&str], cmd: &str) {
    let start = Instant::now();
    let run = k
        .args([
            "exec",
            "all",
            "-b",
            "--task-timeout",
            "2",
            "--output",
            "json",
            "-i",
        ])
        .arg_path(inv)
        .args(extra)
        .args(["--", cmd])
        .run();
    run.assert_code(2);
    assert!(start.elapsed() < Duration::from_secs(20), "{run:?}");
    assert!(run.stdout.contains("timed out after 2s"), "{run:?}");
}

/// Waits (bounded, 30 s) until a process's command line starts with `needle` (kamo's own,
/// which holds the command too, does not).
fn wait_for_process(needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_with(needle)
        .iter()
        .any(|(_, c)| c.starts_with(needle))
    {
        assert!(Instant::now() < deadline, "{needle:?} never started");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// With `become`, sudo runs the command in a session of its own (`Defaults use_pty`, as
/// Debian and Ubuntu ship it) and as root, which the login user's sshd cannot signal: the
/// KILL that follows TERM at a time limit reaches sudo only. A become command that ignores
/// TERM must still end, with its children, at `timeout:`, at `--task-timeout` and on Ctrl-C
/// (issue 10), on a `kamo lab` node (passwordless sudo), whether sudo runs it on a pty (in a
/// session of its own) or not (in sudo's process group, as root).
#[test]
fn a_become_command_that_ignores_term_ends_at_its_limit_on_a_lab_node() {
    let lab = crate::support::lab::Lab::up(1, &[]);
    let n = unique_secs();
    let pb = lab.home.path().join("stubborn.yml");
    fs::write(
        &pb,
        format!(
            "- hosts: all\n  gather_facts: false\n  become: true\n  tasks:\n    - name: stubborn\n      shell: trap '' TERM; sleep {n} & sleep {}; wait\n      timeout: 2\n",
            n + 1
        ),
    )
    .unwrap();
    let start = Instant::now();
    let r = lab
        .run_playbook(&pb, &lab.home.path().join("state"))
        .args(["--output", "json"])
        .run();
    r.assert_code(2);
    assert!(start.elapsed() < Duration::from_secs(30), "{r:?}");
    assert!(
        r.stdout.contains("timed out after 2s (`timeout:`)"),
        "{r:?}"
    );
    for s in [n, n + 1] {
        let left = survivors(&format!("sleep {s}"));
        assert!(
            left.is_empty(),
            "`timeout:`: still running on the node: {left:?}"
        );
    }

    become_exec_times_out(
        lab.kamo(),
        &lab.inventory(),
        &[],
        &format!("trap '' TERM; sleep {}", n + 2),
    );
    let left = survivors(&format!("sleep {}", n + 2));
    assert!(
        left.is_empty(),
        "--task-timeout: still running on the node: {left:?}"
    );

    // sudo on a terminal (as from an interactive login; newer sudo does it without one):
    // with `use_pty` it runs the command on a pty of its own, in a session of its own. A
    // `sudo` of the node's own (its /usr/local/bin, first on the PATH) gives it one: a
    // controlling terminal and stdout/stderr on a pty, stdin the channel's pipe as it is for
    // kamo (which asks sshd for no terminal; sudo passes a piped stdin through as a pipe,
    // and kamo exec sends its command there).
    let install = lab.exec(
        "all",
        &["-b"],
        "printf '%s\\n' '#!/usr/bin/python3' 'import os, pty, sys' \
         'os.dup2(0, 3)' 'pid, fd = pty.fork()' \
         'if pid == 0:' '    os.dup2(3, 0); os.close(3)' \
         '    os.execv(\"/usr/bin/sudo\", [\"sudo\"] + sys.argv[1:])' \
         'os.close(3)' 'while True:' \
         '    try: data = os.read(fd, 65536)' '    except OSError: break' \
         '    if not data: break' \
         '    sys.stdout.buffer.write(data); sys.stdout.buffer.flush()' \
         'sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))' \
         > /usr/local/bin/sudo && chmod 755 /usr/local/bin/sudo",
    );
    install.assert_code(0);
    let tty = lab.exec("all", &["-b"], "tty <&2");
    tty.assert_code(0);
    assert!(
        tty.host("node01")["stdout"]
            .as_str()
            .unwrap_or_default()
            .starts_with("/dev/pts/"),
        "sudo did not run the command on a pty: {tty:?}"
    );
    // On a pty, the hangup when sudo's terminal goes is one more signal to ignore.
    become_exec_times_out(
        lab.kamo(),
        &lab.inventory(),
        &[],
        &format!("trap '' TERM HUP; sleep {} & sleep {}; wait", n + 4, n + 5),
    );
    for s in [n + 4, n + 5] {
        let left = survivors(&format!("sleep {s}"));
        assert!(
            left.is_empty(),
            "--task-timeout, pty: still running on the node: {left:?}"
        );
    }

    // Ctrl-C while the command runs (on the pty).
    let mut child = lab
        .kamo()
        .args(["exec", "all", "-b", "-i"])
        .arg_path(&lab.inventory())
        .args(["--", &format!("trap '' TERM INT HUP; sleep {}", n + 3)])
        .spawn();
    wait_for_process(&format!("sleep {}", n + 3));
    // SAFETY: kill(2) on the kamo process this test started.
    assert_eq!(
        unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT) },
        0
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("kamo did not stop within 15 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(99));
    let left = survivors(&format!("sleep {}", n + 3));
    assert!(
        left.is_empty(),
        "Ctrl-C: still running on the node: {left:?}"
    );
}

/// The same with a sudo that asks for its password every time (`timestamp_timeout=0`): the
/// process group is ended through a second sudo whose prompt kamo answers as the first one's,
/// on stdin; the password is on no command line meanwhile.
#[test]
fn a_become_command_with_a_sudo_password_that_ignores_term_ends_at_its_limit() {
    use crate::support::sshd::TEST_PASSWORD;
    let c = SshCluster::start(1);
    let inv = c.write_inventory(&format!("ansible_become_password={TEST_PASSWORD}\n"));
    let n = unique_secs();
    let home = empty_home();
    become_exec_times_out(
        Kamo::new(home.path()),
        &inv,
        &["--known-hosts", c.known_hosts.to_str().unwrap()],
        &format!("trap '' TERM; sleep {n} & sleep {}; wait", n + 1),
    );
    for s in [n, n + 1] {
        let left = survivors(&format!("sleep {s}"));
        assert!(left.is_empty(), "still running on the node: {left:?}");
    }
    let shown = processes_with(TEST_PASSWORD);
    assert!(
        shown.is_empty(),
        "the password on a command line: {shown:?}"
    );
}

/// On a local connection, from an operator's terminal: sudo (`use_pty`) then runs the command
/// in a session of its own, which the kill of kamo's own process group at the limit misses.
/// kamo runs under `script`, which gives it a controlling terminal as a login shell would.
#[test]
fn a_local_become_command_that_ignores_term_ends_at_its_limit_from_a_terminal() {
    let home = empty_home();
    let n = unique_secs();
    let inv = home.path().join("hosts.ini");
    fs::write(&inv, "localhost ansible_connection=local\n").unwrap();
    let pb = home.path().join("local.yml");
    fs::write(
        &pb,
        format!(
            "- hosts: all\n  gather_facts: false\n  become: true\n  tasks:\n    - name: in a session of sudo's own?\n      shell: cat /proc/$(cut -d' ' -f6 /proc/$$/stat)/comm\n    - name: stubborn\n      shell: trap '' TERM HUP; sleep {n} & sleep {}; wait\n      timeout: 2\n",
            n + 1
        ),
    )
    .unwrap();
    // `sh -c` gets the kamo binary as $0 (see `Kamo::via`).
    let line = format!(
        "exec script -qefc \"$0 run {} -i {} --state-dir {} -v\" /dev/null",
        pb.display(),
        inv.display(),
        home.path().join("state").display()
    );
    let start = Instant::now();
    let r = Kamo::via(home.path(), &["sh", "-c", &line]).run();
    assert!(start.elapsed() < Duration::from_secs(30), "{r:?}");
    assert!(
        r.stdout.contains("stdout: sudo\r\n"),
        "sudo did not use a pty and a session of its own: {r:?}"
    );
    assert!(r.stdout.contains("timed out after 2s"), "{r:?}");
    for s in [n, n + 1] {
        let left = survivors(&format!("sleep {s}"));
        assert!(left.is_empty(), "still running here: {left:?}");
    }
}

/// On a root login sshd refuses SSH's own `signal` request (no privilege separation after
/// root authenticates), so a command past its limit used to keep running there. The command
/// now names its process group first, and kamo kills that group on a second channel: for
/// `kamo exec --task-timeout` and for playbook tasks on a channel of their own
/// (`KAMO_TASK_SHELL=0`), even a command that ignores TERM.
#[test]
fn a_root_login_command_past_its_limit_is_ended_on_the_node() {
    let c = SshCluster::start(1);
    let inv = c.write_inventory("ansible_user=root\n");
    let n = unique_secs();
    let r = exec(
        &c,
        &inv,
        &["--task-timeout", "2", "--output", "json"],
        &format!("trap '' TERM; sleep {n}"),
    );
    r.assert_code(2);
    assert!(r.stdout.contains("timed out after 2s"), "{r:?}");
    let left = survivors(&format!("sleep {n}"));
    assert!(left.is_empty(), "exec: still running on the node: {left:?}");

    let home = empty_home();
    let pb = home.path().join("site.yml");
    fs::write(
        &pb,
        format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - shell: trap '' TERM; sleep {}\n      timeout: 2\n",
            n + 1
        ),
    )
    .unwrap();
    let r = Kamo::new(home.path())
        .env("KAMO_TASK_SHELL", "0")
        .run_playbook(&pb, &inv, &c.known_hosts)
        .run();
    r.assert_code(2);
    assert!(r.stdout.contains("timed out after 2s"), "{r:?}");
    let left = survivors(&format!("sleep {}", n + 1));
    assert!(
        left.is_empty(),
        "a task's channel: still running on the node: {left:?}"
    );
}

/// kamo's own file modules run in a subshell of the task shell, not a `setsid` shell of their
/// own (src/transport/shell.rs): one that runs over its time limit (`slurp` of a FIFO with no
/// writer blocks in `open`) is still ended on the host, with what it started, while a daemon
/// an earlier task left behind lives on, and the next file task runs in a new shell; as the
/// login user, through sudo (the driver then shares sudo's process group) and as root.
#[test]
fn a_file_task_over_its_time_limit_is_ended_on_the_host_and_a_daemon_is_kept() {
    use crate::support::sshd::TEST_PASSWORD;
    let c = SshCluster::start(1);
    for (inv_vars, sudo) in [
        (String::new(), false),
        (format!("ansible_become_password={TEST_PASSWORD}\n"), true),
        ("ansible_user=root\n".to_owned(), false),
    ] {
        file_task_over_its_limit(&c, &c.write_inventory(&inv_vars), sudo);
    }
}

fn file_task_over_its_limit(c: &SshCluster, inv: &Path, sudo: bool) {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let home = empty_home();
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let fifo = dir.path().join("pipe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    fs::set_permissions(&fifo, fs::Permissions::from_mode(0o666)).unwrap();
    let n = unique_secs();
    let pb = home.path().join("site.yml");
    fs::write(
        &pb,
        format!(
            "- hosts: all\n  gather_facts: false\n  become: {sudo}\n  tasks:\n\
             \x20   - name: daemon\n      shell: nohup sleep {n} >/dev/null 2>&1 &\n\
             \x20   - name: blocked\n      slurp: {{ src: {f} }}\n      timeout: 2\n      ignore_errors: true\n\
             \x20   - name: after\n      stat: {{ path: {f} }}\n      register: st\n\
             \x20   - assert: {{ that: [st.stat.exists] }}\n",
            f = fifo.display()
        ),
    )
    .unwrap();
    let r = Kamo::new(home.path())
        .run_playbook(&pb, inv, &c.known_hosts)
        .args(["--output", "json"])
        .run();
    let daemon = processes_with(&format!("sleep {n}"));
    for (pid, _) in &daemon {
        // SAFETY: kill(2) on a PID this test's playbook started.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    // Nothing waits to read the FIFO any more: a writer that will not wait finds no reader
    // (and one found is woken by this open, then sees the end of the input).
    let open = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo);
    r.assert_code(0);
    let blocked = r
        .json_lines()
        .into_iter()
        .find(|e| e["event"] == "host_result" && e["task"] == "blocked")
        .unwrap();
    assert!(
        blocked["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("timed out after 2s (`timeout:`)"),
        "become {sudo}: {r:?}"
    );
    assert_eq!(
        daemon.len(),
        1,
        "become {sudo}: the earlier task's daemon was ended too: {r:?}"
    );
    assert_eq!(
        open.map(|_| ()).map_err(|e| e.raw_os_error()),
        Err(Some(libc::ENXIO)),
        "become {sudo}: the timed-out task's reader still waits on the FIFO: {r:?}"
    );
}
