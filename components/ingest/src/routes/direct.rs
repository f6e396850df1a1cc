//! Direct-to-storage uploads: the bytes go from the client to the bucket through presigned part
//! URLs and never through this component, so a file of any size fits the platforms' request caps.
//! The component authorises and commits; the worker verifies what arrived (migration 0014 holds the
//! session's life).
//!
//! | route | file |
//! |---|---|
//! | `POST /api/v1/emails/{messageId}/uploads` | [`create`]: every check that needs no byte, a multipart upload, the part URLs |
//! | `GET /api/v1/uploads/{id}` | [`get`]: the session, with fresh part URLs while it is open |
//! | `POST /api/v1/uploads/{id}/complete` | [`complete`]: CompleteMultipartUpload, then `verifying` |
//! | `DELETE /api/v1/uploads/{id}` | [`abort`]: AbortMultipartUpload |
//!
//! A session is its creator's (and the tenant's admins'): anyone else gets `404`, as for another
//! tenant's.

pub(crate) mod abort;
pub(crate) mod complete;
pub(crate) mod create;
pub(crate) mod get;

use std::time::Duration;

use auth_core::AuthContext;
use edge::app::Call;
use edge::{ApiError, Problem};
use serde::Serialize;
use serde_json::json;
use storage::ObjectKey;
use storage::parts::PartPlan;
use store::spin::Db;
use store::uploads::{self, NewSession, SessionRow, State};
use store::{Conn, TenantTx, access};
use uuid::Uuid;

use crate::Config;

/// The settings of direct uploads.
pub(crate) struct Settings {
    /// `direct_upload_max_bytes`: the largest claimed size.
    pub max_bytes: u64,
    /// `direct_upload_part_bytes`: the preferred part size (grown for objects that would need more
    /// than 10,000 parts).
    pub part_bytes: u64,
    /// `upload_session_ttl_secs`: how long a session may stay open.
    pub session_ttl: Duration,
    /// `upload_part_url_ttl_secs`: how long one issued part URL works (never past the session).
    pub part_url_ttl: Duration,
}

fn bounded(name: &str, raw: &str, min: u64, max: u64) -> Result<u64, ApiError> {
    match raw.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_setting(
            name,
            format!("must be an integer in {min}..={max}"),
        )),
    }
}

impl Settings {
    /// From the four variables (names in [`Settings`]); out of range is `misconfigured`.
    pub(crate) fn from_config(
        max_bytes: &str,
        part_bytes: &str,
        session_ttl_secs: &str,
        part_url_ttl_secs: &str,
    ) -> Result<Self, ApiError> {
        const GIB: u64 = 1024 * 1024 * 1024;
        let part_bytes = bounded(
            "direct_upload_part_bytes",
            part_bytes,
            storage::MIN_PART_SIZE as u64,
            5 * GIB,
        )?;
        let max_bytes = bounded("direct_upload_max_bytes", max_bytes, 1, 5 * 1024 * GIB)?;
        let session = bounded("upload_session_ttl_secs", session_ttl_secs, 60, 7 * 86_400)?;
        // SigV4 presigned URLs last at most 7 days.
        let part_url = bounded(
            "upload_part_url_ttl_secs",
            part_url_ttl_secs,
            60,
            7 * 86_400,
        )?;
        Ok(Self {
            max_bytes,
            part_bytes,
            session_ttl: Duration::from_secs(session),
            part_url_ttl: Duration::from_secs(part_url),
        })
    }
}

/// The session `id`, locked when `for_update`, if the caller may act on it: its creator or an
/// admin of the tenant; `404` otherwise (whether or not it exists).
pub(crate) async fn owned<C: Conn>(
    tx: &TenantTx<'_, C>,
    ctx: &AuthContext,
    id: Uuid,
    for_update: bool,
) -> Result<SessionRow, ApiError> {
    let row = if for_update {
        uploads::lock(tx, id).await?
    } else {
        uploads::get(tx, id).await?
    };
    row.filter(|r| access::may_manage(ctx, r.user_id))
        .ok_or_else(|| Problem::not_found().into())
}

/// What a new session claims (direct or tus), judged by the caller's policy checks already.
pub(crate) struct Claimed<'a> {
    pub filename: &'a str,
    pub declared_mime: Option<&'a str>,
    pub size: i64,
    pub sha256: Option<&'a str>,
    pub part_size: i64,
    pub part_count: u32,
    pub protocol: uploads::Protocol,
}

