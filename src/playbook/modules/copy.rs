//! `copy` and `template`: write known bytes to a file on the host, atomically.
//!
//! The content is `content:` or `_content_b64` (the engine reads `src:` on the controller, or
//! renders the template, and passes the bytes base64-encoded). It travels in the script;
//! an existing destination of the same size is compared with it through a pipe (`cmp`), and
//! only new content is written into a temp file next to the destination, given its
//! mode/owner/group and moved over the destination with `mv -f`; a failure leaves the
//! destination untouched and the trap removes the temp file. The digest and size in the
//! result are worked out on the controller: the node runs 2 to 5 programs per task (see
//! `forks.rs`).
//!
//! Supported: `dest`, `content`, `_content_b64`, `_src_name` (a `dest` that is a directory
//! gets the source's base name), `mode` (octal or symbolic), `owner`, `group`, `backup`,
//! `force` (no: an existing file keeps its content; attributes are still applied),
//! `validate` (a command with `%s`, run on the temp file before it replaces `dest`), `follow`
//! (yes: write through a symlink at `dest`; no, the default: a changed file replaces the
//! link). Not supported: `validate`, `directory_mode`, `remote_src`, copying directories.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::fsutil::{
    Attrs, Install, Source, install_into, js, lib, new_tmp, parse_validate, probe_into, push_fail,
    sha256_hex,
};
use super::sh::{arg_bool, arg_str, known_args, prelude, push_q, q};
use super::{ArgError, Flags, RemoteStep};
use crate::playbook::model::Module;

const KNOWN: &[&str] = &[
    "dest",
    "content",
    "_content_b64",
    "_src_name",
    "src",
    "mode",
    "owner",
    "group",
    "backup",
    "force",
    "follow",
    "validate",
];

