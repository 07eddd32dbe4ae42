//! Devices, registration and configs on PostgreSQL.

use std::collections::HashMap;

use tokio_postgres::types::Json;

use super::{signed, unsigned, PgStore};
use crate::db::{AddOutcome, ConfigRecord, DeviceRecord, InfoRecord, RegisterOutcome};
use crate::error::Result;
use crate::names;
use crate::signing::now_rfc3339;
use crate::store::{IssueCert, MakeConfig};

fn records(rows: Vec<tokio_postgres::Row>) -> Vec<DeviceRecord> {
    rows.into_iter()
        .map(|r| r.get::<_, Json<DeviceRecord>>(0).0)
        .collect()
}

fn config_rows(rows: Vec<tokio_postgres::Row>) -> Vec<(String, ConfigRecord)> {
    rows.into_iter()
        .map(|r| (r.get(0), r.get::<_, Json<ConfigRecord>>(1).0))
        .collect()
}

const UPSERT_DEVICE: &str =
    "INSERT INTO devices (uuid, name, serial, record) VALUES ($1, $2, $3, $4)
     ON CONFLICT (uuid) DO UPDATE SET record = EXCLUDED.record";

impl PgStore {
    pub(crate) fn pg_devices(&self, uuids: Option<&[String]>) -> Result<Vec<DeviceRecord>> {
        self.run(async {
            let client = self.client("listing devices").await?;
            let rows = match uuids {
                None => client.query("SELECT record FROM devices", &[]).await,
                Some(u) => {
                    client
                        .query("SELECT record FROM devices WHERE uuid = ANY($1)", &[&u])
                        .await
                }
            }
            .map_err(self.fail("listing devices"))?;
            Ok(records(rows))
        })
    }

    pub(crate) fn pg_add_device(&self, record: DeviceRecord) -> Result<AddOutcome> {
        self.run(async {
            let mut client = self.client("adding a device").await?;
            let tx = client
                .transaction()
                .await
                .map_err(self.fail("adding a device"))?;
            let taken = tx
                .query(
                    "SELECT record FROM devices WHERE serial = $1 OR name = $2",
                    &[&record.serial, &record.name],
                )
                .await
                .map_err(self.fail("adding a device: checking serial and name"))?;
            let taken = records(taken);
            if let Some(d) = taken.iter().find(|d| d.serial == record.serial) {
                return Ok(AddOutcome::SerialTaken(d.clone()));
            }
            if let Some(d) = taken.into_iter().next() {
                return Ok(AddOutcome::NameTaken(d));
            }
            tx.execute(
                UPSERT_DEVICE,
                &[&record.uuid, &record.name, &record.serial, &Json(&record)],
            )
            .await
            .map_err(self.fail(format!("adding device {}", record.name)))?;
            tx.commit()
                .await
                .map_err(self.fail("committing a new device"))?;
            self.notify(&client, std::slice::from_ref(&record.uuid))
                .await;
            Ok(AddOutcome::Added(record))
        })
    }

    pub(crate) fn pg_register(
        &self,
        serial: &str,
        public_key: &str,
        open_onboarding: bool,
        issue: IssueCert<'_>,
    ) -> Result<RegisterOutcome> {
        self.run(async {
            let mut client = self.client("registering a device").await?;
            let tx = client
                .transaction()
                .await
                .map_err(self.fail("registering a device"))?;
            let existing = tx
                .query_opt(
                    "SELECT record FROM devices WHERE serial = $1 FOR UPDATE",
                    &[&serial],
                )
                .await
                .map_err(self.fail(format!("registering serial {serial:?}")))?
                .map(|r| r.get::<_, Json<DeviceRecord>>(0).0);
            let now = now_rfc3339();
            let (mut record, created) = match existing {
                Some(d) if d.revoked_at.is_some() => return Ok(RegisterOutcome::Revoked(d)),
                Some(d) => match &d.public_key {
                    Some(k) if k != public_key => return Ok(RegisterOutcome::KeyMismatch(d)),
                    Some(_) => (d, false),
                    None => (d, true),
                },
                None if open_onboarding => {
                    let taken: Vec<String> = tx
                        .query("SELECT name FROM devices", &[])
                        .await
                        .map_err(self.fail("listing device names"))?
                        .into_iter()
                        .map(|r| r.get(0))
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
                    (record, true)
                }
                None => return Ok(RegisterOutcome::NotListed),
            };
            let issued = issue(&record.uuid)?;
            record.registered_at.get_or_insert(now);
            record.record_cert(public_key, &issued);
            tx.execute(
                UPSERT_DEVICE,
                &[&record.uuid, &record.name, &record.serial, &Json(&record)],
            )
            .await
            .map_err(self.fail(format!("storing device {}", record.name)))?;
            tx.commit()
                .await
                .map_err(self.fail("committing a registration"))?;
            self.notify(&client, std::slice::from_ref(&record.uuid))
                .await;
            Ok(if created {
                RegisterOutcome::Created(record, issued)
            } else {
                RegisterOutcome::Again(record, issued)
            })
        })
    }

