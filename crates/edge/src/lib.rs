//! The edge of every HTTP component: what happens between the wire and the domain code.
//!
//! A component handler is `parse → domain call (auth-core, ...) → map to a response`. Everything
//! that goes wrong on the way is an [`ApiError`], and exactly one place per component turns it into
//! an `application/problem+json` response ([`ApiError::into_response`]); a handler therefore never
//! returns `Err` to Spin (which would answer an empty 500).
//!
//! | module | owns |
//! |---|---|
//! | [`error`] | [`ApiError`]: a client-facing problem plus extra headers plus an internal cause that is logged, never sent |
//! | [`response`] | building JSON / problem / empty responses, `x-request-id`, merging header lists (`Vary`) |
//! | [`body`] | reading a request body with a size cap and parsing it as JSON |
//! | [`inner`] | the middleware's hand-off: the one `Authorization` it reads, the headers it forwards, and how an inner component authenticates a request (only the middleware's `x-auth-context`) |
//! | [`cors`] | answering a CORS preflight (and a plain `OPTIONS`) from `auth_core::cors`'s decision |
//! | [`routes`] | the API's one route table: endpoints, their component and access, the middleware's role check |
//! | [`quota`] | the quota checks of every upload path and download: the claim before the bytes, the check in the commit transaction, the daily download charge (`403 quota_exceeded`) |
//! | [`paging`] | keyset paging from a query string (`limit`, `before`) |
//! | [`client`] | the client's address: which header to believe (`client_ip_source`: Spin's own `spin-client-addr`, `True-Client-IP`, `X-Forwarded-For` hops), and what per-address rate limits count it as |
//! | [`limits`] | rate-limit refusals (`429` + headers) and the fail-open/closed answer when Redis is down |
//! | [`log`] | the one JSON log line per request and security-event lines (stderr) |
//! | [`ready`] | the readiness answer: which dependencies are up, or `503 not_ready` naming the ones down |
//! | `spin` (feature `spin`) | Spin host glue: variables and the Redis rate limiter (Postgres is `crates/store`'s) |
//! | `relay` (feature `spin`) | answering with a received response's body stream handed on, not copied through the component |
//!
//! Everything but `spin` and `relay` is pure and unit-tested natively.

#[cfg(feature = "spin")]
pub mod app;
pub mod body;
pub mod client;
pub mod cors;
pub mod error;
pub mod inner;
pub mod limits;
pub mod log;
pub mod paging;
pub mod quota;
pub mod ready;
#[cfg(feature = "spin")]
pub mod relay;
pub mod response;
pub mod routes;
pub mod settings;
#[cfg(feature = "spin")]
pub mod spin;

/// The deadline of an outbound call (`outbound_timeout_secs`), read by every component's configuration.
pub use deadline::OutboundTimeout;
pub use error::ApiError;
pub use problem::{Code, Problem, RequestId};

pub use routes::path_id;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_ids_are_canonical_uuids() {
        assert!(path_id("6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b").is_ok());
        assert!(path_id("6F1C2A8E-3B4D-4E5F-8A9B-0C1D2E3F4A5B").is_ok());
        for bad in [
            "not-a-uuid",
            "6f1c2a8e3b4d4e5f8a9b0c1d2e3f4a5b",
            "{6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5}",
            "",
        ] {
            let e = path_id(bad).unwrap_err();
            assert_eq!(e.problem().code(), Code::InvalidId, "{bad:?}");
        }
    }

    #[test]
    fn method_not_allowed_lists_the_allowed_methods() {
        let e = ApiError::method_not_allowed(&[http::Method::GET, http::Method::HEAD]);
        assert_eq!(e.problem().code(), Code::MethodNotAllowed);
        assert!(e.headers().contains(&("Allow", "GET, HEAD".to_owned())));
    }
}
