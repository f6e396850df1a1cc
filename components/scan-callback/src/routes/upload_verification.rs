//! `POST /api/v1/scan/upload-verification`: the worker reports what it found when it read a direct
//! upload back from storage, and the upload becomes an attachment, or a rejected upload.
//!
//! Authenticated like the verdict callback (`X-Scan-Signature` over the exact body, `401` for any
//! refusal, `400 clock_skew` for a signature time ahead of ours). Then, in the session's tenant:
//! `404` for an unknown upload, `409 conflict` when its outcome is recorded already (a retry, or a
//! second worker). The worker's report is not taken on trust for the claims: a size or SHA-256 that
//! differs from what the client claimed is a rejection whatever the report says.
//!
//! Accepted: the same statements as a single-request upload's commit (the tenant's dedup upsert,
//! the scan job the upload awaits, the attachment row under the id its uploader has known since the
//! session began, the `attachment.upload` audit row), and the session `done`. Its object is unused
//! when the tenant held the content already. The message deleted meanwhile: rejected
//! `message_gone`. `200` with `{attachmentId, state, deleteObject, scanJobId}`: the worker deletes
//! an unused object, and answers the scan job with the verdict of the scan it ran on the same read.

use auth_core::UserId;
use edge::app::{Call, Reply};
use edge::{ApiError, Code, Problem, body, response};
use http::StatusCode;
use scan_core::callback::check_signed_at;
use scan_core::signature::{self, HEADER};
use serde::Deserialize;
use serde_json::json;
use spin_sdk::http::Request;
use store::attachments::{self, NewAttachment};
use store::audit_log::{self, AuditEntry};
use store::blobs::{self, NewBlob};
use store::spin::Db;
use store::uploads::{self, Outcome, SessionRow, State};
use store::{Conn, TenantTx, messages};
use uuid::Uuid;

use super::callback::{MAX_BODY, refused_signature};
use crate::Config;

/// Rejection codes a worker may report (migration 0014's `reject_code`).
const REJECT_CODES: &[&str] = &["size_mismatch", "digest_mismatch", "blocked_file_type"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Report {
    upload_id: Uuid,
    outcome: String,
    size: u64,
    sha256: String,
    #[serde(default)]
    sniffed_mime: Option<String>,
    detected_mime: String,
    #[serde(default)]
    reject_code: Option<String>,
    #[serde(default)]
    reject_detail: Option<String>,
}

const SHAPE: &str = r#"{"uploadId", "outcome": "accepted"|"rejected", "size", "sha256", "sniffedMime"?, "detectedMime", "rejectCode"?, "rejectDetail"?}"#;

fn bad(detail: &str) -> ApiError {
    ApiError::new(Problem::bad_request(detail.to_owned()))
}

/// A MIME type as it may be recorded: short, printable, `type/subtype`.
fn mime_ok(m: &str) -> bool {
    m.len() <= 255 && m.contains('/') && m.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
}

/// What the worker says, checked for shape.
enum Said<'a> {
    Accepted {
        sniffed: Option<&'a str>,
        detected: &'a str,
    },
    Rejected {
        code: &'a str,
        detail: &'a str,
    },
}

fn judge(r: &Report) -> Result<Said<'_>, ApiError> {
    if r.sha256.len() != 64
        || !r
            .sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(bad("sha256 must be 64 lowercase hexadecimal digits."));
    }
    match r.outcome.as_str() {
        "accepted" => {
            if !mime_ok(&r.detected_mime) || r.sniffed_mime.as_deref().is_some_and(|m| !mime_ok(m))
            {
                return Err(bad("detectedMime and sniffedMime must be MIME types."));
            }
            Ok(Said::Accepted {
                sniffed: r.sniffed_mime.as_deref(),
                detected: &r.detected_mime,
            })
        }
        "rejected" => {
            let code = r
                .reject_code
                .as_deref()
                .filter(|c| REJECT_CODES.contains(c))
                .ok_or_else(|| bad("rejectCode must be one of size_mismatch, digest_mismatch, blocked_file_type."))?;
            let detail = r.reject_detail.as_deref().unwrap_or("");
            if detail.chars().count() > 500 || detail.chars().any(char::is_control) {
                return Err(bad(
                    "rejectDetail must be at most 500 printable characters.",
                ));
            }
            Ok(Said::Rejected { code, detail })
        }
        _ => Err(bad("outcome must be accepted or rejected.")),
    }
}

pub(crate) async fn handle(
    req: Request,
    call: &mut Call,
    cfg: &'static Config,
) -> Result<Reply, ApiError> {
    let (parts, b) = req.into_parts();
    let bytes = body::read_limited(&parts.headers, b, MAX_BODY).await?;
    let now = auth_core::unix_now();
    let header =
        signature::single_header(parts.headers.get_all(HEADER).iter().map(|v| v.as_bytes()));
    let signed = match cfg.secrets.verify(header, &bytes, now) {
        Ok(signed) => signed,
        Err(e) => return Err(refused_signature(&e, call)),
    };
    call.log.reason = Some(format!("scanner {}", signed.scanner));
    check_signed_at(signed.t, now.saturating_mul(1000))
        .map_err(|e| ApiError::new(Problem::new(Code::ClockSkew).detail(e.to_string())))?;
    body::require_json(&parts.headers)?;
    let report: Report = body::parse_json(&bytes, SHAPE)?;
    let said = judge(&report)?;

    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tenant = uploads::resolve_tenant(&db, report.upload_id)
        .await?
        .ok_or_else(|| ApiError::from(Problem::not_found()))?;
    call.log.tenant_id = Some(tenant.to_string());
    let tx = store::Tx::for_tenant(&db, &tenant).await?;
    let client = call.client_addr();
    let rid = call.request_id.as_str().to_owned();
    let recorded = record(&tx, &report, said, &rid, client, signed.scanner).await;
    match recorded {
        Ok(answer) => {
            tx.commit().await?;
            Ok(response::json(StatusCode::OK, &answer, &call.request_id).into())
        }
        Err(e) => {
            tx.rollback().await;
            Err(e)
        }
    }
}

