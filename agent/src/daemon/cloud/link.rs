//! The link's state as `outpost status` shows it, and how the loops update it.

use std::sync::Arc;
use std::time::Instant;

use outpost_cloud::{CloudError, LogQueue};

use crate::admin::types::ControllerView;
use crate::daemon::state::Shared;

/// The link's state, for `outpost status`.
#[derive(Clone, Debug)]
pub struct CloudLink {
    pub(super) server: String,
    pub(super) uuid: Option<String>,
    pub(super) name: Option<String>,
    pub(super) state: &'static str,
    pub(super) last_contact: Option<Instant>,
    pub(super) last_error: Option<String>,
    pub(super) queue: Option<Arc<LogQueue>>,
}

impl CloudLink {
    /// What the admin API shows.
    pub fn view(&self) -> ControllerView {
        let q = self.queue.as_ref().map(|q| q.stats()).unwrap_or_default();
        ControllerView {
            server: self.server.clone(),
            uuid: self.uuid.clone(),
            name: self.name.clone(),
            state: self.state.to_owned(),
            last_contact_secs_ago: self.last_contact.map(|t| t.elapsed().as_secs()),
            last_error: self.last_error.clone(),
            log_batches_queued: q.batches,
            log_batches_dropped: q.dropped_batches,
            log_lines_dropped: q.dropped_lines,
        }
    }
}

pub(super) fn update(shared: &Shared, f: impl FnOnce(&mut CloudLink)) {
    if let Some(l) = shared.cloud.write().unwrap().as_mut() {
        f(l);
    }
}

pub(super) fn contact(shared: &Shared) {
    update(shared, |l| {
        l.state = "connected";
        l.last_contact = Some(Instant::now());
        l.last_error = None;
    });
}

pub(super) fn failed(shared: &Shared, e: &CloudError) {
    update(shared, |l| {
        if l.state == "connected" {
            l.state = "unreachable";
        }
        l.last_error = Some(e.to_string());
    });
}