/// Opens an upload session on `message` for `claimed`: in one transaction of the caller's tenant,
/// the message check (`404` / `403`), the quotas against the claimed size (`403 quota_exceeded`),
/// a multipart upload under a fresh key, and the session row
/// expiring after `upload_session_ttl_secs`. A session that cannot be recorded aborts its multipart
/// upload again (logged when that fails too: the reconcile job finds it). The connection is given
/// back before this returns, so a caller that goes on to read a body holds none.
pub(crate) async fn open_session(
    cfg: &Config,
    call: &Call,
    ctx: &AuthContext,
    message: Uuid,
    claimed: &Claimed<'_>,
) -> Result<SessionRow, ApiError> {
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    let claimed_size = u64::try_from(claimed.size).unwrap_or(u64::MAX);
    let checked = async {
        crate::routes::check_message(&tx, ctx, message).await?;
        // Before any byte: the claimed size must fit the quotas (judged again on the real size
        // when the verified upload is recorded).
        edge::quota::check_claim(&tx, &cfg.quota, *ctx.user.as_uuid(), claimed_size, 1).await
    }
    .await;
    if let Err(e) = checked {
        tx.rollback().await;
        return Err(e);
    }
    let key = ObjectKey::new_upload(*ctx.tenant.as_uuid());
    let upload_id = match cfg.storage.begin_direct_upload(&key, None).await {
        Ok(id) => id,
        Err(e) => {
            tx.rollback().await;
            return Err(e.into());
        }
    };
    let ttl_ms = i64::try_from(cfg.direct.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let new = NewSession {
        message,
        user: *ctx.user.as_uuid(),
        filename: claimed.filename,
        declared_mime: claimed.declared_mime,
        claimed_size: claimed.size,
        claimed_sha256: claimed.sha256,
        storage_key: key.as_str(),
        s3_upload_id: &upload_id,
        part_size: claimed.part_size,
        part_count: claimed.part_count,
        expires_at: auth_core::unix_now_ms().saturating_add(ttl_ms),
        protocol: claimed.protocol,
    };
    let recorded = async {
        let row = uploads::create(&tx, &new).await?;
        tx.commit().await?;
        Ok::<_, store::StoreError>(row)
    }
    .await;
    drop(db);
    match recorded {
        Ok(row) => Ok(row),
        Err(e) => {
            if let Err(abort) = cfg.storage.abort_multipart_upload(&key, &upload_id).await {
                edge::log::event(
                    crate::NAME,
                    "upload.abort_failed",
                    json!({ "requestId": call.request_id.as_str(), "cause": abort.to_string() }),
                );
            }
            Err(e.into())
        }
    }
}

/// One part URL of an answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PartUrl {
    pub part_number: u32,
    /// `PUT` exactly `size` bytes here (the length is signed into the URL).
    pub url: String,
    pub size: u64,
}

/// `UploadSession`: what the client needs to send the parts, and where the upload stands.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionView {
    pub upload_id: String,
    pub attachment_id: String,
    pub message_id: String,
    pub filename: String,
    pub size: i64,
    pub state: &'static str,
    /// Epoch milliseconds.
    pub expires_at: i64,
    pub part_size: i64,
    pub part_count: u32,
    /// While open: every part's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<PartUrl>>,
    /// Epoch milliseconds: when the URLs in `parts` stop working (ask `GET` for fresh ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_urls_expire_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Rejection>,
}

/// Why verification refused an upload.
#[derive(Debug, Serialize)]
pub(crate) struct Rejection {
    pub code: String,
    pub detail: String,
}

impl SessionView {
    /// The view of `row` at `now_ms`, with part URLs when it is open and not expired.
    pub(crate) fn of(cfg: &Config, row: &SessionRow, now_ms: i64) -> Result<Self, ApiError> {
        let (parts, part_urls_expire_at) = if row.state == State::Open && !row.is_expired(now_ms) {
            let (urls, until) = part_urls(cfg, row, now_ms)?;
            (Some(urls), Some(until))
        } else {
            (None, None)
        };
        Ok(Self {
            upload_id: row.id.to_string(),
            attachment_id: row.attachment_id.to_string(),
            message_id: row.message_id.to_string(),
            filename: row.filename.clone(),
            size: row.claimed_size,
            state: row.state.as_str(),
            expires_at: row.expires_at,
            part_size: row.part_size,
            part_count: row.part_count,
            parts,
            part_urls_expire_at,
            rejection: row.reject_code.as_ref().map(|code| Rejection {
                code: code.clone(),
                detail: row.reject_detail.clone().unwrap_or_default(),
            }),
        })
    }
}

/// Fresh presigned URLs for every part of `row`, and when they expire (epoch ms): the configured
/// lifetime, never past the session's expiry.
fn part_urls(cfg: &Config, row: &SessionRow, now_ms: i64) -> Result<(Vec<PartUrl>, i64), ApiError> {
    let size = u64::try_from(row.claimed_size).map_err(|_| ApiError::internal("claimed_size"))?;
    let part_size = u64::try_from(row.part_size).map_err(|_| ApiError::internal("part_size"))?;
    let plan = PartPlan::new(size, part_size)
        .filter(|p| p.count == row.part_count && p.part_size == part_size)
        .ok_or_else(|| ApiError::internal("stored part plan does not match its size"))?;
    let left_ms = u64::try_from(row.expires_at.saturating_sub(now_ms)).unwrap_or(0);
    let ttl = cfg
        .direct
        .part_url_ttl
        .min(Duration::from_millis(left_ms))
        .max(Duration::from_secs(1));
    let key = ObjectKey::from_stored(&row.storage_key).map_err(ApiError::from)?;
    let mut urls = Vec::with_capacity(plan.count as usize);
    for n in 1..=plan.count {
        let length = plan
            .length(n)
            .ok_or_else(|| ApiError::internal("part plan"))?;
        let url = cfg
            .storage
            .presigned_part_url(&key, &row.s3_upload_id, n, length, ttl)
            .map_err(ApiError::from)?;
        urls.push(PartUrl {
            part_number: n,
            url,
            size: length,
        });
    }
    let until = now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    Ok((urls, until))
}
