//! `outpost check`: operational knowledge as named readiness checks
//! (the idea of `iotedge check`).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::admin::types::Check;
use crate::daemon::snapshot::Handle;

/// Least free space on /persist before the disk check fails.
pub const MIN_FREE_BYTES: u64 = 256 << 20;
/// Least free fraction on /persist before the disk check fails.
pub const MIN_FREE_PERCENT: u64 = 5;
/// A clock before this (2025-01-01) is not set.
const SANE_CLOCK_SECS: u64 = 1_735_689_600;

/// Runs every check.
pub async fn run(s: &Handle) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(match s.runtime.version().await {
        Ok(v) => ok(
            "user-containerd",
            format!("containerd {v} at {}", s.layout.user_socket().display()),
        ),
        Err(e) => fail(
            "user-containerd",
            format!(
                "{e}; the agent restarts it with backoff, see `logread -source containerd-user`"
            ),
        ),
    });
    let q = s.memlogd.query_socket.clone();
    let stats = tokio::task::spawn_blocking(move || memlogd::stats(&q)).await;
    out.push(match stats {
        Ok(Ok(st)) => ok(
            "memlogd",
            format!(
                "{} lines / {} bytes held (bounds {} lines, {} bytes), {} streams, {} reader drops",
                st.totals.lines,
                st.totals.bytes,
                st.totals.max_lines,
                st.totals.max_bytes,
                st.totals.streams_active,
                st.totals.reader_drops
            ),
        ),
        Ok(Err(e)) => fail(
            "memlogd",
            format!("{e}; app output is not being kept (start memlogd first)"),
        ),
        Err(e) => fail("memlogd", e.to_string()),
    });
    out.push(disk(&s.layout.persist()));
    out.push(clock());
    out.push(match s.store.schema_version() {
        Ok(v) => ok("state-db", format!("schema v{v}")),
        Err(e) => fail("state-db", e.to_string()),
    });
    let snap = s.now();
    out.push(match snap.current.as_deref() {
        Some(c) if c.origin.starts_with("file:") => {
            let path = &c.origin["file:".len()..];
            if std::fs::metadata(path).is_ok() {
                ok(
                    "config-source",
                    format!("{} (generation {})", c.origin, c.config.generation),
                )
            } else {
                fail(
                    "config-source",
                    format!(
                        "{path} is gone; running generation {} from memory",
                        c.config.generation
                    ),
                )
            }
        }
        Some(c) => ok(
            "config-source",
            format!("{} (generation {})", c.origin, c.config.generation),
        ),
        None => fail(
            "config-source",
            "no config yet: give --config-file or a checkpoint".into(),
        ),
    });
    out.push(network(s, cur_networks(&snap)));
    if let Some(link) = s.link.borrow().as_ref() {
        if let Some(c) = device_cert(&link.cert, now_secs()) {
            out.push(c);
        }
    }
    for bin in ["runc", "runsc"] {
        out.push(match which(bin) {
            Some(p) => ok(bin, p),
            None if bin == "runsc" => ok(
                bin,
                "not installed (apps with runtime runsc cannot start)".into(),
            ),
            None => fail(bin, "not on PATH: no app can start".into()),
        });
    }
    out
}

fn ok(name: &str, detail: String) -> Check {
    Check {
        name: name.into(),
        ok: true,
        detail,
    }
}

fn fail(name: &str, detail: String) -> Check {
    Check {
        name: name.into(),
        ok: false,
        detail,
    }
}

fn disk(path: &std::path::Path) -> Check {
    match nix::sys::statvfs::statvfs(path) {
        Ok(st) => {
            let free = st.blocks_available() * st.fragment_size();
            let total = (st.blocks() * st.fragment_size()).max(1);
            let pct = free * 100 / total;
            let detail = format!(
                "{} MiB free of {} MiB ({pct}%) on {}",
                free >> 20,
                total >> 20,
                path.display()
            );
            if free >= MIN_FREE_BYTES && pct >= MIN_FREE_PERCENT {
                ok("disk-space", detail)
            } else {
                fail(
                    "disk-space",
                    format!(
                        "{detail}: below {} MiB or {MIN_FREE_PERCENT}%",
                        MIN_FREE_BYTES >> 20
                    ),
                )
            }
        }
        Err(e) => fail("disk-space", format!("statvfs {}: {e}", path.display())),
    }
}

