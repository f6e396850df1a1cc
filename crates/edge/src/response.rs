//! Building responses: JSON, problem+json and empty bodies, the `x-request-id` every response
//! carries, and applying header lists produced by the domain code (CORS, rate limit).
//!
//! Header lists from `auth-core` are `(name, value)` pairs. [`apply_headers`] replaces a header of
//! the same name, except `Vary`, whose tokens are merged: the inner component and the middleware
//! may both vary the response, and a cache must learn about both.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue, VARY};
use http::{Response, StatusCode};
use problem::{Problem, REQUEST_ID_HEADER, RequestId};
use serde::Serialize;

/// `Content-Type` of JSON bodies.
pub const JSON: &str = "application/json";

/// A JSON response. Serializing our own response types cannot fail; if it ever did, the answer
/// is a 500 problem rather than a panic.
pub fn json<T: Serialize>(
    status: StatusCode,
    body: &T,
    request_id: &RequestId,
) -> Response<String> {
    match serde_json::to_string(body) {
        Ok(text) => {
            let mut res = Response::new(text);
            *res.status_mut() = status;
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
            // Token responses and identities must not be cached by intermediaries (RFC 6749 §5.1).
            res.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            set_request_id(&mut res, request_id);
            res
        }
        Err(_) => problem(&Problem::internal(), request_id),
    }
}

/// A response without a body (e.g. `204`).
pub fn empty(status: StatusCode, request_id: &RequestId) -> Response<String> {
    let mut res = Response::new(String::new());
    *res.status_mut() = status;
    set_request_id(&mut res, request_id);
    res
}

/// The `application/problem+json` response for `p`.
pub fn problem(p: &Problem, request_id: &RequestId) -> Response<String> {
    let mut res = Response::new(p.to_json(request_id));
    *res.status_mut() =
        StatusCode::from_u16(p.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(problem::CONTENT_TYPE),
    );
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    set_request_id(&mut res, request_id);
    res
}

/// Sets (replaces) `x-request-id`. A [`RequestId`] is always a valid header value.
pub fn set_request_id<B>(res: &mut Response<B>, request_id: &RequestId) {
    if let Ok(v) = HeaderValue::from_str(request_id.as_str()) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
}

/// Applies `(name, value)` pairs: `Vary` tokens are merged into the existing `Vary`, every other
/// header replaces one of the same name. Pairs that are not valid header names/values are
/// skipped (they come from our own code, never from a client).
pub fn apply_headers<B>(res: &mut Response<B>, headers: &[(&'static str, String)]) {
    apply_to_map(res.headers_mut(), headers);
}

/// [`apply_headers`] on a bare header map.
pub fn apply_to_map(map: &mut http::HeaderMap, headers: &[(&'static str, String)]) {
    for (name, value) in headers {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        if name == VARY {
            merge_vary(map, value);
            continue;
        }
        if let Ok(v) = HeaderValue::from_str(value) {
            map.insert(name, v);
        }
    }
}

fn merge_vary(map: &mut http::HeaderMap, add: &str) {
    let mut tokens: Vec<String> = Vec::new();
    let existing = map
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect::<Vec<_>>();
    for t in existing.into_iter().chain(
        add.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
    ) {
        if !tokens.iter().any(|x| x.eq_ignore_ascii_case(&t)) {
            tokens.push(t);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&tokens.join(", ")) {
        map.insert(VARY, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rid() -> RequestId {
        RequestId::parse("abc").unwrap()
    }

    #[test]
    fn json_and_empty_carry_request_id() {
        let res = json(StatusCode::OK, &serde_json::json!({"a": 1}), &rid());
        assert_eq!(res.status(), 200);
        assert_eq!(res.body(), r#"{"a":1}"#);
        assert_eq!(res.headers()["content-type"], JSON);
        assert_eq!(res.headers()["cache-control"], "no-store");
        assert_eq!(res.headers()["x-request-id"], "abc");
        let res = empty(StatusCode::NO_CONTENT, &rid());
        assert_eq!(res.status(), 204);
        assert!(res.body().is_empty());
        assert_eq!(res.headers()["x-request-id"], "abc");
    }

    #[test]
    fn problem_response() {
        let res = problem(&Problem::forbidden(), &rid());
        assert_eq!(res.status(), 403);
        let v: serde_json::Value = serde_json::from_str(res.body()).unwrap();
        assert_eq!(v["code"], "forbidden");
        assert_eq!(v["status"], 403);
        assert_eq!(v["requestId"], "abc");
    }

    #[test]
    fn vary_is_merged_and_others_replaced() {
        let mut res = empty(StatusCode::OK, &rid());
        res.headers_mut()
            .insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        res.headers_mut().insert(
            "access-control-allow-origin",
            HeaderValue::from_static("https://old"),
        );
        apply_headers(
            &mut res,
            &[
                ("Vary", "Origin".into()),
                ("Access-Control-Allow-Origin", "https://new".into()),
                ("Vary", "origin, Access-Control-Request-Method".into()),
                ("bad header", "x".into()),
                ("X-Bad-Value", "a\nb".into()),
            ],
        );
        assert_eq!(
            res.headers()["vary"],
            "Accept-Encoding, Origin, Access-Control-Request-Method"
        );
        assert_eq!(
            res.headers()
                .get_all("access-control-allow-origin")
                .iter()
                .count(),
            1
        );
        assert_eq!(res.headers()["access-control-allow-origin"], "https://new");
        assert!(res.headers().get("x-bad-value").is_none());
    }
}
