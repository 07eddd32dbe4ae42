//! Validation of a decoded [`DeviceConfig`]: every problem, each with a path.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::config::{AppConfig, DeviceConfig, MAX_CPUS};
use crate::problem::quoted;
pub use crate::problem::{
    clip, is_uuid, Problem, MAX_PROBLEM_MESSAGE_BYTES, MAX_PROBLEM_PATH_BYTES, MAX_QUOTED_BYTES,
};

/// Smallest memory limit accepted for an app, in KiB.
pub const MIN_MEMORY_KIB: u64 = 4096;
/// Largest grace period accepted between stop signal and SIGKILL.
pub const MAX_STOP_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest accepted app version string (it is part of the 76-byte containerd ID).
pub const MAX_VERSION_LEN: usize = 24;
/// Returns every problem of the config; empty means valid. Size limits are
/// in [`crate::validate_size`].
pub fn validate(config: &DeviceConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut uuids = BTreeMap::new();
    let mut names = BTreeMap::new();
    let mut nums = BTreeMap::new();
    crate::registry::validate_registries(&config.registries, &mut out);
    for (i, app) in config.apps.iter().enumerate() {
        let p = format!("apps[{i}]");
        validate_app(app, &p, &mut out);
        if let Some(first) = uuids.insert(app.uuid.as_str(), i) {
            out.push(Problem::new(
                format!("{p}.uuid"),
                format!("duplicate of apps[{first}].uuid"),
            ));
            uuids.insert(app.uuid.as_str(), first);
        }
        if let Some(first) = names.insert(app.display_name.as_str(), i) {
            out.push(Problem::new(
                format!("{p}.display_name"),
                format!(
                    "duplicate of apps[{first}].display_name {}",
                    quoted(&app.display_name)
                ),
            ));
            names.insert(app.display_name.as_str(), first);
        }
        if let Some(first) = nums.insert(app.app_num, i) {
            out.push(Problem::new(
                format!("{p}.app_num"),
                format!("{} is already used by apps[{first}]", app.app_num),
            ));
            nums.insert(app.app_num, first);
        }
    }
    crate::validate_network::validate_networks(config, &mut out);
    if let Some(b) = &config.base_os {
        crate::baseos::validate_base_os(b, &mut out);
    }
    out
}

fn validate_app(app: &AppConfig, p: &str, out: &mut Vec<Problem>) {
    crate::validate_size::validate_app_sizes(app, p, out);
    crate::validate_fields::validate_fields(app, p, out);
    let mut err = |field: &str, msg: String| out.push(Problem::new(format!("{p}.{field}"), msg));
    if !is_uuid(&app.uuid) {
        err(
            "uuid",
            format!(
                "{} is not a UUID (8-4-4-4-12 hex digits)",
                quoted(&app.uuid)
            ),
        );
    }
    if app.version.is_empty() || app.version.len() > MAX_VERSION_LEN || !is_id_part(&app.version) {
        err(
            "version",
            format!(
                "{} must be 1 to {MAX_VERSION_LEN} letters, digits, '-' or '_', starting and ending with a letter or digit",
                quoted(&app.version)
            ),
        );
    }
    if app.display_name.trim().is_empty()
        || app.display_name.len() > 64
        || app.display_name.chars().any(char::is_control)
    {
        err(
            "display_name",
            "must be 1 to 64 printable characters".into(),
        );
    }
    if app.app_num == 0 {
        err("app_num", "must be at least 1".into());
    }
    if app.image.trim().is_empty() || app.image.chars().any(char::is_whitespace) {
        err(
            "image",
            format!("{} is not an image reference", quoted(&app.image)),
        );
    }
    let r = &app.resources;
    if r.memory_kib < MIN_MEMORY_KIB {
        err(
            "resources.memory_kib",
            format!("must be at least {MIN_MEMORY_KIB} (got {})", r.memory_kib),
        );
    }
    if r.vcpus == 0 || r.vcpus > 1024 {
        err(
            "resources.vcpus",
            format!("must be 1 to 1024 (got {})", r.vcpus),
        );
    }
    if let Some(cpus) = &r.cpus {
        if cpus.cpus().is_empty() {
            err(
                "resources.cpus",
                "an empty pin set pins to nothing; omit it instead".into(),
            );
        }
        if let Some(c) = cpus.cpus().iter().find(|c| **c >= MAX_CPUS) {
            err(
                "resources.cpus",
                format!("CPU {c} is out of range (0 to 1023)"),
            );
        }
    }
    for (k, v) in &app.env {
        let shown = crate::validate_fields::env_name_shown(k);
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            err(
                &format!("env.{shown}"),
                "a variable name must be non-empty without '=' or NUL".into(),
            );
        }
        if v.contains('\0') {
            err(&format!("env.{shown}"), "value contains a NUL byte".into());
        }
    }
    let mut vol_ids = HashSet::new();
    let mut mounts = HashSet::new();
    for (j, v) in app.volumes.iter().enumerate() {
        let vp = format!("volumes[{j}]");
        if !is_uuid(&v.uuid) {
            err(
                &format!("{vp}.uuid"),
                format!("{} is not a UUID", quoted(&v.uuid)),
            );
        } else if !vol_ids.insert(v.uuid.as_str()) {
            err(
                &format!("{vp}.uuid"),
                "the same volume is listed twice".into(),
            );
        }
        if let Some(dir) = &v.mount_dir {
            // Its shape is checked in `validate_fields`.
            if crate::validate_fields::mount_dir_problem(dir).is_none()
                && !mounts.insert(dir.trim_end_matches('/'))
            {
                err(
                    &format!("{vp}.mount_dir"),
                    format!("{} is used by another volume", quoted(dir)),
                );
            }
        }
        if let Some(name) = &v.name {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                err(
                    &format!("{vp}.name"),
                    format!("{} is not a valid file name", quoted(name)),
                );
            }
        }
    }
    if app.stop_timeout > MAX_STOP_TIMEOUT {
        err("stop_timeout", "must be at most 1h".into());
    }
    if let Some(pw) = &app.vnc.password {
        // The password itself is never echoed back.
        if pw.expose().is_empty() || pw.expose().len() > 64 {
            err("vnc.password", "must be 1 to 64 bytes".into());
        }
    }
}

