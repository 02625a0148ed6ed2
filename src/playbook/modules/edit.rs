//! `lineinfile`, `blockinfile` and `replace`: edit a text file on the host in one round trip.
//!
//! Lines are found with `grep -n` (ERE, `-F` for literal strings), the edit is done by line
//! number with `awk` (or `sed -E` for `replace` and `backrefs`) into a temp file next to the
//! file, then the shared install step compares (`cmp`), applies mode/owner/group, keeps a
//! backup, runs `validate` on the temp file and renames it over the file. A symlinked path is edited through the link.
//! A file that `lineinfile` creates holds only the line: it is written with no search and
//! no edit, and a regular expression made of ordinary characters only (`plain_ere`) is
//! not sent to `grep` for a validity check, so creating a file runs 2 programs on the node.
//!
//! Regular expressions are written in Python syntax in playbooks; they are translated to GNU
//! ERE on the controller ([`py_to_ere`]): `\d`/`\D` become `[0-9]`/`[^0-9]`, `\w \W \s \S \b
//! \B` are kept (GNU grep and sed know them), escaped punctuation becomes literal, and
//! bracket expressions are rewritten. Refused with a clear error: `(?...)` groups
//! (non-capturing, named, lookarounds, inline flags), lazy quantifiers (`*?`, `+?`, `??`),
//! `\A \Z \z \x \u \N` escapes and patterns spanning lines (`\n`). Matching is line by line
//! and POSIX leftmost-longest rather than Python's leftmost-first, which only matters for
//! which text an alternation captures.
//!
//! Differences from Ansible: awk writes a final newline after the last line of an edited
//! file; `lineinfile` without a match for `regexp` leaves the file alone when the exact
//! line is already present; `line` and `search_string` cannot contain newlines; `replace`
//! refuses `after`/`before`; `unsafe_writes`, `firstmatch` for blockinfile,
//! `append_newline`/`prepend_newline` are not supported.

use serde_json::{Map, Value, json};

use super::fsutil::{
    Attrs, Install, Source, fail, install_into, lib, new_tmp, open_json, parse_validate, path_arg,
    probe_into, sha256_hex,
};
use super::sh::{arg_bool, arg_str, known_args, prelude, q, result_static};
use super::{ArgError, Flags, RemoteStep};
use crate::playbook::model::Module;

/// The delimiter of generated sed `s` commands: a byte no playbook regex contains.
const DELIM: char = '\u{1}';

/// Translates a Python regular expression into GNU ERE (for `grep -E` and `sed -E`).
pub fn py_to_ere(module: Module, key: &str, re: &str) -> Result<String, ArgError> {
    let err = |what: &str| {
        ArgError::new(
            module,
            format!(
                "`{key}` {re:?}: {what} is not supported (patterns are matched as POSIX extended regular expressions, line by line)"
            ),
        )
    };
    if re.is_empty() {
        return Err(ArgError::new(module, format!("`{key}` is empty")));
    }
    if re.contains(['\n', DELIM]) {
        return Err(err("a newline"));
    }
    let chars: Vec<char> = re.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut after_quant = false;
    while i < chars.len() {
        let c = chars[i];
        let mut quant = false;
        match c {
            '\\' => {
                let n = *chars
                    .get(i + 1)
                    .ok_or_else(|| err("a trailing backslash"))?;
                i += 1;
                match n {
                    'd' => out.push_str("[0-9]"),
                    'D' => out.push_str("[^0-9]"),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'n' => return Err(err("`\\n` (a pattern spanning lines)")),
                    // Kept: GNU extensions (\w \s \b), backreferences, escaped specials.
                    'w'
                    | 'W'
                    | 's'
                    | 'S'
                    | 'b'
                    | 'B'
                    | '1'..='9'
                    | '.'
                    | '['
                    | ']'
                    | '('
                    | ')'
                    | '*'
                    | '+'
                    | '?'
                    | '{'
                    | '}'
                    | '|'
                    | '^'
                    | '$'
                    | '\\' => {
                        out.push('\\');
                        out.push(n);
                    }
                    c if c.is_ascii_alphanumeric() => {
                        return Err(err(&format!("the escape `\\{c}`")));
                    }
                    c => out.push(c),
                }
            }
            '(' if chars.get(i + 1) == Some(&'?') => {
                return Err(err(
                    "a `(?...)` group (non-capturing, named, lookaround or flags)",
                ));
            }
            '?' if after_quant => return Err(err("a lazy quantifier")),
            '*' | '+' | '?' | '}' => {
                out.push(c);
                quant = true;
            }
            '[' => {
                i = bracket(&chars, i, &mut out).map_err(|w| err(&w))?;
            }
            c => out.push(c),
        }
        after_quant = quant;
        i += 1;
    }
    Ok(out)
}

