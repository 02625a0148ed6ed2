//! Shell quoting for command lines sent to a remote POSIX shell.
//!
//! Uses the `shlex` crate (the quoting half of Python's `shlex`, maintained and fuzzed) rather
//! than hand-written escaping: a wrong quote here is remote code execution on every node.
//! Arguments with NUL bytes cannot be passed to a shell at all and are refused.

use crate::secret::Secret;

/// Quotes one argument for a POSIX shell.
pub fn quote(arg: &str) -> Result<String, String> {
    shlex::try_quote(arg)
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| format!("argument contains a NUL byte: {arg:?}"))
}

/// Joins an argv into one shell command line, each word quoted.
pub fn join<S: AsRef<str>>(argv: &[S]) -> Result<String, String> {
    argv.iter()
        .map(|a| quote(a.as_ref()))
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.join(" "))
}

/// Privilege escalation (sudo) for one command.
///
/// The password is never placed on a command line. sudo is told to print a unique prompt
/// (`-p`), and the command first prints a unique "ready" line: the transport answers the prompt
/// with the password only when sudo really asks, and sends the command's own stdin only after
/// the ready line. Writing the password blindly to stdin (as `echo pw | sudo -S` does) would
/// hand it to the command itself whenever sudo does not ask (NOPASSWD, cached credentials).
///
/// The ready line also carries the process group of the shell sudo started (read from
/// `/proc/$$/stat` by the shell's own `read`, no extra process; empty where there is no
/// `/proc`). Why: at a time limit or Ctrl-C the transport signals the command's session, but
/// sudo runs the command in a session of its own when it uses a pty (`Defaults use_pty`,
/// Debian's and Ubuntu's default) and as another user in any case, so a KILL from the login
/// user reaches sudo only, and a command that ignores TERM would outlive its limit. Knowing the
/// group, the transport ends it as the become user ([`Become::kill_group`]), whether or not sudo
/// used a pty: without one the group is sudo's own, which the same kill ends too.
#[derive(Debug, Clone)]
pub struct Become {
    pub user: Option<String>,
    pub password: Option<Secret<String>>,
    /// Unique per run: what sudo prints to ask for the password.
    pub prompt: String,
    /// Unique per run: what the command prints once sudo let it start.
    pub ready: String,
}

impl Become {
    /// A become setting with fresh random markers.
    #[must_use]
    pub fn new(user: Option<String>, password: Option<Secret<String>>) -> Self {
        let tag = random_tag();
        Self {
            user,
            password,
            prompt: format!("[kamo-sudo-{tag}] password:"),
            ready: format!("KAMO-BECOME-READY-{tag}"),
        }
    }

    /// The command line that runs `cmd` through sudo.
    pub fn wrap(&self, cmd: &str) -> Result<String, String> {
        let mut line = String::from("sudo ");
        if self.password.is_some() {
            line.push_str("-S -p ");
            line.push_str(&quote(&self.prompt)?);
            line.push(' ');
        } else {
            // No password to give: fail at once instead of waiting for a prompt.
            line.push_str("-n ");
        }
        if let Some(u) = &self.user {
            line.push_str("-u ");
            line.push_str(&quote(u)?);
            line.push(' ');
        }
        // Field 5 of /proc/PID/stat is the process group; the shell's `comm` ("sh") has no
        // space, so `read` splits the fields right. Its variables are unset before `cmd`.
        let inner = format!(
            "read -r kamo_x kamo_x kamo_x kamo_x kamo_pgid kamo_x 2>/dev/null </proc/$$/stat; \
             echo {} ${{kamo_pgid:-}}; unset kamo_x kamo_pgid; {cmd}",
            self.ready
        );
        line.push_str("-- /bin/sh -c ");
        line.push_str(&quote(&inner)?);
        Ok(line)
    }
}

/// Where the ready line is in `out`, once it is there: its byte range (newline included) and
/// the process group it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyLine {
    pub start: usize,
    pub end: usize,
    pub pgid: Option<u32>,
}

impl Become {
    /// Finds the ready line in the command's first output (see [`Become`]).
    #[must_use]
    pub fn ready_line(&self, out: &[u8]) -> Option<ReadyLine> {
        let marker = self.ready.as_bytes();
        let start = out.windows(marker.len()).position(|w| w == marker)?;
        let after = start + marker.len();
        let len = out[after..].iter().position(|&b| b == b'\n')?;
        let pgid = std::str::from_utf8(&out[after..after + len])
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            // Group 0 or 1 would be every process / init's: never a command's.
            .filter(|&g| g > 1);
        Some(ReadyLine {
            start,
            end: after + len + 1,
            pgid,
        })
    }

    /// The command that ends process group `pgid`, to be run through this same [`Become`]
    /// (as the become user, who may signal the command when the login user may not).
    #[must_use]
    pub fn kill_group(pgid: u32) -> String {
        format!("kill -s KILL -- -{pgid}")
    }
}

