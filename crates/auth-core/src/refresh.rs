//! Refresh tokens: opaque, random, stored only as a hash, rotated on every use, grouped in
//! families so that presenting an already-rotated token revokes every token of the same login.
//!
//! * Token: 32 random bytes as unpadded base64url (43 chars). The client holds it; the database
//!   holds [`RefreshToken::storage_hash`] (lowercase hex SHA-256, what `refresh_tokens.token_hash`
//!   requires). A plain hash suffices: the input has 256 bits of entropy, so there is nothing to
//!   brute-force, and lookup by hash is an indexed equality search.
//! * Family: a login starts a family ([`FamilyId`]); each rotation issues the next token in the
//!   same family.
//! * The rotation itself is one atomic database call, `auth_rotate_refresh_token(old_hash,
//!   new_hash, new_expires_at_ms)` (migration 0002), which locks the presented row and decides.
//!   [`RotateOutcome`] reads its `outcome` column and says what to answer; on
//!   [`RotateOutcome::ReuseDetected`] the transaction must be committed (the family revocation
//!   must stick) and a security event written.
//!
//! * Successor: the next token is not random but derived from the presented one with a server key
//!   ([`SuccessorKey`], `auth_refresh_key`): HMAC-SHA-256, so it has the same shape and, without
//!   the key, is as unguessable as a random one. Two tabs refreshing with the same token at once then
//!   get the same successor, which the rotation accepts within its grace window ([`Lifetimes`],
//!   migration 0013) instead of treating the second as reuse.
//! * Lifetimes: each token lives [`Lifetimes::ttl_secs`] (renewed by rotation); a family ends
//!   [`Lifetimes::family_max_secs`] after its login, whatever happens.
//!
//! Database timestamps are epoch **milliseconds**; [`expires_at_ms`] converts.

use std::fmt;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use problem::Problem;

use hmac::{Hmac, KeyInit, Mac};

use crate::{Error, b64, ct};

/// Random bytes in a refresh token.
pub const TOKEN_BYTES: usize = 32;
/// Length of the encoded token.
pub const TOKEN_LEN: usize = 43;
/// Default lifetime of one refresh token (30 days), renewed by each rotation.
pub const DEFAULT_REFRESH_TTL_SECS: i64 = 30 * 24 * 60 * 60;

/// A refresh token as the client sees it. A secret: `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(..)")
    }
}

impl RefreshToken {
    /// A new random token.
    pub fn generate() -> Result<Self, Error> {
        let mut b = [0u8; TOKEN_BYTES];
        crate::random_bytes(&mut b)?;
        Ok(Self(b64::encode(b)))
    }

    /// Accepts only the shape we issue (43 base64url chars decoding to 32 bytes), so garbage is
    /// refused before any database lookup.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.len() != TOKEN_LEN {
            return Err(Error::InvalidRefreshToken);
        }
        match b64::decode(s) {
            Some(b) if b.len() == TOKEN_BYTES => Ok(Self(s.to_owned())),
            _ => Err(Error::InvalidRefreshToken),
        }
    }

    /// The token to send to the client.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The token that succeeds this one on rotation under `key`.
    pub fn successor(&self, key: &SuccessorKey) -> Self {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&key.0).expect("HMAC takes any key length");
        mac.update(SUCCESSOR_CONTEXT);
        mac.update(self.0.as_bytes());
        let bytes: [u8; TOKEN_BYTES] = mac.finalize().into_bytes().into();
        Self(b64::encode(bytes))
    }

    /// What the database stores and looks up.
    pub fn storage_hash(&self) -> TokenHash {
        TokenHash(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

/// Domain separation of the successor MAC, so the key can never produce another MAC of ours.
const SUCCESSOR_CONTEXT: &[u8] = b"attachments refresh successor v1\0";

/// The server key successors are derived with (`auth_refresh_key`: 32..=128 bytes, unpadded
/// base64url or hex, as `keygen context-key` prints). A secret: `Debug` does not print it.
/// Changing it only means a refresh racing the change within the grace window counts as reuse.
#[derive(Clone)]
pub struct SuccessorKey(Vec<u8>);

impl fmt::Debug for SuccessorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SuccessorKey(..)")
    }
}

impl SuccessorKey {
    /// Parses the configuration string.
    pub fn from_config(config: &str) -> Result<Self, Error> {
        crate::context::decode_key(config.trim())
            .map(Self)
            .ok_or_else(|| {
                Error::Config(format!(
                    "auth refresh key must be {}..={} bytes of unpadded base64url or hex",
                    crate::context::MIN_KEY_LEN,
                    crate::context::MAX_KEY_LEN
                ))
            })
    }
}

