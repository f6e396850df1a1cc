//! The ClamAV scanning worker: a native, long-lived process beside the Spin app.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | flags and environment, validated; secrets redacted |
//! | [`clamd`] | the clamd protocol: INSTREAM framing, answer parsing (pure), and the TCP client |
//! | [`verdict`] | clamd answer → callback verdict (`clean`/`infected`/`suspicious`/`error`), the callback body |
//! | [`backoff`] | retry delays and the per-job deadline derived from the lease |
//! | [`worker`] | the I/O: claim (Postgres), GetObject (S3), scan, signed callback, complete; the loop |
//! | [`log`] | JSON log lines |
//!
//! Everything but `worker` is pure or talks only to a local socket, and is unit-tested; the worker
//! itself is tested end to end against the real stack (`tests/integration/tests/scan_e2e.rs`).

pub mod backoff;
pub mod clamd;
pub mod config;
pub mod log;
pub mod verdict;
pub mod worker;
