//! Task events from containerd, so the agent reacts to exits instead of polling.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use containerd_client::events::{TaskExit, TaskOom, TaskStart};
use containerd_client::services::v1::SubscribeRequest;
use futures::StreamExt;
use prost::Message;
use tokio::sync::mpsc;

use crate::client::Containerd;

/// A task event the agent cares about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskEvent {
    /// A process of the task exited (`exec_id` empty for the init process).
    Exit {
        /// Container/task ID.
        task: String,
        /// Exec ID, empty for init.
        exec_id: String,
        /// Exit status.
        exit_status: u32,
    },
    /// The task started.
    Start {
        /// Container/task ID.
        task: String,
    },
    /// The task hit its memory limit.
    Oom {
        /// Container/task ID.
        task: String,
    },
}

/// Events from a live subscription, with a counter of events dropped
/// because the consumer fell behind (it must resync from containerd then).
pub struct EventStream {
    /// The events.
    pub rx: mpsc::Receiver<TaskEvent>,
    /// Events dropped because the queue was full.
    pub dropped: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Subscribes to task events of `c`'s namespace; the subscription is
/// re-established after errors (e.g. while the user containerd restarts).
/// `capacity` bounds the queue.
pub fn subscribe(c: Containerd, capacity: usize) -> EventStream {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    let d = dropped.clone();
    let task = tokio::spawn(async move {
        let filter = format!("namespace=={},topic~=\"^/tasks/\"", c.namespace());
        loop {
            // The call returns only once the first event arrives, so it runs
            // in this dedicated task.
            let stream = c
                .events()
                .subscribe(c.req(SubscribeRequest {
                    filters: vec![filter.clone()],
                }))
                .await;
            match stream {
                Ok(s) => {
                    let mut s = s.into_inner();
                    while let Some(msg) = s.next().await {
                        let Ok(env) = msg else { break };
                        let Some(any) = env.event else { continue };
                        if let Some(ev) = decode(&env.topic, &any.value) {
                            if tx.try_send(ev).is_err() {
                                if tx.is_closed() {
                                    return;
                                }
                                d.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "event subscription failed; retrying"),
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    EventStream { rx, dropped, task }
}

fn decode(topic: &str, value: &[u8]) -> Option<TaskEvent> {
    match topic {
        "/tasks/exit" => TaskExit::decode(value).ok().map(|e| TaskEvent::Exit {
            exec_id: if e.id == e.container_id {
                String::new()
            } else {
                e.id
            },
            task: e.container_id,
            exit_status: e.exit_status,
        }),
        "/tasks/start" => TaskStart::decode(value).ok().map(|e| TaskEvent::Start {
            task: e.container_id,
        }),
        "/tasks/oom" => TaskOom::decode(value).ok().map(|e| TaskEvent::Oom {
            task: e.container_id,
        }),
        _ => None,
    }
}
