//! `POST /api/v1/attachments/{id}/revoke-urls` → `204`, for whoever may issue URLs of the
//! attachment (`store::access::may_read`: its message's owner, its uploader, the tenant's admins;
//! `403 forbidden` otherwise; another tenant's or a deleted attachment: `404`): bumps
//! `url_generation`, which every signed URL carries, so every URL issued so far stops working;
//! audited as `attachment.revoke_urls`.

use edge::app::{Call, Reply};
use edge::{ApiError, Problem, response};
use http::StatusCode;
use serde_json::json;
use store::audit_log::{self, AuditEntry};
use store::spin::Db;
use store::{access, attachments};

use crate::Config;

pub(crate) async fn handle(call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?;
    let id = call.id()?;
    let rid = &call.request_id;
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    let locked = attachments::lock(&tx, id).await?;
    let Some(locked) = locked.filter(|l| !l.is_deleted) else {
        tx.rollback().await;
        return Err(Problem::not_found().into());
    };
    if !access::may_read(ctx, locked.message_owner, Some(locked.uploader)) {
        tx.rollback().await;
        return Err(Problem::forbidden().into());
    }
    attachments::bump_url_generation(&tx, id).await?;
    let entry = AuditEntry {
        user: Some(&ctx.user),
        action: "attachment.revoke_urls",
        resource_type: Some("attachment"),
        resource_id: Some(id.to_string()),
        request_id: rid.as_str(),
        client_addr: call.client_addr(),
        details: json!({}),
    };
    audit_log::record(&tx, &entry).await?;
    tx.commit().await?;
    Ok(response::empty(StatusCode::NO_CONTENT, rid).into())
}
