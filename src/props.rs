//! Shared pieces of the property tests (`props` modules next to each parser).
//!
//! The property tests feed arbitrary and structured-but-random input to every parser of
//! operator input and assert that each call returns (Ok, or an error that says where), never
//! panics and never hangs. `PROPTEST_CASES` sets the number of cases (proptest reads it); the
//! default is small enough for CI, `scripts/fuzz-long.sh` runs 100,000 per property.

use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;

/// A call slower than this is a hang (debug builds on a loaded 2-core machine included).
pub const HANG: Duration = Duration::from_secs(20);

/// Runs `f` on its own thread and fails the case, naming `what`, if it has not returned
/// within [`HANG`]; a panic in `f` is the case's panic.
pub fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::Builder::new()
        // Parsers recurse; the default 2 MiB of a spawned thread is the budget we assert.
        .stack_size(2 << 20)
        .spawn(move || {
            let out = f();
            let _ = tx.send(());
            out
        })
        .expect("spawn the worker thread");
    match rx.recv_timeout(HANG) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("no answer within {HANG:?} (a hang?) on input {what}")
        }
    }
}

/// Text made of `pieces` and arbitrary characters, up to `max` pieces: random text rarely
/// gets past a parser's first line, pieces of its own syntax do.
pub fn soup(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => proptest::sample::select(pieces).prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
        1 => "[ -~]{0,6}",
    ];
    proptest::collection::vec(piece, 0..max).prop_map(|v| v.concat())
}
