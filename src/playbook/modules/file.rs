//! `file`: directories, symlinks, hard links, removal, touch, and attributes.
//!
//! Supported: `path` (or `dest`/`name`), `state` (`file`, `directory`, `link`, `hard`,
//! `absent`, `touch`; without `state` an existing path of any type only gets its attributes
//! and a missing one is an error), `src` (link/hard; a relative `src` is relative to the
//! link's directory, as the link itself reads), `mode` (octal or symbolic), `owner`, `group`,
//! `recurse` (directory: chown/chgrp/chmod -R, changes found with `find`), `force` (link/hard
//! over an existing file or empty directory; a link to a missing source), `follow` (default
//! yes: attributes of a symlink's target).
//! Links are made under a temp name in the same directory and renamed over the path
//! (`mv -T`), so a link is never missing. Not supported: `access_time`,
//! `modification_time`, `attributes`, `selevel`/SELinux; `mode` on a link is ignored (Linux
//! has no link modes); intermediate directories that `state: directory` creates get the
//! default mode, only the last one gets `mode`/`owner`/`group`.

use serde_json::{Map, Value};

use super::fsutil::{Attrs, MODE_FNS, Mode, fail, lib, open_json, path_arg};
use super::sh::{arg_bool, arg_str, known_args, prelude, q};
use super::{ArgError, Flags, RemoteStep};
use crate::playbook::model::Module;

const KNOWN: &[&str] = &[
    "path", "dest", "name", "state", "src", "mode", "owner", "group", "recurse", "force", "follow",
];

const M: Module = Module::File;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Unset,
    File,
    Directory,
    Link,
    Hard,
    Absent,
    Touch,
}

