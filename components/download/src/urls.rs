//! Behind the auth middleware (identity from `x-auth-context` only):
//!
//! * `POST /api/v1/attachments/{id}/download-url` `{"expiresIn"?, "disposition"?}` → `200 {"url","expiresAt"}`
//!   for any live attachment of the caller's tenant (another tenant's or a deleted one: `404`);
//! * `POST /api/v1/attachments/{id}/revoke-urls` → `204`, uploader or admin (`403` otherwise): bumps
//!   `url_generation`, which every signed URL carries, so all URLs issued so far stop working;
//!   written to the audit log as `attachment.revoke_urls`.

use auth_core::{AuthContext, Role};
use edge::body::{self, SMALL_JSON_LIMIT};
use edge::log::RequestLog;
use edge::spin::{AuditEntry, Db, cell};
use edge::{ApiError, Code, Problem, RequestId, response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use signed_url::{Disposition, ExpiresIn, Target};
use spin_sdk::http::Request;
use spin_sdk::pg::ParameterValue;
use uuid::Uuid;

use crate::config;

fn note_identity(log: &mut RequestLog, ctx: &AuthContext) {
    log.user_id = Some(ctx.user.to_string());
    log.tenant_id = Some(ctx.tenant.to_string());
    log.role = Some(ctx.role.as_str());
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IssueBody {
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    disposition: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Issued {
    url: String,
    /// Epoch milliseconds.
    expires_at: i64,
}

fn bad(detail: &str) -> ApiError {
    ApiError::new(Problem::bad_request(detail.to_owned()))
}

pub(crate) async fn issue(
    req: Request,
    id: Uuid,
    log: &mut RequestLog,
) -> Result<http::Response<String>, ApiError> {
    let now = auth_core::unix_now();
    let ctx = edge::inner::authenticate(req.headers(), crate::context_key().await?, now)?;
    note_identity(log, &ctx);
    let rid = RequestId::from_client(Some(ctx.request_id.as_bytes()));
    let cfg = config().await?;
    let (parts, b) = req.into_parts();
    let bytes = body::read_limited(&parts.headers, b, SMALL_JSON_LIMIT).await?;
    let parsed = if bytes.iter().all(u8::is_ascii_whitespace) {
        IssueBody::default()
    } else {
        body::require_json(&parts.headers)?;
        body::parse_json::<IssueBody>(&bytes, r#"{"expiresIn"?,"disposition"?}"#)?
    };
    let requested =
        match parsed.expires_in {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| {
                bad("expiresIn must be an integer number of seconds in 1..=604800.")
            })?),
        };
    let expires_in = ExpiresIn::from_request(requested, cfg.default_ttl)
        .map_err(|_| bad("expiresIn must be in 1..=604800 seconds."))?;
    let disposition = match parsed.disposition.as_deref() {
        None => Disposition::Attachment,
        Some(d) => Disposition::from_api(d)
            .ok_or_else(|| bad("disposition must be \"attachment\" or \"inline\"."))?,
    };

    let db = Db::open(&cfg.database_url).await?;
    let tx = db.begin_for_tenant(&ctx.tenant).await?;
    let rows = tx
        .query(
            "SELECT url_generation FROM email_attachments WHERE id = $1 AND NOT is_deleted",
            vec![ParameterValue::Uuid(id.to_string())],
        )
        .await?;
    tx.commit().await?;
    let Some(row) = rows.first() else {
        return Err(Problem::not_found().into());
    };
    let generation = cell::int(row, 0)
        .and_then(|g| u32::try_from(g).ok())
        .ok_or_else(|| ApiError::internal("url_generation is not a non-negative integer"))?;
    let tenant = Uuid::try_parse(&ctx.tenant.to_string())
        .map_err(|_| ApiError::internal("tenant id is not a UUID"))?;
    let (url, grant) = cfg.signer.issue(
        &cfg.base,
        Target {
            attachment_id: id,
            tenant_id: tenant,
            disposition,
            generation,
        },
        expires_in,
        now,
    );
    Ok(response::json(
        StatusCode::OK,
        &Issued {
            url: url.into_string(),
            expires_at: grant.expires_at.saturating_mul(1000),
        },
        &rid,
    ))
}

pub(crate) async fn revoke(
    req: Request,
    id: Uuid,
    log: &mut RequestLog,
) -> Result<http::Response<String>, ApiError> {
    let now = auth_core::unix_now();
    let ctx = edge::inner::authenticate(req.headers(), crate::context_key().await?, now)?;
    note_identity(log, &ctx);
    let rid = RequestId::from_client(Some(ctx.request_id.as_bytes()));
    let client = edge::client::client_ip(req.headers()).map(|ip| ip.to_string());
    let cfg = config().await?;
    let db = Db::open(&cfg.database_url).await?;
    let tx = db.begin_for_tenant(&ctx.tenant).await?;
    let rows = tx
        .query(
            "SELECT uploader_user_id FROM email_attachments WHERE id = $1 AND NOT is_deleted FOR UPDATE",
            vec![ParameterValue::Uuid(id.to_string())],
        )
        .await?;
    let Some(row) = rows.first() else {
        tx.rollback().await;
        return Err(Problem::not_found().into());
    };
    let uploader = cell::text(row, 0).unwrap_or_default();
    if ctx.role != Role::Admin && uploader != ctx.user.to_string() {
        tx.rollback().await;
        return Err(ApiError::new(Problem::new(Code::Forbidden)));
    }
    tx.execute(
        "UPDATE email_attachments SET url_generation = url_generation + 1 WHERE id = $1",
        vec![ParameterValue::Uuid(id.to_string())],
    )
    .await?;
    tx.audit(&AuditEntry {
        tenant: &ctx.tenant,
        user: Some(&ctx.user),
        action: "attachment.revoke_urls",
        resource_type: Some("attachment"),
        resource_id: Some(id.to_string()),
        request_id: rid.as_str(),
        client_addr: client,
        details: json!({}),
    })
    .await?;
    tx.commit().await?;
    Ok(response::empty(StatusCode::NO_CONTENT, &rid))
}
