//! Size bounds of everything the store accepts; checked before a write
//! transaction starts, so a refused value never half-applies a batch.

use crate::error::{Result, StoreError};

/// Largest config document kept as a checkpoint (applied or known-good): 16 MiB.
pub const MAX_CONFIG_BYTES: usize = 16 * 1024 * 1024;

/// Largest JSON encoding of one app record: 1 MiB.
pub const MAX_APP_RECORD_BYTES: usize = 1024 * 1024;

/// Longest key (app UUID, handler name) in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// Refuses an empty key or one longer than [`MAX_KEY_BYTES`].
pub(crate) fn check_key(kind: &'static str, key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        "must not be empty".to_string()
    } else if key.len() > MAX_KEY_BYTES {
        format!(
            "is {} bytes, more than the limit of {MAX_KEY_BYTES}",
            key.len()
        )
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidKey {
        kind,
        key: key.chars().take(80).collect(),
        reason,
    })
}

/// Refuses `size > max` with a message that names `what`.
pub(crate) fn check_size(what: impl FnOnce() -> String, size: usize, max: usize) -> Result<()> {
    if size > max {
        return Err(StoreError::TooLarge {
            what: what(),
            size,
            max,
        });
    }
    Ok(())
}
