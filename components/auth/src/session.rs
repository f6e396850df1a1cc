//! The caller's own session, behind the auth middleware (identity from `x-auth-context` only):
//!
//! * `GET /api/v1/auth/me`: who the token says you are, plus your current email (read under the
//!   tenant's RLS); a user or tenant disabled since the token was issued is `401`.
//! * `POST /api/v1/auth/logout`: with `{"refreshToken"}`, revokes that token's whole family (only
//!   if it is the caller's own); always `204`, written as `auth.logout`. The access token itself
//!   stays valid until it expires (it is stateless and short-lived).

use auth_core::refresh::RefreshToken;
use edge::body::{self, SMALL_JSON_LIMIT};
use edge::log::RequestLog;
use edge::spin::{AuditEntry, Db, cell};
use edge::{ApiError, RequestId, response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use spin_sdk::http::Request;
use spin_sdk::pg::ParameterValue;

use crate::{InnerConfig, Reply};

fn note_identity(log: &mut RequestLog, ctx: &auth_core::AuthContext) {
    log.user_id = Some(ctx.user.to_string());
    log.tenant_id = Some(ctx.tenant.to_string());
    log.role = Some(ctx.role.as_str());
}

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

pub(crate) async fn me(
    req: Request,
    cfg: &InnerConfig,
    log: &mut RequestLog,
) -> Result<Reply, ApiError> {
    let ctx = edge::inner::authenticate(req.headers(), &cfg.context_key, auth_core::unix_now())?;
    note_identity(log, &ctx);
    let rid = RequestId::from_client(Some(ctx.request_id.as_bytes()));
    let db = Db::open(&cfg.database_url).await?;
    let tx = db.begin_for_tenant(&ctx.tenant).await?;
    let rows = tx
        .query(
            "SELECT u.email, u.active AND t.active FROM users u \
             JOIN tenants t ON t.id = u.tenant_id WHERE u.id = $1",
            vec![ParameterValue::Uuid(ctx.user.to_string())],
        )
        .await?;
    tx.commit().await?;
    let Some(row) = rows.first().filter(|r| cell::boolean(r, 1) == Some(true)) else {
        log.reason = Some("user_gone_or_inactive".into());
        return Err(ApiError::from(auth_core::Error::ContextInvalid));
    };
    Ok(response::json(
        StatusCode::OK,
        &Me {
            user_id: ctx.user.to_string(),
            tenant_id: ctx.tenant.to_string(),
            role: ctx.role.as_str(),
            email: cell::text(row, 0)
                .ok_or_else(|| ApiError::internal("users.email is not text"))?,
            expires_at: ctx.token_expires_at.saturating_mul(1000),
        },
        &rid,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogoutBody {
    #[serde(default)]
    refresh_token: Option<String>,
}

pub(crate) async fn logout(
    req: Request,
    cfg: &InnerConfig,
    log: &mut RequestLog,
) -> Result<Reply, ApiError> {
    let now = auth_core::unix_now();
    let ctx = edge::inner::authenticate(req.headers(), &cfg.context_key, now)?;
    note_identity(log, &ctx);
    let rid = RequestId::from_client(Some(ctx.request_id.as_bytes()));
    let (parts, body) = req.into_parts();
    let bytes = body::read_limited(&parts.headers, body, SMALL_JSON_LIMIT).await?;
    // The body is optional; when there is one it must be the documented JSON.
    let presented = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        body::require_json(&parts.headers)?;
        body::parse_json::<LogoutBody>(&bytes, r#"{"refreshToken"}"#)?.refresh_token
    };
    // A malformed token cannot be ours: nothing to revoke, and logout still succeeds.
    let token = presented
        .as_deref()
        .and_then(|t| RefreshToken::parse(t).ok());

    let db = Db::open(&cfg.database_url).await?;
    let tx = db.begin_for_tenant(&ctx.tenant).await?;
    let revoked = match &token {
        Some(t) => {
            tx.execute(
                "UPDATE refresh_tokens SET revoked_at = $3, revoked_reason = 'logout' \
                 WHERE revoked_at IS NULL AND family_id = \
                   (SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2)",
                vec![
                    ParameterValue::Str(t.storage_hash().as_str().to_owned()),
                    ParameterValue::Uuid(ctx.user.to_string()),
                    ParameterValue::Int64(now.saturating_mul(1000)),
                ],
            )
            .await?
        }
        None => 0,
    };
    tx.audit(&AuditEntry {
        tenant: &ctx.tenant,
        user: Some(&ctx.user),
        action: "auth.logout",
        resource_type: Some("user"),
        resource_id: Some(ctx.user.to_string()),
        request_id: rid.as_str(),
        client_addr: edge::client::client_ip(&parts.headers).map(|ip| ip.to_string()),
        details: json!({ "jti": ctx.jti, "revokedRefreshTokens": revoked }),
    })
    .await?;
    tx.commit().await?;
    Ok(response::empty(StatusCode::NO_CONTENT, &rid))
}
