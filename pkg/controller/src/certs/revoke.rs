//! `device revoke`: an operator revokes a device. Its certificates are
//! refused on every request from then on (not only at the next handshake),
//! its waiting long-polls end with 403, it may not renew nor register again.
//! On PostgreSQL the other replicas hear of it by the same `NOTIFY` (or
//! catch-up) as any device change and end their long-polls too.

use std::sync::Arc;

use crate::db::DeviceRecord;
use crate::reply::Failure;
use crate::state::Controller;

impl Controller {
    /// Revokes the device `key` (UUID or name).
    pub async fn revoke_device(self: &Arc<Self>, key: &str) -> Result<DeviceRecord, Failure> {
        let slot = self.resolve(key)?;
        let uuid = slot.uuid();
        let at = self.certs.now_rfc3339();
        let _ops = self.ops.lock().await;
        let revoked = {
            let uuid = uuid.clone();
            self.blocking(move |c| c.db.revoke_device(&uuid, &at))
                .await?
        };
        let record = revoked.ok_or_else(|| {
            Failure::not_found(format!("device {key:?} was deleted meanwhile"), Vec::new())
        })?;
        self.insert_slot(record.clone());
        tracing::warn!(device = %record.name, uuid = %record.uuid, "device revoked");
        Ok(record)
    }
}
