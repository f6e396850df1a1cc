//! `POST /api/v1/auth/logout`: ends the caller's access token at once (the revocation list in
//! Redis that the auth middleware reads); with `{"refreshToken"}`, revokes that token's whole family
//! (only if it is the caller's own); with `{"allSessions": true}`, every refresh family and every
//! access token of the caller ("log out everywhere"). `204`, written as `auth.logout`.
//!
//! The Redis entries are written before the database commits: if Redis cannot take them the answer
//! is `503` with nothing revoked, so a client never believes in a logout that did not happen.

use auth_core::claims::MAX_ACCESS_TTL_SECS;
use auth_core::refresh::RefreshToken;
use edge::app::{Call, Reply};
use edge::body::{self, SMALL_JSON_LIMIT};
use edge::spin::RateLimiter;
use edge::{ApiError, response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use spin_sdk::http::Request;
use store::audit_log::{self, AuditEntry};
use store::spin::Db;
use store::{Tx, sessions};

use crate::Config;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LogoutBody {
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    all_sessions: bool,
}

pub(crate) async fn handle(req: Request, call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let now = auth_core::unix_now();
    let ctx = call.caller()?;
    let (parts, body) = req.into_parts();
    let bytes = body::read_limited(&parts.headers, body, SMALL_JSON_LIMIT).await?;
    // The body is optional; when there is one it must be the documented JSON.
    let asked = if bytes.iter().all(u8::is_ascii_whitespace) {
        LogoutBody {
            refresh_token: None,
            all_sessions: false,
        }
    } else {
        body::require_json(&parts.headers)?;
        body::parse_json::<LogoutBody>(&bytes, r#"{"refreshToken", "allSessions"}"#)?
    };
    // A malformed token cannot be ours: nothing to revoke, and logout still succeeds.
    let token = asked
        .refresh_token
        .as_deref()
        .and_then(|t| RefreshToken::parse(t).ok());

    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = Tx::for_tenant(&db, &ctx.tenant).await?;
    let now_ms = now.saturating_mul(1000);
    let mut revoked = match &token {
        Some(t) => sessions::revoke_family(&tx, &t.storage_hash(), &ctx.user, now_ms).await?,
        None => 0,
    };
    if asked.all_sessions {
        revoked +=
            sessions::revoke_all_of_user(&tx, &ctx.user, now_ms, sessions::EndedBy::Logout).await?;
    }
    audit_log::record(
        &tx,
        &AuditEntry {
            user: Some(&ctx.user),
            action: "auth.logout",
            resource_type: Some("user"),
            resource_id: Some(ctx.user.to_string()),
            request_id: call.request_id.as_str(),
            client_addr: call.client_addr(),
            details: json!({
                "jti": ctx.jti,
                "revokedRefreshTokens": revoked,
                "allSessions": asked.all_sessions,
            }),
        },
    )
    .await?;
    let mut redis = RateLimiter::new(cfg.redis_url.as_str(), cfg.outbound_timeout);
    let listed = if asked.all_sessions {
        redis.revoke_user(&ctx.user, now, MAX_ACCESS_TTL_SECS).await
    } else {
        redis
            .revoke_token(&ctx.jti, ctx.token_expires_at, now)
            .await
    };
    listed.map_err(|cause| ApiError::unavailable(format!("revocation list: {cause}")))?;
    tx.commit().await?;
    Ok(response::empty(StatusCode::NO_CONTENT, &call.request_id).into())
}
