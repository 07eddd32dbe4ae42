//! `outpost svc …`: the device services in the system containerd
//! (`services.linuxkit`), EVE's `eve list|status|enter|exec` for services.

use std::io::IsTerminal;
use std::os::unix::process::CommandExt;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use outpost_api::ServiceStatus;
use outpost_runtime::{Layout, SYSTEM_NAMESPACE};

use super::apps::{encode, uptime};
use crate::admin::client::{AdminClient, ApiFailure};
use crate::admin::services::ServiceRestarted;
use crate::admin::types::{ExecRequest, ExecResponse};
use crate::daemon::services::io::{stderr_stream, stdout_stream};
use crate::daemon::services::ServicesView;

/// The `svc` verbs.
#[derive(Debug, Subcommand)]
pub enum SvcCmd {
    /// List services: name, state, PID, uptime, restarts, memory, CPU.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Full status of one service.
    Status {
        /// Service name.
        name: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// A service's output (stdout and stderr) from memlogd.
    Logs {
        /// Service name.
        name: String,
        /// Keep printing new lines.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last N lines of what is held.
        #[arg(long)]
        tail: Option<usize>,
    },
    /// Run a command in the service and print its output.
    Exec {
        /// Service name.
        name: String,
        /// Seconds before the command is killed.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Command and arguments (after `--`).
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// A shell (or CMD) in the service, interactive (a tty when stdin is one).
    Enter {
        /// Service name.
        name: String,
        /// Command (default /bin/sh).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    /// Restart a service the device image declares.
    Restart {
        /// Service name.
        name: String,
    },
}

/// Runs one `svc` verb; returns the exit code.
pub async fn run(layout: &Layout, cmd: SvcCmd) -> Result<i32> {
    let c = AdminClient::new(&layout.agent_run().join(crate::admin::SOCKET_NAME));
    match cmd {
        SvcCmd::List { json } => list(&c, json).await,
        SvcCmd::Status { name, json } => status(&c, &name, json).await,
        SvcCmd::Logs { name, follow, tail } => logs(&c, layout, &name, follow, tail).await,
        SvcCmd::Exec { name, timeout, cmd } => {
            let req = ExecRequest {
                args: cmd,
                timeout_ms: timeout * 1000,
            };
            let r: ExecResponse = c
                .post(&format!("/v1/services/{}/exec", encode(&name)), &req)
                .await?
                .map_err(|f| anyhow::anyhow!(describe(&f, &name)))?;
            print!("{}", r.stdout);
            eprint!("{}", r.stderr);
            if r.truncated {
                eprintln!("(output truncated)");
            }
            Ok(r.exit_status as i32)
        }
        SvcCmd::Enter { name, cmd } => enter(&c, &name, cmd).await,
        SvcCmd::Restart { name } => {
            let r: ServiceRestarted = c
                .post(&format!("/v1/services/{}/restart", encode(&name)), &())
                .await?
                .map_err(|f| anyhow::anyhow!(describe(&f, &name)))?;
            println!("service {} restarted (pid {})", r.service, r.pid);
            Ok(0)
        }
    }
}

async fn view(c: &AdminClient) -> Result<ServicesView> {
    c.get("/v1/services")
        .await?
        .map_err(|f| anyhow::anyhow!(describe(&f, "")))
}

async fn service(c: &AdminClient, name: &str) -> Result<ServiceStatus> {
    match c
        .get::<ServiceStatus>(&format!("/v1/services/{}", encode(name)))
        .await?
    {
        Ok(s) => Ok(s),
        Err(f) => bail!(describe(&f, name)),
    }
}

async fn list(c: &AdminClient, json: bool) -> Result<i32> {
    let v = view(c).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v.services)?);
        return Ok(0);
    }
    if !v.connected {
        eprintln!(
            "system containerd at {} not reachable: {}",
            v.socket,
            v.error.as_deref().unwrap_or("not observed yet")
        );
        return Ok(1);
    }
    println!(
        "{:<20} {:<9} {:>8} {:>8} {:>8} {:>9} {:>10}  DECLARED",
        "NAME", "STATE", "PID", "UPTIME", "RESTARTS", "MEM", "CPU"
    );
    for s in &v.services {
        println!(
            "{:<20} {:<9} {:>8} {:>8} {:>8} {:>9} {:>10}  {}",
            s.name,
            s.state,
            if s.pid > 0 {
                s.pid.to_string()
            } else {
                "-".into()
            },
            s.started_at.map(uptime).unwrap_or_else(|| "-".into()),
            s.restarts,
            s.memory_bytes
                .map(|b| format!("{:.1}M", b as f64 / (1 << 20) as f64))
                .unwrap_or_else(|| "-".into()),
            s.cpu_ns
                .map(|n| format!("{:.2}s", n as f64 / 1e9))
                .unwrap_or_else(|| "-".into()),
            if s.declared { "yes" } else { "no" }
        );
    }
    Ok(0)
}

