//! Feeds the hardware watchdog (`/dev/watchdog`; QEMU's i6300esb on the
//! test image, 30 s default timeout) from a task on the agent's runtime, so
//! a hung agent (or a runtime whose workers are all stuck) stops feeding it
//! and the device resets: a hung boot of a slot being tested costs that
//! slot its try. A clean stop writes the magic `V` so a shutdown does not
//! turn into a reset. Nothing happens where there is no watchdog device
//! (dev hosts, the e2e tests' root prefixes).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How often the watchdog is fed (well inside the i6300esb's 30 s).
pub const FEED_EVERY: Duration = Duration::from_secs(5);

/// A running feeder; [`Watchdog::disarm`] stops it cleanly.
#[derive(Debug)]
pub struct Watchdog {
    path: PathBuf,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Watchdog {
    /// Opens `path` (which arms the watchdog) and feeds it every `every`.
    /// `None` when there is no such device; an open error is logged.
    pub fn start(path: &Path, every: Duration) -> Option<Watchdog> {
        let mut file = match std::fs::OpenOptions::new().write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(path = %path.display(), "no watchdog device");
                return None;
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot open the watchdog");
                return None;
            }
        };
        tracing::info!(path = %path.display(), every_s = every.as_secs(), "feeding the watchdog");
        let (stop, mut stopped) = oneshot::channel();
        let p = path.to_owned();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut failures = 0u64;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = file.write_all(b"\0").and_then(|()| file.flush()) {
                            failures += 1;
                            // One line per 100 failures: a broken device must not flood the log.
                            if failures % 100 == 1 {
                                tracing::warn!(path = %p.display(), error = %e, failures, "feeding the watchdog");
                            }
                        }
                    }
                    _ = &mut stopped => {
                        if let Err(e) = file.write_all(b"V").and_then(|()| file.flush()) {
                            tracing::warn!(path = %p.display(), error = %e, "disarming the watchdog");
                        }
                        return;
                    }
                }
            }
        });
        Some(Watchdog {
            path: path.to_owned(),
            stop,
            task,
        })
    }

    /// Stops feeding and disarms the watchdog (magic close).
    pub async fn disarm(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        tracing::info!(path = %self.path.display(), "watchdog disarmed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn feeds_a_file_and_writes_the_magic_close() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("watchdog");
        assert!(Watchdog::start(&p, Duration::from_millis(10)).is_none());
        std::fs::write(&p, b"").unwrap();
        let w = Watchdog::start(&p, Duration::from_millis(10)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read(&p).unwrap().len() < 3 {
            assert!(std::time::Instant::now() < deadline, "not fed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        w.disarm().await;
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.last(), Some(&b'V'));
        assert!(bytes[..bytes.len() - 1].iter().all(|b| *b == 0));
    }
}
