//! Shared pieces of the system modules (`apt`, `systemd`, `user`, `sysctl`, ...): argument
//! helpers (lists, choices, integers) and a shell library for scripts that run host tools.
//!
//! The shell library ([`sys_prelude`]) gives a script:
//! - `kamo_js VALUE`: prints VALUE as a JSON string (control characters other than newline and
//!   tab dropped), so host output (a tool's stderr, a unit's state) can enter the result line;
//! - `kamo_run CMD...`: runs a tool with stdin from `/dev/null` (the script itself arrives on
//!   stdin), its stdout to the script's stdout, its stderr both to the script's stderr and to a
//!   temporary file, and sets `kamo_rc`;
//! - `kamo_must DESCRIPTION CMD...`: `kamo_run`, and on failure ends the script with a failed
//!   result whose `msg` holds the description, the rc and the tool's stderr;
//! - `kamo_fail MSG [RC]`: ends the script with a failed result;
//! - `kamo_done`: ends the script with `changed` from `$kamo_changed` and the extra JSON fields
//!   collected in `$kamo_extra` (each starting with a comma);
//! - `kamo_put PATH MODE`: makes PATH hold the bytes of `$kamo_errf.new` (a new file gets
//!   MODE; an existing one keeps its mode and owner), marks a change only if they differ, and
//!   writes nothing in check mode (`$kamo_check`); `kamo_ensure PATH CONTENT MODE` puts CONTENT;
//!   with `kamo_diff=true` (text files, `--diff`) it adds `diff: {before, after}`;
//! - `kamo_remove PATH`: removes a file if it exists (a change), not in check mode.

use serde_json::{Map, Value};

use super::sh::{arg_str, prelude};
use super::{ArgError, Flags};
use crate::playbook::model::Module;

/// The common prelude plus the system-module shell library.
#[must_use]
pub fn sys_prelude(flags: Flags) -> String {
    let mut s = prelude();
    s.push_str(if flags.check {
        "kamo_check=true\n"
    } else {
        "kamo_check=false\n"
    });
    s.push_str(
        r#"kamo_js() { printf '%s' "$1" | tr '\011' ' ' | tr -d '\000-\010\013-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | awk 'BEGIN { printf "\"" } { if (NR > 1) printf "\\n"; printf "%s", $0 } END { printf "\"" }'; }
kamo_errf=$(mktemp) || { kamo_result '{"failed":true,"msg":"mktemp failed"}'; exit 0; }
trap 'rm -f "$kamo_errf" "$kamo_errf.new"' EXIT
kamo_changed=false
kamo_extra=''
kamo_run() { "$@" </dev/null 2>"$kamo_errf"; kamo_rc=$?; cat "$kamo_errf" >&2; return "$kamo_rc"; }
kamo_fail() { kamo_result "{\"changed\":$kamo_changed,\"failed\":true,\"msg\":$(kamo_js "$1"),\"rc\":${2:-1}$kamo_extra}"; exit 0; }
kamo_must() { kamo_d=$1; shift; kamo_run "$@" || kamo_fail "$kamo_d failed (rc $kamo_rc): $(cat "$kamo_errf")" "$kamo_rc"; }
kamo_done() { kamo_result "{\"changed\":$kamo_changed$kamo_extra}"; exit 0; }
kamo_diff=false
kamo_put() { if [ -f "$1" ] && cmp -s "$kamo_errf.new" "$1"; then return 1; fi; kamo_changed=true
  if $kamo_diff; then kamo_extra="$kamo_extra,\"diff\":{\"before\":$(kamo_js "$(cat "$1" 2>/dev/null)"),\"after\":$(kamo_js "$(cat "$kamo_errf.new")")}"; fi
  $kamo_check && return 0
  kamo_must "mkdir -p ${1%/*}" mkdir -p "${1%/*}"
  if [ ! -e "$1" ]; then kamo_must "create $1" touch "$1"; kamo_must "chmod $2 $1" chmod "$2" "$1"; fi
  kamo_must "write $1" cp "$kamo_errf.new" "$1"; }
kamo_ensure() { printf '%s' "$2" > "$kamo_errf.new"; kamo_put "$1" "$3"; }
kamo_remove() { [ -e "$1" ] || [ -L "$1" ] || return 1; kamo_changed=true; $kamo_check || kamo_must "rm $1" rm -f "$1"; }
"#,
    );
    s
}

