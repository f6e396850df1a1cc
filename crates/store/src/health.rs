//! Readiness: whether the database answers a statement, as the app's role (no table read).

use crate::conn::Conn;
use crate::error::Result;

/// `SELECT 1`: the database accepts a connection and runs a statement.
pub async fn ping<C: Conn>(conn: &C) -> Result<()> {
    conn.query("readiness ping", "SELECT 1", Vec::new())
        .await
        .map(|_| ())
}
