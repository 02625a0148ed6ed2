//! Modules: templated arguments in, a POSIX shell script out; the script's output in, a
//! result out. Pure functions, so every module is unit-tested without a host and `kamo plan`
//! shows exactly the script `kamo run` sends.
//!
//! Why shell scripts built on the controller (pyinfra's idea, one round trip like Mitogen):
//! nodes need nothing but a POSIX shell and coreutils, and a task costs one SSH channel. The
//! script travels on the channel's stdin to `/bin/sh -s`, never on a command line, so a node's
//! process list shows no task content.
//!
//! ## The result protocol
//! A script ends by printing, on stdout, a newline then one line `<MARKER> <json>` where the
//! JSON object holds the module's result fields (`changed`, `failed`, `msg`, `rc`, and
//! module-specific ones such as `stat`). [`MARKER`] is fixed; [`split_result`] takes the *last*
//! marker line and the newline before it off stdout, so a user command's own output (for
//! `command`/`shell`) stays byte-exact. A script that dies before printing its result line is a
//! failure with the shell's exit code and stderr.
//!
//! Scripts honour check mode themselves: with `check`, they find out whether anything would
//! change and report `changed` without changing it. With `diff`, file modules add a `diff`
//! field (`{"before": "...", "after": "..."}`) for the engine to render.

pub mod accounts;
pub mod apt;
pub mod apt_sources;
pub mod command;
pub mod copy;
pub mod edit;
pub mod file;
mod forks;
pub mod fsutil;
#[cfg(test)]
mod injection;
pub mod kernel;
pub mod mount;
pub mod sh;
pub mod stat;
pub mod syslib;
pub mod systemd;
pub mod unarchive;
pub mod wait_for;

use serde_json::{Map, Value};

use super::model::Module;

/// Marks the result line of a module script.
pub const MARKER: &str = "@@kamo-result@@";

/// Flags of the run that modules honour.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub check: bool,
    pub diff: bool,
}

/// A module argument that is missing, of the wrong type, or not supported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{module}: {message}")]
pub struct ArgError {
    pub module: &'static str,
    pub message: String,
}

impl ArgError {
    pub fn new(module: Module, message: impl Into<String>) -> Self {
        Self {
            module: module.name(),
            message: message.into(),
        }
    }
}

/// What a task sends to one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStep {
    /// The whole script, run by `/bin/sh -s` (through sudo when the task becomes).
    pub script: String,
    /// What the script does, in words that are exact (commands, paths, digests, packages):
    /// what `kamo plan` prints for the task on this host.
    pub summary: Vec<String>,
}

/// The outcome of a module on one host, as registered (`register:`) and reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModuleResult {
    pub changed: bool,
    pub failed: bool,
    pub skipped: bool,
    pub msg: Option<String>,
    pub rc: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    /// Module-specific fields (e.g. `stat`, `content`, `diff`, `cmd`).
    pub data: Map<String, Value>,
}

impl ModuleResult {
    /// The registered value, as Ansible shapes it: `changed`, `failed`, `rc`, `stdout`,
    /// `stdout_lines`, `stderr`, `stderr_lines`, `msg` and the module's own fields.
    #[must_use]
    pub fn to_value(&self) -> Value {
        let mut m = self.data.clone();
        m.insert("changed".into(), Value::Bool(self.changed));
        m.insert("failed".into(), Value::Bool(self.failed));
        if self.skipped {
            m.insert("skipped".into(), Value::Bool(true));
        }
        if let Some(msg) = &self.msg {
            m.insert("msg".into(), Value::String(msg.clone()));
        }
        if let Some(rc) = self.rc {
            m.insert("rc".into(), Value::from(rc));
        }
        // Ansible strips the trailing newlines of registered output (`strip_empty_ends`).
        let stdout = self.stdout.trim_end_matches(['\n', '\r']);
        let stderr = self.stderr.trim_end_matches(['\n', '\r']);
        m.insert("stdout".into(), Value::String(stdout.to_owned()));
        m.insert("stderr".into(), Value::String(stderr.to_owned()));
        m.insert("stdout_lines".into(), lines(stdout));
        m.insert("stderr_lines".into(), lines(stderr));
        Value::Object(m)
    }
}

