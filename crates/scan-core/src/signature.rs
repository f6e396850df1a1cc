//! `X-Scan-Signature`: how a scanner proves a verdict comes from it.
//!
//! The header is `t=<unix seconds>,v1=<hex>` where `<hex>` is the lowercase hex HMAC-SHA256, keyed with
//! the shared secret's UTF-8 bytes, over `"<t>.<raw body>"`. Several `v1=` entries may appear (a
//! scanner mid-rotation signs with its old and new secret); the callback accepts the header when any of
//! them matches any secret of its ring, and `t` is within [`TOLERANCE_SECS`] of its clock. Binding `t`
//! into the MAC and bounding it is what makes a captured request useless after the window; within the
//! window a replay carries the same verdict and `scannedAt`, which the state machine treats as a no-op.
//!
//! Comparison is constant time (`subtle`), against every secret. Secrets are never printed:
//! [`SecretRing`]'s `Debug` shows only how many there are and the scanners' names.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

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

/// Why a secret list was refused (configuration error). Never names a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("no scan callback secret configured")]
    Empty,
    #[error("a scan callback secret is shorter than {MIN_SECRET_LEN} bytes")]
    TooShort,
    #[error(
        "a scanner name must be 1..={MAX_NAME_LEN} characters of [A-Za-z0-9._-] (entries are name:secret)"
    )]
    BadName,
    #[error("the same scan callback secret is listed twice")]
    Duplicate,
}

/// The name of the scanners configured with a bare secret (no `name:`).
pub const UNNAMED: &str = "unnamed";
/// Longest scanner name.
pub const MAX_NAME_LEN: usize = 64;

/// One scanner's key: its name and its secret.
#[derive(Clone)]
struct Key {
    name: String,
    secret: Vec<u8>,
}

/// The scanners a verifier accepts, each with its own name and secret (the `scan_callback_secrets`
/// variable: `name:secret,name2:secret2`). A name may appear more than once (the same scanner during
/// a rotation of its secret); a secret may not (it would make the name ambiguous).
#[derive(Clone)]
pub struct SecretRing {
    keys: Vec<Key>,
}

impl std::fmt::Debug for SecretRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.keys.iter().map(|k| k.name.as_str()).collect();
        write!(f, "SecretRing({} secrets: {names:?})", self.keys.len())
    }
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A verified signature: its timestamp and the name of the scanner whose secret made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed<'a> {
    /// The signed `t` (unix seconds).
    pub t: i64,
    /// The scanner's configured name ([`UNNAMED`] for a bare secret).
    pub scanner: &'a str,
}

