//! Size limits of an app entry, per field and for the whole entry.
//!
//! The agent keeps a decision record per app, and that record may hold up to
//! three copies of the app's config (`applied`, `target`, `failed_config`)
//! plus messages that list changed env names, volumes and images of two
//! configs. The store refuses a record over 1 MiB of JSON, so an entry is
//! bounded here, where the problem can still be reported on that entry
//! alone: [`MAX_APP_ENTRY_BYTES`] × 6 fits the store's bound (checked at
//! compile time in the agent). The per-field limits are generous for real
//! configs and give a precise path (`apps[1].env.BIG: value is 2000000
//! bytes, more than the limit of 32768`) before the whole-entry bound does.

use crate::config::AppConfig;
use crate::problem::{clip, Problem};

/// Largest app entry, measured as its JSON encoding: 128 KiB.
pub const MAX_APP_ENTRY_BYTES: usize = 128 * 1024;
/// Most `env` variables one app may set.
pub const MAX_ENV_VARS: usize = 256;
/// Longest `env` variable name, in bytes.
pub const MAX_ENV_NAME_BYTES: usize = 256;
/// Longest `env` value, in bytes: 32 KiB (Linux allows 128 KiB per `K=V`).
pub const MAX_ENV_VALUE_BYTES: usize = 32 * 1024;
/// Longest image reference, in bytes.
pub const MAX_IMAGE_BYTES: usize = 1024;
/// Most volumes one app may mount.
pub const MAX_VOLUMES: usize = 64;
/// Longest volume name, in bytes (a file name: Linux `NAME_MAX`).
pub const MAX_VOLUME_NAME_BYTES: usize = 255;
/// Longest volume `mount_dir`, in bytes.
pub const MAX_MOUNT_DIR_BYTES: usize = 1024;
/// Most network interfaces one app may have.
pub const MAX_INTERFACES: usize = 16;
/// Most port maps on one interface.
pub const MAX_PORT_MAPS: usize = 256;

/// Appends a problem for every field of `app` (at path `p`, e.g. `apps[1]`)
/// over its limit; when no field is, checks the whole entry against
/// [`MAX_APP_ENTRY_BYTES`]. Returns whether any size problem was found.
pub fn validate_app_sizes(app: &AppConfig, p: &str, out: &mut Vec<Problem>) -> bool {
    let before = out.len();
    let mut too = |path: String, what: &str, size: usize, max: usize| {
        out.push(Problem::new(
            path,
            format!("{what} is {size} bytes, more than the limit of {max}"),
        ));
    };
    if app.image.len() > MAX_IMAGE_BYTES {
        too(
            format!("{p}.image"),
            "the reference",
            app.image.len(),
            MAX_IMAGE_BYTES,
        );
    }
    for (k, v) in &app.env {
        let path = format!("{p}.env.{}", clip(k, MAX_ENV_NAME_BYTES));
        if k.len() > MAX_ENV_NAME_BYTES {
            too(path.clone(), "the name", k.len(), MAX_ENV_NAME_BYTES);
        }
        if v.len() > MAX_ENV_VALUE_BYTES {
            too(path, "value", v.len(), MAX_ENV_VALUE_BYTES);
        }
    }
    for (j, v) in app.volumes.iter().enumerate() {
        if let Some(name) = v
            .name
            .as_deref()
            .filter(|n| n.len() > MAX_VOLUME_NAME_BYTES)
        {
            too(
                format!("{p}.volumes[{j}].name"),
                "the name",
                name.len(),
                MAX_VOLUME_NAME_BYTES,
            );
        }
        if let Some(dir) = v
            .mount_dir
            .as_deref()
            .filter(|d| d.len() > MAX_MOUNT_DIR_BYTES)
        {
            too(
                format!("{p}.volumes[{j}].mount_dir"),
                "the path",
                dir.len(),
                MAX_MOUNT_DIR_BYTES,
            );
        }
    }
    let mut count = |field: String, n: usize, what: &str, max: usize| {
        if n > max {
            out.push(Problem::new(
                field,
                format!("{n} {what}, more than the limit of {max}"),
            ));
        }
    };
    count(format!("{p}.env"), app.env.len(), "variables", MAX_ENV_VARS);
    count(
        format!("{p}.volumes"),
        app.volumes.len(),
        "volumes",
        MAX_VOLUMES,
    );
    count(
        format!("{p}.interfaces"),
        app.interfaces.len(),
        "interfaces",
        MAX_INTERFACES,
    );
    for (j, itf) in app.interfaces.iter().enumerate().take(MAX_INTERFACES) {
        count(
            format!("{p}.interfaces[{j}].port_maps"),
            itf.port_maps.len(),
            "port maps",
            MAX_PORT_MAPS,
        );
    }
    if out.len() == before {
        let size = json_size(app);
        if size > MAX_APP_ENTRY_BYTES {
            out.push(Problem::new(
                p,
                format!(
                    "the entry is {size} bytes as JSON, more than the limit of \
                     {MAX_APP_ENTRY_BYTES}; make env values or lists shorter"
                ),
            ));
        }
    }
    out.len() != before
}

