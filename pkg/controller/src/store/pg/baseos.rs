//! Base OS artifacts on PostgreSQL (table `base_os`, migration 3).

use tokio_postgres::types::Json;

use super::PgStore;
use crate::db::BaseOsRecord;
use crate::error::Result;

impl PgStore {
    pub(crate) fn pg_base_os_artifacts(&self) -> Result<Vec<BaseOsRecord>> {
        self.run(async {
            let client = self.client("listing base OS artifacts").await?;
            let rows = client
                .query("SELECT record FROM base_os", &[])
                .await
                .map_err(self.fail("listing base OS artifacts"))?;
            Ok(rows
                .into_iter()
                .map(|r| r.get::<_, Json<BaseOsRecord>>(0).0)
                .collect())
        })
    }

    pub(crate) fn pg_put_base_os(&self, record: &BaseOsRecord) -> Result<()> {
        self.run(async {
            let client = self.client("storing a base OS artifact").await?;
            client
                .execute(
                    "INSERT INTO base_os (sha256, record) VALUES ($1, $2)
                     ON CONFLICT (sha256) DO UPDATE SET record = EXCLUDED.record",
                    &[&record.sha256, &Json(record)],
                )
                .await
                .map_err(self.fail(format!("storing base OS artifact {}", record.sha256)))?;
            Ok(())
        })
    }

    pub(crate) fn pg_delete_base_os(&self, sha256: &str) -> Result<bool> {
        self.run(async {
            let client = self.client("deleting a base OS artifact").await?;
            let n = client
                .execute("DELETE FROM base_os WHERE sha256 = $1", &[&sha256])
                .await
                .map_err(self.fail(format!("deleting base OS artifact {sha256}")))?;
            Ok(n > 0)
        })
    }
}
