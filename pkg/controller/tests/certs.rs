//! Device certificate lifecycle against the real controller (in-process,
//! real mutual TLS on loopback, the configured backend) with simulated
//! devices made of pkg/cloud's real client code: renewal on an injected
//! clock, re-authentication past expiry, revocation.

mod common;

use std::time::{Duration, SystemTime};

use common::sim::{onboarding, SimDevice};
use common::{doc, Harness};
use outpost_api::Clock;
use outpost_cloud::renew;
use outpost_cloud::{Client, Poll, Verifier};
use outpost_controller::layout;

/// The acceptance test: three devices with 1-hour certificates over a
/// simulated 30 days in 20-minute steps. At every step each device renews
/// when a third of its certificate is left (one of them with a new key every
/// 100th time) and fetches its config over a fresh mutual TLS connection.
/// A fourth device never renews and must be refused once its certificate
/// has expired: the controller's verifier runs on the injected clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hour_certificates_over_a_simulated_month_stay_online() {
    let clock = Clock::manual(SystemTime::now());
    let h = Harness::start_opts(|o| {
        o.certs.clock = clock.clone();
        o.certs.device_lifetime = Duration::from_secs(3600);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut devices = Vec::new();
    for name in ["sim-a", "sim-b", "sim-c"] {
        devices.push(SimDevice::onboard(&h, &clock, dir.path(), name).await);
    }
    let mut lazy = SimDevice::onboard(&h, &clock, dir.path(), "sim-lazy").await;
    h.controller().set_config_all(doc(1)).await.unwrap();
    let life = devices[0].validity();
    assert_eq!(
        life.not_after
            .duration_since(SystemTime::now())
            .unwrap()
            .as_secs()
            .div_ceil(60),
        60,
        "a 1-hour certificate"
    );

    let step = Duration::from_secs(20 * 60);
    let steps = 30 * 24 * 3;
    let mut lazy_refused_at = None;
    let started = std::time::Instant::now();
    for i in 1..=steps {
        clock.advance(step);
        let now = clock.now();
        for (n, d) in devices.iter_mut().enumerate() {
            if d.validity().renewal_due(now) {
                let new_key = n == 0 && d.renewals % 100 == 99;
                d.id = renew::renew(&d.client, &d.ids, &d.id, new_key)
                    .await
                    .unwrap_or_else(|e| panic!("step {i}: {} renewal: {e}", d.serial));
                d.renewals += 1;
            }
            assert!(!d.validity().expired(now), "step {i}: {} expired", d.serial);
            d.poll()
                .await
                .unwrap_or_else(|e| panic!("step {i} (day {}): {} offline: {e}", i / 72, d.serial));
        }
        if lazy_refused_at.is_none() {
            match lazy.poll().await {
                Ok(()) => assert!(
                    !lazy.validity().expired(now),
                    "step {i}: the expired certificate of sim-lazy was accepted"
                ),
                Err(e) => {
                    assert!(
                        lazy.validity().expired(now),
                        "sim-lazy refused too early: {e}"
                    );
                    lazy_refused_at = Some(i);
                }
            }
        }
    }
    eprintln!(
        "30 simulated days in {:.1} s; renewals: {:?}",
        started.elapsed().as_secs_f64(),
        devices.iter().map(|d| d.renewals).collect::<Vec<_>>()
    );
    assert_eq!(
        lazy_refused_at,
        Some(4),
        "sim-lazy refused from its first step past expiry"
    );
    for d in &devices {
        assert!(
            (1000..=1100).contains(&d.renewals),
            "{} renewed {} times (every 40 min: 1080)",
            d.serial,
            d.renewals
        );
    }
    // the config is still verifiable on the device's clock after a month
    let mut v = Verifier::with_clock(h.file(layout::CA_CERT).as_bytes(), clock.clone()).unwrap();
    v.set_signing_cert(devices[0].client.signing_cert().await.unwrap().as_bytes())
        .unwrap();
    let Poll::Changed { envelope, .. } = devices[0]
        .client
        .poll_config(&devices[0].id.uuid, None, Duration::ZERO)
        .await
        .unwrap()
    else {
        panic!("no config");
    };
    v.open(&envelope).unwrap();
    // the device list shows the newest certificate
    let slot = h.controller().slot(&devices[0].id.uuid).unwrap();
    let record = slot.record();
    assert_eq!(
        record.cert_not_after.as_deref().map(|t| &t[..16]),
        Some(
            time::OffsetDateTime::from(devices[0].validity().not_after)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
                .get(..16)
                .unwrap()
        )
    );
    assert!(record.cert_serial.is_some());
    assert_eq!(
        h.controller()
            .stats
            .certs_renewed
            .load(std::sync::atomic::Ordering::Relaxed),
        devices.iter().map(|d| d.renewals).sum::<u64>()
    );
}

/// Offline past expiry: the device's certificate has expired (its calls
/// are refused); it registers again with the onboarding certificate and its
/// existing key, gets a fresh certificate for the same UUID and key, and is
/// back online. Another key for the same serial stays refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_offline_past_expiry_reauthenticates_with_the_onboarding_certificate() {
    let clock = Clock::manual(SystemTime::now());
    let h = Harness::start_opts(|o| {
        o.certs.clock = clock.clone();
        o.certs.device_lifetime = Duration::from_secs(3600);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = SimDevice::onboard(&h, &clock, dir.path(), "wanderer").await;
    h.controller().set_config("wanderer", doc(1)).await.unwrap();
    d.poll().await.unwrap();
    let key_before = d.id.key_pem.clone();

    clock.advance(Duration::from_secs(3 * 3600)); // offline for 3 hours
    assert!(renew::expired(&d.id, &clock));
    let e = d
        .poll()
        .await
        .expect_err("an expired certificate is refused");
    eprintln!("expired certificate: {e}");
    let e = renew::renew(&d.client, &d.ids, &d.id, false)
        .await
        .expect_err("an expired certificate cannot renew itself");
    eprintln!("renewal with it: {e}");

    let server = h.addr.to_string();
    let id = renew::reauthenticate(
        &onboarding(&h, &clock),
        &d.client,
        &d.ids,
        &server,
        &d.serial,
    )
    .await
    .unwrap();
    assert_eq!(id.uuid, d.id.uuid, "same device");
    assert_eq!(id.key_pem, key_before, "same key");
    assert!(!renew::expired(&id, &clock));
    d.id = id;
    d.etag = None;
    d.poll().await.expect("back online");
    assert_eq!(
        d.ids.load(&server).unwrap().unwrap().cert_pem,
        d.id.cert_pem,
        "the fresh certificate is saved"
    );

    // the onboarding path does not let another key take the device over
    let other = rcgen::KeyPair::generate().unwrap();
    let (status, body) = h.register_raw(&d.serial, &other).await;
    assert_eq!(status, 409, "{body}");
}

/// Renewal with a new key: the key file is replaced atomically (0600, no
/// pending file left), the old key's certificates stop counting, the new
/// one works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_with_a_new_key_replaces_the_key_and_retires_the_old_certificates() {
    use std::os::unix::fs::PermissionsExt;
    let clock = Clock::system();
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = SimDevice::onboard(&h, &clock, dir.path(), "rekey").await;
    let old = d.id.clone();
    d.id = renew::renew(&d.client, &d.ids, &d.id, true).await.unwrap();
    assert_ne!(d.id.key_pem, old.key_pem);
    let key_file = d.ids.dir().join(outpost_cloud::identity::DEVICE_KEY);
    assert_eq!(std::fs::read(&key_file).unwrap(), d.id.key_pem);
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!d.ids.dir().join(renew::DEVICE_KEY_NEXT).exists());
    d.poll().await.expect("the new certificate works");
    let stale = Client::new(
        &h.addr.to_string(),
        h.file(layout::CA_CERT).as_bytes(),
        Some((&old.cert_pem, &old.key_pem)),
    )
    .unwrap();
    let e = stale
        .poll_config(&old.uuid, None, Duration::ZERO)
        .await
        .expect_err("the old key's certificate is retired");
    assert!(e.to_string().contains("401"), "{e}");
    // a crash after the certificate was saved but before the key rename
    // is finished on the next load
    let next = d.ids.dir().join(renew::DEVICE_KEY_NEXT);
    std::fs::rename(&key_file, &next).unwrap();
    std::fs::write(&key_file, &old.key_pem).unwrap();
    let loaded = d.ids.load(&h.addr.to_string()).unwrap().unwrap();
    assert_eq!(loaded.key_pem, d.id.key_pem);
    assert!(!next.exists());
}
