//! `POST /api/v1/emails/{messageId}/tus`: a tus upload (creation, creation-with-upload).
//!
//! The checks of a direct upload session, before any byte, in this order: `Tus-Resumable` (`412`),
//! `Upload-Length` (`400`; `Upload-Defer-Length` is not supported; `413 payload_too_large` over the
//! direct upload limit, `400` for an empty file), `Upload-Metadata` (`400` when malformed), its
//! `filename` (`422` / `415` for a blocked extension) and `filetype` (`415` for executable or script
//! types), then the message (`404` / `403`). Then a multipart upload under a fresh key and the
//! session, in one transaction (a session that cannot be recorded aborts its multipart upload).
//!
//! `201` with `Location: /api/v1/tus/{id}`, `Upload-Expires`, and, when the request carried a body
//! (creation-with-upload), `Upload-Offset`: that body is the first chunk, stored by the PATCH path;
//! a chunk it refuses leaves the upload at offset 0 (the client sends it again by PATCH).

use attachment_policy::{SafeFilename, check_declared, declared_type};
use edge::app::{Call, Reply};
use edge::{ApiError, Code, Problem, response};
use http::StatusCode;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::json;
use spin_sdk::http::Request;
use storage::ObjectKey;
use store::spin::Db;
use store::uploads::{self, NewSession, Protocol};
use tus::metadata::Metadata;

use super::chunk::{self, Chunk};
use super::{check_version, header_error, text};
use crate::Config;
use crate::routes::upload::policy;

pub(crate) async fn handle(req: Request, call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?.clone();
    let message = call.id()?;
    let (head, body) = req.into_parts();
    let h = &head.headers;
    check_version(h)?;
    if h.contains_key("upload-defer-length") {
        return Err(ApiError::new(Problem::bad_request(
            "Upload-Defer-Length is not supported: give Upload-Length.",
        )));
    }
    let size = tus::headers::length(text(h, "upload-length")).map_err(header_error)?;
    if size == 0 {
        return Err(ApiError::new(Problem::bad_request(
            "The file is empty: Upload-Length must be at least 1.",
        )));
    }
    let max = tus::chunk::max_length(cfg.direct.max_bytes);
    if size > max {
        return Err(ApiError::new(Problem::new(Code::PayloadTooLarge).detail(
            format!("The file is over the upload limit of {max} bytes."),
        )));
    }
    let meta = Metadata::parse(text(h, "upload-metadata"))
        .map_err(|e| ApiError::new(Problem::bad_request(e.to_string())))?;
    let meta_text = |key: &str| {
        meta.text(key)
            .map_err(|e| ApiError::new(Problem::bad_request(e.to_string())))
    };
    let raw_name = meta_text("filename")?
        .or(meta_text("name")?)
        .ok_or_else(|| {
            policy(attachment_policy::PolicyError::InvalidFilename(
                "Give the filename in Upload-Metadata (filename).",
            ))
        })?;
    let filename = SafeFilename::parse(raw_name, &cfg.extensions).map_err(policy)?;
    let filetype = meta_text("filetype")?.or(meta_text("type")?);
    let declared = declared_type(filetype);
    check_declared(declared.as_deref()).map_err(policy)?;
    let size_i64 = i64::try_from(size).map_err(|_| ApiError::internal("size"))?;
    let part_count = u32::try_from(size.div_ceil(cfg.tus.chunk_bytes).clamp(1, 10_000))
        .map_err(|_| ApiError::internal("part count"))?;

    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    if let Err(e) = crate::routes::check_message(&tx, &ctx, message).await {
        tx.rollback().await;
        return Err(e);
    }
    let key = ObjectKey::new_upload(*ctx.tenant.as_uuid());
    let upload_id = match cfg.storage.begin_direct_upload(&key, None).await {
        Ok(id) => id,
        Err(e) => {
            tx.rollback().await;
            return Err(e.into());
        }
    };
    let now_ms = auth_core::unix_now_ms();
    let ttl_ms = i64::try_from(cfg.direct.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let new = NewSession {
        message,
        user: *ctx.user.as_uuid(),
        filename: filename.as_str(),
        declared_mime: declared.as_deref(),
        claimed_size: size_i64,
        claimed_sha256: None,
        storage_key: key.as_str(),
        s3_upload_id: &upload_id,
        part_size: i64::try_from(cfg.tus.chunk_bytes).map_err(|_| ApiError::internal("chunk"))?,
        part_count,
        expires_at: now_ms.saturating_add(ttl_ms),
        protocol: Protocol::Tus,
    };
    let recorded = async {
        let row = uploads::create(&tx, &new).await?;
        tx.commit().await?;
        Ok::<_, store::StoreError>(row)
    }
    .await;
    drop(db);
    let row = match recorded {
        Ok(row) => row,
        Err(e) => {
            if let Err(abort) = cfg.storage.abort_multipart_upload(&key, &upload_id).await {
                edge::log::event(
                    crate::NAME,
                    "upload.abort_failed",
                    json!({ "requestId": call.request_id.as_str(), "cause": abort.to_string() }),
                );
            }
            return Err(e.into());
        }
    };
    call.log.reason = Some(format!("tus upload {}", row.id));

    let mut headers = vec![
        super::resumable(),
        ("Location", format!("/api/v1/tus/{}", row.id)),
        super::expires(&row),
    ];
    // creation-with-upload: a body of the tus type is the first chunk.
    let with_upload = declared_type(text(h, CONTENT_TYPE.as_str())).as_deref()
        == Some(tus::CONTENT_TYPE)
        && text(h, CONTENT_LENGTH.as_str()).is_none_or(|v| v.trim() != "0");
    if with_upload {
        let first = async {
            let checksum =
                tus::headers::checksum(text(h, "upload-checksum")).map_err(header_error)?;
            let declared = text(h, CONTENT_LENGTH.as_str()).and_then(|v| v.trim().parse().ok());
            let chunk = Chunk {
                offset: 0,
                checksum,
                declared,
            };
            chunk::receive(cfg, call, &ctx, row.id, chunk, body).await
        }
        .await;
        let offset = match first {
            Ok((_, offset)) => offset,
            Err(e) => {
                // The upload exists; its first chunk goes again by PATCH from offset 0.
                call.log.reason = Some(format!(
                    "tus upload {}: first chunk refused: {}",
                    row.id,
                    e.problem().code()
                ));
                0
            }
        };
        headers.push(("Upload-Offset", offset.to_string()));
    }
    let mut res = response::empty(StatusCode::CREATED, &call.request_id);
    response::apply_headers(&mut res, &headers);
    Ok(res.into())
}
