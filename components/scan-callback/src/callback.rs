//! `POST /api/v1/scan/callback`: a scanner reports a verdict.
//!
//! In this order (the first failure answers):
//! 1. the body, at most [`MAX_BODY`] bytes (`413 payload_too_large`);
//! 2. `X-Scan-Signature` over the exact bytes (`401 signature_invalid`, one answer for every refusal:
//!    the log says which); nothing about targets is revealed before this passes;
//! 3. JSON media type (`415`) and the body ([`scan_core::Callback::parse`], `400 bad_request`);
//! 4. the target: `attachmentId` through the SECURITY DEFINER `resolve_attachment_tenant`, or
//!    `tenantId` + `contentHash` under RLS with that tenant (`404 not_found` when unknown);
//! 5. one transaction with the tenant set: the content's open jobs and then its row locked
//!    (`FOR UPDATE`, so concurrent verdicts for one content are decided one after the other on
//!    fresh state, in the lock order of the scan queue's functions),
//!    [`scan_core::verdict::decide`], the guarded `UPDATE`, the open `scan_jobs` rows of the content
//!    marked `done`, the `scan.verdict` audit row;
//! 6. for `infected`/`suspicious` content, the object's quarantine ([`crate::quarantine`]), resumed
//!    on every callback for that content until it is complete (so a retry finishes an interrupted one).
//!
//! A verdict the state machine ignores (replay, stale, release of quarantine, failed rescan of clean
//! content) is `204` like an applied one. Storage trouble after the verdict committed is `503`: the
//! scanner retries, the verdict is then a replay, and the quarantine resumes.

use auth_core::TenantId;
use edge::body;
use edge::log::RequestLog;
use edge::spin::{AuditEntry, Db, Tx, cell};
use edge::{ApiError, Code, Problem, RequestId, response};
use http::StatusCode;
use scan_core::quarantine::Recorded;
use scan_core::signature::{HEADER, SignatureError};
use scan_core::verdict::{Current, Decision, Ignored, Incoming, ScanStatus, decide};
use scan_core::{Callback, Target};
use serde_json::json;
use spin_sdk::http::Request;
use spin_sdk::pg::ParameterValue;

use crate::{Reply, config, quarantine};

/// Largest callback body. A valid one is under 8 KiB (bounded fields); the cap leaves room for
/// JSON escapes and members we ignore.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// The content's open scan jobs, locked first: the SQL functions of the scan queue
/// (`scan_complete_job`, `scan_claim_jobs`) lock a job and then update its blob, so taking the locks
/// in the same order (jobs, then the blob) rules out a deadlock with them. `{where}` as below.
const LOCK_JOBS: &str = "SELECT j.id FROM scan_jobs j \
     JOIN attachment_blobs b ON b.tenant_id = j.tenant_id AND b.id = j.blob_id \
     WHERE b.{where} AND j.status IN ('pending', 'running') ORDER BY j.id FOR UPDATE OF j";

/// `SELECT` of the content row, locked; `{where}` is `id = $1` or `content_sha256 = $1`.
const LOCK_BLOB: &str = "SELECT id, content_sha256, scan_status, scanned_at, storage_key, quarantine_action \
     FROM attachment_blobs WHERE {where} FOR UPDATE";

/// The verdict, guarded like the database trigger (a newer `scannedAt`; `infected` is never left).
/// With the row locked and the state machine stricter than the trigger, the guard never filters;
/// it is there so that a bug cannot turn into a trigger error.
const APPLY_VERDICT: &str = "UPDATE attachment_blobs \
     SET scan_status = $2, scan_engine = $3, scan_signature = $4, scan_details = $5, scanned_at = $6 \
     WHERE id = $1 AND (scanned_at IS NULL OR scanned_at < $6) \
       AND NOT (scan_status = 'infected' AND $2 <> 'infected') \
     RETURNING scan_verdict_version";

/// The content's open jobs are answered.
const COMPLETE_JOBS: &str = "UPDATE scan_jobs \
     SET status = 'done', lease_expires_at = NULL, locked_by = NULL, finished_at = app_now_ms() \
     WHERE blob_id = $1 AND status IN ('pending', 'running')";

/// SQLSTATE `check_violation`: what the verdict trigger raises.
const CHECK_VIOLATION: &str = "23514";

/// The content row as locked.
pub(crate) struct Blob {
    pub id: String,
    pub content_sha256: String,
    pub status: ScanStatus,
    pub scanned_at: Option<i64>,
    pub storage_key: String,
    pub recorded: Option<Recorded>,
}

