//! `outpost`: the operator's debug commands on the device (conventions of
//! `ctr` and `iotedge`: one verb each, `--json` where a script may read it).

mod apps;
mod images;
mod logs;
mod offline;
mod pull;
mod svc;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(name = "outpost", about = "Outpost local debug commands", version)]
pub struct Cli {
    /// Root prefix of the device paths (`/` on a device).
    #[arg(long, global = true, default_value = "/", env = "OUTPOST_ROOT")]
    pub root: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// List apps: name, UUID, state, restarts, uptime, image.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Full status of one app (error, backoff, VNC set/unset).
    Status {
        /// App name, UUID or task ID.
        app: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// An app's output from memlogd.
    Logs {
        /// App name, UUID or task ID.
        app: String,
        /// Keep printing new lines.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last N lines of what is held.
        #[arg(long)]
        tail: Option<usize>,
        /// The stderr stream instead of stdout.
        #[arg(long)]
        stderr: bool,
    },
    /// A shell (or CMD) inside the app's namespaces, interactive.
    Enter {
        /// App name, UUID or task ID.
        app: String,
        /// Command (default /bin/sh).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    /// Run a command in the app and print its output.
    Exec {
        /// App name, UUID or task ID.
        app: String,
        /// Seconds before the command is killed.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Command and arguments (after `--`).
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Stop and start the app again (bumps its local restart counter).
    Restart {
        /// App name, UUID or task ID.
        app: String,
    },
    /// Stop the app (a local `activate: false`) until the next config generation.
    Stop {
        /// App name, UUID or task ID.
        app: String,
    },
    /// Start a stopped app (a local `activate: true`) until the next config generation.
    Start {
        /// App name, UUID or task ID.
        app: String,
    },
    /// Freeze the app's processes (cgroup freezer); the agent leaves it paused.
    Pause {
        /// App name, UUID or task ID.
        app: String,
    },
    /// Thaw a paused app.
    Resume {
        /// App name, UUID or task ID.
        app: String,
    },
    /// Recreate the app's volumes and start it fresh (bumps its local purge counter).
    Purge {
        /// App name, UUID or task ID.
        app: String,
    },
    /// Named readiness checks; exits non-zero when one fails.
    Check {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Versions of the CLI and the running agent, the config in effect,
    /// how far the agent has got with it, and the controller link.
    Version {
        /// Machine-readable output (the agent's info).
        #[arg(long)]
        json: bool,
    },
    /// Network instances and the apps on them.
    Networks {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Pull an image from a registry into the user containerd, with progress.
    Pull {
        /// `host[:port]/repo[:tag|@sha256:…]`.
        reference: String,
        /// PEM file of CA certificates to trust for this registry.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Registry user name (the password comes from stdin).
        #[arg(long, requires = "password_stdin")]
        user: Option<String>,
        /// Read the registry password from stdin.
        #[arg(long)]
        password_stdin: bool,
        /// Plain HTTP (implied for loopback registries).
        #[arg(long)]
        plain_http: bool,
    },
    /// Images in the user containerd: size and the apps that use them.
    Images {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Push an OCI image layout directory to a registry (seeds a local or
    /// air-gapped registry; no containerd involved).
    Push {
        /// OCI image layout (`index.json`, `blobs/`), as outpost-ocibuild writes.
        layout_dir: PathBuf,
        /// `host[:port]/repo:tag`.
        reference: String,
        /// PEM file of CA certificates to trust for this registry.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Plain HTTP (implied for loopback registries).
        #[arg(long)]
        plain_http: bool,
    },
    /// Device services in the system containerd (`services.linuxkit`).
    Svc {
        /// What to do.
        #[command(subcommand)]
        cmd: svc::SvcCmd,
    },
    /// Check a device config file offline with the agent's own loader and
    /// validation; exits 1 when the agent would refuse it or reject an app.
    Validate {
        /// YAML or JSON device config.
        file: PathBuf,
    },
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// Runs the CLI; returns the process exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    let layout = outpost_runtime::Layout::new(&cli.root);
    let ctx = apps::Ctx::new(&layout);
    match cli.cmd {
        Cmd::List { json } => ctx.list(json).await,
        Cmd::Status { app, json } => ctx.status(&app, json).await,
        Cmd::Logs {
            app,
            follow,
            tail,
            stderr,
        } => logs::run(&ctx, &layout, &app, follow, tail, stderr).await,
        Cmd::Enter { app, cmd } => ctx.enter(&app, cmd).await,
        Cmd::Exec { app, timeout, cmd } => ctx.exec(&app, cmd, timeout).await,
        Cmd::Restart { app } => ctx.bump(&app, "restart").await,
        Cmd::Purge { app } => ctx.bump(&app, "purge").await,
        Cmd::Pause { app } => ctx.pause(&app, true).await,
        Cmd::Stop { app } => ctx.activate(&app, false).await,
        Cmd::Start { app } => ctx.activate(&app, true).await,
        Cmd::Resume { app } => ctx.pause(&app, false).await,
        Cmd::Check { json } => ctx.check(json).await,
        Cmd::Version { json } => ctx.version(json).await,
        Cmd::Networks { json } => ctx.networks(json).await,
        Cmd::Pull {
            reference,
            ca,
            user,
            password_stdin,
            plain_http,
        } => {
            pull::run(
                &layout,
                &reference,
                ca.as_deref(),
                user,
                password_stdin,
                plain_http,
            )
            .await
        }
        Cmd::Images { json } => images::run(&layout, json).await,
        Cmd::Push {
            layout_dir,
            reference,
            ca,
            plain_http,
        } => pull::push(&layout_dir, &reference, ca.as_deref(), plain_http).await,
        Cmd::Svc { cmd } => svc::run(&layout, cmd).await,
        Cmd::Validate { file } => offline::validate(&file),
        Cmd::Completions { shell } => offline::completions(shell),
    }
}
