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

/// The `sha-256` member of a `Repr-Digest` header.
///
/// RFC 9530 §2: the field is an RFC 8941 Dictionary whose keys name algorithms and whose values are
/// Byte Sequences. Exactly this grammar is accepted (openapi.yaml's `Repr-Digest` pattern is the
/// same language, and `tests/repr_digest_cases.txt` holds both to it):
///
/// ```text
/// Repr-Digest = *SP [ member *( OWS "," OWS member ) OWS ]   ; empty: no digest
/// member      = key "=" byte-sequence *( ";" *SP key [ "=" bare-item ] )
/// key         = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )
/// bare-item   = integer / decimal / string / token / byte-sequence / boolean   ; RFC 8941 §3.3
/// byte-sequence = ":" base64 ":"    ; RFC 4648, "=" padding optional (RFC 8941 §3.3.5)
/// ```
///
/// A member named twice counts as its last value (RFC 8941 §3.2); parameters are read and
/// ignored; members other than `sha-256` are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReprDigest(pub [u8; 32]);

const MALFORMED: PolicyError = PolicyError::BadRequest("Malformed Repr-Digest header.");

/// A cursor over the header's bytes (the grammar is ASCII).
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += usize::from(hit);
        hit
    }

    fn expect(&mut self, c: u8) -> Result<(), PolicyError> {
        if self.eat(c) { Ok(()) } else { Err(MALFORMED) }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &[u8] {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn skip_sp(&mut self) {
        self.take_while(|c| c == b' ');
    }

    fn skip_ows(&mut self) {
        self.take_while(|c| c == b' ' || c == b'\t');
    }

    /// RFC 8941 §4.2.3.3.
    fn key(&mut self) -> Result<&[u8], PolicyError> {
        if !self
            .peek()
            .is_some_and(|c| c.is_ascii_lowercase() || c == b'*')
        {
            return Err(MALFORMED);
        }
        Ok(self
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.*".contains(&c)))
    }

    /// RFC 8941 §4.2.7, with the padding rules of RFC 4648 made exact: `=` only at the end, and
    /// only as much as completes the last group.
    fn byte_sequence(&mut self) -> Result<Vec<u8>, PolicyError> {
        self.expect(b':')?;
        let data = self
            .take_while(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
            .to_vec();
        let pad = self.take_while(|c| c == b'=').len();
        self.expect(b':')?;
        let valid = match (data.len() % 4, pad) {
            (1, _) => false,
            (_, 0) => true,
            (2, 2) | (3, 1) => true,
            _ => false,
        };
        if !valid {
            return Err(MALFORMED);
        }
        BASE64_LENIENT.decode(&data).map_err(|_| MALFORMED)
    }

    /// RFC 8941 §4.2.4 (numbers: §4.2.4.1).
    fn number(&mut self) -> Result<(), PolicyError> {
        self.eat(b'-');
        let int = self.take_while(|c| c.is_ascii_digit()).len();
        if int == 0 {
            return Err(MALFORMED);
        }
        if self.eat(b'.') {
            let frac = self.take_while(|c| c.is_ascii_digit()).len();
            if int > 12 || !(1..=3).contains(&frac) {
                return Err(MALFORMED);
            }
        } else if int > 15 {
            return Err(MALFORMED);
        }
        Ok(())
    }

    /// RFC 8941 §4.2.5.
    fn string(&mut self) -> Result<(), PolicyError> {
        self.expect(b'"')?;
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.i += 1;
                    if !(self.eat(b'"') || self.eat(b'\\')) {
                        return Err(MALFORMED);
                    }
                }
                Some(0x20..=0x7e) => self.i += 1,
                _ => return Err(MALFORMED),
            }
        }
    }

    /// RFC 8941 §4.2.3.1.
    fn bare_item(&mut self) -> Result<(), PolicyError> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'"') => self.string(),
            Some(b':') => self.byte_sequence().map(drop),
            Some(b'?') => {
                self.i += 1;
                if self.eat(b'0') || self.eat(b'1') {
                    Ok(())
                } else {
                    Err(MALFORMED)
                }
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'*' => {
                self.take_while(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&c));
                Ok(())
            }
            _ => Err(MALFORMED),
        }
    }

    /// RFC 8941 §4.2.3.2, values read and dropped.
    fn parameters(&mut self) -> Result<(), PolicyError> {
        while self.eat(b';') {
            self.skip_sp();
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Ok(())
    }
}

