//! `HEAD /api/v1/tus/{id}`: the offset to resume from after a lost connection. `200` with
//! `Upload-Offset`, `Upload-Length`, `Upload-Expires` (while open) and `Cache-Control: no-store`; a
//! completed upload (verifying, verified, rejected) answers its full length, so a client whose last
//! answer was lost knows it is done. `404` for a terminated upload, `410 upload_expired` past the
//! expiry of an open one.

use edge::app::{Call, Reply};
use edge::{ApiError, Code, Problem, response};
use http::StatusCode;
use store::spin::Db;
use store::uploads::State;

use crate::Config;

pub(crate) async fn handle(call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?.clone();
    let id = call.id()?;
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    let found = super::owned(&tx, &ctx, id).await;
    tx.commit().await?;
    let (row, progress) = found?;
    let now_ms = auth_core::unix_now_ms();
    let mut headers = vec![
        super::resumable(),
        ("Upload-Length", row.claimed_size.to_string()),
        ("Cache-Control", "no-store".to_owned()),
    ];
    match row.state {
        State::Aborted => return Err(Problem::not_found().into()),
        State::Open if row.is_expired(now_ms) => return Err(Code::UploadExpired.into()),
        State::Open => {
            headers.push(("Upload-Offset", progress.offset.to_string()));
            headers.push(super::expires(&row));
        }
        State::Verifying | State::Done | State::Rejected => {
            headers.push(("Upload-Offset", row.claimed_size.to_string()));
        }
    }
    let mut res = response::empty(StatusCode::OK, &call.request_id);
    response::apply_headers(&mut res, &headers);
    Ok(res.into())
}
