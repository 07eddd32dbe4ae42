//! Onboarding and authorization over real mutual TLS.

mod common;

use common::{csr, eventually, Harness};
use outpost_api::cloud::{CertsResponse, RegisterRequest, RegisterResponse};
use outpost_controller::layout;
use outpost_controller::pki::{Ca, Leaf, Validity};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_certs_need_no_client_certificate() {
    let h = Harness::start().await;
    let anon = h.anonymous();
    let r = anon.get(h.url("/ping")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let certs: CertsResponse = anon
        .get(h.url("/certs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(certs.signing_cert_pem, h.file(layout::SIGNING_CERT));
    // the host name in the server certificate works too
    let by_name = anon
        .get(format!("https://localhost:{}/api/v1/ping", h.addr.port()))
        .send()
        .await;
    // localhost may resolve to ::1 first, where nothing listens; only a TLS name error would be a bug
    if let Err(e) = by_name {
        assert!(e.is_connect(), "{e:?}");
    }
    // unknown endpoints answer JSON errors
    let r = anon.get(h.url("/nothing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("\"error\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_new_idempotent_conflicting_and_closed() {
    let h = Harness::start().await;
    h.controller().add_device("gw-1", "SN-1").await.unwrap();
    let key = rcgen::KeyPair::generate().unwrap();

    let (status, body) = h.register_raw("SN-1", &key).await;
    assert_eq!(status, 201, "{body}");
    let first: RegisterResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(first.name, "gw-1");

    // same serial + same key: same UUID, a fresh certificate
    let (status, body) = h.register_raw("SN-1", &key).await;
    assert_eq!(status, 200, "{body}");
    let again: RegisterResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(again.uuid, first.uuid);
    assert_ne!(again.cert_pem, first.cert_pem);
    // both certificates work (bounded list per device)
    for cert in [&first.cert_pem, &again.cert_pem] {
        let c = h.with_cert(cert, &key.serialize_pem());
        let r = c
            .get(h.url(&format!("/devices/{}/config", first.uuid)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    // same serial, another key: 409
    let other = rcgen::KeyPair::generate().unwrap();
    let (status, body) = h.register_raw("SN-1", &other).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("gw-1"), "{body}");

    // onboarding closed, serial not listed: 403 naming the fix
    let (status, body) = h.register_raw("SN-unknown", &other).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("device add"), "{body}");

    // a bad CSR: 400
    let r = h
        .onboarding()
        .post(h.url("/register"))
        .json(&RegisterRequest {
            serial: "SN-1".into(),
            csr_pem: "not a csr".into(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // registering needs the onboarding certificate
    let r = h
        .anonymous()
        .post(h.url("/register"))
        .json(&RegisterRequest {
            serial: "SN-1".into(),
            csr_pem: csr(&key),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let device = h.with_cert(&first.cert_pem, &key.serialize_pem());
    let r = device
        .post(h.url("/register"))
        .json(&RegisterRequest {
            serial: "SN-1".into(),
            csr_pem: csr(&key),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_onboarding_names_devices_after_their_serial() {
    let h = Harness::start_with(true, Default::default()).await;
    let key = rcgen::KeyPair::generate().unwrap();
    let (status, body) = h.register_raw("SN 77/a", &key).await;
    assert_eq!(status, 201, "{body}");
    let r: RegisterResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(r.name, "SN-77-a");
    let (status, _) = h.register_raw("SN 77/a", &key).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_only_reach_what_they_may() {
    let h = Harness::start().await;
    let a = h.device("a", "SN-A").await;
    let b = h.device("b", "SN-B").await;
    let config_of = |uuid: &str| h.url(&format!("/devices/{uuid}/config"));

    // the onboarding certificate cannot read a config
    let r = h.onboarding().get(config_of(&a.uuid)).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // device A cannot read device B's config, nor post B's info
    let r = a.client.get(config_of(&b.uuid)).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = a
        .client
        .post(h.url(&format!("/devices/{}/metrics", b.uuid)))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // its own: fine
    let r = a.client.get(config_of(&a.uuid)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    // no client certificate on a device endpoint: 401
    let r = h.anonymous().get(config_of(&a.uuid)).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // a certificate from another CA: refused in the handshake (or 401)
    let (stranger_ca, _) = Ca::create(Validity::days_from_now(10)).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let foreign = stranger_ca
        .issue_for(
            &Leaf::Device(a.uuid.clone()),
            &key,
            Validity::days_from_now(10),
        )
        .unwrap();
    let stranger = h.with_cert(&foreign.cert_pem, &key.serialize_pem());
    match stranger.get(config_of(&a.uuid)).send().await {
        Err(_) => {}
        Ok(r) => assert_eq!(r.status(), 401),
    }
    assert!(
        eventually(|| h.controller().stats.snapshot().handshake_failures >= 1).await,
        "the foreign certificate fails the TLS handshake"
    );

    // an expired certificate from our own CA: refused too
    let ca = Ca::load(&h.state).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let expired = ca
        .issue_for(
            &Leaf::Device(a.uuid.clone()),
            &key,
            Validity {
                not_before: now - time::Duration::days(30),
                not_after: now - time::Duration::days(1),
            },
        )
        .unwrap();
    let old = h.with_cert(&expired.cert_pem, &key.serialize_pem());
    match old.get(config_of(&a.uuid)).send().await {
        Err(_) => {}
        Ok(r) => assert_eq!(r.status(), 401),
    }

    // a certificate from our CA that no device holds: 401
    let unissued = ca
        .issue_for(
            &Leaf::Device(a.uuid.clone()),
            &key,
            Validity::days_from_now(1),
        )
        .unwrap();
    let r = h
        .with_cert(&unissued.cert_pem, &key.serialize_pem())
        .get(config_of(&a.uuid))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // a deleted device's certificate: 401
    h.controller().delete_device("b").await.unwrap();
    let r = b.client.get(config_of(&b.uuid)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // and it may onboard again only when listed again
    let key = rcgen::KeyPair::generate().unwrap();
    assert_eq!(h.register_raw("SN-B", &key).await.0, 403);
}
