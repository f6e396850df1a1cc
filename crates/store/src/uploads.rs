//! `upload_sessions` as the components see them: direct-to-storage uploads, from the session a
//! client asks for to the outcome of the worker's verification (migration 0014 describes the
//! states). The worker's side of the table (claims, the janitor) is [`crate::upload_queue`].
//!
//! A session is the attachment its uploader will get: until it is verified, the message's list and
//! the attachment's record show it from here ([`SessionRow`]), with the id the attachment row takes
//! once verified.

use auth_core::TenantId;
use uuid::Uuid;

use crate::conn::{Conn, TenantTx};
use crate::error::{Result, StoreError};
use crate::value::{Param, Row};

const COLUMNS: &str = "id, message_id, user_id, attachment_id, filename, declared_mime, claimed_size, \
     claimed_sha256, storage_key, s3_upload_id, part_size, part_count, state, reject_code, \
     reject_detail, expires_at, created_at, protocol, upload_offset";

const INSERT: &str = "INSERT INTO upload_sessions (tenant_id, message_id, user_id, filename, declared_mime, \
     claimed_size, claimed_sha256, storage_key, s3_upload_id, part_size, part_count, expires_at, protocol) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::bigint::integer, $12, $13) RETURNING ";

const SET_STATE: &str = "UPDATE upload_sessions SET state = $2, completed_at = CASE WHEN $2 = 'verifying' \
     THEN app_now_ms() ELSE completed_at END WHERE id = $1";

const RECORD_OUTCOME: &str = "UPDATE upload_sessions SET state = $2, reject_code = $3, reject_detail = $4, \
     object_unused = $5, lease_expires_at = NULL, locked_by = NULL WHERE id = $1 AND state = 'verifying'";

/// The tenant of an upload session, for a caller without one (the signed verification callback).
const RESOLVE: &str = "SELECT resolve_upload_tenant($1)";

/// Where a session is in its life (migration 0014).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Parts may be sent until it expires.
    Open,
    /// Completed; the worker verifies the object.
    Verifying,
    /// Verified: the attachment row exists.
    Done,
    /// Verification refused it.
    Rejected,
    /// Its client gave up.
    Aborted,
}

impl State {
    /// The database's word.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Verifying => "verifying",
            Self::Done => "done",
            Self::Rejected => "rejected",
            Self::Aborted => "aborted",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => Self::Open,
            "verifying" => Self::Verifying,
            "done" => Self::Done,
            "rejected" => Self::Rejected,
            "aborted" => Self::Aborted,
            _ => return None,
        })
    }
}

/// One upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The `uploadId`.
    pub id: Uuid,
    pub message_id: Uuid,
    /// Who created it.
    pub user_id: Uuid,
    /// The id its attachment has (or will have).
    pub attachment_id: Uuid,
    pub filename: String,
    pub declared_mime: Option<String>,
    pub claimed_size: i64,
    pub claimed_sha256: Option<String>,
    pub storage_key: String,
    /// The storage's multipart upload id.
    pub s3_upload_id: String,
    pub part_size: i64,
    pub part_count: u32,
    pub state: State,
    pub reject_code: Option<String>,
    pub reject_detail: Option<String>,
    /// Epoch milliseconds.
    pub expires_at: i64,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// How its bytes arrive.
    pub protocol: Protocol,
    /// Bytes stored so far (tus; a direct upload's stays 0).
    pub upload_offset: i64,
}

/// How a session's bytes arrive (migration 0015).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Parts PUT by the client to presigned storage URLs.
    Direct,
    /// tus chunks PATCHed through the ingest component.
    Tus,
}

impl Protocol {
    /// The database's word.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Tus => "tus",
        }
    }
}

