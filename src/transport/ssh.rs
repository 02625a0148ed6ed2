//! SSH sessions with russh: connect (optionally through one jump host), verify the host key,
//! authenticate, and run commands on channels of the one connection per host.
//!
//! Decisions, each from a lesson of other tools:
//! - Host keys are checked inside the handshake against `known_hosts` parsed once per run
//!   ([`HostKeyPolicy`]); a changed key is refused with the offered key's SHA256 fingerprint
//!   and the `file:line` that disagrees, which is what an operator needs to act.
//! - `--timeout` bounds TCP + banner + key exchange + authentication together; russh has no
//!   connect timeout of its own. A refused or reset connection is retried once (sshd's
//!   `MaxStartups` drops and restarting daemons look like that).
//! - `nodelay` is on (Nagle costs ~40 ms per round trip) and keepalives are paired with the
//!   connection so a dead peer is noticed.
//! - stdout and stderr are read while stdin is written (`split` + `join!`): writing first can
//!   deadlock the connection's event loop on large transfers.
//! - A command past its limit gets TERM, then KILL, through sshd (`signal`, a `killpg` by the
//!   login user). A `become` command is out of that user's reach (root's, and with `use_pty`
//!   in a session of its own), so its process group, which its ready line names, is then
//!   killed as the become user through a second sudo on a new channel, the password (if
//!   asked) on that channel's stdin ([`Session::exec_limited`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};

use super::Cutoff;
use super::capped::{Capped, STDERR_KEEP, STDOUT_KEEP};
use super::keys::KeyStore;
use super::known_hosts::{KnownHosts, Verdict, fingerprint, host_port};
use super::quote::Become;
use super::shell::{self, Started, TaskShell};
use super::stream::{StreamReader, StreamWriter};
use super::{Exit, Output, Phase, Target, TransportError};

/// `--host-key-checking`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HostKeyChecking {
    /// Refuse unknown and changed keys.
    Strict,
    /// Record unknown keys in the `known_hosts` file; refuse changed ones.
    AcceptNew,
    /// Accept any key (prints a warning on every run).
    Off,
}

/// The run's host-key settings and its parsed `known_hosts` files.
pub struct HostKeyPolicy {
    pub mode: HostKeyChecking,
    known: Mutex<KnownHosts>,
    /// Where `accept-new` writes for a host that names no file of its own.
    learn_path: std::path::PathBuf,
    /// `--known-hosts` was given: `learn_path` is its first file, for every host.
    explicit: bool,
}

impl HostKeyPolicy {
    /// `explicit`: `learn_path` is the operator's `--known-hosts` file, which wins over the
    /// files a host's inventory or ssh config names.
    #[must_use]
    pub fn new(
        mode: HostKeyChecking,
        known: KnownHosts,
        learn_path: std::path::PathBuf,
        explicit: bool,
    ) -> Self {
        Self {
            mode,
            known: Mutex::new(known),
            learn_path,
            explicit,
        }
    }

    /// The file `accept-new` records a host's new key in: the first `--known-hosts` file;
    /// else the first `UserKnownHostsFile` the host's inventory or ssh config names (`named`),
    /// which kamo reads for it; else `~/.ssh/known_hosts`. A host pointed at a file of its own
    /// never has its key written to the user's file, as with OpenSSH.
    #[must_use]
    pub fn learn_path<'a>(&'a self, named: &'a [std::path::PathBuf]) -> &'a std::path::Path {
        match named.first() {
            Some(f) if !self.explicit => f,
            _ => &self.learn_path,
        }
    }

    /// Decides on a key; `Err` carries the message shown for the refused host. `learn` is
    /// where `accept-new` records it ([`HostKeyPolicy::learn_path`]).
    fn verify(
        &self,
        host: &str,
        port: u16,
        key: &PublicKey,
        learn: &std::path::Path,
    ) -> Result<(), String> {
        if self.mode == HostKeyChecking::Off {
            return Ok(());
        }
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match known.check(host, port, key) {
            Verdict::Known => Ok(()),
            Verdict::Changed { file, line } => Err(format!(
                "REMOTE HOST IDENTIFICATION HAS CHANGED for {}: it offered {} key {}, but {}:{line} records another {} key for it. \
                 Someone could be eavesdropping, or the host was reinstalled. If you know it was, remove the old line (ssh-keygen -R '{}' -f {}), then record the new key: check that its fingerprint is {} and append it (ssh-keyscan -p {port} {host} >> {}), or connect once with --host-key-checking accept-new.",
                host_port(host, port),
                key.algorithm(),
                fingerprint(key),
                file.display(),
                key.algorithm(),
                host_port(host, port),
                file.display(),
                fingerprint(key),
                file.display()
            )),
            Verdict::Revoked { file, line } => Err(format!(
                "host key {} of {} is marked @revoked at {}:{line}",
                fingerprint(key),
                host_port(host, port),
                file.display()
            )),
            Verdict::Unknown if self.mode == HostKeyChecking::AcceptNew => {
                known.learn(learn, host, port, key).map_err(|e| {
                    format!(
                        "cannot record host key of {} in {}: {e}",
                        host_port(host, port),
                        learn.display()
                    )
                })?;
                tracing::warn!(
                    "added {} key {} of {} to {}",
                    key.algorithm(),
                    fingerprint(key),
                    host_port(host, port),
                    learn.display()
                );
                Ok(())
            }
            Verdict::Unknown => Err(format!(
                "host key of {} is not known ({} {}); add it to known_hosts (e.g. ssh-keyscan -p {port} {host} >> {} after checking the fingerprint) or use --host-key-checking accept-new",
                host_port(host, port),
                key.algorithm(),
                fingerprint(key),
                learn.display()
            )),
        }
    }
}

/// Shared by every connection of a run.
pub struct SshContext {
    pub config: Arc<client::Config>,
    pub host_keys: Arc<HostKeyPolicy>,
    pub keys: Arc<KeyStore>,
    pub default_identities: Vec<std::path::PathBuf>,
    /// `SSH_AUTH_SOCK`, when set.
    pub agent_socket: Option<std::path::PathBuf>,
    pub timeout: Duration,
    /// `--task-timeout`: how long a task's command may run where the task sets no `timeout:`.
    pub task_timeout: Option<Duration>,
}

