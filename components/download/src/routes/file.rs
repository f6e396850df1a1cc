//! `GET`/`HEAD` of a signed content URL (public: the signature is the credential).
//!
//! Checks, in this order (openapi.yaml `SignedContentUrl`); the first failure answers:
//! 1. the signature (`403 signature_invalid`); 2. the expiry (`403 url_expired`); then, in a
//!    transaction of the verified URL's tenant ([`delivery::serve::check`]):
//! 3. not deleted (`410 gone`; deleting revokes every URL, whether or not it bumps the generation);
//! 4. the URL's generation is the attachment's current one (else it was revoked: `403 url_expired`);
//! 5. the scan status (`403 scan_blocked`);
//! 6. `If-None-Match` (`304`); 7. `Range` (`206`/`416`) ([`answer`]).
//!
//! Then ([`deliver`]) an `attachment.download` audit row, and the object streamed from storage
//! (`GET` with the same range) without buffering, or (`download_mode = redirect`) a `302` to a
//! presigned storage URL. The audit row commits only when content is answered.

mod answer;
mod deliver;

use auth_core::TenantId;
use delivery::ScanStatus;
use delivery::serve::{self, Current, Mode, Refusal};
use edge::app::{Call, Reply};
use edge::log::RequestLog;
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
    let db = Db::open(&cfg.database_url).await?;
    let tx = store::Tx::for_tenant(&db, &TenantId::from(grant.tenant_id)).await?;
    match serve(&req, call, cfg, &grant, &tx).await {
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

/// Checks 3 to 7 and the answer; `true` when it wrote the audit row (to be committed).
async fn serve<C: Conn>(
    req: &Request,
    call: &mut Call,
    cfg: &Config,
    grant: &Grant,
    tx: &TenantTx<'_, C>,
) -> Result<(Reply, bool), ApiError> {
    // Correctly signed for an attachment that no longer exists at all: gone too.
    let row = attachments::get(tx, grant.attachment_id)
        .await?
        .ok_or(Code::Gone)?;
    check(&row, grant, cfg, &mut call.log)?;
    let size = u64::try_from(row.size_bytes).map_err(|_| ApiError::internal("size_bytes"))?;
    let answer = answer::decide(&row, size, grant.disposition, req.headers());
    let head = req.method() == Method::HEAD;
    if let Some(reply) = answer::without_content(&answer, head, &call.request_id)? {
        return Ok((reply, false));
    }
    let key = ObjectKey::from_stored(&row.storage_key).map_err(deliver::storage_error)?;
    deliver::audit(tx, grant, call, &answer, size, cfg.mode).await?;
    let reply = match cfg.mode {
        Mode::Redirect => deliver::redirect(cfg, &key, &answer, &call.request_id)?,
        Mode::Stream => deliver::stream(cfg, &key, &answer, size, &call.request_id).await?,
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
    let scan_status =
        ScanStatus::parse(&row.scan_status).ok_or_else(|| ApiError::internal("scan_status"))?;
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
