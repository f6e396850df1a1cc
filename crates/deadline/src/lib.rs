//! Deadlines of outbound calls: how long a component waits for storage, Postgres or Redis before it
//! gives up, so that a dependency that stops answering costs a request a bounded time instead of the
//! platform's whole handler limit (30 s on Fermyon Wasm Functions / Akamai Functions, after which the
//! handler is killed with nothing cleaned up).
//!
//! This crate owns the setting ([`OutboundTimeout`], the `outbound_timeout_secs` variable) and the one
//! race of a call against a timer ([`race`]); with feature `spin`, [`with_deadline`] runs that race
//! against the host's monotonic clock. Callers map [`Elapsed`] to their own error type.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures::future::{Either, select};

/// A call that did not finish within its deadline. The call's future has been dropped: what it
/// started on the other side (a query, an upload) is in an unknown state, and the caller must treat
/// it as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed {
    /// The deadline that passed.
    pub after: Duration,
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no answer within {} ms", self.after.as_millis())
    }
}

impl std::error::Error for Elapsed {}

/// How long one outbound call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundTimeout(Duration);

impl OutboundTimeout {
    /// The default, 10 s: room within a 30 s handler limit for the call, the cleanup after it and
    /// the answer.
    pub const DEFAULT: OutboundTimeout = OutboundTimeout(Duration::from_secs(10));
    /// The largest accepted setting, 25 s: a deadline at or above the platform's 30 s handler limit
    /// would never fire before the handler is killed.
    pub const MAX_SECS: u64 = 25;

    /// Parses `outbound_timeout_secs`: whole seconds, `1..=25`.
    pub fn from_config(value: &str) -> Result<Self, String> {
        let secs: u64 = value
            .trim()
            .parse()
            .map_err(|_| format!("{value:?} is not a whole number of seconds"))?;
        if !(1..=Self::MAX_SECS).contains(&secs) {
            return Err(format!("{secs} s is outside 1..={} s", Self::MAX_SECS));
        }
        Ok(Self(Duration::from_secs(secs)))
    }

    /// The deadline of one call.
    pub fn duration(self) -> Duration {
        self.0
    }
}

impl Default for OutboundTimeout {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Runs `call` until it finishes or `timer` fires, whichever is first; `Err(Elapsed { after })` when
/// the timer won (the call is dropped unfinished). A call that is ready at its first poll wins even
/// against a timer that is ready too: the answer was there.
pub async fn race<T>(
    after: Duration,
    call: impl Future<Output = T>,
    timer: impl Future<Output = ()>,
) -> Result<T, Elapsed> {
    let call = std::pin::pin!(call);
    let timer = std::pin::pin!(timer);
    match select(call, timer).await {
        Either::Left((v, _)) => Ok(v),
        Either::Right(((), _)) => Err(Elapsed { after }),
    }
}

/// Runs `call` for at most `limit` on the host's clock (`spin_sdk::time::sleep`).
#[cfg(feature = "spin")]
pub async fn with_deadline<T>(
    limit: OutboundTimeout,
    call: impl Future<Output = T>,
) -> Result<T, Elapsed> {
    let after = limit.duration();
    race(after, call, spin_sdk::time::sleep(after)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::oneshot;
    use futures::executor::block_on;
    use futures::future::{pending, ready};

    const D: Duration = Duration::from_secs(3);

    #[test]
    fn an_answer_before_the_timer_is_returned() {
        assert_eq!(block_on(race(D, ready(7), pending())), Ok(7));
        // Ready together: the answer wins.
        assert_eq!(block_on(race(D, ready(7), ready(()))), Ok(7));
    }

    #[test]
    fn a_call_that_never_answers_ends_at_the_timer() {
        let r: Result<(), Elapsed> = block_on(race(D, pending(), ready(())));
        assert_eq!(r, Err(Elapsed { after: D }));
        assert_eq!(r.unwrap_err().to_string(), "no answer within 3000 ms");
    }

    #[test]
    fn the_timer_firing_later_drops_the_unfinished_call() {
        // The call waits on a channel nobody answers; the timer's fires. The call's future must be
        // dropped (its sender then sees the cancellation), not left running.
        let (call_tx, call_rx) = oneshot::channel::<u8>();
        let (timer_tx, timer_rx) = oneshot::channel::<()>();
        let call = async move { call_rx.await.unwrap_or(0) };
        let timer = async move {
            let _ = timer_rx.await;
        };
        timer_tx.send(()).unwrap();
        let r = block_on(race(D, call, timer));
        assert_eq!(r, Err(Elapsed { after: D }));
        assert!(call_tx.is_canceled(), "the abandoned call was dropped");
    }

    #[test]
    fn setting_bounds() {
        assert_eq!(
            OutboundTimeout::from_config("10").unwrap().duration(),
            Duration::from_secs(10)
        );
        assert_eq!(
            OutboundTimeout::from_config(" 2 ").unwrap().duration(),
            Duration::from_secs(2)
        );
        assert_eq!(
            OutboundTimeout::from_config("25").unwrap().duration(),
            Duration::from_secs(25)
        );
        for bad in ["0", "26", "30", "-1", "1.5", "", "ten"] {
            assert!(OutboundTimeout::from_config(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            OutboundTimeout::default().duration(),
            Duration::from_secs(10)
        );
    }
}
