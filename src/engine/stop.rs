//! Stopping a run on Ctrl-C (SIGINT) or SIGTERM, in two steps.
//!
//! First signal: no new task starts on any host; the tasks in flight finish and are recorded
//! (bounded by a grace period, after which they are aborted). Second signal: the tasks in
//! flight are abandoned at once. Either way the journal knows exactly which tasks were in
//! flight (started, no result), and `kamo resume` runs those again.

use std::sync::Arc;

use tokio::sync::watch;

const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const ABORTED: u8 = 2;

/// Shared by the command that listens for signals and every job of the engine.
#[derive(Clone)]
pub struct Stop {
    tx: Arc<watch::Sender<u8>>,
}

impl Default for Stop {
    fn default() -> Self {
        Self {
            tx: Arc::new(watch::channel(RUNNING).0),
        }
    }
}

impl Stop {
    /// No new task starts from now on.
    pub fn request(&self) {
        self.tx.send_if_modified(|s| {
            if *s == RUNNING {
                *s = DRAINING;
                true
            } else {
                false
            }
        });
    }

    /// The tasks in flight are abandoned.
    pub fn abort(&self) {
        self.tx.send_replace(ABORTED);
    }

    /// Whether a stop was asked for (drain or abort).
    #[must_use]
    pub fn requested(&self) -> bool {
        *self.tx.borrow() != RUNNING
    }

    /// Whether the tasks in flight are to be abandoned.
    #[must_use]
    pub fn aborted(&self) -> bool {
        *self.tx.borrow() == ABORTED
    }

    /// Completes when the run is aborted (never otherwise).
    pub async fn wait_abort(&self) {
        let mut rx = self.tx.subscribe();
        // `wait_for` fails only when the sender is gone; we hold it, so it never does.
        let _ = rx.wait_for(|s| *s == ABORTED).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn request_then_abort() {
        let s = Stop::default();
        assert!(!s.requested());
        s.request();
        assert!(s.requested() && !s.aborted());
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.wait_abort().await }
        });
        s.abort();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        // A later request does not undo the abort.
        s.request();
        assert!(s.aborted());
    }
}
