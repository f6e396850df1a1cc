//! Tokens a component instance already verified.
//!
//! Spin 4 reuses a WASI P3 component instance for many requests (128 by default, 16 at once), and a
//! client sends the same access token with every request until it expires. [`VerifiedTokens`] wraps the
//! instance's [`Verifier`] and remembers the claims of tokens that passed full verification, so a
//! repeated token's signature (an Ed25519 verification: the largest part of the middleware's own time)
//! is checked once per instance instead of on every request.
//!
//! What a remembered token still goes through on every request: the size cap, and the time rules at the
//! current time (`exp`, `nbf`, `iat` with leeway), the only part of a verified token's validity that
//! changes. Everything else a verification decides (signature, `alg`, `kid`, `typ`, `iss`, `aud`,
//! identity claims) is a function of the token's bytes and the verifier, and both are the same: entries
//! are keyed by the SHA-256 of the exact token, and the cache owns its verifier, so a new key ring means
//! a new instance and an empty cache. Only successes are remembered (a forged token is verified, and
//! refused, every time), and memory is bounded: at most `capacity` entries, expired ones dropped first,
//! then the oldest. Nothing here relies on reuse: a fresh instance simply verifies.
//!
//! The lookup compares SHA-256 digests in a hash map; its timing reveals nothing about a token a caller
//! does not already hold.

use std::collections::{HashMap, VecDeque};

use sha2::{Digest, Sha256};

use crate::claims::{MAX_TOKEN_LEN, bearer_token};
use crate::{AccessClaims, Error, Verifier};

/// How many verified tokens an instance remembers by default (about 200 bytes each).
pub const DEFAULT_CAPACITY: usize = 256;

type Fingerprint = [u8; 32];

/// A [`Verifier`] with a bounded memory of the tokens it verified (see the module docs).
#[derive(Debug)]
pub struct VerifiedTokens {
    verifier: Verifier,
    capacity: usize,
    entries: HashMap<Fingerprint, AccessClaims>,
    /// Insertion order, oldest first: what is evicted when full.
    order: VecDeque<Fingerprint>,
}

