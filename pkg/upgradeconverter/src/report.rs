//! What a run did (or, in a dry run, would do), handler by handler.

use std::fmt;
use std::path::PathBuf;

use crate::error::ConvertError;

/// One thing a handler changed, would change, or noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A directory moved to its new place (copied, or renamed).
    Moved {
        /// Old place.
        from: PathBuf,
        /// New place.
        to: PathBuf,
    },
    /// `snapshotid.txt` written so the volume keeps its old snapshot.
    SnapshotIdSaved {
        /// The volume directory.
        dir: PathBuf,
        /// The snapshot ID written (the old directory's basename).
        id: String,
    },
    /// A directory removed: the old copy after a move, or a half-done copy
    /// left by an interrupted run.
    Removed {
        /// The directory.
        path: PathBuf,
        /// Why.
        why: &'static str,
    },
    /// The destination exists and is not ours to replace: both are left as
    /// they are. Not a modification.
    DestinationExists {
        /// What would have moved.
        from: PathBuf,
        /// The existing destination.
        to: PathBuf,
    },
    /// Something left alone on purpose. Not a modification.
    Skipped {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Information for the operator. Not a modification.
    Note(String),
}

impl Change {
    /// True when this changes the disk (in a dry run: would change it).
    pub fn is_modification(&self) -> bool {
        matches!(
            self,
            Change::Moved { .. } | Change::SnapshotIdSaved { .. } | Change::Removed { .. }
        )
    }

    /// One line, worded for a real run or a dry run.
    pub fn describe(&self, dry_run: bool) -> String {
        let would = if dry_run { "would " } else { "" };
        match self {
            Change::Moved { from, to } => format!(
                "{would}{} {} -> {}",
                if dry_run { "move" } else { "moved" },
                from.display(),
                to.display()
            ),
            Change::SnapshotIdSaved { dir, id } => format!(
                "{would}{} snapshot ID {id:?} in {}",
                if dry_run { "save" } else { "saved" },
                dir.display()
            ),
            Change::Removed { path, why } => format!(
                "{would}{} {} ({why})",
                if dry_run { "remove" } else { "removed" },
                path.display()
            ),
            Change::DestinationExists { from, to } => format!(
                "left {} in place: destination {} already exists and is not its conversion",
                from.display(),
                to.display()
            ),
            Change::Skipped { path, reason } => {
                format!("skipped {}: {reason}", path.display())
            }
            Change::Note(n) => n.clone(),
        }
    }
}

/// The outcome of one handler.
#[derive(Debug)]
pub struct HandlerReport {
    /// The handler's name (the key recorded in the store).
    pub name: &'static str,
    /// Its one-line description.
    pub description: &'static str,
    /// When it last completed before this run (ms since the epoch), if ever.
    pub previously_done_ms: Option<u64>,
    /// What it changed, would change, or noticed, in order.
    pub changes: Vec<Change>,
    /// What failed. A failed item does not stop the handler's other items.
    pub errors: Vec<ConvertError>,
}

impl HandlerReport {
    /// True when nothing failed.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The outcome of a whole run.
#[derive(Debug)]
pub struct Report {
    /// Whether this was a dry run (nothing was changed).
    pub dry_run: bool,
    /// One entry per handler, in the order they ran.
    pub handlers: Vec<HandlerReport>,
}

impl Report {
    /// True when some handler changed (dry run: would change) the disk.
    pub fn changed(&self) -> bool {
        self.handlers
            .iter()
            .any(|h| h.changes.iter().any(Change::is_modification))
    }

    /// True when some handler failed.
    pub fn failed(&self) -> bool {
        self.handlers.iter().any(|h| !h.ok())
    }

    /// The handler report called `name`.
    pub fn handler(&self, name: &str) -> Option<&HandlerReport> {
        self.handlers.iter().find(|h| h.name == name)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "upgrade conversion{}: {} handlers",
            if self.dry_run {
                " (dry run, nothing changed)"
            } else {
                ""
            },
            self.handlers.len()
        )?;
        for h in &self.handlers {
            let state = match (h.ok(), h.changes.iter().any(Change::is_modification)) {
                (false, _) => "FAILED",
                (true, true) if self.dry_run => "would change",
                (true, true) => "changed",
                (true, false) => "nothing to do",
            };
            writeln!(f, "[{}] {}: {state}", h.name, h.description)?;
            for c in &h.changes {
                writeln!(f, "  {}", c.describe(self.dry_run))?;
            }
            for e in &h.errors {
                writeln!(f, "  error: {e}")?;
            }
        }
        Ok(())
    }
}
