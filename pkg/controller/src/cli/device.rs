//! `device list | add | delete | set-config | status`.

use anyhow::{Context, Result};
use outpost_controller::admin::client::{encode, AdminClient};
use outpost_controller::admin::types::{AddDevice, DeviceStatus, DeviceView, SetConfig};
use outpost_controller::state::ConfigSet;

use super::format::{ago, duration, table};
use super::DeviceCommand;

/// Runs a `device` subcommand against the admin API.
pub async fn run(client: &AdminClient, cmd: DeviceCommand) -> Result<()> {
    match cmd {
        DeviceCommand::List { json } => list(client, json).await,
        DeviceCommand::Add { name, serial } => {
            let view: DeviceView = client
                .post("/v1/devices", &AddDevice { name, serial })
                .await?;
            println!(
                "device {} ({}) added: serial {:?} may register now",
                view.name, view.uuid, view.serial
            );
            Ok(())
        }
        DeviceCommand::Delete { device } => {
            let view: DeviceView = client
                .delete(&format!("/v1/devices/{}", encode(&device)))
                .await?;
            println!("device {} ({}) deleted", view.name, view.uuid);
            Ok(())
        }
        DeviceCommand::Revoke { device } => {
            let view: DeviceView = client
                .post(&format!("/v1/devices/{}/revoke", encode(&device)), &())
                .await?;
            println!(
                "device {} ({}) revoked at {}",
                view.name,
                view.uuid,
                view.revoked_at.as_deref().unwrap_or("?")
            );
            Ok(())
        }
        DeviceCommand::SetConfig { args, all } => set_config(client, &args, all).await,
        DeviceCommand::Status { device, json } => status(client, &device, json).await,
        DeviceCommand::Metrics { device, n, json } => {
            super::metrics::show(client, &device, n, json).await
        }
        DeviceCommand::Logs {
            device,
            app,
            follow,
            lines,
        } => super::logs::show(client, &device, app.as_deref(), follow, lines).await,
    }
}

async fn set_config(client: &AdminClient, args: &[String], all: bool) -> Result<()> {
    let (device, file) = match (args, all) {
        ([file], true) => (None, file),
        ([device, file], false) => (Some(device), file),
        (_, true) => anyhow::bail!("set-config --all takes only FILE"),
        (_, false) => anyhow::bail!("set-config needs DEVICE and FILE (or --all FILE)"),
    };
    let document = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    let body = SetConfig { document };
    let sets: Vec<ConfigSet> = match device {
        Some(d) => vec![client
            .put(&format!("/v1/devices/{}/config", encode(d)), &body)
            .await
            .with_context(|| format!("{file} not set"))?],
        None => client
            .put("/v1/config", &body)
            .await
            .with_context(|| format!("{file} not set"))?,
    };
    if let Some(first) = sets.first() {
        for w in &first.warnings {
            eprintln!("warning: {w} (kept in the document; the device reports it)");
        }
    }
    for set in &sets {
        println!(
            "device {} ({}): config generation {} set ({} apps)",
            set.name, set.uuid, set.generation, set.apps
        );
    }
    if all {
        println!("config set on {} devices", sets.len());
    }
    Ok(())
}

fn config_column(v: &DeviceView) -> String {
    let show = |g: Option<u64>| g.map_or("-".to_owned(), |g| g.to_string());
    let mut s = format!("{}/{}", show(v.config_applied), show(v.config_set));
    if v.config_error.is_some() {
        s.push_str(" (refused)");
    }
    s
}

fn apps_column(v: &DeviceView) -> String {
    if v.app_states.is_empty() {
        return v.apps.to_string();
    }
    let states: Vec<String> = v
        .app_states
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    format!("{} ({})", v.apps, states.join(", "))
}

fn cert_column(v: &DeviceView) -> String {
    match (&v.revoked_at, &v.cert_not_after) {
        (Some(_), _) => "revoked".into(),
        (None, Some(t)) => t.clone(),
        (None, None) => "-".into(),
    }
}

