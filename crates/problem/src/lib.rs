//! RFC 9457 `application/problem+json` error bodies, the stable error `code`s of the API contract
//! (`openapi.yaml`'s `Problem` schema, and the table in `docs/api.md`: `scripts/check-openapi` checks
//! both against [`Code`]), and the `x-request-id` every response carries.
//!
//! This crate owns *what an error looks like on the wire*. It never sees internal errors: a
//! [`Problem`] is built from a [`Code`] (the stable, snake_case identifier clients switch on), an
//! HTTP status and an optional client-safe `detail`. [`Problem::internal()`] has a fixed detail, so
//! a database message, a stack trace or a storage key cannot end up in a response body by
//! accident; whoever maps an internal error to a problem logs the internal error separately.
//!
//! Body shape (member order is stable):
//! `{"type","title","status","detail","code","requestId"}`.
//! `type` is `about:blank` unless a caller sets one (so `title` is the HTTP reason phrase, as
//! RFC 9457 §4.2.1 asks); the machine-readable meaning is in the `code` extension member.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

/// The media type of every error body.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// The request id header, lower-case as HTTP/2+ sends it.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The `type` used when a problem has no more specific documentation URI.
pub const TYPE_BLANK: &str = "about:blank";

/// Longest `detail` kept; longer ones are cut (on a char boundary) when set.
pub const MAX_DETAIL_LEN: usize = 512;

/// Errors of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A request id that is not 1..=128 chars of `[A-Za-z0-9._:-]`.
    #[error("request id must be 1..=128 characters of [A-Za-z0-9._:-]")]
    InvalidRequestId,
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $text:literal => $status:literal, $detail:literal; )*) => {
        /// The stable `code` strings of the API contract. Clients and tests switch on these; never
        /// rename one. Add a variant here (and to `openapi.yaml`) rather than inventing a string
        /// elsewhere.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// Every code, in declaration order (for docs and tests).
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The wire string, e.g. `"invalid_token"`.
            pub const fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text,)* }
            }

            /// The status this code is normally sent with.
            pub const fn default_status(self) -> u16 {
                match self { $(Code::$variant => $status,)* }
            }

            /// A client-safe default `detail`.
            pub const fn default_detail(self) -> &'static str {
                match self { $(Code::$variant => $detail,)* }
            }

            /// Parses a wire string back into a code (for clients and tests).
            pub fn from_wire(s: &str) -> Option<Code> {
                match s { $($text => Some(Code::$variant),)* _ => None }
            }
        }
    };
}

