//! Wiring one app task to its networks and back.
//!
//! [`attach_app`] writes the attachment record (what will be ADDed) to
//! `<persist>/vault/net/attachments/<task>.json` *before* running CNI ADD,
//! and the results after. [`detach_app`] runs DEL from that record, so an
//! agent crash (or a reboot, which loses the namespace but not the leases)
//! between ADD and task start, or at any later point, never leaks an IP
//! lease or an iptables rule. [`reattach`] re-creates a task's interfaces
//! from its record alone (after a reboot the namespace is gone but the
//! container and its spec remain), and [`records`] lists them all so the
//! agent can DEL those whose task no longer exists.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use outpost_api::{AppConfig, NetworkConfig};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::cni::{Cni, Invocation};
use super::conflist::{cni_args, conflist};
use super::error::NetError;
use super::{failpoint, instance, netns};
use crate::layout::Layout;
use crate::mount::is_mountpoint;

/// Everything ADDed for one task, enough to DEL it without the config.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AttachmentRecord {
    /// Task / CNI container ID.
    pub task: String,
    /// Network namespace path.
    pub netns: PathBuf,
    /// One entry per interface, in config order.
    pub interfaces: Vec<InterfaceRecord>,
    /// DNS servers written into `resolv.conf` (the networks' `dns`), so the
    /// files can be written again without the config.
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
}

impl AttachmentRecord {
    /// The network UUIDs the task is attached to.
    pub fn networks(&self) -> Vec<String> {
        self.interfaces.iter().map(|i| i.network.clone()).collect()
    }
}

/// One interface of a task.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InterfaceRecord {
    /// Network instance UUID.
    pub network: String,
    /// Interface name inside the app (`eth0`, …).
    pub ifname: String,
    /// `CNI_ARGS` used for ADD.
    pub args: String,
    /// The network configuration list used for ADD.
    pub conflist: Value,
    /// The ADD result; `None` until ADD finished.
    #[serde(default)]
    pub result: Option<Value>,
}

impl InterfaceRecord {
    /// The IPv4 addresses of the ADD result.
    pub fn ips(&self) -> Vec<Ipv4Addr> {
        let Some(r) = &self.result else {
            return Vec::new();
        };
        r["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|ip| ip["address"].as_str())
            .filter_map(|a| a.split('/').next()?.parse().ok())
            .collect()
    }
}

/// What an attached app's spec needs.
#[derive(Clone, Debug)]
pub struct AppNet {
    /// The network namespace to join.
    pub netns: PathBuf,
    /// Generated `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// Generated `/etc/hosts`.
    pub hosts: PathBuf,
    /// The record written for it.
    pub record: AttachmentRecord,
}

fn record_path(layout: &Layout, task: &str) -> PathBuf {
    layout.net_attachments().join(format!("{task}.json"))
}

fn files_dir(layout: &Layout, task: &str) -> PathBuf {
    layout.net_run().join(task)
}

/// The attachment record of `task`, if one exists.
pub fn read_record(layout: &Layout, task: &str) -> Result<Option<AttachmentRecord>, NetError> {
    let path = record_path(layout, task);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| NetError::Record {
                path,
                problem: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NetError::io("reading", path, e)),
    }
}

fn write_record(layout: &Layout, rec: &AttachmentRecord) -> Result<(), NetError> {
    let path = record_path(layout, &rec.task);
    let dir = layout.net_attachments();
    std::fs::create_dir_all(&dir).map_err(|e| NetError::io("creating", &dir, e))?;
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(rec).expect("records serialise");
    std::fs::write(&tmp, bytes).map_err(|e| NetError::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| NetError::io("renaming", &path, e))
}