/// Length of `app`'s JSON encoding (what the agent's records hold), counted
/// without building it.
pub fn json_size(app: &AppConfig) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0 += data.len();
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Serialising plain strings, numbers and maps with string keys cannot fail.
    let _ = serde_json::to_writer(&mut c, app);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VolumeMount;
    use crate::network::{AppInterface, PortMap};
    use crate::test_apps::app;

    /// Every problem of a config with `a` at position 1 (after a good app).
    fn problems(a: AppConfig) -> Vec<String> {
        let mut first = app();
        first.uuid = "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a11".into();
        first.display_name = "first".into();
        first.app_num = 2;
        crate::test_apps::problems(vec![first, a])
    }

    fn volume(n: usize) -> VolumeMount {
        VolumeMount {
            uuid: format!("6f1c2a4e-9b7d-4c1e-8a52-{n:012x}"),
            generation: 0,
            name: None,
            mount_dir: None,
            read_only: false,
        }
    }

    #[test]
    fn an_env_value_over_the_limit_names_the_variable() {
        let mut a = app();
        a.env.insert("BIG".into(), "x".repeat(2_000_000));
        a.env.insert("OK".into(), "x".repeat(MAX_ENV_VALUE_BYTES));
        assert_eq!(
            problems(a),
            ["apps[1].env.BIG: value is 2000000 bytes, more than the limit of 32768"]
        );
    }

    #[test]
    fn an_env_name_over_the_limit_is_shown_cut() {
        let mut a = app();
        let long = "K".repeat(MAX_ENV_NAME_BYTES + 1);
        a.env.insert(long, "v".into());
        a.env.insert("K".repeat(MAX_ENV_NAME_BYTES), "v".into());
        let got = problems(a);
        let cut = "K".repeat(MAX_ENV_NAME_BYTES);
        assert_eq!(
            got,
            [format!(
                "apps[1].env.{cut}…: the name is 257 bytes, more than the limit of 256"
            )]
        );
    }

    #[test]
    fn too_many_env_variables() {
        let mut a = app();
        for i in 0..=MAX_ENV_VARS {
            a.env.insert(format!("V{i}"), String::new());
        }
        assert_eq!(
            problems(a),
            ["apps[1].env: 257 variables, more than the limit of 256"]
        );
    }

    #[test]
    fn an_image_reference_over_the_limit() {
        let mut a = app();
        a.image = format!("{}:1", "r".repeat(MAX_IMAGE_BYTES));
        assert_eq!(
            problems(a),
            ["apps[1].image: the reference is 1026 bytes, more than the limit of 1024"]
        );
    }

    #[test]
    fn volume_limits() {
        let mut a = app();
        a.volumes = (0..=MAX_VOLUMES).map(volume).collect();
        a.volumes[3].name = Some("n".repeat(MAX_VOLUME_NAME_BYTES + 1));
        a.volumes[4].mount_dir = Some(format!("/{}", "d".repeat(MAX_MOUNT_DIR_BYTES)));
        assert_eq!(
            problems(a),
            [
                "apps[1].volumes[3].name: the name is 256 bytes, more than the limit of 255",
                "apps[1].volumes[4].mount_dir: the path is 1025 bytes, more than the limit of 1024",
                "apps[1].volumes: 65 volumes, more than the limit of 64",
            ]
        );
    }

    #[test]
    fn interface_limits() {
        let itf = |ports: usize| AppInterface {
            network: "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9aff".into(),
            mac: None,
            ip: None,
            port_maps: (0..ports)
                .map(|i| PortMap {
                    host_port: 1000 + i as u16,
                    app_port: 80,
                    protocol: Default::default(),
                })
                .collect(),
            bandwidth_kbps: None,
        };
        let mut a = app();
        a.interfaces = vec![itf(MAX_PORT_MAPS + 1)];
        let got = problems(a);
        assert!(
            got.contains(
                &"apps[1].interfaces[0].port_maps: 257 port maps, more than the limit of 256"
                    .to_string()
            ),
            "{got:#?}"
        );
        let mut a = app();
        a.interfaces = (0..=MAX_INTERFACES).map(|_| itf(0)).collect();
        let got = problems(a);
        assert_eq!(
            got,
            ["apps[1].interfaces: 17 interfaces, more than the limit of 16"],
            "an app over the interface limit gets no per-interface checks"
        );
    }

    #[test]
    fn an_entry_over_the_limit_with_every_field_in_bounds() {
        let mut a = app();
        for i in 0..5 {
            a.env
                .insert(format!("V{i}"), "x".repeat(MAX_ENV_VALUE_BYTES));
        }
        let size = json_size(&a);
        assert!(size > MAX_APP_ENTRY_BYTES);
        assert_eq!(
            problems(a),
            [format!(
                "apps[1]: the entry is {size} bytes as JSON, more than the limit of 131072; \
                 make env values or lists shorter"
            )]
        );
    }

    #[test]
    fn the_entry_size_counts_json_escapes() {
        // A control character takes 6 bytes in JSON (`\u0001`).
        let mut a = app();
        a.env.insert("V".into(), "\u{1}".repeat(30_000));
        for i in 0..3 {
            a.env.insert(format!("W{i}"), "\u{1}".repeat(30_000));
        }
        let size = json_size(&a);
        assert_eq!(size, serde_json::to_vec(&a).unwrap().len());
        assert!(size > 4 * 6 * 30_000, "{size}");
        assert_eq!(problems(a).len(), 1);
    }

    #[test]
    fn an_entry_at_the_limits_is_accepted() {
        let mut a = app();
        for i in 0..3 {
            a.env
                .insert(format!("V{i}"), "x".repeat(MAX_ENV_VALUE_BYTES));
        }
        assert!(json_size(&a) <= MAX_APP_ENTRY_BYTES);
        assert!(problems(a).is_empty());
    }
}
