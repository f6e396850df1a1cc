//! Password hashing: argon2id PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), the
//! `argon2` crate's recommended defaults (OWASP's first argon2id option). Salts are 16 random bytes.
//!
//! [`verify`] takes the stored hash as an `Option`: for an unknown email the caller passes `None`
//! and a fixed dummy hash with the same parameters is verified instead, so "no such user" and
//! "wrong password" cost the same time and give the same answer. The final comparison happens
//! inside `argon2`, in constant time (`subtle`).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::Error;

/// Longest password hashed or verified (bytes); longer input is refused (after the dummy work).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// A valid hash of a random password nobody knows (it was discarded), with the same parameters
/// as [`hash`] uses. Verified for unknown users. A test checks the parameters still match.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$/Q17cOntr0iH4G4A0sqROQ$PvO7GMKhLuC9ugp+nfq13H0QRx9fZuR04KRzxT9t1Qc";

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// Hashes a password into a PHC string for storage.
pub fn hash(password: &str) -> Result<String, Error> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(Error::PasswordHash);
    }
    let mut salt = [0u8; 16];
    crate::random_bytes(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| Error::PasswordHash)?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| Error::PasswordHash)
}

/// Whether `password` matches `stored`. `None` (unknown user), an unparsable stored hash, an
/// empty or over-long password all do the same work against [`DUMMY_HASH`] and return `false`.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let usable_input = !password.is_empty() && password.len() <= MAX_PASSWORD_LEN;
    let parsed = stored.and_then(|s| PasswordHash::new(s).ok());
    let (target, real) = match parsed {
        Some(h) => (h, true),
        // The constant is checked by a test; if it ever failed to parse there would be nothing to
        // verify against, and the answer would still be `false`.
        None => match PasswordHash::new(DUMMY_HASH) {
            Ok(h) => (h, false),
            Err(_) => return false,
        },
    };
    let input = &password.as_bytes()[..password.len().min(MAX_PASSWORD_LEN)];
    let matched = hasher().verify_password(input, &target).is_ok();
    matched && real && usable_input
}

/// Whether a stored hash should be replaced (after a successful login) because it was made with
/// other parameters or another algorithm than [`hash`] uses now.
pub fn needs_rehash(stored: &str) -> bool {
    let Ok(h) = PasswordHash::new(stored) else {
        return true;
    };
    let current = Params::default();
    let Ok(params) = Params::try_from(&h) else {
        return true;
    };
    h.algorithm.as_str() != "argon2id"
        || h.version != Some(Version::V0x13 as u32)
        || params.m_cost() != current.m_cost()
        || params.t_cost() != current.t_cost()
        || params.p_cost() != current.p_cost()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse battery staple", Some(&h)));
        assert!(!verify("correct horse battery stapler", Some(&h)));
        assert!(!verify("", Some(&h)));
        assert_ne!(hash("same").unwrap(), hash("same").unwrap(), "salted");
        assert!(!needs_rehash(&h));
    }

    #[test]
    fn unknown_user_and_garbage_hashes_fail_the_same_way() {
        assert!(!verify("anything", None));
        assert!(!verify("anything", Some("")));
        assert!(!verify("anything", Some("plaintext-password")));
        assert!(!verify(
            "anything",
            Some("$argon2id$v=19$m=19456,t=2,p=1$bad")
        ));
        assert!(!verify(&"x".repeat(MAX_PASSWORD_LEN + 1), None));
        assert!(hash(&"x".repeat(MAX_PASSWORD_LEN + 1)).is_err());
    }

    #[test]
    fn dummy_hash_matches_current_parameters() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(
            !needs_rehash(DUMMY_HASH),
            "regenerate DUMMY_HASH when the parameters change"
        );
        assert!(needs_rehash(
            "$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHRzYWx0$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo"
        ));
        assert!(needs_rehash("nonsense"));
    }

    /// Guards the dummy-hash path: without it an unknown email would answer ~1000x faster. The
    /// runs are interleaved so machine load hits both sides alike; the band is wide on purpose.
    #[test]
    fn unknown_user_costs_about_as_much_as_a_wrong_password() {
        let h = hash("pw").unwrap();
        let (mut known, mut unknown) = (0.0, 0.0);
        for _ in 0..3 {
            let t = std::time::Instant::now();
            assert!(!verify("wrong", Some(&h)));
            known += t.elapsed().as_secs_f64();
            let t = std::time::Instant::now();
            assert!(!verify("wrong", None));
            unknown += t.elapsed().as_secs_f64();
        }
        let ratio = known / unknown;
        assert!(
            (0.25..4.0).contains(&ratio),
            "known {known:.3}s vs unknown {unknown:.3}s"
        );
    }
}
