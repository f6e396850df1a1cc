//! The `auth` component: the token service and the tenant's audit-log listing.
//!
//! | route | who | file |
//! |---|---|---|
//! | `POST /api/v1/auth/token` | public | [`routes::token`]: log in; its failure budgets [`routes::token::budgets`], a failed login [`routes::token::failure`] |
//! | `POST /api/v1/auth/refresh` | public | [`routes::refresh`]: rotate a refresh token |
//! | `GET /.well-known/jwks.json` | public | [`routes::jwks`]: the verification keys |
//! | `POST /api/v1/auth/logout` | behind the auth middleware | [`routes::logout`] |
//! | `GET /api/v1/auth/me` | behind the auth middleware | [`routes::me`] |
//! | `GET /api/v1/audit-log` | behind the auth middleware, admin | [`routes::audit_log`] |
//!
//! Browsers call the public routes with no middleware in front, so this component answers their
//! CORS itself ([`cors`]). Tokens, keys, passwords and limits are `auth-core`'s, the statements
//! `store`'s (`identity`, `sessions`, `audit_log`); routing, the caller, logging and error answers
//! the shell's (`edge::app`).

mod cors;
mod routes {
    pub(crate) mod audit_log;
    pub(crate) mod jwks;
    pub(crate) mod logout;
    pub(crate) mod me;
    pub(crate) mod refresh;
    pub(crate) mod token;
}

use std::sync::OnceLock;

use auth_core::cors::CorsPolicy;
use auth_core::ratelimit::{FailMode, LoginPolicies, Policy};
use auth_core::{Issuer, KeyRing, refresh};
use edge::app::{Call, Component, Reply};
use edge::routes::Endpoint;
use edge::spin::variable;
use edge::{ApiError, Problem, RequestId};
use http::HeaderMap;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

/// Configuration, read once per instance.
pub(crate) struct Config {
    /// Signs access tokens with the active key of `auth_signing_keys`.
    pub issuer: Issuer,
    /// The public halves of every key of the ring, as `/.well-known/jwks.json` serves them.
    pub jwks: String,
    /// Refresh token, family and grace lifetimes.
    pub refresh: refresh::Lifetimes,
    /// Derives each refresh token's successor (`auth_refresh_key`).
    pub successor_key: refresh::SuccessorKey,
    pub database: store::spin::Database,
    /// The deadline of every outbound call (storage, Postgres, Redis): `outbound_timeout_secs`.
    pub outbound_timeout: edge::OutboundTimeout,
    pub redis_url: String,
    /// Failed logins allowed per (email, client address), per client address, per email.
    pub login_limits: LoginPolicies,
    /// What a login does when Redis is down (`login_rate_limit_fail_mode`, its own setting: the
    /// login limits guard passwords, not capacity, so they default to closed).
    pub login_fail_mode: FailMode,
    /// The browser origins of the public routes.
    pub cors: CorsPolicy,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

struct Auth;

impl Component for Auth {
    const NAME: &'static str = "auth";
    type Config = Config;

    fn config_slot() -> &'static OnceLock<Config> {
        &CONFIG
    }

    async fn load_config() -> Result<Config, ApiError> {
        let ring = KeyRing::from_json(&variable("auth_signing_keys").await?)?;
        let issuer = Issuer::new(
            &ring,
            variable("auth_issuer").await?,
            variable("auth_audience").await?,
        )?
        .with_configured_ttl(&variable("auth_access_ttl_secs").await?)?;
        let outbound_timeout = edge::spin::outbound_timeout().await?;
        Ok(Config {
            issuer,
            jwks: ring.jwks_json(),
            refresh: refresh::Lifetimes::from_config(
                &variable("auth_refresh_ttl_secs").await?,
                &variable("auth_refresh_family_max_secs").await?,
                &variable("auth_refresh_grace_secs").await?,
            )?,
            successor_key: refresh::SuccessorKey::from_config(
                &variable("auth_refresh_key").await?,
            )?,
            database: edge::spin::database().await?,
            outbound_timeout,
            redis_url: variable("redis_url").await?,
            login_limits: LoginPolicies {
                per_email_address: Policy::parse(
                    "login-email-addr",
                    &variable("login_rate_limit_email_address").await?,
                )?,
                per_address: Policy::parse(
                    "login-addr",
                    &variable("login_rate_limit_address").await?,
                )?,
                per_email: Policy::parse(
                    "login-email",
                    &variable("login_rate_limit_email").await?,
                )?,
            },
            login_fail_mode: variable("login_rate_limit_fail_mode").await?.parse()?,
            cors: CorsPolicy::from_config(&variable("cors_origins").await?)?,
        })
    }

    async fn handle(
        req: Request,
        call: &mut Call,
        cfg: &'static Config,
    ) -> Result<Reply, ApiError> {
        match call.matched.endpoint {
            Endpoint::Login => routes::token::handle(req, call, cfg).await,
            Endpoint::Refresh => routes::refresh::handle(req, call, cfg).await,
            Endpoint::Jwks => routes::jwks::handle(call, cfg),
            Endpoint::Logout => routes::logout::handle(req, call, cfg).await,
            Endpoint::Me => routes::me::handle(call, cfg).await,
            Endpoint::AuditLog => routes::audit_log::handle(req, call, cfg).await,
            _ => Err(Problem::not_found().into()),
        }
    }

    async fn before_routing(req: &Request, rid: &RequestId) -> Option<Result<Reply, ApiError>> {
        cors::answer_options(req, rid).await
    }

    fn decorate(path: &str, request_headers: &HeaderMap, response_headers: &mut HeaderMap) {
        cors::decorate(path, request_headers, response_headers);
    }
}

#[http_service]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    edge::app::serve::<Auth>(req).await
}
