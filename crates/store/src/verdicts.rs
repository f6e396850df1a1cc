//! The verdicts in force: `attachment_blobs`' scan columns and quarantine record, as the scan
//! callback reads, locks and changes them, and as the scan-status route reads them. What a verdict
//! does is decided in `scan-core` (the state machine, the quarantine plan); these are its statements.
//! The database guards them again: a trigger refuses leaving `infected` and releasing `suspicious`
//! and stamps each verdict's arrival (`scan_received_at`), and only `scan_record_quarantine` may
//! change a `storage_key`.

use auth_core::TenantId;
use scan_core::engines::{EngineKey, EngineVerdict};
use scan_core::quarantine::Recorded;
use scan_core::{InForce, ScanStatus, Verdict};
use uuid::Uuid;

use crate::conn::{Conn, TenantTx};
use crate::error::{Result, StoreError};
use crate::value::{Param, Row};

/// Which content a callback is about, once resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content<'a> {
    /// The content row with this id (an attachment's blob).
    Id(Uuid),
    /// The content with this lowercase hex SHA-256, in the transaction's tenant.
    Hash(&'a str),
}

impl Content<'_> {
    pub(crate) fn param(&self) -> Param {
        match self {
            Self::Id(id) => Param::Uuid(*id),
            Self::Hash(h) => Param::Text((*h).to_owned()),
        }
    }
}

/// The tenant and content of an attachment, for a caller that has no tenant yet (the signed scan
/// callback naming an `attachmentId`). `SECURITY DEFINER`: it reveals these two values only.
const RESOLVE_ATTACHMENT: &str = "SELECT tenant_id, blob_id FROM resolve_attachment_tenant($1)";

const LOCK_BY_ID: &str = "SELECT id, content_sha256, scan_status, scanned_at, storage_key, quarantine_action \
     FROM attachment_blobs WHERE id = $1 FOR UPDATE";
const LOCK_BY_HASH: &str = "SELECT id, content_sha256, scan_status, scanned_at, storage_key, quarantine_action \
     FROM attachment_blobs WHERE content_sha256 = $1 AND purging_at IS NULL FOR UPDATE";
const READ: &str = "SELECT id, content_sha256, scan_status, scanned_at, storage_key, quarantine_action \
     FROM attachment_blobs WHERE id = $1";

/// The verdict, guarded like the database trigger (migration 0009: `infected` is never left,
/// `suspicious` never released). Not ordered by `scanned_at`: verdicts take effect in the order they
/// arrive, and the trigger stamps `scan_received_at` (server time). With the row locked and the state
/// machine stricter than the trigger, the guard never filters; it is there so that a bug cannot turn
/// into a trigger error.
const APPLY: &str = "UPDATE attachment_blobs \
     SET scan_status = $2, scan_engine = $3, scan_signature = $4, scan_details = $5, scanned_at = $6 \
     WHERE id = $1 \
       AND NOT (scan_status = 'infected' AND $2 <> 'infected') \
       AND NOT (scan_status = 'suspicious' AND $2 NOT IN ('suspicious', 'infected')) \
     RETURNING scan_verdict_version";

/// The new `storage_key`, or `NULL` when nothing changed (not quarantine content, already recorded,
/// or the row no longer has `from_key`).
const RECORD_QUARANTINE: &str = "SELECT scan_record_quarantine($1, $2, $3)";

/// The verdict in force for an attachment's content, with what the access rule needs, and whether
/// the scan job its upload awaits is still open.
const OF_ATTACHMENT: &str = "SELECT b.scan_status, b.scan_details, b.scan_engine, b.scan_signature, b.scanned_at, \
     a.is_deleted, a.uploader_user_id, m.owner_user_id, \
     coalesce(j.status IN ('pending', 'running'), false), b.id \
     FROM email_attachments a \
     JOIN attachment_blobs b ON b.tenant_id = a.tenant_id AND b.id = a.blob_id \
     JOIN email_messages m ON m.tenant_id = a.tenant_id AND m.id = a.message_id \
     LEFT JOIN scan_jobs j ON j.tenant_id = a.tenant_id AND j.id = a.scan_job_id \
     WHERE a.id = $1";

/// Keeps an engine's own verdict on a content: one row per content and engine, the engine's
/// latest word (its `error` too: the row says what the engine last said, the content's status what
/// all of them amount to).
const RECORD_ENGINE: &str = "INSERT INTO scan_engine_verdicts \
     (tenant_id, blob_id, engine, engine_version, signature_version, status, names, scanned_at) \
     VALUES (app_current_tenant_id(), $1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (blob_id, engine) DO UPDATE SET engine_version = EXCLUDED.engine_version, \
       signature_version = EXCLUDED.signature_version, status = EXCLUDED.status, \
       names = EXCLUDED.names, scanned_at = EXCLUDED.scanned_at, received_at = app_now_ms()";

