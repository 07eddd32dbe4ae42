//! The admin API server (run by `serve`).

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::net::UnixListener;
use tokio::sync::watch;

use super::types::{
    AddDevice, ConfigView, DeviceStatus, DeviceView, LogLineView, LogPage, MetricsView, ServerView,
    SetConfig,
};
use crate::db::{DeviceRecord, InfoRecord, Presence};
use crate::error::{ControllerError, Result};
use crate::reply::Failure;
use crate::state::{connected_by, ConfigSet, Controller, DeviceSlot};

/// Most lines one log page holds.
const LOG_PAGE: usize = 5000;
/// How often a waiting `logs -f` request reads again on a shared database.
const SHARED_LOG_RECHECK: Duration = Duration::from_secs(1);

/// Longest a `logs -f` request waits for new lines.
const MAX_LOG_WAIT: u64 = 60;

/// Binds the socket (replacing a stale one) with mode 0600.
pub fn bind(socket: &Path) -> Result<UnixListener> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).map_err(ControllerError::io("binding", socket))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(ControllerError::io("setting the mode of", socket))?;
    Ok(listener)
}

/// The admin API's `/v1` routes, shared by the unix socket and the HTTPS
/// listener (`serve --admin-listen`, behind token auth: [`super::https`]).
pub fn router(controller: Arc<Controller>) -> Router {
    Router::new()
        .route("/v1/server", get(server_view))
        .route("/v1/devices", get(list).post(add))
        .route("/v1/devices/{dev}", get(status).delete(delete))
        .route("/v1/devices/{dev}/config", axum::routing::put(set_config))
        .route("/v1/devices/{dev}/revoke", axum::routing::post(revoke))
        .route("/v1/config", axum::routing::put(set_config_all))
        .route("/v1/devices/{dev}/metrics", get(metrics))
        .route("/v1/devices/{dev}/logs", get(logs))
        .layer(DefaultBodyLimit::max(
            2 * crate::document::MAX_DOCUMENT_BYTES,
        ))
        .merge(super::baseos::routes())
        .with_state(controller)
}

/// Serves the admin API until `stop` turns true.
pub async fn serve(
    controller: Arc<Controller>,
    listener: UnixListener,
    stop: watch::Receiver<bool>,
) {
    let app = router(controller);
    let stopped = crate::limits::stopped(stop);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::error!(error = %e, "admin API stopped");
    }
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// What an operator sees of a device: this controller's memory (`slot`),
/// its last info, and the presence every replica writes to the store
/// (`stored`, with `shared`: whether other replicas write it too, so a
/// long-poll they hold makes it connected).
fn view_of(
    record: &DeviceRecord,
    slot: Option<&DeviceSlot>,
    info: Option<&InfoRecord>,
    stored: Option<&Presence>,
    shared: bool,
) -> DeviceView {
    let seen = slot.and_then(DeviceSlot::last_seen);
    let reported = info.and_then(|i| parse_time(&i.received_at));
    let kept = stored
        .filter(|p| p.last_seen > 0)
        .and_then(|p| OffsetDateTime::from_unix_timestamp(p.last_seen).ok());
    let last_seen = seen
        .max(reported)
        .max(kept)
        .and_then(|t| t.format(&Rfc3339).ok());
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let elsewhere = shared && stored.is_some_and(|p| connected_by(p, now));
    let mut app_states = BTreeMap::new();
    for app in info.map(|i| i.info.apps.as_slice()).unwrap_or_default() {
        *app_states.entry(app.state.to_string()).or_insert(0) += 1;
    }
    DeviceView {
        name: record.name.clone(),
        uuid: record.uuid.clone(),
        serial: record.serial.clone(),
        registered: record.registered_at.is_some(),
        last_seen,
        connected: slot.is_some_and(DeviceSlot::connected) || elsewhere,
        config_set: slot.and_then(|s| s.config.borrow().as_ref().map(|c| c.generation)),
        config_applied: info.map(|i| i.info.config_generation),
        config_error: info.and_then(|i| i.info.config_error.clone()),
        apps: info.map_or(0, |i| i.info.apps.len()),
        app_states,
        cert_not_after: record.cert_not_after.clone(),
        cert_serial: record.cert_serial.clone(),
        revoked_at: record.revoked_at.clone(),
    }
}

