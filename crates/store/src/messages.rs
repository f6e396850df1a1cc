//! `email_messages` as the attachment routes see them: whether a message is there (live, in the
//! transaction's tenant) and whose it is, and a user's own live messages a page at a time.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::conn::{Conn, TenantTx};
use crate::error::Result;
use crate::value::Param;

const LIVE_OWNER: &str =
    "SELECT owner_user_id FROM email_messages WHERE id = $1 AND NOT is_deleted";

/// The owner of `message` when it is a live message of the transaction's tenant; `None` when it is
/// deleted, another tenant's, or does not exist.
pub async fn live_owner<C: Conn>(tx: &TenantTx<'_, C>, message: Uuid) -> Result<Option<Uuid>> {
    let rows = tx
        .query("message owner", LIVE_OWNER, vec![message.into()])
        .await?;
    rows.first().map(|r| r.uuid(0)).transpose()
}

// ---- reading: a user's own messages, newest first ------------------------------------------------

/// One row more than asked tells whether there is a next page. The tenant is named as well as
/// enforced by RLS, so the owner index (migration 0020) serves the scan; the attachment count is of
/// live attachments, as the attachment list shows them.
const OWNED_PAGE: &str = "SELECT m.id, m.subject, m.from_address, m.received_at, \
            (SELECT count(*) FROM email_attachments a \
              WHERE a.tenant_id = m.tenant_id AND a.message_id = m.id AND NOT a.is_deleted) \
     FROM email_messages m \
     WHERE m.tenant_id = $1 AND m.owner_user_id = $2 AND NOT m.is_deleted \
       AND ($3::bigint IS NULL OR (m.received_at, m.id) < ($3::bigint, $4::uuid)) \
     ORDER BY m.received_at DESC, m.id DESC \
     LIMIT $5";

/// One message as the listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: Uuid,
    pub subject: String,
    /// RFC 5322 From, as stored.
    pub from_address: String,
    /// Epoch milliseconds.
    pub received_at: i64,
    /// Live attachments of the message.
    pub attachment_count: i64,
}

/// A position in the listing's order, `(received_at, id)` descending: the rows strictly older than
/// it come next. Written `<received_at>_<id>` (the API's opaque `nextBefore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub received_at: i64,
    pub id: Uuid,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.received_at, self.id.hyphenated())
    }
}

impl FromStr for Cursor {
    type Err = ();

    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        let (t, id) = s.split_once('_').ok_or(())?;
        if id.len() != 36 || !t.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return Err(());
        }
        Ok(Self {
            received_at: t.parse().map_err(|_| ())?,
            id: Uuid::try_parse(id).map_err(|_| ())?,
        })
    }
}

/// One page of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub rows: Vec<MessageRow>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// Up to `limit` live messages of `owner` in the transaction's tenant, newest first, strictly older
/// than `before`.
pub async fn owned_page<C: Conn>(
    tx: &TenantTx<'_, C>,
    owner: Uuid,
    before: Option<Cursor>,
    limit: u32,
) -> Result<Page> {
    let rows = tx
        .query(
            "owned messages",
            OWNED_PAGE,
            vec![
                tx.tenant().into(),
                owner.into(),
                before.map_or(Param::Null, |c| c.received_at.into()),
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
            Ok(MessageRow {
                id: r.uuid(0)?,
                subject: r.text(1)?,
                from_address: r.text(2)?,
                received_at: r.int(3)?,
                attachment_count: r.int(4)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let next = if more {
        rows.last().map(|r| Cursor {
            received_at: r.received_at,
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
            received_at: 1_750_000_000_123,
            id: Uuid::parse_str("0b7f1a52-6a43-4c1e-9a0e-4f5d2d9c1e77").unwrap(),
        };
        assert_eq!(
            c.to_string(),
            "1750000000123_0b7f1a52-6a43-4c1e-9a0e-4f5d2d9c1e77"
        );
        assert_eq!(c.to_string().parse::<Cursor>(), Ok(c));
        for bad in [
            "",
            "abc",
            "1_",
            "_0b7f1a52-6a43-4c1e-9a0e-4f5d2d9c1e77",
            "1",
            "x_0b7f1a52-6a43-4c1e-9a0e-4f5d2d9c1e77",
            "1_0b7f1a526a434c1e9a0e4f5d2d9c1e77",
            "+1_0b7f1a52-6a43-4c1e-9a0e-4f5d2d9c1e77",
            "1_2_3",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?}");
        }
    }
}
