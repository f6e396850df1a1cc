//! Resumable uploads through the component: tus 1.0.0 (core, creation, creation-with-upload,
//! termination, expiration, checksum with `sha256`), so that tus-js-client and Uppy work unmodified.
//! A tus upload is an upload session (migration 0015) whose chunks come through here, each PATCH one
//! part of the session's multipart upload; the last one completes it and the session turns
//! `verifying`, to end like a direct upload (the worker's one read: size, hash, policy, dedup, scan).
//!
//! | route | file |
//! |---|---|
//! | `POST /api/v1/emails/{messageId}/tus` | [`create`]: the direct upload's checks before any byte, a multipart upload, the session; a body is the first chunk |
//! | `HEAD /api/v1/tus/{id}` | [`head`]: the offset to resume from |
//! | `PATCH /api/v1/tus/{id}` | [`patch`]: one chunk, all or nothing ([`chunk`]) |
//! | `DELETE /api/v1/tus/{id}` | [`terminate`]: AbortMultipartUpload |
//!
//! `OPTIONS` (discovery) is answered by the auth middleware, from the route table. Every answer
//! carries `Tus-Resumable`, errors too (problem+json). A session is its creator's (and the tenant's
//! admins'): `404` for anyone else, for a direct upload's id, and for a terminated upload.

pub(crate) mod chunk;
pub(crate) mod create;
pub(crate) mod head;
pub(crate) mod patch;
pub(crate) mod terminate;

use auth_core::AuthContext;
use edge::{ApiError, Code, Problem};
use store::uploads::{self, SessionRow, TusProgress};
use store::{Conn, TenantTx, access};
use tus::headers::HeaderError;
use uuid::Uuid;

/// The settings of tus uploads.
pub(crate) struct Settings {
    /// `upload_chunk_bytes`: the most bytes one PATCH (or creation body) carries.
    pub chunk_bytes: u64,
}

impl Settings {
    /// From `upload_chunk_bytes`: 5 MiB (storage's smallest part) to 100 MiB, else `misconfigured`.
    pub(crate) fn from_config(chunk_bytes: &str) -> Result<Self, ApiError> {
        const MIB: u64 = 1024 * 1024;
        match chunk_bytes.trim().parse::<u64>() {
            Ok(n) if (tus::chunk::MIN_PART..=100 * MIB).contains(&n) => Ok(Self { chunk_bytes: n }),
            _ => Err(ApiError::bad_setting(
                "upload_chunk_bytes",
                format!(
                    "must be an integer in {}..={}",
                    tus::chunk::MIN_PART,
                    100 * MIB
                ),
            )),
        }
    }
}

/// `Tus-Resumable`, on every answer.
pub(crate) fn resumable() -> (&'static str, String) {
    ("Tus-Resumable", tus::VERSION.to_owned())
}

/// `Upload-Expires` of a session (expiration extension).
pub(crate) fn expires(row: &SessionRow) -> (&'static str, String) {
    ("Upload-Expires", tus::date::http_date(row.expires_at))
}

/// A refused tus header: `412` with `Tus-Version` for another protocol version, else `400`.
pub(crate) fn header_error(e: HeaderError) -> ApiError {
    match e {
        HeaderError::UnsupportedVersion => ApiError::new(Problem::new(Code::TusVersionUnsupported))
            .with_headers(vec![("Tus-Version", tus::VERSION.to_owned())]),
        e => ApiError::new(Problem::bad_request(e.to_string())),
    }
}

/// `Tus-Resumable` must say 1.0.0.
pub(crate) fn check_version(headers: &http::HeaderMap) -> Result<(), ApiError> {
    tus::headers::check_resumable(text(headers, "tus-resumable")).map_err(header_error)
}

/// A header's value as text (`None` when absent or not visible ASCII).
pub(crate) fn text<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The tus session `id` with its progress, if the caller may act on it (else `404`, as for a
/// direct upload's id).
pub(crate) async fn owned<C: Conn>(
    tx: &TenantTx<'_, C>,
    ctx: &AuthContext,
    id: Uuid,
) -> Result<(SessionRow, TusProgress), ApiError> {
    uploads::get_tus(tx, id)
        .await?
        .filter(|(row, _)| access::may_manage(ctx, row.user_id))
        .ok_or_else(|| ApiError::new(Problem::not_found()))
}

/// Before the last chunk completes a tus upload: its length must still fit the quotas (other
/// uploads may have used them up since its creation), else `403 quota_exceeded` and the upload
/// stays where it was. The recorded attachment is judged again when its verification commits.
pub(crate) async fn check_quota_at_final(
    cfg: &crate::Config,
    ctx: &AuthContext,
    row: &SessionRow,
) -> Result<(), ApiError> {
    let db = store::spin::Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    let size = u64::try_from(row.claimed_size).unwrap_or(u64::MAX);
    let checked = edge::quota::check_claim(&tx, &cfg.quota, row.user_id, size, 1).await;
    tx.rollback().await;
    checked
}
