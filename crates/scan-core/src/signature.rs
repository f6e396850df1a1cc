//! `X-Scan-Signature`: how a scanner proves a verdict comes from it.
//!
//! The header is `t=<unix seconds>,v1=<hex>` where `<hex>` is the lowercase hex HMAC-SHA256, keyed with
//! the shared secret's UTF-8 bytes, over `"<t>.<raw body>"`. Several `v1=` entries may appear (a
//! scanner mid-rotation signs with its old and new secret); the callback accepts the header when any of
//! them matches any secret of its ring, and `t` is within [`TOLERANCE_SECS`] of its clock. Binding `t`
//! into the MAC and bounding it is what makes a captured request useless after the window; within the
//! window a replay carries the same verdict and `scannedAt`, which the state machine treats as a no-op.
//!
//! Comparison is constant time (`Mac::verify_slice`). Secrets are never printed: [`SecretRing`]'s
//! `Debug` shows only how many there are.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How far `t` may be from the verifier's clock, either way.
pub const TOLERANCE_SECS: i64 = 300;
/// The header name.
pub const HEADER: &str = "x-scan-signature";
/// Shortest secret accepted: HMAC keys below 16 bytes are guessable.
pub const MIN_SECRET_LEN: usize = 16;
/// Most `v1=` entries looked at: bounds the work an attacker can ask for.
const MAX_CANDIDATES: usize = 8;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused. Callers answer every variant with the same `401`; the variant is for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Scan-Signature header")]
    Missing,
    #[error("malformed X-Scan-Signature header")]
    Malformed,
    #[error("signature timestamp outside the {TOLERANCE_SECS} s window")]
    OutsideWindow,
    #[error("no signature matches")]
    Mismatch,
}

impl SignatureError {
    /// The log's name for the refusal (the client sees one answer for all of them).
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "signature_missing",
            Self::Malformed => "signature_malformed",
            Self::OutsideWindow => "signature_outside_window",
            Self::Mismatch => "signature_mismatch",
        }
    }
}

/// The header value to verify, from every `X-Scan-Signature` value of a request: `None` without
/// one, and exactly one is needed: several (or one that is not visible ASCII, as HTTP header text
/// must be) yield `""`, which [`SecretRing::verify`] refuses like a wrong signature.
pub fn single_header<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Option<&'a str> {
    let mut values = values.into_iter();
    match (values.next(), values.next()) {
        (None, _) => None,
        (Some(v), None) => Some(
            std::str::from_utf8(v)
                .ok()
                .filter(|s| s.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)))
                .unwrap_or(""),
        ),
        (Some(_), Some(_)) => Some(""),
    }
}

/// Why a secret list was refused (configuration error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("no scan callback secret configured")]
    Empty,
    #[error("a scan callback secret is shorter than {MIN_SECRET_LEN} bytes")]
    TooShort,
}

/// The secrets a verifier accepts: the current one and, during a rotation, the previous ones.
#[derive(Clone)]
pub struct SecretRing {
    secrets: Vec<Vec<u8>>,
}

impl std::fmt::Debug for SecretRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretRing({} secrets)", self.secrets.len())
    }
}

impl SecretRing {
    /// Parses a comma- or whitespace-separated list (the `scan_callback_secrets` variable). The first is
    /// the one to sign with.
    pub fn parse(list: &str) -> Result<Self, SecretError> {
        let secrets: Vec<Vec<u8>> = list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        if secrets.is_empty() {
            return Err(SecretError::Empty);
        }
        if secrets.iter().any(|s| s.len() < MIN_SECRET_LEN) {
            return Err(SecretError::TooShort);
        }
        Ok(Self { secrets })
    }

    /// The secret to sign with (the first).
    pub fn current(&self) -> &[u8] {
        &self.secrets[0]
    }

