//! Executes the quarantine plan of `scan_core::quarantine` against object storage and the database.
//!
//! `move`: CopyObject original → `quarantine/<original>`, then `scan_record_quarantine(..., 'moved')`
//! switches `storage_key` (with the `attachment.quarantine` audit row, one transaction), then
//! DeleteObject of the original. `delete`: `scan_record_quarantine(..., 'deleted')` (and the audit
//! row), then DeleteObject. Every step is repeatable; a callback that finds the quarantine recorded
//! deletes the original again (absent counts as deleted), which finishes an interrupted attempt.
//!
//! Concurrent callbacks for one content may run this side by side: the copy is the same bytes to
//! the same key, only one `scan_record_quarantine` changes the row (it requires `storage_key` to
//! still be the original), and the original is deleted only once the row no longer points at it.

use std::time::SystemTime;

use auth_core::TenantId;
use edge::log::RequestLog;
use edge::spin::{AuditEntry, Db};
use edge::{ApiError, RequestId};
use scan_core::quarantine::{Recorded, Step, plan};
use scan_core::verdict::ScanStatus;
use serde_json::json;
use spin_sdk::pg::ParameterValue;
use storage::request::Signer;
use storage::{ObjectKey, StorageError, response};

use crate::Config;
use crate::callback::Blob;

const READ_BLOB: &str = "SELECT id, content_sha256, scan_status, scanned_at, storage_key, quarantine_action \
     FROM attachment_blobs WHERE id = $1";

fn storage_error(e: StorageError) -> ApiError {
    // Either way the scanner should retry: the verdict is in force, the object move resumes.
    ApiError::unavailable(format!("quarantine storage: {e}"))
}

fn key(s: &str) -> Result<ObjectKey, ApiError> {
    ObjectKey::from_stored(s).map_err(|e| ApiError::internal(format!("quarantine key: {e}")))
}

/// CopyObject within the bucket. S3 may answer `200` with an `<Error>` document.
async fn copy(cfg: &Config, from: &ObjectKey, to: &ObjectKey) -> Result<(), StorageError> {
    let req = Signer::new(cfg.storage.config()).copy_object(from, to, SystemTime::now())?;
    let a = cfg.storage.send(req).await?;
    response::complete(a.status, &a.body)
}

async fn reread(db: &Db, tenant: &TenantId, blob_id: &str) -> Result<Option<Blob>, ApiError> {
    let tx = db.begin_for_tenant(tenant).await?;
    let rows = tx
        .query(READ_BLOB, vec![ParameterValue::Uuid(blob_id.to_owned())])
        .await?;
    tx.commit().await?;
    rows.first().map(Blob::from_row).transpose()
}

/// Records the quarantine (and audits it); the storage key now recorded, or `None` if another
/// callback changed the row first.
async fn record(
    db: &Db,
    tenant: &TenantId,
    blob: &Blob,
    action: Recorded,
    rid: &RequestId,
) -> Result<Option<String>, ApiError> {
    let tx = db.begin_for_tenant(tenant).await?;
    let rows = tx
        .query(
            "SELECT scan_record_quarantine($1, $2, $3)",
            vec![
                ParameterValue::Uuid(blob.id.clone()),
                ParameterValue::Str(blob.storage_key.clone()),
                ParameterValue::Str(action.as_str().to_owned()),
            ],
        )
        .await?;
    let recorded = rows.first().and_then(|r| edge::spin::cell::text(r, 0));
    if recorded.is_some() {
        // No storage key in the audit row: the audit log is shown to tenant admins.
        tx.audit(&AuditEntry {
            tenant,
            user: None,
            action: "attachment.quarantine",
            resource_type: Some("attachment_blob"),
            resource_id: Some(blob.id.clone()),
            request_id: rid.as_str(),
            client_addr: None,
            details: json!({ "action": action.as_str(), "contentHash": blob.content_sha256 }),
        })
        .await?;
    }
    tx.commit().await?;
    Ok(recorded)
}

/// Brings the object of `blob` (whose status is now `status`) to its quarantine state, if it is
/// quarantine content. See the module docs.
pub(crate) async fn ensure(
    cfg: &Config,
    tenant: &TenantId,
    blob: &Blob,
    status: ScanStatus,
    rid: &RequestId,
    log: &mut RequestLog,
) -> Result<(), ApiError> {
    let step = plan(status, &blob.storage_key, blob.recorded, cfg.quarantine_mode);
    if step == Step::Nothing {
        return Ok(());
    }
    let db = Db::open(&cfg.database_url).await?;
    match step {
        Step::Nothing => Ok(()),
        Step::DeleteOriginal { key: k } => cfg.storage.delete_object(&key(&k)?).await.map_err(storage_error),
        Step::Move { from, to } => {
            let (from_key, to_key) = (key(&from)?, key(&to)?);
            if let Err(e) = copy(cfg, &from_key, &to_key).await {
                if !matches!(e, StorageError::NotFound { .. }) {
                    return Err(storage_error(e));
                }
                // The original is gone: a concurrent callback moved it. Resume from its record.
                return resume(cfg, &db, tenant, blob, status, log).await;
            }
            if record(&db, tenant, blob, Recorded::Moved, rid).await?.is_some() {
                log.reason = Some(format!("{}; quarantined (moved)", log.reason.as_deref().unwrap_or("")));
                return cfg.storage.delete_object(&from_key).await.map_err(storage_error);
            }
            resume(cfg, &db, tenant, blob, status, log).await
        }
        Step::Delete { key: k } => {
            if record(&db, tenant, blob, Recorded::Deleted, rid).await?.is_some() {
                log.reason = Some(format!("{}; quarantined (deleted)", log.reason.as_deref().unwrap_or("")));
                return cfg.storage.delete_object(&key(&k)?).await.map_err(storage_error);
            }
            resume(cfg, &db, tenant, blob, status, log).await
        }
    }
}

/// Another callback changed the row while this one worked: read it again and finish only what the
/// record allows (never delete an object the row still points at).
async fn resume(
    cfg: &Config,
    db: &Db,
    tenant: &TenantId,
    blob: &Blob,
    status: ScanStatus,
    log: &mut RequestLog,
) -> Result<(), ApiError> {
    let Some(now) = reread(db, tenant, &blob.id).await? else {
        return Err(ApiError::internal("quarantine: the content row disappeared"));
    };
    match plan(now.status, &now.storage_key, now.recorded, cfg.quarantine_mode) {
        Step::DeleteOriginal { key: k } => cfg.storage.delete_object(&key(&k)?).await.map_err(storage_error),
        Step::Nothing => Ok(()),
        // Still unrecorded although the original could not be copied: nothing safe to do here.
        other => {
            log.reason = Some(format!("quarantine incomplete ({status:?}): {other:?}"));
            Err(ApiError::unavailable("quarantine: original object missing and nothing recorded"))
        }
    }
}
