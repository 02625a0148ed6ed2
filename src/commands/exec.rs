//! `kamo exec PATTERN -- COMMAND...`: one command on every selected host, in parallel.
//!
//! Shape: resolve every host's connection settings and load every key *before* the first
//! connection (so bad input fails fast and a passphrase is asked once), then fan out under a
//! semaphore of `--forks`, one task per host. Each host's result is printed whole when the
//! host finishes, so output never interleaves. Exit code: 3 if any host was unreachable, else
//! 2 if any failed, else 0; 99 on Ctrl-C, after the commands still running were ended on their
//! hosts the way `--task-timeout` ends them (TERM, then KILL, to the process group): only
//! closing the connections would leave a quiet command such as `sleep` running on the node.
//!
//! The command travels on stdin, never on a command line: the channel (through sudo with
//! `--become`) starts `/bin/sh -s`, and the command follows on its input once sudo let it start
//! (in a brace group, so that the shell reads it whole before running any of it). A node's process list (`ps`, `/proc/*/cmdline`, readable by every user
//! there) then shows `sh -s`, not what the operator typed, which may hold a password; playbook
//! tasks travel the same way. The shell is `/bin/sh` with and without become (it used to be
//! the login shell without), as for Ansible's `shell` module. kamo exec never asks sshd for a
//! terminal, so there is no user input to share stdin with; sudo's own pty (`use_pty`) passes
//! a piped stdin through.
//!
//! What is printed hides the host's known secret values (its secret-named variables, its
//! passwords, vault values), as a playbook run's output does. A host's output is printed whole
//! when its command ends, so a value split between two SSH packets is whole again by then;
//! only where the transport dropped the middle of a huge output can a value be cut, and both
//! sides of that cut are hidden.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::cli::{ConnectionArgs, ExecArgs, OutputFormat};
use crate::error::{Error, ExitCode, Result};
use crate::journal::redact::Redactor;
use crate::secret::Secret;
use crate::transport::capped::{DROPPED_NOTE, STDERR_KEEP, STDOUT_KEEP};
use crate::transport::keys::{KeyStore, default_identity_files};
use crate::transport::known_hosts::KnownHosts;
use crate::transport::quote::{self, Become};
use crate::transport::ssh::{HostKeyChecking, HostKeyPolicy, Session, SshContext};
use crate::transport::target::Defaults;
use crate::transport::{Connection, Cutoff, Exit, Target, TransportError};
use crate::ui;

/// A host ready to run: its target and its sudo settings; or why it cannot be reached.
pub type Prepared = std::result::Result<(Target, Option<Become>), TransportError>;

/// Every selected host, in inventory order, with what it will run.
pub type Plan = Vec<(String, Prepared)>;

/// How one host's command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Failed,
    Unreachable,
}

/// One host's result, as printed.
#[derive(Debug)]
pub struct HostResult {
    pub host: String,
    pub status: Status,
    pub rc: Option<u32>,
    pub signal: Option<String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub duration: Duration,
    pub error: Option<String>,
}

