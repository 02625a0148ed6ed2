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
        let inner = format!("echo {}; {cmd}", self.ready);
        line.push_str("-- /bin/sh -c ");
        line.push_str(&quote(&inner)?);
        Ok(line)
    }
}

/// 64 random bits as hex, from the OS's hasher seed (no extra dependency for a marker).
fn random_tag() -> String {
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
        assert!(
            line.contains(&format!("-u root -- /bin/sh -c 'echo {}; id -u'", b.ready)),
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
