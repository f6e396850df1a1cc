//! The auth middleware (Spin 4.1 `dependencies.middleware`), composed in front of every protected
//! route. Per request, in this order:
//!
//! 1. CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered here,
//!    for the configured origins only (`edge::cors`); browsers send no credentials on a preflight.
//!    A plain `OPTIONS` on a route of the table is `204` with `Allow` (`edge::routes::methods_on`),
//!    without a token too; on a tus route also tus discovery (`Tus-Version`, `Tus-Extension`, ...).
//! 2. Bearer token: full verification by `auth_core::Verifier` (signature, `alg` allow-list, `kid`,
//!    `iss`, `aud`, `nbf`/`exp` with leeway, claim shapes). Any failure is `401` with
//!    `WWW-Authenticate`. A token this instance already verified (Spin 4 reuses instances) skips the
//!    signature check; its time rules are checked again (`auth_core::verified`).
//! 3. Revocation: the token's `jti` and its user's mark on the revocation list in Redis
//!    (`auth_core::revocation`, one `EVAL`, on every request: the instance's verified-token memory
//!    only spares the signature). Logout, deactivation and a role change put a token there; a
//!    revoked token is `401` like any invalid one. Redis down: the same fail mode as the limit.
//! 4. Per-user rate limit (fixed window in Redis, one atomic `EVAL`), counted before the role check
//!    so refused calls count too. `RateLimit-Policy`/`RateLimit` on every authenticated response,
//!    `429` with `Retry-After` over the limit. Redis down: the configured fail mode (logged, never a 500).
//! 5. Role: the route table's (`edge::routes::required_role`; a route it does not know needs
//!    `user`). A role below it is `403 forbidden`, written to the audit log as `auth.forbidden`.
//! 6. Hand-off (`edge::inner::hand_off`): inbound `x-auth-*` headers and `Authorization` are removed,
//!    the MAC'd `x-auth-context` and `x-request-id` are set, and the request goes to the next
//!    handler. Inner components authenticate only through that context.
//!
//! Every response gets `x-request-id`, `Vary: Origin` (plus the CORS headers for a configured
//! origin), and one JSON log line on stderr with user and tenant.
//!
//! Configuration: a composed middleware runs with the PRIMARY component's configuration, so every
//! protected component declares the variables read in [`Config::load`] and the outbound hosts
//! (`redis://`, `postgres://`) this middleware uses (see spin.toml).

use std::sync::{Mutex, OnceLock};

use auth_core::cors::CorsPolicy;
use auth_core::keys::Alg;
use auth_core::ratelimit::{self, FailMode, Policy, Subject};
use auth_core::verified::{self, VerifiedTokens};
use auth_core::{AccessClaims, AuthContext, ContextKey, KeyRing, Verifier, VerifierConfig};
use edge::client::ClientIpSource;
use edge::log::RequestLog;
use edge::spin::{RateLimiter, variable};
use edge::{ApiError, Problem, RequestId, response};
use http::HeaderMap;
use spin_sdk::http::{BoxBody, IntoResponse, Request, Response, box_body};
use spin_sdk::http_service;
use spin_sdk::wasip3::http::types as wasi;
use store::Tx;
use store::audit_log::{self, AuditEntry};
use store::spin::Db;

const COMPONENT: &str = "auth-middleware";

/// Everything read from variables, parsed once per instance.
struct Config {
    /// The verifier, with the tokens it verified in this instance.
    tokens: Mutex<VerifiedTokens>,
    context_key: ContextKey,
    cors: CorsPolicy,
    /// The per-user limit of every route but tus chunks (`rate_limit`).
    policy: Policy,
    /// The per-user limit of tus chunks (`upload_chunk_rate_limit`): a large file is hundreds of
    /// them, each already bounded by its size, pace and the user's upload slots, so they are
    /// counted apart from the requests `rate_limit` is sized for.
    chunk_policy: Policy,
    fail_mode: FailMode,
    redis_url: String,
    database: store::spin::Database,
    /// The deadline of every outbound call (storage, Postgres, Redis): `outbound_timeout_secs`.
    outbound_timeout: edge::OutboundTimeout,
    /// Where the client's address comes from (for the audit rows written here).
    client_ip: ClientIpSource,
}

