//! `stat`, `slurp` and `fetch` (host side): read-only, so check mode changes nothing.
//!
//! `stat` supports `path`, `follow` (default no), `get_checksum` (default yes),
//! `checksum_algorithm` (`sha1` default, `sha256`, `sha512`, `md5`), and accepts `get_mime`
//! and `get_attributes` without acting on them (no `mimetype`/`attributes` fields). The
//! `stat` result has `exists`, `path`, `mode` ("0644"), `isdir`, `isreg`, `islnk`, `isblk`,
//! `ischr`, `isfifo`, `issock`, `uid`, `gid`, `pw_name`, `gr_name`, `size`, `mtime`,
//! `atime`, `ctime`, `inode`, `dev`, `nlink`, `readable`, `writeable`, `executable`,
//! `lnk_source`/`lnk_target` for links and `checksum` for regular files.
//! `slurp` returns `content` (base64), `encoding: base64`, `source`. `fetch` returns
//! `content` (base64), `remote_checksum` (sha1) and `remote_path`; the engine writes the
//! local file under `dest` (`flat`, `validate_checksum` are the engine's) and decides
//! `changed`.

use serde_json::{Map, Value, json};

use super::fsutil::{fail, js, lib, path_arg};
use super::sh::{arg_bool, arg_str, known_args, prelude, q, result_static};
use super::{ArgError, Flags, RemoteStep};
use crate::playbook::model::Module;

pub fn build(
    module: Module,
    args: &Map<String, Value>,
    _flags: Flags,
) -> Result<RemoteStep, ArgError> {
    match module {
        Module::Stat => stat(args),
        _ => slurp(module, args),
    }
}

fn stat(args: &Map<String, Value>) -> Result<RemoteStep, ArgError> {
    let m = Module::Stat;
    known_args(
        m,
        args,
        &[
            "path",
            "follow",
            "get_checksum",
            "checksum_algorithm",
            "get_mime",
            "get_attributes",
        ],
    )?;
    let path = path_arg(m, args, &["path", "dest", "name"])?;
    let follow = arg_bool(m, args, "follow", false)?;
    let checksum = arg_bool(m, args, "get_checksum", true)?;
    let algo = arg_str(m, args, "checksum_algorithm")?.unwrap_or_else(|| "sha1".to_owned());
    let tool = match algo.as_str() {
        "sha1" => "sha1sum",
        "sha256" => "sha256sum",
        "sha512" => "sha512sum",
        "md5" => "md5sum",
        other => {
            return Err(ArgError::new(
                m,
                format!("unsupported checksum_algorithm {other:?}: sha1, sha256, sha512 or md5"),
            ));
        }
    };
    arg_bool(m, args, "get_mime", true)?;
    arg_bool(m, args, "get_attributes", true)?;
    let l = if follow { "-L " } else { "" };
    let mut s = prelude();
    s.push_str(lib());
    s.push_str(&format!("p={}\n", q(&path)));
    let exists = if follow {
        "[ -e \"$p\" ]"
    } else {
        "{ [ -e \"$p\" ] || [ -L \"$p\" ]; }"
    };
    s.push_str(&format!(
        "if ! {exists}; then {}exit 0; fi\n",
        result_static(
            json!({"changed": false, "stat": {"exists": false, "path": path}})
                .as_object()
                .expect("object")
        )
        .replace('\n', "; ")
    ));
    s.push_str(&format!(
        "kamo_st=$(stat {l}-c '%a %u %g %s %Y %X %Z %h %i %d %U %G' -- \"$p\") || {}\nset -- $kamo_st\nkamo_pad \"$1\"\n",
        fail(m, &format!("cannot stat {path}"))
    ));
    let nolink = if follow { "" } else { " && [ ! -L \"$p\" ]" };
    // Each test sets a variable (no `$(...)`: a command substitution is a process).
    let mut tests = String::new();
    let mut t = |name: &str, test: &str, nolink: &str| {
        tests.push_str(&format!(
            "if [ {test} \"$p\" ]{nolink}; then kamo_{name}=true; else kamo_{name}=false; fi\n"
        ));
        format!("$kamo_{name}")
    };
    let islnk = if follow {
        "false".to_owned()
    } else {
        t("islnk", "-L", "")
    };
    let mut j = format!(
        "{{\"changed\":false,\"stat\":{{\"exists\":true,\"path\":{}",
        js(&path)
    );
    j = q(&j);
    s.push_str(&format!("kamo_j={j}\n"));
    let fields = [
        ("mode", "\\\"$kamo_pm\\\"".to_owned()),
        ("uid", "$2".to_owned()),
        ("gid", "$3".to_owned()),
        ("size", "$4".to_owned()),
        ("mtime", "$5".to_owned()),
        ("atime", "$6".to_owned()),
        ("ctime", "$7".to_owned()),
        ("nlink", "$8".to_owned()),
        ("inode", "$9".to_owned()),
        ("dev", "${10}".to_owned()),
        ("isdir", t("isdir", "-d", nolink)),
        ("isreg", t("isreg", "-f", nolink)),
        ("islnk", islnk),
        ("isblk", t("isblk", "-b", nolink)),
        ("ischr", t("ischr", "-c", nolink)),
        ("isfifo", t("isfifo", "-p", nolink)),
        ("issock", t("issock", "-S", nolink)),
        ("readable", t("readable", "-r", "")),
        ("writeable", t("writeable", "-w", "")),
        ("executable", t("executable", "-x", "")),
        ("pw_name", "$kamo_pw".to_owned()),
        ("gr_name", "$kamo_gr".to_owned()),
    ];
    s.push_str(&tests);
    // Names as JSON strings in variables: a plain name needs no subshell.
    s.push_str("kamo_jsv \"${11}\"; kamo_pw=$kamo_js; kamo_jsv \"${12}\"; kamo_gr=$kamo_js\n");
    for (k, v) in fields {
        s.push_str(&format!("kamo_j=\"$kamo_j,\\\"{k}\\\":{v}\"\n"));
    }
    s.push_str(
        "if [ -L \"$p\" ]; then kamo_j=\"$kamo_j,\\\"lnk_source\\\":$(kamo_jstr \"$(readlink -f -- \"$p\")\"),\\\"lnk_target\\\":$(kamo_jstr \"$(readlink -- \"$p\")\")\"; fi\n",
    );
    if checksum {
        s.push_str(&format!(
            "if [ -f \"$p\" ]{nolink} && [ -r \"$p\" ]; then kamo_sum=$({tool} < \"$p\"); kamo_j=\"$kamo_j,\\\"checksum\\\":\\\"${{kamo_sum%% *}}\\\"\"; fi\n"
        ));
    }
    s.push_str("kamo_result \"$kamo_j}}\"\n");
    Ok(RemoteStep {
        script: s,
        summary: vec![format!("stat {path}")],
    })
}

