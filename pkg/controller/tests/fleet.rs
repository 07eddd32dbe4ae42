//! A fleet of devices long-polling one controller in-process; one
//! `set-config --all` reaches every one. Sized for CI (200 devices, ~400
//! sockets in this process); `bench-fleet` measures latency at 500+ devices
//! against the real binary. Latency is printed, not asserted: performance
//! is the benchmark's job.

mod common;

use std::time::{Duration, Instant};

use common::Harness;
use outpost_api::cloud::SignedEnvelope;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_devices_gets_one_push() {
    const M: usize = 200;
    let h = Harness::start().await;
    let t0 = Instant::now();
    let mut devices = Vec::new();
    for i in 0..M {
        devices.push(h.device(&format!("d{i}"), &format!("SN-{i}")).await);
    }
    eprintln!("registered {M} devices in {:?}", t0.elapsed());
    let mut polls = Vec::new();
    for d in &devices {
        let (client, url) = (
            d.client.clone(),
            h.url(&format!("/devices/{}/config?wait=120", d.uuid)),
        );
        polls.push(tokio::spawn(async move {
            let r = client.get(url).send().await.unwrap();
            let at = Instant::now();
            (at, r.status().as_u16(), r.text().await.unwrap())
        }));
    }
    while h.controller().stats.snapshot().long_polls_waiting < M as u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start = Instant::now();
    let sets = h.controller().set_config_all(common::doc(3)).await.unwrap();
    let stored = start.elapsed();
    assert_eq!(sets.len(), M);
    let mut lat = Vec::new();
    for p in polls {
        let (at, status, body) = p.await.unwrap();
        assert_eq!(status, 200);
        let env: SignedEnvelope = serde_json::from_str(&body).unwrap();
        assert_eq!(h.verify(&env).generation, 1);
        lat.push(at - start);
    }
    lat.sort();
    eprintln!(
        "set-config --all stored in {stored:?}; received p50 {:?} p99 {:?} max {:?}",
        lat[M / 2],
        lat[M * 99 / 100],
        lat[M - 1]
    );
    // Every long-poll was answered by the push, not by its 120 s deadline.
    assert!(
        lat[M - 1] < Duration::from_secs(60),
        "a device got the push only at {:?}, so its long-poll was not woken",
        lat[M - 1]
    );
}
