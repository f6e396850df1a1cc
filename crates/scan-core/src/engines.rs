//! Verdicts from several engines: each engine's own result on a content (which engine, its
//! version and signature version, what it said, the detection names, when), and the rule that
//! turns them into the content's one status.
//!
//! The content's status is the worst of the engines that gave an opinion, where `infected` is worse
//! than `suspicious`, which is worse than `clean`, which is worse than `error`:
//!
//! * a finding (`infected`, `suspicious`) of any engine is in force whatever the others say: an
//!   `error` or a `clean` from one engine never hides another's `infected`;
//! * `error` ranks *below* `clean`: an engine that could not scan (an outage, a quota, content too
//!   large for it) says nothing about the content, so it must neither block content another engine
//!   judged clean nor make it look scanned. Content only some engine failed on, and none judged, is
//!   `error`;
//! * an engine that has no opinion (VirusTotal for content it does not know and may not upload)
//!   reports nothing at all: "no opinion" is not an error, and it leaves no record.
//!
//! The callback applies verdicts one at a time through the state machine ([`crate::verdict::decide`]),
//! which arrives at the same status in whatever order the engines answer ([`combine`] is the rule
//! it keeps; the tests check the two agree).

use serde::Serialize;

use crate::callback::VerdictStatus;
use crate::verdict::ScanStatus;

/// Longest engine key.
pub const MAX_ENGINE_KEY_CHARS: usize = 40;

/// Which engine a verdict came from: the first word of the callback's `engine` text, lower case
/// (`ClamAV 1.0.7/27000/Tue Dec  5 08:24:04 2026` → `clamav`, `VirusTotal` → `virustotal`);
/// `unknown` when the scanner named none (or named it with other characters than
/// `[a-z0-9._-]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EngineKey(String);

impl EngineKey {
    /// The engine key of ClamAV's verdicts.
    pub const CLAMAV: &'static str = "clamav";
    /// The engine key of VirusTotal's verdicts.
    pub const VIRUSTOTAL: &'static str = "virustotal";

    /// The key of a callback's `engine` text.
    pub fn of(engine: Option<&str>) -> Self {
        let word = engine
            .and_then(|e| e.split_whitespace().next())
            .map(str::to_ascii_lowercase)
            .filter(|w| {
                !w.is_empty()
                    && w.chars().count() <= MAX_ENGINE_KEY_CHARS
                    && w.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_".contains(&b)
                    })
            });
        Self(word.unwrap_or_else(|| "unknown".to_owned()))
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What an engine's `engine` text says about its version: the engine's own version and, for
/// ClamAV, the version of its signature database (the number after the first `/` in clamd's
/// `VERSION` answer, `ClamAV 1.0.7/27000/<date>`; it grows with every signature update, so content
/// judged under a smaller one was judged with older signatures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineVersion {
    /// e.g. `1.0.7`; `None` when the text names no version.
    pub version: Option<String>,
    /// e.g. `27000`.
    pub signatures: Option<i64>,
}

impl EngineVersion {
    /// Parses the text after the engine's name.
    pub fn of(engine: Option<&str>) -> Self {
        let rest = engine
            .and_then(|e| e.trim().split_once(char::is_whitespace))
            .map(|(_, rest)| rest.trim())
            .unwrap_or("");
        let mut parts = rest.splitn(3, '/');
        let version = parts
            .next()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| v.chars().take(40).collect());
        let signatures = parts.next().and_then(|s| s.trim().parse::<i64>().ok());
        Self {
            version,
            signatures: signatures.filter(|n| *n >= 0),
        }
    }
}

