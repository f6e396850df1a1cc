//! `email_attachments`: one row per attached file (its name, types, size, uploader, message, the
//! content blob it shares, soft delete, and the URL generation that revoking bumps).
//!
//! [`AttachmentRow`] is the one read of an attachment: the record the API answers with, who may
//! see it, and what serving its content needs. Listing, reading, issuing a URL and serving content
//! all read it through [`get`] or [`list_live`], so they cannot disagree about an attachment.

use uuid::Uuid;

use crate::conn::{Conn, TenantTx};
use crate::error::{Result, StoreError};
use crate::value::{Param, Row};

/// Columns of [`AttachmentRow`], in order; `WHERE ...` follows. `is_deduplicated`: an older
/// attachment (deleted or not) of the same uploader shares the content (other users' uploads are
/// never told). The last column: the scan job the upload awaits is still open.
const SELECT: &str = "SELECT a.id, a.message_id, a.filename, a.detected_mime, a.declared_mime, \
     a.size_bytes, b.content_sha256, b.scan_status, b.storage_key, \
     EXISTS (SELECT 1 FROM email_attachments o WHERE o.blob_id = a.blob_id \
             AND o.uploader_user_id = a.uploader_user_id \
             AND (o.created_at, o.id) < (a.created_at, a.id)), \
     a.created_at, a.url_generation, a.uploader_user_id, m.owner_user_id, a.is_deleted, \
     coalesce(j.status IN ('pending', 'running'), false) \
     FROM email_attachments a \
     JOIN attachment_blobs b ON b.tenant_id = a.tenant_id AND b.id = a.blob_id \
     JOIN email_messages m ON m.tenant_id = a.tenant_id AND m.id = a.message_id \
     LEFT JOIN scan_jobs j ON j.tenant_id = a.tenant_id AND j.id = a.scan_job_id";

/// `retention_expires_at`: now plus the tenant's own `retention_days` (migration 0019), else `$11`
/// days (the app's `retention_days`).
const INSERT: &str = "INSERT INTO email_attachments (id, tenant_id, message_id, blob_id, uploader_user_id, \
     filename, declared_mime, detected_mime, size_bytes, scan_job_id, retention_expires_at) \
     VALUES (coalesce($10::uuid, gen_random_uuid()), $1, $2, $3, $4, $5, $6, $7, $8, $9, \
             app_now_ms() + coalesce((SELECT t.retention_days FROM tenants t WHERE t.id = $1), $11::integer)::bigint * 86400000) \
     RETURNING id, created_at, url_generation, retention_expires_at";

const LOCK: &str = "SELECT a.uploader_user_id, a.is_deleted, a.blob_id, m.owner_user_id \
     FROM email_attachments a \
     JOIN email_messages m ON m.tenant_id = a.tenant_id AND m.id = a.message_id \
     WHERE a.id = $1 FOR UPDATE OF a";

const SOFT_DELETE: &str =
    "UPDATE email_attachments SET is_deleted = true, deleted_at = $2 WHERE id = $1";

const BUMP_URL_GENERATION: &str =
    "UPDATE email_attachments SET url_generation = url_generation + 1 WHERE id = $1";

/// The type reported when ingest detected none.
pub const UNKNOWN_MIME: &str = "application/octet-stream";

/// One attachment with its content's facts and its message's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRow {
    pub id: Uuid,
    pub message_id: Uuid,
    pub filename: String,
    /// What ingest concluded (`mimeType`).
    pub detected_mime: Option<String>,
    /// What the client said.
    pub declared_mime: Option<String>,
    pub size_bytes: i64,
    /// Lowercase hex SHA-256 of the content (`contentHash`, the `ETag`).
    pub content_sha256: String,
    /// The content's verdict (`pending`, `clean`, `infected`, `suspicious`, `error`, `skipped`),
    /// shared by every attachment with that content: what serving decides on, never what an
    /// attachment reports on its own (see [`AttachmentRow::reported_status`]).
    pub scan_status: String,
    /// Where the content is stored.
    pub storage_key: String,
    /// An older attachment of the same uploader shares the content.
    pub is_deduplicated: bool,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Signed URLs carry it; revoking bumps it.
    pub url_generation: u32,
    pub uploader: Uuid,
    pub message_owner: Uuid,
    pub is_deleted: bool,
    /// The scan job this upload awaits is still open: until it is done the attachment is
    /// `pending`, whatever the content's verdict.
    pub awaiting_scan: bool,
}

