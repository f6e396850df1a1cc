//! Per-instance memory limits, and the high-water mark of what instances really use.
//!
//! Every linear memory of an instance may grow up to `--max-memory-mib`; a grow beyond traps (the request
//! becomes a 500, the runner keeps serving). The limiter also sums what the instance's memories hold
//! (wasmtime asks it for every memory's initial size and every growth, and linear memory never shrinks),
//! so when the instance goes the runner knows its peak. A new maximum for a component is logged as
//! `{"event":"memory_high_water","component","bytes"}`: that is the figure benchmarks report as a
//! component's memory (the composed middleware chain included), separate from the runner's own RSS.

use super::ComponentConfig;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The largest instance memory seen for one component.
#[derive(Debug, Default)]
pub struct HighWater(AtomicU64);

impl HighWater {
    /// Records `bytes`; true when it is a new maximum.
    pub fn observe(&self, bytes: u64) -> bool {
        self.0.fetch_max(bytes, Ordering::Relaxed) < bytes
    }

    /// The maximum so far.
    #[cfg(test)]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The `ResourceLimiter` of one instance's store.
pub struct MemoryLimiter {
    max_memory: usize,
    /// Bytes held by all linear memories of the instance.
    held: u64,
    component: Arc<ComponentConfig>,
}

impl MemoryLimiter {
    pub fn new(max_memory: usize, component: Arc<ComponentConfig>) -> Self {
        Self {
            max_memory,
            held: 0,
            component,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            wasmtime::bail!(
                "linear memory of component `{}` would grow to {desired} bytes, over the limit of {} bytes",
                self.component.id,
                self.max_memory
            );
        }
        self.held += desired.saturating_sub(current) as u64;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Table sizes are bounded by the pooling allocator's configuration.
        Ok(true)
    }
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        if self.component.memory_high_water.observe(self.held) {
            println!(
                "{}",
                serde_json::json!({
                    "event": "memory_high_water",
                    "component": self.component.id,
                    "bytes": self.held,
                })
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_water_reports_only_new_maxima() {
        let h = HighWater::default();
        assert!(h.observe(10));
        assert!(!h.observe(5));
        assert!(!h.observe(10));
        assert!(h.observe(11));
        assert_eq!(h.get(), 11);
    }
}