fn slurp(m: Module, args: &Map<String, Value>) -> Result<RemoteStep, ArgError> {
    let fetch = m == Module::Fetch;
    if fetch {
        known_args(
            m,
            args,
            &[
                "src",
                "dest",
                "flat",
                "fail_on_missing",
                "validate_checksum",
            ],
        )?;
    } else {
        known_args(m, args, &["src", "path"])?;
    }
    let src = path_arg(m, args, &["src", "path"])?;
    let fail_on_missing = arg_bool(m, args, "fail_on_missing", true)?;
    let mut s = prelude();
    s.push_str(lib());
    s.push_str(&format!("p={}\n", q(&src)));
    let missing = if fetch && !fail_on_missing {
        format!(
            "{}exit 0",
            result_static(json!({"changed": false, "file": src, "msg": "the remote file does not exist, not transferring, ignored"}).as_object().expect("object")).replace('\n', "; ")
        )
    } else {
        fail(m, &format!("file not found: {src}"))
    };
    s.push_str(&format!("[ -e \"$p\" ] || {{ {missing}; }}\n"));
    s.push_str(&format!(
        "[ ! -d \"$p\" ] || {}\n[ -r \"$p\" ] || {}\n",
        fail(m, &format!("{src} is a directory; only files can be read")),
        fail(m, &format!("{src} is not readable"))
    ));
    let head = if fetch {
        json!({"changed": false, "remote_path": src})
    } else {
        json!({"changed": false, "encoding": "base64", "source": src})
    };
    let mut head = head.to_string();
    head.pop();
    s.push_str(&format!("kamo_j={}\n", q(&head)));
    if fetch {
        s.push_str(
            "kamo_j=\"$kamo_j,\\\"remote_checksum\\\":\\\"$(sha1sum < \"$p\" | cut -c1-40)\\\"\"\n",
        );
    }
    s.push_str(&format!(
        "kamo_c=$(base64 -w0 < \"$p\") || {}\nkamo_result \"$kamo_j,\\\"content\\\":\\\"$kamo_c\\\"}}\"\n",
        fail(m, &format!("cannot read {src}"))
    ));
    Ok(RemoteStep {
        script: s,
        summary: vec![format!("read {src}")],
    })
}