impl SecretRing {
    /// Parses a comma- or whitespace-separated list of `name:secret` entries (the
    /// `scan_callback_secrets` variable); a bare `secret` (no `:`) is named [`UNNAMED`]. A secret that
    /// itself contains `:` must be given a name. The first entry is the one to sign with.
    pub fn parse(list: &str) -> Result<Self, SecretError> {
        let mut keys: Vec<Key> = Vec::new();
        for entry in list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let (name, secret) = match entry.split_once(':') {
                Some((name, secret)) => (name, secret),
                None => (UNNAMED, entry),
            };
            if !valid_name(name) {
                return Err(SecretError::BadName);
            }
            if secret.len() < MIN_SECRET_LEN {
                return Err(SecretError::TooShort);
            }
            if keys.iter().any(|k| k.secret == secret.as_bytes()) {
                return Err(SecretError::Duplicate);
            }
            keys.push(Key {
                name: name.to_owned(),
                secret: secret.as_bytes().to_vec(),
            });
        }
        if keys.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self { keys })
    }

    /// The secret to sign with (the first).
    pub fn current(&self) -> &[u8] {
        &self.keys[0].secret
    }

    /// The name of the first entry: who a signer holding this ring signs as.
    pub fn current_name(&self) -> &str {
        &self.keys[0].name
    }

    /// Verifies `header` over `body` at `now` (unix seconds); returns the signed timestamp and the
    /// name of the scanner whose secret matched.
    ///
    /// Every `v1=` candidate is compared with the MAC of every secret, in constant time and without
    /// an early exit, and the matching entry is picked without a branch: the time taken reveals
    /// neither whether nor which secret or candidate matched.
    pub fn verify(
        &self,
        header: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<Signed<'_>, SignatureError> {
        let parsed = ParsedHeader::parse(header.ok_or(SignatureError::Missing)?)?;
        if (parsed.t - now).abs() > TOLERANCE_SECS {
            return Err(SignatureError::OutsideWindow);
        }
        // `found`: all ones once an entry matched; `index`: the first matching entry.
        let mut found = 0usize;
        let mut index = 0usize;
        for (i, key) in self.keys.iter().enumerate() {
            let tag = mac(&key.secret, parsed.t, body).finalize().into_bytes();
            let mut hit = 0u8;
            for candidate in &parsed.candidates {
                hit |= tag.as_slice().ct_eq(candidate.as_slice()).unwrap_u8();
            }
            // All ones when this entry matched and none before it did.
            let take = usize::from(std::hint::black_box(hit)).wrapping_neg() & !found;
            index |= i & take;
            found |= take;
        }
        if found == 0 {
            return Err(SignatureError::Mismatch);
        }
        Ok(Signed {
            t: parsed.t,
            scanner: &self.keys[index].name,
        })
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

    /// The timestamp of a verified signature.
    fn t_of(r: Result<Signed<'_>, SignatureError>) -> Result<i64, SignatureError> {
        r.map(|s| s.t)
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
        assert_eq!(t_of(ring(A).verify(Some(&h), body, NOW)), Ok(NOW));
        // The verifier mid-rotation accepts either secret.
        assert_eq!(
            t_of(ring(&format!("{B},{A}")).verify(Some(&h), body, NOW + 10)),
            Ok(NOW)
        );
        // A signer mid-rotation sends both tags.
        let both = format!(
            "{},v1={}",
            sign(B.as_bytes(), NOW, body),
            &sign(A.as_bytes(), NOW, body)[16..]
        );
        assert_eq!(t_of(ring(A).verify(Some(&both), body, NOW)), Ok(NOW));
    }

    #[test]
    fn the_secret_that_matched_names_the_scanner() {
        let body = b"{}";
        let r = ring(&format!("scan-worker:{A},vt.external_1:{B}"));
        let by_a = sign(A.as_bytes(), NOW, body);
        let by_b = sign(B.as_bytes(), NOW, body);
        assert_eq!(
            r.verify(Some(&by_a), body, NOW),
            Ok(Signed {
                t: NOW,
                scanner: "scan-worker"
            })
        );
        assert_eq!(
            r.verify(Some(&by_b), body, NOW).unwrap().scanner,
            "vt.external_1"
        );
        // Both tags in one header: the first entry of the ring that matches names it.
        let both = format!("{by_b},v1={}", &by_a[16..]);
        assert_eq!(
            r.verify(Some(&both), body, NOW).unwrap().scanner,
            "scan-worker"
        );
        // A bare secret is "unnamed"; one scanner may hold two secrets (its rotation).
        let r = ring(&format!("{A},scan-worker:{B}"));
        assert_eq!(r.verify(Some(&by_a), body, NOW).unwrap().scanner, UNNAMED);
        let r = ring(&format!("scan-worker:{B},scan-worker:{A}"));
        assert_eq!(
            r.verify(Some(&by_a), body, NOW).unwrap().scanner,
            "scan-worker"
        );
        assert_eq!(r.current(), B.as_bytes());
        assert_eq!(r.current_name(), "scan-worker");
        // A key outside the ring names nobody.
        let other = sign(b"not-in-the-ring-0123456789abcdef", NOW, body);
        assert_eq!(
            r.verify(Some(&other), body, NOW),
            Err(SignatureError::Mismatch)
        );
        // The name is the ring's, never the secret: a secret with a colon needs a name.
        let r = ring(&format!("ext:{A}:{B}"));
        let h = sign(format!("{A}:{B}").as_bytes(), NOW, body);
        assert_eq!(r.verify(Some(&h), body, NOW).unwrap().scanner, "ext");
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
        assert_eq!(t_of(r.verify(Some(&h), body, NOW + 300)), Ok(NOW));
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
        assert_eq!(
            t_of(r.verify(single_header([h.as_bytes()]), b"{}", NOW)),
            Ok(NOW)
        );
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
        let r = SecretRing::parse(&format!(" {A} ,\nclamav-2:{B}")).unwrap();
        assert_eq!(r.current(), A.as_bytes());
        assert_eq!(r.current_name(), UNNAMED);
        assert_eq!(
            format!("{r:?}"),
            r#"SecretRing(2 secrets: ["unnamed", "clamav-2"])"#
        );
        for (bad, want) in [
            ("scan-worker:short".to_owned(), SecretError::TooShort),
            (format!(":{A}"), SecretError::BadName),
            (format!("scan/worker:{A}"), SecretError::BadName),
            (format!("sc\u{e9}n:{A}"), SecretError::BadName),
            (
                format!("{}:{A}", "n".repeat(MAX_NAME_LEN + 1)),
                SecretError::BadName,
            ),
            (format!("a:{A},b:{A}"), SecretError::Duplicate),
            (format!("{A},{A}"), SecretError::Duplicate),
        ] {
            let e = SecretRing::parse(&bad).unwrap_err();
            assert_eq!(e, want, "{bad:?}");
            assert!(!e.to_string().contains(A), "{e}");
        }
        assert!(SecretRing::parse(&format!("{}:{A}", "n".repeat(MAX_NAME_LEN))).is_ok());
    }

    proptest! {
        #[test]
        fn any_bit_flip_is_refused(body in proptest::collection::vec(any::<u8>(), 0..256), bit in 0usize..2048) {
            let h = sign(A.as_bytes(), NOW, &body);
            let r = ring(A);
            prop_assert_eq!(t_of(r.verify(Some(&h), &body, NOW)), Ok(NOW));
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
            let _ = SecretRing::parse(&s);
        }

        /// Whichever scanner of a ring signs, the verifier names exactly that scanner.
        #[test]
        fn each_scanner_is_named(n in 1usize..6, signer in 0usize..6, body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let signer = signer % n;
            let secrets: Vec<String> = (0..n).map(|i| format!("{i:02}-secret-0123456789abcdef")).collect();
            let list: Vec<String> = secrets.iter().enumerate().map(|(i, s)| format!("scanner-{i}:{s}")).collect();
            let r = ring(&list.join(","));
            let h = sign(secrets[signer].as_bytes(), NOW, &body);
            let scanner = format!("scanner-{signer}");
            prop_assert_eq!(r.verify(Some(&h), &body, NOW), Ok(Signed { t: NOW, scanner: &scanner }));
        }
    }
}
