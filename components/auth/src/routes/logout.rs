//! `POST /api/v1/auth/logout`: with `{"refreshToken"}`, revokes that token's whole family (only if
//! it is the caller's own); always `204`, written as `auth.logout`. The access token itself stays
//! valid until it expires (it is stateless and short-lived).

use auth_core::refresh::RefreshToken;
use edge::app::{Call, Reply};
use edge::body::{self, SMALL_JSON_LIMIT};
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
#[serde(rename_all = "camelCase")]
struct LogoutBody {
    #[serde(default)]
    refresh_token: Option<String>,
}

pub(crate) async fn handle(req: Request, call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let now = auth_core::unix_now();
    let ctx = call.caller()?;
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
    let tx = Tx::for_tenant(&db, &ctx.tenant).await?;
    let revoked = match &token {
        Some(t) => {
            sessions::revoke_family(&tx, &t.storage_hash(), &ctx.user, now.saturating_mul(1000))
                .await?
        }
        None => 0,
    };
    audit_log::record(
        &tx,
        &AuditEntry {
            user: Some(&ctx.user),
            action: "auth.logout",
            resource_type: Some("user"),
            resource_id: Some(ctx.user.to_string()),
            request_id: call.request_id.as_str(),
            client_addr: call.client_addr(),
            details: json!({ "jti": ctx.jti, "revokedRefreshTokens": revoked }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(response::empty(StatusCode::NO_CONTENT, &call.request_id).into())
}
