//! `attachment_blobs`: stored content, one row per content hash and tenant, shared by every
//! attachment with that content (`ref_count`), and the scan job each new content gets.
//!
//! Dedup is the upsert's: the unique `(tenant_id, content_sha256)` makes concurrent uploads of one
//! content wait for each other and converge on one row, whose storage key is the first upload's.
//! It never crosses tenants, and it never joins content that is being purged (`purging_at`,
//! migration 0019): the unique index leaves such a blob out, so an upload of that content makes a
//! new blob with its own object while the purge deletes the old one.
//!
//! What an upload tells its uploader is theirs alone ([`awaited_scan`]): `isDeduplicated` only
//! when they uploaded the content before, and the content's verdict only once a scan job of their
//! own upload is done, so nobody learns that a colleague holds a file, or that it was judged.

use uuid::Uuid;

use crate::conn::{Conn, TenantTx};
use crate::error::{Result, StoreError};
use crate::value::Param;

const HELD_BY_UPLOADER: &str = "SELECT 1 FROM attachment_blobs b WHERE b.content_sha256 = $1 AND EXISTS \
     (SELECT 1 FROM email_attachments a WHERE a.blob_id = b.id AND a.uploader_user_id = $2)";

const UPSERT: &str = "INSERT INTO attachment_blobs \
     (tenant_id, content_sha256, size_bytes, storage_key, sniffed_mime) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (tenant_id, content_sha256) WHERE purging_at IS NULL DO UPDATE SET ref_count = attachment_blobs.ref_count + 1 \
     RETURNING id, storage_key, scan_status, (xmax = 0) AS inserted";

/// Whether uploader `$3` has an attachment with content `$2` (before the one being recorded), and
/// the scan job the new upload awaits: the content's open job, else none when the uploader had the
/// content already, else a new job. Concurrent uploads of one content are serialised by the
/// upsert's row lock on the content (taken before this runs, held to the commit), so no two of them
/// can both find no open job and both insert one.
const AWAITED_SCAN: &str = "WITH own AS (\
         SELECT EXISTS (SELECT 1 FROM email_attachments a \
                        WHERE a.blob_id = $2::uuid AND a.uploader_user_id = $3::uuid) AS earlier), \
     open AS (\
         SELECT j.id FROM scan_jobs j WHERE j.blob_id = $2::uuid AND j.status IN ('pending', 'running') \
         ORDER BY j.created_at LIMIT 1), \
     ins AS (\
         INSERT INTO scan_jobs (tenant_id, blob_id) SELECT $1::uuid, $2::uuid \
         WHERE NOT EXISTS (SELECT 1 FROM open) AND NOT (SELECT earlier FROM own) \
         RETURNING id) \
     SELECT (SELECT earlier FROM own), coalesce((SELECT id FROM open), (SELECT id FROM ins))";

const RELEASE: &str =
    "UPDATE attachment_blobs SET ref_count = ref_count - 1 WHERE id = $1 AND ref_count > 0";

/// Whether `uploader` has uploaded the content `content_sha256` in the transaction's tenant (one
/// of their attachments, deleted or not, uses it): such content need not be stored again. Other
/// users' content is never looked up this way.
pub async fn held_by_uploader<C: Conn>(
    tx: &TenantTx<'_, C>,
    content_sha256: &str,
    uploader: Uuid,
) -> Result<bool> {
    let rows = tx
        .query(
            "content held by uploader",
            HELD_BY_UPLOADER,
            vec![content_sha256.into(), uploader.into()],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// Content as an upload stored it.
#[derive(Debug, Clone)]
pub struct NewBlob<'a> {
    /// Lowercase hex SHA-256.
    pub content_sha256: &'a str,
    pub size_bytes: i64,
    /// Where this upload put it.
    pub storage_key: &'a str,
    /// What the magic bytes said.
    pub sniffed_mime: Option<&'a str>,
}

/// The blob an upload's content now belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upserted {
    pub id: Uuid,
    /// The first upload's key: when not [`NewBlob::storage_key`], that upload's copy is unused.
    pub storage_key: String,
    pub scan_status: String,
    /// This upload created the row (new content); otherwise it took one more reference.
    pub inserted: bool,
}

/// Inserts the blob of `new`, or takes one more reference of the tenant's blob with that content.
/// Waits for a concurrent transaction upserting the same content and follows its outcome.
pub async fn upsert<C: Conn>(tx: &TenantTx<'_, C>, new: &NewBlob<'_>) -> Result<Upserted> {
    let rows = tx
        .query(
            "blob upsert",
            UPSERT,
            vec![
                tx.tenant().into(),
                new.content_sha256.into(),
                new.size_bytes.into(),
                new.storage_key.into(),
                Param::opt_text(new.sniffed_mime),
            ],
        )
        .await?;
    let r = rows
        .first()
        .ok_or_else(|| StoreError::decode("blob upsert", "no row returned"))?;
    Ok(Upserted {
        id: r.uuid(0)?,
        storage_key: r.text(1)?,
        scan_status: r.text(2)?,
        inserted: r.bool(3)?,
    })
}

/// What a new upload of content `blob` by `uploader` may be told, decided before its attachment
/// row is inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Awaited {
    /// The uploader has an earlier attachment with this content (`isDeduplicated`).
    pub own_earlier: bool,
    /// The scan job the upload awaits (the attachment's `scan_job_id`): while it is open the
    /// attachment reports `pending`. `None` only when the uploader had the content already and no
    /// scan of it is open: they know its verdict.
    pub job: Option<Uuid>,
}

/// Finds or queues the scan job a new upload of `blob` by `uploader` awaits (see [`Awaited`]);
/// call it after [`upsert`] (whose row lock it relies on) and before inserting the attachment.
/// New content always gets a new job.
pub async fn awaited_scan<C: Conn>(
    tx: &TenantTx<'_, C>,
    blob: Uuid,
    uploader: Uuid,
) -> Result<Awaited> {
    const CONTEXT: &str = "awaited scan job";
    let rows = tx
        .query(
            CONTEXT,
            AWAITED_SCAN,
            vec![tx.tenant().into(), blob.into(), uploader.into()],
        )
        .await?;
    let r = rows
        .first()
        .ok_or_else(|| StoreError::decode(CONTEXT, "no row returned"))?;
    Ok(Awaited {
        own_earlier: r.bool(0)?,
        job: r.opt_uuid(1)?,
    })
}

/// Gives back one reference of `blob` (an attachment using it was deleted); never below zero.
pub async fn release<C: Conn>(tx: &TenantTx<'_, C>, blob: Uuid) -> Result<()> {
    tx.execute("blob release", RELEASE, vec![blob.into()])
        .await
        .map(|_| ())
}
