//! Table definitions. Keys are device UUIDs unless said otherwise; values
//! are JSON records from `records.rs`.

use redb::{TableDefinition, TableError, WriteTransaction};

/// Settings and schema version.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Key of the schema version in [`META`].
pub const SCHEMA_KEY: &str = "schema_version";
/// Key of the settings in [`META`].
pub const SETTINGS_KEY: &str = "settings";
/// uuid → `DeviceRecord`.
pub const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
/// serial → uuid: the onboarding list.
pub const ONBOARDING: TableDefinition<&str, &str> = TableDefinition::new("onboarding");
/// uuid → `ConfigRecord`.
pub const CONFIGS: TableDefinition<&str, &[u8]> = TableDefinition::new("configs");
/// uuid → `InfoRecord` (the last one).
pub const INFO: TableDefinition<&str, &[u8]> = TableDefinition::new("info");
/// (uuid, sequence) → `MetricsSample`.
pub const METRICS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("metrics");
/// uuid → `RingMeta` of [`METRICS`].
pub const METRICS_META: TableDefinition<&str, &[u8]> = TableDefinition::new("metrics_meta");
/// (uuid, sequence) → one `LogEntry` (JSON).
pub const LOGS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("logs");
/// uuid → `RingMeta` of [`LOGS`].
pub const LOGS_META: TableDefinition<&str, &[u8]> = TableDefinition::new("logs_meta");

/// Opens (so creates) every table.
pub fn create_all(txn: &WriteTransaction) -> Result<(), TableError> {
    txn.open_table(META)?;
    txn.open_table(DEVICES)?;
    txn.open_table(ONBOARDING)?;
    txn.open_table(CONFIGS)?;
    txn.open_table(INFO)?;
    txn.open_table(METRICS)?;
    txn.open_table(METRICS_META)?;
    txn.open_table(LOGS)?;
    txn.open_table(LOGS_META)?;
    Ok(())
}
