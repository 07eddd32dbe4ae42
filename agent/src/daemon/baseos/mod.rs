//! The device's A/B base OS slots as the agent reports them: which slot
//! the root was mounted from (`/run/outpost/slot`, written by rcS from the
//! root device's GPT name) and what the initramfs decided on the way
//! (`/persist/status/boot-slot`: `slot <LABEL>` then its notes, e.g. a slot
//! marked failed because its root did not mount).

pub mod fetch;
pub mod install;
pub mod record;
pub mod update;
pub mod watchdog;

use std::io::Read;
use std::path::Path;

use outpost_runtime::Layout;

use crate::admin::types::{BaseOsView, UpdateView};

/// Bytes of `boot-slot` read at most (the initramfs writes a few lines).
const NOTES_BYTES: u64 = 4096;
/// Note lines kept at most.
const NOTES_LINES: usize = 16;

/// The base OS view, or `None` on a system not booted through the slot
/// initramfs (a dev host, the e2e tests without the files).
pub fn view(layout: &Layout) -> Option<BaseOsView> {
    let recorded = read_bounded(&layout.status_dir().join("boot-slot"));
    let mut lines = recorded.lines();
    let recorded_slot = lines
        .next()
        .and_then(|l| l.strip_prefix("slot "))
        .map(str::to_owned);
    let notes: Vec<String> = lines
        .map(|l| l.strip_prefix("outpost-slot: ").unwrap_or(l).to_owned())
        .filter(|l| !l.is_empty() && !l.starts_with("booting "))
        .take(NOTES_LINES)
        .collect();
    let run = read_bounded(&layout.root().join("run/outpost/slot"));
    let slot = Some(run.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or(recorded_slot)
        .or_else(|| {
            // Only the real root's mounts say anything about this layout.
            (layout.root() == Path::new("/"))
                .then(outpost_baseos::boot_slot)
                .flatten()
        })?;
    let rec = record::Record::load(&layout.status_dir().join("baseos.json"));
    let update = (rec.phase != record::Phase::Idle || rec.reason.is_some()).then(|| UpdateView {
        phase: rec.phase.name().to_owned(),
        version: rec.version.clone(),
        target: rec.target.clone(),
        reason: rec.reason.clone(),
        downloaded: (rec.phase == record::Phase::Downloading && rec.downloaded > 0)
            .then_some(rec.downloaded),
    });
    Some(BaseOsView {
        slot,
        notes,
        update,
    })
}

fn read_bounded(p: &Path) -> String {
    let mut s = String::new();
    if let Ok(f) = std::fs::File::open(p) {
        let _ = f.take(NOTES_BYTES).read_to_string(&mut s);
    }
    s
}

impl From<BaseOsView> for outpost_api::baseos::BaseOsStatus {
    fn from(v: BaseOsView) -> Self {
        let u = v.update.unwrap_or_default();
        outpost_api::baseos::BaseOsStatus {
            slot: v.slot,
            update: Some(u.phase).filter(|p| !p.is_empty()),
            version: u.version,
            reason: u.reason,
            downloaded_bytes: u.downloaded,
        }
    }
}

#[cfg(test)]
mod view_tests {
    use super::*;

    /// A download under way shows the bytes made durable, in the agent's
    /// view and in what goes to the controller; other steps show none.
    #[test]
    fn a_download_under_way_reports_its_bytes() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::new(d.path());
        std::fs::create_dir_all(layout.status_dir()).unwrap();
        std::fs::write(layout.status_dir().join("boot-slot"), "slot IMGA\n").unwrap();
        let path = layout.status_dir().join("baseos.json");
        let mut rec = record::Record {
            phase: record::Phase::Downloading,
            version: Some("0.2.0".into()),
            downloaded: 48 << 20,
            ..Default::default()
        };
        rec.save(&path).unwrap();
        let v = view(&layout).unwrap();
        assert_eq!(v.update.as_ref().unwrap().downloaded, Some(48 << 20));
        let status = outpost_api::baseos::BaseOsStatus::from(v);
        assert_eq!(
            status.summary(),
            "slot IMGA; update 0.2.0: DOWNLOADING (48.0 MiB so far)"
        );
        rec.phase = record::Phase::Verifying;
        rec.save(&path).unwrap();
        assert_eq!(view(&layout).unwrap().update.unwrap().downloaded, None);
    }
}
