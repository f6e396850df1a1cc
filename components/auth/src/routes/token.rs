//! `POST /api/v1/auth/token`: email + password → access token + refresh token.
//!
//! * The answer for an unknown email and for a wrong password is the same `401
//!   invalid_credentials` body after the same argon2id work (`password::verify` runs against a
//!   dummy hash when there is no user), so neither body nor timing tells whether an email exists.
//!   A disabled user or tenant answers the same way.
//! * Every attempt is counted against its failure budgets before its password is checked
//!   ([`budgets`]: per email and client address, per address, per email; the address is the one
//!   `client_ip_source` names, resolved by the shell); while one is spent the answer is `429
//!   rate_limited` before any password work. Redis down: `login_rate_limit_fail_mode` (closed by
//!   default: `503`, never unlimited guessing).
//! * Success stores the new refresh token (hashed) as the first of a new family and writes
//!   `auth.login`; a failure is recorded by [`failure`].

pub(crate) mod budgets;
pub(crate) mod failure;

use auth_core::Email;
use auth_core::password;
use auth_core::refresh::{FamilyId, RefreshToken};
use edge::app::{Call, Reply};
use edge::body::{self, SMALL_JSON_LIMIT};
use edge::{ApiError, response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use spin_sdk::http::Request;
use store::audit_log::{self, AuditEntry};
use store::identity;
use store::spin::Db;
use store::{Tx, sessions};

use crate::Config;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

/// The answer of `/token` and `/refresh`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    pub refresh_expires_in: i64,
}

pub(crate) async fn handle(req: Request, call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let now = auth_core::unix_now();
    let (parts, body) = req.into_parts();
    body::require_json(&parts.headers)?;
    let bytes = body::read_limited(&parts.headers, body, SMALL_JSON_LIMIT).await?;
    let creds: Credentials = body::parse_json(&bytes, r#"{"email","password"}"#)?;
    let client = call.client_addr();
    let email = Email::parse(&creds.email).ok();

    let mut budgets = budgets::Budgets::new(cfg, email.as_ref(), &call.client_subject());
    budgets.take_attempt(cfg, &mut call.log).await?;

    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let user = match &email {
        Some(e) => identity::login_user(&db, e).await?,
        None => None,
    };
    // Always one argon2id verification, against the dummy hash when there is no user.
    let password_ok = password::verify(
        &creds.password,
        user.as_ref().map(|u| u.password_hash.as_str()),
    );
    let user = match user {
        Some(u) if password_ok && u.active => u,
        other => return Err(failure::refuse(&db, call, other, client).await),
    };

    let issued = cfg.issuer.issue(user.id, user.tenant, user.role, now)?;
    let refresh_token = RefreshToken::generate()?;
    let family = FamilyId::generate()?;
    let tx = Tx::for_tenant(&db, &user.tenant).await?;
    let expires_at = cfg.refresh.first_expires_at_ms(now);
    sessions::start_family(
        &tx,
        &user.id,
        &family,
        &refresh_token.storage_hash(),
        expires_at,
    )
    .await?;
    audit_log::record(
        &tx,
        &AuditEntry {
            user: Some(&user.id),
            action: "auth.login",
            resource_type: Some("user"),
            resource_id: Some(user.id.to_string()),
            request_id: call.request_id.as_str(),
            client_addr: client,
            details: json!({ "jti": issued.claims.jti, "family": family.to_string() }),
        },
    )
    .await?;
    tx.commit().await?;
    budgets.succeeded().await;

    call.log.user_id = Some(user.id.to_string());
    call.log.tenant_id = Some(user.tenant.to_string());
    call.log.role = Some(user.role.as_str());
    let pair = TokenPair {
        access_token: issued.token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        refresh_token: refresh_token.as_str().to_owned(),
        refresh_expires_in: cfg.refresh.ttl_secs.min(cfg.refresh.family_max_secs),
    };
    Ok(response::json(StatusCode::OK, &pair, &call.request_id).into())
}
