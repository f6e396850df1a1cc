//! How the auth middleware hands the verified identity to the inner component so that no client
//! can forge it.
//!
//! The middleware, after verifying the bearer token:
//! 1. removes every inbound header whose name starts with `x-auth-` ([`is_auth_header`]), so
//!    nothing a client sent under that prefix reaches the inner component;
//! 2. sets `x-auth-context: v1.<payload>.<tag>` where `payload` is base64url(JSON
//!    `{"uid","tid","role","jti","rid","exp","texp"}`) and `tag` is base64url(HMAC-SHA256(key,
//!    "v1." + payload)). `key` is the internal context key: a secret variable both the middleware
//!    and the inner components read, never sent to clients;
//! 3. sets `x-request-id` to the same `rid`.
//!
//! The inner component calls [`AuthContext::from_headers`]: no header → [`Error::ContextMissing`]
//! (the request did not pass the middleware); several headers, bad shape, wrong MAC (forged or
//! tampered; compared in constant time) or a request id that differs from `rid` →
//! [`Error::ContextInvalid`]; past `exp` → [`Error::ContextExpired`]. `exp` is short
//! ([`CONTEXT_TTL_SECS`], and never past the token's own expiry), so a captured header is useless
//! soon after. Only an `Ok` is an authenticated request.
//!
//! The context key configuration string is one or more comma-separated keys, each 32..=128 bytes
//! as unpadded base64url (or 64..=256 hex digits). The first key signs; all verify, so the key can
//! be rotated by deploying `new,old` before dropping `old`.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::claims::AccessClaims;
use crate::{Error, Role, TenantId, UserId, b64, ct};

/// The header carrying the context.
pub const HEADER: &str = "x-auth-context";
/// Prefix of every header the middleware strips from inbound requests.
pub const STRIP_PREFIX: &str = "x-auth-";
/// How long a context is valid after the middleware created it.
pub const CONTEXT_TTL_SECS: i64 = 30;
/// Longest `exp - now` an inner component accepts (guards against a long-lived context).
pub const MAX_CONTEXT_TTL_SECS: i64 = 120;
/// Longest header value parsed.
pub const MAX_HEADER_LEN: usize = 2048;
/// Smallest context key, bytes.
pub const MIN_KEY_LEN: usize = 32;
/// Largest context key, bytes.
pub const MAX_KEY_LEN: usize = 128;
const VERSION: &str = "v1";
const REQUEST_ID_HEADER: &str = problem::REQUEST_ID_HEADER;

/// Whether the middleware must drop this inbound header (`x-auth-*`, any case).
pub fn is_auth_header(name: &str) -> bool {
    name.len() >= STRIP_PREFIX.len()
        && name[..STRIP_PREFIX.len()].eq_ignore_ascii_case(STRIP_PREFIX)
}

/// The internal MAC key(s). `Debug` shows only how many keys there are.
#[derive(Clone)]
pub struct ContextKey {
    keys: Vec<Vec<u8>>,
}

impl fmt::Debug for ContextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContextKey({} key(s))", self.keys.len())
    }
}

pub(crate) fn decode_key(s: &str) -> Option<Vec<u8>> {
    let bytes = if s.len().is_multiple_of(2)
        && s.bytes().all(|b| b.is_ascii_hexdigit())
        && s.len() >= 2 * MIN_KEY_LEN
    {
        hex::decode(s).ok()?
    } else {
        b64::decode(s)?
    };
    (MIN_KEY_LEN..=MAX_KEY_LEN)
        .contains(&bytes.len())
        .then_some(bytes)
}

impl ContextKey {
    /// Parses the configuration string (see the module docs).
    pub fn from_config(config: &str) -> Result<Self, Error> {
        let mut keys = Vec::new();
        for part in config.split(',').map(str::trim) {
            if part.is_empty() {
                continue;
            }
            keys.push(decode_key(part).ok_or_else(|| {
                Error::Config(format!(
                    "auth context key must be {MIN_KEY_LEN}..={MAX_KEY_LEN} bytes of unpadded base64url or hex"
                ))
            })?);
        }
        if keys.is_empty() {
            return Err(Error::Config("auth context key is empty".into()));
        }
        Ok(Self { keys })
    }

    /// A fresh random 32-byte key.
    pub fn generate() -> Result<Self, Error> {
        let mut k = vec![0u8; 32];
        crate::random_bytes(&mut k)?;
        Ok(Self { keys: vec![k] })
    }

