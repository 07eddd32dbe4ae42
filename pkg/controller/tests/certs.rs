//! Device certificate lifecycle against the real controller (in-process,
//! real mutual TLS on loopback, the configured backend) with simulated
//! devices made of pkg/cloud's real client code: renewal on an injected
//! clock, re-authentication past expiry, revocation.

mod common;

use std::time::{Duration, SystemTime};

use common::{doc, Harness};
use outpost_api::cloud::RegisterRequest;
use outpost_api::Clock;
use outpost_cloud::renew::{self, CertValidity};
use outpost_cloud::{Client, ClientOptions, CloudError, DeviceIdentity, IdentityStore, Poll, Verifier};
use outpost_controller::layout;

/// A simulated device: its `/persist/certs`, identity and client.
struct SimDevice {
    ids: IdentityStore,
    id: DeviceIdentity,
    client: Client,
    serial: String,
    etag: Option<String>,
    renewals: u64,
}

fn options(clock: &Clock) -> ClientOptions {
    ClientOptions {
        clock: clock.clone(),
        // a TLS handshake (a validity check on both sides) on every request
        reuse_connections: false,
    }
}

/// A client presenting the onboarding certificate of the harness.
fn onboarding(h: &Harness, clock: &Clock) -> Client {
    Client::with_options(
        &h.addr.to_string(),
        h.file(layout::CA_CERT).as_bytes(),
        Some((
            h.file(layout::ONBOARD_CERT).as_bytes(),
            h.file(layout::ONBOARD_KEY).as_bytes(),
        )),
        options(clock),
    )
    .unwrap()
}

impl SimDevice {
    /// Adds `name` to the onboarding list and registers it like the agent.
    async fn onboard(h: &Harness, clock: &Clock, dir: &std::path::Path, name: &str) -> SimDevice {
        let serial = format!("sn-{name}");
        h.controller().add_device(name, &serial).await.unwrap();
        let ids = IdentityStore::new(dir.join(name));
        let server = h.addr.to_string();
        let resp = onboarding(h, clock)
            .register(&RegisterRequest {
                serial: serial.clone(),
                csr_pem: ids.csr_pem(&serial).unwrap(),
            })
            .await
            .unwrap();
        let id = ids.save(&server, &resp).unwrap();
        let client = Client::with_options(
            &server,
            h.file(layout::CA_CERT).as_bytes(),
            Some((&id.cert_pem, &id.key_pem)),
            options(clock),
        )
        .unwrap();
        SimDevice {
            ids,
            id,
            client,
            serial,
            etag: None,
            renewals: 0,
        }
    }

    fn validity(&self) -> CertValidity {
        CertValidity::of_pem(&self.id.cert_pem).unwrap()
    }

    /// One config fetch (no wait): `Ok` when the controller answered.
    async fn poll(&mut self) -> Result<(), CloudError> {
        match self
            .client
            .poll_config(&self.id.uuid, self.etag.as_deref(), Duration::ZERO)
            .await?
        {
            Poll::Changed { etag, .. } => self.etag = etag,
            Poll::NotModified | Poll::Empty => {}
        }
        Ok(())
    }
}

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
                    assert!(lazy.validity().expired(now), "sim-lazy refused too early: {e}");
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
    assert_eq!(lazy_refused_at, Some(4), "sim-lazy refused from its first step past expiry");
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
        h.controller().stats.certs_renewed.load(std::sync::atomic::Ordering::Relaxed),
        devices.iter().map(|d| d.renewals).sum::<u64>()
    );
}