/// A content's engine verdicts, by engine.
const ENGINES_OF: &str = "SELECT engine, engine_version, signature_version, status, names, scanned_at \
     FROM scan_engine_verdicts WHERE blob_id = $1 ORDER BY engine";

/// Where an attachment's content lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// The attachment's tenant.
    pub tenant: TenantId,
    /// Its content row.
    pub blob: Uuid,
}

/// The tenant and content of `attachment` (any tenant); `None` when there is no such attachment.
pub async fn resolve_attachment<C: Conn>(conn: &C, attachment: Uuid) -> Result<Option<Resolved>> {
    let rows = conn
        .query(
            "resolve attachment tenant",
            RESOLVE_ATTACHMENT,
            vec![attachment.into()],
        )
        .await?;
    rows.first()
        .map(|r| {
            Ok(Resolved {
                tenant: TenantId::from_uuid(r.uuid(0)?),
                blob: r.uuid(1)?,
            })
        })
        .transpose()
}

/// A content row as the callback decides on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Its id.
    pub id: Uuid,
    /// Lowercase hex SHA-256.
    pub content_sha256: String,
    /// The verdict in force.
    pub status: ScanStatus,
    /// That verdict's `scannedAt` (`None` before any scanner answered): the scanner's statement,
    /// which tells a replay, never the order of verdicts.
    pub scanned_at: Option<i64>,
    /// Where the object is (the quarantine key once moved).
    pub storage_key: String,
    /// What is recorded about its quarantine.
    pub recorded: Option<Recorded>,
}

impl Blob {
    fn from_row(context: &'static str, r: &Row) -> Result<Self> {
        let status = r.text(2)?;
        let recorded = r.opt_text(5)?;
        Ok(Self {
            id: r.uuid(0)?,
            content_sha256: r.text(1)?,
            status: ScanStatus::parse(&status)
                .ok_or_else(|| StoreError::decode(context, format!("scan_status {status:?}")))?,
            scanned_at: r.opt_int(3)?,
            storage_key: r.text(4)?,
            recorded: match recorded {
                None => None,
                Some(s) => Some(Recorded::parse(&s).ok_or_else(|| {
                    StoreError::decode(context, format!("quarantine_action {s:?}"))
                })?),
            },
        })
    }
}

/// Locks the content row (`FOR UPDATE`) and reads it; `None` when the tenant has no such content.
/// Lock the content's open scan jobs first ([`crate::scan_jobs::lock_open`]): the queue's
/// functions lock a job and then its content, and the same order rules out a deadlock with them.
pub async fn lock_blob<C: Conn>(
    tx: &TenantTx<'_, C>,
    content: Content<'_>,
) -> Result<Option<Blob>> {
    let sql = match content {
        Content::Id(_) => LOCK_BY_ID,
        Content::Hash(_) => LOCK_BY_HASH,
    };
    let rows = tx.query("lock content", sql, vec![content.param()]).await?;
    rows.first()
        .map(|r| Blob::from_row("lock content", r))
        .transpose()
}

/// Reads the content row `id` (unlocked).
pub async fn blob<C: Conn>(tx: &TenantTx<'_, C>, id: Uuid) -> Result<Option<Blob>> {
    let rows = tx.query("read content", READ, vec![id.into()]).await?;
    rows.first()
        .map(|r| Blob::from_row("read content", r))
        .transpose()
}

/// Puts `verdict` in force on content `blob` (lock it first with [`lock_blob`]: the lock order is
/// the arrival order); the new `scan_verdict_version`, or `None` when the database did not take it
/// (the guard skipped it, or the trigger refused it with `check_violation`, rolled back to a
/// savepoint so the transaction stays usable).
pub async fn apply<C: Conn>(
    tx: &TenantTx<'_, C>,
    blob: Uuid,
    verdict: &Verdict,
) -> Result<Option<i64>> {
    let text = |t: &Option<scan_core::callback::BoundedText>| {
        Param::opt_text(t.as_ref().map(|t| t.as_str()))
    };
    let params = vec![
        blob.into(),
        verdict.status.as_str().into(),
        text(&verdict.engine),
        text(&verdict.signature),
        text(&verdict.details),
        verdict.scanned_at.into(),
    ];
    let applied = tx
        .savepoint(
            tx.query("apply verdict", APPLY, params),
            StoreError::is_check_violation,
        )
        .await?;
    match applied.as_deref().and_then(<[Row]>::first) {
        Some(r) => Ok(Some(r.int(0)?)),
        None => Ok(None),
    }
}

