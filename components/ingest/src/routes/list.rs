//! `GET /api/v1/emails/{messageId}/attachments`: the message's live attachments, newest first, for
//! the message's owner and the tenant's admins (`403` for anyone else of the tenant, `404` for a
//! message that is not a live one of the tenant).

use edge::ApiError;
use edge::app::{Call, Reply};
use edge::response;
use http::StatusCode;
use serde_json::json;
use spin_sdk::http::Request;
use store::attachments;
use store::spin::Db;

use crate::Config;
use crate::view::Attachment;

pub(crate) async fn handle(
    _req: Request,
    call: &mut Call,
    cfg: &Config,
) -> Result<Reply, ApiError> {
    let ctx = call.caller()?;
    let message = call.id()?;
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    super::check_message(&tx, ctx, message).await?;
    let rows = attachments::list_live(&tx, message).await?;
    tx.commit().await?;
    let list: Vec<Attachment> = rows
        .iter()
        .map(|row| Attachment::from_row(cfg, &ctx.tenant, row))
        .collect();
    let body = json!({ "attachments": list });
    Ok(response::json(StatusCode::OK, &body, &call.request_id).into())
}
