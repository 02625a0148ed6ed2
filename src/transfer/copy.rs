//! One data set from one host to another: a tar stream read from an SSH channel on the source
//! and written to one on the target, through this workstation, then verified.
//!
//! The order of things, each for a reason:
//! 1. [`preflight`] before anything moves: the source directory exists, the target has room
//!    for what it receives (the source's allocated size, plus a margin), and the target path
//!    is new or empty. A target that already holds exactly the source (a copy finished before
//!    an interruption was recorded) counts as done, so a resume never sends it again.
//! 2. The stream lands in a staging directory beside the target (`PATH.kamo-incoming`), which
//!    kamo owns and may clear: an interrupted copy is sent again from the start into a fresh
//!    staging directory, and the target path never holds half a data set.
//! 3. GNU tar on both ends (`--sparse`, `--numeric-owner`, as root): ownership, modes,
//!    symlinks, hard links, holes and timestamps survive. Nothing but one SSH packet per step
//!    is held here: the writer waits on the target's window before the next chunk is read.
//! 4. Verification ([`super::manifest`]): the source and the staging directory are listed
//!    with one command each, in parallel on the two hosts, after the stream ended, so a file
//!    changed on the source during the copy shows as a difference (tar itself reports one
//!    changed while it was read). Both manifests are saved. Any difference fails the step,
//!    naming the files, and the target path is left untouched.
//! 5. Only then the staging directory is renamed to the target path.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::ProgressBar;

use super::{manifest, space};
use crate::transport::quote::{Become, quote};
use crate::transport::stream::{StreamReader, StreamWriter};
use crate::transport::{Connection, Exit, Output, Phase, TransportError};

/// One end of a copy.
#[derive(Clone, Copy)]
pub struct Side<'a> {
    /// The inventory host name (for messages).
    pub host: &'a str,
    /// SSH, or this workstation for the source of `kamo copy localhost:/DIR ...`.
    pub session: &'a Connection,
    /// sudo, when the login user is not root: reading every file and keeping owners need root.
    pub sudo: Option<&'a Become>,
    /// An absolute directory.
    pub path: &'a str,
    /// Where the host's sshd is, as the inventory says (the source connects there with
    /// `--direct`).
    pub address: &'a str,
    pub port: u16,
}

/// One data set to copy.
pub struct Job<'a> {
    /// A short name for messages and the manifests' file names (`nfs`, `minio`, ...).
    pub name: &'a str,
    pub from: Side<'a>,
    pub to: Side<'a>,
    /// Where the two manifests are saved.
    pub manifests: &'a Path,
    /// Node to node instead of through this workstation (see [`super::direct`]).
    pub direct: bool,
}

/// Why a copy did not happen or did not finish.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    /// Refused before anything moved (bad path, source missing, no room, target not empty).
    #[error("{0}")]
    Refused(String),
    /// A host could not be reached or was lost during the copy.
    #[error("{host}: {message}")]
    Unreachable { host: String, message: String },
    /// A command failed on a host.
    #[error("{host}: {message}")]
    Failed { host: String, message: String },
    /// The target does not match the source.
    #[error("verification failed: {0}")]
    Differs(String),
}

/// What [`preflight`] found.
#[derive(Debug, Clone)]
pub struct Preflight {
    /// Bytes the source's files occupy (what the target must have room for).
    pub needed: u64,
    /// Bytes free where the target path is (or would be).
    pub free: u64,
    /// The target path holds the source already (verified by manifests).
    pub already_there: bool,
}

/// What a finished copy did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Done {
    /// Bytes of the tar stream (0 when the data set was there already).
    pub streamed: u64,
    /// Regular files and their total size, from the verified manifest.
    pub files: usize,
    pub bytes: u64,
    pub seconds: f64,
    /// Nothing was sent: the target held exactly the source already.
    pub already_there: bool,
    pub source_manifest: PathBuf,
    pub target_manifest: PathBuf,
}

/// Free space kept on top of what the data set needs: file systems round up, and a full disk
/// on the target breaks more than this copy.
pub const MARGIN_PERCENT: u32 = 5;

