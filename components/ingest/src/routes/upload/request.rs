//! What the request's head says about an upload, judged before any byte of the body is read.

use attachment_policy::{PolicyError, ReprDigest, SafeFilename, declared_type};
use edge::{ApiError, Problem};
use http::HeaderMap;
use http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;

use super::policy;
use crate::Config;

/// An upload as its head describes it.
pub(super) struct Upload {
    /// The declared `Content-Length`, within the limit.
    pub expected: Option<u64>,
    /// The `sha-256` of `Repr-Digest`: the content must hash to it.
    pub digest: Option<ReprDigest>,
    /// The declared type of the body (its parts for multipart/form-data).
    pub content_type: Option<String>,
    /// The raw body's filename; `None` for multipart/form-data, whose parts name their files.
    pub raw_name: Option<SafeFilename>,
    /// The boundary of a multipart/form-data body.
    pub boundary: Option<String>,
}

impl Upload {
    pub fn is_multipart(&self) -> bool {
        self.raw_name.is_none()
    }
}

fn header(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The `sha-256` of `Repr-Digest`, its field lines combined as one dictionary (RFC 8941 §4.2);
/// a value that is not visible ASCII is outside its grammar (`400`).
fn repr_digest(headers: &HeaderMap) -> Result<Option<ReprDigest>, ApiError> {
    let mut lines = Vec::new();
    for v in headers.get_all("repr-digest") {
        lines.push(
            v.to_str()
                .map_err(|_| policy(PolicyError::BadRequest("Malformed Repr-Digest header.")))?,
        );
    }
    if lines.is_empty() {
        return Ok(None);
    }
    ReprDigest::parse(&lines.join(", ")).map_err(policy)
}

/// `400` for a query parameter other than `filename`: a misspelt one (`?filname=`) would otherwise
/// be ignored and the file stored under a name the client did not mean.
fn only_filename_in(query: Option<&str>) -> Result<(), ApiError> {
    let unknown = query
        .unwrap_or("")
        .split('&')
        .any(|pair| !pair.is_empty() && pair.split('=').next() != Some("filename"));
    match unknown {
        true => Err(ApiError::new(Problem::bad_request(
            "Unknown query parameter: this route takes `filename` only.",
        ))),
        false => Ok(()),
    }
}

/// `413` over the size limit, `400` for a malformed `Content-Length` or `Repr-Digest` (`422` for a
/// `sha-256` digest that is not 32 bytes) or a multipart/form-data type without a boundary,
/// `422`/`415` for a raw body without an acceptable filename, `415` when any name the request
/// carries (header or query, any form) has a blocked extension, `400` for any other query parameter.
pub(super) fn parse(parts: &Parts, cfg: &Config) -> Result<Upload, ApiError> {
    only_filename_in(parts.uri.query())?;
    let headers = &parts.headers;
    let expected = cfg
        .size_limit
        .check_content_length(header(headers, CONTENT_LENGTH))
        .map_err(policy)?;
    let digest = repr_digest(headers)?;
    let content_type = header(headers, CONTENT_TYPE).map(str::to_owned);
    let multipart =
        declared_type(content_type.as_deref()).as_deref() == Some("multipart/form-data");
    let disposition = header(headers, CONTENT_DISPOSITION);
    let boundary = if multipart {
        let boundary = content_type
            .as_deref()
            .and_then(|ct| multer::parse_boundary(ct).ok())
            .ok_or_else(|| {
                ApiError::new(Problem::bad_request(
                    "multipart/form-data needs a boundary.",
                ))
            })?;
        Some(boundary)
    } else {
        None
    };
    let raw_name = if multipart {
        None
    } else {
        let raw = delivery::disposition::upload_filename(disposition, parts.uri.query())
            .ok_or_else(|| {
                policy(PolicyError::InvalidFilename(
                    "Give the filename in Content-Disposition or ?filename=.",
                ))
            })?;
        Some(SafeFilename::parse(&raw, &cfg.extensions).map_err(policy)?)
    };
    // Every other name the request carries (the ASCII fallback beside `filename*`, the query's,
    // continuations), multipart or not: whichever one a client shows must not be a blocked type.
    for name in delivery::disposition::upload_filenames(disposition, parts.uri.query()) {
        cfg.extensions.check_name(&name).map_err(policy)?;
    }
    Ok(Upload {
        expected,
        digest,
        content_type,
        raw_name,
        boundary,
    })
}
