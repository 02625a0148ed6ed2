//! One long-lived shell per host and become user, fed the task scripts in turn.
//!
//! Why: a playbook task used to cost one SSH channel on the node: sshd forks a session
//! process, the login shell starts and execs `/bin/sh`, and the channel's open, exec, EOF,
//! exit-status and close messages travel both ways. Measured on loopback OpenSSH hosts that
//! is about 6 ms of node CPU per task and host before the module's own work; a task shell
//! that is already running brings it to about 3.5 ms (see BENCHMARKS.md), and with `become`
//! it also saves sudo's start (PAM, sudoers) on every task.
//!
//! How a task runs in the shell (the *driver*, a plain `/bin/sh -s` reading the channel):
//! kamo writes one frame
//!
//! ```text
//! setsid /bin/sh -s <<'KAMO_SCRIPT_<tag>' &
//! <the task script>
//! KAMO_SCRIPT_<tag>
//! kamo_p=$!; wait "$kamo_p"; ... printf '\n%s %s\n' 'KAMO-END-<tag>-<n>' "$rc"; ... >&2
//! ```
//!
//! and reads stdout and stderr up to that task's end marker on each. So each task keeps what
//! a channel of its own gave it:
//! - the script travels as data (a quoted here-document, on the shell's input, never on a
//!   command line), and runs in a fresh `/bin/sh -s` with the script as its stdin, as before;
//! - `setsid` gives it a session and process group of its own: a daemon an earlier task left
//!   behind is never in the group that a later task's time limit ends;
//! - its exit code, its stdout and its stderr are its own (markers are random per shell and
//!   numbered per task, so output cannot forge them);
//! - a script's syntax error or `exit` ends only its own `sh`.
//!
//! At a time limit or Ctrl-C kamo sends TERM to the driver (`kill PID` on a second channel,
//! as the driver's user; the driver said its PID when it started): the driver's trap sends
//! TERM to the task's process group, then KILL a second later, and exits; the shell is not
//! used again. That also reaches a become task that ignores TERM, and works on a root login,
//! where sshd refuses SSH's own `signal` request.
//!
//! kamo's own file modules (`copy`, `template`, `file`, `lineinfile`, ... without a
//! `validate:` command: see `modules::own_tools_only`) run their script in a subshell of the
//! driver instead, `( . /dev/stdin ) <<'KAMO_SCRIPT_<tag>' &`: a fork and no `exec` (0.2 ms of
//! CPU where `setsid /bin/sh -s` costs 1.7 ms), since such a script starts only short-lived
//! tools and nothing that outlives it, and needs no process group of its own. Its own `exit`,
//! a syntax error and its traps still end or touch only that subshell; at a time limit the
//! driver's trap ends its own process group (which sshd made for the driver: the subshell and
//! everything it started are in it, earlier tasks' leftovers are not), sparing itself. The
//! driver checks once that the host can (`/dev/stdin` readable, `pgrep` there) and says so in
//! its ready line; else these scripts run in `setsid` too.
//!
//! Not used (kamo falls back to a channel per task) when the host has no `setsid`
//! (util-linux), when a script holds the terminator line (it cannot, short of guessing 64
//! random bits), or with `KAMO_TASK_SHELL=0`. A task killed by a signal is reported by its
//! exit code (128 + the signal's number), not the signal's name.

use std::time::Duration;

use russh::ChannelMsg;
use russh::client;

use super::capped::{Capped, STDERR_KEEP, STDOUT_KEEP};
use super::quote::Become;
use super::ssh::{BecomeGate, Session, partial_suffix};
use super::{Cutoff, Exit, Output, Phase, TransportError};

/// The become user a shell runs as: `None` without become, `Some(user)` with it (`Some(None)`:
/// sudo's default user).
pub type Key = Option<Option<String>>;

/// Idle task shells kept per connection: sshd's `MaxSessions` (10 by default) also counts
/// the channels of file transfers running at the same time.
pub const IDLE_MAX: usize = 3;

