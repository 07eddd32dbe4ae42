//! The controller link: onboarding, the signed config long-poll (one more
//! sender on the config channel), and uploads of info, metrics and logs.
//!
//! Nothing here blocks the device: until the controller answers, the agent
//! runs the checkpoint (or, on a first boot, the signed bootstrap config).
//! Reconnects back off exponentially with full jitter.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_api::cloud::{
    AppMetrics, BootstrapConfig, DeviceInfo, DeviceMetrics, HostMetrics, RegisterRequest,
};
use outpost_cloud::logq::{Cursor, LogQueue};
use outpost_cloud::{Backoff, Bundle, Client, CloudError, IdentityStore, Poll, Verifier};
use tokio::sync::{mpsc, Notify};

use crate::admin::types::ControllerView;
use crate::daemon::source::RawConfig;
use crate::daemon::state::Shared;

/// Origin of configs from the controller.
pub const ORIGIN_CONTROLLER: &str = "controller";
/// Origin of the bootstrap config.
pub const ORIGIN_BOOTSTRAP: &str = "bootstrap";

/// Controller link settings.
#[derive(Clone, Debug)]
pub struct CloudOptions {
    /// Long-poll wait asked of the controller.
    pub poll_wait: Duration,
    /// Info is sent on change and at least this often.
    pub info_interval: Duration,
    /// Metrics interval.
    pub metrics_interval: Duration,
    /// Longest time a log line waits before its batch is cut.
    pub log_flush: Duration,
    /// Bound of the on-disk log queue, bytes.
    pub logq_bytes: u64,
    /// Longest reconnect backoff.
    pub backoff_max: Duration,
}