impl VerifiedTokens {
    /// Remembers up to `capacity` tokens (at least 1) verified by `verifier`.
    pub fn new(verifier: Verifier, capacity: usize) -> Self {
        Self {
            verifier,
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// [`Verifier::verify_authorization`], remembering a success.
    pub fn verify_authorization(
        &mut self,
        authorization: Option<&[u8]>,
        now: i64,
    ) -> Result<AccessClaims, Error> {
        let token = bearer_token(authorization)?;
        self.verify(token, now)
    }

    /// [`Verifier::verify`], answered from memory for a token verified before (time rules re-checked).
    pub fn verify(&mut self, token: &str, now: i64) -> Result<AccessClaims, Error> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Error::TokenTooLarge);
        }
        let fingerprint: Fingerprint = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.entries.get(&fingerprint) {
            match self.verifier.check_times(
                claims.expires_at,
                claims.not_before,
                claims.issued_at,
                now,
            ) {
                Ok(()) => return Ok(claims.clone()),
                // No longer valid (or the clock went back before `nbf`): forget it, and let the full
                // verification give the answer.
                Err(_) => self.forget(&fingerprint),
            }
        }
        let claims = self.verifier.verify(token, now)?;
        self.remember(fingerprint, claims.clone(), now);
        Ok(claims)
    }

    fn forget(&mut self, fingerprint: &Fingerprint) {
        self.entries.remove(fingerprint);
        self.order.retain(|f| f != fingerprint);
    }

    fn remember(&mut self, fingerprint: Fingerprint, claims: AccessClaims, now: i64) {
        if self.entries.len() >= self.capacity {
            let verifier = &self.verifier;
            self.entries.retain(|_, c| {
                verifier
                    .check_times(c.expires_at, c.not_before, c.issued_at, now)
                    .is_ok()
            });
            let entries = &self.entries;
            self.order.retain(|f| entries.contains_key(f));
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
        if self.entries.insert(fingerprint, claims).is_none() {
            self.order.push_back(fingerprint);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{DEFAULT_LEEWAY_SECS, Issuer};
    use crate::keys::KeyRing;
    use crate::{Role, TenantId, UserId, VerifierConfig};

    const NOW: i64 = 1_800_000_000;

    struct Fixture {
        issuer: Issuer,
        ring: KeyRing,
    }

    fn fixture() -> Fixture {
        let ring = KeyRing::generate("k1").unwrap();
        let issuer = Issuer::new(&ring, "iss", "aud").unwrap();
        Fixture { issuer, ring }
    }

    fn verifier(ring: &KeyRing) -> Verifier {
        Verifier::new(ring, VerifierConfig::new("iss", "aud")).unwrap()
    }

    fn token(f: &Fixture, at: i64) -> String {
        issue(&f.issuer, at)
    }

    fn issue(issuer: &Issuer, at: i64) -> String {
        issuer
            .issue(
                UserId::parse("6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b").unwrap(),
                TenantId::parse("0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d").unwrap(),
                Role::User,
                at,
            )
            .unwrap()
            .token
    }

    #[test]
    fn a_repeated_token_is_answered_with_the_same_claims() {
        let f = fixture();
        let mut cache = VerifiedTokens::new(verifier(&f.ring), 8);
        let t = token(&f, NOW);
        let first = cache.verify(&t, NOW).unwrap();
        assert_eq!(cache.len(), 1);
        let again = cache.verify(&t, NOW + 60).unwrap();
        assert_eq!(first, again);
        assert_eq!(cache.len(), 1);
        assert_eq!(first, verifier(&f.ring).verify(&t, NOW).unwrap());
    }

    #[test]
    fn failures_are_never_remembered() {
        let f = fixture();
        let mut cache = VerifiedTokens::new(verifier(&f.ring), 8);
        let t = token(&f, NOW);
        // The same token with its last signature character changed: refused every time.
        let mut forged = t.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        for _ in 0..3 {
            assert!(cache.verify(&forged, NOW).is_err());
        }
        assert!(cache.is_empty());
        // Another key ring's token is refused even after a good one is remembered.
        cache.verify(&t, NOW).unwrap();
        let other = Issuer::new(&KeyRing::generate("k2").unwrap(), "iss", "aud").unwrap();
        assert_eq!(
            cache.verify(&issue(&other, NOW), NOW),
            Err(Error::UnknownKeyId)
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let f = fixture();
        let mut cache = VerifiedTokens::new(verifier(&f.ring), 8);
        let t = token(&f, NOW);
        let claims = cache.verify(&t, NOW).unwrap();
        let expired_at = claims.expires_at + DEFAULT_LEEWAY_SECS;
        assert!(cache.verify(&t, expired_at - 1).is_ok());
        assert_eq!(cache.verify(&t, expired_at), Err(Error::Expired));
        assert!(cache.is_empty(), "an expired token is forgotten");
        // And a clock set back before `nbf` is refused as for a fresh verification.
        let mut cache = VerifiedTokens::new(verifier(&f.ring), 8);
        cache.verify(&t, NOW).unwrap();
        assert_eq!(
            cache.verify(&t, NOW - DEFAULT_LEEWAY_SECS - 1),
            Err(Error::NotYetValid)
        );
    }

    #[test]
    fn memory_is_bounded_expired_first_then_oldest() {
        let f = fixture();
        let mut cache = VerifiedTokens::new(verifier(&f.ring), 3);
        let old = token(&f, NOW - 880); // expires (with leeway) before NOW + 100
        let a = token(&f, NOW);
        let b = token(&f, NOW);
        cache.verify(&old, NOW).unwrap();
        cache.verify(&a, NOW).unwrap();
        cache.verify(&b, NOW).unwrap();
        assert_eq!(cache.len(), 3);
        let c = token(&f, NOW + 100);
        cache.verify(&c, NOW + 100).unwrap();
        assert_eq!(cache.len(), 3);
        let key = |t: &str| -> Fingerprint { Sha256::digest(t.as_bytes()).into() };
        assert!(
            !cache.entries.contains_key(&key(&old)),
            "the expired one went"
        );
        assert!(cache.entries.contains_key(&key(&a)));
        let d = token(&f, NOW + 100);
        cache.verify(&d, NOW + 100).unwrap();
        assert_eq!(cache.len(), 3);
        assert!(!cache.entries.contains_key(&key(&a)), "then the oldest");
        assert_eq!(cache.order.len(), 3);
        for t in [&b, &c, &d] {
            assert!(cache.entries.contains_key(&key(t)));
        }
    }

    #[test]
    fn the_size_cap_applies_before_hashing() {
        let f = fixture();
        let mut cache = VerifiedTokens::new(verifier(&f.ring), 8);
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(cache.verify(&huge, NOW), Err(Error::TokenTooLarge));
        assert_eq!(
            cache.verify_authorization(None, NOW),
            Err(Error::MissingToken)
        );
    }
}
