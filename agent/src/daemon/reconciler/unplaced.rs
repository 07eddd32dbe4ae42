//! Rejected config entries the planner cannot key by UUID: an entry whose
//! `uuid` is not a readable string, a duplicate of a valid app's UUID, or a
//! later duplicate of another rejected entry. Each still gets a status (so
//! `outpost list` and the controller's info report show it) under a
//! placeholder `apps[i]` that never collides with a real app's UUID or name.

use std::collections::{BTreeMap, BTreeSet};

use outpost_api::{AppStatus, ErrorDescription, RejectedApp, Severity, SwState};

use super::options::now_ms;
use crate::daemon::snapshot::Current;

/// The placeholder statuses of `cur`, keyed `apps[i]`. `previous` keeps an
/// unchanged error's first-seen time (no status churn between passes).
pub(super) fn statuses(
    cur: &Current,
    previous: &BTreeMap<String, AppStatus>,
) -> Vec<(String, AppStatus)> {
    let desired: BTreeSet<&str> = cur.config.apps.iter().map(|a| a.uuid.as_str()).collect();
    let mut keyed = BTreeSet::new();
    let mut out = Vec::new();
    for r in &cur.rejected {
        let represented = r
            .uuid
            .as_deref()
            .is_some_and(|u| !desired.contains(u) && keyed.insert(u));
        if represented {
            continue;
        }
        let key = format!("apps[{}]", r.index);
        let status = placeholder(&key, r, previous.get(&key));
        out.push((key, status));
    }
    out
}

fn placeholder(key: &str, r: &RejectedApp, old: Option<&AppStatus>) -> AppStatus {
    let message = r.summary();
    let error = match old.and_then(|o| o.error.as_ref()) {
        Some(e) if e.message == message => e.clone(),
        _ => {
            let now = outpost_reconcile::datetime(now_ms());
            ErrorDescription {
                message,
                severity: Severity::Error,
                first_seen: now,
                last_seen: now,
                retries: 0,
                retry_condition: "a corrected config entry".into(),
            }
        }
    };
    AppStatus {
        uuid: key.to_owned(),
        display_name: match &r.display_name {
            Some(n) => format!("{n} ({key})"),
            None => key.to_owned(),
        },
        version: String::new(),
        image: String::new(),
        state: SwState::Unknown,
        activated: false,
        restarts: 0,
        domain: None,
        backoff: None,
        error: Some(error),
        vnc_password_set: false,
        download: None,
        local_override: None,
    }
}