impl SshContext {
    /// russh settings for a fleet: cheap key exchange first, nodelay, keepalives. A host that
    /// answers nothing for `keepalive` (a keepalive every quarter of it, the connection ended
    /// after three unanswered) is lost; see [`keepalive_interval`].
    ///
    /// Key exchange: `ecdh-sha2-nistp256` first, then curve25519. OpenSSH computes P-256 with
    /// OpenSSL's optimised code but curve25519 with its portable reference C: on the
    /// benchmark's hosts P-256 costs sshd about 2.5 ms less CPU per connection, and `kamo exec
    /// all -- true` on 200 hosts takes 0.89x the time (BENCHMARKS.md). Both are in OpenSSH's
    /// default list; a server whose `KexAlgorithms` leaves P-256 out gets curve25519. No
    /// post-quantum hybrid is offered (russh's `mlkem768x25519-sha256` costs more on both
    /// sides; OpenSSH before 9.9 lacks it).
    #[must_use]
    pub fn client_config(keepalive: Duration) -> client::Config {
        let preferred = russh::Preferred {
            kex: std::borrow::Cow::Owned(vec![
                russh::kex::ECDH_SHA2_NISTP256,
                russh::kex::CURVE25519,
                russh::kex::CURVE25519_PRE_RFC_8731,
                russh::kex::EXTENSION_SUPPORT_AS_CLIENT,
                russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
            ]),
            cipher: std::borrow::Cow::Owned(cipher_order()),
            ..russh::Preferred::default()
        };
        client::Config {
            nodelay: true,
            keepalive_interval: Some(keepalive_interval(keepalive)),
            keepalive_max: KEEPALIVE_MAX,
            preferred,
            limits: rekey_limits(),
            ..client::Config::default()
        }
    }
}

/// Unanswered keepalives after which a connection ends.
const KEEPALIVE_MAX: usize = 3;

/// The silence before each keepalive: russh ends the connection after the interval times
/// (three unanswered keepalives + 1) without a packet from the host, so a quarter of `--keepalive`.
#[must_use]
pub fn keepalive_interval(keepalive: Duration) -> Duration {
    let n = u32::try_from(KEEPALIVE_MAX + 1).unwrap_or(4);
    (keepalive / n).max(Duration::from_secs(1))
}

/// When kamo itself starts a key re-exchange: after [`REKEY_BYTES`] each way, or
/// [`REKEY_AFTER`]; the server starts its own by its `RekeyLimit` (OpenSSH: 1 GiB for
/// ChaCha20-Poly1305, 64 GiB for AES-GCM, no time limit), and kamo follows those at any time.
///
/// Why not russh's default (1 GiB, 1 hour): russh 0.65 ends a connection with "Pending buffer
/// limit reached" when, during a re-exchange *it* started, the server's data already in flight
/// exceeds twice one channel's window. With several channels streaming at once that happens
/// at the first re-exchange (seen: `kamo copy` of 100 MiB to 50 hosts lost the source's
/// connection after about 1 GiB, every time). 64 GiB is RFC 4344's bound for 128-bit block
/// ciphers and what OpenSSH uses for AES; bulk copies keep one data channel per connection,
/// whose in-flight data stays within that margin when kamo re-keys.
///
/// `KAMO_SSH_REKEY_BYTES` (a test knob) sets a smaller byte limit, so that tests cross many
/// re-exchanges that kamo starts.
fn rekey_limits() -> russh::Limits {
    let bytes = std::env::var(REKEY_ENV)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|b| *b >= 1 << 20)
        .map_or(REKEY_BYTES, |b| b.min(REKEY_BYTES));
    russh::Limits {
        rekey_write_limit: bytes,
        rekey_read_limit: bytes,
        rekey_time_limit: REKEY_AFTER,
    }
}

/// The environment variable that lowers the byte limit of kamo's own key re-exchanges
/// (a test knob; at least 1 MiB, at most the default of 64 GiB).
pub const REKEY_ENV: &str = "KAMO_SSH_REKEY_BYTES";

/// See [`rekey_limits`].
const REKEY_BYTES: usize = 64 << 30;
/// See [`rekey_limits`]: a day, so that a long migration with parallel streams on one
/// connection is not cut by a time-based re-exchange (OpenSSH sets none by default).
const REKEY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The ciphers offered, best first: AES-GCM where the CPU has AES and carry-less multiply
/// instructions (it then costs a fraction of ChaCha20-Poly1305, which matters for the
/// gigabytes of `kamo copy`), else ChaCha20-Poly1305, which is fast without them. OpenSSH's
/// sshd accepts both; the rest of russh's defaults follow.
fn cipher_order() -> Vec<russh::cipher::Name> {
    use russh::cipher::{AES_128_CTR, AES_192_CTR, AES_256_CTR, AES_256_GCM, CHACHA20_POLY1305};
    #[cfg(target_arch = "x86_64")]
    let hardware_aes = std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq");
    #[cfg(target_arch = "aarch64")]
    let hardware_aes = std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull");
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let hardware_aes = false;
    let (first, second) = if hardware_aes {
        (AES_256_GCM, CHACHA20_POLY1305)
    } else {
        (CHACHA20_POLY1305, AES_256_GCM)
    };
    vec![first, second, AES_256_CTR, AES_192_CTR, AES_128_CTR]
}

/// Our russh handler: checks the host key, remembers why it refused.
struct Client {
    host: String,
    port: u16,
    policy: Arc<HostKeyPolicy>,
    /// Where `accept-new` records this host's key ([`HostKeyPolicy::learn_path`]).
    learn: std::path::PathBuf,
    refusal: Arc<Mutex<Option<String>>>,
    /// The key the host showed and that was accepted, in OpenSSH's format.
    accepted: Arc<Mutex<Option<String>>>,
    /// Why the connection ended, once it has (see [`Session::lost_reason`]).
    lost: LostReason,
}

