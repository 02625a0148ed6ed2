//! Private keys, loaded once per run and shared by every connection.
//!
//! Decisions: keys are read and decrypted *before* the fan-out starts, so a passphrase prompt
//! happens once, on a quiet terminal, and never races 50 connections; a wrong passphrase stops
//! the run before any host is touched. Like OpenSSH, a key file that others can read is
//! refused ("UNPROTECTED PRIVATE KEY FILE"), a missing default key is skipped silently and a
//! missing explicit one with a warning.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::PrivateKey;

use crate::error::Error;
use crate::secret::Secret;

/// Environment variable holding the passphrase of encrypted keys (for scripts).
pub const PASSPHRASE_ENV: &str = "KAMO_KEY_PASSPHRASE";

#[derive(Default)]
pub struct KeyStore {
    keys: HashMap<PathBuf, Arc<PrivateKey>>,
}

/// The identity files OpenSSH tries when none is configured, in its order.
#[must_use]
pub fn default_identity_files() -> Vec<PathBuf> {
    let Some(home) = std::env::home_dir() else {
        return Vec::new();
    };
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|n| home.join(".ssh").join(n))
        .collect()
}

impl KeyStore {
    /// Loads every distinct path once. `explicit` paths must load; default ones may be absent.
    pub fn load(explicit: &[PathBuf], defaults: &[PathBuf]) -> Result<Self, Error> {
        let mut store = Self::default();
        let mut passphrase: Option<Secret<String>> =
            std::env::var(PASSPHRASE_ENV).ok().map(Secret::new);
        for (path, is_explicit) in explicit
            .iter()
            .map(|p| (p, true))
            .chain(defaults.iter().map(|p| (p, false)))
        {
            if store.keys.contains_key(path) {
                continue;
            }
            if !path.exists() {
                if is_explicit {
                    tracing::warn!("identity file {} does not exist; skipped", path.display());
                }
                continue;
            }
            check_permissions(path)?;
            let key = load_one(path, &mut passphrase)?;
            store.keys.insert(path.clone(), Arc::new(key));
        }
        Ok(store)
    }

    /// The loaded key for `path`, if it loaded.
    #[must_use]
    pub fn get(&self, path: &Path) -> Option<Arc<PrivateKey>> {
        self.keys.get(path).cloned()
    }
}

fn load_one(path: &Path, passphrase: &mut Option<Secret<String>>) -> Result<PrivateKey, Error> {
    match russh::keys::load_secret_key(path, None) {
        Ok(k) => return Ok(k),
        Err(russh::keys::Error::KeyIsEncrypted) => {}
        Err(e) => {
            return Err(Error::Other(format!(
                "cannot read private key {}: {e}",
                path.display()
            )));
        }
    }
    if passphrase.is_none() {
        let prompt = format!("Enter passphrase for key '{}': ", path.display());
        let entered = rpassword::prompt_password(prompt).map_err(|e| {
            Error::Other(format!(
                "private key {} is encrypted and no passphrase could be read ({e}); set {PASSPHRASE_ENV} or run kamo in a terminal",
                path.display()
            ))
        })?;
        *passphrase = Some(Secret::new(entered));
    }
    let pw = passphrase.as_ref().map(|s| s.expose().as_str());
    russh::keys::load_secret_key(path, pw).map_err(|_| {
        Error::Other(format!(
            "cannot decrypt private key {}: wrong passphrase",
            path.display()
        ))
    })
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| Error::io("cannot read", path, e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Other(format!(
            "private key {} is accessible by others (mode {mode:04o}); OpenSSH refuses such keys too: run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}
