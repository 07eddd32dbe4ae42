//! Device presence on PostgreSQL (table `presence`, migration 4): one
//! statement per batch, whatever its size.

use std::collections::HashMap;

use super::PgStore;
use crate::db::Presence;
use crate::error::Result;

impl PgStore {
    /// Every device's presence, or only `uuid`'s.
    pub(crate) fn pg_presence(&self, uuid: Option<&str>) -> Result<HashMap<String, Presence>> {
        self.run(async {
            let client = self.client("reading device presence").await?;
            let rows = client
                .query(
                    "SELECT uuid, last_seen, polling_at FROM presence
                     WHERE $1::text IS NULL OR uuid = $1",
                    &[&uuid],
                )
                .await
                .map_err(self.fail("reading device presence"))?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    (
                        r.get::<_, String>(0),
                        Presence {
                            last_seen: r.get(1),
                            polling_at: r.get(2),
                        },
                    )
                })
                .collect())
        })
    }

    pub(crate) fn pg_record_presence(&self, rows: &[(String, Presence)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let uuids: Vec<&str> = rows.iter().map(|(u, _)| u.as_str()).collect();
        let seen: Vec<i64> = rows.iter().map(|(_, p)| p.last_seen).collect();
        let polling: Vec<i64> = rows.iter().map(|(_, p)| p.polling_at).collect();
        self.run(async {
            let client = self.client("recording device presence").await?;
            // the join skips devices deleted meanwhile (no foreign-key failure
            // of the whole batch); GREATEST keeps the later of two replicas'
            client
                .execute(
                    "INSERT INTO presence (uuid, last_seen, polling_at)
                     SELECT p.uuid, p.last_seen, p.polling_at
                     FROM unnest($1::text[], $2::int8[], $3::int8[])
                          AS p (uuid, last_seen, polling_at)
                     JOIN devices d ON d.uuid = p.uuid
                     ON CONFLICT (uuid) DO UPDATE SET
                       last_seen = GREATEST(presence.last_seen, EXCLUDED.last_seen),
                       polling_at = GREATEST(presence.polling_at, EXCLUDED.polling_at)",
                    &[&uuids, &seen, &polling],
                )
                .await
                .map_err(self.fail("recording device presence"))?;
            Ok(())
        })
    }
}
