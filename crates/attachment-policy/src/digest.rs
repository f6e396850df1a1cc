//! Content hashes and RFC 9530 `Repr-Digest`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::PolicyError;

/// Lowercase hex SHA-256 of the content (`contentHash`, `attachment_blobs.content_sha256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// From a finished SHA-256.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }

    /// Hashes `data` at once (tests, small bodies).
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// From a finished streaming hasher.
    pub fn finish(h: Sha256) -> Self {
        Self(h.finalize().into())
    }

    /// Parses 64 lowercase hex digits (what we store).
    pub fn parse_hex(s: &str) -> Option<Self> {
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }

    /// The raw digest.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

/// The `sha-256` member of a `Repr-Digest` header (RFC 9530: a structured-field dictionary of
/// byte sequences, e.g. `sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-512=:...:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReprDigest(pub [u8; 32]);

impl ReprDigest {
    /// Parses the header. `Ok(None)` when it has no `sha-256` member (other algorithms are
    /// ignored); a malformed dictionary or a `sha-256` value that is not 32 bytes of base64 is
    /// `400 bad_request`.
    pub fn parse(header: &str) -> Result<Option<Self>, PolicyError> {
        const BAD: PolicyError = PolicyError::BadRequest("Malformed Repr-Digest header.");
        let mut found = None;
        for member in header.split(',') {
            let member = member.trim();
            if member.is_empty() {
                return Err(BAD);
            }
            let (key, value) = member.split_once('=').ok_or(BAD)?;
            let key = key.trim();
            if key.is_empty()
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b))
            {
                return Err(BAD);
            }
            // Parameters (`;a=b`) are allowed by structured fields; ignore them.
            let value = value.split(';').next().unwrap_or("").trim();
            let inner = value
                .strip_prefix(':')
                .and_then(|v| v.strip_suffix(':'))
                .ok_or(BAD)?;
            let bytes = STANDARD.decode(inner).map_err(|_| BAD)?;
            if key == "sha-256" {
                let arr: [u8; 32] = bytes.try_into().map_err(|_| BAD)?;
                if found.is_some() {
                    return Err(BAD);
                }
                found = Some(Self(arr));
            }
        }
        Ok(found)
    }

    /// Whether the content with this hash matches; `422 digest_mismatch` otherwise.
    pub fn verify(&self, hash: &ContentHash) -> Result<(), PolicyError> {
        // Not secret material: a plain comparison is fine.
        if &self.0 == hash.bytes() {
            Ok(())
        } else {
            Err(PolicyError::DigestMismatch)
        }
    }

    /// As a content hash (to look up content the caller already owns).
    pub fn as_hash(&self) -> ContentHash {
        ContentHash(self.0)
    }

    /// The header value for `hash` (`sha-256=:<base64>:`).
    pub fn header_for(hash: &ContentHash) -> String {
        format!("sha-256=:{}:", STANDARD.encode(hash.bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash() {
        let h = ContentHash::of(b"abc");
        assert_eq!(
            h.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(ContentHash::parse_hex(&h.hex()), Some(h));
        assert!(ContentHash::parse_hex(&h.hex().to_uppercase()).is_none());
        assert!(ContentHash::parse_hex("abc").is_none());
        let mut s = Sha256::new();
        s.update(b"a");
        s.update(b"bc");
        assert_eq!(ContentHash::finish(s), h);
    }

    #[test]
    fn repr_digest_rfc9530_example() {
        // RFC 9530 §3: {"hello": "world"} → sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:
        let d = ReprDigest::parse("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:")
            .unwrap()
            .unwrap();
        assert!(
            d.verify(&ContentHash::of(b"{\"hello\": \"world\"}"))
                .is_ok()
        );
        assert_eq!(
            d.verify(&ContentHash::of(b"x")),
            Err(PolicyError::DigestMismatch)
        );
        assert_eq!(
            ReprDigest::header_for(&d.as_hash()),
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
        );
    }

    #[test]
    fn repr_digest_members_and_errors() {
        let sha512 = STANDARD.encode([7u8; 64]);
        let h =
            format!("sha-512=:{sha512}:, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:");
        assert!(ReprDigest::parse(&h).unwrap().is_some());
        assert_eq!(
            ReprDigest::parse(&format!("sha-512=:{sha512}:")).unwrap(),
            None
        );
        for bad in [
            "",
            "sha-256",
            "sha-256=abc",
            "sha-256=:not base64!:",
            "sha-256=:AAAA:",
            "SHA-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:,",
        ] {
            assert!(ReprDigest::parse(bad).is_err(), "{bad:?}");
        }
    }
}