pub fn build(
    module: Module,
    args: &Map<String, Value>,
    flags: Flags,
) -> Result<RemoteStep, ArgError> {
    known_args(module, args, KNOWN)?;
    let dest = arg_str(module, args, "dest")?
        .filter(|d| !d.is_empty())
        .ok_or_else(|| ArgError::new(module, "missing required argument `dest`"))?;
    let bytes = match (
        arg_str(module, args, "_content_b64")?,
        arg_str(module, args, "content")?,
    ) {
        (Some(b64), None) => base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| ArgError::new(module, format!("`_content_b64` is not base64: {e}")))?,
        (None, Some(text)) => {
            if args.contains_key("src") {
                return Err(ArgError::new(module, "`src` and `content` are exclusive"));
            }
            text.into_bytes()
        }
        (Some(_), Some(_)) => {
            return Err(ArgError::new(
                module,
                "`content` and a resolved `src` are exclusive",
            ));
        }
        (None, None) if args.contains_key("src") => {
            return Err(ArgError::new(module, "src must be resolved by the engine"));
        }
        (None, None) => {
            return Err(ArgError::new(
                module,
                "one of `content` or `src` is required",
            ));
        }
    };
    let attrs = Attrs::parse(module, args)?;
    let backup = arg_bool(module, args, "backup", false)?;
    let force = arg_bool(module, args, "force", true)?;
    let follow = arg_bool(module, args, "follow", false)?;
    let src_name = arg_str(module, args, "_src_name")?;
    if let Some(n) = &src_name
        && (n.is_empty() || n.contains('/') || n == "." || n == "..")
    {
        return Err(ArgError::new(module, format!("invalid `_src_name` {n:?}")));
    }
    let shown_dest = match (&src_name, dest.ends_with('/')) {
        (Some(n), true) => format!("{dest}{n}"),
        (None, true) => {
            return Err(ArgError::new(
                module,
                format!("dest {dest} is a directory and no source file name is known"),
            ));
        }
        _ => dest.clone(),
    };

    let mut s = prelude();
    s.push_str(lib());
    s.push_str("d=");
    push_q(&mut s, &shown_dest);
    s.push('\n');
    // The destination as used (a directory gets the source name) is one of two paths known
    // here, so its JSON string is made here too.
    let jdest = |p: &str| format!("kamo_j={}", q(&format!("{{\"dest\":{}", js(p))));
    if let Some(n) = &src_name {
        s.push_str("if [ -d \"$d\" ]; then d=\"$d\"/");
        push_q(&mut s, n);
        s.push_str("; ");
        s.push_str(&jdest(&format!("{shown_dest}/{n}")));
        s.push_str("; else ");
        s.push_str(&jdest(&shown_dest));
        s.push_str("; fi\n");
    } else {
        s.push_str("if [ -d \"$d\" ]; then ");
        push_fail(
            &mut s,
            module,
            &format!("dest {shown_dest} is a directory and no source file name is known"),
        );
        s.push_str("; fi\n");
        s.push_str(&jdest(&shown_dest));
        s.push('\n');
    }
    if follow {
        s.push_str("if [ -L \"$d\" ]; then d=$(readlink -f -- \"$d\"); fi\n");
    }
    s.push_str("kamo_dirof \"$d\"; [ -d \"$kamo_dn\" ] || ");
    push_fail(
        &mut s,
        module,
        &format!("the directory of {shown_dest} does not exist"),
    );
    s.push('\n');
    let install = Install {
        module,
        attrs: &attrs,
        backup,
        shown_dest: &shown_dest,
        validate: parse_validate(module, args)?,
        flags,
        source: if force {
            Source::Controller
        } else {
            Source::ControllerKeep
        },
    };
    probe_into(&mut s, &install);
    // The content is known here, so the host needs no temp file to find it unchanged: a
    // destination of another size differs, one of the same size is compared through a pipe
    // (`cmp`), and the digest and size of the result are the controller's.
    // The content is held once, in a shell variable (an assignment: no process); text is
    // written with printf (a builtin), only bytes a shell word cannot hold (NUL) or that are
    // not text go through base64.
    s.push_str("kamo_c=");
    let emit = match std::str::from_utf8(&bytes) {
        Ok(text) if !text.contains('\0') => {
            push_q(&mut s, text);
            "printf '%s' \"$kamo_c\""
        }
        _ => {
            push_q(
                &mut s,
                &base64::engine::general_purpose::STANDARD.encode(&bytes),
            );
            "printf '%s' \"$kamo_c\" | base64 -d"
        }
    };
    s.push('\n');
    let size = bytes.len();
    let digest = sha256_hex(&bytes);
    s.push_str("content_changed=1\nif [ \"$exists\" = 1 ]; then\n");
    if force {
        s.push_str(&format!(
            "if [ \"$kamo_fsize\" = {size} ] && {emit} | cmp -s -- - \"$d\"; then content_changed=0; fi\n"
        ));
    } else {
        s.push_str("content_changed=0\n");
    }
    s.push_str("fi\nif [ \"$content_changed\" = 1 ]; then\n");
    // `kamo_dn` is the directory of `$d` (above).
    s.push_str(&new_tmp(module, flags).replacen("kamo_dirof \"$d\"; ", "", 1));
    s.push_str(emit);
    s.push_str(" > \"$kamo_tmp\" || ");
    push_fail(&mut s, module, "cannot write the temporary file");
    if force {
        // Unchanged content is the same bytes: the same digest.
        s.push_str(&format!("\nkamo_size={size}\nfi\nkamo_sum={digest}\n"));
    } else {
        s.push_str(&format!("\nkamo_sum={digest}; kamo_size={size}\nfi\n"));
    }
    install_into(&mut s, &install);

    let mut summary = vec![format!(
        "write {shown_dest}: {} bytes, sha256 {}{}{}",
        bytes.len(),
        digest,
        attrs.shown(),
        if force { "" } else { " (only if absent)" }
    )];
    if backup {
        summary.push(format!("keep a backup of {shown_dest} when it changes"));
    }
    if put_plan(module, args, flags).is_some() {
        summary.push(
            "over SFTP when the host's sshd allows it and the task does not become (lstat, \
             a temp file written, its mode set, renamed over the destination); else the script"
                .to_owned(),
        );
    }
    let _ = json!(null);
    Ok(RemoteStep { script: s, summary })
}

/// A `copy` or `template` whose work can be done over SFTP instead of its script (see
/// `engine::put`): the content and an absolute destination known here, an octal `mode` or
/// none, and nothing the SFTP path does not do (owner, group, backup, validate, follow,
/// `force: no`, check or diff mode). The script stays the definition: the SFTP path does
/// what it does in the common case and hands every other case back to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    pub dest: String,
    pub content: Vec<u8>,
    /// Permission bits of an octal `mode`.
    pub mode: Option<u32>,
    /// The content's SHA-256, hex.
    pub digest: String,
    /// Only a destination that does not exist yet is written here (`lineinfile` with
    /// `create`: an existing file is edited by the script).
    pub only_new: bool,
    /// The result's name for the destination: `dest` (copy, template) or `path`.
    pub key: &'static str,
}

