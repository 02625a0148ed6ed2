//! `systemd` (`systemd_service`) and `service` (systemd hosts only): one implementation.
//!
//! Arguments: `name`, `state` (`started`, `stopped`, `restarted`, `reloaded`), `enabled`,
//! `masked`, `daemon_reload`, `daemon_reexec`, `no_block`, `scope` (`system` only). The
//! script asks `systemctl show -p LoadState`, `is-enabled` and `is-active` first and acts only
//! when needed; `restarted` and `reloaded` always change (`reloaded` starts a stopped unit, as
//! Ansible does). `daemon_reload`/`daemon_reexec` run before anything else and are not changes;
//! in check mode they are skipped. The result holds `name`, `state` (when given) and a `status`
//! object with `LoadState`, `ActiveState`, `SubState`, `UnitFileState` (after the actions).

use serde_json::{Map, Value};

use super::sh::{arg_bool, arg_str, known_args, q};
use super::syslib::{arg_choice, js, sys_prelude};
use super::{ArgError, Flags, RemoteStep};
use crate::playbook::model::Module;

const KNOWN: &[&str] = &[
    "name",
    "unit",
    "state",
    "enabled",
    "masked",
    "daemon_reload",
    "daemon-reload",
    "daemon_reexec",
    "daemon-reexec",
    "no_block",
    "scope",
    "force",
];

const SERVICE_KNOWN: &[&str] = &["name", "state", "enabled", "use", "sleep"];

fn opt_bool(
    module: Module,
    args: &Map<String, Value>,
    key: &str,
) -> Result<Option<bool>, ArgError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => arg_bool(module, args, key, false).map(Some),
    }
}

