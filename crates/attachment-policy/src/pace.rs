//! How slowly an upload's body may arrive: a client that trickles holds an instance's request slot,
//! its part buffers and its storage upload for as long as it likes unless something says stop.
//! [`BodyPace`] says it, for every read of the body (raw or multipart: preamble, part headers and
//! content alike), as `408 request_timeout`:
//!
//! - **idle**: no single read may wait longer than [`IDLE`] (20 s);
//! - **minimum rate**: after a grace of [`GRACE`] (10 s) spent waiting for the client, the body must
//!   have arrived at `upload_min_bytes_per_sec` on average over that waiting time (default 16 KiB/s);
//! - **deadline**: the whole body within `upload_deadline_secs` of its start (default 900 s).
//!
//! The rate counts only the time spent waiting for the client, not the time the service spends
//! storing what it received (while it stores, it does not read, and the client cannot send): an
//! upload slowed down by storage or by the instance's part-buffer budget is not the client's fault.
//! Pure: times are milliseconds the caller measures; [`BodyPace::allowance`] says how long the next
//! read may wait, so the caller needs one timer per read.

use crate::PolicyError;

/// The longest one read may wait for the client.
pub const IDLE_MS: u64 = 20_000;
/// Waiting time before the minimum rate applies.
pub const GRACE_MS: u64 = 10_000;
/// Default `upload_min_bytes_per_sec`.
pub const DEFAULT_MIN_BYTES_PER_SEC: u64 = 16 * 1024;
/// Default `upload_deadline_secs`.
pub const DEFAULT_DEADLINE_SECS: u64 = 900;

/// [`IDLE_MS`] as a duration.
pub const IDLE: std::time::Duration = std::time::Duration::from_millis(IDLE_MS);
/// [`GRACE_MS`] as a duration.
pub const GRACE: std::time::Duration = std::time::Duration::from_millis(GRACE_MS);

/// The pace a body must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaceLimits {
    /// Minimum average rate after the grace period, bytes per second (0: none).
    pub min_bytes_per_sec: u64,
    /// The whole body within this many milliseconds of its start.
    pub deadline_ms: u64,
    /// One read may wait this long.
    pub idle_ms: u64,
    /// Waiting time before the minimum rate applies.
    pub grace_ms: u64,
}

impl Default for PaceLimits {
    fn default() -> Self {
        Self {
            min_bytes_per_sec: DEFAULT_MIN_BYTES_PER_SEC,
            deadline_ms: DEFAULT_DEADLINE_SECS * 1000,
            idle_ms: IDLE_MS,
            grace_ms: GRACE_MS,
        }
    }
}

impl PaceLimits {
    /// Parses `upload_min_bytes_per_sec` (0..=1 GiB/s; 0 turns the rate rule off) and
    /// `upload_deadline_secs` (1..=86400).
    pub fn from_config(min_bytes_per_sec: &str, deadline_secs: &str) -> Result<Self, String> {
        let min_bytes_per_sec = min_bytes_per_sec
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= 1 << 30)
            .ok_or("upload_min_bytes_per_sec must be bytes per second, 0..=1073741824")?;
        let deadline_secs = deadline_secs
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=86_400).contains(n))
            .ok_or("upload_deadline_secs must be seconds, 1..=86400")?;
        Ok(Self {
            min_bytes_per_sec,
            deadline_ms: deadline_secs * 1000,
            ..Self::default()
        })
    }
}

/// Which rule a body broke (for the log; the client sees `408 request_timeout` for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaceError {
    /// One read waited [`PaceLimits::idle_ms`].
    Idle,
    /// Slower than the minimum rate after the grace period.
    TooSlow,
    /// Past the deadline.
    Deadline,
}

impl PaceError {
    /// For the log.
    pub fn cause(&self) -> &'static str {
        match self {
            PaceError::Idle => "request body idle timeout",
            PaceError::TooSlow => "request body below the minimum rate",
            PaceError::Deadline => "request body past its deadline",
        }
    }
}