/// At most this many messages pending on an idle shell are looked at when it is taken.
const LEFTOVER_MSGS: usize = 4096;

/// How long the driver's trap waits between TERM and KILL to the task's process group, plus
/// a margin: kamo waits this long for the driver to finish before ending it itself.
const END_WAIT: Duration = Duration::from_secs(3);

/// Whether task shells are used at all (`KAMO_TASK_SHELL=0` turns them off).
#[must_use]
pub fn enabled() -> bool {
    std::env::var("KAMO_TASK_SHELL").map_or(true, |v| v != "0")
}

/// How a task's script is kept apart from the driver that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apart {
    /// `setsid /bin/sh -s`: a shell, session and process group of its own, which a time limit
    /// ends whole. For any script that runs the playbook's own commands.
    Session,
    /// A subshell of the driver (a fork, no `exec`): only for kamo's own module scripts,
    /// which start nothing that outlives them.
    Subshell,
}

/// A running driver shell on one channel.
pub struct TaskShell {
    pub key: Key,
    rd: russh::ChannelReadHalf,
    wr: russh::ChannelWriteHalf<client::Msg>,
    tag: String,
    seq: u64,
    /// The driver's process id on the host, to signal it at a time limit.
    pid: u32,
    /// The become settings it was started with (the signal is sent as the same user).
    sudo: Option<Become>,
    /// Whether the driver can run a script in a subshell ([`Apart::Subshell`]).
    subshell: bool,
}

/// How starting a shell went.
pub enum Started {
    Ready(TaskShell),
    /// sudo refused the password: the outcome of the task, as a channel of its own would have
    /// given it (sudo is not asked again).
    Refused(Output),
    /// The host cannot run one (no `setsid`, or the shell ended at once): use a channel.
    Unsupported,
    /// The cutoff came first; the shell was ended.
    Cut,
}

/// The driver's prelude: checks `setsid`, sets the trap that ends a task, finds whether a
/// subshell can read a script from `/dev/stdin` (and `pgrep` can end what it started), says
/// it is ready (its pid, 1 or 0 for the subshell, and its umask: the default mode of the
/// files a `copy` over SFTP creates, see `engine::put`).
///
/// The trap ignores further TERMs, then ends what `kamo_k` names: the task's process group
/// (`-PID`, a `setsid` task), or the driver's own group (`0`, a subshell task: the driver,
/// which sshd made a session leader, the task and what it started; earlier `setsid` tasks'
/// leftovers are in sessions of their own). TERM first, KILL a second later, sparing the
/// driver and its parent (sudo) in its own group; then it exits.
fn prelude(tag: &str) -> String {
    format!(
        "command -v setsid >/dev/null 2>&1 || exit 97\n\
         kamo_p=; kamo_k=\n\
         trap 'trap \"\" TERM; [ -n \"$kamo_p\" ] && kill -TERM \"$kamo_k\" 2>/dev/null; sleep 1; \
         if [ -z \"$kamo_p\" ]; then :; elif [ \"$kamo_k\" = 0 ]; then \
         for kamo_q in $(pgrep -g 0 2>/dev/null); do [ \"$kamo_q\" = \"$$\" ] || \
         [ \"$kamo_q\" = \"$PPID\" ] || kill -KILL \"$kamo_q\" 2>/dev/null; done; \
         else kill -KILL \"$kamo_k\" 2>/dev/null; fi; exit 143' TERM\n\
         kamo_sub=0\n\
         command -v pgrep >/dev/null 2>&1 && ( . /dev/stdin; [ \"$kamo_probe\" = 1 ] ) 2>/dev/null \
         <<'KAMO_PROBE_{tag}' && kamo_sub=1\n\
         kamo_probe=1\n\
         KAMO_PROBE_{tag}\n\
         printf '%s %s %s ' 'KAMO-SHELL-{tag}' \"$$\" \"$kamo_sub\"; umask\n"
    )
}

