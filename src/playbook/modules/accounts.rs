//! `user` and `group`.
//!
//! `user`: `name`, `state` (`present`/`absent`), `uid`, `group`, `groups` (list or comma
//! string; `""` with `append: no` removes all supplementary groups), `append`, `shell`, `home`,
//! `move_home`, `create_home` (`createhome`), `system`, `comment`, `password` (a crypt hash,
//! set with `chpasswd -e` from stdin so it is on no command line and in no summary),
//! `update_password` (`always`/`on_create`), `remove`, `force`. A missing user is made with one
//! `useradd`; an existing one gets one `usermod` holding only the fields that differ from
//! `getent passwd`/`getent group` (supplementary groups from `getent group` members).
//!
//! `group`: `name`, `state`, `gid`, `system`: `groupadd`, `groupmod -g`, `groupdel` as needed.

use serde_json::{Map, Value};

use super::sh::{arg_bool, arg_str, known_args, q};
use super::syslib::{arg_choice, arg_list, arg_req, arg_u64, js, sys_prelude};
use super::{ArgError, Flags, RemoteStep};
use crate::playbook::model::Module;

const USER_KNOWN: &[&str] = &[
    "name",
    "user",
    "state",
    "uid",
    "group",
    "groups",
    "append",
    "shell",
    "home",
    "move_home",
    "create_home",
    "createhome",
    "system",
    "comment",
    "password",
    "update_password",
    "remove",
    "force",
];

fn check_name(module: Module, name: &str) -> Result<(), ArgError> {
    if name.is_empty()
        || name.starts_with('-')
        || name
            .chars()
            .any(|c| c == ':' || c == ',' || c.is_whitespace())
    {
        return Err(ArgError::new(
            module,
            format!("{name:?} is not a valid name"),
        ));
    }
    Ok(())
}

pub fn build(
    module: Module,
    args: &Map<String, Value>,
    flags: Flags,
) -> Result<RemoteStep, ArgError> {
    if module == Module::Group {
        group(args, flags)
    } else {
        user(args, flags)
    }
}

