//! `kamo copy SRC_PATTERN:PATH DST_PATTERN:PATH`: one directory from one host to others,
//! verified (see [`crate::transfer::copy`]); the same transfer `kamo migrate` uses for each of
//! its data sets, exposed for ad-hoc moves.
//!
//! Every target is checked before anything moves (source present, room, target new or
//! empty); then targets receive in parallel (`--parallel`: through the workstation they
//! share one read of the source, see [`copy::copy_many`]), each with a live progress line
//! (bytes, rate, ETA). Exit codes: 3 when a host was unreachable or lost, 2 when a copy
//! failed or did not verify, 5 for bad arguments, 99 on Ctrl-C (a staging directory may be
//! left on a target: the next copy clears it).

use std::collections::HashMap;
use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::exec::{BecomeArgs, Interrupt, prepare_hosts};
use crate::cli::{CopyArgs, OutputFormat};
use crate::error::{Error, ExitCode, Result};
use crate::transfer::copy::{self, Failure, Job, Side};
use crate::transport::Connection;
use crate::transport::quote::Become;
use crate::transport::ssh::{Session, SshContext};
use crate::ui;

/// Splits `PATTERN:/PATH` at the first `:/` (host patterns hold `:` but never `:/`).
pub fn split_spec(spec: &str) -> Result<(String, String)> {
    match spec.find(":/") {
        Some(i) if i > 0 => Ok((spec[..i].to_owned(), spec[i + 1..].to_owned())),
        _ => Err(Error::Usage(format!(
            "{spec:?}: expected HOST_PATTERN:/ABSOLUTE/PATH"
        ))),
    }
}

/// An open connection and its sudo (none when logging in as root).
pub struct Connected {
    /// SSH, or this workstation for the inventory's local host.
    pub session: Connection,
    pub sudo: Option<Become>,
    /// The host's sshd, as the inventory resolves it.
    pub address: String,
    pub port: u16,
}

/// Connects to every host of `plan`; the unreachable ones come back as errors by name.
pub async fn connect_all(
    ctx: &Arc<SshContext>,
    plan: super::exec::Plan,
) -> (HashMap<String, Connected>, Vec<(String, String)>) {
    let attempts = plan.into_iter().map(|(host, prepared)| {
        let ctx = ctx.clone();
        async move {
            let r = match prepared {
                Err(e) => Err(e.to_string()),
                Ok((target, _)) if target.local => Ok(Connected {
                    session: Connection::Local,
                    // Locally, kamo reads with its own rights (run it with sudo for root's).
                    sudo: None,
                    address: target.address.clone(),
                    port: target.port,
                }),
                Ok((target, sudo)) => match Session::connect(&target, &ctx).await {
                    Ok(session) => Ok(Connected {
                        session: Connection::Ssh(session),
                        sudo: if target.user == "root" { None } else { sudo },
                        address: target.address.clone(),
                        port: target.port,
                    }),
                    Err(e) => Err(e.to_string()),
                },
            };
            (host, r)
        }
    });
    let mut ok = HashMap::new();
    let mut failed = Vec::new();
    for (host, r) in futures::future::join_all(attempts).await {
        match r {
            Ok(c) => {
                ok.insert(host, c);
            }
            Err(e) => failed.push((host, e)),
        }
    }
    (ok, failed)
}

#[must_use]
/// A progress line per data set, on stderr when it is a terminal (hidden otherwise).
pub fn progress_bar(multi: &MultiProgress, label: &str, total: u64) -> ProgressBar {
    let bar = multi.add(ProgressBar::new(total));
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:24}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar
}

/// A multi-progress drawn on stderr only when it is a terminal.
#[must_use]
pub fn multi_progress() -> MultiProgress {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
    } else {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    }
}

/// The exit code of a failure.
#[must_use]
pub fn failure_code(f: &Failure) -> ExitCode {
    match f {
        Failure::Unreachable { .. } => ExitCode::Unreachable,
        Failure::Refused(_) | Failure::Failed { .. } | Failure::Differs(_) => ExitCode::HostFailed,
    }
}

