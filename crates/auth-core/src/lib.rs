//! Authentication domain logic shared by the Spin components (token service, auth middleware and
//! every inner component). Pure Rust, no Spin dependency: it is unit-tested natively and compiles
//! for `wasm32-wasip2`.
//!
//! | module | owns |
//! |---|---|
//! | [`ids`] | the identity newtypes parsed once at the edge: [`TenantId`], [`UserId`], [`Role`], [`Email`] |
//! | [`claims`] | the access-token claim set, the [`Verifier`] (full JWT verification) and the [`Issuer`] |
//! | [`keys`] | the signing/verification key ring read from configuration, JWKS output, key generation |
//! | [`context`] | the MAC'd `x-auth-context` header that carries a verified identity from the middleware to inner components |
//! | [`password`] | argon2id hashing and verification, with a dummy hash for unknown users |
//! | [`refresh`] | opaque refresh tokens, their storage hash, and the rotation / reuse decision |
//! | [`revocation`] | the access-token revocation list in Redis (by token and by user): keys, script, decision |
//! | [`ratelimit`] | the fixed-window limiter's Redis script, key naming, decisions and `RateLimit*` headers |
//! | [`slots`] | concurrency slots per user in Redis (requests of one kind in flight): script, keys, replies |
//! | [`cors`] | the CORS policy: preflight decisions and response headers |
//! | [`ct`] | constant-time comparison of secrets |
//! | [`verified`] | the tokens a reused component instance already verified (each signature checked once) |
//!
//! Time is always passed in as Unix seconds (`now: i64`) so everything is testable; components
//! use [`unix_now`].

pub mod claims;
pub mod context;
pub mod cors;
pub mod ct;
mod error;
pub mod ids;
pub mod keys;
pub mod password;
pub mod ratelimit;
pub mod refresh;
pub mod revocation;
pub mod slots;
pub mod verified;

pub use claims::{AccessClaims, IssuedToken, Issuer, Verifier, VerifierConfig};
pub use context::{AuthContext, ContextKey};
pub use error::Error;
pub use ids::{Email, Role, TenantId, UserId};
pub use keys::KeyRing;

/// The current time as Unix milliseconds (0 if the clock is before 1970).
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The current time as Unix seconds (0 if the clock is before 1970, which it never is here).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A number of seconds from configuration, `1..=max`; the error names `what`, never the value.
pub(crate) fn seconds_from_config(what: &str, value: &str, max: i64) -> Result<i64, Error> {
    match value.trim().parse::<i64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(Error::Config(format!("{what} must be 1..={max} seconds"))),
    }
}

/// Fills `buf` from the platform CSPRNG (`wasi:random` inside a component).
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buf).map_err(|_| Error::Random)
}

/// Unpadded base64url, the encoding of every token part and key in this crate.
pub(crate) mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    pub fn encode(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Strict decode: no padding, no whitespace, canonical trailing bits.
    pub fn decode(s: &str) -> Option<Vec<u8>> {
        URL_SAFE_NO_PAD.decode(s).ok()
    }
}
