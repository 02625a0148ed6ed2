//! `copy`, `template`, `lineinfile` creating a file and `file: state=directory` over SFTP:
//! the common case of the module's script, done as SFTP requests on the host's connection
//! instead of a script (see `transport::sftp` for why). Below for `copy`/`template`;
//! `mkdir` for directories.
//!
//! The script stays the definition. This path does exactly what it does when the
//! destination is a regular file or absent and its directory exists: the same comparison
//! (size, then content), a temp file next to the destination created with at most the
//! wanted permissions, the old file's owner ids given to it (best effort), the mode set
//! where it differs, an atomic rename over the destination (or only a `chmod` when just
//! the mode differs), and the same result fields. Anything else (a symbolic link, a
//! directory, a missing directory, a file larger than [`COMPARE_MAX`] of the same size,
//! a host without a task shell to tell the umask for a new file without `mode`, any SFTP
//! error) hands the task back to
//! the script untouched, which then reports it in its own words: a temp file this path made
//! is removed first, so what it leaves is either the finished change or nothing.
//!
//! Not here: `become` (SFTP runs as the login user), check and diff mode, owner, group,
//! backup, validate, follow, symbolic modes, `force: no` ([`crate::playbook::modules::copy::put_plan`]).

use serde_json::Value;

use crate::playbook::modules::SftpStep;
use crate::playbook::modules::copy::Put;
use crate::playbook::modules::file::Mkdir;
use crate::transport::sftp::{Sftp, SftpError, Stat};
use crate::transport::ssh::Session;

/// An existing destination of the new content's size is read back to compare it only up to
/// this size; a larger one goes to the script, which compares it on the host.
pub const COMPARE_MAX: usize = 4 << 20;

/// Does `step` on the host: `Some(result)` (the JSON object the script would print) when it
/// was done, `None` when the script must do it. `session` gives the login's umask when a
/// new file has no `mode` (it gets `0666 & !umask`, as the script gives it).
pub async fn run(sftp: &Sftp, step: &SftpStep, session: &Session) -> Option<String> {
    let r = match step {
        SftpStep::Put(p) => put(sftp, p, session).await,
        SftpStep::Mkdir(m) => mkdir(sftp, m).await,
    };
    r.unwrap_or_else(|e| {
        tracing::debug!(path = step.path(), "SFTP work handed to the script: {e:?}");
        None
    })
}

/// The directory of an absolute path without a trailing slash, as the script's `kamo_dirof`
/// gives it (`/a//b` -> `/a`, `/b` -> `/`).
fn parent(dest: &str) -> &str {
    let at = dest.rfind('/').unwrap_or(0);
    let dir = dest[..at].trim_end_matches('/');
    if dir.is_empty() { "/" } else { dir }
}

/// Four octal digits, as the script's `kamo_pad` prints a mode.
fn shown(mode: u32) -> String {
    format!("{mode:04o}")
}

