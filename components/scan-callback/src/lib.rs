//! The `scan-callback` component: the verdicts of virus scanners, and the scan status they leave.
//!
//! | route | who | file |
//! |---|---|---|
//! | `POST /api/v1/scan/callback` | a scanner: `X-Scan-Signature`, checked by the route | [`routes::callback`]: the verdict ([`routes::callback::verdict`]), then the object's quarantine ([`routes::callback::quarantine`]) |
//! | `GET /api/v1/attachments/{id}/scan-status` | behind the auth middleware | [`routes::scan_status`]: the verdict in force |
//! | `POST /api/v1/scan/upload-verification` | the worker: `X-Scan-Signature` | [`routes::upload_verification`]: a direct upload becomes an attachment, or is rejected |
//!
//! The signature scheme, the body, the state machine, the quarantine plan and the audit rows live in
//! `crates/scan-core`, the statements in `crates/store` (`scan_jobs`, `verdicts`), object storage in
//! `crates/storage`; routing, logging and error answers in the shell (`edge::app`).

mod routes {
    pub(crate) mod callback;
    pub(crate) mod scan_status;
    pub(crate) mod upload_verification;
}

use std::sync::OnceLock;

use edge::app::{Call, Component, Reply};
use edge::routes::Endpoint;
use edge::spin::variable;
use edge::{ApiError, Problem};
use scan_core::quarantine::Mode;
use scan_core::signature::SecretRing;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

/// Configuration, read once per instance.
pub(crate) struct Config {
    /// `scan_callback_secrets`: the scanners (`name:secret,...`) whose signatures a callback may carry.
    pub secrets: SecretRing,
    /// `quarantine_mode`: move or delete quarantined objects.
    pub quarantine_mode: Mode,
    pub database: store::spin::Database,
    /// The deadline of every outbound call (storage, Postgres, Redis): `outbound_timeout_secs`.
    pub outbound_timeout: edge::OutboundTimeout,
    pub storage: storage::client::Client,
    /// The default quota limits (`quota_*`): a verified upload is recorded only within them.
    pub quota: quota::Limits,
    /// How long a verified direct upload's attachment is kept when its tenant sets no retention
    /// (`retention_days`).
    pub retention: store::attachments::RetentionDays,
}

fn config_error(name: &str, e: impl std::fmt::Display) -> ApiError {
    // The error says why (empty, too short, ...), never a secret.
    ApiError::bad_setting(name, e)
}

static CONFIG: OnceLock<Config> = OnceLock::new();

struct ScanCallback;

impl Component for ScanCallback {
    const NAME: &'static str = "scan-callback";
    type Config = Config;

    fn config_slot() -> &'static OnceLock<Config> {
        &CONFIG
    }

    async fn load_config() -> Result<Config, ApiError> {
        let storage = storage::StorageConfig::new(
            &variable("s3_endpoint").await?,
            &variable("s3_region").await?,
            &variable("s3_bucket").await?,
            &variable("s3_access_key_id").await?,
            &variable("s3_secret_access_key").await?,
        )
        .map_err(|e| config_error("s3_*", e))?;
        let outbound_timeout = edge::spin::outbound_timeout().await?;
        Ok(Config {
            quota: edge::spin::quota_limits().await?,
            secrets: SecretRing::parse(&variable("scan_callback_secrets").await?)
                .map_err(|e| config_error("scan_callback_secrets", e))?,
            quarantine_mode: Mode::parse(&variable("quarantine_mode").await?)
                .map_err(|e| config_error("quarantine_mode", e))?,
            database: edge::spin::database().await?,
            outbound_timeout,
            storage: storage::client::Client::new(storage).with_timeout(outbound_timeout),
            retention: store::attachments::RetentionDays::parse(&variable("retention_days").await?)
                .map_err(|e| config_error("retention_days", e))?,
        })
    }

    async fn handle(
        req: Request,
        call: &mut Call,
        cfg: &'static Config,
    ) -> Result<Reply, ApiError> {
        match call.matched.endpoint {
            Endpoint::ScanCallback => routes::callback::handle(req, call, cfg).await,
            Endpoint::ScanStatus => routes::scan_status::handle(call, cfg).await,
            Endpoint::UploadVerification => {
                routes::upload_verification::handle(req, call, cfg).await
            }
            _ => Err(Problem::not_found().into()),
        }
    }
}

#[http_service]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    edge::app::serve::<ScanCallback>(req).await
}
