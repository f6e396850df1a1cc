//! `GET /api/v1/emails?limit=&before=`: the caller's own live messages in their tenant, newest first
//! (what a client opens before it lists a message's attachments). Only messages the caller owns are
//! listed, admins included: an admin reads other users' messages by id, never by browsing them here.
//!
//! Paging is by keyset on `(receivedAt, id)`: `nextBefore` is an opaque cursor to pass as `before`
//! for the next page, `null` on the last page. `limit` is 1..=100 (default 20); anything else is
//! `400` (`edge::paging`).

use edge::app::{Call, Reply};
use edge::paging::Paging;
use edge::{ApiError, response};
use http::StatusCode;
use serde::Serialize;
use spin_sdk::http::Request;
use store::Tx;
use store::messages::{self, Cursor, MessageRow};
use store::spin::Db;

use crate::Config;

const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    id: String,
    subject: String,
    from: String,
    received_at: i64,
    attachment_count: i64,
}

impl From<MessageRow> for Message {
    fn from(r: MessageRow) -> Self {
        Self {
            id: r.id.hyphenated().to_string(),
            subject: r.subject,
            from: r.from_address,
            received_at: r.received_at,
            attachment_count: r.attachment_count,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    messages: Vec<Message>,
    next_before: Option<String>,
}

pub(crate) async fn handle(req: Request, call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?;
    let paging = Paging::<Cursor>::from_query(req.uri().query(), DEFAULT_LIMIT, MAX_LIMIT)?;
    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = Tx::for_tenant(&db, &ctx.tenant).await?;
    let page = messages::owned_page(&tx, *ctx.user.as_uuid(), paging.before, paging.limit).await?;
    tx.commit().await?;
    let page = Page {
        messages: page.rows.into_iter().map(Message::from).collect(),
        next_before: page.next.map(|c| c.to_string()),
    };
    Ok(response::json(StatusCode::OK, &page, &call.request_id).into())
}
