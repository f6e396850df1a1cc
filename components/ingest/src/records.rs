//! Reading and soft-deleting attachments (all under the caller's tenant, RLS enforced):
//!
//! * who may: a message's attachments are visible to the message's owner, the uploader and the
//!   tenant's admins; anyone else of the tenant gets `403`; another tenant's ids are `404`;
//! * `DELETE` is for the uploader or an admin; it is a soft delete (`is_deleted`, `deleted_at`) and
//!   releases one reference of the blob; deleting again is `204` (idempotent).

use auth_core::{AuthContext, Role};
use edge::spin::{AuditEntry, Db, Tx, cell};
use edge::{ApiError, Problem, RequestId, response};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use spin_sdk::pg::ParameterValue;
use uuid::Uuid;

use crate::view::{self, SELECT_ATTACHMENT};
use crate::{Config, Reply};

fn uuid_param(u: Uuid) -> ParameterValue {
    ParameterValue::Uuid(u.hyphenated().to_string())
}

fn may_see(ctx: &AuthContext, owner: &str, uploader: Option<&str>) -> bool {
    let me = ctx.user.to_string();
    ctx.role == Role::Admin || owner == me || uploader == Some(me.as_str())
}

/// The message must exist in the caller's tenant (`404`) and be the caller's unless admin (`403`).
pub(crate) async fn check_message(
    tx: &Tx<'_>,
    ctx: &AuthContext,
    message: Uuid,
) -> Result<(), ApiError> {
    let rows = tx
        .query(
            "SELECT owner_user_id FROM email_messages WHERE id = $1 AND NOT is_deleted",
            vec![uuid_param(message)],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Err(Problem::not_found().into());
    };
    let owner = cell::text(row, 0).unwrap_or_default();
    if may_see(ctx, &owner, None) {
        Ok(())
    } else {
        Err(Problem::forbidden().into())
    }
}

pub(crate) async fn list(
    cfg: &Config,
    ctx: &AuthContext,
    message: Uuid,
    rid: &RequestId,
) -> Result<Reply, ApiError> {
    let db = Db::open(&cfg.database_url).await?;
    let tx = db.begin_for_tenant(&ctx.tenant).await?;
    check_message(&tx, ctx, message).await?;
    let rows = tx
        .query(
            &format!(
                "{SELECT_ATTACHMENT} WHERE a.message_id = $1 AND NOT a.is_deleted \
                 ORDER BY a.created_at DESC, a.id DESC"
            ),
            vec![uuid_param(message)],
        )
        .await?;
    tx.commit().await?;
    let attachments = rows
        .iter()
        .map(|r| view::from_row(cfg, &ctx.tenant, r).map(|l| l.attachment))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(response::json(
        StatusCode::OK,
        &json!({ "attachments": attachments }),
        rid,
    ))
}

pub(crate) async fn get(
    cfg: &Config,
    ctx: &AuthContext,
    id: Uuid,
    rid: &RequestId,
) -> Result<Reply, ApiError> {
    let db = Db::open(&cfg.database_url).await?;
    let tx = db.begin_for_tenant(&ctx.tenant).await?;
    let rows = tx
        .query(
            &format!("{SELECT_ATTACHMENT} WHERE a.id = $1"),
            vec![uuid_param(id)],
        )
        .await?;
    tx.commit().await?;
    let Some(row) = rows.first() else {
        return Err(Problem::not_found().into());
    };
    let loaded = view::from_row(cfg, &ctx.tenant, row)?;
    if loaded.is_deleted {
        return Err(Problem::not_found().into());
    }
    if !may_see(ctx, &loaded.message_owner, Some(&loaded.uploader)) {
        return Err(Problem::forbidden().into());
    }
    Ok(response::json(StatusCode::OK, &loaded.attachment, rid))
}

pub(crate) async fn delete(
    headers: &HeaderMap,
    cfg: &Config,
    ctx: &AuthContext,
    id: Uuid,
    rid: &RequestId,
) -> Result<Reply, ApiError> {
    let db = Db::open(&cfg.database_url).await?;
    let tx = db.begin_for_tenant(&ctx.tenant).await?;
    let rows = tx
        .query(
            "SELECT uploader_user_id, is_deleted, blob_id FROM email_attachments \
             WHERE id = $1 FOR UPDATE",
            vec![uuid_param(id)],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Err(Problem::not_found().into());
    };
    let uploader = cell::text(row, 0).unwrap_or_default();
    if ctx.role != Role::Admin && uploader != ctx.user.to_string() {
        return Err(Problem::forbidden().into());
    }
    if cell::boolean(row, 1) == Some(true) {
        tx.commit().await?;
        return Ok(response::empty(StatusCode::NO_CONTENT, rid));
    }
    let blob = cell::text(row, 2).unwrap_or_default();
    let now_ms = auth_core::unix_now().saturating_mul(1000);
    tx.execute(
        "UPDATE email_attachments SET is_deleted = true, deleted_at = $2 WHERE id = $1",
        vec![uuid_param(id), ParameterValue::Int64(now_ms)],
    )
    .await?;
    tx.execute(
        "UPDATE attachment_blobs SET ref_count = ref_count - 1 WHERE id = $1 AND ref_count > 0",
        vec![ParameterValue::Uuid(blob)],
    )
    .await?;
    tx.audit(&AuditEntry {
        tenant: &ctx.tenant,
        user: Some(&ctx.user),
        action: "attachment.delete",
        resource_type: Some("attachment"),
        resource_id: Some(id.to_string()),
        request_id: rid.as_str(),
        client_addr: edge::client::client_ip(headers).map(|ip| ip.to_string()),
        details: json!({ "uploader": uploader }),
    })
    .await?;
    tx.commit().await?;
    Ok(response::empty(StatusCode::NO_CONTENT, rid))
}
