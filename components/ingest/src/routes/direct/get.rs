//! `GET /api/v1/uploads/{id}`: where a direct upload stands, with fresh part URLs while it is open
//! (a client that resumes after its URLs expired, or after a reload, asks here).

use edge::ApiError;
use edge::app::{Call, Reply};
use edge::response;
use http::StatusCode;
use spin_sdk::http::Request;
use store::spin::Db;

use super::SessionView;
use crate::Config;

pub(crate) async fn handle(
    _req: Request,
    call: &mut Call,
    cfg: &Config,
) -> Result<Reply, ApiError> {
    let ctx = call.caller()?;
    let id = call.id()?;
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    let row = super::owned(&tx, ctx, id, false).await;
    tx.commit().await?;
    let row = row?;
    let now_ms = auth_core::unix_now_ms();
    let view = SessionView::of(cfg, &row, now_ms)?;
    Ok(response::json(StatusCode::OK, &view, &call.request_id).into())
}