/// The [`Put`] for a task's arguments, when it has one.
#[must_use]
pub fn put_plan(module: Module, args: &Map<String, Value>, flags: Flags) -> Option<Put> {
    const SIMPLE: &[&str] = &[
        "dest",
        "content",
        "_content_b64",
        "_src_name",
        "mode",
        "force",
        "backup",
        "follow",
    ];
    if flags.check || flags.diff || !matches!(module, Module::Copy | Module::Template) {
        return None;
    }
    if args.keys().any(|k| !SIMPLE.contains(&k.as_str())) {
        return None;
    }
    let off = |key: &str, default: bool| arg_bool(module, args, key, default).ok();
    if !off("force", true)? || off("backup", false)? || off("follow", false)? {
        return None;
    }
    let dest = arg_str(module, args, "dest").ok()??;
    if !dest.starts_with('/') || dest.ends_with('/') {
        return None;
    }
    let content = match (
        arg_str(module, args, "_content_b64").ok()?,
        arg_str(module, args, "content").ok()?,
    ) {
        (Some(b64), None) => base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .ok()?,
        (None, Some(text)) => text.into_bytes(),
        _ => return None,
    };
    let mode = match super::fsutil::parse_mode(module, args).ok()? {
        None => None,
        Some(super::fsutil::Mode::Octal(m)) => Some(u32::from_str_radix(&m, 8).ok()?),
        Some(super::fsutil::Mode::Symbolic(_)) => return None,
    };
    let digest = sha256_hex(&content);
    Some(Put {
        dest,
        content,
        mode,
        digest,
        only_new: false,
        key: "dest",
    })
}

#[cfg(test)]
mod tests {
    use super::super::fsutil::testing::{CHECK, DIFF, NASTY, args, mode_of, ok, run};
    use super::*;
    use std::fs;

    #[test]
    fn only_a_plain_copy_goes_over_sftp() {
        let put = |a: Value| put_plan(Module::Copy, &args(a), Flags::default());
        let p = put(json!({"dest": "/etc/a", "content": "x", "mode": "644"})).unwrap();
        assert_eq!(
            (p.content.as_slice(), p.mode, p.only_new, p.key),
            (&b"x"[..], Some(0o644), false, "dest")
        );
        assert!(put(json!({"dest": "/etc/a", "_content_b64": "eA==", "_src_name": "a"})).is_some());
        for a in [
            json!({"dest": "etc/a", "content": "x"}),
            json!({"dest": "/etc/", "content": "x"}),
            json!({"dest": "/etc/a", "content": "x", "mode": "a+r"}),
            json!({"dest": "/etc/a", "content": "x", "owner": "root"}),
            json!({"dest": "/etc/a", "content": "x", "backup": true}),
            json!({"dest": "/etc/a", "content": "x", "force": false}),
            json!({"dest": "/etc/a", "content": "x", "follow": true}),
            json!({"dest": "/etc/a", "content": "x", "validate": "true %s"}),
        ] {
            assert!(put(a.clone()).is_none(), "{a}");
        }
        let a = args(json!({"dest": "/etc/a", "content": "x"}));
        assert!(put_plan(Module::Copy, &a, CHECK).is_none());
        assert!(put_plan(Module::Copy, &a, DIFF).is_none());
        assert!(put_plan(Module::File, &a, Flags::default()).is_none());
    }

