//! [`choose`] on the three kinds of host, with and without overrides.

use super::*;

const PRINTED: ProbeOutcome = ProbeOutcome::Printed(Duration::from_millis(300));
const SILENT: ProbeOutcome = ProbeOutcome::Silent(Duration::from_secs(5));

fn exited() -> ProbeOutcome {
    ProbeOutcome::Exited("exit status: 1: kvm: failed to initialize vCPU".into())
}

/// `choose` with a probe that must (or must not) run.
fn run(over: Option<&str>, kvm_opens: bool, probe: Option<ProbeOutcome>) -> AccelChoice {
    let expect_probe = probe.is_some();
    let mut called = false;
    let c = choose(over, kvm_opens, || {
        called = true;
        probe.unwrap_or_else(|| panic!("probe ran for {over:?}, kvm_opens={kvm_opens}"))
    })
    .unwrap();
    assert_eq!(called, expect_probe, "probe ran: {over:?} {kvm_opens}");
    c
}

#[test]
fn working_kvm_host_uses_kvm_with_fallback() {
    for over in [None, Some(""), Some("auto")] {
        let c = run(over, true, Some(PRINTED));
        assert_eq!((c.accel, c.fallback), (Accel::Kvm, true), "{over:?}");
        assert!(
            c.reason.contains("printed on its console 0.30 s"),
            "{}",
            c.reason
        );
    }
}

#[test]
fn host_where_kvm_aborts_uses_tcg() {
    let c = run(None, true, Some(exited()));
    assert_eq!(c.accel, Accel::Tcg);
    assert!(
        c.reason.contains("failed to initialize vCPU"),
        "{}",
        c.reason
    );
}

#[test]
fn host_where_the_kvm_guest_is_silent_uses_tcg() {
    let c = run(None, true, Some(SILENT));
    assert_eq!(c.accel, Accel::Tcg);
    assert!(c.reason.contains("printed nothing"), "{}", c.reason);
}

#[test]
fn no_dev_kvm_uses_tcg_without_probing() {
    let c = run(None, false, None);
    assert_eq!(c.accel, Accel::Tcg);
    assert!(c.reason.contains("/dev/kvm does not open"), "{}", c.reason);
}

#[test]
fn probe_that_cannot_run_means_tcg() {
    let c = run(None, true, Some(ProbeOutcome::NotRun("no kernel".into())));
    assert_eq!(c.accel, Accel::Tcg);
}

#[test]
fn forced_kvm_is_used_on_every_host_without_fallback_or_probe() {
    for kvm_opens in [true, false] {
        let c = run(Some("kvm"), kvm_opens, None);
        assert_eq!((c.accel, c.fallback), (Accel::Kvm, false));
        assert!(c.reason.contains("forced"), "{}", c.reason);
        assert_eq!(c.reason.contains("will fail"), !kvm_opens, "{}", c.reason);
    }
}

#[test]
fn forced_tcg_never_probes() {
    for kvm_opens in [true, false] {
        let c = run(Some("tcg"), kvm_opens, None);
        assert_eq!((c.accel, c.fallback), (Accel::Tcg, false));
    }
}

#[test]
fn unknown_override_is_an_error_naming_the_value() {
    let e = choose(Some("hvf"), true, || panic!("probed")).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("OUTPOST_QEMU_ACCEL=hvf"), "{msg}");
    assert!(msg.contains("kvm") && msg.contains("tcg"), "{msg}");
}
