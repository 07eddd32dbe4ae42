//! The write side: one datagram per registration, name as payload, fds in
//! `SCM_RIGHTS`.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use tokio::io::unix::AsyncFd;

use super::state::Shared;
use super::stream;
use crate::fdpass::{recv_fds, Received};
use crate::register::MAX_NAME_LEN;

/// Datagrams handled per wake-up before yielding to other tasks.
const BATCH: usize = 256;

/// The datagram socket and what handles its messages.
#[derive(Debug)]
pub(super) struct WriteSide {
    fd: AsyncFd<File>,
    shared: Arc<Shared>,
    /// Serialises draining between the receive loop and stats requests.
    draining: Mutex<()>,
}

impl WriteSide {
    pub fn new(fd: AsyncFd<File>, shared: Arc<Shared>) -> Self {
        WriteSide {
            fd,
            shared,
            draining: Mutex::new(()),
        }
    }

    /// Receives registrations until the server stops.
    pub async fn run(self: Arc<Self>) {
        loop {
            let mut guard = match self.fd.readable().await {
                Ok(g) => g,
                Err(e) => {
                    self.shared
                        .log(format!("log socket failed, no more registrations: {e}"));
                    return;
                }
            };
            if self.drain(BATCH) {
                guard.clear_ready();
            } else {
                drop(guard);
                tokio::task::yield_now().await;
            }
        }
    }

    /// Handles every datagram already queued. Called by stats requests so that
    /// a registration sent before a stats request is reflected in its answer.
    pub fn drain_all(&self) {
        while !self.drain(usize::MAX) {}
    }

    /// Handles up to `max` queued datagrams; true when the queue is empty.
    fn drain(&self, max: usize) -> bool {
        let _serial = self.draining.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..max {
            match recv_fds(self.fd.get_ref().as_fd(), MAX_NAME_LEN + 1) {
                Ok(msg) => self.handle(msg),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.shared.log(format!("receiving a registration: {e}"));
                    return true;
                }
            }
        }
        false
    }

    fn handle(&self, msg: Received) {
        let name = String::from_utf8_lossy(&msg.name);
        let reason = if msg.fds.is_empty() {
            Some("no fd attached")
        } else if msg.fds_truncated {
            Some("fds lost in transit (fd table full?)")
        } else if msg.name_truncated || msg.name.len() > MAX_NAME_LEN {
            Some("name longer than 256 bytes")
        } else if msg.name.is_empty() {
            Some("empty name")
        } else {
            None
        };
        if let Some(reason) = reason {
            self.shared
                .counters
                .rejected_datagrams
                .fetch_add(1, Relaxed);
            let shown: String = name.chars().take(64).collect();
            self.shared.log(format!(
                "rejected registration {shown:?} with {} fd(s): {reason}",
                msg.fds.len()
            ));
            return; // dropping msg closes its fds
        }
        for fd in msg.fds {
            stream::start(&self.shared, &name, fd);
        }
    }
}
