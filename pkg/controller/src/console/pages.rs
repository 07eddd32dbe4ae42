//! The console's pages. Every string from a device or a config is escaped
//! with [`escape`]; links use the device UUID.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use super::html::{escape, page, url_segment};
use super::plot;
use super::session::Session;
use crate::admin::server::{LogsQuery, MetricsQuery};
use crate::admin::types::{DeviceStatus, DeviceView, LogLineView};
use crate::reply::Failure;
use crate::state::{ConfigSet, Controller};

/// Log lines shown when a device page loads (the view then follows).
const FIRST_LOG_LINES: usize = 200;
/// Metrics samples plotted.
const PLOT_SAMPLES: usize = 120;

/// The login form, with an error line.
pub fn login(error: Option<&str>) -> String {
    let error = error.map_or(String::new(), |e| {
        format!(r#"<p class="error" id="login-error">{}</p>"#, escape(e))
    });
    page(
        "Log in",
        None,
        &format!(
            r#"<h1>Log in</h1>{error}
<form method="post" action="/console/login">
<label>Admin token <input id="token" name="token" type="password" autocomplete="off" required></label>
<button id="login" type="submit">Log in</button></form>
<p>Create a token on the controller with <code>outpost-controller token create NAME</code>.</p>"#
        ),
    )
}

/// An error page for a refused or failed request.
pub fn failure(s: &Session, f: Failure) -> Response {
    let body = format!(
        r#"<h1>Error</h1><p class="error" id="error">{}</p>"#,
        escape(&f.message)
    );
    (f.status, Html(page("Error", Some(&s.csrf), &body))).into_response()
}

fn opt(v: Option<impl ToString>) -> String {
    v.map_or("–".to_owned(), |v| escape(&v.to_string()))
}

/// The device list.
pub fn devices(s: &Session, list: &[DeviceView]) -> String {
    let mut rows = String::new();
    for d in list {
        let state = match (d.registered, d.connected) {
            (false, _) => "waiting to register",
            (true, true) => "connected",
            (true, false) => "not connected",
        };
        let apps: Vec<String> = d
            .app_states
            .iter()
            .map(|(st, n)| format!("{n} {}", escape(st)))
            .collect();
        let behind = d.config_set.is_some() && d.config_set != d.config_applied;
        let _ = write!(
            rows,
            r#"<tr class="device" data-uuid="{uuid}"><td><a class="name" href="/console/devices/{uuid}">{name}</a></td><td class="state">{state}</td><td class="last-seen">{seen}</td><td class="generation{cls}">{applied} / {set}</td><td class="apps">{apps}</td><td class="error">{err}</td></tr>"#,
            uuid = escape(&d.uuid),
            name = escape(&d.name),
            seen = opt(d.last_seen.as_ref()),
            cls = if behind { " behind" } else { "" },
            applied = opt(d.config_applied),
            set = opt(d.config_set),
            apps = apps.join(", "),
            err = opt(d.config_error.as_ref()),
        );
    }
    let who = if s.who.read_only { " (read-only)" } else { "" };
    page(
        "Devices",
        Some(&s.csrf),
        &format!(
            r#"<h1>Devices</h1><p class="who">Logged in with token {}{who}.</p>
<table id="devices"><thead><tr><th>Name</th><th>State</th><th>Last seen</th><th>Config applied / set</th><th>Apps</th><th>Errors</th></tr></thead>
<tbody>{rows}</tbody></table>"#,
            escape(&s.who.name)
        ),
    )
}

fn apps_table(st: &DeviceStatus) -> String {
    let Some(info) = &st.info else {
        return r#"<p id="apps">The device has not reported its apps yet.</p>"#.into();
    };
    let mut rows = String::new();
    for a in &info.info.apps {
        let _ = write!(
            rows,
            r#"<tr class="app" data-name="{name}"><td class="name">{name}</td><td class="app-state">{state}</td><td>{image}</td><td>{restarts}</td><td class="error">{err}</td></tr>"#,
            name = escape(&a.display_name),
            state = escape(&a.state.to_string()),
            image = escape(&a.image),
            restarts = a.restarts,
            err = opt(a.error.as_ref().map(|e| &e.message)),
        );
    }
    format!(
        r#"<p>Reported {} (agent {}, config generation {} from {}).</p>
<table id="apps"><thead><tr><th>App</th><th>State</th><th>Image</th><th>Restarts</th><th>Error</th></tr></thead><tbody>{rows}</tbody></table>"#,
        escape(&info.received_at),
        escape(&info.info.agent_version),
        info.info.config_generation,
        escape(&info.info.config_origin),
    )
}

/// The device's base OS line and its system services (`services.linuxkit`).
fn system_section(st: &DeviceStatus) -> String {
    let Some(info) = &st.info else {
        return String::new();
    };
    let i = &info.info;
    let base = i.base_os.as_ref().map_or("-".to_owned(), |b| b.summary());
    let mut rows = String::new();
    for v in &i.services {
        let _ = write!(
            rows,
            r#"<tr class="service" data-name="{name}"><td class="name">{name}</td><td class="service-state">{state}</td><td>{declared}</td><td>{pid}</td><td>{restarts}</td></tr>"#,
            name = escape(&v.name),
            state = escape(&v.state),
            declared = if v.declared { "yes" } else { "no" },
            pid = v.pid,
            restarts = v.restarts,
        );
    }
    let services = if i.services.is_empty() {
        r#"<p id="services">No services reported.</p>"#.to_owned()
    } else {
        format!(
            r#"<table id="services"><thead><tr><th>Service</th><th>State</th><th>Declared</th><th>PID</th><th>Restarts</th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    };
    format!(
        r#"<h2>System</h2><p>Base OS: <span id="base-os">{}</span></p>{services}"#,
        escape(&base)
    )
}

fn log_line(l: &LogLineView) -> String {
    let who = l.app_name.as_deref().unwrap_or(&l.source);
    format!("{} {} {}\n", l.time, who, l.msg)
}

fn result_box(result: &Result<ConfigSet, Failure>) -> String {
    match result {
        Ok(set) => {
            let mut out = format!(
                r#"<div id="config-result" class="ok"><p>Config generation {} set ({} apps).</p>"#,
                set.generation, set.apps
            );
            if !set.warnings.is_empty() {
                out.push_str(r#"<p class="error">Validation errors (the device will reject these apps):</p><ul class="error">"#);
                for w in &set.warnings {
                    let _ = write!(out, "<li>{}</li>", escape(w));
                }
                out.push_str("</ul>");
            }
            out + "</div>"
        }
        Err(f) => format!(
            r#"<div id="config-result" class="error"><p>Config refused: {}</p></div>"#,
            escape(&f.message)
        ),
    }
}

/// The device page (with the outcome of a config upload, if one was made).
pub async fn device(
    c: &Arc<Controller>,
    s: &Session,
    dev: &str,
    uploaded: Option<Result<ConfigSet, Failure>>,
) -> Response {
    use crate::admin::server as api;
    let st = match api::status(State(c.clone()), UrlPath(dev.to_owned())).await {
        Ok(Json(st)) => st,
        Err(f) => return failure(s, f),
    };
    let uuid = st.device.uuid.clone();
    let samples = api::metrics(
        State(c.clone()),
        UrlPath(uuid.clone()),
        Query(MetricsQuery {
            n: Some(PLOT_SAMPLES),
        }),
    )
    .await
    .map(|Json(m)| m)
    .unwrap_or_default();
    let first = LogsQuery {
        n: Some(FIRST_LOG_LINES),
        ..LogsQuery::default()
    };
    let logs = match api::logs(State(c.clone()), UrlPath(uuid.clone()), Query(first)).await {
        Ok(Json(p)) => p,
        Err(f) => return failure(s, f),
    };
    let lines: String = logs.lines.iter().map(log_line).collect();
    let after = logs.next_after.map_or(String::new(), |a| a.to_string());
    let d = &st.device;
    let config_form = if s.who.read_only {
        r#"<p>This token is read-only: it cannot set configs.</p>"#.to_owned()
    } else {
        format!(
            r#"<form id="config-form" method="post" action="/console/devices/{}/config" enctype="multipart/form-data">
<input type="hidden" name="csrf" value="{}"><input id="config-file" type="file" name="file" required>
<button id="config-submit" type="submit">Set config</button></form>"#,
            url_segment(&uuid),
            escape(&s.csrf)
        )
    };
    let status = match &uploaded {
        Some(Err(f)) => f.status,
        _ => StatusCode::OK,
    };
    let result = uploaded.as_ref().map(result_box).unwrap_or_default();
    let body = format!(
        r#"<h1 id="device-name">{name}</h1>
<dl><dt>UUID</dt><dd>{uuid_h}</dd><dt>Serial</dt><dd>{serial}</dd><dt>Connected</dt><dd>{conn}</dd>
<dt>Last seen</dt><dd>{seen}</dd><dt>Config applied / set</dt><dd id="generation">{applied} / {set}</dd>
<dt>Config error</dt><dd class="error">{err}</dd><dt>Certificate expires</dt><dd>{cert}</dd></dl>
<h2>Apps</h2>{apps}
{system}
<h2>Set config</h2>{result}{config_form}
<h2>Metrics</h2>{cpu}{mem}
<h2>Logs</h2><p id="log-status">{held} lines held, {dropped} dropped</p>
<pre id="log" data-url="/console/devices/{uuid_u}/logs" data-after="{after}">{lines}</pre>"#,
        name = escape(&d.name),
        uuid_h = escape(&uuid),
        uuid_u = url_segment(&uuid),
        serial = escape(&d.serial),
        conn = if d.connected { "yes" } else { "no" },
        seen = opt(d.last_seen.as_ref()),
        applied = opt(d.config_applied),
        set = opt(d.config_set),
        err = opt(d.config_error.as_ref()),
        cert = match &d.revoked_at {
            Some(t) => format!("revoked at {}", escape(t)),
            None => opt(d.cert_not_after.as_ref()),
        },
        apps = apps_table(&st),
        system = system_section(&st),
        cpu = plot::chart(
            "cpu-plot",
            "CPU (% of all CPUs)",
            "%",
            &plot::cpu_percent(&samples),
            100.0
        ),
        mem = plot::chart(
            "mem-plot",
            "Memory in use (MiB)",
            "MiB",
            &plot::memory_mib(&samples),
            1.0
        ),
        held = st.log_lines,
        dropped = st.log_lines_dropped,
        lines = escape(&lines),
    );
    (status, Html(page(&d.name, Some(&s.csrf), &body))).into_response()
}
