//! `kamo lab` run by an ordinary user: the lab runs in a user namespace of its own, or, where
//! this machine does not allow one, the refusal names every missing precondition with the
//! command that provides it.
//!
//! How: `kamo lab up` runs itself again under util-linux's `unshare --user --map-root-user
//! --map-auto` ([`reexec`]): the user becomes root of a new user namespace, and the ids that
//! `/etc/subuid` and `/etc/subgid` grant become its ids 1 and up, so a node's sshd can switch to
//! `ubuntu` and back to root. The supervisor started there keeps the namespace for the lab's
//! life; every node is a mount and UTS namespace inside it, as in the root mode. `status` and
//! `fault` need nothing of it (they talk to the supervisor through files), `down` signals the
//! processes from outside (the namespace's owner may), and `down --purge` removes the files in
//! a namespace of the same mapping, since some are owned by the nodes' `ubuntu`.
//!
//! Why the preconditions are these: at least two mapped ids (root and `ubuntu`) can only be
//! written by the set-uid helpers `newuidmap` and `newgidmap` (package `uidmap`), from the
//! ranges that `/etc/subuid` and `/etc/subgid` grant the user ([`SUBORDINATE_IDS`], what
//! `useradd` grants by default, covers the ids a fresh Ubuntu uses). And the kernel must allow
//! unprivileged user namespaces at all: Debian's `kernel.unprivileged_userns_clone`,
//! `user.max_user_namespaces`, and Ubuntu's AppArmor restriction
//! (`kernel.apparmor_restrict_unprivileged_userns`, 23.10 and later) can each forbid them; a
//! container's seccomp filter can too, which only trying `unshare(CLONE_NEWUSER)` shows.
//!
//! What differs on the nodes (see [`super::node`]): inside the namespace the machine's
//! root-owned files show as owned by `nobody`, so the set-uid `sudo` would not raise privileges
//! and would refuse `/etc/sudoers` and its plugins, and sshd would refuse a `/run/sshd` it does
//! not own. Each node therefore gets a `sudo` and its plugins owned by the namespace's root, its
//! own `/etc/sudoers`, and a `/run` of its own; directories this user cannot read (`/root`) are
//! the node's own instead of overlays. Ports below 1024 stay out of reach (the network is the
//! machine's), so the nodes listen on 2222.

use std::path::Path;

/// How many subordinate ids a user needs (what `useradd` grants by default).
pub const SUBORDINATE_IDS: u64 = 65536;

/// What was read from this machine to decide.
#[derive(Debug, Default, Clone)]
pub struct Probe {
    pub user: String,
    pub uid: u32,
    /// `/proc/sys/kernel/unprivileged_userns_clone` (Debian kernels only), trimmed.
    pub userns_clone: Option<String>,
    /// `/proc/sys/user/max_user_namespaces`, trimmed.
    pub max_user_namespaces: Option<String>,
    /// `/proc/sys/kernel/apparmor_restrict_unprivileged_userns` (Ubuntu kernels), trimmed.
    pub apparmor_restrict: Option<String>,
    /// Why `unshare --user` failed, when it did.
    pub unshare_error: Option<String>,
    pub newuidmap: bool,
    pub newgidmap: bool,
    /// The texts of `/etc/subuid` and `/etc/subgid` (empty when absent).
    pub subuid: String,
    pub subgid: String,
}

/// One precondition that is not met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    UsernsCloneOff,
    MaxUserNamespacesZero,
    AppArmorRestricts,
    UnshareRefused(String),
    NoNewuidmap,
    NoSubuid { file: &'static str, have: u64 },
}

/// Every precondition `probe` shows unmet, in the order to fix them.
#[must_use]
pub fn missing(probe: &Probe) -> Vec<Missing> {
    let mut out = Vec::new();
    if probe.userns_clone.as_deref() == Some("0") {
        out.push(Missing::UsernsCloneOff);
    }
    if probe.max_user_namespaces.as_deref() == Some("0") {
        out.push(Missing::MaxUserNamespacesZero);
    }
    if probe.apparmor_restrict.as_deref() == Some("1") {
        out.push(Missing::AppArmorRestricts);
    }
    if out.is_empty()
        && let Some(e) = &probe.unshare_error
    {
        out.push(Missing::UnshareRefused(e.clone()));
    }
    if !probe.newuidmap || !probe.newgidmap {
        out.push(Missing::NoNewuidmap);
    }
    for (file, text) in [
        ("/etc/subuid", &probe.subuid),
        ("/etc/subgid", &probe.subgid),
    ] {
        let have = subordinate_ids(text, &probe.user, probe.uid);
        if have < SUBORDINATE_IDS {
            out.push(Missing::NoSubuid { file, have });
        }
    }
    out
}

