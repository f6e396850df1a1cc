//! The ClamAV scanning worker: a native, long-lived process beside the Spin app.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | flags and environment, validated; secrets redacted |
//! | [`clamd`] | the clamd protocol: INSTREAM framing, answer parsing (pure), and the TCP client |
//! | [`verdict`] | clamd answer → callback verdict (`clean`/`infected`/`suspicious`/`error`), the callback body |
//! | [`backoff`] | retry delays and the per-job deadline derived from the lease |
//! | [`worker`] | the I/O of scan jobs: claim (Postgres), GetObject (S3), scan, signed callback, complete; the loop that runs scan jobs and verifications in shared slots |
//! | [`verify`] | verifying a direct upload in one read: size, SHA-256, the content policy and clamd per chunk; the outcome (pure) |
//! | [`uploads`] | the I/O of direct uploads: a verification's claim, report, object deletion and verdict; the upload janitor |
//! | [`reconcile`] | orphan repair: the bucket walked page by page against the keys the database knows; orphans deleted, missing objects marked, stale multipart uploads aborted |
//! | [`metrics`] | Prometheus metrics and the small server of `/metrics` (`METRICS_ADDR`) |
//! | [`purge`] | the retention purge: batches of attachments deleted by the database, then the objects of the content they left unreferenced |
//! | [`storage`] | the worker's storage requests: GetObject streamed, DeleteObject, AbortMultipartUpload, HeadObject, the listings |
//! | [`log`] | JSON log lines |
//! | [`virustotal`] | the VirusTotal engine (API v3): hash lookup, upload where the tenant allows it, the shared request budget |
//!
//! `worker`, `uploads` and `storage` do the I/O; the rest is pure or talks only to a local socket,
//! and is unit-tested. The worker is tested end to end against the real stack
//! (`tests/integration/tests/scan_e2e.rs`), the verifier and the janitor against real Postgres,
//! Garage and clamd (`tests/uploads.rs`), reconcile and the metrics likewise (`tests/reconcile.rs`),
//! the purge against real Postgres and Garage (`tests/purge.rs`).

pub mod backoff;
pub mod clamd;
pub mod config;
pub mod log;
pub mod metrics;
pub mod purge;
pub mod reconcile;
pub mod storage;
pub mod uploads;
pub mod verdict;
pub mod verify;
pub mod virustotal;
pub mod worker;
