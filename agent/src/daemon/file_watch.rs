//! Watching one file for new content (the config file, the services
//! manifest).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

/// How long a bare modification waits for the writer to finish.
const DEBOUNCE: Duration = Duration::from_millis(25);

/// Watches `path` (inotify on its directory, so editors' rename-into-place
/// is seen) and sends `wrap(content)` whenever the content changes. A slow
/// re-check every 30 s covers file systems without inotify. The task ends
/// when `tx`'s receiver is gone.
pub fn watch<T: Send + 'static>(
    path: PathBuf,
    tx: mpsc::Sender<T>,
    wrap: impl Fn(Vec<u8>) -> T + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    use notify::{RecursiveMode, Watcher};
    // `true`: the event says the file is complete (renamed into place or
    // closed after writing), so it is read at once; other changes wait for
    // the debounce.
    let (ev_tx, mut ev_rx) = mpsc::channel::<bool>(8);
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = path.file_name().map(|n| n.to_owned());
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !changes(&ev.kind) {
                return;
            }
            if ev.paths.is_empty() || ev.paths.iter().any(|p| p.file_name() == name.as_deref()) {
                let _ = ev_tx.try_send(settled(&ev.kind));
            }
        }
    });
    tokio::spawn(async move {
        let mut _keep = match watcher {
            Ok(mut w) => match w.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => Some(w),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch; re-reading every 30 s");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "no inotify; re-reading every 30 s");
                None
            }
        };
        let mut last: Option<Vec<u8>> = None;
        loop {
            match tokio::fs::read(&path).await {
                Ok(bytes) if last.as_ref() != Some(&bytes) => {
                    last = Some(bytes.clone());
                    tracing::debug!(file = %path.display(), bytes = bytes.len(), "file content changed");
                    if tx.send(wrap(bytes)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) if last.is_some() => {
                    tracing::warn!(file = %path.display(), error = %e, "config file unreadable; keeping the config in effect");
                    last = None;
                }
                Err(_) => {}
            }
            // Debounce: editors write in several steps (a write that still
            // lands in between is seen at the next event).
            tokio::select! {
                Some(done) = ev_rx.recv() => {
                    if !done {
                        tokio::time::sleep(DEBOUNCE).await;
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
            while ev_rx.try_recv().is_ok() {}
        }
    })
}

/// Whether `kind` can change the content. Opening or reading the file
/// cannot (and this watcher's own read would otherwise wake it again,
/// forever: inotify reports opens).
fn changes(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    use notify::EventKind;
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Whether `kind` says the file is complete: renamed into place (the
/// usual atomic write) or closed after a write. Such an event is read at
/// once; a bare modification is debounced.
fn settled(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    use notify::EventKind;
    matches!(
        kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_or_reading_the_file_is_no_change() {
        use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind};
        use notify::EventKind as K;
        for (kind, want) in [
            (K::Access(AccessKind::Open(AccessMode::Any)), false),
            (K::Access(AccessKind::Close(AccessMode::Read)), false),
            (K::Access(AccessKind::Read), false),
            (K::Access(AccessKind::Close(AccessMode::Write)), true),
            (K::Create(CreateKind::File), true),
            (K::Modify(ModifyKind::Any), true),
            (K::Remove(RemoveKind::File), true),
            (K::Any, true),
        ] {
            assert_eq!(changes(&kind), want, "{kind:?}");
        }
    }

    /// The watcher's own reads must not wake it: after the first read,
    /// an untouched file is read again only by the 30 s re-check.
    #[tokio::test]
    async fn an_untouched_file_is_not_read_again_and_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.yaml");
        std::fs::write(&path, "a").unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let _w = watch(path.clone(), tx, |b| b);
        assert_eq!(rx.recv().await.unwrap(), b"a");
        // Count the opens of the file for half a second with a second
        // watcher on the same directory.
        let (otx, orx) = std::sync::mpsc::channel();
        let mut counter = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                if matches!(
                    ev.kind,
                    notify::EventKind::Access(notify::event::AccessKind::Open(_))
                ) {
                    let _ = otx.send(());
                }
            }
        })
        .unwrap();
        use notify::Watcher;
        counter
            .watch(dir.path(), notify::RecursiveMode::NonRecursive)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let opens = orx.try_iter().count();
        assert!(
            opens <= 1,
            "the file was opened {opens} times in 0.5 s while nobody wrote it"
        );
        // A real change still arrives.
        std::fs::write(dir.path().join(".t"), "b").unwrap();
        std::fs::rename(dir.path().join(".t"), &path).unwrap();
        assert_eq!(rx.recv().await.unwrap(), b"b");
    }

    #[test]
    fn only_a_rename_into_place_or_a_close_after_writing_skips_the_debounce() {
        use notify::event::{
            AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RenameMode,
        };
        use notify::EventKind as K;
        for (kind, want) in [
            (K::Modify(ModifyKind::Name(RenameMode::To)), true),
            (K::Modify(ModifyKind::Name(RenameMode::Both)), true),
            (K::Access(AccessKind::Close(AccessMode::Write)), true),
            (K::Modify(ModifyKind::Data(DataChange::Any)), false),
            (K::Modify(ModifyKind::Name(RenameMode::From)), false),
            (K::Create(CreateKind::File), false),
            (K::Access(AccessKind::Close(AccessMode::Read)), false),
        ] {
            assert_eq!(settled(&kind), want, "{kind:?}");
        }
    }
}