/// The staging directory of a target path.
#[must_use]
pub fn staging(path: &str) -> String {
    format!("{}.kamo-incoming", path.trim_end_matches('/'))
}

/// Checks that `path` is an absolute, normalised directory path that is not `/`.
pub fn check_path(host: &str, path: &str) -> Result<(), Failure> {
    // Checked on the text: `Path::components` would quietly drop a `.` in the middle.
    let normal = path.starts_with('/')
        && path.len() > 1
        && path
            .split('/')
            .skip(1)
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    if !normal || path.contains('\0') {
        return Err(Failure::Refused(format!(
            "{host}:{path}: the path must be absolute, without `.`, `..`, `//` or a trailing `/`, \
             and not `/`"
        )));
    }
    Ok(())
}

fn lost_or_failed(host: &str, e: &TransportError) -> Failure {
    if e.phase == Phase::Exec && !e.message.contains("ended before it started") {
        Failure::Unreachable {
            host: host.to_owned(),
            message: e.message.clone(),
        }
    } else {
        Failure::Failed {
            host: host.to_owned(),
            message: e.message.clone(),
        }
    }
}

/// Runs `cmd` on `side`'s host; a lost connection is [`Failure::Unreachable`].
async fn run(side: &Side<'_>, cmd: &str) -> Result<Output, Failure> {
    let out = side
        .session
        .exec(cmd, None, side.sudo)
        .await
        .map_err(|e| lost_or_failed(side.host, &e))?;
    if out.exit == Exit::NoStatus {
        return Err(Failure::Unreachable {
            host: side.host.to_owned(),
            message: side.session.lost_message("").await,
        });
    }
    Ok(out)
}

fn code(out: &Output) -> Option<u32> {
    match out.exit {
        Exit::Code(c) => Some(c),
        _ => None,
    }
}

fn stderr_of(out: &Output) -> String {
    crate::ui::sanitize(&out.stderr).trim().to_owned()
}

fn q(host: &str, s: &str) -> Result<String, Failure> {
    quote(s).map_err(|e| Failure::Refused(format!("{host}: {e}")))
}

/// What the target path is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetState {
    Missing,
    Empty,
    NotEmpty,
}

async fn target_state(to: &Side<'_>) -> Result<TargetState, Failure> {
    let p = q(to.host, to.path)?;
    let cmd = format!(
        "if [ -d {p} ]; then if [ -n \"$(ls -A {p})\" ]; then echo not-empty; else echo empty; fi; \
         elif [ -e {p} ] || [ -L {p} ]; then echo not-a-directory; else echo missing; fi"
    );
    let out = run(to, &cmd).await?;
    match String::from_utf8_lossy(&out.stdout).trim() {
        "missing" => Ok(TargetState::Missing),
        "empty" => Ok(TargetState::Empty),
        "not-empty" => Ok(TargetState::NotEmpty),
        "not-a-directory" => Err(Failure::Refused(format!(
            "{}:{} exists and is not a directory",
            to.host, to.path
        ))),
        _ => Err(Failure::Failed {
            host: to.host.to_owned(),
            message: format!("cannot inspect {}: {}", to.path, stderr_of(&out)),
        }),
    }
}

/// The manifest of `side`'s `dir`; a missing directory is [`Failure::Refused`].
async fn manifest_of(side: &Side<'_>, dir: &str) -> Result<manifest::Manifest, Failure> {
    let cmd =
        manifest::command(dir).map_err(|e| Failure::Refused(format!("{}: {e}", side.host)))?;
    let out = run(side, &cmd).await?;
    match code(&out) {
        Some(0) => manifest::parse(&out.stdout).map_err(|e| Failure::Failed {
            host: side.host.to_owned(),
            message: format!("unreadable manifest of {dir}: {e}"),
        }),
        Some(3) => Err(Failure::Refused(format!(
            "{}:{dir}: no such directory",
            side.host
        ))),
        _ => Err(Failure::Failed {
            host: side.host.to_owned(),
            message: format!("cannot list {dir}: {}", stderr_of(&out)),
        }),
    }
}