/// The detection names of a verdict's `signature` text: engines that name several threats (the
/// VirusTotal engine names its top detections) join them with `", "`.
pub fn detection_names(signature: Option<&str>) -> Vec<String> {
    signature
        .map(|s| {
            s.split(", ")
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// How bad a status is, for [`combine`]: higher is worse. `None` for statuses that are no
/// engine's opinion (`pending`, `skipped`).
const fn rank(s: ScanStatus) -> Option<u8> {
    match s {
        ScanStatus::Error => Some(0),
        ScanStatus::Clean => Some(1),
        ScanStatus::Suspicious => Some(2),
        ScanStatus::Infected => Some(3),
        ScanStatus::Pending | ScanStatus::Skipped => None,
    }
}

/// The content's status from what its engines said (see the module docs): the worst opinion, or
/// `pending` while no engine gave one.
pub fn combine(opinions: impl IntoIterator<Item = VerdictStatus>) -> ScanStatus {
    opinions
        .into_iter()
        .map(VerdictStatus::stored)
        .max_by_key(|s| rank(*s))
        .unwrap_or(ScanStatus::Pending)
}

/// One engine's verdict on a content, as the scan-status route lists it (`engines: [...]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineVerdict {
    /// e.g. `clamav`, `virustotal`.
    pub engine: EngineKey,
    /// The engine's version text, e.g. `1.0.7`.
    pub version: Option<String>,
    /// Its signature database version, e.g. `27000` (ClamAV).
    pub signature_version: Option<i64>,
    /// What it said.
    pub status: ScanStatus,
    /// The threats it named.
    pub names: Vec<String>,
    /// When it scanned (the scanner's clock, epoch milliseconds).
    pub scanned_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Current, Decision, Incoming, decide};
    use ScanStatus as S;
    use VerdictStatus as V;
    use proptest::prelude::*;

    #[test]
    fn engine_keys() {
        let clamd = "ClamAV 1.0.7/27000/Tue Dec  5 08:24:04 2026";
        assert_eq!(EngineKey::of(Some(clamd)).as_str(), "clamav");
        assert_eq!(EngineKey::of(Some("ClamAV")).as_str(), "clamav");
        assert_eq!(EngineKey::of(Some("VirusTotal")).as_str(), "virustotal");
        assert_eq!(EngineKey::of(None).as_str(), "unknown");
        assert_eq!(EngineKey::of(Some("  ")).as_str(), "unknown");
        assert_eq!(EngineKey::of(Some("Clam'AV 1")).as_str(), "unknown");
        assert_eq!(EngineKey::of(Some(&"a".repeat(41))).as_str(), "unknown");
    }

    #[test]
    fn engine_versions() {
        let v = EngineVersion::of(Some("ClamAV 1.0.7/27000/Tue Dec  5 08:24:04 2026"));
        assert_eq!(v.version.as_deref(), Some("1.0.7"));
        assert_eq!(v.signatures, Some(27000));
        let v = EngineVersion::of(Some("ClamAV 1.4.2"));
        assert_eq!((v.version.as_deref(), v.signatures), (Some("1.4.2"), None));
        let v = EngineVersion::of(Some("VirusTotal v3"));
        assert_eq!((v.version.as_deref(), v.signatures), (Some("v3"), None));
        let v = EngineVersion::of(Some("ClamAV"));
        assert_eq!((v.version, v.signatures), (None, None));
        assert_eq!(EngineVersion::of(Some("ClamAV 1/x/y")).signatures, None);
        assert_eq!(EngineVersion::of(Some("ClamAV 1/-4/y")).signatures, None);
    }

    #[test]
    fn names() {
        assert_eq!(
            detection_names(Some("Win.Test.EICAR_HDB-1, EICAR-Test-File")),
            ["Win.Test.EICAR_HDB-1", "EICAR-Test-File"]
        );
        assert_eq!(detection_names(Some("X.Y")), ["X.Y"]);
        assert!(detection_names(None).is_empty());
    }

    #[test]
    fn the_worst_opinion() {
        assert_eq!(combine([]), S::Pending);
        assert_eq!(combine([V::Error]), S::Error);
        assert_eq!(combine([V::Error, V::Clean]), S::Clean);
        assert_eq!(combine([V::Clean, V::Error]), S::Clean);
        assert_eq!(combine([V::Error, V::Infected]), S::Infected);
        assert_eq!(combine([V::Clean, V::Suspicious]), S::Suspicious);
        assert_eq!(combine([V::Suspicious, V::Infected, V::Clean]), S::Infected);
    }

    #[test]
    fn an_engine_verdict_as_json() {
        let v = EngineVerdict {
            engine: EngineKey::of(Some("ClamAV 1.0.7/27000/x")),
            version: Some("1.0.7".into()),
            signature_version: Some(27000),
            status: S::Infected,
            names: vec!["Eicar-Test-Signature".into()],
            scanned_at: 1_790_000_000_000,
        };
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"engine":"clamav","version":"1.0.7","signatureVersion":27000,"status":"infected","names":["Eicar-Test-Signature"],"scannedAt":1790000000000}"#
        );
    }

    fn arb_verdict() -> impl Strategy<Value = VerdictStatus> {
        (0usize..4).prop_map(|i| VerdictStatus::ALL[i])
    }

    proptest! {
        /// Whatever the engines say, in whatever order: a finding is never hidden, an error never
        /// outranks a clean, and the order does not matter.
        #[test]
        fn combining(
            (opinions, shuffled) in proptest::collection::vec(arb_verdict(), 0..10)
                .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        ) {
            let got = combine(opinions.iter().copied());
            prop_assert_eq!(got, combine(shuffled.iter().copied()));
            if opinions.contains(&V::Infected) {
                prop_assert_eq!(got, S::Infected);
            } else if opinions.contains(&V::Suspicious) {
                prop_assert_eq!(got, S::Suspicious);
            } else if opinions.contains(&V::Clean) {
                prop_assert_eq!(got, S::Clean);
            } else if opinions.contains(&V::Error) {
                prop_assert_eq!(got, S::Error);
            } else {
                prop_assert_eq!(got, S::Pending);
            }
            // Adding an error never changes a verdict that some engine gave.
            let mut more = opinions.clone();
            more.push(V::Error);
            if !opinions.is_empty() {
                prop_assert_eq!(combine(more), got);
            }
        }

        /// The callback's state machine, fed the engines' verdicts one by one in the order they
        /// arrive, ends in the combined status.
        #[test]
        fn the_state_machine_keeps_the_rule(
            arrivals in proptest::collection::vec((arb_verdict(), 1_000_000_000_000i64..1_000_000_100_000), 0..10),
        ) {
            let mut state = Current { status: S::Pending, scanned_at: None };
            for &(status, at) in &arrivals {
                if let Decision::Apply { .. } =
                    decide(state, Incoming { status, scanned_at: at })
                {
                    state = Current { status: status.stored(), scanned_at: Some(at) };
                }
            }
            prop_assert_eq!(state.status, combine(arrivals.iter().map(|&(s, _)| s)));
        }
    }
}
