//! The per-content verdict state machine: given the verdict in force and an incoming one, what
//! happens. A pure function ([`decide`]); the callback applies its answer in one transaction, with
//! the content's row locked, and the database trigger (`attachment_blobs_guard_verdict`) enforces
//! the two hard rules again (never leave `infected`; never go back in `scannedAt`).
//!
//! Verdicts are ordered by the scanner's `scannedAt`. An incoming verdict:
//!
//! 1. with the same `scannedAt` and status as the one in force is a **replay** (a retried or replayed
//!    callback): no-op;
//! 2. not newer than the one in force is **stale** (a late callback of an older scan): no-op, a newer
//!    verdict is never overwritten by an older one;
//! 3. otherwise it moves the state by this table (rows: in force; columns: incoming):
//!
//! | in force \ incoming | clean | infected | suspicious | error |
//! |---|---|---|---|---|
//! | `pending`, `skipped`, `error` | apply | apply + quarantine | apply + quarantine | apply |
//! | `clean` | apply (refresh) | apply + quarantine | apply + quarantine | ignored: *kept clean* |
//! | `suspicious` | ignored: *quarantined* | apply + quarantine | apply (refresh) | ignored: *quarantined* |
//! | `infected` | ignored: *quarantined* | apply (refresh) | ignored: *quarantined* | ignored: *quarantined* |
//!
//! Choices (the contract, `openapi.yaml` and `docs/api.md`, asks only that `infected` never silently becomes `clean`):
//! * `infected` and `suspicious` are both quarantine; the content was moved or deleted, and only an
//!   operator releases it (as the database owner). A newer `clean`/`error` for it is ignored, not an
//!   error: the scanner did its job, and a `4xx` would only make it retry. `infected` after
//!   `suspicious` applies (it confirms the quarantine); `suspicious` after `infected` is ignored (a
//!   weaker engine must not downgrade the finding).
//! * A failed rescan (`error`) of `clean` content is ignored: a scanner outage must not block content
//!   that was already judged clean.
//! * The same status with a newer `scannedAt` applies: engine, signature and details are refreshed.
//!
//! Every ignored verdict is answered `204` like an applied one.

/// The scan status of stored content (`attachment_blobs.scan_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanStatus {
    Pending,
    Clean,
    Infected,
    Suspicious,
    Error,
    Skipped,
}

impl ScanStatus {
    /// Every status.
    pub const ALL: [ScanStatus; 6] = [
        Self::Pending,
        Self::Clean,
        Self::Infected,
        Self::Suspicious,
        Self::Error,
        Self::Skipped,
    ];

    /// Parses the database string.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "clean" => Self::Clean,
            "infected" => Self::Infected,
            "suspicious" => Self::Suspicious,
            "error" => Self::Error,
            "skipped" => Self::Skipped,
            _ => return None,
        })
    }

    /// The database (and API) string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Clean => "clean",
            Self::Infected => "infected",
            Self::Suspicious => "suspicious",
            Self::Error => "error",
            Self::Skipped => "skipped",
        }
    }

    /// Whether content in this state is quarantined (never served; object moved or deleted).
    pub const fn is_quarantine(self) -> bool {
        matches!(self, Self::Infected | Self::Suspicious)
    }
}

impl serde::Serialize for ScanStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The verdict in force for content, as the scan-status route answers it (the API's `ScanStatus`
/// object).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InForce {
    /// The stored status.
    pub status: ScanStatus,
    /// The scanner's free text.
    pub details: Option<String>,
    /// The engine that decided it.
    pub engine: Option<String>,
    /// The threat name.
    pub signature: Option<String>,
    /// The scanner's time of the verdict (epoch milliseconds); `None` while no scanner has answered.
    pub scanned_at: Option<i64>,
}

use crate::callback::VerdictStatus;

/// The verdict in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    /// Its status.
    pub status: ScanStatus,
    /// Its `scannedAt` (`None` while no scanner has answered, e.g. `pending`).
    pub scanned_at: Option<i64>,
}

/// An incoming verdict, as far as the state machine cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming {
    /// The reported status.
    pub status: VerdictStatus,
    /// The scanner's `scannedAt`.
    pub scanned_at: i64,
}

/// Why a verdict changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ignored {
    /// The verdict in force, again (same `scannedAt` and status).
    Replay,
    /// Not newer than the verdict in force.
    Stale,
    /// Would release (or weaken) quarantined content: `infected`/`suspicious` → `clean`/`error`,
    /// `infected` → `suspicious`.
    Quarantined,
    /// A failed rescan (`error`) of content already judged `clean`.
    KeptClean,
}

impl Ignored {
    /// For logs and the audit trail.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Replay => "replay",
            Self::Stale => "stale",
            Self::Quarantined => "quarantined",
            Self::KeptClean => "kept_clean",
        }
    }

    /// Whether the verdict still answers the open scan jobs of the content (the scan happened and
    /// was judged; only a replay or a stale verdict may belong to a scan that is already accounted
    /// for or superseded).
    pub const fn completes_jobs(self) -> bool {
        matches!(self, Self::Quarantined | Self::KeptClean)
    }
}

