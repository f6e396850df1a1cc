//! `GET|HEAD /.well-known/jwks.json`: the public halves of every key in the signing ring (the
//! active one and those kept for rotation), cacheable for a few minutes: short enough that a staged
//! key is picked up well before it becomes active.

use edge::app::{Call, Reply};
use edge::{ApiError, response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};

use crate::Config;

pub(crate) fn handle(call: &Call, cfg: &Config) -> Result<Reply, ApiError> {
    let mut res = http::Response::new(cfg.jwks.clone());
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(response::JSON));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response::set_request_id(&mut res, &call.request_id);
    Ok(res.into())
}