impl Config {
    async fn load() -> Result<Self, ApiError> {
        // Public keys only: this middleware runs inside every protected component, none of which
        // should hold the signing keys. The JWKS printed by `keygen jwks` is a valid ring here.
        let keys = KeyRing::from_json(&variable("auth_verification_keys").await?)?;
        let mut vc = VerifierConfig::new(
            variable("auth_issuer").await?,
            variable("auth_audience").await?,
        );
        // Each key is bound to its own algorithm, so allowing ES256 only matters for ES256 keys.
        if keys.keys().iter().any(|k| k.alg() == Alg::Es256) {
            vc = vc.allow_es256();
        }
        let outbound_timeout = edge::spin::outbound_timeout().await?;
        Ok(Self {
            tokens: Mutex::new(VerifiedTokens::new(
                Verifier::new(&keys, vc)?,
                verified::DEFAULT_CAPACITY,
            )),
            context_key: ContextKey::from_config(&variable("auth_context_key").await?)?,
            cors: CorsPolicy::from_config(&variable("cors_origins").await?)?,
            policy: Policy::parse("user", &variable("rate_limit").await?)?,
            chunk_policy: Policy::parse("chunks", &variable("upload_chunk_rate_limit").await?)?,
            fail_mode: variable("rate_limit_fail_mode").await?.parse()?,
            redis_url: variable("redis_url").await?,
            database: edge::spin::database().await?,
            outbound_timeout,
            client_ip: variable("client_ip_source")
                .await?
                .parse()
                .map_err(|e| ApiError::bad_setting("client_ip_source", e))?,
        })
    }
}

static CONFIG: OnceLock<Config> = OnceLock::new();

async fn config() -> Result<&'static Config, ApiError> {
    if let Some(c) = CONFIG.get() {
        return Ok(c);
    }
    let loaded = Config::load().await?;
    Ok(CONFIG.get_or_init(|| loaded))
}

/// What this middleware answers with: its own response (preflight), or the next handler's.
enum Answer {
    Own(http::Response<String>),
    Next(spin_sdk::http::Response),
}

