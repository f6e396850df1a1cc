//! `POST /api/v1/auth/refresh`: a refresh token → a new access token and the next refresh token
//! of the same family. The presented token stops working.
//!
//! The decision is one call of `store::sessions::rotate`, which locks the presented token. The
//! successor is derived from the presented token (`RefreshToken::successor`), so two tabs
//! refreshing with the same token at once both get the same successor within the grace window
//! (`auth_refresh_grace_secs`); past it, presenting a token that was already rotated revokes its
//! whole family; that transaction is committed (the revocation must
//! stick) together with the `auth.token_reuse` audit row. Every refusal looks the same to the
//! client: `401 invalid_token`.

use auth_core::refresh::{self, RefreshToken, RotateOutcome};
use edge::app::{Call, Component, Reply};
use edge::body::{self, SMALL_JSON_LIMIT};
use edge::{ApiError, Problem, log, response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use spin_sdk::http::Request;
use store::Tx;
use store::audit_log::{self, AuditEntry};
use store::sessions::{self, RotationLimits, TokenOwner};
use store::spin::Db;

use super::token::TokenPair;
use crate::{Auth, Config};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

pub(crate) async fn handle(req: Request, call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let now = auth_core::unix_now();
    let (parts, body) = req.into_parts();
    body::require_json(&parts.headers)?;
    let bytes = body::read_limited(&parts.headers, body, SMALL_JSON_LIMIT).await?;
    let presented: RefreshBody = body::parse_json(&bytes, r#"{"refreshToken"}"#)?;
    let presented = RefreshToken::parse(&presented.refresh_token).inspect_err(|_| {
        call.log.outcome = "invalid_token".into();
        call.log.reason = Some("malformed_refresh_token".into());
    })?;
    let next = presented.successor(&cfg.successor_key);

    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = Tx::begin(&db).await?;
    let expires_at = refresh::expires_at_ms(now, cfg.refresh.ttl_secs);
    let limits = RotationLimits {
        family_max_age_ms: cfg.refresh.family_max_secs.saturating_mul(1000),
        grace_ms: cfg.refresh.grace_secs.saturating_mul(1000),
    };
    let rotation = sessions::rotate(
        &tx,
        &presented.storage_hash(),
        &next.storage_hash(),
        expires_at,
        limits,
    )
    .await?;
    let owner = rotation.owner.as_ref();
    call.log.tenant_id = owner.map(|o| o.tenant.to_string());
    call.log.user_id = owner.map(|o| o.user.to_string());

    match (rotation.outcome, owner) {
        (
            RotateOutcome::Rotated,
            Some(
                o @ TokenOwner {
                    role: Some(role), ..
                },
            ),
        ) => {
            // Sign before committing: if signing failed, the rotation is rolled back and the
            // presented token keeps working.
            let issued = cfg.issuer.issue(o.user, o.tenant, *role, now)?;
            tx.commit().await?;
            call.log.role = Some(role.as_str());
            let pair = TokenPair {
                access_token: issued.token,
                token_type: "Bearer",
                expires_in: issued.expires_in,
                refresh_token: next.as_str().to_owned(),
                refresh_expires_in: rotation
                    .next_expires_at_ms
                    .map_or(cfg.refresh.ttl_secs, |at| (at / 1000 - now).max(0)),
            };
            Ok(response::json(StatusCode::OK, &pair, &call.request_id).into())
        }
        (RotateOutcome::Rotated, _) => Err(ApiError::internal(
            "auth_rotate_refresh_token: rotated without tenant, user or role",
        )),
        (RotateOutcome::ReuseDetected, Some(o)) => {
            let tx = tx.into_tenant(&o.tenant).await?;
            audit_log::record(
                &tx,
                &AuditEntry {
                    user: Some(&o.user),
                    action: "auth.token_reuse",
                    resource_type: Some("refresh_token_family"),
                    resource_id: Some(o.family.to_string()),
                    request_id: call.request_id.as_str(),
                    client_addr: call.client_addr(),
                    details: json!({ "revoked": "family" }),
                },
            )
            .await?;
            tx.commit().await?;
            log::event(
                Auth::NAME,
                "refresh_token_reuse",
                json!({
                    "requestId": call.request_id.as_str(),
                    "tenantId": o.tenant.to_string(),
                    "family": o.family.to_string(),
                }),
            );
            Err(refused(call, rotation.outcome))
        }
        (outcome, _) => {
            // Committed whatever the outcome: an inactive user's token was revoked, and that
            // must stick.
            tx.commit().await?;
            Err(refused(call, outcome))
        }
    }
}

fn refused(call: &mut Call, outcome: RotateOutcome) -> ApiError {
    call.log.outcome = "invalid_token".into();
    call.log.reason = Some(format!("refresh_{outcome:?}").to_lowercase());
    outcome
        .problem()
        .unwrap_or_else(Problem::invalid_token)
        .into()
}