async fn status(c: &AdminClient, name: &str, json: bool) -> Result<i32> {
    let s = service(c, name).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(0);
    }
    println!("name:      {}", s.name);
    println!("state:     {}", s.state);
    println!(
        "declared:  {}",
        if s.declared {
            "yes (restarted when it exits)"
        } else {
            "no (the agent leaves it alone)"
        }
    );
    if s.pid > 0 {
        println!("pid:       {}", s.pid);
    }
    if let Some(t) = s.started_at {
        println!("uptime:    {}", uptime(t));
    }
    if let Some(e) = s.exit_status {
        println!("exit:      {e}");
    }
    println!("restarts:  {}", s.restarts);
    if let Some(ms) = s.next_restart_ms {
        println!("backoff:   next restart in {ms} ms");
    }
    if let Some(m) = s.memory_bytes {
        println!("memory:    {} KiB", m >> 10);
    }
    if let Some(n) = s.cpu_ns {
        println!("cpu:       {:.3} s", n as f64 / 1e9);
    }
    if let Some(e) = &s.error {
        println!("error:     {e}");
    }
    Ok(0)
}

/// Reads memlogd directly (works while the agent is down): the streams
/// init's `svclog` (and the agent, after a restart) write, `<svc>.out` and
/// `<svc>`.
async fn logs(
    c: &AdminClient,
    layout: &Layout,
    name: &str,
    follow: bool,
    tail: Option<usize>,
) -> Result<i32> {
    match service(c, name).await {
        Ok(_) => {}
        // The agent is down: still serve what memlogd holds.
        Err(e) if e.to_string().contains("cannot reach outpostd") => {}
        Err(e) => return Err(e),
    }
    let sources = [stdout_stream(name), stderr_stream(name)];
    let q = layout.memlogd_query_socket();
    tokio::task::spawn_blocking(move || -> Result<i32> {
        let mine = |s: &str| sources.iter().any(|x| x == s);
        let held: Vec<_> = memlogd::dump(&q, None)
            .with_context(|| format!("reading memlogd at {}", q.display()))?
            .into_iter()
            .filter(|e| mine(&e.source))
            .collect();
        let skip = tail.map(|n| held.len().saturating_sub(n)).unwrap_or(0);
        let mut last = None;
        for e in &held[skip..] {
            println!("{}", e.msg);
            last = Some(e.time);
        }
        if follow {
            let stream = memlogd::follow(&q, memlogd::FollowFrom::Now, None)?;
            for e in stream {
                let e = e?;
                if !mine(&e.source) || last.as_ref().is_some_and(|t| e.time <= *t) {
                    continue;
                }
                last = None;
                println!("{}", e.msg);
            }
        }
        Ok(0)
    })
    .await?
}

/// `ctr tasks exec` does the exec API with a tty; the CLI hands over to it.
async fn enter(c: &AdminClient, name: &str, cmd: Vec<String>) -> Result<i32> {
    let s = service(c, name).await?;
    if !s.is_running() {
        bail!("service {} is {}: nothing to enter", s.name, s.state);
    }
    let v = view(c).await?;
    let cmd = if cmd.is_empty() {
        vec!["/bin/sh".to_string()]
    } else {
        cmd
    };
    let mut ctr = std::process::Command::new("ctr");
    ctr.arg("--address")
        .arg(&v.socket)
        .args(["-n", SYSTEM_NAMESPACE, "tasks", "exec"]);
    if std::io::stdin().is_terminal() {
        ctr.arg("-t");
    }
    let err = ctr
        .arg("--exec-id")
        .arg(format!("enter-{}", std::process::id()))
        .arg(&s.name)
        .args(&cmd)
        .exec();
    bail!("running ctr: {err}")
}

fn describe(f: &ApiFailure, name: &str) -> String {
    super::apps::describe_with(f, name, "outpost svc list")
}
