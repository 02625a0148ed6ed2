//! The vault passwords of this run (from files, scripts or the terminal), and every value they
//! revealed, so that those values can be kept out of everything kamo prints or records.
//!
//! Key decision: one process-wide keyring, installed once by the command line before any
//! inventory or playbook is read, rather than a parameter threaded through every loader.
//! Vault data turns up in inventories, group_vars, playbooks, `vars_files` and `include_vars`
//! files read at run time, reached from a dozen commands; a parameter would touch all of them
//! and one forgotten path would refuse vaults there. The revealed values are process-wide for
//! the same reason: [`crate::journal::redact::Redactor`] consults them wherever it runs.
//!
//! Like Ansible, a password file that is executable is run and its stdout (without the final
//! line break) is the password; any other file is read whole, surrounding whitespace removed.
//! A password file readable by other users is used with a warning (Ansible does not check).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use zeroize::Zeroizing;

use super::{Envelope, VaultError};
use crate::error::{Error, Result};

/// Vault ids without a label are `default`, as in Ansible.
pub const DEFAULT_ID: &str = "default";

/// One vault password and where it came from (for messages; never the password).
pub struct VaultSecret {
    pub id: String,
    pub source: String,
    password: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for VaultSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VaultSecret({}@{}, ********)", self.id, self.source)
    }
}

impl VaultSecret {
    /// A password given directly (tests, the terminal prompt).
    #[must_use]
    pub fn new(id: &str, source: &str, password: Vec<u8>) -> Self {
        Self {
            id: id.to_owned(),
            source: source.to_owned(),
            password: Zeroizing::new(password),
        }
    }

    /// A `--vault-password-file`: an executable is run for its stdout, anything else read.
    pub fn from_file(id: &str, path: &Path) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::Usage(format!("vault password file {}: {e}", path.display())))?;
        if meta.is_dir() {
            return Err(Error::Usage(format!(
                "vault password file {} is a directory",
                path.display()
            )));
        }
        let mode = meta.permissions().mode();
        let password = if mode & 0o111 != 0 {
            run_script(path)?
        } else {
            if mode & 0o044 != 0 {
                crate::ui::eprint_line(&format!(
                    "warning: vault password file {} is readable by other users (mode {:o}); \
                     chmod 600 it",
                    path.display(),
                    mode & 0o777
                ));
            }
            let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
                Error::Usage(format!(
                    "cannot read vault password file {}: {e}",
                    path.display()
                ))
            })?);
            Zeroizing::new(bytes.trim_ascii().to_vec())
        };
        if password.is_empty() {
            return Err(Error::Usage(format!(
                "vault password file {} gives an empty password",
                path.display()
            )));
        }
        Ok(Self {
            id: id.to_owned(),
            source: path.display().to_string(),
            password,
        })
    }

    /// Asks on the terminal, hidden.
    pub fn prompt(id: &str) -> Result<Self> {
        let text = if id == DEFAULT_ID {
            "Vault password: ".to_owned()
        } else {
            format!("Vault password ({id}): ")
        };
        let pw = Zeroizing::new(rpassword::prompt_password(text).map_err(|e| {
            Error::Other(format!(
                "cannot read the vault password from the terminal: {e}"
            ))
        })?);
        if pw.is_empty() {
            return Err(Error::Usage("empty vault password".into()));
        }
        Ok(Self::new(id, "prompt", pw.as_bytes().to_vec()))
    }
}

