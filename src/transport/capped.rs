//! A command's output kept in bounded memory: its head and its tail, with a note of how much
//! was dropped between them.
//!
//! Why head and tail rather than the first bytes only: a module script prints its result line
//! last, after whatever the command printed, so the tail must survive a command that prints
//! gigabytes; the head shows how the output began. A remote host decides how much it prints;
//! without a bound, `yes` or `cat /dev/zero` on one node would take the workstation's memory
//! (and with `--forks 50`, fifty times over).
//!
//! Not kept whole: a `fetch`/`slurp` of a file larger than about three quarters of the tail
//! (its base64 is in the result line) loses its result line and fails with a message saying
//! how much output there was.

use std::collections::VecDeque;

/// What is kept of a command's stdout: 1 MiB of head, 7 MiB of tail.
pub const STDOUT_KEEP: (usize, usize) = (1 << 20, 7 << 20);
/// What is kept of a command's stderr: 256 KiB of head, 768 KiB of tail.
pub const STDERR_KEEP: (usize, usize) = (256 << 10, 768 << 10);

/// The start of the note put where output was dropped.
pub const DROPPED_NOTE: &str = "[kamo: ";

/// An output stream being received.
#[derive(Debug)]
pub struct Capped {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_max: usize,
    tail_max: usize,
    dropped: u64,
}

impl Capped {
    #[must_use]
    pub fn new((head_max, tail_max): (usize, usize)) -> Self {
        Self {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_max,
            tail_max,
            dropped: 0,
        }
    }

    pub fn push(&mut self, mut data: &[u8]) {
        let room = self.head_max.saturating_sub(self.head.len());
        if room > 0 {
            let take = room.min(data.len());
            self.head.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        if data.len() >= self.tail_max {
            self.dropped += (self.tail.len() + data.len() - self.tail_max) as u64;
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.tail_max..]);
            return;
        }
        let over = (self.tail.len() + data.len()).saturating_sub(self.tail_max);
        if over > 0 {
            self.tail.drain(..over);
            self.dropped += over as u64;
        }
        self.tail.extend(data);
    }

    /// Bytes received but not kept.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes kept so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kept bytes; where output was dropped, a line saying how much.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        let mut out = self.head;
        if self.dropped > 0 {
            out.extend_from_slice(
                format!(
                    "\n{DROPPED_NOTE}{} bytes of output not kept here]\n",
                    self.dropped
                )
                .as_bytes(),
            );
        }
        out.extend(self.tail);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_head_and_tail_and_counts_the_rest() {
        let mut c = Capped::new((4, 6));
        c.push(b"abc");
        c.push(b"defgh");
        assert_eq!(c.dropped(), 0);
        c.push(b"ijklmnop");
        c.push(b"q");
        assert_eq!(c.dropped(), 7);
        assert_eq!(c.len(), 10);
        let out = String::from_utf8(c.into_bytes()).unwrap();
        assert_eq!(out, "abcd\n[kamo: 7 bytes of output not kept here]\nlmnopq");
        let mut c = Capped::new((2, 3));
        c.push(&[7u8; 1000]);
        assert_eq!((c.len(), c.dropped()), (5, 995));
        let mut c = Capped::new((2, 3));
        c.push(b"small");
        assert_eq!(c.into_bytes(), b"small");
    }
}
