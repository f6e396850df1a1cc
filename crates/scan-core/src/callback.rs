//! The scan callback body: what a scanner posts to `POST /api/v1/scan/callback`, parsed into
//! newtypes at the boundary, and built (and signed) by scanners from the same types.
//!
//! Wire shape (JSON, camelCase; unknown members are ignored):
//!
//! ```text
//! {"attachmentId"}  or  {"tenantId","contentHash"}      exactly one target
//! + "status"     clean | infected | suspicious | error   required
//! + "scannedAt"  epoch milliseconds                       required
//! + "engine", "signature", "details"                      optional strings (null or "" = absent)
//! ```
//!
//! Limits: `engine` at most [`MAX_ENGINE_CHARS`] characters, `signature` [`MAX_SIGNATURE_CHARS`],
//! `details` [`MAX_DETAILS_CHARS`]; no control characters (`details` may carry `\n`, `\r`, `\t`).
//! `scannedAt` must be a plausible epoch-millisecond time: not before [`MIN_SCANNED_AT_MS`] (a value in
//! seconds is refused rather than taken for 1970, [`BodyError::ScannedAt`]) and not more than
//! [`MAX_FUTURE_SKEW_MS`] ahead of the receiver's clock ([`BodyError::ClockSkew`]: the scanner's clock is
//! wrong). Verdicts are not ordered by `scannedAt` (see [`crate::verdict`]); it is the scanner's
//! statement of when it scanned, shown to users and kept in the audit trail, so it must not lie about the
//! future. [`check_signed_at`] holds the signature's `t` to the same bound.
//!
//! [`BodyError`]'s messages are client-safe: they name the field and the rule, never echo a value.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::signature;

/// Longest `engine` (characters).
pub const MAX_ENGINE_CHARS: usize = 100;
/// Longest `signature`, the threat name (characters).
pub const MAX_SIGNATURE_CHARS: usize = 256;
/// Longest `details` (characters).
pub const MAX_DETAILS_CHARS: usize = 2000;
/// Earliest accepted `scannedAt`: 2001-09-09T01:46:40Z in milliseconds (10^12). Anything smaller is
/// almost certainly seconds, not milliseconds.
pub const MIN_SCANNED_AT_MS: i64 = 1_000_000_000_000;
/// How far `scannedAt` (and the signature's `t`) may be ahead of the receiver's clock: clocks that
/// are kept in sync by NTP differ by milliseconds; anything beyond this is a wrong clock.
pub const MAX_FUTURE_SKEW_MS: i64 = 5_000;

/// Why a callback body was refused (`400`). Display texts are safe to send to the scanner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error(
        "The body must be a JSON object with \"status\" (string), \"scannedAt\" (integer epoch ms) and \
         optional \"engine\", \"signature\", \"details\" (strings or null), and no other members."
    )]
    Shape,
    #[error("Name exactly one target: \"attachmentId\", or \"tenantId\" with \"contentHash\".")]
    Target,
    #[error("\"{0}\" must be a UUID.")]
    Uuid(&'static str),
    #[error("\"contentHash\" must be 64 lowercase hexadecimal characters (SHA-256).")]
    ContentHash,
    #[error("\"status\" must be one of clean, infected, suspicious, error.")]
    Status,
    #[error("\"{field}\" must be at most {max} characters without control characters.")]
    Text { field: &'static str, max: usize },
    #[error("\"scannedAt\" must be epoch milliseconds, not before 2001.")]
    ScannedAt,
    /// `scannedAt` or the signature's `t` is more than [`MAX_FUTURE_SKEW_MS`] ahead of the receiver.
    #[error(
        "\"scannedAt\" or the signature time is more than 5 s ahead of the server's clock: fix the scanner's clock."
    )]
    ClockSkew,
}

