//! Ansible Vault: reading `$ANSIBLE_VAULT;1.1;AES256` and `1.2;AES256;LABEL` data, whole files
//! and `!vault |` values, so operators keep their encrypted `group_vars` as they are.
//!
//! The format (ansible-core's `VaultAES256`): a header line, then the hex of
//! `hex(salt) \n hex(hmac) \n hex(ciphertext)` in lines of 80. PBKDF2-HMAC-SHA256 (10,000
//! rounds) over the password and salt gives 80 bytes: the AES-256 key, the HMAC-SHA256 key and
//! the initial CTR counter block. The HMAC of the ciphertext is checked, in constant time,
//! *before* anything is decrypted: a wrong password or a changed file is told apart from a
//! good one without ever producing garbage plaintext. Then AES-256-CTR and PKCS#7 unpadding.
//!
//! Key decision: the cryptography comes from RustCrypto's maintained `aes`, `ctr`, `pbkdf2`
//! (with its `hmac`) and `sha2` crates, the versions russh already builds, so vault support
//! costs no new compiled crate; nothing here is hand-rolled beyond the envelope's hex.
//!
//! Not supported: writing vaults (`ansible-vault` does that), format 1.0 and ciphers other
//! than AES256 (refused with a clear error), vault password client scripts (`*-client`,
//! which Ansible calls with `--vault-id`: kamo runs them as plain password scripts).

pub mod keyring;

use std::fmt;

use pbkdf2::hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

pub use keyring::{Keyring, VaultSecret};

/// Every vault starts with this.
pub const HEADER: &str = "$ANSIBLE_VAULT";
/// PBKDF2 rounds of `VaultAES256`.
const ROUNDS: u32 = 10_000;
/// Bigger vaults are refused: nothing an operator keeps in group_vars comes near.
const MAX_ENVELOPE: usize = 64 << 20;

/// Whether `text` is vault data (a whole file, or a `!vault` value's text).
#[must_use]
pub fn is_vault(text: &str) -> bool {
    text.trim_start().starts_with(HEADER)
}

/// Why vault data could not be read or decrypted. Never holds a password or plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultError {
    /// Not well-formed vault data (bad header, bad hex, missing parts).
    Format(String),
    /// No password was given at all.
    NoPassword,
    /// No given password opens it (or the data was changed: the HMAC does not match).
    WrongPassword { vault_id: String, tried: usize },
    /// It opened, but the plaintext is not UTF-8 text.
    NotText,
}

impl fmt::Display for VaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Format(m) => write!(f, "malformed vault data: {m}"),
            Self::NoPassword => f.write_str("no vault password was given"),
            Self::WrongPassword { vault_id, tried } => write!(
                f,
                "cannot decrypt vault (vault id `{vault_id}`): {} wrong, or the data was \
                 changed (HMAC mismatch)",
                if *tried == 1 {
                    "the vault password is".to_owned()
                } else {
                    format!("all {tried} vault passwords are")
                }
            ),
            Self::NotText => f.write_str("the decrypted vault is not UTF-8 text"),
        }
    }
}

impl std::error::Error for VaultError {}

