//! `wait_for`: a bounded loop on the host.
//!
//! Arguments: `port` with `host` (default `127.0.0.1`), or `path` with `search_regex` (an
//! extended regular expression for `grep -E`, not Python's syntax), `state` (`started`/`present`
//! wait until the port accepts a connection or the file exists (and matches); `stopped`/
//! `absent` until it no longer does; `drained` is refused), `delay` (seconds before the first
//! check), `timeout` (default 300), `sleep` (default 1), `connect_timeout` (default 5), `msg`.
//! With neither port nor path it sleeps `timeout` seconds, as Ansible does.
//!
//! TCP checks need no netcat: bash's `/dev/tcp/HOST/PORT` when bash exists (bounded by
//! `timeout` from coreutils), else `nc -z -w`, else, for a local host only, a listening socket
//! on the port in `/proc/net/tcp` or `/proc/net/tcp6`. Never a change; the result has
//! `elapsed` (whole seconds), `state`, and `port` or `path`. Read-only, so it runs in check mode.

use serde_json::{Map, Value};

use super::sh::{arg_str, known_args, q};
use super::syslib::{arg_choice, arg_u64, js, sys_prelude};
use super::{ArgError, Flags, RemoteStep};
use crate::playbook::model::Module;

const KNOWN: &[&str] = &[
    "host",
    "port",
    "path",
    "state",
    "delay",
    "timeout",
    "sleep",
    "connect_timeout",
    "search_regex",
    "msg",
];

