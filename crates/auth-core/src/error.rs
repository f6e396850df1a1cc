//! The one error type of this crate, and how each error maps to a client-facing problem.

use problem::{Code, Problem};

/// Everything that can go wrong in `auth-core`. Messages are safe to log; they never contain key
/// material, passwords or tokens. Map to a response with [`Error::problem`] and, for 401s, add
/// [`Error::www_authenticate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- access token verification (401) ----
    /// No `Authorization: Bearer` credentials.
    #[error("no bearer token")]
    MissingToken,
    /// Longer than [`crate::claims::MAX_TOKEN_LEN`]: rejected before parsing.
    #[error("token too large")]
    TokenTooLarge,
    /// Not three base64url parts, bad JSON header or claims, bad signature encoding.
    #[error("malformed token")]
    MalformedToken,
    /// `alg` not in the verifier's allow-list (this covers `none` and `HS256`), or not the
    /// algorithm of the key named by `kid`.
    #[error("token algorithm not allowed")]
    AlgorithmNotAllowed,
    /// No `kid` in the header.
    #[error("token has no key id")]
    MissingKeyId,
    /// A `kid` that is not in the key ring (never known, or retired).
    #[error("unknown token key id")]
    UnknownKeyId,
    /// The signature does not verify with the key named by `kid`.
    #[error("bad token signature")]
    BadSignature,
    /// `exp` (plus leeway) has passed. Only reported for correctly signed tokens.
    #[error("token expired")]
    Expired,
    /// `nbf` (minus leeway) is still in the future, or `iat` is.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong token issuer")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("wrong token audience")]
    WrongAudience,
    /// A required claim is missing or malformed (`sub`, `tid`, `role`, `jti`, times, `typ`,
    /// `crit`, lifetime).
    #[error("invalid token claims")]
    InvalidClaims,
    /// A valid token on the revocation list (logout, deactivation, role change).
    #[error("token revoked")]
    Revoked,

    // ---- internal auth context (401 at an inner component) ----
    /// No `x-auth-context` header: the request did not pass the auth middleware.
    #[error("no auth context")]
    ContextMissing,
    /// Malformed, duplicated, forged or tampered `x-auth-context` header.
    #[error("invalid auth context")]
    ContextInvalid,
    /// A correctly MAC'd context past its short expiry (a replayed header).
    #[error("stale auth context")]
    ContextExpired,

    // ---- authorization ----
    /// The caller's role does not satisfy the route's requirement.
    #[error("forbidden")]
    Forbidden,

    // ---- input parsing (400) ----
    /// Not a UUID.
    #[error("invalid id")]
    InvalidId,
    /// Not `user` or `admin`.
    #[error("invalid role")]
    InvalidRole,
    /// Not a plausible email address.
    #[error("invalid email")]
    InvalidEmail,
    /// Not the shape of a refresh token we issue.
    #[error("invalid refresh token")]
    InvalidRefreshToken,

    // ---- configuration and platform (500; log, never show) ----
    /// A configuration string (key ring, context key, origins, limits) is unusable. The message
    /// says which part, never the secret itself.
    #[error("configuration error: {0}")]
    Config(String),
    /// The platform random source failed.
    #[error("random source unavailable")]
    Random,
    /// Hashing a password failed (bad parameters).
    #[error("password hashing failed")]
    PasswordHash,
    /// Creating a token failed.
    #[error("token signing failed")]
    Signing,
}

impl Error {
    /// Whether this is an access-token failure (answered `401` with `WWW-Authenticate`).
    pub fn is_token_error(&self) -> bool {
        matches!(
            self,
            Error::MissingToken
                | Error::TokenTooLarge
                | Error::MalformedToken
                | Error::AlgorithmNotAllowed
                | Error::MissingKeyId
                | Error::UnknownKeyId
                | Error::BadSignature
                | Error::Expired
                | Error::NotYetValid
                | Error::WrongIssuer
                | Error::WrongAudience
                | Error::InvalidClaims
                | Error::Revoked
                | Error::ContextMissing
                | Error::ContextInvalid
                | Error::ContextExpired
        )
    }

    /// A stable snake_case reason for logs and the audit log (more precise than the client sees).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::MissingToken => "missing_token",
            Error::TokenTooLarge => "token_too_large",
            Error::MalformedToken => "malformed_token",
            Error::AlgorithmNotAllowed => "algorithm_not_allowed",
            Error::MissingKeyId => "missing_kid",
            Error::UnknownKeyId => "unknown_kid",
            Error::BadSignature => "bad_signature",
            Error::Expired => "expired",
            Error::NotYetValid => "not_yet_valid",
            Error::WrongIssuer => "wrong_issuer",
            Error::WrongAudience => "wrong_audience",
            Error::InvalidClaims => "invalid_claims",
            Error::Revoked => "revoked",
            Error::ContextMissing => "context_missing",
            Error::ContextInvalid => "context_invalid",
            Error::ContextExpired => "context_expired",
            Error::Forbidden => "forbidden",
            Error::InvalidId => "invalid_id",
            Error::InvalidRole => "invalid_role",
            Error::InvalidEmail => "invalid_email",
            Error::InvalidRefreshToken => "invalid_refresh_token",
            Error::Config(_) => "config",
            Error::Random => "random",
            Error::PasswordHash => "password_hash",
            Error::Signing => "signing",
        }
    }

    /// The problem to answer with. Only `Expired` is told apart (`token_expired`); every other
    /// token or context failure is `invalid_token`, so a client learns nothing about why a forged
    /// token failed. Configuration errors become `misconfigured`, platform errors the fixed
    /// `internal_error` (both 500).
    pub fn problem(&self) -> Problem {
        match self {
            Error::Expired => Problem::token_expired(),
            e if e.is_token_error() => Problem::invalid_token(),
            Error::Forbidden => Problem::forbidden(),
            Error::InvalidId => Problem::new(Code::InvalidId),
            Error::InvalidRole => Problem::bad_request("The role must be \"user\" or \"admin\"."),
            Error::InvalidEmail => Problem::bad_request("The email address is not valid."),
            // A bad refresh token is answered like any unusable one.
            Error::InvalidRefreshToken => Problem::invalid_token(),
            Error::Config(_) => Problem::new(Code::Misconfigured),
            _ => Problem::internal(),
        }
    }

    /// The `WWW-Authenticate` value for a 401 (RFC 6750 §3), or `None` if this error is not one.
    /// A request without credentials gets no error code, as RFC 6750 §3.1 asks.
    pub fn www_authenticate(&self) -> Option<String> {
        match self {
            Error::MissingToken => Some(String::from("Bearer realm=\"api\"")),
            Error::Expired => Some(String::from(
                "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"The access token expired\"",
            )),
            e if e.is_token_error() => Some(String::from(
                "Bearer realm=\"api\", error=\"invalid_token\"",
            )),
            _ => None,
        }
    }
}
