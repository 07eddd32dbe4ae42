//! `outpostd`: wires the store, the user containerd, memlogd, the config
//! sources, the admin API and the reconcile loop together.

pub mod baseos;
pub mod checks;
pub mod cloud;
pub mod downloads;
pub mod driver;
pub mod executor;
mod file_watch;
mod heap;
pub mod images;
pub mod logs;
pub mod reconciler;
pub mod services;
pub mod snapshot;
pub mod source;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use outpost_runtime::instance::{InstanceOptions, InstanceState, UserInstance};
use outpost_runtime::{lease, Layout, Runtime};
use outpost_store::Store;
use tokio::sync::{mpsc, watch, Notify};

use self::driver::ContainerdDriver;
use self::executor::Executor;
use self::reconciler::{Inputs, LoopOptions, Reconciler, SystemClock};
use self::snapshot::{Current, Event, Handle, MemlogdPaths, Snapshot, EVENT_QUEUE};
use self::source::RawConfig;

/// File name of the agent's state database under `/persist/status`.
pub const STATE_DB: &str = "outpost.redb";

/// Daemon settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Root prefix of the device paths.
    pub root: PathBuf,
    /// A local config file to watch.
    pub config_file: Option<PathBuf>,
    /// Directory of OCI layouts to import images from.
    pub images: Option<PathBuf>,
    /// The containerd binary for the user instance.
    pub containerd: PathBuf,
    /// Loop settings.
    pub loop_options: LoopOptions,
    /// Controller link settings (used when `/config/server` exists).
    pub cloud: cloud::CloudOptions,
    /// Service supervisor settings.
    pub services: ServicesSettings,
}

/// Where the device services are and how they are kept running.
#[derive(Clone, Debug, Default)]
pub struct ServicesSettings {
    /// System containerd socket (default: the layout's).
    pub system_socket: Option<PathBuf>,
    /// Declared-services manifest (default: the layout's).
    pub manifest: Option<PathBuf>,
    /// Restart backoff.
    pub backoff: services::backoff::BackoffPolicy,
    /// How often the services are observed.
    pub poll: Duration,
}

