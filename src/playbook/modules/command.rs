//! `command`, `shell` and `raw`: run what the operator wrote, report rc, stdout, stderr.
//!
//! `command` does not use a shell on the host, as in Ansible: its line is split into words on
//! the controller (shlex) and each word is quoted, so `|`, `>` and `$VAR` are plain arguments.
//! `shell` runs the line with `/bin/sh` (or `executable:`), never as `sh -c LINE`, which
//! would show it in the process list. Both support `chdir`, `creates`,
//! `removes` and `stdin`; the command's stdin is otherwise `/dev/null`, never the script.
//! In check mode they run nothing and report `skipped`, unless `creates`/`removes` already
//! decide that nothing would run.

use serde_json::{Map, Value, json};

use super::sh::{arg_bool, arg_str, known_args, prelude, q, result_static};
use super::{ArgError, Flags, RemoteStep};
use crate::playbook::model::Module;

const KNOWN: &[&str] = &[
    "cmd",
    "argv",
    "chdir",
    "creates",
    "removes",
    "stdin",
    "stdin_add_newline",
    "executable",
    "strip_empty_ends",
];

pub fn build(
    module: Module,
    args: &Map<String, Value>,
    flags: Flags,
) -> Result<RemoteStep, ArgError> {
    known_args(module, args, KNOWN)?;
    let mut shell_setup = String::new();
    let mut shell_cleanup: &str = "";
    let raw = arg_str(module, args, "_raw_params")?.or(arg_str(module, args, "cmd")?);
    let line = match (module, args.get("argv")) {
        (Module::Command, Some(Value::Array(words))) => {
            let words: Vec<String> = words
                .iter()
                .map(|w| match w {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(ArgError::new(module, "`argv` must be a list of strings")),
                })
                .collect::<Result<_, _>>()?;
            if words.is_empty() {
                return Err(ArgError::new(module, "`argv` is empty"));
            }
            words.iter().map(|w| q(w)).collect::<Vec<_>>().join(" ")
        }
        (Module::Command, _) => {
            let raw = raw
                .clone()
                .ok_or_else(|| ArgError::new(module, "no command given"))?;
            let words = shlex::split(&raw).ok_or_else(|| {
                ArgError::new(
                    module,
                    format!("cannot split the command line (unbalanced quotes?): {raw}"),
                )
            })?;
            if words.is_empty() {
                return Err(ArgError::new(module, "no command given"));
            }
            words.iter().map(|w| q(w)).collect::<Vec<_>>().join(" ")
        }
        _ => {
            let raw = raw
                .clone()
                .ok_or_else(|| ArgError::new(module, "no command given"))?;
            if raw.trim().is_empty() {
                return Err(ArgError::new(module, "no command given"));
            }
            // Never `sh -c LINE`: the line (which may hold a password a playbook templated in)
            // would be in the process list for every user of the host to read. The line
            // travels inside this script, on stdin, and runs in a subshell (`eval`), or from a
            // private temporary file for another `executable:`.
            match arg_str(module, args, "executable")?.as_deref() {
                None | Some("/bin/sh" | "sh") => {
                    shell_setup = format!("kamo_line={}\n", q(&raw));
                    "( set +u; eval \"$kamo_line\" )".to_owned()
                }
                Some(exe) => {
                    shell_setup = format!(
                        "kamo_line={}\nkamo_f=$(mktemp) || {{ kamo_result {}; exit 0; }}\n\
                         printf '%s\\n' \"$kamo_line\" > \"$kamo_f\"\n",
                        q(&raw),
                        q(&json!({"failed": true, "msg": "mktemp failed"}).to_string())
                    );
                    shell_cleanup = "rm -f -- \"$kamo_f\"\n";
                    format!("{} \"$kamo_f\"", q(exe))
                }
            }
        }
    };
    let mut summary = Vec::new();
    let mut s = prelude();
    if let Some(dir) = arg_str(module, args, "chdir")? {
        s.push_str(&format!(
            "cd {} || {{ kamo_result {}; exit 0; }}\n",
            q(&dir),
            q(
                &json!({"failed": true, "msg": format!("cannot change into directory {dir}")})
                    .to_string()
            )
        ));
        summary.push(format!("in directory {dir}"));
    }
    if let Some(p) = arg_str(module, args, "creates")? {
        s.push_str(&format!(
            "if [ -e {} ]; then kamo_result {}; exit 0; fi\n",
            q(&p),
            q(
                &json!({"changed": false, "rc": 0, "msg": format!("skipped, since {p} exists")})
                    .to_string()
            )
        ));
        summary.push(format!("unless {p} exists"));
    }
    if let Some(p) = arg_str(module, args, "removes")? {
        s.push_str(&format!(
            "if [ ! -e {} ]; then kamo_result {}; exit 0; fi\n",
            q(&p),
            q(&json!({"changed": false, "rc": 0, "msg": format!("skipped, since {p} does not exist")}).to_string())
        ));
        summary.push(format!("only if {p} exists"));
    }
    let shown = match module {
        Module::Command => format!("run: {line}"),
        _ => format!(
            "run with {}: {}",
            if module == Module::Raw {
                "raw sh"
            } else {
                "sh"
            },
            raw.clone().unwrap_or_default()
        ),
    };
    summary.insert(0, shown);
    if flags.check {
        let mut fields = Map::new();
        fields.insert("changed".into(), Value::Bool(false));
        fields.insert("skipped".into(), Value::Bool(true));
        fields.insert(
            "msg".into(),
            Value::from("skipped in check mode: the command was not run"),
        );
        s.push_str(&result_static(&fields));
        return Ok(RemoteStep { script: s, summary });
    }
    let input = match arg_str(module, args, "stdin")? {
        Some(text) => {
            let mut text = text;
            if arg_bool(module, args, "stdin_add_newline", true)? {
                text.push('\n');
            }
            format!("printf '%s' {} | ", q(&text))
        }
        None => String::new(),
    };
    let redirect = if input.is_empty() { " </dev/null" } else { "" };
    s.push_str(&shell_setup);
    s.push_str(&format!("{input}{line}{redirect}\nrc=$?\n"));
    s.push_str(shell_cleanup);
    s.push_str(
        "if [ \"$rc\" -eq 0 ]; then kamo_result \"{\\\"changed\\\":true,\\\"rc\\\":0}\"; \
         else kamo_result \"{\\\"changed\\\":true,\\\"failed\\\":true,\\\"rc\\\":$rc,\\\"msg\\\":\\\"non-zero return code\\\"}\"; fi\n",
    );
    Ok(RemoteStep { script: s, summary })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::modules::interpret;

    fn args(v: serde_json::Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    /// Runs a module script with the local /bin/sh, as the host would.
    fn run(step: &RemoteStep) -> (Vec<u8>, Vec<u8>, i64) {
        let out = std::process::Command::new("/bin/sh")
            .arg("-s")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(step.script.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        (
            out.stdout,
            out.stderr,
            i64::from(out.status.code().unwrap_or(-1)),
        )
    }

    #[test]
    fn command_does_not_use_a_shell() {
        let step = build(
            Module::Command,
            &args(json!({"_raw_params": "echo a|b '$(id)' \"c d\""})),
            Flags::default(),
        )
        .unwrap();
        let (o, e, c) = run(&step);
        let r = interpret(Module::Command, &o, &e, Some(c));
        assert_eq!(r.stdout, "a|b $(id) c d\n");
        assert!(r.changed && !r.failed);
        assert_eq!(r.rc, Some(0));
    }

    #[test]
    fn the_shell_line_is_never_on_a_command_line() {
        for exe in [None, Some("/bin/bash")] {
            let mut a = json!({"_raw_params": "echo MARK-42 >/dev/null; tr '\\0' ' ' < /proc/$$/cmdline; echo \"[$NOPE]\""});
            if let Some(e) = exe {
                a["executable"] = json!(e);
                a["_raw_params"] = json!(
                    "echo MARK-42 >/dev/null; tr '\\0' ' ' < /proc/$PPID/cmdline; echo \"[$NOPE]\"; echo $BASH_VERSION"
                );
            }
            let step = build(Module::Shell, &args(a), Flags::default()).unwrap();
            assert!(!step.script.contains(" -c "), "{}", step.script);
            let (o, e, c) = run(&step);
            let r = interpret(Module::Shell, &o, &e, Some(c));
            assert!(!r.failed, "{exe:?}: {r:?}");
            assert!(
                !r.stdout.contains("MARK-42"),
                "{exe:?}: the line was in argv: {}",
                r.stdout
            );
            assert!(
                r.stdout.contains("[]"),
                "unset variables expand to nothing, as with sh -c"
            );
            if exe.is_some() {
                assert!(
                    r.stdout
                        .trim_end()
                        .lines()
                        .last()
                        .unwrap()
                        .starts_with(char::is_numeric),
                    "ran with bash: {}",
                    r.stdout
                );
            }
        }
    }

    #[test]
    fn shell_reports_failure_and_streams() {
        let step = build(
            Module::Shell,
            &args(json!({"_raw_params": "echo out; echo err >&2; printf tail; exit 3"})),
            Flags::default(),
        )
        .unwrap();
        let (o, e, c) = run(&step);
        let r = interpret(Module::Shell, &o, &e, Some(c));
        assert!(r.failed);
        assert_eq!(r.rc, Some(3));
        assert_eq!(r.stdout, "out\ntail");
        assert_eq!(r.stderr, "err\n");
    }

    #[test]
    fn the_command_cannot_read_the_script() {
        let step = build(
            Module::Shell,
            &args(json!({"_raw_params": "cat; echo done"})),
            Flags::default(),
        )
        .unwrap();
        let (o, e, c) = run(&step);
        let r = interpret(Module::Shell, &o, &e, Some(c));
        assert_eq!(r.stdout, "done\n");
        let step = build(
            Module::Shell,
            &args(json!({"_raw_params": "cat", "stdin": "given"})),
            Flags::default(),
        )
        .unwrap();
        let (o, e, c) = run(&step);
        assert_eq!(interpret(Module::Shell, &o, &e, Some(c)).stdout, "given\n");
    }

    #[test]
    fn creates_removes_chdir_and_check_mode() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let a =
            args(json!({"_raw_params": "touch made", "chdir": d, "creates": format!("{d}/made")}));
        let step = build(Module::Shell, &a, Flags::default()).unwrap();
        let (o, e, c) = run(&step);
        assert!(interpret(Module::Shell, &o, &e, Some(c)).changed);
        assert!(dir.path().join("made").exists());
        let (o, e, c) = run(&step);
        let r = interpret(Module::Shell, &o, &e, Some(c));
        assert!(!r.changed, "{r:?}");
        let check = build(
            Module::Shell,
            &args(json!({"_raw_params": "touch other", "chdir": d})),
            Flags {
                check: true,
                diff: false,
            },
        )
        .unwrap();
        let (o, e, c) = run(&check);
        let r = interpret(Module::Shell, &o, &e, Some(c));
        assert!(r.skipped && !r.changed);
        assert!(!dir.path().join("other").exists());
    }

    #[test]
    fn unknown_arguments_are_refused() {
        let e = build(
            Module::Shell,
            &args(json!({"_raw_params": "true", "chdirr": "/"})),
            Flags::default(),
        )
        .unwrap_err();
        assert!(e.message.contains("chdirr"), "{e}");
    }
}
