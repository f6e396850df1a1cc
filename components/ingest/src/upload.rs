//! `POST /api/v1/emails/{messageId}/attachments`: the upload pipeline of issue 5.
//!
//! 1. Before reading the body: `Content-Length` over the limit → `413`; a malformed `Repr-Digest`
//!    → `400`; the message must be in the caller's tenant (`404`) and the caller's unless admin
//!    (`403`); a raw body's filename passes [`SafeFilename`] (`422` / `415`).
//! 2. Each file streams chunk by chunk through the size counter (whole request body), the
//!    [`ContentInspector`] (`415` as soon as it is executable/script content), SHA-256, and the
//!    storage [`ObjectWriter`] under a fresh key (a few part buffers of memory at most: the parts
//!    uploading while the next one fills; the body is read in large pieces, see [`crate::body`]).
//!    A raw body whose `Repr-Digest` names content this user already uploaded is hashed and
//!    checked but not stored again (it must still hash to the digest; other users' content is
//!    never looked up).
//! 3. Any failure (policy, client abort, storage, database) aborts the multipart upload / deletes
//!    every object this request stored, and no row is written.
//! 4. One transaction: dedup upsert of the blob (`scan_jobs` row for new content), the attachment
//!    row, the audit row. After commit, the uploaded copy of deduplicated content is deleted.
//! 5. `201` with the `Attachment` (raw, plus `Location`) or `{"attachments":[...]}` (multipart).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use attachment_policy::sniff::Detected;
use attachment_policy::{ContentHash, ContentInspector, PolicyError, ReprDigest, SafeFilename};
use auth_core::AuthContext;
use bytes::Bytes;
use edge::log::{self, RequestLog};
use edge::spin::{AuditEntry, Db, cell};
use edge::{ApiError, Problem, RequestId, response};
use futures::{Stream, StreamExt};
use http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use spin_sdk::http::Request;
use spin_sdk::pg::ParameterValue;
use storage::ObjectKey;
use storage::client::ObjectWriter;
use uuid::Uuid;

use crate::view::{self, Attachment};
use crate::{COMPONENT, Config, Reply, records};

/// Part size of multipart uploads (and the largest single PUT). The writer holds at most
/// `storage::client::PARTS_IN_FLIGHT + 1` parts: the component's memory bound.
const PART_SIZE: usize = 8 * 1024 * 1024;

fn policy(e: PolicyError) -> ApiError {
    ApiError::new(Problem::new(e.code()).detail(e.detail()))
}

fn header_str(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn storage_error(e: storage::StorageError) -> ApiError {
    if e.is_unavailable() {
        ApiError::unavailable(e)
    } else {
        ApiError::internal(e)
    }
}

// ---------------------------------------------------------------------------------------------
// The request body, counted (and for multipart hashed whole) as it streams.

#[derive(Debug)]
enum BodyFailure {
    TooLarge,
    Read(String),
}

struct BodyState {
    seen: u64,
    limit: u64,
    hasher: Option<Sha256>,
    failure: Option<BodyFailure>,
}

#[derive(Debug)]
struct BodyError;

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body stopped")
    }
}

impl std::error::Error for BodyError {}

struct CountedBody<S> {
    inner: Pin<Box<S>>,
    state: Arc<Mutex<BodyState>>,
}

impl<S, E> Stream for CountedBody<S>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Debug,
{
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Ok(b))) => {
                st.seen = st.seen.saturating_add(b.len() as u64);
                if st.seen > st.limit {
                    st.failure = Some(BodyFailure::TooLarge);
                    return Poll::Ready(Some(Err(BodyError)));
                }
                if let Some(h) = st.hasher.as_mut() {
                    h.update(&b);
                }
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => {
                st.failure = Some(BodyFailure::Read(format!("{e:?}")));
                Poll::Ready(Some(Err(BodyError)))
            }
        }
    }
}

