//! What changed between the config a container was built from and the
//! desired one, grouped by what it takes to apply it (EVE §6):
//!
//! * restart class (resources, env, runtime, VNC): a restart_counter change;
//! * interfaces: also applied by a restart_counter (or purge_counter)
//!   change, but a change of interfaces alone is a staged change reported
//!   as a notice, not a fault (EVE applies network changes at the restart);
//! * purge class (image, volumes): a purge_counter change, because the image
//!   is the content of the container volume and volumes are part of it;
//! * task ID (version, app number): either counter, through a replacement.
//!
//! Everything else (display name, stop timeout, restart policy, activate)
//! takes effect without touching the container.

use std::collections::BTreeSet;

use outpost_api::{AppConfig, AppInterface, VolumeMount};

/// The differences between an applied and a desired config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Restart-class changes, e.g. `resources.memory_kib 65536 → 131072`.
    pub restart: Vec<String>,
    /// Purge-class changes, e.g. `image a → b`, `volume data added`.
    pub purge: Vec<String>,
    /// Task-ID changes, e.g. `version 1 → 2`.
    pub task_id: Vec<String>,
    /// Interface changes, e.g. `interfaces (eth0, eth1 added)`.
    pub interfaces: Vec<String>,
}

/// A change waiting for a counter, as the app's status reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    /// Message naming the app, the fields and the counter.
    pub message: String,
    /// What applies it.
    pub condition: &'static str,
    /// Only interfaces changed: a notice that does not escalate.
    pub notice: bool,
}

impl Changes {
    /// Whether applying the changes needs a new container spec (a
    /// `Replace` rather than a `Restart`).
    pub fn needs_new_spec(&self) -> bool {
        !self.restart.is_empty() || !self.interfaces.is_empty()
    }

    /// The "needs restart"/"needs purge" message for `app`, if any change
    /// waits for a counter. Env values and VNC passwords are never shown.
    pub fn pending(&self, app: &AppConfig) -> Option<Pending> {
        if self.restart.is_empty() && self.purge.is_empty() {
            return self.interfaces.first().map(|itf| Pending {
                message: format!(
                    "{}: {itf} changed; applied at the next restart \
                     (change restart_counter or purge_counter)",
                    who(app)
                ),
                condition: "restart_counter or purge_counter change",
                notice: true,
            });
        }
        let mut parts = Vec::new();
        if !self.restart.is_empty() || !self.interfaces.is_empty() {
            let fields: Vec<&str> = self
                .restart
                .iter()
                .chain(&self.interfaces)
                .map(String::as_str)
                .collect();
            parts.push(format!(
                "needs restart: {} changed; change restart_counter to apply",
                fields.join(", ")
            ));
        }
        if !self.purge.is_empty() {
            parts.push(format!(
                "needs purge: {} changed; change purge_counter to apply",
                self.purge.join(", ")
            ));
        }
        let condition = if self.purge.is_empty() {
            "restart_counter or purge_counter change"
        } else {
            "purge_counter change"
        };
        Some(Pending {
            message: format!("{}: {}", who(app), parts.join("; ")),
            condition,
            notice: false,
        })
    }
}

/// `app NAME (UUID)`, how messages name an app.
pub(crate) fn who(app: &AppConfig) -> String {
    format!("app {} ({})", app.display_name, app.uuid)
}

/// Compares the config a container was built from with the desired one.
pub(crate) fn changes(applied: &AppConfig, desired: &AppConfig) -> Changes {
    let mut c = Changes::default();
    let (a, d) = (&applied.resources, &desired.resources);
    if a.memory_kib != d.memory_kib {
        c.restart.push(format!(
            "resources.memory_kib {} → {}",
            a.memory_kib, d.memory_kib
        ));
    }
    if a.vcpus != d.vcpus {
        c.restart
            .push(format!("resources.vcpus {} → {}", a.vcpus, d.vcpus));
    }
    if a.cpus != d.cpus {
        let show = |s: &Option<outpost_api::CpuSet>| {
            s.as_ref()
                .map_or_else(|| "unpinned".to_owned(), |c| c.to_string())
        };
        c.restart.push(format!(
            "resources.cpus {} → {}",
            show(&a.cpus),
            show(&d.cpus)
        ));
    }
    let keys: BTreeSet<&String> = applied.env.keys().chain(desired.env.keys()).collect();
    let env: Vec<&str> = keys
        .into_iter()
        .filter(|k| applied.env.get(*k) != desired.env.get(*k))
        .map(String::as_str)
        .collect();
    if !env.is_empty() {
        c.restart.push(format!("env {}", env.join(" ")));
    }
    if applied.runtime != desired.runtime {
        c.restart.push(format!(
            "runtime {} → {}",
            applied.runtime.as_str(),
            desired.runtime.as_str()
        ));
    }
    if applied.vnc != desired.vnc {
        c.restart.push("vnc".into());
    }
    if applied.interfaces != desired.interfaces {
        c.interfaces
            .push(interface_changes(&applied.interfaces, &desired.interfaces));
    }
    if applied.image != desired.image {
        c.purge
            .push(format!("image {} → {}", applied.image, desired.image));
    }
    c.purge
        .extend(volume_changes(&applied.volumes, &desired.volumes));
    if applied.version != desired.version {
        c.task_id
            .push(format!("version {} → {}", applied.version, desired.version));
    }
    if applied.app_num != desired.app_num {
        c.task_id
            .push(format!("app_num {} → {}", applied.app_num, desired.app_num));
    }
    c
}

