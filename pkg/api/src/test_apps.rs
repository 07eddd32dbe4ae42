//! App configs and validation shorthands for this crate's unit tests.

use crate::config::{AppConfig, DeviceConfig};
use crate::validate::validate;

/// A valid app with only the required fields.
pub(crate) fn app() -> AppConfig {
    serde_json::from_value(serde_json::json!({
        "uuid": "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10",
        "version": "1",
        "display_name": "app",
        "app_num": 1,
        "image": "hello:latest",
    }))
    .unwrap()
}

/// Every problem [`validate`] finds in a config of `apps`, as text.
pub(crate) fn problems(apps: Vec<AppConfig>) -> Vec<String> {
    validate(&DeviceConfig {
        generation: 1,
        apps,
        ..DeviceConfig::default()
    })
    .into_iter()
    .map(|p| p.to_string())
    .collect()
}