/// A JSON string literal for a value known on the controller, quoted for sh.
#[must_use]
pub fn js(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// A list argument: a YAML list, or a string split at commas (Ansible's `list` type).
pub fn arg_list(
    module: Module,
    args: &Map<String, Value>,
    key: &str,
) -> Result<Option<Vec<String>>, ArgError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) if !s.contains('\0') => Ok(s.trim().to_owned()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(ArgError::new(
                    module,
                    format!("`{key}` must be a list of strings"),
                )),
            })
            .filter(|r| r.as_ref().map_or(true, |s| !s.is_empty()))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Ok(arg_str(module, args, key)?.map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        })),
    }
}

/// A string argument that must be one of `valid` (`default` when absent).
pub fn arg_choice(
    module: Module,
    args: &Map<String, Value>,
    key: &str,
    valid: &[&str],
    default: Option<&str>,
) -> Result<Option<String>, ArgError> {
    match arg_str(module, args, key)? {
        None => Ok(default.map(str::to_owned)),
        Some(v) if valid.contains(&v.as_str()) => Ok(Some(v)),
        Some(v) => Err(ArgError::new(
            module,
            format!("`{key}` must be one of {}, not {v:?}", valid.join(", ")),
        )),
    }
}

/// A non-negative integer argument (numbers or numeric strings).
pub fn arg_u64(
    module: Module,
    args: &Map<String, Value>,
    key: &str,
) -> Result<Option<u64>, ArgError> {
    match arg_str(module, args, key)? {
        None => Ok(None),
        Some(s) => s.trim().parse().map(Some).map_err(|_| {
            ArgError::new(
                module,
                format!("`{key}` must be a non-negative integer, not {s:?}"),
            )
        }),
    }
}

/// A required string argument, looked up under its name and aliases.
pub fn arg_req(
    module: Module,
    args: &Map<String, Value>,
    keys: &[&str],
) -> Result<String, ArgError> {
    for k in keys {
        if let Some(v) = arg_str(module, args, k)?
            && !v.is_empty()
        {
            return Ok(v);
        }
    }
    Err(ArgError::new(module, format!("`{}` is required", keys[0])))
}

/// Test support: a sandbox with fake tools first on `PATH` that log their argv.
#[cfg(test)]
#[allow(clippy::must_use_candidate, clippy::new_without_default)]
pub mod testkit {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use serde_json::{Map, Value};

    use crate::playbook::model::Module;
    use crate::playbook::modules::{Flags, ModuleResult, RemoteStep, interpret};

