//! The OCI runtime spec of a native-container app, from its `AppConfig` and
//! its image config, as EVE builds it (EVE-FACTS §4, §5).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::Spec;
use outpost_api::{AppConfig, RuntimeClass, VolumeMount};
use serde_json::{json, Value};

use super::default::{default_spec, DEFAULT_PATH};
use super::user::resolve_user;
use crate::client::USER_NAMESPACE;
use crate::error::{Result, RuntimeError};
use crate::labels::EVE_VNC_PASSWORD;
use crate::runsc;

/// CFS period used for the CPU quota (100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;
/// Env key whose value replaces the image's command (EVE's convention).
pub const ECO_CMD: &str = "EVE_ECO_CMD";

/// A data volume to bind into the app: its host directory and config.
#[derive(Clone, Debug)]
pub struct DataVolume {
    /// Host directory (`<volumes>/<uuid>#<gen>`).
    pub host_dir: PathBuf,
    /// The app's mount settings.
    pub mount: VolumeMount,
}

/// Everything the spec is built from.
#[derive(Clone, Copy, Debug)]
pub struct SpecInput<'a> {
    /// The app.
    pub app: &'a AppConfig,
    /// Its image's OCI config.
    pub image: &'a ImageConfiguration,
    /// The mounted writable rootfs (`<volume>/rootfs`).
    pub rootfs: &'a Path,
    /// Data volumes in config order.
    pub volumes: &'a [DataVolume],
    /// The app's network namespace and files; `None` keeps a fresh isolated namespace.
    pub network: Option<&'a NetworkSpec>,
}

/// An app's prepared network: the namespace to join and the files to bind.
#[derive(Clone, Debug)]
pub struct NetworkSpec {
    /// Network namespace path (`<run>/netns/<task>`).
    pub netns: PathBuf,
    /// File bound at `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// File bound at `/etc/hosts`.
    pub hosts: PathBuf,
}

/// cgroups path of an app's task: `/eve-user-apps/<task>`.
pub fn cgroups_path(task_id: &str) -> String {
    format!("/{USER_NAMESPACE}/{task_id}")
}

/// The VNC password in effect: the config's if set, else the image's
/// `org.lfedge.eve.vnc_password` label, else none.
pub fn vnc_password(app: &AppConfig, image: &ImageConfiguration) -> Option<String> {
    if let Some(pw) = &app.vnc.password {
        return Some(pw.expose().to_owned());
    }
    image
        .config()
        .as_ref()
        .and_then(|c| c.labels().as_ref())
        .and_then(|l| l.get(EVE_VNC_PASSWORD))
        .filter(|p| !p.is_empty())
        .cloned()
}

/// EVE_ECO_CMD's value as argv: trim spaces and quotes, split on white space.
pub fn eco_cmd_args(value: &str) -> Vec<String> {
    value
        .trim_matches(|c| c == ' ' || c == '"' || c == '\'')
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The image's stop signal as a number (SIGTERM when unset or unknown).
pub fn stop_signal(image: &ImageConfiguration) -> i32 {
    let name = image
        .config()
        .as_ref()
        .and_then(|c| c.stop_signal().clone())
        .unwrap_or_default();
    parse_signal(&name).unwrap_or(libc::SIGTERM)
}

/// `SIGTERM`, `TERM` or `15` → 15.
pub fn parse_signal(name: &str) -> Option<i32> {
    let n = name.trim();
    if let Ok(num) = n.parse::<i32>() {
        return Some(num);
    }
    let upper = n.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as i32)
}

/// The app's memory limit in bytes and CFS quota in µs per
/// [`CPU_PERIOD_US`], computed without overflow: a value that does not fit
/// the OCI spec's `i64` is an error naming the field, never a wrapped limit.
pub fn limits(app: &AppConfig) -> std::result::Result<(i64, i64), String> {
    let kib = app.resources.memory_kib;
    let memory = kib
        .checked_mul(1024)
        .and_then(|b| i64::try_from(b).ok())
        .ok_or_else(|| {
            format!("resources.memory_kib {kib} is too large: its bytes do not fit a 64-bit limit")
        })?;
    let vcpus = app.resources.vcpus;
    let quota = i64::try_from(CPU_PERIOD_US)
        .ok()
        .and_then(|p| p.checked_mul(i64::from(vcpus)))
        .ok_or_else(|| format!("resources.vcpus {vcpus} is too large for a CPU quota"))?;
    Ok((memory, quota))
}

