//! [`Store`] for [`PgStore`].

use std::collections::HashMap;

use outpost_api::cloud::LogEntry;

use super::PgStore;
use crate::db::{
    AddOutcome, BaseOsRecord, ConfigRecord, DeviceRecord, InfoRecord, LogAppend, LogLine,
    MetricsSample, Presence, RegisterOutcome, RenewOutcome, RingMeta, Settings,
};
use crate::error::Result;
use crate::store::{IssueCert, MakeConfig, Store};

impl Store for PgStore {
    fn settings(&self) -> Result<Settings> {
        Ok(PgStore::settings(self).clone())
    }
    fn shared(&self) -> bool {
        true
    }
    fn devices(&self) -> Result<Vec<DeviceRecord>> {
        self.pg_devices(None)
    }
    fn devices_of(&self, uuids: &[String]) -> Result<Vec<DeviceRecord>> {
        self.pg_devices(Some(uuids))
    }
    fn add_device(&self, record: DeviceRecord) -> Result<AddOutcome> {
        self.pg_add_device(record)
    }
    fn register(
        &self,
        serial: &str,
        public_key: &str,
        open_onboarding: bool,
        issue: IssueCert<'_>,
    ) -> Result<RegisterOutcome> {
        self.pg_register(serial, public_key, open_onboarding, issue)
    }
    fn renew_cert(
        &self,
        uuid: &str,
        public_key: &str,
        issue: IssueCert<'_>,
    ) -> Result<RenewOutcome> {
        self.pg_renew_cert(uuid, public_key, issue)
    }
    fn revoke_device(&self, uuid: &str, at: &str) -> Result<Option<DeviceRecord>> {
        self.pg_revoke_device(uuid, at)
    }
    fn delete_device(&self, uuid: &str) -> Result<Option<DeviceRecord>> {
        self.pg_delete_device(uuid)
    }
    fn configs(&self) -> Result<Vec<(String, ConfigRecord)>> {
        self.pg_configs(None)
    }
    fn configs_of(&self, uuids: &[String]) -> Result<Vec<(String, ConfigRecord)>> {
        self.pg_configs(Some(uuids))
    }
    fn config_generations(&self) -> Result<HashMap<String, u64>> {
        self.pg_config_generations()
    }
    fn config(&self, uuid: &str) -> Result<Option<ConfigRecord>> {
        Ok(self
            .pg_configs(Some(&[uuid.to_owned()]))?
            .pop()
            .map(|(_, c)| c))
    }
    fn set_configs(
        &self,
        uuids: &[String],
        make: MakeConfig<'_>,
    ) -> Result<Vec<(String, ConfigRecord)>> {
        self.pg_set_configs(uuids, make)
    }
    fn put_info(&self, uuid: &str, record: &InfoRecord) -> Result<bool> {
        self.pg_put_info(uuid, record)
    }
    fn info(&self, uuid: &str) -> Result<Option<InfoRecord>> {
        Ok(self.pg_infos(Some(uuid))?.remove(uuid))
    }
    fn infos(&self) -> Result<HashMap<String, InfoRecord>> {
        self.pg_infos(None)
    }
    fn push_metrics(&self, uuid: &str, sample: &MetricsSample, keep: u64) -> Result<bool> {
        self.pg_push_metrics(uuid, sample, keep)
    }
    fn metrics(&self, uuid: &str, n: usize) -> Result<Vec<MetricsSample>> {
        self.pg_metrics(uuid, n)
    }
    fn append_logs(
        &self,
        uuid: &str,
        batch: u64,
        lines: &[Vec<u8>],
        keep: u64,
    ) -> Result<Option<LogAppend>> {
        self.pg_append_logs(uuid, batch, lines, keep)
    }
    fn log_meta(&self, uuid: &str) -> Result<RingMeta> {
        self.pg_log_meta(uuid)
    }
    fn logs_after(
        &self,
        uuid: &str,
        after: Option<u64>,
        limit: usize,
        filter: &dyn Fn(&LogEntry) -> bool,
    ) -> Result<(Vec<LogLine>, Option<u64>)> {
        let start = after.map_or(0, |a| a.saturating_add(1));
        let (lines, scanned) = self.pg_scan_logs(uuid, start, false, limit, filter)?;
        Ok((lines, scanned.or(after)))
    }
    fn logs_tail(
        &self,
        uuid: &str,
        n: usize,
        filter: &dyn Fn(&LogEntry) -> bool,
    ) -> Result<Vec<LogLine>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let (mut lines, _) = self.pg_scan_logs(uuid, u64::MAX >> 1, true, n, filter)?;
        lines.reverse();
        Ok(lines)
    }
    fn presence(&self) -> Result<HashMap<String, Presence>> {
        self.pg_presence(None)
    }
    fn presence_of(&self, uuid: &str) -> Result<Option<Presence>> {
        Ok(self.pg_presence(Some(uuid))?.remove(uuid))
    }
    fn record_presence(&self, rows: &[(String, Presence)]) -> Result<()> {
        self.pg_record_presence(rows)
    }
    fn base_os_artifacts(&self) -> Result<Vec<BaseOsRecord>> {
        self.pg_base_os_artifacts()
    }
    fn put_base_os(&self, record: &BaseOsRecord) -> Result<()> {
        self.pg_put_base_os(record)
    }
    fn delete_base_os(&self, sha256: &str) -> Result<bool> {
        self.pg_delete_base_os(sha256)
    }
}
