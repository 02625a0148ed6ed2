//! Keeping secrets out of the journal: the command line, extra vars, and task output.
//!
//! Secrets are known by name (variables whose name says password, token, secret or key, see
//! [`crate::secret::is_secret_var`]) and by value: every value of such a variable, in the
//! extra vars or the inventory, is replaced wherever it appears in what is stored. Every value
//! decrypted from an Ansible vault is a secret whatever its name: [`Redactor`] also replaces
//! those [`crate::vault::keyring::revealed`] so far, including ones revealed after it was made
//! (an `include_vars` of a vault file at run time).

use serde_json::{Map, Value};

use crate::secret::{REDACTED, is_secret_var};

/// Replaces the values of secret-named keys, at any depth.
#[must_use]
pub fn redact_value(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if is_secret_var(k) {
                        Value::String(REDACTED.into())
                    } else {
                        redact_value(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact_value).collect()),
        // A value decrypted from a vault (an `-e @vault.yml`) is left out whatever its name.
        Value::String(s) if Redactor::default().redact(s).is_some() => {
            Value::String(REDACTED.into())
        }
        other => other.clone(),
    }
}

/// The keys of `vars` whose values were left out by [`redact_value`] (by name, or because
/// they hold a vault-decrypted value).
#[must_use]
pub fn secret_keys(vars: &Map<String, Value>) -> Vec<String> {
    let r = Redactor::default();
    vars.iter()
        .filter(|(k, v)| is_secret_var(k) || r.redact_json(v).is_some())
        .map(|(k, _)| k.clone())
        .collect()
}

/// A URL's password (`scheme://user:password@host`) replaced.
#[must_use]
pub fn redact_url(s: &str) -> String {
    let Some(scheme_end) = s.find("://") else {
        return s.to_owned();
    };
    let rest = &s[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return s.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return s.to_owned();
    };
    format!(
        "{}://{}:{REDACTED}{}",
        &s[..scheme_end],
        &userinfo[..colon],
        &rest[at..]
    )
}

/// The command line as it is stored: `-e` values with secret names, and URL passwords, hidden.
#[must_use]
pub fn redact_argv(args: &[String]) -> String {
    let mut out = Vec::with_capacity(args.len());
    let mut extra_next = false;
    for a in args {
        let (prefix, value) = if extra_next {
            extra_next = false;
            ("", Some(a.as_str()))
        } else if a == "-e" || a == "--extra-vars" {
            extra_next = true;
            out.push(a.clone());
            continue;
        } else if let Some(v) = a.strip_prefix("--extra-vars=") {
            ("--extra-vars=", Some(v))
        } else if let Some(v) = a.strip_prefix("-e").filter(|v| !v.is_empty()) {
            ("-e", Some(v))
        } else {
            ("", None)
        };
        let shown = match value {
            Some(v) => format!("{prefix}{}", redact_extra_arg(v)),
            None => redact_url(a),
        };
        out.push(shlex::try_quote(&shown).map_or(shown.clone(), std::borrow::Cow::into_owned));
    }
    out.join(" ")
}

fn redact_extra_arg(v: &str) -> String {
    let t = v.trim();
    if t.starts_with('@') {
        return v.to_owned();
    }
    if t.starts_with('{') {
        return match serde_yaml::from_str::<Value>(t) {
            Ok(parsed) => redact_value(&parsed).to_string(),
            Err(_) => REDACTED.to_owned(),
        };
    }
    match shlex::split(t) {
        Some(words) => words
            .iter()
            .map(|w| match w.split_once('=') {
                Some((k, _)) if is_secret_var(k) => format!("{k}={REDACTED}"),
                _ => redact_url(w),
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => REDACTED.to_owned(),
    }
}

/// Replaces known secret values in text (task output, registered results).
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Collects the values of secret-named variables (4 characters or more: shorter ones
    /// would blank out ordinary words).
    pub fn add_vars<'a>(&mut self, vars: impl IntoIterator<Item = (&'a String, &'a Value)>) {
        for (k, v) in vars {
            if is_secret_var(k) {
                collect_strings(v, &mut self.secrets);
            }
        }
        self.secrets.retain(|s| s.len() >= 4);
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self.secrets.dedup();
    }

    /// Adds one secret value.
    pub fn add(&mut self, secret: &str) {
        if secret.len() >= 4 && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_owned());
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Whether there is nothing to replace (no secret known, nothing decrypted from a vault).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty() && crate::vault::keyring::revealed().is_empty()
    }

    /// Every value to hide: the known secrets and the vault's decrypted values, 4 bytes or
    /// more, longest first (so a secret that contains another is replaced whole).
    fn values(&self) -> Vec<String> {
        let vault = crate::vault::keyring::revealed();
        let mut all: Vec<String> = self
            .secrets
            .iter()
            .chain(vault.iter().filter(|s| s.len() >= 4))
            .cloned()
            .collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        all
    }

    /// `text` with every known secret replaced; `None` when nothing was found.
    #[must_use]
    pub fn redact(&self, text: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for s in self.values() {
            let cur = out.as_deref().unwrap_or(text);
            if cur.contains(&s) {
                out = Some(cur.replace(&s, REDACTED));
            }
        }
        out
    }

    /// [`Redactor::redact`] for raw output (any bytes, not only UTF-8), before it is escaped
    /// for a terminal or decoded for JSON: escaping first could split a value that holds a
    /// control character.
    #[must_use]
    pub fn redact_bytes(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        for s in self.values() {
            let cur = out.as_deref().unwrap_or(bytes);
            if let Some(r) = replace_all(cur, s.as_bytes(), REDACTED.as_bytes()) {
                out = Some(r);
            }
        }
        out
    }

    /// Output that was cut (its middle dropped to bound memory, see
    /// [`crate::transport::capped`]): `head` and `tail` each redacted, and, since a value
    /// that straddled the cut can no longer be found whole, the end of `head` that begins a
    /// secret and the start of `tail` that ends one are replaced too (even one byte: the cut
    /// falls anywhere, so what it hides there is a fragment of arbitrary output at worst).
    #[must_use]
    pub fn redact_cut(&self, head: &[u8], tail: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let values = self.values();
        let mut head = self.redact_bytes(head).unwrap_or_else(|| head.to_vec());
        let mut tail = self.redact_bytes(tail).unwrap_or_else(|| tail.to_vec());
        // The longest proper part of any value that `part(value, k)` finds (k bytes long).
        let longest = |part: &dyn Fn(&[u8], usize) -> bool| {
            values
                .iter()
                .map(|s| {
                    let s = s.as_bytes();
                    (1..s.len()).rev().find(|&k| part(s, k)).unwrap_or(0)
                })
                .max()
                .unwrap_or(0)
        };
        let begins = longest(&|s, k| head.ends_with(&s[..k]));
        if begins > 0 {
            head.truncate(head.len() - begins);
            head.extend_from_slice(REDACTED.as_bytes());
        }
        let ends = longest(&|s, k| tail.starts_with(&s[s.len() - k..]));
        if ends > 0 {
            tail.splice(..ends, REDACTED.bytes());
        }
        (head, tail)
    }

    /// Every string inside `v` redacted (see [`Redactor::redact`]); `None` when nothing was.
    #[must_use]
    pub fn redact_json(&self, v: &Value) -> Option<Value> {
        match v {
            Value::String(s) => self.redact(s).map(Value::String),
            Value::Array(a) => {
                let r: Vec<Option<Value>> = a.iter().map(|x| self.redact_json(x)).collect();
                r.iter().any(Option::is_some).then(|| {
                    Value::Array(
                        r.into_iter()
                            .zip(a)
                            .map(|(n, o)| n.unwrap_or_else(|| o.clone()))
                            .collect(),
                    )
                })
            }
            Value::Object(m) => {
                let r: Vec<Option<Value>> = m.values().map(|x| self.redact_json(x)).collect();
                r.iter().any(Option::is_some).then(|| {
                    Value::Object(
                        r.into_iter()
                            .zip(m)
                            .map(|(n, (k, o))| (k.clone(), n.unwrap_or_else(|| o.clone())))
                            .collect(),
                    )
                })
            }
            _ => None,
        }
    }
}

