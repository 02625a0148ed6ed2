//! `unarchive` with `remote_src: yes`: unpack an archive that is already on the host.
//!
//! Supported: `src` (on the host), `dest` (an existing directory), `remote_src` (must be
//! yes), `creates` (skip when that path exists), `extra_opts` (a list of words added to the
//! `tar`/`unzip` command line). Tar archives (`.tar`, `.tar.gz`/`.tgz`, `.tar.xz`/`.txz`,
//! `.tar.bz2`/`.tbz2`, `.tar.zst`; GNU tar detects the compression) are compared with
//! `tar --compare` (content, size, mode, mtime of files) and unpacked with `tar -xf`; zip
//! archives need `unzip` on the host: they are unpacked into a temp directory and compared
//! file by file with `cmp`, then unpacked with `unzip -o`. Other extensions are tried as tar,
//! then zip. Check mode compares only. Not supported: copying the archive from the
//! controller (copy it first), `owner`/`group`/`mode` of extracted files, `include`,
//! `exclude`, `keep_newer`, `list_files`, `validate_certs` (no URLs).

use serde_json::{Map, Value, json};

use super::fsutil::{fail, lib, open_json, path_arg};
use super::sh::{arg_bool, arg_str, known_args, prelude, q, result_static};
use super::{ArgError, Flags, RemoteStep};
use crate::playbook::model::Module;

const M: Module = Module::Unarchive;

pub fn build(
    _module: Module,
    args: &Map<String, Value>,
    flags: Flags,
) -> Result<RemoteStep, ArgError> {
    known_args(
        M,
        args,
        &["src", "dest", "remote_src", "creates", "extra_opts"],
    )?;
    if !arg_bool(M, args, "remote_src", false)? {
        return Err(ArgError::new(
            M,
            "only remote_src: yes is supported; copy the archive first",
        ));
    }
    let src = path_arg(M, args, &["src"])?;
    let dest = path_arg(M, args, &["dest"])?;
    let creates = arg_str(M, args, "creates")?;
    let extra: Vec<String> = match args.get("extra_opts") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(words)) => words
            .iter()
            .map(|w| match w {
                Value::String(s) => Ok(s.clone()),
                _ => Err(ArgError::new(M, "`extra_opts` must be a list of strings")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ArgError::new(M, "`extra_opts` must be a list of strings")),
    };
    let extra_sh: String = extra.iter().fold(String::new(), |mut s, w| {
        s.push(' ');
        s.push_str(&q(w));
        s
    });
    let lower = src.to_ascii_lowercase();
    let kind = if std::path::Path::new(&lower)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
    {
        "zip"
    } else if [
        ".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".tbz", ".tar.zst",
    ]
    .iter()
    .any(|e| lower.ends_with(e))
    {
        "tar"
    } else {
        "auto"
    };

    let mut s = prelude();
    s.push_str(lib());
    s.push_str(&format!("a={}\nd={}\n", q(&src), q(&dest)));
    let mut fields = Map::new();
    fields.insert("dest".into(), Value::from(dest.clone()));
    fields.insert("src".into(), Value::from(src.clone()));
    s.push_str(&open_json(&fields));
    if let Some(c) = &creates {
        s.push_str(&format!(
            "if [ -e {} ]; then {}exit 0; fi\n",
            q(c),
            result_static(
                json!({"changed": false, "dest": dest, "src": src, "msg": format!("skipped, since {c} exists")})
                    .as_object()
                    .expect("object")
            )
            .replace('\n', "; ")
        ));
    }
    s.push_str(&format!(
        "[ -f \"$a\" ] || {}\n[ -d \"$d\" ] || {}\n",
        fail(M, &format!("src {src} does not exist on the host")),
        fail(M, &format!("dest {dest} is not a directory"))
    ));
    s.push_str(&format!("kamo_kind={kind}\n"));
    s.push_str(
        "if [ \"$kamo_kind\" = auto ]; then if tar -tf \"$a\" >/dev/null 2>&1; then kamo_kind=tar; else kamo_kind=zip; fi; fi\n",
    );
    s.push_str(&format!(
        "if [ \"$kamo_kind\" = zip ]; then command -v unzip >/dev/null 2>&1 || {}; fi\n",
        fail(
            M,
            "unzip is not installed on the host; install the unzip package"
        )
    ));
    // Compare.
    s.push_str(&format!(
        "changed=0\nif [ \"$kamo_kind\" = tar ]; then\ntar -tf \"$a\"{extra_sh} >/dev/null || {}\ntar -d -f \"$a\" -C \"$d\"{extra_sh} >/dev/null 2>&1 || changed=1\nelse\n",
        fail(M, &format!("{src} is not a readable tar archive"))
    ));
    let cmp_inner = "for f; do if [ -d \"$f\" ]; then [ -d \"$0/$f\" ] || { echo x; exit 0; }; elif [ -f \"$f\" ]; then cmp -s -- \"$f\" \"$0/$f\" || { echo x; exit 0; }; fi; done";
    s.push_str(&format!(
        "kamo_tmp=$(mktemp -d) || {}\nunzip -qo \"$a\"{extra_sh} -d \"$kamo_tmp\" >/dev/null || {}\n[ -z \"$(cd \"$kamo_tmp\" && find . -mindepth 1 -exec sh -c {} \"$d\" {{}} + | head -n 1)\" ] || changed=1\nrm -rf -- \"$kamo_tmp\"; kamo_tmp=''\nfi\n",
        fail(M, "cannot create a temporary directory"),
        fail(M, &format!("{src} is not a readable zip archive")),
        q(cmp_inner)
    ));
    if !flags.check {
        s.push_str(&format!(
            "if [ \"$changed\" = 1 ]; then\nif [ \"$kamo_kind\" = tar ]; then tar -xf \"$a\" -C \"$d\"{extra_sh} || {}\nelse unzip -qo \"$a\"{extra_sh} -d \"$d\" || {}\nfi\nfi\n",
            fail(M, "tar failed"),
            fail(M, "unzip failed")
        ));
    }
    s.push_str("kamo_tf \"$changed\"; kamo_result \"$kamo_j,\\\"changed\\\":$kamo_tfv}\"\n");
    let mut summary = format!("unpack {src} (on the host) into {dest}");
    if !extra.is_empty() {
        summary.push_str(&format!(" with options{extra_sh}"));
    }
    if let Some(c) = creates {
        summary.push_str(&format!(", unless {c} exists"));
    }
    Ok(RemoteStep {
        script: s,
        summary: vec![summary],
    })
}

