//! The admin API: JSON over HTTP/1 on `<state>/admin.sock` (mode 0600, so
//! root only), between `serve` (which owns the database) and the
//! `outpost-controller device …` commands; and the same routes over HTTPS
//! with tokens ([`https`], [`tokens`]) for automation and the web console.

pub mod baseos;
pub mod client;
pub mod https;
pub mod server;
pub mod tokens;
pub mod types;