#[allow(clippy::too_many_lines)]
fn user(args: &Map<String, Value>, flags: Flags) -> Result<RemoteStep, ArgError> {
    let m = Module::User;
    known_args(m, args, USER_KNOWN)?;
    let name = arg_req(m, args, &["name", "user"])?;
    check_name(m, &name)?;
    let present = arg_choice(m, args, "state", &["present", "absent"], Some("present"))?.as_deref()
        == Some("present");
    let n = q(&name);
    let mut s = sys_prelude(flags);
    s.push_str(&format!(
        "set -f\nkamo_pw=$(getent passwd {n} </dev/null) && kamo_exists=true || kamo_exists=false\n\
         kamo_extra=\",\\\"name\\\":\"{}\",\\\"state\\\":\\\"{}\\\"\"\n",
        q(&js(&name)),
        if present { "present" } else { "absent" }
    ));
    let mut summary = Vec::new();
    if !present {
        let mut opts = String::new();
        if arg_bool(m, args, "remove", false)? {
            opts.push_str(" -r");
        }
        if arg_bool(m, args, "force", false)? {
            opts.push_str(" -f");
        }
        summary.push(format!("userdel{opts} {name} (if it exists)"));
        s.push_str("if $kamo_exists; then kamo_changed=true\n");
        if !flags.check {
            s.push_str(&format!(
                "  kamo_must {} userdel{opts} {n}\n",
                q(&format!("userdel{opts} {name}"))
            ));
        }
        s.push_str("fi\nkamo_done\n");
        return Ok(RemoteStep { script: s, summary });
    }
    let uid = arg_u64(m, args, "uid")?;
    let grp = arg_str(m, args, "group")?;
    let groups = arg_list(m, args, "groups")?.map(|mut g| {
        g.sort();
        g.dedup();
        g
    });
    for g in groups.iter().flatten().chain(grp.iter()) {
        check_name(m, g)?;
    }
    let append = arg_bool(m, args, "append", false)?;
    let shell = arg_str(m, args, "shell")?;
    let home = arg_str(m, args, "home")?;
    let comment = arg_str(m, args, "comment")?;
    let create_home =
        arg_bool(m, args, "create_home", true)? && arg_bool(m, args, "createhome", true)?;
    let system = arg_bool(m, args, "system", false)?;
    let password = arg_str(m, args, "password")?;
    if password
        .as_deref()
        .is_some_and(|p| p.contains(':') || p.contains('\n'))
    {
        return Err(ArgError::new(
            m,
            "`password` must be a crypt hash (no `:` or newline)",
        ));
    }
    let always = arg_choice(
        m,
        args,
        "update_password",
        &["always", "on_create"],
        Some("always"),
    )?
    .as_deref()
        == Some("always");
    let groups_csv = groups.as_ref().map(|g| g.join(","));

    // The result's uid, group (gid), home and shell, read back after the change.
    s.push_str(&format!(
        "kamo_uinfo() {{ kamo_l=$(getent passwd {n} </dev/null) || return 0\n\
         kamo_ifs=$IFS; IFS=:; set -- $kamo_l; IFS=$kamo_ifs\n\
         kamo_extra=\"$kamo_extra,\\\"uid\\\":${{3:-0}},\\\"group\\\":${{4:-0}},\\\"home\\\":$(kamo_js \"${{6:-}}\"),\\\"shell\\\":$(kamo_js \"${{7:-}}\")\"; }}\n"
    ));
    // Creation.
    let mut add: Vec<(String, String)> = Vec::new(); // (shown, quoted)
    let mut shown_fields = Vec::new();
    if let Some(u) = uid {
        add.push((format!("-u {u}"), format!("-u {u}")));
        shown_fields.push(format!("uid={u}"));
    }
    if let Some(g) = &grp {
        add.push((format!("-g {g}"), format!("-g {}", q(g))));
        shown_fields.push(format!("group={g}"));
    }
    if let Some(g) = groups_csv.as_ref().filter(|g| !g.is_empty()) {
        add.push((format!("-G {g}"), format!("-G {}", q(g))));
        shown_fields.push(format!(
            "groups={g}{}",
            if append { " (append)" } else { "" }
        ));
    }
    if let Some(v) = &shell {
        add.push((format!("-s {v}"), format!("-s {}", q(v))));
        shown_fields.push(format!("shell={v}"));
    }
    if let Some(v) = &home {
        add.push((format!("-d {v}"), format!("-d {}", q(v))));
        shown_fields.push(format!("home={v}"));
    }
    if let Some(v) = &comment {
        add.push((format!("-c {v}"), format!("-c {}", q(v))));
        shown_fields.push(format!("comment={v}"));
    }
    add.push(if create_home {
        ("-m".into(), "-m".into())
    } else {
        ("-M".into(), "-M".into())
    });
    if system {
        add.push(("-r".into(), "-r".into()));
    }
    if password.is_some() {
        shown_fields.push("password: ********".to_owned());
    }
    let add_shown: Vec<&str> = add.iter().map(|(a, _)| a.as_str()).collect();
    let add_q: Vec<&str> = add.iter().map(|(_, b)| b.as_str()).collect();
    summary.push(format!(
        "useradd {} {name} (if missing)",
        add_shown.join(" ")
    ));
    summary.push(format!(
        "usermod {name} (only fields that differ: {})",
        if shown_fields.is_empty() {
            "none given".to_owned()
        } else {
            shown_fields.join(", ")
        }
    ));
    let chpw = |s: &mut String| {
        if let Some(p) = &password {
            s.push_str(&format!(
                "  printf '%s:%s\\n' {n} {} | chpasswd -e 2>\"$kamo_errf\" || kamo_fail \"chpasswd failed: $(cat \"$kamo_errf\")\" 1\n",
                q(p)
            ));
        }
    };
    s.push_str("if ! $kamo_exists; then kamo_changed=true\n");
    if !flags.check {
        s.push_str(&format!(
            "  kamo_must {} useradd {} {n}\n",
            q(&format!("useradd {name}")),
            add_q.join(" ")
        ));
        chpw(&mut s);
    }
    s.push_str("  kamo_uinfo\n  kamo_done\nfi\n");

    // Modification.
    s.push_str(
        "kamo_ifs=$IFS; IFS=:; set -- $kamo_pw; IFS=$kamo_ifs\n\
         kamo_uid=${3:-}; kamo_gid=${4:-}; kamo_gecos=${5:-}; kamo_home=${6:-}; kamo_shell=${7:-}\n\
         set --\n",
    );
    if let Some(u) = uid {
        s.push_str(&format!(
            "[ \"$kamo_uid\" = {u} ] || set -- \"$@\" -u {u}\n"
        ));
    }
    if let Some(g) = &grp {
        s.push_str(&format!(
            "kamo_g=$(getent group {g} </dev/null | cut -d: -f3)\n[ \"$kamo_gid\" = \"$kamo_g\" ] || set -- \"$@\" -g {g}\n",
            g = q(g)
        ));
    }
    if let Some(v) = &shell {
        s.push_str(&format!(
            "[ \"$kamo_shell\" = {v} ] || set -- \"$@\" -s {v}\n",
            v = q(v)
        ));
    }
    if let Some(v) = &home {
        let mv = if arg_bool(m, args, "move_home", false)? {
            " -m"
        } else {
            ""
        };
        s.push_str(&format!(
            "[ \"$kamo_home\" = {v} ] || set -- \"$@\" -d {v}{mv}\n",
            v = q(v)
        ));
    }
    if let Some(v) = &comment {
        s.push_str(&format!(
            "[ \"$kamo_gecos\" = {v} ] || set -- \"$@\" -c {v}\n",
            v = q(v)
        ));
    }
    if let Some(csv) = &groups_csv {
        s.push_str(&format!(
            "kamo_cur=$(getent group </dev/null | U={n} awk -F: '{{ k = split($4, a, \",\"); for (i = 1; i <= k; i++) if (a[i] == ENVIRON[\"U\"]) print $1 }}' | sort -u | tr '\\n' , )\n\
             kamo_cur=${{kamo_cur%,}}\n"
        ));
        if append {
            let cases = groups
                .iter()
                .flatten()
                .map(|g| {
                    format!(
                        "case \",$kamo_cur,\" in *,{},*) ;; *) kamo_miss=true ;; esac\n",
                        q(g)
                    )
                })
                .collect::<Vec<_>>()
                .concat();
            s.push_str(&format!(
                "kamo_miss=false\n{cases}if $kamo_miss; then set -- \"$@\" -a -G {}; fi\n",
                q(csv)
            ));
        } else {
            s.push_str(&format!(
                "[ \"$kamo_cur\" = {c} ] || set -- \"$@\" -G {c}\n",
                c = q(csv)
            ));
        }
    }
    s.push_str("if [ $# -gt 0 ]; then kamo_changed=true\n");
    if !flags.check {
        s.push_str(&format!(
            "  kamo_must \"usermod $* {}\" usermod \"$@\" {n}\n",
            name.replace(['"', '\\', '$', '`'], "_")
        ));
    }
    s.push_str("fi\n");
    if let (Some(p), true) = (&password, always) {
        s.push_str(&format!(
            "kamo_old=$(getent shadow {n} </dev/null | cut -d: -f2)\n\
             if [ \"$kamo_old\" != {} ]; then kamo_changed=true\n",
            q(p)
        ));
        if !flags.check {
            chpw(&mut s);
        }
        s.push_str("fi\n");
    }
    s.push_str("kamo_uinfo\nkamo_done\n");
    Ok(RemoteStep { script: s, summary })
}

