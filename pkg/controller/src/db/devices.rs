//! Devices and the onboarding list.

use redb::{ReadableTable, WriteTransaction};

use super::records::DeviceRecord;
use super::{tables, Db};
use crate::error::Result;
use crate::names;
use crate::pki::Issued;
use crate::signing::now_rfc3339;

/// Answer to [`Db::add_device`].
#[derive(Debug)]
pub enum AddOutcome {
    /// Added to the onboarding list.
    Added(DeviceRecord),
    /// The serial is already listed, for this device.
    SerialTaken(DeviceRecord),
    /// The name is already used by this device.
    NameTaken(DeviceRecord),
}

/// Answer to [`Db::register`].
#[derive(Debug)]
pub enum RegisterOutcome {
    /// First registration of this serial.
    Created(DeviceRecord, Issued),
    /// Same serial and key again: a fresh certificate, same UUID.
    Again(DeviceRecord, Issued),
    /// The serial is registered with another key.
    KeyMismatch(DeviceRecord),
    /// The serial is not on the onboarding list and onboarding is closed.
    NotListed,
    /// The device was revoked: it may not register again.
    Revoked(DeviceRecord),
}

impl Db {
    /// Every device, in no particular order.
    pub fn devices(&self) -> Result<Vec<DeviceRecord>> {
        self.read(|txn| {
            let t = txn
                .open_table(tables::DEVICES)
                .map_err(self.fail("opening devices"))?;
            self.all_devices_in(&t)
        })
    }

    fn all_devices_in(
        &self,
        t: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<Vec<DeviceRecord>> {
        let mut out = Vec::new();
        for row in t.iter().map_err(self.fail("listing devices"))? {
            let (k, v) = row.map_err(self.fail("listing devices"))?;
            out.push(self.decode(&format!("device {}", k.value()), v.value())?);
        }
        Ok(out)
    }

    /// Puts `record` on the onboarding list unless its serial or name is taken.
    pub fn add_device(&self, record: DeviceRecord) -> Result<AddOutcome> {
        self.write("adding a device", |txn| {
            let mut devices = txn
                .open_table(tables::DEVICES)
                .map_err(self.fail("opening devices"))?;
            let mut onboarding = txn
                .open_table(tables::ONBOARDING)
                .map_err(self.fail("opening onboarding"))?;
            let all = self.all_devices_in(&devices)?;
            if let Some(d) = all.iter().find(|d| d.serial == record.serial) {
                return Ok(AddOutcome::SerialTaken(d.clone()));
            }
            if let Some(d) = all.iter().find(|d| d.name == record.name) {
                return Ok(AddOutcome::NameTaken(d.clone()));
            }
            self.put_json(&mut devices, &record.uuid, &record)?;
            onboarding
                .insert(record.serial.as_str(), record.uuid.as_str())
                .map_err(self.fail("writing onboarding"))?;
            Ok(AddOutcome::Added(record))
        })
    }

    /// Registers `serial` with `public_key`, issuing the certificate with
    /// `issue(uuid)` inside the same transaction.
    pub fn register(
        &self,
        serial: &str,
        public_key: &str,
        open_onboarding: bool,
        issue: impl FnOnce(&str) -> Result<Issued>,
    ) -> Result<RegisterOutcome> {
        self.write("registering a device", |txn| {
            let mut devices = txn
                .open_table(tables::DEVICES)
                .map_err(self.fail("opening devices"))?;
            let mut onboarding = txn
                .open_table(tables::ONBOARDING)
                .map_err(self.fail("opening onboarding"))?;
            let listed = onboarding
                .get(serial)
                .map_err(self.fail("reading onboarding"))?
                .map(|g| g.value().to_owned());
            let existing: Option<DeviceRecord> = match &listed {
                Some(uuid) => self.get_json(&devices, uuid)?,
                None => None,
            };
            let now = now_rfc3339();
            let (mut record, created) = match existing {
                Some(d) if d.revoked_at.is_some() => return Ok(RegisterOutcome::Revoked(d)),
                Some(d) => match &d.public_key {
                    Some(k) if k != public_key => return Ok(RegisterOutcome::KeyMismatch(d)),
                    Some(_) => (d, false),
                    None => (d, true),
                },
                None if open_onboarding => {
                    let taken: Vec<String> = self
                        .all_devices_in(&devices)?
                        .into_iter()
                        .map(|d| d.name)
                        .collect();
                    let record = DeviceRecord {
                        uuid: uuid::Uuid::new_v4().to_string(),
                        name: names::name_from_serial(serial, &taken),
                        serial: serial.to_owned(),
                        added_at: now.clone(),
                        registered_at: None,
                        public_key: None,
                        cert_fingerprints: Vec::new(),
                        cert_not_after: None,
                        cert_serial: None,
                        revoked_at: None,
                    };
                    onboarding
                        .insert(serial, record.uuid.as_str())
                        .map_err(self.fail("writing onboarding"))?;
                    (record, true)
                }
                None => return Ok(RegisterOutcome::NotListed),
            };
            let issued = issue(&record.uuid)?;
            record.registered_at.get_or_insert(now);
            record.record_cert(public_key, &issued);
            self.put_json(&mut devices, &record.uuid, &record)?;
            Ok(if created {
                RegisterOutcome::Created(record, issued)
            } else {
                RegisterOutcome::Again(record, issued)
            })
        })
    }

    /// Removes a device and everything stored for it; `None` if unknown.
    pub fn delete_device(&self, uuid: &str) -> Result<Option<DeviceRecord>> {
        self.write("deleting a device", |txn| {
            let mut devices = txn
                .open_table(tables::DEVICES)
                .map_err(self.fail("opening devices"))?;
            let Some(record): Option<DeviceRecord> = self.get_json(&devices, uuid)? else {
                return Ok(None);
            };
            devices
                .remove(uuid)
                .map_err(self.fail("deleting the device"))?;
            let mut onboarding = txn
                .open_table(tables::ONBOARDING)
                .map_err(self.fail("opening onboarding"))?;
            onboarding
                .remove(record.serial.as_str())
                .map_err(self.fail("deleting the onboarding entry"))?;
            for def in [
                tables::CONFIGS,
                tables::INFO,
                tables::METRICS_META,
                tables::LOGS_META,
            ] {
                let mut t = txn.open_table(def).map_err(self.fail("opening a table"))?;
                t.remove(uuid).map_err(self.fail("deleting a record"))?;
            }
            let mut presence = txn
                .open_table(super::presence::PRESENCE)
                .map_err(self.fail("opening presence"))?;
            presence
                .remove(uuid)
                .map_err(self.fail("deleting the presence record"))?;
            drop(presence);
            for def in [tables::METRICS, tables::LOGS] {
                let mut t = txn.open_table(def).map_err(self.fail("opening a table"))?;
                t.retain_in((uuid, 0)..=(uuid, u64::MAX), |_, _| false)
                    .map_err(self.fail("deleting stored uploads"))?;
            }
            Ok(Some(record))
        })
    }

    /// Whether `uuid` is a device, inside a write transaction (uploads check
    /// it so nothing is stored for a device deleted meanwhile).
    pub(crate) fn device_exists(&self, txn: &WriteTransaction, uuid: &str) -> Result<bool> {
        let devices = txn
            .open_table(tables::DEVICES)
            .map_err(self.fail("opening devices"))?;
        let found = devices
            .get(uuid)
            .map_err(self.fail("reading devices"))?
            .is_some();
        Ok(found)
    }
}
