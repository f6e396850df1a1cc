//! `POST /api/v1/auth/refresh`: a refresh token → a new access token and the next refresh token
//! of the same family. The presented token stops working.
//!
//! The decision is one call to `auth_rotate_refresh_token` (migration 0002), which locks the
//! presented token, so two concurrent refreshes with the same token cannot both succeed. Presenting
//! a token that was already rotated revokes its whole family; that transaction is committed (the
//! revocation must stick) together with the `auth.token_reuse` audit row. Every refusal looks the
//! same to the client: `401 invalid_token`.

use auth_core::refresh::{self, RefreshToken, RotateOutcome};
use auth_core::{Role, TenantId, UserId};
use edge::body::{self, SMALL_JSON_LIMIT};
use edge::log::{self, RequestLog};
use edge::spin::{AuditEntry, Db, cell};
use edge::{ApiError, Problem, RequestId, response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use spin_sdk::http::Request;
use spin_sdk::pg::ParameterValue;

use crate::login::TokenPair;
use crate::{COMPONENT, PublicConfig, Reply};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshBody {
    refresh_token: String,
}

pub(crate) async fn refresh(
    req: Request,
    cfg: &PublicConfig,
    rid: &RequestId,
    log: &mut RequestLog,
) -> Result<Reply, ApiError> {
    let now = auth_core::unix_now();
    let (parts, body) = req.into_parts();
    body::require_json(&parts.headers)?;
    let bytes = body::read_limited(&parts.headers, body, SMALL_JSON_LIMIT).await?;
    let presented: RefreshBody = body::parse_json(&bytes, r#"{"refreshToken"}"#)?;
    let presented = RefreshToken::parse(&presented.refresh_token).inspect_err(|_| {
        log.outcome = "invalid_token".into();
        log.reason = Some("malformed_refresh_token".into());
    })?;
    let next = RefreshToken::generate()?;

    let db = Db::open(&cfg.database_url).await?;
    let tx = db.begin().await?;
    let rows = tx
        .query(
            "SELECT outcome, tenant_id, user_id, family_id, user_role \
             FROM auth_rotate_refresh_token($1, $2, $3)",
            vec![
                ParameterValue::Str(presented.storage_hash().as_str().to_owned()),
                ParameterValue::Str(next.storage_hash().as_str().to_owned()),
                ParameterValue::Int64(refresh::expires_at_ms(now, cfg.refresh_ttl_secs)),
            ],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::internal("auth_rotate_refresh_token returned no row"))?;
    let outcome = RotateOutcome::from_db(cell::text(row, 0).as_deref().unwrap_or(""));
    let tenant = cell::text(row, 1).and_then(|s| TenantId::parse(&s).ok());
    let user = cell::text(row, 2).and_then(|s| UserId::parse(&s).ok());
    let family = cell::text(row, 3);
    log.tenant_id = tenant.map(|t| t.to_string());
    log.user_id = user.map(|u| u.to_string());

    if outcome != RotateOutcome::Rotated {
        if let (RotateOutcome::ReuseDetected, Some(tenant)) = (outcome, tenant.as_ref()) {
            tx.set_tenant(tenant).await?;
            tx.audit(&AuditEntry {
                tenant,
                user: user.as_ref(),
                action: "auth.token_reuse",
                resource_type: Some("refresh_token_family"),
                resource_id: family.clone(),
                request_id: rid.as_str(),
                client_addr: edge::client::client_ip(&parts.headers).map(|ip| ip.to_string()),
                details: json!({ "revoked": "family" }),
            })
            .await?;
            log::event(
                COMPONENT,
                "refresh_token_reuse",
                json!({ "requestId": rid.as_str(), "tenantId": tenant.to_string(), "family": family }),
            );
        }
        // Committed whatever the outcome: reuse revoked the family, an inactive user's token was
        // revoked; both must stick.
        tx.commit().await?;
        log.outcome = "invalid_token".into();
        log.reason = Some(format!("refresh_{outcome:?}").to_lowercase());
        return Err(outcome
            .problem()
            .unwrap_or_else(Problem::invalid_token)
            .into());
    }

    let (Some(tenant), Some(user)) = (tenant, user) else {
        return Err(ApiError::internal(
            "auth_rotate_refresh_token: rotated without tenant/user",
        ));
    };
    let role: Role = cell::text(row, 4)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ApiError::internal("auth_rotate_refresh_token: bad role"))?;
    // Sign before committing: if signing failed, the rotation is rolled back and the presented
    // token keeps working.
    let issued = cfg.issuer.issue(user, tenant, role, now)?;
    tx.commit().await?;
    log.role = Some(role.as_str());
    Ok(response::json(
        StatusCode::OK,
        &TokenPair {
            access_token: issued.token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            refresh_token: next.as_str().to_owned(),
            refresh_expires_in: cfg.refresh_ttl_secs,
        },
        rid,
    ))
}
