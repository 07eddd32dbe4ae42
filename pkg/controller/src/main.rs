//! `outpost-controller`: the reference controller's server and admin CLI.
//! The logic is in the library; this file parses arguments and prints.

mod cli;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use outpost_controller::layout::DEFAULT_STATE_DIR;

/// Outpost reference controller: onboarding, signed configs, uploads.
#[derive(Debug, Parser)]
#[command(name = "outpost-controller", version)]
struct Cli {
    /// State directory (keys, certificates, database, admin socket).
    #[arg(long, global = true, env = "OUTPOST_CONTROLLER_STATE", default_value = DEFAULT_STATE_DIR)]
    state: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the CA, certificates, database and the device /config bundle.
    Init {
        /// HOST:PORT the devices connect to (written to the bundle's `server`).
        #[arg(long)]
        server: String,
        /// Another DNS name or IP address for the server certificate (repeatable).
        #[arg(long = "name")]
        names: Vec<String>,
        /// Where to write the device bundle [default: <state>/device-config].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Default listen address for `serve` [default: 0.0.0.0:PORT].
        #[arg(long)]
        listen: Option<String>,
        /// Let devices with unknown serials register (named after their serial).
        #[arg(long)]
        open_onboarding: bool,
        /// Replace an existing state (every device must onboard again).
        #[arg(long)]
        force: bool,
    },
    /// Serve the device API (HTTPS) and the admin socket until SIGTERM.
    Serve {
        /// Address to listen on [default: the one given at init].
        #[arg(long)]
        listen: Option<String>,
        /// Accept unknown serials for this run.
        #[arg(long)]
        open_onboarding: bool,
        /// Serve the admin API (token auth) and the web console over HTTPS
        /// on this HOST:PORT (off by default; never on the device port).
        #[arg(long)]
        admin_listen: Option<String>,
        /// Keep state in PostgreSQL (`postgres://USER@HOST/DB` or
        /// `postgresql:///DB?host=/socket/dir`) instead of the state dir's
        /// redb file; any number of `serve` replicas may share it.
        #[arg(long, env = "OUTPOST_CONTROLLER_DATABASE")]
        database: Option<String>,
        /// PEM file of the CA(s) the PostgreSQL server's certificate must
        /// chain to: TLS is then required and the certificate verified
        /// against it and the URL's host name (as libpq's verify-full).
        #[arg(long, env = "OUTPOST_CONTROLLER_DATABASE_CA", requires = "database")]
        database_ca: Option<std::path::PathBuf>,
        /// Lifetime of the device certificates issued from now on
        /// (`1h`, `30d`, `1y`, …); devices renew at about 2/3 of it.
        #[arg(long, default_value = "1y", value_parser = outpost_controller::certs::parse_duration)]
        device_cert_lifetime: std::time::Duration,
        /// Largest base OS artifact `base-os publish` takes, bytes.
        #[arg(long, default_value_t = outpost_controller::Limits::default().max_base_os_bytes)]
        base_os_max_bytes: u64,
        /// Base OS artifacts kept at most (unused ones are deleted to make room).
        #[arg(long, default_value_t = outpost_controller::Limits::default().base_os_kept)]
        base_os_keep: usize,
    },
    /// Admin API tokens for `serve --admin-listen` (works on the state dir).
    Token {
        #[command(subcommand)]
        command: cli::TokenCommand,
    },
    /// Config-signing certificate (works on the state dir; restart `serve`).
    Signing {
        #[command(subcommand)]
        command: SigningCommand,
    },
    /// Manage devices (talks to the running server).
    Device {
        #[command(subcommand)]
        command: cli::DeviceCommand,
    },
    /// Publish base OS images to devices (talks to the running server).
    BaseOs {
        #[command(subcommand)]
        command: cli::BaseOsCommand,
    },
    /// Sign a bootstrap config offline (payload `device: null`, generation 0).
    SignBootstrap {
        /// The device config (YAML or JSON).
        file: PathBuf,
        /// Output file (copy it to the device as /config/bootstrap-config.json).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Server counters (connections refused, timeouts, log drops, …).
    Stats {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SigningCommand {
    /// Make a new signing key and certificate; configs set from then on are
    /// signed with it, the old certificate stays served for the overlap.
    Rotate {
        /// How long devices can still fetch the old certificate (`30d`, …).
        #[arg(long, default_value = "30d", value_parser = outpost_controller::certs::parse_duration)]
        overlap: std::time::Duration,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve { .. });
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if serving { "info" } else { "warn" })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match cli::run(cli.state, cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            cli::print_error(&e);
            std::process::ExitCode::FAILURE
        }
    }
}

impl Command {
    /// Splits into the library-facing pieces (keeps `cli` free of clap's top level).
    fn into_action(self) -> cli::Action {
        match self {
            Command::Init {
                server,
                names,
                out,
                listen,
                open_onboarding,
                force,
            } => cli::Action::Init(outpost_controller::init::InitOptions {
                server,
                names,
                out,
                listen,
                open_onboarding,
                force,
            }),
            Command::Serve {
                listen,
                open_onboarding,
                admin_listen,
                database,
                database_ca,
                device_cert_lifetime,
                base_os_max_bytes,
                base_os_keep,
            } => cli::Action::Serve {
                listen,
                open_onboarding,
                admin_listen,
                database,
                database_ca,
                device_cert_lifetime,
                base_os: (base_os_max_bytes, base_os_keep),
            },
            Command::Token { command } => cli::Action::Token(command),
            Command::Signing {
                command: SigningCommand::Rotate { overlap },
            } => cli::Action::SigningRotate { overlap },
            Command::Device { command } => cli::Action::Device(command),
            Command::BaseOs { command } => cli::Action::BaseOs(command),
            Command::SignBootstrap { file, output } => cli::Action::SignBootstrap { file, output },
            Command::Stats { json } => cli::Action::Stats { json },
        }
    }
}