/// Rewrites the Python bracket expression starting at `chars[start]` (`[`) as POSIX;
/// returns the index of its closing `]`.
fn bracket(chars: &[char], start: usize, out: &mut String) -> Result<usize, String> {
    let mut i = start + 1;
    let mut neg = false;
    if chars.get(i) == Some(&'^') {
        neg = true;
        i += 1;
    }
    let (mut rb, mut dash, mut body) = (false, false, String::new());
    let mut first = true;
    loop {
        let c = *chars.get(i).ok_or("an unclosed `[`")?;
        match c {
            ']' if first => rb = true,
            ']' => break,
            '\\' => {
                let n = *chars.get(i + 1).ok_or("a trailing backslash")?;
                i += 1;
                match n {
                    'd' => body.push_str("0-9"),
                    's' => body.push_str("[:space:]"),
                    'w' => body.push_str("[:alnum:]_"),
                    ']' => rb = true,
                    '-' => dash = true,
                    't' => body.push('\t'),
                    'n' | 'r' => {}
                    c if c.is_ascii_alphanumeric() => {
                        return Err(format!("the escape `\\{c}` in a bracket expression"));
                    }
                    c => body.push(c),
                }
            }
            c => body.push(c),
        }
        first = false;
        i += 1;
    }
    out.push('[');
    if neg {
        out.push('^');
    }
    if rb {
        out.push(']');
    }
    out.push_str(&body);
    if dash {
        out.push('-');
    }
    out.push(']');
    Ok(i)
}

/// Translates a Python replacement (`\1`, `\g<1>`, `\n`, `\t`, `\\`) into a GNU sed one;
/// group numbers are raised by `shift`.
fn py_repl_to_sed(module: Module, key: &str, r: &str, shift: u32) -> Result<String, ArgError> {
    let err = |what: &str| ArgError::new(module, format!("`{key}`: {what} is not supported"));
    if r.contains(DELIM) {
        return Err(err("a \\x01 byte"));
    }
    let chars: Vec<char> = r.chars().collect();
    let mut out = String::new();
    let group = |n: u32, out: &mut String| -> Result<(), ArgError> {
        if n + shift > 9 {
            return Err(err("a group number above 9"));
        }
        out.push('\\');
        out.push_str(&(n + shift).to_string());
        Ok(())
    };
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let n = chars.get(i + 1).copied().unwrap_or('\\');
                i += 1;
                match n {
                    d @ '0'..='9' => group(d.to_digit(10).unwrap_or(0), &mut out)?,
                    'g' => {
                        let rest: String = chars[i + 1..].iter().collect();
                        let end = rest.find('>').ok_or_else(|| err("an unclosed `\\g<`"))?;
                        let name = rest.get(1..end).unwrap_or("");
                        let n: u32 = name.parse().map_err(|_| err("a named group reference"))?;
                        group(n, &mut out)?;
                        i += end + 1;
                    }
                    'n' => out.push_str("\\n"),
                    't' => out.push('\t'),
                    '\\' => out.push_str("\\\\"),
                    c => {
                        out.push_str("\\\\");
                        push_sed_lit(c, &mut out);
                    }
                }
            }
            c => push_sed_lit(c, &mut out),
        }
        i += 1;
    }
    Ok(out)
}

fn push_sed_lit(c: char, out: &mut String) {
    match c {
        '&' => out.push_str("\\&"),
        '\n' => out.push_str("\\n"),
        c => out.push(c),
    }
}

/// The awk program that edits by line number: lines `a..b` are dropped, the text in
/// `$KAMO_T` is printed before line `i` (`-1`: at the end; `0`: nowhere).
const AWK_EDIT: &str = "BEGIN { t = ENVIRON[\"KAMO_T\"] } NR == i { print t } NR >= a && NR <= b { next } { print } END { if (i == -1 || (i > NR && i > 0)) print t }";

fn awk_edit(text_expr: &str, a: &str, b: &str, i: &str) -> String {
    format!(
        "KAMO_T={text_expr} awk -v a=\"{a}\" -v b=\"{b}\" -v i=\"{i}\" {} < \"$kamo_src\" > \"$kamo_tmp\" || {}\n",
        q(AWK_EDIT),
        WRITE_FAILED
    )
}

/// Writing the temp file failed (disk full...): stop before anything is replaced.
const WRITE_FAILED: &str = "kamo_fail '{\"failed\":true,\"msg\":\"cannot write the edited copy (disk full?); nothing was changed\"}'";

/// Common arguments and the start of an edit script: `d`, `kamo_src` (the file or
/// /dev/null when it will be created), the temp file.
struct Common {
    path: String,
    validate: Option<String>,
    attrs: Attrs,
    backup: bool,
    present: bool,
}

fn common(m: Module, args: &Map<String, Value>) -> Result<Common, ArgError> {
    let path = path_arg(m, args, &["path", "dest", "name"])?;
    let present = match arg_str(m, args, "state")?.as_deref() {
        None | Some("present") => true,
        Some("absent") => false,
        Some(o) => {
            return Err(ArgError::new(
                m,
                format!("invalid state {o:?}: present or absent"),
            ));
        }
    };
    Ok(Common {
        path,
        validate: parse_validate(m, args)?,
        attrs: Attrs::parse(m, args)?,
        backup: arg_bool(m, args, "backup", false)?,
        present,
    })
}

