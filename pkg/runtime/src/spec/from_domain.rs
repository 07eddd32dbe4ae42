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

    let mut cpu = json!({
        "period": CPU_PERIOD_US,
        "quota": CPU_PERIOD_US as i64 * i64::from(app.resources.vcpus),
    });
    if let Some(set) = &app.resources.cpus {
        cpu["cpus"] = json!(set.to_string());
    }
    let linux = &mut spec["linux"];
    linux["cgroupsPath"] = json!(cgroups_path(&task));
    linux["resources"]["memory"] = json!({ "limit": (app.resources.memory_kib * 1024) as i64 });
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
mod tests {
    use super::*;
    use outpost_api::{CpuSet, Secret};

    fn app() -> AppConfig {
        serde_json::from_value(json!({
            "uuid": "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10",
            "version": "3",
            "display_name": "gw",
            "app_num": 1,
            "image": "hello:latest",
            "resources": { "memory_kib": 262144, "vcpus": 2 },
            "env": { "LOG_LEVEL": "debug", "PATH": "/bin" },
        }))
        .unwrap()
    }

    fn image(labels: Option<(&str, &str)>) -> ImageConfiguration {
        let mut cfg = json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": [] },
            "config": {
                "Env": ["PATH=/usr/bin", "HOME=/root"],
                "Entrypoint": ["/bin/sh", "-c"],
                "Cmd": ["echo hi"],
                "WorkingDir": "/srv",
                "StopSignal": "SIGINT",
            }
        });
        if let Some((k, v)) = labels {
            cfg["config"]["Labels"] = json!({ k: v });
        }
        serde_json::from_value(cfg).unwrap()
    }

    fn build(app: &AppConfig, img: &ImageConfiguration, vols: &[DataVolume]) -> Value {
        let t = tempfile::tempdir().unwrap();
        let spec = build_spec(SpecInput {
            app,
            image: img,
            rootfs: t.path(),
            volumes: vols,
            network: None,
        })
        .unwrap();
        serde_json::to_value(spec).unwrap()
    }

    #[test]
    fn resources_identity_and_process() {
        let mut a = app();
        a.resources.cpus = Some(CpuSet::new(vec![0, 1]));
        let s = build(&a, &image(None), &[]);
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 262144 * 1024);
        assert_eq!(s["linux"]["resources"]["cpu"]["quota"], 200_000);
        assert_eq!(s["linux"]["resources"]["cpu"]["period"], 100_000);
        assert_eq!(s["linux"]["resources"]["cpu"]["cpus"], "0,1");
        assert_eq!(
            s["linux"]["cgroupsPath"],
            "/eve-user-apps/6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10.3.1"
        );
        assert_eq!(s["hostname"], "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10");
        assert_eq!(s["process"]["args"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(s["process"]["cwd"], "/srv");
        let env: Vec<String> = serde_json::from_value(s["process"]["env"].clone()).unwrap();
        assert!(
            env.contains(&"PATH=/bin".to_string()),
            "config env overrides image env: {env:?}"
        );
        assert!(!env.contains(&"PATH=/usr/bin".to_string()));
        assert!(env.contains(&"HOME=/root".to_string()));
        assert!(env.contains(&"LOG_LEVEL=debug".to_string()));
        assert!(s["linux"]["resources"]["cpu"].get("cpus").is_some());
        let unpinned = build(&app(), &image(None), &[]);
        assert!(unpinned["linux"]["resources"]["cpu"].get("cpus").is_none());
    }

    #[test]
    fn eco_cmd_replaces_args() {
        let mut a = app();
        a.env.insert(ECO_CMD.into(), " \"/bin/sleep  30\" ".into());
        let s = build(&a, &image(None), &[]);
        assert_eq!(s["process"]["args"], json!(["/bin/sleep", "30"]));
        assert_eq!(eco_cmd_args("'a b'"), vec!["a", "b"]);
    }

    #[test]
    fn vnc_password_precedence() {
        let label = Some((EVE_VNC_PASSWORD, "from-image"));
        // Neither: no annotation.
        let s = build(&app(), &image(None), &[]);
        assert!(s["annotations"].get(EVE_VNC_PASSWORD).is_none());
        // Image label only.
        let s = build(&app(), &image(label), &[]);
        assert_eq!(s["annotations"][EVE_VNC_PASSWORD], "from-image");
        // Config wins over the label.
        let mut a = app();
        a.vnc.password = Some(Secret::new("from-config"));
        let s = build(&a, &image(label), &[]);
        assert_eq!(s["annotations"][EVE_VNC_PASSWORD], "from-config");
        assert_eq!(
            vnc_password(&a, &image(None)).as_deref(),
            Some("from-config")
        );
    }

    #[test]
    fn volumes_are_bound_three_ways() {
        let v = DataVolume {
            host_dir: PathBuf::from("/persist/vault/volumes/x#0"),
            mount: VolumeMount {
                uuid: "0b8e6c2a-1f3d-4a5b-9c7e-2d4f6a8b0c1e".into(),
                generation: 0,
                name: Some("data".into()),
                mount_dir: Some("/data".into()),
                read_only: true,
            },
        };
        let s = build(&app(), &image(None), &[v]);
        let binds: Vec<&Value> = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["type"] == "bind")
            .collect();
        let dests: Vec<&str> = binds
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(
            dests,
            [
                "/dev/eve/volumes/by-id/0",
                "/dev/eve/volumes/by-name/data",
                "/data"
            ]
        );
        assert!(binds.iter().all(|m| m["options"] == json!(["rbind", "ro"])));
    }

    #[test]
    fn a_network_joins_its_namespace_and_binds_its_files() {
        let t = tempfile::tempdir().unwrap();
        let net = NetworkSpec {
            netns: PathBuf::from("/run/netns/t"),
            resolv_conf: PathBuf::from("/run/outpost/net/t/resolv.conf"),
            hosts: PathBuf::from("/run/outpost/net/t/hosts"),
        };
        let (a, img) = (app(), image(None));
        let spec = build_spec(SpecInput {
            app: &a,
            image: &img,
            rootfs: t.path(),
            volumes: &[],
            network: Some(&net),
        })
        .unwrap();
        let s = serde_json::to_value(spec).unwrap();
        let ns: Vec<&Value> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] == "network")
            .collect();
        assert_eq!(ns.len(), 1);
        assert_eq!(ns[0]["path"], "/run/netns/t");
        let binds: Vec<(&str, &str)> = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["type"] == "bind")
            .map(|m| {
                (
                    m["destination"].as_str().unwrap(),
                    m["source"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            binds,
            [
                ("/etc/resolv.conf", "/run/outpost/net/t/resolv.conf"),
                ("/etc/hosts", "/run/outpost/net/t/hosts")
            ]
        );
        assert!(s["annotations"]
            .get(runsc::NETWORK_FLAG_ANNOTATION)
            .is_none());
        let plain = build(&app(), &image(None), &[]);
        let ns = plain["linux"]["namespaces"].as_array().unwrap();
        assert!(ns
            .iter()
            .any(|n| n["type"] == "network" && n.get("path").is_none()));

        // gVisor: the namespace through runsc's per-container network flag;
        // without interfaces the wrapper's --network=none stays.
        let mut g = app();
        g.runtime = RuntimeClass::Runsc;
        let spec = build_spec(SpecInput {
            app: &g,
            image: &img,
            rootfs: t.path(),
            volumes: &[],
            network: Some(&net),
        })
        .unwrap();
        let s = serde_json::to_value(spec).unwrap();
        let mode = s["annotations"][runsc::NETWORK_FLAG_ANNOTATION]
            .as_str()
            .unwrap();
        assert!(mode == "sandbox" || mode == "host", "{mode}");
        let plain = build(&g, &image(None), &[]);
        assert!(plain["annotations"]
            .get(runsc::NETWORK_FLAG_ANNOTATION)
            .is_none());
    }

    #[test]
    fn signals() {
        assert_eq!(stop_signal(&image(None)), libc::SIGINT);
        assert_eq!(parse_signal("TERM"), Some(libc::SIGTERM));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("SIGNOPE"), None);
    }
}