/// The status an attachment reports (`virusScanStatus`, scan-status) for its content's verdict
/// `content`: `pending` while the scan its upload awaits is open, so an upload never reveals that the
/// tenant had judged that content before.
pub fn reported_status(content: &str, awaiting_scan: bool) -> &str {
    if awaiting_scan { "pending" } else { content }
}

/// The status an attachment is served as: what it reports, except that infected or suspicious
/// content is refused as such whatever the attachment reports (downloads answer the same
/// `scan_blocked` for every refused status, so this reveals nothing either).
pub fn served_status(content: &str, awaiting_scan: bool) -> &str {
    match content {
        "infected" | "suspicious" => content,
        _ => reported_status(content, awaiting_scan),
    }
}

impl AttachmentRow {
    fn from_row(r: &Row) -> Result<Self> {
        Ok(Self {
            id: r.uuid(0)?,
            message_id: r.uuid(1)?,
            filename: r.text(2)?,
            detected_mime: r.opt_text(3)?,
            declared_mime: r.opt_text(4)?,
            size_bytes: r.int(5)?,
            content_sha256: r.text(6)?,
            scan_status: r.text(7)?,
            storage_key: r.text(8)?,
            is_deduplicated: r.bool(9)?,
            created_at: r.int(10)?,
            url_generation: generation(r.int(11)?)?,
            uploader: r.uuid(12)?,
            message_owner: r.uuid(13)?,
            is_deleted: r.bool(14)?,
            awaiting_scan: r.bool(15)?,
        })
    }

    /// What the attachment reports as its scan status (see [`reported_status`]).
    pub fn reported_status(&self) -> &str {
        reported_status(&self.scan_status, self.awaiting_scan)
    }

    /// What the attachment is served as (see [`served_status`]).
    pub fn served_status(&self) -> &str {
        served_status(&self.scan_status, self.awaiting_scan)
    }

    /// The API's `mimeType`: the detected type, else [`UNKNOWN_MIME`].
    pub fn mime_type(&self) -> &str {
        self.detected_mime.as_deref().unwrap_or(UNKNOWN_MIME)
    }

    /// The type content is served as (made safe by `delivery`): detected, else declared.
    pub fn served_mime(&self) -> Option<&str> {
        self.detected_mime
            .as_deref()
            .or(self.declared_mime.as_deref())
    }
}

fn generation(n: i64) -> Result<u32> {
    u32::try_from(n).map_err(|_| StoreError::decode("attachment", format!("url_generation {n}")))
}

/// The attachment `id` of the transaction's tenant, deleted or not.
pub async fn get<C: Conn>(tx: &TenantTx<'_, C>, id: Uuid) -> Result<Option<AttachmentRow>> {
    let rows = tx
        .query(
            "attachment",
            &format!("{SELECT} WHERE a.id = $1"),
            vec![id.into()],
        )
        .await?;
    rows.first().map(AttachmentRow::from_row).transpose()
}

/// The live attachments of `message`, newest first (ties by id, descending).
pub async fn list_live<C: Conn>(tx: &TenantTx<'_, C>, message: Uuid) -> Result<Vec<AttachmentRow>> {
    let sql = format!(
        "{SELECT} WHERE a.message_id = $1 AND NOT a.is_deleted \
         ORDER BY a.created_at DESC, a.id DESC"
    );
    let rows = tx
        .query("message attachments", &sql, vec![message.into()])
        .await?;
    rows.iter().map(AttachmentRow::from_row).collect()
}

