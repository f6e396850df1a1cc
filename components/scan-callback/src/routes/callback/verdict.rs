//! The verdict of a verified callback, in one transaction with the target's tenant set: the
//! target resolved (an `attachmentId` through the `SECURITY DEFINER` `resolve_attachment_tenant`,
//! `tenantId` + `contentHash` under row-level security with that tenant); the content's open jobs
//! and then its row locked (`FOR UPDATE`, in the lock order of the scan queue's functions, so
//! concurrent verdicts for one content are decided one after the other on fresh state); the state
//! machine ([`scan_core::verdict::decide`]: the lock order is the order of arrival); the guarded
//! update; the engine's own verdict kept (`scan_engine_verdicts`: the content's status is the worst
//! of its engines', which the state machine arrives at in whatever order they answer); the open
//! jobs answered; the audit row, naming the scanner.

use auth_core::TenantId;
use edge::app::Call;
use edge::{ApiError, Problem};
use scan_core::verdict::{Current, Decision, Ignored, Incoming, ScanStatus, decide};
use scan_core::{Callback, Target, audit};
use store::audit_log::{self, AuditEntry};
use store::spin::Db;
use store::verdicts::{self, Blob, Content};
use store::{Tx, scan_jobs};
use uuid::Uuid;

/// A verdict decided and committed.
pub(crate) struct Decided {
    /// The content's tenant.
    pub tenant: TenantId,
    /// The content row as it was locked.
    pub blob: Blob,
    /// The status in force now.
    pub status: ScanStatus,
}

/// Decides and stores the verdict of `cb`, sent by `scanner` (see the module docs); `404` for an
/// unknown target.
pub(crate) async fn apply(
    db: &Db,
    cb: &Callback,
    scanner: &str,
    client_addr: Option<String>,
    call: &mut Call,
) -> Result<Decided, ApiError> {
    let (tenant, content, attachment) = resolve(db, &cb.target).await?;
    call.log.tenant_id = Some(tenant.to_string());

    let tx = Tx::for_tenant(db, &tenant).await?;
    scan_jobs::lock_open(&tx, content).await?;
    let Some(blob) = verdicts::lock_blob(&tx, content).await? else {
        // Another tenant's content, or none: the same answer.
        tx.rollback().await;
        return Err(Problem::not_found().into());
    };
    let v = &cb.verdict;
    let current = Current {
        status: blob.status,
        scanned_at: blob.scanned_at,
    };
    let mut decision = decide(
        current,
        Incoming {
            status: v.status,
            scanned_at: v.scanned_at,
        },
    );
    if let Decision::Apply { .. } = decision
        && verdicts::apply(&tx, blob.id, v).await?.is_none()
    {
        decision = Decision::Ignore(Ignored::Refused);
    }
    // Each engine's own word is kept, whatever the state machine made of it (an engine's `clean` on
    // content another engine found infected is still what that engine said); a replay rewrites the
    // same row.
    verdicts::record_engine(&tx, blob.id, v).await?;
    let jobs_completed = if decision.completes_jobs() {
        scan_jobs::complete_open(&tx, blob.id).await?
    } else {
        0
    };
    let facts = audit::Decided {
        decision,
        verdict: v,
        previous: blob.status,
        content_hash: &blob.content_sha256,
        attachment,
        jobs_completed,
        scanner,
    };
    if let Some(entry) = audit::verdict(&facts) {
        let row = AuditEntry {
            user: None,
            action: entry.action,
            resource_type: Some(audit::RESOURCE_TYPE),
            resource_id: Some(blob.id.to_string()),
            request_id: call.request_id.as_str(),
            client_addr,
            details: entry.details,
        };
        audit_log::record(&tx, &row).await?;
    }
    tx.commit().await?;

    let (from, to) = (blob.status.as_str(), v.status.as_str());
    call.log.reason = Some(format!(
        "scanner {scanner}: {}: {from} -> {to}",
        decision.outcome()
    ));
    let status = decision.status_after(blob.status, v.status);
    Ok(Decided {
        tenant,
        blob,
        status,
    })
}

/// The target's tenant and content, and the attachment it named.
async fn resolve<'a>(
    db: &Db,
    target: &'a Target,
) -> Result<(TenantId, Content<'a>, Option<Uuid>), ApiError> {
    match target {
        Target::Attachment(id) => match verdicts::resolve_attachment(db, *id).await? {
            Some(r) => Ok((r.tenant, Content::Id(r.blob), Some(*id))),
            None => Err(Problem::not_found().into()),
        },
        Target::Content { tenant, hash } => Ok((
            TenantId::from_uuid(*tenant),
            Content::Hash(hash.as_str()),
            None,
        )),
    }
}
