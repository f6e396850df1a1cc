//! Access tokens: our claim set, the [`Verifier`] every protected request goes through, and the
//! [`Issuer`] of the token service. JWT encoding and signatures are `jwt-compact`'s; this module
//! adds what a library cannot decide for us: the `alg` allow-list, the `kid` lookup in our
//! [`KeyRing`], binding each key to one algorithm, exact `iss`/`aud`, the time rules with leeway
//! and the shape of `sub`/`tid`/`role`/`jti`.
//!
//! Token header: `{"alg":"EdDSA","kid":"<kid>","typ":"at+jwt"}` (RFC 9068's type, so this token
//! cannot be confused with another JWT signed by the same key).
//! Claims: `iss`, `aud`, `sub` (user id), `tid` (tenant id), `role` (`user`|`admin`), `iat`,
//! `nbf`, `exp` (Unix seconds), `jti` (UUID v4).
//!
//! Verification order: size cap (before any parsing) → structure → `alg` in the allow-list → no
//! `crit` → `typ` → `kid` present and known → `alg` equals the key's algorithm → signature →
//! `iss` → `aud` → times → identity claims. So `token_expired` is only ever reported for a token we
//! signed.

use chrono::{DateTime, Utc};
use jwt_compact::alg::Es256;
use jwt_compact::{AlgorithmExt as _, Claims, Header, UntrustedToken, ValidationError};
use serde::{Deserialize, Serialize};

use crate::keys::{Alg, Key, KeyRing, SigningMaterial, StrictEd25519, VerifyingMaterial};
use crate::{Error, Role, TenantId, UserId};

/// Default `iss` (override with configuration).
pub const DEFAULT_ISSUER: &str = "attachments-auth";
/// Default `aud` (override with configuration).
pub const DEFAULT_AUDIENCE: &str = "attachments-api";
/// Longest token accepted; longer ones are refused before any decoding. Ours are about 600 bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Default clock leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY_SECS: i64 = 30;
/// Largest leeway a configuration may set.
pub const MAX_LEEWAY_SECS: i64 = 300;
/// Default access-token lifetime (15 minutes).
pub const DEFAULT_ACCESS_TTL_SECS: i64 = 15 * 60;
/// Longest lifetime the issuer may be configured with, and the verifier accepts (`exp - iat`).
pub const MAX_ACCESS_TTL_SECS: i64 = 24 * 60 * 60;
/// The `typ` header of our access tokens (RFC 9068).
pub const TOKEN_TYPE: &str = "at+jwt";
/// Longest `jti` accepted.
pub const MAX_JTI_LEN: usize = 128;

/// The verified claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// `sub`.
    pub user: UserId,
    /// `tid`.
    pub tenant: TenantId,
    /// `role`.
    pub role: Role,
    /// `jti`: unique per token; goes into logs and the auth context.
    pub jti: String,
    /// `iat`, Unix seconds.
    pub issued_at: i64,
    /// `nbf`, Unix seconds.
    pub not_before: i64,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
    /// The `kid` that signed it.
    pub kid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WireClaims {
    iss: String,
    aud: Audience,
    sub: String,
    tid: String,
    role: String,
    jti: String,
}

/// Header members beyond those `jwt-compact` models. `crit` names extensions a verifier must
/// understand; we understand none, so its presence is a refusal (RFC 7515 §4.1.11).
#[derive(Debug, Clone, Deserialize)]
struct HeaderExtra {
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// What a [`Verifier`] checks against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// Expected `iss`, exactly.
    pub issuer: String,
    /// Expected `aud` (a string equal to it, or an array containing it).
    pub audience: String,
    /// Clock leeway, seconds, 0..=300 (default 30).
    pub leeway_secs: i64,
    /// Allowed algorithms (default `EdDSA` only). `none` and the `HS*` family can never be added.
    pub algorithms: Vec<Alg>,
}

impl VerifierConfig {
    /// `EdDSA` only, 30 s leeway.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            algorithms: vec![Alg::EdDsa],
        }
    }

    /// Sets the leeway.
    #[must_use]
    pub fn with_leeway(mut self, secs: i64) -> Self {
        self.leeway_secs = secs;
        self
    }

    /// Also accepts `ES256` (for keys configured with that algorithm).
    #[must_use]
    pub fn allow_es256(mut self) -> Self {
        if !self.algorithms.contains(&Alg::Es256) {
            self.algorithms.push(Alg::Es256);
        }
        self
    }
}

/// Verifies access tokens against a key ring. Build it once per component instance.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: KeyRing,
    config: VerifierConfig,
}

/// The token of an `Authorization: Bearer <token>` header value. A missing header or another
/// scheme is [`Error::MissingToken`]; `Bearer` with nothing usable after it is
/// [`Error::MalformedToken`]; an over-long value is [`Error::TokenTooLarge`].
pub fn bearer_token(authorization: Option<&[u8]>) -> Result<&str, Error> {
    let raw = authorization.ok_or(Error::MissingToken)?;
    if raw.len() > MAX_TOKEN_LEN + 64 {
        return Err(Error::TokenTooLarge);
    }
    let value = std::str::from_utf8(raw)
        .map_err(|_| Error::MalformedToken)?
        .trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::MissingToken);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Err(Error::MalformedToken);
    }
    Ok(token)
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

