//! `mount` (ansible.posix.mount): `path` (`name`), `src`, `fstype`, `opts` (default
//! `defaults`), `dump`, `passno` (default `0`), `boot` (no → `noauto` added to opts), `fstab`
//! (default `/etc/fstab`), `state`:
//! - `present`: the fstab entry only; `mounted`: the entry, then `mount PATH` if not mounted
//!   (the mount point is created), or `mount -o remount PATH` if mounted and the entry changed;
//! - `unmounted`: `umount PATH` if mounted (fstab untouched);
//! - `absent`: the entry removed, `umount` if mounted, the empty mount point removed (rmdir);
//! - `remounted`: `mount -o remount PATH` (or `mount PATH` when not mounted), always a change.
//!
//! The fstab is rewritten with awk: the first entry for the mount point is kept as written when
//! its fields equal the wanted ones, else replaced by `src path fstype opts dump passno`; later
//! entries for the same point are dropped. Spaces in paths are written as `\040`. "Mounted" is
//! `mountpoint -q PATH`. A non-default `fstab` is passed to mount with `-T`.

use serde_json::{Map, Value};

use super::sh::{arg_bool, arg_str, known_args, q};
use super::syslib::{arg_choice, arg_req, js, sys_prelude};
use super::{ArgError, Flags, RemoteStep};
use crate::playbook::model::Module;

const KNOWN: &[&str] = &[
    "path", "name", "src", "fstype", "opts", "dump", "passno", "state", "fstab", "boot",
];

fn esc(s: &str) -> String {
    s.replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012")
}