/// Where the handler leaves the cause of a connection's end.
type LostReason = Arc<Mutex<Option<String>>>;

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        if key.certificate().is_some() && self.policy.mode != HostKeyChecking::Off {
            *self
                .refusal
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some("host certificates are not supported; the host offered a certificate".into());
            return Ok(false);
        }
        match self
            .policy
            .verify(&self.host, self.port, &key.public_key(), &self.learn)
        {
            Ok(()) => {
                *self
                    .accepted
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    key.public_key().to_openssh().ok();
                Ok(true)
            }
            Err(why) => {
                *self
                    .refusal
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
                Ok(false)
            }
        }
    }

    /// Keeps the cause of a dropped connection, so that "the connection was lost" can say
    /// why (a keepalive timeout, the peer closing, a protocol error) instead of guessing.
    async fn disconnected(
        &mut self,
        reason: client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let why = match &reason {
            client::DisconnectReason::ReceivedDisconnect(info) => {
                format!(
                    "the host closed the connection ({:?}{}{})",
                    info.reason_code,
                    if info.message.is_empty() { "" } else { ": " },
                    crate::ui::sanitize(info.message.as_bytes()).trim()
                )
            }
            client::DisconnectReason::Error(russh::Error::Disconnect) => {
                "kamo closed the connection".to_owned()
            }
            client::DisconnectReason::Error(e) => describe_lost(e),
        };
        tracing::debug!(host = %self.host, "connection ended: {why}");
        *self
            .lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
        match reason {
            client::DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            client::DisconnectReason::Error(e) => Err(e),
        }
    }
}

/// An operator's words for why an established connection ended.
fn describe_lost(e: &russh::Error) -> String {
    match e {
        russh::Error::KeepaliveTimeout => {
            "no answer to SSH keepalives (the host or the network stopped responding)".to_owned()
        }
        russh::Error::InactivityTimeout => "closed after a period of inactivity".to_owned(),
        russh::Error::IO(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the host closed the TCP connection".to_owned()
        }
        russh::Error::IO(io) => format!("network error: {io}"),
        other => format!("SSH error: {other}"),
    }
}

/// How many SSH handshakes (TCP, key exchange, authentication) run at once in this process.
/// Enough to hide a WAN's round trips (64 handshakes of ~4 round trips each in flight), few
/// enough that each finishes in a fraction of `--timeout` on a small workstation.
pub const HANDSHAKES_AT_ONCE: usize = 64;

static HANDSHAKES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HANDSHAKES_AT_ONCE);

/// An authenticated connection to one host.
pub struct Session {
    handle: Handle<Client>,
    /// The host key this connection verified (OpenSSH format), for a `known_hosts` line of
    /// kamo's own making (`kamo copy --direct`).
    host_key: Option<String>,
    /// Why the connection ended, set by the handler when it does.
    lost: LostReason,
    /// Keeps the jump host's connection alive as long as this one.
    _jump: Option<Arc<Handle<Client>>>,
    /// Task shells waiting for their next script ([`super::shell`]).
    idle: Mutex<Vec<TaskShell>>,
    /// The host cannot run a task shell: every task gets a channel of its own.
    no_shell: std::sync::atomic::AtomicBool,
    /// SFTP for file writes, and what it needs to know (boxed: a `Connection` stays small).
    files: Box<FileWrites>,
}

/// A connection's SFTP session and the login's umask ([`Session::sftp`]).
struct FileWrites {
    /// The SFTP session, once asked for (`None` inside: the host has none).
    sftp: tokio::sync::OnceCell<Option<std::sync::Arc<super::sftp::Sftp>>>,
    /// The login's umask, as its task shell reported it (a new file's default mode).
    umask: std::sync::OnceLock<u32>,
    /// How long the SFTP channel may take to open.
    open_timeout: Duration,
}

/// Why a connection attempt failed, and whether trying again may help.
struct Failure {
    err: TransportError,
    retry: bool,
}

fn io_retryable(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
    )
}

