//! Simulated devices made of pkg/cloud's real client code (identity
//! store, TLS client, renewal), for the certificate lifecycle tests.

use std::time::Duration;

use outpost_api::cloud::RegisterRequest;
use outpost_api::Clock;
use outpost_cloud::renew::CertValidity;
use outpost_cloud::{Client, ClientOptions, CloudError, DeviceIdentity, IdentityStore, Poll};
use outpost_controller::layout;

use super::Harness;

/// A simulated device: its `/persist/certs`, identity and client.
pub struct SimDevice {
    pub ids: IdentityStore,
    pub id: DeviceIdentity,
    pub client: Client,
    pub serial: String,
    pub etag: Option<String>,
    pub renewals: u64,
}

pub fn options(clock: &Clock) -> ClientOptions {
    ClientOptions {
        clock: clock.clone(),
        // a TLS handshake (a validity check on both sides) on every request
        reuse_connections: false,
    }
}

/// A client presenting the onboarding certificate of the harness.
pub fn onboarding(h: &Harness, clock: &Clock) -> Client {
    Client::with_options(
        &h.addr.to_string(),
        h.file(layout::CA_CERT).as_bytes(),
        Some((
            h.file(layout::ONBOARD_CERT).as_bytes(),
            h.file(layout::ONBOARD_KEY).as_bytes(),
        )),
        options(clock),
    )
    .unwrap()
}

impl SimDevice {
    /// Adds `name` to the onboarding list and registers it like the agent.
    pub async fn onboard(
        h: &Harness,
        clock: &Clock,
        dir: &std::path::Path,
        name: &str,
    ) -> SimDevice {
        let serial = format!("sn-{name}");
        h.controller().add_device(name, &serial).await.unwrap();
        let ids = IdentityStore::new(dir.join(name));
        let server = h.addr.to_string();
        let resp = onboarding(h, clock)
            .register(&RegisterRequest {
                serial: serial.clone(),
                csr_pem: ids.csr_pem(&serial).unwrap(),
            })
            .await
            .unwrap();
        let id = ids.save(&server, &resp).unwrap();
        let client = Client::with_options(
            &server,
            h.file(layout::CA_CERT).as_bytes(),
            Some((&id.cert_pem, &id.key_pem)),
            options(clock),
        )
        .unwrap();
        SimDevice {
            ids,
            id,
            client,
            serial,
            etag: None,
            renewals: 0,
        }
    }

    pub fn validity(&self) -> CertValidity {
        CertValidity::of_pem(&self.id.cert_pem).unwrap()
    }

    /// One config fetch (no wait): `Ok` when the controller answered.
    pub async fn poll(&mut self) -> Result<(), CloudError> {
        match self
            .client
            .poll_config(&self.id.uuid, self.etag.as_deref(), Duration::ZERO)
            .await?
        {
            Poll::Changed { etag, .. } => self.etag = etag,
            Poll::NotModified | Poll::Empty => {}
        }
        Ok(())
    }
}
