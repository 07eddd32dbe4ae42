//! Saving the planner's decisions. One decision is one write transaction,
//! and one app whose record cannot be saved never stops the others: its
//! record stays as it was, its actions wait, its status names the store
//! error, and the save is tried again every pass.
//!
//! Validation (`outpost_api::validate_size`) keeps every accepted app's
//! record within the store's bound; this is the defence behind it.

use std::collections::{BTreeMap, BTreeSet};

use outpost_api::validate_size::MAX_APP_ENTRY_BYTES;
use outpost_api::{parse::MAX_REJECTED_UUID_BYTES, ErrorDescription, Severity};
use outpost_reconcile::{datetime, AppRecord, AppStatusUpdate, History};
use outpost_store::{Batch, Store, MAX_APP_RECORD_BYTES, MAX_KEY_BYTES};

use super::core::{Reconciler, Unsaved};

// A record holds up to three copies of its app's config (`applied`,
// `target`, `failed_config`) and one message listing the changes between
// two configs (env names, images, volumes): five entries, plus one of margin.
const _: () = assert!(6 * MAX_APP_ENTRY_BYTES <= MAX_APP_RECORD_BYTES);
// A rejected entry's UUID is a store key.
const _: () = assert!(MAX_REJECTED_UUID_BYTES <= MAX_KEY_BYTES);

/// How soon a pass runs again while a record is unsaved.
pub(super) const UNSAVED_RETRY_MS: u64 = 5000;

/// The writes for one app: its record, or its removal.
fn app_batch(uuid: &str, rec: Option<&AppRecord>) -> outpost_store::Result<Batch> {
    Ok(match rec {
        Some(rec) => Batch::new().put(uuid, rec)?,
        None => Batch::new().remove(uuid),
    })
}

/// Saves each app's record (`None`: forget the app) in one transaction.
/// Returns the apps that could not be saved, with the store's error; the
/// others are on disk. A record the store refuses (too large, bad key, not
/// JSON) is left out of the transaction; when the transaction itself fails,
/// each app is tried alone so a failure that belongs to one app stays with it.
pub(super) fn save_records(
    store: &Store,
    changes: &[(&str, Option<&AppRecord>)],
) -> BTreeMap<String, String> {
    let mut failed = BTreeMap::new();
    let mut batch = Batch::new();
    let mut in_batch = Vec::new();
    for (uuid, rec) in changes {
        match app_batch(uuid, *rec) {
            Ok(b) => {
                batch = batch.append(b);
                in_batch.push((*uuid, *rec));
            }
            Err(e) => {
                failed.insert(uuid.to_string(), e.to_string());
            }
        }
    }
    if batch.is_empty() {
        return failed;
    }
    let Err(e) = store.commit(batch) else {
        return failed;
    };
    if in_batch.len() == 1 {
        failed.insert(in_batch[0].0.to_string(), e.to_string());
        return failed;
    }
    tracing::warn!(error = %e, apps = in_batch.len(), "saving the decision failed; saving app by app");
    for (uuid, rec) in in_batch {
        if let Err(e) = app_batch(uuid, rec).and_then(|b| store.commit(b)) {
            failed.insert(uuid.to_string(), e.to_string());
        }
    }
    failed
}

impl<D: crate::daemon::driver::Driver> Reconciler<D> {
    /// Saves every record the plan changed (and forgets the ones it
    /// dropped), plus the ones still unsaved. An app whose record cannot be
    /// saved keeps its previous record in `next`; its UUID is returned so
    /// its actions wait.
    pub(super) fn persist(&mut self, next: &mut History) -> BTreeSet<String> {
        let uuids: BTreeSet<&String> = next.apps.keys().chain(self.history.apps.keys()).collect();
        let changes: Vec<(&str, Option<&AppRecord>)> = uuids
            .into_iter()
            .filter(|u| {
                self.unsaved.contains_key(*u) || self.history.apps.get(*u) != next.apps.get(*u)
            })
            .map(|u| (u.as_str(), next.apps.get(u)))
            .collect();
        let failed = save_records(&self.store, &changes);
        let tried: Vec<String> = changes.iter().map(|(u, _)| u.to_string()).collect();
        for uuid in tried {
            match failed.get(&uuid) {
                Some(e) => {
                    match self.history.apps.get(&uuid) {
                        Some(old) => next.apps.insert(uuid.clone(), old.clone()),
                        None => next.apps.remove(&uuid),
                    };
                    self.mark_unsaved(&uuid, e.clone());
                }
                None => {
                    self.unsaved.remove(&uuid);
                }
            }
        }
        self.unsaved
            .retain(|u, _| next.apps.contains_key(u) || failed.contains_key(u));
        failed.into_keys().collect()
    }

    /// Saves the records of apps whose action outcomes were just recorded
    /// (one transaction for outcomes that arrived together, app by app if
    /// that fails); an app whose record fails is marked unsaved (the
    /// outcome stays in memory and the next pass saves it again).
    pub(super) fn persist_outcomes(&mut self, uuids: &[String]) {
        let changes: Vec<(&str, Option<&AppRecord>)> = uuids
            .iter()
            .map(|u| (u.as_str(), self.history.apps.get(u)))
            .collect();
        let mut failed = save_records(&self.store, &changes);
        for uuid in uuids {
            match failed.remove(uuid) {
                Some(e) => self.mark_unsaved(uuid, e),
                None => {
                    self.unsaved.remove(uuid);
                }
            }
        }
    }