impl Blob {
    pub(crate) fn from_row(row: &spin_sdk::pg::Row) -> Result<Self, ApiError> {
        let bad = |what: &str| ApiError::internal(format!("attachment_blobs row: bad {what}"));
        Ok(Self {
            id: cell::text(row, 0).ok_or_else(|| bad("id"))?,
            content_sha256: cell::text(row, 1).ok_or_else(|| bad("content_sha256"))?,
            status: cell::text(row, 2)
                .as_deref()
                .and_then(ScanStatus::parse)
                .ok_or_else(|| bad("scan_status"))?,
            scanned_at: cell::int(row, 3),
            storage_key: cell::text(row, 4).ok_or_else(|| bad("storage_key"))?,
            recorded: match cell::text(row, 5) {
                None => None,
                Some(s) => Some(Recorded::parse(&s).ok_or_else(|| bad("quarantine_action"))?),
            },
        })
    }
}

fn opt_text(t: &Option<scan_core::callback::BoundedText>) -> ParameterValue {
    t.as_ref()
        .map_or(ParameterValue::DbNull, |t| ParameterValue::Str(t.as_str().to_owned()))
}

fn unauthorized(e: &SignatureError, log: &mut RequestLog) -> ApiError {
    log.reason = Some(
        match e {
            SignatureError::Missing => "signature_missing",
            SignatureError::Malformed => "signature_malformed",
            SignatureError::OutsideWindow => "signature_outside_window",
            SignatureError::Mismatch => "signature_mismatch",
        }
        .to_owned(),
    );
    ApiError::new(
        Problem::with_status(Code::SignatureInvalid, 401).detail(
            "X-Scan-Signature is missing, malformed, outside the allowed time window, or does not match.",
        ),
    )
    .with_header("WWW-Authenticate", "X-Scan-Signature realm=\"scan-callback\"")
}

/// Where the target lives, once resolved.
struct Resolved {
    tenant: TenantId,
    /// `id = $1` or `content_sha256 = $1`.
    column: &'static str,
    key: ParameterValue,
    attachment: Option<String>,
}

async fn resolve(db: &Db, target: &Target) -> Result<Resolved, ApiError> {
    match target {
        Target::Attachment(id) => {
            let rows = db
                .query(
                    "SELECT tenant_id, blob_id FROM resolve_attachment_tenant($1)",
                    vec![ParameterValue::Uuid(id.hyphenated().to_string())],
                )
                .await?;
            let row = rows.first().ok_or_else(|| ApiError::from(Problem::not_found()))?;
            let tenant = cell::text(row, 0)
                .and_then(|t| TenantId::parse(&t).ok())
                .ok_or_else(|| ApiError::internal("resolve_attachment_tenant: bad tenant_id"))?;
            let blob =
                cell::text(row, 1).ok_or_else(|| ApiError::internal("resolve_attachment_tenant: bad blob_id"))?;
            Ok(Resolved {
                tenant,
                column: "id",
                key: ParameterValue::Uuid(blob),
                attachment: Some(id.hyphenated().to_string()),
            })
        }
        Target::Content { tenant, hash } => Ok(Resolved {
            tenant: TenantId::from_uuid(*tenant),
            column: "content_sha256",
            key: ParameterValue::Str(hash.as_str().to_owned()),
            attachment: None,
        }),
    }
}

