//! The upload's one transaction, on a connection opened only now that the body is read: per file,
//! the dedup upsert of its blob (a scan job for new content), its attachment row and its
//! `attachment.upload` audit row. All or nothing: on any error it is rolled back.

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

/// Records every file of `stored` on `message`; the answers in the same order.
pub(super) async fn run(
    cfg: &Config,
    ctx: &AuthContext,
    message: Uuid,
    stored: &[Stored],
    rid: &RequestId,
    client: Option<String>,
) -> Result<Vec<Attachment>, ApiError> {
    let db = Db::open(&cfg.database_url).await?;
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
) -> Result<Attachment, ApiError> {
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
    if blob.inserted {
        blobs::enqueue_scan(tx, blob.id).await?;
    }
    let new_attachment = NewAttachment {
        message,
        blob: blob.id,
        uploader: *ctx.user.as_uuid(),
        filename: s.filename.as_str(),
        declared_mime: s.declared.as_deref(),
        detected_mime: &s.detected.mime,
        size_bytes: size,
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
            "deduplicated": !blob.inserted,
        }),
    };
    audit_log::record(tx, &entry).await?;
    let (download_url, download_url_expires_at) =
        view::download_url(cfg, &ctx.tenant, row.id, row.url_generation);
    Ok(Attachment {
        id: row.id.to_string(),
        message_id: message.to_string(),
        filename: s.filename.as_str().to_owned(),
        mime_type: s.detected.mime.clone(),
        size,
        content_hash: hash,
        virus_scan_status: blob.scan_status,
        is_deduplicated: !blob.inserted,
        created_at: row.created_at,
        download_url,
        download_url_expires_at,
    })
}