    pub fn args(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    pub const CHECK: Flags = Flags {
        check: true,
        diff: false,
    };

    pub struct Sandbox {
        pub dir: tempfile::TempDir,
        pub bin: PathBuf,
    }

    impl Sandbox {
        pub fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let bin = dir.path().join("bin");
            std::fs::create_dir(&bin).unwrap();
            Self { dir, bin }
        }

        /// The sandbox's directory as a string (`$T` inside stubs).
        pub fn t(&self) -> String {
            self.dir.path().display().to_string()
        }

        /// A fake tool: logs `name args...` to `$T/log`, then runs `body` (sh).
        pub fn stub(&self, name: &str, body: &str) {
            let p = self.bin.join(name);
            std::fs::write(
                &p,
                format!("#!/bin/sh\necho \"{name} $*\" >> \"$T/log\"\n{body}\n"),
            )
            .unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }

        /// The log of tool calls since the last call, then cleared.
        pub fn take_log(&self) -> String {
            let p = self.dir.path().join("log");
            let s = std::fs::read_to_string(&p).unwrap_or_default();
            let _ = std::fs::remove_file(&p);
            s
        }

        pub fn write(&self, rel: &str, content: &str) {
            let p = self.dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }

        pub fn read(&self, rel: &str) -> Option<String> {
            std::fs::read_to_string(self.dir.path().join(rel)).ok()
        }

        /// Runs a script with the local /bin/sh, the stubs first on PATH.
        pub fn run(&self, module: Module, step: &RemoteStep) -> ModuleResult {
            let path = format!("{}:/usr/bin:/bin:/usr/sbin:/sbin", self.bin.display());
            let out = std::process::Command::new("/bin/sh")
                .arg("-s")
                .env("PATH", path)
                .env("T", self.dir.path())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    c.stdin.take().unwrap().write_all(step.script.as_bytes())?;
                    c.wait_with_output()
                })
                .unwrap();
            interpret(
                module,
                &out.stdout,
                &out.stderr,
                Some(i64::from(out.status.code().unwrap_or(-1))),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::{Sandbox, args};
    use super::*;
    use crate::playbook::modules::RemoteStep;
    use serde_json::json;

    #[test]
    fn lists_from_yaml_lists_and_comma_strings() {
        let a = args(json!({"a": "x, y,,z", "b": ["p", 3], "c": [{}]}));
        assert_eq!(
            arg_list(Module::Apt, &a, "a").unwrap().unwrap(),
            ["x", "y", "z"]
        );
        assert_eq!(arg_list(Module::Apt, &a, "b").unwrap().unwrap(), ["p", "3"]);
        assert!(arg_list(Module::Apt, &a, "c").is_err());
        assert_eq!(arg_list(Module::Apt, &a, "d").unwrap(), None);
    }

    #[test]
    fn bad_choice_names_the_valid_ones() {
        let a = args(json!({"state": "installed!"}));
        let e = arg_choice(Module::Apt, &a, "state", &["present", "absent"], None).unwrap_err();
        assert!(e.message.contains("present, absent"), "{e}");
    }

    #[test]
    fn host_text_becomes_json_and_failures_carry_stderr() {
        let sb = Sandbox::new();
        sb.stub(
            "tool",
            "echo 'bad \"thing\" \\ here' >&2; printf 'l1\\tx\\n' >&2; exit 7",
        );
        let mut script = sys_prelude(Flags::default());
        script.push_str(
            "kamo_extra=\",\\\"k\\\":$(kamo_js 'a\"b')\"\nkamo_must 'tool x' tool x\nkamo_done\n",
        );
        let r = sb.run(
            Module::Sysctl,
            &RemoteStep {
                script,
                summary: vec![],
            },
        );
        assert!(r.failed, "{r:?}");
        assert_eq!(r.rc, Some(7));
        assert_eq!(
            r.msg.as_deref(),
            Some("tool x failed (rc 7): bad \"thing\" \\ here\nl1 x")
        );
        assert_eq!(r.data["k"], "a\"b");
        assert_eq!(sb.take_log(), "tool x\n");
    }

    #[test]
    fn playbook_values_stay_data_in_every_module() {
        use crate::playbook::modules::{Flags, build};
        let sb = Sandbox::new();
        for name in [
            "systemctl",
            "sysctl",
            "mountpoint",
            "mount",
            "getent",
            "useradd",
            "usermod",
        ] {
            sb.stub(name, "exit 0");
        }
        let evil = "x$(touch${IFS}$T/pwned)`touch $T/pwned`";
        let t = sb.t();
        let cases = [
            (Module::Systemd, json!({"name": evil, "state": "started"})),
            (
                Module::Sysctl,
                json!({"name": "k", "value": evil, "sysctl_file": format!("{t}/s.conf")}),
            ),
            (
                Module::Mount,
                json!({"path": format!("/{evil}"), "src": evil, "fstype": "ext4", "state": "present", "fstab": format!("{t}/fstab")}),
            ),
            (
                Module::WaitFor,
                json!({"path": format!("{t}/{evil}"), "state": "absent", "timeout": 0}),
            ),
            (
                Module::User,
                json!({"name": "u", "shell": evil, "comment": evil, "password": evil}),
            ),
            (
                Module::AptKey,
                json!({"data": evil, "keyring": format!("{t}/k.asc")}),
            ),
        ];
        for (m, a) in cases {
            let step = build(m, &args(a.clone()), Flags::default()).unwrap();
            let r = sb.run(m, &step);
            assert!(!r.msg.unwrap_or_default().contains("no result"), "{a}");
            assert!(!sb.dir.path().join("pwned").exists(), "{m:?} {a}");
        }
    }
}
