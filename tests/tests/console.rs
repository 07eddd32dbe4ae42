//! The controller's HTTPS admin API and web console end to end: the real
//! `outpost-controller serve --admin-listen` with real TLS (admin
//! certificate issued by the controller's CA), tokens made with the CLI,
//! and — for the console — headless Chromium driven over WebDriver
//! against a real `outpostd` device running a real container.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use outpost_tests::agent::app_yaml;
use outpost_tests::browser::Browser;
use outpost_tests::controller::{device, Controller};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A reqwest client trusting only the controller's CA.
fn client(ctl: &Controller) -> reqwest::Client {
    let ca = std::fs::read(ctl.dir().join("ca.cert.pem")).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn status(req: reqwest::RequestBuilder) -> (u16, String) {
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_admin_api_needs_a_token_and_honours_read_only_and_revocation() {
    let mut ctl = Controller::init(&[]);
    let base = ctl.enable_admin();
    let full = ctl.token("automation", false);
    let ro = ctl.token("dashboard", true);
    ctl.start();
    let http = client(&ctl);
    let put_all = |token: &str| {
        http.put(format!("{base}/v1/config"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "document": "apps: []\n" }))
    };

    // No token, a wrong scheme, a made-up token: 401, naming what is missing.
    let (code, body) = status(http.get(format!("{base}/v1/devices"))).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("Bearer"), "{body}");
    let (code, _) = status(
        http.get(format!("{base}/v1/devices"))
            .header("authorization", format!("Basic {full}")),
    )
    .await;
    assert_eq!(code, 401);
    let (code, _) = status(http.get(format!("{base}/v1/devices")).bearer_auth("opt_x")).await;
    assert_eq!(code, 401);

    // A full token reads and changes (the same routes as the CLI's).
    let (code, body) = status(
        http.post(format!("{base}/v1/devices"))
            .bearer_auth(&full)
            .json(&serde_json::json!({ "name": "edge-1", "serial": "s-1" })),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = status(put_all(&full)).await;
    assert_eq!(code, 200, "{body}");

    // A read-only token reads, and every change is 403.
    let (code, body) = status(http.get(format!("{base}/v1/devices")).bearer_auth(&ro)).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("edge-1"), "{body}");
    let (code, body) = status(put_all(&ro)).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("read-only"), "{body}");
    let (code, _) = status(
        http.delete(format!("{base}/v1/devices/edge-1"))
            .bearer_auth(&ro),
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(
        ctl.devices().len(),
        1,
        "the read-only DELETE changed nothing"
    );

    // Revoked: 401 at the next request, the other token still works.
    let (code, out, err) = ctl.cli(&["token", "revoke", "dashboard"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _) = status(http.get(format!("{base}/v1/devices")).bearer_auth(&ro)).await;
    assert_eq!(code, 401);
    let (code, body) = status(http.get(format!("{base}/v1/server")).bearer_auth(&full)).await;
    assert_eq!(code, 200);
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        stats["stats"]["admin_auth_refused"], 6,
        "every 401/403 counted: {body}"
    );

    // The tokens themselves are stored nowhere and never logged.
    let stored = std::fs::read_to_string(ctl.dir().join("admin-tokens.json")).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(ctl.dir().join("admin-tokens.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let (_, list, _) = ctl.cli(&["token", "list"]);
    for t in [&full, &ro] {
        assert!(!stored.contains(t.as_str()) && !list.contains(t.as_str()));
        assert!(!ctl.log().contains(t.as_str()), "a token was logged");
    }

    // The device port has no console and no admin routes.
    let (code, _) = status(http.get(format!("https://{}/console", ctl.addr))).await;
    assert_eq!(code, 404);
    let (code, _) = status(
        http.get(format!("https://{}/console/login", ctl.addr))
            .bearer_auth(&full),
    )
    .await;
    assert_eq!(code, 404);
    let (code, _) = status(
        http.get(format!("https://{}/v1/devices", ctl.addr))
            .bearer_auth(&full),
    )
    .await;
    assert_eq!(code, 404);
    ctl.stop();
}

/// The newest `hello N` line's memlogd time in the log view, if any.
fn newest_hello_time(log: &str) -> Option<OffsetDateTime> {
    log.lines()
        .filter(|l| l.contains(" hello hello "))
        .filter_map(|l| OffsetDateTime::parse(l.split(' ').next()?, &Rfc3339).ok())
        .max()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_chromium_shows_a_real_device_follows_its_logs_and_validates_uploads() {
    let mut ctl = Controller::init(&[]);
    let base = ctl.enable_admin();
    let token = ctl.token("operator", false);
    ctl.start();
    let (mut env, serial) = device(&ctl, true);
    env.start_agent_with(false);
    let dev = ctl.wait_device(&serial, Duration::from_secs(60));
    let hello = app_yaml(&env.uuid(1), "hello", 1, "hello", "");
    assert_eq!(ctl.set_config(&dev, &format!("apps:\n{hello}")).0, 0);
    env.wait_running(&["hello"], Duration::from_secs(90));

    let key = std::fs::read_to_string(ctl.dir().join("admin.key.pem")).unwrap();
    let b = Browser::start(&key).await;
    let c = &b.client;

    // Not logged in: the console sends the browser to the login form.
    c.goto(&format!("{base}/console/devices")).await.unwrap();
    b.wait_text("h1", |t| t == "Log in").await;
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys("opt_not-a-token")
        .await
        .unwrap();
    c.find(Locator::Css("#login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_text("#login-error", |t| t.contains("not valid"))
        .await;
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(&token)
        .await
        .unwrap();
    c.find(Locator::Css("#login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The device list shows the device; its page shows hello RUNNING.
    let row = format!("tr.device[data-uuid='{dev}']");
    let name = b.wait_text(&format!("{row} a.name"), |_| true).await;
    assert!(name.starts_with("test-"), "device name {name:?}");
    c.find(Locator::Css(&format!("{row} a.name")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let running = b
        .wait_for(
            "hello RUNNING on the device page",
            Duration::from_secs(60),
            || async {
                let state = c
                    .find(Locator::Css("tr.app[data-name='hello'] .app-state"))
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                if state == "RUNNING" {
                    Some(state)
                } else {
                    let _ = c.refresh().await;
                    None
                }
            },
        )
        .await;
    assert_eq!(running, "RUNNING");
    // The system section: no A/B slots and no system containerd here.
    let base_os = c.find(Locator::Css("#base-os")).await.unwrap();
    assert_eq!(base_os.text().await.unwrap(), "-");
    c.find(Locator::Css("#services")).await.unwrap();
    // The plots draw the stored metrics (one sample a second here).
    b.wait_for(
        "CPU and memory plots with samples",
        Duration::from_secs(30),
        || async {
            let cpu = c.find(Locator::Css("svg#cpu-plot polyline")).await.is_ok();
            let mem = c.find(Locator::Css("svg#mem-plot polyline")).await.is_ok();
            if cpu && mem {
                Some(())
            } else {
                let _ = c.refresh().await;
                None
            }
        },
    )
    .await;

    // Follow: a line the app prints after the page loaded appears in the
    // log view without a reload (the marker set now would be gone).
    let loaded_at = OffsetDateTime::now_utc();
    c.execute("window.outpostMarker = 42; return true;", vec![])
        .await
        .unwrap();
    let started = Instant::now();
    let newest = b
        .wait_for(
            "a hello line printed after the page loaded",
            Duration::from_secs(60),
            || async {
                let log = c.find(Locator::Css("#log")).await.ok()?.text().await.ok()?;
                newest_hello_time(&log).filter(|t| *t > loaded_at)
            },
        )
        .await;
    eprintln!(
        "line printed at {newest} shown after {:?}",
        started.elapsed()
    );
    let marker = c
        .execute("return window.outpostMarker;", vec![])
        .await
        .unwrap();
    assert_eq!(marker, serde_json::json!(42), "the page was reloaded");

    // A config with a bad app: the page shows the validation error naming
    // it; a hostile app name is shown as text, never as markup.
    let bad = app_yaml(&env.uuid(2), "tiny", 2, "hello", "    colour: blue\n");
    let hostile = app_yaml(
        &env.uuid(3),
        "\"<img id=pwn src=x>\"",
        3,
        "hello",
        "    colour: red\n",
    );
    let file = ctl.dir().join("upload-bad.yaml");
    std::fs::write(&file, format!("apps:\n{hello}{bad}{hostile}")).unwrap();
    c.find(Locator::Css("#config-file"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    c.find(Locator::Css("#config-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let result = b
        .wait_text("#config-result", |t| t.contains("Validation errors"))
        .await;
    assert!(
        result.contains("tiny") && result.contains("colour"),
        "validation error naming the app: {result}"
    );
    assert!(result.contains("<img id=pwn src=x>"), "{result}");
    assert!(
        c.find(Locator::Css("#pwn")).await.is_err(),
        "a config-supplied name became markup"
    );
    // A document-level error refuses the upload, shown on the page.
    std::fs::write(&file, "apps: [\n").unwrap();
    c.find(Locator::Css("#config-file"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    c.find(Locator::Css("#config-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let result = b
        .wait_text("#config-result", |t| t.contains("refused"))
        .await;
    assert!(result.contains("not valid YAML"), "{result}");

    // Revoking the token ends the browser session too.
    assert_eq!(ctl.cli(&["token", "revoke", "operator"]).0, 0);
    c.goto(&format!("{base}/console/devices")).await.unwrap();
    b.wait_text("h1", |t| t == "Log in").await;
    assert!(!ctl.log().contains(&token), "the token was logged");

    b.close().await;
    env.teardown().await;
    ctl.stop();
}
