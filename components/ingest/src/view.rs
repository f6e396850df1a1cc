//! The `Attachment` JSON of the API, with a freshly signed download URL.

use auth_core::TenantId;
use edge::ApiError;
use edge::spin::cell;
use serde::Serialize;
use signed_url::{Disposition, ExpiresIn, Target};
use spin_sdk::pg::Row;
use uuid::Uuid;

use crate::Config;

/// The columns [`from_row`] reads, in order (append `FROM ... WHERE ...`).
pub(crate) const SELECT_ATTACHMENT: &str = "SELECT a.id, a.message_id, a.filename, \
     coalesce(a.detected_mime, 'application/octet-stream'), a.size_bytes, b.content_sha256, \
     b.scan_status, \
     EXISTS (SELECT 1 FROM email_attachments o WHERE o.blob_id = a.blob_id \
             AND (o.created_at, o.id) < (a.created_at, a.id)), \
     a.created_at, a.url_generation, a.uploader_user_id, m.owner_user_id, a.is_deleted \
     FROM email_attachments a \
     JOIN attachment_blobs b ON b.tenant_id = a.tenant_id AND b.id = a.blob_id \
     JOIN email_messages m ON m.tenant_id = a.tenant_id AND m.id = a.message_id";

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
    pub download_url_expires_at: i64,
}

/// One row of [`SELECT_ATTACHMENT`], plus who may see it.
pub(crate) struct Loaded {
    pub attachment: Attachment,
    pub uploader: String,
    pub message_owner: String,
    pub is_deleted: bool,
}

fn col<T>(v: Option<T>, what: &str) -> Result<T, ApiError> {
    v.ok_or_else(|| ApiError::internal(format!("attachment row: bad column {what}")))
}

/// The URL fields for an attachment.
pub(crate) fn download_url(
    cfg: &Config,
    tenant: &TenantId,
    id: Uuid,
    generation: i64,
) -> Result<(String, i64), ApiError> {
    let generation =
        u32::try_from(generation).map_err(|_| ApiError::internal("url_generation out of range"))?;
    let (url, grant) = cfg.url_signer.issue(
        &cfg.public_base,
        Target {
            attachment_id: id,
            tenant_id: *tenant.as_uuid(),
            disposition: Disposition::Attachment,
            generation,
        },
        ExpiresIn::default(),
        auth_core::unix_now(),
    );
    Ok((url.into_string(), grant.expires_at.saturating_mul(1000)))
}

/// Reads one row of [`SELECT_ATTACHMENT`].
pub(crate) fn from_row(cfg: &Config, tenant: &TenantId, row: &Row) -> Result<Loaded, ApiError> {
    let id = col(cell::text(row, 0), "id")?;
    let uuid = Uuid::try_parse(&id).map_err(|_| ApiError::internal("attachment id not a uuid"))?;
    let (download_url, download_url_expires_at) =
        download_url(cfg, tenant, uuid, col(cell::int(row, 9), "url_generation")?)?;
    Ok(Loaded {
        attachment: Attachment {
            id,
            message_id: col(cell::text(row, 1), "message_id")?,
            filename: col(cell::text(row, 2), "filename")?,
            mime_type: col(cell::text(row, 3), "mime")?,
            size: col(cell::int(row, 4), "size")?,
            content_hash: col(cell::text(row, 5), "hash")?,
            virus_scan_status: col(cell::text(row, 6), "scan_status")?,
            is_deduplicated: col(cell::boolean(row, 7), "dedup")?,
            created_at: col(cell::int(row, 8), "created_at")?,
            download_url,
            download_url_expires_at,
        },
        uploader: col(cell::text(row, 10), "uploader")?,
        message_owner: col(cell::text(row, 11), "owner")?,
        is_deleted: col(cell::boolean(row, 12), "is_deleted")?,
    })
}