fn map_validation(e: ValidationError) -> Error {
    match e {
        ValidationError::AlgorithmMismatch { .. } => Error::AlgorithmNotAllowed,
        ValidationError::InvalidSignatureLen { .. }
        | ValidationError::MalformedSignature(_)
        | ValidationError::InvalidSignature => Error::BadSignature,
        _ => Error::InvalidClaims,
    }
}

fn timestamp(t: Option<DateTime<Utc>>) -> Result<i64, Error> {
    t.map(|t| t.timestamp()).ok_or(Error::InvalidClaims)
}

impl Verifier {
    /// A verifier over `keys` (private parts, if present, are dropped). Refuses an empty issuer
    /// or audience, a leeway outside 0..=300 s, an empty algorithm list, or a ring with no key
    /// usable under the allowed algorithms.
    pub fn new(keys: &KeyRing, config: VerifierConfig) -> Result<Self, Error> {
        if config.issuer.is_empty() || config.audience.is_empty() {
            return Err(Error::Config(
                "issuer and audience must not be empty".into(),
            ));
        }
        if !(0..=MAX_LEEWAY_SECS).contains(&config.leeway_secs) {
            return Err(Error::Config(format!(
                "leeway must be 0..={MAX_LEEWAY_SECS} seconds"
            )));
        }
        if !keys
            .keys()
            .iter()
            .any(|k| config.algorithms.contains(&k.alg()))
        {
            return Err(Error::Config(
                "no verification key for the allowed algorithms".into(),
            ));
        }
        Ok(Self {
            keys: keys.public_only(),
            config,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Verifies `Authorization` header bytes (see [`bearer_token`]) and then the token.
    pub fn verify_authorization(
        &self,
        authorization: Option<&[u8]>,
        now: i64,
    ) -> Result<AccessClaims, Error> {
        self.verify(bearer_token(authorization)?, now)
    }

    /// Fully verifies a compact JWS access token at time `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, Error> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Error::TokenTooLarge);
        }
        if token.is_empty()
            || !token.bytes().all(is_token_char)
            || token.bytes().filter(|&b| b == b'.').count() != 2
        {
            return Err(Error::MalformedToken);
        }
        let untrusted: UntrustedToken<'_, HeaderExtra> =
            UntrustedToken::try_from(token).map_err(|_| Error::MalformedToken)?;

        let alg = Alg::from_name(untrusted.algorithm())
            .filter(|a| self.config.algorithms.contains(a))
            .ok_or(Error::AlgorithmNotAllowed)?;
        let header = untrusted.header();
        if header.other_fields.crit.is_some() {
            return Err(Error::MalformedToken);
        }
        match header.token_type.as_deref() {
            Some(t)
                if t.eq_ignore_ascii_case(TOKEN_TYPE)
                    || t.eq_ignore_ascii_case("application/at+jwt") => {}
            _ => return Err(Error::InvalidClaims),
        }
        let kid = header.key_id.as_deref().ok_or(Error::MissingKeyId)?;
        let key = self.keys.get(kid).ok_or(Error::UnknownKeyId)?;
        if key.alg() != alg {
            return Err(Error::AlgorithmNotAllowed);
        }

        let verified = match &key.verifying {
            VerifyingMaterial::Ed25519(pk) => StrictEd25519
                .validator::<WireClaims>(pk)
                .validate(&untrusted),
            VerifyingMaterial::Es256(vk) => Es256.validator::<WireClaims>(vk).validate(&untrusted),
        }
        .map_err(map_validation)?;
        let claims = verified.claims();
        self.check_claims(claims, key, now)
    }

    /// The time rules, at `now`: the only part of a verified token's validity that changes later
    /// (see [`crate::verified::VerifiedTokens`]).
    pub(crate) fn check_times(&self, exp: i64, nbf: i64, iat: i64, now: i64) -> Result<(), Error> {
        let leeway = self.config.leeway_secs;
        // Valid while now < exp + leeway (RFC 7519 §4.1.4: "on or after" is expired).
        if now >= exp.saturating_add(leeway) {
            return Err(Error::Expired);
        }
        if now < nbf.saturating_sub(leeway) || now < iat.saturating_sub(leeway) {
            return Err(Error::NotYetValid);
        }
        if exp <= iat || nbf > exp || exp.saturating_sub(iat) > MAX_ACCESS_TTL_SECS {
            return Err(Error::InvalidClaims);
        }
        Ok(())
    }

    fn check_claims(
        &self,
        claims: &Claims<WireClaims>,
        key: &Key,
        now: i64,
    ) -> Result<AccessClaims, Error> {
        let c = &claims.custom;
        if c.iss != self.config.issuer {
            return Err(Error::WrongIssuer);
        }
        let aud_ok = match &c.aud {
            Audience::One(a) => *a == self.config.audience,
            Audience::Many(list) => list.contains(&self.config.audience),
        };
        if !aud_ok {
            return Err(Error::WrongAudience);
        }

        let exp = timestamp(claims.expiration)?;
        let nbf = timestamp(claims.not_before)?;
        let iat = timestamp(claims.issued_at)?;
        self.check_times(exp, nbf, iat, now)?;

        let user = UserId::parse(&c.sub).map_err(|_| Error::InvalidClaims)?;
        let tenant = TenantId::parse(&c.tid).map_err(|_| Error::InvalidClaims)?;
        let role: Role = c.role.parse().map_err(|_| Error::InvalidClaims)?;
        if c.jti.is_empty()
            || c.jti.len() > MAX_JTI_LEN
            || !c.jti.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(Error::InvalidClaims);
        }
        Ok(AccessClaims {
            user,
            tenant,
            role,
            jti: c.jti.clone(),
            issued_at: iat,
            not_before: nbf,
            expires_at: exp,
            kid: key.kid().to_owned(),
        })
    }
}