/// How many ids `/etc/subuid`-style `text` grants the user (by name or by uid).
#[must_use]
pub fn subordinate_ids(text: &str, user: &str, uid: u32) -> u64 {
    let uid = uid.to_string();
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            start.parse::<u64>().ok()?;
            ((who == user || who == uid) && !who.is_empty())
                .then(|| count.parse::<u64>().ok())
                .flatten()
        })
        .sum()
}

impl Missing {
    /// What is wrong, and the command that fixes it (run as root, once).
    #[must_use]
    pub fn remedy(&self, user: &str) -> String {
        match self {
            Missing::UsernsCloneOff => "unprivileged user namespaces are disabled \
                (kernel.unprivileged_userns_clone = 0): `sysctl -w kernel.unprivileged_userns_clone=1`"
                .into(),
            Missing::MaxUserNamespacesZero => "user namespaces are disabled \
                (user.max_user_namespaces = 0): `sysctl -w user.max_user_namespaces=15000`"
                .into(),
            Missing::AppArmorRestricts => "AppArmor restricts unprivileged user namespaces \
                (kernel.apparmor_restrict_unprivileged_userns = 1): \
                `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`, or an AppArmor \
                profile for kamo that allows `userns,`"
                .into(),
            Missing::UnshareRefused(e) => format!(
                "the kernel refused a user namespace ({e}); in a container, its seccomp \
                 profile or runtime must allow unshare(CLONE_NEWUSER)"
            ),
            Missing::NoNewuidmap => "newuidmap and newgidmap are not installed: \
                `apt-get install uidmap`"
                .into(),
            Missing::NoSubuid { file, have } => format!(
                "{file} grants {user} {have} subordinate ids, {SUBORDINATE_IDS} are needed: \
                 `usermod --add-{kind}s 100000-165535 {user}` (any free range of \
                 {SUBORDINATE_IDS})",
                kind = if file.ends_with("subgid") {
                    "subgid"
                } else {
                    "subuid"
                },
            ),
        }
    }
}

/// The refusal for an ordinary user on a machine that lacks something the user-namespace
/// mode needs: what, and how to get it (or to run as root).
#[must_use]
pub fn refusal(probe: &Probe) -> String {
    let mut text = format!(
        "kamo lab cannot run as {}: an ordinary user's lab runs in a user namespace, and this \
         machine lacks what that needs (or run kamo lab as root, with sudo):",
        probe.user
    );
    for m in &missing(probe) {
        text.push_str("\n  - ");
        text.push_str(&m.remedy(&probe.user));
    }
    text
}

/// Set for a `kamo lab` command that [`reexec`] runs inside a lab's user namespace.
pub const ENV: &str = "KAMO_LAB_USERNS";

/// Whether this process runs in a user namespace other than the machine's own.
#[must_use]
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
}

/// Whether this is a `kamo lab` command that [`reexec`] started as the namespace's root.
#[must_use]
pub fn inside() -> bool {
    std::env::var_os(ENV).is_some() && in_user_namespace()
}

/// Runs this kamo again with `args`, as root of a new user namespace that maps the caller to
/// root and its subordinate ids to 1 and up; waits for it and returns its exit code. What it
/// prints goes straight to this process's terminal.
pub fn reexec(args: &[std::ffi::OsString]) -> Result<i32, crate::error::Error> {
    use crate::error::Error;
    let exe = std::env::current_exe()
        .map_err(|e| Error::Other(format!("cannot find the kamo binary: {e}")))?;
    let status = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--map-auto", "--"])
        .arg(exe)
        .args(args)
        .env(ENV, "1")
        .status()
        .map_err(|e| {
            Error::Other(format!(
                "cannot run unshare (util-linux) for the lab's user namespace: {e}"
            ))
        })?;
    Ok(status.code().unwrap_or(1))
}