/// The frame that runs `script` as task number `seq`, kept apart as `apart` says; `None`
/// when the script holds the here-document's terminator line.
fn frame(tag: &str, seq: u64, script: &[u8], apart: Apart) -> Option<Vec<u8>> {
    let delim = format!("KAMO_SCRIPT_{tag}");
    if script
        .split(|&b| b == b'\n')
        .any(|line| line == delim.as_bytes())
    {
        return None;
    }
    let end = format!("KAMO-END-{tag}-{seq}");
    let mut f = Vec::with_capacity(script.len() + 320);
    let (start, kill) = match apart {
        Apart::Session => ("setsid /bin/sh -s", "-$kamo_p"),
        Apart::Subshell => ("( . /dev/stdin )", "0"),
    };
    f.extend_from_slice(format!("{start} <<'{delim}' &\n").as_bytes());
    f.extend_from_slice(script);
    if !script.ends_with(b"\n") {
        f.push(b'\n');
    }
    f.extend_from_slice(
        format!(
            "{delim}\nkamo_p=$!; kamo_k={kill}; wait \"$kamo_p\"; kamo_rc=$?; kamo_p=; \
             printf '\\n%s %s\\n' '{end}' \"$kamo_rc\"; printf '\\n%s\\n' '{end}' >&2\n"
        )
        .as_bytes(),
    );
    Some(f)
}

/// What a driver's ready line (`KAMO-SHELL-<tag> <pid> <0|1> <umask>\n`) says, once it is
/// whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ready {
    pid: u32,
    /// It can run subshell scripts.
    subshell: bool,
    /// Its umask (octal on the line), when it gave one.
    umask: Option<u32>,
}

fn ready_line(out: &[u8], ready: &str) -> Option<Ready> {
    let at = memchr::memmem::find(out, ready.as_bytes())? + ready.len();
    let nl = memchr::memchr(b'\n', &out[at..])?;
    let mut words = std::str::from_utf8(&out[at..at + nl])
        .ok()?
        .split_whitespace();
    let pid = words.next()?.parse().ok()?;
    let subshell = words.next() == Some("1");
    let umask = words
        .next()
        .and_then(|w| u32::from_str_radix(w, 8).ok())
        .filter(|u| *u <= 0o777);
    Some(Ready {
        pid,
        subshell,
        umask,
    })
}

/// Finds one end marker in a stream while passing what precedes it on, in bounded memory.
struct Scan {
    needle: Vec<u8>,
    /// Bytes that may be the start of the marker (or, once found, its line's rest).
    buf: Vec<u8>,
    found: bool,
    /// Read the rest of the marker's line as an exit code (stdout's marker).
    with_code: bool,
    code: Option<u32>,
    done: bool,
}

impl Scan {
    fn new(needle: String, with_code: bool) -> Self {
        Self {
            needle: needle.into_bytes(),
            buf: Vec::new(),
            found: false,
            with_code,
            code: None,
            done: false,
        }
    }

    fn push(&mut self, data: &[u8], sink: &mut Capped) {
        if self.done {
            // Written after the task ended (by something it left running): not its output.
            return;
        }
        self.buf.extend_from_slice(data);
        if !self.found {
            if let Some(pos) = memchr::memmem::find(&self.buf, &self.needle) {
                sink.push(&self.buf[..pos]);
                self.buf.drain(..pos + self.needle.len());
                self.found = true;
            } else {
                let keep = partial_suffix(&self.buf, &self.needle);
                let pass = self.buf.len() - keep;
                sink.push(&self.buf[..pass]);
                self.buf.drain(..pass);
                return;
            }
        }
        if !self.with_code {
            self.done = true;
            self.buf.clear();
            return;
        }
        if let Some(nl) = memchr::memchr(b'\n', &self.buf) {
            self.code = std::str::from_utf8(&self.buf[..nl])
                .ok()
                .and_then(|s| s.trim().parse().ok());
            self.done = true;
            self.buf.clear();
        } else if self.buf.len() > 32 {
            // Not a code: the line was not the driver's.
            self.done = true;
            self.buf.clear();
        }
    }
}