/// The error for a body that stopped: over the limit (`413`) or unreadable (client abort,
/// truncated: `400`).
fn body_failure(state: &Arc<Mutex<BodyState>>, fallback: impl std::fmt::Display) -> ApiError {
    let st = state.lock().unwrap_or_else(|p| p.into_inner());
    match &st.failure {
        Some(BodyFailure::TooLarge) => policy(PolicyError::TooLarge),
        Some(BodyFailure::Read(cause)) => {
            ApiError::new(Problem::bad_request("The request body could not be read."))
                .with_cause(format!("reading request body: {cause}"))
        }
        None => ApiError::new(Problem::bad_request("Malformed multipart/form-data body."))
            .with_cause(format!("multipart: {fallback}")),
    }
}

/// How long a body may stay silent before the upload counts as abandoned (a client that vanished
/// without the connection reporting it): cleanup then runs as for any other failure.
const BODY_IDLE: std::time::Duration = std::time::Duration::from_secs(20);

/// `fut`, or `None` when the body stayed silent for [`BODY_IDLE`].
async fn or_idle<T>(fut: impl std::future::Future<Output = T>) -> Option<T> {
    let fut = std::pin::pin!(fut);
    let timer = std::pin::pin!(spin_sdk::time::sleep(BODY_IDLE));
    match futures::future::select(fut, timer).await {
        futures::future::Either::Left((v, _)) => Some(v),
        futures::future::Either::Right(_) => None,
    }
}

fn idle_error() -> ApiError {
    ApiError::new(Problem::bad_request("The request body stopped arriving."))
        .with_cause("request body idle timeout")
}

/// Where one file's chunks come from.
#[allow(async_fn_in_trait)]
trait ChunkSource {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError>;

    /// An upper bound of the file's size when the request's `Content-Length` gives one (part buffers
    /// are then no larger than the file).
    fn at_most(&self) -> Option<u64>;
}

struct RawSource<S> {
    body: CountedBody<S>,
    /// The declared `Content-Length`: a body that ends short of it was truncated.
    expected: Option<u64>,
}

impl<S, E> ChunkSource for RawSource<S>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Debug,
{
    fn at_most(&self) -> Option<u64> {
        self.expected
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        match or_idle(self.body.next()).await.ok_or_else(idle_error)? {
            None => {
                let st = self.body.state.lock().unwrap_or_else(|p| p.into_inner());
                match self.expected {
                    Some(n) if st.seen < n => Err(ApiError::new(Problem::bad_request(
                        "The request body ended before its Content-Length.",
                    ))
                    .with_cause("truncated request body")),
                    _ => Ok(None),
                }
            }
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(body_failure(&self.body.state, e)),
        }
    }
}

struct FieldSource<'a, 'r> {
    field: &'a mut multer::Field<'r>,
    state: Arc<Mutex<BodyState>>,
    /// The request's `Content-Length`: a file is at most the whole body (what the parser read ahead of
    /// this field may belong to it, so the body read so far is no bound).
    content_length: Option<u64>,
}

impl ChunkSource for FieldSource<'_, '_> {
    fn at_most(&self) -> Option<u64> {
        self.content_length
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        or_idle(self.field.chunk())
            .await
            .ok_or_else(idle_error)?
            .map_err(|e| body_failure(&self.state, e))
    }
}

// ---------------------------------------------------------------------------------------------
// One file.

/// A file that passed and is in storage (or deliberately not stored again).
struct Stored {
    key: ObjectKey,
    /// Whether this request put an object at `key` (false: content the user already had).
    uploaded: bool,
    filename: SafeFilename,
    declared: Option<String>,
    detected: Detected,
    size: u64,
    hash: ContentHash,
}

