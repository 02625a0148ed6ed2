//! `apt` and `package` (Debian/Ubuntu hosts only).
//!
//! `apt`: `name`/`pkg`/`package` (a list, a comma string; `name=version` pins, a version may end
//! in `*` as a prefix match), `state` (`present`/`installed`, `absent`/`removed`, `latest`,
//! `fixed` as `present`), `purge`, `autoremove` (also without names), `update_cache` with
//! `cache_valid_time`, `install_recommends`, `lock_timeout` (default 60: apt waits that long
//! for the dpkg lock, e.g. while unattended-upgrades runs, via `-o DPkg::Lock::Timeout`). Refused: `build-dep`, `force`, `deb`, `upgrade`
//! other than `no`, wildcards in names.
//!
//! The script queries each package with `dpkg-query -W -f='${Status} ${Version}'` (and
//! `apt-cache policy` for `latest`), then runs one `apt-get` for the packages that need it, so
//! `changed` is true only when something was (or in check mode would be) installed, upgraded,
//! removed or purged. Absent with `purge` also purges packages left in `rc` (config-files)
//! state. The cache is fresh when `/var/lib/apt/periodic/update-success-stamp` (else
//! `/var/lib/apt/lists`) is younger than `cache_valid_time` seconds; an update counts as a
//! change, as in Ansible. Result: `changed`, `cache_updated`, `packages` (`installed`,
//! `upgraded`, `removed`).

use serde_json::{Map, Value};

use super::sh::{arg_bool, arg_str, known_args, q};
use super::syslib::{arg_choice, arg_list, arg_u64, js, sys_prelude};
use super::{ArgError, Flags, RemoteStep};
use crate::playbook::model::Module;

const KNOWN: &[&str] = &[
    "name",
    "pkg",
    "package",
    "state",
    "purge",
    "autoremove",
    "autoclean",
    "update_cache",
    "update_cache_retries",
    "cache_valid_time",
    "install_recommends",
    "force",
    "deb",
    "upgrade",
    "lock_timeout",
];

const PACKAGE_KNOWN: &[&str] = &["name", "state", "use"];

const DPKG_OPTS: &str = "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Present,
    Absent,
    Latest,
}

/// One package spec: name, optional version pin (`name=version`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    name: String,
    version: Option<String>,
}

fn parse_specs(module: Module, names: &[String]) -> Result<Vec<Spec>, ArgError> {
    names
        .iter()
        .map(|n| {
            let (name, version) = match n.split_once('=') {
                Some((a, b)) => (a.trim().to_owned(), Some(b.trim().to_owned())),
                None => (n.clone(), None),
            };
            let ok_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.:_".contains(c));
            let ok_ver = version.as_ref().is_none_or(|v| {
                !v.is_empty()
                    && v.trim_end_matches('*')
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.:~_".contains(c))
            });
            if ok_name && ok_ver {
                Ok(Spec { name, version })
            } else {
                Err(ArgError::new(
                    module,
                    format!("{n:?} is not a package name (wildcards are not supported)"),
                ))
            }
        })
        .collect()
}

impl Spec {
    fn shown(&self) -> String {
        match &self.version {
            Some(v) => format!("{}={v}", self.name),
            None => self.name.clone(),
        }
    }
}

