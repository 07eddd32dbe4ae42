//! Executing CNI plugins per the CNI 1.0.0 spec: environment
//! (`CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_PATH`,
//! `CNI_ARGS`), network config on stdin, result or error JSON on stdout.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::error::NetError;

/// Where Debian installs the plugins.
pub const DEFAULT_CNI_PATH: &str = "/usr/lib/cni";
/// The CNI spec version of the generated configs.
pub const CNI_VERSION: &str = "1.0.0";

/// One plugin invocation's identity.
#[derive(Clone, Copy, Debug)]
pub struct Invocation<'a> {
    /// CNI container ID (the task ID).
    pub container_id: &'a str,
    /// Network namespace path.
    pub netns: &'a Path,
    /// Interface name inside the namespace.
    pub ifname: &'a str,
    /// `CNI_ARGS` (`IgnoreUnknown=1;IP=…;MAC=…`).
    pub args: &'a str,
}

/// The plugin directory and how to run what is in it.
#[derive(Clone, Debug)]
pub struct Cni {
    path: PathBuf,
}

impl Default for Cni {
    fn default() -> Self {
        Cni::new(DEFAULT_CNI_PATH)
    }
}

impl Cni {
    /// Plugins from `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Cni { path: path.into() }
    }

    /// The plugin directory (`CNI_PATH`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs ADD for every plugin of `list` in order, passing each one's
    /// result to the next as `prevResult`; returns the last result.
    pub async fn add_list(&self, list: &Value, inv: Invocation<'_>) -> Result<Value, NetError> {
        let mut prev: Option<Value> = None;
        for plugin in plugins(list) {
            let conf = plugin_conf(list, plugin, prev.as_ref());
            prev = Some(self.exec("ADD", &conf, inv, &net_name(list)).await?);
        }
        Ok(prev.unwrap_or_else(|| json!({ "cniVersion": CNI_VERSION })))
    }

    /// Runs DEL for every plugin of `list` in reverse order with the ADD
    /// result (if known) as `prevResult`. Every plugin is tried; the first
    /// error is returned.
    pub async fn del_list(
        &self,
        list: &Value,
        result: Option<&Value>,
        inv: Invocation<'_>,
    ) -> Result<(), NetError> {
        let mut first = None;
        for plugin in plugins(list).iter().rev() {
            let conf = plugin_conf(list, plugin, result);
            if let Err(e) = self.exec("DEL", &conf, inv, &net_name(list)).await {
                tracing::warn!(task = inv.container_id, error = %e, "CNI DEL failed");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Runs one plugin command and decodes its stdout.
    pub async fn exec(
        &self,
        command: &'static str,
        conf: &Value,
        inv: Invocation<'_>,
        network: &str,
    ) -> Result<Value, NetError> {
        let kind = conf["type"].as_str().unwrap_or_default().to_owned();
        let bin = self.path.join(&kind);
        if kind.is_empty() || kind.contains('/') || !bin.exists() {
            return Err(NetError::MissingPlugin { path: bin });
        }
        let fail = |message: String| NetError::Plugin {
            command,
            plugin: kind.clone(),
            task: inv.container_id.to_owned(),
            network: format!("network {network} ({})", inv.ifname),
            message,
        };
        let mut child = tokio::process::Command::new(&bin)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", inv.container_id)
            .env("CNI_NETNS", inv.netns)
            .env("CNI_IFNAME", inv.ifname)
            .env("CNI_PATH", &self.path)
            .env("CNI_ARGS", inv.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", bin.display())))?;
        let input = serde_json::to_vec(conf).expect("JSON values serialise");
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(&input)
                .await
                .map_err(|e| fail(format!("writing the config: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| fail(format!("waiting: {e}")))?;
        let stdout: Value = if out.stdout.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&out.stdout).unwrap_or_else(
                |_| json!({ "msg": String::from_utf8_lossy(&out.stdout).trim().to_owned() }),
            )
        };
        if !out.status.success() {
            let msg = stdout["msg"].as_str().unwrap_or_default();
            let details = stdout["details"].as_str().unwrap_or_default();
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(fail(
                format!("{} {msg} {details} {}", out.status, stderr.trim())
                    .trim()
                    .to_owned(),
            ));
        }
        Ok(stdout)
    }
}

fn plugins(list: &Value) -> Vec<&Value> {
    list["plugins"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn net_name(list: &Value) -> String {
    list["name"].as_str().unwrap_or_default().to_owned()
}

/// A single plugin's stdin: its object plus the list's `name` and
/// `cniVersion`, and `prevResult` when there is one (what libcni does).
pub fn plugin_conf(list: &Value, plugin: &Value, prev: Option<&Value>) -> Value {
    let mut conf = plugin.clone();
    conf["name"] = list["name"].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    if let Some(p) = prev {
        if !p.is_null() {
            conf["prevResult"] = p.clone();
        }
    }
    conf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_conf_carries_name_version_and_prev_result() {
        let list = json!({ "cniVersion": "1.0.0", "name": "n", "plugins": [{ "type": "bridge" }] });
        let c = plugin_conf(&list, &list["plugins"][0], Some(&json!({ "ips": [] })));
        assert_eq!(c["name"], "n");
        assert_eq!(c["cniVersion"], "1.0.0");
        assert_eq!(c["type"], "bridge");
        assert_eq!(c["prevResult"], json!({ "ips": [] }));
        assert!(plugin_conf(&list, &list["plugins"][0], None)
            .get("prevResult")
            .is_none());
    }
}
