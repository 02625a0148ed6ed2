//! Commands that move bulk data: stdout read chunk by chunk and stdin written as the caller
//! goes, for the tar streams of `kamo copy` and `kamo migrate` (see [`crate::transfer`]).
//!
//! Why not [`super::Connection::exec`]: it keeps the whole output in memory, and a data set is
//! gigabytes. Here nothing is buffered beyond one SSH packet per call: the reader hands out
//! each chunk as it arrives, and the writer waits on the remote window, so a slow receiver
//! slows the sender instead of filling the workstation's memory. Reader and writer are
//! separate halves because the receiving side's messages must be drained while data is
//! written to it (an undrained channel blocks the connection's event loop; see the russh
//! guide). stderr is kept only up to [`STDERR_LIMIT`]: a tar that complains about every one
//! of a million files must not hold them all.

use russh::client;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};

use super::{Exit, Phase, TransportError};

/// How much of a streaming command's stderr is kept.
pub const STDERR_LIMIT: usize = 64 * 1024;

/// The output side of a streaming command.
pub struct StreamReader {
    rd: ChannelReadHalf,
    pending: Vec<u8>,
    stderr: Vec<u8>,
    stderr_dropped: usize,
    status: Option<u32>,
    signal: Option<String>,
    done: bool,
}

impl StreamReader {
    pub(crate) fn new(rd: ChannelReadHalf, first: Vec<u8>, stderr: &[u8]) -> Self {
        let mut r = Self {
            rd,
            pending: first,
            stderr: Vec::new(),
            stderr_dropped: 0,
            status: None,
            signal: None,
            done: false,
        };
        r.keep_stderr(stderr);
        r
    }

    fn keep_stderr(&mut self, data: &[u8]) {
        let room = STDERR_LIMIT.saturating_sub(self.stderr.len());
        let take = room.min(data.len());
        self.stderr.extend_from_slice(&data[..take]);
        self.stderr_dropped += data.len() - take;
    }

    /// The next chunk of stdout, or `None` once the command's channel closed (or the
    /// connection dropped: [`StreamReader::finish`] tells which).
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        if !self.pending.is_empty() {
            return Some(std::mem::take(&mut self.pending));
        }
        if self.done {
            return None;
        }
        loop {
            match self.rd.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    if !data.is_empty() {
                        return Some(data.to_vec());
                    }
                }
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => self.keep_stderr(&data),
                Some(ChannelMsg::ExitStatus { exit_status }) => self.status = Some(exit_status),
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    self.signal = Some(format!("{signal_name:?}"));
                }
                Some(ChannelMsg::Close) | None => {
                    self.done = true;
                    return None;
                }
                Some(_) => {}
            }
        }
    }

    /// Reads (and drops) whatever stdout is left, then how the command ended and its stderr
    /// (the first [`STDERR_LIMIT`] bytes, with a note of how much more there was).
    pub async fn finish(mut self) -> (Exit, Vec<u8>) {
        // Bounded by the command's output, which ends when the channel closes.
        while self.next().await.is_some() {}
        let exit = match (self.status, self.signal.take()) {
            (_, Some(s)) => Exit::Signal(s),
            (Some(c), None) => Exit::Code(c),
            (None, None) => Exit::NoStatus,
        };
        if self.stderr_dropped > 0 {
            self.stderr.extend_from_slice(
                format!(
                    "\n[{} more bytes of stderr not kept]\n",
                    self.stderr_dropped
                )
                .as_bytes(),
            );
        }
        (exit, self.stderr)
    }
}

/// The input side of a streaming command.
pub struct StreamWriter {
    wr: ChannelWriteHalf<client::Msg>,
}

impl StreamWriter {
    pub(crate) fn new(wr: ChannelWriteHalf<client::Msg>) -> Self {
        Self { wr }
    }

    /// Sends `data` to the command's stdin, waiting on the remote window.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), TransportError> {
        self.wr.data(data).await.map_err(|e| {
            TransportError::new(
                Phase::Exec,
                format!("the receiving command stopped taking data: {e}"),
            )
        })
    }

    /// Ends stdin (EOF); the command sees the end of its input.
    pub async fn finish(self) {
        let _ = self.wr.eof().await;
    }

    /// Ends stdin but keeps the channel's handle, to [`StreamWriter::close`] it later.
    pub async fn eof(&self) {
        let _ = self.wr.eof().await;
    }

    /// Closes the channel: sshd ends the command (its stdout is no longer read), and the
    /// reader's [`StreamReader::finish`] returns soon instead of draining the rest.
    pub async fn close(self) {
        let _ = self.wr.close().await;
    }

    /// [`StreamWriter::close`] for a writer that is borrowed.
    pub async fn close_ref(&self) {
        let _ = self.wr.close().await;
    }
}
