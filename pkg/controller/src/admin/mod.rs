//! The admin API: JSON over HTTP/1 on `<state>/admin.sock` (mode 0600, so
//! root only), between `serve` (which owns the database) and the
//! `outpost-controller device …` commands.

pub mod client;
pub mod server;
pub mod types;