fn is_id_part(s: &str) -> bool {
    let ok = |b: u8| b.is_ascii_alphanumeric();
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && ok(bytes[0])
        && ok(bytes[bytes.len() - 1])
        && bytes.iter().all(|&b| ok(b) || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CpuSet, Secret, VolumeMount};
    use crate::test_apps::problems;

    fn app(n: u32) -> AppConfig {
        serde_json::from_value(serde_json::json!({
            "uuid": format!("6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a1{n}"),
            "version": "1",
            "display_name": format!("app{n}"),
            "app_num": n,
            "image": "hello:latest",
        }))
        .unwrap()
    }

    #[test]
    fn a_good_config_has_no_problems() {
        assert!(problems(vec![app(1), app(2)]).is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut a = app(1);
        a.uuid = "nope".into();
        a.version = "1.2".into();
        a.resources.memory_kib = 100;
        a.resources.vcpus = 0;
        a.resources.cpus = Some(CpuSet::new(vec![2000]));
        a.env.insert("A=B".into(), "x".into());
        a.stop_timeout = Duration::from_secs(7200);
        a.vnc.password = Some(Secret::new(""));
        a.volumes = vec![
            VolumeMount {
                uuid: "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10".into(),
                generation: 0,
                name: Some("a/b".into()),
                mount_dir: Some("data".into()),
                read_only: false,
            },
            VolumeMount {
                uuid: "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10".into(),
                generation: 0,
                name: None,
                mount_dir: None,
                read_only: false,
            },
        ];
        let got = problems(vec![a]);
        for want in [
            "apps[0].uuid: \"nope\" is not a UUID",
            "apps[0].version",
            "apps[0].resources.memory_kib: must be at least 4096 (got 100)",
            "apps[0].resources.vcpus",
            "apps[0].resources.cpus: CPU 2000",
            "apps[0].env.A=B",
            "apps[0].stop_timeout",
            "apps[0].vnc.password",
            "apps[0].volumes[0].mount_dir",
            "apps[0].volumes[0].name",
            "apps[0].volumes[1].uuid: the same volume is listed twice",
        ] {
            assert!(
                got.iter().any(|g| g.starts_with(want)),
                "missing {want:?} in {got:#?}"
            );
        }
        assert_eq!(got.len(), 11, "{got:#?}");
    }

    #[test]
    fn duplicates_are_reported_on_the_later_app() {
        let mut b = app(2);
        b.uuid = app(1).uuid;
        b.display_name = "app1".into();
        b.app_num = 1;
        let got = problems(vec![app(1), b]);
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(got.iter().all(|g| g.starts_with("apps[1].")), "{got:#?}");
    }

    #[test]
    fn uuids() {
        assert!(is_uuid("6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10"));
        assert!(!is_uuid("6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a1"));
        assert!(!is_uuid("6f1c2a4e9b7d-4c1e-8a52-0d3f5e7b9a10-"));
    }
}
