//! `POST /api/v1/auth/token`: email + password → access token + refresh token.
//!
//! * The answer for an unknown email and for a wrong password is the same `401
//!   invalid_credentials` body after the same argon2id work (`password::verify` runs against a
//!   dummy hash when there is no user), so neither body nor timing tells whether an email exists.
//!   A disabled user or tenant answers the same way.
//! * Failed attempts are limited per email and per client address (`auth_core::ratelimit`
//!   fixed windows in Redis). Every attempt is counted before its password is checked, so parallel
//!   guesses cannot all pass a check made before any of them was counted; a success clears the
//!   per-email count and gives its attempt back to the per-address one. While either budget is
//!   spent the route answers `429 rate_limited` with `Retry-After` before doing any password work.
//!   Unknown emails are counted too, so the limit cannot be used to probe.
//! * Success stores the new refresh token (hashed) as the first of a new family and writes
//!   `auth.login`; a failure for an existing user writes `auth.login_failed` in that user's tenant.
//!   An unknown email has no tenant to audit in: it is logged as an event instead.

use auth_core::ratelimit::{self, Policy, Subject};
use auth_core::refresh::{self, FamilyId, RefreshToken};
use auth_core::{Email, Role, TenantId, UserId, password};
use edge::body::{self, SMALL_JSON_LIMIT};
use edge::log::{self, RequestLog};
use edge::spin::{AuditEntry, Db, RateLimiter, cell};
use edge::{ApiError, Code, Problem, RequestId, limits, response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use spin_sdk::http::Request;
use spin_sdk::pg::ParameterValue;

use crate::{COMPONENT, PublicConfig, Reply};

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

/// The token response of `/token` and `/refresh`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    pub refresh_expires_in: i64,
}

/// A row of `auth_lookup_user`.
struct LoginUser {
    id: UserId,
    tenant: TenantId,
    password_hash: String,
    role: Role,
    active: bool,
}

async fn lookup_user(db: &Db, email: &Email) -> Result<Option<LoginUser>, ApiError> {
    let rows = db
        .query(
            "SELECT user_id, tenant_id, password_hash, role, active FROM auth_lookup_user($1)",
            vec![ParameterValue::Str(email.as_str().to_owned())],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let bad = |what: &str| ApiError::internal(format!("auth_lookup_user: bad {what}"));
    Ok(Some(LoginUser {
        id: cell::text(row, 0)
            .and_then(|s| UserId::parse(&s).ok())
            .ok_or_else(|| bad("user_id"))?,
        tenant: cell::text(row, 1)
            .and_then(|s| TenantId::parse(&s).ok())
            .ok_or_else(|| bad("tenant_id"))?,
        password_hash: cell::text(row, 2).ok_or_else(|| bad("password_hash"))?,
        role: cell::text(row, 3)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("role"))?,
        active: cell::boolean(row, 4).ok_or_else(|| bad("active"))?,
    }))
}

/// The per-email and per-address failure counters of one attempt (either may be absent: an
/// unparsable email, or no address reported by the host).
struct Budgets<'a> {
    counters: Vec<(&'a Policy, String)>,
}

impl<'a> Budgets<'a> {
    fn new(cfg: &'a PublicConfig, email: Option<&Email>, client: Option<&str>) -> Self {
        let mut counters = Vec::new();
        if let Some(e) = email {
            counters.push((
                &cfg.login_email,
                ratelimit::key(&cfg.login_email, Subject::LoginEmail(e)),
            ));
        }
        if let Some(a) = client {
            counters.push((
                &cfg.login_address,
                ratelimit::key(&cfg.login_address, Subject::LoginAddress(a)),
            ));
        }
        Self { counters }
    }

    /// Counts this attempt against every budget before the password is checked, atomically per
    /// budget, so parallel guesses cannot all pass a check made before any of them was counted.
    /// `Err(429)` when a budget is spent (the refused attempt counts too); a down Redis follows the
    /// fail mode.
    async fn take_attempt(
        &self,
        cfg: &PublicConfig,
        limiter: &mut RateLimiter,
        log: &mut RequestLog,
    ) -> Result<(), ApiError> {
        for (policy, key) in &self.counters {
            match limiter.hit(policy, key).await {
                Ok(d) if !d.allowed => {
                    log.outcome = "rate_limited".into();
                    log.reason = Some(policy.name().to_owned());
                    return Err(limits::refused(policy, &d));
                }
                Ok(_) => {}
                Err(cause) => {
                    log.reason = Some("ratelimit_backend_down".into());
                    return limits::backend_down(COMPONENT, cfg.fail_mode, policy, &cause);
                }
            }
        }
        Ok(())
    }

