//! The device certificate lifecycle with the real agent: the real
//! `outpost-controller` issuing short-lived certificates, a real `outpostd`
//! running a real container. The agent renews on its own and swaps its TLS
//! identity without touching the app; after its certificate expired while
//! it was down, it registers again with the onboarding certificate.

use std::time::{Duration, Instant};

use outpost_agent::admin::types::Info;
use outpost_api::SwState;
use outpost_cloud::CertValidity;
use outpost_tests::agent::{app_yaml, AgentEnv};
use outpost_tests::controller::{device, Controller};

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A controller issuing certificates valid for `lifetime`, and a device
/// running `hello` from a config it pushed.
fn setup(lifetime: &str) -> (Controller, AgentEnv, String, String) {
    let mut ctl = Controller::init(&[]);
    ctl.serve_args = vec!["--device-cert-lifetime".into(), lifetime.into()];
    ctl.start();
    let (mut env, serial) = device(&ctl, true);
    env.start_agent_with(false);
    let dev = ctl.wait_device(&serial, Duration::from_secs(60));
    let hello = app_yaml(&env.uuid(1), "hello", 1, "hello", "");
    assert_eq!(ctl.set_config(&dev, &format!("apps:\n{hello}")).0, 0);
    env.wait_running(&["hello"], Duration::from_secs(90));
    (ctl, env, dev, hello)
}

/// hello's container task: (task id, pid).
fn hello_task(env: &AgentEnv) -> (String, Option<u32>) {
    let l = env.list();
    let h = l
        .iter()
        .find(|a| a.display_name == "hello")
        .expect("hello listed");
    assert_eq!(h.state, SwState::Running);
    let d = h.domain.as_ref().expect("hello has a task");
    (d.task_id.clone(), d.pid)
}

fn cert_info(env: &AgentEnv) -> Option<outpost_agent::admin::types::CertView> {
    env.info().and_then(|i: Info| i.controller).map(|c| c.cert)
}

fn device_cert(env: &AgentEnv) -> Vec<u8> {
    std::fs::read(env.layout.persist().join("certs").join("device.cert.pem")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_renews_its_certificate_without_touching_apps() {
    let (ctl, env, dev, hello) = setup("30s");
    let task = hello_task(&env);
    let first = device_cert(&env);
    let serial_before = ctl.status(&dev)["device"]["cert_serial"].clone();
    wait_until(
        "two renewals by the agent",
        Duration::from_secs(120),
        || cert_info(&env).is_some_and(|c| c.renewals >= 2),
    );
    let now = device_cert(&env);
    assert_ne!(now, first, "a new certificate is saved");
    let v = CertValidity::of_pem(&now).unwrap();
    assert!(!v.expired(std::time::SystemTime::now()));
    assert_ne!(
        ctl.status(&dev)["device"]["cert_serial"],
        serial_before,
        "the controller lists the new certificate"
    );
    // the link works with the new identity: a change is pushed and applied
    let other = app_yaml(&env.uuid(2), "other", 2, "hello", "");
    assert_eq!(ctl.set_config(&dev, &format!("apps:\n{hello}{other}")).0, 0);
    env.wait_running(&["hello", "other"], Duration::from_secs(90));
    assert_eq!(hello_task(&env), task, "hello was not touched");
    let (_, check, _) = env.outpost(&["check"]);
    assert!(check.contains("device-cert"), "{check}");
    let c = cert_info(&env).unwrap();
    assert_eq!(c.failures, 0, "{c:?}");
    env.teardown().await;
    let mut ctl = ctl;
    ctl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_down_past_expiry_registers_again_and_keeps_its_apps() {
    let (ctl, mut env, dev, hello) = setup("20s");
    let task = hello_task(&env);
    let uuid = env
        .info()
        .and_then(|i| i.controller)
        .and_then(|c| c.uuid)
        .unwrap();
    env.kill_agent(); // the app keeps running
    let cert = device_cert(&env);
    let v = CertValidity::of_pem(&cert).unwrap();
    wait_until(
        "the device certificate expires",
        Duration::from_secs(60),
        || v.expired(std::time::SystemTime::now()),
    );
    env.start_agent_with(false);
    wait_until("re-registration", Duration::from_secs(90), || {
        cert_info(&env).is_some_and(|c| c.reauthentications >= 1)
    });
    assert_ne!(device_cert(&env), cert);
    assert_eq!(
        env.info().and_then(|i| i.controller).and_then(|c| c.uuid),
        Some(uuid),
        "same device"
    );
    let other = app_yaml(&env.uuid(2), "other", 2, "hello", "");
    assert_eq!(ctl.set_config(&dev, &format!("apps:\n{hello}{other}")).0, 0);
    env.wait_running(&["hello", "other"], Duration::from_secs(90));
    assert_eq!(hello_task(&env), task, "hello was not touched");
    env.teardown().await;
    let mut ctl = ctl;
    ctl.stop();
}

/// `POST /v1/devices/{dev}/revoke` on the HTTPS admin API: a read-only
/// token gets 403, a full one revokes; the device is refused from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_over_the_https_admin_api_needs_a_full_token() {
    let mut ctl = Controller::init(&[]);
    let base = ctl.enable_admin();
    let full = ctl.token("ops", false);
    let ro = ctl.token("viewer", true);
    ctl.start();
    // a device registered with pkg/cloud's client through the bundle
    let bundle = outpost_cloud::Bundle::load(&ctl.bundle()).unwrap().unwrap();
    let (oc, ok) = bundle.onboard.clone().unwrap();
    let onboarding =
        outpost_cloud::Client::new(&bundle.server, &bundle.root_pem, Some((&oc, &ok))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ids = outpost_cloud::IdentityStore::new(dir.path());
    let resp = onboarding
        .register(&outpost_api::cloud::RegisterRequest {
            serial: "sn-https".into(),
            csr_pem: ids.csr_pem("sn-https").unwrap(),
        })
        .await
        .unwrap();
    let id = ids.save(&bundle.server, &resp).unwrap();
    let dev = outpost_cloud::Client::new(
        &bundle.server,
        &bundle.root_pem,
        Some((&id.cert_pem, &id.key_pem)),
    )
    .unwrap();
    dev.poll_config(&id.uuid, None, Duration::ZERO)
        .await
        .unwrap();

    let ca = std::fs::read(ctl.dir().join("ca.cert.pem")).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let revoke = |token: &str| {
        http.post(format!("{base}/v1/devices/{}/revoke", resp.name))
            .bearer_auth(token)
            .send()
    };
    let r = revoke(&ro).await.unwrap();
    assert_eq!(r.status(), 403);
    dev.poll_config(&id.uuid, None, Duration::ZERO)
        .await
        .expect("not revoked by a read-only token");
    let r = revoke(&full).await.unwrap();
    assert_eq!(r.status(), 200);
    let view: serde_json::Value = r.json().await.unwrap();
    assert!(view["revoked_at"].is_string(), "{view}");
    let e = dev
        .poll_config(&id.uuid, None, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("403") && e.to_string().contains("revoked"),
        "{e}"
    );
    let (code, out, _) = ctl.cli(&["device", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("revoked"), "{out}");
    ctl.stop();
}
