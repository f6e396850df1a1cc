//! `DELETE /api/v1/uploads/{id}`: the client gives up. An open session's multipart upload is
//! aborted (its parts deleted by storage) and the session is `aborted`: `204`, also when it was
//! aborted or rejected already. A session that is verifying or verified is `409 upload_not_open`
//! (delete the attachment instead).

use edge::app::{Call, Reply};
use edge::{ApiError, Code, Problem, response};
use http::StatusCode;
use storage::ObjectKey;
use store::spin::Db;
use store::uploads::{self, State};

use crate::Config;

pub(crate) async fn handle(call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?;
    let id = call.id()?;
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    let done = async {
        let row = super::owned(&tx, ctx, id, true).await?;
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
            State::Aborted | State::Rejected => Ok(()),
            State::Verifying | State::Done => Err(ApiError::new(
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
    Ok(response::empty(StatusCode::NO_CONTENT, &call.request_id).into())
}
