//! `outpost pull <ref>`: pulls an image into the user containerd directly
//! (not through the agent), with a progress bar.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use outpost_api::Secret;
use outpost_runtime::pull::{self, Credentials, PullProgress, Reference};
use outpost_runtime::{Containerd, Layout, Runtime, USER_NAMESPACE};

use crate::daemon::images::is_loopback;

/// Pulls `reference`; `ca` is a PEM file of extra trusted CAs; the password
/// (for `user`) is read from stdin so it never shows in `ps` or history.
pub async fn run(
    layout: &Layout,
    reference: &str,
    ca: Option<&Path>,
    user: Option<String>,
    password_stdin: bool,
    plain_http: bool,
) -> Result<i32> {
    let parsed = Reference::parse(reference)?;
    let c = Containerd::connect(&layout.user_socket(), USER_NAMESPACE).await?;
    let rt = Runtime::new(c, layout.clone());
    let mut opts = crate::daemon::images::pull_options(&rt, &parsed);
    opts.registry.plain_http = plain_http || is_loopback(&parsed.registry);
    if let Some(ca) = ca {
        opts.registry.ca_pem =
            Some(std::fs::read(ca).with_context(|| format!("reading CA file {}", ca.display()))?);
    }
    if let Some(username) = user {
        anyhow::ensure!(password_stdin, "--user needs --password-stdin");
        let mut pw = String::new();
        std::io::stdin()
            .read_to_string(&mut pw)
            .context("reading the password from stdin")?;
        opts.registry.credentials = Some(Credentials {
            username,
            password: Secret::new(pw.trim_end_matches(['\n', '\r'])),
        });
    }
    let (tx, mut rx) = tokio::sync::watch::channel(PullProgress::default());
    opts.progress = Some(tx);
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("pulling {reference}"));
    let b = bar.clone();
    let watcher = tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let p = *rx.borrow_and_update();
            b.set_length(p.total);
            b.set_position(p.done);
        }
    });
    let result = pull::pull(rt.client(), reference, &opts).await;
    watcher.abort();
    match result {
        Ok(rec) => {
            bar.finish_and_clear();
            println!(
                "{}  manifest {}  {} bytes",
                rec.name, rec.manifest_digest, rec.size
            );
            Ok(0)
        }
        Err(e) => {
            bar.abandon();
            Err(e.into())
        }
    }
}

/// Pushes the OCI layout at `dir` as `reference`; prints the manifest digest.
pub async fn push(dir: &Path, reference: &str, ca: Option<&Path>, plain_http: bool) -> Result<i32> {
    let parsed = Reference::parse(reference)?;
    let mut opts = pull::RegistryOptions {
        plain_http: plain_http || is_loopback(&parsed.registry),
        ..Default::default()
    };
    if let Some(ca) = ca {
        opts.ca_pem =
            Some(std::fs::read(ca).with_context(|| format!("reading CA file {}", ca.display()))?);
    }
    let digest = pull::push::push_layout(dir, reference, &opts)
        .await
        .with_context(|| format!("pushing {} as {reference}", dir.display()))?;
    println!("{reference} {digest}");
    Ok(0)
}