#[allow(clippy::too_many_lines)]
pub fn build(
    module: Module,
    args: &Map<String, Value>,
    flags: Flags,
) -> Result<RemoteStep, ArgError> {
    known_args(module, args, KNOWN)?;
    let path = path_arg(M, args, &["path", "dest", "name"])?;
    let state = match arg_str(M, args, "state")?.as_deref() {
        None => State::Unset,
        Some("file") => State::File,
        Some("directory") => State::Directory,
        Some("link") => State::Link,
        Some("hard") => State::Hard,
        Some("absent") => State::Absent,
        Some("touch") => State::Touch,
        Some(other) => {
            return Err(ArgError::new(
                M,
                format!(
                    "invalid state {other:?}: one of file, directory, link, hard, absent, touch"
                ),
            ));
        }
    };
    let attrs = Attrs::parse(M, args)?;
    let recurse = arg_bool(M, args, "recurse", false)?;
    let force = arg_bool(M, args, "force", false)?;
    let follow = arg_bool(M, args, "follow", true)?;
    let src = arg_str(M, args, "src")?;
    if recurse && state != State::Directory {
        return Err(ArgError::new(M, "`recurse` requires state: directory"));
    }
    if matches!(state, State::Link | State::Hard) != src.is_some() {
        return Err(ArgError::new(
            M,
            "`src` is required for state link and hard, and only used with them",
        ));
    }
    if state == State::Absent && path.trim_end_matches('/').is_empty() {
        return Err(ArgError::new(M, "refusing to remove /"));
    }
    let words = attrs.words();
    let with = |s: String| {
        if words.is_empty() {
            s
        } else {
            format!("{s} {words}")
        }
    };
    let summary = match state {
        State::Unset | State::File if words.is_empty() => format!("check that {path} exists"),
        State::Unset | State::File => format!("set {path}: {words}"),
        State::Directory => with(format!(
            "create directory {path}{}",
            if recurse { " (recursively)" } else { "" }
        )),
        State::Link => with(format!(
            "link {path} -> {}",
            src.clone().unwrap_or_default()
        )),
        State::Hard => with(format!(
            "hard link {path} -> {}",
            src.clone().unwrap_or_default()
        )),
        State::Absent => format!("remove {path}"),
        State::Touch => with(format!("touch {path}")),
    };

    let mut summary = vec![summary];
    if mkdir_plan(module, args, flags).is_some() {
        summary.push(
            "over SFTP when the host's sshd allows it and the task does not become (stat, \
             mkdir, chmod); else the script"
                .to_owned(),
        );
    }
    let mut s = prelude();
    s.push_str(lib());
    s.push_str(&format!("p={}\nchanged=0\n", q(&path)));
    let mut fields = Map::new();
    fields.insert("path".into(), Value::from(path.clone()));
    s.push_str(&open_json(&fields));
    let exists = "{ [ -e \"$p\" ] || [ -L \"$p\" ]; }";
    let act = |cmd: &str| {
        if flags.check {
            String::new()
        } else {
            format!("{cmd}\n")
        }
    };
    let follow_sh = if follow {
        "if [ -L \"$p\" ]; then p=$(readlink -f -- \"$p\"); fi\n"
    } else {
        ""
    };
    let parent_sh = format!(
        "kamo_dirof \"$p\"; [ -d \"$kamo_dn\" ] || {}\n",
        fail(M, &format!("the directory of {path} does not exist"))
    );
    let state_name;
    match state {
        State::Unset | State::File => {
            s.push_str(&format!(
                "{exists} || {}\n",
                fail(M, &format!("{path} does not exist"))
            ));
            if state == State::File {
                s.push_str(&format!(
                    "[ -f \"$p\" ] || {}\n",
                    fail(
                        M,
                        &format!(
                            "{path} is not a regular file (use state: directory or link for other types)"
                        )
                    )
                ));
                state_name = "\"file\"";
            } else {
                state_name = "$(if [ -L \"$p\" ]; then printf '\"link\"'; elif [ -d \"$p\" ]; then printf '\"directory\"'; else printf '\"file\"'; fi)";
            }
            s.push_str(&format!("kamo_state={state_name}\n"));
            s.push_str(follow_sh);
            s.push_str(&attrs_sh(&attrs, flags, false, ""));
        }
        State::Directory => {
            s.push_str(follow_sh);
            s.push_str(&format!(
                "if {exists}; then [ -d \"$p\" ] || {}\nelse changed=1\n{}fi\n",
                fail(M, &format!("{path} exists and is not a directory")),
                act(&format!(
                    "mkdir -p -- \"$p\" || {}",
                    fail(M, &format!("cannot create directory {path}"))
                ))
            ));
            s.push_str("if [ -d \"$p\" ]; then\n");
            s.push_str(&attrs_sh(&attrs, flags, recurse, ""));
            s.push_str("fi\nkamo_state='\"directory\"'\n");
        }
        State::Touch => {
            s.push_str(follow_sh);
            s.push_str(&parent_sh);
            s.push_str("changed=1\n");
            s.push_str(&act(&format!(
                "touch -- \"$p\" || {}",
                fail(M, &format!("cannot touch {path}"))
            )));
            s.push_str(&format!(
                "if {exists}; then\n{}fi\nkamo_state='\"file\"'\n",
                attrs_sh(&attrs, flags, false, "")
            ));
        }
        State::Absent => {
            s.push_str(&format!(
                "if {exists}; then changed=1\n{}fi\nkamo_state='\"absent\"'\n",
                act(&format!(
                    "rm -rf -- \"$p\" || {}",
                    fail(M, &format!("cannot remove {path}"))
                ))
            ));
        }
        State::Link | State::Hard => {
            let src = src.unwrap_or_default();
            let hard = state == State::Hard;
            s.push_str(&parent_sh);
            s.push_str(&format!(
                "s={}\ncase $s in /*) t=$s ;; *) t=$(dirname -- \"$p\")/$s ;; esac\n",
                q(&src)
            ));
            if hard || !force {
                s.push_str(&format!(
                    "[ -e \"$t\" ] || {}\n",
                    fail(
                        M,
                        &if hard {
                            format!("src {src} does not exist")
                        } else {
                            format!("src {src} does not exist; use force: yes to link to it anyway")
                        }
                    )
                ));
            }
            let same = if hard {
                "[ ! -L \"$p\" ] && [ -e \"$p\" ] && [ \"$(stat -c %d:%i -- \"$p\")\" = \"$(stat -c %d:%i -- \"$t\")\" ]"
            } else {
                "[ -L \"$p\" ] && [ \"$(readlink -- \"$p\")\" = \"$s\" ]"
            };
            let other = if hard {
                "[ -e \"$p\" ] || [ -L \"$p\" ]"
            } else {
                "[ -e \"$p\" ] && [ ! -L \"$p\" ]"
            };
            s.push_str(&format!(
                "kamo_rmdir=0\nif {same}; then :\nelse\nchanged=1\n"
            ));
            s.push_str(&format!("if {other}; then\n"));
            if force {
                s.push_str(&format!(
                    "if [ -d \"$p\" ] && [ ! -L \"$p\" ]; then [ -z \"$(ls -A -- \"$p\")\" ] || {}; kamo_rmdir=1; fi\n",
                    fail(M, &format!("{path} is a non-empty directory; refusing to replace it"))
                ));
            } else {
                s.push_str(&format!(
                    "{}\n",
                    fail(
                        M,
                        &format!(
                            "{path} exists and is not a {}; use force: yes to replace it",
                            if hard {
                                "hard link to the src"
                            } else {
                                "symlink"
                            }
                        )
                    )
                ));
            }
            s.push_str("fi\n");
            if !flags.check {
                s.push_str(&format!(
                    "kamo_dirof \"$p\"; kamo_tmp=$(mktemp -d -- \"$kamo_dn/.kamo.XXXXXX\") || {}\n",
                    fail(M, "cannot create a temporary directory next to the path")
                ));
                let ln = if hard {
                    "ln -- \"$t\" \"$kamo_tmp/l\""
                } else {
                    "ln -s -- \"$s\" \"$kamo_tmp/l\""
                };
                s.push_str(&format!(
                    "{ln} || {}\n",
                    fail(M, &format!("cannot create the link {path}"))
                ));
                s.push_str(&format!(
                    "if [ \"$kamo_rmdir\" = 1 ]; then rmdir -- \"$p\" || {}; fi\n",
                    fail(M, &format!("cannot remove the directory {path}"))
                ));
                s.push_str(&format!(
                    "mv -fT -- \"$kamo_tmp/l\" \"$p\" || {}\nrm -rf -- \"$kamo_tmp\"; kamo_tmp=''\n",
                    fail(M, &format!("cannot replace {path}"))
                ));
            }
            s.push_str("fi\n");
            if hard {
                s.push_str(&format!(
                    "if [ -e \"$p\" ]; then\n{}fi\nkamo_state='\"hard\"'\n",
                    attrs_sh(&attrs, flags, false, "")
                ));
            } else {
                let link_attrs = Attrs {
                    mode: None,
                    ..attrs.clone()
                };
                s.push_str(&format!(
                    "if [ -L \"$p\" ]; then\n{}fi\nkamo_state='\"link\"'\n",
                    attrs_sh(&link_attrs, flags, false, "-h ")
                ));
            }
            s.push_str(&format!(
                "kamo_j=\"$kamo_j\"{}\n",
                q(&format!(",\"src\":{}", Value::from(src)))
            ));
        }
    }
    s.push_str(
        "kamo_tf \"$changed\"; kamo_j=\"$kamo_j,\\\"changed\\\":$kamo_tfv,\\\"state\\\":$kamo_state\"\nkamo_result \"$kamo_j}\"\n",
    );
    Ok(RemoteStep { script: s, summary })
}