/// Reads this machine's settings for the current user.
#[must_use]
pub fn probe() -> Probe {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let sysctl = |p: &str| read(p).map(|s| s.trim().to_owned());
    let uid = nix::unistd::getuid();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name);
    let on_path = |tool: &str| {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain(["/usr/bin".into(), "/bin".into()])
            .any(|d| Path::new(&d).join(tool).is_file())
    };
    Probe {
        user,
        uid: uid.as_raw(),
        userns_clone: sysctl("/proc/sys/kernel/unprivileged_userns_clone"),
        max_user_namespaces: sysctl("/proc/sys/user/max_user_namespaces"),
        apparmor_restrict: sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        unshare_error: try_unshare(),
        newuidmap: on_path("newuidmap"),
        newgidmap: on_path("newgidmap"),
        subuid: read("/etc/subuid").unwrap_or_default(),
        subgid: read("/etc/subgid").unwrap_or_default(),
    }
}

/// Tries `unshare(CLONE_NEWUSER)` in a child process, util-linux's `unshare --user true`
/// (the caller has threads, which unshare refuses, and kamo forbids the `unsafe` a `pre_exec`
/// would need). Not knowing (no util-linux) is not an obstacle reported.
fn try_unshare() -> Option<String> {
    let out = std::process::Command::new("unshare")
        .args(["--user", "true"])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    if out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    Some(if text.is_empty() {
        format!("`unshare --user true` ended with {}", out.status)
    } else {
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> Probe {
        Probe {
            user: "alice".into(),
            uid: 1000,
            max_user_namespaces: Some("15000".into()),
            newuidmap: true,
            newgidmap: true,
            subuid: "alice:100000:65536\n".into(),
            subgid: "1000:100000:65536\n".into(),
            ..Probe::default()
        }
    }

    #[test]
    fn a_ready_machine_lacks_nothing() {
        assert!(missing(&ready()).is_empty());
    }

    #[test]
    fn each_disabled_knob_is_named_with_its_sysctl() {
        let p = Probe {
            userns_clone: Some("0".into()),
            max_user_namespaces: Some("0".into()),
            apparmor_restrict: Some("1".into()),
            unshare_error: Some("EPERM".into()),
            ..ready()
        };
        // The refused unshare is explained by the knobs, so it is not listed on its own.
        assert_eq!(
            missing(&p),
            [
                Missing::UsernsCloneOff,
                Missing::MaxUserNamespacesZero,
                Missing::AppArmorRestricts
            ]
        );
        let text = refusal(&p);
        for s in [
            "sysctl -w kernel.unprivileged_userns_clone=1",
            "sysctl -w user.max_user_namespaces=15000",
            "kernel.apparmor_restrict_unprivileged_userns=0",
        ] {
            assert!(text.contains(s), "{s} missing in {text}");
        }
        // Knobs set the other way are no obstacle.
        let p = Probe {
            userns_clone: Some("1".into()),
            apparmor_restrict: Some("0".into()),
            ..ready()
        };
        assert!(missing(&p).is_empty());
    }

    #[test]
    fn a_seccomp_refusal_shows_when_no_knob_explains_it() {
        let p = Probe {
            unshare_error: Some("Operation not permitted (os error 1)".into()),
            ..ready()
        };
        assert_eq!(
            missing(&p),
            [Missing::UnshareRefused(
                "Operation not permitted (os error 1)".into()
            )]
        );
        assert!(refusal(&p).contains("seccomp"));
    }

    #[test]
    fn helpers_and_subordinate_ranges() {
        let p = Probe {
            newgidmap: false,
            subuid: "bob:100000:65536\nalice:200000:1000\n".into(),
            subgid: String::new(),
            ..ready()
        };
        assert_eq!(
            missing(&p),
            [
                Missing::NoNewuidmap,
                Missing::NoSubuid {
                    file: "/etc/subuid",
                    have: 1000
                },
                Missing::NoSubuid {
                    file: "/etc/subgid",
                    have: 0
                },
            ]
        );
        let text = refusal(&p);
        assert!(text.contains("apt-get install uidmap"), "{text}");
        assert!(
            text.contains("usermod --add-subuids 100000-165535 alice"),
            "{text}"
        );
        assert!(
            text.contains("usermod --add-subgids 100000-165535 alice"),
            "{text}"
        );
        assert!(text.contains("/etc/subuid grants alice 1000"), "{text}");
    }

    #[test]
    fn subordinate_ranges_add_up_by_name_or_uid_and_skip_garbage() {
        let text = "alice:100000:30000\n1000:200000:35536\n\
                    alice:x:9\nalicia:1:65536\n:1:65536\nalice:300000\n";
        assert_eq!(subordinate_ids(text, "alice", 1000), 65536);
        assert_eq!(subordinate_ids(text, "bob", 1001), 0);
    }
}
