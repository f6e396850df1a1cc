//! `GET /api/v1/audit-log?limit=&before=`: the caller's tenant's audit rows, newest first, for its
//! admins (the route table makes it admin-only: the middleware and the shell both check).
//!
//! Paging is by keyset on `(createdAt, id)`, the order of the table's index: `nextBefore` is an
//! opaque cursor to pass as `before` for the next page, `null` on the last page. `limit` is 1..=200
//! (default 50); anything else is `400` (`edge::paging`).

use edge::app::{Call, Reply};
use edge::paging::Paging;
use edge::{ApiError, response};
use http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use spin_sdk::http::Request;
use store::Tx;
use store::audit_log::{self, AuditRow, Cursor};
use store::spin::Db;

use crate::Config;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    id: i64,
    user_id: Option<String>,
    action: String,
    resource_type: Option<String>,
    resource_id: Option<String>,
    request_id: Option<String>,
    client_addr: Option<String>,
    details: Value,
    created_at: i64,
}

impl From<AuditRow> for Entry {
    fn from(r: AuditRow) -> Self {
        Self {
            id: r.id,
            user_id: r.user_id.map(|u| u.to_string()),
            action: r.action,
            resource_type: r.resource_type,
            resource_id: r.resource_id,
            request_id: r.request_id,
            client_addr: r.client_addr,
            details: r.details,
            created_at: r.created_at,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    entries: Vec<Entry>,
    next_before: Option<String>,
}

pub(crate) async fn handle(req: Request, call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?;
    let paging = Paging::<Cursor>::from_query(req.uri().query(), DEFAULT_LIMIT, MAX_LIMIT)?;
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = Tx::for_tenant(&db, &ctx.tenant).await?;
    let page = audit_log::page(&tx, paging.before, paging.limit).await?;
    tx.commit().await?;
    let page = Page {
        entries: page.rows.into_iter().map(Entry::from).collect(),
        next_before: page.next.map(|c| c.to_string()),
    };
    Ok(response::json(StatusCode::OK, &page, &call.request_id).into())
}
