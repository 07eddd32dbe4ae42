//! Containers and tasks in the user instance.

mod exec;
mod lifecycle;
mod metrics;
mod options;
pub mod repair;
mod state;

pub use exec::{exec, ExecOutput, MAX_EXEC_OUTPUT, PROCESS_TYPE};
pub use lifecycle::{
    create_container, create_task, delete_container, delete_task, kill, pause, resume, start, stop,
    wait, ContainerRequest, StopOutcome, SPEC_TYPE,
};
pub use metrics::{metrics, TaskMetrics};
pub use options::{RuncOptions, RUNC_OPTIONS_TYPE, RUNC_SHIM};
pub use state::{get, TaskState, TaskStatus};
