//! Signing-key rotation with an overlap: a device that was offline (the
//! controller stopped) across `signing rotate` returns, meets a config
//! signed by the new key, fetches the new certificate by the fingerprint
//! the envelope names and applies it; the old certificate stays served for
//! the overlap only; a signer that does not chain to the root stays refused.

mod common;

use std::time::{Duration, SystemTime};

use common::sim::SimDevice;
use common::{doc, Harness};
use outpost_api::Clock;
use outpost_cloud::{Poll, Verifier};
use outpost_controller::layout;
use outpost_controller::pki::{self, Ca, Leaf, Validity};

const BIN: &str = env!("CARGO_BIN_EXE_outpost-controller");

/// The device's next config: learns its signer if needed, verifies it.
async fn fetch(d: &mut SimDevice, v: &mut Verifier) -> Result<u64, String> {
    let Poll::Changed { envelope, etag } = d
        .client
        .poll_config(&d.id.uuid, d.etag.as_deref(), Duration::ZERO)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Err("no new config".into());
    };
    d.etag = etag;
    d.client
        .learn_signer(v, &envelope.signer)
        .await
        .map_err(|e| e.to_string())?;
    let opened = v.open(&envelope).map_err(|e| e.to_string())?;
    Ok(opened.payload.generation)
}

/// `signing rotate --overlap 1h` on the harness's state dir; its output.
fn rotate(h: &Harness) -> std::process::Output {
    let out = std::process::Command::new(BIN)
        .arg("--state")
        .arg(h.state.root())
        .args(["signing", "rotate", "--overlap", "1h"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_offline_across_a_signing_rotation_accepts_the_new_signer() {
    let clock = Clock::manual(SystemTime::now());
    let mut h = Harness::start_opts(|o| o.certs.clock = clock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = SimDevice::onboard(&h, &clock, dir.path(), "traveller").await;
    let root = h.file(layout::CA_CERT);
    let mut v = Verifier::with_clock(root.as_bytes(), clock.clone()).unwrap();
    v.set_signing_cert(d.client.signing_cert().await.unwrap().as_bytes())
        .unwrap();
    let old_fp = pki::cert_file_fingerprint(&h.state.file(layout::SIGNING_CERT)).unwrap();
    h.controller()
        .set_config("traveller", doc(1))
        .await
        .unwrap();
    assert_eq!(fetch(&mut d, &mut v).await.unwrap(), 1);

    // the device goes offline; the controller stops and rotates
    h.stop().await;
    let out = rotate(&h);
    let new_fp = pki::cert_file_fingerprint(&h.state.file(layout::SIGNING_CERT)).unwrap();
    assert_ne!(new_fp, old_fp);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&new_fp));
    h.restart().await;
    h.controller()
        .set_config("traveller", doc(2))
        .await
        .unwrap();

    // back online: a config by a signer it has never seen
    assert!(!v.knows(&new_fp));
    assert_eq!(
        fetch(&mut d, &mut v).await.unwrap(),
        2,
        "applies the new signer's config"
    );
    assert!(v.knows(&new_fp) && v.knows(&old_fp));
    // the old certificate is served during the overlap only
    assert!(d.client.signing_cert_by_fingerprint(&old_fp).await.is_ok());
    clock.advance(Duration::from_secs(2 * 3600));
    let gone = d
        .client
        .signing_cert_by_fingerprint(&old_fp)
        .await
        .unwrap_err();
    assert!(gone.to_string().contains("404"), "{gone}");
    assert!(d.client.signing_cert_by_fingerprint(&new_fp).await.is_ok());

    // a signer from another CA: served by a (compromised) controller,
    // refused by the device
    h.stop().await;
    let (rogue_ca, _) = Ca::create(Validity::days_from_now(30)).unwrap();
    let rogue = rogue_ca
        .issue(&Leaf::Signing, Validity::days_from_now(30))
        .unwrap();
    pki::write_file(
        &h.state.file(layout::SIGNING_KEY),
        rogue.key_pem.as_bytes(),
        0o600,
    )
    .unwrap();
    pki::write_file(
        &h.state.file(layout::SIGNING_CERT),
        rogue.cert_pem.as_bytes(),
        0o644,
    )
    .unwrap();
    h.restart().await;
    h.controller()
        .set_config("traveller", doc(3))
        .await
        .unwrap();
    let refused = fetch(&mut d, &mut v).await.unwrap_err();
    assert!(
        refused.contains("does not verify against the root CA"),
        "{refused}"
    );
    assert!(!v.knows(&rogue.fingerprint()));
}

/// `signing rotate` while `serve` runs: the controller notices the files
/// (no restart), signs the next config with the new key, and serves the
/// old certificate for the overlap. A half-done rotation (a new key beside
/// the old certificate) is not taken: it keeps signing with the old key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_controller_takes_a_rotation_without_a_restart() {
    let clock = Clock::manual(SystemTime::now());
    let h = Harness::start_opts(|o| o.certs.clock = clock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = SimDevice::onboard(&h, &clock, dir.path(), "steady").await;
    let root = h.file(layout::CA_CERT);
    let mut v = Verifier::with_clock(root.as_bytes(), clock.clone()).unwrap();
    v.set_signing_cert(d.client.signing_cert().await.unwrap().as_bytes())
        .unwrap();
    let old_fp = pki::cert_file_fingerprint(&h.state.file(layout::SIGNING_CERT)).unwrap();

    // half a rotation: a key that is not the certificate's
    let key_file = h.state.file(layout::SIGNING_KEY);
    let old_key = std::fs::read(&key_file).unwrap();
    let stray = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    pki::write_file(&key_file, stray.serialize_pem().as_bytes(), 0o600).unwrap();
    let err = h.controller().reload_signing().unwrap_err().to_string();
    assert!(err.contains("is not the key of"), "{err}");
    h.controller().set_config("steady", doc(1)).await.unwrap();
    assert_eq!(fetch(&mut d, &mut v).await.unwrap(), 1, "still the old key");
    pki::write_file(&key_file, &old_key, 0o600).unwrap();

    rotate(&h);
    let new_pem = std::fs::read_to_string(h.state.file(layout::SIGNING_CERT)).unwrap();
    let new_fp = pki::cert_file_fingerprint(&h.state.file(layout::SIGNING_CERT)).unwrap();
    let t = std::time::Instant::now();
    let limit = outpost_controller::state::SIGNING_CHECK_EVERY * 3;
    while d.client.signing_cert().await.unwrap() != new_pem {
        assert!(t.elapsed() < limit, "serve did not take the rotation");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "rotation taken by the running controller after {:?}",
        t.elapsed()
    );
    h.controller().set_config("steady", doc(2)).await.unwrap();
    assert!(!v.knows(&new_fp));
    assert_eq!(fetch(&mut d, &mut v).await.unwrap(), 2);
    assert!(v.knows(&new_fp));
    assert!(d.client.signing_cert_by_fingerprint(&old_fp).await.is_ok());
}
