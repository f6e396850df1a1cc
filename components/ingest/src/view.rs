//! The API's `Attachment`, with a freshly signed `downloadUrl` that lasts `download_url_ttl_secs`
//! (the default of `POST .../download-url`).

use auth_core::TenantId;
use serde::Serialize;
use signed_url::{Disposition, Target};
use store::attachments::{AttachmentRow, UNKNOWN_MIME};
use store::uploads::SessionRow;
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
    /// Absent while a direct upload is verifying or after it was rejected: there is no verified
    /// content yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// `verifying` and `rejected` only for a direct upload that has no verified content (yet).
    pub virus_scan_status: String,
    pub is_deduplicated: bool,
    pub created_at: i64,
    /// Absent while there is nothing to download (verifying, rejected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    /// Epoch milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_url_expires_at: Option<i64>,
    /// Why verification refused a direct upload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejection: Option<crate::routes::direct::Rejection>,
    /// The direct upload this attachment comes from, while it is verifying or rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
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
            content_hash: Some(row.content_sha256.clone()),
            virus_scan_status: row.reported_status().to_owned(),
            is_deduplicated: row.is_deduplicated,
            created_at: row.created_at,
            download_url: Some(download_url),
            download_url_expires_at: Some(download_url_expires_at),
            rejection: None,
            upload_id: None,
        }
    }

    /// A direct upload that has no attachment row yet (verifying) or never will (rejected): what
    /// its uploader sees of it in the message's list and at its attachment id.
    pub(crate) fn from_session(row: &SessionRow) -> Self {
        Self {
            id: row.attachment_id.to_string(),
            message_id: row.message_id.to_string(),
            filename: row.filename.clone(),
            mime_type: UNKNOWN_MIME.to_owned(),
            size: row.claimed_size,
            content_hash: None,
            virus_scan_status: row.state.as_str().to_owned(),
            is_deduplicated: false,
            created_at: row.created_at,
            download_url: None,
            download_url_expires_at: None,
            rejection: row
                .reject_code
                .as_ref()
                .map(|code| crate::routes::direct::Rejection {
                    code: code.clone(),
                    detail: row.reject_detail.clone().unwrap_or_default(),
                }),
            upload_id: Some(row.id.to_string()),
        }
    }
}
