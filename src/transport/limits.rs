//! Open files: every SSH connection is a socket, so a run over 1,000 hosts needs more than the
//! 1,024 descriptors most systems give a process by default.
//!
//! kamo raises its soft `RLIMIT_NOFILE` to the hard limit when it starts ([`raise`]), as
//! OpenSSH's and Go's tools do; an unprivileged process may do that much. Before a fan-out it
//! checks that the connections it will hold at once fit ([`check`]), and refuses with the
//! figures and the fix when they do not, instead of failing host after host with "Too many
//! open files" halfway through a run.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::error::Error;

/// Descriptors kept for everything but connections: stdio, the journal, logs, key files,
/// the runtime's own.
pub const RESERVED: u64 = 64;

/// Raises the soft limit to the hard one; returns the soft limit now in force.
#[must_use = "the limit now in force"]
pub fn raise() -> u64 {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// Checks that `connections` sockets held at once (one per host in flight; two through a
/// jump host) fit under the soft limit.
pub fn check(connections: usize) -> Result<(), Error> {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return Ok(());
    };
    let need = u64::try_from(connections)
        .unwrap_or(u64::MAX)
        .saturating_add(RESERVED);
    if need <= soft {
        return Ok(());
    }
    Err(Error::Other(format!(
        "{connections} connections at once need about {need} open files, but this process may \
         open {soft} (hard limit {hard}); nothing was started. Raise the limit (`ulimit -n \
         {need}` in this shell, or `nofile` in /etc/security/limits.conf) or lower --forks"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_reaches_the_hard_one_and_small_fan_outs_fit() {
        let now = raise();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(now, soft);
        assert_eq!(soft, hard);
        check(10).unwrap();
        let e = check(usize::MAX).unwrap_err().to_string();
        assert!(e.contains("ulimit -n") && e.contains("--forks"), "{e}");
    }
}
