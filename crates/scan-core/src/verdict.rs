//! The per-content verdict state machine: given the verdict in force and an incoming one, what
//! happens. A pure function ([`decide`]); the callback applies its answer in one transaction, with
//! the content's row locked, and the database trigger (`attachment_blobs_guard_verdict`, migration
//! 0009) enforces the hard rules again (never leave `infected`; never release `suspicious`).
//!
//! Content is immutable: once any scanner finds something in it, that finding is true for as long as
//! the content exists. So verdicts are **not** ordered by the scanner's `scannedAt` (a scanner's clock
//! could then hide a finding behind a verdict dated in the future); they are taken in the order they
//! arrive, which is the order the callback locks the content row in (server time), and:
//!
//! 1. an incoming verdict with the same status and `scannedAt` as the one in force is a **replay** (a
//!    retried or replayed callback): no-op;
//! 2. `infected` and `suspicious` always win: they are applied whatever is in force and whenever the
//!    scanner says it scanned (they override `clean`), except that `suspicious` never weakens
//!    `infected` (the content stays quarantined either way);
//! 3. `clean` and `error` move the state by arrival, by this table (rows: in force; columns: incoming):
//!
//! | in force \ incoming | clean | infected | suspicious | error |
//! |---|---|---|---|---|
//! | `pending`, `skipped`, `error` | apply | apply + quarantine | apply + quarantine | apply |
//! | `clean` | apply (refresh) | apply + quarantine | apply + quarantine | ignored: *kept clean* |
//! | `suspicious` | ignored: *quarantined* | apply + quarantine | apply (refresh) | ignored: *quarantined* |
//! | `infected` | ignored: *quarantined* | apply (refresh) | ignored: *quarantined* | ignored: *quarantined* |
//!
//! Choices (the contract, `openapi.yaml` and `docs/api.md`, asks that `infected` never silently becomes
//! `clean` and that a finding is never dropped):
//! * `infected` and `suspicious` are both quarantine; the content was moved or deleted, and only an
//!   operator releases it (as the database owner). A later `clean`/`error` for it is ignored, not an
//!   error: the scanner did its job, and a `4xx` would only make it retry. `infected` after
//!   `suspicious` applies (it confirms the quarantine); `suspicious` after `infected` is ignored (a
//!   weaker engine must not downgrade the finding).
//! * A failed rescan (`error`) of `clean` content is ignored: a scanner outage must not block content
//!   that was already judged clean.
//! * The same status arriving again with another `scannedAt` applies: engine, signature and details are
//!   refreshed (whatever its `scannedAt`: an `infected` finding is never stale).
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
    /// Each engine's own verdict on the content, by engine name (`status` is the worst of them,
    /// see [`crate::engines`]); empty while no engine has answered.
    pub engines: Vec<crate::engines::EngineVerdict>,
}

use crate::callback::VerdictStatus;

/// The verdict in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    /// Its status.
    pub status: ScanStatus,
    /// Its `scannedAt` (`None` while no scanner has answered, e.g. `pending`); only tells a replay.
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
    /// Would release (or weaken) quarantined content: `infected`/`suspicious` → `clean`/`error`,
    /// `infected` → `suspicious`.
    Quarantined,
    /// A failed rescan (`error`) of content already judged `clean`.
    KeptClean,
    /// The state machine applied it but the database's guard did not take it (a bug between the two;
    /// never expected). Logged; the scanner's retry decides again on fresh state.
    Refused,
}

impl Ignored {
    /// For logs and the audit trail.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Replay => "replay",
            Self::Quarantined => "quarantined",
            Self::KeptClean => "kept_clean",
            Self::Refused => "refused_by_database",
        }
    }

    /// Whether the verdict still answers the open scan jobs of the content (the scan happened and
    /// was judged; a replay may belong to a scan that is already accounted for, and a refused one
    /// changed nothing).
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