/// Script start: resolves a link, handles a missing file (`create` or error or no-op for
/// absent), validates the regexes given (grep exit status 2), makes the temp file.
fn start(m: Module, c: &Common, create: bool, flags: Flags, regexes: &[&str]) -> String {
    let mut s = prelude();
    s.push_str(lib());
    s.push_str(&format!("d={}\nkamo_lf='\n'\n", q(&c.path)));
    let mut fields = Map::new();
    fields.insert("path".into(), Value::from(c.path.clone()));
    s.push_str(&open_json(&fields));
    for re in regexes.iter().filter(|re| !plain_ere(re)) {
        s.push_str(&format!(
            "grep -E -e {} </dev/null >/dev/null 2>&1; [ $? -le 1 ] || {}\n",
            q(re),
            fail(
                m,
                &format!("invalid regular expression (as POSIX ERE) {re}")
            )
        ));
    }
    s.push_str("if [ -L \"$d\" ]; then d=$(readlink -f -- \"$d\"); fi\nkamo_src=$d\n");
    let missing = if !c.present {
        format!(
            "{}exit 0",
            result_static(
                json!({"changed": false, "path": c.path, "msg": "file not present"})
                    .as_object()
                    .expect("object")
            )
            .replace('\n', "; ")
        )
    } else if create {
        let mut t = "kamo_src=/dev/null".to_owned();
        if !flags.check {
            t.push_str(&format!(
                "; kamo_dirof \"$d\"; [ -d \"$kamo_dn\" ] || mkdir -p -- \"$kamo_dn\" || {}",
                fail(m, &format!("cannot create the directory of {}", c.path))
            ));
        }
        t
    } else {
        fail(
            m,
            &format!("{} does not exist (use create: yes to create it)", c.path),
        )
    };
    s.push_str(&format!("if [ ! -e \"$d\" ]; then {missing}; fi\n"));
    s.push_str(&format!(
        "if [ -e \"$d\" ] && [ ! -f \"$d\" ]; then {}; fi\n",
        fail(m, &format!("{} is not a regular file", c.path))
    ));
    probe_into(&mut s, &install_opts(m, c, flags));
    s.push_str(&new_tmp(m, flags));
    s
}

fn install_opts(m: Module, c: &Common, flags: Flags) -> Install<'_> {
    Install {
        module: m,
        attrs: &c.attrs,
        backup: c.backup,
        shown_dest: &c.path,
        validate: c.validate.clone(),
        flags,
        source: Source::Host,
    }
}

fn finish(m: Module, c: &Common, flags: Flags, mut s: String) -> String {
    install_into(&mut s, &install_opts(m, c, flags));
    s
}

/// Whether `re` is certainly a valid ERE, so the host need not run `grep` to find out:
/// ASCII ordinary characters, `.`, escaped punctuation, `^` first, `$` last, and `*`, `+`,
/// `?` right after one of those. Anything else (brackets, groups, braces, alternation,
/// `\b`-like escapes) is checked by the host's `grep`, as before.
fn plain_ere(re: &str) -> bool {
    let b = re.as_bytes();
    let mut i = 0;
    let mut atom = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'^' if i == 0 => atom = false,
            b'$' if i + 1 == b.len() => atom = false,
            b'*' | b'+' | b'?' if atom => atom = false,
            b'\\' if i + 1 < b.len() && b".[]()*+?{}|^$\\".contains(&b[i + 1]) => {
                i += 1;
                atom = true;
            }
            b'.' => atom = true,
            c if c.is_ascii_alphanumeric() || b" _=:/,-@%#!~<>\"'&;".contains(&c) => atom = true,
            _ => return false,
        }
        i += 1;
    }
    true
}

/// sh setting `var` to the number of the last (or first) line matching, or empty.
fn find_line(var: &str, grep_opts: &str, pat: &str, first: bool) -> String {
    // `grep -m 1` stops at the first match; the line number is cut off in the shell. Fewer
    // processes: each costs about a millisecond on the node, per task and host.
    if first {
        format!(
            "{var}=$(grep -m 1 -na{grep_opts} -e {} -- \"$kamo_src\"); {var}=${{{var}%%:*}}\n",
            q(pat)
        )
    } else {
        // The last line of grep's output is cut out in the shell (no `tail`): grep's lines
        // hold no newline.
        format!(
            "{var}=$(grep -na{grep_opts} -e {} -- \"$kamo_src\"); {var}=${{{var}##*\"$kamo_lf\"}}; {var}=${{{var}%%:*}}\n",
            q(pat)
        )
    }
}

/// The arguments `lineinfile` takes.
const LINEINFILE_ARGS: &[&str] = &[
    "path",
    "dest",
    "name",
    "line",
    "value",
    "regexp",
    "search_string",
    "state",
    "insertafter",
    "insertbefore",
    "firstmatch",
    "create",
    "backrefs",
    "backup",
    "mode",
    "owner",
    "group",
    "validate",
];

/// The ones a `lineinfile` done over SFTP ([`lineinfile_put`]) does not do: a task with any
/// of them runs its script. An argument added to [`LINEINFILE_ARGS`] goes here unless
/// `lineinfile_put` does what the script does with it.
const LINEINFILE_NOT_OVER_SFTP: &[&str] = &["backrefs", "backup", "owner", "group", "validate"];

