//! The device side of the controller protocol (`docs/api.md`): identity and
//! onboarding, mutual TLS, signed config by long-poll, and uploads of info,
//! metrics and logs (with a bounded on-disk queue for logs).
//!
//! The agent wires these pieces into its loop (`agent/src/daemon/cloud/`);
//! the fleet benchmark uses them as lightweight simulated devices.
//!
//! Trust is the root CA in `/config/root-certificate.pem` and nothing else:
//! the controller's TLS certificate and its config-signing certificate must
//! chain to it. There is no way to turn verification off.

pub mod backoff;
pub mod batcher;
pub mod bundle;
pub mod client;
pub mod error;
pub mod identity;
pub mod logq;
pub mod renew;
pub mod tls;
pub mod verify;

pub use backoff::Backoff;
pub use batcher::Batcher;
pub use bundle::Bundle;
pub use client::{Client, ClientOptions, Download, Poll};
pub use error::CloudError;
pub use identity::{DeviceIdentity, IdentityStore};
pub use logq::LogQueue;
pub use renew::CertValidity;
pub use verify::{Opened, Verifier};
