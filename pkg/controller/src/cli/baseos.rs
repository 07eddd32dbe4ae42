//! `base-os publish | list | retry`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use outpost_controller::admin::client::{encode, AdminClient};
use outpost_controller::baseos::{
    ArtifactView, PublishCheck, PublishQuery, Published, RetryRequest,
};
use outpost_controller::state::ConfigSet;

use super::format::table;

/// `outpost-controller base-os …`.
#[derive(Debug, Subcommand)]
pub enum BaseOsCommand {
    /// Store a base OS update artifact (the `rootfs.squashfs` of
    /// `outpost-mkimage build`) and name it in the devices' configs.
    Publish {
        /// The squashfs.
        file: PathBuf,
        /// The version the devices report.
        #[arg(long)]
        version: String,
        /// A device (name or UUID), repeatable.
        #[arg(long = "device", required_unless_present = "all")]
        devices: Vec<String>,
        /// Every device that has a config.
        #[arg(long, conflicts_with = "devices")]
        all: bool,
        /// Time the new image has to become healthy [default: 600s].
        #[arg(long)]
        test_window: Option<String>,
        /// Roll back when the controller is unreachable this long [default: 300s].
        #[arg(long)]
        fallback: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Stored artifacts and the devices whose config names each.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Let devices try a version that failed on them again (bumps `base_os.retry`).
    Retry {
        /// A device (name or UUID), repeatable.
        #[arg(long = "device", required_unless_present = "all")]
        devices: Vec<String>,
        /// Every device whose config names a base OS.
        #[arg(long, conflicts_with = "devices")]
        all: bool,
    },
}

fn print_sets(sets: &[ConfigSet]) {
    for s in sets {
        println!(
            "device {} ({}): generation {}",
            s.name, s.uuid, s.generation
        );
    }
}

/// Runs a `base-os` subcommand against the admin API.
pub async fn run(client: &AdminClient, cmd: BaseOsCommand) -> Result<()> {
    match cmd {
        BaseOsCommand::Publish {
            file,
            version,
            devices,
            all,
            test_window,
            fallback,
            json,
        } => {
            let q = PublishQuery {
                version,
                devices: Some(devices.join(",")).filter(|d| !d.is_empty()),
                all,
                test_window,
                fallback,
            };
            let mut path = format!("/v1/base-os?version={}&all={}", encode(&q.version), q.all);
            for (k, v) in [
                ("devices", &q.devices),
                ("test_window", &q.test_window),
                ("fallback", &q.fallback),
            ] {
                if let Some(v) = v {
                    path.push_str(&format!("&{k}={}", encode(v)));
                }
            }
            let check: PublishCheck = client
                .post(&path.replacen("/v1/base-os?", "/v1/base-os/check?", 1), &())
                .await
                .with_context(|| format!("{} not published", file.display()))?;
            let size = std::fs::metadata(&file)
                .with_context(|| format!("reading {}", file.display()))?
                .len();
            if size > check.max_bytes {
                anyhow::bail!(
                    "{} not published: it is {size} bytes, the controller takes at most {} (serve --base-os-max-bytes)",
                    file.display(),
                    check.max_bytes
                );
            }
            let p: Published = client
                .upload(&path, &file)
                .await
                .with_context(|| format!("{} not published", file.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
                return Ok(());
            }
            println!(
                "base OS {} ({} bytes, sha256 {}) at {}",
                p.artifact.version, p.artifact.size, p.artifact.sha256, p.url
            );
            print_sets(&p.configs);
            if !p.skipped.is_empty() {
                println!("skipped (no config yet): {}", p.skipped.join(", "));
            }
            Ok(())
        }
        BaseOsCommand::List { json } => {
            let list: Vec<ArtifactView> = client.get("/v1/base-os").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|a| {
                    vec![
                        a.record.version.clone(),
                        a.record.sha256[..12].to_owned(),
                        a.record.size.to_string(),
                        a.record.added_at.clone(),
                        a.devices.join(","),
                    ]
                })
                .collect();
            table(
                &["VERSION", "SHA256", "BYTES", "PUBLISHED", "DEVICES"],
                &rows,
            );
            Ok(())
        }
        BaseOsCommand::Retry { devices, all } => {
            let sets: Vec<ConfigSet> = client
                .post("/v1/base-os/retry", &RetryRequest { devices, all })
                .await?;
            print_sets(&sets);
            Ok(())
        }
    }
}