/// Refuses a signature time `t` (unix seconds) more than [`MAX_FUTURE_SKEW_MS`] ahead of `now_ms`
/// (the signature scheme itself accepts [`signature::TOLERANCE_SECS`] either way; a verified
/// scanner whose clock runs ahead is told so).
pub fn check_signed_at(t: i64, now_ms: i64) -> Result<(), BodyError> {
    if t.saturating_mul(1000) > now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
        return Err(BodyError::ClockSkew);
    }
    Ok(())
}

/// A verdict a scanner may report. (`pending` and `skipped` are states of stored content, never
/// reported.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerdictStatus {
    Clean,
    Infected,
    Suspicious,
    Error,
}

impl VerdictStatus {
    /// Every verdict.
    pub const ALL: [VerdictStatus; 4] =
        [Self::Clean, Self::Infected, Self::Suspicious, Self::Error];

    /// Parses the wire string (exact, lower case).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "clean" => Self::Clean,
            "infected" => Self::Infected,
            "suspicious" => Self::Suspicious,
            "error" => Self::Error,
            _ => return None,
        })
    }

    /// The wire (and database) string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::Infected => "infected",
            Self::Suspicious => "suspicious",
            Self::Error => "error",
        }
    }

    /// The stored status this verdict becomes.
    pub const fn stored(self) -> crate::verdict::ScanStatus {
        use crate::verdict::ScanStatus;
        match self {
            Self::Clean => ScanStatus::Clean,
            Self::Infected => ScanStatus::Infected,
            Self::Suspicious => ScanStatus::Suspicious,
            Self::Error => ScanStatus::Error,
        }
    }
}

/// Lowercase hex SHA-256 of stored content (`attachment_blobs.content_sha256`, the API's
/// `contentHash`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentHash(String);

impl ContentHash {
    /// Exactly 64 of `[0-9a-f]`.
    pub fn parse(s: &str) -> Result<Self, BodyError> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(BodyError::ContentHash)
        }
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which stored content a verdict is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The content of this attachment (any tenant: the receiver resolves it).
    Attachment(Uuid),
    /// The content with this hash in this tenant.
    Content { tenant: Uuid, hash: ContentHash },
}

/// An optional, bounded, control-character-free text (`engine`, `signature`, `details`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BoundedText(String);

impl BoundedText {
    fn parse(
        field: &'static str,
        max: usize,
        allow_newlines: bool,
        s: Option<String>,
    ) -> Result<Option<Self>, BodyError> {
        let Some(s) = s else { return Ok(None) };
        if s.is_empty() {
            return Ok(None);
        }
        let ok_char =
            |c: char| !c.is_control() || (allow_newlines && matches!(c, '\n' | '\r' | '\t'));
        if s.chars().count() > max || !s.chars().all(ok_char) {
            return Err(BodyError::Text { field, max });
        }
        Ok(Some(Self(s)))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A scanner's verdict on one content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The verdict.
    pub status: VerdictStatus,
    /// The engine and version, e.g. `ClamAV 1.4.2/27500`.
    pub engine: Option<BoundedText>,
    /// The threat name, e.g. `Eicar-Test-Signature`.
    pub signature: Option<BoundedText>,
    /// Free text (why `error`, where the match was, ...).
    pub details: Option<BoundedText>,
    /// The scanner's time of the verdict, epoch milliseconds. Verdicts are ordered by it.
    pub scanned_at: i64,
}

impl Verdict {
    /// A verdict built by a scanner from its own values; the same checks as [`Callback::parse`]
    /// (except the clock: a scanner's own time is what `scanned_at` means).
    pub fn new(
        status: VerdictStatus,
        engine: Option<&str>,
        signature: Option<&str>,
        details: Option<&str>,
        scanned_at: i64,
    ) -> Result<Self, BodyError> {
        if scanned_at < MIN_SCANNED_AT_MS {
            return Err(BodyError::ScannedAt);
        }
        Ok(Self {
            status,
            engine: BoundedText::parse(
                "engine",
                MAX_ENGINE_CHARS,
                false,
                engine.map(str::to_owned),
            )?,
            signature: BoundedText::parse(
                "signature",
                MAX_SIGNATURE_CHARS,
                false,
                signature.map(str::to_owned),
            )?,
            details: BoundedText::parse(
                "details",
                MAX_DETAILS_CHARS,
                true,
                details.map(str::to_owned),
            )?,
            scanned_at,
        })
    }
}

/// `details` cut to [`MAX_DETAILS_CHARS`] characters with control characters (other than `\n`,
/// `\r`, `\t`) replaced by spaces: for a scanner that forwards an engine's free text.
pub fn clamp_details(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
                ' '
            } else {
                c
            }
        })
        .take(MAX_DETAILS_CHARS)
        .collect()
}