/// sh comparing and (outside check mode) applying mode, owner and group on `$p`; sets
/// `changed=1` when anything differs. `recurse`: also every entry below (symlinks skipped
/// for the mode). `chown_opts`: `-h ` for a link itself.
fn attrs_sh(attrs: &Attrs, flags: Flags, recurse: bool, chown_opts: &str) -> String {
    let mut s = String::new();
    s.push_str("attr_changed=0\n");
    if let Some(mode) = &attrs.mode {
        s.push_str(
            "if [ -d \"$p\" ]; then kamo_k=d; else kamo_k=f; fi\nkamo_md=$(stat -c %a -- \"$p\") || kamo_md=0\n\
             kamo_pad \"$kamo_md\"; kamo_base=$kamo_pm\n",
        );
        s.push_str(&mode.want_sh(M, "\"$kamo_k\""));
        s.push_str("[ \"$want_mode\" = \"$kamo_base\" ] || attr_changed=1\n");
    }
    // stat does not follow links, so a link's own owner and group are compared.
    s.push_str(&attrs.owner_group_differ_sh("p"));
    if recurse {
        let mut tests = Vec::new();
        if let Some(o) = &attrs.owner {
            tests.push(format!("! -user {}", q(o)));
        }
        if let Some(g) = &attrs.group {
            tests.push(format!("! -group {}", q(g)));
        }
        if let Some(Mode::Octal(m)) = &attrs.mode {
            tests.push(format!("\\( ! -type l ! -perm {m} \\)"));
        }
        if !tests.is_empty() {
            s.push_str(&format!(
                "[ -z \"$(find \"$p\" \\( {} \\) -print | head -n 1)\" ] || attr_changed=1\n",
                tests.join(" -o ")
            ));
        }
        if let Some(Mode::Symbolic(m)) = &attrs.mode {
            let inner = format!(
                "{MODE_FNS}for f; do if [ -d \"$f\" ]; then k=d; else k=f; fi; c=$(kamo_mode \"$f\"); w=$(kamo_symmode \"$c\" $k \"$0\") || exit 1; [ \"$c\" = \"$w\" ] || echo x; done"
            );
            s.push_str(&format!(
                "[ -z \"$(find \"$p\" ! -type l -exec sh -c {} {} {{}} + | head -n 1)\" ] || attr_changed=1\n",
                q(&inner),
                q(m)
            ));
        }
    }
    s.push_str("if [ \"$attr_changed\" = 1 ]; then changed=1\n");
    if !flags.check {
        let r = if recurse { "-R " } else { "" };
        let opts = format!("{r}{chown_opts}");
        s.push_str(&attrs.chown_sh(M, "p", &opts));
        if let Some(mode) = &attrs.mode {
            let m = if recurse {
                q(mode.shown())
            } else {
                "\"$want_mode\"".to_owned()
            };
            s.push_str(&format!(
                "chmod {r}-- {m} \"$p\" || {}\n",
                fail(M, "cannot set the mode")
            ));
        }
    }
    s.push_str("fi\n");
    s
}