#[cfg(test)]
mod tests {
    use super::super::fsutil::testing::{CHECK, NASTY, args, ok, run};
    use super::*;
    use std::fs;
    use std::process::Command;

    fn sh(cmd: &str, dir: &std::path::Path) {
        let st = Command::new("/bin/sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(st.success(), "{cmd}");
    }

    #[test]
    fn tar_and_zip_idempotent_with_check_mode() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join(NASTY);
        fs::create_dir_all(base.join("src/sub dir")).unwrap();
        fs::write(base.join("src/sub dir/f $(x)"), "hello\n").unwrap();
        sh(
            "tar -czf a.tgz -C src . && cd src && zip -qr ../a.zip .",
            &base,
        );
        for archive in ["a.tgz", "a.zip"] {
            let dest = base.join(format!("dest-{archive}"));
            fs::create_dir(&dest).unwrap();
            let a = json!({"src": base.join(archive).display().to_string(), "dest": dest.display().to_string(), "remote_src": true});
            assert!(ok(M, &a, CHECK).changed, "{archive}");
            assert!(!dest.join("sub dir").exists());
            assert!(ok(M, &a, Flags::default()).changed);
            assert_eq!(
                fs::read_to_string(dest.join("sub dir/f $(x)")).unwrap(),
                "hello\n"
            );
            assert!(!ok(M, &a, Flags::default()).changed, "{archive}");
            fs::write(dest.join("sub dir/f $(x)"), "changed\n").unwrap();
            assert!(ok(M, &a, CHECK).changed, "{archive}");
            assert!(ok(M, &a, Flags::default()).changed);
            assert_eq!(
                fs::read_to_string(dest.join("sub dir/f $(x)")).unwrap(),
                "hello\n"
            );
        }
        assert!(!dir.path().join("pwned").exists());
        let a = json!({"src": base.join("a.tgz").display().to_string(), "dest": base.display().to_string(), "remote_src": true, "creates": base.join("src").display().to_string()});
        let r = ok(M, &a, Flags::default());
        assert!(!r.changed && r.msg.unwrap().contains("skipped"));
        let r = run(
            M,
            &json!({"src": "/nonexistent.tgz", "dest": "/tmp", "remote_src": true}),
            Flags::default(),
        );
        assert!(r.failed && r.msg.clone().unwrap().contains("does not exist"));
        let e = build(
            M,
            &args(json!({"src": "a.tgz", "dest": "/tmp"})),
            Flags::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "unarchive: only remote_src: yes is supported; copy the archive first"
        );
    }
}
