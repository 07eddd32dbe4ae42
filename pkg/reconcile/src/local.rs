//! The operator's local restart/purge commands (EVE's local commands): the
//! agent keeps a counter per app and adds it to the controller's, so the
//! planner sees a local command as a counter change.

use std::collections::BTreeMap;

use outpost_api::AppConfig;

use crate::history::History;

/// An app's local command counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalCounters {
    /// Local restarts requested.
    pub restart: u64,
    /// Local purges requested.
    pub purge: u64,
}

/// The desired `apps` with the local counters (by app UUID; none = 0) added
/// to their restart and purge counters, wrapping: any change counts, so a
/// sum past `u64::MAX` still differs from the previous one.
pub fn with_local_counters(
    apps: &[AppConfig],
    local: &BTreeMap<String, LocalCounters>,
) -> Vec<AppConfig> {
    apps.iter()
        .map(|app| {
            let l = local.get(&app.uuid).copied().unwrap_or_default();
            let mut a = app.clone();
            a.restart_counter = a.restart_counter.wrapping_add(l.restart);
            a.purge_counter = a.purge_counter.wrapping_add(l.purge);
            a
        })
        .collect()
}

/// The desired `apps` with the operator's local activate overrides
/// (`outpost stop|start`) of `history` applied, for a config of
/// `generation`; also the UUIDs whose override a newer config ended (the
/// caller clears them: the controller's `activate` is in force again).
pub fn with_local_activate(
    apps: &[AppConfig],
    history: &History,
    generation: u64,
) -> (Vec<AppConfig>, Vec<String>) {
    let mut expired = Vec::new();
    let apps = apps
        .iter()
        .map(|app| {
            let mut a = app.clone();
            let over = history.apps.get(&app.uuid).and_then(|r| r.local_activate);
            match over {
                Some(o) if o.generation >= generation => a.activate = o.activate,
                Some(_) => expired.push(app.uuid.clone()),
                None => {}
            }
            a
        })
        .collect();
    (apps, expired)
}

/// The status line of a local override, if one is in force.
pub fn local_override_note(history: &History, uuid: &str, generation: u64) -> Option<String> {
    let o = history.apps.get(uuid)?.local_activate?;
    (o.generation >= generation).then(|| {
        let what = if o.activate { "started" } else { "stopped" };
        format!(
            "{what} by the operator (outpost {}); the next config generation ends it",
            if o.activate { "start" } else { "stop" }
        )
    })
}

#[cfg(test)]
mod activate_tests {
    use super::*;
    use crate::history::{AppRecord, LocalActivate};

    fn app(uuid: &str, activate: bool) -> AppConfig {
        let mut a: AppConfig = serde_json::from_value(serde_json::json!({
            "uuid": uuid, "version": "1", "display_name": uuid, "app_num": 1, "image": "x:1"
        }))
        .unwrap();
        a.activate = activate;
        a
    }

    #[test]
    fn an_override_holds_for_its_generation_and_a_newer_config_ends_it() {
        let mut h = History::default();
        h.apps.insert(
            "a".into(),
            AppRecord {
                local_activate: Some(LocalActivate {
                    activate: false,
                    generation: 3,
                }),
                ..AppRecord::default()
            },
        );
        let apps = [app("a", true), app("b", true)];
        let (d, expired) = with_local_activate(&apps, &h, 3);
        assert!(!d[0].activate && d[1].activate && expired.is_empty());
        assert!(local_override_note(&h, "a", 3)
            .unwrap()
            .contains("stopped by the operator"));
        let (d, expired) = with_local_activate(&apps, &h, 4);
        assert!(d[0].activate);
        assert_eq!(expired, ["a"]);
        assert_eq!(local_override_note(&h, "a", 4), None);
    }
}