impl SessionRow {
    fn from_row(r: &Row) -> Result<Self> {
        let state = r.text(12)?;
        Ok(Self {
            id: r.uuid(0)?,
            message_id: r.uuid(1)?,
            user_id: r.uuid(2)?,
            attachment_id: r.uuid(3)?,
            filename: r.text(4)?,
            declared_mime: r.opt_text(5)?,
            claimed_size: r.int(6)?,
            claimed_sha256: r.opt_text(7)?,
            storage_key: r.text(8)?,
            s3_upload_id: r.text(9)?,
            part_size: r.int(10)?,
            part_count: u32::try_from(r.int(11)?)
                .map_err(|_| StoreError::decode("upload session", "part_count"))?,
            state: State::parse(&state)
                .ok_or_else(|| StoreError::decode("upload session", format!("state {state}")))?,
            reject_code: r.opt_text(13)?,
            reject_detail: r.opt_text(14)?,
            expires_at: r.int(15)?,
            created_at: r.int(16)?,
            protocol: match r.text(17)?.as_str() {
                "tus" => Protocol::Tus,
                _ => Protocol::Direct,
            },
            upload_offset: r.int(18)?,
        })
    }

    /// Past its expiry at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_at <= now_ms
    }
}

/// A session to create: what was claimed and checked before any byte moved, and the storage's
/// multipart upload begun for it.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub message: Uuid,
    pub user: Uuid,
    /// Already judged by the upload policy.
    pub filename: &'a str,
    pub declared_mime: Option<&'a str>,
    pub claimed_size: i64,
    pub claimed_sha256: Option<&'a str>,
    pub storage_key: &'a str,
    pub s3_upload_id: &'a str,
    pub part_size: i64,
    pub part_count: u32,
    /// Epoch milliseconds.
    pub expires_at: i64,
    pub protocol: Protocol,
}

/// Inserts `new` under the transaction's tenant.
pub async fn create<C: Conn>(tx: &TenantTx<'_, C>, new: &NewSession<'_>) -> Result<SessionRow> {
    let sql = format!("{INSERT}{COLUMNS}");
    let rows = tx
        .query(
            "upload session insert",
            &sql,
            vec![
                tx.tenant().into(),
                new.message.into(),
                new.user.into(),
                new.filename.into(),
                Param::opt_text(new.declared_mime),
                new.claimed_size.into(),
                Param::opt_text(new.claimed_sha256),
                new.storage_key.into(),
                new.s3_upload_id.into(),
                new.part_size.into(),
                i64::from(new.part_count).into(),
                new.expires_at.into(),
                new.protocol.as_str().into(),
            ],
        )
        .await?;
    rows.first()
        .ok_or_else(|| StoreError::decode("upload session insert", "no row returned"))
        .and_then(SessionRow::from_row)
}

/// The session `id` of the transaction's tenant.
pub async fn get<C: Conn>(tx: &TenantTx<'_, C>, id: Uuid) -> Result<Option<SessionRow>> {
    let sql = format!("SELECT {COLUMNS} FROM upload_sessions WHERE id = $1");
    let rows = tx.query("upload session", &sql, vec![id.into()]).await?;
    rows.first().map(SessionRow::from_row).transpose()
}

/// The session `id`, locked against concurrent changes until the transaction ends (a second
/// `complete` waits for the first and then sees its outcome).
pub async fn lock<C: Conn>(tx: &TenantTx<'_, C>, id: Uuid) -> Result<Option<SessionRow>> {
    let sql = format!("SELECT {COLUMNS} FROM upload_sessions WHERE id = $1 FOR UPDATE");
    let rows = tx
        .query("upload session lock", &sql, vec![id.into()])
        .await?;
    rows.first().map(SessionRow::from_row).transpose()
}

/// The session that will become attachment `attachment` (while it has no row of its own).
pub async fn by_attachment<C: Conn>(
    tx: &TenantTx<'_, C>,
    attachment: Uuid,
) -> Result<Option<SessionRow>> {
    let sql = format!("SELECT {COLUMNS} FROM upload_sessions WHERE attachment_id = $1");
    let rows = tx
        .query(
            "upload session of attachment",
            &sql,
            vec![attachment.into()],
        )
        .await?;
    rows.first().map(SessionRow::from_row).transpose()
}