/// `interfaces (eth0, eth1 added)`: which of the app's interfaces (named
/// as inside the app) differ.
fn interface_changes(applied: &[AppInterface], desired: &[AppInterface]) -> String {
    let n = applied.len().max(desired.len());
    let which: Vec<String> = (0..n)
        .filter_map(|i| match (applied.get(i), desired.get(i)) {
            (Some(a), Some(d)) if a != d => Some(format!("eth{i}")),
            (None, Some(_)) => Some(format!("eth{i} added")),
            (Some(_), None) => Some(format!("eth{i} removed")),
            _ => None,
        })
        .collect();
    format!("interfaces ({})", which.join(", "))
}

fn volume_changes(applied: &[VolumeMount], desired: &[VolumeMount]) -> Vec<String> {
    let label = |v: &VolumeMount| match &v.name {
        Some(n) => format!("volume {n} ({})", v.uuid),
        None => format!("volume {}", v.uuid),
    };
    let mut out = Vec::new();
    for d in desired {
        match applied.iter().find(|a| a.uuid == d.uuid) {
            None => out.push(format!("{} added", label(d))),
            Some(a) if a != d => out.push(format!("{} {}", label(d), fields(a, d))),
            Some(_) => {}
        }
    }
    for a in applied {
        if !desired.iter().any(|d| d.uuid == a.uuid) {
            out.push(format!("{} removed", label(a)));
        }
    }
    if out.is_empty() && applied != desired {
        out.push("volumes order".into());
    }
    out
}

fn fields(a: &VolumeMount, d: &VolumeMount) -> String {
    let mut f = Vec::new();
    if a.generation != d.generation {
        f.push("generation");
    }
    if a.name != d.name {
        f.push("name");
    }
    if a.mount_dir != d.mount_dir {
        f.push("mount_dir");
    }
    if a.read_only != d.read_only {
        f.push("read_only");
    }
    format!("({})", f.join(", "))
}

