//! Host-key verification against OpenSSH `known_hosts` files.
//!
//! Why our own reader rather than `russh::keys::check_known_hosts_path`: that function reads one
//! file, reports line numbers that skip comment lines, splits on single spaces, and cannot tell
//! *which* file disagreed. Operators need the exact `file:line` of a changed key to fix it, and
//! several files (`--known-hosts` is repeatable). The files are parsed once per run and checked
//! in memory, which also keeps 1,000-host runs from re-reading them per host.
//!
//! Supported as OpenSSH does: plain names, `[host]:port`, comma lists, hashed `|1|salt|hash`
//! entries, `*`/`?` wildcards, `!negated` patterns, `@revoked` (refused). Not supported:
//! `@cert-authority` (host certificates are refused by the SSH handler, so these lines are
//! skipped).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use hmac::{Hmac, Mac};
use russh::keys::{HashAlg, PublicKey};
use sha1::Sha1;

/// One usable line of a `known_hosts` file.
#[derive(Debug, Clone)]
struct Entry {
    file: usize,
    line: usize,
    revoked: bool,
    patterns: String,
    key: PublicKey,
}

/// What the `known_hosts` files say about a host's offered key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A line holds this very key.
    Known,
    /// No line names the host with a key of this algorithm.
    Unknown,
    /// A line names the host with another key of the same algorithm.
    Changed { file: PathBuf, line: usize },
    /// The key is marked `@revoked`.
    Revoked { file: PathBuf, line: usize },
}

/// The parsed `known_hosts` files of a run.
#[derive(Debug, Default)]
pub struct KnownHosts {
    files: Vec<PathBuf>,
    entries: Vec<Entry>,
}

impl KnownHosts {
    /// Reads every file; a missing file counts as empty (as OpenSSH treats it). Lines that do
    /// not parse are skipped, as OpenSSH does, and reported through `tracing`.
    pub fn load(files: &[PathBuf]) -> std::io::Result<Self> {
        let mut kh = Self {
            files: files.to_vec(),
            entries: Vec::new(),
        };
        for (idx, path) in files.iter().enumerate() {
            let text = match crate::input::read_text(path) {
                Ok(t) => t,
                Err(crate::input::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    continue;
                }
                Err(e) => return Err(e.into_io("known_hosts file")),
            };
            kh.parse_into(idx, &text);
        }
        Ok(kh)
    }

    fn parse_into(&mut self, file: usize, text: &str) {
        for (n, raw) in text.lines().enumerate() {
            if let Some(entry) = parse_line(file, n + 1, raw) {
                self.entries.push(entry);
            } else if !raw.trim().is_empty() && !raw.trim_start().starts_with('#') {
                tracing::debug!(
                    "skipping unreadable known_hosts line {}:{}",
                    self.files[file].display(),
                    n + 1
                );
            }
        }
    }

    /// Checks `key` offered by `host` on `port`. `@revoked` wins, then an exact match, then a
    /// same-algorithm mismatch; keys of other algorithms make the host unknown, not changed.
    #[must_use]
    pub fn check(&self, host: &str, port: u16, key: &PublicKey) -> Verdict {
        let name = host_port(host, port);
        let mut changed = None;
        let mut known = false;
        for e in &self.entries {
            if !matches_host(&e.patterns, &name) {
                continue;
            }
            let same_key = e.key.key_data() == key.key_data();
            if e.revoked {
                if same_key {
                    return Verdict::Revoked {
                        file: self.files[e.file].clone(),
                        line: e.line,
                    };
                }
                continue;
            }
            if same_key {
                known = true;
            } else if e.key.algorithm() == key.algorithm() && changed.is_none() {
                changed = Some((e.file, e.line));
            }
        }
        if known {
            Verdict::Known
        } else if let Some((file, line)) = changed {
            Verdict::Changed {
                file: self.files[file].clone(),
                line,
            }
        } else {
            Verdict::Unknown
        }
    }