/// Headers every answer gets, whoever produced it (CORS, rate limit), collected on the way.
type Extra = Vec<(&'static str, String)>;

#[http_service]
async fn handle(req: Request) -> anyhow::Result<wasi::Response> {
    let rid = edge::inner::request_id(req.headers());
    let path = req.uri().path();
    let mut log = RequestLog::start(COMPONENT, rid.as_str(), req.method().as_str(), path);
    let mut extra = Extra::new();
    let answer = match config().await {
        Ok(cfg) => serve(req, cfg, &rid, &mut log, &mut extra).await,
        Err(e) => Err(e),
    };
    let mut res: Response<BoxBody> = match answer {
        Ok(Answer::Next(res)) => match relay(res, &extra, &rid).await {
            Ok((status, res)) => {
                log.emit(status);
                return Ok(res);
            }
            Err(e) => {
                log.record_error(&e);
                e.into_response(&rid).map(box_body)
            }
        },
        Ok(Answer::Own(res)) => res.map(box_body),
        Err(e) => {
            log.record_error(&e);
            e.into_response(&rid).map(box_body)
        }
    };
    response::apply_headers(&mut res, &extra);
    response::set_request_id(&mut res, &rid);
    log.emit(res.status().as_u16());
    Ok(res.into_response()?)
}

/// The next handler's response with our headers, its body handed on rather than copied.
async fn relay(
    mut res: spin_sdk::http::Response,
    extra: &Extra,
    rid: &RequestId,
) -> Result<(u16, wasi::Response), ApiError> {
    response::apply_headers(&mut res, extra);
    response::set_request_id(&mut res, rid);
    let status = res.status().as_u16();
    let (parts, body) = res.into_parts();
    edge::relay::json_or_stream(parts, body)
        .await
        .map(|res| (status, res))
        .map_err(|e| ApiError::internal(format!("relaying the next handler's response: {e:?}")))
}

async fn serve(
    req: Request,
    cfg: &Config,
    rid: &RequestId,
    log: &mut RequestLog,
    extra: &mut Extra,
) -> Result<Answer, ApiError> {
    let now = auth_core::unix_now();
    if req.method() == http::Method::OPTIONS
        && let Some(answer) = edge::cors::preflight(&cfg.cors, req.headers(), rid)
    {
        log.outcome = if answer.is_ok() {
            "preflight"
        } else {
            "preflight_denied"
        }
        .into();
        return answer.map(Answer::Own);
    }
    extra.extend(cfg.cors.response_headers(edge::cors::origin(req.headers())));
    // A plain `OPTIONS` (no preflight) on a known route: its methods, from the route table. No
    // token needed: it says nothing the API description does not.
    let methods = edge::routes::methods_on(req.uri().path())?;
    if req.method() == http::Method::OPTIONS && !methods.is_empty() {
        log.outcome = "options".into();
        let mut res = edge::cors::options(&methods, rid);
        if is_tus_path(req.uri().path()) {
            response::apply_headers(&mut res, &tus_discovery());
        }
        return Ok(Answer::Own(res));
    }
    // A method the route does not have is `405` before any token check, as the component would
    // answer it: the methods of a route are no secret (a plain `OPTIONS` tells them too).
    if !methods.is_empty() && !methods.contains(&req.method().as_str()) {
        log.outcome = "method_not_allowed".into();
        let mut allowed: Vec<http::Method> =
            methods.iter().filter_map(|m| m.parse().ok()).collect();
        allowed.push(http::Method::OPTIONS);
        return Err(ApiError::method_not_allowed(&allowed));
    }

    let claims = verify(req.headers(), &cfg.tokens, now).inspect_err(|e| {
        log.outcome = "invalid_token".into();
        log.reason = Some(e.reason().to_owned());
    })?;
    log.user_id = Some(claims.user.to_string());
    log.tenant_id = Some(claims.tenant.to_string());
    log.role = Some(claims.role.as_str());

    let mut redis = RateLimiter::new(cfg.redis_url.as_str(), cfg.outbound_timeout);
    let policy = if is_tus_chunk(req.method().as_str(), req.uri().path()) {
        &cfg.chunk_policy
    } else {
        &cfg.policy
    };
    refuse_revoked_and_count(cfg, policy, &mut redis, &claims, log, extra).await?;

    let required = edge::routes::required_role(req.method().as_str(), req.uri().path());
    if required.is_some_and(|role| !claims.role.satisfies(role)) {
        log.outcome = "forbidden".into();
        audit_forbidden(cfg, &claims, rid, &req).await;
        return Err(Problem::forbidden().into());
    }

    let (mut parts, body) = req.into_parts();
    let ctx = AuthContext::from_claims(&claims, rid.as_str(), now);
    edge::inner::hand_off(&mut parts.headers, &ctx, &cfg.context_key, rid)?;
    let res = spin_sdk::http::next(Request::from_parts(parts, body))
        .await
        .map_err(|e| ApiError::internal(format!("next handler failed: {e:?}")))?;
    Ok(Answer::Next(res))
}

/// Whether the request carries a tus chunk (`PATCH` of an upload).
fn is_tus_chunk(method: &str, path: &str) -> bool {
    edge::routes::lookup(method, path)
        .is_some_and(|r| r.endpoint == edge::routes::Endpoint::TusPatch)
}

/// Whether `path` is a tus upload's (creation or an upload): its plain `OPTIONS` is tus discovery.
fn is_tus_path(path: &str) -> bool {
    ["HEAD", "POST"]
        .iter()
        .any(|m| edge::routes::lookup(m, path).is_some_and(|r| r.endpoint.is_tus()))
}

/// tus discovery (the answer to a plain `OPTIONS` on a tus route): the version, the extensions and
/// the checksum algorithm. `Tus-Max-Size` (optional in tus) is left out: the limit is ingest's
/// `direct_upload_max_bytes`, and whatever this middleware reads every protected component would
/// have to declare; a creation over the limit answers `413` naming it.
fn tus_discovery() -> Vec<(&'static str, String)> {
    vec![
        ("Tus-Resumable", tus::VERSION.to_owned()),
        ("Tus-Version", tus::VERSION.to_owned()),
        ("Tus-Extension", tus::EXTENSIONS.to_owned()),
        (
            "Tus-Checksum-Algorithm",
            tus::CHECKSUM_ALGORITHMS.to_owned(),
        ),
    ]
}

/// The request's bearer token, fully verified (or remembered as verified).
fn verify(
    headers: &HeaderMap,
    tokens: &Mutex<VerifiedTokens>,
    now: i64,
) -> Result<AccessClaims, auth_core::Error> {
    let authorization = edge::inner::authorization(headers)?;
    // One thread per instance: the lock is never contended; a poisoned one still holds valid data.
    let mut tokens = tokens.lock().unwrap_or_else(|p| p.into_inner());
    tokens.verify_authorization(authorization, now)
}

/// One Redis round trip per request: `401` when the token is on the revocation list (nothing counted);
/// else the request is counted against the caller's per-user limit `policy`, whose headers go on every
/// answer, `429` over it. A down Redis follows the fail mode: open serves (a revoked token still expires on its
/// own), closed is `503`.
async fn refuse_revoked_and_count(
    cfg: &Config,
    policy: &Policy,
    redis: &mut RateLimiter,
    claims: &AccessClaims,
    log: &mut RequestLog,
    extra: &mut Extra,
) -> Result<(), ApiError> {
    let key = ratelimit::key(policy, Subject::User(&claims.user));
    match redis
        .check_then_hit(&claims.jti, &claims.user, claims.issued_at, policy, &key)
        .await
    {
        Ok(None) => {
            log.outcome = "invalid_token".into();
            log.reason = Some(auth_core::Error::Revoked.reason().to_owned());
            Err(auth_core::Error::Revoked.into())
        }
        Ok(Some(decision)) => {
            extra.extend(decision.headers(policy));
            if !decision.allowed {
                log.outcome = "rate_limited".into();
                return Err(ApiError::new(decision.problem()));
            }
            Ok(())
        }
        Err(cause) => {
            log.reason = Some("ratelimit_backend_down".into());
            edge::limits::backend_down(COMPONENT, cfg.fail_mode, policy, &cause)
        }
    }
}

/// Writes the `auth.forbidden` security event. Best effort: failing to audit is logged, and the
/// answer stays `403`.
async fn audit_forbidden(cfg: &Config, claims: &AccessClaims, rid: &RequestId, req: &Request) {
    let entry = AuditEntry {
        user: Some(&claims.user),
        action: "auth.forbidden",
        resource_type: Some("route"),
        resource_id: Some(format!("{} {}", req.method(), req.uri().path())),
        request_id: rid.as_str(),
        client_addr: cfg
            .client_ip
            .client_ip(req.headers())
            .map(|ip| ip.to_string()),
        details: serde_json::json!({ "role": claims.role.as_str(), "jti": claims.jti }),
    };
    let written = async {
        let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
        let tx = Tx::for_tenant(&db, &claims.tenant).await?;
        audit_log::record(&tx, &entry).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = written {
        edge::log::event(
            COMPONENT,
            "audit_write_failed",
            serde_json::json!({ "action": entry.action, "requestId": rid.as_str(), "cause": e.to_string() }),
        );
    }
}
