//! CORS on the public routes (login, refresh, JWKS): browsers call them from the configured front
//! ends with no middleware in front, so this component answers their `OPTIONS` (a preflight, or a
//! plain one listing the methods) and adds the CORS headers to every answer on their paths, errors
//! included. The middleware does both for the routes behind it.

use edge::app::{self, Component, Reply};
use edge::{ApiError, RequestId, response, routes};
use http::{HeaderMap, Method};
use spin_sdk::http::Request;

use crate::{Auth, CONFIG};

/// The answer to an `OPTIONS` on a public route; `None` for any other request.
pub(crate) async fn answer_options(
    req: &Request,
    rid: &RequestId,
) -> Option<Result<Reply, ApiError>> {
    if req.method() != Method::OPTIONS {
        return None;
    }
    let methods = routes::public_methods(Auth::NAME, req.uri().path());
    if methods.is_empty() {
        return None;
    }
    let cfg = match app::config::<Auth>().await {
        Ok(cfg) => cfg,
        Err(e) => return Some(Err(e)),
    };
    let answer = edge::cors::preflight(&cfg.cors, req.headers(), rid)
        .unwrap_or_else(|| Ok(edge::cors::options(&methods, rid)));
    Some(answer.map(Reply::from))
}

/// The CORS response headers of an answer on a public route's path (once the configuration is
/// loaded: an answer before that is a configuration error, which no page needs to read).
pub(crate) fn decorate(path: &str, request_headers: &HeaderMap, response_headers: &mut HeaderMap) {
    if routes::public_methods(Auth::NAME, path).is_empty() {
        return;
    }
    if let Some(cfg) = CONFIG.get() {
        let headers = cfg
            .cors
            .response_headers(edge::cors::origin(request_headers));
        response::apply_to_map(response_headers, &headers);
    }
}