/// Records the outcome in the session's tenant; the answer for the worker.
async fn record<C: Conn>(
    tx: &TenantTx<'_, C>,
    report: &Report,
    said: Said<'_>,
    rid: &str,
    client: Option<String>,
    scanner: &str,
) -> Result<serde_json::Value, ApiError> {
    let session = uploads::lock(tx, report.upload_id)
        .await?
        .ok_or_else(|| ApiError::from(Problem::not_found()))?;
    if session.state != State::Verifying {
        return Err(ApiError::new(
            Problem::new(Code::Conflict).detail("This upload's verification is recorded already."),
        ));
    }
    // The claims hold whatever the report says.
    let size_mismatch = i64::try_from(report.size).ok() != Some(session.claimed_size);
    let digest_mismatch = session
        .claimed_sha256
        .as_deref()
        .is_some_and(|h| h != report.sha256);
    let said = match said {
        Said::Accepted { .. } if size_mismatch => Said::Rejected {
            code: "size_mismatch",
            detail: "The stored file's size is not the size claimed when the upload began.",
        },
        Said::Accepted { .. } if digest_mismatch => Said::Rejected {
            code: "digest_mismatch",
            detail: "The stored file's SHA-256 is not the one claimed when the upload began.",
        },
        other => other,
    };
    let said = match said {
        Said::Accepted { .. }
            if messages::live_owner(tx, session.message_id)
                .await?
                .is_none() =>
        {
            Said::Rejected {
                code: "message_gone",
                detail: "The message was deleted while the upload was verified.",
            }
        }
        other => other,
    };
    match said {
        Said::Rejected { code, detail } => {
            uploads::record_outcome(tx, session.id, &Outcome::Rejected { code, detail }).await?;
            audit(
                tx,
                &session,
                "attachment.upload_rejected",
                rid,
                client,
                json!({
                    "uploadId": session.id.to_string(),
                    "messageId": session.message_id.to_string(),
                    "code": code,
                    "scanner": scanner,
                }),
            )
            .await?;
            Ok(json!({
                "attachmentId": session.attachment_id.to_string(),
                "state": "rejected",
                "deleteObject": true,
                "scanJobId": null,
            }))
        }
        Said::Accepted { sniffed, detected } => {
            accept(tx, &session, report, sniffed, detected, rid, client).await
        }
    }
}

/// The attachment of a verified upload: the statements of a single-request upload's commit.
async fn accept<C: Conn>(
    tx: &TenantTx<'_, C>,
    session: &SessionRow,
    report: &Report,
    sniffed: Option<&str>,
    detected: &str,
    rid: &str,
    client: Option<String>,
) -> Result<serde_json::Value, ApiError> {
    let blob = blobs::upsert(
        tx,
        &NewBlob {
            content_sha256: &report.sha256,
            size_bytes: session.claimed_size,
            storage_key: &session.storage_key,
            sniffed_mime: sniffed,
        },
    )
    .await?;
    let awaited = blobs::awaited_scan(tx, blob.id, session.user_id).await?;
    attachments::insert(
        tx,
        &NewAttachment {
            id: Some(session.attachment_id),
            message: session.message_id,
            blob: blob.id,
            uploader: session.user_id,
            filename: &session.filename,
            declared_mime: session.declared_mime.as_deref(),
            detected_mime: detected,
            size_bytes: session.claimed_size,
            scan_job: awaited.job,
        },
    )
    .await?;
    let object_unused = !blob.inserted;
    uploads::record_outcome(tx, session.id, &Outcome::Done { object_unused }).await?;
    audit(
        tx,
        session,
        "attachment.upload",
        rid,
        client,
        json!({
            "messageId": session.message_id.to_string(),
            "uploadId": session.id.to_string(),
            "size": session.claimed_size,
            "contentHash": report.sha256,
            "mimeType": detected,
            "direct": true,
            "deduplicated": object_unused,
            "ownDuplicate": awaited.own_earlier,
        }),
    )
    .await?;
    Ok(json!({
        "attachmentId": session.attachment_id.to_string(),
        "state": "done",
        "deleteObject": object_unused,
        "scanJobId": awaited.job.map(|j| j.to_string()),
    }))
}

async fn audit<C: Conn>(
    tx: &TenantTx<'_, C>,
    session: &SessionRow,
    action: &str,
    rid: &str,
    client: Option<String>,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    let user = UserId::from_uuid(session.user_id);
    audit_log::record(
        tx,
        &AuditEntry {
            user: Some(&user),
            action,
            resource_type: Some("attachment"),
            resource_id: Some(session.attachment_id.to_string()),
            request_id: rid,
            client_addr: client,
            details,
        },
    )
    .await?;
    Ok(())
}
