//! `outpostd`: the device agent.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use outpost_agent::daemon::{self, reconciler::LoopOptions};

/// Makes the device match its declarative config, forever.
#[derive(Debug, Parser)]
#[command(name = "outpostd", version)]
struct Args {
    /// Without a subcommand: run the agent.
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Root prefix of the device paths (`/` on a device; a directory in development).
    #[arg(long, default_value = "/", env = "OUTPOST_ROOT", global = true)]
    root: PathBuf,
    /// Watch this device config file (YAML or JSON).
    #[arg(long)]
    config_file: Option<PathBuf>,
    /// Import missing images from OCI layouts in this directory (`<name>/index.json`).
    #[arg(long)]
    images: Option<PathBuf>,
    /// containerd binary for the user instance.
    #[arg(long, default_value = "containerd")]
    containerd: PathBuf,
    /// Seconds between resyncs when nothing happens.
    #[arg(long, default_value_t = 30)]
    resync_secs: u64,
    /// Seconds of healthy running before a config becomes known-good.
    #[arg(long, default_value_t = 600)]
    known_good_secs: u64,
    /// First restart backoff, milliseconds (doubles up to --backoff-max-ms).
    #[arg(long, default_value_t = 10_000)]
    backoff_initial_ms: u64,
    /// Longest restart backoff, milliseconds.
    #[arg(long, default_value_t = 300_000)]
    backoff_max_ms: u64,
    /// Seconds before an image no config uses is deleted.
    #[arg(long, default_value_t = 600)]
    image_gc_secs: u64,
    /// Controller config long-poll: seconds the controller may hold a request.
    #[arg(long, default_value_t = 60)]
    controller_wait_secs: u64,
    /// Seconds between info reports (they are also sent on every change).
    #[arg(long, default_value_t = 60)]
    info_interval_secs: u64,
    /// Seconds between metrics reports.
    #[arg(long, default_value_t = 60)]
    metrics_interval_secs: u64,
    /// Longest a log line waits before its batch is uploaded, milliseconds.
    #[arg(long, default_value_t = 5000)]
    log_flush_ms: u64,
    /// Bound of the on-disk log upload queue, MiB (oldest batches dropped, counted).
    #[arg(long, default_value_t = 16)]
    log_queue_mib: u64,
    /// Longest reconnect backoff to the controller, seconds.
    #[arg(long, default_value_t = 60)]
    controller_backoff_max_secs: u64,
    /// System containerd socket (default: <root>/run/containerd/containerd.sock).
    #[arg(long)]
    system_socket: Option<PathBuf>,
    /// Services the image declares (default: <root>/etc/outpost/services.json).
    #[arg(long)]
    services_manifest: Option<PathBuf>,
    /// First restart delay of a declared service that exited, milliseconds
    /// (doubles up to --service-backoff-max-ms).
    #[arg(long, default_value_t = 1000)]
    service_backoff_initial_ms: u64,
    /// Longest restart delay of a declared service, milliseconds.
    #[arg(long, default_value_t = 60_000)]
    service_backoff_max_ms: u64,
    /// Milliseconds between observations of the services when no task
    /// event comes (exits are seen at once through events).
    #[arg(long, default_value_t = 10_000)]
    service_poll_ms: u64,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Convert what an older agent left in /persist (the agent also does
    /// this at start, before any app starts), print what changed, and exit.
    UpgradeConvert {
        /// Print what would change and change nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
}

/// `outpostd upgrade-convert`: exits 1 when a handler failed.
fn upgrade_convert(root: PathBuf, dry_run: bool) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use outpost_upgradeconverter::{run, Context, OpenedStore};
    let layout = outpost_runtime::Layout::new(root);
    if !dry_run {
        std::fs::create_dir_all(layout.status_dir())
            .with_context(|| format!("creating {}", layout.status_dir().display()))?;
    }
    let s = OpenedStore::open(&layout.status_dir().join(daemon::STATE_DB), dry_run)
        .context("opening the state database (is outpostd running?)")?;
    let report = run(
        &Context::new(layout, &s.store).with_schema_before(s.schema_before),
        dry_run,
    );
    print!("{report}");
    if report.failed() {
        std::process::exit(1);
    }
    Ok(())
}

// At least two workers, also on a one-CPU device: a task that blocks its
// worker for a while (a slow fsync under emulation) must not stall the
// watchdog feeder and the admin API with it.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    outpost_agent::logging::init("outpostd");
    let a = Args::parse();
    if let Some(Cmd::UpgradeConvert { dry_run }) = a.command {
        return upgrade_convert(a.root, dry_run);
    }
    let on_device = a.root == std::path::Path::new("/");
    if on_device {
        outpost_agent::logging::fatal_to_kernel_log("outpostd");
    }
    let mut lo = LoopOptions {
        resync: Duration::from_secs(a.resync_secs.max(1)),
        known_good_after: Duration::from_secs(a.known_good_secs),
        ..LoopOptions::default()
    };
    lo.tunables.backoff_initial_ms = a.backoff_initial_ms;
    lo.tunables.backoff_max_ms = a.backoff_max_ms;
    lo.image_gc_grace = Duration::from_secs(a.image_gc_secs);
    let r = daemon::run(daemon::Options {
        root: a.root,
        config_file: a.config_file,
        images: a.images,
        containerd: a.containerd,
        loop_options: lo,
        cloud: daemon::cloud::CloudOptions {
            poll_wait: Duration::from_secs(
                a.controller_wait_secs
                    .clamp(1, outpost_api::cloud::MAX_WAIT_SECS),
            ),
            info_interval: Duration::from_secs(a.info_interval_secs.max(1)),
            metrics_interval: Duration::from_secs(a.metrics_interval_secs.max(1)),
            log_flush: Duration::from_millis(a.log_flush_ms.max(10)),
            logq_bytes: a.log_queue_mib.max(1) << 20,
            backoff_max: Duration::from_secs(a.controller_backoff_max_secs.max(1)),
        },
        services: daemon::ServicesSettings {
            system_socket: a.system_socket,
            manifest: a.services_manifest,
            backoff: daemon::services::backoff::BackoffPolicy {
                initial: Duration::from_millis(a.service_backoff_initial_ms.max(1)),
                max: Duration::from_millis(a.service_backoff_max_ms.max(1)),
                reset_after: Duration::from_secs(60),
            },
            poll: Duration::from_millis(a.service_poll_ms),
        },
    })
    .await;
    if let (Err(e), true) = (&r, on_device) {
        outpost_agent::logging::kmsg(&format!("outpostd: exiting: {e:#}"));
    }
    r
}
