//! `GET`/`HEAD` of a signed content URL (public: the signature is the credential).
//!
//! Checks, in this order (openapi.yaml `SignedContentUrl`); the first failure answers:
//! 1. the signature (`403 signature_invalid`); 2. the expiry (`403 url_expired`); then the URL's
//!    rate limit (`file_rate_limit` per URL, Redis, the same fixed window as the other limits:
//!    `429 rate_limited` with `Retry-After`; `RateLimit-Policy`/`RateLimit` on every answer from here
//!    on; only URLs we signed are counted, so nobody can fill Redis with made-up ones); then, in a
//!    transaction of the verified URL's tenant ([`delivery::serve::check`]):
//! 3. not deleted (`410 gone`; deleting revokes every URL, whether or not it bumps the generation);
//! 4. the URL's generation is the attachment's current one (else it was revoked: `403 url_expired`);
//! 5. the scan status (`403 scan_blocked`), as the attachment is served: `pending` while the scan
//!    its upload awaits is open, infected/suspicious content never;
//! 6. `If-None-Match` (`304`); 7. `Range` (`206`/`416`) ([`answer`]).
//!
//! Then the bytes are charged to the daily download quota of the message's owner (`403
//! quota_exceeded` past it; a redirect counts the object's size), and ([`deliver`]) the download is audited, one `attachment.download` row per URL and minute with a
//! count (`store::audit_log::record_download`), and the object streamed from storage (`GET` with the
//! same range) without buffering, or a `302` to a presigned storage URL: `download_mode` decides per
//! answer ([`delivery::serve::Mode::via`]: `auto` streams a body up to `download_stream_max_bytes`, the platforms'
//! response cap, and redirects a larger one; the range's length counts for a `206`, not the object's
//! size). The audit row records the way actually taken and commits only when content is answered.

mod answer;
mod deliver;

use auth_core::TenantId;
use auth_core::ratelimit::{self, Subject};
use delivery::ScanStatus;
use delivery::serve::{self, Current, Refusal, Via};
use edge::app::{Call, Reply};
use edge::log::RequestLog;
use edge::spin::RateLimiter;
use edge::{ApiError, Code};
use http::Method;
use signed_url::{Grant, VerifyError};
use spin_sdk::http::Request;
use storage::ObjectKey;
use store::attachments::{self, AttachmentRow};
use store::spin::Db;
use store::{Conn, TenantTx};

use crate::Config;

pub(crate) async fn handle(req: Request, call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let grant = verify(cfg, &req)?;
    call.log.tenant_id = Some(grant.tenant_id.to_string());
    let url = signed_url::url_id(req.uri().path(), req.uri().query().unwrap_or(""));
    let limit = count_request(cfg, &url, call).await?;
    let served = async {
        let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
        let tx = store::Tx::for_tenant(&db, &TenantId::from(grant.tenant_id)).await?;
        match serve(&req, call, cfg, &grant, &url, &limit, &tx).await {
            Ok((reply, true)) => {
                tx.commit().await?;
                Ok(reply)
            }
            Ok((reply, false)) => {
                tx.rollback().await;
                Ok(reply)
            }
            Err(e) => {
                tx.rollback().await;
                Err(e)
            }
        }
    }
    .await;
    served.map_err(|e| e.with_headers(limit.clone()))
}

/// Check 2a: counts the request against the URL's limit; the `RateLimit*` headers every answer
/// gets from here on, or `429`. A down Redis follows `rate_limit_fail_mode` (logged).
async fn count_request(
    cfg: &Config,
    url: &str,
    call: &mut Call,
) -> Result<Vec<(&'static str, String)>, ApiError> {
    let mut limiter = RateLimiter::new(cfg.redis_url.as_str(), cfg.outbound_timeout);
    let key = ratelimit::key(&cfg.file_policy, Subject::SignedUrl(url));
    match limiter.hit(&cfg.file_policy, &key).await {
        Ok(decision) if decision.allowed => Ok(decision.headers(&cfg.file_policy)),
        Ok(decision) => {
            call.log.reason = Some("rate_limited".into());
            Err(edge::limits::refused(&cfg.file_policy, &decision))
        }
        Err(cause) => {
            call.log.reason = Some("ratelimit_backend_down".into());
            edge::limits::backend_down("download", cfg.fail_mode, &cfg.file_policy, &cause)
                .map(|()| Vec::new())
        }
    }
}

