//! Every SQL statement of the attachment service, as named functions over typed rows. Nothing else
//! in the product writes SQL: components, the scan worker and the database tests call these
//! functions, so a statement is written, reviewed and tested once.
//!
//! | module | owns |
//! |---|---|
//! | [`conn`] | [`Conn`], the seam to a host's Postgres client; [`Tx`] and [`TenantTx`], the one place that sets the tenant context |
//! | [`value`] | statement parameters and result rows, decoded by position with typed errors |
//! | [`error`] | [`StoreError`]: unavailable, refused (with SQLSTATE), or a row of the wrong shape |
//! | [`access`] | who may read or change an attachment: pure rules, tested natively |
//! | [`audit_log`] | `email_audit_log` rows, written in the transaction of the action they record |
//! | [`messages`], [`attachments`], [`blobs`] | messages, attachment rows, content blobs and their dedup |
//! | [`scan_jobs`], [`verdicts`] | the scan queue and the verdicts in force |
//! | [`quota`] | quota limits of a tenant, the stored-usage counters a trigger keeps, the daily download charge |
//! | [`uploads`] | direct-to-storage upload sessions as the components see them, until verified |
//! | [`upload_queue`] | direct uploads, the worker's side: claiming completed sessions to verify, handing them back, the janitor's claim and its two records |
//! | [`reconcile`] | the worker's operations side: the keys the database knows (the reconcile job), missing objects, the queue gauges of its metrics |
//! | [`health`] | readiness: a statement the database must answer |
//! | [`legal_hold`] | legal holds on attachments and messages, set by admins, which the purge respects |
//! | [`purge`] | the retention purge, the worker's side: purging attachments, then claiming, and forgetting once their object is gone, the blobs left unreferenced |
//! | [`identity`], [`sessions`] | users, logins and refresh-token families |
//! | `spin` (feature `spin`) | Spin's Postgres interface as a [`Conn`]: one pooled connection, rolled back if dropped mid-transaction |
//! | `native` (feature `native`) | tokio-postgres's `Client` as a [`Conn`] |
//!
//! Every statement runs as the least-privilege application role; row-level security fails closed
//! (no tenant set, no rows), so a statement that forgets its tenant finds nothing rather than
//! everything.

pub mod access;
pub mod attachments;
pub mod audit_log;
pub mod blobs;
pub mod conn;
pub mod error;
pub mod health;
pub mod identity;
pub mod legal_hold;
pub mod messages;
#[cfg(feature = "native")]
mod native;
pub mod purge;
pub mod quota;
pub mod reconcile;
pub mod scan_jobs;
pub mod sessions;
#[cfg(feature = "spin")]
pub mod spin;
#[cfg(feature = "native")]
pub mod tls;
pub mod upload_queue;
pub mod uploads;
pub mod value;
pub mod verdicts;

pub use conn::{Conn, TenantTx, Tx};
pub use error::{Result, StoreError};
pub use value::{Param, Row};