/// A `file: state=directory` whose work can be done over SFTP instead of its script (see
/// `engine::put`): an absolute path without `.`/`..` parts, an octal `mode` or none, and
/// nothing else (owner, group, recurse, check or diff mode). As for `copy`, the script stays
/// the definition and gets every case the SFTP path does not do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mkdir {
    pub path: String,
    /// Permission bits of an octal `mode`.
    pub mode: Option<u32>,
}

/// The [`Mkdir`] for a task's arguments, when it has one.
#[must_use]
pub fn mkdir_plan(module: Module, args: &Map<String, Value>, flags: Flags) -> Option<Mkdir> {
    const SIMPLE: &[&str] = &["path", "dest", "name", "state", "mode", "follow"];
    if flags.check || flags.diff || module != Module::File {
        return None;
    }
    if args.keys().any(|k| !SIMPLE.contains(&k.as_str())) {
        return None;
    }
    if arg_str(M, args, "state").ok()?.as_deref() != Some("directory") {
        return None;
    }
    // Either value: a link at the path goes to the script.
    arg_bool(M, args, "follow", true).ok()?;
    let path = path_arg(M, args, &["path", "dest", "name"]).ok()?;
    if !path.starts_with('/')
        || path.ends_with('/')
        || path.split('/').any(|c| c == "." || c == "..")
    {
        return None;
    }
    let mode = match super::fsutil::parse_mode(M, args).ok()? {
        None => None,
        Some(Mode::Octal(m)) => Some(u32::from_str_radix(&m, 8).ok()?),
        Some(Mode::Symbolic(_)) => return None,
    };
    Some(Mkdir { path, mode })
}

#[cfg(test)]
mod tests {
    use super::super::fsutil::testing::{CHECK, NASTY, args, mode_of, ok, run};
    use super::*;
    use serde_json::json;
    use std::fs;

