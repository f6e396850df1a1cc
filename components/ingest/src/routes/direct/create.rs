//! `POST /api/v1/emails/{messageId}/uploads`: a direct upload session.
//!
//! Every check that can run before a byte moves runs now, in this order: the body (`400`), the
//! claimed size (`413 payload_too_large` over `direct_upload_max_bytes`, `400` for an empty file),
//! the filename (`422` / `415` for a blocked extension, as for a single-request upload), the claimed
//! type (`415` for executable or script types), the claimed SHA-256 (`400` unless 64 hex digits),
//! then the message (`404` / `403`). Then a multipart upload under a fresh key and the session row,
//! in one transaction: a session that cannot be recorded aborts its multipart upload again.
//!
//! `201` with the `UploadSession`: its part size and count, and one presigned URL per part.

use attachment_policy::{SafeFilename, check_declared, declared_type};
use edge::app::{Call, Reply};
use edge::{ApiError, Code, Problem, body, response};
use http::StatusCode;
use serde::Deserialize;
use spin_sdk::http::Request;
use storage::parts::PartPlan;
use store::uploads;

use super::{Claimed, SessionView, open_session};
use crate::Config;
use crate::routes::upload::policy;

/// Largest request body: the claims are a few hundred bytes.
const MAX_BODY: usize = 16 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Claims {
    filename: String,
    /// A JSON integer (`265.0` too, as JSON Schema reads one).
    size: serde_json::Value,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
}

const SHAPE: &str =
    r#"{"filename": string, "size": integer, "contentType"?: string, "sha256"?: string}"#;

pub(crate) async fn handle(req: Request, call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?.clone();
    let message = call.id()?;
    let (parts, b) = req.into_parts();
    body::require_json(&parts.headers)?;
    let bytes = body::read_limited(&parts.headers, b, MAX_BODY).await?;
    let claims: Claims = body::parse_json(&bytes, SHAPE)?;
    let size = body::integer(&claims.size)
        .ok_or_else(|| ApiError::new(Problem::bad_request("size must be an integer.")))?;
    let size = match u64::try_from(size) {
        Ok(0) | Err(_) => {
            return Err(ApiError::new(Problem::bad_request(
                "The file is empty: size must be at least 1.",
            )));
        }
        Ok(n) => n,
    };
    if size > cfg.direct.max_bytes {
        return Err(ApiError::new(Problem::new(Code::PayloadTooLarge).detail(
            format!(
                "The file is over the direct upload limit of {} bytes.",
                cfg.direct.max_bytes
            ),
        )));
    }
    let filename = SafeFilename::parse(&claims.filename, &cfg.extensions).map_err(policy)?;
    let declared = declared_type(claims.content_type.as_deref());
    check_declared(declared.as_deref()).map_err(policy)?;
    let sha256 = match claims.sha256.as_deref() {
        None => None,
        Some(h) if h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()) => {
            Some(h.to_ascii_lowercase())
        }
        Some(_) => {
            return Err(ApiError::new(Problem::bad_request(
                "sha256 must be 64 hexadecimal digits.",
            )));
        }
    };
    let plan = PartPlan::new(size, cfg.direct.part_bytes).ok_or_else(|| {
        ApiError::new(Problem::new(Code::PayloadTooLarge).detail("The file is too large."))
    })?;
    let size = i64::try_from(size).map_err(|_| ApiError::internal("size"))?;

    let claimed = Claimed {
        filename: filename.as_str(),
        declared_mime: declared.as_deref(),
        size,
        sha256: sha256.as_deref(),
        part_size: i64::try_from(plan.part_size).map_err(|_| ApiError::internal("part size"))?,
        part_count: plan.count,
        protocol: uploads::Protocol::Direct,
    };
    let row = open_session(cfg, call, &ctx, message, &claimed).await?;
    call.log.reason = Some(format!("upload session {}", row.id));
    let view = SessionView::of(cfg, &row, auth_core::unix_now_ms())?;
    let mut res = response::json(StatusCode::CREATED, &view, &call.request_id);
    if let Ok(v) = http::HeaderValue::from_str(&format!("/api/v1/uploads/{}", row.id)) {
        res.headers_mut().insert(http::header::LOCATION, v);
    }
    Ok(res.into())
}