impl TaskShell {
    /// Starts a driver on a new channel of `session` (through sudo with `sudo`).
    pub async fn start(
        session: &Session,
        sudo: Option<&Become>,
        cutoff: Cutoff,
    ) -> Result<Started, TransportError> {
        let (mut rd, wr) = session.start("exec /bin/sh -s", sudo).await?;
        let tag = super::quote::random_tag();
        let ready = format!("KAMO-SHELL-{tag} ");
        let password = sudo.and_then(|b| b.password.clone());
        let work = async {
            let mut gate = BecomeGate::new(sudo);
            let mut sent = false;
            if gate.is_open() {
                wr.data(prelude(&tag).as_bytes())
                    .await
                    .map_err(|e| TransportError::new(Phase::Exec, e.to_string()))?;
                sent = true;
            }
            let mut out = Vec::new();
            let mut stdout = Capped::new(STDOUT_KEEP);
            let mut stderr = Capped::new(STDERR_KEEP);
            let (mut status, mut signal) = (None, None);
            while let Some(msg) = rd.wait().await {
                match msg {
                    ChannelMsg::Data { data } => {
                        let data = if gate.is_open() {
                            data.to_vec()
                        } else {
                            match gate.stdout(&data) {
                                Some(rest) => rest,
                                None => continue,
                            }
                        };
                        if gate.is_open() && !sent {
                            wr.data(prelude(&tag).as_bytes())
                                .await
                                .map_err(|e| TransportError::new(Phase::Exec, e.to_string()))?;
                            sent = true;
                        }
                        out.extend_from_slice(&data);
                        if let Some(Ready {
                            pid,
                            subshell,
                            umask,
                        }) = ready_line(&out, &ready)
                        {
                            if let (None, Some(u)) = (sudo, umask) {
                                session.set_login_umask(u);
                            }
                            return Ok(Started::Ready(Self {
                                key: sudo.map(|b| b.user.clone()),
                                rd,
                                wr,
                                tag,
                                seq: 0,
                                pid,
                                sudo: sudo.cloned(),
                                subshell,
                            }));
                        }
                        if out.len() > 64 << 10 {
                            // Something other than the driver answers (a forced command?).
                            break;
                        }
                    }
                    ChannelMsg::ExtendedData { data, ext: 1 } => {
                        if gate.is_open() {
                            stderr.push(&data);
                        } else {
                            let (text, action) = gate.stderr(&data);
                            stderr.push(&text);
                            match action {
                                Some(super::ssh::Write::Password) => {
                                    super::ssh::send_password(&wr, password.as_ref()).await;
                                }
                                Some(_) => {
                                    let _ = wr.eof().await;
                                }
                                None => {}
                            }
                        }
                    }
                    ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        signal = Some(format!("{signal_name:?}"));
                    }
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            if gate.refused {
                stdout.push(&out);
                stderr.push(b"kamo: sudo refused the sudo password (incorrect password)\n");
                let exit = match (status, signal) {
                    (_, Some(s)) => Exit::Signal(s),
                    (Some(c), None) => Exit::Code(c),
                    (None, None) => Exit::NoStatus,
                };
                return Ok(Started::Refused(Output {
                    stdout: stdout.into_bytes(),
                    stderr: stderr.into_bytes(),
                    exit,
                }));
            }
            if session.is_closed() {
                return Err(TransportError::new(
                    Phase::Exec,
                    session.lost_message("while the command ran").await,
                ));
            }
            Ok(Started::Unsupported)
        };
        let started = tokio::select! {
            r = work => Some(r),
            () = cutoff.reached() => None,
        };
        match started {
            Some(r) => r,
            None => Ok(Started::Cut),
        }
    }

    /// Runs one task's `frame` (from [`TaskShell::frame_for`]). `Ok(Some(_))` with an exit
    /// code: it ended and the shell may run the next one; `Ok(None)`: the cutoff came and the
    /// task was ended on the host (the shell too); an error or an [`Exit::NoStatus`] output:
    /// the shell is gone.
    pub async fn run(
        &mut self,
        session: &Session,
        frame: Vec<u8>,
        cutoff: Cutoff,
    ) -> Result<Option<Output>, TransportError> {
        let end = format!("KAMO-END-{}-{}", self.tag, self.seq);
        let (rd, wr) = (&mut self.rd, &self.wr);
        let work = async {
            wr.data(&frame[..])
                .await
                .map_err(|e| TransportError::new(Phase::Exec, e.to_string()))?;
            let mut out = Scan::new(format!("\n{end} "), true);
            let mut err = Scan::new(format!("\n{end}\n"), false);
            let mut stdout = Capped::new(STDOUT_KEEP);
            let mut stderr = Capped::new(STDERR_KEEP);
            let mut ended = false;
            while !(out.done && err.done) {
                match rd.wait().await {
                    Some(ChannelMsg::Data { data }) => out.push(&data, &mut stdout),
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                        err.push(&data, &mut stderr);
                    }
                    Some(
                        ChannelMsg::Eof
                        | ChannelMsg::Close
                        | ChannelMsg::ExitStatus { .. }
                        | ChannelMsg::ExitSignal { .. },
                    )
                    | None => {
                        ended = true;
                        break;
                    }
                    Some(_) => {}
                }
            }
            // Bytes held back as a possible marker start belong to the output after all.
            if !out.found {
                stdout.push(&out.buf);
            }
            if !err.found {
                stderr.push(&err.buf);
            }
            if ended && session.is_closed() {
                return Err(TransportError::new(
                    Phase::Exec,
                    session.lost_message("while the command ran").await,
                ));
            }
            let exit = match (ended, out.code) {
                (false, Some(c)) => Exit::Code(c),
                _ => Exit::NoStatus,
            };
            Ok(Output {
                stdout: stdout.into_bytes(),
                stderr: stderr.into_bytes(),
                exit,
            })
        };
        let done = tokio::select! {
            r = work => Some(r),
            () = cutoff.reached() => None,
        };
        if let Some(r) = done {
            return r.map(Some);
        }
        self.end(session).await;
        Ok(None)
    }