async fn server_view(State(c): State<Arc<Controller>>) -> Json<ServerView> {
    Json(ServerView {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        open_onboarding: c.open_onboarding(),
        devices: c.slots().len(),
        stats: c.stats.snapshot(),
    })
}

pub(crate) async fn list(
    State(c): State<Arc<Controller>>,
) -> Result<Json<Vec<DeviceView>>, Failure> {
    let (infos, presence) = c
        .blocking(|c| Ok((c.db.infos()?, c.db.presence()?)))
        .await?;
    let shared = c.db.shared();
    let mut views: Vec<DeviceView> = c
        .slots()
        .iter()
        .map(|s| {
            let r = s.record();
            view_of(
                &r,
                Some(s),
                infos.get(&r.uuid),
                presence.get(&r.uuid),
                shared,
            )
        })
        .collect();
    views.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(views))
}

async fn add(
    State(c): State<Arc<Controller>>,
    Json(req): Json<AddDevice>,
) -> Result<Json<DeviceView>, Failure> {
    let record = c.add_device(&req.name, &req.serial).await?;
    let slot = c.slot(&record.uuid);
    Ok(Json(view_of(&record, slot.as_deref(), None, None, false)))
}

async fn delete(
    State(c): State<Arc<Controller>>,
    UrlPath(dev): UrlPath<String>,
) -> Result<Json<DeviceView>, Failure> {
    let record = c.delete_device(&dev).await?;
    Ok(Json(view_of(&record, None, None, None, false)))
}

async fn revoke(
    State(c): State<Arc<Controller>>,
    UrlPath(dev): UrlPath<String>,
) -> Result<Json<DeviceView>, Failure> {
    let record = c.revoke_device(&dev).await?;
    let slot = c.slot(&record.uuid);
    Ok(Json(view_of(&record, slot.as_deref(), None, None, false)))
}

pub(crate) async fn status(
    State(c): State<Arc<Controller>>,
    UrlPath(dev): UrlPath<String>,
) -> Result<Json<DeviceStatus>, Failure> {
    let slot = c.resolve(&dev)?;
    let uuid = slot.uuid();
    let (info, config, logs, presence) = c
        .blocking(move |c| {
            Ok((
                c.db.info(&uuid)?,
                c.db.config(&uuid)?,
                c.db.log_meta(&uuid)?,
                c.db.presence_of(&uuid)?,
            ))
        })
        .await?;
    let record = slot.record();
    Ok(Json(DeviceStatus {
        device: view_of(
            &record,
            Some(&slot),
            info.as_ref(),
            presence.as_ref(),
            c.db.shared(),
        ),
        config: config.map(|c| ConfigView {
            generation: c.generation,
            set_at: c.set_at,
            etag: c.etag,
            apps: c.document["apps"].as_array().map_or(0, Vec::len),
            warnings: c.warnings,
        }),
        info,
        log_lines: logs.len(),
        log_lines_dropped: logs.dropped,
    }))
}

async fn set_config(
    State(c): State<Arc<Controller>>,
    UrlPath(dev): UrlPath<String>,
    Json(req): Json<SetConfig>,
) -> Result<Json<ConfigSet>, Failure> {
    Ok(Json(c.set_config(&dev, req.document).await?))
}

async fn set_config_all(
    State(c): State<Arc<Controller>>,
    Json(req): Json<SetConfig>,
) -> Result<Json<Vec<ConfigSet>>, Failure> {
    Ok(Json(c.set_config_all(req.document).await?))
}

/// `?n=` of the metrics route.
#[derive(Deserialize)]
pub(crate) struct MetricsQuery {
    pub n: Option<usize>,
}

pub(crate) async fn metrics(
    State(c): State<Arc<Controller>>,
    UrlPath(dev): UrlPath<String>,
    Query(q): Query<MetricsQuery>,
) -> Result<Json<MetricsView>, Failure> {
    let uuid = c.resolve(&dev)?.uuid();
    let n = q.n.unwrap_or(2);
    Ok(Json(c.blocking(move |c| c.db.metrics(&uuid, n)).await?))
}

/// `?app=&n=&after=&wait=` of the logs route.
#[derive(Deserialize, Default)]
pub(crate) struct LogsQuery {
    pub app: Option<String>,
    pub n: Option<usize>,
    pub after: Option<u64>,
    pub wait: Option<u64>,
}

