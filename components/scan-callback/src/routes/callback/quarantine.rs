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

use edge::ApiError;
use edge::app::Call;
use scan_core::audit;
use scan_core::quarantine::{Recorded, Step, plan};
use storage::{ObjectKey, StorageError};
use store::Tx;
use store::audit_log::{self, AuditEntry};
use store::spin::Db;
use store::verdicts::{self, Blob};

use super::verdict::Decided;
use crate::Config;

fn storage_error(e: StorageError) -> ApiError {
    // Either way the scanner should retry: the verdict is in force, the object move resumes (once
    // the operator fixed the settings, for a misconfiguration).
    if e.is_misconfigured() {
        ApiError::misconfigured(format!("quarantine storage: {e}"))
    } else if e.is_timeout() {
        ApiError::upstream_timeout(format!("quarantine storage: {e}"))
    } else {
        ApiError::unavailable(format!("quarantine storage: {e}"))
    }
}

fn key(s: &str) -> Result<ObjectKey, ApiError> {
    ObjectKey::from_stored(s).map_err(|e| ApiError::internal(format!("quarantine key: {e}")))
}

async fn delete(cfg: &Config, k: &str) -> Result<(), ApiError> {
    cfg.storage
        .delete_object(&key(k)?)
        .await
        .map_err(storage_error)
}

fn noted(call: &mut Call, action: Recorded) {
    let before = call.log.reason.take().unwrap_or_default();
    call.log.reason = Some(format!("{before}; quarantined ({})", action.as_str()));
}

/// Brings the object of the decided content to its quarantine state, if it is quarantine content.
/// See the module docs.
pub(crate) async fn ensure(
    cfg: &Config,
    db: &Db,
    d: &Decided,
    call: &mut Call,
) -> Result<(), ApiError> {
    let blob = &d.blob;
    match plan(
        d.status,
        &blob.storage_key,
        blob.recorded,
        cfg.quarantine_mode,
    ) {
        Step::Nothing => Ok(()),
        Step::DeleteOriginal { key: k } => delete(cfg, &k).await,
        Step::Move { from, to } => {
            match cfg.storage.copy_object(&key(&from)?, &key(&to)?).await {
                Ok(()) => {}
                // The original is gone: a concurrent callback moved it. Resume from its record.
                Err(StorageError::NotFound { .. }) => return resume(cfg, db, d, call).await,
                Err(e) => return Err(storage_error(e)),
            }
            if record(db, d, Recorded::Moved, call).await? {
                noted(call, Recorded::Moved);
                return delete(cfg, &from).await;
            }
            resume(cfg, db, d, call).await
        }
        Step::Delete { key: k } => {
            if record(db, d, Recorded::Deleted, call).await? {
                noted(call, Recorded::Deleted);
                return delete(cfg, &k).await;
            }
            resume(cfg, db, d, call).await
        }
    }
}

/// Records the quarantine with its audit row, in one transaction; `false` if another callback
/// changed the row first.
async fn record(db: &Db, d: &Decided, action: Recorded, call: &Call) -> Result<bool, ApiError> {
    let tx = Tx::for_tenant(db, &d.tenant).await?;
    let blob = &d.blob;
    let recorded = verdicts::record_quarantine(&tx, blob.id, &blob.storage_key, action).await?;
    if recorded.is_some() {
        let entry = audit::quarantine(action, &blob.content_sha256);
        let row = AuditEntry {
            user: None,
            action: entry.action,
            resource_type: Some(audit::RESOURCE_TYPE),
            resource_id: Some(blob.id.to_string()),
            request_id: call.request_id.as_str(),
            client_addr: None,
            details: entry.details,
        };
        audit_log::record(&tx, &row).await?;
    }
    tx.commit().await?;
    Ok(recorded.is_some())
}

/// Another callback changed the row while this one worked: read it again and finish only what the
/// record allows (never delete an object the row still points at).
async fn resume(cfg: &Config, db: &Db, d: &Decided, call: &mut Call) -> Result<(), ApiError> {
    let tx = Tx::for_tenant(db, &d.tenant).await?;
    let now: Option<Blob> = verdicts::blob(&tx, d.blob.id).await?;
    tx.commit().await?;
    let Some(now) = now else {
        return Err(ApiError::internal(
            "quarantine: the content row disappeared",
        ));
    };
    match plan(
        now.status,
        &now.storage_key,
        now.recorded,
        cfg.quarantine_mode,
    ) {
        Step::DeleteOriginal { key: k } => delete(cfg, &k).await,
        Step::Nothing => Ok(()),
        // Still unrecorded although the original could not be copied: nothing safe to do here.
        other => {
            call.log.reason = Some(format!("quarantine incomplete ({:?}): {other:?}", d.status));
            Err(ApiError::unavailable(
                "quarantine: original object missing and nothing recorded",
            ))
        }
    }
}
