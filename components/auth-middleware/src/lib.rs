//! The auth middleware (Spin 4.1 `dependencies.middleware`), composed in front of every protected
//! route. Per request, in this order:
//!
//! 1. CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered here,
//!    for the configured origins only; browsers send no credentials on a preflight.
//! 2. Bearer token: full verification by `auth_core::Verifier` (signature, `alg` allow-list, `kid`,
//!    `iss`, `aud`, `nbf`/`exp` with leeway, claim shapes). Any failure is `401` with
//!    `WWW-Authenticate`. A token this instance already verified (Spin 4 reuses instances) skips the
//!    signature check; its time rules are checked again (`auth_core::verified`).
//! 3. Per-user rate limit (fixed window in Redis, one atomic `EVAL`), counted before RBAC so refused
//!    calls count too. `RateLimit-Policy`/`RateLimit` on every authenticated response, `429` with
//!    `Retry-After` over the limit. Redis down: the configured fail mode (logged, never a 500).
//! 4. RBAC (`auth_core::rbac`): `403 forbidden` for a role below the route's, written to the audit log.
//! 5. Hand-off: inbound `x-auth-*` headers and `Authorization` are removed, the MAC'd
//!    `x-auth-context` and `x-request-id` are set, and the request goes to the next handler. Inner
//!    components authenticate only through that context (`edge::inner::authenticate`).
//!
//! Every response gets `x-request-id`, `Vary: Origin` (plus the CORS headers for a configured
//! origin), and one JSON log line on stderr with user and tenant.
//!
//! Configuration: a composed middleware runs with the PRIMARY component's configuration, so every
//! protected component declares the variables read in [`Config::load`] and the outbound hosts
//! (`redis://`, `postgres://`) this middleware uses (see spin.toml).

use std::sync::{Mutex, OnceLock};

use auth_core::context::{self, AuthContext, ContextKey};
use auth_core::cors::{CorsPolicy, Preflight};
use auth_core::keys::Alg;
use auth_core::ratelimit::{self, FailMode, Policy, Subject};
use auth_core::rbac::Rbac;
use auth_core::verified::{self, VerifiedTokens};
use auth_core::{AccessClaims, KeyRing, Verifier, VerifierConfig};
use edge::log::RequestLog;
use edge::spin::{AuditEntry, Db, RateLimiter, variable};
use edge::{ApiError, RequestId, response};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use spin_sdk::http::{BoxBody, IntoResponse, Request, Response, box_body};
use spin_sdk::http_service;
use spin_sdk::wasip3::http::types as wasi;

const COMPONENT: &str = "auth-middleware";

