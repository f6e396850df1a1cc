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
use spin_sdk::http::Request;
use store::uploads::Protocol;
use tus::metadata::Metadata;

use super::chunk::{self, Chunk};
use super::{check_version, header_error, text};
use crate::Config;
use crate::routes::direct::{Claimed, open_session};
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

    let claimed = Claimed {
        filename: filename.as_str(),
        declared_mime: declared.as_deref(),
        size: size_i64,
        sha256: None,
        part_size: i64::try_from(cfg.tus.chunk_bytes).map_err(|_| ApiError::internal("chunk"))?,
        part_count,
        protocol: Protocol::Tus,
    };
    // The connection is back in the pool before a creation-with-upload body is read.
    let row = open_session(cfg, call, &ctx, message, &claimed).await?;
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