async fn ingest_file(
    src: &mut impl ChunkSource,
    cfg: &Config,
    tenant: Uuid,
    filename: SafeFilename,
    declared: Option<String>,
    store: bool,
    stored: &mut Vec<Stored>,
) -> Result<(), ApiError> {
    let key = ObjectKey::new_upload(tenant);
    let mut writer = store.then(|| {
        cfg.storage
            .writer(key.clone(), None, PART_SIZE)
            .with_budget(cfg.buffers.clone())
            .expect_at_most(src.at_most())
    });
    let ext = filename.extension();
    let mut inspector = ContentInspector::new(declared.as_deref(), ext.as_deref());
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let result: Result<(Detected, ContentHash), ApiError> = async {
        while let Some(chunk) = src.next_chunk().await? {
            if chunk.is_empty() {
                continue;
            }
            inspector.feed(&chunk).map_err(policy)?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            if let Some(w) = writer.as_mut() {
                w.write(&chunk).await.map_err(storage_error)?;
            }
        }
        let detected = inspector.finish().map_err(policy)?;
        if size == 0 {
            return Err(ApiError::new(Problem::bad_request("The file is empty.")));
        }
        let hash = ContentHash::finish(std::mem::take(&mut hasher));
        if let Some(w) = writer.as_mut() {
            // A single PutObject is signed with this hash rather than hashing the bytes again.
            w.finish(Some(*hash.bytes())).await.map_err(storage_error)?;
        }
        Ok((detected, hash))
    }
    .await;
    match result {
        Ok((detected, hash)) => {
            stored.push(Stored {
                key,
                uploaded: writer.is_some(),
                filename,
                declared,
                detected,
                size,
                hash,
            });
            Ok(())
        }
        Err(e) => {
            if let Some(w) = writer.as_mut() {
                abort_writer(w).await;
            }
            Err(e)
        }
    }
}

async fn abort_writer(w: &mut ObjectWriter<'_>) {
    if let Err(e) = w.abort().await {
        log::event(
            COMPONENT,
            "storage_cleanup_failed",
            json!({ "key": w.key().as_str(), "cause": e.to_string() }),
        );
    }
}

