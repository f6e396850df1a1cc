//! `GET /api/v1/audit-log?limit=&before=`: the caller's tenant's audit rows, newest first, for
//! admins (the middleware's RBAC refuses `user`; this handler checks again, so the route stays
//! admin-only even if it were ever mounted without that table row).
//!
//! Paging is by keyset on `(createdAt, id)`, the order of the table's index: `nextBefore` is an
//! opaque cursor (`<createdAt>_<id>`) to pass as `before` for the next page, `null` on the last
//! page. `limit` is 1..=200 (default 50). Anything else is `400`.

use auth_core::Role;
use edge::log::RequestLog;
use edge::spin::{Db, cell};
use edge::{ApiError, Problem, RequestId, response};
use http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use spin_sdk::http::Request;
use spin_sdk::pg::ParameterValue;

use crate::{InnerConfig, Reply};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    entries: Vec<Entry>,
    next_before: Option<String>,
}

/// The page request: `limit` rows strictly older than `before` (if given).
#[derive(Debug, PartialEq, Eq)]
struct Query {
    limit: i64,
    before: Option<(i64, i64)>,
}

fn parse_query(query: Option<&str>) -> Result<Query, ApiError> {
    let mut q = Query {
        limit: DEFAULT_LIMIT,
        before: None,
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "limit" => {
                q.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::new(Problem::bad_request(format!(
                            "limit must be 1..={MAX_LIMIT}."
                        )))
                    })?;
            }
            "before" => {
                q.before = Some(
                    v.split_once('_')
                        .and_then(|(t, id)| Some((t.parse().ok()?, id.parse().ok()?)))
                        .ok_or_else(|| {
                            ApiError::new(Problem::bad_request(
                                "before must be a nextBefore cursor.",
                            ))
                        })?,
                );
            }
            // Unknown parameters are ignored, as most APIs do.
            _ => {}
        }
    }
    Ok(q)
}

pub(crate) async fn list(
    req: Request,
    cfg: &InnerConfig,
    log: &mut RequestLog,
) -> Result<Reply, ApiError> {
    let ctx = edge::inner::authenticate(req.headers(), &cfg.context_key, auth_core::unix_now())?;
    log.user_id = Some(ctx.user.to_string());
    log.tenant_id = Some(ctx.tenant.to_string());
    log.role = Some(ctx.role.as_str());
    let rid = RequestId::from_client(Some(ctx.request_id.as_bytes()));
    if !ctx.role.satisfies(Role::Admin) {
        return Err(auth_core::Error::Forbidden.into());
    }
    let q = parse_query(req.uri().query())?;

    let db = Db::open(&cfg.database_url).await?;
    let tx = db.begin_for_tenant(&ctx.tenant).await?;
    let (before_t, before_id) = match q.before {
        Some((t, id)) => (ParameterValue::Int64(t), ParameterValue::Int64(id)),
        None => (ParameterValue::DbNull, ParameterValue::DbNull),
    };
    // One row more than asked tells whether there is a next page.
    let rows = tx
        .query(
            "SELECT id, user_id, action, resource_type, resource_id, request_id, host(client_addr), \
                    details, created_at \
             FROM email_audit_log \
             WHERE tenant_id = $1 AND ($2::bigint IS NULL OR (created_at, id) < ($2::bigint, $3::bigint)) \
             ORDER BY created_at DESC, id DESC \
             LIMIT $4",
            vec![
                ParameterValue::Uuid(ctx.tenant.to_string()),
                before_t,
                before_id,
                ParameterValue::Int64(q.limit + 1),
            ],
        )
        .await?;
    tx.commit().await?;

    let more = rows.len() as i64 > q.limit;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows.iter().take(q.limit as usize) {
        entries.push(Entry {
            id: cell::int(row, 0).ok_or_else(|| ApiError::internal("audit id"))?,
            user_id: cell::text(row, 1),
            action: cell::text(row, 2).unwrap_or_default(),
            resource_type: cell::text(row, 3),
            resource_id: cell::text(row, 4),
            request_id: cell::text(row, 5),
            client_addr: cell::text(row, 6),
            details: cell::json(row, 7).unwrap_or_else(|| Value::Object(Default::default())),
            created_at: cell::int(row, 8).ok_or_else(|| ApiError::internal("audit created_at"))?,
        });
    }
    let next_before = if more {
        entries.last().map(|e| format!("{}_{}", e.created_at, e.id))
    } else {
        None
    };
    Ok(response::json(
        StatusCode::OK,
        &Page {
            entries,
            next_before,
        },
        &rid,
    ))
}