/// The sessions of `message` that stand for an attachment without a row yet: verifying, or
/// rejected (listed with the reason until they expire). Newest first, ties by id.
pub async fn listed<C: Conn>(tx: &TenantTx<'_, C>, message: Uuid) -> Result<Vec<SessionRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM upload_sessions WHERE message_id = $1 \
         AND state IN ('verifying', 'rejected') ORDER BY created_at DESC, id DESC"
    );
    let rows = tx
        .query("message upload sessions", &sql, vec![message.into()])
        .await?;
    rows.iter().map(SessionRow::from_row).collect()
}

/// Moves the session `id` to `state` (`verifying` once completed, `aborted`).
pub async fn set_state<C: Conn>(tx: &TenantTx<'_, C>, id: Uuid, state: State) -> Result<()> {
    tx.execute(
        "upload session state",
        SET_STATE,
        vec![id.into(), state.as_str().into()],
    )
    .await
    .map(|_| ())
}

/// How a verification ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// The attachment row was written; `object_unused` when the tenant held the content already
    /// (the uploaded copy is not needed).
    Done { object_unused: bool },
    /// Refused, with a stable code and a client-safe detail; the object is unused.
    Rejected { code: &'a str, detail: &'a str },
}

/// Records the outcome of the verifying session `id`; `false` when it is not verifying (any
/// more): the outcome was recorded already.
pub async fn record_outcome<C: Conn>(
    tx: &TenantTx<'_, C>,
    id: Uuid,
    outcome: &Outcome<'_>,
) -> Result<bool> {
    let params = match outcome {
        Outcome::Done { object_unused } => vec![
            id.into(),
            State::Done.as_str().into(),
            Param::opt_text(None),
            Param::opt_text(None),
            (*object_unused).into(),
        ],
        Outcome::Rejected { code, detail } => vec![
            id.into(),
            State::Rejected.as_str().into(),
            (*code).into(),
            (*detail).into(),
            true.into(),
        ],
    };
    let n = tx
        .execute("upload session outcome", RECORD_OUTCOME, params)
        .await?;
    Ok(n == 1)
}

/// The tenant of session `id` (any tenant); `None` when there is none.
pub async fn resolve_tenant<C: Conn>(conn: &C, id: Uuid) -> Result<Option<TenantId>> {
    let rows = conn
        .query("resolve upload tenant", RESOLVE, vec![id.into()])
        .await?;
    rows.first()
        .map(|r| r.opt_uuid(0))
        .transpose()
        .map(|t| t.flatten().map(TenantId::from_uuid))
}

/// Where a tus upload stands between its PATCHes (migration 0015).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TusProgress {
    /// Bytes stored so far.
    pub offset: i64,
    /// Parts stored so far; the next chunk is part `parts_done + 1`.
    pub parts_done: u32,
    /// Their ETags, in part order.
    pub part_etags: Vec<String>,
}

/// Claims the PATCH of session `id` at `offset` for `token` until `until` (epoch ms): only while it
/// is open at that offset and no other PATCH holds an unexpired claim.
const CLAIM_PATCH: &str = "UPDATE upload_sessions SET patch_token = $2, patch_until = $4 \
     WHERE id = $1 AND protocol = 'tus' AND state = 'open' AND upload_offset = $3 \
     AND (patch_until IS NULL OR patch_until <= app_now_ms())";

const RELEASE_PATCH: &str = "UPDATE upload_sessions SET patch_token = NULL, patch_until = NULL WHERE id = $1 AND patch_token = $2";

/// The compare-and-swap of a stored chunk: from the claimed offset to the new one, one more part;
/// the last chunk also turns the session `verifying` (the worker's read of the object gives its
/// SHA-256).
const ADVANCE: &str = "UPDATE upload_sessions SET upload_offset = $4, parts_done = parts_done + 1, \
     part_etags = part_etags || $5::text, patch_token = NULL, patch_until = NULL, \
     state = CASE WHEN $6 THEN 'verifying' ELSE state END, \
     completed_at = CASE WHEN $6 THEN app_now_ms() ELSE completed_at END \
     WHERE id = $1 AND patch_token = $2 AND upload_offset = $3 AND state = 'open'";