    /// Appends the key to `path` (creating it 0600 and its directory 0700) and remembers it, for
    /// `accept-new`.
    pub fn learn(
        &mut self,
        path: &Path,
        host: &str,
        port: u16,
        key: &PublicKey,
    ) -> std::io::Result<()> {
        let openssh = key
            .to_openssh()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let line_text = format!("{} {openssh}\n", host_port(host, port));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        let existing = fs::read(path).unwrap_or_default();
        let mut f = open_append_private(path)?;
        if !existing.is_empty() && !existing.ends_with(b"\n") {
            f.write_all(b"\n")?;
        }
        f.write_all(line_text.as_bytes())?;
        f.sync_all()?;
        let file = if let Some(i) = self.files.iter().position(|p| p == path) {
            i
        } else {
            self.files.push(path.to_owned());
            self.files.len() - 1
        };
        let line = String::from_utf8_lossy(&existing).lines().count() + 1;
        if let Some(e) = parse_line(file, line, line_text.trim_end()) {
            self.entries.push(e);
        }
        Ok(())
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.exists() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(unix)]
fn open_append_private(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// The name OpenSSH looks up: `host`, or `[host]:port` for a port other than 22.
#[must_use]
pub fn host_port(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The SHA256 fingerprint as OpenSSH prints it (`SHA256:base64`).
#[must_use]
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn parse_line(file: usize, line: usize, raw: &str) -> Option<Entry> {
    let text = raw.trim();
    if text.is_empty() || text.starts_with('#') {
        return None;
    }
    let mut fields = text.split_ascii_whitespace();
    let mut first = fields.next()?;
    let mut revoked = false;
    if let Some(marker) = first.strip_prefix('@') {
        match marker {
            "revoked" => revoked = true,
            _ => return None, // @cert-authority: host certificates are not trusted
        }
        first = fields.next()?;
    }
    let _algorithm = fields.next()?;
    let blob = fields.next()?;
    let key = russh::keys::parse_public_key_base64(blob).ok()?;
    Some(Entry {
        file,
        line,
        revoked,
        patterns: first.to_owned(),
        key,
    })
}

/// OpenSSH's rule: the name must match some positive pattern and no negated one.
fn matches_host(patterns: &str, name: &str) -> bool {
    if let Some(hashed) = patterns.strip_prefix("|1|") {
        return matches_hashed(hashed, name);
    }
    let mut positive = false;
    for p in patterns.split(',') {
        if let Some(neg) = p.strip_prefix('!') {
            if wildcard(neg, name) {
                return false;
            }
        } else if wildcard(p, name) {
            positive = true;
        }
    }
    positive
}

fn matches_hashed(hashed: &str, name: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// `*` and `?` glob match, case-insensitive as OpenSSH's `match_pattern` on host names.
fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let n: Vec<char> = name.to_ascii_lowercase().chars().collect();
    // Iterative matcher with one backtrack point: linear in practice, no recursion.
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G1sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";

    fn key(b: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b).unwrap()
    }

    fn kh(text: &str) -> KnownHosts {
        let mut k = KnownHosts {
            files: vec![PathBuf::from("kh")],
            entries: vec![],
        };
        k.parse_into(0, text);
        k
    }

    #[test]
    fn plain_port_and_lists() {
        let k = kh(&format!(
            "# comment\n\n[10.0.0.1]:2222 ssh-ed25519 {KEY_A}\nnode1,10.0.0.2 ssh-ed25519 {KEY_A} comment here\n"
        ));
        assert_eq!(k.check("10.0.0.1", 2222, &key(KEY_A)), Verdict::Known);
        assert_eq!(k.check("10.0.0.1", 22, &key(KEY_A)), Verdict::Unknown);
        assert_eq!(k.check("10.0.0.2", 22, &key(KEY_A)), Verdict::Known);
        assert_eq!(k.check("NODE1", 22, &key(KEY_A)), Verdict::Known);
    }

    #[test]
    fn changed_key_reports_real_line_numbers() {
        let k = kh(&format!("# one\n# two\n[h]:2200 ssh-ed25519 {KEY_A}\n"));
        assert_eq!(
            k.check("h", 2200, &key(KEY_B)),
            Verdict::Changed {
                file: "kh".into(),
                line: 3
            }
        );
    }

    #[test]
    fn hashed_entries() {
        // `ssh-keygen -H` style entry for "[localhost]:13265" with a known salt.
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b"0123456789abcdefghij";
        let mut mac = Hmac::<Sha1>::new_from_slice(salt).unwrap();
        mac.update(b"[localhost]:13265");
        let hash = mac.finalize().into_bytes();
        let line = format!(
            "|1|{}|{} ssh-ed25519 {KEY_A}\n",
            b64.encode(salt),
            b64.encode(hash)
        );
        let k = kh(&line);
        assert_eq!(k.check("localhost", 13265, &key(KEY_A)), Verdict::Known);
        assert_eq!(k.check("localhost", 22, &key(KEY_A)), Verdict::Unknown);
        assert!(matches!(
            k.check("localhost", 13265, &key(KEY_B)),
            Verdict::Changed { .. }
        ));
    }

    #[test]
    fn wildcards_negation_and_revoked() {
        let k = kh(&format!(
            "*.lab,!bad.lab ssh-ed25519 {KEY_A}\n@revoked * ssh-ed25519 {KEY_B}\n@cert-authority * ssh-ed25519 {KEY_B}\n"
        ));
        assert_eq!(k.check("n1.lab", 22, &key(KEY_A)), Verdict::Known);
        assert_eq!(k.check("bad.lab", 22, &key(KEY_A)), Verdict::Unknown);
        assert!(matches!(
            k.check("n1.lab", 22, &key(KEY_B)),
            Verdict::Revoked { line: 2, .. }
        ));
    }

    #[test]
    fn wildcard_matcher() {
        assert!(wildcard("node?", "node1"));
        assert!(!wildcard("node?", "node12"));
        assert!(wildcard("*", ""));
        assert!(wildcard("a*b*c", "axxbyyc"));
        assert!(!wildcard("a*b*c", "axxbyy"));
    }

    #[test]
    fn learn_appends_and_remembers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        let mut k = KnownHosts::load(std::slice::from_ref(&path)).unwrap();
        assert_eq!(k.check("h", 2200, &key(KEY_A)), Verdict::Unknown);
        k.learn(&path, "h", 2200, &key(KEY_A)).unwrap();
        assert_eq!(k.check("h", 2200, &key(KEY_A)), Verdict::Known);
        let again = KnownHosts::load(std::slice::from_ref(&path)).unwrap();
        assert_eq!(again.check("h", 2200, &key(KEY_A)), Verdict::Known);
        assert!(
            fs::read_to_string(&path)
                .unwrap()
                .starts_with("[h]:2200 ssh-ed25519 ")
        );
    }

    #[test]
    fn garbage_never_panics() {
        let k = kh(
            "@\n@revoked\n|1|x ssh-ed25519\n|1|%%%|%%% ssh-ed25519 AAAA\n[h]:x ssh-ed25519 notbase64\n",
        );
        assert_eq!(k.check("h", 22, &key(KEY_A)), Verdict::Unknown);
    }
}

/// Property tests: any known_hosts text is read (bad lines skipped) without a panic or a
/// hang; a generated entry, plain or hashed, accepts its host and only its host.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::props::{bounded, soup};

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G1sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";
    const PIECES: &[&str] = &[
        "@revoked ",
        "@cert-authority ",
        "|1|",
        "|",
        "[",
        "]",
        ":",
        ",",
        "!",
        "*",
        "?",
        " ",
        "\t",
        "\n",
        "#",
        "ssh-ed25519 ",
        "ssh-rsa ",
        KEY_A,
        "AAAA",
        "=",
        "h1",
        "10.0.0.1",
        "*.example",
        "é",
    ];