fn lines(s: &str) -> Value {
    Value::Array(s.lines().map(|l| Value::String(l.to_owned())).collect())
}

/// Builds the script for a host-side module. Controller-only modules (`debug`, `set_fact`,
/// ...) are the engine's and return an error here.
pub fn build(
    module: Module,
    args: &Map<String, Value>,
    flags: Flags,
) -> Result<RemoteStep, ArgError> {
    let step = match module {
        Module::Command | Module::Shell | Module::Raw => command::build(module, args, flags),
        Module::Copy | Module::Template => copy::build(module, args, flags),
        Module::File => file::build(module, args, flags),
        Module::Lineinfile => edit::lineinfile(args, flags),
        Module::Blockinfile => edit::blockinfile(args, flags),
        Module::Replace => edit::replace(args, flags),
        Module::Unarchive => unarchive::build(module, args, flags),
        Module::Stat | Module::Slurp | Module::Fetch => stat::build(module, args, flags),
        Module::Apt | Module::Package => apt::build(module, args, flags),
        Module::Systemd | Module::Service => systemd::build(module, args, flags),
        Module::Sysctl | Module::Modprobe | Module::Hostname | Module::Ping => {
            kernel::build(module, args, flags)
        }
        Module::User | Module::Group => accounts::build(module, args, flags),
        Module::Mount => mount::build(module, args, flags),
        Module::WaitFor => wait_for::build(module, args, flags),
        Module::AptKey | Module::AptRepository => apt_sources::build(module, args, flags),
        other => Err(ArgError::new(other, "is not implemented yet")),
    }?;
    Ok(RemoteStep {
        script: fsutil::shake(step.script),
        ..step
    })
}

/// Work a module can have done over SFTP instead of its script (see `engine::put`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SftpStep {
    /// `copy`/`template`: write a file; `lineinfile` with `create`: make a new one.
    Put(copy::Put),
    /// `file: state=directory`.
    Mkdir(file::Mkdir),
}

impl SftpStep {
    /// The path it works on: what logs may name (never the content, which may be secret).
    #[must_use]
    pub fn path(&self) -> &str {
        match self {
            SftpStep::Put(p) => &p.dest,
            SftpStep::Mkdir(m) => &m.path,
        }
    }
}

/// The [`SftpStep`] for a task, when its arguments allow one.
#[must_use]
pub fn sftp_step(module: Module, args: &Map<String, Value>, flags: Flags) -> Option<SftpStep> {
    match module {
        Module::Copy | Module::Template => copy::put_plan(module, args, flags).map(SftpStep::Put),
        Module::File => file::mkdir_plan(module, args, flags).map(SftpStep::Mkdir),
        Module::Lineinfile => edit::lineinfile_put(args, flags).map(SftpStep::Put),
        _ => None,
    }
}

/// Whether the script `build` makes for `module` with `args` runs only kamo's own code and
/// short-lived tools (`stat`, `mv`, `cmp`, ...), never a command of the playbook's (a
/// `validate:` command is one) and nothing that outlives it: such a script may run in a
/// subshell of the host's task shell, a fork instead of `setsid /bin/sh` (see
/// `transport::shell`).
#[must_use]
pub fn own_tools_only(module: Module, args: &Map<String, Value>) -> bool {
    matches!(
        module,
        Module::Copy
            | Module::Template
            | Module::File
            | Module::Lineinfile
            | Module::Blockinfile
            | Module::Replace
            | Module::Stat
            | Module::Slurp
            | Module::Fetch
    ) && !args.contains_key("validate")
}