#[allow(clippy::too_many_lines)]
pub fn build(
    module: Module,
    args: &Map<String, Value>,
    flags: Flags,
) -> Result<RemoteStep, ArgError> {
    if module == Module::Package {
        known_args(module, args, PACKAGE_KNOWN)?;
        if let Some(u) = arg_str(module, args, "use")?
            && u != "auto"
            && u != "apt"
        {
            return Err(ArgError::new(
                module,
                format!("`use: {u}` is not supported; only apt hosts are"),
            ));
        }
    } else {
        known_args(module, args, KNOWN)?;
    }
    let names = match arg_list(module, args, "name")? {
        Some(n) => Some(n),
        None => match arg_list(module, args, "pkg")? {
            Some(n) => Some(n),
            None => arg_list(module, args, "package")?,
        },
    }
    .unwrap_or_default();
    let specs = parse_specs(module, &names)?;
    let state = match arg_choice(
        module,
        args,
        "state",
        &[
            "present",
            "installed",
            "absent",
            "removed",
            "latest",
            "fixed",
            "build-dep",
        ],
        Some("present"),
    )?
    .as_deref()
    {
        Some("absent" | "removed") => State::Absent,
        Some("latest") => State::Latest,
        Some("build-dep") => {
            return Err(ArgError::new(module, "`state: build-dep` is not supported"));
        }
        _ => State::Present,
    };
    if arg_bool(module, args, "force", false)? {
        return Err(ArgError::new(
            module,
            "`force: yes` is not supported (it disables package authentication)",
        ));
    }
    if args.get("deb").is_some_and(|v| !v.is_null()) {
        return Err(ArgError::new(
            module,
            "`deb` is not supported; copy the .deb and use `command: dpkg -i ...`",
        ));
    }
    if let Some(u) = arg_str(module, args, "upgrade")?
        && !matches!(u.as_str(), "no" | "false" | "False")
    {
        return Err(ArgError::new(module, "`upgrade` is not supported"));
    }
    let lock = arg_u64(module, args, "lock_timeout")?.unwrap_or(60);
    let opts = format!("-o DPkg::Lock::Timeout={lock} {DPKG_OPTS}");
    let purge = arg_bool(module, args, "purge", false)?;
    let autoremove = arg_bool(module, args, "autoremove", false)?;
    let update_cache = arg_bool(module, args, "update_cache", false)?;
    let valid_time = arg_u64(module, args, "cache_valid_time")?.unwrap_or(0);
    let recommends = match args.get("install_recommends") {
        None | Some(Value::Null) => None,
        Some(_) => Some(arg_bool(module, args, "install_recommends", true)?),
    };
    if specs.is_empty() && !update_cache && !autoremove {
        return Err(ArgError::new(
            module,
            "nothing to do: give `name`, `update_cache` or `autoremove`",
        ));
    }

    let mut summary = Vec::new();
    let mut s = sys_prelude(flags);
    s.push_str("set -f\nDEBIAN_FRONTEND=noninteractive; export DEBIAN_FRONTEND\n");
    s.push_str(&format!(
        "command -v apt-get >/dev/null 2>&1 || kamo_fail {}\n",
        q(&format!(
            "{}: no apt-get on this host; only apt (Debian/Ubuntu) is supported",
            module.name()
        ))
    ));
    // Cache.
    s.push_str("kamo_cache=false\n");
    if update_cache {
        if valid_time > 0 {
            summary.push(format!(
                "apt-get update -q -o DPkg::Lock::Timeout={lock} (unless the cache is younger than {valid_time}s)"
            ));
            s.push_str(&format!(
                "kamo_stamp=/var/lib/apt/periodic/update-success-stamp\n\
                 [ -e \"$kamo_stamp\" ] || kamo_stamp=/var/lib/apt/lists\n\
                 kamo_mt=$(stat -c %Y \"$kamo_stamp\" 2>/dev/null) || kamo_mt=0\n\
                 kamo_now=$(date +%s)\n\
                 [ $((kamo_now - kamo_mt)) -lt {valid_time} ] || kamo_cache=true\n"
            ));
        } else {
            summary.push(format!("apt-get update -q -o DPkg::Lock::Timeout={lock}"));
            s.push_str("kamo_cache=true\n");
        }
        s.push_str("if $kamo_cache; then kamo_changed=true\n");
        if !flags.check {
            s.push_str(&format!(
                "  kamo_must 'apt-get update' apt-get update -q -o DPkg::Lock::Timeout={lock}\n"
            ));
        }
        s.push_str("fi\nkamo_extra=\",\\\"cache_updated\\\":$kamo_cache\"\n");
    } else {
        s.push_str("kamo_extra=',\"cache_updated\":false'\n");
    }
    // Query.
    s.push_str(
        "kamo_q() { kamo_st=$(dpkg-query -W -f='${Status} ${Version}' \"$1\" 2>/dev/null </dev/null) || kamo_st=''\n\
         kamo_ver=''; kamo_inst=false; kamo_rc_state=false\n\
         case \"$kamo_st\" in\n\
         *' ok installed '*) kamo_inst=true; kamo_ver=${kamo_st#* ok installed } ;;\n\
         *' ok config-files '*|*' ok config-files') kamo_rc_state=true ;;\n\
         esac; }\n\
         kamo_cand() { apt-cache policy \"$1\" </dev/null 2>/dev/null | awk '$1 == \"Candidate:\" { print $2; exit }'; }\n\
         kamo_jl=''\n\
         set --\n",
    );
    let recommends_opt = match recommends {
        Some(true) => " --install-recommends",
        Some(false) => " --no-install-recommends",
        None => "",
    };
    let shown: Vec<String> = specs.iter().map(Spec::shown).collect();
    match state {
        State::Present | State::Latest => {
            for sp in &specs {
                s.push_str(&format!("kamo_q {}\n", q(&sp.name)));
                let need = match (&sp.version, state) {
                    (Some(v), _) => {
                        let pat = match v.strip_suffix('*') {
                            Some(prefix) => format!("{}*", q(prefix)),
                            None => q(v),
                        };
                        format!(
                            "kamo_need=true; if $kamo_inst; then case \"$kamo_ver\" in {pat}) kamo_need=false ;; esac; fi\n"
                        )
                    }
                    (None, State::Latest) => format!(
                        "kamo_need=true; if $kamo_inst; then kamo_c=$(kamo_cand {}); if [ -z \"$kamo_c\" ] || [ \"$kamo_c\" = '(none)' ] || [ \"$kamo_c\" = \"$kamo_ver\" ]; then kamo_need=false; fi; fi\n",
                        q(&sp.name)
                    ),
                    (None, _) => {
                        "if $kamo_inst; then kamo_need=false; else kamo_need=true; fi\n".to_owned()
                    }
                };
                s.push_str(&need);
                s.push_str(&format!(
                    "if $kamo_need; then set -- \"$@\" {}; kamo_jl=\"$kamo_jl,\"{}; fi\n",
                    q(&sp.shown()),
                    q(&js(&sp.shown()))
                ));
            }
            if !specs.is_empty() {
                let cmd = format!("apt-get install -y {opts}{recommends_opt}");
                summary.push(format!(
                    "{cmd} {} (only those {})",
                    shown.join(" "),
                    if state == State::Latest {
                        "not installed or not at the candidate version"
                    } else {
                        "not installed"
                    }
                ));
                s.push_str("if [ $# -gt 0 ]; then kamo_changed=true\n");
                if !flags.check {
                    s.push_str(&format!(
                        "  kamo_must \"apt-get install $*\" apt-get install -y {opts}{recommends_opt} \"$@\"\n"
                    ));
                }
                s.push_str("fi\n");
            }
            s.push_str(
                "kamo_extra=\"$kamo_extra,\\\"packages\\\":{\\\"installed\\\":[${kamo_jl#,}]}\"\n",
            );
        }
        State::Absent => {
            for sp in &specs {
                s.push_str(&format!("kamo_q {}\n", q(&sp.name)));
                let cond = if purge {
                    "$kamo_inst || $kamo_rc_state"
                } else {
                    "$kamo_inst"
                };
                s.push_str(&format!(
                    "if {cond}; then set -- \"$@\" {}; kamo_jl=\"$kamo_jl,\"{}; fi\n",
                    q(&sp.name),
                    q(&js(&sp.name))
                ));
            }
            if !specs.is_empty() {
                let cmd = format!(
                    "apt-get remove -y {opts}{}",
                    if purge { " --purge" } else { "" }
                );
                let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                summary.push(format!(
                    "{cmd} {} (only those installed{})",
                    names.join(" "),
                    if purge {
                        " or with config files left"
                    } else {
                        ""
                    }
                ));
                s.push_str("if [ $# -gt 0 ]; then kamo_changed=true\n");
                if !flags.check {
                    s.push_str(&format!("  kamo_must \"apt-get remove $*\" {cmd} \"$@\"\n"));
                }
                s.push_str("fi\n");
            }
            s.push_str(
                "kamo_extra=\"$kamo_extra,\\\"packages\\\":{\\\"removed\\\":[${kamo_jl#,}]}\"\n",
            );
        }
    }
    if autoremove {
        let p = if purge { " --purge" } else { "" };
        summary.push(format!(
            "apt-get autoremove -y {opts}{p} (if it would remove anything)"
        ));
        s.push_str(&format!(
            "kamo_ar=$(apt-get -s autoremove{p} </dev/null 2>/dev/null | grep -cE '^(Remv|Purg) ') || kamo_ar=0\n\
             if [ \"$kamo_ar\" -gt 0 ]; then kamo_changed=true\n"
        ));
        if !flags.check {
            s.push_str(&format!(
                "  kamo_must 'apt-get autoremove' apt-get autoremove -y {opts}{p}\n"
            ));
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

    /// Fake dpkg: `$T/dpkg/NAME` holds "STATUS VERSION" (e.g. `install ok installed 1.0`).
    fn apt_sandbox() -> Sandbox {
        let sb = Sandbox::new();
        std::fs::create_dir(sb.dir.path().join("dpkg")).unwrap();
        sb.stub(
            "dpkg-query",
            r#"for p; do :; done; [ -f "$T/dpkg/$p" ] || { echo "dpkg-query: no packages found matching $p" >&2; exit 1; }; printf '%s' "$(cat "$T/dpkg/$p")""#,
        );
        sb.stub(
            "apt-get",
            r#"case " $* " in
*" -s "*) [ -f "$T/autoremove" ] && echo 'Remv oldpkg [1]'; exit 0 ;;
*" install "*) for a; do case "$a" in -*|install|*::*) ;; *=*) echo "install ok installed ${a#*=}" > "$T/dpkg/${a%%=*}" ;; *) [ -f "$T/fail" ] && { echo "E: Unable to locate package $a" >&2; exit 100; }; echo "install ok installed 2.0" > "$T/dpkg/$a" ;; esac; done ;;
*" remove "*) for a; do case "$a" in -*|remove|*::*) ;; *) if [ "${purge:-}" ]; then rm -f "$T/dpkg/$a"; else echo "deinstall ok config-files 1.0" > "$T/dpkg/$a"; fi ;; esac; done ;;
esac
exit 0"#,
        );
        sb.stub(
            "apt-cache",
            r"printf '  Installed: 1.0\n  Candidate: 2.0\n'",
        );
        sb
    }

    #[test]
    fn installs_only_missing_then_is_idempotent() {
        let sb = apt_sandbox();
        sb.write("dpkg/curl", "install ok installed 7.0");
        let a = args(json!({"name": ["nginx=1.2", "curl"], "install_recommends": false}));
        let step = build(Module::Apt, &a, Flags::default()).unwrap();
        assert_eq!(
            step.summary,
            [
                "apt-get install -y -o DPkg::Lock::Timeout=60 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --no-install-recommends nginx=1.2 curl (only those not installed)"
            ]
        );
        let chk = sb.run(Module::Apt, &build(Module::Apt, &a, CHECK).unwrap());
        assert!(chk.changed && !chk.failed, "{chk:?}");
        assert!(!sb.take_log().contains("apt-get"));
        let r = sb.run(Module::Apt, &step);
        assert!(r.changed && !r.failed, "{r:?}");
        assert_eq!(r.data["packages"]["installed"], json!(["nginx=1.2"]));
        assert_eq!(r.data["cache_updated"], false);
        let log = sb.take_log();
        assert!(
            log.contains("apt-get install -y -o DPkg::Lock::Timeout=60 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --no-install-recommends nginx=1.2\n"),
            "{log}"
        );
        let r = sb.run(Module::Apt, &step);
        assert!(!r.changed && !r.failed, "{r:?}");
        assert!(!sb.take_log().contains("apt-get"));
    }

    #[test]
    fn version_pin_mismatch_and_latest() {
        let sb = apt_sandbox();
        sb.write("dpkg/nginx", "install ok installed 1.0");
        let r = sb.run(
            Module::Apt,
            &build(
                Module::Apt,
                &args(json!({"name": "nginx=1.*"})),
                Flags::default(),
            )
            .unwrap(),
        );
        assert!(!r.changed, "{r:?}");
        let r = sb.run(
            Module::Apt,
            &build(
                Module::Apt,
                &args(json!({"name": "nginx", "state": "latest"})),
                Flags::default(),
            )
            .unwrap(),
        );
        assert!(r.changed, "{r:?}");
        assert_eq!(sb.read("dpkg/nginx").unwrap(), "install ok installed 2.0\n");
    }

    #[test]
    fn absent_with_purge_purges_config_files_state() {
        let sb = apt_sandbox();
        sb.write("dpkg/a", "deinstall ok config-files 1.0");
        let step = build(
            Module::Apt,
            &args(json!({"name": "a,b", "state": "absent"})),
            Flags::default(),
        )
        .unwrap();
        assert!(!sb.run(Module::Apt, &step).changed);
        let step = build(
            Module::Apt,
            &args(json!({"name": "a,b", "state": "absent", "purge": true})),
            Flags::default(),
        )
        .unwrap();
        let r = sb.run(Module::Apt, &step);
        assert!(r.changed, "{r:?}");
        assert_eq!(r.data["packages"]["removed"], json!(["a"]));
        assert!(sb.take_log().contains("apt-get remove -y -o DPkg::Lock::Timeout=60 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --purge a\n"));
    }

    #[test]
    fn update_cache_autoremove_and_failures() {
        let sb = apt_sandbox();
        sb.write("autoremove", "");
        let step = build(
            Module::Apt,
            &args(json!({"update_cache": true, "autoremove": true})),
            Flags::default(),
        )
        .unwrap();
        let r = sb.run(Module::Apt, &step);
        assert!(r.changed && r.data["cache_updated"] == true, "{r:?}");
        let log = sb.take_log();
        assert!(
            log.contains("apt-get update -q -o DPkg::Lock::Timeout=60\n"),
            "{log}"
        );
        assert!(log.contains("apt-get autoremove -y"), "{log}");
        // A fresh cache is not updated.
        sb.stub("stat", "date +%s");
        let step = build(
            Module::Apt,
            &args(json!({"update_cache": true, "cache_valid_time": 3600})),
            Flags::default(),
        )
        .unwrap();
        let r = sb.run(Module::Apt, &step);
        assert!(!r.changed && r.data["cache_updated"] == false, "{r:?}");
        sb.write("fail", "");
        let r = sb.run(
            Module::Apt,
            &build(
                Module::Apt,
                &args(json!({"name": "nope"})),
                Flags::default(),
            )
            .unwrap(),
        );
        assert!(r.failed && r.rc == Some(100), "{r:?}");
        assert!(r.msg.unwrap().contains("E: Unable to locate package nope"));
    }

    #[test]
    fn package_needs_apt_and_refusals() {
        let step = build(
            Module::Package,
            &args(json!({"name": "x"})),
            Flags::default(),
        )
        .unwrap();
        assert!(step.script.contains("command -v apt-get >/dev/null 2>&1 || kamo_fail 'package: no apt-get on this host; only apt (Debian/Ubuntu) is supported'"));
        assert!(
            build(
                Module::Package,
                &args(json!({"name": "x", "use": "dnf"})),
                Flags::default()
            )
            .is_err()
        );
        for bad in [
            json!({"name": "x", "state": "build-dep"}),
            json!({"name": "x", "force": true}),
            json!({"deb": "/tmp/x.deb"}),
            json!({"name": "x*"}),
            json!({"name": "x; reboot"}),
            json!({}),
        ] {
            assert!(
                build(Module::Apt, &args(bad.clone()), Flags::default()).is_err(),
                "{bad}"
            );
        }
        let e = build(
            Module::Apt,
            &args(json!({"name": "x", "state": "gone"})),
            Flags::default(),
        )
        .unwrap_err();
        assert!(e.message.contains("present, installed, absent"), "{e}");
    }
}
