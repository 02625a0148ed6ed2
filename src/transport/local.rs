//! The local transport: `ansible_connection=local` hosts and coordinator steps run on the
//! workstation through `/bin/sh -c`, with the same [`Output`] contract as SSH.
//!
//! This is the one place kamo spawns processes for running commands.
//!
//! A command runs in a process group of its own, which a time limit or Ctrl-C ends (TERM,
//! then KILL). With `become` that is not enough when kamo runs from a terminal: sudo
//! (`use_pty`) then runs the command in a session of its own, outside that group. The
//! command's group is named on its ready line (see [`Become`]) and is killed too: directly
//! when kamo may signal it (kamo runs as root), else through `sudo -n kill` as the become user.

use std::process::Stdio;

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::capped::{Capped, STDERR_KEEP, STDOUT_KEEP};

use super::quote::Become;
use super::{Cutoff, Exit, Output, Phase, TransportError};

/// Runs `cmd` with `/bin/sh -c`. Become works without a password only (`sudo -n`): answering
/// sudo's prompt needs the prompt detection the SSH transport does on its channel, and a local
/// coordinator step that needs root should run kamo with sudo rights instead.
pub async fn exec(
    cmd: &str,
    stdin: Option<Vec<u8>>,
    sudo: Option<&Become>,
) -> Result<Output, TransportError> {
    exec_limited(cmd, stdin, sudo, Cutoff::default())
        .await?
        .ok_or_else(|| TransportError::new(Phase::Exec, "unreachable: no time limit"))
}

/// [`exec`] bounded by `cutoff`: `Ok(None)` when the command did not end in time or was
/// stopped; its process group (the command runs in one of its own) has then been sent TERM,
/// then KILL.
pub async fn exec_limited(
    cmd: &str,
    stdin: Option<Vec<u8>>,
    sudo: Option<&Become>,
    cutoff: Cutoff,
) -> Result<Option<Output>, TransportError> {
    if cutoff.stopped() {
        return Ok(None);
    }
    let line = match sudo {
        Some(b) if b.password.is_some() => {
            return Err(TransportError::new(
                Phase::Exec,
                "sudo with a password is not supported on a local connection; use passwordless sudo for the local user",
            ));
        }
        Some(b) => b
            .wrap(cmd)
            .map_err(|e| TransportError::new(Phase::Exec, e))?,
        None => cmd.to_owned(),
    };
    let Some(mut out) = run(&line, stdin, cutoff, sudo).await? else {
        return Ok(None);
    };
    if let Some(r) = sudo.and_then(|b| b.ready_line(&out.stdout)) {
        out.stdout.drain(r.start..r.end);
    }
    Ok(Some(out))
}

/// How much of a command's first output is kept aside to find the ready line in.
const HEAD: usize = 4096;

/// How long ending a become command's group through `sudo -n kill` may take.
const BECOME_KILL_LIMIT: Duration = Duration::from_secs(5);

/// Ends the become command's process group `pgid` with KILL: directly, or, when kamo may not
/// signal it (another user's), as the become user through `sudo -n` (bounded).
async fn kill_become_group(b: &Become, pgid: u32) {
    use nix::sys::signal::{Signal, killpg};
    let Ok(raw) = i32::try_from(pgid) else { return };
    match killpg(nix::unistd::Pid::from_raw(raw), Signal::SIGKILL) {
        Err(nix::errno::Errno::EPERM) => {}
        _ => return,
    }
    let Ok(line) = b.wrap(&Become::kill_group(pgid)) else {
        return;
    };
    let Ok(mut child) = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(line)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
    else {
        return;
    };
    let _ = tokio::time::timeout(BECOME_KILL_LIMIT, child.wait()).await;
}