codes! {
    /// Malformed request: bad JSON, a missing field, a value out of range.
    BadRequest = "bad_request" => 400, "The request is malformed.";
    /// A malformed id (e.g. not a UUID) in the path or body.
    InvalidId = "invalid_id" => 400, "An identifier in the request is malformed.";
    /// A scanner's clock runs ahead: `scannedAt` or the signature time more than 5 s in the future.
    ClockSkew = "clock_skew" => 400, "The sender's clock is ahead of the server's.";
    /// Wrong email or password (deliberately the same for both).
    InvalidCredentials = "invalid_credentials" => 401, "The email or password is incorrect.";
    /// Missing, malformed, forged or otherwise unacceptable bearer token.
    InvalidToken = "invalid_token" => 401, "The access token is missing or invalid.";
    /// A well-signed access token past its `exp` (plus leeway).
    TokenExpired = "token_expired" => 401, "The access token has expired.";
    /// Authenticated, but the role or ownership does not allow this.
    Forbidden = "forbidden" => 403, "You are not allowed to perform this action.";
    /// A CORS preflight from an origin, method or header that is not configured.
    OriginNotAllowed = "origin_not_allowed" => 403, "This cross-origin request is not allowed.";
    /// A download URL whose signature does not match.
    SignatureInvalid = "signature_invalid" => 403, "The URL signature is invalid.";
    /// A download URL past its expiry (or revoked).
    UrlExpired = "url_expired" => 403, "The URL has expired.";
    /// Over a storage or download quota; the body says which (`quota`), its `limit`, the `usage`
    /// and what was `requested`.
    QuotaExceeded = "quota_exceeded" => 403, "This would exceed a quota.";
    /// Content that may not be served because of its scan status.
    ScanBlocked = "scan_blocked" => 403, "This content cannot be served because of its scan status.";
    /// No such resource (or it belongs to another tenant).
    NotFound = "not_found" => 404, "The resource was not found.";
    /// The route exists but not with this method.
    MethodNotAllowed = "method_not_allowed" => 405, "This method is not allowed on this resource.";
    /// The request body arrived too slowly (idle, below the minimum rate, or past its deadline).
    RequestTimeout = "request_timeout" => 408, "The request body arrived too slowly.";
    /// The request conflicts with the current state of the resource.
    Conflict = "conflict" => 409, "The request conflicts with the current state of the resource.";
    /// The resource existed and was deleted.
    Gone = "gone" => 410, "The resource is no longer available.";
    /// The body is over the size limit.
    PayloadTooLarge = "payload_too_large" => 413, "The request body is too large.";
    /// A multipart body with more parts than `max_upload_parts`.
    TooManyParts = "too_many_parts" => 413, "The multipart body has too many parts.";
    /// A multipart part's header block (or the preamble) over `max_part_header_bytes`.
    PartHeaderTooLarge = "part_header_too_large" => 400, "A multipart part header is too large.";
    /// A direct upload's completion that does not list exactly its parts `1..=partCount` in order,
    /// or whose ETags storage does not hold.
    InvalidParts = "invalid_parts" => 400, "The parts listed do not match the parts of this upload.";
    /// A direct upload that can no longer be completed or aborted in this way (it is verifying,
    /// verified, rejected or aborted).
    UploadNotOpen = "upload_not_open" => 409, "The upload is not open any more.";
    /// A direct upload session past its expiry.
    UploadExpired = "upload_expired" => 410, "The upload session has expired.";
    /// A tus PATCH whose `Upload-Offset` is not the upload's offset (ask `HEAD` for it).
    OffsetMismatch = "offset_mismatch" => 409, "Upload-Offset is not the upload's current offset; ask HEAD for it and resume from there.";
    /// Another PATCH of the same tus upload is in progress.
    UploadLocked = "upload_locked" => 423, "Another PATCH of this upload is in progress; retry when it has finished.";
    /// A tus chunk that does not match its `Upload-Checksum`: nothing of it was stored.
    ChecksumMismatch = "checksum_mismatch" => 460, "The chunk does not match its Upload-Checksum; nothing of it was stored.";
    /// A tus chunk that does not finish the upload, under storage's smallest part.
    ChunkTooSmall = "chunk_too_small" => 400, "A chunk that does not finish the upload must carry at least 5 MiB.";
    /// A tus chunk that would carry the upload past its `Upload-Length`.
    UploadLengthExceeded = "upload_length_exceeded" => 413, "The chunk reaches past the upload's Upload-Length.";
    /// A tus request of a protocol version other than 1.0.0.
    TusVersionUnsupported = "tus_version_unsupported" => 412, "Only tus version 1.0.0 is supported.";
    /// A dangerous extension, or executable/script content.
    BlockedFileType = "blocked_file_type" => 415, "This file type is not allowed.";
    /// The request's media type is not accepted here.
    UnsupportedMediaType = "unsupported_media_type" => 415, "The media type is not supported.";
    /// A `Range` that cannot be satisfied.
    RangeNotSatisfiable = "range_not_satisfiable" => 416, "The requested range cannot be satisfied.";
    /// A filename that is empty, too long or otherwise unacceptable.
    InvalidFilename = "invalid_filename" => 422, "The filename is not acceptable.";
    /// `Repr-Digest` does not match the received content.
    DigestMismatch = "digest_mismatch" => 422, "The content does not match the supplied digest.";
    /// Over the per-user (or per-login) rate limit.
    RateLimited = "rate_limited" => 429, "Too many requests; retry later.";
    /// A user already has `max_concurrent_uploads` uploads in progress.
    TooManyUploads = "too_many_uploads" => 429, "Too many uploads in progress; retry when one has finished.";
    /// Anything unexpected. Its detail is fixed: internal error text never reaches a client.
    Internal = "internal_error" => 500, "An internal error occurred.";
    /// The deployment's settings are wrong (a missing or invalid variable, an outbound host the
    /// manifest does not permit): the operator has to fix them; retrying does not help. Which
    /// setting is logged, never sent.
    Misconfigured = "misconfigured" => 500, "The service is misconfigured; its operator has to correct a setting.";
    /// A dependency (database, Redis, storage) is unavailable.
    ServiceUnavailable = "service_unavailable" => 503, "The service is temporarily unavailable.";
    /// A dependency (database, storage) did not answer within `outbound_timeout_secs`; what the
    /// request started there was undone.
    UpstreamTimeout = "upstream_timeout" => 503, "A service this request depends on did not answer in time; nothing was kept. Retry later.";
    /// `GET /health/ready`: a dependency (database, Redis, storage) is unreachable; the detail
    /// names which.
    NotReady = "not_ready" => 503, "A service this one depends on is unreachable.";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The standard reason phrase of a status (RFC 9110), used as `title` with `type: about:blank`.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        423 => "Locked",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        // tus 1.0.0's checksum extension.
        460 => "Checksum Mismatch",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ if (400..500).contains(&status) => "Client Error",
        _ => "Server Error",
    }
}