async fn list(client: &AdminClient, json: bool) -> Result<()> {
    let views: Vec<DeviceView> = client.get("/v1/devices").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(());
    }
    if views.is_empty() {
        println!("no devices (add one with `outpost-controller device add NAME --serial S`)");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                v.uuid.clone(),
                v.serial.clone(),
                match (&v.last_seen, v.registered) {
                    _ if v.connected => "connected".into(),
                    (Some(t), _) => ago(t),
                    (None, true) => "-".into(),
                    (None, false) => "not registered".into(),
                },
                config_column(v),
                apps_column(v),
                cert_column(v),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "UUID",
            "SERIAL",
            "LAST SEEN",
            "CONFIG (applied/set)",
            "APPS",
            "CERT EXPIRES",
        ],
        &rows,
    );
    Ok(())
}

async fn status(client: &AdminClient, device: &str, json: bool) -> Result<()> {
    let st: DeviceStatus = client
        .get(&format!("/v1/devices/{}", encode(device)))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(());
    }
    let d = &st.device;
    println!("device      {} ({})", d.name, d.uuid);
    println!("serial      {}", d.serial);
    println!(
        "registered  {}",
        if d.registered {
            "yes"
        } else {
            "no (waiting on the onboarding list)"
        }
    );
    if let Some(t) = &d.cert_not_after {
        let serial = d.cert_serial.as_deref().unwrap_or("?");
        println!("certificate valid until {t} (serial {serial})");
    }
    if let Some(t) = &d.revoked_at {
        println!("revoked     {t}");
    }
    match (&d.last_seen, d.connected) {
        (_, true) => println!("last seen   now (waiting for a config)"),
        (Some(t), false) => println!("last seen   {}", ago(t)),
        (None, false) => println!("last seen   -"),
    }
    match &st.config {
        Some(c) => {
            println!(
                "config set  generation {} ({} apps), {}",
                c.generation,
                c.apps,
                ago(&c.set_at)
            );
            for w in &c.warnings {
                println!("            warning: {w}");
            }
        }
        None => println!("config set  none"),
    }
    let Some(info) = &st.info else {
        println!("info        none received yet");
        return Ok(());
    };
    let i = &info.info;
    println!(
        "applied     generation {} (from {})",
        i.config_generation, i.config_origin
    );
    if let Some(e) = &i.config_error {
        println!("refused     {e}");
    }
    println!(
        "agent       {} on {} (kernel {}), up {}; reported {}",
        i.agent_version,
        i.hostname,
        i.kernel,
        duration(i.agent_uptime_secs),
        ago(&info.received_at)
    );
    println!(
        "logs        {} lines held, {} dropped",
        st.log_lines, st.log_lines_dropped
    );
    if let Some(b) = &i.base_os {
        println!("base OS     {}", b.summary());
    }
    if !i.services.is_empty() {
        let running = i.services.iter().filter(|v| v.is_running()).count();
        let down: Vec<&str> = i
            .services
            .iter()
            .filter(|v| v.declared && !v.is_running())
            .map(|v| v.name.as_str())
            .collect();
        println!(
            "services    {running} of {} running{}",
            i.services.len(),
            if down.is_empty() {
                String::new()
            } else {
                format!("; declared but not running: {}", down.join(", "))
            }
        );
    }
    if i.apps.is_empty() {
        println!("apps        none");
        return Ok(());
    }
    println!();
    let rows: Vec<Vec<String>> = i
        .apps
        .iter()
        .map(|a| {
            vec![
                a.display_name.clone(),
                a.uuid.clone(),
                a.state.to_string(),
                a.restarts.to_string(),
                a.error.as_ref().map_or(String::new(), |e| {
                    format!("{} ({})", e.message, e.severity_label())
                }),
            ]
        })
        .collect();
    table(&["APP", "UUID", "STATE", "RESTARTS", "ERROR"], &rows);
    Ok(())
}

trait SeverityLabel {
    fn severity_label(&self) -> String;
}

impl SeverityLabel for outpost_api::ErrorDescription {
    fn severity_label(&self) -> String {
        serde_json::to_value(self.severity)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}
