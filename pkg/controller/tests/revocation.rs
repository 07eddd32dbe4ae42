//! Revocation: `device revoke` refuses a device's certificates on every
//! request (not only at the next handshake), ends its held long-polls,
//! refuses its renewal and its re-registration, and survives a restart; on
//! PostgreSQL a revocation through one replica ends the long-poll held by
//! another within one long-poll cycle.

mod common;

use std::time::{Duration, Instant};

use common::replica::{register, replica_dir, Replica};
use common::sim::{onboarding, SimDevice};
use common::{doc, Harness};
use outpost_api::cloud::RegisterRequest;
use outpost_api::Clock;
use outpost_cloud::{renew, CloudError};
use outpost_controller::admin::client::AdminClient;
use outpost_controller::admin::types::DeviceView;
use outpost_controller::StateDir;

fn assert_revoked(r: Result<impl std::fmt::Debug, CloudError>, what: &str) {
    match r {
        Err(CloudError::Status {
            status: 403,
            message,
            ..
        }) => assert!(message.contains("revoked"), "{what}: {message}"),
        other => panic!("{what}: expected 403 revoked, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_is_refused_on_every_request_and_its_long_poll_ends() {
    let clock = Clock::system();
    let mut h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut a = SimDevice::onboard(&h, &clock, dir.path(), "doomed").await;
    let mut b = SimDevice::onboard(&h, &clock, dir.path(), "bystander").await;
    h.controller().set_config_all(doc(1)).await.unwrap();
    a.poll().await.unwrap();
    b.poll().await.unwrap();

    // a long-poll held on a kept-alive connection (no new handshake)
    let held = {
        let (client, uuid, etag) = (a.client.clone(), a.id.uuid.clone(), a.etag.clone());
        tokio::spawn(async move {
            client
                .poll_config(&uuid, etag.as_deref(), Duration::from_secs(60))
                .await
        })
    };
    let slot = h.controller().slot(&a.id.uuid).unwrap();
    assert!(
        common::eventually(|| slot.connected()).await,
        "long-poll held"
    );

    let admin = AdminClient::new(&h.state.admin_socket());
    let view: DeviceView = admin.post("/v1/devices/doomed/revoke", &()).await.unwrap();
    assert!(view.revoked_at.is_some());
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("the held long-poll ends at once, not after its 60 s")
        .unwrap();
    eprintln!(
        "held long-poll ended {:?} after the revocation",
        started.elapsed()
    );
    assert_revoked(ended, "held long-poll");
    assert_revoked(a.poll().await, "next poll");
    assert_revoked(
        a.client
            .post_logs(&a.id.uuid, 1, common::log_batch(&[]))
            .await,
        "log upload",
    );
    assert_revoked(
        renew::renew(&a.client, &a.ids, &a.id, false).await,
        "renewal",
    );
    let again = onboarding(&h, &clock)
        .register(&RegisterRequest {
            serial: a.serial.clone(),
            csr_pem: a.ids.csr_pem(&a.serial).unwrap(),
        })
        .await;
    assert_revoked(again, "re-registration");
    b.poll().await.expect("another device is not affected");

    // `device list` shows it; a restart keeps it
    let list: Vec<DeviceView> = admin.get("/v1/devices").await.unwrap();
    let doomed = list.iter().find(|v| v.name == "doomed").unwrap();
    assert_eq!(doomed.revoked_at, view.revoked_at);
    h.restart().await;
    assert_revoked(a.poll().await, "poll after a restart");
    b.poll().await.unwrap();
    let refused = h
        .controller()
        .stats
        .revoked_refused
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(refused >= 1, "counted: {refused}");
}

/// Two replicas on PostgreSQL: the device holds a long-poll on replica B;
/// `device revoke` through replica A's admin socket ends it with 403 within
/// one long-poll cycle (NOTIFY wakes replica B), and both refuse it after.
/// Always on PostgreSQL, whatever `OUTPOST_CONTROLLER_BACKEND` says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_revoked_through_one_replica_is_refused_by_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let src = StateDir::new(dir.path().join("state"));
    common::init_state(&src);
    let (_pg, url) = tokio::task::spawn_blocking(common::private_postgres)
        .await
        .unwrap();
    let a = Replica::start(&src, &replica_dir(dir.path(), 0), &url);
    let b = Replica::start(&src, &replica_dir(dir.path(), 1), &url);
    let dev = register(&src, &b.base(), "sn-revoked").await;
    let other = register(&src, &a.base(), "sn-kept").await;

    let held = {
        let (client, url) = (
            dev.client.clone(),
            format!("{}/devices/{}/config?wait=60", b.base(), dev.uuid),
        );
        tokio::spawn(async move { client.get(url).send().await.unwrap() })
    };
    common::replica::wait_for(
        "the long-poll held on replica B",
        Duration::from_secs(10),
        || b.stat("long_polls_waiting") == 1,
    );
    let started = Instant::now();
    let (ok, out, err) = a.cli(&["device", "revoke", &dev.uuid]);
    assert!(ok, "revoke through replica A: {err}");
    assert!(out.contains("revoked"), "{out}");
    let answer = tokio::time::timeout(Duration::from_secs(60), held)
        .await
        .expect("replica B ends the held long-poll within one long-poll cycle")
        .unwrap();
    let took = started.elapsed();
    assert_eq!(answer.status(), 403);
    let body = answer.text().await.unwrap();
    assert!(body.contains("revoked"), "{body}");
    eprintln!("replica B refused the held long-poll {took:?} after the revocation through A");
    for r in [&a, &b] {
        let resp = dev
            .client
            .get(format!("{}/devices/{}/config", r.base(), dev.uuid))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "replica {}", r.addr);
        let resp = other
            .client
            .get(format!("{}/devices/{}/config", r.base(), other.uuid))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "the other device on {}", r.addr);
    }
    assert!(b.stat("revoked_refused") >= 1);
}