#[cfg(test)]
mod tests {
    use super::super::fsutil::testing::{CHECK, NASTY, ok, run};
    use super::*;
    use base64::Engine as _;
    use std::fs;

    #[test]
    fn stat_reports_files_dirs_links_and_absence() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join(NASTY);
        fs::create_dir(&base).unwrap();
        let f = base.join("f \"q\"");
        fs::write(&f, "hello").unwrap();
        fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
        let p = f.display().to_string();
        let r = ok(Module::Stat, &json!({"path": p}), CHECK);
        let st = &r.data["stat"];
        assert!(!r.changed);
        assert_eq!(st["exists"], true);
        assert_eq!(st["isreg"], true);
        assert_eq!(st["isdir"], false);
        assert_eq!(st["mode"], "0640");
        assert_eq!(st["size"], 5);
        assert_eq!(st["pw_name"], "root");
        assert_eq!(st["uid"], 0);
        assert_eq!(st["path"], p);
        assert_eq!(st["checksum"], "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
        let l = base.join("link");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        let r = ok(
            Module::Stat,
            &json!({"path": l.display().to_string()}),
            Flags::default(),
        );
        assert_eq!(r.data["stat"]["islnk"], true);
        assert_eq!(r.data["stat"]["lnk_source"], p);
        assert!(r.data["stat"].get("checksum").is_none());
        let r = ok(
            Module::Stat,
            &json!({"path": l.display().to_string(), "follow": true, "checksum_algorithm": "sha256"}),
            Flags::default(),
        );
        assert_eq!(r.data["stat"]["islnk"], false);
        assert_eq!(r.data["stat"]["isreg"], true);
        assert_eq!(
            r.data["stat"]["checksum"],
            super::super::fsutil::sha256_hex(b"hello")
        );
        // A link whose target is not UTF-8 still gives a parseable result.
        let odd = base.join("odd");
        std::os::unix::fs::symlink(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"bad\xff"),
            &odd,
        )
        .unwrap();
        let r = ok(
            Module::Stat,
            &json!({"path": odd.display().to_string()}),
            Flags::default(),
        );
        assert_eq!(r.data["stat"]["lnk_target"], "(not UTF-8)");
        let r = ok(
            Module::Stat,
            &json!({"path": base.display().to_string()}),
            Flags::default(),
        );
        assert_eq!(r.data["stat"]["isdir"], true);
        let r = ok(
            Module::Stat,
            &json!({"path": base.join("nope").display().to_string()}),
            Flags::default(),
        );
        assert_eq!(r.data["stat"]["exists"], false);
        assert!(!dir.path().join("pwned").exists());
    }

    #[test]
    fn slurp_and_fetch() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("data $(x)");
        let bytes = b"bin\0ary\xff\n";
        fs::write(&f, bytes).unwrap();
        let p = f.display().to_string();
        let r = ok(Module::Slurp, &json!({"src": p}), Flags::default());
        assert_eq!(r.data["encoding"], "base64");
        assert_eq!(r.data["source"], p);
        let got = base64::engine::general_purpose::STANDARD
            .decode(r.data["content"].as_str().unwrap())
            .unwrap();
        assert_eq!(got, bytes);
        let r = ok(
            Module::Fetch,
            &json!({"src": p, "dest": "/tmp/x"}),
            Flags::default(),
        );
        assert_eq!(r.data["remote_path"], p);
        assert_eq!(r.data["remote_checksum"].as_str().unwrap().len(), 40);
        assert!(r.data["content"].is_string());
        let missing = dir.path().join("missing").display().to_string();
        let r = run(Module::Slurp, &json!({"src": missing}), Flags::default());
        assert!(r.failed && r.msg.clone().unwrap().contains("file not found"));
        let r = run(
            Module::Fetch,
            &json!({"src": missing, "dest": "d", "fail_on_missing": false}),
            Flags::default(),
        );
        assert!(!r.failed && !r.changed);
        let r = run(
            Module::Slurp,
            &json!({"src": dir.path().display().to_string()}),
            Flags::default(),
        );
        assert!(r.failed && r.msg.clone().unwrap().contains("directory"));
    }
}
