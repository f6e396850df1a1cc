//! The `auth` component: the token service and the tenant's audit-log listing.
//!
//! | route | who | module |
//! |---|---|---|
//! | `POST /api/v1/auth/token` | public | [`login`] |
//! | `POST /api/v1/auth/refresh` | public | [`refresh`] |
//! | `GET /.well-known/jwks.json` | public | [`jwks`] (here) |
//! | `POST /api/v1/auth/logout` | behind the auth middleware | [`session`] |
//! | `GET /api/v1/auth/me` | behind the auth middleware | [`session`] |
//! | `GET /api/v1/audit-log` | behind the auth middleware, admin | [`audit_log`] |
//!
//! This file owns routing, configuration and the one place where an [`ApiError`] becomes a
//! problem+json response. Public routes answer CORS here (the middleware does it for the others).
//! Routes behind the middleware trust only its `x-auth-context` ([`edge::inner::authenticate`]):
//! reached without the middleware they are `401`, whatever headers the client sends.

mod audit_log;
mod login;
mod refresh;
mod session;

use std::sync::OnceLock;

use auth_core::cors::{CorsPolicy, Preflight};
use auth_core::ratelimit::{FailMode, Policy};
use auth_core::{ContextKey, Issuer, KeyRing};
use edge::log::RequestLog;
use edge::spin::variable;
use edge::{ApiError, Problem, RequestId, response};
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

const COMPONENT: &str = "auth";

/// What a handler returns: every body of this component is small and complete.
type Reply = http::Response<String>;

/// Configuration of the public (token-issuing) routes.
struct PublicConfig {
    issuer: Issuer,
    jwks: String,
    refresh_ttl_secs: i64,
    database_url: String,
    redis_url: String,
    login_email: Policy,
    login_address: Policy,
    fail_mode: FailMode,
    cors: CorsPolicy,
}

/// Largest refresh-token lifetime accepted from configuration (one year).
const MAX_REFRESH_TTL_SECS: i64 = 365 * 24 * 60 * 60;

fn parse_secs(name: &str, value: &str, max: i64) -> Result<i64, ApiError> {
    match value.trim().parse::<i64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::internal(format!(
            "variable {name}: must be 1..={max} seconds"
        ))),
    }
}

impl PublicConfig {
    async fn load() -> Result<Self, ApiError> {
        let ring = KeyRing::from_json(&variable("auth_signing_keys").await?)?;
        let access_ttl = parse_secs(
            "auth_access_ttl_secs",
            &variable("auth_access_ttl_secs").await?,
            auth_core::claims::MAX_ACCESS_TTL_SECS,
        )?;
        let issuer = Issuer::new(
            &ring,
            variable("auth_issuer").await?,
            variable("auth_audience").await?,
        )?
        .with_ttl(access_ttl)?;
        Ok(Self {
            issuer,
            jwks: ring.jwks_json(),
            refresh_ttl_secs: parse_secs(
                "auth_refresh_ttl_secs",
                &variable("auth_refresh_ttl_secs").await?,
                MAX_REFRESH_TTL_SECS,
            )?,
            database_url: variable("database_url").await?,
            redis_url: variable("redis_url").await?,
            login_email: Policy::parse("login-email", &variable("login_rate_limit_email").await?)?,
            login_address: Policy::parse(
                "login-addr",
                &variable("login_rate_limit_address").await?,
            )?,
            fail_mode: variable("rate_limit_fail_mode").await?.parse()?,
            cors: CorsPolicy::from_config(&variable("cors_origins").await?)?,
        })
    }
}

/// Configuration of the routes behind the middleware.
struct InnerConfig {
    context_key: ContextKey,
    database_url: String,
}

impl InnerConfig {
    async fn load() -> Result<Self, ApiError> {
        Ok(Self {
            context_key: ContextKey::from_config(&variable("auth_context_key").await?)?,
            database_url: variable("database_url").await?,
        })
    }
}

static PUBLIC: OnceLock<PublicConfig> = OnceLock::new();
static INNER: OnceLock<InnerConfig> = OnceLock::new();

async fn public_config() -> Result<&'static PublicConfig, ApiError> {
    if let Some(c) = PUBLIC.get() {
        return Ok(c);
    }
    let loaded = PublicConfig::load().await?;
    Ok(PUBLIC.get_or_init(|| loaded))
}

