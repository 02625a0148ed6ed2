//! `sysctl`, `modprobe`, `hostname` and `ping`.
//!
//! - `sysctl`: `name`, `value`, `state` (`present`/`absent`), `sysctl_file` (default
//!   `/etc/sysctl.conf`), `reload` (default yes: `sysctl -p FILE` when the file changed),
//!   `sysctl_set` (default no: `sysctl -w name=value` when the live value differs),
//!   `ignoreerrors` (`sysctl -e -p`). The file is edited with awk: the first `name = ...` line
//!   is kept if its value is the same (whitespace-normalised), else replaced by `name=value`;
//!   later duplicates are dropped; the line is appended when missing. `yes`/`no` values become
//!   `1`/`0` as in Ansible.
//! - `modprobe`: `name`, `state` (`present`/`absent`), `params`, `persistent` (`disabled`, the
//!   default, touches no file, as in Ansible; `present` writes `/etc/modules-load.d/NAME.conf`
//!   and, with params, `/etc/modprobe.d/NAME.conf`; `absent` removes those two files). Loaded
//!   means listed by `lsmod` (names with `-` as `_`) or built in (`modinfo -F filename` says
//!   `(builtin)`).
//! - `hostname`: `name`, `use` (`systemd`, or `debian`/`ubuntu`/`generic`/`alpine` for
//!   `/etc/hostname` plus the `hostname` command; by default `hostnamectl set-hostname` when
//!   hostnamectl exists). Unchanged when both `hostname` and `/etc/hostname` already say `name`.
//! - `ping`: proves the shell runs; returns `ping: pong` (or `data`; `data: crash` fails).

use serde_json::{Map, Value, json};

use super::sh::{arg_bool, arg_str, known_args, prelude, q, result_static};
use super::syslib::{arg_choice, arg_req, js, sys_prelude};
use super::{ArgError, Flags, RemoteStep};
use crate::playbook::model::Module;

pub fn build(
    module: Module,
    args: &Map<String, Value>,
    flags: Flags,
) -> Result<RemoteStep, ArgError> {
    match module {
        Module::Sysctl => sysctl(args, flags),
        Module::Modprobe => modprobe(args, flags, ""),
        Module::Hostname => hostname(args, flags, ""),
        _ => ping(args),
    }
}

fn ping(args: &Map<String, Value>) -> Result<RemoteStep, ArgError> {
    let m = Module::Ping;
    known_args(m, args, &["data"])?;
    let data = arg_str(m, args, "data")?.unwrap_or_else(|| "pong".to_owned());
    let mut s = prelude();
    let fields = if data == "crash" {
        json!({"changed": false, "failed": true, "msg": "boom (ping data: crash)"})
    } else {
        json!({"changed": false, "ping": data})
    };
    let Value::Object(fields) = fields else {
        unreachable!()
    };
    s.push_str(&result_static(&fields));
    Ok(RemoteStep {
        script: s,
        summary: vec!["ping (run the shell)".to_owned()],
    })
}

