//! Certificate lifecycle in redb: renewal and revocation of a device.

use super::records::DeviceRecord;
use super::{tables, Db};
use crate::error::Result;
use crate::pki::Issued;

/// Answer to a certificate renewal ([`crate::store::Store::renew_cert`]).
#[derive(Debug)]
pub enum RenewOutcome {
    /// The new certificate, recorded.
    Renewed(DeviceRecord, Issued),
    /// No such device (deleted meanwhile).
    Gone,
    /// The device is revoked.
    Revoked(DeviceRecord),
}

/// Applies a renewal to `record` (shared by both stores).
pub(crate) fn renew_record(
    mut record: DeviceRecord,
    public_key: &str,
    issue: &mut dyn FnMut(&str) -> Result<Issued>,
) -> Result<RenewOutcome> {
    if record.revoked_at.is_some() {
        return Ok(RenewOutcome::Revoked(record));
    }
    let issued = issue(&record.uuid)?;
    record.record_cert(public_key, &issued);
    Ok(RenewOutcome::Renewed(record, issued))
}

impl Db {
    /// Issues (with `issue`) and records a new certificate of device `uuid`
    /// for `public_key`, in one transaction.
    pub fn renew_cert(
        &self,
        uuid: &str,
        public_key: &str,
        issue: &mut dyn FnMut(&str) -> Result<Issued>,
    ) -> Result<RenewOutcome> {
        self.write("renewing a device certificate", |txn| {
            let mut devices = txn
                .open_table(tables::DEVICES)
                .map_err(self.fail("opening devices"))?;
            let Some(record): Option<DeviceRecord> = self.get_json(&devices, uuid)? else {
                return Ok(RenewOutcome::Gone);
            };
            let outcome = renew_record(record, public_key, issue)?;
            if let RenewOutcome::Renewed(r, _) = &outcome {
                self.put_json(&mut devices, uuid, r)?;
            }
            Ok(outcome)
        })
    }

    /// Marks device `uuid` revoked at `at` (RFC 3339; an earlier revocation
    /// stays); `None` if unknown.
    pub fn revoke_device(&self, uuid: &str, at: &str) -> Result<Option<DeviceRecord>> {
        self.write("revoking a device", |txn| {
            let mut devices = txn
                .open_table(tables::DEVICES)
                .map_err(self.fail("opening devices"))?;
            let Some(mut record): Option<DeviceRecord> = self.get_json(&devices, uuid)? else {
                return Ok(None);
            };
            record.revoked_at.get_or_insert_with(|| at.to_owned());
            self.put_json(&mut devices, uuid, &record)?;
            Ok(Some(record))
        })
    }
}
