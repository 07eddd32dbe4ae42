//! Registry access for image pulls: credentials and trust per registry host.

use serde::{Deserialize, Serialize};

use crate::problem::Problem;
use crate::secret::Secret;

/// How to reach one registry (`host[:port]` as written in image references).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// `registry.example:5000`, matched exactly against the reference's host.
    pub host: String,
    /// User for Basic auth or the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password or token (never logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Extra CA certificates (PEM) that sign the registry's TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// Plain HTTP (lab registries; loopback registries always use it).
    #[serde(default)]
    pub plain_http: bool,
}

/// Problems of the `registries` list, with paths.
pub fn validate_registries(regs: &[RegistryConfig], out: &mut Vec<Problem>) {
    let mut seen = std::collections::BTreeMap::new();
    for (i, r) in regs.iter().enumerate() {
        let p = format!("registries[{i}]");
        if r.host.is_empty() || r.host.contains('/') || r.host.chars().any(char::is_whitespace) {
            out.push(Problem::new(
                format!("{p}.host"),
                format!("{:?} is not host[:port]", r.host),
            ));
        }
        if let Some(first) = seen.insert(r.host.as_str(), i) {
            out.push(Problem::new(
                format!("{p}.host"),
                format!("{} is already configured by registries[{first}]", r.host),
            ));
            seen.insert(r.host.as_str(), first);
        }
        if r.username.is_some() != r.password.is_some() {
            out.push(Problem::new(
                format!("{p}.password"),
                "username and password go together".to_string(),
            ));
        }
        if let Some(ca) = &r.ca_pem {
            if !ca.contains("-----BEGIN CERTIFICATE-----") {
                out.push(Problem::new(
                    format!("{p}.ca_pem"),
                    "is not a PEM certificate".to_string(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_problems_have_paths() {
        let r = |host: &str| RegistryConfig {
            host: host.into(),
            username: Some("u".into()),
            password: None,
            ca_pem: Some("nope".into()),
            plain_http: false,
        };
        let mut out = Vec::new();
        validate_registries(&[r("a:5000"), r("a:5000"), r("x/y")], &mut out);
        let text: Vec<String> = out.iter().map(|p| p.to_string()).collect();
        assert!(
            text.iter()
                .any(|t| t.starts_with("registries[1].host: a:5000 is already configured")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.starts_with("registries[2].host")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.starts_with("registries[0].password")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.starts_with("registries[0].ca_pem")),
            "{text:?}"
        );
    }
}
