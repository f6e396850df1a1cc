//! The `scan-callback` component (issue 7).
//!
//! | route | who | what |
//! |---|---|---|
//! | `POST /api/v1/scan/callback` | scanners: `X-Scan-Signature` (HMAC), no Bearer | [`callback`]: apply a verdict, quarantine |
//! | `GET /api/v1/attachments/:id/scan-status` | behind the auth middleware | [`status`]: the verdict in force |
//!
//! The signature scheme, the body, the state machine and the quarantine plan live in
//! `crates/scan-core` (shared with the scan worker); object storage in `crates/storage`. This file
//! owns routing, configuration and the one place where an [`ApiError`] becomes a problem+json
//! response.

mod callback;
mod quarantine;
mod status;

use std::sync::OnceLock;

use auth_core::ContextKey;
use edge::log::RequestLog;
use edge::spin::variable;
use edge::{ApiError, Problem, RequestId, response};
use http::Method;
use scan_core::quarantine::Mode;
use scan_core::signature::SecretRing;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

const COMPONENT: &str = "scan-callback";

/// A finished response (bodies are small).
pub(crate) type Reply = http::Response<String>;

/// Configuration, read once per instance.
pub(crate) struct Config {
    pub secrets: SecretRing,
    pub quarantine_mode: Mode,
    pub database_url: String,
    pub storage: storage::client::Client,
}

fn config_error(name: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("variable {name}: {e}"))
}

impl Config {
    async fn load() -> Result<Self, ApiError> {
        let storage = storage::StorageConfig::new(
            &variable("s3_endpoint").await?,
            &variable("s3_region").await?,
            &variable("s3_bucket").await?,
            &variable("s3_access_key_id").await?,
            &variable("s3_secret_access_key").await?,
        )
        .map_err(|e| config_error("s3_*", e))?;
        Ok(Self {
            // The error says why (empty, too short), never a secret.
            secrets: SecretRing::parse(&variable("scan_callback_secrets").await?)
                .map_err(|e| config_error("scan_callback_secrets", e))?,
            quarantine_mode: Mode::parse(&variable("quarantine_mode").await?)
                .map_err(|e| config_error("quarantine_mode", e))?,
            database_url: variable("database_url").await?,
            storage: storage::client::Client::new(storage),
        })
    }
}

static CONFIG: OnceLock<Config> = OnceLock::new();
static CONTEXT_KEY: OnceLock<ContextKey> = OnceLock::new();

pub(crate) async fn config() -> Result<&'static Config, ApiError> {
    if let Some(c) = CONFIG.get() {
        return Ok(c);
    }
    let loaded = Config::load().await?;
    Ok(CONFIG.get_or_init(|| loaded))
}

/// The middleware hand-off key (scan-status only; the callback never needs it).
pub(crate) async fn context_key() -> Result<&'static ContextKey, ApiError> {
    if let Some(k) = CONTEXT_KEY.get() {
        return Ok(k);
    }
    let k = ContextKey::from_config(&variable("auth_context_key").await?)?;
    Ok(CONTEXT_KEY.get_or_init(|| k))
}

/// Which route a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Callback,
    ScanStatus(&'a str),
}

fn route_of(path: &str) -> Option<Route<'_>> {
    if path == "/api/v1/scan/callback" {
        return Some(Route::Callback);
    }
    let rest = path.strip_prefix("/api/v1/attachments/")?;
    match rest.split_once('/') {
        Some((id, "scan-status")) if !id.is_empty() => Some(Route::ScanStatus(id)),
        _ => None,
    }
}

#[http_service]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let mut rid = edge::inner::request_id(req.headers());
    let path = req.uri().path().to_owned();
    let mut log = RequestLog::start(COMPONENT, rid.as_str(), req.method().as_str(), &path);
    let mut res = match route(req, &path, &mut rid, &mut log).await {
        Ok(res) => res,
        Err(e) => {
            log.record_error(&e);
            e.into_response(&rid)
        }
    };
    response::set_request_id(&mut res, &rid);
    log.request_id = rid.as_str().to_owned();
    log.emit(res.status().as_u16());
    Ok(res)
}

async fn route(
    req: Request,
    path: &str,
    rid: &mut RequestId,
    log: &mut RequestLog,
) -> Result<Reply, ApiError> {
    match route_of(path) {
        Some(Route::Callback) if req.method() == Method::POST => {
            callback::receive(req, rid, log).await
        }
        Some(Route::Callback) => Err(ApiError::method_not_allowed(&[Method::POST])),
        Some(Route::ScanStatus(id)) if req.method() == Method::GET => {
            status::get(req, id, rid, log).await
        }
        Some(Route::ScanStatus(_)) => Err(ApiError::method_not_allowed(&[Method::GET])),
        None => Err(Problem::not_found().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route_of("/api/v1/scan/callback"), Some(Route::Callback));
        assert_eq!(
            route_of("/api/v1/attachments/x/scan-status"),
            Some(Route::ScanStatus("x"))
        );
        assert_eq!(route_of("/api/v1/attachments//scan-status"), None);
        assert_eq!(route_of("/api/v1/attachments/x"), None);
        assert_eq!(route_of("/api/v1/scan/callback/x"), None);
    }
}
