//! `POST /api/v1/emails/{messageId}/attachments`: the upload pipeline, one step per module.
//!
//! 1. [`request`]: before reading the body, `Content-Length` over the limit → `413`, a malformed
//!    `Repr-Digest` → `400`, a raw body's filename must pass `SafeFilename` (`422` / `415`).
//! 2. [`precheck`]: the message must be a live one of the caller's tenant (`404`) and theirs unless
//!    admin (`403`); a raw body whose `Repr-Digest` names content this user already uploaded is
//!    hashed and checked but not stored again (other users' content is never looked up). The
//!    database connection is closed again before the body streams: a slow upload holds none.
//!    Then the caller takes one of their upload [`slot`]s (`429 too_many_uploads` beyond
//!    `max_concurrent_uploads`), given back when the upload has ended, however it ended.
//! 3. [`receive`]: each file streams chunk by chunk ([`body`], [`counted`], [`source`]) through the
//!    size counter (whole request body), the content inspector (`415` as soon as it is executable or
//!    script content), SHA-256 and the storage writer under a fresh key ([`file`]; multipart parts
//!    in [`multipart`]); then the `Repr-Digest`, if any, must match (`422`).
//! 4. [`commit`]: one transaction, on a fresh connection: dedup upsert of the blob, the scan job
//!    the upload awaits, the attachment row, the audit row. The answer reveals nothing about other
//!    users' uploads: `isDeduplicated` only for the caller's own earlier upload of the content,
//!    `pending` until the scan the upload awaits is done.
//! 5. [`cleanup`]: any failure deletes every object this request stored (aborting unfinished
//!    multipart uploads) and no row is written; after the commit, the uploaded copy of
//!    deduplicated content is deleted. What storage cannot take at once (it timed out) is retried
//!    after the answer.
//! 6. `201` with the `Attachment` (raw, plus `Location`) or `{"attachments":[...]}` (multipart);
//!    one `attachment.processed` event line per file committed (`edge::log::Processed`).

pub(crate) mod body;
mod cleanup;
mod commit;
pub(crate) mod counted;
mod file;
mod multipart;
mod precheck;
mod receive;
mod request;
pub(crate) mod slot;
mod source;

use attachment_policy::PolicyError;
use edge::app::{Call, Reply};
use edge::{ApiError, Problem, RequestId, response};
use http::StatusCode;
use serde_json::json;
use spin_sdk::http::Request;

use crate::Config;
use crate::view::Attachment;

/// An upload refused by the policy: its problem code and client-safe detail.
pub(crate) fn policy(e: PolicyError) -> ApiError {
    ApiError::new(Problem::new(e.code()).detail(e.detail()))
}

pub(crate) async fn handle(req: Request, call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?.clone();
    let message = call.id()?;
    let (parts, body) = req.into_parts();
    let upload = request::parse(&parts, cfg)?;
    let store_content = precheck::run(cfg, &ctx, message, &upload).await?;
    let slot = slot::take(cfg, &ctx.user, &mut call.log).await?;
    let result = receive_and_commit(body, call, cfg, &ctx, message, upload, store_content).await;
    slot.give_back(cfg).await;
    result
}

/// Steps 3 to 6, while the upload holds its slot.
async fn receive_and_commit(
    body: spin_sdk::wasip3::http_compat::IncomingRequestBody,
    call: &mut Call,
    cfg: &Config,
    ctx: &auth_core::AuthContext,
    message: uuid::Uuid,
    upload: request::Upload,
    store_content: bool,
) -> Result<Reply, ApiError> {
    let mut stored = Vec::new();
    let tenant = *ctx.tenant.as_uuid();
    if let Err(e) = receive::run(body, &upload, store_content, cfg, tenant, &mut stored).await {
        call.log.reason = Some(e.problem().code().as_str().to_owned());
        cleanup::delete_uploaded(cfg, &stored, cleanup::storage_timed_out(&e)).await;
        return Err(e);
    }
    let client = call.client_addr();
    let recorded = commit::run(cfg, ctx, message, &stored, &call.request_id, client).await;
    let list = match recorded {
        Ok(list) => list,
        Err(e) => {
            // A database timeout: storage is fine, the objects go at once.
            cleanup::delete_uploaded(cfg, &stored, false).await;
            return Err(e);
        }
    };
    let processing_ms = call.log.elapsed_ms();
    for r in &list {
        edge::log::Processed {
            attachment: r.attachment.id.clone(),
            tenant,
            size: r.attachment.size,
            mime_type: r.attachment.mime_type.clone(),
            verdict: r.attachment.virus_scan_status.clone(),
            deduplicated: r.copy_unused,
            processing_ms,
            upload: "request",
        }
        .emit("ingest");
    }
    cleanup::delete_deduplicated(cfg, &stored, &list).await;
    let list = list.into_iter().map(|r| r.attachment).collect();
    reply(list, upload.is_multipart(), &call.request_id)
}

/// `201`: the list for a multipart body; the one `Attachment` and its `Location` for a raw body.
fn reply(list: Vec<Attachment>, multipart: bool, rid: &RequestId) -> Result<Reply, ApiError> {
    if multipart {
        let body = json!({ "attachments": list });
        return Ok(response::json(StatusCode::CREATED, &body, rid).into());
    }
    let a = list
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("no attachment recorded"))?;
    let mut res = response::json(StatusCode::CREATED, &a, rid);
    if let Ok(v) = http::HeaderValue::from_str(&format!("/api/v1/attachments/{}", a.id)) {
        res.headers_mut().insert(http::header::LOCATION, v);
    }
    Ok(res.into())
}
