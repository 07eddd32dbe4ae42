//! Registration, and the operator's device add / delete.

use std::sync::Arc;

use axum::http::StatusCode;
use outpost_api::cloud::{RegisterRequest, RegisterResponse};

use super::Controller;
use crate::db::{AddOutcome, DeviceRecord, RegisterOutcome};
use crate::names;
use crate::pki::DeviceCsr;
use crate::reply::Failure;
use crate::signing::now_rfc3339;

/// A successful registration.
#[derive(Clone, Debug)]
pub struct Registered {
    /// 201 (new) or 200 (same serial and key again).
    pub status: StatusCode,
    /// The answer.
    pub response: RegisterResponse,
}

impl Controller {
    /// `POST /api/v1/register` (the caller was checked to hold the
    /// onboarding certificate).
    pub async fn register(self: &Arc<Self>, req: RegisterRequest) -> Result<Registered, Failure> {
        names::check_serial(&req.serial).map_err(Failure::bad_request)?;
        let csr = DeviceCsr::from_pem(&req.csr_pem).map_err(Failure::bad_request)?;
        let public_key = csr.public_key_hex();
        let open = self.open_onboarding;
        let serial = req.serial.clone();
        let _ops = self.ops.lock().await;
        let outcome = self
            .blocking(move |c| {
                let validity = c.certs.device_validity();
                c.db.register(&serial, &public_key, open, &mut |uuid| {
                    csr.issue(&c.ca, uuid, validity)
                })
            })
            .await?;
        let (status, record, issued) = match outcome {
            RegisterOutcome::Created(r, i) => (StatusCode::CREATED, r, i),
            RegisterOutcome::Again(r, i) => (StatusCode::OK, r, i),
            RegisterOutcome::KeyMismatch(r) => {
                tracing::warn!(serial = %req.serial, device = %r.name, "registration with another key refused");
                return Err(Failure::conflict(format!(
                    "serial {:?} is registered as device {} ({}) with another key; delete the device to onboard it again",
                    req.serial, r.name, r.uuid
                )));
            }
            RegisterOutcome::Revoked(r) => {
                tracing::warn!(serial = %req.serial, device = %r.name, "registration of a revoked device refused");
                return Err(Failure::forbidden(format!(
                    "device {} ({}, serial {:?}) was revoked; it may not register again (delete it to onboard the hardware anew)",
                    r.name, r.uuid, req.serial
                )));
            }
            RegisterOutcome::NotListed => {
                tracing::warn!(serial = %req.serial, "registration of an unlisted serial refused");
                return Err(Failure::forbidden(format!(
                    "serial {:?} is not on the onboarding list (add it with `outpost-controller device add NAME --serial {}`)",
                    req.serial, req.serial
                )));
            }
        };
        self.insert_slot(record.clone()).touch();
        tracing::info!(
            serial = %record.serial,
            device = %record.name,
            uuid = %record.uuid,
            again = status == StatusCode::OK,
            "device registered"
        );
        Ok(Registered {
            status,
            response: RegisterResponse {
                uuid: record.uuid,
                name: record.name,
                cert_pem: issued.cert_pem,
            },
        })
    }

    /// Puts a device on the onboarding list (its UUID is assigned now, so
    /// a config can be set before it first connects).
    pub async fn add_device(
        self: &Arc<Self>,
        name: &str,
        serial: &str,
    ) -> Result<DeviceRecord, Failure> {
        names::check_name(name).map_err(Failure::bad_request)?;
        names::check_serial(serial).map_err(Failure::bad_request)?;
        let record = DeviceRecord {
            uuid: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            serial: serial.to_owned(),
            added_at: now_rfc3339(),
            registered_at: None,
            public_key: None,
            cert_fingerprints: Vec::new(),
            cert_not_after: None,
            cert_serial: None,
            revoked_at: None,
        };
        let _ops = self.ops.lock().await;
        match self.blocking(move |c| c.db.add_device(record)).await? {
            AddOutcome::Added(r) => {
                self.insert_slot(r.clone());
                tracing::info!(device = %r.name, serial = %r.serial, uuid = %r.uuid, "device added to the onboarding list");
                Ok(r)
            }
            AddOutcome::SerialTaken(d) => Err(Failure::conflict(format!(
                "serial {serial:?} is already on the onboarding list as device {} ({})",
                d.name, d.uuid
            ))),
            AddOutcome::NameTaken(d) => Err(Failure::conflict(format!(
                "a device named {name:?} exists already ({}, serial {:?})",
                d.uuid, d.serial
            ))),
        }
    }

    /// Deletes a device and everything stored for it; its certificates
    /// get 401 from now on and its waiting long-polls end.
    pub async fn delete_device(self: &Arc<Self>, key: &str) -> Result<DeviceRecord, Failure> {
        let slot = self.resolve(key)?;
        let uuid = slot.uuid();
        let _ops = self.ops.lock().await;
        let deleted = {
            let uuid = uuid.clone();
            self.blocking(move |c| c.db.delete_device(&uuid)).await?
        };
        self.remove_slot(&uuid);
        let record = deleted.ok_or_else(|| {
            Failure::not_found(format!("device {key:?} was deleted meanwhile"), Vec::new())
        })?;
        tracing::info!(device = %record.name, uuid = %record.uuid, "device deleted");
        Ok(record)
    }
}
