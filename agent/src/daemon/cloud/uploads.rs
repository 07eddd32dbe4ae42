//! Info and metrics uploads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use outpost_api::cloud::{AppMetrics, DeviceInfo, DeviceMetrics, HostMetrics};
use outpost_cloud::{Backoff, Client};

use super::link::{contact, failed};
use super::options::CloudOptions;
use crate::daemon::snapshot::{Handle, Snapshot};

/// What an info report is made of, to tell whether a new snapshot changes it
/// (pointers: the loop replaces the config and the statuses only when they
/// change).
#[derive(Clone, PartialEq)]
struct ReportKey {
    config: Option<usize>,
    statuses: usize,
    config_error: Option<String>,
}

impl ReportKey {
    fn of(s: &Snapshot) -> Self {
        ReportKey {
            config: s.current.as_ref().map(|c| Arc::as_ptr(c) as usize),
            statuses: Arc::as_ptr(&s.statuses) as usize,
            config_error: s.config_error.clone(),
        }
    }
}

/// Waits until the loop publishes a snapshot whose report differs from
/// `last` (never returns if the loop has stopped).
async fn report_changed(rx: &mut tokio::sync::watch::Receiver<Arc<Snapshot>>, last: &ReportKey) {
    loop {
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
        if ReportKey::of(&rx.borrow_and_update()) != *last {
            return;
        }
    }
}

/// The device info report: the loop's snapshot, the services as the
/// supervisor last saw them, and the base OS slot state.
pub fn device_info(handle: &Handle, snap: &Snapshot) -> DeviceInfo {
    let cur = snap.current.as_deref();
    let services = handle.services.view().services;
    let base_os = crate::daemon::baseos::view(&handle.layout).map(|v| v.into());
    DeviceInfo {
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        hostname: read_trim("/proc/sys/kernel/hostname"),
        kernel: read_trim("/proc/sys/kernel/osrelease"),
        agent_uptime_secs: snap.started.elapsed().as_secs(),
        reported_at: now_rfc3339(),
        config_generation: cur.map(|c| c.config.generation).unwrap_or(0),
        config_origin: cur.map(|c| c.origin.clone()).unwrap_or_default(),
        config_error: snap.config_error.clone(),
        apps: snap.statuses(),
        services,
        base_os,
    }
}

pub(super) async fn info_loop(handle: Handle, client: Client, uuid: String, opts: CloudOptions) {
    let mut backoff = Backoff::new(Duration::from_secs(1), opts.backoff_max);
    let mut rx = handle.snapshot.clone();
    let mut services = handle.services.watch();
    loop {
        let snap = rx.borrow_and_update().clone();
        services.borrow_and_update();
        let key = ReportKey::of(&snap);
        let info = device_info(&handle, &snap);
        match client.post_info(&uuid, &info).await {
            Ok(()) => {
                contact(&handle);
                backoff.reset();
            }
            Err(e) => {
                tracing::debug!("info upload: {e}");
                failed(&handle, &e);
                // Only the newest info matters: retry with backoff, but a
                // change wakes it up sooner.
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = report_changed(&mut rx, &key) => {}
                    Ok(()) = services.changed() => {}
                }
                continue;
            }
        }
        tokio::select! {
            Ok(()) = services.changed() => {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            _ = report_changed(&mut rx, &key) => {
                // Let a burst of changes settle into one report.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            _ = tokio::time::sleep(opts.info_interval) => {}
        }
    }
}

pub(super) async fn metrics_loop(handle: Handle, client: Client, uuid: String, opts: CloudOptions) {
    loop {
        let m = sample_metrics(&handle).await;
        if let Err(e) = client.post_metrics(&uuid, &m).await {
            tracing::debug!("metrics upload: {e}");
            failed(&handle, &e);
        } else {
            contact(&handle);
        }
        tokio::time::sleep(opts.metrics_interval).await;
    }
}

/// Device-wide and per-app figures (per-app from the tasks' cgroups).
pub async fn sample_metrics(handle: &Handle) -> DeviceMetrics {
    let snap = handle.now();
    let mut apps = Vec::new();
    for st in snap.statuses() {
        let Some(d) = st.domain.as_ref().filter(|d| d.pid.is_some()) else {
            continue;
        };
        if let Ok(m) = handle.runtime.metrics(&d.task_id).await {
            apps.push(AppMetrics {
                uuid: st.uuid.clone(),
                name: st.display_name.clone(),
                mem_bytes: m.memory_usage,
                cpu_ns: m.cpu_ns,
            });
        }
    }
    let mut drops = BTreeMap::new();
    drops.insert(
        "containerd_events_dropped".to_owned(),
        snap.counters.events_dropped,
    );
    if let Some(link) = snap.link.as_ref() {
        let v = link.view();
        drops.insert("log_batches_dropped".to_owned(), v.log_batches_dropped);
        drops.insert("log_lines_dropped".to_owned(), v.log_lines_dropped);
    }
    DeviceMetrics {
        at: now_rfc3339(),
        device: host_metrics(),
        apps,
        drops,
    }
}

fn host_metrics() -> HostMetrics {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |key: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            .saturating_mul(1024)
    };
    // First line of /proc/stat: user nice system idle iowait irq softirq steal … in USER_HZ.
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    let busy: u64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| *t)
        .sum();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as u64;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
        .saturating_mul(1024);
    HostMetrics {
        mem_total_bytes: kib("MemTotal:"),
        mem_available_bytes: kib("MemAvailable:"),
        cpu_busy_ns: busy.saturating_mul(1_000_000_000 / hz),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        uptime_secs: read_trim("/proc/uptime")
            .split('.')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        agent_rss_bytes: rss,
    }
}

pub(super) fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