/// A new attachment row.
#[derive(Debug, Clone)]
pub struct NewAttachment<'a> {
    /// The id it must have (a verified direct upload's, known to its uploader since the upload
    /// began); `None`: a new one.
    pub id: Option<Uuid>,
    pub message: Uuid,
    pub blob: Uuid,
    pub uploader: Uuid,
    /// Already judged by the upload policy.
    pub filename: &'a str,
    pub declared_mime: Option<&'a str>,
    pub detected_mime: &'a str,
    pub size_bytes: i64,
    /// The scan job the upload awaits (`crate::blobs::awaited_scan`).
    pub scan_job: Option<Uuid>,
    /// How long it is kept when its tenant sets no retention of its own (the app's
    /// `retention_days`, [`RetentionDays`]).
    pub retention: RetentionDays,
}

/// A retention period in days, 1 to 36500 (100 years): the app's `retention_days` and a tenant's
/// `retention_days` column (which the database bounds the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionDays(u16);

impl RetentionDays {
    /// The default: 90 days.
    pub const DEFAULT: Self = Self(90);
    /// The longest period accepted.
    pub const MAX: u16 = 36_500;

    /// A setting's value; `Err` says what is wrong, for the one log line of a misconfiguration.
    pub fn parse(value: &str) -> std::result::Result<Self, String> {
        let v = value.trim();
        let n: i64 = v
            .parse()
            .map_err(|_| format!("retention_days: `{v}` is not a whole number of days"))?;
        if !(1..=i64::from(Self::MAX)).contains(&n) {
            return Err(format!(
                "retention_days: {n} is out of range (1..={} days)",
                Self::MAX
            ));
        }
        Ok(Self(n as u16))
    }

    /// The number of days.
    pub const fn days(self) -> u16 {
        self.0
    }
}

/// What the database chose for a new attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    pub id: Uuid,
    /// Epoch milliseconds.
    pub created_at: i64,
    pub url_generation: u32,
    /// When the purge may delete it (epoch milliseconds).
    pub retention_expires_at: i64,
}

/// Inserts `new` under the transaction's tenant.
pub async fn insert<C: Conn>(tx: &TenantTx<'_, C>, new: &NewAttachment<'_>) -> Result<Inserted> {
    let rows = tx
        .query(
            "attachment insert",
            INSERT,
            vec![
                tx.tenant().into(),
                new.message.into(),
                new.blob.into(),
                new.uploader.into(),
                new.filename.into(),
                Param::opt_text(new.declared_mime),
                new.detected_mime.into(),
                new.size_bytes.into(),
                Param::opt_uuid(new.scan_job),
                Param::opt_uuid(new.id),
                Param::Int32(i32::from(new.retention.days())),
            ],
        )
        .await?;
    let r = rows
        .first()
        .ok_or_else(|| StoreError::decode("attachment insert", "no row returned"))?;
    Ok(Inserted {
        id: r.uuid(0)?,
        created_at: r.int(1)?,
        url_generation: generation(r.int(2)?)?,
        retention_expires_at: r.int(3)?,
    })
}

/// An attachment locked for a change (`FOR UPDATE` until the transaction ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub uploader: Uuid,
    pub is_deleted: bool,
    pub blob: Uuid,
    /// The owner of the attachment's message.
    pub message_owner: Uuid,
}

/// Locks the attachment `id` (deleted or not) against concurrent changes.
pub async fn lock<C: Conn>(tx: &TenantTx<'_, C>, id: Uuid) -> Result<Option<Locked>> {
    let rows = tx.query("attachment lock", LOCK, vec![id.into()]).await?;
    rows.first()
        .map(|r| {
            Ok(Locked {
                uploader: r.uuid(0)?,
                is_deleted: r.bool(1)?,
                blob: r.uuid(2)?,
                message_owner: r.uuid(3)?,
            })
        })
        .transpose()
}

