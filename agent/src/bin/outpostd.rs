//! `outpostd`: the device agent.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use outpost_agent::daemon::{self, reconciler::LoopOptions};

/// Makes the device match its declarative config, forever.
#[derive(Debug, Parser)]
#[command(name = "outpostd", version)]
struct Args {
    /// Root prefix of the device paths (`/` on a device; a directory in development).
    #[arg(long, default_value = "/", env = "OUTPOST_ROOT")]
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outpost_agent::logging::init("outpostd");
    let a = Args::parse();
    let mut lo = LoopOptions {
        resync: Duration::from_secs(a.resync_secs.max(1)),
        known_good_after: Duration::from_secs(a.known_good_secs),
        ..LoopOptions::default()
    };
    lo.tunables.backoff_initial_ms = a.backoff_initial_ms;
    lo.tunables.backoff_max_ms = a.backoff_max_ms;
    daemon::run(daemon::Options {
        root: a.root,
        config_file: a.config_file,
        images: a.images,
        containerd: a.containerd,
        loop_options: lo,
    })
    .await
}