/// One callback: a target and a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// Which content.
    pub target: Target,
    /// The verdict.
    pub verdict: Verdict,
}

/// The JSON members, both directions. `Option<serde_json::Value>`-free on purpose: a member of the
/// wrong type is a [`BodyError::Shape`].
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Wire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attachment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_hash: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    engine: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    scanned_at: Option<serde_json::Number>,
}

/// An integer as JSON Schema reads one (`1790000000000` and `1790000000000.0` alike).
fn integer(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f))
        .then_some(f as i64)
}

fn parse_uuid(field: &'static str, s: &str) -> Result<Uuid, BodyError> {
    // The canonical hyphenated form only (36 characters), like path ids.
    if s.len() == 36
        && let Ok(u) = Uuid::try_parse(s)
    {
        return Ok(u);
    }
    Err(BodyError::Uuid(field))
}

impl Callback {
    /// A verdict about an attachment's content.
    pub fn by_attachment(attachment: Uuid, verdict: Verdict) -> Self {
        Self {
            target: Target::Attachment(attachment),
            verdict,
        }
    }

    /// A verdict about a tenant's content (what the scan worker knows from `scan_claim_jobs`).
    pub fn by_content(tenant: Uuid, hash: ContentHash, verdict: Verdict) -> Self {
        Self {
            target: Target::Content { tenant, hash },
            verdict,
        }
    }