/// Longest absolute family lifetime configuration may set (two years).
pub const MAX_FAMILY_SECS: i64 = 2 * 365 * 24 * 60 * 60;
/// Default absolute family lifetime (90 days): a login lasts at most this long.
pub const DEFAULT_FAMILY_MAX_SECS: i64 = 90 * 24 * 60 * 60;
/// Longest grace window configuration may set.
pub const MAX_GRACE_SECS: i64 = 60;
/// Default grace window for a rotated token presented again with the same successor.
pub const DEFAULT_GRACE_SECS: i64 = 10;

/// How long refresh tokens and their families live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// One token, renewed by each rotation (`auth_refresh_ttl_secs`).
    pub ttl_secs: i64,
    /// A family, from its login (`auth_refresh_family_max_secs`).
    pub family_max_secs: i64,
    /// The grace window after a rotation (`auth_refresh_grace_secs`; 0 turns it off).
    pub grace_secs: i64,
}

impl Lifetimes {
    /// Reads the three settings.
    pub fn from_config(ttl: &str, family_max: &str, grace: &str) -> Result<Self, Error> {
        let grace_secs = match grace.trim().parse::<i64>() {
            Ok(n) if (0..=MAX_GRACE_SECS).contains(&n) => n,
            _ => {
                return Err(Error::Config(format!(
                    "refresh grace must be 0..={MAX_GRACE_SECS} seconds"
                )));
            }
        };
        Ok(Self {
            ttl_secs: ttl_from_config(ttl)?,
            family_max_secs: crate::seconds_from_config(
                "refresh family lifetime",
                family_max,
                MAX_FAMILY_SECS,
            )?,
            grace_secs,
        })
    }

    /// The first token of a login: its expiry (epoch ms), capped by the family's end.
    pub fn first_expires_at_ms(&self, now: i64) -> i64 {
        expires_at_ms(now, self.ttl_secs.min(self.family_max_secs))
    }
}

