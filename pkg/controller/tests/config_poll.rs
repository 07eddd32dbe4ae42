//! Config delivery: signed envelopes, generations, the long-poll.

mod common;

use std::time::{Duration, Instant};

use common::{doc, eventually, Harness};
use outpost_api::cloud::SignedEnvelope;

fn etag_of(r: &reqwest::Response) -> String {
    r.headers()["etag"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_config_wakes_a_waiting_long_poll_with_a_signed_config() {
    let h = Harness::start().await;
    let d = h.device("gw", "SN-1").await;
    let url = h.url(&format!("/devices/{}/config", d.uuid));

    // nothing set yet: 204 at once without wait
    let r = d.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 204);

    // a long-poll with no config waits, and set-config answers it at once
    let waiting = {
        let (client, url) = (d.client.clone(), format!("{url}?wait=30"));
        tokio::spawn(async move {
            let r = client.get(url).send().await.unwrap();
            (
                Instant::now(),
                r.status().as_u16(),
                etag_of(&r),
                r.text().await.unwrap(),
            )
        })
    };
    assert!(eventually(|| h.controller().stats.snapshot().long_polls_waiting == 1).await);
    assert!(h.controller().slot(&d.uuid).unwrap().connected());
    let set_at = Instant::now();
    let set = h.controller().set_config("gw", doc(2)).await.unwrap();
    assert_eq!(set.generation, 1);
    let (answered, status, etag, body) = waiting.await.unwrap();
    assert_eq!(status, 200);
    let latency = answered - set_at;
    assert!(
        latency < Duration::from_millis(500),
        "push took {latency:?}"
    );

    let envelope: SignedEnvelope = serde_json::from_str(&body).unwrap();
    let payload = h.verify(&envelope);
    assert_eq!(payload.device.as_deref(), Some(d.uuid.as_str()));
    assert_eq!(payload.generation, 1);
    assert_eq!(payload.config["generation"], 1);
    assert_eq!(payload.config["apps"].as_array().unwrap().len(), 2);
    // ETag = quoted lowercase hex sha256 of the payload bytes
    let payload_bytes = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        &envelope.payload,
    )
    .unwrap();
    assert_eq!(
        etag,
        format!("\"{}\"", hex::encode(common::sha(&payload_bytes)))
    );

    // with the current ETag: 304 after the wait
    let started = Instant::now();
    let r = d
        .client
        .get(format!("{url}?wait=1"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(etag_of(&r), etag);
    let held = started.elapsed();
    assert!(
        held >= Duration::from_millis(900) && held < Duration::from_secs(3),
        "held {held:?}"
    );
    // another ETag: the current config at once
    let r = d
        .client
        .get(format!("{url}?wait=30"))
        .header("if-none-match", "\"0000\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // the next set-config: generation + 1 whatever the file says, woken again
    let waiting = {
        let (client, url, etag) = (d.client.clone(), format!("{url}?wait=30"), etag.clone());
        tokio::spawn(async move {
            let r = client
                .get(url)
                .header("if-none-match", etag)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    // The poll is parked on the server before the config is set: it must be woken.
    assert!(eventually(|| h.controller().stats.snapshot().long_polls_waiting == 1).await);
    let set = h
        .controller()
        .set_config(&d.uuid, format!("generation: 40\n{}", doc(1)))
        .await
        .unwrap();
    assert_eq!(set.generation, 2);
    let (status, body) = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(status, 200);
    let payload = h.verify(&serde_json::from_str(&body).unwrap());
    assert_eq!(payload.generation, 2);
    assert_eq!(payload.config["generation"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_document_is_refused_and_the_previous_config_stays() {
    let h = Harness::start().await;
    let d = h.device("gw", "SN-1").await;
    let url = h.url(&format!("/devices/{}/config", d.uuid));
    h.controller().set_config("gw", doc(1)).await.unwrap();
    let before = d
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    for bad in [
        "apps: [\n  - {",
        "apps: 7\n",
        "apps: []\nflavour: vanilla\n",
    ] {
        let e = h
            .controller()
            .set_config("gw", bad.into())
            .await
            .unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("nothing changed"), "{}", e.message);
    }
    let after = d
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(before, after);
    let payload = h.verify(&serde_json::from_str(&after).unwrap());
    assert_eq!(payload.generation, 1);

    // rejected apps are warnings, kept in the document
    let mixed = format!("{}  - uuid: x\n    colour: blue\n", doc(1));
    let set = h.controller().set_config("gw", mixed).await.unwrap();
    assert_eq!(set.generation, 2);
    assert_eq!(set.warnings.len(), 1, "{:?}", set.warnings);
    let body = d
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let payload = h.verify(&serde_json::from_str(&body).unwrap());
    assert_eq!(payload.config["apps"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_survive_a_restart() {
    let mut h = Harness::start().await;
    let d = h.device("gw", "SN-1").await;
    h.controller().set_config("gw", doc(1)).await.unwrap();
    let url = h.url(&format!("/devices/{}/config", d.uuid));
    let before = d
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    h.restart().await;
    let client = h.with_cert(&d.cert_pem, &d.key_pem);
    let after = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(before, after);
    // the generation continues from the stored one
    let set = h.controller().set_config("gw", doc(2)).await.unwrap();
    assert_eq!(set.generation, 2);
    // the device's certificate still works and the device is still known by name
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_waiting_long_polls_are_all_woken() {
    const N: usize = 300;
    let h = Harness::start().await;
    let d = h.device("gw", "SN-1").await;
    let url = h.url(&format!("/devices/{}/config?wait=60", d.uuid));
    let mut polls = Vec::new();
    for _ in 0..N {
        // one connection each (HTTP/1: a busy connection is not shared)
        let (client, url) = (d.client.clone(), url.clone());
        polls.push(tokio::spawn(async move {
            let r = client.get(url).send().await.unwrap();
            (Instant::now(), r.status().as_u16())
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.controller().stats.snapshot().long_polls_waiting < N as u64 {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            h.controller().stats.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let set_at = Instant::now();
    h.controller().set_config("gw", doc(1)).await.unwrap();
    let mut slowest = Duration::ZERO;
    for p in polls {
        let (at, status) = p.await.unwrap();
        assert_eq!(status, 200);
        slowest = slowest.max(at - set_at);
    }
    assert!(
        slowest < Duration::from_secs(3),
        "slowest wake-up {slowest:?}"
    );
    eprintln!("{N} long-polls answered within {slowest:?} of set-config");
}

/// A document within the 4 MiB YAML limit whose JSON grows past what a
/// device reads (`"\0"`: 2 bytes of YAML, 6 of JSON) is refused before it
/// is signed: a device would drop the envelope and never get the config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_whose_envelope_a_device_would_refuse_is_not_signed() {
    let h = Harness::start().await;
    let d = h.device("gw", "SN-1").await;
    h.controller().set_config("gw", doc(1)).await.unwrap();
    let nuls = "\\0".repeat(1_800_000);
    let huge = format!(
        "{}  - uuid: 6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9aff\n    version: \"1\"\n    display_name: nul\n    app_num: 9\n    image: hello:latest\n    env:\n      NULS: \"{nuls}\"\n",
        doc(1)
    );
    assert!(huge.len() < 4 << 20, "{}", huge.len());
    let e = h.controller().set_config("gw", huge).await.unwrap_err();
    assert_eq!(e.status, 400, "{}", e.message);
    let limit = outpost_api::cloud::MAX_ENVELOPE_BYTES;
    assert!(
        e.message
            .contains(&format!("more than the {limit} a device reads")),
        "{}",
        e.message
    );
    let url = h.url(&format!("/devices/{}/config", d.uuid));
    let body = d
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        h.verify(&serde_json::from_str(&body).unwrap()).generation,
        1
    );
}

/// "Last seen" is kept in the store: a restarted controller still shows
/// when a device last called (the batch written at shutdown), not "never".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_seen_survives_a_restart() {
    use outpost_controller::admin::client::AdminClient;
    use outpost_controller::admin::types::DeviceView;
    let mut h = Harness::start().await;
    let d = h.device("gw", "SN-1").await;
    let admin = AdminClient::new(&h.state.admin_socket());
    let listed = |list: Vec<DeviceView>| list.into_iter().find(|v| v.name == "gw").unwrap();
    let url = h.url(&format!("/devices/{}/config?wait=0", d.uuid));
    let r = d.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let before = listed(admin.get("/v1/devices").await.unwrap());
    let seen = before.last_seen.expect("seen by this controller");
    h.restart().await;
    let after = listed(admin.get("/v1/devices").await.unwrap());
    assert_eq!(after.last_seen.as_deref(), Some(seen.as_str()));
    assert!(!after.connected);
    h.stop().await;
}
