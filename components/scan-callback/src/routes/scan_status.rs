//! `GET /api/v1/attachments/{id}/scan-status`: `200` with the verdict in force for the attachment's
//! content (shared by every attachment with that content), as `scan_core::InForce`.
//!
//! Who may read it: whoever may read the attachment (`store::access::may_read`: the message's
//! owner, the uploader, the tenant's admins); anyone else of the tenant `403`; another tenant's or a
//! deleted attachment `404`. The shell authenticated the caller and parsed the id.

use edge::app::{Call, Reply};
use edge::{ApiError, Problem, response};
use http::StatusCode;
use store::spin::Db;
use store::{Tx, access, verdicts};

use crate::Config;

pub(crate) async fn handle(call: &mut Call, cfg: &'static Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?;
    let id = call.id()?;
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = Tx::for_tenant(&db, &ctx.tenant).await?;
    let found = verdicts::of_attachment(&tx, id).await?;
    tx.commit().await?;
    let Some(attachment) = found.filter(|a| !a.deleted) else {
        return Err(Problem::not_found().into());
    };
    if !access::may_read(ctx, attachment.owner, Some(attachment.uploader)) {
        return Err(Problem::forbidden().into());
    }
    Ok(response::json(StatusCode::OK, &attachment.verdict, &call.request_id).into())
}
