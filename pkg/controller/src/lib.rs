//! Outpost's reference controller (EVE's counterpart is Adam): onboarding
//! over mutual TLS, signed device configs delivered by long-poll, and
//! storage of what devices upload (info, metrics, logs). The wire format is
//! `outpost_api::cloud`; `docs/api.md` is its prose.
//!
//! * [`init::init`] makes the state directory: a root CA (P-256, 10 years)
//!   that issues the TLS server certificate, the config **signing**
//!   certificate (code-signing EKU, its own key), the onboarding
//!   certificate and, later, every device certificate; the redb database;
//!   and the device `/config` bundle.
//! * [`server::Server`] serves the device API (rustls, TLS 1.2/1.3; client
//!   certificates verified against the root CA and identified by the
//!   SHA-256 of their DER) and the admin API on a root-only unix socket,
//!   which the `device …` commands use because redb is single-process;
//!   with `--admin-listen`, the same admin routes over HTTPS with tokens and
//!   the web console ([`console`]), see [`admin::https`].
//! * [`store::Store`] is the storage: the embedded redb file ([`db::Db`],
//!   the default) or PostgreSQL ([`store::pg::PgStore`], `serve --database`),
//!   which any number of `serve` replicas share; they follow each other's
//!   changes by `LISTEN`/`NOTIFY` plus a catch-up on every (re)connect
//!   (`docs/controller-replicas.md`). [`pgtest`] runs a private cluster
//!   for tests and benchmarks.
//! * [`state::Controller`] keeps devices and each one's current signed
//!   config in memory, in front of the store; a config long-poll waits on
//!   the device's `tokio::sync::watch` channel, so hundreds of waiting
//!   devices cost one task each and no polling (`tests/fleet.rs`: 500
//!   waiting devices all hold a `set-config --all` within ~0.15 s).
//! * Generations: each change takes the device's previous generation + 1
//!   (previous = the higher of the last one set and the one the device
//!   reports in effect); bootstrap configs always carry 0.
//!
//! # State directory
//!
//! | file | what |
//! |---|---|
//! | `ca.cert.pem`, `ca.key.pem` | root CA: the devices' only trust anchor; signs every other certificate |
//! | `server.cert.pem`, `server.key.pem` | TLS server certificate (leaf first, then any intermediates), serverAuth, SANs = host of `--server` + every `--name` |
//! | `signing.cert.pem`, `signing.key.pem` | config signing certificate, codeSigning (what `GET /api/v1/certs` returns) |
//! | `signing-retired.json` | signing certificates replaced by `signing rotate`, served by fingerprint until their overlap ends |
//! | `onboard.cert.pem`, `onboard.key.pem` | onboarding certificate, clientAuth (copied into the bundle) |
//! | `controller.redb` | devices, onboarding list, configs, info, metrics, logs, settings |
//! | `admin.sock` | admin API (0600), present while `serve` runs |
//! | `admin-tokens.json` | HTTPS admin API tokens: names and SHA-256 only (0600) |
//! | `admin.cert.pem`, `admin.key.pem` | certificate of `serve --admin-listen`, issued by the CA on first use |
//! | `base-os/` | published base OS images, `<sha256>.squashfs` ([`baseos`]) |
//! | `device-config/` | default bundle dir: `server`, `root-certificate.pem`, `onboard.cert.pem`, `onboard.key.pem` |
//!
//! Keys are 0600 and the directory 0700. Each file is read when `serve`
//! starts, so a test may replace one (an expired server certificate issued
//! by the same CA with [`pki::Ca::issue`], say) and restart the server.
//!
//! # Current limitations
//! * Device certificates (`docs/certificates.md`, [`certs`]): the agent
//!   renews at 2/3 of their lifetime (`serve --device-cert-lifetime`,
//!   default one year), re-registers with the onboarding certificate after
//!   expiry; `device revoke` refuses a device on every request and replica.
//!   There is no CRL/OCSP: revocation lives in the store, which every
//!   replica reads. A device may hold up to four valid certificates for
//!   its key at once.
//! * `signing rotate` replaces the config-signing key (the old certificate
//!   stays served for an overlap); a running `serve` takes the new files
//!   within 5 s. No rotation command for the CA, server and onboarding
//!   certificates (10 years).
//! * Every upload is its own durable (fsync) transaction; with many
//!   devices sending small log batches the disk's fsync rate is the bound.
//! * On PostgreSQL, `device logs -f` is woken at once by uploads stored
//!   through the same replica, and reads again every second for those
//!   stored through another.
//! * `last seen` and `connected` are written to the store in batches every
//!   10 s ([`state::PRESENCE_EVERY`]): another replica shows a device that
//!   went away as connected for up to 35–45 s.
//! * HTTP/1.1 only (ALPN `http/1.1`); an idle keep-alive connection is closed
//!   after the header timeout (10 s).
//! * Operators are authorised by the admin socket's mode (root only) or, on
//!   the HTTPS admin listener, by named tokens ([`admin::tokens`]: full or
//!   read-only); there are no per-device permissions and no audit log beyond
//!   the tracing output (which names the token of each change).

pub mod admin;
pub mod baseos;
pub mod bootstrap;
pub mod certs;
pub mod console;
pub mod db;
pub mod document;
pub mod error;
pub mod init;
pub mod layout;
pub mod limits;
pub mod names;
pub mod pgtest;
pub mod pki;
pub mod reply;
pub mod server;
pub mod signing;
pub mod state;
pub mod store;

pub use error::{ControllerError, Result};
pub use layout::StateDir;
pub use limits::Limits;
pub use server::{ServeOptions, Server};
