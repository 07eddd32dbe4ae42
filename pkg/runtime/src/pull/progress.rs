//! Pull progress (bytes done of total), published on a `watch` channel so a
//! status reporter or a CLI bar reads the latest value without back-pressure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// Bytes of blobs done (fetched or already present) and in total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PullProgress {
    /// Bytes done.
    pub done: u64,
    /// Bytes in all layers plus the config (0 until the manifest is read).
    pub total: u64,
}

/// Shared counter behind a pull; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    done: Arc<AtomicU64>,
    total: u64,
    tx: Option<watch::Sender<PullProgress>>,
}

impl Progress {
    pub(crate) fn new(total: u64, tx: Option<watch::Sender<PullProgress>>) -> Progress {
        let p = Progress {
            done: Arc::new(AtomicU64::new(0)),
            total,
            tx,
        };
        p.publish();
        p
    }

    pub(crate) fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        self.publish();
    }

    pub(crate) fn sub(&self, n: u64) {
        self.done.fetch_sub(n, Ordering::Relaxed);
        self.publish();
    }

    fn publish(&self) {
        if let Some(tx) = &self.tx {
            let now = PullProgress {
                done: self.done.load(Ordering::Relaxed).min(self.total),
                total: self.total,
            };
            tx.send_replace(now);
        }
    }
}
