//! CPU and memory plots of the stored metrics, as inline SVG made on the
//! server (no script, no external asset).

use std::fmt::Write;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::html::escape;
use crate::db::MetricsSample;

const W: f64 = 600.0;
const H: f64 = 160.0;
const PAD: f64 = 36.0;

/// One series: (unix seconds, value).
pub type Series = Vec<(f64, f64)>;

fn at(sample: &MetricsSample) -> Option<f64> {
    let t = OffsetDateTime::parse(&sample.metrics.at, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&sample.received_at, &Rfc3339))
        .ok()?;
    Some(t.unix_timestamp_nanos() as f64 / 1e9)
}

/// Device CPU use in percent of all CPUs, between consecutive samples.
pub fn cpu_percent(samples: &[MetricsSample]) -> Series {
    samples
        .windows(2)
        .filter_map(|w| {
            let (t0, t1) = (at(&w[0])?, at(&w[1])?);
            let dt = t1 - t0;
            let cpus = f64::from(w[1].metrics.device.cpus.max(1));
            let busy = w[1]
                .metrics
                .device
                .cpu_busy_ns
                .checked_sub(w[0].metrics.device.cpu_busy_ns)? as f64;
            (dt > 0.0).then(|| (t1, (busy / 1e9 / dt / cpus * 100.0).clamp(0.0, 100.0)))
        })
        .collect()
}

/// Device memory in use, MiB.
pub fn memory_mib(samples: &[MetricsSample]) -> Series {
    samples
        .iter()
        .filter_map(|s| {
            let d = &s.metrics.device;
            let used = d.mem_total_bytes.saturating_sub(d.mem_available_bytes);
            Some((at(s)?, used as f64 / (1024.0 * 1024.0)))
        })
        .collect()
}

/// A line chart titled `title` (values in `unit`); `y_max` is the least
/// top of the scale.
pub fn chart(id: &str, title: &str, unit: &str, series: &Series, y_max: f64) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<figure class="plot"><figcaption>{}</figcaption><svg id="{}" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{}">"#,
        escape(title),
        escape(id),
        escape(title)
    );
    let _ = write!(
        svg,
        r##"<rect x="{PAD}" y="4" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        W - PAD - 4.0,
        H - PAD - 4.0
    );
    if series.len() < 2 {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">not enough samples yet</text></svg></figure>"#,
            W / 2.0,
            H / 2.0
        );
        return svg;
    }
    let (t0, t1) = (series[0].0, series[series.len() - 1].0);
    let top = series.iter().map(|p| p.1).fold(y_max, f64::max);
    let x = |t: f64| PAD + (t - t0) / (t1 - t0).max(1e-9) * (W - PAD - 4.0);
    let y = |v: f64| 4.0 + (1.0 - v / top.max(1e-9)) * (H - PAD - 4.0);
    let points: Vec<String> = series
        .iter()
        .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
        .collect();
    let _ = write!(
        svg,
        r##"<polyline class="series" fill="none" stroke="#2a6" stroke-width="2" points="{}"/>"##,
        points.join(" ")
    );
    let last = series[series.len() - 1].1;
    let _ = write!(
        svg,
        r#"<text x="2" y="14">{top:.0}</text><text x="2" y="{}">0</text><text x="{PAD}" y="{}">{:.0} s</text><text x="{}" y="{}" text-anchor="end">now: {last:.1} {}</text></svg></figure>"#,
        H - PAD,
        H - 8.0,
        t1 - t0,
        W - 4.0,
        H - 8.0,
        escape(unit)
    );
    svg
}
