//! The user containerd instance: generated config and supervision.

pub mod config;
mod supervisor;

pub(crate) use supervisor::write_atomic;
pub use supervisor::{InstanceOptions, InstanceState, LogSink, UserInstance};