/// Deletes objects this request stored (best effort; a failure is logged for the sweeper).
async fn delete_objects<'a>(cfg: &Config, keys: impl Iterator<Item = &'a ObjectKey>) {
    for key in keys {
        if let Err(e) = cfg.storage.delete_object(key).await {
            log::event(
                COMPONENT,
                "storage_cleanup_failed",
                json!({ "key": key.as_str(), "cause": e.to_string() }),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Filenames of raw bodies.

/// The filename of a raw upload: `Content-Disposition` (`filename*` preferred) or `?filename=`.
pub(crate) fn raw_filename(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(cd) = header_str(headers, CONTENT_DISPOSITION)
        && let Some(name) = disposition_filename(cd)
    {
        return Some(name);
    }
    let query = query?;
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("filename=") {
            let v = v.replace('+', " ");
            return percent_encoding::percent_decode_str(&v)
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned());
        }
    }
    None
}

/// `filename*` (RFC 8187 `UTF-8''pct`) when present and valid, else `filename` (token or quoted).
pub(crate) fn disposition_filename(cd: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for param in split_params(cd).into_iter().skip(1) {
        let Some((k, v)) = param.split_once('=') else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim();
        if k == "filename*" {
            if let Some((charset, rest)) = v.split_once('\'')
                && let Some((_lang, pct)) = rest.split_once('\'')
                && charset.eq_ignore_ascii_case("utf-8")
                && let Ok(s) = percent_encoding::percent_decode_str(pct).decode_utf8()
            {
                extended = Some(s.into_owned());
            }
        } else if k == "filename" {
            plain = Some(unquote(v));
        }
    }
    extended.or(plain)
}

fn split_params(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => {
                cur.push(c);
                escaped = true;
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::new();
            let mut esc = false;
            for c in inner.chars() {
                if esc {
                    out.push(c);
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => v.to_owned(),
    }
}

fn essence(ct: Option<&str>) -> Option<String> {
    let ct = ct?.split(';').next()?.trim().to_ascii_lowercase();
    (!ct.is_empty()).then_some(ct)
}

// ---------------------------------------------------------------------------------------------
// The route.

pub(crate) async fn upload(
    req: Request,
    cfg: &Config,
    ctx: &AuthContext,
    message: Uuid,
    rid: &RequestId,
    log: &mut RequestLog,
) -> Result<Reply, ApiError> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let expected = cfg
        .size_limit
        .check_content_length(header_str(headers, CONTENT_LENGTH))
        .map_err(policy)?;
    let digest = match header_str(headers, "repr-digest") {
        Some(h) => ReprDigest::parse(h).map_err(policy)?,
        None => None,
    };
    let content_type = header_str(headers, CONTENT_TYPE).map(str::to_owned);
    let multipart = essence(content_type.as_deref()).as_deref() == Some("multipart/form-data");
    let raw_name = if multipart {
        None
    } else {
        let raw = raw_filename(headers, parts.uri.query()).ok_or_else(|| {
            policy(PolicyError::InvalidFilename(
                "Give the filename in Content-Disposition or ?filename=.",
            ))
        })?;
        Some(SafeFilename::parse(&raw, &cfg.extensions).map_err(policy)?)
    };

    let db = Db::open(&cfg.database_url).await?;
    let tenant = *ctx.tenant.as_uuid();
    // Content this same user already uploaded need not be stored again (raw bodies with a digest).
    let mut store = true;
    {
        let tx = db.begin_for_tenant(&ctx.tenant).await?;
        records::check_message(&tx, ctx, message).await?;
        if let (false, Some(d)) = (multipart, &digest) {
            let rows = tx
                .query(
                    "SELECT 1 FROM attachment_blobs b WHERE b.content_sha256 = $1 AND EXISTS \
                     (SELECT 1 FROM email_attachments a WHERE a.blob_id = b.id \
                      AND a.uploader_user_id = $2)",
                    vec![
                        ParameterValue::Str(d.as_hash().hex()),
                        ParameterValue::Uuid(ctx.user.to_string()),
                    ],
                )
                .await?;
            store = rows.is_empty();
        }
        tx.commit().await?;
    }

    let state = Arc::new(Mutex::new(BodyState {
        seen: 0,
        limit: cfg.size_limit.max(),
        hasher: multipart.then(Sha256::new),
        failure: None,
    }));
    let counted = CountedBody {
        inner: Box::pin(crate::body::chunks(body)),
        state: state.clone(),
    };
    let mut stored: Vec<Stored> = Vec::new();
    let ingested = match raw_name {
        Some(name) => {
            let declared = essence(content_type.as_deref());
            let mut src = RawSource {
                body: counted,
                expected,
            };
            ingest_file(&mut src, cfg, tenant, name, declared, store, &mut stored).await
        }
        None => {
            ingest_multipart(
                counted,
                &state,
                content_type.as_deref(),
                expected,
                cfg,
                tenant,
                &mut stored,
            )
            .await
        }
    };
    let checked = ingested.and_then(|()| {
        let Some(d) = digest else { return Ok(()) };
        let hash = if multipart {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            ContentHash::finish(st.hasher.take().unwrap_or_default())
        } else {
            stored
                .first()
                .map(|s| s.hash)
                .unwrap_or(ContentHash::of(b""))
        };
        d.verify(&hash).map_err(policy)
    });
    if let Err(e) = checked {
        log.reason = Some(e.problem().code().as_str().to_owned());
        delete_objects(cfg, stored.iter().filter(|s| s.uploaded).map(|s| &s.key)).await;
        return Err(e);
    }

    let recorded = record(&db, cfg, ctx, message, &stored, rid, headers).await;
    match recorded {
        Err(e) => {
            delete_objects(cfg, stored.iter().filter(|s| s.uploaded).map(|s| &s.key)).await;
            Err(e)
        }
        Ok(list) => {
            // Deduplicated content: the copy this request uploaded is not referenced by any row.
            let dups = stored
                .iter()
                .zip(&list)
                .filter(|(s, a)| s.uploaded && a.is_deduplicated)
                .map(|(s, _)| &s.key);
            delete_objects(cfg, dups).await;
            if multipart {
                Ok(response::json(
                    StatusCode::CREATED,
                    &json!({ "attachments": list }),
                    rid,
                ))
            } else {
                let a = list
                    .into_iter()
                    .next()
                    .ok_or_else(|| ApiError::internal("no attachment recorded"))?;
                let mut res = response::json(StatusCode::CREATED, &a, rid);
                if let Ok(v) = http::HeaderValue::from_str(&format!("/api/v1/attachments/{}", a.id))
                {
                    res.headers_mut().insert(http::header::LOCATION, v);
                }
                Ok(res)
            }
        }
    }
}

async fn ingest_multipart<S, E>(
    counted: CountedBody<S>,
    state: &Arc<Mutex<BodyState>>,
    content_type: Option<&str>,
    content_length: Option<u64>,
    cfg: &Config,
    tenant: Uuid,
    stored: &mut Vec<Stored>,
) -> Result<(), ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Debug,
{
    let boundary = content_type
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| {
            ApiError::new(Problem::bad_request(
                "multipart/form-data needs a boundary.",
            ))
        })?;
    let mut mp = multer::Multipart::new(counted, boundary);
    let result: Result<(), ApiError> = async {
        loop {
            let next = mp.next_field().await.map_err(|e| body_failure(state, e))?;
            let Some(mut field) = next else { break };
            let Some(raw) = field.file_name().map(str::to_owned) else {
                // A plain form field: ignored (read and dropped).
                while field
                    .chunk()
                    .await
                    .map_err(|e| body_failure(state, e))?
                    .is_some()
                {}
                continue;
            };
            let name = SafeFilename::parse(&raw, &cfg.extensions).map_err(policy)?;
            let declared = essence(field.content_type().map(|m| m.essence_str()));
            let mut src = FieldSource {
                field: &mut field,
                state: state.clone(),
                content_length,
            };
            ingest_file(&mut src, cfg, tenant, name, declared, true, stored).await?;
        }
        if stored.is_empty() {
            return Err(ApiError::new(Problem::bad_request(
                "The multipart/form-data body has no file part.",
            )));
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        // All or nothing: the parts already stored go too.
        delete_objects(cfg, stored.iter().filter(|s| s.uploaded).map(|s| &s.key)).await;
        stored.clear();
    }
    result
}

// ---------------------------------------------------------------------------------------------
// The transaction.

const UPSERT_BLOB: &str = "INSERT INTO attachment_blobs \
     (tenant_id, content_sha256, size_bytes, storage_key, sniffed_mime) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (tenant_id, content_sha256) DO UPDATE SET ref_count = attachment_blobs.ref_count + 1 \
     RETURNING id, storage_key, scan_status, (xmax = 0) AS inserted";

async fn record(
    db: &Db,
    cfg: &Config,
    ctx: &AuthContext,
    message: Uuid,
    stored: &[Stored],
    rid: &RequestId,
    headers: &HeaderMap,
) -> Result<Vec<Attachment>, ApiError> {
    let tenant = ParameterValue::Uuid(ctx.tenant.to_string());
    let tx = db.begin_for_tenant(&ctx.tenant).await?;
    let mut out = Vec::with_capacity(stored.len());
    for s in stored {
        let size = i64::try_from(s.size).map_err(|_| ApiError::internal("size overflow"))?;
        let rows = tx
            .query(
                UPSERT_BLOB,
                vec![
                    tenant.clone(),
                    ParameterValue::Str(s.hash.hex()),
                    ParameterValue::Int64(size),
                    ParameterValue::Str(s.key.as_str().to_owned()),
                    s.detected
                        .sniffed
                        .clone()
                        .map_or(ParameterValue::DbNull, ParameterValue::Str),
                ],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| ApiError::internal("blob upsert returned nothing"))?;
        let blob_id = cell::text(row, 0).ok_or_else(|| ApiError::internal("blob id"))?;
        let scan_status = cell::text(row, 2).unwrap_or_else(|| "pending".into());
        let inserted = cell::boolean(row, 3).ok_or_else(|| ApiError::internal("inserted"))?;
        if inserted && !s.uploaded {
            // The user's content vanished between the check and now: nothing is stored for it.
            tx.rollback().await;
            return Err(ApiError::unavailable(
                "deduplicated content disappeared; retry",
            ));
        }
        if inserted {
            tx.execute(
                "INSERT INTO scan_jobs (tenant_id, blob_id) VALUES ($1, $2)",
                vec![tenant.clone(), ParameterValue::Uuid(blob_id.clone())],
            )
            .await?;
        }
        let rows = tx
            .query(
                "INSERT INTO email_attachments (tenant_id, message_id, blob_id, uploader_user_id, \
                 filename, declared_mime, detected_mime, size_bytes) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id, created_at, url_generation",
                vec![
                    tenant.clone(),
                    ParameterValue::Uuid(message.to_string()),
                    ParameterValue::Uuid(blob_id.clone()),
                    ParameterValue::Uuid(ctx.user.to_string()),
                    ParameterValue::Str(s.filename.as_str().to_owned()),
                    s.declared
                        .clone()
                        .map_or(ParameterValue::DbNull, ParameterValue::Str),
                    ParameterValue::Str(s.detected.mime.clone()),
                    ParameterValue::Int64(size),
                ],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| ApiError::internal("attachment insert returned nothing"))?;
        let id = cell::text(row, 0).ok_or_else(|| ApiError::internal("attachment id"))?;
        let uuid = Uuid::try_parse(&id).map_err(|_| ApiError::internal("attachment id"))?;
        let created_at = cell::int(row, 1).ok_or_else(|| ApiError::internal("created_at"))?;
        let generation = cell::int(row, 2).ok_or_else(|| ApiError::internal("generation"))?;
        tx.audit(&AuditEntry {
            tenant: &ctx.tenant,
            user: Some(&ctx.user),
            action: "attachment.upload",
            resource_type: Some("attachment"),
            resource_id: Some(id.clone()),
            request_id: rid.as_str(),
            client_addr: edge::client::client_ip(headers).map(|ip| ip.to_string()),
            details: json!({
                "messageId": message.to_string(),
                "size": size,
                "contentHash": s.hash.hex(),
                "mimeType": s.detected.mime,
                "deduplicated": !inserted,
            }),
        })
        .await?;
        let (download_url, download_url_expires_at) =
            view::download_url(cfg, &ctx.tenant, uuid, generation)?;
        out.push(Attachment {
            id,
            message_id: message.to_string(),
            filename: s.filename.as_str().to_owned(),
            mime_type: s.detected.mime.clone(),
            size,
            content_hash: s.hash.hex(),
            virus_scan_status: scan_status,
            is_deduplicated: !inserted,
            created_at,
            download_url,
            download_url_expires_at,
        });
    }
    tx.commit().await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_filenames() {
        assert_eq!(
            disposition_filename(
                "attachment; filename=\"resume.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"
            )
            .as_deref(),
            Some("résumé.pdf")
        );
        assert_eq!(
            disposition_filename("attachment; filename=plain.txt").as_deref(),
            Some("plain.txt")
        );
        assert_eq!(
            disposition_filename("attachment; filename=\"a;b \\\"q\\\".txt\"").as_deref(),
            Some("a;b \"q\".txt")
        );
        assert_eq!(disposition_filename("attachment").as_deref(), None);
        // A broken filename* falls back to filename.
        assert_eq!(
            disposition_filename("attachment; filename*=latin1''x; filename=y.txt").as_deref(),
            Some("y.txt")
        );
        let mut h = HeaderMap::new();
        assert_eq!(
            raw_filename(&h, Some("a=1&filename=r%C3%A9s+1.pdf")).as_deref(),
            Some("rés 1.pdf")
        );
        h.insert(
            CONTENT_DISPOSITION,
            "attachment; filename=x.txt".parse().unwrap(),
        );
        assert_eq!(
            raw_filename(&h, Some("filename=y.txt")).as_deref(),
            Some("x.txt")
        );
        assert_eq!(
            essence(Some("Text/Plain; charset=utf-8")).as_deref(),
            Some("text/plain")
        );
    }
}
