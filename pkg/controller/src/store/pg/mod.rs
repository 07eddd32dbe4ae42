//! [`Store`](super::Store) on PostgreSQL (`serve --database postgres://…`):
//! a `deadpool-postgres` pool of `tokio-postgres` connections, versioned
//! migrations, and `NOTIFY outpost_config, '<device uuid>'` after every
//! committed change of a device or its config, which the other replicas
//! follow (`state::follow`).

mod baseos;
mod certs;
mod devices;
mod imp;
mod migrate;
mod presence;
mod tls;
mod uploads;

use std::future::Future;
use std::path::Path;
use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::runtime::Handle;
use tokio_postgres::config::Host;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::db::Settings;
use crate::error::{ControllerError, Result};

pub use migrate::{MIGRATIONS, SCHEMA_VERSION};
pub use tls::connector;

/// The channel replicas `LISTEN` on; the payload is a device UUID.
pub const CHANNEL: &str = "outpost_config";

/// Connections in the pool of one replica.
pub const POOL_SIZE: usize = 16;

/// The controller's PostgreSQL database.
pub struct PgStore {
    pool: Pool,
    rt: Handle,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    label: String,
    settings: Settings,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("database", &self.label)
            .finish_non_exhaustive()
    }
}

/// `database NAME on HOST as USER`, never the password.
pub fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    format!(
        "database {:?} on {} as {:?}",
        config.get_dbname().unwrap_or("(default)"),
        if hosts.is_empty() {
            "(default host)".to_owned()
        } else {
            hosts.join(",")
        },
        config.get_user().unwrap_or("(default)")
    )
}

/// The message of a driver error with its causes (the database's own text).
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

impl PgStore {
    /// Connects to `url` (a `postgres://` URL or `key=value` string; TLS
    /// verified against `ca` when given: [`connector`]), applies pending
    /// migrations and keeps `settings` (from the state dir).
    pub async fn connect(url: &str, ca: Option<&Path>, settings: Settings) -> Result<PgStore> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            ControllerError::Invalid(format!(
                "--database: not a PostgreSQL URL or connection string: {}",
                error_text(&e)
            ))
        })?;
        let tls = connector(&mut config, ca)?;
        let label = describe(&config);
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(std::time::Duration::from_secs(30)))
            .create_timeout(Some(std::time::Duration::from_secs(10)))
            .build()
            .map_err(|e| ControllerError::Invalid(format!("PostgreSQL {label}: pool: {e}")))?;
        let me = PgStore {
            pool,
            rt: Handle::current(),
            config,
            tls,
            label,
            settings,
        };
        let mut client = me.client("connecting").await?;
        migrate::migrate(&mut client, &me.label).await?;
        tracing::info!(database = %me.label, schema = SCHEMA_VERSION, "PostgreSQL store ready");
        Ok(me)
    }

    /// The connection settings (the replica's LISTEN connection uses them).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The TLS connector of every connection (plain without a CA).
    pub fn tls(&self) -> MakeRustlsConnect {
        self.tls.clone()
    }

    /// `database NAME on HOST as USER`.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A pooled connection.
    async fn client(&self, context: &str) -> Result<deadpool_postgres::Client> {
        self.pool
            .get()
            .await
            .map_err(|e| ControllerError::Postgres {
                database: self.label.clone(),
                context: format!("{context}: getting a connection"),
                message: error_text(&e),
            })
    }

    /// A `map_err` builder for driver errors.
    fn fail(
        &self,
        context: impl Into<String>,
    ) -> impl FnOnce(tokio_postgres::Error) -> ControllerError + '_ {
        let context = context.into();
        move |e| ControllerError::Postgres {
            database: self.label.clone(),
            context,
            message: error_text(&e),
        }
    }

    /// Runs `fut` to completion on this thread: a blocking-pool thread
    /// normally; on a worker of a multi-thread runtime (a test reading the
    /// store directly) the worker is handed over to blocking first.
    fn run<R>(&self, fut: impl Future<Output = Result<R>>) -> Result<R> {
        let on_worker = Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if on_worker {
            tokio::task::block_in_place(|| self.rt.block_on(fut))
        } else {
            self.rt.block_on(fut)
        }
    }

    /// Tells every replica that these devices changed (after the commit,
    /// so a replica that hears it reads the new state). A lost
    /// notification is made good by the replicas' catch-up, so a failure
    /// here is logged, not returned: the change itself is committed.
    async fn notify(&self, client: &deadpool_postgres::Client, uuids: &[String]) {
        if uuids.is_empty() {
            return;
        }
        if let Err(e) = client
            .execute(
                "SELECT pg_notify($1, u) FROM unnest($2::text[]) AS u",
                &[&CHANNEL, &uuids],
            )
            .await
        {
            tracing::warn!(database = %self.label, devices = uuids.len(), error = %error_text(&e),
                "NOTIFY after a committed change failed; other replicas catch up on their next check");
        }
    }
}

/// Converts a stored BIGINT back (never negative: written from a `u64`).
fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Converts for a BIGINT column.
fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
