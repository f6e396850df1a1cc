//! What the audit log records about verdicts and quarantine: the action and its details, decided
//! here so the rows are the same whoever writes them. The audit log is shown to tenant admins, so no
//! row carries a storage key.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::callback::Verdict;
use crate::quarantine::Recorded;
use crate::verdict::{Decision, Ignored, ScanStatus};

/// The resource type of every scan audit row: the content, shared by its attachments.
pub const RESOURCE_TYPE: &str = "attachment_blob";

/// One audit row's action and details.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// e.g. `scan.verdict`.
    pub action: &'static str,
    /// A JSON object.
    pub details: Value,
}

/// The facts of one decided callback.
#[derive(Debug, Clone, Copy)]
pub struct Decided<'a> {
    /// What the state machine (and the database) made of it.
    pub decision: Decision,
    /// The verdict received.
    pub verdict: &'a Verdict,
    /// The status in force before.
    pub previous: ScanStatus,
    /// The content's hash.
    pub content_hash: &'a str,
    /// The attachment the callback named, if it named one.
    pub attachment: Option<Uuid>,
    /// How many open scan jobs it completed.
    pub jobs_completed: u64,
    /// The name of the scanner whose secret signed the callback
    /// ([`crate::signature::Signed::scanner`]).
    pub scanner: &'a str,
}

/// The row of a decided callback: `scan.verdict` when it applied, `scan.verdict_ignored` when it
/// would have released quarantined content (worth an operator's eye: a scanner says quarantined
/// content is fine now), nothing for replays, kept-clean and refused verdicts. `details.scanner` names
/// the scanner whose secret signed it.
pub fn verdict(d: &Decided<'_>) -> Option<Entry> {
    let action = match d.decision {
        Decision::Apply { .. } => "scan.verdict",
        Decision::Ignore(Ignored::Quarantined) => "scan.verdict_ignored",
        Decision::Ignore(_) => return None,
    };
    let v = d.verdict;
    let mut details = json!({
        "status": v.status.as_str(),
        "previousStatus": d.previous.as_str(),
        "scannedAt": v.scanned_at,
        "engine": v.engine.as_ref().map(|t| t.as_str()),
        "signature": v.signature.as_ref().map(|t| t.as_str()),
        "contentHash": d.content_hash,
        "attachmentId": d.attachment.map(|a| a.hyphenated().to_string()),
        "jobsCompleted": d.jobs_completed,
        "scanner": d.scanner,
    });
    if let Decision::Ignore(why) = d.decision {
        details["reason"] = why.as_str().into();
    }
    Some(Entry { action, details })
}

/// The `attachment.quarantine` row: how the object left its key.
pub fn quarantine(action: Recorded, content_hash: &str) -> Entry {
    Entry {
        action: "attachment.quarantine",
        details: json!({ "action": action.as_str(), "contentHash": content_hash }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::VerdictStatus;

    const H: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn decided(decision: Decision, verdict: &Verdict) -> Decided<'_> {
        Decided {
            decision,
            verdict,
            previous: ScanStatus::Infected,
            content_hash: H,
            attachment: Some(Uuid::from_u128(1)),
            jobs_completed: 2,
            scanner: "scan-worker",
        }
    }

    #[test]
    fn applied_and_quarantine_refusals_are_recorded_replays_are_not() {
        let v = Verdict::new(
            VerdictStatus::Clean,
            Some("ClamAV"),
            None,
            None,
            1_790_000_000_000,
        )
        .unwrap();
        let e = verdict(&decided(Decision::Apply { quarantine: false }, &v)).unwrap();
        assert_eq!(e.action, "scan.verdict");
        assert_eq!(
            e.details,
            json!({
                "status": "clean", "previousStatus": "infected", "scannedAt": 1_790_000_000_000i64,
                "engine": "ClamAV", "signature": null, "contentHash": H,
                "attachmentId": "00000000-0000-0000-0000-000000000001", "jobsCompleted": 2,
                "scanner": "scan-worker",
            })
        );
        let e = verdict(&decided(Decision::Ignore(Ignored::Quarantined), &v)).unwrap();
        assert_eq!(e.action, "scan.verdict_ignored");
        assert_eq!(e.details["reason"], "quarantined");
        for why in [Ignored::Replay, Ignored::KeptClean, Ignored::Refused] {
            assert_eq!(
                verdict(&decided(Decision::Ignore(why), &v)),
                None,
                "{why:?}"
            );
        }
        let mut by_content = decided(Decision::Apply { quarantine: false }, &v);
        by_content.attachment = None;
        assert_eq!(
            verdict(&by_content).unwrap().details["attachmentId"],
            Value::Null
        );
    }

    #[test]
    fn quarantine_rows_name_the_action_and_no_key() {
        let e = quarantine(Recorded::Moved, H);
        assert_eq!(e.action, "attachment.quarantine");
        assert_eq!(e.details, json!({ "action": "moved", "contentHash": H }));
    }
}
