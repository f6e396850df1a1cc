//! `POST /api/v1/attachments/{id}/download-url` `{"expiresIn"?, "disposition"?}` → `200
//! {"url","expiresAt"}` for whoever may read the attachment (`store::access::may_read`: its message's
//! owner, its uploader, the tenant's admins; anyone else of the tenant `403 forbidden`; another tenant's or a deleted attachment: `404`). A URL is the content
//! itself for whoever holds it, so minting one is exactly reading, never more. The URL is issued
//! whatever the scan status: serving checks it.

use edge::app::{Call, Reply};
use edge::body::{self, SMALL_JSON_LIMIT};
use edge::{ApiError, Problem, response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use signed_url::{Disposition, ExpiresIn, Target};
use spin_sdk::http::Request;
use store::spin::Db;
use store::{access, attachments};

use crate::Config;

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

/// The lifetime and disposition the request asks for (an empty body: the defaults).
async fn parse(req: Request, cfg: &Config) -> Result<(ExpiresIn, Disposition), ApiError> {
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
            Some(v) => Some(body::integer(&v).ok_or_else(|| {
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
    Ok((expires_in, disposition))
}

pub(crate) async fn handle(req: Request, call: &mut Call, cfg: &Config) -> Result<Reply, ApiError> {
    let ctx = call.caller()?;
    let id = call.id()?;
    let now = auth_core::unix_now();
    let (expires_in, disposition) = parse(req, cfg).await?;

    let db = Db::open(&cfg.database, cfg.outbound_timeout).await?;
    let tx = store::Tx::for_tenant(&db, &ctx.tenant).await?;
    let row = attachments::get(&tx, id).await?;
    tx.commit().await?;
    let Some(row) = row.filter(|r| !r.is_deleted) else {
        return Err(Problem::not_found().into());
    };
    if !access::may_read(ctx, row.message_owner, Some(row.uploader)) {
        return Err(Problem::forbidden().into());
    }
    let target = Target {
        attachment_id: id,
        tenant_id: *ctx.tenant.as_uuid(),
        disposition,
        generation: row.url_generation,
    };
    let (url, grant) = cfg.signer.issue(&cfg.base, target, expires_in, now);
    let issued = Issued {
        url: url.into_string(),
        expires_at: grant.expires_at.saturating_mul(1000),
    };
    Ok(response::json(StatusCode::OK, &issued, &call.request_id).into())
}
