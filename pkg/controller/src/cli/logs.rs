//! `device logs`: stored lines, then (with -f) new ones as they arrive
//! (the admin API holds each follow request until lines come).

use anyhow::Result;
use outpost_controller::admin::client::{encode, AdminClient};
use outpost_controller::admin::types::{LogLineView, LogPage};

/// Seconds one follow request waits for new lines.
const FOLLOW_WAIT: u64 = 30;

fn print(line: &LogLineView) {
    let who = line
        .app_name
        .as_deref()
        .or(line.app.as_deref())
        .unwrap_or(&line.source);
    println!("{} {} {}", line.time, who, line.msg);
}

/// Prints the logs of `device` (optionally one `app`).
pub async fn show(
    client: &AdminClient,
    device: &str,
    app: Option<&str>,
    follow: bool,
    lines: Option<usize>,
) -> Result<()> {
    let base = format!(
        "/v1/devices/{}/logs?{}",
        encode(device),
        app.map_or(String::new(), |a| format!("app={}&", encode(a)))
    );
    let mut after: Option<u64> = None;
    let mut dropped_seen;
    if let Some(n) = lines {
        let page: LogPage = client.get(&format!("{base}n={n}")).await?;
        page.lines.iter().for_each(print);
        after = page.next_after;
        dropped_seen = page.dropped;
    } else {
        // page through everything held
        loop {
            let q = after.map_or(String::new(), |a| format!("after={a}"));
            let page: LogPage = client.get(&format!("{base}{q}")).await?;
            page.lines.iter().for_each(print);
            dropped_seen = page.dropped;
            let done = page.next_after == after || page.lines.is_empty();
            after = page.next_after.or(after);
            if done {
                break;
            }
        }
    }
    if !follow {
        return Ok(());
    }
    loop {
        let q = match after {
            Some(a) => format!("after={a}&wait={FOLLOW_WAIT}"),
            None => format!("wait={FOLLOW_WAIT}"),
        };
        let page: LogPage = client.get(&format!("{base}{q}")).await?;
        let skipped = page
            .lines
            .first()
            .is_some_and(|l| l.seq > after.map_or(0, |a| a + 1));
        if page.dropped > dropped_seen && skipped {
            eprintln!(
                "({} lines dropped by the controller's retention meanwhile)",
                page.dropped - dropped_seen
            );
        }
        dropped_seen = page.dropped;
        page.lines.iter().for_each(print);
        after = page.next_after.or(after);
    }
}
