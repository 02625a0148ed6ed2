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

/// How a command is run with privilege escalation (sudo), and what goes on its stdin.
///
/// The password, if any, is written to sudo's stdin (`-S`), never placed on the command line;
/// `-p ''` keeps sudo's prompt out of stderr. Without a password, `-n` makes sudo fail at once
/// instead of waiting for a prompt no one will answer.
pub fn become_command(
    cmd: &str,
    user: Option<&str>,
    password: Option<&Secret<String>>,
) -> Result<(String, Option<Vec<u8>>), String> {
    let mut line = String::from("sudo ");
    let stdin = if let Some(pw) = password {
        line.push_str("-S -p '' ");
        let mut bytes = pw.expose().clone().into_bytes();
        bytes.push(b'\n');
        Some(bytes)
    } else {
        line.push_str("-n ");
        None
    };
    if let Some(u) = user {
        line.push_str("-u ");
        line.push_str(&quote(u)?);
        line.push(' ');
    }
    line.push_str("-- /bin/sh -c ");
    line.push_str(&quote(cmd)?);
    Ok((line, stdin))
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
    fn become_puts_password_on_stdin_only() {
        let pw = Secret::new("s3cr3t".to_owned());
        let (line, stdin) = become_command("id -u", Some("root"), Some(&pw)).unwrap();
        assert!(!line.contains("s3cr3t"));
        assert_eq!(line, "sudo -S -p '' -u root -- /bin/sh -c 'id -u'");
        assert_eq!(stdin.unwrap(), b"s3cr3t\n");
        let (line, stdin) = become_command("true", None, None).unwrap();
        assert_eq!(line, "sudo -n -- /bin/sh -c true");
        assert!(stdin.is_none());
    }
}
