//! Task events as a `select!` arm that never fires when there is no stream
//! (table tests run the loop without containerd).

use outpost_runtime::events::{EventStream, TaskEvent};

/// The next task event, or never when `tasks` is `None` or closed.
pub(super) async fn next_task_event(tasks: &mut Option<EventStream>) -> Option<TaskEvent> {
    match tasks {
        Some(t) => match t.rx.recv().await {
            Some(ev) => Some(ev),
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}
