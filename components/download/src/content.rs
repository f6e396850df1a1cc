//! `GET`/`HEAD` of a signed content URL (public: the signature is the credential).
//!
//! Checks, in this order (openapi.yaml `SignedContentUrl`); the first failure answers:
//! 1. the signature (`403 signature_invalid`);
//! 2. the expiry (`403 url_expired`); then, with the tenant of the verified URL set on the
//!    transaction:
//! 3. not deleted (`410 gone`; deleting revokes every URL, whether or not it bumps the generation);
//! 4. the URL's generation is the attachment's current one (else it was revoked: `403 url_expired`);
//! 5. the scan status (`403 scan_blocked`);
//! 6. `If-None-Match` (`304`);
//! 7. `Range` (`206`/`416`).
//!
//! Then the object is streamed from storage (`GET` with the same range) without buffering, or
//! (`download_mode = redirect`) answered with a `302` to a presigned storage URL. Every `GET`
//! answered with content writes an `attachment.download` audit row (tenant, attachment, client
//! address, range).

use auth_core::TenantId;
use delivery::{Conditions, Kind, RangeOutcome, Representation, ScanStatus};
use edge::log::RequestLog;
use edge::spin::{AuditEntry, Db, cell};
use edge::{ApiError, Code, Problem, RequestId, response};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use serde_json::json;
use signed_url::{Disposition, VerifyError};
use spin_sdk::http::Request;
use spin_sdk::pg::ParameterValue;
use storage::ObjectKey;
use storage::request::ByteRange;

use crate::{Mode, Reply, config};

