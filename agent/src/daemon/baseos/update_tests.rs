use super::*;
use crate::daemon::baseos::fetch::open_source;
use outpost_runtime::Layout;

fn cfg() -> BaseOsConfig {
    serde_json::from_value(serde_json::json!({
        "version": "2", "url": "file:/x", "sha256": "a".repeat(64),
        "test_window": "600s", "fallback": "300s"
    }))
    .unwrap()
}

fn h(settled: bool, apps: (usize, usize), controller: Option<Option<u64>>) -> Health {
    Health {
        settled,
        apps,
        controller: controller.map(|c| c.map(Duration::from_secs)),
    }
}

#[test]
fn the_test_window_commits_waits_or_falls_back() {
    let s = Duration::from_secs;
    let c = cfg();
    let cases = [
        (
            "healthy, no controller",
            s(5),
            h(true, (2, 2), None),
            Verdict::Commit,
        ),
        (
            "healthy, controller answered",
            s(5),
            h(true, (1, 1), Some(Some(3))),
            Verdict::Commit,
        ),
        ("apps starting", s(5), h(true, (2, 1), None), Verdict::Wait),
        (
            "config not applied",
            s(5),
            h(false, (0, 0), None),
            Verdict::Wait,
        ),
        (
            "controller not yet reached",
            s(60),
            h(true, (1, 1), Some(None)),
            Verdict::Wait,
        ),
    ];
    for (name, t, health, want) in cases {
        assert_eq!(judge(t, &c, &health), want, "{name}");
    }
    let fallback = |t, health| match judge(t, &c, &health) {
        Verdict::Fallback(r) => r,
        v => panic!("{v:?}"),
    };
    assert!(fallback(s(300), h(true, (1, 1), Some(None))).contains("unreachable for 300s"));
    assert!(fallback(s(400), h(true, (1, 1), Some(Some(350)))).contains("unreachable for 350s"));
    assert!(fallback(s(600), h(true, (2, 1), None)).contains("apps RUNNING: 1/2"));
}

fn installed(phase: Phase) -> Record {
    Record {
        phase,
        sha256: Some("b".repeat(64)),
        target: Some("IMGB".into()),
        ..Record::default()
    }
}

#[test]
fn agent_start_moves_the_record_on() {
    // Booted the new slot: testing, and too many starts roll back.
    let mut r = installed(Phase::Installed);
    for _ in 0..MAX_AGENT_STARTS {
        assert_eq!(on_start(&mut r, "IMGB", &[]), None);
        assert_eq!(r.phase, Phase::Testing);
    }
    assert!(on_start(&mut r, "IMGB", &[])
        .unwrap()
        .contains("started 4 times"));
    // The new slot did not boot: rolled back with the initramfs's notes.
    let mut r = installed(Phase::Installed);
    assert_eq!(
        on_start(&mut r, "IMGA", &["(IMGB) does not mount".into()]),
        None
    );
    assert_eq!(r.phase, Phase::RolledBack);
    let reason = r.reason.clone().unwrap();
    assert!(
        reason.contains("IMGB did not boot; back on IMGA (") && reason.contains("does not mount"),
        "{reason}"
    );
    assert!(r.refused(&"b".repeat(64), 0));
    // Reset during the test window.
    let mut r = installed(Phase::Testing);
    assert_eq!(on_start(&mut r, "IMGA", &[]), None);
    assert!(r.reason.unwrap().contains("reset before it was committed"));
    // An interrupted download goes on from what it made durable; an
    // interrupted check starts over.
    let mut r = installed(Phase::Downloading);
    r.downloaded = 5 << 20;
    assert_eq!(on_start(&mut r, "IMGA", &[]), None);
    assert_eq!((r.phase, r.downloaded), (Phase::Downloading, 5 << 20));
    let mut r = installed(Phase::Verifying);
    r.downloaded = 5 << 20;
    assert_eq!(on_start(&mut r, "IMGA", &[]), None);
    assert_eq!((r.phase, r.downloaded), (Phase::Idle, 0));
}

#[test]
fn interrupted_downloads_back_off_from_ten_seconds_to_five_minutes() {
    let s: Vec<u64> = (1..=8).map(|a| retry_delay(a).as_secs()).collect();
    assert_eq!(s, [10, 20, 40, 80, 160, 300, 300, 300]);
    assert_eq!(retry_delay(u32::MAX).as_secs(), 300);
}

#[tokio::test(flavor = "multi_thread")]
async fn https_is_fetched_only_from_the_devices_own_controller() {
    let d = tempfile::tempdir().unwrap();
    let layout = Layout::new(d.path());
    let l2 = layout.clone();
    let e = tokio::task::spawn_blocking(move || {
        open_source("https://10.0.2.100:8443/api/v1/base-os/x", &l2, 0)
            .err()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(format!("{e:#}").contains("names none"), "{e:#}");
    assert!(!e.is_transient());
    std::fs::create_dir_all(layout.config_dir()).unwrap();
    std::fs::write(layout.config_dir().join("server"), "10.0.2.100:8443\n").unwrap();
    std::fs::write(layout.config_dir().join("root-certificate.pem"), "x").unwrap();
    let l2 = layout.clone();
    let e = tokio::task::spawn_blocking(move || {
        open_source("https://elsewhere:443/img", &l2, 0)
            .err()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!("{e:#}");
    assert!(
        text.contains("only from this device's controller (10.0.2.100:8443)"),
        "{text}"
    );
    assert!(!e.is_transient());
    let e = tokio::task::spawn_blocking(move || {
        open_source("https://10.0.2.100:8443/api/v1/base-os/x", &layout, 0)
            .err()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!("{e:#}");
    assert!(
        text.contains("has not registered with 10.0.2.100:8443"),
        "{text}"
    );
    // Registration may come any moment: worth trying again.
    assert!(e.is_transient());
}
