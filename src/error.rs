//! One error type for the whole program, and the one table that maps it to an exit code.
//!
//! Exit codes are Ansible's so that the wrappers operators already have keep working:
//! 0 ok, 1 other error, 2 a host failed, 3 a host unreachable, 4 parse error, 5 bad options,
//! 99 interrupted. Per-host outcomes are not errors of this type: commands aggregate them and
//! pick 2 or 3 through [`ExitCode::for_hosts`].
//!
//! Input errors carry a [`Located`] value (file, line, column, the offending source line) and
//! are rendered with `annotate-snippets`, the renderer rustc's own diagnostics use, so every
//! parse error looks the same whatever layer found it.

use std::fmt;
use std::path::{Path, PathBuf};

/// The process exit codes, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Ok = 0,
    Other = 1,
    HostFailed = 2,
    Unreachable = 3,
    Parse = 4,
    Usage = 5,
    Interrupted = 99,
}

impl ExitCode {
    /// The code a kamo process ended with (anything unknown is [`ExitCode::Other`]).
    #[must_use]
    pub fn from_code(code: i32) -> Self {
        match code {
            0 => Self::Ok,
            2 => Self::HostFailed,
            3 => Self::Unreachable,
            4 => Self::Parse,
            5 => Self::Usage,
            99 => Self::Interrupted,
            _ => Self::Other,
        }
    }

    /// The code for a run from its per-host counts: unreachable takes precedence over failed.
    #[must_use]
    pub fn for_hosts(failed: usize, unreachable: usize) -> Self {
        if unreachable > 0 {
            Self::Unreachable
        } else if failed > 0 {
            Self::HostFailed
        } else {
            Self::Ok
        }
    }
}

/// An input error that points at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: PathBuf,
    /// 1-based line; 0 when the whole file is meant.
    pub line: usize,
    /// 1-based column; 0 when unknown (the whole line is underlined).
    pub column: usize,
    /// Length of the offending text in characters; 0 means "to the end of the token".
    pub len: usize,
    pub message: String,
    /// The text of `line`, for the snippet.
    pub source_line: Option<String>,
    pub hint: Option<String>,
}

impl Located {
    /// A located error; the source line is read from `text` when given.
    pub fn new(file: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line,
            column: 0,
            len: 0,
            message: message.into(),
            source_line: None,
            hint: None,
        }
    }

    #[must_use]
    pub fn column(mut self, column: usize, len: usize) -> Self {
        self.column = column;
        self.len = len;
        self
    }

    /// Attaches the source line, taken from the whole file text.
    #[must_use]
    pub fn source(mut self, text: &str) -> Self {
        if self.line > 0 {
            self.source_line = text.lines().nth(self.line - 1).map(str::to_owned);
        }
        self
    }

    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Renders the message with a snippet and caret, like rustc or just.
    #[must_use]
    pub fn render(&self) -> String {
        use annotate_snippets::{Level, Renderer, Snippet};
        let file = self.file.display().to_string();
        let origin = if self.line == 0 {
            file.clone()
        } else if self.column == 0 {
            format!("{file}:{}", self.line)
        } else {
            format!("{file}:{}:{}", self.line, self.column)
        };
        let mut msg = Level::Error.title(&self.message);
        let src;
        if let (Some(line), true) = (&self.source_line, self.line > 0) {
            src = line.trim_end_matches(['\r', '\n']).to_owned();
            let span = span_for(&src, self.column, self.len);
            msg = msg.snippet(
                Snippet::source(&src)
                    .line_start(self.line)
                    // annotate-snippets appends line:column itself.
                    .origin(&file)
                    .annotation(Level::Error.span(span)),
            );
        } else {
            return match &self.hint {
                Some(h) => format!("error: {}\n  --> {origin}\nhint: {h}", self.message),
                None => format!("error: {}\n  --> {origin}", self.message),
            };
        }
        let rendered = Renderer::plain().render(msg).to_string();
        match &self.hint {
            Some(h) => format!("{rendered}\nhint: {h}"),
            None => rendered,
        }
    }
}

/// Byte range of the annotated text: from the column to the end of the token, or the whole
/// trimmed line when the column is unknown.
fn span_for(line: &str, column: usize, len: usize) -> std::ops::Range<usize> {
    let start_trimmed = line.len() - line.trim_start().len();
    if column == 0 {
        let end = line.trim_end().len().max(start_trimmed);
        return start_trimmed..end;
    }
    let start = line
        .char_indices()
        .nth(column - 1)
        .map_or(line.len(), |(i, _)| i);
    let end = if len > 0 {
        line[start..]
            .char_indices()
            .nth(len)
            .map_or(line.len(), |(i, _)| start + i)
    } else {
        line[start..]
            .find(char::is_whitespace)
            .map_or(line.len(), |i| start + i)
    };
    start..end.max(start)
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)?;
        if self.column > 0 {
            write!(f, ":{}", self.column)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Everything that can stop a kamo command as a whole.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed input file: inventory, playbook, vars file (exit 4).
    #[error("{0}")]
    Parse(Box<Located>),
    /// A malformed argument or option value (exit 5).
    #[error("{0}")]
    Usage(String),
    /// A file kamo needed could not be read or written (exit 1).
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The user interrupted the run (exit 99).
    #[error("interrupted")]
    Interrupted,
    /// Anything else (exit 1).
    #[error("{0}")]
    Other(String),
}

impl Error {
    #[must_use]
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Parse(_) => ExitCode::Parse,
            Self::Usage(_) => ExitCode::Usage,
            Self::Interrupted => ExitCode::Interrupted,
            Self::Io { .. } | Self::Other(_) => ExitCode::Other,
        }
    }

    /// A located parse error.
    #[must_use]
    pub fn parse(located: Located) -> Self {
        Self::Parse(Box::new(located))
    }

    #[must_use]
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }

    /// The text shown to the user, with snippet for located errors.
    #[must_use]
    pub fn render(&self) -> String {
        match self {
            Self::Parse(l) => l.render(),
            other => format!("error: {other}"),
        }
    }
}

impl From<Located> for Error {
    fn from(l: Located) -> Self {
        Self::parse(l)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_snippet_with_caret() {
        let text = "[web]\nnode1 ansible_port=abc\n";
        let e = Located::new("hosts.ini", 2, "ansible_port must be a number")
            .column(20, 3)
            .source(text);
        let out = e.render();
        assert!(
            out.contains("error: ansible_port must be a number"),
            "{out}"
        );
        assert!(out.contains("--> hosts.ini:2:20\n"), "{out}");
        assert!(out.contains("node1 ansible_port=abc"), "{out}");
        assert!(out.contains("^^^"), "{out}");
    }

    #[test]
    fn unreachable_beats_failed() {
        assert_eq!(ExitCode::for_hosts(3, 1), ExitCode::Unreachable);
        assert_eq!(ExitCode::for_hosts(3, 0), ExitCode::HostFailed);
        assert_eq!(ExitCode::for_hosts(0, 0), ExitCode::Ok);
    }
}
