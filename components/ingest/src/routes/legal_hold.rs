//! `PUT`/`DELETE /api/v1/admin/attachments/{id}/legal-hold` and
//! `PUT`/`DELETE /api/v1/admin/emails/{messageId}/legal-hold`: a tenant admin holds an attachment,
//! or every attachment of a message, from the retention purge (`PUT`), or lifts the hold
//! (`DELETE`). Plain users are refused by the middleware (`403`, from the route table); another
//! tenant's id is `404`. Both are idempotent (`204`) and audited (`attachment.legal_hold`,
//! `message.legal_hold`, with `{"hold": true|false}`), in one transaction.

use edge::app::{Call, Reply};
use edge::routes::Endpoint;
use edge::{ApiError, Problem, response};
use http::StatusCode;
use serde_json::json;
use spin_sdk::http::Request;
use store::audit_log::{self, AuditEntry};
use store::legal_hold;
use store::spin::Db;

use crate::Config;

pub(crate) async fn handle(req: Request, call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let hold = req.method() == http::Method::PUT;
    let ctx = call.caller()?;
    let id = call.id()?;
    let rid = &call.request_id;
    let (resource, action) = match call.matched.endpoint {
        Endpoint::MessageLegalHold => ("message", "message.legal_hold"),
        _ => ("attachment", "attachment.legal_hold"),
    };
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    let found = match call.matched.endpoint {
        Endpoint::MessageLegalHold => legal_hold::set_message(&tx, id, hold).await?,
        _ => legal_hold::set_attachment(&tx, id, hold).await?,
    };
    if !found {
        tx.rollback().await;
        return Err(Problem::not_found().into());
    }
    let entry = AuditEntry {
        user: Some(&ctx.user),
        action,
        resource_type: Some(resource),
        resource_id: Some(id.to_string()),
        request_id: rid.as_str(),
        client_addr: call.client_addr(),
        details: json!({ "hold": hold }),
    };
    audit_log::record(&tx, &entry).await?;
    tx.commit().await?;
    Ok(response::empty(StatusCode::NO_CONTENT, rid).into())
}