/// Tus session `id` and its progress, in one round trip (what every PATCH reads first); `None`
/// when there is none, or it is a direct upload.
pub async fn get_tus<C: Conn>(
    tx: &TenantTx<'_, C>,
    id: Uuid,
) -> Result<Option<(SessionRow, TusProgress)>> {
    let sql = format!(
        "SELECT {COLUMNS}, parts_done, array_to_json(part_etags)::jsonb \
         FROM upload_sessions WHERE id = $1 AND protocol = 'tus'"
    );
    let rows = tx.query("tus session", &sql, vec![id.into()]).await?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    // COLUMNS ends with upload_offset: the progress starts there.
    Ok(Some((
        SessionRow::from_row(r)?,
        TusProgress::from_row(r, 18)?,
    )))
}

impl TusProgress {
    /// From `upload_offset, parts_done, part_etags` as JSON, at columns `at..at + 3` of `r`.
    fn from_row(r: &Row, at: usize) -> Result<Self> {
        let etags = match r.opt_json(at + 2)? {
            Some(serde_json::Value::Array(a)) => a
                .into_iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => Ok(s),
                    _ => Err(StoreError::decode("tus progress", "part_etags")),
                })
                .collect::<Result<Vec<_>>>()?,
            _ => return Err(StoreError::decode("tus progress", "part_etags")),
        };
        Ok(Self {
            offset: r.int(at)?,
            parts_done: u32::try_from(r.int(at + 1)?)
                .map_err(|_| StoreError::decode("tus progress", "parts_done"))?,
            part_etags: etags,
        })
    }
}

/// Claims the next PATCH of tus session `id` at `offset` for `token` until `until_ms`; `false`
/// when the session is not open at that offset or another PATCH holds it.
pub async fn claim_patch<C: Conn>(
    tx: &TenantTx<'_, C>,
    id: Uuid,
    token: Uuid,
    offset: i64,
    until_ms: i64,
) -> Result<bool> {
    let n = tx
        .execute(
            "tus claim patch",
            CLAIM_PATCH,
            vec![id.into(), token.into(), offset.into(), until_ms.into()],
        )
        .await?;
    Ok(n == 1)
}

/// Gives back the claim `token` holds on session `id` (a PATCH that stored nothing).
pub async fn release_patch<C: Conn>(tx: &TenantTx<'_, C>, id: Uuid, token: Uuid) -> Result<()> {
    tx.execute(
        "tus release patch",
        RELEASE_PATCH,
        vec![id.into(), token.into()],
    )
    .await
    .map(|_| ())
}

/// A stored chunk, to record.
#[derive(Debug, Clone)]
pub struct Advance<'a> {
    /// The claim it was stored under.
    pub token: Uuid,
    /// The offset the PATCH started at.
    pub from: i64,
    /// The offset after it.
    pub to: i64,
    /// Its part's ETag.
    pub etag: &'a str,
    /// Whether it was the last: the multipart upload is complete and the session turns `verifying`.
    pub completes: bool,
}

/// Records a stored chunk of session `id`, only from the offset its PATCH claimed and under its
/// claim; `false` when that is no longer so (the claim lapsed and another PATCH moved on).
pub async fn advance<C: Conn>(tx: &TenantTx<'_, C>, id: Uuid, a: &Advance<'_>) -> Result<bool> {
    let n = tx
        .execute(
            "tus advance",
            ADVANCE,
            vec![
                id.into(),
                a.token.into(),
                a.from.into(),
                a.to.into(),
                a.etag.into(),
                a.completes.into(),
            ],
        )
        .await?;
    Ok(n == 1)
}