/// Reads a finished script's output into the module's result.
#[must_use]
pub fn interpret(
    module: Module,
    stdout: &[u8],
    stderr: &[u8],
    exit_code: Option<i64>,
) -> ModuleResult {
    let (user_stdout, result) = split_result(stdout);
    let stderr = String::from_utf8_lossy(stderr).into_owned();
    let Some(Value::Object(mut fields)) = result else {
        let code = exit_code.map_or_else(|| "none".to_owned(), |c| c.to_string());
        let cut = crate::transport::capped::DROPPED_NOTE;
        let msg = if user_stdout.windows(cut.len()).any(|w| w == cut.as_bytes()) {
            // The result line was longer than the tail kamo keeps (a large fetch or slurp).
            format!(
                "{}: the module printed more output than kamo keeps ({} MiB) and its result \
                 was lost (exit code {code})",
                module.name(),
                (crate::transport::capped::STDOUT_KEEP.0 + crate::transport::capped::STDOUT_KEEP.1)
                    >> 20
            )
        } else {
            format!(
                "{}: the module script ended without a result (exit code {code})",
                module.name()
            )
        };
        return ModuleResult {
            failed: true,
            rc: exit_code,
            msg: Some(msg),
            stdout: String::from_utf8_lossy(&user_stdout).into_owned(),
            stderr,
            ..ModuleResult::default()
        };
    };
    let take_bool = |f: &mut Map<String, Value>, k: &str| {
        f.remove(k).and_then(|v| v.as_bool()).unwrap_or(false)
    };
    let changed = take_bool(&mut fields, "changed");
    let failed = take_bool(&mut fields, "failed");
    let skipped = take_bool(&mut fields, "skipped");
    let msg = fields
        .remove("msg")
        .and_then(|v| v.as_str().map(str::to_owned));
    let rc = fields.remove("rc").and_then(|v| v.as_i64());
    ModuleResult {
        changed,
        failed,
        skipped,
        msg,
        rc,
        stdout: String::from_utf8_lossy(&user_stdout).into_owned(),
        stderr,
        data: fields,
    }
}

/// Splits a script's stdout into the user's part and the parsed result object.
#[must_use]
pub fn split_result(stdout: &[u8]) -> (Vec<u8>, Option<Value>) {
    let needle = format!("\n{MARKER} ");
    let Some(pos) = stdout
        .windows(needle.len())
        .rposition(|w| w == needle.as_bytes())
    else {
        return (stdout.to_vec(), None);
    };
    let rest = &stdout[pos + needle.len()..];
    let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let parsed = serde_json::from_slice(&rest[..line_end]).ok();
    (stdout[..pos].to_vec(), parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only kamo's own file modules, and none with a `validate:` command of the playbook's,
    /// may run in a subshell of the task shell.
    #[test]
    fn only_own_file_modules_without_validate_run_in_a_subshell() {
        let none = Map::new();
        let mut validate = Map::new();
        validate.insert("validate".into(), Value::from("visudo -cf %s"));
        for m in [
            Module::Copy,
            Module::Template,
            Module::File,
            Module::Lineinfile,
        ] {
            assert!(own_tools_only(m, &none), "{m:?}");
        }
        for m in [
            Module::Copy,
            Module::Template,
            Module::Lineinfile,
            Module::Replace,
        ] {
            assert!(!own_tools_only(m, &validate), "{m:?} with validate");
        }
        for m in [
            Module::Command,
            Module::Shell,
            Module::Raw,
            Module::Apt,
            Module::Systemd,
            Module::Unarchive,
            Module::WaitFor,
            Module::User,
        ] {
            assert!(!own_tools_only(m, &none), "{m:?}");
        }
    }

    #[test]
    fn result_line_is_split_off_exactly() {
        let out = format!("user out\nno newline\n{MARKER} {{\"changed\":true,\"rc\":0}}\n");
        let (user, v) = split_result(out.as_bytes());
        assert_eq!(user, b"user out\nno newline");
        assert_eq!(v.unwrap()["changed"], true);
        let r = interpret(Module::Shell, out.as_bytes(), b"", Some(0));
        assert!(r.changed && !r.failed);
        assert_eq!(r.rc, Some(0));
    }

    #[test]
    fn a_script_that_died_is_a_failure() {
        let r = interpret(Module::File, b"partial", b"sh: boom\n", Some(2));
        assert!(r.failed);
        assert_eq!(r.rc, Some(2));
        assert!(r.msg.unwrap().contains("without a result"));
    }
}
