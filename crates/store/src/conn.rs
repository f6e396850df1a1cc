//! The one seam between the statements and a host: [`Conn`], implemented by Spin's Postgres
//! connection (`crate::spin::Db`) and by tokio-postgres's `Client` (`crate::native`), and the
//! transactions every unit of work runs in. [`TenantTx`] is the one place that sets the tenant
//! context (`app.current_tenant_id`, transaction-local), so row-level security sees the caller's
//! tenant and nothing else; a statement that needs a tenant takes a `TenantTx` and cannot run without one.

use std::future::Future;
use std::ops::Deref;

use auth_core::TenantId;

use crate::error::Result;
use crate::value::{Param, Row};

/// A Postgres connection as the statements use it. `context` names the statement for the log.
pub trait Conn {
    /// A statement that returns rows; all of them.
    fn query(
        &self,
        context: &'static str,
        sql: &str,
        params: Vec<Param>,
    ) -> impl Future<Output = Result<Vec<Row>>>;

    /// A statement that returns no rows; the number of rows it affected.
    fn execute(
        &self,
        context: &'static str,
        sql: &str,
        params: Vec<Param>,
    ) -> impl Future<Output = Result<u64>>;

    /// Transaction control without parameters (`BEGIN`, `COMMIT`, `SAVEPOINT x`, ...).
    fn control(&self, sql: &'static str) -> impl Future<Output = Result<()>>;

    /// Told when this connection's transaction opens and ends (the Spin backend rolls back one
    /// left open when it is dropped).
    fn note_transaction(&self, _open: bool) {}
}

/// An open transaction without a tenant: only the pre-tenant `SECURITY DEFINER` entry points (login,
/// token refresh, resolving a callback's tenant) see anything through it. Dropped without
/// [`Tx::commit`], it stays open until its connection is dropped or reused; the Spin backend then
/// rolls it back.
pub struct Tx<'c, C: Conn> {
    conn: &'c C,
}

impl<'c, C: Conn> Tx<'c, C> {
    /// `BEGIN`.
    pub async fn begin(conn: &'c C) -> Result<Self> {
        // Noted before the statement: if `BEGIN` reached the server but its answer did not reach
        // us, a rollback is still right (outside a transaction it only warns).
        conn.note_transaction(true);
        conn.control("BEGIN").await?;
        Ok(Self { conn })
    }

    /// `BEGIN`, then the tenant for this transaction.
    pub async fn for_tenant(conn: &'c C, tenant: &TenantId) -> Result<TenantTx<'c, C>> {
        Self::begin(conn).await?.into_tenant(tenant).await
    }

    /// The tenant for the rest of this transaction: a pre-tenant entry point that learned the
    /// tenant (a refresh token's reuse) records what it did in the same transaction, so both
    /// commit or vanish together.
    pub async fn into_tenant(self, tenant: &TenantId) -> Result<TenantTx<'c, C>> {
        self.query(
            "set tenant",
            "SELECT set_config('app.current_tenant_id', $1, true)",
            vec![Param::Text(tenant.to_string())],
        )
        .await?;
        Ok(TenantTx {
            tx: self,
            tenant: *tenant,
        })
    }

    /// A statement of this transaction that returns rows.
    pub(crate) async fn query(
        &self,
        context: &'static str,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<Vec<Row>> {
        self.conn.query(context, sql, params).await
    }

    /// A statement of this transaction; affected row count.
    pub(crate) async fn execute(
        &self,
        context: &'static str,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<u64> {
        self.conn.execute(context, sql, params).await
    }

    /// Runs `work` under a savepoint: when it fails with an error for which `undo` says yes, the
    /// transaction goes back to before it and stays usable, and `Ok(None)` is returned.
    pub(crate) async fn savepoint<T>(
        &self,
        work: impl Future<Output = Result<T>>,
        undo: impl FnOnce(&crate::StoreError) -> bool,
    ) -> Result<Option<T>> {
        self.conn.control("SAVEPOINT store_savepoint").await?;
        match work.await {
            Ok(v) => {
                self.conn
                    .control("RELEASE SAVEPOINT store_savepoint")
                    .await?;
                Ok(Some(v))
            }
            Err(e) if undo(&e) => {
                self.conn
                    .control("ROLLBACK TO SAVEPOINT store_savepoint")
                    .await?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// `COMMIT`.
    pub async fn commit(self) -> Result<()> {
        self.conn.control("COMMIT").await?;
        self.conn.note_transaction(false);
        Ok(())
    }

    /// `ROLLBACK`, best effort: when it fails, the connection still knows a transaction is open.
    pub async fn rollback(self) {
        if self.conn.control("ROLLBACK").await.is_ok() {
            self.conn.note_transaction(false);
        }
    }
}

/// An open transaction with the tenant set: row-level security shows this tenant's rows only.
pub struct TenantTx<'c, C: Conn> {
    tx: Tx<'c, C>,
    tenant: TenantId,
}

impl<'c, C: Conn> TenantTx<'c, C> {
    /// The tenant this transaction runs as.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// `COMMIT`.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await
    }

    /// `ROLLBACK`, best effort.
    pub async fn rollback(self) {
        self.tx.rollback().await
    }
}

impl<'c, C: Conn> Deref for TenantTx<'c, C> {
    type Target = Tx<'c, C>;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}