/// What to do with an incoming verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Store it. `quarantine`: the content must be quarantined (it is `infected` or `suspicious`).
    Apply { quarantine: bool },
    /// Change nothing; answer `204` all the same.
    Ignore(Ignored),
}

impl Decision {
    /// Whether the verdict answers the content's open scan jobs (see [`Ignored::completes_jobs`]).
    pub const fn completes_jobs(self) -> bool {
        match self {
            Self::Apply { .. } => true,
            Self::Ignore(why) => why.completes_jobs(),
        }
    }

    /// For logs: `applied`, or why the verdict was ignored.
    pub const fn outcome(self) -> &'static str {
        match self {
            Self::Apply { .. } => "applied",
            Self::Ignore(why) => why.as_str(),
        }
    }

    /// The status in force once the decision is carried out.
    pub const fn status_after(self, current: ScanStatus, incoming: VerdictStatus) -> ScanStatus {
        match self {
            Self::Apply { .. } => incoming.stored(),
            Self::Ignore(_) => current,
        }
    }
}

/// The state machine (see the module docs).
pub fn decide(current: Current, incoming: Incoming) -> Decision {
    use ScanStatus as S;
    use VerdictStatus as V;
    if let Some(at) = current.scanned_at {
        if incoming.scanned_at == at && incoming.status.stored() == current.status {
            return Decision::Ignore(Ignored::Replay);
        }
        if incoming.scanned_at <= at {
            return Decision::Ignore(Ignored::Stale);
        }
    }
    let apply = Decision::Apply {
        quarantine: incoming.status.stored().is_quarantine(),
    };
    match (current.status, incoming.status) {
        (S::Pending | S::Skipped | S::Error, _) => apply,
        (S::Clean, V::Error) => Decision::Ignore(Ignored::KeptClean),
        (S::Clean, _) => apply,
        (S::Suspicious, V::Infected | V::Suspicious) => apply,
        (S::Infected, V::Infected) => apply,
        (S::Suspicious | S::Infected, _) => Decision::Ignore(Ignored::Quarantined),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ScanStatus as S;
    use VerdictStatus as V;
    use proptest::prelude::*;

    const T: i64 = 1_790_000_000_000;

    fn cur(status: ScanStatus, at: Option<i64>) -> Current {
        Current {
            status,
            scanned_at: at,
        }
    }

    fn inc(status: VerdictStatus, at: i64) -> Incoming {
        Incoming {
            status,
            scanned_at: at,
        }
    }

    const APPLY: Decision = Decision::Apply { quarantine: false };
    const QUARANTINE: Decision = Decision::Apply { quarantine: true };

    #[test]
    fn the_table() {
        use Decision::Ignore;
        let rows: [(ScanStatus, [Decision; 4]); 6] = [
            (S::Pending, [APPLY, QUARANTINE, QUARANTINE, APPLY]),
            (S::Skipped, [APPLY, QUARANTINE, QUARANTINE, APPLY]),
            (S::Error, [APPLY, QUARANTINE, QUARANTINE, APPLY]),
            (
                S::Clean,
                [APPLY, QUARANTINE, QUARANTINE, Ignore(Ignored::KeptClean)],
            ),
            (
                S::Suspicious,
                [
                    Ignore(Ignored::Quarantined),
                    QUARANTINE,
                    QUARANTINE,
                    Ignore(Ignored::Quarantined),
                ],
            ),
            (
                S::Infected,
                [
                    Ignore(Ignored::Quarantined),
                    QUARANTINE,
                    Ignore(Ignored::Quarantined),
                    Ignore(Ignored::Quarantined),
                ],
            ),
        ];
        for (from, want) in rows {
            for (to, want) in VerdictStatus::ALL.into_iter().zip(want) {
                let at = if from == S::Pending { None } else { Some(T) };
                assert_eq!(
                    decide(cur(from, at), inc(to, T + 1)),
                    want,
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn pending_clean_infected_and_never_back() {
        let mut state = cur(S::Pending, None);
        for (status, at, want) in [
            (V::Clean, T, APPLY),
            (V::Infected, T + 10, QUARANTINE),
            (V::Clean, T + 20, Decision::Ignore(Ignored::Quarantined)),
        ] {
            let d = decide(state, inc(status, at));
            assert_eq!(d, want);
            if let Decision::Apply { .. } = d {
                state = cur(status.stored(), Some(at));
            }
        }
        assert_eq!(state, cur(S::Infected, Some(T + 10)));
    }

    #[test]
    fn replays_and_stale() {
        let c = cur(S::Clean, Some(T));
        assert_eq!(
            decide(c, inc(V::Clean, T)),
            Decision::Ignore(Ignored::Replay)
        );
        assert_eq!(
            decide(c, inc(V::Infected, T)),
            Decision::Ignore(Ignored::Stale),
            "same time, other verdict"
        );
        assert_eq!(
            decide(c, inc(V::Infected, T - 1)),
            Decision::Ignore(Ignored::Stale)
        );
        // error content set by the job queue has no scannedAt: anything applies.
        assert_eq!(decide(cur(S::Error, None), inc(V::Clean, 1)), APPLY);
    }

    #[test]
    fn what_a_decision_does() {
        let applied = Decision::Apply { quarantine: true };
        assert!(applied.completes_jobs());
        assert_eq!(applied.outcome(), "applied");
        assert_eq!(applied.status_after(S::Clean, V::Infected), S::Infected);
        for (why, completes) in [
            (Ignored::Replay, false),
            (Ignored::Stale, false),
            (Ignored::Quarantined, true),
            (Ignored::KeptClean, true),
        ] {
            let d = Decision::Ignore(why);
            assert_eq!(d.completes_jobs(), completes, "{why:?}");
            assert_eq!(d.outcome(), why.as_str());
            assert_eq!(d.status_after(S::Infected, V::Clean), S::Infected);
        }
    }

    #[test]
    fn the_verdict_in_force_as_json() {
        let v = InForce {
            status: S::Infected,
            details: None,
            engine: Some("ClamAV 1.4".into()),
            signature: Some("Eicar-Test-Signature".into()),
            scanned_at: Some(T),
        };
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"status":"infected","details":null,"engine":"ClamAV 1.4","signature":"Eicar-Test-Signature","scannedAt":1790000000000}"#
        );
        for s in ScanStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(ScanStatus::parse(s.as_str()), Some(s));
        }
    }

    fn arb_status() -> impl Strategy<Value = ScanStatus> {
        (0usize..6).prop_map(|i| ScanStatus::ALL[i])
    }

    fn arb_verdict() -> impl Strategy<Value = VerdictStatus> {
        (0usize..4).prop_map(|i| VerdictStatus::ALL[i])
    }

    /// Applies a sequence of verdicts the way the callback does.
    fn run(start: Current, seq: &[(VerdictStatus, i64)]) -> Current {
        let mut state = start;
        for &(status, at) in seq {
            if let Decision::Apply { .. } = decide(state, inc(status, at)) {
                state = cur(status.stored(), Some(at));
            }
        }
        state
    }

    proptest! {
        /// The invariants, over any sequence of verdicts in any order.
        #[test]
        fn invariants(
            start in arb_status(),
            start_at in proptest::option::of(0i64..50),
            seq in proptest::collection::vec((arb_verdict(), 0i64..50), 0..12),
        ) {
            let start = cur(start, if start == S::Pending { None } else { start_at });
            let mut state = start;
            let mut was_quarantined = start.status.is_quarantine();
            for &(status, at) in &seq {
                let before = state;
                let d = decide(state, inc(status, at));
                if let Decision::Apply { quarantine } = d {
                    state = cur(status.stored(), Some(at));
                    prop_assert_eq!(quarantine, status.stored().is_quarantine());
                    // Never back in time, and strictly forward (so the trigger never refuses).
                    if let Some(b) = before.scanned_at { prop_assert!(at > b); }
                }
                // infected is never left; quarantine is never released.
                if before.status == S::Infected { prop_assert_eq!(state.status, S::Infected); }
                if was_quarantined { prop_assert!(state.status.is_quarantine()); }
                was_quarantined |= state.status.is_quarantine();
                // scannedAt never decreases.
                if let (Some(b), Some(a)) = (before.scanned_at, state.scanned_at) { prop_assert!(a >= b); }
                // Applying the same verdict again is a no-op.
                if let Decision::Apply { .. } = d {
                    prop_assert_eq!(decide(state, inc(status, at)), Decision::Ignore(Ignored::Replay));
                }
            }
        }

        /// Two verdicts, whichever order they arrive in, end in the same state when they differ in
        /// `scannedAt` and neither is refused as a release of quarantine; and in any order the
        /// state ends quarantined if the newest verdict quarantines.
        #[test]
        fn order_of_arrival(a in arb_verdict(), b in arb_verdict(), ta in 1i64..100, tb in 1i64..100) {
            prop_assume!(ta != tb);
            let start = cur(S::Pending, None);
            let ab = run(start, &[(a, ta), (b, tb)]);
            let ba = run(start, &[(b, tb), (a, ta)]);
            let (newest, newest_at) = if ta > tb { (a, ta) } else { (b, tb) };
            // In either order the newest verdict ends in force unless it was ignored by the table
            // after the older one had been applied.
            for end in [ab, ba] {
                if newest.stored().is_quarantine() {
                    prop_assert!(end.status.is_quarantine());
                }
                prop_assert!(end.scanned_at.is_some());
            }
            // Arriving newest-first, the older one is always stale.
            let newest_first = if ta > tb { ab } else { ba };
            prop_assert_eq!(newest_first, cur(newest.stored(), Some(newest_at)));
        }
    }
}
