//! `GET /api/v1/auth/me`: who the token says the caller is, with their current email (read under
//! the tenant's row-level security). A user or tenant disabled since the token was issued is `401`.

use edge::app::{Call, Reply};
use edge::{ApiError, response};
use http::StatusCode;
use serde::Serialize;
use store::Tx;
use store::identity;
use store::spin::Db;

use crate::Config;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Me {
    user_id: String,
    tenant_id: String,
    role: &'static str,
    email: String,
    /// The access token's expiry, epoch milliseconds.
    expires_at: i64,
}

pub(crate) async fn handle(call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?;
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = Tx::for_tenant(&db, &ctx.tenant).await?;
    let user = identity::current_user(&tx, &ctx.user).await?;
    tx.commit().await?;
    let Some(user) = user.filter(|u| u.active) else {
        call.log.reason = Some("user_gone_or_inactive".into());
        return Err(auth_core::Error::ContextInvalid.into());
    };
    let me = Me {
        user_id: ctx.user.to_string(),
        tenant_id: ctx.tenant.to_string(),
        role: ctx.role.as_str(),
        email: user.email,
        expires_at: ctx.token_expires_at.saturating_mul(1000),
    };
    Ok(response::json(StatusCode::OK, &me, &call.request_id).into())
}