impl From<PaceError> for PolicyError {
    fn from(_: PaceError) -> Self {
        PolicyError::RequestTimeout
    }
}

/// One body's pace (see the module docs).
#[derive(Debug, Clone)]
pub struct BodyPace {
    limits: PaceLimits,
    /// Milliseconds spent waiting for the client so far.
    waited_ms: u64,
}

impl BodyPace {
    /// A body that starts now.
    pub fn new(limits: PaceLimits) -> Self {
        Self {
            limits,
            waited_ms: 0,
        }
    }

    /// Milliseconds spent waiting for the client so far.
    pub fn waited_ms(&self) -> u64 {
        self.waited_ms
    }

    /// Waiting time `bytes` received buy: the grace, or what they are worth at the minimum rate.
    fn earned_ms(&self, bytes: u64) -> u64 {
        if self.limits.min_bytes_per_sec == 0 {
            return u64::MAX;
        }
        let worth = bytes.saturating_mul(1000) / self.limits.min_bytes_per_sec;
        worth.max(self.limits.grace_ms)
    }

    /// How long (ms, at least 1) the next read may wait for the client, `elapsed_ms` after the
    /// body's start with `bytes` received so far; the rule already broken if none is left. When the
    /// read waits this long without an answer, the body broke the rule that set the bound:
    /// [`BodyPace::expired`] says which.
    pub fn allowance(&self, elapsed_ms: u64, bytes: u64) -> Result<u64, PaceError> {
        let to_deadline = self.limits.deadline_ms.saturating_sub(elapsed_ms);
        if to_deadline == 0 {
            return Err(PaceError::Deadline);
        }
        let to_rate = self.earned_ms(bytes).saturating_sub(self.waited_ms);
        if to_rate == 0 {
            return Err(PaceError::TooSlow);
        }
        Ok(self.limits.idle_ms.min(to_deadline).min(to_rate).max(1))
    }

    /// The rule a read broke that waited its whole allowance (`allowance(elapsed_ms, bytes)`
    /// when it began) without an answer.
    pub fn expired(&self, elapsed_ms: u64, bytes: u64) -> PaceError {
        let to_deadline = self.limits.deadline_ms.saturating_sub(elapsed_ms);
        let to_rate = self.earned_ms(bytes).saturating_sub(self.waited_ms);
        if to_deadline <= self.limits.idle_ms.min(to_rate) {
            PaceError::Deadline
        } else if to_rate <= self.limits.idle_ms {
            PaceError::TooSlow
        } else {
            PaceError::Idle
        }
    }

