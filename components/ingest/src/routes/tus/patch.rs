//! `PATCH /api/v1/tus/{id}`: one chunk. In this order: `Tus-Resumable` (`412` for another
//! version), `Content-Type: application/offset+octet-stream` (`415`), `Upload-Offset` and
//! `Upload-Checksum` (`400`, an algorithm other than sha256 too); then the session (`404` unless the
//! caller's or once terminated, `410 upload_expired`, `409 upload_not_open` once complete), the
//! offset (`409 offset_mismatch`), the declared length (`413`), the claim (`423 upload_locked`),
//! and the chunk itself ([`super::chunk`]: `413`, `460 checksum_mismatch`, `400 chunk_too_small`).
//! `204` with the new `Upload-Offset` and `Upload-Expires`.

use edge::app::{Call, Reply};
use edge::{ApiError, Code, Problem, response};
use http::StatusCode;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use spin_sdk::http::Request;

use super::chunk::{self, Chunk};
use super::{check_version, header_error, text};
use crate::Config;

pub(crate) async fn handle(req: Request, call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?.clone();
    let id = call.id()?;
    let (head, body) = req.into_parts();
    let h = &head.headers;
    check_version(h)?;
    if attachment_policy::declared_type(text(h, CONTENT_TYPE.as_str())).as_deref()
        != Some(tus::CONTENT_TYPE)
    {
        return Err(ApiError::new(
            Problem::new(Code::UnsupportedMediaType)
                .detail("A PATCH carries Content-Type: application/offset+octet-stream."),
        ));
    }
    let offset = tus::headers::offset(text(h, "upload-offset")).map_err(header_error)?;
    let checksum = tus::headers::checksum(text(h, "upload-checksum")).map_err(header_error)?;
    let declared = match text(h, CONTENT_LENGTH.as_str()) {
        None => None,
        Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
            ApiError::new(Problem::bad_request("Malformed Content-Length header."))
        })?),
    };
    let chunk = Chunk {
        offset,
        checksum,
        declared,
    };
    let (row, new_offset) = chunk::receive(cfg, call, &ctx, id, chunk, body).await?;
    let mut res = response::empty(StatusCode::NO_CONTENT, &call.request_id);
    response::apply_headers(
        &mut res,
        &[
            super::resumable(),
            ("Upload-Offset", new_offset.to_string()),
            super::expires(&row),
        ],
    );
    Ok(res.into())
}
