//! The declarative device configuration an operator or controller writes.
//!
//! Mirrors EVE's `DomainConfig` for native containers, trimmed to what a
//! container app needs. Every struct rejects unknown fields: a typo in a
//! config is an error on that object, never silently ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::duration_text;
pub use crate::secret::Secret;

/// The whole desired state of one device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Increases with every change the controller makes; an older generation
    /// than the one applied is a replay and is refused by the config sources.
    pub generation: u64,
    /// The applications that should exist on the device.
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    /// Credentials and trust for the registries images are pulled from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<crate::registry::RegistryConfig>,
    /// Network instances the apps' interfaces attach to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<crate::network::NetworkConfig>,
    /// The base OS image the device should run (A/B update), if the
    /// controller names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_os: Option<crate::baseos::BaseOsConfig>,
}

impl DeviceConfig {
    /// The app with this UUID, if the config has it.
    pub fn app(&self, uuid: &str) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.uuid == uuid)
    }
}

/// One application instance (EVE: `AppInstanceConfig` + `DomainConfig`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// Stable identity of the app; also its hostname and container volume ID.
    pub uuid: String,
    /// The controller's version string of this app's config; part of the task ID.
    pub version: String,
    /// Human name shown by the CLI and accepted wherever an app is named.
    pub display_name: String,
    /// Small number unique on the device; part of the task ID `<uuid>.<version>.<app_num>`.
    pub app_num: u32,
    /// false: the app is halted and its volumes kept; true: it runs.
    #[serde(default = "default_true")]
    pub activate: bool,
    /// Image reference (`registry/repo:tag` or `…@sha256:…`).
    pub image: String,
    /// Which OCI runtime runs the app's task.
    #[serde(default)]
    pub runtime: RuntimeClass,
    /// cgroup limits.
    #[serde(default)]
    pub resources: Resources,
    /// Extra environment `KEY: value`; `EVE_ECO_CMD` replaces the image's command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Data volumes bind-mounted into the app.
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    /// Any change (not only an increase) takes the app down and up again.
    #[serde(default)]
    pub restart_counter: u64,
    /// Any change takes the app down, recreates its volumes, and brings it up.
    #[serde(default)]
    pub purge_counter: u64,
    /// What to do when the app's task exits on its own.
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// Grace period between the stop signal and SIGKILL.
    #[serde(default = "default_stop_timeout", with = "duration_text")]
    pub stop_timeout: Duration,
    /// VNC console settings; the password is a secret.
    #[serde(default)]
    pub vnc: VncConfig,
    /// Virtual interfaces on network instances; none keeps an isolated namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<crate::network::AppInterface>,
}

fn default_true() -> bool {
    true
}

/// Default grace period between the stop signal and SIGKILL.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

fn default_stop_timeout() -> Duration {
    DEFAULT_STOP_TIMEOUT
}

impl AppConfig {
    /// Task and container ID, also the cgroup leaf: `<uuid>.<version>.<app_num>`.
    pub fn task_id(&self) -> String {
        format!("{}.{}.{}", self.uuid, self.version, self.app_num)
    }

    /// The part of the config that needs a restart-counter change to take effect.
    pub fn restart_sensitive(&self) -> (&Resources, &BTreeMap<String, String>, RuntimeClass) {
        (&self.resources, &self.env, self.runtime)
    }
}

/// The OCI runtime class of an app.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeClass {
    /// runc through the `io.containerd.runc.v2` shim.
    #[default]
    Runc,
    /// gVisor's runsc through the same shim with runsc as the binary.
    Runsc,
}

impl RuntimeClass {
    /// The name used in configs and status.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeClass::Runc => "runc",
            RuntimeClass::Runsc => "runsc",
        }
    }
}

/// cgroup limits of one app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Memory limit in KiB (no overhead is added for containers).
    #[serde(default = "default_memory_kib")]
    pub memory_kib: u64,
    /// CPU quota in whole CPUs: quota = vcpus × 100 ms per 100 ms period.
    #[serde(default = "default_vcpus")]
    pub vcpus: u32,
    /// Optional CPU pinning (`[0, 1]` or `"0-1,3"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<CpuSet>,
}

fn default_memory_kib() -> u64 {
    64 * 1024
}

fn default_vcpus() -> u32 {
    1
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            memory_kib: default_memory_kib(),
            vcpus: default_vcpus(),
            cpus: None,
        }
    }
}

/// A set of CPU numbers, kept sorted and without duplicates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuSet(Vec<u32>);