    fn kh(text: &str) -> KnownHosts {
        let mut k = KnownHosts {
            files: vec![PathBuf::from("kh")],
            entries: vec![],
        };
        k.parse_into(0, text);
        k
    }

    fn key(b: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b).unwrap()
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut mac = Hmac::<Sha1>::new_from_slice(salt).unwrap();
        mac.update(name.as_bytes());
        format!(
            "|1|{}|{}",
            b64.encode(salt),
            b64.encode(mac.finalize().into_bytes())
        )
    }

    proptest! {
        #[test]
        fn any_text_is_read_without_panic_or_hang(
            text in prop_oneof![soup(PIECES, 60), ".{0,300}"],
            host in "[a-z0-9.*?-]{0,20}",
            port in any::<u16>(),
        ) {
            let t = text.clone();
            bounded(&format!("{text:?} / {host}"), move || {
                let k = kh(&t);
                let _ = k.check(&host, port, &key(KEY_A));
                // The matcher on its own, with the text as a pattern list: no backtracking blow-up.
                let _ = matches_host(&t, &host);
                let _ = wildcard(&t, &host);
            });
        }

        #[test]
        fn a_generated_entry_accepts_its_host_and_only_its_host(
            host in "[a-z][a-z0-9-]{0,15}(\\.[a-z0-9]{1,8}){0,2}",
            other in "[a-z][a-z0-9-]{0,15}",
            port in 1u16..,
            salt in proptest::collection::vec(any::<u8>(), 20),
            hash in any::<bool>(),
        ) {
            prop_assume!(other != host);
            let name = host_port(&host, port);
            let pattern = if hash { hashed(&name, &salt) } else { name.clone() };
            let k = kh(&format!("{pattern} ssh-ed25519 {KEY_A}\n"));
            prop_assert_eq!(k.check(&host, port, &key(KEY_A)), Verdict::Known);
            prop_assert_eq!(k.check(&other, port, &key(KEY_A)), Verdict::Unknown);
            prop_assert_eq!(
                k.check(&host, port, &key(KEY_B)),
                Verdict::Changed { file: "kh".into(), line: 1 }
            );
            if port != 22 {
                prop_assert_eq!(k.check(&host, 22, &key(KEY_A)), Verdict::Unknown);
            }
            // A negated pattern wins over a wildcard that matches.
            let k = kh(&format!("*,!{name} ssh-ed25519 {KEY_A}\n"));
            prop_assert_eq!(k.check(&host, port, &key(KEY_A)), Verdict::Unknown);
        }
    }

    #[test]
    fn a_huge_known_hosts_file_is_refused_not_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("known_hosts");
        fs::File::create(&p)
            .unwrap()
            .set_len(200 * 1024 * 1024)
            .unwrap();
        let e = KnownHosts::load(std::slice::from_ref(&p)).unwrap_err();
        assert!(e.to_string().contains("more than the 64 MiB"), "{e}");
    }
}
