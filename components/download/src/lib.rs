//! The `download` component: signed download URLs and the content they grant. The service shell
//! (`edge::app::serve`) routes, authenticates callers of the routes behind the auth middleware, logs
//! and answers errors; each route is one file:
//!
//! | route | who | file |
//! |---|---|---|
//! | `POST /api/v1/attachments/{id}/download-url` | behind the auth middleware, message owner, uploader or admin | [`routes::issue_url`] |
//! | `POST /api/v1/attachments/{id}/revoke-urls` | behind the auth middleware, message owner, uploader or admin | [`routes::revoke_urls`] |
//! | `GET`/`HEAD /api/v1/files/...` | public: the signature is the credential; `file_rate_limit` per URL | [`routes::file`] |
//! | `GET /health/ready` | public: readiness (database, Redis, storage reachable) | [`routes::ready`] |
//!
//! The URL format, signing and verification live in `crates/signed-url`; headers, ranges,
//! conditionals and the serving checks in `crates/delivery`; statements in `crates/store`; object
//! storage in `crates/storage`, and [`presign`] presigns the storage URLs of redirected downloads
//! (`download_mode = redirect`, and `auto` above `download_stream_max_bytes`).

mod presign;
mod routes;

use std::sync::OnceLock;

use auth_core::ratelimit::{FailMode, Policy};
use delivery::serve::{Mode, serve_unscanned_from_config, stream_max_from_config};
use edge::app::{Call, Component, Reply};
use edge::routes::Endpoint;
use edge::spin::variable;
use edge::{ApiError, Problem};
use signed_url::{ExpiresIn, PublicBaseUrl, UrlSigner};
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

/// Configuration, read and validated once per instance.
pub(crate) struct Config {
    pub signer: UrlSigner,
    pub base: PublicBaseUrl,
    /// `expiresIn` when a request names none.
    pub default_ttl: ExpiresIn,
    pub serve_unscanned: bool,
    /// `download_mode`: how content leaves (see [`Mode::via`]).
    pub mode: Mode,
    /// `download_stream_max_bytes`: the largest body `Mode::Auto` streams; larger answers redirect.
    pub stream_max: u64,
    pub database: store::spin::Database,
    /// The deadline of every outbound call (storage, Postgres, Redis): `outbound_timeout_secs`.
    pub outbound_timeout: edge::OutboundTimeout,
    pub storage: storage::client::Client,
    pub presigner: presign::Presigner,
    /// `file_rate_limit`: requests per signed content URL.
    pub file_policy: Policy,
    /// `rate_limit_fail_mode`: what a down Redis means for the content route.
    pub fail_mode: FailMode,
    pub redis_url: String,
    /// The default quota limits (`quota_*`): the daily download limit is charged per answer.
    pub quota: quota::Limits,
}

fn config_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::misconfigured(format!("configuration: {e}"))
}

static CONFIG: OnceLock<Config> = OnceLock::new();

struct Download;

impl Component for Download {
    const NAME: &'static str = "download";
    type Config = Config;

    fn config_slot() -> &'static OnceLock<Config> {
        &CONFIG
    }

    async fn load_config() -> Result<Config, ApiError> {
        let presigner = presign::Presigner {
            endpoint: variable("s3_endpoint").await?,
            bucket: variable("s3_bucket").await?,
            region: variable("s3_region").await?,
            access_key_id: variable("s3_access_key_id").await?,
            secret_access_key: variable("s3_secret_access_key").await?,
        };
        let storage = storage::StorageConfig::new(
            &presigner.endpoint,
            &presigner.region,
            &presigner.bucket,
            &presigner.access_key_id,
            &presigner.secret_access_key,
        )
        .map_err(config_error)?;
        let outbound_timeout = edge::spin::outbound_timeout().await?;
        Ok(Config {
            quota: edge::spin::quota_limits().await?,
            signer: UrlSigner::from_config(&variable("url_signing_keys").await?)
                .map_err(config_error)?,
            base: PublicBaseUrl::parse(&variable("public_base_url").await?)
                .map_err(config_error)?,
            default_ttl: ExpiresIn::parse_config(&variable("download_url_ttl_secs").await?)
                .map_err(config_error)?,
            serve_unscanned: serve_unscanned_from_config(&variable("serve_unscanned").await?)
                .map_err(config_error)?,
            mode: Mode::from_config(&variable("download_mode").await?).map_err(config_error)?,
            stream_max: stream_max_from_config(&variable("download_stream_max_bytes").await?)
                .map_err(config_error)?,
            database: edge::spin::database().await?,
            outbound_timeout,
            storage: storage::client::Client::new(storage).with_timeout(outbound_timeout),
            presigner,
            file_policy: Policy::parse("file", &variable("file_rate_limit").await?)
                .map_err(config_error)?,
            fail_mode: variable("rate_limit_fail_mode")
                .await?
                .parse()
                .map_err(config_error)?,
            redis_url: variable("redis_url").await?,
        })
    }

    async fn handle(
        req: Request,
        call: &mut Call,
        cfg: &'static Config,
    ) -> Result<Reply, ApiError> {
        match call.matched.endpoint {
            Endpoint::IssueDownloadUrl => routes::issue_url::handle(req, call, cfg).await,
            Endpoint::RevokeDownloadUrls => routes::revoke_urls::handle(call, cfg).await,
            Endpoint::File => routes::file::handle(req, call, cfg).await,
            Endpoint::Ready => routes::ready::handle(call, cfg).await,
            _ => Err(Problem::not_found().into()),
        }
    }
}

#[http_service]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    edge::app::serve::<Download>(req).await
}
