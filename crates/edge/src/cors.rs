//! Answering CORS at the edge, from `auth_core::cors`'s decisions: a preflight (`OPTIONS` with
//! `Origin` and `Access-Control-Request-Method`) from a configured origin is `204` with the
//! `Access-Control-Allow-*` headers, from any other origin `403 origin_not_allowed`; a plain
//! `OPTIONS` on a route that answers it is `204` with `Allow`. The auth middleware answers
//! preflights for the routes behind it, the token service for its public routes.

use auth_core::cors::{CorsPolicy, Preflight};
use http::header::{
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, AsHeaderName, ORIGIN,
};
use http::{HeaderMap, Response, StatusCode};
use problem::RequestId;

use crate::{ApiError, response};

fn header(headers: &HeaderMap, name: impl AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The request's `Origin`, when it is readable.
pub fn origin(headers: &HeaderMap) -> Option<&str> {
    header(headers, ORIGIN)
}

/// The answer to a CORS preflight, or `None` when the request is not one (route it normally).
pub fn preflight(
    policy: &CorsPolicy,
    headers: &HeaderMap,
    request_id: &RequestId,
) -> Option<Result<Response<String>, ApiError>> {
    match policy.preflight(
        origin(headers),
        header(headers, ACCESS_CONTROL_REQUEST_METHOD),
        header(headers, ACCESS_CONTROL_REQUEST_HEADERS),
    ) {
        Preflight::NotPreflight => None,
        Preflight::Allowed(h) => {
            let mut res = response::empty(StatusCode::NO_CONTENT, request_id);
            response::apply_headers(&mut res, &h);
            Some(Ok(res))
        }
        Preflight::Denied(h) => Some(Err(ApiError::new(Preflight::problem()).with_headers(h))),
    }
}

/// A plain `OPTIONS` on a route answering `methods`: `204` with `Allow` (those and `OPTIONS`).
pub fn options(methods: &[&str], request_id: &RequestId) -> Response<String> {
    let mut res = response::empty(StatusCode::NO_CONTENT, request_id);
    let allow = methods
        .iter()
        .copied()
        .chain(["OPTIONS"])
        .collect::<Vec<_>>()
        .join(", ");
    response::apply_headers(&mut res, &[("Allow", allow)]);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rid() -> RequestId {
        RequestId::parse("r-1").unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn policy() -> CorsPolicy {
        CorsPolicy::from_config("https://mail.example.test").unwrap()
    }

    #[test]
    fn a_preflight_from_a_configured_origin_is_204_with_the_allow_headers() {
        let res = preflight(
            &policy(),
            &headers(&[
                ("origin", "https://mail.example.test"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ]),
            &rid(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(res.status(), 204);
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            "https://mail.example.test"
        );
        assert!(res.headers()["vary"].to_str().unwrap().contains("Origin"));
        assert_eq!(res.headers()["x-request-id"], "r-1");
    }

    #[test]
    fn a_preflight_from_elsewhere_is_403_without_allow_headers() {
        let e = preflight(
            &policy(),
            &headers(&[
                ("origin", "https://evil.example.test"),
                ("access-control-request-method", "POST"),
            ]),
            &rid(),
        )
        .unwrap()
        .unwrap_err();
        let res = e.into_response(&rid());
        assert_eq!(res.status(), 403);
        assert!(res.body().contains("origin_not_allowed"));
        assert!(res.headers().get("access-control-allow-origin").is_none());
        assert!(res.headers()["vary"].to_str().unwrap().contains("Origin"));
    }

    #[test]
    fn other_requests_are_not_preflights() {
        let no_method = headers(&[("origin", "https://mail.example.test")]);
        assert!(preflight(&policy(), &no_method, &rid()).is_none());
        assert!(preflight(&policy(), &HeaderMap::new(), &rid()).is_none());
        let res = options(&["GET", "HEAD"], &rid());
        assert_eq!(res.status(), 204);
        assert_eq!(res.headers()["allow"], "GET, HEAD, OPTIONS");
    }
}
