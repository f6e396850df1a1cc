//! From what the scanner said to the verdict the callback receives (`openapi.yaml`, `ScanCallback`;
//! `docs/api.md`, "Virus scanning").
//!
//! | clamd | status | why |
//! |---|---|---|
//! | `stream: OK` | `clean` | |
//! | `Heuristics.Limits.Exceeded.*` FOUND | `error` | clamd gave up on part of the content (`AlertExceedsMax`): not scanned, not clean |
//! | other `Heuristics.*`, `PUA.*` FOUND | `suspicious` | heuristic or potentially unwanted: quarantined like infected, but named differently for the UI |
//! | any other FOUND | `infected` | a signature matched |
//! | size limit ERROR | `error` | clamd refused the length (should not happen: the worker's cap is below clamd's) |
//! | object above the worker's cap | `error` | "too large to scan": never sent, never a silent clean |
//! | other ERROR, no answer, connection refused | (none) | transient: the job is retried with backoff |

/// The verdict statuses of the callback body (scan-core's wire type).
pub use scan_core::callback::VerdictStatus as Status;

/// A decided verdict, before it is addressed and timed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    /// The threat's name, when one matched.
    pub signature: Option<String>,
    /// One human-readable line for the UI and operators.
    pub details: String,
}

/// The verdict for a clamd answer, or `Err(reason)` when clamd could not decide (retry later).
pub fn from_answer(answer: &crate::clamd::Answer) -> Result<Verdict, String> {
    use crate::clamd::Answer;
    match answer {
        Answer::Clean => Ok(Verdict {
            status: Status::Clean,
            signature: None,
            details: "no threat found".into(),
        }),
        Answer::Found(name) => {
            let status = if name.starts_with("Heuristics.Limits.Exceeded") {
                Status::Error
            } else if name.starts_with("Heuristics.") || name.starts_with("PUA.") {
                Status::Suspicious
            } else {
                Status::Infected
            };
            let details = match status {
                Status::Error => format!(
                    "not scanned completely: the content exceeds the scanner's limits ({name})"
                ),
                _ => format!("{name} found"),
            };
            Ok(Verdict {
                status,
                signature: Some(name.clone()),
                details,
            })
        }
        Answer::SizeLimit => Ok(Verdict {
            status: Status::Error,
            signature: None,
            details: "too large to scan: the scanner refused the stream (StreamMaxLength)".into(),
        }),
        Answer::Error(msg) => Err(format!("clamd could not scan: {msg}")),
    }
}

/// The verdict for content the worker does not send because it exceeds its cap.
pub fn too_large(size: u64, cap: u64) -> Verdict {
    Verdict {
        status: Status::Error,
        signature: None,
        details: format!(
            "too large to scan: {size} bytes, the scanner accepts at most {cap} bytes"
        ),
    }
}

/// The exact bytes to sign and post: scan-core's callback body
/// `{"tenantId","contentHash","status","engine","signature","details","scannedAt"}`, addressed to the
/// stored content (every attachment sharing it sees the verdict). Texts are cut to the callback's
/// limits; `Err` only for a malformed content hash.
pub fn callback_body(
    tenant_id: uuid::Uuid,
    content_hash: &str,
    verdict: &Verdict,
    engine: &str,
    scanned_at: i64,
) -> Result<Vec<u8>, String> {
    use scan_core::callback::{self as cb, Callback, ContentHash};
    let clip = |s: &str, max: usize| -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(max)
            .collect()
    };
    let hash = ContentHash::parse(content_hash).map_err(|e| format!("content hash: {e}"))?;
    let engine = clip(engine, cb::MAX_ENGINE_CHARS);
    let signature = verdict
        .signature
        .as_deref()
        .map(|s| clip(s, cb::MAX_SIGNATURE_CHARS));
    let details = cb::clamp_details(&verdict.details);
    let wire = cb::Verdict::new(
        verdict.status,
        Some(&engine),
        signature.as_deref(),
        Some(&details),
        scanned_at,
    )
    .map_err(|e| format!("verdict: {e}"))?;
    Ok(Callback::by_content(tenant_id, hash, wire).to_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clamd::Answer;

    #[test]
    fn maps_answers() {
        let v = from_answer(&Answer::Clean).unwrap();
        assert_eq!(v.status, Status::Clean);
        assert_eq!(v.signature, None);
        let v = from_answer(&Answer::Found("Attachments.Test.EICAR.UNOFFICIAL".into())).unwrap();
        assert_eq!(
            (v.status, v.signature.as_deref()),
            (Status::Infected, Some("Attachments.Test.EICAR.UNOFFICIAL"))
        );
        assert!(v.details.contains("Attachments.Test.EICAR"));
        assert_eq!(
            from_answer(&Answer::Found(
                "Heuristics.Limits.Exceeded.MaxFileSize".into()
            ))
            .unwrap()
            .status,
            Status::Error
        );
        assert_eq!(
            from_answer(&Answer::Found("Heuristics.Encrypted.Zip".into()))
                .unwrap()
                .status,
            Status::Suspicious
        );
        assert_eq!(
            from_answer(&Answer::Found("PUA.Win.Tool.Foo".into()))
                .unwrap()
                .status,
            Status::Suspicious
        );
        let v = from_answer(&Answer::SizeLimit).unwrap();
        assert_eq!(v.status, Status::Error);
        assert!(v.details.starts_with("too large to scan"));
        assert!(from_answer(&Answer::Error("Can't allocate memory".into())).is_err());
        let v = too_large(70, 60);
        assert_eq!(v.status, Status::Error);
        assert!(v.details.starts_with("too large to scan"), "{}", v.details);
    }

    #[test]
    fn body_shape() {
        let t = uuid::Uuid::parse_str("6f1c1d5e-8c1b-4d5e-9f00-000000000001").unwrap();
        let h = "44d88612fea8a8f36de82e1278abb02f44d88612fea8a8f36de82e1278abb02f";
        let v = from_answer(&Answer::Found("X.Y".into())).unwrap();
        let b: serde_json::Value = serde_json::from_slice(
            &callback_body(t, h, &v, "ClamAV 1.4.6", 1_700_000_000_123).unwrap(),
        )
        .unwrap();
        assert_eq!(
            b,
            serde_json::json!({"tenantId": t.to_string(), "contentHash": h, "status": "infected",
                "engine": "ClamAV 1.4.6", "signature": "X.Y", "details": "X.Y found", "scannedAt": 1_700_000_000_123i64})
        );
        // What the callback will parse.
        let body = callback_body(t, h, &v, &"e".repeat(500), 1_700_000_000_123).unwrap();
        let parsed = scan_core::callback::Callback::parse(&body, 1_700_000_000_123).unwrap();
        assert_eq!(parsed.verdict.status, Status::Infected);
        let clean = from_answer(&Answer::Clean).unwrap();
        let b: serde_json::Value =
            serde_json::from_slice(&callback_body(t, h, &clean, "e", 1_700_000_000_000).unwrap())
                .unwrap();
        assert_eq!(b["status"], "clean");
        assert!(b["signature"].is_null());
        assert!(callback_body(t, "nothex", &clean, "e", 1_700_000_000_000).is_err());
    }
}
