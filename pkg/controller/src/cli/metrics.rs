//! `device metrics`: the latest sample, CPU use from the last two.

use anyhow::Result;
use outpost_api::cloud::DeviceMetrics;
use outpost_controller::admin::client::{encode, AdminClient};
use outpost_controller::admin::types::MetricsView;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::format::{ago, bytes, duration, table};

/// CPU use in percent of one CPU between two samples.
fn cpu_percent(
    prev: &DeviceMetrics,
    cur: &DeviceMetrics,
    busy: impl Fn(&DeviceMetrics) -> Option<u64>,
) -> Option<f64> {
    let t0 = OffsetDateTime::parse(&prev.at, &Rfc3339).ok()?;
    let t1 = OffsetDateTime::parse(&cur.at, &Rfc3339).ok()?;
    let wall = (t1 - t0).whole_nanoseconds();
    let used = busy(cur)?.checked_sub(busy(prev)?)?;
    (wall > 0).then(|| used as f64 * 100.0 / wall as f64)
}

/// Prints the latest metrics of `device`.
pub async fn show(client: &AdminClient, device: &str, n: usize, json: bool) -> Result<()> {
    let samples: MetricsView = client
        .get(&format!(
            "/v1/devices/{}/metrics?n={}",
            encode(device),
            n.max(2)
        ))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&samples)?);
        return Ok(());
    }
    let Some(last) = samples.last() else {
        println!("no metrics received from {device} yet");
        return Ok(());
    };
    let prev = samples.len().checked_sub(2).map(|i| &samples[i].metrics);
    let m = &last.metrics;
    let h = &m.device;
    println!("sampled   {} (received {})", m.at, ago(&last.received_at));
    let used = h.mem_total_bytes.saturating_sub(h.mem_available_bytes);
    println!(
        "memory    {} used of {} ({:.0}%)",
        bytes(used),
        bytes(h.mem_total_bytes),
        used as f64 * 100.0 / h.mem_total_bytes.max(1) as f64
    );
    match prev.and_then(|p| cpu_percent(p, m, |x| Some(x.device.cpu_busy_ns))) {
        Some(p) => println!(
            "cpu       {:.1}% of {} CPUs",
            p / f64::from(h.cpus.max(1)),
            h.cpus
        ),
        None => println!("cpu       {} CPUs (one more sample for a rate)", h.cpus),
    }
    println!("uptime    {}", duration(h.uptime_secs));
    println!("agent     {} resident", bytes(h.agent_rss_bytes));
    if !m.drops.is_empty() {
        let drops: Vec<String> = m.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("drops     {}", drops.join(" "));
    }
    if m.apps.is_empty() {
        return Ok(());
    }
    println!();
    let rows: Vec<Vec<String>> = m
        .apps
        .iter()
        .map(|a| {
            let cpu = prev
                .and_then(|p| {
                    cpu_percent(p, m, |x| {
                        x.apps.iter().find(|b| b.uuid == a.uuid).map(|b| b.cpu_ns)
                    })
                })
                .map_or("-".to_owned(), |p| format!("{p:.1}%"));
            vec![a.name.clone(), a.uuid.clone(), bytes(a.mem_bytes), cpu]
        })
        .collect();
    table(&["APP", "UUID", "MEMORY", "CPU"], &rows);
    Ok(())
}