/// Checks, before anything moves, that the copy can happen (see the module docs).
pub async fn preflight(job: &Job<'_>) -> Result<Preflight, Failure> {
    check_path(job.from.host, job.from.path)?;
    check_path(job.to.host, job.to.path)?;
    let usage = space::usage_command(job.from.path)
        .map_err(|e| Failure::Refused(format!("{}: {e}", job.from.host)))?;
    let free = space::free_command(job.to.path)
        .map_err(|e| Failure::Refused(format!("{}: {e}", job.to.host)))?;
    let (u, f, state) = tokio::join!(
        run(&job.from, &usage),
        run(&job.to, &free),
        target_state(&job.to)
    );
    let (u, f, state) = (u?, f?, state?);
    let needed = match code(&u) {
        Some(0) => space::parse_usage(&u.stdout).map_err(|e| Failure::Failed {
            host: job.from.host.to_owned(),
            message: e,
        })?,
        Some(3) => {
            return Err(Failure::Refused(format!(
                "{}:{}: source path missing",
                job.from.host, job.from.path
            )));
        }
        _ => {
            return Err(Failure::Failed {
                host: job.from.host.to_owned(),
                message: format!("cannot measure {}: {}", job.from.path, stderr_of(&u)),
            });
        }
    };
    if code(&f) != Some(0) {
        return Err(Failure::Failed {
            host: job.to.host.to_owned(),
            message: format!(
                "cannot tell the free space at {}: {}",
                job.to.path,
                stderr_of(&f)
            ),
        });
    }
    let free = space::parse_free(&f.stdout).map_err(|e| Failure::Failed {
        host: job.to.host.to_owned(),
        message: e,
    })?;
    if state == TargetState::NotEmpty {
        // Done already (an interrupted run that finished this copy), or someone else's data.
        let (src, dst) = tokio::join!(
            manifest_of(&job.from, job.from.path),
            manifest_of(&job.to, job.to.path)
        );
        let diffs = manifest::diff(&src?, &dst?);
        if diffs.is_empty() {
            return Ok(Preflight {
                needed,
                free,
                already_there: true,
            });
        }
        return Err(Failure::Refused(format!(
            "{}:{} is not empty and does not hold {}:{} ({}); kamo copies into a new or empty \
             directory and overwrites nothing",
            job.to.host,
            job.to.path,
            job.from.host,
            job.from.path,
            manifest::summary(&diffs, 3)
        )));
    }
    space::check_fits(
        &format!("{}:{}", job.to.host, job.to.path),
        needed,
        free,
        MARGIN_PERCENT,
    )
    .map_err(Failure::Refused)?;
    Ok(Preflight {
        needed,
        free,
        already_there: false,
    })
}

/// The source's tar command: the directory's content, holes kept, numeric owners, one file
/// system.
pub(crate) fn tar_create(dir: &str) -> Result<String, String> {
    Ok(format!(
        "exec tar --create --file=- --directory={} --sparse --numeric-owner --one-file-system .",
        quote(dir)?
    ))
}

/// The target's tar command: a fresh staging directory, owners and modes as sent.
pub(crate) fn tar_extract(staging: &str) -> Result<String, String> {
    let s = quote(staging)?;
    Ok(format!(
        "rm -rf -- {s} && mkdir -p -- {s} && exec tar --extract --file=- --directory={s} \
         --numeric-owner --same-owner --preserve-permissions"
    ))
}

/// Copies one data set (run [`preflight`] first; this repeats none of its checks but the
/// paths). `progress` counts the bytes of the stream.
pub async fn copy(job: &Job<'_>, progress: Option<&ProgressBar>) -> Result<Done, Failure> {
    if !job.direct {
        let mut done = copy_many(&[job], &[progress]).await;
        return done.pop().unwrap_or_else(|| {
            Err(Failure::Refused(format!(
                "{}: nothing was copied",
                job.to.host
            )))
        });
    }
    check_path(job.from.host, job.from.path)?;
    check_path(job.to.host, job.to.path)?;
    let started = Instant::now();
    let stage = staging(job.to.path);
    let create = tar_create(job.from.path).map_err(Failure::Refused)?;
    let extract = tar_extract(&stage).map_err(Failure::Refused)?;
    let streamed = super::direct::stream(job, &stage, &extract, &create, progress).await?;
    // Verify: both listings at once, on their own hosts.
    let (src, dst) = tokio::join!(
        manifest_of(&job.from, job.from.path),
        manifest_of(&job.to, &stage)
    );
    conclude(job, &src?, dst?, streamed, started).await
}

