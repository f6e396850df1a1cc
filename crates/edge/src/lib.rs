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
//! | [`inner`] | how an inner component authenticates a request: only the middleware's `x-auth-context` |
//! | [`client`] | the client address Spin reports (`spin-client-addr`) |
//! | [`limits`] | rate-limit refusals (`429` + headers) and the fail-open/closed answer when Redis is down |
//! | [`log`] | the one JSON log line per request and security-event lines (stderr) |
//! | `spin` (feature `spin`) | Spin host glue: variables, Postgres tenant transactions and audit rows, the Redis rate limiter |
//!
//! Everything but `spin` is pure and unit-tested natively.

pub mod body;
pub mod client;
pub mod error;
pub mod inner;
pub mod limits;
pub mod log;
pub mod response;
#[cfg(feature = "spin")]
pub mod spin;

pub use error::ApiError;
pub use problem::{Code, Problem, RequestId};