#[allow(clippy::too_many_lines)]
pub fn build(
    module: Module,
    args: &Map<String, Value>,
    flags: Flags,
) -> Result<RemoteStep, ArgError> {
    if module == Module::Service {
        known_args(module, args, SERVICE_KNOWN)?;
        if let Some(u) = arg_str(module, args, "use")?
            && u != "auto"
            && u != "systemd"
        {
            return Err(ArgError::new(
                module,
                format!("`use: {u}` is not supported; only systemd hosts are"),
            ));
        }
    } else {
        known_args(module, args, KNOWN)?;
        arg_choice(module, args, "scope", &["system"], None)?;
    }
    let name = match arg_str(module, args, "name")? {
        Some(n) => Some(n),
        None => arg_str(module, args, "unit")?,
    };
    let state = arg_choice(
        module,
        args,
        "state",
        &["started", "stopped", "restarted", "reloaded"],
        None,
    )?;
    let enabled = opt_bool(module, args, "enabled")?;
    let masked = opt_bool(module, args, "masked")?;
    let reload = arg_bool(module, args, "daemon_reload", false)?
        || arg_bool(module, args, "daemon-reload", false)?;
    let reexec = arg_bool(module, args, "daemon_reexec", false)?
        || arg_bool(module, args, "daemon-reexec", false)?;
    let no_block = if arg_bool(module, args, "no_block", false)? {
        " --no-block"
    } else {
        ""
    };
    if name.is_none() && (state.is_some() || enabled.is_some() || masked.is_some()) {
        return Err(ArgError::new(
            module,
            "`name` is required with state, enabled or masked",
        ));
    }
    if name.is_none() && !reload && !reexec {
        return Err(ArgError::new(module, "`name` is required"));
    }
    let mut summary = Vec::new();
    let mut s = sys_prelude(flags);
    s.push_str(&format!(
        "command -v systemctl >/dev/null 2>&1 || kamo_fail {}\n",
        q(&format!(
            "{}: no systemctl on this host; only systemd hosts are supported",
            module.name()
        ))
    ));
    for (on, cmd) in [(reexec, "daemon-reexec"), (reload, "daemon-reload")] {
        if on {
            summary.push(format!("systemctl {cmd}"));
            if !flags.check {
                s.push_str(&format!("kamo_must 'systemctl {cmd}' systemctl {cmd}\n"));
            }
        }
    }
    let Some(name) = name else {
        s.push_str("kamo_done\n");
        return Ok(RemoteStep { script: s, summary });
    };
    let n = q(&name);
    // One action: `verb` runs (unless check mode) when `cond` holds, and marks a change.
    let act = |s: &mut String, cond: &str, verb: &str| {
        s.push_str(&format!("if {cond}; then kamo_changed=true\n"));
        if !flags.check {
            s.push_str(&format!(
                "  kamo_must {} systemctl{no_block} {verb} {n}\n",
                q(&format!("systemctl {verb} {name}"))
            ));
        }
        s.push_str("fi\n");
    };
    s.push_str(&format!(
        "kamo_load=$(systemctl show -p LoadState {n} </dev/null 2>/dev/null); kamo_load=${{kamo_load#LoadState=}}\n\
         kamo_en=$(systemctl is-enabled {n} </dev/null 2>/dev/null); kamo_en_rc=$?\n"
    ));
    if let Some(m) = masked {
        summary.push(format!(
            "systemctl {} {name} (if {})",
            if m { "mask" } else { "unmask" },
            if m { "not masked" } else { "masked" }
        ));
        act(
            &mut s,
            &format!("[ \"$kamo_en\" {} masked ]", if m { "!=" } else { "=" }),
            if m { "mask" } else { "unmask" },
        );
    }
    if state.is_some() || enabled.is_some() {
        s.push_str(&format!(
            "[ \"$kamo_load\" = not-found ] && kamo_fail {}\n",
            q(&format!("Could not find the requested service {name}"))
        ));
    }
    if let Some(e) = enabled {
        if e {
            summary.push(format!("systemctl enable {name} (if not enabled)"));
            act(&mut s, "[ \"$kamo_en_rc\" -ne 0 ]", "enable");
        } else {
            summary.push(format!("systemctl disable {name} (if enabled)"));
            act(
                &mut s,
                "case \"$kamo_en\" in enabled|enabled-runtime) true ;; *) false ;; esac",
                "disable",
            );
        }
    }
    if let Some(st) = &state {
        s.push_str(&format!(
            "kamo_act=$(systemctl is-active {n} </dev/null 2>/dev/null)\n\
             case \"$kamo_act\" in active|activating|reloading) kamo_up=true ;; *) kamo_up=false ;; esac\n"
        ));
        match st.as_str() {
            "started" => {
                summary.push(format!("systemctl start {name} (if not running)"));
                act(&mut s, "! $kamo_up", "start");
            }
            "stopped" => {
                summary.push(format!("systemctl stop {name} (if running)"));
                act(&mut s, "$kamo_up", "stop");
            }
            "restarted" => {
                summary.push(format!("systemctl restart {name}"));
                act(&mut s, "true", "restart");
            }
            _ => {
                summary.push(format!("systemctl reload {name} (start if not running)"));
                act(&mut s, "$kamo_up", "reload");
                act(&mut s, "! $kamo_up", "start");
            }
        }
    }
    s.push_str(&format!(
        "kamo_status=''\n\
         for kamo_k in LoadState ActiveState SubState UnitFileState; do\n\
         kamo_v=$(systemctl show -p \"$kamo_k\" {n} </dev/null 2>/dev/null); kamo_v=${{kamo_v#*=}}\n\
         kamo_status=\"$kamo_status,\\\"$kamo_k\\\":$(kamo_js \"$kamo_v\")\"\n\
         done\n\
         kamo_extra=\"$kamo_extra,\\\"name\\\":\"{}\",\\\"status\\\":{{${{kamo_status#,}}}}\"\n",
        q(&js(&name))
    ));
    if let Some(st) = &state {
        s.push_str(&format!(
            "kamo_extra=\"$kamo_extra,\\\"state\\\":\"{}\n",
            q(&js(st))
        ));
    }
    s.push_str("kamo_done\n");
    Ok(RemoteStep { script: s, summary })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::modules::syslib::testkit::{CHECK, Sandbox, args};
    use serde_json::json;

    /// Fake systemctl: `$T/active` exists when running, `$T/enabled` when enabled.
    fn sandbox() -> Sandbox {
        let sb = Sandbox::new();
        sb.stub(
            "systemctl",
            r#"for u; do :; done
case "$1" in
show) case "$3" in
  LoadState) [ "$u" = missing ] && echo LoadState=not-found || echo LoadState=loaded ;;
  ActiveState) [ -f "$T/active" ] && echo ActiveState=active || echo ActiveState=inactive ;;
  SubState) echo 'SubState=run "ning"' ;;
  UnitFileState) [ -f "$T/enabled" ] && echo UnitFileState=enabled || echo UnitFileState=disabled ;;
  esac ;;