async fn put(sftp: &Sftp, put: &Put, session: &Session) -> Result<Option<String>, SftpError> {
    let dest = put.dest.as_str();
    let old: Option<Stat> = match sftp.lstat(dest).await {
        Ok(_) if put.only_new => return Ok(None),
        Ok(st) if st.is_regular() => Some(st),
        // A link, a directory, a device...: the script's cases.
        Ok(_) => return Ok(None),
        Err(SftpError::Missing) => None,
        Err(e) => return Err(e),
    };
    let dir = parent(dest);
    if old.is_none() {
        match sftp.stat(dir).await {
            Ok(st) if st.is_dir() => {}
            Ok(_) | Err(SftpError::Missing) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    let want = match (put.mode, old) {
        (Some(m), _) => m,
        (None, Some(st)) => st.perms(),
        (None, None) => match session.login_umask().await {
            Some(u) => 0o666 & !u,
            None => return Ok(None),
        },
    };
    let attr_changed = old.is_some_and(|st| st.perms() != want);
    let content_changed = match old {
        None => true,
        Some(st) if st.size != put.content.len() as u64 => true,
        Some(_) if put.content.len() > COMPARE_MAX => return Ok(None),
        Some(_) => match sftp.read_upto(dest, put.content.len()).await? {
            Some(bytes) => bytes != put.content,
            None => true,
        },
    };
    if content_changed {
        replace(sftp, put, dir, old, want).await?;
    } else if attr_changed {
        sftp.set_mode(dest, want).await?;
    }
    let result = format!(
        "{{\"{}\":{},\"changed\":{},\"checksum_sha256\":\"{}\",\"size\":{},\"mode\":\"{}\"}}",
        put.key,
        Value::from(dest),
        content_changed || attr_changed,
        put.digest,
        put.content.len(),
        shown(want)
    );
    Ok(Some(result))
}

/// `file: state=directory`, as its script does it: an existing directory keeps its place
/// (a link or anything else at the path goes to the script), a missing one is made with its
/// missing parents (`mkdir -p`: the default mode), and an octal `mode` is set on the last
/// one where it differs. A directory with set-id or sticky bits whose mode differs goes to
/// the script too: `chmod` keeps a directory's set-id bits under a numeric mode, a plain
/// SFTP chmod would not.
async fn mkdir(sftp: &Sftp, m: &Mkdir) -> Result<Option<String>, SftpError> {
    let path = m.path.as_str();
    let mut changed = false;
    match sftp.lstat(path).await {
        Ok(st) if st.is_dir() => {}
        Ok(_) => return Ok(None),
        Err(SftpError::Missing) => {
            let mut at = String::with_capacity(path.len());
            for part in path.split('/').filter(|p| !p.is_empty()) {
                at.push('/');
                at.push_str(part);
                match sftp.stat(&at).await {
                    Ok(st) if st.is_dir() => {}
                    Ok(_) => return Ok(None),
                    Err(SftpError::Missing) => sftp.mkdir(&at).await?,
                    Err(e) => return Err(e),
                }
            }
            changed = true;
        }
        Err(e) => return Err(e),
    }
    if let Some(want) = m.mode {
        let now = sftp.stat(path).await?.perms();
        if now != want {
            if now & 0o7000 != 0 {
                return Ok(None);
            }
            sftp.set_mode(path, want).await?;
            changed = true;
        }
    }
    Ok(Some(format!(
        "{{\"path\":{},\"changed\":{changed},\"state\":\"directory\"}}",
        Value::from(path)
    )))
}

/// Writes the new content into a temp file next to the destination and renames it over;
/// on any failure the temp file is removed and the error returned (nothing changed).
async fn replace(
    sftp: &Sftp,
    put: &Put,
    dir: &str,
    old: Option<Stat>,
    want: u32,
) -> Result<(), SftpError> {
    let sep = if dir.ends_with('/') { "" } else { "/" };
    let tmp = format!("{dir}{sep}.kamo.{}", crate::transport::quote::random_tag());
    // At most the wanted read/write bits while the content is written, as the script's
    // umask does: the new content is never readable by more users than the final file.
    let handle = sftp.create_new(&tmp, want & 0o666).await?;
    let written = async {
        sftp.write_all(&handle, &put.content).await?;
        sftp.fstat(&handle).await
    }
    .await;
    let closed = sftp.close(&handle).await;
    let finish = async {
        let made = written?;
        closed?;
        if let Some(st) = old
            && (made.uid, made.gid) != (st.uid, st.gid)
        {
            // As the script's `chown ... || :`: keeping the old owner is best effort.
            let _ = sftp.set_ids(&tmp, st.uid, st.gid).await;
        }
        if made.perms() != want {
            sftp.set_mode(&tmp, want).await?;
        }
        sftp.rename_over(&tmp, &put.dest).await
    }
    .await;
    if finish.is_err() {
        let _ = sftp.remove(&tmp).await;
    }
    finish
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_is_what_the_scripts_kamo_dirof_gives() {
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a//b"), "/a");
        assert_eq!(parent("/b"), "/");
        assert_eq!(parent("//b"), "/");
        assert_eq!(parent("/a/b/c.conf"), "/a/b");
    }

    #[test]
    fn modes_are_shown_with_four_digits() {
        assert_eq!(shown(0o644), "0644");
        assert_eq!(shown(0o4755), "4755");
        assert_eq!(shown(0), "0000");
    }
}
