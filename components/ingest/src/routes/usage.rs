//! `GET /api/v1/usage`: what the caller stores (bytes, attachments: live ones, logical bytes) and
//! downloaded today (UTC), with the limits in force. `GET /api/v1/admin/usage`: the tenant's
//! totals and every user's usage, for its admins (the route table makes it admin-only: the
//! middleware and the shell both check). Row-level security keeps every other tenant out.

use edge::app::{Call, Reply};
use edge::{ApiError, response};
use http::StatusCode;
use quota::Limits;
use serde::Serialize;
use store::spin::Db;

use crate::Config;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Usage {
    stored_bytes: u64,
    attachments: u64,
    downloaded_bytes_today: u64,
    /// `null`: unlimited.
    limits: Limits,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TenantTotals {
    stored_bytes: u64,
    attachments: u64,
    downloaded_bytes_today: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserEntry {
    user_id: String,
    email: String,
    role: String,
    stored_bytes: u64,
    attachments: u64,
    downloaded_bytes_today: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TenantUsage {
    tenant: TenantTotals,
    limits: Limits,
    users: Vec<UserEntry>,
}

pub(crate) async fn mine(call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?;
    let user = *ctx.user.as_uuid();
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    let limits = edge::quota::limits(&tx, &cfg.quota).await?;
    let stored = store::quota::stored(&tx, user).await?;
    let downloaded = store::quota::downloaded_today(&tx, user).await?;
    tx.commit().await?;
    let body = Usage {
        stored_bytes: stored.user_bytes,
        attachments: stored.user_attachments,
        downloaded_bytes_today: downloaded,
        limits,
    };
    Ok(response::json(StatusCode::OK, &body, &call.request_id).into())
}

pub(crate) async fn tenant(call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?;
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    let limits = edge::quota::limits(&tx, &cfg.quota).await?;
    let stored = store::quota::stored(&tx, *ctx.user.as_uuid()).await?;
    let users = store::quota::per_user(&tx).await?;
    tx.commit().await?;
    let body = TenantUsage {
        tenant: TenantTotals {
            stored_bytes: stored.tenant_bytes,
            attachments: stored.tenant_attachments,
            downloaded_bytes_today: users.iter().map(|u| u.downloaded_today).sum(),
        },
        limits,
        users: users
            .into_iter()
            .map(|u| UserEntry {
                user_id: u.user.to_string(),
                email: u.email,
                role: u.role,
                stored_bytes: u.stored_bytes,
                attachments: u.attachments,
                downloaded_bytes_today: u.downloaded_today,
            })
            .collect(),
    };
    Ok(response::json(StatusCode::OK, &body, &call.request_id).into())
}