/// `hay` with every occurrence of `needle` replaced by `with`; `None` when there is none.
fn replace_all(hay: &[u8], needle: &[u8], with: &[u8]) -> Option<Vec<u8>> {
    let mut found = memchr::memmem::find_iter(hay, needle).peekable();
    found.peek()?;
    let mut out = Vec::with_capacity(hay.len());
    let mut last = 0;
    for at in found {
        if at < last {
            continue;
        }
        out.extend_from_slice(&hay[last..at]);
        out.extend_from_slice(with);
        last = at + needle.len();
    }
    out.extend_from_slice(&hay[last..]);
    Some(out)
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn command_lines_lose_their_secrets() {
        let argv: Vec<String> = [
            "kamo",
            "run",
            "site.yml",
            "-e",
            "db_password=hunter22 app_version=2.1",
            "--extra-vars={\"api_token\": \"t0k3n\", \"x\": 1}",
            "--db",
            "postgres://kqi:s3cret@db:5432/kamonohashi",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let s = redact_argv(&argv);
        assert!(
            !s.contains("hunter22") && !s.contains("t0k3n") && !s.contains("s3cret"),
            "{s}"
        );
        assert!(s.contains("app_version=2.1"), "{s}");
        assert!(
            s.contains("postgres://kqi:********@db:5432/kamonohashi"),
            "{s}"
        );
    }

    #[test]
    fn values_and_text() {
        let v = json!({"a": 1, "ansible_become_password": "pw", "n": {"token": "x"}});
        assert_eq!(
            redact_value(&v),
            json!({"a": 1, "ansible_become_password": "********", "n": {"token": "********"}})
        );
        let mut r = Redactor::default();
        let m = json!({"db_password": "hunter22", "short_token": "abc", "user": "kqi"});
        r.add_vars(m.as_object().unwrap());
        assert_eq!(
            r.redact("pw=hunter22; user kqi").unwrap(),
            "pw=********; user kqi"
        );
        assert!(r.redact("abc kqi").is_none());
    }

    #[test]
    fn bytes_and_a_cut_output() {
        let mut r = Redactor::default();
        r.add("PLANTEDxyz");
        r.add("abc");
        assert_eq!(
            r.redact_bytes(b"\xff PLANTEDxyzPLANTEDxyz\x1b abc")
                .unwrap(),
            b"\xff ****************\x1b abc"
        );
        assert!(r.redact_bytes(b"PLANTED xyz").is_none());
        // The value straddles the cut: its two halves are hidden, the rest kept.
        let (h, t) = r.redact_cut(b"head PLAN", b"TEDxyz tail");
        assert_eq!(
            (&h[..], &t[..]),
            (&b"head ********"[..], &b"******** tail"[..])
        );
        let (h, t) = r.redact_cut(b"head PLANTEDxyz", b"tail");
        assert_eq!((&h[..], &t[..]), (&b"head ********"[..], &b"tail"[..]));
        let (h, t) = r.redact_cut(b"head", b"tail");
        assert_eq!((&h[..], &t[..]), (&b"head"[..], &b"tail"[..]));
    }
}