    #[test]
    fn writes_then_is_idempotent_with_mode_and_owner() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join(NASTY);
        fs::create_dir(&base).unwrap();
        let f = base.join("conf $(id) 'x'");
        let a = json!({"dest": f.display().to_string(), "content": "a=1\n", "mode": "0640", "owner": "root", "group": "0"});
        let r = ok(Module::Copy, &a, CHECK);
        assert!(r.changed);
        assert!(!f.exists());
        let r = ok(Module::Copy, &a, Flags::default());
        assert!(r.changed, "{r:?}");
        assert_eq!(fs::read_to_string(&f).unwrap(), "a=1\n");
        assert_eq!(mode_of(&f), 0o640);
        assert_eq!(r.data["mode"], "0640");
        assert_eq!(r.data["size"], 4);
        assert_eq!(r.data["checksum_sha256"], sha256_hex(b"a=1\n"));
        assert!(!dir.path().join("pwned").exists());
        assert_eq!(fs::read_dir(&base).unwrap().count(), 1, "no temp file left");
        let r = ok(Module::Copy, &a, Flags::default());
        assert!(!r.changed, "{r:?}");
        let r = ok(Module::Copy, &a, CHECK);
        assert!(!r.changed);
        // Only the mode differs.
        let a2 = json!({"dest": f.display().to_string(), "content": "a=1\n", "mode": "u=rw,g=,o="});
        let r = ok(Module::Copy, &a2, CHECK);
        assert!(r.changed);
        assert_eq!(mode_of(&f), 0o640);
        assert!(ok(Module::Copy, &a2, Flags::default()).changed);
        assert_eq!(mode_of(&f), 0o600);
        assert!(!ok(Module::Copy, &a2, Flags::default()).changed);
    }

    #[test]
    fn replaces_atomically_keeps_mode_backup_and_diff() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, "old\n").unwrap();
        fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o751)).unwrap();
        let ino =
            |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
        let before = ino(&f);
        let a = json!({"dest": f.display().to_string(), "_content_b64": "bmV3CmxpbmUK", "backup": true});
        let r = ok(Module::Copy, &a, DIFF);
        assert!(r.changed);
        assert_eq!(fs::read_to_string(&f).unwrap(), "new\nline\n");
        assert_ne!(ino(&f), before, "replaced by rename");
        assert_eq!(mode_of(&f), 0o751);
        assert_eq!(r.data["diff"]["before"], "old\n");
        assert_eq!(r.data["diff"]["after"], "new\nline\n");
        let bak = r.data["backup_file"].as_str().unwrap();
        assert!(bak.ends_with('~'));
        assert_eq!(fs::read_to_string(bak).unwrap(), "old\n");
        let r = ok(Module::Copy, &a, DIFF);
        assert!(!r.changed && r.data.get("backup_file").is_none() && r.data.get("diff").is_none());
    }

    #[test]
    fn force_no_directories_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let f = dir.path().join("f");
        fs::write(&f, "keep").unwrap();
        let r = ok(
            Module::Copy,
            &json!({"dest": f.display().to_string(), "content": "x", "force": "no"}),
            Flags::default(),
        );
        assert!(!r.changed);
        assert_eq!(fs::read_to_string(&f).unwrap(), "keep");
        // Into a directory, with the source name.
        let r = ok(
            Module::Template,
            &json!({"dest": d, "_content_b64": "eA==", "_src_name": "t.conf"}),
            Flags::default(),
        );
        assert!(r.changed);
        assert_eq!(fs::read_to_string(dir.path().join("t.conf")).unwrap(), "x");
        let r = run(
            Module::Copy,
            &json!({"dest": d, "content": "x"}),
            Flags::default(),
        );
        assert!(r.failed && r.msg.clone().unwrap().contains("is a directory"));
        let r = run(
            Module::Copy,
            &json!({"dest": format!("{d}/missing/f"), "content": "x"}),
            Flags::default(),
        );
        assert!(r.failed && r.msg.clone().unwrap().contains("does not exist"));
        let e = build(
            Module::Copy,
            &args(json!({"dest": "/x", "src": "a"})),
            Flags::default(),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "copy: src must be resolved by the engine");
        let e = build(
            Module::Copy,
            &args(json!({"dest": "/x", "content": "a", "mode": "0989"})),
            Flags::default(),
        )
        .unwrap_err();
        assert!(e.message.contains("invalid mode"));
        let e = build(
            Module::Template,
            &args(json!({"dest": "/x", "content": "a", "bogus": 1})),
            Flags::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("template: unsupported argument(s): bogus"),
            "{e}"
        );
    }

    #[test]
    fn validate_runs_on_the_new_content_before_the_move() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sudoers 'x'");
        fs::write(&f, "old ok\n").unwrap();
        let p = f.display().to_string();
        let a = json!({"dest": p, "content": "bad\n", "validate": "grep -q 'ok' %s"});
        let r = run(Module::Copy, &a, Flags::default());
        assert!(
            r.failed && r.msg.clone().unwrap().contains("validation"),
            "{r:?}"
        );
        assert_eq!(fs::read_to_string(&f).unwrap(), "old ok\n");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file removed"
        );
        let a = json!({"dest": p, "content": "new ok\n", "validate": "grep -q ok %s"});
        assert!(ok(Module::Copy, &a, Flags::default()).changed);
        assert_eq!(fs::read_to_string(&f).unwrap(), "new ok\n");
        let e = build(
            Module::Copy,
            &args(json!({"dest": "/x", "content": "a", "validate": "true"})),
            Flags::default(),
        )
        .unwrap_err();
        assert!(e.message.contains("%s"));
        // A destination directory with the engine's source name.
        let d = dir.path().display().to_string();
        let r = ok(
            Module::Copy,
            &json!({"dest": d, "content": "n", "_src_name": "n.txt"}),
            Flags::default(),
        );
        assert_eq!(r.data["dest"], format!("{d}/n.txt"));
    }

    #[test]
    fn summary_is_exact() {
        let step = build(
            Module::Copy,
            &args(json!({"dest": "/etc/x", "content": "hello\n", "mode": "644", "owner": "root"})),
            Flags::default(),
        )
        .unwrap();
        assert_eq!(
            step.summary,
            vec![format!(
                "write /etc/x: 6 bytes, sha256 {}, mode 0644, owner root",
                sha256_hex(b"hello\n")
            )]
        );
    }
}