/// A freshly issued access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The compact JWS.
    pub token: String,
    /// Seconds until it expires (the `expiresIn` of the token response).
    pub expires_in: i64,
    /// Its claims.
    pub claims: AccessClaims,
}

/// Signs access tokens with the ring's active key.
#[derive(Debug, Clone)]
pub struct Issuer {
    key: Key,
    issuer: String,
    audience: String,
    ttl_secs: i64,
}

impl Issuer {
    /// An issuer with the default 15-minute lifetime. Fails if the ring has no active key.
    pub fn new(
        keys: &KeyRing,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, Error> {
        let key = keys.active_key()?.clone();
        let (issuer, audience) = (issuer.into(), audience.into());
        if issuer.is_empty() || audience.is_empty() {
            return Err(Error::Config(
                "issuer and audience must not be empty".into(),
            ));
        }
        Ok(Self {
            key,
            issuer,
            audience,
            ttl_secs: DEFAULT_ACCESS_TTL_SECS,
        })
    }

    /// Sets the lifetime from configuration (`auth_access_ttl_secs`: seconds, 1 s ..= 24 h).
    pub fn with_configured_ttl(self, value: &str) -> Result<Self, Error> {
        let secs = crate::seconds_from_config("access token ttl", value, MAX_ACCESS_TTL_SECS)?;
        self.with_ttl(secs)
    }

    /// Sets the lifetime (1 s ..= 24 h).
    pub fn with_ttl(mut self, secs: i64) -> Result<Self, Error> {
        if !(1..=MAX_ACCESS_TTL_SECS).contains(&secs) {
            return Err(Error::Config(format!(
                "access token ttl must be 1..={MAX_ACCESS_TTL_SECS} seconds"
            )));
        }
        self.ttl_secs = secs;
        Ok(self)
    }

    /// The lifetime of issued tokens, seconds.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// The `kid` tokens are signed with.
    pub fn kid(&self) -> &str {
        self.key.kid()
    }

    /// Issues a token for this identity at `now` (`iat = nbf = now`, `exp = now + ttl`).
    pub fn issue(
        &self,
        user: UserId,
        tenant: TenantId,
        role: Role,
        now: i64,
    ) -> Result<IssuedToken, Error> {
        let exp = now.checked_add(self.ttl_secs).ok_or(Error::Signing)?;
        let at = |t: i64| DateTime::<Utc>::from_timestamp(t, 0).ok_or(Error::Signing);
        let jti = new_jti()?;
        let mut claims = Claims::new(WireClaims {
            iss: self.issuer.clone(),
            aud: Audience::One(self.audience.clone()),
            sub: user.to_string(),
            tid: tenant.to_string(),
            role: role.as_str().to_owned(),
            jti: jti.clone(),
        });
        claims.issued_at = Some(at(now)?);
        claims.not_before = Some(at(now)?);
        claims.expiration = Some(at(exp)?);
        let header = Header::empty()
            .with_key_id(self.key.kid())
            .with_token_type(TOKEN_TYPE);
        let token = match self.key.signing.as_ref().ok_or(Error::Signing)? {
            SigningMaterial::Ed25519(sk) => StrictEd25519.token(&header, &claims, sk),
            SigningMaterial::Es256(sk) => Es256.token(&header, &claims, sk),
        }
        .map_err(|_| Error::Signing)?;
        Ok(IssuedToken {
            token,
            expires_in: self.ttl_secs,
            claims: AccessClaims {
                user,
                tenant,
                role,
                jti,
                issued_at: now,
                not_before: now,
                expires_at: exp,
                kid: self.key.kid().to_owned(),
            },
        })
    }
}

fn new_jti() -> Result<String, Error> {
    let mut b = [0u8; 16];
    crate::random_bytes(&mut b)?;
    Ok(uuid::Builder::from_random_bytes(b)
        .into_uuid()
        .hyphenated()
        .to_string())
}

#[cfg(test)]
mod tests;