is-active) [ -f "$T/active" ] && { echo active; exit 0; }; echo inactive; exit 3 ;;
is-enabled) [ -f "$T/enabled" ] && { echo enabled; exit 0; }; echo disabled; exit 1 ;;
start|restart) touch "$T/active" ;;
stop) rm -f "$T/active" ;;
enable) touch "$T/enabled" ;;
disable) rm -f "$T/enabled" ;;
reload) [ -f "$T/badreload" ] && { echo "Job for $u failed." >&2; exit 1; } ;;
esac
exit 0"#,
        );
        sb
    }

    fn mutations(log: &str) -> Vec<&str> {
        log.lines()
            .filter(|l| !l.contains(" show ") && !l.contains(" is-"))
            .collect()
    }

    #[test]
    fn started_enabled_then_idempotent_and_check_mode() {
        let sb = sandbox();
        let a = args(
            json!({"name": "kubelet", "state": "started", "enabled": true, "daemon_reload": true}),
        );
        let chk = sb.run(Module::Systemd, &build(Module::Systemd, &a, CHECK).unwrap());
        assert!(chk.changed && !chk.failed, "{chk:?}");
        assert!(mutations(&sb.take_log()).is_empty());
        let step = build(Module::Systemd, &a, Flags::default()).unwrap();
        assert_eq!(
            step.summary,
            [
                "systemctl daemon-reload",
                "systemctl enable kubelet (if not enabled)",
                "systemctl start kubelet (if not running)"
            ]
        );
        let r = sb.run(Module::Systemd, &step);
        assert!(r.changed && !r.failed, "{r:?}");
        assert_eq!(
            mutations(&sb.take_log()),
            [
                "systemctl daemon-reload",
                "systemctl enable kubelet",
                "systemctl start kubelet"
            ]
        );
        assert_eq!(r.data["status"]["ActiveState"], "active");
        assert_eq!(r.data["status"]["SubState"], "run \"ning\"");
        assert_eq!(r.data["state"], "started");
        let r = sb.run(Module::Systemd, &step);
        assert!(!r.changed, "{r:?}");
        assert_eq!(mutations(&sb.take_log()), ["systemctl daemon-reload"]);
    }

    #[test]
    fn restarted_always_changes_stopped_and_failures() {
        let sb = sandbox();
        let step = build(
            Module::Service,
            &args(json!({"name": "x", "state": "restarted"})),
            Flags::default(),
        )
        .unwrap();
        assert_eq!(step.summary, ["systemctl restart x"]);
        assert!(sb.run(Module::Service, &step).changed);
        assert!(sb.run(Module::Service, &step).changed);
        let stop_step = build(
            Module::Service,
            &args(json!({"name": "x", "state": "stopped"})),
            Flags::default(),
        )
        .unwrap();
        assert!(sb.run(Module::Service, &stop_step).changed);
        assert!(!sb.run(Module::Service, &stop_step).changed);
        sb.take_log();
        sb.write("badreload", "");
        sb.write("active", "");
        let r = sb.run(
            Module::Systemd,
            &build(
                Module::Systemd,
                &args(json!({"name": "x", "state": "reloaded"})),
                Flags::default(),
            )
            .unwrap(),
        );
        assert!(r.failed && r.rc == Some(1), "{r:?}");
        assert_eq!(
            r.msg.as_deref(),
            Some("systemctl reload x failed (rc 1): Job for x failed.")
        );
        let r = sb.run(
            Module::Systemd,
            &build(
                Module::Systemd,
                &args(json!({"name": "missing", "state": "started"})),
                Flags::default(),
            )
            .unwrap(),
        );
        assert!(r.failed && r.msg.unwrap().contains("Could not find"));
    }

    #[test]
    fn argument_checks() {
        assert!(
            build(
                Module::Systemd,
                &args(json!({"name": "x", "scope": "user"})),
                Flags::default()
            )
            .is_err()
        );
        let e = build(
            Module::Systemd,
            &args(json!({"name": "x", "state": "running"})),
            Flags::default(),
        )
        .unwrap_err();
        assert!(e.message.contains("started, stopped, restarted, reloaded"));
        assert!(
            build(
                Module::Systemd,
                &args(json!({"daemon_reload": true})),
                Flags::default()
            )
            .is_ok()
        );
        assert!(
            build(
                Module::Service,
                &args(json!({"name": "x", "masked": true})),
                Flags::default()
            )
            .is_err()
        );
    }
}
