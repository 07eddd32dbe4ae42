//! Config sources. Each feeds raw documents into one channel; [`parse_off_loop`]
//! parses them on a blocking thread (a hostile document never holds up the
//! loop), and the loop checks the generation, checkpoints and applies. The
//! controller client is one more sender on the same channel.

use std::path::PathBuf;

use outpost_api::{parse_device_config_bytes, ParseError, Parsed};
use tokio::sync::mpsc;

use super::file_watch;
use crate::daemon::snapshot::Current;

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

/// A document and what parsing made of it.
#[derive(Debug)]
pub struct ParsedConfig {
    /// The document as received (checkpointed when accepted).
    pub raw: RawConfig,
    /// The parse result.
    pub parsed: Result<Parsed, Refused>,
}

/// Parses `raw` (bounded, see [`outpost_api::yaml::LIMITS`]; input that is
/// not UTF-8 is refused, never altered).
pub fn parse(raw: &RawConfig) -> Result<Parsed, Refused> {
    parse_device_config_bytes(&raw.bytes).map_err(|source| Refused::Parse {
        origin: raw.origin.clone(),
        source,
    })
}

/// Parses every document of `rx` on a blocking thread, one at a time and in
/// order, and hands the results to the loop.
pub fn parse_off_loop(mut rx: mpsc::Receiver<RawConfig>) -> mpsc::Receiver<ParsedConfig> {
    let (tx, out) = mpsc::channel(1);
    tokio::spawn(async move {
        while let Some(raw) = rx.recv().await {
            let span =
                tracing::info_span!("parse_config", origin = %raw.origin, bytes = raw.bytes.len());
            let done = tokio::task::spawn_blocking(move || {
                let _enter = span.enter();
                let parsed = parse(&raw);
                tracing::debug!(ok = parsed.is_ok(), "parsed");
                ParsedConfig { raw, parsed }
            })
            .await;
            match done {
                Ok(p) => {
                    if tx.send(p).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "parsing a config document panicked; it is ignored")
                }
            }
        }
    });
    out
}

/// Parses `raw` and checks it against the config in effect (see [`check`]).
pub fn accept(raw: &RawConfig, current: Option<&Current>) -> Result<Current, Refused> {
    check(raw, parse(raw)?, current)
}

/// Checks a parsed document against the config in effect. A document
/// with the same generation is accepted (a local file edited in place);
/// an older one is refused.
pub fn check(
    raw: &RawConfig,
    parsed: Parsed,
    current: Option<&Current>,
) -> Result<Current, Refused> {
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

/// Watches the config file at `path` ([`file_watch::watch`]) and sends
/// each new content as a document from `file:<path>`.
pub fn watch_file(path: PathBuf, tx: mpsc::Sender<RawConfig>) -> tokio::task::JoinHandle<()> {
    let origin = format!("file:{}", path.display());
    file_watch::watch(path, tx, move |bytes| RawConfig {
        bytes,
        origin: origin.clone(),
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

    #[test]
    fn non_utf8_is_refused_not_altered() {
        let mut r = raw("generation: 5\napps: []\n# ");
        r.bytes.push(0xC3);
        let e = accept(&r, None).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("invalid UTF-8 at byte 25 (line 3, column 3)"),
            "{e}"
        );
    }
}
