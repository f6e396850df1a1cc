//! The upload-verification report: what the scan worker posts to `POST
//! /api/v1/scan/upload-verification` once it has read a directly uploaded object back (migration
//! 0014), and the scan callback component's answer. Both sides build and parse the same types; the
//! report is signed like a verdict (`X-Scan-Signature` over the exact bytes, [`crate::signature`]).
//!
//! Report (JSON, camelCase; [`Report::to_json`] writes every member, [`Report::parse`] reads an
//! absent nullable member as null and refuses any other member):
//!
//! ```text
//! {"uploadId": "<uuid>", "outcome": "accepted" | "rejected",
//!  "size": <bytes>, "sha256": "<64 lowercase hex>",
//!  "sniffedMime": "<type/subtype>" | null, "detectedMime": "<type/subtype>",
//!  "rejectCode": "size_mismatch" | "digest_mismatch" | "blocked_file_type" | null,
//!  "rejectDetail": "<text>" | null}
//! ```
//!
//! Rules ([`Report::parse`] refuses anything else, [`ReportError`] says which):
//! - `accepted`: `rejectCode` and `rejectDetail` null.
//! - `rejected`: `rejectCode` and a non-empty `rejectDetail` (at most [`MAX_REJECT_DETAIL_CHARS`]
//!   characters, no control characters: it is shown to the uploader as the in-function upload would
//!   word it).
//! - `size` and `sha256` are what the object read back has, whatever the outcome (the worker reads
//!   every object whole, also one whose size is not the claimed one).
//! - `sniffedMime` is what the magic bytes said (`attachment_blobs.sniffed_mime`), `detectedMime`
//!   the type to store and serve, both as the in-function upload computes them
//!   (`attachment_policy::ContentInspector`); content the policy refused is
//!   `application/octet-stream`.
//!
//! Answer (`200`, JSON): `{"attachmentId": "<uuid>", "state": "done" | "rejected", "deleteObject":
//! bool, "scanJobId": "<uuid>" | null}`; unknown members are ignored (the receiver of an answer
//! only needs these). Other statuses: `404` unknown upload, `409` outcome already recorded (the
//! session is no longer verifying), `401`/`403` signature refused, `400` a report that breaks the
//! rules above; `408`, `429` and `5xx` are worth a retry.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::callback::ContentHash;

/// The route the worker posts reports to.
pub const PATH: &str = "/api/v1/scan/upload-verification";
/// Longest `rejectDetail` (characters).
pub const MAX_REJECT_DETAIL_CHARS: usize = 500;
/// Longest media type (`type/subtype`, no parameters).
pub const MAX_MIME_CHARS: usize = 255;

/// Why a report (or an answer) was refused. Display texts are safe to send back: they name the
/// member and the rule, never echo a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error(
        "The body must be a JSON object with exactly the members uploadId, outcome, size, sha256, \
         sniffedMime, detectedMime, rejectCode, rejectDetail of the documented types."
    )]
    Shape,
    #[error("\"{0}\" must be a UUID.")]
    Uuid(&'static str),
    #[error("\"outcome\" must be accepted or rejected.")]
    Outcome,
    #[error("\"size\" must be an integer between 0 and 2^63-1.")]
    Size,
    #[error("\"sha256\" must be 64 lowercase hexadecimal characters.")]
    Sha256,
    #[error("\"{0}\" must be a lowercase media type (type/subtype) of at most 255 characters.")]
    Mime(&'static str),
    #[error("\"rejectCode\" must be size_mismatch, digest_mismatch or blocked_file_type.")]
    RejectCode,
    #[error("\"rejectDetail\" must be 1 to 500 characters without control characters.")]
    RejectDetail,
    #[error("An accepted upload has no rejectCode or rejectDetail; a rejected one has both.")]
    Inconsistent,
    #[error("\"state\" must be done or rejected.")]
    State,
}

/// Why the worker refuses an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCode {
    /// The object's size is not the claimed size.
    SizeMismatch,
    /// The object's SHA-256 is not the claimed one.
    DigestMismatch,
    /// The content policy refused it (executable, script, active markup, a blocked extension).
    BlockedFileType,
}