fn sysctl(args: &Map<String, Value>, flags: Flags) -> Result<RemoteStep, ArgError> {
    let m = Module::Sysctl;
    known_args(
        m,
        args,
        &[
            "name",
            "key",
            "value",
            "val",
            "state",
            "sysctl_file",
            "reload",
            "sysctl_set",
            "ignoreerrors",
        ],
    )?;
    let name = arg_req(m, args, &["name", "key"])?;
    if name.chars().any(|c| c.is_whitespace() || c == '=') {
        return Err(ArgError::new(m, format!("{name:?} is not a sysctl name")));
    }
    let absent = arg_choice(m, args, "state", &["present", "absent"], Some("present"))?.as_deref()
        == Some("absent");
    let value = match arg_str(m, args, "value")?.or(arg_str(m, args, "val")?) {
        Some(v) => {
            let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
            match v.to_ascii_lowercase().as_str() {
                "yes" | "true" | "on" => "1".to_owned(),
                "no" | "false" | "off" => "0".to_owned(),
                _ => v,
            }
        }
        None if absent => String::new(),
        None => return Err(ArgError::new(m, "`value` is required with state present")),
    };
    let file = arg_str(m, args, "sysctl_file")?.unwrap_or_else(|| "/etc/sysctl.conf".to_owned());
    let reload = arg_bool(m, args, "reload", true)?;
    let set = arg_bool(m, args, "sysctl_set", false)?;
    let e = if arg_bool(m, args, "ignoreerrors", false)? {
        " -e"
    } else {
        ""
    };
    let mut summary = vec![if absent {
        format!("remove {name} from {file}")
    } else {
        format!("{name}={value} in {file}")
    }];
    let mut s = sys_prelude(flags);
    if flags.diff {
        s.push_str("kamo_diff=true\n");
    }
    s.push_str(&format!(
        "kamo_f={}\n\
         [ ! -e \"$kamo_f\" ] || [ -r \"$kamo_f\" ] || kamo_fail \"cannot read $kamo_f\"\n\
         {{ cat \"$kamo_f\" 2>/dev/null; true; }} | K={} V={} ST={} awk '\n\
         BEGIN {{ k = ENVIRON[\"K\"]; v = ENVIRON[\"V\"]; st = ENVIRON[\"ST\"]; done = 0 }}\n\
         {{ t = $0; sub(/^[ \\t]+/, \"\", t); i = index(t, \"=\")\n\
           if (t !~ /^[#;]/ && i > 0) {{ kk = substr(t, 1, i - 1); sub(/[ \\t]+$/, \"\", kk)\n\
             if (kk == k) {{\n\
               if (st == \"absent\" || done) next\n\
               vv = substr(t, i + 1); gsub(/[ \\t]+/, \" \", vv); sub(/^ /, \"\", vv); sub(/ $/, \"\", vv)\n\
               done = 1; if (vv == v) print $0; else print k \"=\" v; next }} }}\n\
           print $0 }}\n\
         END {{ if (st == \"present\" && !done) print k \"=\" v }}' > \"$kamo_errf.new\"\n\
         kamo_fc=false\n\
         if [ -e \"$kamo_f\" ] || [ -s \"$kamo_errf.new\" ]; then kamo_put \"$kamo_f\" 0644 && kamo_fc=true; fi\n",
        q(&file),
        q(&name),
        q(&value),
        if absent { "absent" } else { "present" }
    ));
    if reload {
        summary.push(format!("sysctl{e} -p {file} (if the file changed)"));
        if !flags.check {
            s.push_str(&format!(
                "if $kamo_fc; then kamo_must {} sysctl{e} -p \"$kamo_f\" >/dev/null; fi\n",
                q(&format!("sysctl -p {file}"))
            ));
        }
    }
    if set && !absent {
        let kv = format!("{name}={value}");
        summary.push(format!("sysctl -w {kv} (if the live value differs)"));
        s.push_str(&format!(
            "kamo_live=$(sysctl -n {} </dev/null 2>/dev/null | awk '{{ $1 = $1; print }}')\n\
             if [ \"$kamo_live\" != {} ]; then kamo_changed=true\n",
            q(&name),
            q(&value)
        ));
        if !flags.check {
            s.push_str(&format!(
                "  kamo_must {} sysctl -w {} >/dev/null\n",
                q(&format!("sysctl -w {kv}")),
                q(&kv)
            ));
        }
        s.push_str("fi\n");
    }
    s.push_str("kamo_done\n");
    Ok(RemoteStep { script: s, summary })
}

