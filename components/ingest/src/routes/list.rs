//! `GET /api/v1/emails/{messageId}/attachments`: the message's live attachments, newest first, for
//! the message's owner and the tenant's admins (`403` for anyone else of the tenant, `404` for a
//! message that is not a live one of the tenant). Direct uploads still verifying, or rejected, are
//! listed too (`virusScanStatus` `verifying` / `rejected`, no content hash, no download URL) for
//! their uploader and the tenant's admins.

use edge::ApiError;
use edge::app::{Call, Reply};
use edge::response;
use http::StatusCode;
use serde_json::json;
use spin_sdk::http::Request;
use store::spin::Db;
use store::{access, attachments, uploads};

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
    // Direct uploads without an attachment row yet (verifying) or for good (rejected), as their
    // uploader (or an admin) sees them; the message's owner sees other users' only once verified.
    let sessions = uploads::listed(&tx, message).await?;
    tx.commit().await?;
    let mut list: Vec<(i64, Attachment)> = rows
        .iter()
        .map(|row| (row.created_at, Attachment::from_row(cfg, &ctx.tenant, row)))
        .chain(
            sessions
                .iter()
                .filter(|s| access::may_manage(ctx, s.user_id))
                .map(|s| (s.created_at, Attachment::from_session(s))),
        )
        .collect();
    // Newest first, as each source is ordered (ties by id, descending).
    list.sort_by(|(ta, a), (tb, b)| tb.cmp(ta).then_with(|| b.id.cmp(&a.id)));
    let list: Vec<Attachment> = list.into_iter().map(|(_, a)| a).collect();
    let body = json!({ "attachments": list });
    Ok(response::json(StatusCode::OK, &body, &call.request_id).into())
}
