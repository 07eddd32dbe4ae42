//! Versioned schema migrations: ordered SQL files under
//! `pkg/controller/migrations/`, each applied in one transaction and
//! recorded in `schema_migrations`. A database migrated by a newer binary
//! is refused. Concurrent replicas serialise on an advisory lock.

use crate::error::{ControllerError, Result};

use super::error_text;

/// `(version, name, SQL)`, in order.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../../migrations/0001_initial.sql"),
    ),
    (
        2,
        "revocation",
        include_str!("../../../migrations/0002_revocation.sql"),
    ),
    (
        3,
        "base_os",
        include_str!("../../../migrations/0003_base_os.sql"),
    ),
    (
        4,
        "presence",
        include_str!("../../../migrations/0004_presence.sql"),
    ),
];

/// The newest schema version this binary knows.
pub const SCHEMA_VERSION: i64 = 4;

/// Advisory lock key held while migrating ("outpost" in ASCII).
const LOCK_KEY: i64 = 0x006f_7574_706f_7374;

/// Applies the migrations `client`'s database lacks.
pub async fn migrate(client: &mut deadpool_postgres::Client, label: &str) -> Result<()> {
    let fail = |context: &str| {
        let context = context.to_owned();
        move |e: tokio_postgres::Error| ControllerError::Postgres {
            database: label.to_owned(),
            context,
            message: error_text(&e),
        }
    };
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(fail("locking for migrations"))?;
    let outcome = apply(client, label).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await
        .map_err(fail("unlocking after migrations"));
    outcome?;
    unlock.map(|_| ())
}

async fn apply(client: &mut deadpool_postgres::Client, label: &str) -> Result<()> {
    let fail = |context: String| {
        move |e: tokio_postgres::Error| ControllerError::Postgres {
            database: label.to_owned(),
            context,
            message: error_text(&e),
        }
    };
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(fail("creating schema_migrations".into()))?;
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(fail("reading schema_migrations".into()))?;
    let current: i64 = row.get(0);
    if current > SCHEMA_VERSION {
        return Err(ControllerError::Invalid(format!(
            "PostgreSQL {label} has schema version {current}, newer than this binary's {SCHEMA_VERSION}: \
             run a controller at least as new as the one that migrated it"
        )));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        let what = format!("migration {version} ({name})");
        let tx = client
            .transaction()
            .await
            .map_err(fail(format!("starting {what}")))?;
        tx.batch_execute(sql)
            .await
            .map_err(fail(format!("applying {what}")))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(fail(format!("recording {what}")))?;
        tx.commit()
            .await
            .map_err(fail(format!("committing {what}")))?;
        tracing::info!(database = %label, version, name, "schema migration applied");
    }
    Ok(())
}