/// Marks the attachment deleted at `now_ms` (epoch milliseconds); its row stays.
pub async fn soft_delete<C: Conn>(tx: &TenantTx<'_, C>, id: Uuid, now_ms: i64) -> Result<()> {
    tx.execute(
        "attachment delete",
        SOFT_DELETE,
        vec![id.into(), now_ms.into()],
    )
    .await
    .map(|_| ())
}

/// Revokes every URL issued so far for the attachment: they carry the old generation.
pub async fn bump_url_generation<C: Conn>(tx: &TenantTx<'_, C>, id: Uuid) -> Result<()> {
    tx.execute("revoke urls", BUMP_URL_GENERATION, vec![id.into()])
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Cell;

    fn row(detected: Option<&str>, declared: Option<&str>, generation: i64) -> Row {
        let id = Uuid::from_u128(1);
        let text = |s: Option<&str>| s.map_or(Cell::Null, |s| Cell::Text(s.into()));
        Row::new(vec![
            Cell::Uuid(id),
            Cell::Uuid(id),
            Cell::Text("a.txt".into()),
            text(detected),
            text(declared),
            Cell::Int(5),
            Cell::Text("ab".repeat(32)),
            Cell::Text("clean".into()),
            Cell::Text("tenants/x/blobs/y".into()),
            Cell::Bool(false),
            Cell::Int(1_700_000_000_000),
            Cell::Int(generation),
            Cell::Uuid(id),
            Cell::Uuid(id),
            Cell::Bool(false),
            Cell::Bool(false),
        ])
    }

    #[test]
    fn an_upload_awaiting_its_scan_reports_pending_and_never_serves_quarantine() {
        for content in [
            "pending",
            "clean",
            "error",
            "skipped",
            "infected",
            "suspicious",
        ] {
            assert_eq!(reported_status(content, false), content);
            assert_eq!(served_status(content, false), content);
            assert_eq!(reported_status(content, true), "pending");
        }
        for content in ["pending", "clean", "error", "skipped"] {
            assert_eq!(served_status(content, true), "pending", "{content}");
        }
        for content in ["infected", "suspicious"] {
            assert_eq!(served_status(content, true), content);
        }
    }

    #[test]
    fn the_api_type_and_the_served_type() {
        let r = AttachmentRow::from_row(&row(None, Some("text/html"), 0)).unwrap();
        assert_eq!(r.mime_type(), UNKNOWN_MIME);
        assert_eq!(r.served_mime(), Some("text/html"));
        let r =
            AttachmentRow::from_row(&row(Some("application/pdf"), Some("image/png"), 3)).unwrap();
        assert_eq!(r.mime_type(), "application/pdf");
        assert_eq!(r.served_mime(), Some("application/pdf"));
        assert_eq!(r.url_generation, 3);
        assert_eq!(
            AttachmentRow::from_row(&row(None, None, 0))
                .unwrap()
                .served_mime(),
            None
        );
    }

    #[test]
    fn retention_days_refuses_negative_zero_absurd_and_garbage() {
        assert_eq!(RetentionDays::parse("90"), Ok(RetentionDays::DEFAULT));
        assert_eq!(RetentionDays::parse(" 1 ").map(RetentionDays::days), Ok(1));
        assert_eq!(
            RetentionDays::parse("36500").map(RetentionDays::days),
            Ok(36_500)
        );
        for bad in ["0", "-1", "36501", "99999999999999999999", "", "90d", "1.5"] {
            let e = RetentionDays::parse(bad).unwrap_err();
            assert!(e.starts_with("retention_days: "), "{bad}: {e}");
        }
    }

    #[test]
    fn a_generation_out_of_range_is_a_decode_error() {
        assert!(AttachmentRow::from_row(&row(None, None, -1)).is_err());
        assert!(AttachmentRow::from_row(&row(None, None, i64::from(u32::MAX) + 1)).is_err());
    }
}
