//! Image fetching as a stage beside the reconcile loop: a pass never waits
//! on the network.
//!
//! A `Create` (or `Replace`/`Purge`) whose image is not in the user
//! containerd asks [`Downloads::request`] for it and returns at once as
//! "waiting for image". The fetch runs in its own task, at most
//! [`CONCURRENCY`] at once, one per image reference (apps sharing an image
//! join the same download). When it ends the loop is woken: on success the
//! image is in containerd and the next pass creates the app; on failure the
//! entry keeps the [`Failure`] (transient or permanent) until each app that
//! asks has been told once, and the loop records it through the planner's
//! outcome path (backoff, severity). The app's next attempt after its
//! backoff starts a fresh download.
//!
//! The table is bounded ([`MAX_ENTRIES`] images); a request that finds it
//! full of live downloads is refused as a transient failure and counted.
//!
//! # Current limitations
//! * A pull that has started runs to its end even when no app wants the
//!   image any more (it is only content; image GC removes it later). Queued
//!   ones are dropped at once.
//! * Progress and failures live in memory: after an agent restart the
//!   download starts again (blobs already in containerd are skipped).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use outpost_runtime::pull::{ErrorClass, PullProgress};
use tokio::sync::{watch, Semaphore};
use tokio::task::AbortHandle;

/// Image downloads running at once (a cellular link is shared by all).
pub const CONCURRENCY: usize = 2;

/// Images tracked at once (queued, pulling or failed and not yet reported).
pub const MAX_ENTRIES: usize = 32;

/// A download that failed, as the loop records it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// Whether retrying alone can help.
    pub class: ErrorClass,
    /// What went wrong, naming the image.
    pub message: String,
}

/// What [`Downloads::request`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Queued or running (started by this request or joined).
    Waiting,
    /// The last download of the image failed; the caller is told once.
    Failed(Failure),
}

#[derive(Debug)]
enum Phase {
    Queued,
    Pulling,
    Failed {
        failure: Failure,
        /// Apps already told of it.
        reported: BTreeSet<String>,
    },
}

#[derive(Debug)]
struct Entry {
    /// Tells this download from a later one of the same image.
    id: u64,
    phase: Phase,
    progress: watch::Receiver<PullProgress>,
    task: Option<AbortHandle>,
}

#[derive(Debug, Default)]
struct Table {
    entries: BTreeMap<String, Entry>,
    next_id: u64,
}

/// The download table shared by the executor (requests), the status
/// overlay (progress) and the download tasks (results).
#[derive(Debug)]
pub struct Downloads {
    slots: Arc<Semaphore>,
    max_entries: usize,
    table: Arc<Mutex<Table>>,
    refused: AtomicU64,
}

impl Default for Downloads {
    fn default() -> Self {
        Downloads::new(CONCURRENCY, MAX_ENTRIES)
    }
}

impl Downloads {
    /// A table running `concurrency` downloads at once and tracking at most
    /// `max_entries` images.
    pub fn new(concurrency: usize, max_entries: usize) -> Self {
        Downloads {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            max_entries: max_entries.max(1),
            table: Default::default(),
            refused: AtomicU64::new(0),
        }
    }

    /// Asks for `image` on behalf of app `app`. Joins a download in
    /// progress; reports a failed one once to each app; otherwise starts
    /// `fetch` in the background (it gets a progress sender) and calls
    /// `wake` when it has ended and the table says how. Never waits.
    pub fn request<F, Fut, W>(&self, image: &str, app: &str, fetch: F, wake: W) -> Request
    where
        F: FnOnce(watch::Sender<PullProgress>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Failure>> + Send + 'static,
        W: FnOnce() + Send + 'static,
    {
        let mut table = self.table.lock().unwrap();
        match table.entries.get_mut(image).map(|e| &mut e.phase) {
            Some(Phase::Queued | Phase::Pulling) => return Request::Waiting,
            Some(Phase::Failed { failure, reported }) => {
                if reported.insert(app.to_owned()) {
                    return Request::Failed(failure.clone());
                }
                // This app was told and has waited its backoff: try again.
                table.entries.remove(image);
            }
            None => {}
        }
        if table.entries.len() >= self.max_entries {
            // Failures not yet reported to everyone are the first to go:
            // an app that missed one simply downloads again.
            table
                .entries
                .retain(|_, e| !matches!(e.phase, Phase::Failed { .. }));
        }
        if table.entries.len() >= self.max_entries {
            let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                image,
                app,
                refused = n,
                "download table full; image request refused"
            );
            return Request::Failed(Failure {
                class: ErrorClass::Transient,
                message: format!(
                    "image {image} not fetched: {} other images are already waiting for download",
                    table.entries.len()
                ),
            });
        }
        let id = table.next_id;
        table.next_id += 1;
        let (tx, rx) = watch::channel(PullProgress::default());
        table.entries.insert(
            image.to_owned(),
            Entry {
                id,
                phase: Phase::Queued,
                progress: rx,
                task: None,
            },
        );
        let (slots, shared, key) = (self.slots.clone(), self.table.clone(), image.to_owned());
        let task = tokio::spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            {
                let mut t = shared.lock().unwrap();
                match t.entries.get_mut(&key) {
                    Some(e) if e.id == id => e.phase = Phase::Pulling,
                    _ => return, // dropped while queued
                }
            }
            tracing::info!(image = %key, "download started");
            let result = fetch(tx).await;
            {
                let mut t = shared.lock().unwrap();
                if t.entries.get(&key).is_some_and(|e| e.id == id) {
                    match result {
                        Ok(()) => {
                            tracing::info!(image = %key, "download finished");
                            t.entries.remove(&key);
                        }
                        Err(failure) => {
                            tracing::warn!(image = %key, class = ?failure.class, error = %failure.message, "download failed");
                            if let Some(e) = t.entries.get_mut(&key) {
                                e.phase = Phase::Failed {
                                    failure,
                                    reported: BTreeSet::new(),
                                };
                                e.task = None;
                            }
                        }
                    }
                }
            }
            wake();
        });
        if let Some(e) = table.entries.get_mut(image).filter(|e| e.id == id) {
            e.task = Some(task.abort_handle());
        }
        Request::Waiting
    }

    /// Bytes done/total of `image` while it is queued or downloading.
    pub fn progress(&self, image: &str) -> Option<PullProgress> {
        let table = self.table.lock().unwrap();
        let e = table.entries.get(image)?;
        match e.phase {
            Phase::Queued | Phase::Pulling => Some(*e.progress.borrow()),
            Phase::Failed { .. } => None,
        }
    }

    /// Forgets what no app wants any more: queued downloads are cancelled
    /// and failures dropped; running downloads finish (see module docs).
    pub fn retain_wanted(&self, wanted: &BTreeSet<&str>) {
        let mut table = self.table.lock().unwrap();
        table.entries.retain(|image, e| {
            if wanted.contains(image.as_str()) {
                return true;
            }
            match e.phase {
                Phase::Pulling => true,
                Phase::Queued => {
                    if let Some(t) = &e.task {
                        t.abort();
                    }
                    tracing::info!(image = %image, "queued download cancelled: no app wants the image");
                    false
                }
                Phase::Failed { .. } => false,
            }
        });
    }

    /// Whether any download is queued or running.
    pub fn busy(&self) -> bool {
        let table = self.table.lock().unwrap();
        table
            .entries
            .values()
            .any(|e| matches!(e.phase, Phase::Queued | Phase::Pulling))
    }

    /// Requests refused because the table was full.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
#[path = "downloads_tests.rs"]
mod tests;