/// 64 random bits as hex, from the OS's hasher seed (no extra dependency for a marker).
#[must_use]
pub fn random_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_data_as_data() {
        assert_eq!(
            join(&["echo", "a b", "$(id)", "it's"]).unwrap(),
            r#"echo 'a b' '$(id)' "it's""#
        );
        assert_eq!(quote("plain").unwrap(), "plain");
        assert!(quote("nul\0byte").is_err());
    }

    #[test]
    fn become_never_puts_the_password_on_the_command_line() {
        let b = Become::new(Some("root".into()), Some(Secret::new("s3cr3t".to_owned())));
        let line = b.wrap("id -u").unwrap();
        assert!(!line.contains("s3cr3t"));
        assert!(line.starts_with("sudo -S -p '[kamo-sudo-"), "{line}");
        assert!(line.contains("-u root -- /bin/sh -c 'read -r "), "{line}");
        assert!(
            line.ends_with(&format!(
                "echo {} ${{kamo_pgid:-}}; unset kamo_x kamo_pgid; id -u'",
                b.ready
            )),
            "{line}"
        );
        let b = Become::new(None, None);
        assert!(
            b.wrap("true")
                .unwrap()
                .starts_with("sudo -n -- /bin/sh -c ")
        );
        assert_ne!(Become::new(None, None).ready, b.ready, "markers are unique");
    }
}

#[cfg(test)]
mod ready {
    use super::*;

    /// The wrapped line run by a real `/bin/sh` (sudo taken off): the ready line names the
    /// shell's own process group, and the command's variables are untouched.
    #[test]
    fn the_ready_line_names_the_shells_process_group() {
        use std::os::unix::process::CommandExt;
        let b = Become::new(None, None);
        let line = b.wrap("echo \"[${kamo_pgid-unset}]\"").unwrap();
        let sh = line.strip_prefix("sudo -n -- ").unwrap();
        #[allow(clippy::disallowed_methods)]
        let child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("exec {sh}"))
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let leader = child.id();
        let out = child.wait_with_output().unwrap();
        let r = b.ready_line(&out.stdout).unwrap();
        assert_eq!(r.start, 0);
        // The shell leads the group it was started in (process_group(0), then exec).
        assert_eq!(r.pgid, Some(leader));
        assert_eq!(&out.stdout[r.end..], b"[unset]\n");
        assert!(out.stderr.is_empty(), "{out:?}");
    }

    #[test]
    fn ready_lines_without_a_group_or_split_are_read_right() {
        let b = Become::new(None, None);
        let text = format!("before\n{} \nafter", b.ready);
        let r = b.ready_line(text.as_bytes()).unwrap();
        assert_eq!(r.pgid, None);
        assert_eq!(&text.as_bytes()[r.end..], b"after");
        assert_eq!(&text.as_bytes()[..r.start], b"before\n");
        assert_eq!(b.ready_line(format!("{} 42", b.ready).as_bytes()), None);
        for (shown, want) in [
            ("42", Some(42)),
            ("1", None),
            ("0", None),
            ("-5", None),
            ("x", None),
        ] {
            let t = format!("{} {shown}\n", b.ready);
            assert_eq!(b.ready_line(t.as_bytes()).unwrap().pgid, want, "{shown}");
        }
        assert_eq!(Become::kill_group(42), "kill -s KILL -- -42");
    }

    /// The kill command, run by `/bin/sh` (dash here: its `kill` takes no `-KILL --`), ends
    /// a whole group whose members ignore TERM.
    #[test]
    fn kill_group_ends_a_group_that_ignores_term() {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        #[allow(clippy::disallowed_methods)]
        let mut group = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg("trap '' TERM; sleep 30 & sleep 31; wait")
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        #[allow(clippy::disallowed_methods)]
        let kill = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(Become::kill_group(group.id()))
            .output()
            .unwrap();
        assert!(kill.status.success(), "{kill:?}");
        let status = group.wait().unwrap();
        assert_eq!(status.signal(), Some(9));
    }
}

/// Property: any argument without NUL, quoted, reaches a real `/bin/sh` as exactly that
/// argument (one word, nothing run), alone and joined with others.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    /// What `sh -c 'printf "%s\0" LINE'` prints for each word.
    fn words_through_sh(line: &str) -> Vec<String> {
        #[allow(clippy::disallowed_methods)]
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("printf '%s\\0' {line}"))
            .env_clear()
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}: {out:?}");
        let mut words: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split('\0')
            .map(str::to_owned)
            .collect();
        assert_eq!(words.pop().as_deref(), Some(""));
        words
    }

    proptest! {
        #[test]
        fn quoted_words_reach_sh_as_data(
            words in proptest::collection::vec(
                prop_oneof![
                    "[^\0]{0,40}",
                    crate::props::soup(&["'", "\"", "$(", ")", "`", ";", "\n", " ", "\\", "$", "*", "~", "#", "&", "|", "!"], 12),
                ],
                1..4,
            )
        ) {
            // NUL cannot be an argument at all (refused by `quote`, tested on its own): it is
            // taken out rather than the case rejected, as rejections abort a 100,000-case run.
            let words: Vec<String> = words.iter().map(|w| w.replace('\0', "")).collect();
            let line = join(&words).unwrap();
            prop_assert_eq!(words_through_sh(&line), words);
        }
    }
}