#[allow(clippy::too_many_lines)]
pub fn lineinfile(args: &Map<String, Value>, flags: Flags) -> Result<RemoteStep, ArgError> {
    let m = Module::Lineinfile;
    known_args(m, args, LINEINFILE_ARGS)?;
    let c = common(m, args)?;
    let line = arg_str(m, args, "line")?.or(arg_str(m, args, "value")?);
    let regexp = arg_str(m, args, "regexp")?
        .map(|r| py_to_ere(m, "regexp", &r).map(|e| (r, e)))
        .transpose()?;
    let search = arg_str(m, args, "search_string")?;
    let create = arg_bool(m, args, "create", false)?;
    let backrefs = arg_bool(m, args, "backrefs", false)?;
    let firstmatch = arg_bool(m, args, "firstmatch", false)?;
    if regexp.is_some() && search.is_some() {
        return Err(ArgError::new(
            m,
            "`regexp` and `search_string` are exclusive",
        ));
    }
    if let Some(s) = &search
        && (s.is_empty() || s.contains('\n'))
    {
        return Err(ArgError::new(
            m,
            "`search_string` must be one non-empty line",
        ));
    }
    let ia = arg_str(m, args, "insertafter")?;
    let ib = arg_str(m, args, "insertbefore")?;
    if ia.is_some() && ib.is_some() {
        return Err(ArgError::new(
            m,
            "`insertafter` and `insertbefore` are exclusive",
        ));
    }
    if backrefs && regexp.is_none() {
        return Err(ArgError::new(m, "`backrefs` requires `regexp`"));
    }
    let ere = |k: &str, v: &Option<String>| -> Result<Option<String>, ArgError> {
        match v.as_deref() {
            None | Some("EOF" | "BOF") => Ok(None),
            Some(r) => py_to_ere(m, k, r).map(Some),
        }
    };
    let after_re = ere("insertafter", &ia)?;
    let before_re = ere("insertbefore", &ib)?;
    let how = match (&regexp, &search) {
        (Some((r, _)), _) => format!(" (regexp {r})"),
        (_, Some(s)) => format!(" (search string {s})"),
        _ => String::new(),
    };
    let mut regexes: Vec<&str> = Vec::new();
    if let Some((_, e)) = &regexp {
        regexes.push(e);
    }
    regexes.extend(after_re.iter().map(String::as_str));
    regexes.extend(before_re.iter().map(String::as_str));
    let mut s = start(m, &c, create, flags, &regexes);
    let summary;
    if c.present {
        let line = line.ok_or_else(|| ArgError::new(m, "`line` is required with state=present"))?;
        if line.contains('\n') {
            return Err(ArgError::new(m, "`line` must be a single line"));
        }
        summary = format!("ensure line `{line}` in {}{how}", c.path);
        s.push_str(&format!("kamo_line={}\n", q(&line)));
        // A file that is created holds just the line (or nothing, with backrefs): no
        // search, no edit, and the controller knows its digest and size.
        let created = if backrefs {
            String::new()
        } else {
            format!("{line}\n")
        };
        s.push_str("if [ \"$kamo_src\" = /dev/null ]; then\n");
        if !backrefs {
            s.push_str(&format!(
                "printf '%s\\n' \"$kamo_line\" > \"$kamo_tmp\" || {WRITE_FAILED}\n"
            ));
        }
        s.push_str(&format!(
            "kamo_sum={}; kamo_size={}\nelse\n",
            sha256_hex(created.as_bytes()),
            created.len()
        ));
        s.push_str(&find_line("kamo_e", "xF", &line, true));
        match (&regexp, &search) {
            (Some((_, e)), _) => s.push_str(&find_line("kamo_m", "E", e, false)),
            (_, Some(st)) => s.push_str(&find_line("kamo_m", "F", st, false)),
            _ => s.push_str("kamo_m=$kamo_e\n"),
        }
        s.push_str("if [ -n \"$kamo_m\" ]; then\n");
        if backrefs {
            let (_, e) = regexp.as_ref().expect("checked");
            let wrapped = format!("({e})");
            let repl = py_repl_to_sed(m, "line", &line, 1)?;
            let d = DELIM;
            let script = format!(
                "s{d}{wrapped}{d}\\n&{d};s{d}^[^\\n]*\\n{d}{d};s{d}^{wrapped}.*${d}{repl}{d}"
            );
            s.push_str(&format!(
                "kamo_line=$(sed -n \"${{kamo_m}}p\" -- \"$kamo_src\" | sed -E -e {})\n",
                q(&script)
            ));
        }
        s.push_str(&awk_edit("\"$kamo_line\"", "$kamo_m", "$kamo_m", "$kamo_m"));
        // Nothing to edit in an existing file: it is unchanged (no copy to compare).
        if backrefs {
            s.push_str("else content_changed=0\n");
        } else {
            s.push_str("elif [ -n \"$kamo_e\" ]; then content_changed=0\nelse\n");
            s.push_str(&insert_position(
                ia.as_deref(),
                ib.as_deref(),
                after_re.as_deref(),
                before_re.as_deref(),
                firstmatch,
            ));
            s.push_str(&awk_edit("\"$kamo_line\"", "0", "0", "$kamo_i"));
        }
        s.push_str("fi\nfi\n");
    } else {
        let (opts, pat, what) = match (&regexp, &search, &line) {
            (Some((r, e)), _, _) => ("E", e.clone(), format!("lines matching `{r}`")),
            (_, Some(st), _) => ("F", st.clone(), format!("lines containing `{st}`")),
            (_, _, Some(l)) => ("xF", l.clone(), format!("line `{l}`")),
            _ => {
                return Err(ArgError::new(
                    m,
                    "one of `regexp`, `search_string` or `line` is required with state=absent",
                ));
            }
        };
        summary = format!("remove {what} from {}", c.path);
        s.push_str(&format!(
            "kamo_n=$(grep -ca{opts} -e {p} -- \"$kamo_src\")\nif [ \"$kamo_n\" -gt 0 ]; then grep -va{opts} -e {p} -- \"$kamo_src\" > \"$kamo_tmp\"; [ $? -le 1 ] || {WRITE_FAILED}; else cat -- \"$kamo_src\" > \"$kamo_tmp\" || {WRITE_FAILED}; fi\nkamo_j=\"$kamo_j,\\\"found\\\":$kamo_n\"\n",
            p = q(&pat)
        ));
    }
    let mut summary = vec![summary];
    if lineinfile_put(args, flags).is_some() {
        summary.push(
            "a missing file is created over SFTP when the host's sshd allows it and the task \
             does not become (lstat, a temp file written, renamed into place); else the script"
                .to_owned(),
        );
    }
    Ok(RemoteStep {
        script: finish(m, &c, flags, s),
        summary,
    })
}

