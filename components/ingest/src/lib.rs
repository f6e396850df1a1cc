//! The `ingest` component: attachment upload, listing, metadata and soft delete, behind the auth
//! middleware. The service shell (`edge::app::serve`) routes, authenticates the caller, logs and
//! answers errors; each route is one file:
//!
//! | route | file |
//! |---|---|
//! | `GET /api/v1/emails` | [`routes::emails`]: the caller's own messages, newest first |
//! | `POST /api/v1/emails/{messageId}/attachments` (raw body or multipart/form-data) | [`routes::upload`] |
//! | `GET /api/v1/emails/{messageId}/attachments` | [`routes::list`] |
//! | `GET /api/v1/attachments/{id}` | [`routes::get`] |
//! | `DELETE /api/v1/attachments/{id}` | [`routes::delete`] |
//! | `POST /api/v1/emails/{messageId}/uploads`, `GET`/`DELETE /api/v1/uploads/{id}`, `POST /api/v1/uploads/{id}/complete` | [`routes::direct`]: direct-to-storage uploads |
//! | `GET /api/v1/usage`, `GET /api/v1/admin/usage` | [`routes::usage`]: quotas and usage |
//! | `POST /api/v1/emails/{messageId}/tus`, `HEAD`/`PATCH`/`DELETE /api/v1/tus/{id}` | [`routes::tus`]: tus 1.0.0 resumable uploads through this component |
//! | `PUT`/`DELETE /api/v1/admin/attachments/{id}/legal-hold`, `.../admin/emails/{messageId}/legal-hold` | [`routes::legal_hold`]: admins hold content from the retention purge |
//!
//! [`view`] is the `Attachment` they answer with. Statements: `crates/store`; what an upload must
//! satisfy: `crates/attachment-policy`; object storage: `crates/storage`; download URLs:
//! `crates/signed-url`.

mod routes;
mod view;

use std::sync::OnceLock;

use attachment_policy::{ExtensionPolicy, MultipartLimits, PaceLimits, SizeLimit};
use auth_core::ratelimit::FailMode;
use auth_core::slots::SlotPolicy;
use edge::app::{Call, Component, Reply};
use edge::routes::Endpoint;
use edge::spin::variable;
use edge::{ApiError, Problem};
use signed_url::{ExpiresIn, PublicBaseUrl, UrlSigner};
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;
use storage::StorageConfig;
use storage::budget::BufferBudget;

/// The component's name in `spin.toml` and in log lines.
const NAME: &str = "ingest";

/// Configuration, read and validated once per instance.
pub(crate) struct Config {
    pub database: store::spin::Database,
    /// The deadline of every outbound call (storage, Postgres, Redis): `outbound_timeout_secs`.
    pub outbound_timeout: edge::OutboundTimeout,
    pub storage: storage::client::Client,
    pub size_limit: SizeLimit,
    /// Parts per multipart body and header bytes per part.
    pub multipart: MultipartLimits,
    /// How slowly an upload's body may arrive.
    pub pace: PaceLimits,
    /// Part-buffer memory shared by this instance's concurrent uploads.
    pub buffers: BufferBudget,
    pub extensions: ExtensionPolicy,
    pub url_signer: UrlSigner,
    pub public_base: PublicBaseUrl,
    /// How long an `Attachment`'s `downloadUrl` works: the default of `POST .../download-url`.
    pub download_url_ttl: ExpiresIn,
    /// Direct-to-storage uploads.
    pub direct: routes::direct::Settings,
    /// tus uploads through this component.
    pub tus: routes::tus::Settings,
    /// Uploads one user may have in progress at once (`max_concurrent_uploads`).
    pub upload_slots: SlotPolicy,
    /// `rate_limit_fail_mode`: what a down Redis means for the upload slots.
    pub fail_mode: FailMode,
    pub redis_url: String,
    /// The default quota limits (`quota_*`); a tenant's overrides apply on top.
    pub quota: quota::Limits,
    /// How long a new attachment is kept when its tenant sets no retention (`retention_days`).
    pub retention: store::attachments::RetentionDays,
}

fn config_error(name: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_setting(name, e)
}

static CONFIG: OnceLock<Config> = OnceLock::new();

struct Ingest;

impl Component for Ingest {
    const NAME: &'static str = NAME;
    type Config = Config;

