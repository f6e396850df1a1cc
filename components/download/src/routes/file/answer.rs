//! Checks 6 and 7 and the answers without content: the status and headers `crates/delivery`
//! decides from the stored representation and the request's conditional and `Range` headers.

use delivery::{Answer, Conditions, Disposition, Representation};
use edge::app::Reply;
use edge::{ApiError, Code, RequestId, response};
use http::{HeaderMap, StatusCode};
use store::attachments::AttachmentRow;

fn header<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The answer for `row` (of `size` bytes) as the URL's `disposition` asks.
pub(super) fn decide(
    row: &AttachmentRow,
    size: u64,
    disposition: Disposition,
    headers: &HeaderMap,
) -> Answer {
    let rep = Representation {
        content_hash: &row.content_sha256,
        size,
        mime: row.served_mime(),
        filename: &row.filename,
    };
    let conditions = Conditions {
        range: header(headers, "range"),
        if_none_match: header(headers, "if-none-match"),
        if_range: header(headers, "if-range"),
    };
    delivery::answer(&rep, disposition, &conditions)
}

/// `304`, `416` and every `HEAD` answer: no content, no audit row. `None`: content follows.
pub(super) fn without_content(
    answer: &Answer,
    head: bool,
    rid: &RequestId,
) -> Result<Option<Reply>, ApiError> {
    let status = match answer.status {
        416 => {
            let e = ApiError::from(Code::RangeNotSatisfiable);
            return Err(e.with_headers(answer.headers.clone()));
        }
        304 => StatusCode::NOT_MODIFIED,
        _ if head => StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK),
        _ => return Ok(None),
    };
    let mut res = response::empty(status, rid);
    response::apply_headers(&mut res, &answer.headers);
    Ok(Some(res.into()))
}
