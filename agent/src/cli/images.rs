//! `outpost images`: images in the user containerd with their size and the
//! apps (containers) that use them, read straight from containerd.

use std::collections::BTreeMap;

use anyhow::Result;
use outpost_runtime::{image, observe, Containerd, Layout, USER_NAMESPACE};

/// Prints one line per image (or JSON).
pub async fn run(layout: &Layout, json: bool) -> Result<i32> {
    let c = Containerd::connect(&layout.user_socket(), USER_NAMESPACE).await?;
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for app in observe::list_apps(&c).await? {
        users
            .entry(app.image.clone())
            .or_default()
            .push(app.task_id);
    }
    let mut rows = Vec::new();
    for name in image::list_images(&c).await? {
        let (size, digest) = match image::resolve(&c, &name).await {
            Ok(r) => (Some(r.size), r.manifest_digest),
            Err(e) => (None, format!("unreadable: {e}")),
        };
        let apps = users.remove(&name).unwrap_or_default();
        rows.push(serde_json::json!({
            "name": name, "size": size, "manifest": digest, "apps": apps,
        }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    println!("{:<50} {:>10}  {:<19}  APPS", "IMAGE", "SIZE", "MANIFEST");
    for r in &rows {
        let size = r["size"].as_u64().map(human).unwrap_or_else(|| "?".into());
        let manifest: String = r["manifest"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(19)
            .collect();
        let apps: Vec<&str> = r["apps"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        let apps = if apps.is_empty() {
            "-".to_string()
        } else {
            apps.join(",")
        };
        println!(
            "{:<50} {:>10}  {:<19}  {apps}",
            r["name"].as_str().unwrap_or(""),
            size,
            manifest
        );
    }
    Ok(0)
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
