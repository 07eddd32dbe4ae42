//! The CLI verbs that go through the agent's admin API.

use std::os::unix::process::CommandExt;

use anyhow::{bail, Result};
use outpost_api::AppStatus;
use outpost_runtime::Layout;

use crate::admin::client::{AdminClient, ApiFailure};
use crate::admin::types::{Check, CounterBumped, ExecRequest, ExecResponse, Info};

/// What every verb needs.
pub struct Ctx {
    client: AdminClient,
}

impl Ctx {
    /// For the agent of `layout`.
    pub fn new(layout: &Layout) -> Self {
        Ctx {
            client: AdminClient::new(&layout.agent_run().join(crate::admin::SOCKET_NAME)),
        }
    }

    /// The status of `app`, or a helpful error with suggestions.
    pub async fn app(&self, app: &str) -> Result<AppStatus> {
        match self
            .client
            .get::<AppStatus>(&format!("/v1/apps/{}", encode(app)))
            .await?
        {
            Ok(s) => Ok(s),
            Err(f) => bail!(describe(&f, app)),
        }
    }

    pub(super) async fn list(&self, json: bool) -> Result<i32> {
        let apps: Vec<AppStatus> = self
            .client
            .get("/v1/apps")
            .await?
            .map_err(|f| anyhow::anyhow!(describe(&f, "")))?;
        if json {
            println!("{}", serde_json::to_string_pretty(&apps)?);
            return Ok(0);
        }
        println!(
            "{:<20} {:<36} {:<11} {:>8} {:>9}  {:<16} IMAGE",
            "NAME", "UUID", "STATE", "RESTARTS", "UPTIME", "IPS"
        );
        for a in apps {
            let up = a
                .domain
                .as_ref()
                .and_then(|d| d.started_at)
                .filter(|_| a.state == outpost_api::SwState::Running);
            let ips: Vec<&str> = a
                .domain
                .iter()
                .flat_map(|d| d.ips.iter())
                .map(|i| i.rsplit('=').next().unwrap_or(i))
                .collect();
            let ips = if ips.is_empty() {
                "-".to_string()
            } else {
                ips.join(",")
            };
            println!(
                "{:<20} {:<36} {:<11} {:>8} {:>9}  {:<16} {}",
                a.display_name,
                a.uuid,
                a.state.name(),
                a.restarts,
                up.map(uptime).unwrap_or_else(|| "-".into()),
                ips,
                a.image
            );
        }
        Ok(0)
    }

