//! Building blocks for module scripts: quoting, the prelude, the result line.
//!
//! Scripts are plain POSIX sh (dash on Debian/Ubuntu): no bashisms, only coreutils. Every
//! value from a playbook enters a script through [`q`] (single-quoting via `shlex`), never by
//! string pasting, so a path or variable holding `'`, `$()`, `;` or a newline stays data.

use serde_json::{Map, Value};

use super::{ArgError, MARKER};
use crate::playbook::model::Module;

/// Quotes one word for sh. NUL bytes cannot be passed to a shell and are replaced by an
/// error at argument time ([`arg_str`] refuses them).
#[must_use]
pub fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_q(&mut out, s);
    out
}

/// Appends [`q`]`(s)` to `out`, byte for byte what `shlex` gives. Module scripts quote
/// thousands of words per plan, so the common case is done here: a word without `'`, `^`,
/// `\` or NUL is one `shlex` chunk, left bare when every byte may be, else single-quoted.
/// Anything else goes through `shlex` itself.
pub fn push_q(out: &mut String, s: &str) {
    let b = s.as_bytes();
    if !b.is_empty() && !b.iter().any(|&c| matches!(c, b'\'' | b'^' | b'\\' | 0)) {
        if b.iter().all(|&c| bare_ok(c)) {
            out.push_str(s);
        } else {
            out.push('\'');
            out.push_str(s);
            out.push('\'');
        }
        return;
    }
    match shlex::try_quote(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("''"),
    }
}

/// The bytes `shlex` leaves unquoted.
fn bare_ok(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.' | b'/' | b':' | b'@' | b']' | b'_')
}

/// The start of every script: strict unset-variable errors, a result helper, a sane umask-free
/// environment (`LC_ALL=C` so tool output parses the same everywhere).
#[must_use]
pub fn prelude() -> String {
    // Room for a typical module script, so building it does not reallocate as it grows.
    let mut s = String::with_capacity(8192);
    s.push_str(&PRELUDE);
    s
}

/// [`prelude`], built once.
static PRELUDE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "set -u\nLC_ALL=C; export LC_ALL\nkamo_result() {{ printf '\\n%s %s\\n' '{MARKER}' \"$1\"; }}\n"
    )
});

/// A result line with a JSON object known on the controller (no shell values inside).
#[must_use]
pub fn result_static(fields: &Map<String, Value>) -> String {
    format!(
        "kamo_result {}\n",
        q(&Value::Object(fields.clone()).to_string())
    )
}

/// A string argument; numbers and booleans are accepted and printed as Ansible would.
pub fn arg_str(
    module: Module,
    args: &Map<String, Value>,
    key: &str,
) -> Result<Option<String>, ArgError> {
    let s = match args.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(_) => return Err(ArgError::new(module, format!("`{key}` must be a string"))),
    };
    if s.contains('\0') {
        return Err(ArgError::new(
            module,
            format!("`{key}` contains a NUL byte"),
        ));
    }
    Ok(Some(s))
}

/// A boolean argument in Ansible's spellings (`yes`/`no`, `true`/`false`, `1`/`0`, `on`/`off`).
pub fn arg_bool(
    module: Module,
    args: &Map<String, Value>,
    key: &str,
    default: bool,
) -> Result<bool, ArgError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => as_bool(v)
            .ok_or_else(|| ArgError::new(module, format!("`{key}` must be a boolean, not {v}"))),
    }
}

/// Ansible's truthiness for boolean-typed values.
#[must_use]
pub fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "1" | "y" | "t" => Some(true),
            "no" | "false" | "off" | "0" | "n" | "f" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Refuses arguments the module does not know, naming them, so a typo is not silently ignored.
pub fn known_args(
    module: Module,
    args: &Map<String, Value>,
    known: &[&str],
) -> Result<(), ArgError> {
    let unknown: Vec<&str> = args
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k) && *k != "_raw_params")
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ArgError::new(
            module,
            format!(
                "unsupported argument(s): {}; supported: {}",
                unknown.join(", "),
                known.join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_in_ansible_spellings() {
        for (v, b) in [
            ("yes", true),
            ("No", false),
            ("on", true),
            ("0", false),
            ("True", true),
        ] {
            assert_eq!(as_bool(&Value::String(v.into())), Some(b), "{v}");
        }
        assert_eq!(as_bool(&Value::String("maybe".into())), None);
    }

    #[test]
    fn quoting_matches_shlex() {
        let words = [
            "",
            "a",
            "abc-1.2/x:y@z]_+",
            "a b",
            "a'b",
            "^a",
            "a^b",
            "a\\b",
            "a\0b",
            "é",
            "a\nb",
            "{\"failed\":true,\"msg\":\"copy: cannot write\"}",
            "$(x) `y`",
            "a!b",
            "a,b",
            "~",
            "x=1",
            "'",
            "\"",
            "a\"b'c",
            "\u{a0}",
            "tab\there",
            "\x7f",
            "%s",
            "#",
        ];
        for w in words {
            let want =
                shlex::try_quote(w).map_or_else(|_| "''".to_owned(), std::borrow::Cow::into_owned);
            assert_eq!(q(w), want, "{w:?}");
        }
        // Every pair of ASCII bytes and a few non-ASCII ones, alone and in context.
        let mut alphabet: Vec<char> = (0u8..128).map(char::from).collect();
        alphabet.extend(['é', '\u{a0}', '€']);
        for a in &alphabet {
            for b in &alphabet {
                for w in [format!("{a}{b}"), format!("x{a}y{b}z")] {
                    let want = shlex::try_quote(&w)
                        .map_or_else(|_| "''".to_owned(), std::borrow::Cow::into_owned);
                    assert_eq!(q(&w), want, "{w:?}");
                }
            }
        }
    }

    #[test]
    fn quoting_is_data() {
        assert_eq!(q("a'b"), r#""a'b""#);
        assert_eq!(q("$(reboot)"), "'$(reboot)'");
    }
}