async fn inner_config() -> Result<&'static InnerConfig, ApiError> {
    if let Some(c) = INNER.get() {
        return Ok(c);
    }
    let loaded = InnerConfig::load().await?;
    Ok(INNER.get_or_init(|| loaded))
}

/// The routes of this component: path, methods, whether it is public.
const ROUTES: &[(&str, &[Method], bool)] = &[
    ("/api/v1/auth/token", &[Method::POST], true),
    ("/api/v1/auth/refresh", &[Method::POST], true),
    ("/.well-known/jwks.json", &[Method::GET, Method::HEAD], true),
    ("/api/v1/auth/logout", &[Method::POST], false),
    ("/api/v1/auth/me", &[Method::GET], false),
    ("/api/v1/audit-log", &[Method::GET], false),
];

#[http_service]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let rid = edge::inner::request_id(req.headers());
    let path = req.uri().path().to_owned();
    let mut log = RequestLog::start(COMPONENT, rid.as_str(), req.method().as_str(), &path);
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let public = ROUTES.iter().any(|(p, _, public)| *p == path && *public);

    let mut res = match route(req, &path, &rid, &mut log).await {
        Ok(res) => res,
        Err(e) => {
            log.record_error(&e);
            e.into_response(&rid)
        }
    };
    if public {
        // Browsers log in from the configured front ends: the public routes answer CORS themselves.
        if let Some(cfg) = PUBLIC.get() {
            response::apply_headers(&mut res, &cfg.cors.response_headers(origin.as_deref()));
        }
    }
    response::set_request_id(&mut res, &rid);
    log.emit(res.status().as_u16());
    Ok(res)
}

async fn route(
    req: Request,
    path: &str,
    rid: &RequestId,
    log: &mut RequestLog,
) -> Result<Reply, ApiError> {
    let Some((_, methods, public)) = ROUTES.iter().find(|(p, _, _)| *p == path) else {
        return Err(Problem::not_found().into());
    };
    let method = req.method().clone();
    if method == Method::OPTIONS && *public {
        return preflight(req.headers(), methods, rid).await;
    }
    if !methods.contains(&method) {
        return Err(ApiError::method_not_allowed(methods));
    }
    match path {
        "/api/v1/auth/token" => login::token(req, public_config().await?, rid, log).await,
        "/api/v1/auth/refresh" => refresh::refresh(req, public_config().await?, rid, log).await,
        "/.well-known/jwks.json" => jwks(public_config().await?, rid),
        "/api/v1/auth/logout" => session::logout(req, inner_config().await?, log).await,
        "/api/v1/auth/me" => session::me(req, inner_config().await?, log).await,
        "/api/v1/audit-log" => audit_log::list(req, inner_config().await?, log).await,
        _ => Err(Problem::not_found().into()),
    }
}

/// `OPTIONS` on a public route: a CORS preflight from a configured origin is `204` with the
/// `Access-Control-Allow-*` headers, from any other origin `403`; a plain `OPTIONS` lists the
/// methods.
async fn preflight(
    headers: &HeaderMap,
    methods: &[Method],
    rid: &RequestId,
) -> Result<Reply, ApiError> {
    let cfg = public_config().await?;
    let get = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    match cfg.cors.preflight(
        get(header::ORIGIN),
        get(header::ACCESS_CONTROL_REQUEST_METHOD),
        get(header::ACCESS_CONTROL_REQUEST_HEADERS),
    ) {
        Preflight::Allowed(h) => {
            let mut res = response::empty(StatusCode::NO_CONTENT, rid);
            response::apply_headers(&mut res, &h);
            Ok(res)
        }
        Preflight::Denied(h) => Err(ApiError::new(Preflight::problem()).with_headers(h)),
        Preflight::NotPreflight => {
            let mut res = response::empty(StatusCode::NO_CONTENT, rid);
            let allow = methods
                .iter()
                .map(Method::as_str)
                .chain(["OPTIONS"])
                .collect::<Vec<_>>()
                .join(", ");
            response::apply_headers(&mut res, &[("Allow", allow)]);
            Ok(res)
        }
    }
}

/// `GET /.well-known/jwks.json`: the public halves of every key in the ring (the active one and
/// those kept for rotation), cacheable for a few minutes.
fn jwks(cfg: &PublicConfig, rid: &RequestId) -> Result<Reply, ApiError> {
    let mut res = http::Response::new(cfg.jwks.clone());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(response::JSON),
    );
    // Short enough that a staged key is picked up well before it becomes active.
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response::set_request_id(&mut res, rid);
    Ok(res)
}