impl RejectCode {
    /// Every code the worker reports.
    pub const ALL: [RejectCode; 3] = [
        Self::SizeMismatch,
        Self::DigestMismatch,
        Self::BlockedFileType,
    ];

    /// The wire (and `upload_sessions.reject_code`) word.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SizeMismatch => "size_mismatch",
            Self::DigestMismatch => "digest_mismatch",
            Self::BlockedFileType => "blocked_file_type",
        }
    }

    /// Parses the wire word (exact).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A media type's essence as the content policy produces it: `type/subtype`, lower case, RFC 9110
/// token characters, at most [`MAX_MIME_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaType(String);

impl MediaType {
    fn parse_field(field: &'static str, s: &str) -> Result<Self, ReportError> {
        let token = |t: &str| {
            !t.is_empty()
                && t.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
                })
        };
        match s.split_once('/') {
            Some((t, sub)) if s.len() <= MAX_MIME_CHARS && token(t) && token(sub) => {
                Ok(Self(s.to_owned()))
            }
            _ => Err(ReportError::Mime(field)),
        }
    }

    /// A media type the worker computed (`detectedMime`, `sniffedMime`).
    pub fn parse(s: &str) -> Result<Self, ReportError> {
        Self::parse_field("detectedMime", s)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the worker concluded about an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Size, digest and content policy passed: the upload becomes an attachment.
    Accepted,
    /// Refused, with the uploader-facing reason.
    Rejected { code: RejectCode, detail: String },
}

/// What reading the object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// Its SHA-256.
    pub sha256: ContentHash,
    /// What the magic bytes said.
    pub sniffed_mime: Option<MediaType>,
    /// The type to store and serve.
    pub detected_mime: MediaType,
}

/// One upload's verification outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The upload session.
    pub upload_id: Uuid,
    /// The object's size in bytes.
    pub size: u64,
    /// What reading it found.
    pub content: Content,
    /// Accepted or rejected.
    pub decision: Decision,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReportWire {
    upload_id: Option<String>,
    outcome: Option<String>,
    size: Option<serde_json::Number>,
    sha256: Option<String>,
    sniffed_mime: Option<String>,
    detected_mime: Option<String>,
    reject_code: Option<String>,
    reject_detail: Option<String>,
}

fn parse_uuid(field: &'static str, s: &str) -> Result<Uuid, ReportError> {
    // The canonical hyphenated form only, like every id on the API.
    if s.len() == 36
        && let Ok(u) = Uuid::try_parse(s)
    {
        return Ok(u);
    }
    Err(ReportError::Uuid(field))
}

fn check_detail(detail: &str) -> Result<(), ReportError> {
    let n = detail.chars().count();
    if n == 0 || n > MAX_REJECT_DETAIL_CHARS || detail.chars().any(char::is_control) {
        return Err(ReportError::RejectDetail);
    }
    Ok(())
}

/// `detail` made acceptable as a `rejectDetail`: control characters replaced by spaces, cut to
/// [`MAX_REJECT_DETAIL_CHARS`] characters, a placeholder when empty.
pub fn clamp_detail(detail: &str) -> String {
    let s: String = detail
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REJECT_DETAIL_CHARS)
        .collect();
    if s.trim().is_empty() {
        "The upload was refused.".to_owned()
    } else {
        s
    }
}

impl Report {
    /// A report built by the worker: the same rules as [`Report::parse`].
    pub fn new(
        upload_id: Uuid,
        size: u64,
        content: Content,
        decision: Decision,
    ) -> Result<Self, ReportError> {
        let r = Self {
            upload_id,
            size,
            content,
            decision,
        };
        r.check()?;
        Ok(r)
    }

    fn check(&self) -> Result<(), ReportError> {
        if i64::try_from(self.size).is_err() {
            return Err(ReportError::Size);
        }
        match &self.decision {
            Decision::Accepted => Ok(()),
            Decision::Rejected { detail, .. } => check_detail(detail),
        }
    }