/// Copies one source to every job's target (all jobs share `from`) with one read of the
/// source: each chunk of the source's tar stream is written to every target before the next
/// is read, so the source's disk, tar and SSH channel work once whatever the number of
/// targets, and kamo holds one chunk. The pace is the slowest target's; a target that fails
/// (stops taking data, is lost) is dropped and the others go on. `progress[i]` counts job
/// `i`'s bytes. Each target is then verified against one source manifest taken after the
/// stream, and moved into place. Not for `direct` jobs (each target pulls on its own).
///
/// One data channel on the source's connection, whatever the number of targets, also keeps
/// its in-flight data within what russh accepts during a key re-exchange (see
/// `transport::ssh`'s `rekey_limits`).
pub async fn copy_many(
    jobs: &[&Job<'_>],
    progress: &[Option<&ProgressBar>],
) -> Vec<Result<Done, Failure>> {
    let started = Instant::now();
    let mut out: Vec<Option<Result<Done, Failure>>> = jobs.iter().map(|_| None).collect();
    let Some(first) = jobs.first() else {
        return Vec::new();
    };
    let from = first.from;
    if let Err(f) = check_path(from.host, from.path).and_then(|()| {
        tar_create(from.path)
            .map(|_| ())
            .map_err(|e| Failure::Refused(e.clone()))
    }) {
        return jobs.iter().map(|_| Err(f.clone())).collect();
    }
    // Every target's receiving tar first: a target that cannot start one is out.
    let opened = futures::future::join_all(jobs.iter().map(|j| open_target(j))).await;
    let mut live = Vec::new();
    for (i, o) in opened.into_iter().enumerate() {
        match o {
            Ok((rd, wr)) => live.push(Receiver {
                index: i,
                wr: Some(wr),
                drain: tokio::spawn(rd.finish()),
                moved: 0,
                write_error: None,
            }),
            Err(f) => out[i] = Some(Err(f)),
        }
    }
    if !live.is_empty() {
        let streamed = stream_to(from, &mut live, progress).await;
        let ok = finish_receivers(jobs, live, streamed, &mut out).await;
        verify_all(jobs, &ok, started, &mut out).await;
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Failure::Refused("not copied".into()))))
        .collect()
}

/// A target that receives the stream.
struct Receiver {
    /// Its job's index.
    index: usize,
    /// `None` once its stdin was ended (it failed, or the stream is over).
    wr: Option<StreamWriter>,
    drain: tokio::task::JoinHandle<(Exit, Vec<u8>)>,
    moved: u64,
    write_error: Option<TransportError>,
}

/// Starts the target's receiving tar in a fresh staging directory.
async fn open_target(job: &Job<'_>) -> Result<(StreamReader, StreamWriter), Failure> {
    check_path(job.to.host, job.to.path)?;
    let extract = tar_extract(&staging(job.to.path)).map_err(Failure::Refused)?;
    let Connection::Ssh(to) = job.to.session else {
        return Err(Failure::Refused(format!(
            "{}: a copy goes to SSH hosts, not to this workstation",
            job.to.host
        )));
    };
    to.exec_stream(&extract, job.to.sudo)
        .await
        .map_err(|e| lost_or_failed(job.to.host, &e))
}

/// How the source's side of a stream ended.
type Streamed = Result<(), Failure>;

