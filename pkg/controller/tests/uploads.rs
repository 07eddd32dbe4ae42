//! info / metrics / logs uploads: storage, dedupe, retention, body limits.

mod common;

use common::{log_batch, Harness};
use outpost_api::cloud::{DeviceInfo, DeviceMetrics, HostMetrics, LogAck, LogEntry, BATCH_HEADER};
use outpost_controller::Limits;

fn entry(i: usize) -> LogEntry {
    LogEntry {
        time: format!("2025-01-01T00:00:00.{i:09}Z"),
        source: "guest_vm-6f1c2a4e.1.1".into(),
        app: Some("6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10".into()),
        msg: format!("line {i}"),
    }
}

fn metrics(at: &str) -> DeviceMetrics {
    DeviceMetrics {
        at: at.into(),
        device: HostMetrics {
            mem_total_bytes: 1 << 30,
            mem_available_bytes: 1 << 29,
            cpu_busy_ns: 5,
            cpus: 2,
            uptime_secs: 100,
            agent_rss_bytes: 1 << 20,
        },
        apps: Vec::new(),
        drops: Default::default(),
    }
}

async fn post_logs(
    h: &Harness,
    d: &common::Device,
    batch: u64,
    body: Vec<u8>,
) -> reqwest::Response {
    d.client
        .post(h.url(&format!("/devices/{}/logs", d.uuid)))
        .header(BATCH_HEADER, batch.to_string())
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_and_metrics_are_stored_and_bounded() {
    let limits = Limits {
        metrics_kept: 3,
        ..Limits::default()
    };
    let h = Harness::start_with(false, limits).await;
    let d = h.device("gw", "SN-1").await;
    let info = DeviceInfo {
        agent_version: "0.1.0".into(),
        hostname: "gw".into(),
        kernel: "6.1".into(),
        agent_uptime_secs: 5,
        reported_at: "2025-01-01T00:00:00Z".into(),
        config_generation: 7,
        config_origin: "controller".into(),
        config_error: None,
        apps: Vec::new(),
        services: Vec::new(),
        base_os: None,
    };
    let r = d
        .client
        .post(h.url(&format!("/devices/{}/info", d.uuid)))
        .json(&info)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let stored = h.controller().db().info(&d.uuid).unwrap().unwrap();
    assert_eq!(stored.info, info);

    // a device that reported generation 7 gets 8 next (never a replay)
    let set = h
        .controller()
        .set_config("gw", common::doc(0))
        .await
        .unwrap();
    assert_eq!(set.generation, 8);

    for i in 0..5 {
        let r = d
            .client
            .post(h.url(&format!("/devices/{}/metrics", d.uuid)))
            .json(&metrics(&format!("2025-01-01T00:0{i}:00Z")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    let kept = h.controller().db().metrics(&d.uuid, 100).unwrap();
    let ats: Vec<&str> = kept.iter().map(|s| s.metrics.at.as_str()).collect();
    assert_eq!(
        ats,
        [
            "2025-01-01T00:02:00Z",
            "2025-01-01T00:03:00Z",
            "2025-01-01T00:04:00Z"
        ]
    );

    // not JSON of the right type: 400 naming the type
    let r = d
        .client
        .post(h.url(&format!("/devices/{}/metrics", d.uuid)))
        .body("{\"at\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("DeviceMetrics"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_batch_sent_twice_is_stored_once_and_acknowledged() {
    let h = Harness::start().await;
    let d = h.device("gw", "SN-1").await;
    let batch: Vec<LogEntry> = (0..10).map(entry).collect();

    let r = post_logs(&h, &d, 1, log_batch(&batch)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<LogAck>().await.unwrap(), LogAck { acked: 1 });
    // the agent restarted before it saw the ack: same batch again
    let r = post_logs(&h, &d, 1, log_batch(&batch)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<LogAck>().await.unwrap(), LogAck { acked: 1 });
    assert_eq!(h.controller().db().log_meta(&d.uuid).unwrap().len(), 10);

    let r = post_logs(&h, &d, 2, log_batch(&batch[..3])).await;
    assert_eq!(r.json::<LogAck>().await.unwrap(), LogAck { acked: 2 });
    // an older batch number: acknowledged with the highest held, not stored
    let r = post_logs(&h, &d, 1, log_batch(&batch)).await;
    assert_eq!(r.json::<LogAck>().await.unwrap(), LogAck { acked: 2 });
    assert_eq!(h.controller().db().log_meta(&d.uuid).unwrap().len(), 13);
    let s = h.controller().stats.snapshot();
    assert_eq!((s.log_batches_stored, s.log_batches_duplicate), (2, 2));

    let all = h
        .controller()
        .db()
        .logs_after(&d.uuid, None, 100, &|_| true)
        .unwrap()
        .0;
    let msgs: Vec<&str> = all.iter().map(|l| l.entry.msg.as_str()).collect();
    assert_eq!(&msgs[..2], ["line 0", "line 1"]);
    assert_eq!(msgs[10], "line 0");

    // missing batch header, bad gzip, bad line: 400 with the reason
    let r = d
        .client
        .post(h.url(&format!("/devices/{}/logs", d.uuid)))
        .body(log_batch(&batch))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains(BATCH_HEADER));
    let r = post_logs(&h, &d, 3, b"plain text".to_vec()).await;
    assert_eq!(r.status(), 400);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(
        &mut gz,
        b"{\"time\":\"t\",\"source\":\"s\",\"msg\":\"ok\"}\nnot json\n",
    )
    .unwrap();
    let r = post_logs(&h, &d, 3, gz.finish().unwrap()).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("line 2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_retention_keeps_the_newest_100000_lines() {
    let h = Harness::start().await;
    let d = h.device("gw", "SN-1").await;
    let per_batch = 30_000;
    for b in 0..4u64 {
        let lines: Vec<LogEntry> = (0..per_batch)
            .map(|i| entry(b as usize * per_batch + i))
            .collect();
        let r = post_logs(&h, &d, b + 1, log_batch(&lines)).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let meta = h.controller().db().log_meta(&d.uuid).unwrap();
    assert_eq!(meta.len(), 100_000);
    assert_eq!(meta.dropped, 20_000);
    assert_eq!(h.controller().stats.snapshot().log_lines_dropped, 20_000);
    let oldest = h
        .controller()
        .db()
        .logs_after(&d.uuid, None, 1, &|_| true)
        .unwrap()
        .0;
    assert_eq!(oldest[0].entry.msg, "line 20000");
    let newest = h
        .controller()
        .db()
        .logs_tail(&d.uuid, 1, &|_| true)
        .unwrap();
    assert_eq!(newest[0].entry.msg, "line 119999");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413() {
    let h = Harness::start().await;
    let d = h.device("gw", "SN-1").await;

    // JSON over 1 MiB
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(1 << 20));
    let r = d
        .client
        .post(h.url(&format!("/devices/{}/info", d.uuid)))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("larger than 1048576"));
    // the same without Content-Length (chunked)
    let stream = futures_like_stream(big.into_bytes());
    let r = d
        .client
        .post(h.url(&format!("/devices/{}/metrics", d.uuid)))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // compressed log batch over 4 MiB (random bytes do not compress)
    let mut noise = vec![0u8; (4 << 20) + 10];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let r = post_logs(&h, &d, 1, noise).await;
    assert_eq!(r.status(), 413);

    // decompressing beyond 32 MiB
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let line = format!(
        "{{\"time\":\"t\",\"source\":\"s\",\"msg\":\"{}\"}}\n",
        "y".repeat(1 << 16)
    );
    for _ in 0..(33 << 20) / line.len() + 1 {
        std::io::Write::write_all(&mut gz, line.as_bytes()).unwrap();
    }
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 4 << 20);
    let r = post_logs(&h, &d, 1, bomb).await;
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("decompresses"));
    assert_eq!(h.controller().db().log_meta(&d.uuid).unwrap().len(), 0);
    assert!(h.controller().stats.snapshot().bodies_too_large >= 4);

    // the connection pool still works afterwards
    let r = d.client.get(h.url("/ping")).send().await.unwrap();
    assert_eq!(r.status(), 204);
}

/// A body stream in 64 KiB chunks (so reqwest sends it chunked).
fn futures_like_stream(
    bytes: Vec<u8>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(64 << 10).map(|c| Ok(c.to_vec())).collect();
    futures::stream::iter(chunks)
}
