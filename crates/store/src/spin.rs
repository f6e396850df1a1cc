//! Spin's Postgres interface as a [`Conn`] (feature `spin`, wasm32-wasip2 components).
//!
//! A [`Db`] is one pooled connection of the host, opened as the least-privilege app role. A
//! transaction it began and did not end (an early `?` between `BEGIN` and `COMMIT`) is rolled back
//! when the `Db` is dropped. The host does not do it for us: Spin returns the connection to its
//! pool, whose recycling resets settings but leaves an open transaction open, so the next request
//! to get that connection would continue it, and commit our half-written rows with its own `COMMIT`.
//!
//! Opening and every statement have the outbound deadline (`outbound_timeout_secs`): past it the call
//! fails with [`StoreError::Timeout`]. The abandoned statement may still be running on the connection,
//! so the `Db` refuses further statements and, when dropped, sends `ROLLBACK` (whether or not a
//! transaction was open) and gives the connection back to the pool only once that has come back
//! through it: the connection is then idle and outside any transaction, whatever the abandoned
//! statement did. That `ROLLBACK` has no deadline on purpose: given up on, it would return the
//! connection in the unknown state it is meant to end. Should the server never answer, the roles'
//! `idle_in_transaction_session_timeout` ends the session, and the `ROLLBACK` with it.

use std::cell::Cell as Flag;

use deadline::{OutboundTimeout, with_deadline};
use spin_sdk::pg::{self, DbValue, ParameterValue, PgError, QueryError};
// The interface itself rather than the SDK's wrapper: `pg::Connection::open_with_options` (the one way
// there to give a CA) can also read a certificate from a file, and linking that gives the component a
// `wasi:filesystem` import that its world (wit/attachments.wit) does not allow.
use spin_sdk::pg::wit::postgres as host;

use crate::conn::Conn;
use crate::error::{Result, StoreError};
use crate::value::{Cell, Param, Row};

/// Where the components' Postgres is: a `postgres://` URL (its `sslmode` decides TLS: Spin verifies the
/// server's certificate whenever it uses TLS) and, for a server whose certificate a private CA signs,
/// that CA in PEM form (`db_ca_root`). Built once per instance from the variables.
#[derive(Clone)]
pub struct Database {
    url: String,
    ca_root: Option<String>,
}

impl Database {
    /// `url` as the component's `database_url` variable has it; `ca_root_pem` empty for the host's
    /// system roots.
    pub fn new(url: String, ca_root_pem: &str) -> Self {
        let ca_root = ca_root_pem.trim();
        Self {
            url,
            ca_root: (!ca_root.is_empty()).then(|| ca_root.to_owned()),
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL carries the role's password.
        f.debug_struct("Database")
            .field("url", &"<redacted>")
            .field("ca_root", &self.ca_root.is_some())
            .finish()
    }
}

/// One Postgres connection of the host's pool.
pub struct Db {
    /// `None` only once dropped.
    conn: Option<host::Connection>,
    in_transaction: Flag<bool>,
    /// A statement was abandoned at its deadline: what runs on the connection is unknown.
    abandoned: Flag<bool>,
    timeout: OutboundTimeout,
}

impl Db {
    /// Opens a connection to `database`, waiting at most `timeout`; each statement on it waits at
    /// most `timeout` too.
    pub async fn open(database: &Database, timeout: OutboundTimeout) -> Result<Self> {
        let open = async {
            match &database.ca_root {
                None => host::Connection::open_async(database.url.clone()).await,
                Some(pem) => {
                    let builder = host::ConnectionBuilder::new(&database.url);
                    builder.set_ca_root(pem)?;
                    builder.build_async().await
                }
            }
        };
        with_deadline(timeout, open)
            .await
            .map_err(|e| timed_out("open", e))?
            .map(|conn| Self {
                conn: Some(conn),
                in_transaction: Flag::new(false),
                abandoned: Flag::new(false),
                timeout,
            })
            .map_err(|e| error("open", pg::Error::PgError(e)))
    }

    fn conn(&self) -> &host::Connection {
        self.conn.as_ref().expect("present until dropped")
    }

