//! A wrapper for values that must never be printed: passwords, passphrases, DB URLs.
//!
//! `Debug` and `Display` print `********`, so a secret that reaches a log line, an error chain
//! or a `{:?}` by accident still leaks nothing. The only way to the value is [`Secret::expose`],
//! which is easy to grep for in review.

use std::fmt;

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

/// Variable names whose values are secrets wherever they appear (inventory listings, logs).
#[must_use]
pub fn is_secret_var(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
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
}