const LOOKUP_SQL: &str = "SELECT a.url_generation, a.is_deleted, a.filename, \
     COALESCE(a.detected_mime, a.declared_mime), a.size_bytes, b.content_sha256, b.storage_key, b.scan_status \
     FROM email_attachments a JOIN attachment_blobs b ON b.tenant_id = a.tenant_id AND b.id = a.blob_id \
     WHERE a.id = $1";

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn apply(map: &mut HeaderMap, headers: &[(&'static str, String)]) {
    for (n, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            map.insert(HeaderName::from_static(n), v);
        }
    }
}

fn storage_error(e: storage::StorageError) -> ApiError {
    if e.is_unavailable() {
        ApiError::unavailable(format!("storage: {e}"))
    } else {
        ApiError::internal(format!("storage: {e}"))
    }
}

pub(crate) async fn serve(
    req: Request,
    rid: &RequestId,
    log: &mut RequestLog,
) -> Result<Reply, ApiError> {
    let cfg = config().await?;
    let now = auth_core::unix_now();
    let grant = cfg
        .signer
        .verify(req.uri().path(), req.uri().query().unwrap_or(""), now)
        .map_err(|e| {
            ApiError::new(Problem::new(match e {
                VerifyError::SignatureInvalid => Code::SignatureInvalid,
                VerifyError::Expired => Code::UrlExpired,
            }))
        })?;
    let tenant = TenantId::parse(&grant.tenant_id.to_string())
        .map_err(|_| ApiError::internal("tenant id"))?;
    log.tenant_id = Some(grant.tenant_id.to_string());
    let head = req.method() == Method::HEAD;
    let headers = req.headers();

    let db = Db::open(&cfg.database_url).await?;
    let tx = db.begin_for_tenant(&tenant).await?;
    let rows = tx
        .query(
            LOOKUP_SQL,
            vec![ParameterValue::Uuid(grant.attachment_id.to_string())],
        )
        .await?;
    let Some(row) = rows.first() else {
        // Correctly signed for an attachment that no longer exists at all.
        tx.rollback().await;
        return Err(ApiError::new(Problem::new(Code::Gone)));
    };
    // Deleted first: deleting revokes every URL, and answers 410 whether or not the delete also
    // bumped the generation.
    if cell::boolean(row, 1) != Some(false) {
        tx.rollback().await;
        return Err(ApiError::new(Problem::new(Code::Gone)));
    }
    let generation = cell::int(row, 0).unwrap_or(-1);
    if generation != i64::from(grant.generation) {
        tx.rollback().await;
        log.reason = Some("revoked".into());
        return Err(ApiError::new(Problem::new(Code::UrlExpired)));
    }
    let filename = cell::text(row, 2).unwrap_or_default();
    let mime = cell::text(row, 3);
    let size = cell::int(row, 4)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| ApiError::internal("size_bytes"))?;
    let hash = cell::text(row, 5).unwrap_or_default();
    let key = cell::text(row, 6).unwrap_or_default();
    let status = cell::text(row, 7)
        .as_deref()
        .and_then(ScanStatus::parse)
        .ok_or_else(|| ApiError::internal("scan_status"))?;
    if !delivery::may_serve(status, cfg.serve_unscanned) {
        tx.rollback().await;
        log.reason = Some(format!("scan_status {status:?}").to_lowercase());
        return Err(ApiError::new(Problem::new(Code::ScanBlocked)));
    }

    let rep = Representation {
        content_hash: &hash,
        size,
        mime: mime.as_deref(),
        filename: &filename,
    };
    let kind = match grant.disposition {
        Disposition::Attachment => Kind::Attachment,
        Disposition::Inline => Kind::Inline,
    };
    let answer = delivery::answer(
        &rep,
        kind,
        &Conditions {
            range: header(headers, "range"),
            if_none_match: header(headers, "if-none-match"),
            if_range: header(headers, "if-range"),
        },
    );

    if answer.status == 304 {
        tx.rollback().await;
        let mut res = response::empty(StatusCode::NOT_MODIFIED, rid);
        apply(res.headers_mut(), &answer.headers);
        return Ok(Reply::Small(res));
    }
    if answer.status == 416 {
        tx.rollback().await;
        return Err(
            ApiError::new(Problem::new(Code::RangeNotSatisfiable)).with_headers(answer.headers)
        );
    }
    if head {
        tx.rollback().await;
        let mut res = response::empty(
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK),
            rid,
        );
        apply(res.headers_mut(), &answer.headers);
        return Ok(Reply::Small(res));
    }

    let key = ObjectKey::from_stored(&key).map_err(storage_error)?;
    let range_text = answer.outcome.storage_range();
    let client = edge::client::client_ip(headers).map(|ip| ip.to_string());
    tx.audit(&AuditEntry {
        tenant: &tenant,
        user: None,
        action: "attachment.download",
        resource_type: Some("attachment"),
        resource_id: Some(grant.attachment_id.to_string()),
        request_id: rid.as_str(),
        client_addr: client,
        details: json!({
            "range": range_text,
            "status": answer.status,
            "bytes": answer.outcome.length(size),
            "mode": if cfg.mode == Mode::Redirect { "redirect" } else { "stream" },
        }),
    })
    .await?;

    if cfg.mode == Mode::Redirect {
        let find = |n: &str| {
            answer
                .headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        let location = cfg.presigner.get_url(
            key.as_str(),
            find("content-type"),
            find("content-disposition"),
            std::time::SystemTime::now(),
        )?;
        tx.commit().await?;
        let mut res = response::empty(StatusCode::FOUND, rid);
        apply(
            res.headers_mut(),
            &[
                ("location", location),
                ("cache-control", "no-store".to_owned()),
                ("x-content-type-options", "nosniff".to_owned()),
            ],
        );
        return Ok(Reply::Small(res));
    }

    let range = match answer.outcome {
        RangeOutcome::Partial { first, last } => Some(ByteRange::From {
            start: first,
            end: Some(last),
        }),
        _ => None,
    };
    let upstream = match cfg.storage.get_object(&key, range).await {
        Ok(r) => r,
        Err(e) => {
            tx.rollback().await;
            return Err(storage_error(e));
        }
    };
    let want = if range.is_some() { 206 } else { 200 };
    let got = upstream.status().as_u16();
    // Garage answers 200 to a range covering the whole object only if it ignores the range; accept
    // 206 for a partial request and 200 for a full one.
    if got != want && !(want == 206 && got == 200 && answer.outcome.length(size) == size) {
        tx.rollback().await;
        return Err(ApiError::internal(format!(
            "storage GET answered {got}, expected {want}"
        )));
    }
    tx.commit().await?;

    // Storage's body stream is handed on, not copied through the component.
    let body = upstream.into_body();
    let mut res = http::Response::new(());
    *res.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    apply(res.headers_mut(), &answer.headers);
    response::set_request_id(&mut res, rid);
    let (parts, ()) = res.into_parts();
    let res = edge::relay::response(parts, body)
        .map_err(|e| ApiError::internal(format!("response: {e:?}")))?;
    Ok(Reply::Wasi(answer.status, res))
}