/// Checks 1 and 2: the URL is ours and not expired.
fn verify(cfg: &Config, req: &Request) -> Result<Grant, ApiError> {
    let uri = req.uri();
    let now = auth_core::unix_now();
    cfg.signer
        .verify(uri.path(), uri.query().unwrap_or(""), now)
        .map_err(|e| match e {
            VerifyError::SignatureInvalid => Code::SignatureInvalid.into(),
            VerifyError::Expired => Code::UrlExpired.into(),
        })
}

/// Checks 3 to 7 and the answer (with the rate-limit headers `limit`); `true` when it audited the
/// download (to be committed).
async fn serve<C: Conn>(
    req: &Request,
    call: &mut Call,
    cfg: &Config,
    grant: &Grant,
    url: &str,
    limit: &[(&'static str, String)],
    tx: &TenantTx<'_, C>,
) -> Result<(Reply, bool), ApiError> {
    // Correctly signed for an attachment that no longer exists at all: gone too.
    let row = attachments::get(tx, grant.attachment_id)
        .await?
        .ok_or(Code::Gone)?;
    check(&row, grant, cfg, &mut call.log)?;
    let size = u64::try_from(row.size_bytes).map_err(|_| ApiError::internal("size_bytes"))?;
    let mut answer = answer::decide(&row, size, grant.disposition, req.headers());
    answer.headers.extend_from_slice(limit);
    let head = req.method() == Method::HEAD;
    if let Some(reply) = answer::without_content(&answer, head, &call.request_id)? {
        return Ok((reply, false));
    }
    let key = ObjectKey::from_stored(&row.storage_key).map_err(ApiError::from)?;
    let via = cfg.mode.via(answer.outcome.length(size), cfg.stream_max);
    // The daily download quota of the message's owner (the mailbox the content belongs to; the
    // URL names no user): what is streamed, or the whole object for a redirect, whose ranges
    // storage answers without us.
    let charged = match via {
        Via::Stream => answer.outcome.length(size),
        Via::Redirect => size,
    };
    edge::quota::charge_download(tx, &cfg.quota, row.message_owner, charged).await?;
    deliver::audit(tx, grant, url, call, &answer, size, via).await?;
    let reply = match via {
        Via::Redirect => deliver::redirect(cfg, &key, &answer, limit, &call.request_id)?,
        Via::Stream => deliver::stream(cfg, &key, &answer, size, &call.request_id).await?,
    };
    Ok((reply, true))
}

/// Checks 3 to 5 against the stored attachment.
fn check(
    row: &AttachmentRow,
    grant: &Grant,
    cfg: &Config,
    log: &mut RequestLog,
) -> Result<(), ApiError> {
    // An upload still awaiting its own scan is served as pending (infected/suspicious never).
    let scan_status =
        ScanStatus::parse(row.served_status()).ok_or_else(|| ApiError::internal("scan_status"))?;
    let current = Current {
        is_deleted: row.is_deleted,
        generation: row.url_generation,
        scan_status,
    };
    match serve::check(&current, grant.generation, cfg.serve_unscanned) {
        Ok(()) => Ok(()),
        Err(Refusal::Deleted) => Err(Code::Gone.into()),
        Err(Refusal::Revoked) => {
            log.reason = Some("revoked".into());
            Err(Code::UrlExpired.into())
        }
        Err(Refusal::ScanBlocked(status)) => {
            log.reason = Some(format!("scan_status {status:?}").to_lowercase());
            Err(Code::ScanBlocked.into())
        }
    }
}