fn clock() -> Check {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let text = time::OffsetDateTime::from_unix_timestamp(now as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    if now >= SANE_CLOCK_SECS {
        ok("clock", text)
    } else {
        fail(
            "clock",
            format!(
                "{text} is before 2025: TLS and backoff timing will misbehave; set the clock (NTP)"
            ),
        )
    }
}

fn which(bin: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

/// Networks of the config in effect: (any, any with NAT).
fn cur_networks(s: &crate::daemon::snapshot::Snapshot) -> (bool, bool) {
    let nets = s
        .current
        .as_ref()
        .map(|c| c.config.networks.as_slice())
        .unwrap_or(&[]);
    (!nets.is_empty(), nets.iter().any(|n| n.nat))
}

/// CNI plugins present; IP forwarding on where a network wants NAT.
fn network(s: &Handle, (any, nat): (bool, bool)) -> Check {
    const PLUGINS: &[&str] = &[
        "bridge",
        "host-local",
        "portmap",
        "firewall",
        "loopback",
        "bandwidth",
        "macvlan",
    ];
    let dir = s.runtime.cni_dir().to_path_buf();
    let missing: Vec<&str> = PLUGINS
        .iter()
        .copied()
        .filter(|p| !dir.join(p).is_file())
        .collect();
    let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .map(|v| v.trim() == "1")
        .unwrap_or(false);
    if !missing.is_empty() {
        let detail = format!(
            "missing in {}: {} (Debian: containernetworking-plugins)",
            dir.display(),
            missing.join(", ")
        );
        return if any {
            fail("network", detail)
        } else {
            ok("network", format!("{detail}; no network configured"))
        };
    }
    if nat && !forward {
        return fail(
            "network",
            "a network wants NAT but net.ipv4.ip_forward is 0 (sysctl -w net.ipv4.ip_forward=1)"
                .into(),
        );
    }
    ok(
        "network",
        format!(
            "CNI plugins in {}, ip_forward {}",
            dir.display(),
            if forward { "on" } else { "off" }
        ),
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Warns (fails) when the device certificate has expired, or expires
/// within 24 h while its renewal is overdue; `None` before registration.
pub fn device_cert(c: &crate::admin::types::CertView, now: u64) -> Option<Check> {
    const DAY: u64 = 86_400;
    let not_after = c.not_after?;
    let renewals = format!(
        "{} renewals, {} failed attempts{}",
        c.renewals,
        c.failures,
        c.last_error
            .as_deref()
            .map(|e| format!(", last: {e}"))
            .unwrap_or_default()
    );
    let overdue = c.renew_at.is_some_and(|r| now >= r);
    Some(if now > not_after {
        fail(
            "device-cert",
            format!(
                "expired {} s ago; the agent registers again with the onboarding certificate ({renewals})",
                now - not_after
            ),
        )
    } else if not_after - now < DAY && overdue {
        fail(
            "device-cert",
            format!(
                "expires in {} min and renewal is overdue ({renewals})",
                (not_after - now) / 60
            ),
        )
    } else {
        ok(
            "device-cert",
            format!(
                "valid for {} h more, renewal due in {} h ({renewals})",
                (not_after - now) / 3600,
                c.renew_at.unwrap_or(now).saturating_sub(now) / 3600
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::device_cert;
    use crate::admin::types::CertView;

    #[test]
    fn device_cert_check_warns_on_expiry_and_overdue_renewal() {
        let now = 1_800_000_000;
        let cert = |left: u64, renew_in: i64| CertView {
            not_after: Some(now + left),
            renew_at: Some(now.saturating_add_signed(renew_in)),
            ..CertView::default()
        };
        assert!(device_cert(&CertView::default(), now).is_none());
        assert!(
            device_cert(&cert(200 * 86_400, 80 * 86_400), now)
                .unwrap()
                .ok
        );
        // a 1-hour certificate renewing on time is fine
        assert!(device_cert(&cert(1800, 600), now).unwrap().ok);
        let overdue = device_cert(&cert(3600, -3600), now).unwrap();
        assert!(
            !overdue.ok && overdue.detail.contains("overdue"),
            "{overdue:?}"
        );
        let expired = device_cert(
            &CertView {
                not_after: Some(now - 10),
                ..CertView::default()
            },
            now,
        )
        .unwrap();
        assert!(
            !expired.ok && expired.detail.contains("expired"),
            "{expired:?}"
        );
    }
}