    /// Runs one statement's `call` within the deadline. After an abandoned statement nothing more is
    /// sent on this connection: it would queue behind that statement, or run inside whatever the
    /// statement left open.
    async fn bounded<T>(
        &self,
        context: &'static str,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        if self.abandoned.get() {
            return Err(StoreError::Timeout {
                context,
                message: "not sent: an earlier statement on this connection timed out".into(),
            });
        }
        match with_deadline(self.timeout, call).await {
            Ok(r) => r,
            Err(e) => {
                self.abandoned.set(true);
                Err(timed_out(context, e))
            }
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // A transaction is open, or a statement was abandoned (it may have opened one, or still run).
        if !(self.in_transaction.get() || self.abandoned.get()) {
            return;
        }
        if let Some(conn) = self.conn.take() {
            // The rollback owns the connection, so it goes back to the pool only afterwards (after the
            // abandoned statement's answer, which it queues behind). The task runs on within this
            // request's component-model task, even after the response is sent.
            spin_sdk::wasip3::spawn(async move {
                let _ = conn
                    .execute_async("ROLLBACK".into(), Vec::<ParameterValue>::new())
                    .await;
            });
        }
    }
}

impl Conn for Db {
    async fn query(
        &self,
        context: &'static str,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<Vec<Row>> {
        // The deadline covers the statement and every row of its answer.
        self.bounded(context, async {
            let (_, mut rows, done) = self
                .conn()
                .query_async(
                    sql.into(),
                    params.into_iter().map(param).collect::<Vec<_>>(),
                )
                .await
                .map_err(|e| error(context, pg::Error::PgError(e)))?;
            let mut out = Vec::new();
            while let Some(values) = rows.next().await {
                out.push(Row::new(values.into_iter().map(cell).collect()));
            }
            done.await
                .map_err(|e| error(context, pg::Error::PgError(e)))?;
            Ok(out)
        })
        .await
    }

    async fn execute(&self, context: &'static str, sql: &str, params: Vec<Param>) -> Result<u64> {
        self.bounded(context, async {
            self.conn()
                .execute_async(
                    sql.into(),
                    params.into_iter().map(param).collect::<Vec<_>>(),
                )
                .await
                .map_err(|e| error(context, pg::Error::PgError(e)))
        })
        .await
    }

    async fn control(&self, sql: &'static str) -> Result<()> {
        self.bounded(sql, async {
            self.conn()
                .execute_async(sql.into(), Vec::<ParameterValue>::new())
                .await
                .map(|_| ())
                .map_err(|e| error(sql, pg::Error::PgError(e)))
        })
        .await
    }

    fn note_transaction(&self, open: bool) {
        self.in_transaction.set(open);
    }
}

fn param(p: Param) -> ParameterValue {
    match p {
        Param::Null => ParameterValue::DbNull,
        Param::Bool(b) => ParameterValue::Boolean(b),
        Param::Int32(n) => ParameterValue::Int32(n),
        Param::Int64(n) => ParameterValue::Int64(n),
        Param::Text(s) => ParameterValue::Str(s),
        Param::Uuid(u) => ParameterValue::Uuid(u.hyphenated().to_string()),
        Param::Jsonb(v) => ParameterValue::Jsonb(v.to_string().into_bytes()),
    }
}

fn cell(v: DbValue) -> Cell {
    match v {
        DbValue::DbNull => Cell::Null,
        DbValue::Boolean(b) => Cell::Bool(b),
        DbValue::Int8(n) => Cell::Int(i64::from(n)),
        DbValue::Int16(n) => Cell::Int(i64::from(n)),
        DbValue::Int32(n) => Cell::Int(i64::from(n)),
        DbValue::Int64(n) => Cell::Int(n),
        DbValue::Str(s) => Cell::Text(s),
        DbValue::Uuid(s) => match uuid::Uuid::try_parse(&s) {
            Ok(u) => Cell::Uuid(u),
            Err(_) => Cell::Other(s),
        },
        DbValue::Jsonb(b) => match serde_json::from_slice(&b) {
            Ok(v) => Cell::Json(v),
            Err(_) => Cell::Other(String::from_utf8_lossy(&b).into_owned()),
        },
        other => Cell::Other(format!("{other:?}")),
    }
}

fn timed_out(context: &'static str, e: deadline::Elapsed) -> StoreError {
    StoreError::Timeout {
        context,
        message: e.to_string(),
    }
}

fn error(context: &'static str, e: pg::Error) -> StoreError {
    match e {
        // Spin's wording for an address outside allowed_outbound_hosts (the interface has no case of
        // its own for it): a deployment error, not an outage.
        pg::Error::PgError(PgError::ConnectionFailed(message))
            if message.contains("is not permitted") =>
        {
            StoreError::Denied { context, message }
        }
        pg::Error::PgError(PgError::ConnectionFailed(message)) => {
            StoreError::Unavailable { context, message }
        }
        pg::Error::PgError(PgError::QueryFailed(QueryError::DbError(d))) => StoreError::Refused {
            context,
            sqlstate: Some(d.code),
            message: d.as_text,
        },
        pg::Error::Decode(message) => StoreError::Decode { context, message },
        other => StoreError::Refused {
            context,
            sqlstate: None,
            message: other.to_string(),
        },
    }
}