pub(super) fn modprobe(
    args: &Map<String, Value>,
    flags: Flags,
    root: &str,
) -> Result<RemoteStep, ArgError> {
    let m = Module::Modprobe;
    known_args(m, args, &["name", "state", "params", "persistent"])?;
    let name = arg_req(m, args, &["name"])?;
    if name.contains('/') || name.chars().any(char::is_whitespace) {
        return Err(ArgError::new(m, format!("{name:?} is not a module name")));
    }
    let present = arg_choice(m, args, "state", &["present", "absent"], Some("present"))?.as_deref()
        == Some("present");
    let params = arg_str(m, args, "params")?.unwrap_or_default();
    let words = shlex::split(&params)
        .ok_or_else(|| ArgError::new(m, format!("cannot split `params`: {params}")))?;
    let persistent = arg_choice(
        m,
        args,
        "persistent",
        &["disabled", "present", "absent"],
        Some("disabled"),
    )?
    .unwrap_or_default();
    let load_conf = format!("{root}/etc/modules-load.d/{name}.conf");
    let opt_conf = format!("{root}/etc/modprobe.d/{name}.conf");
    let mut summary = Vec::new();
    let mut s = sys_prelude(flags);
    s.push_str(&format!(
        "kamo_loaded=false\n\
         if lsmod </dev/null 2>/dev/null | N={} awk '$1 == ENVIRON[\"N\"] {{ f = 1 }} END {{ exit !f }}'; then kamo_loaded=true\n\
         elif modinfo -F filename {} </dev/null 2>/dev/null | grep -q '(builtin)'; then kamo_loaded=true; fi\n",
        q(&name.replace('-', "_")),
        q(&name)
    ));
    let n = q(&name);
    let shown_params = if words.is_empty() {
        String::new()
    } else {
        format!(" {}", words.join(" "))
    };
    let (cond, cmd, desc) = if present {
        let qp = words
            .iter()
            .map(|w| format!(" {}", q(w)))
            .collect::<Vec<_>>()
            .concat();
        (
            "! $kamo_loaded",
            format!("modprobe {n}{qp}"),
            format!("modprobe {name}{shown_params}"),
        )
    } else {
        (
            "$kamo_loaded",
            format!("modprobe -r {n}"),
            format!("modprobe -r {name}"),
        )
    };
    summary.push(format!(
        "{desc} (if {})",
        if present { "not loaded" } else { "loaded" }
    ));
    s.push_str(&format!("if {cond}; then kamo_changed=true\n"));
    if !flags.check {
        s.push_str(&format!("  kamo_must {} {cmd}\n", q(&desc)));
    }
    s.push_str("fi\n");
    match persistent.as_str() {
        "present" => {
            summary.push(format!("{load_conf}: {name}"));
            s.push_str(&format!(
                "kamo_ensure {} {} 0644 || true\n",
                q(&load_conf),
                q(&format!("{name}\n"))
            ));
            if words.is_empty() {
                s.push_str(&format!("kamo_remove {} || true\n", q(&opt_conf)));
            } else {
                summary.push(format!("{opt_conf}: options {name}{shown_params}"));
                s.push_str(&format!(
                    "kamo_ensure {} {} 0644 || true\n",
                    q(&opt_conf),
                    q(&format!("options {name}{shown_params}\n"))
                ));
            }
        }
        "absent" => {
            summary.push(format!("remove {load_conf} and {opt_conf}"));
            s.push_str(&format!(
                "kamo_remove {} || true\nkamo_remove {} || true\n",
                q(&load_conf),
                q(&opt_conf)
            ));
        }
        _ => {}
    }
    s.push_str(&format!(
        "kamo_extra=\",\\\"name\\\":\"{}\nkamo_done\n",
        q(&js(&name))
    ));
    Ok(RemoteStep { script: s, summary })
}