impl Default for CloudOptions {
    fn default() -> Self {
        CloudOptions {
            poll_wait: Duration::from_secs(60),
            info_interval: Duration::from_secs(60),
            metrics_interval: Duration::from_secs(60),
            log_flush: Duration::from_secs(5),
            logq_bytes: 16 << 20,
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// Most lines in one log batch.
const BATCH_LINES: usize = 1000;
/// Most bytes (uncompressed) in one log batch.
const BATCH_BYTES: usize = 256 << 10;

/// The link's state, for `outpost status`.
#[derive(Clone, Debug)]
pub struct CloudLink {
    server: String,
    uuid: Option<String>,
    name: Option<String>,
    state: &'static str,
    last_contact: Option<Instant>,
    last_error: Option<String>,
    queue: Option<Arc<LogQueue>>,
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

fn update(shared: &Shared, f: impl FnOnce(&mut CloudLink)) {
    if let Some(l) = shared.cloud.write().unwrap().as_mut() {
        f(l);
    }
}

fn contact(shared: &Shared) {
    update(shared, |l| {
        l.state = "connected";
        l.last_contact = Some(Instant::now());
        l.last_error = None;
    });
}

fn failed(shared: &Shared, e: &CloudError) {
    update(shared, |l| {
        if l.state == "connected" {
            l.state = "unreachable";
        }
        l.last_error = Some(e.to_string());
    });
}

/// Starts the link when `/config/server` names a controller. Returns at
/// once; the work runs in background tasks.
pub fn start(shared: Arc<Shared>, tx: mpsc::Sender<RawConfig>, opts: CloudOptions) {
    let dir = shared.layout.config_dir();
    let bundle = match Bundle::load(&dir) {
        Ok(Some(b)) => b,
        Ok(None) => {
            tracing::info!(
                dir = %dir.display(),
                "no controller configured (no `server` file); local config only"
            );
            return;
        }
        Err(e) => {
            tracing::error!("controller bundle unusable, running without a controller: {e}");
            return;
        }
    };
    *shared.cloud.write().unwrap() = Some(CloudLink {
        server: bundle.server.clone(),
        uuid: None,
        name: None,
        state: "onboarding",
        last_contact: None,
        last_error: None,
        queue: None,
    });
    tokio::spawn(async move {
        if let Err(e) = run(shared.clone(), tx, bundle, opts).await {
            tracing::error!("controller link stopped: {e}");
            update(&shared, |l| {
                l.state = "stopped";
                l.last_error = Some(e.to_string());
            });
        }
    });
}

async fn run(
    shared: Arc<Shared>,
    tx: mpsc::Sender<RawConfig>,
    bundle: Bundle,
    opts: CloudOptions,
) -> Result<(), CloudError> {
    let no_config = shared.current.read().unwrap().is_none();
    if no_config {
        match bootstrap(&bundle) {
            Ok(Some(raw)) => {
                tracing::info!(
                    "first boot without a checkpoint: using the signed bootstrap config"
                );
                let _ = tx.send(raw).await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("bootstrap config refused: {e}");
                shared.progress.config_evaluated();
                *shared.config_error.write().unwrap() = Some(format!("bootstrap config: {e}"));
                shared.kick.notify_one();
            }
        }
    }

    let ids = IdentityStore::new(shared.layout.persist().join("certs"));
    let mut backoff = Backoff::new(Duration::from_secs(1), opts.backoff_max);
    let identity = loop {
        match onboard(&bundle, &ids).await {
            Ok(id) => break id,
            Err(e) => {
                tracing::warn!("onboarding: {e}");
                failed(&shared, &e);
                update(&shared, |l| l.state = "onboarding");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    };
    backoff.reset();
    tracing::info!(
        uuid = identity.uuid,
        name = identity.name,
        server = bundle.server,
        "registered with the controller"
    );
    let client = Client::new(
        &bundle.server,
        &bundle.root_pem,
        Some((&identity.cert_pem, &identity.key_pem)),
    )?;
    let queue = Arc::new(LogQueue::open(
        &shared.layout.persist().join("cloud").join("logq"),
        opts.logq_bytes,
    )?);
    update(&shared, |l| {
        l.uuid = Some(identity.uuid.clone());
        l.name = Some(identity.name.clone());
        l.queue = Some(queue.clone());
    });

    let uuid = identity.uuid.clone();
    tokio::spawn(info_loop(
        shared.clone(),
        client.clone(),
        uuid.clone(),
        opts.clone(),
    ));
    tokio::spawn(metrics_loop(
        shared.clone(),
        client.clone(),
        uuid.clone(),
        opts.clone(),
    ));
    let wake = Arc::new(Notify::new());
    spawn_log_reader(&shared, queue.clone(), wake.clone(), opts.log_flush);
    tokio::spawn(log_upload_loop(
        shared.clone(),
        client.clone(),
        uuid.clone(),
        queue,
        wake,
        opts.backoff_max,
    ));
    config_loop(shared, client, bundle.root_pem, uuid, tx, opts).await;
    Ok(())
}

/// Reads and checks `/config/bootstrap-config.json`.
fn bootstrap(bundle: &Bundle) -> Result<Option<RawConfig>, CloudError> {
    let Some(bytes) = bundle.bootstrap()? else {
        return Ok(None);
    };
    let path = bundle.dir.join(outpost_cloud::bundle::BOOTSTRAP);
    let b: BootstrapConfig = serde_json::from_slice(&bytes).map_err(|e| CloudError::BadFile {
        path: path.clone(),
        what: e.to_string(),
    })?;
    let mut v = Verifier::new(&bundle.root_pem)?;
    v.set_signing_cert(b.signing_cert_pem.as_bytes())?;
    let opened = v.open(&b.config)?;
    if let Some(d) = &opened.payload.device {
        return Err(CloudError::Signature(format!(
            "a bootstrap config must not name a device (it names {d})"
        )));
    }
    // Any config from the controller replaces it: its generation is 0.
    let mut config = opened.payload.config;
    if let Some(obj) = config.as_object_mut() {
        obj.insert("generation".into(), 0.into());
    }
    Ok(Some(RawConfig {
        bytes: serde_json::to_vec(&config).expect("serialisable"),
        origin: ORIGIN_BOOTSTRAP.into(),
    }))
}

/// The saved identity, or a registration with the onboarding certificate.
async fn onboard(
    bundle: &Bundle,
    ids: &IdentityStore,
) -> Result<outpost_cloud::DeviceIdentity, CloudError> {
    if let Some(id) = ids.load(&bundle.server)? {
        return Ok(id);
    }
    let Some((cert, key)) = &bundle.onboard else {
        return Err(CloudError::BadFile {
            path: bundle.dir.join(outpost_cloud::bundle::ONBOARD_CERT),
            what: "missing, and this device is not registered yet".into(),
        });
    };
    let serial = ids.serial(bundle.serial.as_deref())?;
    let client = Client::new(&bundle.server, &bundle.root_pem, Some((cert, key)))?;
    let resp = client
        .register(&RegisterRequest {
            csr_pem: ids.csr_pem(&serial)?,
            serial,
        })
        .await?;
    ids.save(&bundle.server, &resp)
}

async fn config_loop(
    shared: Arc<Shared>,
    client: Client,
    root_pem: Vec<u8>,
    uuid: String,
    tx: mpsc::Sender<RawConfig>,
    opts: CloudOptions,
) {
    let mut verifier = match Verifier::new(&root_pem) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!("config verification impossible: {e}");
            return;
        }
    };
    let mut backoff = Backoff::new(Duration::from_secs(1), opts.backoff_max);
    let mut etag: Option<String> = None;
    loop {
        if !verifier.has_signing_cert() {
            let r = client.signing_cert().await.and_then(|pem| {
                verifier.set_signing_cert(pem.as_bytes())?;
                Ok(())
            });
            if let Err(e) = r {
                tracing::warn!("fetching the signing certificate: {e}");
                failed(&shared, &e);
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        }
        let asked = Instant::now();
        match client
            .poll_config(&uuid, etag.as_deref(), opts.poll_wait)
            .await
        {
            Ok(Poll::Changed {
                envelope,
                etag: header_etag,
            }) => {
                contact(&shared);
                backoff.reset();
                match verifier.open(&envelope) {
                    Ok(opened) if opened.payload.device.as_deref() == Some(uuid.as_str()) => {
                        etag = Some(opened.etag);
                        let raw = RawConfig {
                            bytes: serde_json::to_vec(&opened.payload.config)
                                .expect("serialisable"),
                            origin: ORIGIN_CONTROLLER.into(),
                        };
                        if tx.send(raw).await.is_err() {
                            return;
                        }
                    }
                    Ok(opened) => {
                        etag = Some(opened.etag);
                        refuse(
                            &shared,
                            &format!(
                                "config for device {:?} sent to device {uuid}",
                                opened.payload.device
                            ),
                        );
                    }
                    Err(e) => {
                        // Maybe the signing certificate was replaced: fetch it
                        // again before the next poll, and do not ask for this
                        // same document again until it changes.
                        verifier = Verifier::new(&root_pem).expect("checked above");
                        etag = header_etag;
                        refuse(&shared, &e.to_string());
                    }
                }
            }
            Ok(Poll::NotModified) => {
                contact(&shared);
                backoff.reset();
            }
            Ok(Poll::Empty) => {
                contact(&shared);
                backoff.reset();
                // Nothing to wait on yet: do not spin if the controller
                // answers at once.
                let min = opts.poll_wait.min(Duration::from_secs(5));
                if asked.elapsed() < min {
                    tokio::time::sleep(min - asked.elapsed()).await;
                }
            }
            Err(e) => {
                tracing::warn!("config poll: {e}");
                failed(&shared, &e);
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

fn refuse(shared: &Shared, why: &str) {
    tracing::error!(
        "config from the controller refused: {why}; the config in effect keeps running"
    );
    shared.progress.config_evaluated();
    *shared.config_error.write().unwrap() =
        Some(format!("config from the controller refused: {why}"));
    shared.status_changed.notify_one();
    // A pass after the refusal lets `Progress` show it changed nothing.
    shared.kick.notify_one();
}

/// The device info report.
pub fn device_info(shared: &Shared) -> DeviceInfo {
    let cur = shared.current.read().unwrap().clone();
    DeviceInfo {
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        hostname: read_trim("/proc/sys/kernel/hostname"),
        kernel: read_trim("/proc/sys/kernel/osrelease"),
        agent_uptime_secs: shared.started.elapsed().as_secs(),
        reported_at: now_rfc3339(),
        config_generation: cur.as_ref().map(|c| c.config.generation).unwrap_or(0),
        config_origin: cur.as_ref().map(|c| c.origin.clone()).unwrap_or_default(),
        config_error: shared.config_error.read().unwrap().clone(),
        apps: shared.statuses(),
    }
}

async fn info_loop(shared: Arc<Shared>, client: Client, uuid: String, opts: CloudOptions) {
    let mut backoff = Backoff::new(Duration::from_secs(1), opts.backoff_max);
    loop {
        let info = device_info(&shared);
        match client.post_info(&uuid, &info).await {
            Ok(()) => {
                contact(&shared);
                backoff.reset();
            }
            Err(e) => {
                tracing::debug!("info upload: {e}");
                failed(&shared, &e);
                // Only the newest info matters: retry with backoff, but a
                // change wakes it up sooner.
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = shared.status_changed.notified() => {}
                }
                continue;
            }
        }
        tokio::select! {
            _ = shared.status_changed.notified() => {
                // Let a burst of changes settle into one report.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            _ = tokio::time::sleep(opts.info_interval) => {}
        }
    }
}

async fn metrics_loop(shared: Arc<Shared>, client: Client, uuid: String, opts: CloudOptions) {
    loop {
        let m = sample_metrics(&shared).await;
        if let Err(e) = client.post_metrics(&uuid, &m).await {
            tracing::debug!("metrics upload: {e}");
            failed(&shared, &e);
        } else {
            contact(&shared);
        }
        tokio::time::sleep(opts.metrics_interval).await;
    }
}

/// Device-wide and per-app figures (per-app from the tasks' cgroups).
pub async fn sample_metrics(shared: &Shared) -> DeviceMetrics {
    let mut apps = Vec::new();
    for st in shared.statuses() {
        let Some(d) = st.domain.as_ref().filter(|d| d.pid.is_some()) else {
            continue;
        };
        if let Ok(m) = shared.runtime.metrics(&d.task_id).await {
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
        shared
            .events_dropped
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    if let Some(link) = shared.cloud.read().unwrap().as_ref() {
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

/// The app a memlogd source belongs to (`guest_vm[_err]-<uuid>.<version>.<n>`).
fn app_of_source(source: &str) -> Option<String> {
    let task = source
        .strip_prefix("guest_vm_err-")
        .or_else(|| source.strip_prefix("guest_vm-"))?;
    Some(task.split('.').next()?.to_owned())
}

/// A thread that follows memlogd and cuts batches into the queue. It
/// resumes after the queue's cursor, so lines queued before an agent
/// restart are not queued again. Within one boot only: memlogd's ring
/// starts empty after a reboot, and a clock that went back must not hide
/// new lines.
fn spawn_log_reader(shared: &Shared, queue: Arc<LogQueue>, wake: Arc<Notify>, flush: Duration) {
    let query = shared.memlogd.query_socket.clone();
    let boot_file = shared.layout.persist().join("cloud").join("logq-boot-id");
    std::thread::Builder::new()
        .name("log-shipper".into())
        .spawn(move || {
            let boot = read_trim("/proc/sys/kernel/random/boot_id");
            let same_boot = std::fs::read_to_string(&boot_file)
                .map(|b| b.trim() == boot)
                .unwrap_or(false);
            let mut cursor = if same_boot {
                queue.cursor()
            } else {
                Cursor::default()
            };
            let _ = std::fs::write(&boot_file, &boot);
            // The reader feeds a bounded channel; when the batcher is
            // behind, memlogd drops for this reader and counts it.
            let (etx, erx) = std::sync::mpsc::sync_channel::<memlogd::LogEntry>(4096);
            {
                let query = query.clone();
                std::thread::Builder::new()
                    .name("log-follow".into())
                    .spawn(move || loop {
                        match memlogd::follow(&query, memlogd::FollowFrom::Oldest, None) {
                            Ok(stream) => {
                                for e in stream {
                                    match e {
                                        Ok(e) => {
                                            if etx.send(e).is_err() {
                                                return;
                                            }
                                        }
                                        Err(_) => break,
                                    }
                                }
                            }
                            Err(e) => tracing::debug!("memlogd follow: {e}"),
                        }
                        std::thread::sleep(Duration::from_secs(2));
                    })
                    .expect("spawning the log follower");
            }
            let mut batch: Vec<String> = Vec::new();
            let mut bytes = 0usize;
            let mut first_at: Option<Instant> = None;
            let (mut last_nanos, mut nth) = (i128::MIN, 0u32);
            loop {
                let timeout = first_at
                    .map(|t| flush.saturating_sub(t.elapsed()))
                    .unwrap_or(Duration::from_secs(3600));
                match erx.recv_timeout(timeout) {
                    Ok(e) => {
                        let nanos = e.time.unix_timestamp_nanos();
                        if nanos == last_nanos {
                            nth += 1;
                        } else {
                            (last_nanos, nth) = (nanos, 1);
                        }
                        if cursor.covers(nanos, nth) {
                            continue;
                        }
                        cursor = Cursor { nanos, same: nth };
                        let line = serde_json::to_string(&outpost_api::cloud::LogEntry {
                            time: e
                                .time
                                .format(&time::format_description::well_known::Rfc3339)
                                .unwrap_or_default(),
                            app: app_of_source(&e.source),
                            source: e.source,
                            msg: e.msg,
                        })
                        .expect("serialisable");
                        bytes += line.len();
                        batch.push(line);
                        first_at.get_or_insert_with(Instant::now);
                        if batch.len() < BATCH_LINES && bytes < BATCH_BYTES {
                            continue;
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
                if batch.is_empty() {
                    continue;
                }
                if let Err(e) = queue.push(&batch, cursor) {
                    tracing::error!("queueing a log batch: {e}");
                }
                batch.clear();
                bytes = 0;
                first_at = None;
                wake.notify_one();
            }
        })
        .expect("spawning the log shipper");
}

async fn log_upload_loop(
    shared: Arc<Shared>,
    client: Client,
    uuid: String,
    queue: Arc<LogQueue>,
    wake: Arc<Notify>,
    backoff_max: Duration,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), backoff_max);
    loop {
        let next = {
            let q = queue.clone();
            tokio::task::spawn_blocking(move || q.oldest())
                .await
                .expect("queue read")
        };
        match next {
            Ok(Some((seq, body))) => match client.post_logs(&uuid, seq, body).await {
                Ok(ack) if ack.acked >= seq => {
                    contact(&shared);
                    backoff.reset();
                    queue.ack(ack.acked);
                }
                Ok(ack) => {
                    tracing::warn!(
                        batch = seq,
                        acked = ack.acked,
                        "controller did not take the log batch"
                    );
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => {
                    tracing::debug!("log upload: {e}");
                    failed(&shared, &e);
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            },
            Ok(None) => {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                }
            }
            Err(e) => {
                tracing::error!("log queue: {e}");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_of_source_names_the_uuid() {
        assert_eq!(app_of_source("guest_vm-1a2b.1.0").as_deref(), Some("1a2b"));
        assert_eq!(
            app_of_source("guest_vm_err-1a2b.1.0").as_deref(),
            Some("1a2b")
        );
        assert_eq!(app_of_source("outpostd"), None);
    }
}