#[allow(clippy::too_many_lines)]
pub fn build(
    module: Module,
    args: &Map<String, Value>,
    flags: Flags,
) -> Result<RemoteStep, ArgError> {
    let m = module;
    known_args(m, args, KNOWN)?;
    let path = arg_req(m, args, &["path", "name"])?;
    if !path.starts_with('/') {
        return Err(ArgError::new(
            m,
            format!("`path` must be absolute, not {path:?}"),
        ));
    }
    let path = if path.len() > 1 {
        path.trim_end_matches('/').to_owned()
    } else {
        path
    };
    let state = arg_choice(
        m,
        args,
        "state",
        &["mounted", "unmounted", "present", "absent", "remounted"],
        None,
    )?
    .ok_or_else(|| {
        ArgError::new(
            m,
            "`state` is required (mounted, unmounted, present, absent, remounted)",
        )
    })?;
    let fstab = arg_str(m, args, "fstab")?.unwrap_or_else(|| "/etc/fstab".to_owned());
    let t_opt = if fstab == "/etc/fstab" {
        String::new()
    } else {
        format!(" -T {}", q(&fstab))
    };
    let t_shown = if fstab == "/etc/fstab" {
        String::new()
    } else {
        format!(" -T {fstab}")
    };
    let p = q(&path);
    let mut summary = Vec::new();
    let mut s = sys_prelude(flags);
    if flags.diff {
        s.push_str("kamo_diff=true\n");
    }
    s.push_str(&format!(
        "kamo_m=false; mountpoint -q {p} </dev/null 2>/dev/null && kamo_m=true\n\
         kamo_fc=false\n\
         kamo_extra=\",\\\"name\\\":\"{}\",\\\"state\\\":\\\"{state}\\\"\"\n",
        q(&js(&path))
    ));
    let edits_fstab = matches!(state.as_str(), "present" | "mounted" | "absent");
    if edits_fstab {
        let line = if state == "absent" {
            String::new()
        } else {
            let src = arg_req(m, args, &["src"])?;
            let fstype = arg_req(m, args, &["fstype"])?;
            let mut opts = arg_str(m, args, "opts")?.unwrap_or_else(|| "defaults".to_owned());
            if !arg_bool(m, args, "boot", true)? && !opts.split(',').any(|o| o == "noauto") {
                opts.push_str(",noauto");
            }
            let dump = arg_str(m, args, "dump")?.unwrap_or_else(|| "0".to_owned());
            let passno = arg_str(m, args, "passno")?.unwrap_or_else(|| "0".to_owned());
            for (k, v) in [
                ("opts", &opts),
                ("dump", &dump),
                ("passno", &passno),
                ("fstype", &fstype),
            ] {
                if v.is_empty() || v.chars().any(char::is_whitespace) {
                    return Err(ArgError::new(
                        m,
                        format!("`{k}` must be one word, not {v:?}"),
                    ));
                }
            }
            format!(
                "{} {} {fstype} {opts} {dump} {passno}",
                esc(&src),
                esc(&path)
            )
        };
        summary.push(if state == "absent" {
            format!("remove the entry for {path} from {fstab}")
        } else {
            format!("{fstab}: {line}")
        });
        s.push_str(&format!(
            "kamo_f={}\n\
             {{ cat \"$kamo_f\" 2>/dev/null; true; }} | P={} L={} ST={state} awk '\n\
             BEGIN {{ p = ENVIRON[\"P\"]; line = ENVIRON[\"L\"]; st = ENVIRON[\"ST\"]; split(line, w, \" \"); done = 0 }}\n\
             /^[ \\t]*#/ || NF < 2 {{ print; next }}\n\
             $2 == p {{ if (st == \"absent\" || done) next; done = 1\n\
               d = ($5 == \"\") ? \"0\" : $5; n = ($6 == \"\") ? \"0\" : $6\n\
               if ($1 == w[1] && $3 == w[3] && $4 == w[4] && d == w[5] && n == w[6]) print; else print line; next }}\n\
             {{ print }}\n\
             END {{ if (st != \"absent\" && !done) print line }}' > \"$kamo_errf.new\"\n\
             if [ -e \"$kamo_f\" ] || [ -s \"$kamo_errf.new\" ]; then kamo_put \"$kamo_f\" 0644 && kamo_fc=true; fi\n",
            q(&fstab),
            q(&esc(&path)),
            q(&line),
        ));
    }
    let run = |s: &mut String, shown: String, cmd: String| {
        if !flags.check {
            s.push_str(&format!("  kamo_must {} {cmd}\n", q(&shown)));
        }
    };
    match state.as_str() {
        "mounted" => {
            summary.push(format!(
                "mount{t_shown} {path} (if not mounted; remount if the entry changed)"
            ));
            s.push_str("if ! $kamo_m; then kamo_changed=true\n");
            if !flags.check {
                s.push_str(&format!(
                    "  [ -d {p} ] || kamo_must {} mkdir -p {p}\n",
                    q(&format!("mkdir -p {path}"))
                ));
            }
            run(
                &mut s,
                format!("mount{t_shown} {path}"),
                format!("mount{t_opt} {p}"),
            );
            s.push_str("elif $kamo_fc; then\n");
            run(
                &mut s,
                format!("mount -o remount{t_shown} {path}"),
                format!("mount -o remount{t_opt} {p}"),
            );
            s.push_str("  :\nfi\n");
        }
        "unmounted" | "absent" => {
            summary.push(format!("umount {path} (if mounted)"));
            s.push_str("if $kamo_m; then kamo_changed=true\n");
            run(&mut s, format!("umount {path}"), format!("umount {p}"));
            s.push_str("  :\nfi\n");
            if state == "absent" && !flags.check {
                s.push_str(&format!("[ -d {p} ] && rmdir {p} 2>/dev/null\n"));
            }
        }
        "remounted" => {
            summary.push(format!(
                "mount -o remount{t_shown} {path} (mount if not mounted)"
            ));
            s.push_str("kamo_changed=true\nif $kamo_m; then\n");
            run(
                &mut s,
                format!("mount -o remount{t_shown} {path}"),
                format!("mount -o remount{t_opt} {p}"),
            );
            s.push_str("  :\nelse\n");
            run(
                &mut s,
                format!("mount{t_shown} {path}"),
                format!("mount{t_opt} {p}"),
            );
            s.push_str("  :\nfi\n");
        }
        _ => {}
    }
    s.push_str("kamo_done\n");
    Ok(RemoteStep { script: s, summary })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::modules::syslib::testkit::{CHECK, Sandbox, args};
    use serde_json::json;

    fn sandbox() -> Sandbox {
        let sb = Sandbox::new();
        sb.stub("mountpoint", r#"[ -f "$T/mounted" ]"#);
        sb.stub("mount", r#"touch "$T/mounted""#);
        sb.stub("umount", r#"rm "$T/mounted""#);
        sb
    }

    #[test]
    fn mounted_edits_fstab_and_mounts_once() {
        let sb = sandbox();
        sb.write("fstab", "# fstab\nUUID=1 / ext4 defaults 0 1\n/dev/old /mnt/data ext4 ro 0 0\n/dev/x /mnt/data xfs defaults\n");
        let f = format!("{}/fstab", sb.t());
        let mp = format!("{}/mnt/data dir", sb.t());
        let a = args(
            json!({"path": "/mnt/data", "src": "/dev/sdb1", "fstype": "ext4", "opts": "noatime", "state": "present", "fstab": f}),
        );
        let chk = sb.run(Module::Mount, &build(Module::Mount, &a, CHECK).unwrap());
        assert!(chk.changed && !chk.failed, "{chk:?}");
        let step = build(Module::Mount, &a, Flags::default()).unwrap();
        assert_eq!(
            step.summary,
            [format!("{f}: /dev/sdb1 /mnt/data ext4 noatime 0 0")]
        );
        assert!(sb.run(Module::Mount, &step).changed);
        assert_eq!(
            sb.read("fstab").unwrap(),
            "# fstab\nUUID=1 / ext4 defaults 0 1\n/dev/sdb1 /mnt/data ext4 noatime 0 0\n"
        );
        assert!(!sb.run(Module::Mount, &step).changed);
        assert_eq!(
            sb.take_log(),
            "mountpoint -q /mnt/data\nmountpoint -q /mnt/data\nmountpoint -q /mnt/data\n"
        );
        // mounted: a mount point with a space, created, mounted with -T.
        let a = args(
            json!({"path": mp, "src": "tmpfs", "fstype": "tmpfs", "state": "mounted", "fstab": f}),
        );
        let step = build(Module::Mount, &a, Flags::default()).unwrap();
        let r = sb.run(Module::Mount, &step);
        assert!(r.changed && !r.failed, "{r:?}");
        assert!(sb.read("fstab").unwrap().ends_with(&format!(
            "tmpfs {}/mnt/data\\040dir tmpfs defaults 0 0\n",
            sb.t()
        )));
        assert!(sb.dir.path().join("mnt/data dir").is_dir());
        assert!(sb.take_log().contains(&format!("mount -T {f} {mp}\n")));
        assert!(!sb.run(Module::Mount, &step).changed);
        let a = args(json!({"path": mp, "state": "absent", "fstab": f}));
        let r = sb.run(
            Module::Mount,
            &build(Module::Mount, &a, Flags::default()).unwrap(),
        );
        assert!(r.changed, "{r:?}");
        assert!(sb.take_log().contains(&format!("umount {mp}\n")));
        assert!(!sb.read("fstab").unwrap().contains("tmpfs"));
        assert!(!sb.dir.path().join("mnt/data dir").exists());
    }

    #[test]
    fn argument_checks_and_failures() {
        let e = build(
            Module::Mount,
            &args(json!({"path": "/x", "state": "on"})),
            Flags::default(),
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("mounted, unmounted, present, absent, remounted")
        );
        assert!(
            build(
                Module::Mount,
                &args(json!({"path": "/x", "state": "mounted"})),
                Flags::default()
            )
            .is_err()
        );
        assert!(
            build(
                Module::Mount,
                &args(json!({"path": "x", "state": "unmounted"})),
                Flags::default()
            )
            .is_err()
        );
        let sb = sandbox();
        sb.write("mounted", "");
        sb.stub("umount", "echo 'umount: /x: target is busy.' >&2; exit 32");
        let r = sb.run(
            Module::Mount,
            &build(
                Module::Mount,
                &args(json!({"path": "/x", "state": "unmounted"})),
                Flags::default(),
            )
            .unwrap(),
        );
        assert!(r.failed && r.rc == Some(32) && r.msg.unwrap().contains("target is busy"));
    }
}