/// App UUID → name, from the device's config and last info.
fn app_names(c: &Controller, uuid: &str) -> Result<HashMap<String, String>> {
    let mut names = HashMap::new();
    if let Some(config) = c.db.config(uuid)? {
        for app in config.document["apps"].as_array().into_iter().flatten() {
            if let (Some(u), Some(n)) = (app["uuid"].as_str(), app["display_name"].as_str()) {
                names.insert(u.to_owned(), n.to_owned());
            }
        }
    }
    if let Some(info) = c.db.info(uuid)? {
        for app in info.info.apps {
            names.insert(app.uuid, app.display_name);
        }
    }
    Ok(names)
}

pub(crate) async fn logs(
    State(c): State<Arc<Controller>>,
    UrlPath(dev): UrlPath<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Json<LogPage>, Failure> {
    let slot = c.resolve(&dev)?;
    let uuid = slot.uuid();
    let names = {
        let uuid = uuid.clone();
        c.blocking(move |c| app_names(c, &uuid)).await?
    };
    let app = match q.app.as_deref() {
        None => None,
        Some(key) if names.contains_key(key) || uuid::Uuid::parse_str(key).is_ok() => {
            Some(key.to_owned())
        }
        Some(key) => match names.iter().find(|(_, n)| n.as_str() == key) {
            Some((u, _)) => Some(u.clone()),
            None => {
                let suggestions = crate::names::suggest(key, names.values().map(String::as_str));
                return Err(Failure::not_found(
                    format!("device {dev} has no app named {key:?}"),
                    suggestions,
                ));
            }
        },
    };
    let mut changed = slot.logs.subscribe();
    let shutdown = c.shutdown.subscribe();
    let wait = Duration::from_secs(q.wait.unwrap_or(0).min(MAX_LOG_WAIT));
    let deadline = tokio::time::Instant::now() + wait;
    // Uploads stored through another replica wake no one here: on a shared
    // database the page is read again every second while waiting.
    let recheck = if c.db.shared() {
        SHARED_LOG_RECHECK
    } else {
        wait
    };
    loop {
        changed.borrow_and_update();
        let page = {
            let (uuid, app, names) = (uuid.clone(), app.clone(), names.clone());
            let (n, after) = (q.n, q.after);
            c.blocking(move |c| read_page(c, &uuid, app.as_deref(), &names, n, after))
                .await?
        };
        if !page.lines.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(page));
        }
        let _waiting = crate::limits::Waiting::new([&c.stats.log_follows_waiting]);
        tokio::select! {
            r = changed.changed() => if r.is_err() || slot.is_deleted() { return Ok(Json(page)) },
            _ = crate::limits::stopped(shutdown.clone()) => return Ok(Json(page)),
            _ = tokio::time::sleep_until(deadline) => return Ok(Json(page)),
            _ = tokio::time::sleep(recheck) => {}
        }
    }
}

fn read_page(
    c: &Controller,
    uuid: &str,
    app: Option<&str>,
    names: &HashMap<String, String>,
    n: Option<usize>,
    after: Option<u64>,
) -> Result<LogPage> {
    let filter = |e: &outpost_api::cloud::LogEntry| match app {
        None => true,
        Some(a) => e.app.as_deref() == Some(a) || e.source.contains(a),
    };
    let meta = c.db.log_meta(uuid)?;
    let (lines, next_after) = match (after, n) {
        (None, Some(n)) => {
            let lines = c.db.logs_tail(uuid, n, &filter)?;
            // `meta` was read first: lines stored since are in `lines` or come next
            let next = meta.next.checked_sub(1).max(lines.last().map(|l| l.seq));
            (lines, next)
        }
        (after, n) => {
            c.db.logs_after(uuid, after, n.unwrap_or(LOG_PAGE).min(LOG_PAGE), &filter)?
        }
    };
    Ok(LogPage {
        lines: lines
            .into_iter()
            .map(|l| LogLineView {
                seq: l.seq,
                app_name: l.entry.app.as_ref().and_then(|a| names.get(a)).cloned(),
                time: l.entry.time,
                source: l.entry.source,
                app: l.entry.app,
                msg: l.entry.msg,
            })
            .collect(),
        next_after,
        dropped: meta.dropped,
    })
}
