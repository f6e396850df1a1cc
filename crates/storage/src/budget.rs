//! A memory budget for upload part buffers, shared by every upload of one component instance.
//!
//! Spin 4 reuses a WASI P3 instance for up to 16 requests at once, so the memory of an instance is the
//! sum over its concurrent uploads. Each [`crate::client::ObjectWriter`] given a [`BufferBudget`]
//! reserves the bytes of a part buffer before allocating it and gives them back once that part is
//! stored: whatever the number and size of the uploads in one instance, their part buffers never hold
//! more than the budget. An upload that finds the budget spent waits for a part of another upload to be
//! stored (it stops reading its body meanwhile, so its client is slowed by TCP flow control), at most
//! `client::BUDGET_WAIT` (10 s; then the upload fails as storage being busy, a `503` with `Retry-After`);
//! one that fits goes on at once. A single reservation larger than the whole budget is cut to the budget, so a
//! misconfigured budget slows uploads down but never blocks them forever.
//!
//! Reservations are taken with [`BufferBudget::try_reserve`]; the waiting is the caller's (the
//! component polls on a host timer, see `client`): bytes given back by one request's upload would
//! otherwise have to wake another request's component-model task, a cross-task wake-up. A plain
//! atomic count is all the budget needs then.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes that part buffers may hold at once (see the module docs). Clones share the budget.
#[derive(Debug, Clone)]
pub struct BufferBudget {
    free: Arc<AtomicUsize>,
    total: usize,
}

/// Bytes reserved from a [`BufferBudget`]; given back when dropped.
#[derive(Debug)]
pub struct BufferPermit {
    free: Arc<AtomicUsize>,
    bytes: usize,
}

impl BufferPermit {
    /// How many bytes it holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for BufferPermit {
    fn drop(&mut self) {
        self.free.fetch_add(self.bytes, Ordering::AcqRel);
    }
}

impl BufferBudget {
    /// A budget of `total` bytes (at least 1).
    pub fn new(total: usize) -> Self {
        let total = total.max(1);
        Self {
            free: Arc::new(AtomicUsize::new(total)),
            total,
        }
    }

    /// The budget from configuration (`upload_buffer_bytes`): bytes, at least one part
    /// ([`crate::MIN_PART_SIZE`]), or no upload could ever fill a part.
    pub fn from_config(s: &str) -> Result<Self, String> {
        s.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= crate::MIN_PART_SIZE)
            .map(Self::new)
            .ok_or_else(|| format!("expected bytes, at least {}", crate::MIN_PART_SIZE))
    }

    /// The budget.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes not reserved right now.
    pub fn available(&self) -> usize {
        self.free.load(Ordering::Acquire)
    }

    /// Reserves `bytes` (at most the whole budget) if they are free now.
    pub fn try_reserve(&self, bytes: usize) -> Option<BufferPermit> {
        let bytes = bytes.min(self.total);
        self.free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| {
                free.checked_sub(bytes)
            })
            .ok()?;
        Some(BufferPermit {
            free: self.free.clone(),
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_in_what_others_gave_back() {
        let budget = BufferBudget::new(10);
        let a = budget.try_reserve(6).expect("fits");
        assert_eq!(budget.available(), 4);
        let b = budget.try_reserve(4).expect("fits exactly");
        assert_eq!(budget.available(), 0);
        assert!(budget.try_reserve(5).is_none(), "budget spent");
        drop(b);
        assert!(budget.try_reserve(5).is_none(), "4 free, 5 wanted");
        drop(a);
        let c = budget.try_reserve(5).expect("given back");
        assert_eq!((c.bytes(), budget.available()), (5, 5));
        drop(c);
        assert_eq!(budget.available(), 10);
    }

    #[test]
    fn configuration_is_bytes_of_at_least_one_part() {
        assert_eq!(
            BufferBudget::from_config(" 67108864 ").unwrap().total(),
            67_108_864
        );
        assert_eq!(
            BufferBudget::from_config(&crate::MIN_PART_SIZE.to_string())
                .unwrap()
                .total(),
            crate::MIN_PART_SIZE
        );
        for bad in [
            "",
            "64MiB",
            "-1",
            "0",
            &(crate::MIN_PART_SIZE - 1).to_string(),
        ] {
            assert!(BufferBudget::from_config(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_reservation_never_exceeds_the_budget_and_zero_is_free() {
        let budget = BufferBudget::new(8);
        let big = budget.try_reserve(100).expect("cut to the budget");
        assert_eq!(big.bytes(), 8);
        let zero = budget.try_reserve(0).expect("nothing to wait for");
        assert_eq!(zero.bytes(), 0);
        drop(big);
        let clone = budget.clone();
        let _held = clone.try_reserve(3).unwrap();
        assert_eq!(budget.available(), 5, "clones share one budget");
    }
}