async fn run(
    cmd: &str,
    stdin: Option<Vec<u8>>,
    cutoff: Cutoff,
    sudo: Option<&Become>,
) -> Result<Option<Output>, TransportError> {
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout ends the command's children too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| TransportError::new(Phase::Exec, format!("cannot start /bin/sh: {e}")))?;
    let mut input = child.stdin.take();
    let writer = async move {
        if let (Some(w), Some(data)) = (input.as_mut(), stdin) {
            // A command that exits without reading its stdin is not an error.
            let _ = w.write_all(&data).await;
        }
        drop(input);
    };
    let (out_pipe, err_pipe) = (child.stdout.take(), child.stderr.take());
    let pid = child.id();
    // The first output, where a become command's ready line names its process group.
    let head = std::sync::Mutex::new(Vec::new());
    let work = async {
        let ((), stdout, stderr, status) = tokio::join!(
            writer,
            drain(out_pipe, STDOUT_KEEP, Some(&head)),
            drain(err_pipe, STDERR_KEEP, None),
            child.wait()
        );
        (stdout, stderr, status)
    };
    let done = tokio::select! {
        r = work => Some(r),
        () = cutoff.reached() => None,
    };
    let Some((stdout, stderr, status)) = done else {
        let group = pid
            .and_then(|p| i32::try_from(p).ok())
            .map(nix::unistd::Pid::from_raw);
        if let Some(g) = group {
            let _ = nix::sys::signal::killpg(g, nix::sys::signal::Signal::SIGTERM);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let become_group = sudo.and_then(|b| {
            let head = head
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Some((b, b.ready_line(&head)?.pgid?))
        });
        if let Some((b, pgid)) = become_group {
            kill_become_group(b, pgid).await;
        }
        if let Some(g) = group {
            let _ = nix::sys::signal::killpg(g, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = child.wait().await;
        return Ok(None);
    };
    let status = status.map_err(|e| TransportError::new(Phase::Exec, e.to_string()))?;
    let exit = if let Some(c) = status.code() {
        Exit::Code(u32::try_from(c).unwrap_or(255))
    } else {
        use std::os::unix::process::ExitStatusExt;
        status
            .signal()
            .map_or(Exit::NoStatus, |s| Exit::Signal(signal_name(s)))
    };
    Ok(Some(Output {
        stdout,
        stderr,
        exit,
    }))
}

/// Reads a pipe to its end, keeping a bounded part ([`Capped`]), and its first [`HEAD`]
/// bytes in `head` as they come.
async fn drain<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    keep: (usize, usize),
    head: Option<&std::sync::Mutex<Vec<u8>>>,
) -> Vec<u8> {
    let mut kept = Capped::new(keep);
    if let Some(mut pipe) = pipe {
        let mut buf = vec![0u8; 64 * 1024];
        // Bounded by the command's output, which ends when it closes the pipe.
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if let Some(h) = head {
                let mut h = h.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let room = HEAD.saturating_sub(h.len()).min(n);
                h.extend_from_slice(&buf[..room]);
            }
            kept.push(&buf[..n]);
        }
    }
    kept.into_bytes()
}

/// SSH's signal names (RFC 4254 6.10), so local and remote results read the same.
fn signal_name(sig: i32) -> String {
    match sig {
        1 => "HUP",
        2 => "INT",
        3 => "QUIT",
        4 => "ILL",
        6 => "ABRT",
        8 => "FPE",
        9 => "KILL",
        10 => "USR1",
        11 => "SEGV",
        12 => "USR2",
        13 => "PIPE",
        14 => "ALRM",
        15 => "TERM",
        _ => return format!("SIG{sig}"),
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streams_status_and_signal() {
        let o = exec("echo out; echo err >&2; exit 3", None, None)
            .await
            .unwrap();
        assert_eq!(o.stdout, b"out\n");
        assert_eq!(o.stderr, b"err\n");
        assert_eq!(o.exit, Exit::Code(3));
        let o = exec("cat", Some(b"hello".to_vec()), None).await.unwrap();
        assert_eq!(o.stdout, b"hello");
        let o = exec("kill -TERM $$", None, None).await.unwrap();
        assert_eq!(o.exit, Exit::Signal("TERM".into()));
    }

    #[tokio::test]
    async fn a_command_past_its_limit_is_ended_with_its_children() {
        let d = tempfile::tempdir().unwrap();
        let mark = d.path().join("survived");
        // The child sleeps, then would leave a mark: the whole group must end at the limit.
        let cmd = format!("(sleep 2; touch {}) & wait", mark.display());
        let start = std::time::Instant::now();
        let r = exec_limited(
            &cmd,
            None,
            None,
            Cutoff::after(Some(Duration::from_millis(300))),
        )
        .await
        .unwrap();
        assert!(r.is_none());
        assert!(start.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!mark.exists(), "the command's child outlived the timeout");
    }

    #[tokio::test]
    async fn large_output_is_kept_in_bounded_memory() {
        let o = exec("head -c 20000000 /dev/zero; echo end", None, None)
            .await
            .unwrap();
        assert!(o.stdout.len() < STDOUT_KEEP.0 + STDOUT_KEEP.1 + 100);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("bytes of output not kept here]"),
            "{}",
            text.len()
        );
        assert!(text.ends_with("end\n"));
    }
}
