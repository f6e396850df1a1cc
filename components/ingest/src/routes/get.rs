//! `GET /api/v1/attachments/{id}`: one attachment, for its message's owner, its uploader and the
//! tenant's admins (`403` for anyone else of the tenant). A deleted one, or another tenant's, is
//! `404`. A direct upload that is verifying or was rejected answers at its attachment id, for its
//! uploader and the tenant's admins.

use edge::app::{Call, Reply};
use edge::{ApiError, Problem, response};
use http::StatusCode;
use spin_sdk::http::Request;
use store::spin::Db;
use store::uploads::{self, State};
use store::{access, attachments};

use crate::Config;
use crate::view::Attachment;

pub(crate) async fn handle(
    _req: Request,
    call: &mut Call,
    cfg: &Config,
) -> Result<Reply, ApiError> {
    let ctx = call.caller()?;
    let id = call.id()?;
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    let row = attachments::get(&tx, id).await?;
    let session = match row {
        Some(_) => None,
        None => uploads::by_attachment(&tx, id).await?,
    };
    tx.commit().await?;
    if let Some(s) = session.filter(|s| {
        matches!(s.state, State::Verifying | State::Rejected) && access::may_manage(ctx, s.user_id)
    }) {
        let body = Attachment::from_session(&s);
        return Ok(response::json(StatusCode::OK, &body, &call.request_id).into());
    }
    let Some(row) = row.filter(|r| !r.is_deleted) else {
        return Err(Problem::not_found().into());
    };
    if !access::may_read(ctx, row.message_owner, Some(row.uploader)) {
        return Err(Problem::forbidden().into());
    }
    let body = Attachment::from_row(cfg, &ctx.tenant, &row);
    Ok(response::json(StatusCode::OK, &body, &call.request_id).into())
}