pub async fn run(args: ExecArgs) -> Result<ExitCode> {
    // Installed before any host is touched, so an early Ctrl-C still ends with exit 99.
    let mut interrupt = Interrupt::install()?;
    let (inventory, hosts) = super::load_and_select(&args.inventory, &args.pattern)?;
    let command = match args.command.as_slice() {
        [one] => one.clone(),
        words => quote::join(words).map_err(Error::Usage)?,
    };
    if command.trim().is_empty() {
        return Err(Error::Usage("the command after `--` is empty".into()));
    }
    if hosts.is_empty() {
        return Ok(ExitCode::Ok);
    }
    let (ctx, plan) = prepare(&args, &inventory, &hosts)?;
    let redactors: std::collections::HashMap<String, Redactor> = plan
        .iter()
        .map(|(h, p)| (h.clone(), redactor_for(&inventory, h, p)))
        .collect();
    // One socket per host in flight, two through a jump host.
    let jumps = plan
        .iter()
        .filter(|(_, p)| p.as_ref().is_ok_and(|(t, _)| t.jump.is_some()))
        .count();
    let in_flight = hosts.len().min(args.connection.forks as usize);
    crate::transport::limits::check(in_flight + jumps.min(in_flight))?;

    let started = Instant::now();
    let sem = Arc::new(Semaphore::new(args.connection.forks as usize));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = JoinSet::new();
    for (host, prepared) in plan {
        let (sem, ctx, command) = (sem.clone(), ctx.clone(), command.clone());
        let cutoff = Cutoff {
            limit: args.task_timeout.map(Duration::from_secs),
            stop: Some(stopped.clone()),
        };
        tasks.spawn(async move {
            let Ok(_permit) = sem.acquire_owned().await else {
                unreachable!("the semaphore is never closed")
            };
            run_on_host(host, &command, prepared, &ctx, cutoff).await
        });
    }

    let mut counts = Counts::default();
    let total = hosts.len();
    loop {
        tokio::select! {
            next = tasks.join_next() => {
                let Some(joined) = next else { break };
                let r = joined.map_err(|e| Error::Other(format!("a host task failed: {e}")))?;
                counts.add(r.status);
                let r = match redactors.get(&r.host) {
                    Some(red) => hide_secrets(r, red),
                    None => r,
                };
                report(&r, args.output);
            }
            () = interrupt.recv() => {
                let finished = counts.ok + counts.failed + counts.unreachable;
                // Hosts not started yet start nothing; running commands are ended on their
                // hosts. Bounded: a host still connecting is abandoned after STOP_GRACE, and a
                // second Ctrl-C stops waiting at once.
                let _ = stop.send(true);
                tokio::select! {
                    () = async { while tasks.join_next().await.is_some() {} } => {}
                    () = tokio::time::sleep(STOP_GRACE) => {}
                    () = interrupt.recv() => {}
                }
                tasks.abort_all();
                ui::eprint_line(&format!(
                    "interrupted: {finished} of {total} hosts had finished; the commands still \
                     running on the others were ended there"
                ));
                return Ok(ExitCode::Interrupted);
            }
        }
    }
    if args.output == OutputFormat::Text {
        ui::eprint_line(&format!(
            "{total} hosts: {} ok, {} failed, {} unreachable in {:.2}s",
            counts.ok,
            counts.failed,
            counts.unreachable,
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(ExitCode::for_hosts(counts.failed, counts.unreachable))
}

/// How long an interrupted `kamo exec` waits for its commands to be ended on their hosts
/// (TERM, half a second, KILL, each a round trip).
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs each host's own command (hosts without one are skipped), at most `forks` at once;
/// results in the plan's order. For coordinator probes that need every answer before going on.
pub async fn run_all(
    ctx: &Arc<SshContext>,
    plan: Plan,
    commands: &std::collections::HashMap<String, String, impl std::hash::BuildHasher>,
    forks: usize,
) -> Vec<HostResult> {
    let sem = Arc::new(Semaphore::new(forks.max(1)));
    let mut tasks = JoinSet::new();
    let mut order = Vec::new();
    for (host, prepared) in plan {
        let Some(command) = commands.get(&host).cloned() else {
            continue;
        };
        order.push(host.clone());
        let (sem, ctx) = (sem.clone(), ctx.clone());
        tasks.spawn(async move {
            let Ok(_permit) = sem.acquire_owned().await else {
                unreachable!("the semaphore is never closed")
            };
            run_on_host(host, &command, prepared, &ctx, Cutoff::default()).await
        });
    }
    let mut out: Vec<HostResult> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(r) = joined {
            out.push(r);
        }
    }
    out.sort_by_key(|r| order.iter().position(|h| *h == r.host));
    out
}

#[derive(Default)]
struct Counts {
    ok: usize,
    failed: usize,
    unreachable: usize,
}

impl Counts {
    fn add(&mut self, s: Status) {
        match s {
            Status::Ok => self.ok += 1,
            Status::Failed => self.failed += 1,
            Status::Unreachable => self.unreachable += 1,
        }
    }
}

/// SIGINT and SIGTERM, listened to for the whole run.
pub struct Interrupt {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Interrupt {
    pub fn install() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let err = |e: std::io::Error| Error::Other(format!("cannot listen for signals: {e}"));
        Ok(Self {
            int: signal(SignalKind::interrupt()).map_err(err)?,
            term: signal(SignalKind::terminate()).map_err(err)?,
        })
    }

    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// Resolves every host's target, loads keys and known_hosts once, and builds each host's
/// sudo settings (when `--become`).
fn prepare(
    args: &ExecArgs,
    inventory: &crate::inventory::Inventory,
    hosts: &[String],
) -> Result<(Arc<SshContext>, Plan)> {
    prepare_hosts(
        &args.connection,
        &BecomeArgs {
            r#become: args.r#become,
            user: args.become_user.clone(),
            ask_pass: args.ask_become_pass,
        },
        inventory,
        hosts,
    )
}

/// sudo settings for a fan-out.
pub struct BecomeArgs {
    pub r#become: bool,
    pub user: Option<String>,
    pub ask_pass: bool,
}

/// What `kamo exec` prepares, for any command that fans out over hosts (`check`, `rebuild`'s probes).
pub fn prepare_hosts(
    connection: &ConnectionArgs,
    become_args: &BecomeArgs,
    inventory: &crate::inventory::Inventory,
    hosts: &[String],
) -> Result<(Arc<SshContext>, Plan)> {
    let mut defaults = Defaults {
        user: connection.user.clone(),
        private_key: connection.private_key.clone(),
        become_user: become_args.user.clone(),
        ..Defaults::default()
    };
    if connection.ask_pass {
        defaults.password = Some(prompt_secret("SSH password: ")?);
    }
    if become_args.ask_pass {
        defaults.become_password = Some(prompt_secret("BECOME password: ")?);
    }
    let ssh_config = super::ssh_config(connection.ssh_config.as_ref())?;
    let targets: Vec<(String, std::result::Result<Target, TransportError>)> = hosts
        .iter()
        .map(|h| {
            (
                h.clone(),
                Target::resolve(h, &inventory.vars_for(h), &defaults, &ssh_config),
            )
        })
        .collect();
    let ctx = Arc::new(ssh_context(connection, &targets)?);
    let plan = targets
        .into_iter()
        .map(|(h, t)| {
            let prepared = t.map(|t| {
                let sudo = become_args
                    .r#become
                    .then(|| Become::new(t.become_user.clone(), t.become_password.clone()));
                (t, sudo)
            });
            (h, prepared)
        })
        .collect();
    Ok((ctx, plan))
}

fn prompt_secret(prompt: &str) -> Result<Secret<String>> {
    rpassword::prompt_password(prompt)
        .map(Secret::new)
        .map_err(|e| Error::Other(format!("cannot read a password from the terminal: {e}")))
}

/// Builds the run's SSH context: keys loaded once, `known_hosts` parsed once.
pub fn ssh_context(
    conn: &ConnectionArgs,
    targets: &[(String, std::result::Result<Target, TransportError>)],
) -> Result<SshContext> {
    let mut explicit: Vec<PathBuf> = Vec::new();
    let mut needs_defaults = false;
    for t in targets
        .iter()
        .filter_map(|(_, t)| t.as_ref().ok())
        .filter(|t| !t.local)
    {
        if t.identity_files.is_empty() {
            needs_defaults = true;
        }
        explicit.extend(t.identity_files.iter().cloned());
        if let Some(j) = &t.jump {
            if j.identity_files.is_empty() {
                needs_defaults = true;
            }
            explicit.extend(j.identity_files.iter().cloned());
        }
    }
    let explicit: Vec<PathBuf> = explicit
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let defaults = if needs_defaults {
        default_identity_files()
    } else {
        Vec::new()
    };
    let keys = KeyStore::load(&explicit, &defaults)?;

    let home_known = std::env::home_dir().map(|h| h.join(".ssh").join("known_hosts"));
    let from_inventory: BTreeSet<PathBuf> = targets
        .iter()
        .filter_map(|(_, t)| t.as_ref().ok())
        .flat_map(|t| t.known_hosts_files.iter().cloned())
        .collect();
    let (mut files, learn_path) = if conn.known_hosts.is_empty() {
        let home = home_known
            .ok_or_else(|| Error::Usage("no home directory: pass --known-hosts FILE".into()))?;
        (
            vec![home.clone(), PathBuf::from("/etc/ssh/ssh_known_hosts")],
            home,
        )
    } else {
        (conn.known_hosts.clone(), conn.known_hosts[0].clone())
    };
    files.extend(from_inventory.into_iter().filter(|f| f.exists()));
    if conn.host_key_checking == HostKeyChecking::Off {
        tracing::warn!(
            "--host-key-checking off: host keys are not verified; anyone on the network path can impersonate the hosts"
        );
    }
    let known = KnownHosts::load(&files)
        .map_err(|e| Error::Other(format!("cannot read known_hosts: {e}")))?;
    Ok(SshContext {
        config: Arc::new(SshContext::client_config(Duration::from_secs(
            conn.keepalive,
        ))),
        host_keys: Arc::new(HostKeyPolicy::new(
            conn.host_key_checking,
            known,
            learn_path,
            !conn.known_hosts.is_empty(),
        )),
        keys: Arc::new(keys),
        default_identities: defaults,
        agent_socket: std::env::var_os("SSH_AUTH_SOCK")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        timeout: Duration::from_secs(conn.timeout),
        task_timeout: None,
    })
}

/// Runs `cmd` on one host; a command still running at the `cutoff` (`--task-timeout`, or
/// Ctrl-C) is ended on the host and the host reported failed.
async fn run_on_host(
    host: String,
    cmd: &str,
    prepared: Prepared,
    ctx: &SshContext,
    cutoff: Cutoff,
) -> HostResult {
    let start = Instant::now();
    let unreachable = |host: String, e: &TransportError, start: Instant| HostResult {
        host,
        status: Status::Unreachable,
        rc: None,
        signal: None,
        stdout: Vec::new(),
        stderr: Vec::new(),
        duration: start.elapsed(),
        error: Some(e.to_string()),
    };
    let (target, sudo) = match prepared {
        Ok(p) => p,
        Err(e) => return unreachable(host, &e, start),
    };
    let conn = if target.local {
        Connection::Local
    } else {
        match Session::connect(&target, ctx).await {
            Ok(s) => Connection::Ssh(s),
            Err(e) => return unreachable(host, &e, start),
        }
    };
    let (limit, stop) = (cutoff.limit, cutoff.stop.clone());
    let out = conn
        .exec_limited(READER, Some(on_stdin(cmd)), sudo.as_ref(), cutoff)
        .await;
    conn.close().await;
    let out = match out {
        Ok(Some(o)) => o,
        Ok(None) => {
            let secs = limit.map_or(0, |d| d.as_secs());
            let error = if stop.is_some_and(|s| *s.borrow()) {
                "interrupted: the command was ended on the host".to_owned()
            } else {
                format!(
                    "the command timed out after {secs}s (--task-timeout) and was ended on the host"
                )
            };
            return HostResult {
                host,
                status: Status::Failed,
                rc: None,
                signal: None,
                stdout: Vec::new(),
                stderr: Vec::new(),
                duration: start.elapsed(),
                error: Some(error),
            };
        }
        Err(e) => return unreachable(host, &e, start),
    };
    let (status, rc, signal, error) = match &out.exit {
        Exit::Code(0) => (Status::Ok, Some(0), None, None),
        Exit::Code(c) => (
            Status::Failed,
            Some(*c),
            None,
            Some(format!("command exited with status {c}")),
        ),
        Exit::Signal(s) => (
            Status::Failed,
            None,
            Some(s.clone()),
            Some(format!("command killed by signal {s}")),
        ),
        Exit::NoStatus => (
            Status::Failed,
            None,
            None,
            Some("the command ended without an exit status".into()),
        ),
    };
    HostResult {
        host,
        status,
        rc,
        signal,
        stdout: out.stdout,
        stderr: out.stderr,
        duration: start.elapsed(),
        error,
    }
}

/// What hides a host's secrets in what `kamo exec` prints: the values of its secret-named
/// variables (inventory, `--secret-vars`), its SSH and sudo passwords (from the inventory or
/// asked with `-k`/`-K`), and every value decrypted from a vault.
fn redactor_for(inventory: &crate::inventory::Inventory, host: &str, p: &Prepared) -> Redactor {
    let mut r = Redactor::default();
    r.add_vars(&inventory.vars_for(host));
    if let Ok((t, _)) = p {
        for pw in [&t.password, &t.become_password].into_iter().flatten() {
            r.add(pw.expose());
        }
    }
    r
}

/// `r` with every secret value `red` knows hidden in its output and its error.
fn hide_secrets(mut r: HostResult, red: &Redactor) -> HostResult {
    if red.is_empty() {
        return r;
    }
    r.stdout = redact_output(red, r.stdout, STDOUT_KEEP.0);
    r.stderr = redact_output(red, r.stderr, STDERR_KEEP.0);
    if let Some(e) = r.error.as_deref().and_then(|e| red.redact(e)) {
        r.error = Some(e);
    }
    r
}

/// A command's output as the transport kept it ([`crate::transport::capped::Capped`]):
/// whole, or its first `head_max` bytes (less a become ready line taken out of them), a line
/// saying how much was dropped, and its tail. A value cut in two there is hidden on both
/// sides of the line ([`Redactor::redact_cut`]).
fn redact_output(red: &Redactor, out: Vec<u8>, head_max: usize) -> Vec<u8> {
    // The note starts at `head_max`, or up to a ready line's length before it.
    let from = head_max.saturating_sub(256).min(out.len());
    let note_start = memchr::memmem::find(&out[from..], format!("\n{DROPPED_NOTE}").as_bytes())
        .map(|i| from + i)
        .filter(|&i| i <= head_max);
    let note_end = note_start.and_then(|i| {
        let line = memchr::memchr(b'\n', &out[i + 1..])?;
        out[i + 1..i + 1 + line]
            .ends_with(b" bytes of output not kept here]")
            .then_some(i + 1 + line + 1)
    });
    match (note_start, note_end) {
        (Some(start), Some(end)) => {
            let (head, tail) = red.redact_cut(&out[..start], &out[end..]);
            let mut whole = head;
            whole.extend_from_slice(&out[start..end]);
            whole.extend_from_slice(&tail);
            whole
        }
        _ => red.redact_bytes(&out).unwrap_or(out),
    }
}

/// What the channel (or sudo) starts: a shell that reads the command from its stdin.
const READER: &str = "exec /bin/sh -s";

/// The command as `/bin/sh -s` reads it on stdin (see the module docs): a brace group, which
/// the shell parses whole before running any of it, so nothing in the command can read the
/// rest of the script as its input; its stdin is `/dev/null`, as empty as the stdin an exec
/// always had. `:;` keeps a command that is only a comment a valid group, and the newline
/// before `}` one that ends in a comment. `exit` (with the group's status) ends the shell
/// without waiting for the end of its input, which a stdin relayed through a terminal never
/// brings.
fn on_stdin(cmd: &str) -> Vec<u8> {
    format!("{{ :; {cmd}\n}} </dev/null; exit\n").into_bytes()
}

fn report(r: &HostResult, format: OutputFormat) {
    let ms = u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX);
    match format {
        OutputFormat::Json => {
            let mut v = json!({
                "host": r.host,
                "rc": r.rc,
                "stdout": String::from_utf8_lossy(&r.stdout),
                "stderr": String::from_utf8_lossy(&r.stderr),
                "duration_ms": ms,
                "error": r.error,
            });
            if let Some(s) = &r.signal {
                v["signal"] = json!(s);
            }
            v["status"] = json!(match r.status {
                Status::Ok => "ok",
                Status::Failed => "failed",
                Status::Unreachable => "unreachable",
            });
            ui::print_json(&v);
        }
        OutputFormat::Text => {
            let mut text = match (r.status, r.rc, &r.signal) {
                (Status::Ok, _, _) => format!("{} | OK | rc=0 | {ms}ms >>\n", r.host),
                (Status::Failed, Some(rc), _) => {
                    format!("{} | FAILED | rc={rc} | {ms}ms >>\n", r.host)
                }
                (Status::Failed, None, Some(sig)) => {
                    format!("{} | FAILED | signal={sig} | {ms}ms >>\n", r.host)
                }
                (Status::Failed, None, None) => {
                    format!("{} | FAILED | no exit status | {ms}ms >>\n", r.host)
                }
                (Status::Unreachable, _, _) => format!(
                    "{} | UNREACHABLE! | {}\n",
                    r.host,
                    r.error.as_deref().unwrap_or("unreachable")
                ),
            };
            push_block(&mut text, "", &r.stdout);
            push_block(&mut text, "stderr:\n", &r.stderr);
            ui::print_text(&text);
        }
    }
}

fn push_block(text: &mut String, title: &str, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    text.push_str(title);
    text.push_str(&ui::sanitize(bytes));
    if !text.ends_with('\n') {
        text.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value that straddles the place where the transport dropped output is hidden on both
    /// sides of it; elsewhere whole values are hidden and the rest kept.
    #[test]
    fn output_cut_by_the_transport_hides_a_value_split_by_the_cut() {
        use crate::transport::capped::Capped;
        let mut red = Redactor::default();
        red.add("PLANTEDxyz");
        let mut c = Capped::new((8, 16));
        c.push(b"aaaaPLANTEDxyz-dropped-middle-");
        c.push(b"PLANTEDxyz");
        c.push(b"dxyz-end");
        let out = String::from_utf8(redact_output(&red, c.into_bytes(), 8)).unwrap();
        assert_eq!(
            out,
            "aaaa********\n[kamo: 24 bytes of output not kept here]\n********dxyz-end"
        );
        let out = redact_output(&red, b"1 PLANTEDxyz 2 PLANTEDxy".to_vec(), 8);
        assert_eq!(out, b"1 ******** 2 PLANTEDxy");
        assert!(!String::from_utf8_lossy(&out).contains("PLANTEDxyz"));
    }

    /// The script as a real `SHELL -s` runs it (then EOF, as on the channel).
    fn run_in(shell: &str, cmd: &str) -> (i32, String, String) {
        use std::io::Write as _;
        let input = on_stdin(cmd);
        #[allow(clippy::disallowed_methods)]
        let mut child = std::process::Command::new(shell)
            .arg("-s")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let o = child.wait_with_output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8(o.stdout).unwrap(),
            String::from_utf8(o.stderr).unwrap(),
        )
    }

    /// Exit codes, output, and a command that reads stdin, in dash and in bash (`/bin/sh` on
    /// some distributions), which reads a script from a pipe a byte at a time: without the
    /// brace group, `cat` would read the rest of the command as its input.
    #[test]
    fn the_command_on_stdin_runs_whole_with_an_empty_stdin() {
        for shell in ["/bin/sh", "/bin/bash"] {
            assert!(
                std::path::Path::new(shell).exists(),
                "{shell} is needed by this test"
            );
            the_command_runs_whole_in(shell);
        }
    }

    fn the_command_runs_whole_in(shell: &str) {
        let sh = |cmd: &str| run_in(shell, cmd);
        assert_eq!(sh("echo a; exit 3").0, 3);
        assert_eq!(sh("false").0, 1);
        let (rc, out, _) = sh("cat; read x || echo eof\necho two");
        assert_eq!((rc, out.as_str()), (0, "eof\ntwo\n"));
        assert_eq!(sh("# only a comment").0, 0);
        assert_eq!(sh("echo x # trailing comment").1, "x\n");
        let (rc, out, _) = sh("cat <<EOF\nhere doc\nEOF");
        assert_eq!((rc, out.as_str()), (0, "here doc\n"));
        let (rc, _, err) = sh("if then");
        assert_eq!(rc, 2, "{shell}: {err}");
    }
}
