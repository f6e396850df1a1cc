//! Spin host glue shared by the components (feature `spin`, wasm32-wasip2 only):
//!
//! * [`variable`]: a component variable, or a logged `500` when it is missing;
//! * [`Db`] / [`Tx`]: Postgres as the least-privilege app role, one transaction per unit of work,
//!   the tenant set inside it with `set_config('app.current_tenant_id', $1, true)` (transaction
//!   local, so a pooled connection never carries a tenant into another request), and
//!   [`Tx::audit`] for `email_audit_log` rows;
//! * [`RateLimiter`]: the fixed-window limiter of `auth_core::ratelimit` over `spin:redis`
//!   (`EVAL` of its script: one atomic round trip per decision).
//!
//! Errors become [`ApiError`]s: Postgres unreachable is `503`, anything else from Postgres `500`;
//! the SQL text and database messages go to the log cause only. Redis errors are returned as
//! strings so the caller applies its fail mode (see [`crate::limits::backend_down`]).

use std::cell::Cell;

use auth_core::ratelimit::{self, Decision, Policy};
use auth_core::{TenantId, UserId};
use serde_json::Value;
use spin_sdk::pg::{self, DbValue, ParameterValue, PgError, Row};
use spin_sdk::redis::{self, RedisParameter, RedisResult};

use crate::ApiError;

/// A component variable. Missing or unreadable is a deployment error: `500`, cause logged (the
/// name, never a value).
pub async fn variable(name: &str) -> Result<String, ApiError> {
    spin_sdk::variables::get(name)
        .await
        .map_err(|e| ApiError::internal(format!("variable {name}: {e:?}")))
}

fn pg_error(context: &'static str, e: pg::Error) -> ApiError {
    match e {
        pg::Error::PgError(PgError::ConnectionFailed(m)) => {
            ApiError::unavailable(format!("postgres {context}: connection failed: {m}"))
        }
        other => ApiError::internal(format!("postgres {context}: {other}")),
    }
}

/// One Postgres connection (pooled by the host).
///
/// A transaction this connection began and did not end (an early `?` between `BEGIN` and `COMMIT`) is
/// rolled back when the `Db` is dropped. The host does not do it for us: Spin returns the connection to
/// its pool, whose recycling (deadpool-postgres `Clean`) resets settings but leaves an open transaction
/// open, so the next request to get that connection would continue it, and commit our half-written rows
/// with its own `COMMIT`.
pub struct Db {
    /// `None` only once dropped.
    conn: Option<pg::Connection>,
    /// Whether a transaction is open on `conn`.
    in_transaction: Cell<bool>,
}

impl Db {
    /// Opens a connection to `url` (`postgres://user:password@host:port/db`).
    pub async fn open(url: &str) -> Result<Self, ApiError> {
        pg::Connection::open(url)
            .await
            .map(|conn| Self {
                conn: Some(conn),
                in_transaction: Cell::new(false),
            })
            .map_err(|e| pg_error("open", e))
    }

    fn conn(&self) -> &pg::Connection {
        self.conn.as_ref().expect("present until dropped")
    }

    /// `BEGIN` without a tenant: only the pre-tenant SECURITY DEFINER entry points see anything.
    pub async fn begin(&self) -> Result<Tx<'_>, ApiError> {
        // Marked before the statement: if `BEGIN` reached the server but its answer did not reach us,
        // a `ROLLBACK` on drop is still right (outside a transaction it only warns).
        self.in_transaction.set(true);
        self.conn()
            .execute("BEGIN", Vec::<ParameterValue>::new())
            .await
            .map_err(|e| pg_error("begin", e))?;
        Ok(Tx { db: self })
    }

    /// `BEGIN` and set the tenant for this transaction.
    pub async fn begin_for_tenant(&self, tenant: &TenantId) -> Result<Tx<'_>, ApiError> {
        let tx = self.begin().await?;
        tx.set_tenant(tenant).await?;
        Ok(tx)
    }

    /// A single statement outside an explicit transaction (read-only lookups through the
    /// SECURITY DEFINER functions).
    pub async fn query(
        &self,
        sql: &str,
        params: Vec<ParameterValue>,
    ) -> Result<Vec<Row>, ApiError> {
        run_query(self.conn(), sql, params).await
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if !self.in_transaction.get() {
            return;
        }
        if let Some(conn) = self.conn.take() {
            // The rollback owns the connection, so it goes back to the pool only afterwards. The task
            // runs on within this request's component-model task, even after the response is sent.
            spin_sdk::wasip3::spawn(async move {
                let _ = conn.execute("ROLLBACK", Vec::<ParameterValue>::new()).await;
            });
        }
    }
}

