//! `base-os publish | list | retry` through the admin socket of a real
//! controller (redb, or PostgreSQL with OUTPOST_CONTROLLER_BACKEND=postgres):
//! the artifact is stored and bounded, named in the signed configs the
//! devices poll, and served over the device API to device certificates only.

mod common;

use common::{doc, Harness};
use outpost_controller::admin::client::AdminClient;
use outpost_controller::baseos::{ArtifactView, PublishCheck, Published};
use outpost_controller::layout;
use outpost_controller::state::ConfigSet;
use outpost_controller::{ControllerError, Limits};
use sha2::{Digest, Sha256};

fn artifact(seed: u8, len: usize) -> (tempfile::NamedTempFile, Vec<u8>, String) {
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), &bytes).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    (f, bytes, sha)
}

async fn publish(
    a: &AdminClient,
    file: &tempfile::NamedTempFile,
    query: &str,
) -> Result<Published, ControllerError> {
    a.upload(&format!("/v1/base-os?{query}"), file.path()).await
}

fn refused(r: Result<impl std::fmt::Debug, ControllerError>) -> (u16, String) {
    match r {
        Err(ControllerError::AdminRefused {
            status, message, ..
        }) => (status, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn polled_base_os(h: &Harness, d: &common::Device) -> serde_json::Value {
    let resp = d
        .client
        .get(h.url(&format!("/devices/{}/config", d.uuid)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let payload = h.verify(&resp.json().await.unwrap());
    assert_eq!(
        payload.config["apps"].as_array().map(Vec::len),
        Some(1),
        "the apps stay: {}",
        payload.config
    );
    payload.config["base_os"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_stores_bounds_serves_and_signs_the_base_os() {
    let limits = Limits {
        max_base_os_bytes: 1 << 20,
        base_os_kept: 2,
        ..Limits::default()
    };
    let mut h = Harness::start_with(false, limits).await;
    let d1 = h.device("d1", "S-1").await;
    let d2 = h.device("d2", "S-2").await;
    let _d3 = h.device("d3", "S-3").await;
    for d in [&d1, &d2] {
        h.controller().set_config(&d.name, doc(1)).await.unwrap();
    }
    let admin = AdminClient::new(&h.state.admin_socket());
    let (fa, bytes_a, sha_a) = artifact(1, 300_000);

    // What the CLI asks first: the limit, or the refusal the upload would get.
    let check: PublishCheck = admin
        .post("/v1/base-os/check?version=2&devices=d1", &())
        .await
        .unwrap();
    assert_eq!(check.max_bytes, 1 << 20);
    let (status, msg) = refused(
        admin
            .post::<_, PublishCheck>("/v1/base-os/check?version=2&devices=nope", &())
            .await,
    );
    assert_eq!(status, 404, "{msg}");
    // A device without a config: refused before the body is stored.
    let (status, msg) = refused(publish(&admin, &fa, "version=2&devices=d3").await);
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("d3 have no config yet"), "{msg}");
    // A bad fallback: refused, nothing stored.
    let (status, msg) = refused(
        publish(
            &admin,
            &fa,
            "version=2&devices=d1&test_window=60s&fallback=90s",
        )
        .await,
    );
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("base_os.fallback"), "{msg}");
    // Too large: refused while it streams in.
    let (fbig, _, _) = artifact(9, (1 << 20) + 1);
    let (status, msg) = refused(publish(&admin, &fbig, "version=9&devices=d1").await);
    assert_eq!(status, 413, "{msg}");
    assert!(
        msg.contains("larger than the 1048576 bytes allowed"),
        "{msg}"
    );
    let list: Vec<ArtifactView> = admin.get("/v1/base-os").await.unwrap();
    assert!(list.is_empty(), "{list:?}");

    // Published to d1: signed into its config, apps kept.
    let p = publish(
        &admin,
        &fa,
        "version=2&devices=d1&test_window=300s&fallback=60s",
    )
    .await
    .unwrap();
    assert_eq!(p.artifact.sha256, sha_a);
    assert_eq!(p.artifact.size, bytes_a.len() as u64);
    assert_eq!(
        p.url,
        format!("https://127.0.0.1:8443/api/v1/base-os/{sha_a}")
    );
    assert_eq!(p.configs.len(), 1);
    assert_eq!(p.configs[0].generation, 2);
    let b = polled_base_os(&h, &d1).await;
    assert_eq!(b["sha256"], sha_a.as_str());
    assert_eq!(b["version"], "2");
    assert_eq!(b["url"], p.url.as_str());
    assert_eq!(b["retry"], 0);
    assert_eq!(b["test_window"], "300s");
    assert_eq!(b["fallback"], "60s");

    // Served to devices, with Range; not to anyone else.
    let url = h.url(&format!("/base-os/{sha_a}"));
    let resp = d2.client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), bytes_a.as_slice());
    let resp = d1
        .client
        .get(&url)
        .header("range", "bytes=100000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 100000-299999/{}", bytes_a.len()).as_str()
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &bytes_a[100_000..]);
    // The agent's client resumes the same way.
    let agent = outpost_cloud::Client::new(
        &h.addr.to_string(),
        h.file(layout::CA_CERT).as_bytes(),
        Some((d1.cert_pem.as_bytes(), d1.key_pem.as_bytes())),
    )
    .unwrap();
    let path = format!("/api/v1/base-os/{sha_a}");
    let stall = std::time::Duration::from_secs(10);
    let mut resumed = agent.download_from(&path, 250_000, stall).await.unwrap();
    assert_eq!(resumed.start(), Some(250_000));
    let mut got = Vec::new();
    while let Some(c) = resumed.chunk().await.unwrap() {
        got.extend(c);
    }
    assert_eq!(got.as_slice(), &bytes_a[250_000..]);
    assert_eq!(agent.download(&path, stall).await.unwrap().start(), Some(0));
    assert_eq!(h.anonymous().get(&url).send().await.unwrap().status(), 401);
    assert_eq!(h.onboarding().get(&url).send().await.unwrap().status(), 403);
    let other = h.url(&format!("/base-os/{}", "0".repeat(64)));
    assert_eq!(d1.client.get(&other).send().await.unwrap().status(), 404);

    // retry bumps the counter (a new signed generation).
    let sets: Vec<ConfigSet> = admin
        .post("/v1/base-os/retry", &serde_json::json!({"devices": ["d1"]}))
        .await
        .unwrap();
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].generation, 3);
    assert_eq!(polled_base_os(&h, &d1).await["retry"], 1);

    // set-config without `base_os` keeps it.
    h.controller().set_config("d1", doc(1)).await.unwrap();
    let b = polled_base_os(&h, &d1).await;
    assert_eq!(
        (b["sha256"].as_str(), b["retry"].as_u64()),
        (Some(sha_a.as_str()), Some(1))
    );

    // --all: d3 (no config) skipped; the retry counter is kept.
    let (fb, _, sha_b) = artifact(2, 1000);
    let p = publish(&admin, &fb, "version=3&all=true").await.unwrap();
    assert_eq!(p.skipped, ["d3"]);
    let names: Vec<&str> = p.configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["d1", "d2"]);
    let b = polled_base_os(&h, &d1).await;
    assert_eq!(
        (b["sha256"].as_str(), b["retry"].as_u64()),
        (Some(sha_b.as_str()), Some(1))
    );
    assert_eq!(b["test_window"], "600s", "EVE's default");

    // At most 2 kept: A (unused now) makes room for C.
    let (fc, _, sha_c) = artifact(3, 1000);
    publish(&admin, &fc, "version=4&devices=d1").await.unwrap();
    let list: Vec<ArtifactView> = admin.get("/v1/base-os").await.unwrap();
    let shas: Vec<&str> = list.iter().map(|a| a.record.sha256.as_str()).collect();
    assert_eq!(shas, [sha_b.as_str(), sha_c.as_str()]);
    assert_eq!(list[0].devices, ["d2"]);
    assert_eq!(list[1].devices, ["d1"]);
    assert_eq!(d1.client.get(&url).send().await.unwrap().status(), 404);
    assert!(!h
        .state
        .root()
        .join("base-os")
        .join(format!("{sha_a}.squashfs"))
        .exists());
    // Both in use: a third is refused, nothing stored.
    let (fd, _, _) = artifact(4, 1000);
    let (status, msg) = refused(publish(&admin, &fd, "version=5&devices=d2").await);
    assert_eq!(status, 400, "{msg}");
    assert!(
        msg.contains("every one is named by a device config"),
        "{msg}"
    );
    let dir: Vec<_> = std::fs::read_dir(h.state.root().join("base-os"))
        .unwrap()
        .collect();
    assert_eq!(dir.len(), 2, "no upload left behind: {dir:?}");

    // Kept across a restart.
    h.restart().await;
    let list: Vec<ArtifactView> = admin.get("/v1/base-os").await.unwrap();
    assert_eq!(list.len(), 2);
    let url_c = h.url(&format!("/base-os/{sha_c}"));
    let resp = d1.client.get(&url_c).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        hex::encode(Sha256::digest(resp.bytes().await.unwrap())),
        sha_c
    );

    // set-config --all keeps each device's own; d3 gets none.
    h.controller().set_config_all(doc(1)).await.unwrap();
    assert_eq!(polled_base_os(&h, &d1).await["sha256"], sha_c.as_str());
    assert_eq!(polled_base_os(&h, &d2).await["sha256"], sha_b.as_str());
    // `base_os: null` removes it: B is named by no config now.
    h.controller()
        .set_config("d2", format!("base_os: null\n{}", doc(1)))
        .await
        .unwrap();
    assert!(polled_base_os(&h, &d2).await.is_null());
    let list: Vec<ArtifactView> = admin.get("/v1/base-os").await.unwrap();
    assert!(list[0].devices.is_empty(), "{list:?}");
}