pub async fn run(args: CopyArgs) -> Result<ExitCode> {
    let mut interrupt = Interrupt::install()?;
    let (src_pattern, src_path) = split_spec(&args.source)?;
    let (dst_pattern, dst_path) = split_spec(&args.dest)?;
    copy::check_path(&src_pattern, &src_path).map_err(|e| Error::Usage(e.to_string()))?;
    copy::check_path(&dst_pattern, &dst_path).map_err(|e| Error::Usage(e.to_string()))?;
    let (inventory, mut sources) = super::load_and_select(&args.inventory, &src_pattern)?;
    // `localhost` is this workstation even when the inventory does not list it, as in Ansible.
    let implicit_local = src_pattern == "localhost" && inventory.host("localhost").is_none();
    if implicit_local {
        sources = vec!["localhost".to_owned()];
    }
    let [source] = sources.as_slice() else {
        return Err(Error::Usage(format!(
            "{src_pattern:?} must match exactly one host, it matches {}: {}",
            sources.len(),
            sources.join(", ")
        )));
    };
    let targets = inventory.select_limited(&dst_pattern, &args.inventory.limit)?;
    if targets.is_empty() {
        return Err(Error::Usage(format!("{dst_pattern:?} matches no host")));
    }
    if targets.contains(source) && src_path == dst_path {
        return Err(Error::Usage(format!(
            "{source}:{src_path} cannot be copied onto itself"
        )));
    }
    let mut hosts = vec![source.clone()];
    hosts.extend(targets.iter().filter(|t| *t != source).cloned());
    let become_args = BecomeArgs {
        r#become: true,
        user: None,
        ask_pass: args.ask_become_pass,
    };
    let (ctx, mut plan) = prepare_hosts(&args.connection, &become_args, &inventory, &hosts)?;
    if implicit_local && let Some(entry) = plan.iter_mut().find(|(h, _)| h == "localhost") {
        entry.1 = Ok((crate::engine::local_target("localhost"), None));
    }
    let (conns, unreachable) = connect_all(&ctx, plan).await;
    if !unreachable.is_empty() {
        for (h, e) in &unreachable {
            ui::eprint_line(&format!("{h}: UNREACHABLE: {e}"));
        }
        return Ok(ExitCode::Unreachable);
    }
    if let Some(t) = targets
        .iter()
        .find(|t| matches!(conns[t.as_str()].session, Connection::Local))
    {
        return Err(Error::Usage(format!(
            "{t} is this workstation: kamo copy sends to SSH hosts (the source may be local)"
        )));
    }
    let stamp = crate::journal::now_ms();
    let manifests = super::run::state_dir(args.state_dir.as_ref())
        .join("manifests")
        .join(format!("copy-{stamp}"));
    let jobs: Vec<(String, Job<'_>)> = targets
        .iter()
        .map(|t| {
            let (s, d) = (&conns[source.as_str()], &conns[t.as_str()]);
            (
                t.clone(),
                Job {
                    name: t,
                    from: Side {
                        host: source,
                        session: &s.session,
                        sudo: s.sudo.as_ref(),
                        path: &src_path,
                        address: &s.address,
                        port: s.port,
                    },
                    to: Side {
                        host: t,
                        session: &d.session,
                        sudo: d.sudo.as_ref(),
                        path: &dst_path,
                        address: &d.address,
                        port: d.port,
                    },
                    manifests: &manifests,
                    direct: args.direct,
                },
            )
        })
        .collect();

    // Every target is checked before anything moves.
    let checks = futures::future::join_all(jobs.iter().map(|(_, j)| copy::preflight(j))).await;
    let mut worst = ExitCode::Ok;
    let mut ready = Vec::new();
    for ((t, job), c) in jobs.iter().zip(checks) {
        match c {
            Ok(p) => {
                if args.output == OutputFormat::Json {
                    ui::print_json(&json!({
                        "host": t, "source": format!("{source}:{src_path}"),
                        "target": format!("{t}:{dst_path}"), "check": true,
                        "needed_bytes": p.needed, "free_bytes": p.free,
                        "already_there": p.already_there,
                    }));
                } else if args.check || p.already_there {
                    ui::print_text(&format!(
                        "{t}:{dst_path} <- {source}:{src_path}: {} needed, {} free{}",
                        human(p.needed),
                        human(p.free),
                        if p.already_there {
                            " (already there, verified: nothing to send)"
                        } else {
                            ""
                        }
                    ));
                }
                if !p.already_there {
                    ready.push((job, p.needed));
                }
            }
            Err(f) => {
                worst = worse(worst, failure_code(&f));
                ui::eprint_line(&format!("{t}: {f}"));
            }
        }
    }
    if worst != ExitCode::Ok || args.check {
        return Ok(worst);
    }

    let multi = multi_progress();
    let copies = send_all(&ready, args.parallel.max(1), args.direct, &multi);
    let results = tokio::select! {
        r = copies => r,
        () = interrupt.recv() => {
            ui::eprint_line("interrupted: copies stopped; a target may keep a staging directory \
                (PATH.kamo-incoming), which the next copy clears");
            return Ok(ExitCode::Interrupted);
        }
    };
    for (job, r) in results {
        worst = worse(
            worst,
            report(job, &r, source, &src_path, &dst_path, args.output),
        );
    }
    Ok(worst)
}

/// Sends the source to every ready target: through this workstation `parallel` targets at a
/// time share one read of the source; with `direct`, `parallel` targets pull at a time.
async fn send_all<'a, 'j>(
    ready: &'a [(&'a Job<'j>, u64)],
    parallel: usize,
    direct: bool,
    multi: &MultiProgress,
) -> Vec<(&'a Job<'j>, std::result::Result<copy::Done, Failure>)> {
    if direct {
        let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
        return futures::future::join_all(ready.iter().map(|(job, needed)| {
            let bar = progress_bar(multi, job.to.host, *needed);
            let sem = sem.clone();
            async move {
                let _permit = sem.acquire().await;
                let r = copy::copy(job, Some(&bar)).await;
                bar.finish_and_clear();
                (*job, r)
            }
        }))
        .await;
    }
    let mut all = Vec::new();
    for group in ready.chunks(parallel) {
        let bars: Vec<_> = group
            .iter()
            .map(|(job, needed)| progress_bar(multi, job.to.host, *needed))
            .collect();
        let jobs: Vec<&Job<'_>> = group.iter().map(|(j, _)| *j).collect();
        let refs: Vec<_> = bars.iter().map(Some).collect();
        let results = copy::copy_many(&jobs, &refs).await;
        for b in &bars {
            b.finish_and_clear();
        }
        all.extend(jobs.into_iter().zip(results));
    }
    all
}

/// Prints one target's outcome; its exit code.
fn report(
    job: &Job<'_>,
    r: &std::result::Result<copy::Done, Failure>,
    source: &str,
    src_path: &str,
    dst_path: &str,
    output: OutputFormat,
) -> ExitCode {
    match r {
        Ok(done) => {
            if output == OutputFormat::Json {
                ui::print_json(&json!({
                    "host": job.to.host, "source": format!("{source}:{src_path}"),
                    "target": format!("{}:{dst_path}", job.to.host), "verified": true,
                    "files": done.files, "bytes": done.bytes, "streamed_bytes": done.streamed,
                    "seconds": done.seconds,
                    "source_manifest": done.source_manifest,
                    "target_manifest": done.target_manifest,
                }));
            } else {
                ui::print_text(&format!(
                    "{}:{dst_path} <- {source}:{src_path}: {} files, {} in {:.1}s ({}/s), verified",
                    job.to.host,
                    done.files,
                    human(done.bytes),
                    done.seconds,
                    human(rate(done.bytes, done.seconds)),
                ));
            }
            ExitCode::Ok
        }
        Err(f) => {
            if output == OutputFormat::Json {
                ui::print_json(&json!({
                    "host": job.to.host, "target": format!("{}:{dst_path}", job.to.host),
                    "verified": false, "error": f.to_string(),
                }));
            }
            ui::eprint_line(&format!("{}: FAILED: {f}", job.to.host));
            failure_code(f)
        }
    }
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
fn rate(bytes: u64, seconds: f64) -> u64 {
    if seconds > 0.0 {
        (bytes as f64 / seconds) as u64
    } else {
        bytes
    }
}

/// The more serious of two exit codes (unreachable over failed over ok).
#[must_use]
pub fn worse(a: ExitCode, b: ExitCode) -> ExitCode {
    let rank = |c: ExitCode| match c {
        ExitCode::Ok => 0,
        ExitCode::HostFailed => 2,
        ExitCode::Unreachable => 3,
        _ => 1,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// Bytes in binary units.
#[must_use]
pub fn human(bytes: u64) -> String {
    indicatif::BinaryBytes(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_split_at_the_first_colon_slash() {
        assert_eq!(
            split_spec("node01:/srv/nfs").unwrap(),
            ("node01".into(), "/srv/nfs".into())
        );
        assert_eq!(
            split_spec("kube-node:!node01:/srv/a:/b").unwrap(),
            ("kube-node:!node01".into(), "/srv/a:/b".into())
        );
        assert!(split_spec("/srv/nfs").is_err());
        assert!(split_spec("node01:srv").is_err());
    }

    #[test]
    fn unreachable_outranks_failed() {
        assert_eq!(
            worse(ExitCode::HostFailed, ExitCode::Unreachable),
            ExitCode::Unreachable
        );
        assert_eq!(
            worse(ExitCode::Unreachable, ExitCode::Ok),
            ExitCode::Unreachable
        );
    }
}
