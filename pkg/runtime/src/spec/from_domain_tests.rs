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

#[test]
fn limits_never_wrap_and_hostile_fields_are_refused() {
    let mut a = app();
    a.resources.memory_kib = outpost_api::validate_fields::MAX_MEMORY_KIB;
    assert_eq!(limits(&a).unwrap().0, 1 << 40);
    a.resources.vcpus = u32::MAX;
    assert_eq!(limits(&a).unwrap().1, 100_000 * i64::from(u32::MAX));
    for kib in [1 << 54, 1 << 63, u64::MAX] {
        a.resources.memory_kib = kib;
        let e = limits(&a).unwrap_err();
        assert!(
            e.contains(&format!("resources.memory_kib {kib} is too large")),
            "{e}"
        );
    }
    let img = image(None);
    let t = tempfile::tempdir().unwrap();
    let spec = |a: &AppConfig, vols: &[DataVolume]| {
        build_spec(SpecInput {
            app: a,
            image: &img,
            rootfs: t.path(),
            volumes: vols,
            network: None,
        })
        .map(drop)
        .unwrap_err()
        .to_string()
    };
    let e = spec(&a, &[]);
    assert!(e.contains("resources.memory_kib"), "{e}");
    let mut a = app();
    a.env.insert("A\nB".into(), "x".into());
    assert!(spec(&a, &[]).contains("env.A\\nB"), "{}", spec(&a, &[]));
    let vol = DataVolume {
        host_dir: t.path().into(),
        mount: VolumeMount {
            uuid: "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10".into(),
            generation: 0,
            name: None,
            mount_dir: Some("/proc/sys".into()),
            read_only: false,
        },
    };
    let e = spec(&app(), &[vol]);
    assert!(
        e.contains("volumes[0].mount_dir") && e.contains("/proc"),
        "{e}"
    );
}