    /// The frame for the next task, numbering it; `None` if the script cannot be framed. A
    /// script asked to run in a subshell runs in `setsid` where the driver cannot.
    pub fn frame_for(&mut self, script: &[u8], apart: Apart) -> Option<Vec<u8>> {
        self.seq += 1;
        let apart = if self.subshell { apart } else { Apart::Session };
        frame(&self.tag, self.seq, script, apart)
    }

    /// Ends the running task and the driver: TERM to the driver, whose trap ends the task's
    /// process group (TERM, then KILL a second later) and exits; then the channel is closed.
    /// The TERM is sent by `kill` on a second channel, as the driver's user: sshd refuses
    /// its own `signal` request on a root login (no privilege separation after root's
    /// authentication), and a signal to sudo does not reach a command it put on a pty.
    async fn end(&mut self, session: &Session) {
        let kill = format!("kill -TERM {}", self.pid);
        let _ = tokio::time::timeout(END_WAIT, session.exec(&kill, None, self.sudo.as_ref())).await;
        let _ = tokio::time::timeout(END_WAIT, async {
            while let Some(msg) = self.rd.wait().await {
                if matches!(msg, ChannelMsg::Close) {
                    break;
                }
            }
        })
        .await;
        let _ = self.wr.signal(russh::Sig::KILL).await;
        let _ = self.wr.close().await;
    }