/// Reads the source's tar stream once and writes each chunk to every live receiver; the
/// source is stopped early when none is left.
async fn stream_to(
    from: Side<'_>,
    live: &mut [Receiver],
    progress: &[Option<&ProgressBar>],
) -> Streamed {
    let started = match tar_create(from.path) {
        Ok(create) => super::source::Source::start(from.session, &create, from.sudo)
            .await
            .map_err(|e| lost_or_failed(from.host, &e)),
        Err(e) => Err(Failure::Refused(e)),
    };
    let mut src = match started {
        Ok(s) => s,
        Err(f) => {
            // The receivers are waiting for data: end their input, so their tars end too.
            end_inputs(live).await;
            return Err(f);
        }
    };
    let mut moved: u64 = 0;
    // Bounded by the source's stream, which ends when its tar does (or is stopped below).
    while let Some(chunk) = src.next().await {
        let writes = live
            .iter_mut()
            .filter(|r| r.write_error.is_none())
            .map(|r| {
                let chunk = &chunk;
                async move {
                    let Some(wr) = r.wr.as_mut() else { return };
                    match wr.write(chunk).await {
                        Ok(()) => r.moved += chunk.len() as u64,
                        Err(e) => {
                            r.write_error = Some(e);
                            if let Some(wr) = r.wr.take() {
                                wr.finish().await;
                            }
                        }
                    }
                }
            });
        futures::future::join_all(writes).await;
        moved += chunk.len() as u64;
        for r in live.iter().filter(|r| r.write_error.is_none()) {
            if let Some(p) = progress.get(r.index).copied().flatten() {
                p.inc(chunk.len() as u64);
            }
        }
        if live.iter().all(|r| r.write_error.is_some()) {
            // No target takes data any more: the rest of the source's stream is not wanted.
            src.stop().await;
            break;
        }
    }
    end_inputs(live).await;
    let (exit, err) = src.finish().await;
    match exit {
        Exit::Code(0) => Ok(()),
        Exit::NoStatus => Err(Failure::Unreachable {
            host: from.host.to_owned(),
            message: from
                .session
                .lost_message(&format!("after {moved} bytes"))
                .await,
        }),
        other => Err(Failure::Failed {
            host: from.host.to_owned(),
            message: format!("tar of {} ended with {other:?}: {}", from.path, text(&err)),
        }),
    }
}

/// Ends the stdin of every receiver that still has it open.
async fn end_inputs(live: &mut [Receiver]) {
    for r in live.iter_mut() {
        if let Some(wr) = r.wr.take() {
            wr.finish().await;
        }
    }
}

fn text(b: &[u8]) -> String {
    crate::ui::sanitize(b).trim().to_owned()
}

