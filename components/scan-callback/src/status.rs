//! `GET /api/v1/attachments/:id/scan-status`, behind the auth middleware (identity from
//! `x-auth-context` only): `200 {"status","details","engine","signature","scannedAt"}`, the verdict in
//! force for the attachment's content (shared by every attachment with that content).
//!
//! Who may read it: like the attachment itself (`GET /api/v1/attachments/:id` in ingest): the
//! message's owner, the uploader and the tenant's admins; anyone else of the tenant `403`; another
//! tenant's or a deleted attachment `404`; a malformed id `400 invalid_id`.

use auth_core::{AuthContext, Role};
use edge::log::RequestLog;
use edge::spin::{Db, cell};
use edge::{ApiError, Problem, RequestId, response};
use http::StatusCode;
use serde::Serialize;
use spin_sdk::http::Request;
use spin_sdk::pg::ParameterValue;

use crate::{Reply, config, context_key};

const SELECT_STATUS: &str = "SELECT b.scan_status, b.scan_details, b.scan_engine, b.scan_signature, b.scanned_at, \
     a.is_deleted, a.uploader_user_id, m.owner_user_id \
     FROM email_attachments a \
     JOIN attachment_blobs b ON b.tenant_id = a.tenant_id AND b.id = a.blob_id \
     JOIN email_messages m ON m.tenant_id = a.tenant_id AND m.id = a.message_id \
     WHERE a.id = $1";

/// The `ScanStatus` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ScanStatusBody {
    status: String,
    details: Option<String>,
    engine: Option<String>,
    signature: Option<String>,
    scanned_at: Option<i64>,
}

fn may_see(ctx: &AuthContext, owner: &str, uploader: &str) -> bool {
    let me = ctx.user.to_string();
    ctx.role == Role::Admin || owner == me || uploader == me
}

pub(crate) async fn get(
    req: Request,
    id: &str,
    rid: &mut RequestId,
    log: &mut RequestLog,
) -> Result<Reply, ApiError> {
    let ctx = edge::inner::authenticate(req.headers(), context_key().await?, auth_core::unix_now())?;
    log.user_id = Some(ctx.user.to_string());
    log.tenant_id = Some(ctx.tenant.to_string());
    log.role = Some(ctx.role.as_str());
    *rid = RequestId::from_client(Some(ctx.request_id.as_bytes()));
    let id = edge::path_id(id)?;
    let cfg = config().await?;

    let db = Db::open(&cfg.database_url).await?;
    let tx = db.begin_for_tenant(&ctx.tenant).await?;
    let rows = tx
        .query(SELECT_STATUS, vec![ParameterValue::Uuid(id.hyphenated().to_string())])
        .await?;
    tx.commit().await?;
    let Some(row) = rows.first() else {
        return Err(Problem::not_found().into());
    };
    if cell::boolean(row, 5) != Some(false) {
        return Err(Problem::not_found().into());
    }
    let uploader = cell::text(row, 6).unwrap_or_default();
    let owner = cell::text(row, 7).unwrap_or_default();
    if !may_see(&ctx, &owner, &uploader) {
        return Err(Problem::forbidden().into());
    }
    let body = ScanStatusBody {
        status: cell::text(row, 0).ok_or_else(|| ApiError::internal("scan_status"))?,
        details: cell::text(row, 1),
        engine: cell::text(row, 2),
        signature: cell::text(row, 3),
        scanned_at: cell::int(row, 4),
    };
    Ok(response::json(StatusCode::OK, &body, rid))
}
