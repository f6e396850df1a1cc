//! `DELETE /api/v1/tus/{id}` (termination): an open upload's multipart upload is aborted (storage
//! drops its parts) and the session is `aborted`: `204`. From then on the upload is gone: `HEAD`,
//! `PATCH` and `DELETE` answer `404`. A completed upload is `409 upload_not_open` (delete its
//! attachment instead).

use edge::app::{Call, Reply};
use edge::{ApiError, Code, Problem, response};
use http::StatusCode;
use storage::ObjectKey;
use store::spin::Db;
use store::uploads::{self, State};

use crate::Config;

pub(crate) async fn handle(call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?.clone();
    let id = call.id()?;
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    let done = async {
        // Locked: a completion in flight either finished before (409) or finds it aborted.
        let row = crate::routes::direct::owned(&tx, &ctx, id, true).await?;
        if row.protocol != uploads::Protocol::Tus {
            return Err(Problem::not_found().into());
        }
        match row.state {
            State::Open => {
                let key = ObjectKey::from_stored(&row.storage_key).map_err(ApiError::from)?;
                cfg.storage
                    .abort_multipart_upload(&key, &row.s3_upload_id)
                    .await
                    .map_err(ApiError::from)?;
                uploads::set_state(&tx, id, State::Aborted).await?;
                Ok(())
            }
            State::Aborted => Err(Problem::not_found().into()),
            State::Verifying | State::Done | State::Rejected => Err(ApiError::new(
                Problem::new(Code::UploadNotOpen)
                    .detail("The upload is complete; delete its attachment instead."),
            )),
        }
    }
    .await;
    match done {
        Ok(()) => tx.commit().await?,
        Err(e) => {
            tx.rollback().await;
            return Err(e);
        }
    }
    let mut res = response::empty(StatusCode::NO_CONTENT, &call.request_id);
    response::apply_headers(&mut res, &[super::resumable()]);
    Ok(res.into())
}
