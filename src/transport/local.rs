//! The local transport: `ansible_connection=local` hosts and coordinator steps run on the
//! workstation through `/bin/sh -c`, with the same [`Output`] contract as SSH.
//!
//! This is the one place kamo spawns processes for running commands.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::quote::Become;
use super::{Exit, Output, Phase, TransportError};

/// Runs `cmd` with `/bin/sh -c`. Become works without a password only (`sudo -n`): answering
/// sudo's prompt needs the prompt detection the SSH transport does on its channel, and a local
/// coordinator step that needs root should run kamo with sudo rights instead.
pub async fn exec(
    cmd: &str,
    stdin: Option<Vec<u8>>,
    sudo: Option<&Become>,
) -> Result<Output, TransportError> {
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
    let mut out = run(&line, stdin).await?;
    if let Some(b) = sudo {
        let marker = format!("{}\n", b.ready);
        if let Some(pos) = out
            .stdout
            .windows(marker.len())
            .position(|w| w == marker.as_bytes())
        {
            out.stdout.drain(pos..pos + marker.len());
        }
    }
    Ok(out)
}

async fn run(cmd: &str, stdin: Option<Vec<u8>>) -> Result<Output, TransportError> {
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
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
    let ((), out) = tokio::join!(writer, child.wait_with_output());
    let out = out.map_err(|e| TransportError::new(Phase::Exec, e.to_string()))?;
    let exit = if let Some(c) = out.status.code() {
        Exit::Code(u32::try_from(c).unwrap_or(255))
    } else {
        use std::os::unix::process::ExitStatusExt;
        out.status
            .signal()
            .map_or(Exit::NoStatus, |s| Exit::Signal(signal_name(s)))
    };
    Ok(Output {
        stdout: out.stdout,
        stderr: out.stderr,
        exit,
    })
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
}