fn hostname(args: &Map<String, Value>, flags: Flags, root: &str) -> Result<RemoteStep, ArgError> {
    let m = Module::Hostname;
    known_args(m, args, &["name", "use"])?;
    let name = arg_req(m, args, &["name"])?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(ArgError::new(
            m,
            format!("{name:?} is not a valid hostname"),
        ));
    }
    let using = arg_choice(
        m,
        args,
        "use",
        &["systemd", "debian", "ubuntu", "generic", "alpine"],
        None,
    )?;
    let etc = format!("{root}/etc/hostname");
    let mut s = sys_prelude(flags);
    if flags.diff {
        s.push_str("kamo_diff=true\n");
    }
    let summary = vec![match using.as_deref() {
        Some("systemd") => format!("hostnamectl set-hostname {name}"),
        None => format!(
            "hostnamectl set-hostname {name} (or {etc} and `hostname {name}` without hostnamectl)"
        ),
        _ => format!("{etc}: {name}; hostname {name}"),
    }];
    let n = q(&name);
    s.push_str(&format!(
        "kamo_cur=$(hostname </dev/null 2>/dev/null) || kamo_cur=''\n\
         kamo_static=$(head -n 1 {etc} 2>/dev/null) || kamo_static=''\n\
         kamo_extra=\",\\\"name\\\":\"{}\n\
         if [ \"$kamo_cur\" = {n} ] && [ \"$kamo_static\" = {n} ]; then kamo_done; fi\n\
         kamo_hctl=false; command -v hostnamectl >/dev/null 2>&1 && kamo_hctl=true\n",
        q(&js(&name)),
        etc = q(&etc),
    ));
    match using.as_deref() {
        Some("systemd") => s.push_str(
            "$kamo_hctl || kamo_fail 'hostname: use: systemd but hostnamectl is not installed'\n",
        ),
        None => {}
        _ => s.push_str("kamo_hctl=false\n"),
    }
    s.push_str(&format!(
        "if $kamo_hctl; then kamo_changed=true; $kamo_check || kamo_must {} hostnamectl set-hostname {n}\n\
         else kamo_ensure {} {} 0644 || true\n\
         if [ \"$kamo_cur\" != {n} ]; then kamo_changed=true; $kamo_check || kamo_must {} hostname {n}; fi\n\
         fi\nkamo_done\n",
        q(&format!("hostnamectl set-hostname {name}")),
        q(&etc),
        q(&format!("{name}\n")),
        q(&format!("hostname {name}")),
    ));
    Ok(RemoteStep { script: s, summary })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::modules::syslib::testkit::{CHECK, Sandbox, args};

    #[test]
    fn ping_pongs() {
        let sb = Sandbox::new();
        let r = sb.run(
            Module::Ping,
            &build(Module::Ping, &Map::new(), Flags::default()).unwrap(),
        );
        assert!(!r.changed && !r.failed);
        assert_eq!(r.data["ping"], "pong");
        let r = sb.run(
            Module::Ping,
            &build(
                Module::Ping,
                &args(json!({"data": "crash"})),
                Flags::default(),
            )
            .unwrap(),
        );
        assert!(r.failed);
    }

    #[test]
    fn sysctl_edits_file_reloads_and_sets_live() {
        let sb = Sandbox::new();
        sb.stub("sysctl", r#"case "$1" in -n) cat "$T/live" 2>/dev/null ;; -w) printf '%s\n' "${2#*=}" > "$T/live" ;; esac; exit 0"#);
        let f = format!("{}/sysctl.conf", sb.t());
        sb.write(
            "sysctl.conf",
            "# c\nnet.ipv4.ip_forward = 0\nvm.x=1\nnet.ipv4.ip_forward=0\n",
        );
        let a = args(
            json!({"name": "net.ipv4.ip_forward", "value": "yes", "sysctl_file": f, "sysctl_set": true}),
        );
        let chk = sb.run(Module::Sysctl, &build(Module::Sysctl, &a, CHECK).unwrap());
        assert!(chk.changed && !chk.failed, "{chk:?}");
        assert!(!sb.take_log().contains("-w"));
        assert!(sb.read("sysctl.conf").unwrap().contains("= 0"));
        let step = build(Module::Sysctl, &a, Flags::default()).unwrap();
        assert_eq!(step.summary[0], format!("net.ipv4.ip_forward=1 in {f}"));
        let r = sb.run(Module::Sysctl, &step);
        assert!(r.changed && !r.failed, "{r:?}");
        assert_eq!(
            sb.read("sysctl.conf").unwrap(),
            "# c\nnet.ipv4.ip_forward=1\nvm.x=1\n"
        );
        assert_eq!(
            sb.take_log(),
            format!(
                "sysctl -p {f}\nsysctl -n net.ipv4.ip_forward\nsysctl -w net.ipv4.ip_forward=1\n"
            )
        );
        let r = sb.run(Module::Sysctl, &step);
        assert!(!r.changed, "{r:?}");
        let diff = Flags {
            check: true,
            diff: true,
        };
        let a = args(json!({"name": "vm.x", "value": 2, "sysctl_file": f}));
        let r = sb.run(Module::Sysctl, &build(Module::Sysctl, &a, diff).unwrap());
        assert_eq!(
            r.data["diff"]["before"],
            "# c\nnet.ipv4.ip_forward=1\nvm.x=1"
        );
        assert_eq!(
            r.data["diff"]["after"],
            "# c\nnet.ipv4.ip_forward=1\nvm.x=2"
        );
        let absent =
            args(json!({"name": "vm.x", "state": "absent", "sysctl_file": f, "reload": false}));
        assert!(
            sb.run(
                Module::Sysctl,
                &build(Module::Sysctl, &absent, Flags::default()).unwrap()
            )
            .changed
        );
        assert_eq!(
            sb.read("sysctl.conf").unwrap(),
            "# c\nnet.ipv4.ip_forward=1\n"
        );
        // New file, multi-word value.
        let g = format!("{}/d/99-k.conf", sb.t());
        let a = args(
            json!({"name": "net.ipv4.tcp_rmem", "value": "4096  87380 6291456", "sysctl_file": g, "reload": false}),
        );
        let step = build(Module::Sysctl, &a, Flags::default()).unwrap();
        assert!(sb.run(Module::Sysctl, &step).changed);
        assert!(!sb.run(Module::Sysctl, &step).changed);
        assert_eq!(
            sb.read("d/99-k.conf").unwrap(),
            "net.ipv4.tcp_rmem=4096 87380 6291456\n"
        );
        assert!(
            build(
                Module::Sysctl,
                &args(json!({"name": "x"})),
                Flags::default()
            )
            .is_err()
        );
    }

    #[test]
    fn modprobe_loads_persists_and_unloads() {
        let sb = Sandbox::new();
        sb.stub(
            "lsmod",
            r#"echo "Module Size Used"; cat "$T/mods" 2>/dev/null"#,
        );
        sb.stub("modinfo", "exit 1");
        sb.stub(
            "modprobe",
            r#"if [ "$1" = -r ]; then : > "$T/mods"; else echo "$1 1 0" >> "$T/mods"; fi"#,
        );
        let root = sb.t();
        let a = args(json!({"name": "br-netfilter", "params": "a=1 b=2", "persistent": "present"}));
        let chk = sb.run(Module::Modprobe, &modprobe(&a, CHECK, &root).unwrap());
        assert!(chk.changed, "{chk:?}");
        assert!(!sb.take_log().contains("modprobe br"));
        assert!(sb.read("etc/modules-load.d/br-netfilter.conf").is_none());
        let step = modprobe(&a, Flags::default(), &root).unwrap();
        assert_eq!(
            step.summary[0],
            "modprobe br-netfilter a=1 b=2 (if not loaded)"
        );
        // The stub records the name as given; lsmod shows `_` names.
        sb.stub("modprobe", r#"if [ "$1" = -r ]; then : > "$T/mods"; else echo "br_netfilter 1 0" >> "$T/mods"; fi"#);
        assert!(sb.run(Module::Modprobe, &step).changed);
        assert!(sb.take_log().contains("modprobe br-netfilter a=1 b=2\n"));
        assert_eq!(
            sb.read("etc/modules-load.d/br-netfilter.conf").unwrap(),
            "br-netfilter\n"
        );
        assert_eq!(
            sb.read("etc/modprobe.d/br-netfilter.conf").unwrap(),
            "options br-netfilter a=1 b=2\n"
        );
        let r = sb.run(Module::Modprobe, &step);
        assert!(!r.changed, "{r:?}");
        let gone = args(json!({"name": "br-netfilter", "state": "absent", "persistent": "absent"}));
        assert!(
            sb.run(
                Module::Modprobe,
                &modprobe(&gone, Flags::default(), &root).unwrap()
            )
            .changed
        );
        assert!(sb.read("etc/modprobe.d/br-netfilter.conf").is_none());
        sb.stub(
            "modprobe",
            "echo 'modprobe: FATAL: Module nope not found.' >&2; exit 1",
        );
        let r = sb.run(
            Module::Modprobe,
            &modprobe(&args(json!({"name": "nope"})), Flags::default(), &root).unwrap(),
        );
        assert!(r.failed && r.rc == Some(1) && r.msg.unwrap().contains("FATAL"));
    }

    #[test]
    fn hostname_with_and_without_hostnamectl() {
        let sb = Sandbox::new();
        let root = sb.t();
        sb.write("live", "old\n");
        sb.write("etc/hostname", "old\n");
        sb.stub(
            "hostname",
            r#"if [ $# -eq 0 ]; then cat "$T/live"; else echo "$1" > "$T/live"; fi"#,
        );
        sb.stub(
            "hostnamectl",
            r#"echo "$2" > "$T/live"; echo "$2" > "$T/etc/hostname""#,
        );
        let a = args(json!({"name": "web1"}));
        assert!(
            sb.run(Module::Hostname, &hostname(&a, CHECK, &root).unwrap())
                .changed
        );
        assert_eq!(sb.read("live").unwrap(), "old\n");
        let step = hostname(&a, Flags::default(), &root).unwrap();
        assert!(sb.run(Module::Hostname, &step).changed);
        assert!(sb.take_log().contains("hostnamectl set-hostname web1\n"));
        assert!(!sb.run(Module::Hostname, &step).changed);
        let a = args(json!({"name": "web2", "use": "debian"}));
        let step = hostname(&a, Flags::default(), &root).unwrap();
        assert!(sb.run(Module::Hostname, &step).changed);
        assert_eq!(sb.read("etc/hostname").unwrap(), "web2\n");
        assert_eq!(sb.read("live").unwrap(), "web2\n");
        assert!(!sb.run(Module::Hostname, &step).changed);
        assert!(hostname(&args(json!({"name": "a b"})), Flags::default(), "").is_err());
    }
}
