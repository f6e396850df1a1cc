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
//! | [`purge`] | the retention purge: batches of attachments deleted by the database, then the objects of the content they left unreferenced |
//! | [`storage`] | the worker's storage requests: GetObject streamed, DeleteObject, AbortMultipartUpload |
//! | [`log`] | JSON log lines |
//!
//! `worker`, `uploads` and `storage` do the I/O; the rest is pure or talks only to a local socket,
//! and is unit-tested. The worker is tested end to end against the real stack
//! (`tests/integration/tests/scan_e2e.rs`), the verifier and the janitor against real Postgres,
//! Garage and clamd (`tests/uploads.rs`), the purge against real Postgres and Garage
//! (`tests/purge.rs`).

pub mod backoff;
pub mod clamd;
pub mod config;
pub mod log;
pub mod purge;
pub mod storage;
pub mod uploads;
pub mod verdict;
pub mod verify;
pub mod worker;
