//! `DELETE /api/v1/attachments/{id}`: a soft delete (`is_deleted`, `deleted_at`) that gives back
//! one reference of the content, with an `attachment.delete` audit row, in one transaction. For the
//! uploader and the tenant's admins (`403` otherwise); another tenant's id is `404`; deleting again
//! is `204` (idempotent). Signed URLs of a deleted attachment answer `410`.

use edge::app::{Call, Reply};
use edge::{ApiError, Problem, response};
use http::StatusCode;
use serde_json::json;
use store::audit_log::{self, AuditEntry};
use store::spin::Db;
use store::{access, attachments, blobs};

use crate::Config;

pub(crate) async fn handle(call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?;
    let id = call.id()?;
    let rid = &call.request_id;
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    let Some(locked) = attachments::lock(&tx, id).await? else {
        return Err(Problem::not_found().into());
    };
    if !access::may_manage(ctx, locked.uploader) {
        return Err(Problem::forbidden().into());
    }
    if locked.is_deleted {
        tx.commit().await?;
        return Ok(response::empty(StatusCode::NO_CONTENT, rid).into());
    }
    let now_ms = auth_core::unix_now().saturating_mul(1000);
    attachments::soft_delete(&tx, id, now_ms).await?;
    blobs::release(&tx, locked.blob).await?;
    let entry = AuditEntry {
        user: Some(&ctx.user),
        action: "attachment.delete",
        resource_type: Some("attachment"),
        resource_id: Some(id.to_string()),
        request_id: rid.as_str(),
        client_addr: call.client_addr(),
        details: json!({ "uploader": locked.uploader.to_string() }),
    };
    audit_log::record(&tx, &entry).await?;
    tx.commit().await?;
    Ok(response::empty(StatusCode::NO_CONTENT, rid).into())
}