    /// A read waited `ms` for the client (and was answered): the time counts against the rate.
    pub fn waited(&mut self, ms: u64) {
        self.waited_ms = self.waited_ms.saturating_add(ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits(rate: u64, deadline_s: u64) -> PaceLimits {
        PaceLimits {
            min_bytes_per_sec: rate,
            deadline_ms: deadline_s * 1000,
            ..PaceLimits::default()
        }
    }

    #[test]
    fn idle_bounds_every_read() {
        let p = BodyPace::new(PaceLimits::default());
        assert_eq!(p.allowance(0, 0), Ok(IDLE_MS.min(GRACE_MS)));
        // With plenty received, only idle and the deadline bound a read.
        assert_eq!(p.allowance(0, 100 << 20), Ok(IDLE_MS));
        assert_eq!(p.expired(0, 100 << 20), PaceError::Idle);
    }

    #[test]
    fn a_trickle_is_refused_after_the_grace() {
        // One byte every 2 s: never idle, but after 10 s of waiting it is far below 16 KiB/s.
        let mut p = BodyPace::new(PaceLimits::default());
        let mut bytes = 0;
        let mut t = 0;
        let broken = loop {
            match p.allowance(t, bytes) {
                Ok(a) if a >= 2000 => {
                    p.waited(2000);
                    t += 2000;
                    bytes += 1;
                }
                // The next byte comes later than the read may wait.
                Ok(_) => break p.expired(t, bytes),
                Err(e) => break e,
            }
        };
        assert_eq!(broken, PaceError::TooSlow);
        assert!(p.waited_ms() <= GRACE_MS);
        assert!(t <= GRACE_MS);
    }

    #[test]
    fn a_fast_body_is_never_refused_before_its_deadline() {
        let mut p = BodyPace::new(limits(16 * 1024, 900));
        let mut bytes = 0u64;
        // 64 KiB every 100 ms of waiting, for 10 minutes of wall time.
        for step in 0..6000u64 {
            let t = step * 100;
            assert!(p.allowance(t, bytes).is_ok(), "refused at {t} ms");
            p.waited(100);
            bytes += 64 * 1024;
        }
        assert_eq!(p.allowance(900_000, bytes), Err(PaceError::Deadline));
        assert_eq!(p.allowance(899_999, bytes), Ok(1));
        assert_eq!(p.expired(899_999, bytes), PaceError::Deadline);
    }

    #[test]
    fn time_spent_storing_does_not_count_against_the_rate() {
        let mut p = BodyPace::new(limits(1000, 900));
        // 1000 bytes in 1 s of waiting, then 5 minutes storing them (no waiting): still fine.
        p.waited(1000);
        assert!(p.allowance(300_000, 1000).is_ok());
        // A rate of 0 turns the rule off.
        let mut p = BodyPace::new(limits(0, 900));
        p.waited(800_000);
        assert_eq!(p.allowance(800_000, 0), Ok(IDLE_MS));
    }

    #[test]
    fn configuration() {
        assert_eq!(
            PaceLimits::from_config("16384", "900"),
            Ok(PaceLimits::default())
        );
        assert_eq!(
            PaceLimits::from_config(" 0 ", "1").unwrap().deadline_ms,
            1000
        );
        for (r, d) in [
            ("x", "900"),
            ("-1", "900"),
            ("1", "0"),
            ("1", "86401"),
            ("1", ""),
        ] {
            assert!(PaceLimits::from_config(r, d).is_err(), "{r:?} {d:?}");
        }
        assert_eq!(
            PolicyError::from(PaceError::TooSlow).code(),
            problem::Code::RequestTimeout
        );
    }

    proptest! {
        /// Whatever the reads, a body is refused no later than its deadline, no read waits longer
        /// than idle, and a body that keeps the minimum rate (after the grace) is refused only by
        /// the deadline.
        #[test]
        fn bounds_hold(
            reads in proptest::collection::vec((0u64..30_000, 0u64..100_000, 0u64..5_000), 1..200),
            rate in 0u64..50_000,
            deadline in 1u64..2_000,
        ) {
            let l = limits(rate, deadline);
            let mut p = BodyPace::new(l);
            let (mut t, mut bytes) = (0u64, 0u64);
            for (wait, n, storing) in reads {
                match p.allowance(t, bytes) {
                    Err(e) => {
                        prop_assert!(
                            e == PaceError::Deadline && t >= l.deadline_ms
                                || e == PaceError::TooSlow
                                    && p.waited_ms() >= l.grace_ms
                                    && rate > 0
                                    && bytes.saturating_mul(1000) / rate <= p.waited_ms()
                        );
                        break;
                    }
                    Ok(a) => {
                        prop_assert!((1..=IDLE_MS).contains(&a));
                        prop_assert!(t + a <= l.deadline_ms);
                        if wait >= a {
                            let e = p.expired(t, bytes);
                            prop_assert!(a == IDLE_MS || e != PaceError::Idle);
                            break;
                        }
                        p.waited(wait);
                        t += wait + storing;
                        bytes += n;
                    }
                }
            }
        }
    }
}
