//! The Outpost agent: `outpostd`, which makes the device match its
//! declarative config, and `outpost`, the operator's local debug CLI.
//! The binaries are thin; the logic lives here and in the `pkg/` crates.
//!
//! # Current limitations
//! * Config comes from a local file or the checkpoint; the controller
//!   source is a later step (it plugs into the same channel).
//! * Images come from a local directory of OCI layouts (`--images`).

pub mod admin;
pub mod cli;
pub mod daemon;
pub mod logging;
