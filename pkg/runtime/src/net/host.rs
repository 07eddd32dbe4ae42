//! The host tools network instances are made with: iproute2's `ip` for the
//! bridge and `iptables` for the isolation chain (the same `iptables` the CNI
//! plugins call, so both land in the same backend, legacy or nft).

use std::process::Stdio;

use super::error::NetError;

/// What one command printed.
#[derive(Debug)]
pub struct Output {
    /// Exit status was 0.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error, trimmed.
    pub stderr: String,
}

/// Runs `program args…`; only a failure to start it is an error.
pub async fn run(program: &'static str, args: &[&str]) -> Result<Output, NetError> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| NetError::Command {
            command: format!("{program} {}", args.join(" ")),
            message: format!("cannot run {program}: {e}"),
        })?;
    Ok(Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// Runs `program args…` and fails unless it exits 0.
pub async fn check(program: &'static str, args: &[&str]) -> Result<String, NetError> {
    let out = run(program, args).await?;
    if out.ok {
        Ok(out.stdout)
    } else {
        Err(NetError::Command {
            command: format!("{program} {}", args.join(" ")),
            message: out.stderr,
        })
    }
}

/// `iptables -w` (waits for the xtables lock the plugins also take) on the
/// filter table.
pub async fn iptables(args: &[&str]) -> Result<Output, NetError> {
    let mut all = vec!["-w", "-t", "filter"];
    all.extend_from_slice(args);
    run("iptables", &all).await
}

/// [`iptables`] that must succeed.
pub async fn iptables_check(args: &[&str]) -> Result<String, NetError> {
    let mut all = vec!["-w", "-t", "filter"];
    all.extend_from_slice(args);
    check("iptables", &all).await
}

/// Whether a network device exists (`/sys/class/net/<name>`).
pub fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}