    /// After a success: the per-email count is cleared, and the attempt is given back to the
    /// per-address budget (which keeps counting the failures of others behind the same address).
    /// Best effort: the login already succeeded.
    async fn succeeded(&self, cfg: &PublicConfig, limiter: &mut RateLimiter) {
        for (policy, key) in &self.counters {
            let done = if policy.name() == cfg.login_email.name() {
                limiter.clear(key).await
            } else {
                limiter.give_back(key).await
            };
            if let Err(cause) = done {
                log::event(
                    COMPONENT,
                    "ratelimit_backend_down",
                    json!({ "policy": policy.name(), "cause": cause }),
                );
                return;
            }
        }
    }
}

pub(crate) async fn token(
    req: Request,
    cfg: &PublicConfig,
    rid: &RequestId,
    log: &mut RequestLog,
) -> Result<Reply, ApiError> {
    let now = auth_core::unix_now();
    let (parts, body) = req.into_parts();
    body::require_json(&parts.headers)?;
    let bytes = body::read_limited(&parts.headers, body, SMALL_JSON_LIMIT).await?;
    let creds: Credentials = body::parse_json(&bytes, r#"{"email","password"}"#)?;
    let client = edge::client::client_ip(&parts.headers).map(|ip| ip.to_string());
    let email = Email::parse(&creds.email).ok();

    let budgets = Budgets::new(cfg, email.as_ref(), client.as_deref());
    let mut limiter = RateLimiter::new(cfg.redis_url.as_str());
    budgets.take_attempt(cfg, &mut limiter, log).await?;

    let db = Db::open(&cfg.database_url).await?;
    let user = match &email {
        Some(e) => lookup_user(&db, e).await?,
        None => None,
    };
    // Always one argon2id verification, against the dummy hash when there is no user.
    let password_ok = password::verify(
        &creds.password,
        user.as_ref().map(|u| u.password_hash.as_str()),
    );

    let user = match user {
        Some(u) if password_ok && u.active => u,
        other => {
            let reason = match &other {
                None => "unknown_email",
                Some(u) if !u.active => "inactive",
                Some(_) => "wrong_password",
            };
            log.outcome = "invalid_credentials".into();
            log.reason = Some(reason.into());
            match other {
                Some(u) => {
                    log.user_id = Some(u.id.to_string());
                    log.tenant_id = Some(u.tenant.to_string());
                    audit_failure(&db, &u, reason, rid, client.as_deref()).await;
                }
                None => log::event(
                    COMPONENT,
                    "login_failed",
                    json!({ "reason": reason, "requestId": rid.as_str(), "clientAddr": client }),
                ),
            }
            return Err(Problem::new(Code::InvalidCredentials).into());
        }
    };

    let issued = cfg.issuer.issue(user.id, user.tenant, user.role, now)?;
    let refresh_token = RefreshToken::generate()?;
    let family = FamilyId::generate()?;
    let tx = db.begin_for_tenant(&user.tenant).await?;
    tx.execute(
        "INSERT INTO refresh_tokens (tenant_id, user_id, family_id, token_hash, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
        vec![
            ParameterValue::Uuid(user.tenant.to_string()),
            ParameterValue::Uuid(user.id.to_string()),
            ParameterValue::Uuid(family.to_string()),
            ParameterValue::Str(refresh_token.storage_hash().as_str().to_owned()),
            ParameterValue::Int64(refresh::expires_at_ms(now, cfg.refresh_ttl_secs)),
        ],
    )
    .await?;
    tx.audit(&AuditEntry {
        tenant: &user.tenant,
        user: Some(&user.id),
        action: "auth.login",
        resource_type: Some("user"),
        resource_id: Some(user.id.to_string()),
        request_id: rid.as_str(),
        client_addr: client.clone(),
        details: json!({ "jti": issued.claims.jti, "family": family.to_string() }),
    })
    .await?;
    tx.commit().await?;
    budgets.succeeded(cfg, &mut limiter).await;

    log.user_id = Some(user.id.to_string());
    log.tenant_id = Some(user.tenant.to_string());
    log.role = Some(user.role.as_str());
    Ok(response::json(
        StatusCode::OK,
        &TokenPair {
            access_token: issued.token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            refresh_token: refresh_token.as_str().to_owned(),
            refresh_expires_in: cfg.refresh_ttl_secs,
        },
        rid,
    ))
}

/// `auth.login_failed` in the user's tenant. Best effort: the answer is `401` either way.
async fn audit_failure(
    db: &Db,
    user: &LoginUser,
    reason: &str,
    rid: &RequestId,
    client: Option<&str>,
) {
    let result = async {
        let tx = db.begin_for_tenant(&user.tenant).await?;
        tx.audit(&AuditEntry {
            tenant: &user.tenant,
            user: Some(&user.id),
            action: "auth.login_failed",
            resource_type: Some("user"),
            resource_id: Some(user.id.to_string()),
            request_id: rid.as_str(),
            client_addr: client.map(str::to_owned),
            details: json!({ "reason": reason }),
        })
        .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        log::event(
            COMPONENT,
            "audit_write_failed",
            json!({ "action": "auth.login_failed", "requestId": rid.as_str(), "cause": e.to_string() }),
        );
    }
}
