//! The handlers, one file each.

pub mod persist_volumes;
pub mod store_schema;
pub mod user_containerd;
