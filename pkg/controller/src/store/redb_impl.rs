//! [`Store`] for the embedded redb file.

use std::collections::HashMap;

use outpost_api::cloud::LogEntry;

use super::{IssueCert, MakeConfig, Store};
use crate::db::{
    AddOutcome, BaseOsRecord, ConfigRecord, Db, DeviceRecord, InfoRecord, LogAppend, LogLine,
    MetricsSample, Presence, RegisterOutcome, RenewOutcome, RingMeta, Settings,
};
use crate::error::Result;

impl Store for Db {
    fn settings(&self) -> Result<Settings> {
        Db::settings(self)
    }
    fn shared(&self) -> bool {
        false
    }
    fn devices(&self) -> Result<Vec<DeviceRecord>> {
        Db::devices(self)
    }
    fn devices_of(&self, uuids: &[String]) -> Result<Vec<DeviceRecord>> {
        let all = Db::devices(self)?;
        Ok(all
            .into_iter()
            .filter(|d| uuids.contains(&d.uuid))
            .collect())
    }
    fn add_device(&self, record: DeviceRecord) -> Result<AddOutcome> {
        Db::add_device(self, record)
    }
    fn register(
        &self,
        serial: &str,
        public_key: &str,
        open_onboarding: bool,
        issue: IssueCert<'_>,
    ) -> Result<RegisterOutcome> {
        Db::register(self, serial, public_key, open_onboarding, issue)
    }
    fn renew_cert(
        &self,
        uuid: &str,
        public_key: &str,
        issue: IssueCert<'_>,
    ) -> Result<RenewOutcome> {
        Db::renew_cert(self, uuid, public_key, issue)
    }
    fn revoke_device(&self, uuid: &str, at: &str) -> Result<Option<DeviceRecord>> {
        Db::revoke_device(self, uuid, at)
    }
    fn delete_device(&self, uuid: &str) -> Result<Option<DeviceRecord>> {
        Db::delete_device(self, uuid)
    }
    fn configs(&self) -> Result<Vec<(String, ConfigRecord)>> {
        Db::configs(self)
    }
    fn configs_of(&self, uuids: &[String]) -> Result<Vec<(String, ConfigRecord)>> {
        let mut out = Vec::new();
        for uuid in uuids {
            if let Some(c) = Db::config(self, uuid)? {
                out.push((uuid.clone(), c));
            }
        }
        Ok(out)
    }
    fn config_generations(&self) -> Result<HashMap<String, u64>> {
        Ok(Db::configs(self)?
            .into_iter()
            .map(|(u, c)| (u, c.generation))
            .collect())
    }
    fn config(&self, uuid: &str) -> Result<Option<ConfigRecord>> {
        Db::config(self, uuid)
    }
    fn set_configs(
        &self,
        uuids: &[String],
        make: MakeConfig<'_>,
    ) -> Result<Vec<(String, ConfigRecord)>> {
        Db::set_configs(self, uuids, make)
    }
    fn put_info(&self, uuid: &str, record: &InfoRecord) -> Result<bool> {
        Db::put_info(self, uuid, record)
    }
    fn info(&self, uuid: &str) -> Result<Option<InfoRecord>> {
        Db::info(self, uuid)
    }
    fn infos(&self) -> Result<HashMap<String, InfoRecord>> {
        Db::infos(self)
    }
    fn push_metrics(&self, uuid: &str, sample: &MetricsSample, keep: u64) -> Result<bool> {
        Db::push_metrics(self, uuid, sample, keep)
    }
    fn metrics(&self, uuid: &str, n: usize) -> Result<Vec<MetricsSample>> {
        Db::metrics(self, uuid, n)
    }
    fn append_logs(
        &self,
        uuid: &str,
        batch: u64,
        lines: &[Vec<u8>],
        keep: u64,
    ) -> Result<Option<LogAppend>> {
        Db::append_logs(self, uuid, batch, lines, keep)
    }
    fn log_meta(&self, uuid: &str) -> Result<RingMeta> {
        Db::log_meta(self, uuid)
    }
    fn logs_after(
        &self,
        uuid: &str,
        after: Option<u64>,
        limit: usize,
        filter: &dyn Fn(&LogEntry) -> bool,
    ) -> Result<(Vec<LogLine>, Option<u64>)> {
        Db::logs_after(self, uuid, after, limit, filter)
    }
    fn logs_tail(
        &self,
        uuid: &str,
        n: usize,
        filter: &dyn Fn(&LogEntry) -> bool,
    ) -> Result<Vec<LogLine>> {
        Db::logs_tail(self, uuid, n, filter)
    }
    fn presence(&self) -> Result<HashMap<String, Presence>> {
        Db::presence(self)
    }
    fn presence_of(&self, uuid: &str) -> Result<Option<Presence>> {
        Db::presence_of(self, uuid)
    }
    fn record_presence(&self, rows: &[(String, Presence)]) -> Result<()> {
        Db::record_presence(self, rows)
    }
    fn base_os_artifacts(&self) -> Result<Vec<BaseOsRecord>> {
        Db::base_os_artifacts(self)
    }
    fn put_base_os(&self, record: &BaseOsRecord) -> Result<()> {
        Db::put_base_os(self, record)
    }
    fn delete_base_os(&self, sha256: &str) -> Result<bool> {
        Db::delete_base_os(self, sha256)
    }
}
