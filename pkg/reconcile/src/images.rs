//! The image GC's keep set: every image some config may still need. The
//! agent reads the known-good checkpoint and runs the GC; this decides.

use std::collections::BTreeSet;

use outpost_api::AppConfig;

use crate::history::History;

/// The known-good (rollback) config as the agent could read it.
#[derive(Clone, Copy, Debug)]
pub enum KnownGood<'a> {
    /// No config was promoted yet.
    None,
    /// The apps of the known-good config.
    Apps(&'a [AppConfig]),
    /// It could not be read: nothing may be deleted safely.
    Unreadable,
}

/// Images to keep: those of the config in effect (`current`), those apps
/// were last built from (`history`'s applied configs) and those of the
/// known-good config. `None` means "skip the GC" (the known-good config is
/// unreadable, so its images are unknown).
pub fn images_to_keep(
    current: &[AppConfig],
    history: &History,
    known_good: KnownGood,
) -> Option<BTreeSet<String>> {
    let rollback = match known_good {
        KnownGood::None => &[][..],
        KnownGood::Apps(apps) => apps,
        KnownGood::Unreadable => return None,
    };
    let applied = history.apps.values().filter_map(|r| r.applied.as_ref());
    Some(
        current
            .iter()
            .chain(applied)
            .chain(rollback)
            .map(|a| a.image.clone())
            .collect(),
    )
}
