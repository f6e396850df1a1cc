//! A memory budget for upload part buffers, shared by every upload of one component instance.
//!
//! Spin 4 reuses a WASI P3 instance for up to 16 requests at once, so the memory of an instance is the
//! sum over its concurrent uploads. Each [`crate::client::ObjectWriter`] given a [`BufferBudget`]
//! reserves the bytes of a part buffer before allocating it and gives them back once that part is
//! stored: whatever the number and size of the uploads in one instance, their part buffers never hold
//! more than the budget. An upload that finds the budget spent waits for a part of another upload to be
//! stored (it stops reading its body meanwhile, so its client is slowed by TCP flow control); one that
//! fits goes on at once. A single reservation larger than the whole budget is cut to the budget, so a
//! misconfigured budget slows uploads down but never blocks them forever.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes that part buffers may hold at once (see the module docs). Clones share the budget.
#[derive(Debug, Clone)]
pub struct BufferBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

/// Bytes reserved from a [`BufferBudget`]; given back when dropped.
#[derive(Debug)]
pub struct BufferPermit {
    _permit: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl BufferPermit {
    /// How many bytes it holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl BufferBudget {
    /// A budget of `total` bytes (at least 1).
    pub fn new(total: usize) -> Self {
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// The budget.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes not reserved right now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// Reserves `bytes` (at most the whole budget), waiting while the budget is spent.
    pub async fn reserve(&self, bytes: usize) -> BufferPermit {
        let bytes = bytes.min(self.total);
        if bytes == 0 {
            return BufferPermit {
                _permit: None,
                bytes,
            };
        }
        // Never fails: the semaphore is never closed, and `bytes` fits in u32 once capped below.
        let permits = u32::try_from(bytes).unwrap_or(u32::MAX);
        let permit = self
            .bytes
            .clone()
            .acquire_many_owned(permits)
            .await
            .expect("the budget's semaphore is never closed");
        BufferPermit {
            _permit: Some(permit),
            bytes: permits as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn reservations_wait_for_what_others_give_back() {
        let budget = BufferBudget::new(10);
        let a = budget.reserve(6).now_or_never().expect("fits");
        assert_eq!(budget.available(), 4);
        let b = budget.reserve(4).now_or_never().expect("fits exactly");
        assert_eq!(budget.available(), 0);
        let mut waiting = Box::pin(budget.reserve(5));
        assert!((&mut waiting).now_or_never().is_none(), "budget spent");
        drop(b);
        assert!(
            (&mut waiting).now_or_never().is_none(),
            "4 free, 5 wanted: still waiting"
        );
        drop(a);
        let c = waiting.now_or_never().expect("given back");
        assert_eq!((c.bytes(), budget.available()), (5, 5));
        drop(c);
        assert_eq!(budget.available(), 10);
    }

    #[test]
    fn a_reservation_never_exceeds_the_budget_and_zero_is_free() {
        let budget = BufferBudget::new(8);
        let big = budget
            .reserve(100)
            .now_or_never()
            .expect("cut to the budget");
        assert_eq!(big.bytes(), 8);
        let zero = budget
            .reserve(0)
            .now_or_never()
            .expect("nothing to wait for");
        assert_eq!(zero.bytes(), 0);
        drop(big);
        let clone = budget.clone();
        let _held = clone.reserve(3).now_or_never().unwrap();
        assert_eq!(budget.available(), 5, "clones share one budget");
    }
}
