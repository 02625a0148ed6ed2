//! `--direct`: the tar stream goes from the source node straight to the target node over an
//! SSH connection the source opens, not through the workstation (for sites where the nodes
//! share a fast network the workstation is far from).
//!
//! How the source gets in, and out again:
//! - a one-time ed25519 key is made on the source itself (`ssh-keygen` in a `mktemp -d`
//!   directory of root's), so no private key ever travels;
//! - its public half goes into the target's `/root/.ssh/authorized_keys` with `restrict` and a
//!   forced command, the very `tar --extract` into the staging directory: the key can do
//!   nothing else, whatever the source asks;
//! - the source trusts exactly the host key kamo verified for the target (a `known_hosts` of
//!   one line in the same directory; `StrictHostKeyChecking=yes`);
//! - afterwards, in every outcome kamo sees, the key line is removed from the target and the
//!   directory from the source. A kamo killed in between leaves both; the next `--direct`
//!   copy to that target removes every `kamo-direct-` key first.
//!
//! Progress: no byte passes the workstation, so the staging directory's size on the target is
//! read every two seconds.

use std::time::Duration;

use indicatif::ProgressBar;

use super::copy::{Failure, Job, Side};
use crate::transport::quote::quote;
use crate::transport::{Exit, Output};

/// The comment every one-time key carries (and the line kamo removes).
pub const KEY_TAG: &str = "kamo-direct-";

async fn run(side: &Side<'_>, cmd: &str) -> Result<Output, Failure> {
    side.session
        .exec(cmd, None, side.sudo)
        .await
        .map_err(|e| Failure::Unreachable {
            host: side.host.to_owned(),
            message: e.message,
        })
}

fn ok(out: &Output) -> bool {
    out.exit == Exit::Code(0)
}

fn err_text(out: &Output) -> String {
    crate::ui::sanitize(&out.stderr).trim().to_owned()
}

/// The `authorized_keys` line for `pubkey` (`ssh-ed25519 AAAA... comment`): only `command`.
fn key_line(pubkey: &str, command: &str, tag: &str) -> String {
    let key: Vec<&str> = pubkey.split_whitespace().take(2).collect();
    format!(
        "restrict,command=\"{}\" {} {tag}",
        command.replace('\\', "\\\\").replace('"', "\\\""),
        key.join(" ")
    )
}

/// Removes every one-time key from the target's root `authorized_keys`.
fn remove_keys_cmd() -> String {
    format!(
        "f=/root/.ssh/authorized_keys; if [ -f $f ]; then grep -v -F ' {KEY_TAG}' $f > $f.kamo-tmp; \
         cat $f.kamo-tmp > $f; rm -f $f.kamo-tmp; fi"
    )
}

/// Streams `job` from its source into `stage` on its target, node to node; returns the bytes
/// the staging directory holds at the end.
pub async fn stream(
    job: &Job<'_>,
    stage: &str,
    extract: &str,
    create: &str,
    progress: Option<&ProgressBar>,
) -> Result<u64, Failure> {
    let (crate::transport::Connection::Ssh(to), crate::transport::Connection::Ssh(_)) =
        (job.to.session, job.from.session)
    else {
        return Err(Failure::Refused(
            "--direct copies between two SSH hosts; without it, this workstation sends".into(),
        ));
    };
    let host_key = to.host_key().ok_or_else(|| Failure::Failed {
        host: job.to.host.to_owned(),
        message: "no verified host key to give the source".into(),
    })?;
    let tag = format!("{KEY_TAG}{}", crate::journal::now_ms());
    // 1. The one-time key, made on the source.
    let out = run(
        &job.from,
        &format!(
            "d=$(mktemp -d /tmp/kamo-direct.XXXXXXXX) && ssh-keygen -q -t ed25519 -N '' -C {tag} \
             -f \"$d/key\" && command -v ssh >/dev/null && echo \"$d\" && cat \"$d/key.pub\""
        ),
    )
    .await?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let (Some(dir), Some(pubkey), true) = (lines.next(), lines.next(), ok(&out)) else {
        return Err(Failure::Failed {
            host: job.from.host.to_owned(),
            message: format!(
                "cannot make a one-time key (--direct needs ssh-keygen and ssh, package \
                 openssh-client, on the source): {}",
                err_text(&out)
            ),
        });
    };
    let dir = dir.to_owned();
    let result = stream_with_key(
        job,
        stage,
        extract,
        create,
        progress,
        (&dir, pubkey, &tag, host_key),
    )
    .await;
    // 4. Out again, whatever happened.
    let d = quote(&dir).unwrap_or_default();
    let _ = run(&job.from, &format!("rm -rf -- {d}")).await;
    let _ = run(&job.to, &remove_keys_cmd()).await;
    result
}