    fn config_slot() -> &'static OnceLock<Config> {
        &CONFIG
    }

    async fn load_config() -> Result<Config, ApiError> {
        let storage = StorageConfig::new(
            &variable("s3_endpoint").await?,
            &variable("s3_region").await?,
            &variable("s3_bucket").await?,
            &variable("s3_access_key_id").await?,
            &variable("s3_secret_access_key").await?,
        )
        .map_err(|e| config_error("s3_*", e))?;
        let pace = PaceLimits::from_config(
            &variable("upload_min_bytes_per_sec").await?,
            &variable("upload_deadline_secs").await?,
        )
        .map_err(|e| config_error("upload_min_bytes_per_sec/upload_deadline_secs", e))?;
        // A slot outlives the longest an upload may run by a minute (the commit after the body).
        let slot_lapse_secs = pace.deadline_ms.div_ceil(1000) + 60;
        let outbound_timeout = edge::spin::outbound_timeout().await?;
        Ok(Config {
            upload_slots: SlotPolicy::parse(
                "uploads",
                &variable("max_concurrent_uploads").await?,
                slot_lapse_secs,
            )
            .map_err(|e| config_error("max_concurrent_uploads", e))?,
            fail_mode: variable("rate_limit_fail_mode")
                .await?
                .parse()
                .map_err(|e| config_error("rate_limit_fail_mode", e))?,
            redis_url: variable("redis_url").await?,
            retention: store::attachments::RetentionDays::parse(&variable("retention_days").await?)
                .map_err(|e| config_error("retention_days", e))?,
            database: edge::spin::database().await?,
            outbound_timeout,
            storage: storage::client::Client::new(storage).with_timeout(outbound_timeout),
            size_limit: SizeLimit::from_config(&variable("max_upload_bytes").await?)
                .map_err(|e| config_error("max_upload_bytes", e))?,
            multipart: MultipartLimits::from_config(
                &variable("max_upload_parts").await?,
                &variable("max_part_header_bytes").await?,
            )
            .map_err(|e| config_error("max_upload_parts/max_part_header_bytes", e))?,
            pace,
            buffers: BufferBudget::from_config(&variable("upload_buffer_bytes").await?)
                .map_err(|e| config_error("upload_buffer_bytes", e))?,
            extensions: ExtensionPolicy::from_config(&variable("blocked_extensions").await?)
                .map_err(|e| config_error("blocked_extensions", e))?,
            url_signer: UrlSigner::from_config(&variable("url_signing_keys").await?)
                .map_err(|e| config_error("url_signing_keys", e))?,
            public_base: PublicBaseUrl::parse(&variable("public_base_url").await?)
                .map_err(|e| config_error("public_base_url", e))?,
            download_url_ttl: ExpiresIn::parse_config(&variable("download_url_ttl_secs").await?)
                .map_err(|e| config_error("download_url_ttl_secs", e))?,
            direct: routes::direct::Settings::from_config(
                &variable("direct_upload_max_bytes").await?,
                &variable("direct_upload_part_bytes").await?,
                &variable("upload_session_ttl_secs").await?,
                &variable("upload_part_url_ttl_secs").await?,
            )?,
            tus: routes::tus::Settings::from_config(&variable("upload_chunk_bytes").await?)?,
            quota: edge::spin::quota_limits().await?,
        })
    }

    async fn handle(
        req: Request,
        call: &mut Call,
        cfg: &'static Config,
    ) -> Result<Reply, ApiError> {
        match call.matched.endpoint {
            Endpoint::ListMessages => routes::emails::handle(req, call, cfg).await,
            Endpoint::Upload => routes::upload::handle(req, call, cfg).await,
            Endpoint::ListAttachments => routes::list::handle(req, call, cfg).await,
            Endpoint::GetAttachment => routes::get::handle(req, call, cfg).await,
            Endpoint::DeleteAttachment => routes::delete::handle(call, cfg).await,
            Endpoint::CreateUpload => routes::direct::create::handle(req, call, cfg).await,
            Endpoint::GetUpload => routes::direct::get::handle(req, call, cfg).await,
            Endpoint::CompleteUpload => routes::direct::complete::handle(req, call, cfg).await,
            Endpoint::AbortUpload => routes::direct::abort::handle(call, cfg).await,
            Endpoint::TusCreate => tus_answer(routes::tus::create::handle(req, call, cfg).await),
            Endpoint::TusHead => tus_answer(routes::tus::head::handle(call, cfg).await),
            Endpoint::TusPatch => tus_answer(routes::tus::patch::handle(req, call, cfg).await),
            Endpoint::TusTerminate => tus_answer(routes::tus::terminate::handle(call, cfg).await),
            Endpoint::Usage => routes::usage::mine(call, cfg).await,
            Endpoint::AdminUsage => routes::usage::tenant(call, cfg).await,
            Endpoint::AttachmentLegalHold | Endpoint::MessageLegalHold => {
                routes::legal_hold::handle(req, call, cfg).await
            }
            _ => Err(Problem::not_found().into()),
        }
    }
}

/// A tus route's errors carry `Tus-Resumable` too.
fn tus_answer(r: Result<Reply, ApiError>) -> Result<Reply, ApiError> {
    r.map_err(|e| e.with_headers(vec![routes::tus::resumable()]))
}

#[http_service]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    edge::app::serve::<Ingest>(req).await
}