/// Runs the agent until SIGTERM/SIGINT. Apps keep running when it exits:
/// the next agent adopts them.
pub async fn run(opts: Options) -> Result<()> {
    let layout = Layout::new(&opts.root);
    for d in [
        layout.persist(),
        layout.status_dir(),
        layout.volumes(),
        layout.fifos(),
        layout.agent_run(),
    ] {
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    let schema_before =
        outpost_upgradeconverter::probe_schema_version(&layout.status_dir().join(STATE_DB));
    let store =
        Store::open(&layout.status_dir().join(STATE_DB)).context("opening the state database")?;
    // Convert what an older agent left before containerd or any app starts.
    let ctx = outpost_upgradeconverter::Context::new(layout.clone(), &store)
        .with_schema_before(schema_before);
    let report = tokio::task::block_in_place(|| outpost_upgradeconverter::run(&ctx, false));
    if report.failed() {
        tracing::error!("upgrade conversion failed in part; starting anyway:\n{report}");
    } else if report.changed() {
        tracing::info!("upgrade conversion:\n{report}");
    }
    let memlogd = MemlogdPaths {
        log_socket: layout.memlogd_log_socket(),
        query_socket: layout.memlogd_query_socket(),
    };

    let mut inst_opts = InstanceOptions::with_log_file(layout.user_state().join("containerd.log"));
    inst_opts.binary = opts.containerd.clone();
    inst_opts.log = logs::daemon_sink(
        &memlogd,
        "containerd-user",
        layout.user_state().join("containerd.log"),
    );
    let (instance, client) = UserInstance::start(&layout, inst_opts)
        .await
        .context("starting the user containerd")?;
    let left = lease::delete_leftovers(&client).await.unwrap_or(0);
    if left > 0 {
        tracing::info!(leases = left, "removed leases left by a previous run");
    }
    // A previous agent killed during a task create can leave a bundle
    // without a task and a shim containerd no longer tracks: repair them
    // before the first pass creates that task again.
    let repaired = outpost_runtime::task::repair::repair_all(&client, &layout).await;
    if !repaired.is_empty() {
        tracing::info!(
            shims_killed = ?repaired.shims_killed,
            bundles_removed = ?repaired.bundles_removed,
            containers_deleted = ?repaired.containers_deleted,
            "repaired task state left by a previous run"
        );
    }
    let runtime = Runtime::new(client.clone(), layout.clone());
    let store = Arc::new(store);

    // The checkpoint is the config until a source says otherwise, so an
    // offline reboot brings the apps back without waiting for anyone.
    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(Snapshot::initial(
        load_checkpoint(&store),
        Instant::now(),
    )));
    let (events_tx, events_rx) = mpsc::channel::<Event>(EVENT_QUEUE);
    let (link_tx, link_rx) = watch::channel(None);
    let services = services::spawn(services::ServicesOptions {
        socket: (opts.services.system_socket.clone()).unwrap_or_else(|| layout.system_socket()),
        manifest: (opts.services.manifest.clone()).unwrap_or_else(|| layout.services_manifest()),
        poll: opts.services.poll.max(Duration::from_millis(100)),
        backoff: opts.services.backoff,
        grace: Duration::from_secs(10),
        memlogd_log: layout.memlogd_log_socket(),
        memlogd_query: layout.memlogd_query_socket(),
        scratch: layout.agent_run().join("services"),
    });

    let handle = Handle {
        snapshot: snapshot_rx,
        events: events_tx,
        layout: layout.clone(),
        runtime: runtime.clone(),
        memlogd: memlogd.clone(),
        store: store.clone(),
        link: Arc::new(link_tx),
        services: services.clone(),
    };

    let admin_socket = layout.agent_run().join(crate::admin::SOCKET_NAME);
    let admin = {
        let handle = handle.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::admin::server::serve(handle, services, &admin_socket).await {
                tracing::error!(error = %format!("{e:#}"), "admin API stopped");
            }
        })
    };
    let (tx, rx) = mpsc::channel::<RawConfig>(8);
    let _watch = opts
        .config_file
        .clone()
        .map(|p| source::watch_file(p, tx.clone()));
    cloud::start(handle.clone(), tx.clone(), opts.cloud.clone());
    let tasks = outpost_runtime::events::subscribe(client, 256);
    {
        // containerd came back: count it and look again.
        let mut watch = instance.watch();
        let handle = handle.clone();
        tokio::spawn(async move {
            while watch.changed().await.is_ok() {
                let up = *watch.borrow_and_update() == InstanceState::Up;
                if up && !handle.tell(Event::InstanceUp).await {
                    return;
                }
            }
        });
    }

    let driver = Arc::new(ContainerdDriver::new(runtime, memlogd, opts.images.clone()));
    let exec = Executor {
        driver,
        downloads: Arc::default(),
        wake: Arc::new(Notify::new()),
    };
    let _base_os_update = baseos::update::spawn(handle.clone());
    let watchdog = baseos::watchdog::Watchdog::start(
        &layout.root().join("dev/watchdog"),
        baseos::watchdog::FEED_EVERY,
    );
    let reconciler = Reconciler::new(
        exec,
        store,
        opts.loop_options.clone(),
        Arc::new(SystemClock),
        snapshot_tx,
    )?;
    let inputs = Inputs {
        configs: source::parse_off_loop(rx),
        events: events_rx,
        tasks: Some(tasks),
        link: link_rx,
    };
    tracing::info!(root = %layout.root().display(), "outpostd running");
    reconciler.run(inputs, shutdown_signal()).await;
    if let Some(w) = watchdog {
        w.disarm().await;
    }
    tracing::info!("outpostd stopping; apps keep running");
    admin.abort();
    let _ = std::fs::remove_file(layout.agent_run().join(crate::admin::SOCKET_NAME));
    drop(instance); // supervision stops; containerd and the apps keep running
    Ok(())
}

fn load_checkpoint(store: &Store) -> Option<Current> {
    for (what, cp) in [
        ("checkpoint", store.applied_config()),
        ("known-good checkpoint", store.known_good_config()),
    ] {
        match cp {
            Ok(Some(cp)) => match source::accept(
                &RawConfig {
                    bytes: cp.raw,
                    origin: what.to_owned(),
                },
                None,
            ) {
                Ok(c) => {
                    tracing::info!(
                        generation = c.config.generation,
                        apps = c.config.apps.len(),
                        "starting from the {what}"
                    );
                    return Some(c);
                }
                Err(e) => tracing::error!("{e}"),
            },
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "reading the {what}"),
        }
    }
    None
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
