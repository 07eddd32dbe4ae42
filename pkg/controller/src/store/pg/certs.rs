//! Certificate lifecycle on PostgreSQL: renewal and revocation of a device
//! (each announced to the other replicas like any device change).

use tokio_postgres::types::Json;

use super::PgStore;
use crate::db::{DeviceRecord, RenewOutcome};
use crate::error::Result;
use crate::store::IssueCert;

impl PgStore {
    pub(crate) fn pg_renew_cert(
        &self,
        uuid: &str,
        public_key: &str,
        issue: IssueCert<'_>,
    ) -> Result<RenewOutcome> {
        self.run(async {
            let mut client = self.client("renewing a device certificate").await?;
            let tx = client
                .transaction()
                .await
                .map_err(self.fail("renewing a device certificate"))?;
            let Some(row) = tx
                .query_opt(
                    "SELECT record FROM devices WHERE uuid = $1 FOR UPDATE",
                    &[&uuid],
                )
                .await
                .map_err(self.fail(format!("renewing the certificate of {uuid}")))?
            else {
                return Ok(RenewOutcome::Gone);
            };
            let record = row.get::<_, Json<DeviceRecord>>(0).0;
            let outcome = crate::db::certs::renew_record(record, public_key, issue)?;
            if let RenewOutcome::Renewed(r, _) = &outcome {
                tx.execute(
                    "UPDATE devices SET record = $2 WHERE uuid = $1",
                    &[&uuid, &Json(r)],
                )
                .await
                .map_err(self.fail(format!("storing the certificate of {uuid}")))?;
                tx.commit()
                    .await
                    .map_err(self.fail("committing a certificate renewal"))?;
                self.notify(&client, &[uuid.to_owned()]).await;
            }
            Ok(outcome)
        })
    }

    pub(crate) fn pg_revoke_device(&self, uuid: &str, at: &str) -> Result<Option<DeviceRecord>> {
        self.run(async {
            let mut client = self.client("revoking a device").await?;
            let tx = client
                .transaction()
                .await
                .map_err(self.fail("revoking a device"))?;
            let Some(row) = tx
                .query_opt(
                    "SELECT record FROM devices WHERE uuid = $1 FOR UPDATE",
                    &[&uuid],
                )
                .await
                .map_err(self.fail(format!("revoking device {uuid}")))?
            else {
                return Ok(None);
            };
            let mut record = row.get::<_, Json<DeviceRecord>>(0).0;
            record.revoked_at.get_or_insert_with(|| at.to_owned());
            let when = record.revoked_at.clone().unwrap_or_default();
            tx.execute(
                "UPDATE devices SET record = $2, revoked_at = $3::text::timestamptz WHERE uuid = $1",
                &[&uuid, &Json(&record), &when],
            )
            .await
            .map_err(self.fail(format!("storing the revocation of {uuid}")))?;
            tx.commit()
                .await
                .map_err(self.fail("committing a revocation"))?;
            self.notify(&client, &[uuid.to_owned()]).await;
            Ok(Some(record))
        })
    }
}
