//! Command implementations: each prints for a human (or JSON with --json).

mod baseos;
mod device;
mod format;
mod logs;
mod metrics;
mod tokens;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
pub use baseos::BaseOsCommand;
use clap::Subcommand;
use outpost_controller::admin::client::AdminClient;
use outpost_controller::admin::types::ServerView;
use outpost_controller::init::InitOptions;
use outpost_controller::{ControllerError, ServeOptions, Server, StateDir};
pub use tokens::TokenCommand;

/// `outpost-controller device …`.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Name, UUID, serial, last seen, config generation applied/set, apps.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Put a device on the onboarding list (its UUID is assigned now).
    Add {
        /// Device name.
        name: String,
        /// The device's serial number.
        #[arg(long)]
        serial: String,
    },
    /// Delete a device and everything stored for it (its certificate stops working).
    Delete {
        /// UUID or name.
        device: String,
    },
    /// Revoke a device: its certificates are refused on every replica from
    /// its next request on (held long-polls end), it may not renew nor
    /// register again. Its data stays (delete it to remove that).
    Revoke {
        /// UUID or name.
        device: String,
    },
    /// Sign and publish a config; prints the generation.
    /// `set-config DEVICE FILE`, or `set-config --all FILE` for every device.
    SetConfig {
        /// DEVICE (UUID or name) and FILE (YAML or JSON); only FILE with --all.
        #[arg(num_args = 1..=2, required = true, value_names = ["DEVICE", "FILE"])]
        args: Vec<String>,
        /// Every device (one transaction; each device gets its next generation).
        #[arg(long)]
        all: bool,
    },
    /// Last info: apps and states, config generation and error.
    Status {
        /// UUID or name.
        device: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Latest metrics (CPU from the last two samples).
    Metrics {
        /// UUID or name.
        device: String,
        /// Samples to fetch (with --json).
        #[arg(short = 'n', default_value_t = 2)]
        n: usize,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Stored logs, optionally of one app; -f follows.
    Logs {
        /// UUID or name.
        device: String,
        /// App name or UUID.
        app: Option<String>,
        /// Keep printing new lines.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(short = 'n', long)]
        lines: Option<usize>,
    },
}

/// What `main` asks for.
pub enum Action {
    Init(InitOptions),
    Serve {
        listen: Option<String>,
        open_onboarding: bool,
        admin_listen: Option<String>,
        database: Option<String>,
        database_ca: Option<PathBuf>,
        device_cert_lifetime: std::time::Duration,
        /// Largest base OS artifact, artifacts kept.
        base_os: (u64, usize),
    },
    Token(TokenCommand),
    SigningRotate {
        overlap: std::time::Duration,
    },
    Device(DeviceCommand),
    BaseOs(BaseOsCommand),
    SignBootstrap {
        file: PathBuf,
        output: PathBuf,
    },
    Stats {
        json: bool,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs one command.
pub fn run(state: PathBuf, command: crate::Command) -> Result<()> {
    let state = StateDir::new(state);
    match command.into_action() {
        Action::Init(opts) => init(&state, &opts),
        Action::Serve {
            listen,
            open_onboarding,
            admin_listen,
            database,
            database_ca,
            device_cert_lifetime,
            base_os,
        } => {
            let mut opts = ServeOptions::new(state);
            opts.listen = listen;
            opts.open_onboarding = open_onboarding;
            opts.admin_listen = admin_listen;
            opts.database = database;
            opts.database_ca = database_ca;
            opts.certs.device_lifetime = device_cert_lifetime;
            (opts.limits.max_base_os_bytes, opts.limits.base_os_kept) = base_os;
            runtime()?.block_on(serve(opts))
        }
        Action::Token(cmd) => {
            state.require_initialised()?;
            tokens::run(&state, cmd)
        }
        Action::SigningRotate { overlap } => {
            let r = outpost_controller::certs::signing::rotate(
                &state,
                overlap,
                time::OffsetDateTime::now_utc(),
            )?;
            println!(
                "new signing certificate {}; {} stays served until {}",
                r.new_fingerprint, r.old_fingerprint, r.serve_until
            );
            println!(
                "restart `serve` (copy signing.* and signing-retired.json to every replica first)"
            );
            Ok(())
        }
        Action::SignBootstrap { file, output } => {
            let warnings = outpost_controller::bootstrap::sign_bootstrap(&state, &file, &output)?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            println!("signed bootstrap config written to {}", output.display());
            Ok(())
        }
        Action::Device(cmd) => {
            state.require_initialised()?;
            let client = AdminClient::new(&state.admin_socket());
            runtime()?.block_on(device::run(&client, cmd))
        }
        Action::BaseOs(cmd) => {
            state.require_initialised()?;
            let client = AdminClient::new(&state.admin_socket());
            runtime()?.block_on(baseos::run(&client, cmd))
        }
        Action::Stats { json } => {
            state.require_initialised()?;
            let client = AdminClient::new(&state.admin_socket());
            let view: ServerView = runtime()?.block_on(client.get("/v1/server"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                println!("version          {}", view.version);
                println!("open onboarding  {}", view.open_onboarding);
                println!("devices          {}", view.devices);
                for (name, value) in view.stats.pairs() {
                    println!("{name:<22} {value}");
                }
            }
            Ok(())
        }
    }
}

fn init(state: &StateDir, opts: &InitOptions) -> Result<()> {
    let report = outpost_controller::init::init(state, opts)?;
    println!("controller state in {}", state.root().display());
    println!("server certificate for: {}", report.server_names.join(", "));
    println!(
        "serve will listen on {} (override with serve --listen)",
        report.listen
    );
    println!(
        "device bundle in {}: copy its files to the device's /config",
        report.bundle.display()
    );
    Ok(())
}

async fn serve(opts: ServeOptions) -> Result<()> {
    let server = Server::bind(opts).await?;
    let addr = server.local_addr();
    let mut out = std::io::stdout();
    if let Some(admin) = server.admin_addr() {
        writeln!(out, "admin API and console on https://{admin}/console")?;
    }
    writeln!(out, "listening on https://{addr}")?;
    out.flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let stop = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    server.run(stop).await?;
    Ok(())
}

/// Prints an error, with suggestions when the admin API gave some.
pub fn print_error(e: &anyhow::Error) {
    if let Some(ControllerError::AdminRefused {
        message,
        suggestions,
        ..
    }) = e.downcast_ref::<ControllerError>()
    {
        eprintln!("error: {message}");
        if !suggestions.is_empty() {
            eprintln!("  did you mean: {}?", suggestions.join(", "));
        }
        return;
    }
    eprintln!("error: {e:#}");
}
