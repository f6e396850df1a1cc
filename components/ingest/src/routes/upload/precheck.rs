//! Before the body: the message and the dedup shortcut, on a connection that is closed again before
//! the body streams (a slow upload must not hold one of the pool's connections).

use auth_core::AuthContext;
use edge::ApiError;
use store::blobs;
use store::spin::Db;
use uuid::Uuid;

use super::request::Upload;
use crate::Config;

/// Checks the message (`404` / `403`) and the quotas against the claimed size (`403
/// quota_exceeded`, before any byte is read), and answers whether the content must be stored: not when a
/// raw body's `Repr-Digest` names content this same user already uploaded (it is still hashed and
/// checked against the digest while it streams).
pub(super) async fn run(
    cfg: &Config,
    ctx: &AuthContext,
    message: Uuid,
    upload: &Upload,
) -> Result<bool, ApiError> {
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    crate::routes::check_message(&tx, ctx, message).await?;
    // The claimed size: a raw body's Content-Length; a multipart body's framing is not content, so
    // it claims one attachment and no bytes (the commit judges the real sizes).
    let claimed = if upload.is_multipart() {
        0
    } else {
        upload.expected.unwrap_or(0)
    };
    edge::quota::check_claim(&tx, &cfg.quota, *ctx.user.as_uuid(), claimed, 1).await?;
    let store = match (&upload.digest, upload.is_multipart()) {
        (Some(d), false) => {
            let hash = d.as_hash().hex();
            !blobs::held_by_uploader(&tx, &hash, *ctx.user.as_uuid()).await?
        }
        _ => true,
    };
    tx.commit().await?;
    Ok(store)
}