    pub(crate) fn pg_delete_device(&self, uuid: &str) -> Result<Option<DeviceRecord>> {
        self.run(async {
            let client = self.client("deleting a device").await?;
            let row = client
                .query_opt(
                    "DELETE FROM devices WHERE uuid = $1 RETURNING record",
                    &[&uuid],
                )
                .await
                .map_err(self.fail(format!("deleting device {uuid}")))?;
            let Some(row) = row else {
                return Ok(None);
            };
            self.notify(&client, &[uuid.to_owned()]).await;
            Ok(Some(row.get::<_, Json<DeviceRecord>>(0).0))
        })
    }

    pub(crate) fn pg_configs(
        &self,
        uuids: Option<&[String]>,
    ) -> Result<Vec<(String, ConfigRecord)>> {
        self.run(async {
            let client = self.client("listing configs").await?;
            let rows = match uuids {
                None => client.query("SELECT uuid, record FROM configs", &[]).await,
                Some(u) => {
                    client
                        .query(
                            "SELECT uuid, record FROM configs WHERE uuid = ANY($1)",
                            &[&u],
                        )
                        .await
                }
            }
            .map_err(self.fail("listing configs"))?;
            Ok(config_rows(rows))
        })
    }

    pub(crate) fn pg_config_generations(&self) -> Result<HashMap<String, u64>> {
        self.run(async {
            let client = self.client("reading config generations").await?;
            let rows = client
                .query("SELECT uuid, generation FROM configs", &[])
                .await
                .map_err(self.fail("reading config generations"))?;
            Ok(rows
                .into_iter()
                .map(|r| (r.get(0), unsigned(r.get(1))))
                .collect())
        })
    }

    pub(crate) fn pg_set_configs(
        &self,
        uuids: &[String],
        make: MakeConfig<'_>,
    ) -> Result<Vec<(String, ConfigRecord)>> {
        self.run(async {
            let mut client = self.client("setting configs").await?;
            let tx = client
                .transaction()
                .await
                .map_err(self.fail("setting configs"))?;
            // lock the devices (in one order: no deadlock between replicas)
            let rows = tx
                .query(
                    "SELECT d.uuid, c.generation, i.record FROM devices d
                     LEFT JOIN configs c ON c.uuid = d.uuid
                     LEFT JOIN info i ON i.uuid = d.uuid
                     WHERE d.uuid = ANY($1) ORDER BY d.uuid FOR UPDATE OF d",
                    &[&uuids],
                )
                .await
                .map_err(self.fail("setting configs: reading generations"))?;
            let mut base: HashMap<String, u64> = HashMap::with_capacity(rows.len());
            for r in rows {
                let set = r.get::<_, Option<i64>>(1).map_or(0, unsigned);
                let reported = r
                    .get::<_, Option<Json<InfoRecord>>>(2)
                    .map_or(0, |i| i.0.info.config_generation);
                base.insert(r.get(0), set.max(reported));
            }
            let mut out = Vec::with_capacity(base.len());
            for uuid in uuids {
                if let Some(b) = base.get(uuid) {
                    out.push((uuid.clone(), make(uuid, b + 1)?));
                }
            }
            let keys: Vec<&str> = out.iter().map(|(u, _)| u.as_str()).collect();
            let gens: Vec<i64> = out.iter().map(|(_, r)| signed(r.generation)).collect();
            let recs: Vec<Json<&ConfigRecord>> = out.iter().map(|(_, r)| Json(r)).collect();
            tx.execute(
                "INSERT INTO configs (uuid, generation, record)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::jsonb[])
                 ON CONFLICT (uuid) DO UPDATE
                 SET generation = EXCLUDED.generation, record = EXCLUDED.record",
                &[&keys, &gens, &recs],
            )
            .await
            .map_err(self.fail("storing configs"))?;
            tx.commit().await.map_err(self.fail("committing configs"))?;
            let changed: Vec<String> = out.iter().map(|(u, _)| u.clone()).collect();
            self.notify(&client, &changed).await;
            Ok(out)
        })
    }
}