    /// Parses a received body; `now_ms` is the receiver's clock (bounds `scannedAt`).
    pub fn parse(body: &[u8], now_ms: i64) -> Result<Self, BodyError> {
        // An object only (serde would also read a struct from an array). Duplicate members are
        // refused by the derived Deserialize: a signed body must not be ambiguous.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(BodyError::Shape);
        }
        let w: Wire = serde_json::from_slice(body).map_err(|_| BodyError::Shape)?;
        let target = match (w.attachment_id, w.tenant_id, w.content_hash) {
            (Some(a), None, None) => Target::Attachment(parse_uuid("attachmentId", &a)?),
            (None, Some(t), Some(h)) => Target::Content {
                tenant: parse_uuid("tenantId", &t)?,
                hash: ContentHash::parse(&h)?,
            },
            _ => return Err(BodyError::Target),
        };
        let status = w.status.as_deref().ok_or(BodyError::Shape)?;
        let status = VerdictStatus::parse(status).ok_or(BodyError::Status)?;
        let scanned_at = w
            .scanned_at
            .as_ref()
            .and_then(integer)
            .ok_or(BodyError::Shape)?;
        if scanned_at > now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
            return Err(BodyError::ClockSkew);
        }
        let verdict = Verdict::new(
            status,
            w.engine.as_deref(),
            w.signature.as_deref(),
            w.details.as_deref(),
            scanned_at,
        )?;
        Ok(Self { target, verdict })
    }

    /// The JSON body (compact, members in a fixed order).
    pub fn to_json(&self) -> Vec<u8> {
        let mut w = Wire::default();
        match &self.target {
            Target::Attachment(a) => w.attachment_id = Some(a.hyphenated().to_string()),
            Target::Content { tenant, hash } => {
                w.tenant_id = Some(tenant.hyphenated().to_string());
                w.content_hash = Some(hash.as_str().to_owned());
            }
        }
        let text = |t: &Option<BoundedText>| t.as_ref().map(|t| t.as_str().to_owned());
        w.status = Some(self.verdict.status.as_str().to_owned());
        w.engine = text(&self.verdict.engine);
        w.signature = text(&self.verdict.signature);
        w.details = text(&self.verdict.details);
        w.scanned_at = Some(self.verdict.scanned_at.into());
        // Strings and integers only: serializing cannot fail.
        serde_json::to_vec(&w).unwrap_or_default()
    }

    /// The body and its `X-Scan-Signature` value, signed with `secret` at `t` (unix seconds): what
    /// a scanner sends.
    pub fn signed(&self, secret: &[u8], t: i64) -> (Vec<u8>, String) {
        let body = self.to_json();
        let header = signature::sign(secret, t, &body);
        (body, header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW_MS: i64 = 1_790_000_000_000;
    const A: &str = "3f1e0c9a-9d57-4c1b-8f11-2b6a4c0e7d21";
    const H: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn parse(s: &str) -> Result<Callback, BodyError> {
        Callback::parse(s.as_bytes(), NOW_MS)
    }

    #[test]
    fn both_targets() {
        let c = parse(&format!(
            r#"{{"attachmentId":"{A}","status":"infected","engine":"ClamAV 1.4","signature":"Eicar-Test-Signature","details":"stream: Eicar FOUND\n","scannedAt":{NOW_MS}}}"#
        ))
        .unwrap();
        assert_eq!(c.target, Target::Attachment(Uuid::parse_str(A).unwrap()));
        assert_eq!(c.verdict.status, VerdictStatus::Infected);
        assert_eq!(
            c.verdict.signature.as_ref().unwrap().as_str(),
            "Eicar-Test-Signature"
        );
        assert_eq!(c.verdict.scanned_at, NOW_MS);

        let c = parse(&format!(
            r#"{{"tenantId":"{A}","contentHash":"{H}","status":"clean","engine":null,"signature":"","scannedAt":{NOW_MS}}}"#
        ))
        .unwrap();
        assert!(matches!(&c.target, Target::Content { hash, .. } if hash.as_str() == H));
        assert_eq!(c.verdict.engine, None);
        assert_eq!(c.verdict.signature, None, "an empty string is absent");

        // JSON Schema's integer: an integral number written with a fraction is the same integer.
        let c = parse(&format!(
            r#"{{"attachmentId":"{A}","status":"clean","scannedAt":{NOW_MS}.0}}"#
        ))
        .unwrap();
        assert_eq!(c.verdict.scanned_at, NOW_MS);
    }

    #[test]
    fn refusals() {
        let ok_rest = format!(r#""status":"clean","scannedAt":{NOW_MS}"#);
        let cases: Vec<(String, BodyError)> = vec![
            ("not json".into(), BodyError::Shape),
            ("[]".into(), BodyError::Shape),
            (
                format!(r#"{{"attachmentId":"{A}",{ok_rest},"extra":1}}"#),
                BodyError::Shape,
            ),
            (
                format!(r#"["{A}",null,null,"clean",null,null,null,{NOW_MS}]"#),
                BodyError::Shape,
            ),
            (
                format!(
                    r#"{{"attachmentId":{A:?},"status":"clean","status":"infected","scannedAt":{NOW_MS}}}"#
                ),
                BodyError::Shape,
            ),
            (format!(r#"{{{ok_rest}}}"#), BodyError::Target),
            (
                format!(r#"{{"attachmentId":"{A}","tenantId":"{A}",{ok_rest}}}"#),
                BodyError::Target,
            ),
            (
                format!(r#"{{"attachmentId":"{A}","contentHash":"{H}",{ok_rest}}}"#),
                BodyError::Target,
            ),
            (
                format!(r#"{{"tenantId":"{A}",{ok_rest}}}"#),
                BodyError::Target,
            ),
            (
                format!(r#"{{"attachmentId":"nope",{ok_rest}}}"#),
                BodyError::Uuid("attachmentId"),
            ),
            (
                format!(r#"{{"attachmentId":"{}",{ok_rest}}}"#, A.replace('-', "")),
                BodyError::Uuid("attachmentId"),
            ),
            (
                format!(r#"{{"tenantId":"x","contentHash":"{H}",{ok_rest}}}"#),
                BodyError::Uuid("tenantId"),
            ),
            (
                format!(
                    r#"{{"tenantId":"{A}","contentHash":"{}",{ok_rest}}}"#,
                    H.to_uppercase()
                ),
                BodyError::ContentHash,
            ),
            (
                format!(
                    r#"{{"tenantId":"{A}","contentHash":"{}",{ok_rest}}}"#,
                    &H[1..]
                ),
                BodyError::ContentHash,
            ),
            (
                format!(r#"{{"attachmentId":{A:?},"status":"pending","scannedAt":{NOW_MS}}}"#),
                BodyError::Status,
            ),
            (
                format!(r#"{{"attachmentId":{A:?},"status":"CLEAN","scannedAt":{NOW_MS}}}"#),
                BodyError::Status,
            ),
            (
                format!(r#"{{"attachmentId":{A:?},"status":1,"scannedAt":{NOW_MS}}}"#),
                BodyError::Shape,
            ),
            (
                format!(r#"{{"attachmentId":{A:?},"scannedAt":{NOW_MS}}}"#),
                BodyError::Shape,
            ),
            (
                format!(r#"{{"attachmentId":{A:?},"status":"clean"}}"#),
                BodyError::Shape,
            ),
            (
                format!(r#"{{"attachmentId":{A:?},"status":"clean","scannedAt":"1"}}"#),
                BodyError::Shape,
            ),
            (
                format!(r#"{{"attachmentId":{A:?},"status":"clean","scannedAt":1.5}}"#),
                BodyError::Shape,
            ),
            (
                format!(r#"{{"attachmentId":{A:?},"status":"clean","scannedAt":1790000000}}"#),
                BodyError::ScannedAt,
            ),
            (
                format!(
                    r#"{{"attachmentId":{A:?},"status":"clean","scannedAt":{}}}"#,
                    NOW_MS + MAX_FUTURE_SKEW_MS + 1
                ),
                BodyError::ClockSkew,
            ),
            (
                format!(
                    r#"{{"attachmentId":{A:?},"status":"clean","scannedAt":{}}}"#,
                    NOW_MS + 250_000
                ),
                BodyError::ClockSkew,
            ),
            (
                format!(r#"{{"attachmentId":{A:?},"engine":"a\u0000b",{ok_rest}}}"#),
                BodyError::Text {
                    field: "engine",
                    max: MAX_ENGINE_CHARS,
                },
            ),
            (
                format!(r#"{{"attachmentId":{A:?},"signature":"a\nb",{ok_rest}}}"#),
                BodyError::Text {
                    field: "signature",
                    max: MAX_SIGNATURE_CHARS,
                },
            ),
            (
                format!(
                    r#"{{"attachmentId":{A:?},"details":"{}",{ok_rest}}}"#,
                    "x".repeat(MAX_DETAILS_CHARS + 1)
                ),
                BodyError::Text {
                    field: "details",
                    max: MAX_DETAILS_CHARS,
                },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(parse(&body), Err(want), "{body}");
        }
        // At the limits.
        let body = format!(
            r#"{{"attachmentId":{A:?},"details":"{}","engine":"{}",{ok_rest}}}"#,
            "é".repeat(MAX_DETAILS_CHARS),
            "e".repeat(MAX_ENGINE_CHARS)
        );
        assert!(parse(&body).is_ok());
        let body = format!(
            r#"{{"attachmentId":{A:?},"status":"clean","scannedAt":{}}}"#,
            NOW_MS + MAX_FUTURE_SKEW_MS
        );
        assert!(parse(&body).is_ok());
    }

    #[test]
    fn signature_time_ahead_of_the_clock() {
        let now_s = NOW_MS / 1000;
        assert_eq!(check_signed_at(now_s, NOW_MS), Ok(()));
        assert_eq!(check_signed_at(now_s + 5, NOW_MS), Ok(()));
        assert_eq!(check_signed_at(now_s - 300, NOW_MS), Ok(()));
        assert_eq!(
            check_signed_at(now_s + 6, NOW_MS),
            Err(BodyError::ClockSkew)
        );
        assert_eq!(
            check_signed_at(now_s + 250, NOW_MS),
            Err(BodyError::ClockSkew)
        );
        assert_eq!(check_signed_at(i64::MAX, NOW_MS), Err(BodyError::ClockSkew));
    }

    #[test]
    fn error_messages_never_echo_values() {
        let e = parse(r#"{"attachmentId":"<script>","status":"clean","scannedAt":1790000000000}"#)
            .unwrap_err();
        assert!(!e.to_string().contains("<script>"));
    }

    #[test]
    fn build_sign_and_parse_back() {
        let v = Verdict::new(
            VerdictStatus::Infected,
            Some("ClamAV 1.4.2"),
            Some("Eicar-Test-Signature"),
            Some(&clamp_details("found\u{7}in stream")),
            NOW_MS,
        )
        .unwrap();
        assert_eq!(v.details.as_ref().unwrap().as_str(), "found in stream");
        let cb = Callback::by_content(
            Uuid::parse_str(A).unwrap(),
            ContentHash::parse(H).unwrap(),
            v,
        );
        let (body, header) = cb.signed(b"0123456789abcdef0123456789abcdef", NOW_MS / 1000);
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            format!(
                r#"{{"tenantId":"{A}","contentHash":"{H}","status":"infected","engine":"ClamAV 1.4.2","signature":"Eicar-Test-Signature","details":"found in stream","scannedAt":{NOW_MS}}}"#
            )
        );
        let ring = signature::SecretRing::parse("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(
            ring.verify(Some(&header), &body, NOW_MS / 1000)
                .map(|s| s.t),
            Ok(NOW_MS / 1000)
        );
        assert_eq!(Callback::parse(&body, NOW_MS).unwrap(), cb);
        assert_eq!(
            Verdict::new(VerdictStatus::Clean, None, None, None, 5).unwrap_err(),
            BodyError::ScannedAt
        );
    }

    fn arb_text(max: usize) -> impl Strategy<Value = Option<String>> {
        proptest::option::of(proptest::string::string_regex(&format!("[ -~é]{{1,{max}}}")).unwrap())
    }

    proptest! {
        #[test]
        fn round_trip(
            by_attachment in any::<bool>(),
            id in any::<u128>(),
            hash in proptest::string::string_regex("[0-9a-f]{64}").unwrap(),
            status in 0usize..4,
            engine in arb_text(MAX_ENGINE_CHARS),
            sig in arb_text(MAX_SIGNATURE_CHARS),
            details in arb_text(MAX_DETAILS_CHARS),
            at in MIN_SCANNED_AT_MS..NOW_MS,
        ) {
            let v = Verdict::new(VerdictStatus::ALL[status], engine.as_deref(), sig.as_deref(), details.as_deref(), at).unwrap();
            let id = Uuid::from_u128(id);
            let cb = if by_attachment {
                Callback::by_attachment(id, v)
            } else {
                Callback::by_content(id, ContentHash::parse(&hash).unwrap(), v)
            };
            prop_assert_eq!(Callback::parse(&cb.to_json(), NOW_MS).unwrap(), cb);
        }

        #[test]
        fn parser_never_panics(s in ".{0,300}") {
            let _ = Callback::parse(s.as_bytes(), NOW_MS);
        }
    }
}
