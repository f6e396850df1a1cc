//! Content leaves: the download audited (one `attachment.download` row per URL and minute, with a
//! count), then the object streamed from storage
//! (its body handed on, never copied through the component) or a `302` to a presigned storage URL.

use delivery::serve::Via;
use delivery::{Answer, RangeOutcome};
use edge::app::{Call, Reply};
use edge::{ApiError, RequestId, response};
use http::StatusCode;
use signed_url::Grant;
use storage::ObjectKey;
use storage::request::ByteRange;
use store::audit_log::{self, Download};
use store::{Conn, TenantTx};

use crate::Config;
use crate::presign::Overrides;

/// Audits a `GET` answered with content (no user: whoever holds the URL is unknown), added to the
/// row of URL `url` (its opaque id) for the current minute.
#[allow(clippy::too_many_arguments)]
pub(super) async fn audit<C: Conn>(
    tx: &TenantTx<'_, C>,
    grant: &Grant,
    url: &str,
    call: &Call,
    answer: &Answer,
    size: u64,
    via: Via,
) -> Result<(), ApiError> {
    let download = Download {
        attachment: grant.attachment_id,
        url_id: url,
        request_id: call.request_id.as_str(),
        client_addr: call.client_addr(),
        bytes: i64::try_from(answer.outcome.length(size)).unwrap_or(i64::MAX),
        mode: via.as_str(),
    };
    audit_log::record_download(tx, &download).await?;
    Ok(())
}

/// `302` to a presigned `GET` of `key` whose answer carries the headers the stream path would send
/// and storage can be told to send: `Content-Type`, `Content-Disposition` and `Cache-Control` (the
/// `response-*` overrides, signed into the URL). The client re-sends its `Range` to the `Location`
/// and storage answers it `206` itself. `limit`: the URL's `RateLimit*` headers.
pub(super) fn redirect(
    cfg: &Config,
    key: &ObjectKey,
    answer: &Answer,
    limit: &[(&'static str, String)],
    rid: &RequestId,
) -> Result<Reply, ApiError> {
    let find = |n: &str| {
        answer
            .headers
            .iter()
            .find(|(k, _)| *k == n)
            .map_or("", |(_, v)| v.as_str())
    };
    let location = cfg.presigner.get_url(
        key.as_str(),
        &Overrides {
            content_type: find("content-type"),
            content_disposition: find("content-disposition"),
            cache_control: find("cache-control"),
        },
        std::time::SystemTime::now(),
    )?;
    let mut res = response::empty(StatusCode::FOUND, rid);
    // The redirect itself is never cached: its Location stops working after a minute.
    let mut headers = vec![
        ("location", location),
        ("cache-control", "no-store".to_owned()),
        ("x-content-type-options", "nosniff".to_owned()),
    ];
    headers.extend_from_slice(limit);
    response::apply_headers(&mut res, &headers);
    Ok(res.into())
}

/// The object (the answer's range of it) from storage, its body handed on as it arrives.
pub(super) async fn stream(
    cfg: &Config,
    key: &ObjectKey,
    answer: &Answer,
    size: u64,
    rid: &RequestId,
) -> Result<Reply, ApiError> {
    let range = match answer.outcome {
        RangeOutcome::Partial { first, last } => Some(ByteRange::From {
            start: first,
            end: Some(last),
        }),
        _ => None,
    };
    let upstream = cfg
        .storage
        .get_object(key, range)
        .await
        .map_err(ApiError::from)?;
    let want = if range.is_some() { 206 } else { 200 };
    let got = upstream.status().as_u16();
    // Garage answers 200 to a range covering the whole object only if it ignores the range; accept
    // 206 for a partial request and 200 for a full one.
    if got != want && !(want == 206 && got == 200 && answer.outcome.length(size) == size) {
        return Err(ApiError::internal(format!(
            "storage GET answered {got}, expected {want}"
        )));
    }
    let mut res = http::Response::new(());
    *res.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    response::apply_headers(&mut res, &answer.headers);
    response::set_request_id(&mut res, rid);
    let (parts, ()) = res.into_parts();
    let res = edge::relay::response(parts, upstream.into_body())
        .map_err(|e| ApiError::internal(format!("response: {e:?}")))?;
    Ok(Reply::Streamed(answer.status, res))
}