impl CpuSet {
    /// Builds a set from any list of CPU numbers.
    pub fn new(mut cpus: Vec<u32>) -> Self {
        cpus.sort_unstable();
        cpus.dedup();
        CpuSet(cpus)
    }

    /// The CPUs, ascending.
    pub fn cpus(&self) -> &[u32] {
        &self.0
    }

    /// Parses the cgroup cpuset syntax `0-2,4`. CPU numbers must be below
    /// [`MAX_CPUS`], so the result holds at most that many CPUs however
    /// many (overlapping) ranges the text repeats.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut set = [false; MAX_CPUS as usize];
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let num = |s: &str| {
                let n = s
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| format!("{s:?} is not a CPU number"))?;
                if n >= MAX_CPUS {
                    return Err(format!(
                        "CPU {n} is beyond the {MAX_CPUS} a device may have"
                    ));
                }
                Ok(n)
            };
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let n = num(part)?;
                    (n, n)
                }
            };
            if a > b {
                return Err(format!("range {part:?} runs backwards"));
            }
            set[a as usize..=b as usize].fill(true);
        }
        Ok(CpuSet((0..MAX_CPUS).filter(|c| set[*c as usize]).collect()))
    }
}

/// CPU numbers a config may name are below this (also the most `vcpus`).
pub const MAX_CPUS: u32 = 1024;

impl fmt::Display for CpuSet {
    /// The cgroup cpuset syntax, e.g. `0,1,3` (what the OCI spec's `cpus` takes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

impl Serialize for CpuSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CpuSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            List(Vec<u32>),
            Text(String),
        }
        match Form::deserialize(d)? {
            Form::List(v) => Ok(CpuSet::new(v)),
            Form::Text(t) => CpuSet::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// A data volume of an app: a directory `<volumes>/<uuid>#<generation>`
/// bind-mounted at `mount_dir` and at `/dev/eve/volumes/by-id/<n>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeMount {
    /// Volume identity.
    pub uuid: String,
    /// Controller's generation of the volume (part of its directory name).
    #[serde(default)]
    pub generation: u64,
    /// Optional name: also mounted at `/dev/eve/volumes/by-name/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Absolute path inside the app where the volume appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_dir: Option<String>,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// When an exited task is started again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartMode {
    /// Restart whatever the exit status (with backoff).
    #[default]
    Always,
    /// Restart only after a non-zero exit.
    OnFailure,
    /// Never restart: exit 0 → HALTED, non-zero → BROKEN (EVE's behaviour).
    Never,
}

/// Restart policy with exponential backoff (an Outpost improvement over EVE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    /// When to restart.
    #[serde(default)]
    pub mode: RestartMode,
    /// After this many consecutive failed restarts the app is FAILED (0 = never give up).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

fn default_max_attempts() -> u32 {
    10
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            mode: RestartMode::default(),
            max_attempts: default_max_attempts(),
        }
    }
}

/// VNC console settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VncConfig {
    /// Whether the console is wanted.
    #[serde(default)]
    pub enabled: bool,
    /// Password; when absent the image's `org.lfedge.eve.vnc_password` label applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpusets() {
        assert_eq!(CpuSet::parse("0-2,4").unwrap().cpus(), &[0, 1, 2, 4]);
        assert_eq!(CpuSet::new(vec![3, 1, 1]).to_string(), "1,3");
        assert!(CpuSet::parse("2-1").is_err());
        assert!(CpuSet::parse("x").is_err());
        assert_eq!(
            CpuSet::parse("1023").unwrap().cpus(),
            &[MAX_CPUS - 1],
            "the last CPU a device may have"
        );
        assert!(CpuSet::parse("0-1024")
            .unwrap_err()
            .contains("beyond the 1024"));
        assert!(CpuSet::parse("4294967295").is_err());
    }

    /// A 140 KB range list (20,000 ranges of 1,024 CPUs each) once expanded
    /// into a list of 20 million entries (+312 MiB); it is a set of at most
    /// `MAX_CPUS` now, however the text repeats.
    #[test]
    fn repeated_ranges_stay_a_bounded_set() {
        let text = vec!["0-1023"; 20_000].join(",");
        assert!(text.len() > 130_000);
        let set = CpuSet::parse(&text).unwrap();
        assert_eq!(set.cpus().len(), MAX_CPUS as usize);
        assert_eq!(set.cpus().first(), Some(&0));
        assert_eq!(set.cpus().last(), Some(&(MAX_CPUS - 1)));
    }
}