    /// Whether the idle shell is still there. Output that arrived while it was idle is a
    /// leftover of an earlier task (a background process it started, still writing to the
    /// driver's output): it is dropped, and does not end the shell, or a task that leaves
    /// such a process behind would cost a new shell, and an unclosed channel, at every task.
    /// An exit status, an EOF or a close means the driver ended.
    pub fn idle_alive(&mut self) -> bool {
        use futures::FutureExt;
        // Bounded: what is pending was received already; the rest waits for the next look.
        for _ in 0..LEFTOVER_MSGS {
            match self.rd.wait().now_or_never() {
                None => return true,
                Some(Some(ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. })) => {
                    tracing::debug!(
                        bytes = data.len(),
                        "late output of an earlier task on an idle task shell, dropped"
                    );
                }
                Some(Some(ChannelMsg::WindowAdjusted { .. })) => {}
                Some(_) => return false,
            }
        }
        true
    }

    /// Lets the driver end (EOF on its input) and closes the channel.
    pub async fn retire(self) {
        let _ = self.wr.eof().await;
        let _ = self.wr.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(chunks: &[&[u8]], needle: &str, with_code: bool) -> (Vec<u8>, Scan) {
        let mut s = Scan::new(needle.to_owned(), with_code);
        let mut sink = Capped::new((1 << 20, 1 << 20));
        for c in chunks {
            s.push(c, &mut sink);
        }
        (sink.into_bytes(), s)
    }

    #[test]
    fn the_marker_is_found_across_chunks_and_what_precedes_it_is_kept() {
        let (out, s) = scan_all(
            &[
                b"hello\nwor",
                b"ld\n\nKAMO-E",
                b"ND-t-1 4",
                b"2\nlate output",
            ],
            "\nKAMO-END-t-1 ",
            true,
        );
        assert_eq!(out, b"hello\nworld\n");
        assert!(s.done);
        assert_eq!(s.code, Some(42));
    }

    #[test]
    fn output_without_a_newline_and_a_lookalike_marker_pass_through() {
        let (out, s) = scan_all(
            &[b"no newline\nKAMO-END-t-2 0\n", b"\nKAMO-END-t-1\n"],
            "\nKAMO-END-t-1\n",
            false,
        );
        assert_eq!(out, b"no newline\nKAMO-END-t-2 0\n");
        assert!(s.done && s.code.is_none());
        let (out, s) = scan_all(&[b"abc\nKAMO-EN"], "\nKAMO-END-t-1\n", false);
        assert!(!s.done);
        assert_eq!(out, b"abc", "a possible marker start is held back");
        assert_eq!(s.buf, b"\nKAMO-EN");
    }

    #[test]
    fn the_ready_line_gives_the_drivers_pid_subshell_and_umask_once_whole() {
        let r = |pid, subshell, umask| {
            Some(Ready {
                pid,
                subshell,
                umask,
            })
        };
        assert_eq!(
            ready_line(b"motd\nKAMO-SHELL-t 4118 1 0022\n", "KAMO-SHELL-t "),
            r(4118, true, Some(0o22))
        );
        assert_eq!(
            ready_line(b"KAMO-SHELL-t 4118 0 0077\n", "KAMO-SHELL-t "),
            r(4118, false, Some(0o77))
        );
        assert_eq!(
            ready_line(b"KAMO-SHELL-t 4118 1 u=rwx\n", "KAMO-SHELL-t "),
            r(4118, true, None)
        );
        assert_eq!(
            ready_line(b"KAMO-SHELL-t 4118\n", "KAMO-SHELL-t "),
            r(4118, false, None)
        );
        assert_eq!(ready_line(b"KAMO-SHELL-t 41", "KAMO-SHELL-t "), None);
        assert_eq!(ready_line(b"KAMO-SHELL-u 41\n", "KAMO-SHELL-t "), None);
    }

    #[test]
    fn a_frame_quotes_the_script_as_a_here_document_and_refuses_its_terminator() {
        let f = String::from_utf8(frame("ab", 3, b"echo '$(id)'; exit 4", Apart::Session).unwrap())
            .unwrap();
        assert!(
            f.starts_with(
                "setsid /bin/sh -s <<'KAMO_SCRIPT_ab' &\necho '$(id)'; exit 4\nKAMO_SCRIPT_ab\n\
                 kamo_p=$!; kamo_k=-$kamo_p;"
            ),
            "{f}"
        );
        assert!(f.contains("'KAMO-END-ab-3'"), "{f}");
        let f = String::from_utf8(frame("ab", 4, b"exit 4", Apart::Subshell).unwrap()).unwrap();
        assert!(
            f.starts_with(
                "( . /dev/stdin ) <<'KAMO_SCRIPT_ab' &\nexit 4\nKAMO_SCRIPT_ab\n\
                 kamo_p=$!; kamo_k=0;"
            ),
            "{f}"
        );
        for apart in [Apart::Session, Apart::Subshell] {
            assert!(frame("ab", 1, b"x\nKAMO_SCRIPT_ab\ny", apart).is_none());
            assert!(frame("ab", 1, b"x\nKAMO_SCRIPT_ab \ny", apart).is_some());
        }
    }

    /// A driver: the machine's `/bin/sh -s`, its stdin and stdout piped, in a process group
    /// of its own, as sshd gives the driver (its trap signals that group, never this test's).
    fn spawn_driver(stderr: std::process::Stdio) -> std::process::Child {
        use std::os::unix::process::CommandExt as _;
        std::process::Command::new("/bin/sh")
            .arg("-s")
            .process_group(0)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap()
    }

    /// This process's umask as the shell's `umask` prints it (`0022`), which the driver
    /// inherits.
    fn own_umask() -> String {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
        line["Umask:".len()..].trim().to_owned()
    }

    /// The driver, started by the machine's `/bin/sh -s` with no SSH, fed `input` after its
    /// prelude; its pid, stdout and stderr and whether it succeeded, once it ends.
    fn local_driver(tag: &str, frames: &[Vec<u8>]) -> (u32, String, String, bool) {
        use std::io::Write as _;
        let mut input = prelude(tag).into_bytes();
        for f in frames {
            input.extend_from_slice(f);
        }
        let mut child = spawn_driver(std::process::Stdio::piped());
        let pid = child.id();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let o = child.wait_with_output().unwrap();
        (
            pid,
            String::from_utf8(o.stdout).unwrap(),
            String::from_utf8(o.stderr).unwrap(),
            o.status.success(),
        )
    }

    /// The driver and frames, run by the machine's `/bin/sh` with no SSH: each script's exit
    /// code, output and stderr come back; a syntax error, a kill or `exit` ends only its task,
    /// in a `setsid` shell and in a subshell alike.
    #[test]
    fn a_local_driver_runs_frames_in_turn() {
        let (s, u) = (Apart::Session, Apart::Subshell);
        let frames = [
            frame("zz", 1, b"echo one; echo e1 >&2; exit 3\n", s).unwrap(),
            frame("zz", 2, b"echo two; if then\n", s).unwrap(),
            frame("zz", 3, b"kill -KILL $$", s).unwrap(),
            frame("zz", 4, b"cd /; exit 0", s).unwrap(),
            frame("zz", 5, b"echo five; echo e5 >&2; exit 5\n", u).unwrap(),
            frame("zz", 6, b"echo six; if then\n", u).unwrap(),
            // A subshell's own pid (`$$` is the driver's there), killed.
            frame("zz", 7, b"kill -KILL $(exec sh -c 'echo $PPID')", u).unwrap(),
            frame(
                "zz",
                8,
                b"trap 'echo bye' EXIT; cd /tmp; kamo_leak=x; exit 0",
                u,
            )
            .unwrap(),
            frame("zz", 9, b"pwd; echo \"[${kamo_leak:-}]\"", u).unwrap(),
        ];
        let (pid, out, err, ok) = local_driver("zz", &frames);
        assert!(ok, "{out}{err}");
        assert_eq!(
            out,
            format!(
                "KAMO-SHELL-zz {pid} 1 {}\none\n\nKAMO-END-zz-1 3\n\nKAMO-END-zz-2 2\n\nKAMO-END-zz-3 137\n\nKAMO-END-zz-4 0\n\
                 five\n\nKAMO-END-zz-5 5\n\nKAMO-END-zz-6 2\n\nKAMO-END-zz-7 137\n\
                 bye\n\nKAMO-END-zz-8 0\n{}\n[]\n\nKAMO-END-zz-9 0\n",
                own_umask(),
                std::env::current_dir().unwrap().display()
            )
        );
        assert!(err.starts_with("e1\n\nKAMO-END-zz-1\n"), "{err}");
        assert!(
            err.to_lowercase().contains("syntax error"),
            "a syntax error ends only its task: {err}"
        );
        assert!(
            err.contains("\n\nKAMO-END-zz-3\n\nKAMO-END-zz-4\ne5\n\nKAMO-END-zz-5\n"),
            "{err}"
        );
        assert!(
            err.ends_with("\n\nKAMO-END-zz-7\n\nKAMO-END-zz-8\n\nKAMO-END-zz-9\n"),
            "{err}"
        );
    }

    /// Whether process `pid` is gone (or a zombie nobody reaped yet).
    fn gone(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |st| {
            st.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
    }

    /// A TERM to the driver (what kamo sends at a time limit) ends the running task and what
    /// it started: the process group of a `setsid` task, the children of a subshell task.
    #[test]
    fn a_term_to_the_driver_ends_the_task_and_its_children() {
        use std::io::{BufRead as _, Write as _};
        // `sleep`, a grandchild of the task's script, reporting its own pid first; once with
        // TERM ignored (the KILL a second later ends it).
        let grandchild =
            "sh -c 'sh -c \"echo SLEEP \\$\\$; exec sleep 60\"; echo no'\necho not-reached\n";
        let deaf = format!("trap '' TERM\n{grandchild}");
        for (apart, script) in [
            (Apart::Session, grandchild.to_owned()),
            (Apart::Subshell, grandchild.to_owned()),
            (Apart::Session, deaf.clone()),
            (Apart::Subshell, deaf),
        ] {
            let mut child = spawn_driver(std::process::Stdio::null());
            let driver = child.id();
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(prelude("tt").as_bytes()).unwrap();
            stdin
                .write_all(&frame("tt", 1, script.as_bytes(), apart).unwrap())
                .unwrap();
            stdin.flush().unwrap();
            let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
            let mut sleeper = None;
            for line in lines.by_ref().take(4) {
                if let Some(p) = line.unwrap().strip_prefix("SLEEP ") {
                    sleeper = Some(p.trim().parse::<u32>().unwrap());
                    break;
                }
            }
            let sleeper = sleeper.expect("the task started");
            assert!(!gone(sleeper));
            // The driver this test started, by its pid.
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(driver.cast_signed()),
                nix::sys::signal::Signal::SIGTERM,
            )
            .unwrap();
            let t0 = std::time::Instant::now();
            let status = loop {
                if let Some(st) = child.try_wait().unwrap() {
                    break st;
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "{apart:?}: the driver did not end"
                );
                std::thread::sleep(Duration::from_millis(20));
            };
            assert_eq!(status.code(), Some(143), "{apart:?}");
            let t0 = std::time::Instant::now();
            while !gone(sleeper) && t0.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(
                gone(sleeper),
                "{apart:?}: the task's sleep {sleeper} still runs"
            );
            // Read once the sleep is gone: it held the output open.
            let rest: Vec<String> = lines.map_while(Result::ok).collect();
            assert!(
                !rest
                    .iter()
                    .any(|l| l.contains("not-reached") || l.contains("KAMO-END")),
                "{apart:?}: {rest:?}"
            );
        }
    }
}
