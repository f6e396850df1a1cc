//! The worker's operations side (migration 0017): what the reconcile job asks the database about the
//! bucket's keys (which keys it knows in a range, marking a blob's object missing or present again,
//! the session of a multipart upload) and the queue gauges of the worker's metrics. Every statement
//! is one call of a `SECURITY DEFINER` function the scanner role may execute; they return keys, ids,
//! counts and times, never a tenant's content or names.

use uuid::Uuid;

use crate::conn::Conn;
use crate::error::{Result, StoreError};
use crate::value::Param;

/// The known keys in `($1, $2]` (byte order), at most `$3`, in key order.
const KNOWN_KEYS: &str = "SELECT storage_key, kind, blob_id, tenant_id, expect_object, missing_since \
     FROM reconcile_known_keys($1, $2, $3)";

/// `missing_since` after marking, or no value when the row's key changed.
const MARK_MISSING: &str = "SELECT reconcile_mark_missing($1, $2)";

/// Whether a mark was cleared.
const CLEAR_MISSING: &str = "SELECT reconcile_clear_missing($1)";

/// The session of a multipart upload: `expires_at`, `state`.
const MULTIPART_SESSION: &str = "SELECT expires_at, state FROM reconcile_multipart_session($1, $2)";

/// The queue gauges.
const QUEUE_STATS: &str = "SELECT scan_pending, scan_running, oldest_pending_age_ms, verify_pending \
     FROM worker_queue_stats()";

/// Who knows a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOwner {
    /// A blob (stored content); `expect_object` is false when the quarantine deleted its object on
    /// purpose.
    Blob { id: Uuid, expect_object: bool },
    /// An upload session (direct or tus): its object may or may not exist yet.
    Session,
}

/// A key the database knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownKey {
    pub storage_key: String,
    pub owner: KeyOwner,
    pub tenant_id: Uuid,
    /// When reconcile first found a blob's object missing (epoch ms).
    pub missing_since: Option<i64>,
}

/// The known keys `k` with `after < k <= upto` in byte order, at most `limit` (1..=10000), in key
/// order (a blob before a session of the same key).
pub async fn known_keys<C: Conn>(
    conn: &C,
    after: &str,
    upto: &str,
    limit: u32,
) -> Result<Vec<KnownKey>> {
    const CONTEXT: &str = "reconcile known keys";
    let rows = conn
        .query(
            CONTEXT,
            KNOWN_KEYS,
            vec![
                after.into(),
                upto.into(),
                Param::Int32(i32::try_from(limit).unwrap_or(i32::MAX)),
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let kind = r.text(1)?;
            let owner = match kind.as_str() {
                "blob" => KeyOwner::Blob {
                    id: r
                        .opt_uuid(2)?
                        .ok_or_else(|| StoreError::decode(CONTEXT, "a blob without its id"))?,
                    expect_object: r.bool(4)?,
                },
                "session" => KeyOwner::Session,
                other => return Err(StoreError::decode(CONTEXT, format!("kind {other}"))),
            };
            Ok(KnownKey {
                storage_key: r.text(0)?,
                owner,
                tenant_id: r.uuid(3)?,
                missing_since: r.opt_int(5)?,
            })
        })
        .collect()
}

/// Marks blob `blob`'s object missing while its key is still `key`; `missing_since` (the first time
/// it was found missing), `None` when the row moved on or is gone.
pub async fn mark_missing<C: Conn>(conn: &C, blob: Uuid, key: &str) -> Result<Option<i64>> {
    let rows = conn
        .query(
            "reconcile mark missing",
            MARK_MISSING,
            vec![blob.into(), key.into()],
        )
        .await?;
    match rows.first() {
        Some(r) => r.opt_int(0),
        None => Ok(None),
    }
}

/// Clears blob `blob`'s missing mark (its object is back); whether there was one.
pub async fn clear_missing<C: Conn>(conn: &C, blob: Uuid) -> Result<bool> {
    let rows = conn
        .query("reconcile clear missing", CLEAR_MISSING, vec![blob.into()])
        .await?;
    match rows.first() {
        Some(r) => r.bool(0),
        None => Ok(false),
    }
}

/// The session owning a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartSession {
    /// When the session expires (epoch ms).
    pub expires_at: i64,
    /// `open`, `verifying`, `done`, `rejected` or `aborted`.
    pub state: String,
}

/// The session of multipart upload `upload_id` at `key`, if one knows it.
pub async fn multipart_session<C: Conn>(
    conn: &C,
    key: &str,
    upload_id: &str,
) -> Result<Option<MultipartSession>> {
    let rows = conn
        .query(
            "reconcile multipart session",
            MULTIPART_SESSION,
            vec![key.into(), upload_id.into()],
        )
        .await?;
    rows.first()
        .map(|r| {
            Ok(MultipartSession {
                expires_at: r.int(0)?,
                state: r.text(1)?,
            })
        })
        .transpose()
}

/// The worker's queue gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Scan jobs pending (due or waiting for their retry).
    pub scan_pending: i64,
    /// Scan jobs leased to a worker.
    pub scan_running: i64,
    /// Age of the oldest pending scan job, ms; `None` when there is none.
    pub oldest_pending_age_ms: Option<i64>,
    /// Direct uploads waiting for verification.
    pub verify_pending: i64,
}

/// The queue gauges, across tenants.
pub async fn queue_stats<C: Conn>(conn: &C) -> Result<QueueStats> {
    const CONTEXT: &str = "worker queue stats";
    let rows = conn.query(CONTEXT, QUEUE_STATS, Vec::new()).await?;
    let r = rows
        .first()
        .ok_or_else(|| StoreError::decode(CONTEXT, "no row"))?;
    Ok(QueueStats {
        scan_pending: r.int(0)?,
        scan_running: r.int(1)?,
        oldest_pending_age_ms: r.opt_int(2)?,
        verify_pending: r.int(3)?,
    })
}
