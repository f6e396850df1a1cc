//! The virus-scan domain shared by the `scan-callback` component and the native scan worker.
//!
//! - [`signature`]: the `X-Scan-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`
//!   scheme, signing (worker, external scanners) and verification against a ring of secrets (callback).

pub mod signature;
