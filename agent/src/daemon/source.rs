//! Config sources. Each feeds raw documents into one channel; the loop
//! parses, checks the generation, checkpoints and applies. The controller
//! client (a later step) is one more sender on the same channel.

use std::path::{Path, PathBuf};
use std::time::Duration;

use outpost_api::{parse_device_config, ParseError};
use tokio::sync::mpsc;

use crate::daemon::state::Current;

/// A document as received, before parsing.
#[derive(Clone, Debug)]
pub struct RawConfig {
    /// The bytes (YAML or JSON).
    pub bytes: Vec<u8>,
    /// Where it came from (`file:/etc/outpost/device.yaml`, `checkpoint`).
    pub origin: String,
}

/// Why a document was refused (the config in effect stays).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Not a device config at all.
    #[error("config from {origin} refused: {source}")]
    Parse {
        /// Origin.
        origin: String,
        /// Parse error.
        source: ParseError,
    },
    /// Older than what is applied: a replay or a stale file.
    #[error("config from {origin} refused: generation {got} is older than the applied generation {have}")]
    Stale {
        /// Origin.
        origin: String,
        /// Its generation.
        got: u64,
        /// Applied generation.
        have: u64,
    },
}

/// Parses `raw` and checks it against the config in effect. A document
/// with the same generation is accepted (a local file edited in place);
/// an older one is refused.
pub fn accept(raw: &RawConfig, current: Option<&Current>) -> Result<Current, Refused> {
    let text = String::from_utf8_lossy(&raw.bytes);
    let parsed = parse_device_config(&text).map_err(|source| Refused::Parse {
        origin: raw.origin.clone(),
        source,
    })?;
    if let Some(cur) = current {
        if parsed.config.generation < cur.config.generation {
            return Err(Refused::Stale {
                origin: raw.origin.clone(),
                got: parsed.config.generation,
                have: cur.config.generation,
            });
        }
    }
    Ok(Current {
        config: parsed.config,
        rejected: parsed.rejected,
        origin: raw.origin.clone(),
    })
}

/// Watches `path` (inotify on its directory, so editors' rename-into-place
/// is seen) and sends its content whenever it changes. A slow re-check
/// every 30 s covers file systems without inotify.
pub fn watch_file(path: PathBuf, tx: mpsc::Sender<RawConfig>) -> tokio::task::JoinHandle<()> {
    use notify::{RecursiveMode, Watcher};
    let (ev_tx, mut ev_rx) = mpsc::channel::<()>(8);
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = path.file_name().map(|n| n.to_owned());
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if ev.paths.is_empty() || ev.paths.iter().any(|p| p.file_name() == name.as_deref()) {
                let _ = ev_tx.try_send(());
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
        let origin = format!("file:{}", path.display());
        let mut last: Option<Vec<u8>> = None;
        loop {
            match tokio::fs::read(&path).await {
                Ok(bytes) if last.as_ref() != Some(&bytes) => {
                    last = Some(bytes.clone());
                    if tx
                        .send(RawConfig {
                            bytes,
                            origin: origin.clone(),
                        })
                        .await
                        .is_err()
                    {
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
            // Debounce: editors write in several steps.
            tokio::select! {
                _ = ev_rx.recv() => tokio::time::sleep(Duration::from_millis(100)).await,
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
            while ev_rx.try_recv().is_ok() {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawConfig {
        RawConfig {
            bytes: text.as_bytes().to_vec(),
            origin: "test".into(),
        }
    }

    #[test]
    fn refuses_garbage_and_older_generations() {
        assert!(matches!(
            accept(&raw("generation: ["), None),
            Err(Refused::Parse { .. })
        ));
        let cur = accept(&raw("generation: 5\napps: []"), None).unwrap();
        assert_eq!(cur.config.generation, 5);
        let e = accept(&raw("generation: 4\napps: []"), Some(&cur)).unwrap_err();
        assert!(
            e.to_string()
                .contains("older than the applied generation 5"),
            "{e}"
        );
        assert!(accept(&raw("generation: 5\napps: []"), Some(&cur)).is_ok());
    }
}
