//! Helpers shared by the integration tests. Not every test module uses every helper.
#![allow(dead_code)]

pub mod kamo;
pub mod lab;
pub mod pg;
pub mod pg_pod;
pub mod planted;
pub mod sshd;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use sshd::{SshCluster, TEST_PASSWORD, TEST_USER, TestHost};

/// Path of the built kamo binary.
pub fn kamo_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kamo"))
}

/// Runs `cmd` with stdin from /dev/null and captured output; kills it and panics (showing
/// what it printed so far) if it has not exited within `timeout`.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    run_bounded_in(cmd, timeout, Stdio::null())
}

/// [`run_bounded`] with the given stdin.
pub fn run_bounded_in(cmd: &mut Command, timeout: Duration, stdin: Stdio) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_reader.join().unwrap_or_default();
            let stderr = err_reader.join().unwrap_or_default();
            panic!(
                "{desc} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // A grandchild that inherited the pipes could keep them open: the readers end when it does.
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Every file below `dir` (not directories), depth first.
pub fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    // Bounded: every directory is visited once.
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