/// Standard base64 without padding, tolerant of non-zero trailing bits (RFC 8941 §3.3.5 asks
/// parsers not to be strict about the encoding's tail).
const BASE64_LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

impl ReprDigest {
    /// Parses the header (the grammar above). `Ok(None)` when it has no `sha-256` member;
    /// `400 bad_request` for anything outside the grammar; `422 digest_mismatch` for a `sha-256`
    /// value that is not 32 bytes (it cannot be the content's digest).
    pub fn parse(header: &str) -> Result<Option<Self>, PolicyError> {
        let mut c = Cursor {
            s: header.as_bytes(),
            i: 0,
        };
        c.skip_sp();
        let mut sha256 = None;
        while !c.at_end() {
            let is_sha256 = c.key()? == b"sha-256";
            c.expect(b'=')?;
            let value = c.byte_sequence()?;
            c.parameters()?;
            if is_sha256 {
                sha256 = Some(value);
            }
            c.skip_ows();
            if c.at_end() {
                break;
            }
            c.expect(b',')?;
            c.skip_ows();
            if c.at_end() {
                return Err(MALFORMED);
            }
        }
        match sha256 {
            None => Ok(None),
            Some(v) => <[u8; 32]>::try_from(v)
                .map(|a| Some(Self(a)))
                .map_err(|_| PolicyError::DigestMismatch),
        }
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
        assert_eq!(ReprDigest::parse("").unwrap(), None, "an empty dictionary");
        // The last of a repeated member counts (RFC 8941 §3.2).
        let last = ReprDigest::parse(
            "sha-256=:AAAA:, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
        )
        .unwrap()
        .unwrap();
        assert!(
            last.verify(&ContentHash::of(b"{\"hello\": \"world\"}"))
                .is_ok()
        );
        // Well-formed, but not 32 bytes: it cannot be the content's digest.
        assert_eq!(
            ReprDigest::parse("sha-256=:AAAA:"),
            Err(PolicyError::DigestMismatch)
        );
        for bad in [
            "sha-256",
            "sha-256=abc",
            "sha-256=:not base64!:",
            "SHA-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:,",
        ] {
            assert!(
                matches!(ReprDigest::parse(bad), Err(PolicyError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }

    /// The shared list of accepted and refused header values (openapi.yaml's pattern is checked
    /// against the same list by scripts/check-openapi).
    #[test]
    fn repr_digest_cases() {
        let cases: serde_json::Value =
            serde_json::from_str(include_str!("../tests/repr_digest_cases.json")).unwrap();
        let list = |k: &str| -> Vec<String> {
            cases[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        for v in list("accept") {
            assert!(
                !matches!(ReprDigest::parse(&v), Err(PolicyError::BadRequest(_))),
                "should be accepted: {v:?}"
            );
        }
        for v in list("refuse") {
            assert!(
                matches!(ReprDigest::parse(&v), Err(PolicyError::BadRequest(_))),
                "should be refused: {v:?}"
            );
        }
    }

    proptest::proptest! {
        /// Whatever the header, the parser answers (never panics), and whatever it accepts
        /// survives a round trip of its `sha-256` member.
        #[test]
        fn repr_digest_never_panics(s in "[ -~\t]{0,80}") {
            if let Ok(Some(d)) = ReprDigest::parse(&s) {
                let again = ReprDigest::parse(&ReprDigest::header_for(&d.as_hash())).unwrap();
                proptest::prop_assert_eq!(again, Some(d));
            }
        }

        /// Any parameters and other members around a well-formed `sha-256` member leave it read.
        #[test]
        fn repr_digest_reads_sha256_among_others(
            bytes in proptest::array::uniform32(0u8..),
            other in "[a-z][a-z0-9-]{0,8}",
            junk in proptest::collection::vec(0u8.., 0..40),
        ) {
            proptest::prop_assume!(other != "sha-256");
            let h = format!(
                "{other}=:{}:;q=1, sha-256=:{}:;x=\"y\"",
                STANDARD.encode(&junk),
                STANDARD.encode(bytes)
            );
            proptest::prop_assert_eq!(ReprDigest::parse(&h), Ok(Some(ReprDigest(bytes))));
        }
    }
}
