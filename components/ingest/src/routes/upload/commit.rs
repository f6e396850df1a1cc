//! The upload's one transaction, on a connection opened only now that the body is read: per file,
//! the dedup upsert of its blob, the scan job the upload awaits (`store::blobs::awaited_scan`: new
//! content's, the content's open one, or a new one for an uploader who never had the content), its
//! attachment row and its `attachment.upload` audit row, then the quota check on the totals that
//! now include the upload (`edge::quota::check_commit`). All or nothing: on any error it is rolled
//! back. The answer tells the uploader only what is theirs: `isDeduplicated` for content they had
//! uploaded before, and `pending` until the scan their upload awaits is done.

use auth_core::AuthContext;
use edge::{ApiError, RequestId};
use serde_json::json;
use store::attachments::{self, NewAttachment};
use store::audit_log::{self, AuditEntry};
use store::blobs::{self, NewBlob};
use store::spin::Db;
use store::{Conn, TenantTx};
use uuid::Uuid;

use super::file::Stored;
use crate::Config;
use crate::view::{self, Attachment};

/// One recorded file: its answer, and whether this request's copy of it is unused (the tenant
/// held the content already: the first upload's object serves it).
pub(super) struct Recorded {
    pub attachment: Attachment,
    pub copy_unused: bool,
}

/// Records every file of `stored` on `message`; the answers in the same order.
pub(super) async fn run(
    cfg: &Config,
    ctx: &AuthContext,
    message: Uuid,
    stored: &[Stored],
    rid: &RequestId,
    client: Option<String>,
) -> Result<Vec<Recorded>, ApiError> {
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    let mut out = Vec::with_capacity(stored.len());
    for s in stored {
        match record(&tx, cfg, ctx, message, s, rid, client.clone()).await {
            Ok(a) => out.push(a),
            Err(e) => {
                tx.rollback().await;
                return Err(e);
            }
        }
    }
    // The inserts moved (and locked) the quota counters: judge the totals with this upload in.
    let bytes = stored.iter().map(|s| s.size).sum();
    let count = stored.len() as u64;
    if let Err(e) =
        edge::quota::check_commit(&tx, &cfg.quota, *ctx.user.as_uuid(), bytes, count).await
    {
        tx.rollback().await;
        return Err(e);
    }
    tx.commit().await?;
    Ok(out)
}

async fn record<C: Conn>(
    tx: &TenantTx<'_, C>,
    cfg: &Config,
    ctx: &AuthContext,
    message: Uuid,
    s: &Stored,
    rid: &RequestId,
    client: Option<String>,
) -> Result<Recorded, ApiError> {
    let size = i64::try_from(s.size).map_err(|_| ApiError::internal("size overflow"))?;
    let hash = s.hash.hex();
    let new_blob = NewBlob {
        content_sha256: &hash,
        size_bytes: size,
        storage_key: s.key.as_str(),
        sniffed_mime: s.detected.sniffed.as_deref(),
    };
    let blob = blobs::upsert(tx, &new_blob).await?;
    if blob.inserted && !s.uploaded {
        // The user's content vanished between the check and now: nothing is stored for it.
        return Err(ApiError::unavailable(
            "deduplicated content disappeared; retry",
        ));
    }
    let awaited = blobs::awaited_scan(tx, blob.id, *ctx.user.as_uuid()).await?;
    let new_attachment = NewAttachment {
        id: None,
        message,
        blob: blob.id,
        uploader: *ctx.user.as_uuid(),
        filename: s.filename.as_str(),
        declared_mime: s.declared.as_deref(),
        detected_mime: &s.detected.mime,
        size_bytes: size,
        scan_job: awaited.job,
        retention: cfg.retention,
    };
    let row = attachments::insert(tx, &new_attachment).await?;
    let entry = AuditEntry {
        user: Some(&ctx.user),
        action: "attachment.upload",
        resource_type: Some("attachment"),
        resource_id: Some(row.id.to_string()),
        request_id: rid.as_str(),
        client_addr: client,
        details: json!({
            "messageId": message.to_string(),
            "size": size,
            "contentHash": hash,
            "mimeType": s.detected.mime,
            // Storage: the tenant held this content already (the admins' audit log may say so).
            "deduplicated": !blob.inserted,
            "ownDuplicate": awaited.own_earlier,
        }),
    };
    audit_log::record(tx, &entry).await?;
    let (download_url, download_url_expires_at) =
        view::download_url(cfg, &ctx.tenant, row.id, row.url_generation);
    let attachment = Attachment {
        id: row.id.to_string(),
        message_id: message.to_string(),
        filename: s.filename.as_str().to_owned(),
        mime_type: s.detected.mime.clone(),
        size,
        content_hash: Some(hash),
        virus_scan_status: attachments::reported_status(&blob.scan_status, awaited.job.is_some())
            .to_owned(),
        is_deduplicated: awaited.own_earlier,
        created_at: row.created_at,
        download_url: Some(download_url),
        download_url_expires_at: Some(download_url_expires_at),
        rejection: None,
        upload_id: None,
    };
    Ok(Recorded {
        attachment,
        copy_unused: !blob.inserted,
    })
}