/// One RFC 9457 problem. Build it from a [`Code`], optionally override the status or detail, and
/// render it with [`Problem::to_json`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    status: u16,
    code: Code,
    title: Cow<'static, str>,
    detail: Cow<'static, str>,
    type_uri: Cow<'static, str>,
    /// Extension members after `requestId`, in the order they were added.
    extensions: Vec<(&'static str, serde_json::Value)>,
}

impl Problem {
    /// A problem with the code's default status and detail.
    pub fn new(code: Code) -> Self {
        Self::with_status(code, code.default_status())
    }

    /// A problem with an explicit status (e.g. `not_found` as 404 but `bad_request` as 422).
    /// A status outside 400..=599 is replaced by 500: a problem is always an error.
    pub fn with_status(code: Code, status: u16) -> Self {
        let status = if (400..=599).contains(&status) {
            status
        } else {
            500
        };
        Self {
            status,
            code,
            title: Cow::Borrowed(reason_phrase(status)),
            detail: Cow::Borrowed(code.default_detail()),
            type_uri: Cow::Borrowed(TYPE_BLANK),
            extensions: Vec::new(),
        }
    }

    /// The catch-all for unexpected failures: `500 internal_error` with a fixed detail. There is
    /// deliberately no way to attach the underlying error; log it instead.
    pub fn internal() -> Self {
        Self::new(Code::Internal)
    }