/// The config a non-purging (re)creation applies: `desired`, but with the
/// image and volumes of the existing container volume (`applied`), since
/// those change only with a purge.
pub(crate) fn without_purge_changes(desired: &AppConfig, applied: Option<&AppConfig>) -> AppConfig {
    let mut target = desired.clone();
    if let Some(applied) = applied {
        target.image.clone_from(&applied.image);
        target.volumes.clone_from(&applied.volumes);
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_api::{CpuSet, RuntimeClass, Secret};

    fn base() -> AppConfig {
        serde_json::from_value(serde_json::json!({
            "uuid": "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10",
            "version": "1",
            "display_name": "gw",
            "app_num": 1,
            "image": "hello:1",
            "env": {"A": "1", "SECRET": "hunter2"},
            "volumes": [{"uuid": "0b8e6c2a-1f3d-4a5b-9c7e-2d4f6a8b0c1e", "name": "data", "mount_dir": "/data"}],
        }))
        .unwrap()
    }

    #[test]
    fn each_field_lands_in_its_class() {
        type Edit = fn(&mut AppConfig);
        let cases: [(Edit, &str, &str); 13] = [
            (
                |a| a.resources.memory_kib = 4096,
                "restart",
                "resources.memory_kib 65536 → 4096",
            ),
            (
                |a| a.resources.vcpus = 2,
                "restart",
                "resources.vcpus 1 → 2",
            ),
            (
                |a| a.resources.cpus = Some(CpuSet::new(vec![1])),
                "restart",
                "resources.cpus unpinned → 1",
            ),
            (
                |a| {
                    a.env.insert("SECRET".into(), "x".into());
                },
                "restart",
                "env SECRET",
            ),
            (
                |a| {
                    a.env.remove("A");
                },
                "restart",
                "env A",
            ),
            (
                |a| a.runtime = RuntimeClass::Runsc,
                "restart",
                "runtime runc → runsc",
            ),
            (
                |a| a.vnc.password = Some(Secret::new("pw")),
                "restart",
                "vnc",
            ),
            (
                |a| {
                    a.interfaces = serde_json::from_value(serde_json::json!([
                        {"network": "0b8e6c2a-1f3d-4a5b-9c7e-2d4f6a8b0c1e"}
                    ]))
                    .unwrap()
                },
                "interfaces",
                "interfaces (eth0 added)",
            ),
            (
                |a| a.image = "hello:2".into(),
                "purge",
                "image hello:1 → hello:2",
            ),
            (
                |a| a.volumes[0].read_only = true,
                "purge",
                "volume data (0b8e6c2a-1f3d-4a5b-9c7e-2d4f6a8b0c1e) (read_only)",
            ),
            (
                |a| a.volumes.clear(),
                "purge",
                "volume data (0b8e6c2a-1f3d-4a5b-9c7e-2d4f6a8b0c1e) removed",
            ),
            (|a| a.version = "2".into(), "task_id", "version 1 → 2"),
            (|a| a.app_num = 7, "task_id", "app_num 1 → 7"),
        ];
        for (edit, class, want) in cases {
            let mut d = base();
            edit(&mut d);
            let c = changes(&base(), &d);
            let got = match class {
                "restart" => &c.restart,
                "purge" => &c.purge,
                "interfaces" => &c.interfaces,
                _ => &c.task_id,
            };
            assert_eq!(got, &vec![want.to_owned()], "{c:?}");
            let n = c.restart.len() + c.purge.len() + c.task_id.len() + c.interfaces.len();
            assert_eq!(n, 1, "{c:?}");
        }
    }

    #[test]
    fn live_fields_are_not_changes() {
        let mut d = base();
        d.display_name = "other".into();
        d.activate = false;
        d.stop_timeout = std::time::Duration::from_secs(1);
        d.restart_policy.max_attempts = 1;
        d.restart_counter = 9;
        d.purge_counter = 9;
        assert_eq!(changes(&base(), &d), Changes::default());
    }

    #[test]
    fn messages_name_the_app_the_fields_and_the_counter() {
        let mut d = base();
        d.resources.memory_kib = 131072;
        d.env.insert("SECRET".into(), "s3cr3t".into());
        let p = changes(&base(), &d).pending(&d).unwrap();
        let (msg, cond) = (p.message, p.condition);
        assert!(!p.notice);
        assert_eq!(
            msg,
            "app gw (6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10): needs restart: \
             resources.memory_kib 65536 → 131072, env SECRET changed; change restart_counter to apply"
        );
        assert!(!msg.contains("s3cr3t") && !msg.contains("hunter2"));
        assert_eq!(cond, "restart_counter or purge_counter change");
        d.image = "hello:2".into();
        let p = changes(&base(), &d).pending(&d).unwrap();
        let (msg, cond) = (p.message, p.condition);
        assert!(
            msg.ends_with(
                "needs purge: image hello:1 → hello:2 changed; change purge_counter to apply"
            ),
            "{msg}"
        );
        assert_eq!(cond, "purge_counter change");
        assert!(changes(&base(), &base()).pending(&d).is_none());
    }

    #[test]
    fn an_interface_change_alone_is_a_notice_applied_at_the_next_restart() {
        let itf = |ip: &str| -> Vec<AppInterface> {
            serde_json::from_value(serde_json::json!([
                {"network": "0b8e6c2a-1f3d-4a5b-9c7e-2d4f6a8b0c1e", "ip": ip}
            ]))
            .unwrap()
        };
        let mut a = base();
        a.interfaces = itf("10.213.1.5");
        let mut d = a.clone();
        d.interfaces = itf("10.213.1.6");
        let c = changes(&a, &d);
        assert!(c.restart.is_empty() && c.needs_new_spec());
        let p = c.pending(&d).unwrap();
        assert!(p.notice);
        assert_eq!(
            p.message,
            "app gw (6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10): interfaces (eth0) changed; \
             applied at the next restart (change restart_counter or purge_counter)"
        );
        assert_eq!(p.condition, "restart_counter or purge_counter change");
        // With a resource change it is part of the "needs restart" error.
        d.resources.vcpus = 2;
        let p = changes(&a, &d).pending(&d).unwrap();
        assert!(!p.notice);
        assert!(
            p.message.ends_with(
                "needs restart: resources.vcpus 1 → 2, interfaces (eth0) changed; \
                 change restart_counter to apply"
            ),
            "{}",
            p.message
        );
        // Removing the interface is a change too.
        d.interfaces.clear();
        assert_eq!(changes(&a, &d).interfaces, ["interfaces (eth0 removed)"]);
    }

    #[test]
    fn a_non_purging_creation_keeps_image_and_volumes() {
        let mut d = base();
        d.image = "hello:2".into();
        d.volumes.clear();
        d.env.insert("B".into(), "2".into());
        let t = without_purge_changes(&d, Some(&base()));
        assert_eq!(t.image, "hello:1");
        assert_eq!(t.volumes, base().volumes);
        assert_eq!(t.env, d.env);
        assert_eq!(without_purge_changes(&d, None), d);
    }
}