/// The [`Put`](super::copy::Put) for a `lineinfile` that creates its file, when it can be
/// done over SFTP (see `engine::put`): `state: present`, `create: yes`, a `line` without
/// `backrefs`, an absolute path, an octal `mode` or none, no owner, group, backup or
/// validate, and regular expressions the script would not have to check on the host. Only a
/// file that does not exist yet is written this way (it then holds just the line, as the
/// script makes it); an existing one, a link or a missing directory goes to the script.
#[must_use]
pub fn lineinfile_put(args: &Map<String, Value>, flags: Flags) -> Option<super::copy::Put> {
    let m = Module::Lineinfile;
    let simple = |k: &String| {
        LINEINFILE_ARGS.contains(&k.as_str()) && !LINEINFILE_NOT_OVER_SFTP.contains(&k.as_str())
    };
    if flags.check || flags.diff || !args.keys().all(simple) {
        return None;
    }
    let c = common(m, args).ok()?;
    if !c.present || !arg_bool(m, args, "create", false).ok()? {
        return None;
    }
    if !c.path.starts_with('/') || c.path.ends_with('/') {
        return None;
    }
    for key in ["regexp", "insertafter", "insertbefore"] {
        match arg_str(m, args, key).ok()?.as_deref() {
            None | Some("EOF" | "BOF") => {}
            Some(r) => {
                if !plain_ere(&py_to_ere(m, key, r).ok()?) {
                    return None;
                }
            }
        }
    }
    let line = arg_str(m, args, "line")
        .ok()?
        .or(arg_str(m, args, "value").ok()?)?;
    if line.contains('\n') {
        return None;
    }
    let mode = match c.attrs.mode {
        None => None,
        Some(super::fsutil::Mode::Octal(o)) => Some(u32::from_str_radix(&o, 8).ok()?),
        Some(super::fsutil::Mode::Symbolic(_)) => return None,
    };
    let content = format!("{line}\n").into_bytes();
    Some(super::copy::Put {
        digest: sha256_hex(&content),
        dest: c.path,
        content,
        mode,
        only_new: true,
        key: "path",
    })
}

pub fn blockinfile(args: &Map<String, Value>, flags: Flags) -> Result<RemoteStep, ArgError> {
    let m = Module::Blockinfile;
    known_args(
        m,
        args,
        &[
            "path",
            "dest",
            "name",
            "block",
            "content",
            "marker",
            "marker_begin",
            "marker_end",
            "state",
            "insertafter",
            "insertbefore",
            "create",
            "backup",
            "mode",
            "owner",
            "group",
            "validate",
        ],
    )?;
    let c = common(m, args)?;
    let block = arg_str(m, args, "block")?
        .or(arg_str(m, args, "content")?)
        .unwrap_or_default();
    let marker =
        arg_str(m, args, "marker")?.unwrap_or_else(|| "# {mark} ANSIBLE MANAGED BLOCK".to_owned());
    let begin = arg_str(m, args, "marker_begin")?.unwrap_or_else(|| "BEGIN".to_owned());
    let end = arg_str(m, args, "marker_end")?.unwrap_or_else(|| "END".to_owned());
    let m0 = marker.replace("{mark}", &begin);
    let m1 = marker.replace("{mark}", &end);
    if m0 == m1 || m0.contains('\n') || m1.contains('\n') || m0.is_empty() {
        return Err(ArgError::new(
            m,
            "`marker` must be one line containing {mark}, with different begin and end",
        ));
    }
    let create = arg_bool(m, args, "create", false)?;
    let ia = arg_str(m, args, "insertafter")?;
    let ib = arg_str(m, args, "insertbefore")?;
    if ia.is_some() && ib.is_some() {
        return Err(ArgError::new(
            m,
            "`insertafter` and `insertbefore` are exclusive",
        ));
    }
    let ere = |k: &str, v: &Option<String>| -> Result<Option<String>, ArgError> {
        match v.as_deref() {
            None | Some("EOF" | "BOF") => Ok(None),
            Some(r) => py_to_ere(m, k, r).map(Some),
        }
    };
    let after_re = ere("insertafter", &ia)?;
    let before_re = ere("insertbefore", &ib)?;
    let regexes: Vec<&str> = after_re
        .iter()
        .chain(before_re.iter())
        .map(String::as_str)
        .collect();
    let mut s = start(m, &c, create, flags, &regexes);
    let body = block.strip_suffix('\n').unwrap_or(&block);
    let text = if body.is_empty() && block.is_empty() {
        format!("{m0}\n{m1}")
    } else {
        format!("{m0}\n{body}\n{m1}")
    };
    s.push_str(&find_line("kamo_a", "xF", &m0, false));
    s.push_str(&find_line("kamo_b", "xF", &m1, false));
    s.push_str("if [ -n \"$kamo_a\" ] && [ -n \"$kamo_b\" ]; then\nif [ \"$kamo_a\" -gt \"$kamo_b\" ]; then kamo_x=$kamo_a; kamo_a=$kamo_b; kamo_b=$kamo_x; fi\n");
    let summary;
    if c.present {
        let n = if body.is_empty() {
            0
        } else {
            body.lines().count()
        };
        summary = format!(
            "ensure block `{m0}` ({n} line{}) in {}",
            if n == 1 { "" } else { "s" },
            c.path
        );
        s.push_str(&awk_edit(&q(&text), "$kamo_a", "$kamo_b", "$kamo_a"));
        s.push_str("else\n");
        s.push_str(&insert_position(
            ia.as_deref(),
            ib.as_deref(),
            after_re.as_deref(),
            before_re.as_deref(),
            false,
        ));
        s.push_str(&awk_edit(&q(&text), "0", "0", "$kamo_i"));
    } else {
        summary = format!("remove block `{m0}` from {}", c.path);
        s.push_str(&awk_edit("''", "$kamo_a", "$kamo_b", "0"));
        s.push_str(&format!(
            "else\ncat -- \"$kamo_src\" > \"$kamo_tmp\" || {WRITE_FAILED}\n"
        ));
    }
    s.push_str("fi\n");
    Ok(RemoteStep {
        script: finish(m, &c, flags, s),
        summary: vec![summary],
    })
}