/// Runs a password script: its stdout, without the trailing line break, is the password.
fn run_script(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let out = std::process::Command::new(path)
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| {
            Error::Usage(format!(
                "cannot run vault password script {}: {e} (if it is not a script, \
                 remove its executable bit)",
                path.display()
            ))
        })?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        return Err(Error::Usage(format!(
            "vault password script {} failed ({})",
            path.display(),
            out.status
        )));
    }
    let mut end = stdout.len();
    while end > 0 && matches!(stdout[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    let mut start = 0;
    while start < end && matches!(stdout[start], b'\n' | b'\r') {
        start += 1;
    }
    Ok(Zeroizing::new(stdout[start..end].to_vec()))
}

/// The passwords to try, in the order given.
#[derive(Debug, Default)]
pub struct Keyring {
    secrets: Vec<VaultSecret>,
}

impl Keyring {
    #[must_use]
    pub fn new(secrets: Vec<VaultSecret>) -> Self {
        Self { secrets }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Decrypts vault text to UTF-8: the passwords whose id matches the vault's label first,
    /// then the others (as Ansible does unless told to match ids strictly).
    pub fn decrypt(&self, text: &str) -> std::result::Result<String, VaultError> {
        let env = Envelope::parse(text)?;
        if self.secrets.is_empty() {
            return Err(VaultError::NoPassword);
        }
        let ordered = self
            .secrets
            .iter()
            .filter(|s| s.id == env.vault_id)
            .chain(self.secrets.iter().filter(|s| s.id != env.vault_id));
        for s in ordered {
            if let Some(plain) = env.decrypt(&s.password)? {
                return String::from_utf8(plain.to_vec()).map_err(|_| VaultError::NotText);
            }
        }
        Err(VaultError::WrongPassword {
            vault_id: env.vault_id,
            tried: self.secrets.len(),
        })
    }
}

static INSTALLED: OnceLock<Keyring> = OnceLock::new();
static REVEALED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Makes `keyring` the one every loader uses; the first call wins.
pub fn install(keyring: Keyring) {
    let _ = INSTALLED.set(keyring);
}

/// Builds and installs the keyring from the command line: `--ask-vault-pass` first, then the
/// `--vault-id`s and `--vault-password-file`s, then `$ANSIBLE_VAULT_PASSWORD_FILE` (Ansible's
/// order: the environment's file is always added after the flags).
pub fn install_from(ask: bool, ids: &[String], files: &[PathBuf]) -> Result<()> {
    let mut secrets = Vec::new();
    if ask {
        secrets.push(VaultSecret::prompt(DEFAULT_ID)?);
    }
    for slug in ids {
        let (id, source) = slug.split_once('@').unwrap_or((DEFAULT_ID, slug.as_str()));
        let id = if id.is_empty() { DEFAULT_ID } else { id };
        if matches!(source, "prompt" | "prompt_ask_vault_pass") {
            secrets.push(VaultSecret::prompt(id)?);
        } else {
            secrets.push(VaultSecret::from_file(id, Path::new(source))?);
        }
    }
    for f in files {
        secrets.push(VaultSecret::from_file(DEFAULT_ID, f)?);
    }
    if let Some(f) = std::env::var_os("ANSIBLE_VAULT_PASSWORD_FILE").filter(|v| !v.is_empty()) {
        secrets.push(VaultSecret::from_file(DEFAULT_ID, Path::new(&f))?);
    }
    install(Keyring::new(secrets));
    Ok(())
}

/// Installs the test vectors' password (`tests/fixtures/vault/README.md`) for unit tests of
/// the loaders; every test installs the same one, so their order does not matter.
#[cfg(test)]
pub(crate) fn install_test_keyring() {
    install(Keyring::new(vec![VaultSecret::new(
        DEFAULT_ID,
        "test",
        b"kamo-vault-test".to_vec(),
    )]));
}

/// Decrypts with the installed keyring (none installed: no password). The caller remembers
/// the values it takes out of the plaintext (see [`remember`]).
pub fn open(text: &str) -> std::result::Result<String, VaultError> {
    if let Some(k) = INSTALLED.get() {
        k.decrypt(text)
    } else {
        // A malformed vault says so even without a password.
        Envelope::parse(text)?;
        Err(VaultError::NoPassword)
    }
}

/// [`open`] for a `!vault` value: the plaintext is remembered as a secret value.
pub fn reveal(text: &str) -> std::result::Result<String, VaultError> {
    let plain = open(text)?;
    remember(&plain);
    Ok(plain)
}

/// Remembers a decrypted value: it is replaced by `********` wherever kamo prints or records.
pub fn remember(value: &str) {
    let value = value.trim();
    if value.is_empty() {
        return;
    }
    let mut r = REVEALED.lock().unwrap_or_else(PoisonError::into_inner);
    if !r.iter().any(|v| v == value) {
        r.push(value.to_owned());
    }
}

/// Remembers every string and number inside a value decrypted from a vault file.
pub fn remember_all(value: &serde_json::Value) {
    match value {
        serde_json::Value::String(s) => remember(s),
        serde_json::Value::Number(n) => remember(&n.to_string()),
        serde_json::Value::Array(a) => a.iter().for_each(remember_all),
        serde_json::Value::Object(m) => m.values().for_each(remember_all),
        _ => {}
    }
}

/// Every value decrypted so far.
#[must_use]
pub fn revealed() -> Vec<String> {
    REVEALED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The hint for a vault met without (the right) password.
#[must_use]
pub fn hint(e: &VaultError) -> &'static str {
    match e {
        VaultError::NoPassword => {
            "pass --vault-password-file FILE or --ask-vault-pass (or set ANSIBLE_VAULT_PASSWORD_FILE)"
        }
        VaultError::WrongPassword { .. } => {
            "check the vault password (--vault-password-file, --ask-vault-pass, --vault-id)"
        }
        _ => {
            "the value must be the unchanged output of `ansible-vault encrypt` or `encrypt_string`"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::fixture;
    use super::*;

    fn ring(pws: &[(&str, &str)]) -> Keyring {
        Keyring::new(
            pws.iter()
                .map(|(id, pw)| VaultSecret::new(id, "test", pw.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn tries_every_password_the_matching_label_first() {
        let k = ring(&[("default", "wrong-one"), ("prod", "kamo-vault-test")]);
        assert_eq!(
            k.decrypt(&fixture("vars-1.2.yml")).unwrap(),
            "label_value: labelled-v4lue\n"
        );
        // A 1.1 vault (id `default`) still opens with a password labelled otherwise.
        assert!(k.decrypt(&fixture("vars-1.1.yml")).is_ok());
    }

    #[test]
    fn wrong_passwords_and_none() {
        let k = ring(&[("default", "nope"), ("dev", "nope2")]);
        let e = k.decrypt(&fixture("vars-1.2.yml")).unwrap_err();
        assert_eq!(
            e,
            VaultError::WrongPassword {
                vault_id: "prod".into(),
                tried: 2
            }
        );
        assert!(!e.to_string().contains("nope"));
        assert_eq!(
            Keyring::default().decrypt(&fixture("vars-1.1.yml")),
            Err(VaultError::NoPassword)
        );
    }

    #[test]
    fn password_files_and_scripts() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("pw");
        std::fs::write(&file, "  kamo-vault-test \n\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = VaultSecret::from_file(DEFAULT_ID, &file).unwrap();
        assert_eq!(s.password.as_slice(), b"kamo-vault-test");
        assert!(!format!("{s:?}").contains("kamo-vault-test"));

        let script = d.path().join("pw.sh");
        std::fs::write(&script, "#!/bin/sh\necho ' kamo-vault-test'\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
        let s = VaultSecret::from_file(DEFAULT_ID, &script).unwrap();
        // A script's output keeps its spaces; only line breaks are taken off, as in Ansible.
        assert_eq!(s.password.as_slice(), b" kamo-vault-test");

        std::fs::write(&script, "#!/bin/sh\nexit 3\n").unwrap();
        let e = VaultSecret::from_file(DEFAULT_ID, &script).unwrap_err();
        assert!(e.to_string().contains("failed"), "{e}");
        std::fs::write(&file, "\n").unwrap();
        let e = VaultSecret::from_file(DEFAULT_ID, &file).unwrap_err();
        assert!(e.to_string().contains("empty password"), "{e}");
        let e = VaultSecret::from_file(DEFAULT_ID, &d.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