pub(crate) async fn receive(
    req: Request,
    rid: &RequestId,
    log: &mut RequestLog,
) -> Result<Reply, ApiError> {
    let cfg = config().await?;
    let (parts, b) = req.into_parts();
    let bytes = body::read_limited(&parts.headers, b, MAX_BODY).await?;

    // Exactly one signature header; several are refused like a wrong one.
    let mut values = parts.headers.get_all(HEADER).iter();
    let header = match (values.next(), values.next()) {
        (Some(v), None) => Some(v.to_str().unwrap_or("")),
        (None, _) => None,
        (Some(_), Some(_)) => Some(""),
    };
    let now = auth_core::unix_now();
    cfg.secrets
        .verify(header, &bytes, now)
        .map_err(|e| unauthorized(&e, log))?;

    body::require_json(&parts.headers)?;
    let cb = Callback::parse(&bytes, now.saturating_mul(1000))
        .map_err(|e| ApiError::new(Problem::bad_request(e.to_string())))?;

    let db = Db::open(&cfg.database_url).await?;
    let target = resolve(&db, &cb.target).await?;
    log.tenant_id = Some(target.tenant.to_string());

    let tx = db.begin_for_tenant(&target.tenant).await?;
    let condition = format!("{} = $1", target.column);
    tx.query(&LOCK_JOBS.replace("{where}", &condition), vec![target.key.clone()])
        .await?;
    let rows = tx
        .query(&LOCK_BLOB.replace("{where}", &condition), vec![target.key.clone()])
        .await?;
    let Some(row) = rows.first() else {
        // Another tenant's content, or none: the same answer.
        tx.rollback().await;
        return Err(Problem::not_found().into());
    };
    let blob = Blob::from_row(row)?;
    let incoming = Incoming { status: cb.verdict.status, scanned_at: cb.verdict.scanned_at };
    let mut decision = decide(Current { status: blob.status, scanned_at: blob.scanned_at }, incoming);

    if let Decision::Apply { .. } = decision {
        if !apply_verdict(&tx, &blob, &cb).await? {
            decision = Decision::Ignore(Ignored::Stale);
            log.reason = Some("refused_by_database".into());
        }
    }
    let jobs = match decision {
        Decision::Apply { .. } => complete_jobs(&tx, &blob.id).await?,
        Decision::Ignore(why) if why.completes_jobs() => complete_jobs(&tx, &blob.id).await?,
        Decision::Ignore(_) => 0,
    };
    let audit_details = json!({
        "status": cb.verdict.status.as_str(),
        "previousStatus": blob.status.as_str(),
        "scannedAt": cb.verdict.scanned_at,
        "engine": cb.verdict.engine.as_ref().map(|t| t.as_str()),
        "signature": cb.verdict.signature.as_ref().map(|t| t.as_str()),
        "contentHash": blob.content_sha256,
        "attachmentId": target.attachment,
        "jobsCompleted": jobs,
    });
    let action = match decision {
        Decision::Apply { .. } => Some("scan.verdict"),
        // Worth an operator's eye: a scanner says quarantined content is fine now.
        Decision::Ignore(Ignored::Quarantined) => Some("scan.verdict_ignored"),
        Decision::Ignore(_) => None,
    };
    if let Some(action) = action {
        let mut details = audit_details;
        if let Decision::Ignore(why) = decision {
            details["reason"] = why.as_str().into();
        }
        tx.audit(&AuditEntry {
            tenant: &target.tenant,
            user: None,
            action,
            resource_type: Some("attachment_blob"),
            resource_id: Some(blob.id.clone()),
            request_id: rid.as_str(),
            client_addr: edge::client::client_ip(&parts.headers).map(|ip| ip.to_string()),
            details,
        })
        .await?;
    }
    tx.commit().await?;

    let (outcome, status_now) = match decision {
        Decision::Apply { .. } => ("applied", cb.verdict.status.stored()),
        Decision::Ignore(why) => (why.as_str(), blob.status),
    };
    if log.reason.is_none() {
        log.reason = Some(format!("{outcome}: {} -> {}", blob.status.as_str(), cb.verdict.status.as_str()));
    }

    // The verdict is in force (downloads refuse quarantine content from here on); now the object.
    quarantine::ensure(cfg, &target.tenant, &blob, status_now, rid, log).await?;
    Ok(response::empty(StatusCode::NO_CONTENT, rid))
}

/// The guarded `UPDATE`; `false` when the database refused or skipped it (the verdict then changes
/// nothing). The trigger's refusal (`check_violation`) is rolled back to a savepoint, so the
/// transaction stays usable; any other error is an error.
async fn apply_verdict(tx: &Tx<'_>, blob: &Blob, cb: &Callback) -> Result<bool, ApiError> {
    let v = &cb.verdict;
    tx.execute("SAVEPOINT verdict", Vec::new()).await?;
    let res = tx
        .query(
            APPLY_VERDICT,
            vec![
                ParameterValue::Uuid(blob.id.clone()),
                ParameterValue::Str(v.status.as_str().to_owned()),
                opt_text(&v.engine),
                opt_text(&v.signature),
                opt_text(&v.details),
                ParameterValue::Int64(v.scanned_at),
            ],
        )
        .await;
    match res {
        Ok(rows) => Ok(!rows.is_empty()),
        Err(e) if e.cause().is_some_and(|c| c.contains(CHECK_VIOLATION)) => {
            tx.execute("ROLLBACK TO SAVEPOINT verdict", Vec::new()).await?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

async fn complete_jobs(tx: &Tx<'_>, blob: &str) -> Result<u64, ApiError> {
    tx.execute(COMPLETE_JOBS, vec![ParameterValue::Uuid(blob.to_owned())]).await
}
