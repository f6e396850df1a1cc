//! `POST /api/v1/uploads/{id}/complete`: the client has sent every part; storage assembles the
//! object (CompleteMultipartUpload) and the session turns `verifying`: the worker reads the object
//! back (size and SHA-256 against the claims, content policy, dedup, virus scan) before there is an
//! attachment to download.
//!
//! In this order: the body (`400`); the session (`404` unless the caller's); its state: verifying,
//! verified or rejected answers `202` with the session as it is (completing twice never makes a
//! second attachment), aborted is `409 upload_not_open`, open past its expiry `410 upload_expired`;
//! the parts must be exactly `1..=partCount` in order with an ETag each (`400 invalid_parts`);
//! storage must hold those ETags (`400 invalid_parts`). Storage that no longer knows the upload
//! but holds its object means an earlier completion whose answer was lost: it counts as completed.

use edge::app::{Call, Reply};
use edge::{ApiError, Code, Problem, body, response};
use http::StatusCode;
use serde::Deserialize;
use spin_sdk::http::Request;
use storage::parts::{ListedPartsError, listed_parts};
use storage::{ObjectKey, StorageError};
use store::spin::Db;
use store::uploads::{self, SessionRow, State};

use super::SessionView;
use crate::Config;

/// 10,000 parts of `{"partNumber":10000,"etag":"\"<32 hex>\""}` fit well under it.
const MAX_BODY: usize = 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    parts: Vec<Part>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Part {
    /// A JSON integer (`3.0` too, as JSON Schema reads one).
    part_number: serde_json::Value,
    etag: String,
}

const SHAPE: &str = r#"{"parts": [{"partNumber": integer, "etag": string}, ...]}"#;

fn invalid_parts(detail: impl Into<String>) -> ApiError {
    ApiError::new(Problem::new(Code::InvalidParts).detail(detail.into()))
}

/// The parts as storage takes them (`storage::parts::listed_parts`), else `400 invalid_parts`.
fn checked(parts: Vec<Part>, count: u32) -> Result<Vec<(u32, String)>, ApiError> {
    let mut listed = Vec::with_capacity(parts.len());
    for p in parts {
        let n = body::integer(&p.part_number)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (1..=storage::MAX_PARTS).contains(n))
            .ok_or_else(|| {
                ApiError::new(Problem::bad_request(
                    "partNumber must be an integer in 1..=10000.",
                ))
            })?;
        listed.push((n, p.etag));
    }
    listed_parts(listed, count).map_err(|e| {
        invalid_parts(match e {
            ListedPartsError::Count => {
                format!("This upload has {count} parts; list each of them once, in order.")
            }
            ListedPartsError::Order(n) => {
                format!("Part {n} is missing or out of order (list parts 1..={count} in order).")
            }
            ListedPartsError::Etag(n) => format!("Part {n} has no valid ETag."),
        })
    })
}

pub(crate) async fn handle(req: Request, call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?.clone();
    let id = call.id()?;
    let (head, b) = req.into_parts();
    body::require_json(&head.headers)?;
    let bytes = body::read_limited(&head.headers, b, MAX_BODY).await?;
    let listed: Body = body::parse_json(&bytes, SHAPE)?;

    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    let now_ms = auth_core::unix_now_ms();
    let outcome = async {
        let row = super::owned(&tx, &ctx, id, true).await?;
        match row.state {
            State::Verifying | State::Done | State::Rejected => return Ok(row),
            State::Aborted => {
                return Err(ApiError::new(
                    Problem::new(Code::UploadNotOpen).detail("The upload was aborted."),
                ));
            }
            State::Open if row.is_expired(now_ms) => {
                return Err(Code::UploadExpired.into());
            }
            State::Open => {}
        }
        let parts = checked(listed.parts, row.part_count)?;
        complete_in_storage(cfg, &row, &parts).await?;
        uploads::set_state(&tx, id, State::Verifying).await?;
        Ok(SessionRow {
            state: State::Verifying,
            ..row
        })
    }
    .await;
    let row = match outcome {
        Ok(row) => {
            tx.commit().await?;
            row
        }
        Err(e) => {
            tx.rollback().await;
            return Err(e);
        }
    };
    let view = SessionView::of(cfg, &row, now_ms)?;
    Ok(response::json(StatusCode::ACCEPTED, &view, &call.request_id).into())
}

/// CompleteMultipartUpload with the client's parts.
async fn complete_in_storage(
    cfg: &Config,
    row: &SessionRow,
    parts: &[(u32, String)],
) -> Result<(), ApiError> {
    let key = ObjectKey::from_stored(&row.storage_key).map_err(ApiError::from)?;
    match cfg
        .storage
        .complete_direct_upload(&key, &row.s3_upload_id, parts)
        .await
    {
        Ok(()) => Ok(()),
        // S3 may also answer 200 with the error document (`storage::response::complete`).
        Err(StorageError::Service { code, .. })
            if matches!(
                code.as_str(),
                "InvalidPart" | "InvalidPartOrder" | "EntityTooSmall" | "InvalidRequest"
            ) =>
        {
            Err(invalid_parts(
                "Storage does not hold these parts: send every part, then list the ETag each PUT answered.",
            ))
        }
        Err(StorageError::NotFound { .. }) => {
            // The upload is gone from storage: completed by an earlier call whose answer was lost
            // (its object is there), or aborted behind our back.
            match cfg
                .storage
                .object_size(&key)
                .await
                .map_err(ApiError::from)?
            {
                Some(_) => Ok(()),
                None => Err(ApiError::new(
                    Problem::new(Code::UploadNotOpen)
                        .detail("Storage no longer holds this upload; start a new one."),
                )),
            }
        }
        Err(e) => Err(e.into()),
    }
}
