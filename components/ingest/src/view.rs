//! The API's `Attachment`, with a freshly signed `downloadUrl` that lasts `download_url_ttl_secs`
//! (the default of `POST .../download-url`).

use auth_core::TenantId;
use serde::Serialize;
use signed_url::{Disposition, Target};
use store::attachments::AttachmentRow;
use uuid::Uuid;

use crate::Config;

/// `Attachment`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Attachment {
    pub id: String,
    pub message_id: String,
    pub filename: String,
    pub mime_type: String,
    pub size: i64,
    pub content_hash: String,
    pub virus_scan_status: String,
    pub is_deduplicated: bool,
    pub created_at: i64,
    pub download_url: String,
    /// Epoch milliseconds.
    pub download_url_expires_at: i64,
}

/// A signed URL for the content of attachment `id` (`attachment` disposition) and its expiry in
/// epoch milliseconds.
pub(crate) fn download_url(
    cfg: &Config,
    tenant: &TenantId,
    id: Uuid,
    generation: u32,
) -> (String, i64) {
    let target = Target {
        attachment_id: id,
        tenant_id: *tenant.as_uuid(),
        disposition: Disposition::Attachment,
        generation,
    };
    let (url, grant) = cfg.url_signer.issue(
        &cfg.public_base,
        target,
        cfg.download_url_ttl,
        auth_core::unix_now(),
    );
    (url.into_string(), grant.expires_at.saturating_mul(1000))
}

impl Attachment {
    /// The stored attachment `row` of `tenant`.
    pub(crate) fn from_row(cfg: &Config, tenant: &TenantId, row: &AttachmentRow) -> Self {
        let (download_url, download_url_expires_at) =
            download_url(cfg, tenant, row.id, row.url_generation);
        Self {
            id: row.id.to_string(),
            message_id: row.message_id.to_string(),
            filename: row.filename.clone(),
            mime_type: row.mime_type().to_owned(),
            size: row.size_bytes,
            content_hash: row.content_sha256.clone(),
            virus_scan_status: row.reported_status().to_owned(),
            is_deduplicated: row.is_deduplicated,
            created_at: row.created_at,
            download_url,
            download_url_expires_at,
        }
    }
}
