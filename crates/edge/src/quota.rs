//! The quota checks every upload path and every download makes, so that the single-request upload,
//! direct and tus uploads, their verification and the content route cannot judge a quota
//! differently: the tenant's limits (settings with its overrides), then the rule of `quota` over
//! the counters of `store::quota`, refused as `403 quota_exceeded`.
//!
//! - [`check_claim`]: before any byte is read, with the size the client claims; not race-free on
//!   its own (nothing is reserved), it only spares a doomed upload its bytes.
//! - [`check_commit`]: in the commit transaction, after the attachment rows are inserted (their
//!   trigger moved and locked the counters): the totals now include this request and no
//!   concurrent commit can move them before this transaction ends; over a limit, the caller rolls
//!   back.
//! - [`charge_download`]: adds an answer's bytes to the user's day, refused past the limit.

use ::quota::{Limits, StoredUsage};
use store::{Conn, TenantTx};
use uuid::Uuid;

use crate::ApiError;

/// The limits in force for the transaction's tenant: `defaults` with the tenant's overrides.
pub async fn limits<C: Conn>(tx: &TenantTx<'_, C>, defaults: &Limits) -> Result<Limits, ApiError> {
    Ok(defaults.with_overrides(&store::quota::overrides(tx).await?))
}

/// `403 quota_exceeded` when storing `bytes` more in `count` more attachments would pass a limit of
/// the tenant or of `user`, judged on what is stored now.
pub async fn check_claim<C: Conn>(
    tx: &TenantTx<'_, C>,
    defaults: &Limits,
    user: Uuid,
    bytes: u64,
    count: u64,
) -> Result<(), ApiError> {
    let limits = limits(tx, defaults).await?;
    if !limits.limits_storage() {
        return Ok(());
    }
    let usage = store::quota::stored(tx, user).await?;
    limits
        .check_stored(&usage, bytes, count)
        .map_err(|e| ApiError::new(e.problem()))
}

/// `403 quota_exceeded` when the totals, which already include this transaction's `bytes` in
/// `count` new attachments of `user`, pass a limit. Call it after the inserts; on an error, roll
/// back.
pub async fn check_commit<C: Conn>(
    tx: &TenantTx<'_, C>,
    defaults: &Limits,
    user: Uuid,
    bytes: u64,
    count: u64,
) -> Result<(), ApiError> {
    let limits = limits(tx, defaults).await?;
    if !limits.limits_storage() {
        return Ok(());
    }
    let totals: StoredUsage = store::quota::stored(tx, user).await?;
    limits
        .check_stored_after(&totals, bytes, count)
        .map_err(|e| ApiError::new(e.problem()))
}

/// Adds `bytes` served to `user` to their day; `403 quota_exceeded` (nothing added) when that
/// would pass their daily download limit.
pub async fn charge_download<C: Conn>(
    tx: &TenantTx<'_, C>,
    defaults: &Limits,
    user: Uuid,
    bytes: u64,
) -> Result<(), ApiError> {
    let limits = limits(tx, defaults).await?;
    let Some(limit) = limits.user_download_bytes_per_day else {
        return Ok(());
    };
    if bytes == 0 || store::quota::charge_download(tx, user, bytes, Some(limit)).await? {
        return Ok(());
    }
    let used = store::quota::downloaded_today(tx, user).await?;
    Err(match limits.check_download(used, bytes) {
        Err(e) => ApiError::new(e.problem()),
        // The day turned, or a concurrent download was charged and then rolled back, between
        // the two statements: still refused, with the numbers as they are now.
        Ok(()) => ApiError::new(
            ::quota::Exceeded {
                quota: ::quota::Quota::UserDownloadBytesPerDay,
                limit,
                usage: used,
                requested: bytes,
            }
            .problem(),
        ),
    })
}
