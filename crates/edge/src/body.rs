//! Request bodies: read at most a fixed number of bytes (judged from `Content-Length` before
//! reading, and while streaming when it is absent or lies), then parse JSON. Works over any
//! `http_body::Body`, so it is tested natively with in-memory bodies and used in components with
//! Spin's streaming request body.

use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use problem::{Code, Problem};
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Largest JSON body the auth routes accept (credentials and tokens are tiny).
pub const SMALL_JSON_LIMIT: usize = 16 * 1024;

/// `413 payload_too_large`.
fn too_large() -> ApiError {
    ApiError::new(Problem::new(Code::PayloadTooLarge))
}

/// Whether the request declares a JSON media type (`application/json` or `application/*+json`,
/// parameters such as `charset` allowed).
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// `415 unsupported_media_type` unless the body is declared as JSON.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    if is_json(headers) {
        Ok(())
    } else {
        Err(ApiError::new(
            Problem::new(Code::UnsupportedMediaType).detail("Send the body as application/json."),
        ))
    }
}

/// Reads the whole body, refusing more than `limit` bytes with `413`: at once when
/// `Content-Length` says so, else as soon as the stream passes the limit.
pub async fn read_limited<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Some(len) = headers.get(CONTENT_LENGTH) {
        match len.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(n) if n > limit as u64 => return Err(too_large()),
            Some(_) => {}
            None => {
                return Err(ApiError::new(Problem::bad_request(
                    "Invalid Content-Length.",
                )));
            }
        }
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(
            ApiError::new(Problem::bad_request("The request body could not be read."))
                .with_cause(format!("reading body: {e}")),
        ),
    }
}

/// Parses a JSON body into `T`; anything else is `400 bad_request` naming the expected shape.
///
/// The one rule of every JSON request body: a JSON object (never an array, which serde would
/// also read into a struct), with no member the route does not know and none twice (`T` derives
/// `Deserialize` with `deny_unknown_fields`; openapi.yaml says `additionalProperties: false`).
pub fn parse_json<T: DeserializeOwned>(
    bytes: &[u8],
    expected: &'static str,
) -> Result<T, ApiError> {
    let refused = || {
        ApiError::new(Problem::bad_request(format!(
            "The body must be a JSON object of the form {expected}, without other members."
        )))
    };
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(refused());
    }
    serde_json::from_slice(bytes).map_err(|_| refused())
}

/// A JSON number as an integer, the way JSON Schema's `integer` reads one: `600` and `600.0`
/// alike; `None` for a fraction, a non-number or a value outside `i64`.
pub fn integer(v: &serde_json::Value) -> Option<i64> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // 2^63 is exactly representable; every integral f64 below it in magnitude fits in i64.
    (f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f))
        .then_some(f as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use http_body_util::{Full, StreamBody};
    use serde::Deserialize;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn json_media_types() {
        assert!(is_json(&headers(&[("content-type", "application/json")])));
        assert!(is_json(&headers(&[(
            "content-type",
            "Application/JSON; charset=utf-8"
        )])));
        assert!(is_json(&headers(&[(
            "content-type",
            "application/merge-patch+json"
        )])));
        assert!(!is_json(&headers(&[("content-type", "text/plain")])));
        assert!(!is_json(&headers(&[(
            "content-type",
            "application/x-www-form-urlencoded"
        )])));
        assert!(!is_json(&HeaderMap::new()));
        assert_eq!(require_json(&HeaderMap::new()).unwrap_err().status(), 415);
    }

    #[test]
    fn reads_within_limit() {
        let b = block_on(read_limited(
            &HeaderMap::new(),
            Full::new(Bytes::from("hello")),
            5,
        ))
        .unwrap();
        assert_eq!(&b[..], b"hello");
    }

    #[test]
    fn refuses_declared_and_streamed_oversize() {
        let e = block_on(read_limited(
            &headers(&[("content-length", "6")]),
            Full::new(Bytes::from("x")),
            5,
        ))
        .unwrap_err();
        assert_eq!(e.status(), 413);
        // No (or a lying) Content-Length: the stream is cut at the limit.
        let chunks = futures::stream::iter(
            (0..10).map(|_| Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from("abc")))),
        );
        let e = block_on(read_limited(&HeaderMap::new(), StreamBody::new(chunks), 20)).unwrap_err();
        assert_eq!(e.status(), 413);
        let e = block_on(read_limited(
            &headers(&[("content-length", "nope")]),
            Full::new(Bytes::new()),
            5,
        ))
        .unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn stream_errors_are_bad_requests_with_a_cause() {
        let chunks = futures::stream::iter(vec![
            Ok(http_body::Frame::data(Bytes::from("ab"))),
            Err(std::io::Error::other("client went away")),
        ]);
        let e = block_on(read_limited(
            &HeaderMap::new(),
            StreamBody::new(chunks),
            100,
        ))
        .unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.cause().unwrap().contains("client went away"));
    }

    #[test]
    fn json_parsing() {
        #[derive(Deserialize, Debug)]
        struct Login {
            email: String,
        }
        let l: Login = parse_json(br#"{"email":"a@b.c"}"#, "{\"email\"}").unwrap();
        assert_eq!(l.email, "a@b.c");
        let e = parse_json::<Login>(b"{}", "{\"email\"}").unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.problem().detail_text().contains("{\"email\"}"));
        assert!(parse_json::<Login>(b"not json", "x").is_err());
    }

    #[test]
    fn json_bodies_are_objects_without_unknown_or_repeated_members() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct Login {
            #[allow(dead_code)]
            email: String,
        }
        assert!(parse_json::<Login>(b" \n{\"email\":\"a\"}", "x").is_ok());
        for bad in [
            &br#"["a"]"#[..],
            br#"{"email":"a","extra":1}"#,
            br#"{"email":"a","email":"b"}"#,
            b"null",
            b"\"a\"",
            b"",
        ] {
            let e = parse_json::<Login>(bad, "{\"email\"}").unwrap_err();
            assert_eq!(e.status(), 400, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn integers_as_json_schema_reads_them() {
        use serde_json::json;
        assert_eq!(integer(&json!(600)), Some(600));
        assert_eq!(integer(&json!(600.0)), Some(600));
        assert_eq!(integer(&json!(-3)), Some(-3));
        assert_eq!(integer(&json!(1e3)), Some(1000));
        assert_eq!(integer(&json!(600.5)), None);
        assert_eq!(integer(&json!(1e300)), None);
        assert_eq!(integer(&json!(u64::MAX)), None);
        assert_eq!(integer(&json!("600")), None);
        assert_eq!(integer(&json!(null)), None);
    }
}
