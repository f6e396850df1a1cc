//! Database tooling of the attachment service: the schema's migration runner, role bootstrap, fixtures and
//! the database benchmark. Native only (it talks to Postgres with `tokio-postgres`); the components reach the
//! same database through Spin's postgres interface as [`APP_ROLE`].
//!
//! - [`migrations`]: the versioned, checksummed SQL files and the runner that applies them.
//! - [`bootstrap`]: the cluster-wide roles and per-database grants the migrations assume.
//! - [`seed`]: fresh test tenants (`seed --json`) and the idempotent demo tenant (`seed --demo`).
//! - [`args`]: the few command-line flags the binaries share.

pub mod args;
pub mod bootstrap;
pub mod migrations;
pub mod seed;
pub mod users;

/// Owns every schema object; NOLOGIN, BYPASSRLS. Migrations run after `SET ROLE` to it.
pub const OWNER_ROLE: &str = "attachments_owner";
/// What components connect as: LOGIN, NOSUPERUSER, NOBYPASSRLS, not the owner, per-table grants only.
pub const APP_ROLE: &str = "attachments_app";
/// What the native scan worker connects as: LOGIN, NOSUPERUSER, NOBYPASSRLS, not the owner; it may
/// only call the scan queue's functions (`scan_claim_jobs`, `scan_complete_job`) and the upload queue's
/// (`upload_claim_verifications` and the rest of 0014's worker side) and read no table.
pub const SCANNER_ROLE: &str = "attachments_scanner";
/// How long a session of the app and scanner roles may sit idle inside a transaction before the
/// server ends it: an instance that was stopped mid-transaction (a trapped or killed component)
/// cannot leave a transaction open for the next request on that connection to continue.
pub const IDLE_IN_TRANSACTION_TIMEOUT: &str = "5s";
/// The setting every RLS policy reads; components set it per transaction with
/// `SELECT set_config('app.current_tenant_id', $1, true)`.
pub const TENANT_GUC: &str = "app.current_tenant_id";
/// Default admin connection for tools and tests (trust auth on loopback in dev; no TLS to loopback: with
/// any other `sslmode` the tools verify the server's certificate, as Spin does).
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";

use tokio_postgres::{Client, Config};

pub use store::tls::ConnectError;

/// Opens a connection and drives it on the current tokio runtime: TLS as the URL's `sslmode` says,
/// verified against the system roots and `PGSSLROOTCERT` (see `store::tls`).
pub async fn connect(config: &Config) -> Result<Client, ConnectError> {
    store::tls::connect(config).await
}

/// Quotes an SQL identifier (for DDL, where parameters cannot be used).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The admin URL from `--database-url`, else `$DATABASE_ADMIN_URL`, else [`DEFAULT_ADMIN_URL`].
pub fn admin_url(flag: Option<String>) -> String {
    flag.or_else(|| {
        std::env::var("DATABASE_ADMIN_URL")
            .ok()
            .filter(|s| !s.is_empty())
    })
    .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_string())
}
