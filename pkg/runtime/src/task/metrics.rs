//! Task metrics decoded from containerd's cgroup metrics (v1 or v2).

use containerd_client::services::v1::MetricsRequest;
use protobuf::Message;

use crate::client::Containerd;
use crate::error::{Result, RuntimeError};

/// Resource use of one task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskMetrics {
    /// Memory in use, bytes.
    pub memory_usage: u64,
    /// Memory limit, bytes.
    pub memory_limit: u64,
    /// CPU time used since start, nanoseconds.
    pub cpu_ns: u64,
    /// Number of processes.
    pub pids: u64,
}

const V1: &str = "io.containerd.cgroups.v1.Metrics";
const V2: &str = "io.containerd.cgroups.v2.Metrics";

/// Reads the metrics of task `id`.
pub async fn metrics(c: &Containerd, id: &str) -> Result<TaskMetrics> {
    let r = c
        .tasks()
        .metrics(c.req(MetricsRequest {
            filters: vec![format!("id=={id}")],
        }))
        .await
        .map_err(|s| RuntimeError::api("tasks.Metrics", id, s))?
        .into_inner();
    let data = r
        .metrics
        .into_iter()
        .find(|m| m.id == id)
        .and_then(|m| m.data)
        .ok_or_else(|| RuntimeError::Decode {
            what: "metrics",
            object: id.to_owned(),
            problem: "no metrics for the task".into(),
        })?;
    decode(id, &data.type_url, &data.value)
}

fn decode(id: &str, type_url: &str, value: &[u8]) -> Result<TaskMetrics> {
    let bad = |e: protobuf::Error| RuntimeError::Decode {
        what: "metrics",
        object: id.to_owned(),
        problem: e.to_string(),
    };
    let url = type_url.trim_start_matches('/');
    if url.ends_with(V1) {
        use containerd_shim_protos::cgroups::metrics::Metrics;
        let m = Metrics::parse_from_bytes(value).map_err(bad)?;
        let usage = m.memory.usage.as_ref();
        Ok(TaskMetrics {
            memory_usage: usage.map(|u| u.usage).unwrap_or(0),
            memory_limit: usage.map(|u| u.limit).unwrap_or(0),
            cpu_ns: m.cpu.usage.as_ref().map(|u| u.total).unwrap_or(0),
            pids: m.pids.current,
        })
    } else if url.ends_with(V2) {
        use containerd_shim_protos::cgroups_v2::metrics::Metrics;
        let m = Metrics::parse_from_bytes(value).map_err(bad)?;
        Ok(TaskMetrics {
            memory_usage: m.memory.usage,
            memory_limit: m.memory.usage_limit,
            cpu_ns: m.cpu.usage_usec.saturating_mul(1000),
            pids: m.pids.current,
        })
    } else {
        Err(RuntimeError::Decode {
            what: "metrics",
            object: id.to_owned(),
            problem: format!("unknown type {type_url}"),
        })
    }
}
