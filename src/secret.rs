//! A wrapper for values that must never be printed: passwords, passphrases, DB URLs.
//!
//! `Debug` and `Display` print `********`, so a secret that reaches a log line, an error chain
//! or a `{:?}` by accident still leaks nothing. The only way to the value is [`Secret::expose`],
//! which is easy to grep for in review.
//!
//! Which variables are secret is decided by name ([`is_secret_var`]): fixed rules that cannot
//! be turned off, plus the operator's own glob patterns (`--secret-vars`, `$KAMO_SECRET_VARS`).
//! The patterns are installed once per process before anything is loaded, like the vault
//! keyring ([`crate::vault::keyring`]), because the check runs in a dozen places (the journal's
//! redactor, plans, inventory listings, extra vars on the command line) that a parameter would
//! have to reach one by one; a forgotten one would leak.

use std::fmt;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The text printed in place of any secret.
pub const REDACTED: &str = "********";

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value itself: only for handing it to the peer that needs it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for Secret<String> {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// The environment variable of extra secret-name patterns (comma-separated globs).
pub const PATTERNS_ENV: &str = "KAMO_SECRET_VARS";

/// The operator's secret-name patterns, lowercased; set once by [`install_patterns`].
static PATTERNS: OnceLock<Vec<String>> = OnceLock::new();

/// Checks and installs the extra secret-name patterns: `given` (the `--secret-vars` flags)
/// followed by those of `$KAMO_SECRET_VARS`. The first call wins, so a command installs them
/// before it reads any variable. An empty pattern is refused (it would match nothing, and is
/// most likely a typo such as a trailing comma) with exit 5.
pub fn install_patterns(given: &[String]) -> Result<()> {
    let mut all = Vec::new();
    for p in given {
        all.push(checked(p, "--secret-vars")?);
    }
    if let Some(env) = std::env::var_os(PATTERNS_ENV) {
        let env = env.to_string_lossy();
        if !env.trim().is_empty() {
            for p in env.split(',') {
                all.push(checked(p, &format!("${PATTERNS_ENV}"))?);
            }
        }
    }
    all.sort();
    all.dedup();
    let _ = PATTERNS.set(all);
    Ok(())
}

fn checked(pattern: &str, source: &str) -> Result<String> {
    let p = pattern.trim();
    if p.is_empty() {
        return Err(Error::Usage(format!(
            "{source}: empty secret-name pattern (give a glob such as '*_credential'; `*` \
             matches any characters, `?` one)"
        )));
    }
    Ok(p.to_lowercase())
}

/// The extra secret-name patterns in force (recorded with a run, so that its resume hides
/// the same variables).
#[must_use]
pub fn patterns() -> &'static [String] {
    PATTERNS.get().map_or(&[], Vec::as_slice)
}

/// Whether `name` matches the glob `pattern` (`*` any run of characters, `?` one character,
/// anything else itself), case-insensitively.
#[must_use]
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    // Iterative matching with one backtrack point (the last `*`): linear in practice and
    // never exponential, whatever the pattern.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Variable names whose values are secrets wherever they appear (inventory listings, logs):
/// the fixed rules, then the installed patterns ([`install_patterns`]).
#[must_use]
pub fn is_secret_var(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    builtin_secret_name(&n) || patterns().iter().any(|p| glob_matches(p, &n))
}

/// The rules no configuration turns off.
fn builtin_secret_name(n: &str) -> bool {
    n.contains("password")
        || n.contains("passwd")
        || n.contains("secret")
        || n.contains("token")
        || n.ends_with("_key")
        || n == "ansible_ssh_pass"
        || n == "ansible_pass"
        || n == "ansible_become_pass"
        || n == "ansible_sudo_pass"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{s:?} {s}"), "******** ********");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn secret_names() {
        for n in [
            "ansible_password",
            "ansible_become_password",
            "db_passwd",
            "api_token",
            "ansible_ssh_pass",
            "aws_secret",
            "minio_access_key",
        ] {
            assert!(is_secret_var(n), "{n}");
        }
        for n in [
            "ansible_host",
            "ansible_user",
            "ansible_ssh_private_key_file",
            "keyboard",
        ] {
            assert!(!is_secret_var(n), "{n}");
        }
    }

    #[test]
    fn globs() {
        for (p, n) in [
            ("*_credential", "site_credential"),
            ("*_credential", "SITE_Credential"),
            ("*_CREDENTIAL", "site_credential"),
            ("site_*", "site_"),
            ("*", ""),
            ("*", "anything"),
            ("a?c", "abc"),
            ("a*b*c", "axxbyyc"),
            ("a*b*c", "abc"),
            ("*cred*", "my_credentials"),
            ("??", "ab"),
            ("exact", "exact"),
            ("a**b", "ab"),
            ("*ab", "aab"),
            ("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaab"),
        ] {
            assert!(glob_matches(p, n), "{p} should match {n}");
        }
        for (p, n) in [
            ("*_credential", "credential"),
            ("*_credential", "site_credentials"),
            ("a?c", "ac"),
            ("a?c", "abbc"),
            ("??", "a"),
            ("exact", "exactly"),
            ("exact", "inexact"),
            ("a*b*c", "acb"),
            ("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("x", ""),
        ] {
            assert!(!glob_matches(p, n), "{p} should not match {n}");
        }
    }

    #[test]
    fn patterns_are_checked() {
        assert!(matches!(checked("", "--secret-vars"), Err(Error::Usage(_))));
        let e = checked("  ", "--secret-vars").unwrap_err();
        assert_eq!(e.exit_code() as u8, 5);
        assert!(e.to_string().contains("empty secret-name pattern"), "{e}");
        assert_eq!(checked(" *_Cred ", "x").unwrap(), "*_cred");
    }
}