    /// Verifies `header` over `body` at `now` (unix seconds); returns the signed timestamp.
    pub fn verify(
        &self,
        header: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<i64, SignatureError> {
        let parsed = ParsedHeader::parse(header.ok_or(SignatureError::Missing)?)?;
        if (parsed.t - now).abs() > TOLERANCE_SECS {
            return Err(SignatureError::OutsideWindow);
        }
        let mut matched = false;
        // Every candidate is checked against every secret (no early exit): timing reveals neither which
        // secret nor which entry matched.
        for candidate in &parsed.candidates {
            for secret in &self.secrets {
                let mac = mac(secret, parsed.t, body);
                matched |= mac.verify_slice(candidate).is_ok();
            }
        }
        if matched {
            Ok(parsed.t)
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

fn mac(secret: &[u8], t: i64, body: &[u8]) -> HmacSha256 {
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value signing `body` at `t` with `secret`: `t=<t>,v1=<hex>`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let tag = mac(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(tag))
}

struct ParsedHeader {
    t: i64,
    candidates: Vec<[u8; 32]>,
}

impl ParsedHeader {
    fn parse(header: &str) -> Result<Self, SignatureError> {
        let mut t = None;
        let mut candidates = Vec::new();
        for item in header.split(',') {
            let (key, value) = item
                .trim()
                .split_once('=')
                .ok_or(SignatureError::Malformed)?;
            match key {
                "t" => {
                    if t.is_some()
                        || value.is_empty()
                        || value.len() > 12
                        || !value.bytes().all(|b| b.is_ascii_digit())
                    {
                        return Err(SignatureError::Malformed);
                    }
                    t = Some(
                        value
                            .parse::<i64>()
                            .map_err(|_| SignatureError::Malformed)?,
                    );
                }
                "v1" => {
                    let mut tag = [0u8; 32];
                    hex::decode_to_slice(value, &mut tag).map_err(|_| SignatureError::Malformed)?;
                    if candidates.len() < MAX_CANDIDATES {
                        candidates.push(tag);
                    }
                }
                // Other schemes (a future v2) are ignored, so scanners can send both during a migration.
                _ => {}
            }
        }
        match (t, candidates.is_empty()) {
            (Some(t), false) => Ok(Self { t, candidates }),
            _ => Err(SignatureError::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";
    const NOW: i64 = 1_790_000_000;

    fn ring(s: &str) -> SecretRing {
        SecretRing::parse(s).unwrap()
    }

    #[test]
    fn known_answer() {
        // Computed independently: printf '1700000000.{}' | openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef
        assert_eq!(
            sign(A.as_bytes(), 1_700_000_000, b"{}"),
            "t=1700000000,v1=417adf36b901772f658597a76d329694e335e65fc0849d7715c3ca33406309b5"
        );
    }

    #[test]
    fn accepts_own_signature_and_rotation() {
        let body = br#"{"attachmentId":"x","status":"clean"}"#;
        let h = sign(A.as_bytes(), NOW, body);
        assert_eq!(ring(A).verify(Some(&h), body, NOW), Ok(NOW));
        // The verifier mid-rotation accepts either secret.
        assert_eq!(
            ring(&format!("{B},{A}")).verify(Some(&h), body, NOW + 10),
            Ok(NOW)
        );
        // A signer mid-rotation sends both tags.
        let both = format!(
            "{},v1={}",
            sign(B.as_bytes(), NOW, body),
            &sign(A.as_bytes(), NOW, body)[16..]
        );
        assert_eq!(ring(A).verify(Some(&both), body, NOW), Ok(NOW));
    }

    #[test]
    fn refusals() {
        let body = b"{\"status\":\"clean\"}";
        let h = sign(A.as_bytes(), NOW, body);
        let r = ring(A);
        assert_eq!(r.verify(None, body, NOW), Err(SignatureError::Missing));
        assert_eq!(
            ring(B).verify(Some(&h), body, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            r.verify(Some(&h), b"{\"status\":\"infected\"}", NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            r.verify(Some(&h), body, NOW + 301),
            Err(SignatureError::OutsideWindow)
        );
        assert_eq!(
            r.verify(Some(&h), body, NOW - 301),
            Err(SignatureError::OutsideWindow)
        );
        assert_eq!(r.verify(Some(&h), body, NOW + 300), Ok(NOW));
        // The timestamp is bound into the MAC.
        let moved = h.replacen(&NOW.to_string(), &(NOW + 1).to_string(), 1);
        assert_eq!(
            r.verify(Some(&moved), body, NOW),
            Err(SignatureError::Mismatch)
        );
        for bad in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=-5,v1=00",
            "t=1,t=2,v1=00",
            "garbage",
            "t=1,v1=zz",
        ] {
            assert_eq!(
                r.verify(Some(bad), body, NOW),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn one_header_value_is_verified_several_are_refused() {
        let h = sign(A.as_bytes(), NOW, b"{}");
        assert_eq!(single_header([]), None);
        assert_eq!(single_header([h.as_bytes()]), Some(h.as_str()));
        assert_eq!(single_header([h.as_bytes(), h.as_bytes()]), Some(""));
        assert_eq!(single_header(["t=1,v1=\u{e9}".as_bytes()]), Some(""));
        let r = ring(A);
        assert_eq!(r.verify(single_header([h.as_bytes()]), b"{}", NOW), Ok(NOW));
        assert_eq!(
            r.verify(single_header([h.as_bytes(), h.as_bytes()]), b"{}", NOW),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            r.verify(single_header([]), b"{}", NOW)
                .unwrap_err()
                .reason(),
            "signature_missing"
        );
    }

    #[test]
    fn secret_list() {
        assert_eq!(SecretRing::parse(" , ").unwrap_err(), SecretError::Empty);
        assert_eq!(
            SecretRing::parse("short").unwrap_err(),
            SecretError::TooShort
        );
        let r = SecretRing::parse(&format!(" {A} ,\n{B}")).unwrap();
        assert_eq!(r.current(), A.as_bytes());
        assert_eq!(format!("{r:?}"), "SecretRing(2 secrets)");
    }

    proptest! {
        #[test]
        fn any_bit_flip_is_refused(body in proptest::collection::vec(any::<u8>(), 0..256), bit in 0usize..2048) {
            let h = sign(A.as_bytes(), NOW, &body);
            let r = ring(A);
            prop_assert_eq!(r.verify(Some(&h), &body, NOW), Ok(NOW));
            if !body.is_empty() {
                let mut changed = body.clone();
                let i = bit % (body.len() * 8);
                changed[i / 8] ^= 1 << (i % 8);
                prop_assert_eq!(r.verify(Some(&h), &changed, NOW), Err(SignatureError::Mismatch));
            }
        }

        #[test]
        fn parser_never_panics(s in ".{0,200}") {
            let _ = ring(A).verify(Some(&s), b"", NOW);
        }
    }
}
