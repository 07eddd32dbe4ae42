//! The services the device image declares, and which observed services
//! the supervisor may restart (only those: never anything else in
//! `services.linuxkit`).

use std::collections::BTreeSet;
use std::path::Path;

use outpost_runtime::services::ServiceInfo;
use outpost_runtime::task::TaskStatus;

/// Most services a manifest may name (a device image has a handful).
pub const MAX_DECLARED: usize = 256;
/// Largest manifest read.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 10;

/// Why the manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Reading it failed (other than "not there").
    #[error("reading the services manifest {path}: {source}")]
    Read {
        /// Manifest path.
        path: String,
        /// I/O error.
        source: std::io::Error,
    },
    /// It is not a list of service names.
    #[error("services manifest {path}: {problem} (expected a JSON list of service names, as outpost-mkimage writes)")]
    Invalid {
        /// Manifest path.
        path: String,
        /// What is wrong.
        problem: String,
    },
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Entry {
    Name(String),
    Named { name: String },
}

/// Reads the manifest: a JSON list of names (`["dhcpcd"]`) or of objects
/// with a `name`. A missing file declares nothing (`Ok(None)`).
pub fn load(path: &Path) -> Result<Option<BTreeSet<String>>, ManifestError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes));
    match read {
        Ok(_) if bytes.len() as u64 > MAX_MANIFEST_BYTES => {
            return Err(ManifestError::Invalid {
                path: path.display().to_string(),
                problem: format!("larger than {MAX_MANIFEST_BYTES} bytes"),
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ManifestError::Read {
                path: path.display().to_string(),
                source,
            })
        }
    }
    parse(&bytes)
        .map(Some)
        .map_err(|problem| ManifestError::Invalid {
            path: path.display().to_string(),
            problem,
        })
}

/// Parses manifest bytes (see [`load`]).
pub fn parse(bytes: &[u8]) -> Result<BTreeSet<String>, String> {
    let entries: Vec<Entry> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if entries.len() > MAX_DECLARED {
        return Err(format!(
            "{} services, at most {MAX_DECLARED}",
            entries.len()
        ));
    }
    let mut out = BTreeSet::new();
    for e in entries {
        let name = match e {
            Entry::Name(n) | Entry::Named { name: n } => n,
        };
        if name.is_empty() || name.len() > 76 || name.contains('/') {
            return Err(format!("bad service name {name:?}"));
        }
        out.insert(name);
    }
    Ok(out)
}

/// True when the service's task is down: exited, or a container without
/// a task. A task being created or in an unknown state is left alone.
pub fn is_down(s: &ServiceInfo) -> bool {
    matches!(s.status, None | Some(TaskStatus::Stopped))
}

/// The observed services the supervisor should restart: declared and down.
pub fn to_restart<'a>(declared: &BTreeSet<String>, observed: &'a [ServiceInfo]) -> Vec<&'a str> {
    observed
        .iter()
        .filter(|s| declared.contains(&s.name) && is_down(s))
        .map(|s| s.name.as_str())
        .collect()
}

/// Declared services that have no container at all (nothing to restart
/// from: init did not create them).
pub fn missing<'a>(declared: &'a BTreeSet<String>, observed: &[ServiceInfo]) -> Vec<&'a str> {
    declared
        .iter()
        .filter(|d| !observed.iter().any(|s| &s.name == *d))
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, status: Option<TaskStatus>) -> ServiceInfo {
        ServiceInfo {
            name: name.into(),
            image: String::new(),
            status,
            pid: 0,
            started_at: None,
            exit_status: None,
            exited_at: None,
            memory_bytes: None,
            cpu_ns: None,
            stdout: String::new(),
            stderr: String::new(),
            terminal: false,
        }
    }

    #[test]
    fn only_declared_services_that_are_down_are_restarted() {
        let declared = parse(br#"["dhcpcd", {"name": "ntpd"}, "sshd"]"#).unwrap();
        let observed = [
            svc("dhcpcd", Some(TaskStatus::Stopped)),
            svc("ntpd", Some(TaskStatus::Running)),
            svc("sshd", None),
            svc("foreign", Some(TaskStatus::Stopped)),
            svc("foreign2", None),
            svc("created", Some(TaskStatus::Created)),
        ];
        assert_eq!(to_restart(&declared, &observed), ["dhcpcd", "sshd"]);
        assert!(missing(&declared, &observed).is_empty());
        let declared = parse(br#"["dhcpcd", "gone"]"#).unwrap();
        assert_eq!(missing(&declared, &observed), ["gone"]);
    }

    #[test]
    fn manifest_problems_are_refused() {
        assert!(parse(b"{}").is_err());
        assert!(parse(br#"["a/b"]"#).is_err());
        assert!(parse(br#"[""]"#).is_err());
        let many: Vec<String> = (0..=MAX_DECLARED).map(|i| format!("s{i}")).collect();
        assert!(parse(&serde_json::to_vec(&many).unwrap()).is_err());
        assert_eq!(load(Path::new("/nonexistent/services.json")).unwrap(), None);
    }
}