    /// `400 bad_request` with a client-safe detail.
    pub fn bad_request(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Code::BadRequest).detail(detail)
    }

    /// `401 invalid_token`.
    pub fn invalid_token() -> Self {
        Self::new(Code::InvalidToken)
    }

    /// `401 token_expired`.
    pub fn token_expired() -> Self {
        Self::new(Code::TokenExpired)
    }

    /// `403 forbidden`.
    pub fn forbidden() -> Self {
        Self::new(Code::Forbidden)
    }

    /// `404 not_found`.
    pub fn not_found() -> Self {
        Self::new(Code::NotFound)
    }

    /// `429 rate_limited`.
    pub fn rate_limited() -> Self {
        Self::new(Code::RateLimited)
    }

    /// `503 service_unavailable`.
    pub fn service_unavailable() -> Self {
        Self::new(Code::ServiceUnavailable)
    }

    /// Replaces the detail. It must be written for the client: never pass an internal error's
    /// text here. Control characters are dropped and the text is cut to [`MAX_DETAIL_LEN`] bytes.
    /// Ignored for `internal_error`, whose detail is fixed.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        if self.code == Code::Internal {
            return self;
        }
        self.detail = sanitize_detail(detail.into());
        self
    }

    /// Sets a documentation URI as `type`. With a specific type the title stays the reason
    /// phrase unless [`Problem::title`] sets another.
    #[must_use]
    pub fn type_uri(mut self, uri: impl Into<Cow<'static, str>>) -> Self {
        self.type_uri = uri.into();
        self
    }

    /// Replaces the title (only meaningful together with a specific [`Problem::type_uri`]).
    #[must_use]
    pub fn title(mut self, title: impl Into<Cow<'static, str>>) -> Self {
        self.title = sanitize_detail(title.into());
        self
    }

    /// Adds an extension member (RFC 9457 §3.2), written after `requestId`. `name` must not be one
    /// of the standard members; it is a programming error, ignored, if it is.
    #[must_use]
    pub fn extension(mut self, name: &'static str, value: impl Into<serde_json::Value>) -> Self {
        const RESERVED: [&str; 6] = ["type", "title", "status", "detail", "code", "requestId"];
        if !RESERVED.contains(&name) && !self.extensions.iter().any(|(n, _)| *n == name) {
            self.extensions.push((name, value.into()));
        }
        self
    }

    /// The extension member `name`, if set.
    pub fn extension_value(&self, name: &str) -> Option<&serde_json::Value> {
        self.extensions
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// The HTTP status to send.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The detail that will be sent.
    pub fn detail_text(&self) -> &str {
        &self.detail
    }

    /// The JSON body, with `requestId` set.
    pub fn to_json(&self, request_id: &RequestId) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            #[serde(rename = "type")]
            type_uri: &'a str,
            title: &'a str,
            status: u16,
            detail: &'a str,
            code: &'static str,
            request_id: &'a str,
        }
        let body = Body {
            type_uri: &self.type_uri,
            title: &self.title,
            status: self.status,
            detail: &self.detail,
            code: self.code.as_str(),
            request_id: request_id.as_str(),
        };
        // Serializing plain strings and integers cannot fail.
        let mut json = serde_json::to_string(&body).unwrap_or_else(|_| String::from("{}"));
        if !self.extensions.is_empty() && json.ends_with('}') {
            json.pop();
            for (name, value) in &self.extensions {
                json.push(',');
                json.push_str(&serde_json::Value::from(*name).to_string());
                json.push(':');
                json.push_str(&value.to_string());
            }
            json.push('}');
        }
        json
    }
}

impl From<Code> for Problem {
    fn from(code: Code) -> Self {
        Problem::new(code)
    }
}

fn sanitize_detail(s: Cow<'static, str>) -> Cow<'static, str> {
    let clean = s.len() <= MAX_DETAIL_LEN && !s.chars().any(char::is_control);
    if clean {
        return s;
    }
    let mut out = String::with_capacity(s.len().min(MAX_DETAIL_LEN));
    for c in s.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_DETAIL_LEN {
            break;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// Longest request id echoed back.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The id of one request: the client's `x-request-id` when it is a sane token, else a fresh UUID
/// v4. Always safe to put in a header, a log line or a JSON string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// Whether `s` is acceptable to echo: 1..=128 chars of `[A-Za-z0-9._:-]`.
    pub fn is_sane(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_REQUEST_ID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    }

    /// Parses a client-sent id strictly.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if Self::is_sane(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(Error::InvalidRequestId)
        }
    }

    /// The id for a request: echo `client` (the raw `x-request-id` header bytes, if any) when
    /// sane, else generate one. Surrounding whitespace is not trimmed: it makes the id insane.
    pub fn from_client(client: Option<&[u8]>) -> Self {
        client
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| Self::parse(s).ok())
            .unwrap_or_else(Self::generate)
    }

    /// A fresh random UUID v4 (hyphenated, lower case).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        if getrandom::fill(&mut bytes).is_err() {
            // The platform RNG never fails on the targets we run on; if it did, a request id still
            // has to be unique rather than secret, so fall back to time and a counter.
            bytes = fallback_unique_bytes();
        }
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        Self(id.hyphenated().to_string())
    }

    /// The id as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RequestId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