/// Builds the runtime spec.
pub fn build_spec(input: SpecInput<'_>) -> Result<Spec> {
    let app = input.app;
    let task = app.task_id();
    let spec_err = |problem: String| RuntimeError::Spec {
        task: task.clone(),
        problem,
    };
    let img = input.image.config().clone().unwrap_or_default();

    let mut env: Vec<String> = img.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_owned());
    }
    for (k, v) in &app.env {
        if k.is_empty() || k.contains('=') || k.chars().any(char::is_control) {
            return Err(spec_err(format!(
                "env.{}: a variable name must be non-empty without '=' or control characters",
                outpost_api::validate_fields::env_name_shown(k)
            )));
        }
        env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k.as_str()));
        env.push(format!("{k}={v}"));
    }
    let mut args: Vec<String> = img.entrypoint().clone().unwrap_or_default();
    args.extend(img.cmd().clone().unwrap_or_default());
    if let Some(cmd) = app.env.get(ECO_CMD) {
        let eco = eco_cmd_args(cmd);
        if !eco.is_empty() {
            args = eco;
        }
    }
    if args.is_empty() {
        return Err(spec_err(
            "the image has no entrypoint or cmd and EVE_ECO_CMD is not set".into(),
        ));
    }
    let cwd = img
        .working_dir()
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    let (uid, gid, extra_gids) =
        resolve_user(input.rootfs, img.user().as_deref().unwrap_or("")).map_err(spec_err)?;

    let mut spec = default_spec();
    spec["root"] = json!({ "path": input.rootfs, "readonly": false });
    spec["hostname"] = json!(app.uuid);
    let process = &mut spec["process"];
    process["args"] = json!(args);
    process["env"] = json!(env);
    process["cwd"] = json!(cwd);
    process["user"] = json!({ "uid": uid, "gid": gid, "additionalGids": extra_gids });

    let (memory_limit, cpu_quota) = limits(app).map_err(spec_err)?;
    let mut cpu = json!({
        "period": CPU_PERIOD_US,
        "quota": cpu_quota,
    });
    if let Some(set) = &app.resources.cpus {
        cpu["cpus"] = json!(set.to_string());
    }
    let linux = &mut spec["linux"];
    linux["cgroupsPath"] = json!(cgroups_path(&task));
    linux["resources"]["memory"] = json!({ "limit": memory_limit });
    linux["resources"]["cpu"] = cpu;

    let mut annotations = HashMap::new();
    if let Some(pw) = vnc_password(app, input.image) {
        annotations.insert(EVE_VNC_PASSWORD.to_owned(), pw);
    }
    if input.network.is_some() && app.runtime == RuntimeClass::Runsc {
        // The runsc wrapper defaults to no network; this app has its own
        // namespace with interfaces, which gVisor must use.
        annotations.insert(
            runsc::NETWORK_FLAG_ANNOTATION.to_owned(),
            runsc::netns_network_mode().to_owned(),
        );
    }
    spec["annotations"] = json!(annotations);

    if let Some(net) = input.network {
        if let Some(nss) = spec["linux"]["namespaces"].as_array_mut() {
            for ns in nss.iter_mut().filter(|ns| ns["type"] == "network") {
                ns["path"] = json!(net.netns);
            }
        }
    }
    let mounts = spec["mounts"]
        .as_array_mut()
        .expect("default spec has mounts");
    if let Some(net) = input.network {
        for (dest, src) in [
            ("/etc/resolv.conf", &net.resolv_conf),
            ("/etc/hosts", &net.hosts),
        ] {
            mounts.push(json!({
                "destination": dest,
                "type": "bind",
                "source": src,
                "options": ["rbind", "ro"],
            }));
        }
    }
    for (n, v) in input.volumes.iter().enumerate() {
        let mode = if v.mount.read_only { "ro" } else { "rw" };
        let mut targets = vec![format!("/dev/eve/volumes/by-id/{n}")];
        if let Some(name) = &v.mount.name {
            targets.push(format!("/dev/eve/volumes/by-name/{name}"));
        }
        if let Some(dir) = &v.mount.mount_dir {
            // Validation refuses these; never bind over /proc, /sys, /dev.
            if let Some(why) = outpost_api::validate_fields::mount_dir_problem(dir) {
                return Err(spec_err(format!("volumes[{n}].mount_dir: {why}")));
            }
            targets.push(dir.clone());
        }
        for t in targets {
            mounts.push(json!({
                "destination": t,
                "type": "bind",
                "source": v.host_dir,
                "options": ["rbind", mode],
            }));
        }
    }
    from_json(spec).map_err(spec_err)
}

fn from_json(v: Value) -> std::result::Result<Spec, String> {
    serde_json::from_value(v).map_err(|e| format!("spec does not match the OCI schema: {e}"))
}

#[cfg(test)]
#[path = "from_domain_tests.rs"]
mod tests;