    /// The outcome's wire word.
    pub fn outcome(&self) -> &'static str {
        match self.decision {
            Decision::Accepted => "accepted",
            Decision::Rejected { .. } => "rejected",
        }
    }

    /// The reject code, when rejected.
    pub fn reject_code(&self) -> Option<RejectCode> {
        match &self.decision {
            Decision::Accepted => None,
            Decision::Rejected { code, .. } => Some(*code),
        }
    }

    /// Parses a received body.
    pub fn parse(body: &[u8]) -> Result<Self, ReportError> {
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ReportError::Shape);
        }
        // Duplicate members are refused by the derived Deserialize: a signed body must not be
        // ambiguous.
        let w: ReportWire = serde_json::from_slice(body).map_err(|_| ReportError::Shape)?;
        let upload_id = parse_uuid(
            "uploadId",
            w.upload_id.as_deref().ok_or(ReportError::Shape)?,
        )?;
        let size = w
            .size
            .as_ref()
            .ok_or(ReportError::Shape)?
            .as_u64()
            .ok_or(ReportError::Size)?;
        let sha256 = ContentHash::parse(w.sha256.as_deref().ok_or(ReportError::Shape)?)
            .map_err(|_| ReportError::Sha256)?;
        let sniffed = w
            .sniffed_mime
            .as_deref()
            .map(|s| MediaType::parse_field("sniffedMime", s))
            .transpose()?;
        let detected_mime = MediaType::parse_field(
            "detectedMime",
            w.detected_mime.as_deref().ok_or(ReportError::Shape)?,
        )?;
        let content = Content {
            sha256,
            sniffed_mime: sniffed,
            detected_mime,
        };
        let decision = match w.outcome.as_deref().ok_or(ReportError::Shape)? {
            "accepted" => {
                if w.reject_code.is_some() || w.reject_detail.is_some() {
                    return Err(ReportError::Inconsistent);
                }
                Decision::Accepted
            }
            "rejected" => {
                let code = w.reject_code.as_deref().ok_or(ReportError::Inconsistent)?;
                let code = RejectCode::parse(code).ok_or(ReportError::RejectCode)?;
                let detail = w.reject_detail.ok_or(ReportError::Inconsistent)?;
                Decision::Rejected { code, detail }
            }
            _ => return Err(ReportError::Outcome),
        };
        Self::new(upload_id, size, content, decision)
    }

    /// The JSON body (compact, members in the documented order, nulls written out).
    pub fn to_json(&self) -> Vec<u8> {
        let (code, detail) = match &self.decision {
            Decision::Accepted => (None, None),
            Decision::Rejected { code, detail } => (Some(code.as_str()), Some(detail.as_str())),
        };
        let c = &self.content;
        let v = serde_json::json!({
            "uploadId": self.upload_id.hyphenated().to_string(),
            "outcome": self.outcome(),
            "size": self.size,
            "sha256": c.sha256.as_str(),
            "sniffedMime": c.sniffed_mime.as_ref().map(MediaType::as_str),
            "detectedMime": c.detected_mime.as_str(),
            "rejectCode": code,
            "rejectDetail": detail,
        });
        // `json!` keeps insertion order only with serde_json's preserve_order; write the members
        // in order ourselves so the signed bytes are the documented shape either way.
        let mut out = Vec::with_capacity(256);
        out.push(b'{');
        for (i, k) in [
            "uploadId",
            "outcome",
            "size",
            "sha256",
            "sniffedMime",
            "detectedMime",
            "rejectCode",
            "rejectDetail",
        ]
        .iter()
        .enumerate()
        {
            if i > 0 {
                out.push(b',');
            }
            // Strings, integers and nulls only: serializing cannot fail.
            out.extend(serde_json::to_vec(k).unwrap_or_default());
            out.push(b':');
            out.extend(serde_json::to_vec(&v[*k]).unwrap_or_default());
        }
        out.push(b'}');
        out
    }
}

/// Where the session ended up, as the callback recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerState {
    /// The attachment exists.
    Done,
    /// The upload is refused (the worker's reason, or one of the app's: the message is gone).
    Rejected,
}

