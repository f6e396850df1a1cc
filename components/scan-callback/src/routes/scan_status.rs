//! `GET /api/v1/attachments/{id}/scan-status`: `200` with the verdict in force for the attachment's
//! content (shared by every attachment with that content), as `scan_core::InForce`.
//!
//! Who may read it: whoever may read the attachment (`store::access::may_read`: the message's
//! owner, the uploader, the tenant's admins); anyone else of the tenant `403`; another tenant's or a
//! deleted attachment `404`. The shell authenticated the caller and parsed the id.
//!
//! A direct upload that has no attachment row yet answers at its attachment id too, for its uploader
//! and the tenant's admins: `verifying` while the worker reads it back, `rejected` (with the reason
//! as `details`) when verification refused it.

use edge::app::{Call, Reply};
use edge::{ApiError, Problem, response};
use http::StatusCode;
use serde_json::json;
use store::spin::Db;
use store::uploads::{self, State};
use store::{Tx, access, verdicts};

use crate::Config;

pub(crate) async fn handle(call: &mut Call, cfg: &'static Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?;
    let id = call.id()?;
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = Tx::for_tenant(&db, &ctx.tenant).await?;
    let found = verdicts::of_attachment(&tx, id).await?;
    let session = match found {
        Some(_) => None,
        None => uploads::by_attachment(&tx, id).await?,
    };
    tx.commit().await?;
    if let Some(s) = session.filter(|s| {
        matches!(s.state, State::Verifying | State::Rejected) && access::may_manage(ctx, s.user_id)
    }) {
        let details = s
            .reject_code
            .as_ref()
            .map(|code| format!("{code}: {}", s.reject_detail.as_deref().unwrap_or("")));
        let body = json!({
            "status": s.state.as_str(),
            "details": details,
            "engine": null,
            "signature": null,
            "scannedAt": null,
            "engines": [],
        });
        return Ok(response::json(StatusCode::OK, &body, &call.request_id).into());
    }
    let Some(attachment) = found.filter(|a| !a.deleted) else {
        return Err(Problem::not_found().into());
    };
    if !access::may_read(ctx, attachment.owner, Some(attachment.uploader)) {
        return Err(Problem::forbidden().into());
    }
    Ok(response::json(StatusCode::OK, &attachment.verdict, &call.request_id).into())
}