pub fn build(
    module: Module,
    args: &Map<String, Value>,
    flags: Flags,
) -> Result<RemoteStep, ArgError> {
    let m = module;
    known_args(m, args, KNOWN)?;
    let state = arg_choice(
        m,
        args,
        "state",
        &["started", "stopped", "present", "absent", "drained"],
        Some("started"),
    )?
    .unwrap_or_default();
    if state == "drained" {
        return Err(ArgError::new(m, "`state: drained` is not supported"));
    }
    let host = arg_str(m, args, "host")?.unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = arg_u64(m, args, "port")?;
    if port.is_some_and(|p| p == 0 || p > 65535) {
        return Err(ArgError::new(m, "`port` must be between 1 and 65535"));
    }
    let path = arg_str(m, args, "path")?;
    if port.is_some() && path.is_some() {
        return Err(ArgError::new(m, "`port` and `path` are mutually exclusive"));
    }
    let regex = arg_str(m, args, "search_regex")?;
    if regex.is_some() && path.is_none() {
        return Err(ArgError::new(
            m,
            "`search_regex` is supported with `path` only",
        ));
    }
    let delay = arg_u64(m, args, "delay")?.unwrap_or(0);
    let timeout = arg_u64(m, args, "timeout")?.unwrap_or(300);
    let sleep = arg_u64(m, args, "sleep")?.unwrap_or(1).max(1);
    let ct = arg_u64(m, args, "connect_timeout")?.unwrap_or(5).max(1);
    let up = matches!(state.as_str(), "started" | "present");
    let mut s = sys_prelude(flags);
    s.push_str(&format!(
        "kamo_t0=$(date +%s)\nkamo_extra=\",\\\"state\\\":\\\"{state}\\\"\"\n"
    ));
    if delay > 0 {
        s.push_str(&format!("sleep {delay}\n"));
    }
    let (what, default_msg) = if let Some(p) = port {
        s.push_str(&format!(
            "kamo_extra=\"$kamo_extra,\\\"port\\\":{p}\"\n\
             kamo_h={h}\n\
             if command -v bash >/dev/null 2>&1; then kamo_how=bash\n\
             elif command -v nc >/dev/null 2>&1; then kamo_how=nc\n\
             else case \"$kamo_h\" in 127.*|localhost|::1|0.0.0.0|::) kamo_how=proc ;;\n\
               *) kamo_fail \"wait_for: neither bash nor nc on this host to test $kamo_h:{p}\" ;; esac; fi\n\
             kamo_ok() {{ case $kamo_how in\n\
               bash) if command -v timeout >/dev/null 2>&1; then timeout {ct} bash -c 'exec 3<>\"/dev/tcp/$1/$2\"' kamo \"$kamo_h\" {p}; else bash -c 'exec 3<>\"/dev/tcp/$1/$2\"' kamo \"$kamo_h\" {p}; fi </dev/null >/dev/null 2>&1 ;;\n\
               nc) nc -z -w {ct} \"$kamo_h\" {p} </dev/null >/dev/null 2>&1 ;;\n\
               *) cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == \"0A\" {{ n = split($2, a, \":\"); if (a[n] == \"{hex:04X}\") f = 1 }} END {{ exit !f }}' ;;\n\
             esac; }}\n",
            h = q(&host),
            hex = p,
        ));
        (
            format!("{host}:{p}"),
            if up {
                format!("Timeout when waiting for {host}:{p}")
            } else {
                format!("Timeout when waiting for {host}:{p} to stop.")
            },
        )
    } else if let Some(path) = &path {
        let pq = q(path);
        s.push_str(&format!(
            "kamo_extra=\"$kamo_extra,\\\"path\\\":\"{}\n",
            q(&js(path))
        ));
        let test = match &regex {
            Some(r) => format!("[ -e {pq} ] && grep -Eq -e {} {pq} 2>/dev/null", q(r)),
            None => format!("[ -e {pq} ]"),
        };
        s.push_str(&format!("kamo_ok() {{ {test}; }}\n"));
        (
            match &regex {
                Some(r) => format!("{path} to match {r}"),
                None => path.clone(),
            },
            match (&regex, up) {
                (Some(r), true) => format!("Timeout when waiting for search string {r} in {path}"),
                (_, true) => format!("Timeout when waiting for file {path}"),
                (_, false) => format!("Timeout when waiting for {path} to be absent."),
            },
        )
    } else {
        s.push_str(&format!(
            "sleep {timeout}\nkamo_extra=\"$kamo_extra,\\\"elapsed\\\":$(( $(date +%s) - kamo_t0 ))\"\nkamo_done\n"
        ));
        return Ok(RemoteStep {
            script: s,
            summary: vec![format!("sleep {delay}+{timeout}s")],
        });
    };
    let msg = arg_str(m, args, "msg")?.unwrap_or(default_msg);
    let want = if up { "kamo_ok" } else { "! kamo_ok" };
    s.push_str(&format!(
        "while :; do\n\
         kamo_el=$(( $(date +%s) - kamo_t0 ))\n\
         if {want}; then break; fi\n\
         if [ \"$kamo_el\" -ge {timeout} ]; then kamo_extra=\"$kamo_extra,\\\"elapsed\\\":$kamo_el\"; kamo_fail {} 1; fi\n\
         sleep {sleep}\n\
         done\n\
         kamo_extra=\"$kamo_extra,\\\"elapsed\\\":$kamo_el\"\nkamo_done\n",
        q(&msg)
    ));
    let summary = vec![format!(
        "wait until {what} {} (check every {sleep}s, after {delay}s, at most {timeout}s)",
        match (port.is_some(), up) {
            (true, true) => "accepts connections",
            (true, false) => "refuses connections",
            (false, true) => "exists",
            (false, false) => "is absent",
        }
    )];
    Ok(RemoteStep { script: s, summary })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::modules::syslib::testkit::{Sandbox, args};
    use serde_json::json;

    #[test]
    fn waits_for_ports_with_each_method() {
        let sb = Sandbox::new();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let free = {
            let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            t.local_addr().unwrap().port()
        };
        let open = build(
            Module::WaitFor,
            &args(json!({"port": port, "timeout": 0})),
            Flags::default(),
        )
        .unwrap();
        let closed = build(
            Module::WaitFor,
            &args(json!({"port": free, "timeout": 0})),
            Flags::default(),
        )
        .unwrap();
        let stopped = build(
            Module::WaitFor,
            &args(json!({"port": free, "state": "stopped", "timeout": 0})),
            Flags::default(),
        )
        .unwrap();
        // The /proc/net/tcp fallback: pretend neither bash nor nc exists.
        let no_tools = |st: &RemoteStep| RemoteStep {
            script: st
                .script
                .replace("command -v bash", "command -v kamo-no-bash")
                .replace("command -v nc", "command -v kamo-no-nc"),
            summary: vec![],
        };
        for variant in [|s: &RemoteStep| s.clone(), no_tools] {
            let r = sb.run(Module::WaitFor, &variant(&open));
            assert!(!r.failed && !r.changed, "{r:?}");
            assert_eq!(r.data["elapsed"], 0);
            assert_eq!(r.data["port"], port);
            let r = sb.run(Module::WaitFor, &variant(&closed));
            assert!(r.failed, "{r:?}");
            assert_eq!(
                r.msg.unwrap(),
                format!("Timeout when waiting for 127.0.0.1:{free}")
            );
            assert!(!sb.run(Module::WaitFor, &variant(&stopped)).failed);
        }
        drop(l);
    }

    #[test]
    fn waits_for_files_and_regex() {
        let sb = Sandbox::new();
        let p = format!("{}/ready", sb.t());
        sb.write("ready", "status: warming\n");
        let a = args(json!({"path": p, "search_regex": "status: (up|ok)", "timeout": 0}));
        let r = sb.run(
            Module::WaitFor,
            &build(Module::WaitFor, &a, Flags::default()).unwrap(),
        );
        assert!(r.failed);
        assert_eq!(
            r.msg.unwrap(),
            format!("Timeout when waiting for search string status: (up|ok) in {p}")
        );
        sb.write("ready", "status: ok\n");
        let r = sb.run(
            Module::WaitFor,
            &build(Module::WaitFor, &a, Flags::default()).unwrap(),
        );
        assert!(!r.failed, "{r:?}");
        let gone = args(json!({"path": format!("{p}.x"), "state": "absent", "timeout": 1}));
        assert!(
            !sb.run(
                Module::WaitFor,
                &build(Module::WaitFor, &gone, Flags::default()).unwrap()
            )
            .failed
        );
        assert!(
            build(
                Module::WaitFor,
                &args(json!({"port": 1, "state": "drained"})),
                Flags::default()
            )
            .is_err()
        );
        assert!(
            build(
                Module::WaitFor,
                &args(json!({"port": 1, "path": "/x"})),
                Flags::default()
            )
            .is_err()
        );
        let e = build(
            Module::WaitFor,
            &args(json!({"port": 1, "state": "up"})),
            Flags::default(),
        )
        .unwrap_err();
        assert!(e.message.contains("started, stopped"));
    }
}