fn group(args: &Map<String, Value>, flags: Flags) -> Result<RemoteStep, ArgError> {
    let m = Module::Group;
    known_args(
        m,
        args,
        &["name", "state", "gid", "system", "force", "local"],
    )?;
    if arg_bool(m, args, "local", false)? {
        return Err(ArgError::new(m, "`local: yes` is not supported"));
    }
    let name = arg_req(m, args, &["name"])?;
    check_name(m, &name)?;
    let present = arg_choice(m, args, "state", &["present", "absent"], Some("present"))?.as_deref()
        == Some("present");
    let gid = arg_u64(m, args, "gid")?;
    let system = arg_bool(m, args, "system", false)?;
    let n = q(&name);
    let mut s = sys_prelude(flags);
    s.push_str(&format!(
        "kamo_g=$(getent group {n} </dev/null) && kamo_exists=true || kamo_exists=false\n\
         kamo_extra=\",\\\"name\\\":\"{}\n",
        q(&js(&name))
    ));
    let mut summary = Vec::new();
    // (condition, why, shown command, command with the name quoted)
    let mut steps: Vec<(String, &str, String, String)> = Vec::new();
    if present {
        let mut opts = String::new();
        if let Some(g) = gid {
            opts.push_str(&format!(" -g {g}"));
        }
        if system {
            opts.push_str(" -r");
        }
        steps.push((
            "! $kamo_exists".into(),
            "missing",
            format!("groupadd{opts} {name}"),
            format!("groupadd{opts} {n}"),
        ));
        if let Some(g) = gid {
            steps.push((
                format!("$kamo_exists && [ \"$(printf '%s' \"$kamo_g\" | cut -d: -f3)\" != {g} ]"),
                "the gid differs",
                format!("groupmod -g {g} {name}"),
                format!("groupmod -g {g} {n}"),
            ));
        }
    } else {
        steps.push((
            "$kamo_exists".into(),
            "it exists",
            format!("groupdel {name}"),
            format!("groupdel {n}"),
        ));
    }
    for (cond, why, shown, cmd) in steps {
        summary.push(format!("{shown} (if {why})"));
        s.push_str(&format!("if {cond}; then kamo_changed=true\n"));
        if !flags.check {
            s.push_str(&format!("  kamo_must {} {cmd}\n", q(&shown)));
        }
        s.push_str("fi\n");
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
        sb.write("passwd", "root:x:0:0:root:/root:/bin/bash\n");
        sb.write("group", "root:x:0:\ndocker:x:999:\nadm:x:4:syslog\n");
        sb.write("shadow", "");
        sb.stub(
            "getent",
            r#"case "$1" in
passwd|shadow) grep "^$2:" "$T/$1" ;;
group) if [ $# -gt 1 ]; then grep "^$2:" "$T/group"; else cat "$T/group"; fi ;;
esac"#,
        );
        let opts = r#"uid=1000 shell=/bin/sh groups='' home=''
while [ $# -gt 1 ]; do case "$1" in -u) uid=$2; shift ;; -s) shell=$2; shift ;; -G) groups=$2; shift ;; -d) home=$2; shift ;; -g|-c) shift ;; esac; shift; done
name=$1
addg() { for g in $(echo "$groups" | tr , ' '); do awk -F: -v OFS=: -v g="$g" -v u="$name" '$1 == g { $4 = ($4 == "" ? u : $4 "," u) } { print }' "$T/group" > "$T/g.tmp" && mv "$T/g.tmp" "$T/group"; done; }"#;
        sb.stub(
            "useradd",
            &format!("{opts}\necho \"$name:x:$uid:$uid::${{home:-/home/$name}}:$shell\" >> \"$T/passwd\"; addg"),
        );
        sb.stub(
            "usermod",
            &format!("{opts}\n[ \"$shell\" = /bin/sh ] || {{ awk -F: -v OFS=: -v u=\"$name\" -v s=\"$shell\" '$1 == u {{ $7 = s }} {{ print }}' \"$T/passwd\" > \"$T/p.tmp\" && mv \"$T/p.tmp\" \"$T/passwd\"; }}; addg"),
        );
        sb.stub("userdel", r#"for n; do :; done; grep -v "^$n:" "$T/passwd" > "$T/p.tmp"; mv "$T/p.tmp" "$T/passwd""#);
        sb.stub(
            "chpasswd",
            r#"read l; echo "$l:19000::::::" >> "$T/shadow""#,
        );
        sb.stub("groupadd", r#"for n; do :; done; [ "$n" = bad ] && { echo "groupadd: bad" >&2; exit 9; }; echo "$n:x:1500:" >> "$T/group""#);
        sb.stub(
            "groupdel",
            r#"grep -v "^$1:" "$T/group" > "$T/g.tmp"; mv "$T/g.tmp" "$T/group""#,
        );
        sb
    }

    fn mutations(log: &str) -> Vec<&str> {
        log.lines().filter(|l| !l.starts_with("getent")).collect()
    }

    #[test]
    fn user_created_then_modified_only_where_different() {
        let sb = sandbox();
        let a = args(
            json!({"name": "deploy", "uid": 1200, "shell": "/bin/bash", "groups": "docker, adm", "password": "$6$salt$hash"}),
        );
        let chk = sb.run(Module::User, &build(Module::User, &a, CHECK).unwrap());
        assert!(chk.changed, "{chk:?}");
        assert!(mutations(&sb.take_log()).is_empty());
        let step = build(Module::User, &a, Flags::default()).unwrap();
        assert!(
            step.summary.iter().all(|l| !l.contains("$6$")),
            "{:?}",
            step.summary
        );
        assert_eq!(
            step.summary[0],
            "useradd -u 1200 -G adm,docker -s /bin/bash -m deploy (if missing)"
        );
        assert!(step.summary[1].contains("password: ********"));
        let r = sb.run(Module::User, &step);
        assert!(r.changed && !r.failed, "{r:?}");
        assert_eq!(
            mutations(&sb.take_log()),
            [
                "useradd -u 1200 -G adm,docker -s /bin/bash -m deploy",
                "chpasswd -e"
            ]
        );
        assert!(
            sb.read("shadow")
                .unwrap()
                .starts_with("deploy:$6$salt$hash:")
        );
        let r = sb.run(Module::User, &step);
        assert!(!r.changed, "{r:?} {}", sb.take_log());
        assert_eq!(r.data["uid"], 1200);
        assert_eq!(r.data["shell"], "/bin/bash");
        let a = args(
            json!({"name": "deploy", "shell": "/bin/zsh", "groups": ["root"], "append": true}),
        );
        let r = sb.run(
            Module::User,
            &build(Module::User, &a, Flags::default()).unwrap(),
        );
        assert!(r.changed && !r.failed, "{r:?}");
        assert_eq!(
            mutations(&sb.take_log()),
            ["usermod -s /bin/zsh -a -G root deploy"]
        );
        assert!(
            !sb.run(
                Module::User,
                &build(Module::User, &a, Flags::default()).unwrap()
            )
            .changed
        );
        let gone = args(json!({"name": "deploy", "state": "absent", "remove": true}));
        let step = build(Module::User, &gone, Flags::default()).unwrap();
        assert!(sb.run(Module::User, &step).changed);
        assert!(mutations(&sb.take_log()).contains(&"userdel -r deploy"));
        assert!(!sb.run(Module::User, &step).changed);
    }

    #[test]
    fn groups_and_failures() {
        let sb = sandbox();
        let step = build(
            Module::Group,
            &args(json!({"name": "app", "gid": 1500})),
            Flags::default(),
        )
        .unwrap();
        assert_eq!(step.summary[0], "groupadd -g 1500 app (if missing)");
        let r = sb.run(Module::Group, &step);
        assert!(r.changed, "{r:?} {}", step.script);
        assert!(!sb.run(Module::Group, &step).changed);
        let step = build(
            Module::Group,
            &args(json!({"name": "app", "gid": 1600})),
            CHECK,
        )
        .unwrap();
        assert!(sb.run(Module::Group, &step).changed);
        sb.take_log();
        let r = sb.run(
            Module::Group,
            &build(
                Module::Group,
                &args(json!({"name": "bad"})),
                Flags::default(),
            )
            .unwrap(),
        );
        assert!(r.failed && r.rc == Some(9) && r.msg.unwrap().contains("groupadd: bad"));
        let step = build(
            Module::Group,
            &args(json!({"name": "app", "state": "absent"})),
            Flags::default(),
        )
        .unwrap();
        assert!(sb.run(Module::Group, &step).changed);
        assert!(!sb.run(Module::Group, &step).changed);
        assert!(
            build(
                Module::User,
                &args(json!({"name": "a:b"})),
                Flags::default()
            )
            .is_err()
        );
        assert!(
            build(
                Module::User,
                &args(json!({"name": "a", "state": "locked"})),
                Flags::default()
            )
            .is_err()
        );
    }
}