async fn run_query(
    conn: &pg::Connection,
    sql: &str,
    params: Vec<ParameterValue>,
) -> Result<Vec<Row>, ApiError> {
    let result = conn
        .query(sql, params)
        .await
        .map_err(|e| pg_error("query", e))?;
    result.collect().await.map_err(|e| pg_error("query", e))
}

/// An open transaction. Dropping it without [`Tx::commit`] or [`Tx::rollback`] leaves it open until
/// its [`Db`] is dropped, which rolls it back.
pub struct Tx<'a> {
    db: &'a Db,
}

/// The audit row statement. `client_addr` is bound as text and cast, so a malformed address is a
/// database error rather than a silently different value.
const AUDIT_SQL: &str = "INSERT INTO email_audit_log \
     (tenant_id, user_id, action, resource_type, resource_id, request_id, client_addr, details) \
     VALUES ($1, $2, $3, $4, $5, $6, $7::text::inet, $8::jsonb)";

/// One `email_audit_log` row (the tenant is the transaction's).
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// The tenant (must equal the transaction's tenant, or RLS refuses the insert).
    pub tenant: &'a TenantId,
    /// The acting user, if any.
    pub user: Option<&'a UserId>,
    /// `^[a-z][a-z0-9_.]*$`, e.g. `auth.login_failed`.
    pub action: &'a str,
    /// e.g. `user`, `refresh_token_family`, `route`.
    pub resource_type: Option<&'a str>,
    /// The resource's id.
    pub resource_id: Option<String>,
    /// The request id.
    pub request_id: &'a str,
    /// The client's IP.
    pub client_addr: Option<String>,
    /// Extra facts (a JSON object; never secrets).
    pub details: Value,
}

fn opt_str(v: Option<&str>) -> ParameterValue {
    v.map_or(ParameterValue::DbNull, |s| {
        ParameterValue::Str(s.to_owned())
    })
}

impl Tx<'_> {
    /// Sets `app.current_tenant_id` for the rest of this transaction.
    pub async fn set_tenant(&self, tenant: &TenantId) -> Result<(), ApiError> {
        self.query(
            "SELECT set_config('app.current_tenant_id', $1, true)",
            vec![ParameterValue::Str(tenant.to_string())],
        )
        .await
        .map(|_| ())
    }

    /// A query; all rows.
    pub async fn query(
        &self,
        sql: &str,
        params: Vec<ParameterValue>,
    ) -> Result<Vec<Row>, ApiError> {
        run_query(self.db.conn(), sql, params).await
    }

    /// A statement; affected row count.
    pub async fn execute(&self, sql: &str, params: Vec<ParameterValue>) -> Result<u64, ApiError> {
        self.db
            .conn()
            .execute(sql, params)
            .await
            .map_err(|e| pg_error("execute", e))
    }

    /// Appends an audit row.
    pub async fn audit(&self, e: &AuditEntry<'_>) -> Result<(), ApiError> {
        let details = if e.details.is_object() {
            e.details.to_string()
        } else {
            String::from("{}")
        };
        self.execute(
            AUDIT_SQL,
            vec![
                ParameterValue::Uuid(e.tenant.to_string()),
                e.user.map_or(ParameterValue::DbNull, |u| {
                    ParameterValue::Uuid(u.to_string())
                }),
                ParameterValue::Str(e.action.to_owned()),
                opt_str(e.resource_type),
                opt_str(e.resource_id.as_deref()),
                ParameterValue::Str(e.request_id.to_owned()),
                opt_str(e.client_addr.as_deref()),
                ParameterValue::Jsonb(details.into_bytes()),
            ],
        )
        .await
        .map(|_| ())
    }

    /// `COMMIT`.
    pub async fn commit(self) -> Result<(), ApiError> {
        self.execute("COMMIT", Vec::new()).await?;
        self.db.in_transaction.set(false);
        Ok(())
    }

    /// `ROLLBACK`, best effort: when it fails, dropping the [`Db`] tries again.
    pub async fn rollback(self) {
        let done = self
            .db
            .conn()
            .execute("ROLLBACK", Vec::<ParameterValue>::new())
            .await;
        if done.is_ok() {
            self.db.in_transaction.set(false);
        }
    }
}