/// Creates the task's namespace and ADDs every interface of `app`; returns
/// `None` for an app without interfaces (it keeps a fresh isolated
/// namespace). Idempotent: a complete attachment with the same configs is
/// reused (same namespace, same leases); a partial one (crash during ADD),
/// a stale one (reboot) or a different one is deleted and made again.
pub async fn attach_app(
    layout: &Layout,
    cni: &Cni,
    app: &AppConfig,
    networks: &[NetworkConfig],
) -> Result<Option<AppNet>, NetError> {
    if app.interfaces.is_empty() {
        return Ok(None);
    }
    let task = app.task_id();
    let mut nets = Vec::new();
    for (index, itf) in app.interfaces.iter().enumerate() {
        let net = networks
            .iter()
            .find(|n| n.uuid == itf.network)
            .ok_or_else(|| NetError::UnknownNetwork {
                app: format!("{} ({})", app.display_name, app.uuid),
                index,
                network: itf.network.clone(),
            })?;
        nets.push(net);
    }
    let data_dir = layout.net_ipam();
    let wanted: Vec<InterfaceRecord> = app
        .interfaces
        .iter()
        .zip(&nets)
        .enumerate()
        .map(|(i, (itf, net))| InterfaceRecord {
            network: net.uuid.clone(),
            ifname: format!("eth{i}"),
            args: cni_args(itf),
            conflist: conflist(net, itf, &data_dir),
            result: None,
        })
        .collect();
    let mut dns = Vec::new();
    for ip in nets.iter().flat_map(|n| n.dns.iter()) {
        if !dns.contains(ip) {
            dns.push(*ip);
        }
    }
    // Every bridge an ADD below may create belongs to this root.
    for net in &nets {
        instance::claim(layout, net)?;
    }
    let want = AttachmentRecord {
        task,
        netns: PathBuf::new(),
        interfaces: wanted,
        dns,
    };
    attach(layout, cni, want).await.map(Some)
}

/// Re-creates the interfaces of `task` from its attachment record when
/// they are gone (a reboot loses the namespace but not the container, whose
/// spec names the namespace path and the files), with the same
/// configuration and `CNI_ARGS`; `None` for a task without a record.
/// A complete attachment is left as it is.
pub async fn reattach(layout: &Layout, cni: &Cni, task: &str) -> Result<Option<AppNet>, NetError> {
    let Some(mut rec) = read_record(layout, task)? else {
        return Ok(None);
    };
    for i in &mut rec.interfaces {
        i.result = None;
    }
    attach(layout, cni, rec).await.map(Some)
}

/// Makes the attachment `want` (results unset) exist: reuses a complete one
/// with the same interfaces and a live namespace, else DELs whatever is
/// recorded and ADDs afresh.
async fn attach(layout: &Layout, cni: &Cni, want: AttachmentRecord) -> Result<AppNet, NetError> {
    let task = want.task.clone();
    let ns_path = layout.netns_dir().join(&task);
    if let Some(rec) = read_record(layout, &task)? {
        let same = rec.interfaces.len() == want.interfaces.len()
            && rec
                .interfaces
                .iter()
                .zip(&want.interfaces)
                .all(|(have, w)| {
                    have.result.is_some()
                        && have.network == w.network
                        && have.ifname == w.ifname
                        && have.args == w.args
                        && have.conflist == w.conflist
                });
        if same && rec.netns == ns_path && is_mountpoint(&rec.netns) {
            let rec = AttachmentRecord {
                dns: want.dns,
                ..rec
            };
            write_record(layout, &rec)?;
            return write_files(layout, rec);
        }
        detach_app(layout, cni, &task).await?;
    }
    // The record comes first: a crash from here on leaves something that
    // names the namespace and what was (maybe) ADDed, so DEL can undo it.
    let mut rec = AttachmentRecord {
        netns: ns_path.clone(),
        ..want
    };
    write_record(layout, &rec)?;
    netns::create(&task, &ns_path)?;
    let lo = json!({
        "cniVersion": super::cni::CNI_VERSION,
        "name": "lo",
        "plugins": [{ "type": "loopback" }],
    });
    let lo_inv = Invocation {
        container_id: &task,
        netns: &ns_path,
        ifname: "lo",
        args: "",
    };
    cni.add_list(&lo, lo_inv).await?;
    for i in 0..rec.interfaces.len() {
        let r = &rec.interfaces[i];
        let result = cni
            .add_list(
                &r.conflist,
                Invocation {
                    container_id: &task,
                    netns: &ns_path,
                    ifname: &r.ifname,
                    args: &r.args,
                },
            )
            .await?;
        rec.interfaces[i].result = Some(result);
        write_record(layout, &rec)?;
    }
    failpoint::hit(layout, failpoint::AFTER_CNI_ADD);
    write_files(layout, rec)
}