/// Records that the object of `blob`, still at `from_key`, was quarantined by `action`; the key now
/// recorded, or `None` when another callback changed the row first (or the content is not
/// quarantine content). Only under the transaction's tenant; write the audit row in the same
/// transaction.
pub async fn record_quarantine<C: Conn>(
    tx: &TenantTx<'_, C>,
    blob: Uuid,
    from_key: &str,
    action: Recorded,
) -> Result<Option<String>> {
    let rows = tx
        .query(
            "record quarantine",
            RECORD_QUARANTINE,
            vec![blob.into(), from_key.into(), action.as_str().into()],
        )
        .await?;
    match rows.first() {
        Some(r) => r.opt_text(0),
        None => Ok(None),
    }
}

/// Keeps `verdict` as its engine's own verdict on content `blob` (in the transaction that decided
/// it, with the content locked).
pub async fn record_engine<C: Conn>(
    tx: &TenantTx<'_, C>,
    blob: Uuid,
    verdict: &Verdict,
) -> Result<()> {
    use scan_core::engines::{EngineKey, EngineVersion, detection_names};
    let engine = verdict.engine.as_ref().map(|t| t.as_str());
    let key = EngineKey::of(engine);
    let version = EngineVersion::of(engine);
    let names = detection_names(verdict.signature.as_ref().map(|t| t.as_str()));
    tx.execute(
        "record engine verdict",
        RECORD_ENGINE,
        vec![
            blob.into(),
            key.as_str().into(),
            Param::opt_text(version.version.as_deref()),
            version.signatures.map_or(Param::Null, Param::Int64),
            verdict.status.as_str().into(),
            Param::Jsonb(serde_json::json!(names)),
            verdict.scanned_at.into(),
        ],
    )
    .await?;
    Ok(())
}

/// The engine verdicts on content `blob`, by engine name.
pub async fn engines_of<C: Conn>(tx: &TenantTx<'_, C>, blob: Uuid) -> Result<Vec<EngineVerdict>> {
    const CONTEXT: &str = "engine verdicts";
    let rows = tx.query(CONTEXT, ENGINES_OF, vec![blob.into()]).await?;
    rows.iter()
        .map(|r| {
            let status = r.text(3)?;
            let names = match r.opt_json(4)? {
                Some(serde_json::Value::Array(a)) => a
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            Ok(EngineVerdict {
                engine: EngineKey::of(Some(&r.text(0)?)),
                version: r.opt_text(1)?,
                signature_version: r.opt_int(2)?,
                status: ScanStatus::parse(&status)
                    .ok_or_else(|| StoreError::decode(CONTEXT, format!("status {status:?}")))?,
                names,
                scanned_at: r.int(5)?,
            })
        })
        .collect()
}

/// An attachment's verdict and who may read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentScan {
    /// The verdict in force for its content, as the attachment reports it: `pending` (and nothing
    /// else) while the scan job its upload awaits is open, so an upload never shows a verdict the
    /// tenant had before (see `crate::attachments::reported_status`).
    pub verdict: InForce,
    /// Whether the attachment is deleted (answered as absent).
    pub deleted: bool,
    /// Who uploaded it.
    pub uploader: Uuid,
    /// Who owns its message.
    pub owner: Uuid,
}

/// The verdict in force for attachment `id` of the transaction's tenant.
pub async fn of_attachment<C: Conn>(
    tx: &TenantTx<'_, C>,
    id: Uuid,
) -> Result<Option<AttachmentScan>> {
    const CONTEXT: &str = "attachment scan status";
    let rows = tx.query(CONTEXT, OF_ATTACHMENT, vec![id.into()]).await?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let status = r.text(0)?;
    let awaiting = r.bool(8)?;
    let verdict = if awaiting {
        InForce {
            status: ScanStatus::Pending,
            details: None,
            engine: None,
            signature: None,
            scanned_at: None,
            engines: Vec::new(),
        }
    } else {
        InForce {
            status: ScanStatus::parse(&status)
                .ok_or_else(|| StoreError::decode(CONTEXT, format!("scan_status {status:?}")))?,
            details: r.opt_text(1)?,
            engine: r.opt_text(2)?,
            signature: r.opt_text(3)?,
            scanned_at: r.opt_int(4)?,
            engines: engines_of(tx, r.uuid(9)?).await?,
        }
    };
    Ok(Some(AttachmentScan {
        verdict,
        deleted: r.bool(5)?,
        uploader: r.uuid(6)?,
        owner: r.uuid(7)?,
    }))
}