impl AnswerState {
    /// The wire word.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Rejected => "rejected",
        }
    }
}

/// The callback's `200` answer to a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The attachment's id (the session's `attachment_id`, whether or not the row exists).
    pub attachment_id: Uuid,
    /// Done or rejected.
    pub state: AnswerState,
    /// The object is nobody's content (rejected, or the tenant held the content already): the
    /// worker deletes it.
    pub delete_object: bool,
    /// The scan job the callback created for the new content (an accepted upload whose content is
    /// not judged yet): the worker may answer it with the verdict of the pass that verified it.
    pub scan_job_id: Option<Uuid>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerWire {
    attachment_id: String,
    state: String,
    delete_object: bool,
    #[serde(default)]
    scan_job_id: Option<String>,
}

impl Answer {
    /// Parses the callback's answer.
    pub fn parse(body: &[u8]) -> Result<Self, ReportError> {
        let w: AnswerWire = serde_json::from_slice(body).map_err(|_| ReportError::Shape)?;
        let state = match w.state.as_str() {
            "done" => AnswerState::Done,
            "rejected" => AnswerState::Rejected,
            _ => return Err(ReportError::State),
        };
        Ok(Self {
            attachment_id: parse_uuid("attachmentId", &w.attachment_id)?,
            state,
            delete_object: w.delete_object,
            scan_job_id: w
                .scan_job_id
                .as_deref()
                .map(|s| parse_uuid("scanJobId", s))
                .transpose()?,
        })
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        let w = AnswerWire {
            attachment_id: self.attachment_id.hyphenated().to_string(),
            state: self.state.as_str().to_owned(),
            delete_object: self.delete_object,
            scan_job_id: self.scan_job_id.map(|u| u.hyphenated().to_string()),
        };
        serde_json::to_vec(&w).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const U: &str = "3f1e0c9a-9d57-4c1b-8f11-2b6a4c0e7d21";
    const H: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn content(sniffed: Option<&str>, detected: &str) -> Content {
        Content {
            sha256: ContentHash::parse(H).unwrap(),
            sniffed_mime: sniffed.map(|s| MediaType::parse(s).unwrap()),
            detected_mime: MediaType::parse(detected).unwrap(),
        }
    }

    #[test]
    fn accepted_report_is_the_documented_shape() {
        let r = Report::new(
            Uuid::parse_str(U).unwrap(),
            5,
            content(Some("application/pdf"), "application/pdf"),
            Decision::Accepted,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(r.to_json()).unwrap(),
            format!(
                r#"{{"uploadId":"{U}","outcome":"accepted","size":5,"sha256":"{H}","sniffedMime":"application/pdf","detectedMime":"application/pdf","rejectCode":null,"rejectDetail":null}}"#
            )
        );
        assert_eq!(Report::parse(&r.to_json()).unwrap(), r);
    }

    #[test]
    fn rejected_reports_round_trip() {
        let r = Report::new(
            Uuid::parse_str(U).unwrap(),
            9,
            content(None, "application/octet-stream"),
            Decision::Rejected {
                code: RejectCode::BlockedFileType,
                detail: "Executable content (ELF) is not allowed.".into(),
            },
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(v["rejectCode"], "blocked_file_type");
        assert!(v["sniffedMime"].is_null());
        assert_eq!(Report::parse(&r.to_json()).unwrap(), r);

        // The largest size the database can hold.
        let r = Report::new(
            Uuid::parse_str(U).unwrap(),
            u64::try_from(i64::MAX).unwrap(),
            content(None, "text/plain"),
            Decision::Rejected {
                code: RejectCode::SizeMismatch,
                detail: "The object has 9 bytes; 5 were claimed.".into(),
            },
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(v["sha256"], H);
        assert_eq!(Report::parse(&r.to_json()).unwrap(), r);
    }

    #[test]
    fn bad_reports_are_refused_when_built() {
        let id = Uuid::parse_str(U).unwrap();
        assert_eq!(
            Report::new(id, 1 << 63, content(None, "text/plain"), Decision::Accepted).unwrap_err(),
            ReportError::Size
        );
        for detail in [String::new(), "a\nb".into(), "é".repeat(501)] {
            assert_eq!(
                Report::new(
                    id,
                    1,
                    content(None, "text/plain"),
                    Decision::Rejected {
                        code: RejectCode::SizeMismatch,
                        detail
                    }
                )
                .unwrap_err(),
                ReportError::RejectDetail
            );
        }
    }

    #[test]
    fn refusals_when_parsed() {
        let body = |over: &[(&str, serde_json::Value)]| {
            let mut v = serde_json::json!({"uploadId": U, "outcome": "accepted", "size": 5, "sha256": H,
                "sniffedMime": null, "detectedMime": "text/plain", "rejectCode": null, "rejectDetail": null});
            for (k, x) in over {
                if x == &serde_json::json!("<absent>") {
                    v.as_object_mut().unwrap().remove(*k);
                } else {
                    v[*k] = x.clone();
                }
            }
            serde_json::to_vec(&v).unwrap()
        };
        use serde_json::json;
        assert!(Report::parse(&body(&[])).is_ok());
        // Absent nullable members read as null.
        assert!(Report::parse(&body(&[("sniffedMime", json!("<absent>"))])).is_ok());
        let cases: Vec<(Vec<u8>, ReportError)> = vec![
            (b"[]".to_vec(), ReportError::Shape),
            (b"nope".to_vec(), ReportError::Shape),
            (body(&[("extra", json!(1))]), ReportError::Shape),
            (body(&[("uploadId", json!("<absent>"))]), ReportError::Shape),
            (
                body(&[("uploadId", json!("x"))]),
                ReportError::Uuid("uploadId"),
            ),
            (
                body(&[("uploadId", json!(U.replace('-', "")))]),
                ReportError::Uuid("uploadId"),
            ),
            (body(&[("outcome", json!("maybe"))]), ReportError::Outcome),
            (body(&[("outcome", json!(1))]), ReportError::Shape),
            (body(&[("size", json!(-1))]), ReportError::Size),
            (body(&[("size", json!(1.5))]), ReportError::Size),
            (body(&[("size", json!("5"))]), ReportError::Shape),
            (body(&[("size", json!(u64::MAX))]), ReportError::Size),
            (
                body(&[("sha256", json!(H.to_uppercase()))]),
                ReportError::Sha256,
            ),
            (body(&[("sha256", json!(&H[1..]))]), ReportError::Sha256),
            (
                body(&[("detectedMime", json!("Text/Plain"))]),
                ReportError::Mime("detectedMime"),
            ),
            (
                body(&[("detectedMime", json!("text/plain; charset=utf-8"))]),
                ReportError::Mime("detectedMime"),
            ),
            (
                body(&[("sniffedMime", json!("nope"))]),
                ReportError::Mime("sniffedMime"),
            ),
            (
                body(&[("detectedMime", json!(format!("a/{}", "b".repeat(254))))]),
                ReportError::Mime("detectedMime"),
            ),
            // Accepted with a reason; what reading found is never absent.
            (
                body(&[("rejectCode", json!("size_mismatch"))]),
                ReportError::Inconsistent,
            ),
            (
                body(&[("rejectDetail", json!("x"))]),
                ReportError::Inconsistent,
            ),
            (body(&[("sha256", json!(null))]), ReportError::Shape),
            (body(&[("detectedMime", json!(null))]), ReportError::Shape),
            (
                body(&[("detectedMime", json!("<absent>"))]),
                ReportError::Shape,
            ),
            // Rejected without a reason, or with one the worker does not give.
            (
                body(&[("outcome", json!("rejected"))]),
                ReportError::Inconsistent,
            ),
            (
                body(&[
                    ("outcome", json!("rejected")),
                    ("rejectCode", json!("message_gone")),
                    ("rejectDetail", json!("x")),
                ]),
                ReportError::RejectCode,
            ),
            (
                body(&[
                    ("outcome", json!("rejected")),
                    ("rejectCode", json!("size_mismatch")),
                    ("rejectDetail", json!("")),
                ]),
                ReportError::RejectDetail,
            ),
        ];
        for (b, want) in cases {
            assert_eq!(
                Report::parse(&b),
                Err(want),
                "{}",
                String::from_utf8_lossy(&b)
            );
        }
        // A duplicate member makes a signed body ambiguous.
        let dup = format!(
            r#"{{"uploadId":"{U}","outcome":"accepted","outcome":"rejected","size":5,"sha256":"{H}","sniffedMime":null,"detectedMime":"text/plain","rejectCode":null,"rejectDetail":null}}"#
        );
        assert_eq!(Report::parse(dup.as_bytes()), Err(ReportError::Shape));
    }

    #[test]
    fn error_messages_never_echo_values() {
        let b = format!(
            r#"{{"uploadId":"<script>","outcome":"accepted","size":5,"sha256":"{H}","sniffedMime":null,"detectedMime":"text/plain","rejectCode":null,"rejectDetail":null}}"#
        );
        assert!(
            !Report::parse(b.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("<script>")
        );
    }

    #[test]
    fn answers() {
        let a = Answer {
            attachment_id: Uuid::parse_str(U).unwrap(),
            state: AnswerState::Done,
            delete_object: false,
            scan_job_id: Some(Uuid::parse_str(U).unwrap()),
        };
        assert_eq!(Answer::parse(&a.to_json()).unwrap(), a);
        let parsed = Answer::parse(
            format!(r#"{{"attachmentId":"{U}","state":"rejected","deleteObject":true,"scanJobId":null,"later":1}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            (parsed.state, parsed.delete_object, parsed.scan_job_id),
            (AnswerState::Rejected, true, None),
            "unknown members are ignored, null is none"
        );
        for bad in [
            format!(r#"{{"attachmentId":"{U}","state":"pending","deleteObject":true}}"#),
            r#"{"attachmentId":"x","state":"done","deleteObject":true}"#.to_owned(),
            format!(r#"{{"attachmentId":"{U}","state":"done"}}"#),
            format!(r#"{{"attachmentId":"{U}","state":"done","deleteObject":"yes"}}"#),
            format!(
                r#"{{"attachmentId":"{U}","state":"done","deleteObject":false,"scanJobId":"x"}}"#
            ),
        ] {
            assert!(Answer::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn clamped_details_are_acceptable() {
        for raw in ["", " ", "a\u{7}b", &"é".repeat(900)] {
            let d = clamp_detail(raw);
            assert!(check_detail(&d).is_ok(), "{raw:?} -> {d:?}");
        }
        assert_eq!(clamp_detail("a\nb"), "a b");
    }

    proptest! {
        #[test]
        fn round_trip(
            id in any::<u128>(),
            size in 0u64..(1 << 63),
            sha in proptest::string::string_regex("[0-9a-f]{64}").unwrap(),
            sniffed in proptest::option::of(proptest::string::string_regex("[a-z]{1,10}/[a-z0-9.+-]{1,20}").unwrap()),
            detected in proptest::string::string_regex("[a-z]{1,10}/[a-z0-9.+-]{1,20}").unwrap(),
            code in proptest::option::of(0usize..3),
            detail in proptest::string::string_regex("[ -~é]{1,500}").unwrap(),
        ) {
            let decision = match code {
                None => Decision::Accepted,
                Some(i) => Decision::Rejected { code: RejectCode::ALL[i], detail },
            };
            let content = Content {
                sha256: ContentHash::parse(&sha).unwrap(),
                sniffed_mime: sniffed.as_deref().map(|s| MediaType::parse(s).unwrap()),
                detected_mime: MediaType::parse(&detected).unwrap(),
            };
            let r = Report::new(Uuid::from_u128(id), size, content, decision).unwrap();
            prop_assert_eq!(Report::parse(&r.to_json()).unwrap(), r);
        }

        #[test]
        fn parser_never_panics(s in ".{0,300}") {
            let _ = Report::parse(s.as_bytes());
            let _ = Answer::parse(s.as_bytes());
        }
    }
}