/// Lowercase hex SHA-256 of a refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    /// The hex string (64 chars).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares with a stored hash in constant time (for code paths that compare in memory
    /// rather than by database lookup).
    pub fn matches(&self, stored: &str) -> bool {
        ct::eq(
            self.0.as_bytes(),
            stored.trim().to_ascii_lowercase().as_bytes(),
        )
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The family of refresh tokens descended from one login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FamilyId(Uuid);

impl FamilyId {
    /// A new random family id (at login).
    pub fn generate() -> Result<Self, Error> {
        let mut b = [0u8; 16];
        crate::random_bytes(&mut b)?;
        Ok(Self(uuid::Builder::from_random_bytes(b).into_uuid()))
    }

    /// Wraps a stored id.
    pub const fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The inner UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl fmt::Display for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// The `outcome` of `auth_rotate_refresh_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The successor was stored: answer 200 with the new pair.
    Rotated,
    /// An already-rotated token came back: the family is now revoked. Commit, write the security
    /// event `refresh_token_reuse`, answer 401.
    ReuseDetected,
    /// Revoked (logout, earlier reuse, admin): 401.
    Revoked,
    /// Past its expiry: 401.
    Expired,
    /// The user or tenant is disabled (the token was revoked): 401.
    UserInactive,
    /// No such token: 401.
    Unknown,
}

impl RotateOutcome {
    /// Parses the database's outcome string; anything unexpected is treated as `Unknown` (refused).
    pub fn from_db(outcome: &str) -> Self {
        match outcome {
            "rotated" => Self::Rotated,
            "reuse_detected" => Self::ReuseDetected,
            "revoked" => Self::Revoked,
            "expired" => Self::Expired,
            "user_inactive" => Self::UserInactive,
            _ => Self::Unknown,
        }
    }

    /// Whether a new pair may be returned.
    pub fn is_success(self) -> bool {
        self == Self::Rotated
    }

    /// Whether this must be written to the audit log as a security event.
    pub fn is_security_event(self) -> bool {
        self == Self::ReuseDetected
    }

    /// The problem for a refusal (every refusal looks the same to the client), `None` on success.
    pub fn problem(self) -> Option<Problem> {
        (!self.is_success()).then(Problem::invalid_token)
    }
}

/// Longest refresh-token lifetime configuration may set (one year).
pub const MAX_REFRESH_TTL_SECS: i64 = 365 * 24 * 60 * 60;

/// The refresh-token lifetime from configuration (`auth_refresh_ttl_secs`): seconds,
/// `1..=`[`MAX_REFRESH_TTL_SECS`].
pub fn ttl_from_config(value: &str) -> Result<i64, Error> {
    crate::seconds_from_config("refresh token ttl", value, MAX_REFRESH_TTL_SECS)
}

/// `expires_at` (epoch milliseconds) of a refresh token issued at `now` (Unix seconds).
pub fn expires_at_ms(now: i64, ttl_secs: i64) -> i64 {
    now.saturating_add(ttl_secs).saturating_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SuccessorKey {
        SuccessorKey::from_config(&hex::encode([byte; 32])).unwrap()
    }

    #[test]
    fn a_successor_is_a_well_formed_token_fixed_by_token_and_key() {
        let t = RefreshToken::generate().unwrap();
        let s = t.successor(&key(1));
        assert_eq!(RefreshToken::parse(s.as_str()).unwrap(), s);
        assert_eq!(
            t.successor(&key(1)),
            s,
            "the same token and key give the same successor"
        );
        assert_ne!(
            t.successor(&key(2)),
            s,
            "another key gives another successor"
        );
        assert_ne!(s, t);
        assert_ne!(s.successor(&key(1)), s);
        assert_eq!(format!("{:?}", key(1)), "SuccessorKey(..)");
    }

    #[test]
    fn successor_keys_and_lifetimes_are_bounded() {
        assert!(SuccessorKey::from_config("short").is_err());
        assert!(SuccessorKey::from_config(&hex::encode([7u8; 16])).is_err());
        let l = Lifetimes::from_config("2592000", "7776000", "10").unwrap();
        assert_eq!(
            (l.ttl_secs, l.family_max_secs, l.grace_secs),
            (2_592_000, 7_776_000, 10)
        );
        assert!(Lifetimes::from_config("60", "60", "0").is_ok());
        assert!(Lifetimes::from_config("60", "60", "61").is_err());
        assert!(Lifetimes::from_config("60", "0", "1").is_err());
        assert!(Lifetimes::from_config("60", "60", "-1").is_err());
        let short = Lifetimes::from_config("600", "60", "0").unwrap();
        assert_eq!(short.first_expires_at_ms(1_000), 1_060_000);
    }

    #[test]
    fn tokens_are_random_and_well_formed() {
        let a = RefreshToken::generate().unwrap();
        let b = RefreshToken::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), TOKEN_LEN);
        assert_eq!(RefreshToken::parse(a.as_str()).unwrap(), a);
        assert_eq!(format!("{a:?}"), "RefreshToken(..)");
        for bad in [
            "",
            "abc",
            &"A".repeat(44),
            &format!("{}=", &a.as_str()[..42]),
            &"!".repeat(43),
        ] {
            assert_eq!(
                RefreshToken::parse(bad),
                Err(Error::InvalidRefreshToken),
                "{bad}"
            );
        }
    }

    #[test]
    fn storage_hash_is_sha256_hex() {
        let t = RefreshToken::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let h = t.storage_hash();
        assert_eq!(h.as_str().len(), 64);
        assert_eq!(
            h.as_str(),
            hex::encode(Sha256::digest(
                b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            ))
        );
        assert!(h.matches(h.as_str()));
        assert!(h.matches(&h.as_str().to_uppercase()));
        assert!(!h.matches(&RefreshToken::generate().unwrap().storage_hash().to_string()));
        assert!(!h.matches(""));
    }

    #[test]
    fn rotate_outcomes() {
        assert!(RotateOutcome::from_db("rotated").is_success());
        assert!(RotateOutcome::from_db("rotated").problem().is_none());
        assert!(RotateOutcome::from_db("reuse_detected").is_security_event());
        for o in [
            "reuse_detected",
            "revoked",
            "expired",
            "user_inactive",
            "unknown",
            "",
            "ROTATED",
        ] {
            let r = RotateOutcome::from_db(o);
            assert!(!r.is_success(), "{o}");
            assert_eq!(r.problem().unwrap().code(), problem::Code::InvalidToken);
        }
        assert_eq!(RotateOutcome::from_db("surprise"), RotateOutcome::Unknown);
        assert_eq!(
            expires_at_ms(1_750_000_000, DEFAULT_REFRESH_TTL_SECS),
            (1_750_000_000 + 2_592_000) * 1000
        );
    }

    #[test]
    fn the_ttl_from_configuration_is_bounded() {
        assert_eq!(ttl_from_config("2592000"), Ok(2_592_000));
        assert_eq!(ttl_from_config(" 60 "), Ok(60));
        assert_eq!(ttl_from_config("31536000"), Ok(MAX_REFRESH_TTL_SECS));
        for bad in ["0", "-1", "31536001", "", "30d", "1.5"] {
            assert!(
                matches!(ttl_from_config(bad), Err(Error::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn family_ids_are_distinct() {
        assert_ne!(FamilyId::generate().unwrap(), FamilyId::generate().unwrap());
    }
}
