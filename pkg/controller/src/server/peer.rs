//! Who is on the other end of a device API connection.

use std::net::SocketAddr;
use std::sync::Arc;

/// Who is on the other end of a connection (set per request by the
/// connection handler).
#[derive(Clone, Debug)]
pub struct Peer {
    /// SHA-256 (lowercase hex) of the client certificate DER, if one was presented.
    pub fingerprint: Option<Arc<str>>,
    /// The remote address.
    pub addr: SocketAddr,
}
