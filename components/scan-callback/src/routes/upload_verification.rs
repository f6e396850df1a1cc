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
//! `message_gone`. Over a quota of the tenant or the uploader once recorded (the totals include
//! it, judged in the transaction, see `edge::quota::check_commit`): that transaction is rolled back
//! and the upload rejected `quota_exceeded` in a new one. `200` with `{attachmentId, state, deleteObject, scanJobId}`: the worker deletes
//! an unused object, and answers the scan job with the verdict of the scan it ran on the same read.
//! An accepted upload is committed here, so its `attachment.processed` event line is written here
//! (after the commit; `edge::log::Processed`), as the single-request upload's is by `ingest`.

use auth_core::UserId;
use edge::app::{Call, Reply};
use edge::log::Processed;
use edge::{ApiError, Code, Problem, body, response};
use scan_core::verification::{Answer, AnswerState, Decision, Report};
use serde_json::json;
use spin_sdk::http::Request;
use store::attachments::{self, NewAttachment, RetentionDays};
use store::audit_log::{self, AuditEntry};
use store::blobs::{self, NewBlob};
use store::spin::Db;
use store::uploads::{self, Outcome, SessionRow, State};
use store::{Conn, TenantTx, messages};

use super::callback::{MAX_BODY, verify_scanner};
use crate::Config;

/// What the report says, as the tenant's transaction records it.
enum Said<'a> {
    Accepted,
    Rejected { code: &'a str, detail: &'a str },
}

pub(crate) async fn handle(
    req: Request,
    call: &mut Call,
    cfg: &'static Config,
) -> Result<Reply, ApiError> {
    let (parts, b) = req.into_parts();
    let bytes = body::read_limited(&parts.headers, b, MAX_BODY).await?;
    let scanner = verify_scanner(cfg, &parts.headers, &bytes, call)?;
    body::require_json(&parts.headers)?;
    let report =
        Report::parse(&bytes).map_err(|e| ApiError::new(Problem::bad_request(e.to_string())))?;
    let said = match &report.decision {
        Decision::Accepted => Said::Accepted,
        Decision::Rejected { code, detail } => Said::Rejected {
            code: code.as_str(),
            detail,
        },
    };

    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tenant = uploads::resolve_tenant(&db, report.upload_id)
        .await?
        .ok_or_else(|| ApiError::from(Problem::not_found()))?;
    call.log.tenant_id = Some(tenant.to_string());
    let tx = store::Tx::for_tenant(&db, &tenant).await?;
    let client = call.client_addr();
    let rid = call.request_id.as_str().to_owned();
    let mut recorded = record(&tx, cfg, &report, said, &rid, client.clone(), scanner).await;
    let mut tx = tx;
    if let Err(Refusal::Quota) = recorded {
        tx.rollback().await;
        tx = store::Tx::for_tenant(&db, &tenant).await?;
        let over_quota = Said::Rejected {
            code: "quota_exceeded",
            detail: "Recording the file would exceed a storage quota.",
        };
        recorded = record(&tx, cfg, &report, over_quota, &rid, client, scanner).await;
    }
    let recorded = recorded.map_err(|r| match r {
        Refusal::Api(e) => e,
        Refusal::Quota => ApiError::internal("quota refusal of a rejection"),
    });
    match recorded {
        Ok((answer, processed)) => {
            tx.commit().await?;
            if let Some(p) = processed {
                p.emit("scan-callback");
            }
            let mut res =
                http::Response::new(String::from_utf8_lossy(&answer.to_json()).into_owned());
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            response::set_request_id(&mut res, &call.request_id);
            Ok(res.into())
        }
        Err(e) => {
            tx.rollback().await;
            Err(e)
        }
    }
}

/// Why an outcome was not recorded.
enum Refusal {
    /// Accepting the upload would pass a quota: roll back, then record it rejected.
    Quota,
    Api(ApiError),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<store::StoreError> for Refusal {
    fn from(e: store::StoreError) -> Self {
        Self::Api(e.into())
    }
}

/// Records the outcome in the session's tenant; the answer for the worker, and for an accepted
/// upload its `attachment.processed` event, written once the transaction commits.
async fn record<C: Conn>(
    tx: &TenantTx<'_, C>,
    cfg: &Config,
    report: &Report,
    said: Said<'_>,
    rid: &str,
    client: Option<String>,
    scanner: &str,
) -> Result<(Answer, Option<Processed>), Refusal> {
    let session = uploads::lock(tx, report.upload_id)
        .await?
        .ok_or_else(|| ApiError::from(Problem::not_found()))?;
    if session.state != State::Verifying {
        return Err(Refusal::Api(ApiError::new(
            Problem::new(Code::Conflict).detail("This upload's verification is recorded already."),
        )));
    }
    // The claims hold whatever the report says.
    let size_mismatch = i64::try_from(report.size).ok() != Some(session.claimed_size);
    let sha256 = report.content.sha256.as_str();
    let digest_mismatch = session
        .claimed_sha256
        .as_deref()
        .is_some_and(|h| h != sha256);
    let said = match said {
        Said::Accepted if size_mismatch => Said::Rejected {
            code: "size_mismatch",
            detail: "The stored file's size is not the size claimed when the upload began.",
        },
        Said::Accepted if digest_mismatch => Said::Rejected {
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
            Ok((
                Answer {
                    attachment_id: session.attachment_id,
                    state: AnswerState::Rejected,
                    delete_object: true,
                    scan_job_id: None,
                },
                None,
            ))
        }
        Said::Accepted => {
            let (answer, processed) =
                accept(tx, &session, report, rid, client, cfg.retention).await?;
            let size = u64::try_from(session.claimed_size).unwrap_or(u64::MAX);
            edge::quota::check_commit(tx, &cfg.quota, session.user_id, size, 1)
                .await
                .map_err(|e| {
                    if e.problem().code() == Code::QuotaExceeded {
                        Refusal::Quota
                    } else {
                        Refusal::Api(e)
                    }
                })?;
            Ok((answer, Some(processed)))
        }
    }
}

/// The attachment of a verified upload: the statements of a single-request upload's commit.
async fn accept<C: Conn>(
    tx: &TenantTx<'_, C>,
    session: &SessionRow,
    report: &Report,
    rid: &str,
    client: Option<String>,
    retention: RetentionDays,
) -> Result<(Answer, Processed), ApiError> {
    let sniffed = report.content.sniffed_mime.as_ref().map(|m| m.as_str());
    let detected = report.content.detected_mime.as_str();
    let sha256 = report.content.sha256.as_str();
    let blob = blobs::upsert(
        tx,
        &NewBlob {
            content_sha256: sha256,
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
            retention,
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
            "contentHash": sha256,
            "mimeType": detected,
            "direct": true,
            "deduplicated": object_unused,
            "ownDuplicate": awaited.own_earlier,
        }),
    )
    .await?;
    let processed = Processed {
        attachment: session.attachment_id.to_string(),
        tenant: *tx.tenant().as_uuid(),
        size: session.claimed_size,
        mime_type: detected.to_owned(),
        verdict: blob.scan_status.clone(),
        deduplicated: object_unused,
        processing_ms: u64::try_from(auth_core::unix_now_ms() - session.created_at).unwrap_or(0),
        upload: match session.protocol {
            uploads::Protocol::Direct => "direct",
            uploads::Protocol::Tus => "tus",
        },
    };
    Ok((
        Answer {
            attachment_id: session.attachment_id,
            state: AnswerState::Done,
            delete_object: object_unused,
            scan_job_id: awaited.job,
        },
        processed,
    ))
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