    fn mark_unsaved(&mut self, uuid: &str, error: String) {
        // Logged when it starts or changes, not at every retry.
        if self.unsaved.get(uuid).is_none_or(|u| u.error != error) {
            tracing::error!(app = uuid, error = %error, "the app's decision record could not be saved; its actions wait");
        }
        let now = self.clock.now_ms();
        let u = self.unsaved.entry(uuid.to_owned()).or_insert(Unsaved {
            error: String::new(),
            first_ms: now,
            last_ms: now,
            failures: 0,
        });
        u.error = error;
        u.last_ms = now;
        u.failures = u.failures.saturating_add(1);
    }

    /// Puts the store error of every unsaved app on its status, after the
    /// planner's own error if it has one. `name` gives an app's display name.
    pub(super) fn show_unsaved(
        &self,
        updates: &mut [AppStatusUpdate],
        name: impl Fn(&str) -> Option<String>,
    ) {
        for u in updates {
            let Some(s) = self.unsaved.get(&u.uuid) else {
                continue;
            };
            let who = match name(&u.uuid) {
                Some(n) => format!("app {n} ({})", u.uuid),
                None => format!("app {}", u.uuid),
            };
            let store = format!(
                "{who}: its decision record could not be saved, so its actions wait: {}",
                s.error
            );
            let message = match &u.error {
                Some(e) => format!("{}; {store}", e.message),
                None => store,
            };
            u.error = Some(ErrorDescription {
                message,
                severity: Severity::Error,
                first_seen: datetime(s.first_ms),
                last_seen: datetime(s.last_ms),
                retries: s.failures.saturating_sub(1),
                retry_condition: "the next reconcile pass".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_api::AppConfig;
    use outpost_reconcile::{plan, Input, Observed, Phase, Tunables};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        (dir, store)
    }

    fn rec(note: &str) -> AppRecord {
        AppRecord {
            pending_note: Some(note.into()),
            ..AppRecord::default()
        }
    }

    #[test]
    fn one_record_the_store_refuses_does_not_stop_the_others() {
        let (_dir, store) = store();
        store.put_app_record("gone", &rec("old")).unwrap();
        let (a, big, c) = (rec("a"), rec(&"x".repeat(2 << 20)), rec("c"));
        let long_key = "k".repeat(MAX_KEY_BYTES + 1);
        let failed = save_records(
            &store,
            &[
                ("a", Some(&a)),
                ("big", Some(&big)),
                (long_key.as_str(), Some(&c)),
                ("c", Some(&c)),
                ("gone", None),
            ],
        );
        assert_eq!(
            failed.keys().collect::<Vec<_>>(),
            [&"big".to_string(), &long_key]
        );
        assert!(
            failed["big"].contains("app record \"big\"")
                && failed["big"].contains("more than the limit of 1048576"),
            "{failed:?}"
        );
        let saved = store.app_records::<AppRecord>().unwrap();
        assert_eq!(saved.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(saved["c"], c);
    }

    /// The largest record the planner can build from two accepted configs
    /// (applied, target and failed_config all set, the error and the note
    /// both listing every changed env name) still fits the store.
    #[test]
    fn a_record_from_entries_at_the_size_limit_fits() {
        let entry = |tag: &str| -> AppConfig {
            let env: serde_json::Map<String, serde_json::Value> = (0..200)
                .map(|i| {
                    (
                        format!("{tag}{i:03}{}", "N".repeat(246)),
                        "v".repeat(380).into(),
                    )
                })
                .collect();
            serde_json::from_value(serde_json::json!({
                "uuid": "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10",
                "version": "1", "display_name": "big", "app_num": 1,
                // 900 bytes, a valid local name (lowercase, tag ≤ 128).
                "image": format!("{}{}:{}", tag.to_lowercase(), "n".repeat(770), "t".repeat(128)),
                "env": env,
            }))
            .unwrap()
        };
        let (old, new) = (entry("A"), entry("B"));
        for a in [&old, &new] {
            let mut config = outpost_api::DeviceConfig::default();
            config.apps.push(a.clone());
            assert_eq!(outpost_api::validate(&config), []);
            let size = outpost_api::validate_size::json_size(a);
            assert!(size > MAX_APP_ENTRY_BYTES * 9 / 10, "{size}");
        }
        let mut history = History::default();
        history.apps.insert(
            old.uuid.clone(),
            AppRecord {
                applied: Some(old.clone()),
                ..AppRecord::default()
            },
        );
        let observed = [Observed {
            task_id: old.task_id(),
            uuid: old.uuid.clone(),
            version: old.version.clone(),
            app_num: old.app_num,
            purge_counter: 0,
            phase: Phase::Running,
            exit_status: None,
            pid: Some(1),
        }];
        let out = plan(&Input {
            desired: std::slice::from_ref(&new),
            rejected: &[],
            observed: &observed,
            history: &history,
            now_ms: 1_000_000,
            policy: Tunables::default(),
        });
        let mut rec = out.history.apps[&new.uuid].clone();
        let msg = rec
            .error
            .as_ref()
            .expect("pending changes are reported")
            .message
            .clone();
        assert!(
            msg.contains("A199") && msg.contains("B199"),
            "every env name is listed"
        );
        rec.target = Some(new.clone());
        rec.failed_config = Some(new.clone());
        rec.pending_note = Some(msg);
        let size = serde_json::to_vec(&rec).unwrap().len();
        assert!(size > 3 * MAX_APP_ENTRY_BYTES, "{size}");
        let (_dir, store) = store();
        assert_eq!(
            save_records(&store, &[(new.uuid.as_str(), Some(&rec))]),
            BTreeMap::new()
        );
    }
}
