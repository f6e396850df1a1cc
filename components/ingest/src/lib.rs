//! The `ingest` component (issue 5), behind the auth middleware:
//!
//! | route | module |
//! |---|---|
//! | `POST /api/v1/emails/{messageId}/attachments` (raw body or multipart/form-data) | [`upload`] |
//! | `GET /api/v1/emails/{messageId}/attachments` | [`records`] |
//! | `GET /api/v1/attachments/{id}` | [`records`] |
//! | `DELETE /api/v1/attachments/{id}` | [`records`] |
//!
//! This file owns routing, configuration and the one place an [`ApiError`] becomes a
//! problem+json response. Identity comes only from the middleware's `x-auth-context`.

mod body;
mod records;
mod upload;
mod view;

use std::sync::OnceLock;

use attachment_policy::{ExtensionPolicy, SizeLimit};
use auth_core::{AuthContext, ContextKey};
use edge::log::RequestLog;
use edge::spin::variable;
use edge::{ApiError, Problem, RequestId, response};
use http::Method;
use signed_url::{PublicBaseUrl, UrlSigner};
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;
use storage::StorageConfig;

const COMPONENT: &str = "ingest";

/// A finished response (bodies are small JSON documents).
pub(crate) type Reply = http::Response<String>;

/// Configuration, read once per instance.
pub(crate) struct Config {
    pub context_key: ContextKey,
    pub database_url: String,
    pub storage: storage::client::Client,
    pub size_limit: SizeLimit,
    /// Part-buffer memory shared by this instance's concurrent uploads.
    pub buffers: storage::budget::BufferBudget,
    pub extensions: ExtensionPolicy,
    pub url_signer: UrlSigner,
    pub public_base: PublicBaseUrl,
}

fn config_error(name: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("variable {name}: {e}"))
}

impl Config {
    async fn load() -> Result<Self, ApiError> {
        let storage = StorageConfig::new(
            &variable("s3_endpoint").await?,
            &variable("s3_region").await?,
            &variable("s3_bucket").await?,
            &variable("s3_access_key_id").await?,
            &variable("s3_secret_access_key").await?,
        )
        .map_err(|e| config_error("s3_*", e))?;
        Ok(Self {
            context_key: ContextKey::from_config(&variable("auth_context_key").await?)?,
            database_url: variable("database_url").await?,
            storage: storage::client::Client::new(storage),
            size_limit: SizeLimit::from_config(&variable("max_upload_bytes").await?)
                .map_err(|e| config_error("max_upload_bytes", e))?,
            buffers: storage::budget::BufferBudget::from_config(
                &variable("upload_buffer_bytes").await?,
            )
            .map_err(|e| config_error("upload_buffer_bytes", e))?,
            extensions: ExtensionPolicy::from_config(&variable("blocked_extensions").await?)
                .map_err(|e| config_error("blocked_extensions", e))?,
            url_signer: UrlSigner::from_config(&variable("url_signing_keys").await?)
                .map_err(|e| config_error("url_signing_keys", e))?,
            public_base: PublicBaseUrl::parse(&variable("public_base_url").await?)
                .map_err(|e| config_error("public_base_url", e))?,
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

/// Which route a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    MessageAttachments(&'a str),
    Attachment(&'a str),
}

fn route_of(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix("/api/v1/")?;
    let segs: Vec<&str> = rest.split('/').collect();
    match segs.as_slice() {
        ["emails", id, "attachments"] => Some(Route::MessageAttachments(id)),
        ["attachments", id] => Some(Route::Attachment(id)),
        _ => None,
    }
}

pub(crate) fn note_identity(log: &mut RequestLog, ctx: &AuthContext) {
    log.user_id = Some(ctx.user.to_string());
    log.tenant_id = Some(ctx.tenant.to_string());
    log.role = Some(ctx.role.as_str());
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
    let Some(route) = route_of(path) else {
        return Err(Problem::not_found().into());
    };
    let allowed: &[Method] = match route {
        Route::MessageAttachments(_) => &[Method::POST, Method::GET],
        Route::Attachment(_) => &[Method::GET, Method::DELETE],
    };
    let method = req.method().clone();
    if !allowed.contains(&method) {
        return Err(ApiError::method_not_allowed(allowed));
    }
    let cfg = config().await?;
    let ctx = edge::inner::authenticate(req.headers(), &cfg.context_key, auth_core::unix_now())?;
    note_identity(log, &ctx);
    *rid = RequestId::from_client(Some(ctx.request_id.as_bytes()));
    match (route, method) {
        (Route::MessageAttachments(id), Method::POST) => {
            let message = edge::path_id(id)?;
            upload::upload(req, cfg, &ctx, message, rid, log).await
        }
        (Route::MessageAttachments(id), _) => {
            let message = edge::path_id(id)?;
            records::list(cfg, &ctx, message, rid).await
        }
        (Route::Attachment(id), Method::GET) => {
            let id = edge::path_id(id)?;
            records::get(cfg, &ctx, id, rid).await
        }
        (Route::Attachment(id), _) => {
            let id = edge::path_id(id)?;
            records::delete(req.headers(), cfg, &ctx, id, rid).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route_of("/api/v1/emails/x/attachments"),
            Some(Route::MessageAttachments("x"))
        );
        assert_eq!(
            route_of("/api/v1/attachments/y"),
            Some(Route::Attachment("y"))
        );
        assert_eq!(route_of("/api/v1/attachments/y/download-url"), None);
        assert_eq!(route_of("/api/v1/emails/x"), None);
    }
}
