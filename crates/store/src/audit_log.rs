//! `email_audit_log`: the append-only record of security-relevant actions. Rows are written in the
//! transaction of the action they record, so an action and its audit row commit or vanish together.
//! A tenant's admins read them back a page at a time ([`page`]), newest first.

use std::fmt;
use std::str::FromStr;

use auth_core::UserId;
use serde_json::Value;
use uuid::Uuid;

use crate::conn::{Conn, TenantTx};
use crate::error::Result;
use crate::value::Param;

/// `client_addr` is bound as text and cast, so a malformed address is a database error rather than
/// a silently different value.
const INSERT: &str = "INSERT INTO email_audit_log \
     (tenant_id, user_id, action, resource_type, resource_id, request_id, client_addr, details) \
     VALUES ($1, $2, $3, $4, $5, $6, $7::text::inet, $8::jsonb)";

/// One audit row; the tenant is the transaction's.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// The acting user, if any.
    pub user: Option<&'a UserId>,
    /// `^[a-z][a-z0-9_.]*$`, e.g. `auth.login_failed`.
    pub action: &'a str,
    /// e.g. `user`, `attachment`, `refresh_token_family`.
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

/// Appends `entry` under the transaction's tenant.
pub async fn record<C: Conn>(tx: &TenantTx<'_, C>, entry: &AuditEntry<'_>) -> Result<()> {
    let details = if entry.details.is_object() {
        entry.details.clone()
    } else {
        Value::Object(Default::default())
    };
    tx.execute(
        "audit row",
        INSERT,
        vec![
            tx.tenant().into(),
            entry.user.map_or(Param::Null, Param::from),
            entry.action.into(),
            Param::opt_text(entry.resource_type),
            Param::opt_text(entry.resource_id.as_deref()),
            entry.request_id.into(),
            Param::opt_text(entry.client_addr.as_deref()),
            Param::Jsonb(details),
        ],
    )
    .await
    .map(|_| ())
}

/// One download through a signed URL, added to that URL's row of the current minute (see
/// `audit_download` in migrations/0011): the row's count after it.
const DOWNLOAD: &str = "SELECT audit_download($1, $2, $3, $4, $5, $6)";

/// A download through a signed content URL, as its coalesced audit row records it.
#[derive(Debug, Clone)]
pub struct Download<'a> {
    /// The attachment served.
    pub attachment: Uuid,
    /// The URL's opaque id (`signed_url::url_id`), never the URL.
    pub url_id: &'a str,
    /// This request's id (kept when it starts the minute's row).
    pub request_id: &'a str,
    /// The client's IP (kept when it starts the minute's row).
    pub client_addr: Option<String>,
    /// Bytes answered.
    pub bytes: i64,
    /// `stream` or `redirect`.
    pub mode: &'a str,
}

/// Records `download` under the transaction's tenant: one `attachment.download` row per URL and
/// minute, whose `details.count` and `details.bytes` add up the downloads of that minute. Returns
/// the count so far.
pub async fn record_download<C: Conn>(
    tx: &TenantTx<'_, C>,
    download: &Download<'_>,
) -> Result<i64> {
    const CONTEXT: &str = "download audit";
    let rows = tx
        .query(
            CONTEXT,
            DOWNLOAD,
            vec![
                download.attachment.into(),
                download.url_id.into(),
                download.request_id.into(),
                Param::opt_text(download.client_addr.as_deref()),
                download.bytes.into(),
                download.mode.into(),
            ],
        )
        .await?;
    match rows.first() {
        Some(r) => r.int(0),
        None => Err(crate::error::StoreError::decode(CONTEXT, "no row")),
    }
}

// ---- reading: the tenant's audit log, newest first ----------------------------------------------

/// One row more than asked tells whether there is a next page. `client_addr` is selected as text
/// (`host`), `details` as the stored object.
const PAGE: &str = "SELECT id, user_id, action, resource_type, resource_id, request_id, host(client_addr), \
            details, created_at \
     FROM email_audit_log \
     WHERE tenant_id = $1 AND ($2::bigint IS NULL OR (created_at, id) < ($2::bigint, $3::bigint)) \
     ORDER BY created_at DESC, id DESC \
     LIMIT $4";

/// One audit row as the listing shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub id: i64,
    pub user_id: Option<Uuid>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub request_id: Option<String>,
    /// The client's IP, as text.
    pub client_addr: Option<String>,
    /// A JSON object.
    pub details: Value,
    /// Epoch milliseconds.
    pub created_at: i64,
}

/// A position in the listing's order, `(created_at, id)` descending: the rows strictly older than
/// it come next. Written `<created_at>_<id>` (the API's opaque `nextBefore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: i64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.created_at, self.id)
    }
}

impl FromStr for Cursor {
    type Err = ();

    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        let (t, id) = s.split_once('_').ok_or(())?;
        Ok(Self {
            created_at: t.parse().map_err(|_| ())?,
            id: id.parse().map_err(|_| ())?,
        })
    }
}

/// One page of the listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub rows: Vec<AuditRow>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// Up to `limit` rows of the transaction's tenant, newest first, strictly older than `before`.
pub async fn page<C: Conn>(
    tx: &TenantTx<'_, C>,
    before: Option<Cursor>,
    limit: u32,
) -> Result<Page> {
    let rows = tx
        .query(
            "audit page",
            PAGE,
            vec![
                tx.tenant().into(),
                before.map_or(Param::Null, |c| c.created_at.into()),
                before.map_or(Param::Null, |c| c.id.into()),
                (i64::from(limit) + 1).into(),
            ],
        )
        .await?;
    let more = rows.len() > limit as usize;
    let rows = rows
        .iter()
        .take(limit as usize)
        .map(|r| {
            Ok(AuditRow {
                id: r.int(0)?,
                user_id: r.opt_uuid(1)?,
                action: r.text(2)?,
                resource_type: r.opt_text(3)?,
                resource_id: r.opt_text(4)?,
                request_id: r.opt_text(5)?,
                client_addr: r.opt_text(6)?,
                details: r
                    .opt_json(7)?
                    .unwrap_or_else(|| Value::Object(Default::default())),
                created_at: r.int(8)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let next = if more {
        rows.last().map(|r| Cursor {
            created_at: r.created_at,
            id: r.id,
        })
    } else {
        None
    };
    Ok(Page { rows, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let c = Cursor {
            created_at: 1_750_000_000_123,
            id: 42,
        };
        assert_eq!(c.to_string(), "1750000000123_42");
        assert_eq!("1750000000123_42".parse::<Cursor>(), Ok(c));
        for bad in ["", "abc", "1_", "_1", "1", "1_2_3", "x_1", "1_x", "1.5_2"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?}");
        }
    }
}