    #[test]
    fn only_a_plain_directory_goes_over_sftp() {
        let plan = |a: Value| mkdir_plan(M, &args(a), Flags::default());
        assert_eq!(
            plan(json!({"path": "/opt/a/b", "state": "directory", "mode": "0750"})),
            Some(Mkdir {
                path: "/opt/a/b".into(),
                mode: Some(0o750)
            })
        );
        for a in [
            json!({"path": "/opt/a", "state": "touch"}),
            json!({"path": "opt/a", "state": "directory"}),
            json!({"path": "/opt/../a", "state": "directory"}),
            json!({"path": "/opt/a", "state": "directory", "recurse": true}),
            json!({"path": "/opt/a", "state": "directory", "owner": "root"}),
            json!({"path": "/opt/a", "state": "directory", "mode": "u+x"}),
        ] {
            assert!(plan(a.clone()).is_none(), "{a}");
        }
        let a = args(json!({"path": "/opt/a", "state": "directory"}));
        assert!(mkdir_plan(M, &a, CHECK).is_none());
    }

    fn d(p: &std::path::Path) -> String {
        p.display().to_string()
    }

    #[test]
    fn directory_create_mode_recurse_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(NASTY).join("sub $(x)");
        let a = json!({"path": d(&p), "state": "directory", "mode": "0750"});
        let r = ok(M, &a, CHECK);
        assert!(r.changed && !p.exists());
        let r = ok(M, &a, Flags::default());
        assert!(r.changed && p.is_dir());
        assert_eq!(r.data["state"], "directory");
        assert_eq!(mode_of(&p), 0o750);
        assert!(!ok(M, &a, Flags::default()).changed);
        assert!(!ok(M, &a, CHECK).changed);
        // Recursive, octal then symbolic.
        fs::write(p.join("f"), "x").unwrap();
        fs::set_permissions(
            p.join("f"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let a = json!({"path": d(&p), "state": "directory", "mode": "0750", "recurse": true, "owner": "root"});
        assert!(ok(M, &a, CHECK).changed);
        assert_eq!(mode_of(&p.join("f")), 0o600);
        assert!(ok(M, &a, Flags::default()).changed);
        assert_eq!(mode_of(&p.join("f")), 0o750);
        assert!(!ok(M, &a, Flags::default()).changed);
        let a = json!({"path": d(&p), "state": "directory", "mode": "g-x,o+X", "recurse": true});
        assert!(ok(M, &a, CHECK).changed);
        assert!(ok(M, &a, Flags::default()).changed);
        assert_eq!(mode_of(&p.join("f")), 0o741);
        assert_eq!(mode_of(&p), 0o741);
        assert!(!ok(M, &a, CHECK).changed);
        assert!(!ok(M, &a, Flags::default()).changed);
        // A file in the way.
        let r = run(
            M,
            &json!({"path": d(&p.join("f")), "state": "directory"}),
            Flags::default(),
        );
        assert!(r.failed && r.msg.clone().unwrap().contains("not a directory"));
    }

    #[test]
    fn file_state_attributes_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("it's \"f\"");
        let r = run(
            M,
            &json!({"path": d(&f), "state": "file", "mode": "0600"}),
            Flags::default(),
        );
        assert!(
            r.failed && r.msg.clone().unwrap().contains("does not exist"),
            "{r:?}"
        );
        let r = run(M, &json!({"path": d(&f), "mode": "0600"}), Flags::default());
        assert!(r.failed);
        fs::write(&f, "x").unwrap();
        let a = json!({"path": d(&f), "mode": "u=rw,go=", "owner": "root", "group": "root"});
        let was = mode_of(&f);
        assert_eq!(ok(M, &a, CHECK).changed, was != 0o600);
        assert_eq!(mode_of(&f), was);
        let _ = ok(M, &a, Flags::default());
        assert_eq!(mode_of(&f), 0o600);
        let r = ok(M, &a, Flags::default());
        assert!(!r.changed && r.data["state"] == "file");
        let r = run(
            M,
            &json!({"path": d(dir.path()), "state": "file"}),
            Flags::default(),
        );
        assert!(r.failed && r.msg.clone().unwrap().contains("not a regular file"));
        let r = run(
            M,
            &json!({"path": d(&f), "owner": "no-such-user-kamo"}),
            Flags::default(),
        );
        assert!(r.failed && r.msg.clone().unwrap().contains("cannot set owner"));
        for bad in [
            json!({"path": "/x", "mode": "0888"}),
            json!({"path": "/x", "state": "weird"}),
            json!({"path": "/x", "frobnicate": 1}),
            json!({"path": "/x", "state": "link"}),
            json!({"state": "directory"}),
            json!({"path": "/", "state": "absent"}),
        ] {
            assert!(
                build(M, &args(bad.clone()), Flags::default()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn links_hard_links_absent_touch() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("tgt $(x)");
        fs::write(&target, "t").unwrap();
        let l = dir.path().join("l 'n'");
        let a = json!({"path": d(&l), "state": "link", "src": d(&target)});
        assert!(ok(M, &a, CHECK).changed);
        assert!(fs::symlink_metadata(&l).is_err());
        assert!(ok(M, &a, Flags::default()).changed);
        assert_eq!(fs::read_link(&l).unwrap(), target);
        assert!(!ok(M, &a, Flags::default()).changed);
        // Relative src, repointing an existing link.
        let a = json!({"path": d(&l), "state": "link", "src": "tgt $(x)"});
        assert!(ok(M, &a, Flags::default()).changed);
        assert_eq!(fs::read_link(&l).unwrap().to_str(), Some("tgt $(x)"));
        assert!(!ok(M, &a, Flags::default()).changed);
        // A file in the way needs force.
        let f = dir.path().join("plain");
        fs::write(&f, "p").unwrap();
        let a = json!({"path": d(&f), "state": "link", "src": d(&target)});
        let r = run(M, &a, Flags::default());
        assert!(r.failed && r.msg.clone().unwrap().contains("force"));
        let a = json!({"path": d(&f), "state": "link", "src": d(&target), "force": true});
        assert!(ok(M, &a, Flags::default()).changed);
        assert!(fs::symlink_metadata(&f).unwrap().file_type().is_symlink());
        // Hard link.
        let h = dir.path().join("h");
        let a = json!({"path": d(&h), "state": "hard", "src": d(&target)});
        assert!(ok(M, &a, Flags::default()).changed);
        assert!(!ok(M, &a, Flags::default()).changed);
        assert_eq!(fs::read_to_string(&h).unwrap(), "t");
        // Absent.
        let a = json!({"path": d(&l), "state": "absent"});
        assert!(ok(M, &a, CHECK).changed);
        assert!(fs::symlink_metadata(&l).is_ok());
        assert!(ok(M, &a, Flags::default()).changed);
        assert!(fs::symlink_metadata(&l).is_err());
        assert!(target.exists());
        assert!(!ok(M, &a, Flags::default()).changed);
        // Touch creates with a mode; always reports changed.
        let t = dir.path().join("touched");
        let a = json!({"path": d(&t), "state": "touch", "mode": "0604"});
        assert!(ok(M, &a, CHECK).changed);
        assert!(!t.exists());
        assert!(ok(M, &a, Flags::default()).changed);
        assert_eq!(mode_of(&t), 0o604);
        assert!(!dir.path().join("pwned").exists());
    }

    #[test]
    fn summaries() {
        let s = |a: Value| build(M, &args(a), Flags::default()).unwrap().summary;
        assert_eq!(
            s(json!({"path": "/opt/a", "state": "directory", "mode": "0755"})),
            vec![
                "create directory /opt/a mode 0755",
                "over SFTP when the host's sshd allows it and the task does not become (stat, \
                 mkdir, chmod); else the script"
            ]
        );
        assert_eq!(
            s(json!({"path": "/tmp/x", "state": "absent"})),
            vec!["remove /tmp/x"]
        );
        assert_eq!(
            s(json!({"path": "/l", "state": "link", "src": "/t"})),
            vec!["link /l -> /t"]
        );
    }
}