/// Reading columns by position (our statements fix the column order). A type other than the
/// expected one reads as `None`.
pub mod cell {
    use super::{DbValue, Row, Value};

    fn at(row: &Row, i: usize) -> &DbValue {
        &row[i]
    }

    /// `text` or `uuid` as a string.
    pub fn text(row: &Row, i: usize) -> Option<String> {
        match at(row, i) {
            DbValue::Str(s) | DbValue::Uuid(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// Any integer column.
    pub fn int(row: &Row, i: usize) -> Option<i64> {
        match at(row, i) {
            DbValue::Int64(n) => Some(*n),
            DbValue::Int32(n) => Some(i64::from(*n)),
            DbValue::Int16(n) => Some(i64::from(*n)),
            DbValue::Int8(n) => Some(i64::from(*n)),
            _ => None,
        }
    }

    /// `boolean`.
    pub fn boolean(row: &Row, i: usize) -> Option<bool> {
        match at(row, i) {
            DbValue::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// `jsonb` (or JSON text).
    pub fn json(row: &Row, i: usize) -> Option<Value> {
        match at(row, i) {
            DbValue::Jsonb(b) => serde_json::from_slice(b).ok(),
            DbValue::Str(s) => serde_json::from_str(s).ok(),
            _ => None,
        }
    }
}

/// The Redis side of the rate limiter. Connecting is deferred to the first call and a failure
/// is remembered, so a down Redis costs one attempt per request.
pub struct RateLimiter {
    url: String,
    conn: Option<Result<redis::Connection, String>>,
}

impl RateLimiter {
    /// A limiter for `url` (`redis://host:port`); nothing is contacted yet.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            conn: None,
        }
    }

    async fn conn(&mut self) -> Result<&redis::Connection, String> {
        if self.conn.is_none() {
            let opened = redis::Connection::open(&self.url)
                .await
                .map_err(|e| format!("redis open: {e:?}"));
            self.conn = Some(opened);
        }
        match self.conn.as_ref() {
            Some(Ok(c)) => Ok(c),
            Some(Err(e)) => Err(e.clone()),
            None => Err("redis: no connection".into()),
        }
    }

    async fn eval(&mut self, args: Vec<String>) -> Result<(i64, i64), String> {
        let conn = self.conn().await?;
        let reply = conn
            .execute(
                "EVAL",
                args.into_iter()
                    .map(|a| RedisParameter::Binary(a.into_bytes())),
            )
            .await
            .map_err(|e| format!("redis EVAL: {e:?}"))?;
        let ints: Vec<i64> = reply
            .iter()
            .map(|r| match r {
                RedisResult::Int64(n) => Some(*n),
                RedisResult::Binary(b) => std::str::from_utf8(b).ok()?.parse().ok(),
                _ => None,
            })
            .collect::<Option<_>>()
            .ok_or_else(|| "redis EVAL: non-integer reply".to_owned())?;
        ratelimit::parse_reply(&ints).map_err(|e| format!("redis EVAL: {e}"))
    }

    /// Counts one request against `key` and decides it.
    pub async fn hit(&mut self, policy: &Policy, key: &str) -> Result<Decision, String> {
        let (count, pttl) = self.eval(ratelimit::hit_args(key, policy)).await?;
        Ok(Decision::after_hit(policy, count, pttl))
    }

    /// Gives back one request counted against `key` (a login attempt that succeeded).
    pub async fn give_back(&mut self, key: &str) -> Result<(), String> {
        self.eval(ratelimit::give_back_args(key)).await.map(|_| ())
    }

    /// Deletes a counter (e.g. the per-email failure count after a successful login).
    pub async fn clear(&mut self, key: &str) -> Result<(), String> {
        let conn = self.conn().await?;
        conn.del(ratelimit::clear_args(key))
            .await
            .map(|_| ())
            .map_err(|e| format!("redis DEL: {e:?}"))
    }
}
