//! Waiting between attempts: the main loop when the database is unreachable, the callback POST
//! within one job. (A job that fails as a whole goes back to the database, which backs it off:
//! `scan_complete_job` with an error, 10 s * 2^attempts, at most an hour.)

use std::time::Duration;

/// Exponential backoff: `base * 2^n`, capped at `max`, with up to 25 % jitter taken off so that
/// several workers restarted together do not retry in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// The delay before the next attempt, given a random number for the jitter.
    pub fn next_with(&mut self, random: u64) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX));
        let delay = exp.min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let jitter_permille = random % 250;
        delay - delay.mul_f64(jitter_permille as f64 / 1000.0)
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.next_with(cheap_random())
    }

    /// After a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Attempts made since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// A few random bits for jitter (not for anything secret).
fn cheap_random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// How long a job may run: the lease minus a margin (a tenth, between 1 s and 30 s), so that a job
/// is given up, and handed back, before another worker may take it over.
pub fn job_deadline(lease_secs: u32) -> Duration {
    let lease = Duration::from_secs(u64::from(lease_secs));
    let margin = (lease / 10).clamp(Duration::from_secs(1), Duration::from_secs(30));
    lease.saturating_sub(margin).max(Duration::from_millis(500))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let got: Vec<u64> = (0..6).map(|_| b.next_with(0).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
        assert_eq!(b.attempts(), 6);
        b.reset();
        assert_eq!(b.next_with(0), Duration::from_secs(1));
        // Jitter takes off at most a quarter.
        let mut b = Backoff::new(Duration::from_secs(4), Duration::from_secs(4));
        for r in [0, 1, 249, 250, u64::MAX] {
            let d = b.next_with(r);
            assert!(
                d <= Duration::from_secs(4) && d > Duration::from_secs(3),
                "{d:?}"
            );
        }
        // Never overflows.
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(3600));
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(3600));
        }
    }

    #[test]
    fn deadlines_leave_a_margin() {
        assert_eq!(job_deadline(300), Duration::from_secs(270));
        assert_eq!(job_deadline(3600), Duration::from_secs(3570));
        assert_eq!(job_deadline(3), Duration::from_secs(2));
        assert_eq!(job_deadline(1), Duration::from_millis(500));
    }
}