    pub(super) async fn status(&self, app: &str, json: bool) -> Result<i32> {
        let s = self.app(app).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&s)?);
            return Ok(0);
        }
        println!("name:      {}", s.display_name);
        println!("uuid:      {}", s.uuid);
        println!("version:   {}", s.version);
        println!("image:     {}", s.image);
        println!("state:     {} ({})", s.state, s.state.number());
        println!("activated: {}", s.activated);
        println!("restarts:  {}", s.restarts);
        if let Some(o) = &s.local_override {
            println!("override:  {o}");
        }
        println!(
            "vnc:       {}",
            if s.vnc_password_set {
                "password set"
            } else {
                "password unset"
            }
        );
        if let Some(d) = &s.domain {
            println!("task:      {} ({})", d.task_id, d.runtime);
            if let Some(pid) = d.pid {
                println!("pid:       {pid}");
            }
            if let Some(t) = d.started_at {
                println!("uptime:    {}", uptime(t));
            }
            if let Some(c) = d.exit_code {
                println!("exit:      {c}");
            }
            for ip in &d.ips {
                println!("ip:        {ip}");
            }
            if let Some(m) = d.memory_limit_bytes {
                println!("memory:    limit {} MiB", m >> 20);
            }
        }
        if let Some(d) = &s.download {
            println!("download:  {} / {} MiB", d.done >> 20, d.total >> 20);
        }
        if let Some(b) = &s.backoff {
            let next = b
                .next_start
                .map(|t| format!(", next start {t}"))
                .unwrap_or_default();
            let max = if b.max_attempts == 0 {
                "unlimited".to_string()
            } else {
                b.max_attempts.to_string()
            };
            println!("backoff:   attempt {} of {max}{next}", b.attempts);
        }
        if let Some(e) = &s.error {
            println!("error:     [{:?}] {}", e.severity, e.message);
            println!(
                "           since {}, {} retries; retry: {}",
                e.first_seen, e.retries, e.retry_condition
            );
        }
        Ok(0)
    }

    pub(super) async fn enter(&self, app: &str, cmd: Vec<String>) -> Result<i32> {
        let s = self.app(app).await?;
        let Some(pid) = s
            .domain
            .as_ref()
            .and_then(|d| d.pid)
            .filter(|_| s.state == outpost_api::SwState::Running)
        else {
            bail!("app {} is {}: nothing to enter", s.display_name, s.state);
        };
        let cmd = if cmd.is_empty() {
            vec!["/bin/sh".to_string()]
        } else {
            cmd
        };
        // nsenter into all of the task's namespaces, its root and cwd.
        let err = std::process::Command::new("nsenter")
            .args([
                "-t",
                &pid.to_string(),
                "-m",
                "-u",
                "-i",
                "-n",
                "-p",
                "-r",
                "-w",
                "--",
            ])
            .args(&cmd)
            .exec();
        bail!("running nsenter: {err}")
    }

    pub(super) async fn exec(&self, app: &str, cmd: Vec<String>, timeout: u64) -> Result<i32> {
        let s = self.app(app).await?;
        let req = ExecRequest {
            args: cmd,
            timeout_ms: timeout * 1000,
        };
        let r: ExecResponse = self
            .client
            .post(&format!("/v1/apps/{}/exec", encode(&s.uuid)), &req)
            .await?
            .map_err(|f| anyhow::anyhow!(describe(&f, app)))?;
        print!("{}", r.stdout);
        eprint!("{}", r.stderr);
        if r.truncated {
            eprintln!("(output truncated)");
        }
        Ok(r.exit_status as i32)
    }

    pub(super) async fn bump(&self, app: &str, verb: &str) -> Result<i32> {
        let s = self.app(app).await?;
        let r: CounterBumped = self
            .client
            .post(&format!("/v1/apps/{}/{verb}", encode(&s.uuid)), &())
            .await?
            .map_err(|f| anyhow::anyhow!(describe(&f, app)))?;
        println!(
            "{verb} of {} requested (local {verb} counter {})",
            r.app, r.local_counter
        );
        Ok(0)
    }

    pub(super) async fn activate(&self, app: &str, activate: bool) -> Result<i32> {
        let verb = if activate { "start" } else { "stop" };
        let s = self.app(app).await?;
        let r: crate::admin::types::ActivateOverridden = self
            .client
            .post(&format!("/v1/apps/{}/{verb}", encode(&s.uuid)), &())
            .await?
            .map_err(|f| anyhow::anyhow!(describe(&f, app)))?;
        println!(
            "{verb} of {} requested: activate {} until a config newer than generation {}",
            r.app, r.activate, r.generation
        );
        Ok(0)
    }

    pub(super) async fn pause(&self, app: &str, pause: bool) -> Result<i32> {
        let verb = if pause { "pause" } else { "resume" };
        let s = self.app(app).await?;
        let r: crate::admin::types::PauseDone = self
            .client
            .post(&format!("/v1/apps/{}/{verb}", encode(&s.uuid)), &())
            .await?
            .map_err(|f| anyhow::anyhow!(describe(&f, app)))?;
        let done = if r.paused { "paused" } else { "resumed" };
        println!("{} {done} (task {})", r.app, r.task_id);
        Ok(0)
    }

    pub(super) async fn check(&self, json: bool) -> Result<i32> {
        let checks: Vec<Check> = match self.client.get("/v1/check").await {
            Ok(Ok(c)) => c,
            Ok(Err(f)) => vec![Check {
                name: "agent".into(),
                ok: false,
                detail: describe(&f, ""),
            }],
            Err(e) => vec![Check {
                name: "agent".into(),
                ok: false,
                detail: format!("{e:#}"),
            }],
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&checks)?);
        } else {
            for c in &checks {
                println!(
                    "{} {:<16} {}",
                    if c.ok { "ok  " } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
        }
        Ok(if checks.iter().all(|c| c.ok) { 0 } else { 1 })
    }

    pub(super) async fn networks(&self, json: bool) -> Result<i32> {
        let nets: Vec<crate::admin::types::NetworkView> = self
            .client
            .get("/v1/networks")
            .await?
            .map_err(|f| anyhow::anyhow!(describe(&f, "")))?;
        if json {
            println!("{}", serde_json::to_string_pretty(&nets)?);
            return Ok(0);
        }
        println!(
            "{:<16} {:<36} {:<7} {:<18} {:<12} APPS",
            "NAME", "UUID", "KIND", "SUBNET", "DEVICE"
        );
        for n in nets {
            let apps = if n.apps.is_empty() {
                "-".to_string()
            } else {
                n.apps.join(" ")
            };
            println!(
                "{:<16} {:<36} {:<7} {:<18} {:<12} {apps}",
                n.name, n.uuid, n.kind, n.subnet, n.device
            );
        }
        Ok(0)
    }

    pub(super) async fn version(&self, json: bool) -> Result<i32> {
        let info = self.client.get::<Info>("/v1/info").await;
        if json {
            return match info {
                Ok(Ok(i)) => {
                    println!("{}", serde_json::to_string_pretty(&i)?);
                    Ok(0)
                }
                _ => {
                    eprintln!("outpostd not reachable");
                    Ok(1)
                }
            };
        }
        println!("outpost {}", env!("CARGO_PKG_VERSION"));
        match info {
            Ok(Ok(i)) => {
                println!("outpostd {} (up {}s)", i.version, i.uptime_secs);
                if let (Some(g), Some(src)) = (i.config_generation, &i.config_source) {
                    println!("config generation {g} from {src}");
                }
                println!(
                    "reconcile: {} config documents evaluated, {}",
                    i.configs_evaluated,
                    match i.idle_through {
                        Some(_) if i.settled(0) => "all acted on (idle)".to_owned(),
                        Some(n) => format!("working (idle after document {n})"),
                        None => "working".to_owned(),
                    }
                );
                if let Some(e) = i.config_error {
                    println!("last config refused: {e}");
                }
                if let Some(b) = &i.base_os {
                    println!("base OS slot {}", b.slot);
                    for n in &b.notes {
                        println!("  at boot: {n}");
                    }
                    if let Some(u) = &b.update {
                        let progress = u
                            .downloaded
                            .map(outpost_api::baseos::download_progress)
                            .unwrap_or_default();
                        println!(
                            "base OS update {} → {}: {}{progress}{}",
                            u.version.as_deref().unwrap_or("?"),
                            u.target.as_deref().unwrap_or("?"),
                            u.phase,
                            u.reason
                                .as_ref()
                                .map(|r| format!(" ({r})"))
                                .unwrap_or_default()
                        );
                    }
                }
                match i.controller {
                    Some(c) => {
                        let who = match (c.name, c.uuid) {
                            (Some(n), Some(u)) => format!(" as {n} ({u})"),
                            _ => String::new(),
                        };
                        let seen = c
                            .last_contact_secs_ago
                            .map(|s| format!(", last answer {s}s ago"))
                            .unwrap_or_default();
                        println!("controller {}{who}: {}{seen}", c.server, c.state);
                        if let Some(e) = c.last_error {
                            println!("  last error: {e}");
                        }
                        println!(
                            "  log upload queue: {} batches; dropped {} batches ({} lines)",
                            c.log_batches_queued, c.log_batches_dropped, c.log_lines_dropped
                        );
                        if let Some(t) = c.cert.not_after {
                            println!(
                                "  device certificate: expires at unix {t}; {} renewals, {} re-registrations, {} failed attempts",
                                c.cert.renewals, c.cert.reauthentications, c.cert.failures
                            );
                        }
                    }
                    None => println!("controller: none configured"),
                }
            }
            _ => println!("outpostd not reachable"),
        }
        Ok(0)
    }
}

fn describe(f: &ApiFailure, app: &str) -> String {
    describe_with(f, app, "outpost list")
}

/// An admin API failure as one line: the agent's error, with suggestions
/// (or a hint to run `list_cmd`) when `name` was not found.
pub(super) fn describe_with(f: &ApiFailure, name: &str, list_cmd: &str) -> String {
    let msg = f.body["error"]
        .as_str()
        .unwrap_or("request failed")
        .to_owned();
    let sugg: Vec<&str> = f.body["suggestions"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if f.status == hyper::StatusCode::NOT_FOUND && !name.is_empty() {
        if sugg.is_empty() {
            format!("{msg} (see `{list_cmd}`)")
        } else {
            format!("{msg}; did you mean: {}?", sugg.join(", "))
        }
    } else {
        format!("{msg} ({})", f.status)
    }
}

/// `s` percent-encoded for one URL path segment.
pub(super) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Time since `since`, short (`42s`, `5m`, `3h`, `2d`).
pub(super) fn uptime(since: time::OffsetDateTime) -> String {
    let secs = (time::OffsetDateTime::now_utc() - since)
        .whole_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
