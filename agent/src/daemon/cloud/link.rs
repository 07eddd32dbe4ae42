//! How the link's tasks report its state: on the `watch` the loop folds
//! into its snapshot ([`LinkView`]).

use std::time::Instant;

use outpost_cloud::CloudError;

use crate::daemon::snapshot::{Handle, LinkState};

pub(super) fn contact(handle: &Handle) {
    handle.update_link(|l| {
        l.state = LinkState::Connected;
        l.last_contact = Some(Instant::now());
        l.last_error = None;
    });
}

pub(super) fn failed(handle: &Handle, e: &CloudError) {
    handle.update_link(|l| {
        if l.state == LinkState::Connected {
            l.state = LinkState::Unreachable;
        }
        l.last_error = Some(e.to_string());
    });
}