/// One parsed vault, still encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `1.1` or `1.2`.
    pub version: String,
    /// The 1.2 label; `default` for 1.1, as Ansible names it.
    pub vault_id: String,
    salt: Vec<u8>,
    hmac: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl Envelope {
    /// Parses vault text: the header line, then hex lines (surrounding whitespace ignored,
    /// as in a `!vault |` block).
    pub fn parse(text: &str) -> Result<Self, VaultError> {
        let bad = |m: &str| VaultError::Format(m.to_owned());
        if text.len() > MAX_ENVELOPE {
            return Err(bad("larger than 64 MiB"));
        }
        let mut lines = text.trim().lines();
        let header = lines.next().unwrap_or_default().trim();
        let fields: Vec<&str> = header.split(';').map(str::trim).collect();
        if fields.first() != Some(&HEADER) {
            return Err(bad("the first line is not a `$ANSIBLE_VAULT;...` header"));
        }
        let version = fields.get(1).copied().unwrap_or_default();
        let cipher = fields.get(2).copied().unwrap_or_default();
        if !matches!(version, "1.1" | "1.2") {
            return Err(VaultError::Format(format!(
                "vault format version `{version}` is not supported (1.1 and 1.2 are)"
            )));
        }
        if cipher != "AES256" {
            return Err(VaultError::Format(format!(
                "vault cipher `{cipher}` is not supported (AES256 is)"
            )));
        }
        let vault_id = match fields.get(3) {
            Some(id) if !id.is_empty() => (*id).to_owned(),
            _ => "default".to_owned(),
        };
        let body: String = lines.map(str::trim).collect();
        if body.is_empty() {
            return Err(bad("no data after the header"));
        }
        let inner = unhex(&body).ok_or_else(|| bad("the data is not hexadecimal"))?;
        let inner = std::str::from_utf8(&inner)
            .map_err(|_| bad("the decoded data is not salt, HMAC and ciphertext"))?;
        let mut parts = inner.splitn(3, '\n');
        let (Some(salt), Some(hmac), Some(ct)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("the decoded data lacks the salt, HMAC or ciphertext"));
        };
        let field = |s: &str, what: &str| {
            unhex(s.trim()).ok_or_else(|| VaultError::Format(format!("the {what} is not hex")))
        };
        let env = Self {
            version: version.to_owned(),
            vault_id,
            salt: field(salt, "salt")?,
            hmac: field(hmac, "HMAC")?,
            ciphertext: field(ct, "ciphertext")?,
        };
        if env.salt.is_empty() || env.hmac.len() != 32 {
            return Err(bad("the salt is empty or the HMAC is not 32 bytes"));
        }
        if env.ciphertext.is_empty() || !env.ciphertext.len().is_multiple_of(16) {
            return Err(bad("the ciphertext is not a whole number of AES blocks"));
        }
        Ok(env)
    }

    /// Decrypts with one password: the HMAC is verified first; `None` when it does not match
    /// (a wrong password or changed data: the two cannot be told apart, by design).
    pub fn decrypt(&self, password: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, VaultError> {
        use aes::cipher::{KeyIvInit, StreamCipher};
        let mut derived = Zeroizing::new([0u8; 80]);
        pbkdf2::pbkdf2_hmac::<Sha256>(password, &self.salt, ROUNDS, derived.as_mut_slice());
        let (cipher_key, rest) = derived.split_at(32);
        let (hmac_key, iv) = rest.split_at(32);
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(hmac_key)
            .map_err(|_| VaultError::Format("bad HMAC key length".into()))?;
        mac.update(&self.ciphertext);
        // `verify_slice` compares in constant time.
        if mac.verify_slice(&self.hmac).is_err() {
            return Ok(None);
        }
        let mut plain = Zeroizing::new(self.ciphertext.clone());
        let mut ctr = ctr::Ctr128BE::<aes::Aes256>::new_from_slices(cipher_key, iv)
            .map_err(|_| VaultError::Format("bad AES key length".into()))?;
        ctr.apply_keystream(&mut plain);
        let pad = usize::from(*plain.last().unwrap_or(&0));
        if pad == 0 || pad > 16 || pad > plain.len() {
            return Err(VaultError::Format("bad PKCS#7 padding".into()));
        }
        let n = plain.len();
        if plain[n - pad..].iter().any(|&b| usize::from(b) != pad) {
            return Err(VaultError::Format("bad PKCS#7 padding".into()));
        }
        plain[n - pad..].zeroize();
        plain.truncate(n - pad);
        Ok(Some(plain))
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    };
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn fixture(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/vault")
            .join(name);
        std::fs::read_to_string(&p).unwrap()
    }

    const PW: &[u8] = b"kamo-vault-test";

    fn open(text: &str, pw: &[u8]) -> Option<String> {
        let plain = Envelope::parse(text).unwrap().decrypt(pw).unwrap()?;
        Some(String::from_utf8(plain.to_vec()).unwrap())
    }

    #[test]
    fn decrypts_ansible_vault_1_1() {
        let text = fixture("vars-1.1.yml");
        let env = Envelope::parse(&text).unwrap();
        assert_eq!(
            (env.version.as_str(), env.vault_id.as_str()),
            ("1.1", "default")
        );
        assert_eq!(
            open(&text, PW).unwrap(),
            "db_note: Sup3r-s3cret-db\napi_word: tok-8d1f0c2e\n"
        );
        assert_eq!(
            open(&fixture("multiline.txt"), PW).unwrap(),
            "a multi-line\nplaintext\n"
        );
    }

    #[test]
    fn decrypts_ansible_vault_1_2_with_its_label() {
        let text = fixture("vars-1.2.yml");
        let env = Envelope::parse(&text).unwrap();
        assert_eq!(
            (env.version.as_str(), env.vault_id.as_str()),
            ("1.2", "prod")
        );
        assert_eq!(open(&text, PW).unwrap(), "label_value: labelled-v4lue\n");
    }

    #[test]
    fn decrypts_an_inline_value_with_its_indentation() {
        let text = fixture("inline.yml");
        let body = text.split_once("|\n").unwrap().1;
        assert!(body.starts_with("          $ANSIBLE_VAULT"));
        assert_eq!(open(body, PW).unwrap(), "inline-v4ult-value");
    }

    #[test]
    fn a_wrong_password_opens_nothing() {
        assert_eq!(open(&fixture("vars-1.1.yml"), b"not-the-password"), None);
        assert_eq!(open(&fixture("vars-1.1.yml"), b""), None);
    }

    #[test]
    fn changed_ciphertext_fails_the_hmac_before_decrypting() {
        let text = fixture("vars-1.1.yml");
        let env = Envelope::parse(&text).unwrap();
        let mut changed = env.clone();
        changed.ciphertext[0] ^= 1;
        assert_eq!(changed.decrypt(PW).unwrap(), None);
        let mut changed = env;
        changed.hmac[31] ^= 0x80;
        assert_eq!(changed.decrypt(PW).unwrap(), None);
    }

    #[test]
    fn malformed_envelopes_are_errors_not_panics() {
        let good = fixture("vars-1.1.yml");
        let lines: Vec<&str> = good.lines().collect();
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "header"),
            ("$ANSIBLE_VAULT;1.1;AES256\n".into(), "no data"),
            ("$ANSIBLE_VAULT;1.0;AES\n3031\n".into(), "version `1.0`"),
            (
                "$ANSIBLE_VAULT;1.1;AES128\n3031\n".into(),
                "cipher `AES128`",
            ),
            (
                "$ANSIBLE_VAULT;1.1;AES256\nzz11\n".into(),
                "not hexadecimal",
            ),
            ("$ANSIBLE_VAULT;1.1;AES256\n303\n".into(), "not hexadecimal"),
            ("$ANSIBLE_VAULT;1.1;AES256\n3031\n".into(), "lacks"),
            // Truncated: the last lines are missing, so the ciphertext is cut short.
            (lines[..lines.len() - 2].join("\n"), ""),
            // An odd line dropped from the middle.
            (format!("{}\n{}", lines[0], lines[2..].join("\n")), ""),
        ];
        for (text, want) in cases {
            match Envelope::parse(&text) {
                Err(VaultError::Format(m)) => assert!(m.contains(want), "{m:?} for {text:?}"),
                Ok(env) => assert_eq!(env.decrypt(PW).unwrap(), None, "{text:?}"),
                Err(e) => panic!("{e:?}"),
            }
        }
    }

    #[test]
    fn messages_name_the_vault_id_and_no_secret() {
        let e = VaultError::WrongPassword {
            vault_id: "prod".into(),
            tried: 2,
        };
        let m = e.to_string();
        assert!(
            m.contains("vault id `prod`") && m.contains("all 2 vault passwords"),
            "{m}"
        );
    }
}