pub fn replace(args: &Map<String, Value>, flags: Flags) -> Result<RemoteStep, ArgError> {
    let m = Module::Replace;
    known_args(
        m,
        args,
        &[
            "path", "dest", "name", "regexp", "replace", "after", "before", "backup", "mode",
            "owner", "group", "validate",
        ],
    )?;
    if args.contains_key("after") || args.contains_key("before") {
        return Err(ArgError::new(
            m,
            "`after` and `before` are not supported; narrow `regexp` instead",
        ));
    }
    let c = common(m, args)?;
    let re = arg_str(m, args, "regexp")?
        .ok_or_else(|| ArgError::new(m, "missing required argument `regexp`"))?;
    let ere = py_to_ere(m, "regexp", &re)?;
    let rep = arg_str(m, args, "replace")?.unwrap_or_default();
    let sed_rep = py_repl_to_sed(m, "replace", &rep, 0)?;
    let d = DELIM;
    let script = format!("s{d}{ere}{d}{sed_rep}{d}g");
    let mut s = start(m, &c, false, flags, &[&ere]);
    s.push_str(&format!(
        "sed -E -e {} < \"$kamo_src\" > \"$kamo_tmp\" || {}\n",
        q(&script),
        fail(m, "sed failed")
    ));
    Ok(RemoteStep {
        script: finish(m, &c, flags, s),
        summary: vec![format!("replace `{re}` with `{rep}` in {}", c.path)],
    })
}

