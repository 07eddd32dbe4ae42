//! State shared between the reconcile loop and the admin API.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use outpost_api::{AppStatus, DeviceConfig, RejectedApp};
use outpost_runtime::{Layout, Runtime};
use outpost_store::Store;
use tokio::sync::Notify;

pub use outpost_store::CounterKind;

/// The config in effect and where it came from.
#[derive(Clone, Debug)]
pub struct Current {
    /// Valid apps of the document.
    pub config: DeviceConfig,
    /// Apps left out, with their problems.
    pub rejected: Vec<RejectedApp>,
    /// `file:/path`, `checkpoint`, …
    pub origin: String,
}

/// How far the loop has got with what it was given: tests and operators
/// wait on this ("the agent evaluated config N and then found nothing to
/// do") instead of sleeping and hoping.
#[derive(Debug, Default)]
pub struct Progress {
    /// Config documents evaluated since start (accepted or refused, from any source).
    evaluated: AtomicU64,
    /// `evaluated` as of the start of the last pass that planned no action,
    /// plus one (0: no such pass yet).
    idle_through: AtomicU64,
}

impl Progress {
    /// Progress that starts with `evaluated` documents already evaluated
    /// (the checkpoint loaded at start counts as one).
    pub fn starting_at(evaluated: u64) -> Progress {
        Progress {
            evaluated: AtomicU64::new(evaluated),
            idle_through: AtomicU64::new(0),
        }
    }

    /// One more document was evaluated. Call before its outcome becomes
    /// visible (status, refusal message), so a reader who saw the outcome
    /// also sees the count.
    pub fn config_evaluated(&self) {
        self.evaluated.fetch_add(1, Ordering::SeqCst);
    }

    /// Documents evaluated so far.
    pub fn evaluated(&self) -> u64 {
        self.evaluated.load(Ordering::SeqCst)
    }

    /// A pass that began when `evaluated_at_start` documents had been
    /// evaluated planned nothing.
    pub fn pass_idle(&self, evaluated_at_start: u64) {
        self.idle_through
            .fetch_max(evaluated_at_start + 1, Ordering::SeqCst);
    }

    /// Documents evaluated before the last idle pass began, if one ran.
    pub fn idle_through(&self) -> Option<u64> {
        self.idle_through.load(Ordering::SeqCst).checked_sub(1)
    }
}

/// memlogd's sockets.
#[derive(Clone, Debug)]
pub struct MemlogdPaths {
    /// Write side (register streams).
    pub log_socket: std::path::PathBuf,
    /// Query side.
    pub query_socket: std::path::PathBuf,
}

/// Everything the loop and the admin API share.
pub struct Shared {
    /// Device paths.
    pub layout: Layout,
    /// The containerd driver (user instance).
    pub runtime: Runtime,
    /// Persistent decisions.
    pub store: Store,
    /// memlogd sockets.
    pub memlogd: MemlogdPaths,
    /// Status of every known app, by UUID.
    pub statuses: RwLock<BTreeMap<String, AppStatus>>,
    /// The config in effect.
    pub current: RwLock<Option<Current>>,
    /// Wakes the loop (operator command, config change).
    pub kick: Notify,
    /// When the agent started.
    pub started: Instant,
    /// User containerd restarts (copied from the supervisor).
    pub instance_restarts: Arc<AtomicU32>,
    /// Task events dropped because the loop was behind.
    pub events_dropped: Arc<AtomicU64>,
    /// Why the last config document was refused (cleared by the next
    /// accepted one).
    pub config_error: RwLock<Option<String>>,
    /// Notified when an app status or the config changes (the controller
    /// client uploads info then).
    pub status_changed: Notify,
    /// The controller connection, when one is configured.
    pub cloud: RwLock<Option<crate::daemon::cloud::CloudLink>>,
    /// How far the loop has got (documents evaluated, last idle pass).
    pub progress: Progress,
    /// Image downloads (queued, running, failed), by image reference.
    pub downloads: super::downloads::Downloads,
}

impl Shared {
    /// All statuses, by display name.
    pub fn statuses(&self) -> Vec<AppStatus> {
        let mut v: Vec<AppStatus> = self
            .statuses
            .read()
            .unwrap()
            .values()
            .cloned()
            .map(|s| self.overlay(s))
            .collect();
        v.sort_by(|a, b| a.display_name.cmp(&b.display_name));
        v
    }

