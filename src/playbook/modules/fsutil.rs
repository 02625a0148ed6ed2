//! Shared parts of the file modules: a small sh function library, attribute handling (mode,
//! owner, group) and the atomic "install new content" step used by `copy`, `template`,
//! `lineinfile`, `blockinfile` and `replace`.
//!
//! Result JSON is assembled in sh from a prefix built on the controller (`kamo_j`, an object
//! without its closing brace) and fields computed on the host that are JSON-safe by
//! construction: `true`/`false`, digits, hex digests, octal modes, or strings passed through
//! `kamo_jesc` (an awk JSON string encoder; file content goes through it only after a NUL
//! and UTF-8 check, so the result line always parses).

use serde_json::{Map, Value};

use super::sh::{arg_str, push_q, q};
use super::{ArgError, Flags};
use crate::playbook::model::Module;

/// Diff texts are capped at this many bytes (the last, partial line is dropped and a note
/// line is added).
pub const DIFF_CAP: usize = 65536;

/// The sh function library of the file modules; goes right after [`super::sh::prelude`].
#[must_use]
pub fn lib() -> &'static str {
    &LIB
}

/// [`lib`], built once: it is the same for every script.
static LIB: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut s = MODE_FNS.to_owned();
    s.push_str(r#"kamo_tmp=''
kamo_cleanup() { if [ -n "$kamo_tmp" ]; then rm -rf -- "$kamo_tmp"; fi; }
trap kamo_cleanup EXIT
trap 'exit 129' HUP INT TERM
kamo_fail() { kamo_result "$1"; exit 0; }
kamo_err() { kamo_fail "{\"failed\":true,\"msg\":\"$1\"}"; }
kamo_tf() { if [ "$1" = 1 ]; then kamo_tfv=true; else kamo_tfv=false; fi; }
kamo_pad() { case ${#1} in 1) kamo_pm=000$1 ;; 2) kamo_pm=00$1 ;; 3) kamo_pm=0$1 ;; *) kamo_pm=$1 ;; esac; }
kamo_dirof() {
if [ -z "$1" ]; then kamo_dn=.; return 0; fi
kamo_dn=${1%"${1##*[!/]}"}
case $kamo_dn in
'') kamo_dn=/ ;;
*/*) kamo_dn=${kamo_dn%/*}; kamo_dn=${kamo_dn%"${kamo_dn##*[!/]}"}; [ -n "$kamo_dn" ] || kamo_dn=/ ;;
*) kamo_dn=. ;;
esac
}
kamo_procinfo() {
[ -z "${kamo_um:-}" ] || return 0
if [ -r /proc/self/status ]; then while read -r kamo_k kamo_v kamo_r; do
case $kamo_k in Umask:) kamo_um=$kamo_v; break ;; esac
done < /proc/self/status; fi
[ -n "${kamo_um:-}" ] || kamo_um=$(umask)
}
kamo_oct() { kamo_o=$(($1>>9&7))$(($1>>6&7))$(($1>>3&7))$(($1&7)); }
kamo_newmode() { kamo_procinfo; kamo_oct $(($1 & ~0$kamo_um)); kamo_nm=$kamo_o; }
kamo_mktmp() {
kamo_procinfo; kamo_w=$((0$2)); umask "0$((7-(kamo_w>>6&7)))$((7-(kamo_w>>3&7)))$((7-(kamo_w&7)))"
kamo_n=0; kamo_r=1
while [ "$kamo_n" -lt 100 ]; do
kamo_f="$1/.kamo.$$.$kamo_n"
if [ ! -e "$kamo_f" ] && [ ! -L "$kamo_f" ]; then
set -C; if true > "$kamo_f"; then kamo_r=0; fi; set +C
if [ "$kamo_r" = 0 ]; then [ -f "$kamo_f" ] && [ ! -L "$kamo_f" ] && kamo_tmp=$kamo_f || kamo_r=1; break; fi
[ -e "$kamo_f" ] || [ -L "$kamo_f" ] || break
fi
kamo_n=$((kamo_n+1))
done
umask "$kamo_um"; return "$kamo_r"
}
kamo_owner_is() { [ "$(stat -c %U -- "$1")" = "$2" ] || [ "$(stat -c %u -- "$1")" = "$2" ]; }
kamo_group_is() { [ "$(stat -c %G -- "$1")" = "$2" ] || [ "$(stat -c %g -- "$1")" = "$2" ]; }
kamo_jesc() {
  awk -v t="$1" -v nl="$2" 'function e(s,  n, i, o, k, ch, a) {
    gsub(/\\/, "&&", s)
    n = split(s, a, "\"")
    o = a[1]; for (i = 2; i <= n; i++) o = o "\\\"" a[i]
    for (ch in c) while ((k = index(o, ch)) > 0) o = substr(o, 1, k - 1) c[ch] substr(o, k + 1)
    return o
  }
  BEGIN { for (i = 1; i < 32; i++) c[sprintf("%c", i)] = sprintf("\\u%04x", i); printf "\"" }
  NR > 1 { printf "%s\\n", e(p) }
  { p = $0 }
  END { if (NR > 0) { if (t == 1) printf "[... truncated at 64 KiB]"; else { printf "%s", e(p); if (nl == 1) printf "\\n" } } printf "\"" }'
}
kamo_jsv() {
  case $1 in *[!A-Za-z0-9/._,:@%+=-]*) kamo_js=$(kamo_jstr "$1") ;; *) kamo_js="\"$1\"" ;; esac
}
kamo_jstr() {
  case $1 in *[!A-Za-z0-9/._,:@%+=-]*) ;; *) printf '"%s"' "$1"; return 0 ;; esac
  if command -v iconv >/dev/null 2>&1 && ! printf '%s' "$1" | iconv -f UTF-8 -t UTF-8 >/dev/null 2>&1; then printf '"(not UTF-8)"'
  else printf '%s' "$1" | kamo_jesc 0 0; fi
}
kamo_jtext() {
  if [ ! -f "$1" ]; then printf '""'; return 0; fi
  if ! tr -d '\000' < "$1" | cmp -s - "$1"; then printf '"(binary content not shown)"'; return 0; fi
  kamo_t=0; kamo_nl=1
  if [ "$(stat -c %s -- "$1")" -gt 65536 ]; then kamo_t=1
  elif [ -n "$(tail -c 1 -- "$1")" ]; then kamo_nl=0; fi
  if command -v iconv >/dev/null 2>&1 && ! { if [ "$kamo_t" = 1 ]; then head -c 65536 -- "$1" | sed '$d'; else cat -- "$1"; fi; } | iconv -f UTF-8 -t UTF-8 >/dev/null 2>&1; then
    printf '"(binary content not shown)"'; return 0
  fi
  head -c 65536 -- "$1" | kamo_jesc "$kamo_t" "$kamo_nl"
}
"#);
    s
});

/// The library cut to what a script uses: its statements, and the functions the script's
/// body (after the library) names, with the functions those name. Why: a script of more
/// than 4 KiB costs the node one more process per task (dash writes a longer
/// here-document, as the task shell feeds scripts, from a forked child), and most scripts
/// use a few of the library's functions. A script without the library is returned as is.
#[must_use]
pub fn shake(script: String) -> String {
    let lib = lib();
    let Some(at) = script.find(lib) else {
        return script;
    };
    let parts = &*LIB_PARTS;
    let body = &script[at + lib.len()..];
    let mut want: Vec<&str> = Vec::new();
    let add = |names: &mut dyn Iterator<Item = &'static str>, want: &mut Vec<&str>| {
        for n in names {
            if !want.contains(&n) {
                want.push(n);
            }
        }
    };
    for p in parts.iter().filter(|p| p.name.is_none()) {
        add(&mut p.uses.iter().copied(), &mut want);
    }
    let mut names = kamo_words(body).filter_map(|w| {
        parts
            .iter()
            .find(|p| p.name == Some(w))
            .and_then(|p| p.name)
    });
    add(&mut names, &mut want);
    // Close over what the wanted functions name (the library has no deep chains).
    let mut i = 0;
    while i < want.len() {
        if let Some(p) = parts.iter().find(|p| p.name == Some(want[i])) {
            add(&mut p.uses.iter().copied(), &mut want);
        }
        i += 1;
    }
    let mut out = String::with_capacity(script.len());
    out.push_str(&script[..at]);
    for p in parts {
        if p.name.is_none_or(|n| want.contains(&n)) {
            out.push_str(p.text);
        }
    }
    out.push_str(body);
    out
}

/// One top-level piece of the library: a function (`name`) or statements (`None`), and the
/// library functions it names.
struct LibPart {
    name: Option<&'static str>,
    text: &'static str,
    uses: Vec<&'static str>,
}

/// The library split into its pieces, once: a function starts at a line `kamo_X() {` and
/// ends on that line when the line ends with `}`, else at the next line that is `}`.
static LIB_PARTS: std::sync::LazyLock<Vec<LibPart>> = std::sync::LazyLock::new(|| {
    let text: &'static str = lib();
    let mut parts: Vec<(Option<&'static str>, &'static str)> = Vec::new();
    let mut pos = 0;
    let mut stmt_start: Option<usize> = None;
    while pos < text.len() {
        let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i + 1);
        let line = &text[pos..end];
        let fname = line
            .strip_prefix("kamo_")
            .and_then(|r| r.find("() {").map(|i| &text[pos..pos + 5 + i]));
        if let Some(name) = fname {
            if let Some(st) = stmt_start.take() {
                parts.push((None, &text[st..pos]));
            }
            let mut fend = end;
            if !line.trim_end().ends_with('}') {
                while fend < text.len() {
                    let e = text[fend..].find('\n').map_or(text.len(), |i| fend + i + 1);
                    let l = &text[fend..e];
                    fend = e;
                    if l.trim_end() == "}" {
                        break;
                    }
                }
            }
            parts.push((Some(name), &text[pos..fend]));
            pos = fend;
        } else {
            stmt_start.get_or_insert(pos);
            pos = end;
        }
    }
    if let Some(st) = stmt_start {
        parts.push((None, &text[st..]));
    }
    let names: Vec<&'static str> = parts.iter().filter_map(|p| p.0).collect();
    parts
        .into_iter()
        .map(|(name, text)| LibPart {
            name,
            text,
            uses: kamo_words(text)
                .filter(|w| Some(*w) != name)
                .filter_map(|w| names.iter().find(|n| **n == w).copied())
                .collect(),
        })
        .collect()
});

/// The `kamo_…` words of a text (identifiers starting with `kamo_`).
fn kamo_words(text: &str) -> impl Iterator<Item = &str> {
    let b = text.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    text.match_indices("kamo_").filter_map(move |(i, _)| {
        if i > 0 && ident(b[i - 1]) {
            return None;
        }
        let len = b[i..].iter().take_while(|c| ident(**c)).count();
        Some(&text[i..i + len])
    })
}

/// `kamo_mode PATH` (4-digit octal) and `kamo_symmode BASE f|d SYMBOLIC` (the octal mode a
/// symbolic chmod gives, tried on a scratch file); also used inside `find -exec sh -c`.
pub const MODE_FNS: &str = r#"kamo_mode() { printf '%04o' "0$(stat -c %a -- "$1")"; }
kamo_symmode() {
  if [ "$2" = d ]; then kamo_s=$(mktemp -d) || return 1; else kamo_s=$(mktemp) || return 1; fi
  if chmod -- "$1" "$kamo_s" 2>/dev/null && chmod -- "$3" "$kamo_s" 2>/dev/null; then kamo_mode "$kamo_s"; kamo_r=$?; else kamo_r=1; fi
  rm -rf -- "$kamo_s"; return "$kamo_r"
}
"#;

/// `kamo_err` (`kamo_fail` with a failed result whose `msg` is the argument, already
/// JSON-escaped) with a message known on the controller.
#[must_use]
pub fn fail(module: Module, msg: &str) -> String {
    let mut s = String::with_capacity(msg.len() + 64);
    push_fail(&mut s, module, msg);
    s
}

/// Appends [`fail`]`(module, msg)` to `s`.
pub fn push_fail(s: &mut String, module: Module, msg: &str) {
    // Built as text, not through a `json!` map: scripts hold many of these, and a 1,000-host
    // plan builds 50,000 scripts. Only the message travels (the JSON around it is
    // `kamo_err`'s): scripts stay short, see `shake`.
    // Most messages need no JSON escape and no shell quoting beyond single quotes: then the
    // text is pasted as is (the same bytes `serde_json` and `q` would give).
    if !msg
        .bytes()
        .any(|b| b < 0x20 || matches!(b, b'"' | b'\\' | b'\'' | b'^'))
    {
        s.push_str("kamo_err '");
        s.push_str(module.name());
        s.push_str(": ");
        s.push_str(msg);
        s.push('\'');
        return;
    }
    let text = serde_json::to_string(&format!("{}: {msg}", module.name())).unwrap_or_default();
    s.push_str("kamo_err ");
    push_q(s, &text[1..text.len() - 1]);
}

/// Sets `kamo_j` to the JSON object `fields` without its closing brace; `fields` must not be
/// empty, so later fields are appended as `,"key":value`.
#[must_use]
pub fn open_json(fields: &Map<String, Value>) -> String {
    let mut s = Value::Object(fields.clone()).to_string();
    s.pop();
    format!("kamo_j={}\n", q(&s))
}

/// A JSON string for a value known on the controller.
#[must_use]
pub fn js(s: &str) -> String {
    Value::from(s).to_string()
}

/// A mode as written in a playbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Four octal digits, e.g. `0644`.
    Octal(String),
    /// A chmod symbolic mode, e.g. `u=rw,g=r,o=r`, applied with chmod.
    Symbolic(String),
}

impl Mode {
    #[must_use]
    pub fn shown(&self) -> &str {
        match self {
            Mode::Octal(s) | Mode::Symbolic(s) => s,
        }
    }

    /// sh that sets `want_mode` from `$kamo_base` (the current or default octal mode);
    /// `kind` is `f` or `d` (how `X` applies).
    #[must_use]
    pub fn want_sh(&self, module: Module, kind: &str) -> String {
        match self {
            Mode::Octal(m) => format!("want_mode={m}\n"),
            Mode::Symbolic(m) => format!(
                "want_mode=$(kamo_symmode \"$kamo_base\" {kind} {}) || {}\n",
                q(m),
                fail(module, &format!("invalid mode {m}"))
            ),
        }
    }
}

/// Reads `mode`: octal (`"0644"`, `"644"`, or a YAML number whose digits are octal, as
/// `mode: 0644` parses to 644) or symbolic (`u=rw,g=r,o=r`, `a+x`, `u+X`).
pub fn parse_mode(module: Module, args: &Map<String, Value>) -> Result<Option<Mode>, ArgError> {
    let Some(raw) = arg_str(module, args, "mode")? else {
        return Ok(None);
    };
    let m = raw.trim();
    let bad = || {
        ArgError::new(
            module,
            format!(
                "invalid mode {raw:?}: use octal digits as a quoted string (\"0644\") or a \
                 symbolic mode (\"u=rw,g=r,o=r\")"
            ),
        )
    };
    if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) {
        if m.len() > 5 || !m.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(bad());
        }
        let n = u32::from_str_radix(m, 8).map_err(|_| bad())?;
        if n > 0o7777 {
            return Err(bad());
        }
        return Ok(Some(Mode::Octal(format!("{n:04o}"))));
    }
    let clause_ok = |c: &str| {
        let who_end = c.find(['+', '-', '=']);
        match who_end {
            Some(i) => {
                c[..i].bytes().all(|b| b"ugoa".contains(&b))
                    && c[i..].bytes().all(|b| b"+-=rwxXstugo".contains(&b))
                    && !c[i..].is_empty()
            }
            None => false,
        }
    };
    if m.split(',').all(clause_ok) {
        Ok(Some(Mode::Symbolic(m.to_owned())))
    } else {
        Err(bad())
    }
}

/// `mode`, `owner`, `group` of a task.
#[derive(Debug, Clone, Default)]
pub struct Attrs {
    pub mode: Option<Mode>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

impl Attrs {
    pub fn parse(module: Module, args: &Map<String, Value>) -> Result<Self, ArgError> {
        let name = |key: &str| -> Result<Option<String>, ArgError> {
            match arg_str(module, args, key)? {
                Some(n) if n.is_empty() || n.contains([':', '\n']) => Err(ArgError::new(
                    module,
                    format!("invalid {key} {n:?}: a user or group name or a numeric id"),
                )),
                other => Ok(other),
            }
        };
        Ok(Self {
            mode: parse_mode(module, args)?,
            owner: name("owner")?,
            group: name("group")?,
        })
    }

    /// `mode 0644, owner root` (empty without attributes).
    #[must_use]
    pub fn words(&self) -> String {
        self.shown().trim_start_matches(", ").to_owned()
    }

    /// The summary suffix: `, mode 0644, owner root, group adm`.
    #[must_use]
    pub fn shown(&self) -> String {
        let mut s = String::new();
        if let Some(m) = &self.mode {
            s.push_str(&format!(", mode {}", m.shown()));
        }
        if let Some(o) = &self.owner {
            s.push_str(&format!(", owner {o}"));
        }
        if let Some(g) = &self.group {
            s.push_str(&format!(", group {g}"));
        }
        s
    }

    /// sh: `attr_changed=1` when the existing `$1`-like path `var` differs in owner/group
    /// (mode is compared by the caller through `want_mode`).
    #[must_use]
    pub fn owner_group_differ_sh(&self, var: &str) -> String {
        let mut s = String::new();
        if let Some(o) = &self.owner {
            s.push_str(&format!(
                "kamo_owner_is \"${var}\" {} || attr_changed=1\n",
                q(o)
            ));
        }
        if let Some(g) = &self.group {
            s.push_str(&format!(
                "kamo_group_is \"${var}\" {} || attr_changed=1\n",
                q(g)
            ));
        }
        s
    }

    /// sh that applies owner and group to `$var` (`-h`: to a link itself).
    #[must_use]
    pub fn chown_sh(&self, module: Module, var: &str, opts: &str) -> String {
        let mut s = String::new();
        if let Some(o) = &self.owner {
            s.push_str(&format!(
                "chown {opts}-- {} \"${var}\" || {}\n",
                q(o),
                fail(module, &format!("cannot set owner {o}"))
            ));
        }
        if let Some(g) = &self.group {
            s.push_str(&format!(
                "chgrp {opts}-- {} \"${var}\" || {}\n",
                q(g),
                fail(module, &format!("cannot set group {g}"))
            ));
        }
        s
    }
}

/// Options of the install step.
pub struct Install<'a> {
    pub module: Module,
    pub attrs: &'a Attrs,
    pub backup: bool,
    /// The destination as the playbook names it (diff headers).
    pub shown_dest: &'a str,
    /// `validate`: the command line (words already quoted, `%s` as `"$kamo_tmp"`) run
    /// on the new content before it replaces the destination.
    pub validate: Option<String>,
    pub flags: Flags,
    pub source: Source,
}

/// Where the new content comes from: what the install step has to work out on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Made on the host into `$kamo_tmp`: compared with `cmp`, its digest read there.
    Host,
    /// Known on the controller: the caller sets `content_changed` and `kamo_sum`.
    Controller,
    /// Known on the controller, but an existing destination keeps its content (`force:
    /// no`): the caller sets `content_changed`; a kept file's digest is read on the host.
    ControllerKeep,
}

/// sh that creates `kamo_tmp` for the new content, empty: next to `$d` (so `mv` is atomic),
/// or in `$TMPDIR` in check mode (nothing is created next to the destination). Runs after
/// [`probe_into`]: next to `$d` the file is made by the shell itself (`kamo_mktmp`, no
/// `mktemp` process), under a umask that gives it at most the permissions of `want_mode`,
/// so the new content is never readable by more users than the final file is.
#[must_use]
pub fn new_tmp(module: Module, flags: Flags) -> String {
    if flags.check {
        format!(
            "kamo_tmp=$(mktemp) || {}\n",
            fail(module, "cannot create a temporary file")
        )
    } else {
        format!(
            "kamo_dirof \"$d\"; kamo_mktmp \"$kamo_dn\" \"$want_mode\" || {}\n",
            fail(
                module,
                "cannot create a temporary file in the destination directory"
            )
        )
    }
}

/// The first half of the install step, before any temp file exists: `$d` is the
/// destination. Sets `exists`; refuses a destination that is not a regular file; reads the
/// destination's mode, owner ids, size (and owner names when `owner`/`group` are set) with
/// one `stat`; sets `kamo_base` (its mode, or the default mode of a new file), `want_mode`,
/// `attr_changed`, `kamo_fsize`, and clears `kamo_sum`/`kamo_size` (a caller that knows the
/// new content's digest and size sets them; [`install_into`] works them out otherwise).
pub fn probe_into(s: &mut String, o: &Install<'_>) {
    let m = o.module;
    let names = o.attrs.owner.is_some() || o.attrs.group.is_some();
    s.push_str("kamo_sum=''; kamo_size=''; kamo_fsize=''; content_changed=''\n");
    s.push_str("exists=0; if [ -e \"$d\" ]; then exists=1; [ -f \"$d\" ] || ");
    push_fail(
        s,
        m,
        &format!("{} exists and is not a regular file", o.shown_dest),
    );
    // One `stat` of the destination gives its mode, owner ids and size (and names); the
    // default mode of a new file is worked out from the umask only when no octal mode
    // replaces it.
    s.push_str("\nkamo_st=$(stat -c '%a %u:%g %s");
    if names {
        s.push_str(" %U:%G");
    }
    s.push_str("' -- \"$d\") || ");
    push_fail(
        s,
        m,
        &format!("cannot read the attributes of {}", o.shown_dest),
    );
    s.push_str("\nkamo_pad \"${kamo_st%% *}\"; kamo_base=$kamo_pm; kamo_ids=${kamo_st#* }; kamo_fsize=${kamo_ids#* }; kamo_ids=${kamo_ids%% *}\n");
    if names {
        s.push_str("kamo_names=${kamo_fsize#* }; kamo_fsize=${kamo_fsize%% *}\n");
    }
    if matches!(o.attrs.mode, Some(Mode::Octal(_))) {
        s.push_str("else kamo_base=''; fi\n");
    } else {
        s.push_str("else kamo_newmode 0666; kamo_base=$kamo_nm; fi\n");
    }
    match &o.attrs.mode {
        Some(mode) => s.push_str(&mode.want_sh(m, "f")),
        None => s.push_str("want_mode=$kamo_base\n"),
    }
    s.push_str("attr_changed=0\nif [ \"$exists\" = 1 ]; then\n[ \"$want_mode\" = \"$kamo_base\" ] || attr_changed=1\n");
    // Owner and group compared with the names and ids the one `stat` gave: a name or a
    // numeric id matches, as `kamo_owner_is`/`kamo_group_is` do with a `stat` each.
    if let Some(o) = &o.attrs.owner {
        let o = q(o);
        s.push_str(&format!(
            "case $kamo_names in {o}:*) ;; *) [ \"${{kamo_ids%%:*}}\" = {o} ] || attr_changed=1 ;; esac\n"
        ));
    }
    if let Some(g) = &o.attrs.group {
        let g = q(g);
        s.push_str(&format!(
            "[ \"${{kamo_names#*:}}\" = {g} ] || [ \"${{kamo_ids#*:}}\" = {g} ] || attr_changed=1\n"
        ));
    }
    s.push_str("fi\n");
}

/// The second half of the install step, after [`probe_into`]: `$kamo_tmp` holds the new
/// content (or, when `content_changed` is already set, it may be absent: the caller
/// compared without a temp file) and `kamo_j` the open result object. Compares content
/// (`cmp`) unless the caller did, then, unless in check mode, sets attributes on the temp
/// file, keeps a backup and moves it over `$d`, or only fixes attributes. Appends `changed`,
/// `checksum_sha256`, `size`, `mode`, `backup_file` and `diff` to `kamo_j` and prints the
/// result.
pub fn install_into(s: &mut String, o: &Install<'_>) {
    let m = o.module;
    if o.source == Source::Host {
        s.push_str("if [ -z \"${content_changed:-}\" ]; then\n");
        s.push_str(
            "content_changed=1; if [ \"$exists\" = 1 ] && cmp -s -- \"$d\" \"$kamo_tmp\"; then content_changed=0; fi\n",
        );
        s.push_str("fi\n");
    }
    s.push_str("changed=0; if [ \"$content_changed\" = 1 ] || [ \"$attr_changed\" = 1 ]; then changed=1; fi\n");
    if o.source != Source::Controller {
        s.push_str(
            "if [ \"$content_changed\" = 1 ]; then kamo_new=$kamo_tmp; else kamo_new=$d; fi\n",
        );
        s.push_str("if [ -z \"$kamo_sum\" ]; then kamo_sum=$(sha256sum < \"$kamo_new\") || ");
        push_fail(s, m, "cannot read the new content");
        s.push_str("\nkamo_sum=${kamo_sum%% *}; fi\n");
    }
    if o.flags.check {
        s.push_str("if [ \"$content_changed\" = 0 ]; then kamo_size=$kamo_fsize; elif [ -z \"$kamo_size\" ]; then kamo_size=$(stat -c %s -- \"$kamo_tmp\"); fi\n");
    } else {
        // One `stat` of the new content gives its size (when not known) and the mode and
        // owner it was made with, so that only what differs is set on it below.
        s.push_str("if [ \"$content_changed\" = 0 ]; then kamo_size=$kamo_fsize; else kamo_tst=$(stat -c '%a %u:%g %s' -- \"$kamo_tmp\") || ");
        push_fail(s, m, "cannot read the attributes of the temporary file");
        s.push_str("\n[ -n \"$kamo_size\" ] || kamo_size=${kamo_tst##* }; kamo_pad \"${kamo_tst%% *}\"; kamo_tmode=$kamo_pm; kamo_tids=${kamo_tst#* }; kamo_tids=${kamo_tids%% *}; fi\n");
    }
    s.push_str(
        "kamo_tf \"$changed\"; kamo_j=\"$kamo_j,\\\"changed\\\":$kamo_tfv,\\\"checksum_sha256\\\":\\\"$kamo_sum\\\",\\\"size\\\":$kamo_size,\\\"mode\\\":\\\"$want_mode\\\"\"\n",
    );
    if o.flags.diff {
        let head = q(&format!(
            ",\"diff\":{{\"before_header\":{h},\"after_header\":{h},\"before\":",
            h = js(o.shown_dest)
        ));
        s.push_str(&format!(
            "if [ \"$content_changed\" = 1 ]; then kamo_j=\"$kamo_j\"{head}\"$(kamo_jtext \"$d\"),\\\"after\\\":$(kamo_jtext \"$kamo_tmp\")}}\"; fi\n"
        ));
    }
    if !o.flags.check {
        s.push_str("if [ \"$changed\" = 1 ]; then\nif [ \"$content_changed\" = 1 ]; then\n");
        s.push_str("if [ \"$exists\" = 1 ] && [ \"$kamo_tids\" != \"$kamo_ids\" ]; then chown -- \"$kamo_ids\" \"$kamo_tmp\" 2>/dev/null || :; fi\n");
        s.push_str(&o.attrs.chown_sh(m, "kamo_tmp", ""));
        // The temp file has no set-id bits (see `new_tmp`), so a chown above left its mode.
        s.push_str("if [ \"$want_mode\" != \"$kamo_tmode\" ]; then chmod -- \"$want_mode\" \"$kamo_tmp\" || ");
        push_fail(s, m, "cannot set the mode");
        s.push_str("; fi\n");
        if let Some(v) = &o.validate {
            s.push_str(v);
            s.push_str(" </dev/null >&2 || ");
            push_fail(
                s,
                m,
                "validation of the new content failed (see stderr); nothing was changed",
            );
            s.push('\n');
        }
        if o.backup {
            s.push_str("if [ \"$exists\" = 1 ]; then kamo_bak=\"$d.$$.$(date +%Y-%m-%d@%H:%M:%S)~\"; cp -p -- \"$d\" \"$kamo_bak\" || ");
            push_fail(s, m, "cannot write the backup file");
            s.push_str("; kamo_j=\"$kamo_j,\\\"backup_file\\\":$(kamo_jstr \"$kamo_bak\")\"; fi\n");
        }
        s.push_str("mv -f -- \"$kamo_tmp\" \"$d\" || ");
        push_fail(s, m, &format!("cannot replace {}", o.shown_dest));
        s.push_str("\nkamo_tmp=''\nelse\n");
        s.push_str(&o.attrs.chown_sh(m, "d", ""));
        // Only what differs is set: an owner-only change runs no chmod.
        s.push_str(
            "if [ \"$want_mode\" != \"$kamo_base\" ]; then chmod -- \"$want_mode\" \"$d\" || ",
        );
        push_fail(s, m, "cannot set the mode");
        s.push_str("; fi\nfi\nfi\n");
    }
    s.push_str("kamo_result \"$kamo_j}\"\n");
}

/// `validate`: the command (Ansible runs it without a shell) as sh words, each `%s`
/// replaced by the temp file holding the new content.
pub fn parse_validate(
    module: Module,
    args: &Map<String, Value>,
) -> Result<Option<String>, ArgError> {
    let Some(v) = arg_str(module, args, "validate")? else {
        return Ok(None);
    };
    if !v.contains("%s") {
        return Err(ArgError::new(
            module,
            format!("`validate` must contain %s: {v}"),
        ));
    }
    let words = shlex::split(&v)
        .filter(|w| !w.is_empty())
        .ok_or_else(|| ArgError::new(module, format!("cannot split `validate`: {v}")))?;
    let sh_words: Vec<String> = words
        .iter()
        .map(|w| {
            w.split("%s")
                .map(|part| {
                    if part.is_empty() {
                        String::new()
                    } else {
                        q(part)
                    }
                })
                .collect::<Vec<_>>()
                .join("\"$kamo_tmp\"")
        })
        .collect();
    Ok(Some(sh_words.join(" ")))
}

/// The first of `keys` present, as a path.
pub fn path_arg(
    module: Module,
    args: &Map<String, Value>,
    keys: &[&str],
) -> Result<String, ArgError> {
    for k in keys {
        if let Some(p) = arg_str(module, args, k)? {
            if p.is_empty() {
                return Err(ArgError::new(module, format!("`{k}` is empty")));
            }
            return Ok(p);
        }
    }
    Err(ArgError::new(
        module,
        format!("missing required argument `{}`", keys[0]),
    ))
}

/// Hex sha256 of bytes.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of bytes.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
pub mod testing {
    //! Running module scripts with the local /bin/sh, as a host would.
    use serde_json::{Map, Value};

    use crate::playbook::model::Module;
    use crate::playbook::modules::{Flags, ModuleResult, build, interpret};

    #[must_use]
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
    pub const DIFF: Flags = Flags {
        check: false,
        diff: true,
    };

    #[must_use]
    pub fn run_script(script: &str) -> ModuleResult {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut c = Command::new("/bin/sh")
            .arg("-s")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = c.wait_with_output().unwrap();
        interpret(
            Module::Ping,
            &out.stdout,
            &out.stderr,
            out.status.code().map(i64::from),
        )
    }

    /// Builds and runs; panics on an argument error.
    #[must_use]
    pub fn run(module: Module, a: &Value, flags: Flags) -> ModuleResult {
        let step =
            build(module, &args(a.clone()), flags).unwrap_or_else(|e| panic!("build failed: {e}"));
        run_script(&step.script)
    }

    /// Builds and runs, expecting success; returns the result.
    #[must_use]
    pub fn ok(module: Module, a: &Value, flags: Flags) -> ModuleResult {
        let r = run(module, a, flags);
        assert!(!r.failed, "{module:?} failed: {r:?}");
        r
    }

    #[must_use]
    pub fn mode_of(p: &std::path::Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// A directory name full of shell metacharacters.
    pub const NASTY: &str = "a dir 'q' \"dq\" $(touch pwned) `x`;\nnl";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::model::Module;
    use serde_json::json;

    #[test]
    fn modes_parse() {
        let m = |v: Value| parse_mode(Module::File, &testing::args(json!({ "mode": v })));
        assert_eq!(m(json!("644")).unwrap(), Some(Mode::Octal("0644".into())));
        assert_eq!(m(json!(755)).unwrap(), Some(Mode::Octal("0755".into())));
        assert_eq!(m(json!("04755")).unwrap(), Some(Mode::Octal("4755".into())));
        assert_eq!(
            m(json!("u=rw,g=r,o=r")).unwrap(),
            Some(Mode::Symbolic("u=rw,g=r,o=r".into()))
        );
        // `mode: 0644` unquoted in YAML.
        let y: Value = serde_yaml::from_str("mode: 0644").unwrap();
        assert_eq!(
            parse_mode(Module::File, y.as_object().unwrap()).unwrap(),
            Some(Mode::Octal("0644".into())),
            "{y}"
        );
        assert!(m(json!("0999")).is_err());
        assert!(m(json!("rw-r--r--")).is_err());
        assert!(m(json!("u=rw;reboot")).is_err());
    }

    #[test]
    fn fail_fast_path_is_the_general_one() {
        for msg in [
            "cannot set the mode",
            "dest /a b/c is a directory",
            "it's",
            "a \"q\"",
            "back\\slash",
            "x^y",
            "tab\there",
            "nl\nhere",
            "é ü",
            "$(reboot) `x`",
            "",
        ] {
            let text = serde_json::to_string(&format!("copy: {msg}")).unwrap();
            let want = format!("kamo_err {}", q(&text[1..text.len() - 1]));
            assert_eq!(fail(Module::Copy, msg), want, "{msg:?}");
            // And the host prints it as the failed result with that message.
            let script = format!(
                "{}{}{}\n",
                super::super::sh::prelude(),
                lib(),
                fail(Module::Copy, msg)
            );
            let r = testing::run_script(&script);
            assert!(r.failed, "{msg:?}: {r:?}");
            assert_eq!(r.msg.as_deref(), Some(format!("copy: {msg}").as_str()));
        }
    }

    #[test]
    fn json_escaping_of_host_text() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        let text = "a\\b \"q\"\ttab\r\u{1}é\nlast";
        std::fs::write(&f, text).unwrap();
        let script = format!(
            "{}{}kamo_j='{{\"x\":1'\nkamo_j=\"$kamo_j,\\\"t\\\":$(kamo_jtext {})\"\nkamo_result \"$kamo_j}}\"\n",
            super::super::sh::prelude(),
            lib(),
            q(&f.display().to_string())
        );
        let r = testing::run_script(&script);
        assert_eq!(r.data["t"], text, "{r:?}");
        std::fs::write(&f, b"bin\0ary").unwrap();
        let r = testing::run_script(&script);
        assert_eq!(r.data["t"], "(binary content not shown)");
        std::fs::write(&f, b"bad \xff utf8\n").unwrap();
        let r = testing::run_script(&script);
        assert_eq!(r.data["t"], "(binary content not shown)");
        let big = "0123456789abcdef\n".repeat(5000);
        std::fs::write(&f, &big).unwrap();
        let r = testing::run_script(&script);
        let t = r.data["t"].as_str().unwrap();
        assert!(
            t.ends_with("\n[... truncated at 64 KiB]"),
            "{}",
            &t[t.len() - 40..]
        );
        assert!(t.len() < DIFF_CAP + 100);
    }

    /// The library's fork-free helpers give what the tools they replace give.
    #[test]
    fn fork_free_helpers_match_dirname_printf_and_json() {
        let paths = [
            "/a/b/c", "a/b", "a", "/", "//", "/a", "a/", "a//b//", "/a/b/", "", ".", "..", "./x",
            "a b/c d", "/x/y z/", "-n/x",
        ];
        let mut script = format!("{}{}", super::super::sh::prelude(), lib());
        for p in paths {
            script.push_str(&format!(
                "kamo_dirof {p}; printf '%s|%s\\n' \"$kamo_dn\" \"$(dirname -- {p})\"\n",
                p = q(p)
            ));
        }
        for m in ["7", "44", "644", "4755", "0"] {
            script.push_str(&format!(
                "kamo_pad {m}; printf '%s|%s\\n' \"$kamo_pm\" \"$(printf '%04o' 0{m})\"\n"
            ));
        }
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), paths.len() + 5, "{text}");
        for line in text.lines() {
            let (ours, theirs) = line.split_once('|').unwrap();
            assert_eq!(ours, theirs, "{text}");
        }
        // kamo_jstr's fast path (plain words) and slow path (anything else) both give JSON.
        for v in [
            "/etc/app.conf",
            "",
            "a-b_c.d:e@f%g+h=i,j",
            "sp ace",
            "q\"uote",
            "é",
            "t\tab",
        ] {
            let script = format!(
                "{}{}kamo_result \"{{\\\"v\\\":$(kamo_jstr {})}}\"\n",
                super::super::sh::prelude(),
                lib(),
                q(v)
            );
            let r = testing::run_script(&script);
            assert_eq!(r.data["v"], v, "{r:?}");
        }
    }
}

#[cfg(test)]
mod tmp_tests {
    use super::*;

    fn sh(body: &str) -> String {
        let script = format!("{}{}{body}", super::super::sh::prelude(), lib());
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kamo_mktmp` makes a new file that is never more open than the wanted mode, skips
    /// names that exist (a planted link is neither followed nor reused), and leaves the
    /// umask as it found it.
    #[test]
    fn the_shells_own_temp_file_is_new_private_and_leaves_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let d = q(&dir.path().display().to_string());
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let out = sh(&format!(
            "umask 022\nln -s {v} {d}/.kamo.$$.0\n: > {d}/.kamo.$$.1\n\
             kamo_mktmp {d} 0640 || exit 9\nprintf '%s %s %s\\n' \"${{kamo_tmp##*.}}\" \"$(stat -c %a -- \"$kamo_tmp\")\" \"$(umask)\"\n\
             kamo_tmp=''; kamo_mktmp {d} 0755 || exit 9\nprintf '%s %s\\n' \"${{kamo_tmp##*.}}\" \"$(stat -c %a -- \"$kamo_tmp\")\"\n\
             kamo_tmp=''; kamo_mktmp {d} 0600 || exit 9\nprintf '%s\\n' \"$(stat -c %a -- \"$kamo_tmp\")\"\nkamo_tmp=''\n",
            v = q(&victim.display().to_string()),
        ));
        assert_eq!(out, "2 640 0022\n3 644\n600\n", "{out}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        // A directory it cannot write to: a failure, not a loop.
        let out = sh("kamo_mktmp /proc 0644 && echo made || echo refused\n");
        assert_eq!(out, "refused\n");
    }

    /// The default mode of a new file, worked out without a subshell, is `printf`'s.
    #[test]
    fn the_default_mode_follows_the_umask() {
        for um in ["022", "077", "002", "027", "000"] {
            let out = sh(&format!(
                "umask {um}\nkamo_newmode 0666; printf '%s|%04o\\n' \"$kamo_nm\" $(( 0666 & ~0{um} ))\n"
            ));
            let (a, b) = out.trim().split_once('|').unwrap();
            assert_eq!(a, b, "umask {um}");
        }
    }
}

#[cfg(test)]
mod shake_tests {
    use super::*;

    /// Every function of the library is found as one piece, and a script naming it keeps
    /// it and what it calls: a script that runs a function it lost would fail on the host.
    #[test]
    fn shaking_keeps_each_named_function_and_its_callees() {
        let defined: Vec<&str> = lib()
            .lines()
            .filter_map(|l| l.strip_prefix("kamo_").and_then(|r| r.split_once("() {")))
            .map(|(n, _)| n)
            .collect();
        let parts: Vec<&str> = LIB_PARTS
            .iter()
            .filter_map(|p| p.name)
            .map(|n| &n[5..])
            .collect();
        assert_eq!(parts, defined);
        let head = format!("{}{}", super::super::sh::prelude(), lib());
        for p in LIB_PARTS.iter() {
            let Some(name) = p.name else { continue };
            let shaken = shake(format!("{head}{name} x\n"));
            assert!(shaken.len() < head.len(), "{name}: nothing left out");
            for n in std::iter::once(name).chain(p.uses.iter().copied()) {
                assert!(
                    shaken.contains(&format!("\n{n}() {{")),
                    "{name} needs {n}: {shaken}"
                );
            }
        }
        // kamo_mktmp calls kamo_procinfo; kamo_err calls kamo_fail; the EXIT trap's
        // function is always there.
        let s = shake(format!("{head}kamo_mktmp . 0644\n"));
        assert!(s.contains("\nkamo_procinfo() {") && s.contains("\nkamo_cleanup() {"));
        assert!(!s.contains("kamo_jesc"));
        // A script without the library is left alone.
        assert_eq!(shake("echo kamo_mktmp\n".to_owned()), "echo kamo_mktmp\n");
    }
}
