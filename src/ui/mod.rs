//! Everything kamo prints for people and scripts goes through here.
//!
//! Why one module: output of one host must never interleave with another's, JSON lines must
//! stay one per line, and remote output must not be able to drive the operator's terminal.
//! Each function writes a whole block under the stdout lock.

pub mod reporter;

use std::io::Write;

use serde_json::Value;

fn write_all(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`kamo ... | head`) is not worth a panic.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

pub fn print_text(text: &str) {
    if text.ends_with('\n') {
        write_all(text);
    } else {
        write_all(&format!("{text}\n"));
    }
}

/// One JSON value on one line.
pub fn print_json(v: &Value) {
    let mut line = Vec::new();
    if to_json_writer(&mut line, v).is_ok() {
        line.push(b'\n');
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&line);
        let _ = out.flush();
    }
}

/// A large serializable value as one JSON line, written as it is serialized.
pub fn write_json<T: serde::Serialize>(v: &T) {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if to_json_writer(&mut out, v).is_ok() {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// A line on stderr (warnings, summaries for people).
pub fn eprint_line(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// Compact JSON with DEL and the C1 controls (U+0080 to U+009F) escaped as `\u00XX` too.
///
/// JSON itself only requires escaping below U+0020, which serde_json does; but JSON lines are
/// often read on a terminal, and terminals that honour 8-bit controls treat U+009B as CSI, so
/// a node's output could still drive them. The escaped text decodes to the same value.
pub fn to_json_writer<W: Write, T: serde::Serialize + ?Sized>(
    w: W,
    v: &T,
) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(w, TerminalSafe);
    v.serialize(&mut ser)
}

struct TerminalSafe;

impl serde_json::ser::Formatter for TerminalSafe {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c) {
                w.write_all(&fragment.as_bytes()[start..i])?;
                write!(w, "\\u{:04x}", u32::from(c))?;
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

/// Remote bytes as text safe for a terminal: invalid UTF-8 replaced, control characters
/// other than newline and tab escaped, so escape sequences from a node cannot move the cursor,
/// retitle the window or hide lines.
#[must_use]
pub fn sanitize(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A plain table (header row, no borders, trailing spaces trimmed).
pub fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(header.to_vec());
    for r in rows {
        table.add_row(r);
    }
    let text: Vec<String> = table
        .to_string()
        .lines()
        .map(|l| l.trim_end().to_owned())
        .collect();
    print_text(&text.join("\n"));
}

/// The host table of `kamo inventory list`.
pub fn print_host_table(rows: &[Value]) {
    let rows = rows
        .iter()
        .map(|r| {
            let s = |k: &str| match &r[k] {
                Value::Null => "-".to_owned(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let groups = r["groups"]
                .as_array()
                .map(|g| {
                    g.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![s("name"), s("address"), s("port"), s("user"), groups]
        })
        .collect();
    print_table(&["HOST", "ADDRESS", "PORT", "USER", "GROUPS"], rows);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls() {
        assert_eq!(sanitize(b"ok\n\x1b[2Jx\tz\r"), "ok\n\\u{1b}[2Jx\tz\\r");
        assert_eq!(sanitize(&[0xff, b'a']), "\u{fffd}a");
    }

    #[test]
    fn json_lines_escape_del_and_c1_controls_and_decode_to_the_same_value() {
        let v = serde_json::json!({"k\u{9b}": "a\u{1b}[2J\u{7f}\u{9b}1m\u{a0}é"});
        let mut out = Vec::new();
        to_json_writer(&mut out, &v).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            r#"{"k\u009b":"a\u001b[2J\u007f\u009b1m\u{a0}é"}"#.replace(r"\u{a0}", "\u{a0}")
        );
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