fn fallback_unique_bytes() -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&nanos.to_be_bytes());
    out[8..].copy_from_slice(&n.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn rid() -> RequestId {
        RequestId::parse("req-1").unwrap()
    }

    #[test]
    fn body_has_the_contract_members_in_order() {
        let json = Problem::invalid_token().to_json(&rid());
        assert_eq!(
            json,
            r#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"The access token is missing or invalid.","code":"invalid_token","requestId":"req-1"}"#
        );
    }

    #[test]
    fn extension_members_follow_the_standard_ones_in_order() {
        let json = Problem::new(Code::QuotaExceeded)
            .extension("limit", 10)
            .extension("quota", "user_bytes")
            .extension("status", 200)
            .extension("limit", 11)
            .to_json(&rid());
        assert!(
            json.ends_with(
                r#""code":"quota_exceeded","requestId":"req-1","limit":10,"quota":"user_bytes"}"#
            ),
            "{json}"
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["status"], 403);
    }

    #[test]
    fn internal_detail_is_fixed() {
        let p = Problem::internal().detail("relation \"users\" does not exist");
        assert_eq!(p.status(), 500);
        assert_eq!(p.detail_text(), "An internal error occurred.");
        assert!(!p.to_json(&rid()).contains("relation"));
    }

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = HashSet::new();
        for &c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert_eq!(Code::from_wire(s), Some(c));
            assert!((400..=599).contains(&c.default_status()));
        }
        for s in [
            "invalid_token",
            "token_expired",
            "forbidden",
            "not_found",
            "payload_too_large",
            "blocked_file_type",
            "invalid_filename",
            "digest_mismatch",
            "rate_limited",
            "signature_invalid",
            "url_expired",
            "scan_blocked",
            "invalid_credentials",
        ] {
            assert!(Code::from_wire(s).is_some(), "contract code {s} missing");
        }
    }

    #[test]
    fn status_override_and_bounds() {
        assert_eq!(Problem::with_status(Code::BadRequest, 422).status(), 422);
        assert!(
            Problem::with_status(Code::BadRequest, 422)
                .to_json(&rid())
                .contains("Unprocessable Content")
        );
        assert_eq!(Problem::with_status(Code::BadRequest, 200).status(), 500);
    }

    #[test]
    fn detail_is_sanitized_and_capped() {
        let p = Problem::bad_request("line1\nline2\u{0}");
        assert_eq!(p.detail_text(), "line1line2");
        let long = "é".repeat(1000);
        let p = Problem::bad_request(long);
        assert!(p.detail_text().len() <= MAX_DETAIL_LEN);
        assert!(p.detail_text().chars().all(|c| c == 'é'));
    }

    #[test]
    fn json_escapes_detail() {
        let p = Problem::bad_request(r#"field "x" is \ bad"#);
        let v: serde_json::Value = serde_json::from_str(&p.to_json(&rid())).unwrap();
        assert_eq!(v["detail"], r#"field "x" is \ bad"#);
    }

    #[test]
    fn request_id_echo_rules() {
        assert_eq!(
            RequestId::from_client(Some(b"abc-123.x:y_z")).as_str(),
            "abc-123.x:y_z"
        );
        for bad in [
            &b""[..],
            b" abc",
            b"abc def",
            b"a\r\nset-cookie: x",
            b"<script>",
            "é".as_bytes(),
            &[0xff, 0xfe],
        ] {
            let id = RequestId::from_client(Some(bad));
            assert_ne!(id.as_bytes_for_test(), bad);
            assert!(uuid::Uuid::parse_str(id.as_str()).is_ok());
        }
        let long = "a".repeat(129);
        assert_ne!(RequestId::from_client(Some(long.as_bytes())).as_str(), long);
        let max = "a".repeat(128);
        assert_eq!(RequestId::from_client(Some(max.as_bytes())).as_str(), max);
    }

    #[test]
    fn generated_ids_are_v4_and_distinct() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        let u = uuid::Uuid::parse_str(a.as_str()).unwrap();
        assert_eq!(u.get_version_num(), 4);
        assert_eq!(a.as_str().len(), 36);
    }

    impl RequestId {
        fn as_bytes_for_test(&self) -> &[u8] {
            self.0.as_bytes()
        }
    }

    proptest! {
        #[test]
        fn request_id_is_always_sane(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let id = RequestId::from_client(Some(&bytes));
            prop_assert!(RequestId::is_sane(id.as_str()));
        }

        #[test]
        fn problem_json_always_parses(detail in ".{0,700}") {
            let p = Problem::bad_request(detail);
            let v: serde_json::Value = serde_json::from_str(&p.to_json(&rid())).unwrap();
            prop_assert_eq!(v["code"].as_str(), Some("bad_request"));
            prop_assert!(v["detail"].as_str().unwrap().len() <= MAX_DETAIL_LEN);
        }
    }
}
