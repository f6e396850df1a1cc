//! The retention purge, the worker's side (migration 0019): attachments past retention or
//! soft-deleted longer than the grace period are deleted with an audit row each, content nobody
//! references any more turns `purging`, and each purging blob is claimed with a lease, its object
//! deleted by the worker, then forgotten. Every statement is one call of a `SECURITY DEFINER`
//! function across tenants (`FOR UPDATE SKIP LOCKED`: purgers side by side take disjoint rows), the
//! only thing the scanner role may do with these tables.
//!
//! The order makes a purge killed anywhere safe to run again: rows go first, in one transaction
//! with the mark on their blob; the object only once its blob is purging (no row references it,
//! no upload can join it); the blob row last, once the object is gone.

use uuid::Uuid;

use crate::conn::Conn;
use crate::error::{Result, StoreError};
use crate::value::{Param, Row};

const CANDIDATES: &str = "SELECT attachment_id, tenant_id, blob_id, reason, size_bytes, blob_goes \
     FROM purge_candidates($1, $2)";

const PURGE: &str = "SELECT attachment_id, tenant_id, blob_id, reason, blob_purging \
     FROM purge_attachments($1, $2, $3)";

const CLAIM_BLOBS: &str =
    "SELECT blob_id, tenant_id, storage_key FROM purge_claim_blobs($1, $2, $3)";

const FORGET_BLOB: &str = "SELECT purge_forget_blob($1, $2, $3)";

/// Why an attachment is purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Past its `retention_expires_at`.
    Retention,
    /// Soft-deleted longer than the grace period.
    Deleted,
}

impl Reason {
    /// The database's (and the audit row's) word for it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Retention => "retention",
            Self::Deleted => "deleted",
        }
    }

    fn parse(context: &'static str, s: &str) -> Result<Self> {
        match s {
            "retention" => Ok(Self::Retention),
            "deleted" => Ok(Self::Deleted),
            other => Err(StoreError::decode(context, format!("reason {other:?}"))),
        }
    }
}

/// An attachment a purge takes (or, for a dry run, would take).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    pub attachment: Uuid,
    pub tenant: Uuid,
    pub blob: Uuid,
    pub reason: Reason,
    /// Its blob is purging now (no row references it): its object goes next. For a dry run: it
    /// would be.
    pub blob_goes: bool,
}

/// A purging blob leased to a worker: delete the object at `storage_key`, then [`forget_blob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgingBlob {
    pub blob: Uuid,
    pub tenant: Uuid,
    pub storage_key: String,
}

fn int4(n: u32) -> Param {
    Param::Int32(i32::try_from(n).unwrap_or(i32::MAX))
}

/// What a purge would take now, at most `limit` attachments, with `grace_days` for soft-deleted
/// ones; changes nothing.
pub async fn candidates<C: Conn>(
    conn: &C,
    grace_days: u32,
    limit: u32,
) -> Result<Vec<(Purged, i64)>> {
    const CONTEXT: &str = "purge candidates";
    let rows = conn
        .query(CONTEXT, CANDIDATES, vec![int4(grace_days), int4(limit)])
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                Purged {
                    attachment: r.uuid(0)?,
                    tenant: r.uuid(1)?,
                    blob: r.uuid(2)?,
                    reason: Reason::parse(CONTEXT, &r.text(3)?)?,
                    blob_goes: r.bool(5)?,
                },
                r.int(4)?,
            ))
        })
        .collect()
}

/// Purges up to `limit` attachments for `worker` in one transaction (rows, references, audit rows,
/// the purging mark of content left unreferenced); what it took. The database refuses an empty or
/// overlong worker name, `grace_days` outside 0..=36500 and `limit` outside 1..=10000.
pub async fn purge_attachments<C: Conn>(
    conn: &C,
    worker: &str,
    grace_days: u32,
    limit: u32,
) -> Result<Vec<Purged>> {
    const CONTEXT: &str = "purge attachments";
    let rows = conn
        .query(
            CONTEXT,
            PURGE,
            vec![worker.into(), int4(grace_days), int4(limit)],
        )
        .await?;
    rows.iter()
        .map(|r: &Row| {
            Ok(Purged {
                attachment: r.uuid(0)?,
                tenant: r.uuid(1)?,
                blob: r.uuid(2)?,
                reason: Reason::parse(CONTEXT, &r.text(3)?)?,
                blob_goes: r.bool(4)?,
            })
        })
        .collect()
}

/// Claims up to `limit` purging blobs for `worker` with a lease of `lease_secs`: those nobody
/// holds, whose lease expired, or that `worker` held before (a restart under the same name).
pub async fn claim_blobs<C: Conn>(
    conn: &C,
    worker: &str,
    lease_secs: u32,
    limit: u32,
) -> Result<Vec<PurgingBlob>> {
    const CONTEXT: &str = "claim purging blobs";
    let rows = conn
        .query(
            CONTEXT,
            CLAIM_BLOBS,
            vec![worker.into(), int4(lease_secs), int4(limit)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(PurgingBlob {
                blob: r.uuid(0)?,
                tenant: r.uuid(1)?,
                storage_key: r.text(2)?,
            })
        })
        .collect()
}

/// Forgets purging blob `blob` (its scan jobs, its row; an audit row) once its object at
/// `storage_key` is deleted; false when `worker` does not hold it or its key changed meanwhile.
pub async fn forget_blob<C: Conn>(
    conn: &C,
    blob: Uuid,
    worker: &str,
    storage_key: &str,
) -> Result<bool> {
    const CONTEXT: &str = "forget purged blob";
    let rows = conn
        .query(
            CONTEXT,
            FORGET_BLOB,
            vec![blob.into(), worker.into(), storage_key.into()],
        )
        .await?;
    rows.first()
        .ok_or_else(|| StoreError::decode(CONTEXT, "no row"))?
        .bool(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_the_database_words() {
        for r in [Reason::Retention, Reason::Deleted] {
            assert_eq!(Reason::parse("t", r.as_str()), Ok(r));
        }
        assert!(Reason::parse("t", "Retention").is_err());
    }
}
