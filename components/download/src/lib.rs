//! The `download` component (issue 6).
//!
//! | route | who | what |
//! |---|---|---|
//! | `POST /api/v1/attachments/:id/download-url` | behind the auth middleware | [`issue`]: a signed URL |
//! | `POST /api/v1/attachments/:id/revoke-urls` | behind the auth middleware, uploader or admin | [`revoke`] |
//! | `GET`/`HEAD /api/v1/files/...` | public: the signature is the credential | [`content`] |
//!
//! The URL format, signing and verification live in `crates/signed-url`; headers, ranges and
//! conditionals in `crates/delivery`; object storage in `crates/storage`. This file owns routing,
//! configuration and the one place where an [`ApiError`] becomes a problem+json response.

mod content;
mod presign;
mod urls;

use std::sync::OnceLock;

use auth_core::ContextKey;
use edge::log::RequestLog;
use edge::spin::variable;
use edge::{ApiError, Code, Problem, RequestId, response};
use http::Method;
use signed_url::{ExpiresIn, PublicBaseUrl, UrlSigner};
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

const COMPONENT: &str = "download";

/// How content is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Through this component (default).
    Stream,
    /// `302` to a presigned storage URL.
    Redirect,
}

pub(crate) struct Config {
    pub signer: UrlSigner,
    pub base: PublicBaseUrl,
    pub default_ttl: ExpiresIn,
    pub serve_unscanned: bool,
    pub mode: Mode,
    pub database_url: String,
    pub storage: storage::client::Client,
    pub presigner: presign::Presigner,
}

fn config_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("configuration: {e}"))
}

impl Config {
    async fn load() -> Result<Self, ApiError> {
        let serve_unscanned = match variable("serve_unscanned").await?.trim() {
            "true" => true,
            "false" | "" => false,
            other => {
                return Err(config_error(format!(
                    "serve_unscanned: {other:?} is not true|false"
                )));
            }
        };
        let mode = match variable("download_mode").await?.trim() {
            "stream" | "" => Mode::Stream,
            "redirect" => Mode::Redirect,
            other => {
                return Err(config_error(format!(
                    "download_mode: {other:?} is not stream|redirect"
                )));
            }
        };
        let presigner = presign::Presigner {
            endpoint: variable("s3_endpoint").await?,
            bucket: variable("s3_bucket").await?,
            region: variable("s3_region").await?,
            access_key_id: variable("s3_access_key_id").await?,
            secret_access_key: variable("s3_secret_access_key").await?,
        };
        let storage_cfg = storage::StorageConfig::new(
            &presigner.endpoint,
            &presigner.region,
            &presigner.bucket,
            &presigner.access_key_id,
            &presigner.secret_access_key,
        )
        .map_err(config_error)?;
        Ok(Self {
            signer: UrlSigner::from_config(&variable("url_signing_keys").await?)
                .map_err(config_error)?,
            base: PublicBaseUrl::parse(&variable("public_base_url").await?)
                .map_err(config_error)?,
            default_ttl: ExpiresIn::parse_config(&variable("download_url_ttl_secs").await?)
                .map_err(config_error)?,
            serve_unscanned,
            mode,
            database_url: variable("database_url").await?,
            storage: storage::client::Client::new(storage_cfg),
            presigner,
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

pub(crate) async fn context_key() -> Result<&'static ContextKey, ApiError> {
    if let Some(k) = CONTEXT_KEY.get() {
        return Ok(k);
    }
    let k = ContextKey::from_config(&variable("auth_context_key").await?)?;
    Ok(CONTEXT_KEY.get_or_init(|| k))
}

/// What a route handler returns: a complete small answer or a streamed one.
pub(crate) enum Reply {
    Small(http::Response<String>),
    /// A streamed answer (already converted) and its status, for the request log.
    Wasi(u16, spin_sdk::wasip3::http::types::Response),
}

#[http_service]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let rid = edge::inner::request_id(req.headers());
    let path = req.uri().path().to_owned();
    // Never log the query of a content URL: it is the credential.
    let mut log = RequestLog::start(COMPONENT, rid.as_str(), req.method().as_str(), &path);
    let res = match route(req, &path, &rid, &mut log).await {
        Ok(Reply::Wasi(status, res)) => {
            log.emit(status);
            return Ok(res);
        }
        Ok(Reply::Small(res)) => res,
        Err(e) => {
            log.record_error(&e);
            e.into_response(&rid)
        }
    };
    let mut res = res;
    response::set_request_id(&mut res, &rid);
    log.emit(res.status().as_u16());
    res.into_response().map_err(|e| anyhow::anyhow!("{e:?}"))
}

async fn route(
    req: Request,
    path: &str,
    rid: &RequestId,
    log: &mut RequestLog,
) -> Result<Reply, ApiError> {
    if path.starts_with("/api/v1/files/") || path == "/api/v1/files" {
        return match *req.method() {
            Method::GET | Method::HEAD => content::serve(req, rid, log).await,
            _ => Err(ApiError::method_not_allowed(&[Method::GET, Method::HEAD])),
        };
    }
    let rest = path.strip_prefix("/api/v1/attachments/");
    let (id, action) = match rest.and_then(|r| r.split_once('/')) {
        Some((id, a)) if a == "download-url" || a == "revoke-urls" => (id, a),
        _ => return Err(Problem::not_found().into()),
    };
    if req.method() != Method::POST {
        return Err(ApiError::method_not_allowed(&[Method::POST]));
    }
    let id = uuid::Uuid::try_parse(id).map_err(|_| ApiError::new(Problem::new(Code::InvalidId)))?;
    match action {
        "download-url" => urls::issue(req, id, log).await.map(Reply::Small),
        _ => urls::revoke(req, id, log).await.map(Reply::Small),
    }
}