/// Sets `kamo_i` to the line a new line or block goes in at (`-1`: append at the end), from
/// `insertafter`/`insertbefore`: `BOF`, or the first/last line matching the regex; shared by
/// `lineinfile` and `blockinfile`.
fn insert_position(
    ia: Option<&str>,
    ib: Option<&str>,
    after_re: Option<&str>,
    before_re: Option<&str>,
    firstmatch: bool,
) -> String {
    if ia == Some("BOF") || ib == Some("BOF") {
        "kamo_i=1\n".to_owned()
    } else if let Some(r) = after_re {
        format!(
            "{}if [ -n \"$kamo_k\" ]; then kamo_i=$((kamo_k + 1)); else kamo_i=-1; fi\n",
            find_line("kamo_k", "E", r, firstmatch)
        )
    } else if let Some(r) = before_re {
        format!(
            "{}if [ -n \"$kamo_k\" ]; then kamo_i=$kamo_k; else kamo_i=-1; fi\n",
            find_line("kamo_k", "E", r, firstmatch)
        )
    } else {
        "kamo_i=-1\n".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fsutil::testing::{CHECK, DIFF, NASTY, args, mode_of, ok, run};
    use super::*;
    use std::fs;

    #[test]
    fn only_a_plain_create_of_lineinfile_goes_over_sftp() {
        let put = |a: Value| lineinfile_put(&args(a), Flags::default());
        let p = put(json!({"path": "/etc/a.conf", "regexp": "^port=", "line": "port=1", "create": true, "mode": "0600"})).unwrap();
        assert_eq!(
            (p.content.as_slice(), p.mode, p.only_new, p.key),
            (&b"port=1\n"[..], Some(0o600), true, "path")
        );
        assert_eq!(p.digest, sha256_hex(b"port=1\n"));
        for a in [
            json!({"path": "/etc/a", "line": "x"}),
            json!({"path": "etc/a", "line": "x", "create": true}),
            json!({"path": "/etc/a", "line": "x", "create": true, "state": "absent"}),
            json!({"path": "/etc/a", "regexp": "^(x)", "line": "\\1", "create": true, "backrefs": true}),
            json!({"path": "/etc/a", "regexp": "[a-z]+", "line": "x", "create": true}),
            json!({"path": "/etc/a", "line": "x", "create": true, "mode": "u=rw"}),
            json!({"path": "/etc/a", "line": "x", "create": true, "owner": "root"}),
            json!({"path": "/etc/a", "line": "x", "create": true, "validate": "true %s"}),
        ] {
            assert!(put(a.clone()).is_none(), "{a}");
        }
        let a = args(json!({"path": "/etc/a", "line": "x", "create": true}));
        assert!(lineinfile_put(&a, CHECK).is_none());
        assert!(lineinfile_put(&a, DIFF).is_none());
    }

    fn setup(content: &str) -> (tempfile::TempDir, std::path::PathBuf, String) {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join(NASTY);
        fs::create_dir(&base).unwrap();
        let f = base.join("conf 'x' $(y)");
        fs::write(&f, content).unwrap();
        let p = f.display().to_string();
        (dir, f, p)
    }

    #[test]
    fn regex_translation() {
        let t = |r: &str| py_to_ere(Module::Replace, "regexp", r);
        assert_eq!(t(r"^\d+\.\d+$").unwrap(), r"^[0-9]+\.[0-9]+$");
        assert_eq!(t(r"a\-b\/c\#").unwrap(), "a-b/c#");
        assert_eq!(t(r"[\d\]\-x]").unwrap(), "[]0-9x-]");
        assert_eq!(t(r"\s*\w{2,3}").unwrap(), r"\s*\w{2,3}");
        for bad in [r"(?i)x", r"a(?=b)", r"a*?", r"a+?", r"\Ax", r"a\nb", ""] {
            assert!(t(bad).is_err(), "{bad}");
        }
        assert_eq!(
            py_repl_to_sed(Module::Replace, "r", r"\1-\g<2>&\n", 0).unwrap(),
            r"\1-\2\&\n"
        );
    }

    #[test]
    fn lineinfile_replace_insert_absent() {
        let (dir, f, p) = setup("a=1\nfoo=old\nb=2\nfoo=last\n");
        let a = json!({"path": p, "regexp": "^foo=", "line": "foo=$(new) 'q'"});
        let r = ok(Module::Lineinfile, &a, CHECK);
        assert!(r.changed);
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            "a=1\nfoo=old\nb=2\nfoo=last\n"
        );
        let r = ok(Module::Lineinfile, &a, DIFF);
        assert!(r.changed);
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            "a=1\nfoo=old\nb=2\nfoo=$(new) 'q'\n"
        );
        assert_eq!(r.data["diff"]["before"], "a=1\nfoo=old\nb=2\nfoo=last\n");
        assert!(!ok(Module::Lineinfile, &a, Flags::default()).changed);
        // Insert after a regex, before a regex, at BOF; exact line without regexp.
        let a = json!({"path": p, "line": "after-a", "insertafter": r"^a=\d"});
        assert!(ok(Module::Lineinfile, &a, Flags::default()).changed);
        assert!(!ok(Module::Lineinfile, &a, Flags::default()).changed);
        let a = json!({"path": p, "line": "before-b", "insertbefore": "^b="});
        assert!(ok(Module::Lineinfile, &a, Flags::default()).changed);
        let a = json!({"path": p, "line": "top", "insertbefore": "BOF"});
        assert!(ok(Module::Lineinfile, &a, Flags::default()).changed);
        let a = json!({"path": p, "line": "end"});
        assert!(ok(Module::Lineinfile, &a, Flags::default()).changed);
        assert!(!ok(Module::Lineinfile, &a, Flags::default()).changed);
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            "top\na=1\nafter-a\nfoo=old\nbefore-b\nb=2\nfoo=$(new) 'q'\nend\n"
        );
        // Absent.
        let a = json!({"path": p, "regexp": "^foo", "state": "absent"});
        let r = ok(Module::Lineinfile, &a, Flags::default());
        assert!(r.changed);
        assert_eq!(r.data["found"], 2);
        assert!(!ok(Module::Lineinfile, &a, Flags::default()).changed);
        assert!(!fs::read_to_string(&f).unwrap().contains("foo"));
        // Backrefs.
        fs::write(&f, "port = 80\n").unwrap();
        let a = json!({"path": p, "regexp": r"^port = (\d+)$", "line": r"port = \1\1", "backrefs": true});
        assert!(ok(Module::Lineinfile, &a, Flags::default()).changed);
        assert_eq!(fs::read_to_string(&f).unwrap(), "port = 8080\n");
        assert!(!dir.path().join("pwned").exists());
    }

    #[test]
    fn lineinfile_create_mode_and_errors() {
        let (dir, _f, _p) = setup("");
        let n = dir.path().join("new dir").join("file");
        let a =
            json!({"path": n.display().to_string(), "line": "x=1", "create": true, "mode": "0600"});
        assert!(ok(Module::Lineinfile, &a, CHECK).changed);
        assert!(!n.exists());
        assert!(ok(Module::Lineinfile, &a, Flags::default()).changed);
        assert_eq!(fs::read_to_string(&n).unwrap(), "x=1\n");
        assert_eq!(mode_of(&n), 0o600);
        assert!(!ok(Module::Lineinfile, &a, Flags::default()).changed);
        let missing = dir.path().join("missing").display().to_string();
        let r = run(
            Module::Lineinfile,
            &json!({"path": missing, "line": "x"}),
            Flags::default(),
        );
        assert!(r.failed && r.msg.clone().unwrap().contains("does not exist"));
        let r = ok(
            Module::Lineinfile,
            &json!({"path": missing, "line": "x", "state": "absent"}),
            Flags::default(),
        );
        assert!(!r.changed);
        let e = build_err(json!({"path": "/x", "line": "a", "regexp": "(?P<n>a)"}));
        assert!(e.contains("not supported"), "{e}");
        let e = build_err(json!({"path": "/x", "line": "a", "bogus": 1}));
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn summaries() {
        let s = |m: Module, a: Value| {
            super::super::build(m, &args(a), Flags::default())
                .unwrap()
                .summary
        };
        assert_eq!(
            s(
                Module::Lineinfile,
                json!({"path": "/etc/conf", "line": "foo=1", "regexp": "^foo="})
            ),
            vec!["ensure line `foo=1` in /etc/conf (regexp ^foo=)"]
        );
        assert_eq!(
            s(
                Module::Blockinfile,
                json!({"path": "/etc/b", "block": "a\nb\n"})
            ),
            vec!["ensure block `# BEGIN ANSIBLE MANAGED BLOCK` (2 lines) in /etc/b"]
        );
        assert_eq!(
            s(
                Module::Replace,
                json!({"path": "/etc/r", "regexp": "a+", "replace": "b"})
            ),
            vec!["replace `a+` with `b` in /etc/r"]
        );
    }

    fn build_err(a: Value) -> String {
        super::super::build(Module::Lineinfile, &args(a), Flags::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn blockinfile_insert_update_remove() {
        let (_dir, f, p) = setup("one\ntwo\n");
        let a = json!({"path": p, "block": "x $(y)\n'z'\n", "insertafter": "^one"});
        assert!(ok(Module::Blockinfile, &a, CHECK).changed);
        assert_eq!(fs::read_to_string(&f).unwrap(), "one\ntwo\n");
        assert!(ok(Module::Blockinfile, &a, Flags::default()).changed);
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            "one\n# BEGIN ANSIBLE MANAGED BLOCK\nx $(y)\n'z'\n# END ANSIBLE MANAGED BLOCK\ntwo\n"
        );
        assert!(!ok(Module::Blockinfile, &a, Flags::default()).changed);
        let a = json!({"path": p, "block": "new"});
        let both = Flags {
            check: true,
            diff: true,
        };
        let r = ok(Module::Blockinfile, &a, both);
        assert!(
            r.changed
                && r.data["diff"]["after"]
                    .as_str()
                    .unwrap()
                    .contains("\nnew\n")
        );
        assert!(!fs::read_to_string(&f).unwrap().contains("new"));
        let r = ok(Module::Blockinfile, &a, DIFF);
        assert!(r.changed);
        assert!(
            r.data["diff"]["after"]
                .as_str()
                .unwrap()
                .contains("\nnew\n")
        );
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            "one\n# BEGIN ANSIBLE MANAGED BLOCK\nnew\n# END ANSIBLE MANAGED BLOCK\ntwo\n"
        );
        let a = json!({"path": p, "state": "absent"});
        assert!(ok(Module::Blockinfile, &a, Flags::default()).changed);
        assert_eq!(fs::read_to_string(&f).unwrap(), "one\ntwo\n");
        assert!(!ok(Module::Blockinfile, &a, Flags::default()).changed);
        let a = json!({"path": p, "block": "b", "marker": "// {mark} kamo", "insertbefore": "BOF", "backup": true});
        let r = ok(Module::Blockinfile, &a, Flags::default());
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            "// BEGIN kamo\nb\n// END kamo\none\ntwo\n"
        );
        assert_eq!(
            fs::read_to_string(r.data["backup_file"].as_str().unwrap()).unwrap(),
            "one\ntwo\n"
        );
    }

    #[test]
    fn replace_all_occurrences() {
        let (_dir, f, p) = setup("host=a.example.com\nalias=b.example.com\n");
        let a = json!({"path": p, "regexp": r"(\w+)\.example\.com", "replace": r"\1.internal/&"});
        assert!(ok(Module::Replace, &a, CHECK).changed);
        let r = ok(Module::Replace, &a, DIFF);
        assert!(r.changed);
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            "host=a.internal/&\nalias=b.internal/&\n"
        );
        let a = json!({"path": p, "regexp": r"^host=.*$", "replace": "host=x"});
        assert!(ok(Module::Replace, &a, Flags::default()).changed);
        assert!(!ok(Module::Replace, &a, Flags::default()).changed);
        let e = super::super::build(
            Module::Replace,
            &args(json!({"path": p, "regexp": "a", "after": "b"})),
            Flags::default(),
        )
        .unwrap_err();
        assert!(e.message.contains("after"));
    }

    /// What `plain_ere` lets through unchecked, GNU grep accepts; what it sends to the host
    /// includes what grep refuses.
    #[test]
    fn plain_eres_are_ones_grep_accepts() {
        let plain = [
            "^port=",
            "^port=.*$",
            "a+b?c*",
            "",
            "^$",
            "x\\.y\\[z\\]",
            "^#?PermitRootLogin ",
            "listen 80;",
            "\\\\",
        ];
        let host = [
            "a[",
            "(x",
            "a{1",
            "*a",
            "^*",
            "x\\b",
            "a|b",
            "[[:space:]]",
            "é",
            "a**",
        ];
        for re in plain {
            assert!(plain_ere(re), "{re:?}");
        }
        for re in host {
            assert!(!plain_ere(re), "{re:?}");
        }
        for re in plain {
            let st = std::process::Command::new("grep")
                .args(["-E", "-e", re])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
                .status;
            assert!(st.code().is_some_and(|c| c <= 1), "grep refuses {re:?}");
        }
    }
}