/// The state machine (see the module docs). `incoming` arrived after the verdict in force.
pub fn decide(current: Current, incoming: Incoming) -> Decision {
    use ScanStatus as S;
    use VerdictStatus as V;
    if current.scanned_at == Some(incoming.scanned_at) && incoming.status.stored() == current.status
    {
        return Decision::Ignore(Ignored::Replay);
    }
    let apply = Decision::Apply {
        quarantine: incoming.status.stored().is_quarantine(),
    };
    match (current.status, incoming.status) {
        // A finding always wins; only a weaker finding leaves a stronger one in force.
        (S::Infected, V::Suspicious) => Decision::Ignore(Ignored::Quarantined),
        (_, V::Infected | V::Suspicious) => apply,
        // Nothing releases quarantine.
        (S::Infected | S::Suspicious, V::Clean | V::Error) => {
            Decision::Ignore(Ignored::Quarantined)
        }
        (S::Clean, V::Error) => Decision::Ignore(Ignored::KeptClean),
        (S::Pending | S::Skipped | S::Error | S::Clean, V::Clean | V::Error) => apply,
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
    fn replays_and_arrival_order() {
        let c = cur(S::Clean, Some(T));
        assert_eq!(
            decide(c, inc(V::Clean, T)),
            Decision::Ignore(Ignored::Replay)
        );
        // Another verdict with the same time is no replay.
        assert_eq!(decide(c, inc(V::Infected, T)), QUARANTINE);
        // Verdicts are taken in the order they arrive, whatever their scannedAt.
        assert_eq!(decide(c, inc(V::Infected, T - 1)), QUARANTINE);
        assert_eq!(decide(c, inc(V::Suspicious, T - 60_000)), QUARANTINE);
        assert_eq!(decide(c, inc(V::Clean, T - 1)), APPLY);
        assert_eq!(
            decide(cur(S::Infected, Some(T)), inc(V::Infected, T - 1)),
            QUARANTINE,
            "an older infected finding refreshes the one in force"
        );
        // error content set by the job queue has no scannedAt: anything applies.
        assert_eq!(decide(cur(S::Error, None), inc(V::Clean, 1)), APPLY);
    }

    /// A `clean` dated 250 s in the future, then `infected` dated 1 s ahead: the finding applies.
    #[test]
    fn a_future_dated_clean_never_hides_a_finding() {
        let now = T;
        let mut state = cur(S::Pending, None);
        for (status, at) in [(V::Clean, now + 250_000), (V::Infected, now + 1_000)] {
            if let Decision::Apply { .. } = decide(state, inc(status, at)) {
                state = cur(status.stored(), Some(at));
            }
        }
        assert_eq!(state, cur(S::Infected, Some(now + 1_000)));
        // And a clean replayed after it changes nothing.
        assert_eq!(
            decide(state, inc(V::Clean, now + 250_000)),
            Decision::Ignore(Ignored::Quarantined)
        );
    }

    #[test]
    fn what_a_decision_does() {
        let applied = Decision::Apply { quarantine: true };
        assert!(applied.completes_jobs());
        assert_eq!(applied.outcome(), "applied");
        assert_eq!(applied.status_after(S::Clean, V::Infected), S::Infected);
        for (why, completes) in [
            (Ignored::Replay, false),
            (Ignored::Quarantined, true),
            (Ignored::KeptClean, true),
            (Ignored::Refused, false),
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
            engines: vec![],
        };
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"status":"infected","details":null,"engine":"ClamAV 1.4","signature":"Eicar-Test-Signature","scannedAt":1790000000000,"engines":[]}"#
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

    /// Applies a sequence of verdicts, in order of arrival, the way the callback does.
    fn run(start: Current, seq: &[(VerdictStatus, i64)]) -> Current {
        let mut state = start;
        for &(status, at) in seq {
            if let Decision::Apply { .. } = decide(state, inc(status, at)) {
                state = cur(status.stored(), Some(at));
            }
        }
        state
    }

    /// The status a start and a set of verdicts end in, in whatever order they arrive and whatever
    /// their `scannedAt`: the strongest finding, else clean if anyone said so, else error.
    fn expected(start: ScanStatus, seq: &[(VerdictStatus, i64)]) -> ScanStatus {
        let has = |v: VerdictStatus| seq.iter().any(|&(s, _)| s == v);
        if start == S::Infected || has(V::Infected) {
            S::Infected
        } else if start == S::Suspicious || has(V::Suspicious) {
            S::Suspicious
        } else if start == S::Clean || has(V::Clean) {
            S::Clean
        } else if has(V::Error) {
            S::Error
        } else {
            start
        }
    }

    fn arb_seq() -> impl Strategy<Value = Vec<(VerdictStatus, i64)>> {
        proptest::collection::vec((arb_verdict(), 0i64..50), 0..12)
    }

    proptest! {
        /// The invariants, over any sequence of verdicts with any `scannedAt`.
        #[test]
        fn invariants(
            start in arb_status(),
            start_at in proptest::option::of(0i64..50),
            seq in arb_seq(),
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
                }
                // infected is never left; quarantine is never released.
                if before.status == S::Infected { prop_assert_eq!(state.status, S::Infected); }
                if was_quarantined { prop_assert!(state.status.is_quarantine()); }
                was_quarantined |= state.status.is_quarantine();
                // A finding is always in force once it arrived, whatever its scannedAt.
                if status == V::Infected { prop_assert_eq!(state.status, S::Infected); }
                if status == V::Suspicious { prop_assert!(state.status.is_quarantine()); }
                // Applying the same verdict again is a no-op.
                if let Decision::Apply { .. } = d {
                    prop_assert_eq!(decide(state, inc(status, at)), Decision::Ignore(Ignored::Replay));
                }
            }
        }

        /// The status a set of verdicts ends in depends neither on the order they arrive in nor on
        /// their `scannedAt`.
        #[test]
        fn any_order_any_clock(
            start in arb_status(),
            (seq, shuffled) in arb_seq().prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
            shift in proptest::collection::vec(-300_000i64..300_000, 12),
        ) {
            let start = cur(start, None);
            let want = expected(start.status, &seq);
            prop_assert_eq!(run(start, &seq).status, want);
            prop_assert_eq!(run(start, &shuffled).status, want);
            let redated: Vec<(VerdictStatus, i64)> =
                shuffled.iter().zip(&shift).map(|(&(s, at), d)| (s, at + d)).collect();
            prop_assert_eq!(run(start, &redated).status, want);
        }
    }
}