    /// The configuration string for this key (a secret).
    pub fn to_config_string(&self) -> String {
        self.keys
            .iter()
            .map(b64::encode)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn tag(key: &[u8], signed: &str) -> [u8; 32] {
        // HMAC accepts keys of any length; ours are 32..=128 bytes.
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(signed.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// A verified identity as inner components see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthContext {
    /// The user (`sub`).
    #[serde(rename = "uid")]
    pub user: UserId,
    /// The tenant (`tid`).
    #[serde(rename = "tid")]
    pub tenant: TenantId,
    /// The role.
    pub role: Role,
    /// The access token's `jti`.
    pub jti: String,
    /// The request id the middleware assigned.
    #[serde(rename = "rid")]
    pub request_id: String,
    /// Unix seconds after which the context is refused.
    #[serde(rename = "exp")]
    pub expires_at: i64,
    /// The access token's own `exp` (Unix seconds): inner components report it (e.g. `/me`'s
    /// `expiresAt`) without seeing the token itself.
    #[serde(rename = "texp")]
    pub token_expires_at: i64,
}

impl AuthContext {
    /// The context for a request whose token verified to `claims`: valid for
    /// [`CONTEXT_TTL_SECS`], and never past the token's own expiry.
    pub fn from_claims(claims: &AccessClaims, request_id: &str, now: i64) -> Self {
        Self {
            user: claims.user,
            tenant: claims.tenant,
            role: claims.role,
            jti: claims.jti.clone(),
            request_id: request_id.to_owned(),
            expires_at: now.saturating_add(CONTEXT_TTL_SECS).min(claims.expires_at),
            token_expires_at: claims.expires_at,
        }
    }

    /// The `x-auth-context` header value, MAC'd with the first key.
    pub fn to_header_value(&self, key: &ContextKey) -> String {
        // Serializing strings, ids and an integer cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        let signed = format!("{VERSION}.{}", b64::encode(json));
        let tag = ContextKey::tag(&key.keys[0], &signed);
        format!("{signed}.{}", b64::encode(tag))
    }

    /// Verifies one header value at `now`.
    pub fn verify(value: &[u8], key: &ContextKey, now: i64) -> Result<Self, Error> {
        if value.len() > MAX_HEADER_LEN {
            return Err(Error::ContextInvalid);
        }
        let value = std::str::from_utf8(value).map_err(|_| Error::ContextInvalid)?;
        let (signed, tag_b64) = value.rsplit_once('.').ok_or(Error::ContextInvalid)?;
        let (version, payload_b64) = signed.split_once('.').ok_or(Error::ContextInvalid)?;
        if version != VERSION {
            return Err(Error::ContextInvalid);
        }
        let tag = b64::decode(tag_b64).ok_or(Error::ContextInvalid)?;
        // Check the MAC before looking at the payload; every key is tried, in constant time each.
        let mut mac_ok = false;
        for k in &key.keys {
            let expected_tag = ContextKey::tag(k, signed);
            mac_ok |= ct::eq(&expected_tag, &tag);
        }
        if !mac_ok {
            return Err(Error::ContextInvalid);
        }
        let payload = b64::decode(payload_b64).ok_or(Error::ContextInvalid)?;
        let ctx: AuthContext =
            serde_json::from_slice(&payload).map_err(|_| Error::ContextInvalid)?;
        if now > ctx.expires_at {
            return Err(Error::ContextExpired);
        }
        if ctx.expires_at > now.saturating_add(MAX_CONTEXT_TTL_SECS) {
            return Err(Error::ContextInvalid);
        }
        Ok(ctx)
    }

    /// Finds and verifies the context among a request's headers (any header type: pass
    /// `headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes()))` for an `http::HeaderMap`).
    /// Exactly one `x-auth-context` must be present; if an `x-request-id` is present it must
    /// equal the context's `rid`.
    pub fn from_headers<I, N, V>(headers: I, key: &ContextKey, now: i64) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let mut context: Option<V> = None;
        let mut request_ids: Vec<V> = Vec::new();
        for (name, value) in headers {
            let name = name.as_ref();
            if name.eq_ignore_ascii_case(HEADER) {
                if context.is_some() {
                    return Err(Error::ContextInvalid);
                }
                context = Some(value);
            } else if name.eq_ignore_ascii_case(REQUEST_ID_HEADER) {
                request_ids.push(value);
            }
        }
        let ctx = Self::verify(context.ok_or(Error::ContextMissing)?.as_ref(), key, now)?;
        if request_ids
            .iter()
            .any(|r| r.as_ref() != ctx.request_id.as_bytes())
        {
            return Err(Error::ContextInvalid);
        }
        Ok(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_750_000_000;

    fn key() -> ContextKey {
        ContextKey::from_config(&b64::encode([42u8; 32])).unwrap()
    }

    fn ctx() -> AuthContext {
        AuthContext {
            user: UserId::parse("6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b").unwrap(),
            tenant: TenantId::parse("0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d").unwrap(),
            role: Role::User,
            jti: "jti-1".into(),
            request_id: "req-1".into(),
            expires_at: NOW + CONTEXT_TTL_SECS,
            token_expires_at: NOW + 900,
        }
    }

    fn headers(ctx_value: &str) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("content-type", b"application/json".to_vec()),
            ("X-Auth-Context", ctx_value.as_bytes().to_vec()),
            ("x-request-id", b"req-1".to_vec()),
        ]
    }

    #[test]
    fn round_trip() {
        let v = ctx().to_header_value(&key());
        assert!(v.starts_with("v1."));
        assert_eq!(
            AuthContext::from_headers(headers(&v), &key(), NOW).unwrap(),
            ctx()
        );
        assert_eq!(
            AuthContext::verify(v.as_bytes(), &key(), NOW + CONTEXT_TTL_SECS).unwrap(),
            ctx()
        );
    }

    #[test]
    fn missing_means_not_authenticated() {
        let no_ctx: Vec<(&str, &[u8])> =
            vec![("x-request-id", b"req-1"), ("authorization", b"Bearer x")];
        assert_eq!(
            AuthContext::from_headers(no_ctx, &key(), NOW),
            Err(Error::ContextMissing)
        );
        let empty: Vec<(&str, &[u8])> = vec![];
        assert_eq!(
            AuthContext::from_headers(empty, &key(), NOW),
            Err(Error::ContextMissing)
        );
    }

    #[test]
    fn forged_with_another_key_or_by_hand() {
        let other = ContextKey::from_config(&b64::encode([7u8; 32])).unwrap();
        let forged = AuthContext {
            role: Role::Admin,
            ..ctx()
        }
        .to_header_value(&other);
        assert_eq!(
            AuthContext::from_headers(headers(&forged), &key(), NOW),
            Err(Error::ContextInvalid)
        );
        // A client who knows the format but not the key.
        let payload = b64::encode(serde_json::to_vec(&ctx()).unwrap());
        for tag in [
            String::new(),
            b64::encode([0u8; 32]),
            "x".into(),
            b64::encode([0u8; 31]),
        ] {
            let v = format!("v1.{payload}.{tag}");
            assert_eq!(
                AuthContext::verify(v.as_bytes(), &key(), NOW),
                Err(Error::ContextInvalid)
            );
        }
        for junk in ["", "v1", "v1.", "v1..", "v2.a.b", "Bearer x", "{\"uid\":1}"] {
            assert_eq!(
                AuthContext::verify(junk.as_bytes(), &key(), NOW),
                Err(Error::ContextInvalid),
                "{junk}"
            );
        }
    }

    #[test]
    fn tampered_payload_or_tag() {
        let good = ctx().to_header_value(&key());
        let (signed, tag) = good.rsplit_once('.').unwrap();
        // Swap in an admin payload under the user's tag.
        let admin_payload = b64::encode(
            serde_json::to_vec(&AuthContext {
                role: Role::Admin,
                ..ctx()
            })
            .unwrap(),
        );
        let v = format!("v1.{admin_payload}.{tag}");
        assert_eq!(
            AuthContext::verify(v.as_bytes(), &key(), NOW),
            Err(Error::ContextInvalid)
        );
        // Flip each byte of the value.
        for i in 0..good.len() {
            let mut b = good.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            if b == good.as_bytes() {
                continue;
            }
            assert!(AuthContext::verify(&b, &key(), NOW).is_err(), "byte {i}");
        }
        // Version downgrade.
        let v = format!("v0{}.{tag}", &signed[2..]);
        assert_eq!(
            AuthContext::verify(v.as_bytes(), &key(), NOW),
            Err(Error::ContextInvalid)
        );
    }

    #[test]
    fn stale_and_long_lived() {
        let v = ctx().to_header_value(&key());
        assert_eq!(
            AuthContext::verify(v.as_bytes(), &key(), NOW + CONTEXT_TTL_SECS + 1),
            Err(Error::ContextExpired)
        );
        let long = AuthContext {
            expires_at: NOW + 3600,
            ..ctx()
        }
        .to_header_value(&key());
        assert_eq!(
            AuthContext::verify(long.as_bytes(), &key(), NOW),
            Err(Error::ContextInvalid)
        );
    }

    #[test]
    fn duplicate_header_or_request_id_mismatch() {
        let v = ctx().to_header_value(&key());
        let mut h = headers(&v);
        h.push(("x-auth-context", v.as_bytes().to_vec()));
        assert_eq!(
            AuthContext::from_headers(h, &key(), NOW),
            Err(Error::ContextInvalid)
        );
        let mut h = headers(&v);
        h[2].1 = b"req-2".to_vec();
        assert_eq!(
            AuthContext::from_headers(h, &key(), NOW),
            Err(Error::ContextInvalid)
        );
        let h: Vec<(&str, &[u8])> = vec![("x-auth-context", v.as_bytes())];
        assert!(
            AuthContext::from_headers(h, &key(), NOW).is_ok(),
            "request id header is optional"
        );
    }

    #[test]
    fn from_claims_caps_expiry_at_token_expiry() {
        let claims = AccessClaims {
            user: ctx().user,
            tenant: ctx().tenant,
            role: Role::Admin,
            jti: "j".into(),
            issued_at: NOW - 100,
            not_before: NOW - 100,
            expires_at: NOW + 5,
            kid: "k1".into(),
        };
        assert_eq!(
            AuthContext::from_claims(&claims, "r", NOW).expires_at,
            NOW + 5
        );
        let claims = AccessClaims {
            expires_at: NOW + 900,
            ..claims
        };
        let c = AuthContext::from_claims(&claims, "r", NOW);
        assert_eq!(c.expires_at, NOW + CONTEXT_TTL_SECS);
        assert_eq!(
            c.token_expires_at,
            NOW + 900,
            "the token's own expiry is carried"
        );
        assert_eq!(c.role, Role::Admin);
        assert_eq!(c.request_id, "r");
    }

    #[test]
    fn key_rotation_and_config() {
        let old = ContextKey::from_config(&b64::encode([1u8; 32])).unwrap();
        let new = ContextKey::from_config(&b64::encode([2u8; 32])).unwrap();
        let both = ContextKey::from_config(&format!(
            "{}, {}",
            b64::encode([2u8; 32]),
            b64::encode([1u8; 32])
        ))
        .unwrap();
        let by_old = ctx().to_header_value(&old);
        let by_both = ctx().to_header_value(&both);
        assert!(AuthContext::verify(by_old.as_bytes(), &both, NOW).is_ok());
        assert!(
            AuthContext::verify(by_both.as_bytes(), &new, NOW).is_ok(),
            "first key signs"
        );
        assert!(ContextKey::from_config("").is_err());
        assert!(
            ContextKey::from_config(&b64::encode([1u8; 16])).is_err(),
            "too short"
        );
        assert!(ContextKey::from_config("not base64 !").is_err());
        assert!(ContextKey::from_config(&hex::encode([3u8; 32])).is_ok());
        let generated = ContextKey::generate().unwrap();
        let again = ContextKey::from_config(&generated.to_config_string()).unwrap();
        let v = ctx().to_header_value(&generated);
        assert!(AuthContext::verify(v.as_bytes(), &again, NOW).is_ok());
        assert!(!format!("{generated:?}").contains(&generated.to_config_string()));
    }

    #[test]
    fn strip_rule() {
        for h in [
            "x-auth-context",
            "X-Auth-Context",
            "x-auth-user",
            "X-AUTH-ROLE",
            "x-auth-",
        ] {
            assert!(is_auth_header(h), "{h}");
        }
        for h in [
            "x-authorization",
            "authorization",
            "x-request-id",
            "x-aut",
            "",
        ] {
            assert!(!is_auth_header(h), "{h}");
        }
    }

    proptest! {
        #[test]
        fn header_round_trip(uid in any::<u128>(), tid in any::<u128>(), admin in any::<bool>(),
                             jti in "[A-Za-z0-9-]{1,64}", rid in "[A-Za-z0-9._:-]{1,128}", ttl in 0i64..=CONTEXT_TTL_SECS) {
            let c = AuthContext {
                user: UserId::from_uuid(uuid::Uuid::from_u128(uid)),
                tenant: TenantId::from_uuid(uuid::Uuid::from_u128(tid)),
                role: if admin { Role::Admin } else { Role::User },
                jti, request_id: rid, expires_at: NOW + ttl, token_expires_at: NOW + 900,
            };
            let v = c.to_header_value(&key());
            prop_assert!(v.len() <= MAX_HEADER_LEN);
            prop_assert_eq!(AuthContext::verify(v.as_bytes(), &key(), NOW).unwrap(), c);
        }

        #[test]
        fn verify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            prop_assert!(AuthContext::verify(&bytes, &key(), NOW).is_err());
        }
    }
}