    /// An app waiting for its image shows DOWNLOADING with the bytes so far.
    fn overlay(&self, mut s: AppStatus) -> AppStatus {
        if s.state == outpost_api::SwState::Running {
            return s;
        }
        if let Some(p) = self.downloads.progress(&s.image) {
            s.state = outpost_api::SwState::Downloading;
            s.download = Some(outpost_api::DownloadStatus {
                done: p.done,
                total: p.total,
            });
        }
        s
    }

    /// An app by display name, UUID, task ID, or unique UUID prefix.
    pub fn find(&self, key: &str) -> Option<AppStatus> {
        let all = self.statuses.read().unwrap();
        if let Some(s) = all
            .values()
            .find(|s| s.display_name == key || s.uuid == key)
        {
            return Some(s.clone());
        }
        if let Some(s) = all
            .values()
            .find(|s| s.domain.as_ref().is_some_and(|d| d.task_id == key))
        {
            return Some(s.clone());
        }
        let by_prefix: Vec<&AppStatus> = all
            .values()
            .filter(|s| key.len() >= 4 && s.uuid.starts_with(key))
            .collect();
        (by_prefix.len() == 1).then(|| by_prefix[0].clone())
    }

    /// Known names closest to `key` (for "did you mean").
    pub fn suggest(&self, key: &str) -> Vec<String> {
        let all = self.statuses.read().unwrap();
        let mut scored: Vec<(usize, String)> = all
            .values()
            .map(|s| {
                (
                    edit_distance(&key.to_lowercase(), &s.display_name.to_lowercase()),
                    s.display_name.clone(),
                )
            })
            .filter(|(d, n)| *d <= (n.len() / 2).max(2) || n.contains(key))
            .collect();
        scored.sort();
        scored.into_iter().take(3).map(|(_, n)| n).collect()
    }

    /// Bumps an app's local restart/purge counter and wakes the loop.
    pub fn bump_local_counter(&self, uuid: &str, kind: CounterKind) -> anyhow::Result<u64> {
        let v = self.store.bump_local_counter(uuid, kind)?;
        tracing::info!(
            app = uuid,
            ?kind,
            counter = v,
            "local counter bumped by operator"
        );
        self.kick.notify_one();
        Ok(v)
    }

    /// Network instances of the config in effect with the apps on them.
    pub fn networks(&self) -> Vec<crate::admin::types::NetworkView> {
        let Some(cur) = self.current.read().unwrap().clone() else {
            return Vec::new();
        };
        let statuses = self.statuses();
        cur.config
            .networks
            .iter()
            .map(|n| {
                let apps = cur
                    .config
                    .apps
                    .iter()
                    .filter(|a| a.interfaces.iter().any(|i| i.network == n.uuid))
                    .map(|a| {
                        let prefix = format!("{}=", n.uuid);
                        let ip = statuses
                            .iter()
                            .find(|s| s.uuid == a.uuid)
                            .and_then(|s| s.domain.as_ref())
                            .and_then(|d| {
                                d.ips
                                    .iter()
                                    .find_map(|i| i.strip_prefix(&prefix).map(str::to_owned))
                            });
                        format!("{}={}", a.display_name, ip.unwrap_or_else(|| "-".into()))
                    })
                    .collect();
                crate::admin::types::NetworkView {
                    uuid: n.uuid.clone(),
                    name: n.name.clone(),
                    kind: format!("{:?}", n.kind).to_lowercase(),
                    subnet: n.subnet.to_string(),
                    device: match n.kind {
                        outpost_api::NetworkKind::Switch => {
                            n.host_interface.clone().unwrap_or_default()
                        }
                        _ => outpost_runtime::net::conflist::bridge_name(n),
                    },
                    apps,
                }
            })
            .collect()
    }

    /// The admin API's `info`.
    pub fn info(&self) -> crate::admin::types::Info {
        let cur = self.current.read().unwrap();
        crate::admin::types::Info {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            config_generation: cur.as_ref().map(|c| c.config.generation),
            config_source: cur.as_ref().map(|c| c.origin.clone()),
            uptime_secs: self.started.elapsed().as_secs(),
            user_containerd_restarts: self.instance_restarts.load(Ordering::Relaxed),
            events_dropped: self.events_dropped.load(Ordering::Relaxed),
            downloads_refused: self.downloads.refused(),
            config_error: self.config_error.read().unwrap().clone(),
            configs_evaluated: self.progress.evaluated(),
            idle_through: self.progress.idle_through(),
            controller: self.cloud.read().unwrap().as_ref().map(|c| c.view()),
            base_os: super::baseos::view(&self.layout),
        }
    }
}

/// Levenshtein distance (for suggestions; names are short).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("hello", "hello"), 0);
        assert_eq!(edit_distance("helo", "hello"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
