//! The local admin API between `outpostd` and the `outpost` CLI.

pub mod client;
pub mod server;
pub mod services;
pub mod types;

/// File name of the admin socket inside the agent's run dir.
pub const SOCKET_NAME: &str = "admin.sock";