/// Each receiver's outcome: the failed ones are recorded in `out`; returns the indices and
/// byte counts of those that took the whole stream.
async fn finish_receivers(
    jobs: &[&Job<'_>],
    live: Vec<Receiver>,
    streamed: Streamed,
    out: &mut [Option<Result<Done, Failure>>],
) -> Vec<(usize, u64)> {
    let mut ok = Vec::new();
    for r in live {
        let job = jobs[r.index];
        let (exit, err) = r.drain.await.unwrap_or((Exit::NoStatus, Vec::new()));
        let stage = staging(job.to.path);
        let result = match (&streamed, exit) {
            (Err(f), _) => Err(f.clone()),
            (Ok(()), Exit::Code(0)) if r.write_error.is_none() => {
                ok.push((r.index, r.moved));
                continue;
            }
            (Ok(()), Exit::NoStatus) => Err(Failure::Unreachable {
                host: job.to.host.to_owned(),
                message: job
                    .to
                    .session
                    .lost_message(&format!("after {} bytes", r.moved))
                    .await,
            }),
            (Ok(()), other) => Err(Failure::Failed {
                host: job.to.host.to_owned(),
                message: format!(
                    "tar into {stage} ended with {other:?}: {}{}",
                    text(&err),
                    r.write_error.map(|e| format!(" ({e})")).unwrap_or_default()
                ),
            }),
        };
        out[r.index] = Some(result);
    }
    ok
}

/// Verifies the targets that took the whole stream against one source manifest, taken
/// after the stream ended, and moves each into place.
async fn verify_all(
    jobs: &[&Job<'_>],
    ok: &[(usize, u64)],
    started: Instant,
    out: &mut [Option<Result<Done, Failure>>],
) {
    let Some(&(first, _)) = ok.first() else {
        return;
    };
    let from = jobs[first].from;
    let (src, dsts) = tokio::join!(
        manifest_of(&from, from.path),
        futures::future::join_all(ok.iter().map(|&(i, _)| {
            let to = jobs[i].to;
            async move { manifest_of(&to, &staging(to.path)).await }
        }))
    );
    let src = match src {
        Ok(m) => m,
        Err(f) => {
            for &(i, _) in ok {
                out[i] = Some(Err(f.clone()));
            }
            return;
        }
    };
    let placed = futures::future::join_all(ok.iter().zip(dsts).map(|(&(i, moved), dst)| {
        let src = &src;
        async move {
            let r = match dst {
                Ok(dst) => conclude(jobs[i], src, dst, moved, started).await,
                Err(f) => Err(f),
            };
            (i, r)
        }
    }))
    .await;
    for (i, r) in placed {
        out[i] = Some(r);
    }
}

/// Compares a target's staging directory with the source, saves both manifests, and moves
/// the staging directory into place.
async fn conclude(
    job: &Job<'_>,
    src: &manifest::Manifest,
    dst: manifest::Manifest,
    streamed: u64,
    started: Instant,
) -> Result<Done, Failure> {
    let stage = staging(job.to.path);
    let (source_manifest, target_manifest) = save_manifests(job, src, &dst)?;
    let diffs = manifest::diff(src, &dst);
    if !diffs.is_empty() {
        return Err(Failure::Differs(format!(
            "{}:{} -> {}:{}: {} (the copy stays in {}:{stage}; manifests: {} and {})",
            job.from.host,
            job.from.path,
            job.to.host,
            job.to.path,
            manifest::summary(&diffs, 20),
            job.to.host,
            source_manifest.display(),
            target_manifest.display()
        )));
    }
    // Into place: the target path is new or empty (preflight), and stays so until now.
    let (p, s) = (q(job.to.host, job.to.path)?, q(job.to.host, &stage)?);
    let out = run(
        &job.to,
        &format!("if [ -d {p} ]; then rmdir -- {p} || exit 1; fi; mv -- {s} {p}"),
    )
    .await?;
    if code(&out) != Some(0) {
        return Err(Failure::Failed {
            host: job.to.host.to_owned(),
            message: format!(
                "verified, but cannot move {stage} to {}: {}",
                job.to.path,
                stderr_of(&out)
            ),
        });
    }
    Ok(Done {
        streamed,
        files: src.files(),
        bytes: src.total_bytes(),
        seconds: started.elapsed().as_secs_f64(),
        already_there: false,
        source_manifest,
        target_manifest,
    })
}

fn save_manifests(
    job: &Job<'_>,
    src: &manifest::Manifest,
    dst: &manifest::Manifest,
) -> Result<(PathBuf, PathBuf), Failure> {
    // Manifests name every file of the data set: private, like the rest of the state
    // directory (0700 whatever the umask; DirBuilder's mode applies to every level it makes).
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(job.manifests)
        .map_err(|e| Failure::Refused(format!("cannot create {}: {e}", job.manifests.display())))?;
    let a = job.manifests.join(format!("{}.source.manifest", job.name));
    let b = job.manifests.join(format!("{}.target.manifest", job.name));
    for (m, p) in [(src, &a), (dst, &b)] {
        m.save(p)
            .map_err(|e| Failure::Refused(format!("cannot save {}: {e}", p.display())))?;
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_be_absolute_normal_and_not_root() {
        for bad in [
            "relative",
            "/",
            "/srv/../etc",
            "/srv/./x",
            "",
            "/srv//x",
            "/srv/x/",
        ] {
            assert!(check_path("h", bad).is_err(), "{bad}");
        }
        check_path("h", "/srv/nfs").unwrap();
        check_path("h", "/srv/with space/x").unwrap();
    }

    #[test]
    fn tar_commands_quote_their_paths() {
        let c = tar_create("/srv/a b").unwrap();
        assert!(c.contains("--directory='/srv/a b'"), "{c}");
        assert!(
            c.contains("--sparse") && c.contains("--numeric-owner"),
            "{c}"
        );
        let x = tar_extract("/srv/$(x).kamo-incoming").unwrap();
        assert!(
            x.starts_with("rm -rf -- '/srv/$(x).kamo-incoming' && mkdir -p -- "),
            "{x}"
        );
        assert_eq!(staging("/srv/nfs/"), "/srv/nfs.kamo-incoming");
    }
}
