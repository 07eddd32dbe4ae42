//! containerd leases: everything the agent writes is held by one until an
//! image record or a labelled object references it.

use std::collections::HashMap;

use containerd_client::services::v1::{CreateRequest, DeleteRequest, ListRequest};

use crate::client::Containerd;
use crate::error::{Result, RuntimeError};
use crate::labels;

/// A lease that expires by itself after 24 h if the agent dies before
/// deleting it, so a crash never pins content forever.
#[derive(Debug)]
pub struct Lease {
    id: String,
}

impl Lease {
    /// Creates a lease whose ID starts with `purpose`.
    pub async fn create(c: &Containerd, purpose: &str) -> Result<Lease> {
        let id = format!("outpost-{purpose}-{:016x}", rand::random::<u64>());
        let expire = time::OffsetDateTime::now_utc() + time::Duration::hours(24);
        let expire = expire
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut l = HashMap::new();
        l.insert(labels::GC_EXPIRE.to_owned(), expire);
        l.insert(labels::LEASE_OWNER.to_owned(), purpose.to_owned());
        c.leases()
            .create(c.req(CreateRequest {
                id: id.clone(),
                labels: l,
            }))
            .await
            .map_err(|s| RuntimeError::api("leases.Create", &id, s))?;
        Ok(Lease { id })
    }

    /// The lease ID (for the `containerd-lease` header).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Deletes the lease; what it held is now kept only by references.
    pub async fn delete(self, c: &Containerd) -> Result<()> {
        delete(c, &self.id).await
    }
}

async fn delete(c: &Containerd, id: &str) -> Result<()> {
    match c
        .leases()
        .delete(c.req(DeleteRequest {
            id: id.to_owned(),
            sync: false,
        }))
        .await
    {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
        Err(s) => Err(RuntimeError::api("leases.Delete", id, s)),
    }
}

/// IDs of every lease the agent created in this namespace.
pub async fn list_own(c: &Containerd) -> Result<Vec<String>> {
    let r = c
        .leases()
        .list(c.req(ListRequest {
            filters: vec![format!("labels.\"{}\"", labels::LEASE_OWNER)],
        }))
        .await
        .map_err(|s| RuntimeError::api("leases.List", c.namespace(), s))?;
    Ok(r.into_inner().leases.into_iter().map(|l| l.id).collect())
}

/// Deletes leases left by a previous agent that died mid-operation.
pub async fn delete_leftovers(c: &Containerd) -> Result<usize> {
    let ids = list_own(c).await?;
    for id in &ids {
        delete(c, id).await?;
    }
    Ok(ids.len())
}