async fn stream_with_key(
    job: &Job<'_>,
    stage: &str,
    extract: &str,
    create: &str,
    progress: Option<&ProgressBar>,
    (dir, pubkey, tag, host_key): (&str, &str, &str, &str),
) -> Result<u64, Failure> {
    let q = |s: &str| quote(s).map_err(|e| Failure::Refused(format!("{}: {e}", job.from.host)));
    // 2. The key on the target, able to run only the extraction.
    let line = key_line(pubkey, extract, tag);
    let install = format!(
        "{}; umask 077; mkdir -p /root/.ssh && printf '%s\\n' {} >> /root/.ssh/authorized_keys",
        remove_keys_cmd(),
        q(&line)?
    );
    let out = run(&job.to, &install).await?;
    if !ok(&out) {
        return Err(Failure::Failed {
            host: job.to.host.to_owned(),
            message: format!("cannot install the one-time key: {}", err_text(&out)),
        });
    }
    // 3. The stream, from the source, with only the target's verified key trusted.
    let addr = job.to.address;
    let known = if job.to.port == 22 {
        format!("{addr} {host_key}")
    } else {
        format!("[{addr}]:{} {host_key}", job.to.port)
    };
    let d = q(dir)?;
    let send = format!(
        "printf '%s\\n' {known} > {d}/known_hosts && \
         ( {create}; echo $? > {d}/tar.rc ) | ssh -i {d}/key -o BatchMode=yes -o IdentitiesOnly=yes \
         -o UserKnownHostsFile={d}/known_hosts -o GlobalKnownHostsFile=/dev/null \
         -o StrictHostKeyChecking=yes -o ServerAliveInterval=15 -o ServerAliveCountMax=3 \
         -p {port} root@{a} kamo-direct; s=$?; t=$(cat {d}/tar.rc 2>/dev/null); \
         if [ \"$t\" != 0 ]; then echo \"kamo: tar on the source ended with ${{t:-nothing}}\" >&2; exit 1; fi; \
         if [ $s != 0 ]; then echo \"kamo: the target's side ended with $s\" >&2; exit 2; fi",
        known = q(&known)?,
        create = create.trim_start_matches("exec "),
        port = job.to.port,
        a = q(addr)?,
    );
    let sending = run(&job.from, &send);
    let size_cmd = format!("du -s -B1 {} 2>/dev/null | cut -f1", q(stage)?);
    let watch = async {
        // Bounded by the transfer: this future is dropped when it ends.
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if let (Some(p), Ok(o)) = (progress, run(&job.to, &size_cmd).await)
                && let Ok(n) = String::from_utf8_lossy(&o.stdout).trim().parse::<u64>()
            {
                p.set_position(n);
            }
        }
    };
    let out = tokio::select! {
        o = sending => o?,
        () = watch => unreachable!("the watch never ends on its own"),
    };
    match out.exit {
        Exit::Code(0) => {}
        Exit::Code(1) => {
            return Err(Failure::Failed {
                host: job.from.host.to_owned(),
                message: err_text(&out),
            });
        }
        Exit::NoStatus => {
            return Err(Failure::Unreachable {
                host: job.from.host.to_owned(),
                message: job.from.session.lost_message("during the transfer").await,
            });
        }
        _ => {
            return Err(Failure::Failed {
                host: job.to.host.to_owned(),
                message: format!("the node-to-node stream failed: {}", err_text(&out)),
            });
        }
    }
    let out = run(&job.to, &size_cmd).await?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_can_only_run_the_extraction() {
        let l = key_line(
            "ssh-ed25519 AAAAC3Nz root@n1",
            "rm -rf -- '/srv/a\"b' && tar -x",
            "kamo-direct-1",
        );
        assert_eq!(
            l,
            "restrict,command=\"rm -rf -- '/srv/a\\\"b' && tar -x\" ssh-ed25519 AAAAC3Nz kamo-direct-1"
        );
        assert!(remove_keys_cmd().contains("grep -v -F ' kamo-direct-'"));
    }
}