/// Everything read from variables, parsed once per instance.
struct Config {
    /// The verifier, with the tokens it verified in this instance.
    tokens: Mutex<VerifiedTokens>,
    context_key: ContextKey,
    cors: CorsPolicy,
    policy: Policy,
    fail_mode: FailMode,
    redis_url: String,
    database_url: String,
    rbac: Rbac,
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
        Ok(Self {
            tokens: Mutex::new(VerifiedTokens::new(
                Verifier::new(&keys, vc)?,
                verified::DEFAULT_CAPACITY,
            )),
            context_key: ContextKey::from_config(&variable("auth_context_key").await?)?,
            cors: CorsPolicy::from_config(&variable("cors_origins").await?)?,
            policy: Policy::parse("user", &variable("rate_limit").await?)?,
            fail_mode: variable("rate_limit_fail_mode").await?.parse()?,
            redis_url: variable("redis_url").await?,
            database_url: variable("database_url").await?,
            rbac: Rbac::default(),
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

fn header_str(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What this middleware answers with: its own response (preflight, refusal), or the next handler's.
enum Answer {
    Own(Response<BoxBody>),
    Next(spin_sdk::http::Response),
}

#[http_service]
async fn handle(req: Request) -> anyhow::Result<wasi::Response> {
    let rid = edge::inner::request_id(req.headers());
    let mut log = RequestLog::start(
        COMPONENT,
        rid.as_str(),
        req.method().as_str(),
        req.uri().path(),
    );
    // Headers every answer gets, whoever produced it (CORS, rate limit): collected on the way.
    let mut extra: Vec<(&'static str, String)> = Vec::new();
    let result = match config().await {
        Ok(cfg) => serve(req, cfg, &rid, &mut log, &mut extra).await,
        Err(e) => Err(e),
    };
    let mut res = match result {
        Ok(Answer::Next(mut res)) => {
            response::apply_headers(&mut res, &extra);
            response::set_request_id(&mut res, &rid);
            let status = res.status().as_u16();
            let (parts, body) = res.into_parts();
            match edge::relay::response(parts, body) {
                Ok(res) => {
                    log.emit(status);
                    return Ok(res);
                }
                Err(e) => {
                    let e = ApiError::internal(format!("relaying the next handler's response: {e:?}"));
                    log.record_error(&e);
                    e.into_response(&rid).map(box_body)
                }
            }
        }
        Ok(Answer::Own(res)) => res,
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

async fn serve(
    req: Request,
    cfg: &Config,
    rid: &RequestId,
    log: &mut RequestLog,
    extra: &mut Vec<(&'static str, String)>,
) -> Result<Answer, ApiError> {
    let now = auth_core::unix_now();
    let headers = req.headers();
    let origin = header_str(headers, header::ORIGIN);

    if req.method() == Method::OPTIONS {
        match cfg.cors.preflight(
            origin,
            header_str(headers, header::ACCESS_CONTROL_REQUEST_METHOD),
            header_str(headers, header::ACCESS_CONTROL_REQUEST_HEADERS),
        ) {
            Preflight::NotPreflight => {}
            Preflight::Allowed(h) => {
                log.outcome = "preflight".into();
                let mut res = response::empty(StatusCode::NO_CONTENT, rid);
                response::apply_headers(&mut res, &h);
                return Ok(Answer::Own(res.map(box_body)));
            }
            Preflight::Denied(h) => {
                log.outcome = "preflight_denied".into();
                return Err(ApiError::new(Preflight::problem()).with_headers(h));
            }
        }
    }
    extra.extend(cfg.cors.response_headers(origin));

    let claims = verify(headers, &cfg.tokens, now).inspect_err(|e| {
        log.outcome = "invalid_token".into();
        log.reason = Some(e.reason().to_owned());
    })?;
    log.user_id = Some(claims.user.to_string());
    log.tenant_id = Some(claims.tenant.to_string());
    log.role = Some(claims.role.as_str());

    let mut limiter = RateLimiter::new(cfg.redis_url.as_str());
    let key = ratelimit::key(&cfg.policy, Subject::User(&claims.user));
    match limiter.hit(&cfg.policy, &key).await {
        Ok(decision) => {
            extra.extend(decision.headers(&cfg.policy));
            if !decision.allowed {
                log.outcome = "rate_limited".into();
                return Err(ApiError::new(decision.problem()));
            }
        }
        Err(cause) => {
            log.reason = Some("ratelimit_backend_down".into());
            edge::limits::backend_down(COMPONENT, cfg.fail_mode, &cfg.policy, &cause)?;
        }
    }

    if let Err(e) = cfg
        .rbac
        .authorize(claims.role, req.method().as_str(), req.uri().path())
    {
        log.outcome = "forbidden".into();
        audit_forbidden(cfg, &claims, rid, &req).await;
        return Err(e.into());
    }

    let (mut parts, body) = req.into_parts();
    strip_identity_headers(&mut parts.headers);
    let ctx = AuthContext::from_claims(&claims, rid.as_str(), now);
    let ctx_value = HeaderValue::from_str(&ctx.to_header_value(&cfg.context_key))
        .map_err(|e| ApiError::internal(format!("auth context header: {e}")))?;
    parts
        .headers
        .insert(HeaderName::from_static(context::HEADER), ctx_value);
    parts.headers.insert(
        HeaderName::from_static(problem::REQUEST_ID_HEADER),
        HeaderValue::from_str(rid.as_str())
            .map_err(|e| ApiError::internal(format!("request id header: {e}")))?,
    );
    let res = spin_sdk::http::next(Request::from_parts(parts, body))
        .await
        .map_err(|e| ApiError::internal(format!("next handler failed: {e:?}")))?;
    Ok(Answer::Next(res))
}

/// Exactly one `Authorization: Bearer` header, fully verified. Several `Authorization` headers
/// are refused rather than guessing which one counts.
fn verify(
    headers: &HeaderMap,
    tokens: &Mutex<VerifiedTokens>,
    now: i64,
) -> Result<AccessClaims, auth_core::Error> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(auth_core::Error::MalformedToken);
    }
    // One thread per instance: the lock is never contended; a poisoned one still holds valid data.
    let mut tokens = tokens.lock().unwrap_or_else(|p| p.into_inner());
    tokens.verify_authorization(first.map(HeaderValue::as_bytes), now)
}

/// Removes everything an inner component could mistake for identity: every `x-auth-*` header a
/// client sent, and the bearer token itself (inner components never need it).
fn strip_identity_headers(headers: &mut HeaderMap) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| context::is_auth_header(n.as_str()))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(&name);
    }
    headers.remove(header::AUTHORIZATION);
    // The URI already carries the authority; a stale Host must not disagree with it.
    headers.remove(header::HOST);
    headers.remove(header::CONNECTION);
    // Hop-by-hop framing headers describe the inbound connection only; wasi:http refuses them on
    // the forwarded request (a chunked upload failed with `HeaderError::Forbidden`).
    for name in [
        "transfer-encoding",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
    ] {
        headers.remove(name);
    }
}

/// Writes the `auth.forbidden` security event. Best effort: failing to audit is logged, and the
/// answer stays `403`.
async fn audit_forbidden(cfg: &Config, claims: &AccessClaims, rid: &RequestId, req: &Request) {
    let route = format!("{} {}", req.method(), req.uri().path());
    let result = async {
        let db = Db::open(&cfg.database_url).await?;
        let tx = db.begin_for_tenant(&claims.tenant).await?;
        tx.audit(&AuditEntry {
            tenant: &claims.tenant,
            user: Some(&claims.user),
            action: "auth.forbidden",
            resource_type: Some("route"),
            resource_id: Some(route.clone()),
            request_id: rid.as_str(),
            client_addr: edge::client::client_ip(req.headers()).map(|ip| ip.to_string()),
            details: serde_json::json!({ "role": claims.role.as_str(), "jti": claims.jti }),
        })
        .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        edge::log::event(
            COMPONENT,
            "audit_write_failed",
            serde_json::json!({ "action": "auth.forbidden", "requestId": rid.as_str(), "cause": e.to_string() }),
        );
    }
}