/// Writes `resolv.conf` and `hosts` for the task (its hostname is the
/// app UUID, the first part of the task ID).
fn write_files(layout: &Layout, record: AttachmentRecord) -> Result<AppNet, NetError> {
    let dir = files_dir(layout, &record.task);
    std::fs::create_dir_all(&dir).map_err(|e| NetError::io("creating", &dir, e))?;
    let mut resolv = String::from("# generated by outpost from the app's networks\n");
    for ip in &record.dns {
        resolv.push_str(&format!("nameserver {ip}\n"));
    }
    let hostname = record.task.split('.').next().unwrap_or_default();
    let mut hosts =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for ip in record.interfaces.iter().flat_map(InterfaceRecord::ips) {
        hosts.push_str(&format!("{ip}\t{hostname}\n"));
    }
    let (resolv_conf, hosts_path) = (dir.join("resolv.conf"), dir.join("hosts"));
    std::fs::write(&resolv_conf, resolv).map_err(|e| NetError::io("writing", &resolv_conf, e))?;
    std::fs::write(&hosts_path, hosts).map_err(|e| NetError::io("writing", &hosts_path, e))?;
    Ok(AppNet {
        netns: record.netns.clone(),
        resolv_conf,
        hosts: hosts_path,
        record,
    })
}

/// DELs every interface in the task's record (in reverse order), removes
/// the namespace, the generated files and the record. A task without a
/// record has nothing to undo. Safe to repeat.
pub async fn detach_app(layout: &Layout, cni: &Cni, task: &str) -> Result<(), NetError> {
    let ns_path = layout.netns_dir().join(task);
    let mut first = None;
    if let Some(rec) = read_record(layout, task)? {
        // After a reboot the bind-mount file outlives its namespace; plugins
        // accept a missing namespace on DEL, not a plain file in its place.
        if !is_mountpoint(&rec.netns) {
            netns::remove(task, &rec.netns)?;
        }
        for r in rec.interfaces.iter().rev() {
            let inv = Invocation {
                container_id: task,
                netns: &rec.netns,
                ifname: &r.ifname,
                args: &r.args,
            };
            if let Err(e) = cni.del_list(&r.conflist, r.result.as_ref(), inv).await {
                first.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first {
        // Keep the record so the next attempt can DEL again.
        return Err(e);
    }
    netns::remove(task, &ns_path)?;
    let dir = files_dir(layout, task);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| NetError::io("removing", &dir, e))?;
    }
    let path = record_path(layout, task);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetError::io("removing", path, e)),
    }
}

/// Every attachment record of this root (undecodable ones are skipped
/// with a warning).
pub fn records(layout: &Layout) -> Result<Vec<AttachmentRecord>, NetError> {
    let dir = layout.net_attachments();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NetError::io("listing", dir, e)),
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(task) = name.strip_suffix(".json") else {
            continue;
        };
        match read_record(layout, task) {
            Ok(Some(r)) => out.push(r),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "unreadable attachment record skipped"),
        }
    }
    out.sort_by(|a, b| a.task.cmp(&b.task));
    Ok(out)
}

/// The record's path, for diagnostics.
pub fn record_file(layout: &Layout, task: &str) -> PathBuf {
    record_path(layout, task)
}
