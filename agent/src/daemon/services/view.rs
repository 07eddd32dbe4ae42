//! The supervisor's published view and the `services` check built from it.

use outpost_api::ServiceStatus;

use crate::admin::types::Check;

/// What the supervisor last saw.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ServicesView {
    /// System containerd socket.
    pub socket: String,
    /// Declared-services manifest path.
    pub manifest: String,
    /// False until the manifest was read; also false when it is missing.
    pub manifest_found: bool,
    /// Services the image declares.
    pub declared: Vec<String>,
    /// Every container in `services.linuxkit`, plus declared ones missing.
    pub services: Vec<ServiceStatus>,
    /// True once the last observation succeeded.
    pub connected: bool,
    /// Why the last observation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the manifest could not be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_error: Option<String>,
    /// Observations made so far (0: none yet).
    pub observations: u64,
    /// System task events dropped because the supervisor fell behind (the
    /// next observation resyncs).
    #[serde(default)]
    pub events_dropped: u64,
}

impl ServicesView {
    /// Service `name`.
    pub fn find(&self, name: &str) -> Option<&ServiceStatus> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Known service names closest to `key` (for "did you mean").
    pub fn suggest(&self, key: &str) -> Vec<String> {
        let mut scored: Vec<(usize, &str)> = self
            .services
            .iter()
            .map(|s| (strsim::levenshtein(key, &s.name), s.name.as_str()))
            .filter(|(d, n)| *d <= (n.len() / 2).max(2) || n.contains(key))
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(3)
            .map(|(_, n)| n.to_owned())
            .collect()
    }

    /// `outpost check`'s `services` check: every declared service runs.
    pub fn check(&self) -> Check {
        let (ok, detail) = if let Some(e) = &self.manifest_error {
            (false, e.clone())
        } else if self.declared.is_empty() {
            // Nothing declared (e.g. a development root): nothing to keep running.
            let seen = if self.connected {
                format!("{} services seen", self.services.len())
            } else {
                format!("system containerd at {} not reachable", self.socket)
            };
            let why = if self.manifest_found {
                "empty manifest".to_owned()
            } else {
                format!("no {}", self.manifest)
            };
            (true, format!("no services declared ({why}); {seen}"))
        } else if !self.connected {
            (
                false,
                format!(
                    "system containerd at {} not reachable: {}",
                    self.socket,
                    self.error.as_deref().unwrap_or("not observed yet")
                ),
            )
        } else {
            let down: Vec<String> = self
                .services
                .iter()
                .filter(|s| s.declared && !s.is_running())
                .map(|s| format!("{} {}", s.name, s.state))
                .collect();
            if down.is_empty() {
                (
                    true,
                    format!("{} declared services running", self.declared.len()),
                )
            } else {
                (
                    false,
                    format!(
                        "not running: {}; the agent restarts them with backoff, see `outpost svc status NAME`",
                        down.join(", ")
                    ),
                )
            }
        };
        Check {
            name: "services".into(),
            ok,
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, state: &str) -> ServiceStatus {
        ServiceStatus {
            name: name.into(),
            state: state.into(),
            declared: true,
            pid: 0,
            started_at: None,
            exit_status: None,
            memory_bytes: None,
            cpu_ns: None,
            restarts: 0,
            next_restart_ms: None,
            error: None,
        }
    }

    #[test]
    fn the_check_passes_only_when_every_declared_service_runs() {
        let base = ServicesView {
            socket: "/run/containerd/containerd.sock".into(),
            manifest: "/etc/outpost/services.json".into(),
            ..ServicesView::default()
        };
        // Nothing declared, no system containerd (a development root).
        let v = ServicesView {
            error: Some("transport error".into()),
            ..base.clone()
        };
        assert!(v.check().ok, "{:?}", v.check());
        // Declared but unreachable.
        let v = ServicesView {
            manifest_found: true,
            declared: vec!["dhcpcd".into()],
            error: Some("transport error".into()),
            ..base.clone()
        };
        assert!(!v.check().ok);
        // Declared, one down.
        let mut v = ServicesView {
            manifest_found: true,
            declared: vec!["dhcpcd".into(), "ntpd".into()],
            connected: true,
            services: vec![status("dhcpcd", "RUNNING"), status("ntpd", "STOPPED")],
            ..base.clone()
        };
        let c = v.check();
        assert!(!c.ok && c.detail.contains("ntpd STOPPED"), "{c:?}");
        // An undeclared one down does not count.
        v.services[1].declared = false;
        v.declared.pop();
        assert!(v.check().ok);
        // A broken manifest fails.
        let v = ServicesView {
            manifest_error: Some("services manifest: bad".into()),
            ..base
        };
        assert!(!v.check().ok);
    }

    #[test]
    fn suggestions_are_close_names() {
        let v = ServicesView {
            services: vec![status("dhcpcd", "RUNNING"), status("sshd", "RUNNING")],
            ..ServicesView::default()
        };
        assert_eq!(v.suggest("dhcp"), ["dhcpcd"]);
        assert_eq!(v.suggest("sshdd"), ["sshd"]);
        assert!(v.suggest("zzzzzzzz").is_empty());
    }
}