impl Session {
    /// Connects and authenticates, bounded by the context's timeout, retrying once.
    ///
    /// At most [`HANDSHAKES_AT_ONCE`] handshakes run at a time in the process, and the timeout
    /// counts from when this one starts: 1,000 hosts started together would otherwise share
    /// the CPU (theirs and sshd's key exchanges) until most of them time out (seen: 903 of
    /// 1,000 at 10 s on 2 cores), and crowd each sshd's `MaxStartups`.
    pub async fn connect(target: &Target, ctx: &SshContext) -> Result<Self, TransportError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Ok(permit) = HANDSHAKES.acquire().await else {
                unreachable!("the handshake semaphore is never closed")
            };
            let fut = Self::connect_once(target, ctx);
            let res = match tokio::time::timeout(ctx.timeout, fut).await {
                Ok(r) => r,
                Err(_) => Err(Failure {
                    err: TransportError::new(
                        Phase::Connect,
                        format!(
                            "timed out after {}s connecting to {}:{}",
                            ctx.timeout.as_secs_f32(),
                            target.address,
                            target.port
                        ),
                    ),
                    retry: false,
                }),
            };
            match res {
                Ok(s) => return Ok(s),
                Err(f) if f.retry && attempt < 2 => {
                    drop(permit);
                    tracing::debug!("{}: {}; retrying once", target.name, f.err);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(f) => return Err(f.err),
            }
        }
    }

    async fn connect_once(target: &Target, ctx: &SshContext) -> Result<Self, Failure> {
        let jump = match &target.jump {
            None => None,
            Some(j) => {
                let jt = Target {
                    name: format!("{} (jump host {}:{})", target.name, j.address, j.port),
                    address: j.address.clone(),
                    port: j.port,
                    user: j.user.clone(),
                    identity_files: j.identity_files.clone(),
                    password: None,
                    become_user: None,
                    become_password: None,
                    jump: None,
                    local: false,
                    // The host's own known_hosts file serves its jump host too.
                    known_hosts_files: target.known_hosts_files.clone(),
                };
                let (handle, _, _) =
                    Box::pin(Self::handshake(&jt, ctx, None))
                        .await
                        .map_err(|mut f| {
                            f.err.message =
                                format!("jump host {}:{}: {}", j.address, j.port, f.err.message);
                            f
                        })?;
                Some(Arc::new(handle))
            }
        };
        let (handle, host_key, lost) = Self::handshake(target, ctx, jump.as_deref()).await?;
        Ok(Self {
            handle,
            host_key,
            lost,
            _jump: jump,
            idle: Mutex::new(Vec::new()),
            no_shell: std::sync::atomic::AtomicBool::new(!shell::enabled()),
            files: Box::new(FileWrites {
                sftp: tokio::sync::OnceCell::new(),
                umask: std::sync::OnceLock::new(),
                open_timeout: ctx.timeout,
            }),
        })
    }

    /// TCP (or a direct-tcpip channel of the jump host), key exchange, host key, auth.
    async fn handshake(
        target: &Target,
        ctx: &SshContext,
        via: Option<&Handle<Client>>,
    ) -> Result<(Handle<Client>, Option<String>, LostReason), Failure> {
        let refusal = Arc::new(Mutex::new(None));
        let accepted = Arc::new(Mutex::new(None));
        let lost = LostReason::default();
        let handler = Client {
            host: target.address.clone(),
            port: target.port,
            policy: ctx.host_keys.clone(),
            learn: ctx
                .host_keys
                .learn_path(&target.known_hosts_files)
                .to_path_buf(),
            refusal: refusal.clone(),
            accepted: accepted.clone(),
            lost: lost.clone(),
        };
        let connected = if let Some(jump) = via {
            let ch = jump
                .channel_open_direct_tcpip(
                    target.address.clone(),
                    u32::from(target.port),
                    "127.0.0.1",
                    0,
                )
                .await
                .map_err(|e| Failure {
                    err: TransportError::new(
                        Phase::Connect,
                        format!(
                            "jump host could not open a tunnel to {}:{}: {e}",
                            target.address, target.port
                        ),
                    ),
                    retry: false,
                })?;
            client::connect_stream(ctx.config.clone(), ch.into_stream(), handler).await
        } else {
            let stream = tokio::net::TcpStream::connect((target.address.as_str(), target.port))
                .await
                .map_err(|e| Failure {
                    retry: io_retryable(&e),
                    err: TransportError::new(
                        Phase::Connect,
                        format!("{}:{}: {e}", target.address, target.port),
                    ),
                })?;
            let _ = stream.set_nodelay(true);
            client::connect_stream(ctx.config.clone(), stream, handler).await
        };
        let mut handle = match connected {
            Ok(h) => h,
            Err(e) => {
                if let Some(why) = refusal
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take()
                {
                    return Err(Failure {
                        err: TransportError::new(Phase::HostKey, why),
                        retry: false,
                    });
                }
                let retry = matches!(&e, russh::Error::IO(io) if io_retryable(io));
                return Err(Failure {
                    err: TransportError::new(
                        Phase::Connect,
                        format!("{}:{}: {e}", target.address, target.port),
                    ),
                    retry,
                });
            }
        };
        authenticate(&mut handle, target, ctx)
            .await
            .map_err(|err| Failure { err, retry: false })?;
        let key = accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        Ok((handle, key, lost))
    }

    /// Opens a channel and starts `cmd` on it (through sudo with `sudo`).
    pub(super) async fn start(
        &self,
        cmd: &str,
        sudo: Option<&Become>,
    ) -> Result<(russh::ChannelReadHalf, russh::ChannelWriteHalf<client::Msg>), TransportError>
    {
        let line = match sudo {
            Some(b) => b
                .wrap(cmd)
                .map_err(|e| TransportError::new(Phase::Exec, e))?,
            None => cmd.to_owned(),
        };
        let ch =
            self.handle.channel_open_session().await.map_err(|e| {
                TransportError::new(Phase::Exec, format!("cannot open a channel: {e}"))
            })?;
        ch.exec(true, line.as_str()).await.map_err(|e| {
            TransportError::new(Phase::Exec, format!("cannot start the command: {e}"))
        })?;
        Ok(ch.split())
    }

    /// Runs one command on a new channel. `stdin` is written while output is drained, then EOF.
    /// With `become`, the command runs through sudo and the password is given only when sudo
    /// prints its prompt (see [`Become`]). Output is kept in bounded memory ([`Capped`]).
    pub async fn exec(
        &self,
        cmd: &str,
        stdin: Option<Vec<u8>>,
        sudo: Option<&Become>,
    ) -> Result<Output, TransportError> {
        self.exec_limited(cmd, stdin, sudo, Cutoff::default())
            .await?
            .ok_or_else(|| TransportError::new(Phase::Exec, "unreachable: no time limit"))
    }

    /// [`Session::exec`] bounded by `cutoff`: `Ok(None)` when the command did not end in time
    /// or was stopped (Ctrl-C). It is then ended on the host: sshd is asked to send TERM and,
    /// a moment later, KILL to the command's process group (OpenSSH's `signal` request is a
    /// `killpg`, so children of the command end too), and the channel is closed. Closing
    /// alone would leave a command that does not write (`sleep`) running on the node.
    ///
    /// With `become`, sshd's signals come from the login user and reach sudo, not the command:
    /// sudo runs it as another user and, with `use_pty`, in a session of its own. sudo relays
    /// TERM, but KILL cannot be relayed, so a command that ignores TERM would survive. So,
    /// between the TERM and the KILL, the command's process group (named on its ready line,
    /// see [`Become`]) is killed as the become user through a second sudo on a new channel
    /// (`Session::kill_group_as`). Ansible and pyinfra leave such a command running; killing
    /// the group as root is what an operator would do by hand. The one residue: a group that
    /// ended on the TERM and whose number was reused within the grace would be hit; PIDs are
    /// not reused that fast on a node in practice.
    pub async fn exec_limited(
        &self,
        cmd: &str,
        stdin: Option<Vec<u8>>,
        sudo: Option<&Become>,
        cutoff: Cutoff,
    ) -> Result<Option<Output>, TransportError> {
        if cutoff.stopped() {
            return Ok(None);
        }
        // Without become, a command that may be cut says its process group first (`$$` of
        // the login shell, which sshd made a session leader): sshd refuses its own `signal`
        // request on a root login, so the group is then killed on a second channel. The
        // line is a ready line of a marker-only `Become` (no sudo), stripped by the gate.
        let marker;
        let (line, gate_sudo) = match sudo {
            None if cutoff.limit.is_some() || cutoff.stop.is_some() => {
                marker = Become::new(None, None);
                (format!("echo {} $$; {cmd}", marker.ready), Some(&marker))
            }
            _ => (cmd.to_owned(), sudo),
        };
        let (mut rd, wr) = self.start(&line, sudo).await?;
        // The writer runs on its own so a large stdin never blocks reading (which would stall
        // the connection's event loop); the reader tells it what to send and when.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Write>();
        let password = sudo.and_then(|b| b.password.clone());
        let writer = write_side(&wr, rx, password, stdin);
        // The become command's process group, once its ready line came (see the cutoff below).
        // 0: none (a group is never 0, see `Become::ready_line`).
        let pgid = std::sync::atomic::AtomicU32::new(0);
        let reader = async {
            let mut gate = BecomeGate::new(gate_sudo);
            if gate.is_open() {
                let _ = tx.send(Write::Stdin);
            }
            let mut stdout = Capped::new(STDOUT_KEEP);
            let mut stderr = Capped::new(STDERR_KEEP);
            let (mut status, mut signal) = (None, None);
            while let Some(msg) = rd.wait().await {
                match msg {
                    ChannelMsg::Data { data } => {
                        if gate.is_open() {
                            stdout.push(&data);
                        } else if let Some(rest) = gate.stdout(&data) {
                            pgid.store(
                                gate.pgid.unwrap_or(0),
                                std::sync::atomic::Ordering::Relaxed,
                            );
                            stdout.push(&rest);
                            let _ = tx.send(Write::Stdin);
                        }
                    }
                    ChannelMsg::ExtendedData { data, ext: 1 } => {
                        if gate.is_open() {
                            stderr.push(&data);
                        } else {
                            let (text, action) = gate.stderr(&data);
                            stderr.push(&text);
                            if let Some(w) = action {
                                let _ = tx.send(w);
                            }
                        }
                    }
                    ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        signal = Some(signal_name_str(&signal_name));
                    }
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            drop(tx);
            let exit = match (status, signal) {
                (_, Some(s)) => Exit::Signal(s),
                (Some(c), None) => Exit::Code(c),
                (None, None) => Exit::NoStatus,
            };
            if gate.refused {
                stderr.push(b"kamo: sudo refused the sudo password (incorrect password)\n");
            }
            (stdout.into_bytes(), stderr.into_bytes(), exit)
        };
        // Boxed: kept past the cutoff (see below), it would otherwise make every caller's
        // future larger.
        let mut both = Box::pin(async { tokio::join!(writer, reader).1 });
        let done = tokio::select! {
            r = &mut both => Some(r),
            () = cutoff.reached() => None,
        };
        let Some((stdout, stderr, exit)) = done else {
            let _ = wr.signal(russh::Sig::TERM).await;
            // The channel is still read during the grace: a ready line that was on its way
            // still names the become command's group.
            let _ = tokio::time::timeout(KILL_GRACE, &mut both).await;
            let g = pgid.load(std::sync::atomic::Ordering::Relaxed);
            if g > 1 {
                // Boxed: a rare path that would otherwise enlarge every exec's future.
                match sudo {
                    Some(b) => Box::pin(self.kill_group_as(b, g)).await,
                    None => Box::pin(self.kill_group_plain(g)).await,
                }
            }
            let _ = wr.signal(russh::Sig::KILL).await;
            let _ = wr.close().await;
            return Ok(None);
        };
        let _ = wr.close().await;
        if exit == Exit::NoStatus && self.handle.is_closed() {
            return Err(TransportError::new(
                Phase::Exec,
                self.lost_message("while the command ran").await,
            ));
        }
        Ok(Some(Output {
            stdout,
            stderr,
            exit,
        }))
    }

    /// Runs a task script (given to `/bin/sh -s` on its stdin) in a task shell of this
    /// connection ([`super::shell`]), started when none is idle for this become user; on a
    /// channel of its own when the host cannot run one. Same outcome as
    /// [`Session::exec_limited`]`("/bin/sh -s", script)`, at a fraction of the node's work.
    pub async fn run_script(
        &self,
        script: Vec<u8>,
        sudo: Option<&Become>,
        cutoff: Cutoff,
        apart: shell::Apart,
    ) -> Result<Option<Output>, TransportError> {
        use std::sync::atomic::Ordering;
        if cutoff.stopped() {
            return Ok(None);
        }
        if self.no_shell.load(Ordering::Relaxed) {
            return self
                .exec_limited("/bin/sh -s", Some(script), sudo, cutoff)
                .await;
        }
        let key: shell::Key = sudo.map(|b| b.user.clone());
        let mut sh = match self.take_idle(&key).await {
            Some(s) => s,
            None => match TaskShell::start(self, sudo, cutoff.clone()).await? {
                Started::Ready(s) => s,
                Started::Refused(out) => return Ok(Some(out)),
                Started::Cut => return Ok(None),
                Started::Unsupported => {
                    tracing::debug!("no task shell on this host: a channel per task");
                    self.no_shell.store(true, Ordering::Relaxed);
                    return self
                        .exec_limited("/bin/sh -s", Some(script), sudo, cutoff)
                        .await;
                }
            },
        };
        let Some(frame) = sh.frame_for(&script, apart) else {
            self.put_idle(sh).await;
            return self
                .exec_limited("/bin/sh -s", Some(script), sudo, cutoff)
                .await;
        };
        let r = sh.run(self, frame, cutoff).await;
        if matches!(&r, Ok(Some(o)) if o.exit != Exit::NoStatus) {
            self.put_idle(sh).await;
        }
        r
    }

    /// An idle task shell for `key` that is still running; those found ended are closed.
    async fn take_idle(&self, key: &shell::Key) -> Option<TaskShell> {
        let mut ended = Vec::new();
        let found = {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut found = None;
            while let Some(i) = idle.iter().position(|s| &s.key == key) {
                let mut s = idle.swap_remove(i);
                if s.idle_alive() {
                    found = Some(s);
                    break;
                }
                ended.push(s);
            }
            found
        };
        for s in ended {
            s.retire().await;
        }
        found
    }

    /// Keeps a shell for the next task; the oldest is let go past [`shell::IDLE_MAX`].
    async fn put_idle(&self, sh: TaskShell) {
        let spare = {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            idle.push(sh);
            (idle.len() > shell::IDLE_MAX).then(|| idle.remove(0))
        };
        if let Some(s) = spare {
            s.retire().await;
        }
    }

    /// Ends process group `pgid` on the host as the login user, on a channel of its own
    /// (`kill -s KILL -- -PGID`), bounded by [`BECOME_KILL_LIMIT`].
    async fn kill_group_plain(&self, pgid: u32) {
        let run = async {
            let Ok((mut rd, wr)) = self.start(&Become::kill_group(pgid), None).await else {
                return;
            };
            let _ = wr.eof().await;
            // Bounded by the limit below: `kill` ends at once.
            while let Some(msg) = rd.wait().await {
                if matches!(msg, ChannelMsg::Close) {
                    break;
                }
            }
            let _ = wr.close().await;
        };
        let _ = tokio::time::timeout(BECOME_KILL_LIMIT, run).await;
    }

    /// Ends process group `pgid` on the host as the become user, on a channel of its own:
    /// `kill -s KILL -- -PGID` through the same sudo, its password (if sudo asks) answered by
    /// the same gate, on the channel's stdin, never on a command line. Bounded by
    /// [`BECOME_KILL_LIMIT`]; a failure leaves things as sshd's own KILL leaves them.
    async fn kill_group_as(&self, sudo: &Become, pgid: u32) {
        let run = async {
            let Ok((mut rd, wr)) = self.start(&Become::kill_group(pgid), Some(sudo)).await else {
                return;
            };
            let mut gate = BecomeGate::new(Some(sudo));
            // Bounded by the limit below: sudo prompts at most twice, then kill ends.
            while let Some(msg) = rd.wait().await {
                match msg {
                    ChannelMsg::Data { data }
                        if !gate.is_open() && gate.stdout(&data).is_some() =>
                    {
                        let _ = wr.eof().await;
                    }
                    ChannelMsg::ExtendedData { data, ext: 1 } if !gate.is_open() => {
                        match gate.stderr(&data).1 {
                            Some(Write::Password) => {
                                send_password(&wr, sudo.password.as_ref()).await;
                            }
                            Some(Write::Eof) => {
                                let _ = wr.eof().await;
                            }
                            _ => {}
                        }
                    }
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            let _ = wr.close().await;
        };
        let _ = tokio::time::timeout(BECOME_KILL_LIMIT, run).await;
    }

    /// Starts `cmd` for bulk data (see [`super::stream`]) and returns once it runs (with
    /// `sudo`: once sudo let it start, its password given only if asked): its stdout as a
    /// stream of chunks, its stdin open for writing.
    pub async fn exec_stream(
        &self,
        cmd: &str,
        sudo: Option<&Become>,
    ) -> Result<(StreamReader, StreamWriter), TransportError> {
        let (mut rd, wr) = self.start(cmd, sudo).await?;
        let mut gate = BecomeGate::new(sudo);
        let (mut first, mut stderr) = (Vec::new(), Vec::new());
        // Bounded: sudo prints its prompt at most twice before the gate opens or it exits.
        while !gate.is_open() {
            match rd.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    if let Some(rest) = gate.stdout(&data) {
                        first = rest;
                    }
                }
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    let (text, action) = gate.stderr(&data);
                    stderr.extend_from_slice(&text);
                    match action {
                        Some(Write::Password) => {
                            send_password(&wr, sudo.and_then(|b| b.password.as_ref())).await;
                        }
                        Some(Write::Eof) => {
                            let _ = wr.eof().await;
                        }
                        _ => {}
                    }
                }
                Some(ChannelMsg::Close) | None => {
                    let why = if gate.refused {
                        "sudo refused the sudo password (incorrect password)".to_owned()
                    } else {
                        String::from_utf8_lossy(&stderr).trim().to_owned()
                    };
                    return Err(TransportError::new(
                        Phase::Exec,
                        format!("the command ended before it started: {why}"),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok((StreamReader::new(rd, first, &stderr), StreamWriter::new(wr)))
    }

    /// A `direct-tcpip` channel: a TCP connection to `host:port` opened by the SSH server, as
    /// seen from it (`ssh -L` does the same); `from` is reported to the server as the origin.
    pub async fn direct_tcpip(
        &self,
        host: &str,
        port: u16,
        from: std::net::SocketAddr,
    ) -> Result<russh::ChannelStream<client::Msg>, TransportError> {
        let ch = self
            .handle
            .channel_open_direct_tcpip(
                host,
                u32::from(port),
                from.ip().to_string(),
                u32::from(from.port()),
            )
            .await
            .map_err(|e| {
                TransportError::new(
                    Phase::Exec,
                    format!("the SSH server could not open a tunnel to {host}:{port}: {e}"),
                )
            })?;
        Ok(ch.into_stream())
    }

    /// The host key this connection verified, as `ssh-ed25519 AAAA...`.
    #[must_use]
    pub fn host_key(&self) -> Option<&str> {
        self.host_key.as_deref()
    }

    /// Whether the connection has ended.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// The connection's SFTP session, opened on first use; `None` when the host has none
    /// that can replace a file atomically, or with `KAMO_SFTP=0` (see [`super::sftp`]).
    pub async fn sftp(&self) -> Option<std::sync::Arc<super::sftp::Sftp>> {
        if !super::sftp::enabled() {
            return None;
        }
        self.files
            .sftp
            .get_or_init(|| async {
                super::sftp::Sftp::start(&self.handle, self.files.open_timeout)
                    .await
                    .map(std::sync::Arc::new)
            })
            .await
            .clone()
    }

    /// The login user's umask, as a task shell without `become` says it: the one that
    /// said it already, else one started now and kept idle for the next script (a host's
    /// first script would start it anyway). `None` when the host runs no task shell.
    pub async fn login_umask(&self) -> Option<u32> {
        use std::sync::atomic::Ordering;
        if let Some(u) = self.files.umask.get() {
            return Some(*u);
        }
        if self.no_shell.load(Ordering::Relaxed) {
            return None;
        }
        let limit = super::Cutoff::after(Some(self.files.open_timeout));
        match TaskShell::start(self, None, limit).await {
            Ok(Started::Ready(sh)) => self.put_idle(sh).await,
            Ok(Started::Unsupported) => self.no_shell.store(true, Ordering::Relaxed),
            _ => {}
        }
        self.files.umask.get().copied()
    }

    /// Records the login user's umask (from a task shell's ready line).
    pub(super) fn set_login_umask(&self, umask: u32) {
        let _ = self.files.umask.set(umask);
    }

    /// Why the connection ended (a keepalive timeout, the host closing it, a network or
    /// protocol error), once it has; `None` while it is up or when the cause is unknown.
    #[must_use]
    pub fn lost_reason(&self) -> Option<String> {
        self.lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// "the connection was lost" with its cause when known: `what` says when (e.g. "while
    /// the command ran"). Waits briefly for the handler to record the cause, which arrives
    /// just after the channels see the end.
    pub async fn lost_message(&self, what: &str) -> String {
        let said = if what.is_empty() {
            "the connection was lost".to_owned()
        } else {
            format!("the connection was lost {what}")
        };
        for _ in 0..20 {
            if let Some(why) = self.lost_reason() {
                return format!("{said}: {why}");
            }
            if !self.is_closed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        said
    }

    pub async fn close(self) {
        // Idle task shells end on EOF while sshd still waits for them (their exit is then
        // reaped and accounted like any command's), before the connection goes.
        let idle: Vec<TaskShell> = std::mem::take(
            &mut *self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for sh in idle {
            sh.retire().await;
        }
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// How long a timed-out command gets between TERM and KILL.
const KILL_GRACE: Duration = Duration::from_millis(500);

/// How long ending a become command's process group may take (a channel, sudo, `kill`).
const BECOME_KILL_LIMIT: Duration = Duration::from_secs(5);

/// The writing half of an exec: sends what the reader asks for, in order, then EOF.
async fn write_side(
    wr: &russh::ChannelWriteHalf<client::Msg>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Write>,
    password: Option<crate::secret::Secret<String>>,
    stdin: Option<Vec<u8>>,
) {
    while let Some(w) = rx.recv().await {
        match w {
            Write::Password => send_password(wr, password.as_ref()).await,
            Write::Stdin => {
                if let Some(data) = &stdin {
                    // The command may exit without reading stdin; not an error.
                    let _ = wr.data(&data[..]).await;
                }
                let _ = wr.eof().await;
                break;
            }
            Write::Eof => {
                let _ = wr.eof().await;
                break;
            }
        }
    }
}

/// Answers sudo's password prompt: the password and a newline on the channel's stdin (the
/// one way kamo gives sudo a password; never on a command line). Nothing is sent without a
/// password; a write error is left to the reader, which sees the channel end. The copy made
/// for the write is zeroed afterwards.
pub(super) async fn send_password(
    wr: &russh::ChannelWriteHalf<client::Msg>,
    password: Option<&crate::secret::Secret<String>>,
) {
    let Some(pw) = password else { return };
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(pw.expose().len() + 1));
    bytes.extend_from_slice(pw.expose().as_bytes());
    bytes.push(b'\n');
    let _ = wr.data(&bytes[..]).await;
}

/// What the reader asks the writer to send.
pub(super) enum Write {
    Password,
    Stdin,
    Eof,
}

/// Watches a sudo command's first output: answers sudo's prompt once, opens when the
/// command's ready line arrives, and strips both markers from what the user sees.
pub(super) struct BecomeGate<'a> {
    sudo: Option<&'a Become>,
    open: bool,
    prompts: usize,
    pub(super) refused: bool,
    /// The command's process group, from the ready line.
    pgid: Option<u32>,
    out: Vec<u8>,
    err: Vec<u8>,
}

impl<'a> BecomeGate<'a> {
    pub(super) fn new(sudo: Option<&'a Become>) -> Self {
        Self {
            sudo,
            open: sudo.is_none(),
            prompts: 0,
            refused: false,
            pgid: None,
            out: Vec::new(),
            err: Vec::new(),
        }
    }

    pub(super) fn is_open(&self) -> bool {
        self.open
    }

    /// Stdout before the ready line: buffered; returns what follows the line once it came
    /// (and keeps the process group it names).
    pub(super) fn stdout(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        let b = self.sudo?;
        self.out.extend_from_slice(data);
        let line = b.ready_line(&self.out)?;
        self.open = true;
        self.pgid = line.pgid;
        let mut rest = self.out[..line.start].to_vec();
        rest.extend_from_slice(&self.out[line.end..]);
        self.out.clear();
        Some(rest)
    }

    /// Stderr before the ready line: sudo's prompts are answered (once) and removed.
    pub(super) fn stderr(&mut self, data: &[u8]) -> (Vec<u8>, Option<Write>) {
        let Some(b) = self.sudo else {
            return (data.to_vec(), None);
        };
        self.err.extend_from_slice(data);
        let prompt = b.prompt.as_bytes();
        let mut action = None;
        while let Some(pos) = find(&self.err, prompt) {
            self.err.drain(pos..pos + prompt.len());
            self.prompts += 1;
            if self.prompts == 1 {
                action = Some(Write::Password);
            } else {
                // Asked again: the password was wrong. Stop instead of guessing.
                self.refused = true;
                action = Some(Write::Eof);
            }
        }
        // Keep a possible partial prompt at the end; pass the rest through.
        let keep = partial_suffix(&self.err, prompt);
        let text: Vec<u8> = self.err.drain(..self.err.len() - keep).collect();
        (text, action)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Length of the longest end of `hay` that is a proper beginning of `needle`.
pub(super) fn partial_suffix(hay: &[u8], needle: &[u8]) -> usize {
    (1..needle.len().min(hay.len() + 1))
        .rev()
        .find(|&n| hay.ends_with(&needle[..n]))
        .unwrap_or(0)
}

fn signal_name_str(sig: &russh::Sig) -> String {
    let s = format!("{sig:?}");
    s.strip_prefix("Custom(\"")
        .and_then(|r| r.strip_suffix("\")"))
        .map_or(s.clone(), str::to_owned)
}

/// The SHA-2 hash to sign with for an RSA key: asked of the server once per connection
/// (it can cost up to a second), none for other key types. The cache is "not asked yet"
/// (`None`) or the server's answer, which may itself be none.
#[allow(clippy::option_option)]
async fn rsa_hash_for(
    handle: &Handle<Client>,
    is_rsa: bool,
    cache: &mut Option<Option<HashAlg>>,
) -> Result<Option<HashAlg>, russh::Error> {
    if !is_rsa {
        return Ok(None);
    }
    if cache.is_none() {
        *cache = Some(handle.best_supported_rsa_hash().await?.flatten());
    }
    Ok(cache.flatten())
}

/// Tries, in OpenSSH's order: explicit keys (or the default ones), the agent, then a password.
async fn authenticate(
    handle: &mut Handle<Client>,
    target: &Target,
    ctx: &SshContext,
) -> Result<(), TransportError> {
    let user = target.user.clone();
    let mut tried: Vec<String> = Vec::new();
    let auth_err = |e: russh::Error| {
        TransportError::new(
            Phase::Auth,
            format!("{}@{}: {e}", target.user, target.address),
        )
    };
    let files = if target.identity_files.is_empty() {
        &ctx.default_identities
    } else {
        &target.identity_files
    };
    let mut rsa_hash: Option<Option<HashAlg>> = None;
    for path in files {
        let Some(key) = ctx.keys.get(path) else {
            continue;
        };
        let hash = rsa_hash_for(handle, key.algorithm().is_rsa(), &mut rsa_hash)
            .await
            .map_err(auth_err)?;
        let res = handle
            .authenticate_publickey(user.clone(), PrivateKeyWithHashAlg::new(key, hash))
            .await
            .map_err(auth_err)?;
        if res.success() {
            return Ok(());
        }
        tried.push(format!("key {}", path.display()));
    }
    if let Some(sock) = &ctx.agent_socket {
        match AgentClient::connect_uds(sock).await {
            Ok(mut agent) => {
                let ids = agent.request_identities().await.unwrap_or_default();
                for id in ids {
                    let pk = id.public_key().into_owned();
                    let hash = rsa_hash_for(handle, pk.algorithm().is_rsa(), &mut rsa_hash)
                        .await
                        .map_err(auth_err)?;
                    match handle
                        .authenticate_publickey_with(user.clone(), pk, hash, &mut agent)
                        .await
                    {
                        Ok(r) if r.success() => return Ok(()),
                        Ok(_) => tried.push("an agent key".into()),
                        Err(e) => tried.push(format!("an agent key (agent error: {e})")),
                    }
                }
            }
            Err(e) => tracing::debug!("ssh-agent at {} unusable: {e}", sock.display()),
        }
    }
    if let Some(pw) = &target.password {
        let res = handle
            .authenticate_password(user.clone(), pw.expose().clone())
            .await
            .map_err(auth_err)?;
        if res.success() {
            return Ok(());
        }
        tried.push("password".into());
    }
    let tried = if tried.is_empty() {
        "no credentials were available (no key file, agent or password)".to_owned()
    } else {
        format!("rejected: {}", tried.join(", "))
    };
    Err(TransportError::new(
        Phase::Auth,
        format!(
            "permission denied for {}@{}:{} ({tried})",
            target.user, target.address, target.port
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn gate_answers_one_prompt_split_across_packets_and_strips_markers() {
        let b = Become::new(None, Some(Secret::new("pw".into())));
        let mut g = BecomeGate::new(Some(&b));
        let (head, tail) = b.prompt.split_at(5);
        let (t1, a1) = g.stderr(format!("warn\n{head}").as_bytes());
        assert_eq!(t1, b"warn\n");
        assert!(a1.is_none());
        let (t2, a2) = g.stderr(tail.as_bytes());
        assert!(t2.is_empty());
        assert!(matches!(a2, Some(Write::Password)));
        assert!(g.stdout(b"KAMO").is_none());
        let rest = g
            .stdout(format!("{} 4242\nhello\n", &b.ready[4..]).as_bytes())
            .unwrap();
        assert_eq!(rest, b"hello\n");
        assert!(g.is_open());
        assert_eq!(g.pgid, Some(4242));
    }

    #[test]
    fn a_second_prompt_means_a_wrong_password() {
        let b = Become::new(None, Some(Secret::new("pw".into())));
        let mut g = BecomeGate::new(Some(&b));
        assert!(matches!(
            g.stderr(b.prompt.as_bytes()).1,
            Some(Write::Password)
        ));
        let (text, action) = g.stderr(format!("Sorry, try again.\n{}", b.prompt).as_bytes());
        assert_eq!(text, b"Sorry, try again.\n");
        assert!(matches!(action, Some(Write::Eof)));
        assert!(g.refused);
    }

    #[test]
    fn partial_suffix_lengths() {
        assert_eq!(partial_suffix(b"abcPRO", b"PROMPT"), 3);
        assert_eq!(partial_suffix(b"abc", b"PROMPT"), 0);
        assert_eq!(partial_suffix(b"", b"PROMPT"), 0);
    }
}
