//! The worker's storage requests, signed by the `storage` crate's one SigV4 signer and sent with
//! reqwest: GetObject as a stream (scans, verifications), DeleteObject (unused objects of direct
//! uploads, orphans, purged content) and AbortMultipartUpload (the janitor's expired sessions), and for
//! reconcile ListObjectsV2, ListMultipartUploads (one page each) and HeadObject. Errors are log texts
//! (status, S3 error code); they never carry credentials or signatures.
//!
//! Every request here is idempotent, so one that meets a passing failure (no answer, or `500`,
//! `502`, `503` — S3's `SlowDown` —, `504`) is sent again after a short backoff, up to
//! [`ATTEMPTS`] times in all: a store that sheds load for a moment no longer ends a reconcile run
//! or fails a scan job that would have succeeded a second later.

use std::time::{Duration, SystemTime};

use storage::request::{S3Request, Signer};
use storage::response::{ObjectsPage, UploadsPage};
use storage::{ObjectKey, StorageConfig, StorageError};

/// The bucket, as the worker uses it.
pub struct Storage {
    cfg: StorageConfig,
    http: reqwest::Client,
}

/// What AbortMultipartUpload found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aborted {
    /// The upload was open and is now aborted.
    Aborted,
    /// No such upload (aborted or completed before): nothing left to abort.
    NoSuchUpload,
}

/// An object opened for reading: its length as storage announced it, and the body.
pub struct Object {
    /// `Content-Length` of the answer.
    pub length: u64,
    /// The body, read chunk by chunk ([`crate::clamd::ChunkSource`]).
    pub body: reqwest::Response,
}

/// Sends of one request at most (the first and two retries).
pub const ATTEMPTS: u32 = 3;
/// The first retry's delay; each next one doubles, at most [`RETRY_MAX`].
const RETRY_BASE: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Whether an answer's status says "try again shortly".
fn passing(status: u16) -> bool {
    matches!(status, 500 | 502 | 503 | 504)
}

/// Longest error document read from an answer (S3 error XML is a few hundred bytes).
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Longest listing page read (1,000 entries of at most 1 KiB keys, with their XML).
const MAX_LIST_BODY: usize = 4 * 1024 * 1024;

impl Storage {
    /// A client for `cfg`.
    pub fn new(cfg: StorageConfig) -> anyhow::Result<Self> {
        // A fresh connection per request: on a reused keep-alive connection a server that writes
        // headers and body separately without TCP_NODELAY (Garage does) meets the client's delayed
        // ACK, and every small object costs 40 ms instead of 2 (measured: 4 KiB job 54 ms -> a few
        // ms). A new loopback or private-network connection per object is cheap next to a scan.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "attachments-scan-worker/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        Ok(Self { cfg, http })
    }

    /// The configuration (bucket and endpoint for the start-up log line).
    pub fn config(&self) -> &StorageConfig {
        &self.cfg
    }

    fn key(stored: &str) -> Result<ObjectKey, String> {
        ObjectKey::from_stored(stored).map_err(|e| format!("storage key: {e}"))
    }

    /// Sends `req`, again after a passing failure (see the module docs); the last outcome.
    async fn send(&self, req: S3Request, what: &str) -> Result<reqwest::Response, String> {
        let mut backoff = crate::backoff::Backoff::new(RETRY_BASE, RETRY_MAX);
        loop {
            let outcome = self.send_once(&req, what).await;
            let again = match &outcome {
                Ok(res) => passing(res.status().as_u16()),
                Err(_) => true,
            };
            if !again || backoff.attempts() + 1 >= ATTEMPTS {
                return outcome;
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    async fn send_once(&self, req: &S3Request, what: &str) -> Result<reqwest::Response, String> {
        let method = reqwest::Method::from_bytes(req.method.as_str().as_bytes())
            .map_err(|e| format!("{what}: method: {e}"))?;
        let mut rb = self.http.request(method.clone(), &req.url);
        for (n, v) in &req.headers {
            // reqwest frames the (empty) body itself; a GET carries no Content-Length.
            if n == "content-length" && method == reqwest::Method::GET {
                continue;
            }
            rb = rb.header(n, v);
        }
        rb.send()
            .await
            .map_err(|e| format!("storage {what}: {}", crate::worker::without_url(&e)))
    }

    /// Reads at most [`MAX_ERROR_BODY`] of an error answer and says what it means.
    async fn error(mut res: reqwest::Response) -> StorageError {
        let status = res.status().as_u16();
        let mut body = Vec::new();
        while body.len() < MAX_ERROR_BODY {
            match res.chunk().await {
                Ok(Some(c)) => {
                    body.extend_from_slice(&c[..c.len().min(MAX_ERROR_BODY - body.len())])
                }
                _ => break,
            }
        }
        storage::response::error_from(status, &body)
    }

    /// GetObject `key`, unread: `200` with a `Content-Length`, else why not.
    pub async fn get(&self, stored_key: &str) -> Result<Object, String> {
        let key = Self::key(stored_key)?;
        let req = Signer::new(&self.cfg)
            .get_object(&key, None, SystemTime::now())
            .map_err(|e| format!("signing GetObject: {e}"))?;
        let res = self.send(req, "GetObject").await?;
        if res.status().as_u16() != 200 {
            return Err(format!("storage GetObject: {}", Self::error(res).await));
        }
        let length = res
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or("storage GetObject answered without a Content-Length")?;
        Ok(Object { length, body: res })
    }

    /// GetObject `key` as a stream (the scan job's read: the length is the job's).
    pub async fn get_stream(&self, stored_key: &str) -> Result<reqwest::Response, String> {
        Ok(self.get(stored_key).await?.body)
    }

    /// DeleteObject `key`; an absent object counts as deleted (S3 answers `204` either way; some
    /// stores answer `404`).
    pub async fn delete(&self, stored_key: &str) -> Result<(), String> {
        let key = Self::key(stored_key)?;
        let req = Signer::new(&self.cfg)
            .delete_object(&key, SystemTime::now())
            .map_err(|e| format!("signing DeleteObject: {e}"))?;
        let res = self.send(req, "DeleteObject").await?;
        if res.status().is_success() {
            return Ok(());
        }
        match Self::error(res).await {
            StorageError::NotFound { .. } => Ok(()),
            e => Err(format!("storage DeleteObject: {e}")),
        }
    }

    /// Whether the bucket answers with these credentials: a GetObject of a key nobody writes, which
    /// must answer `404`. The purge asks before it deletes any row, so an unreachable store stops it
    /// before anything changed.
    pub async fn reachable(&self) -> Result<(), String> {
        let key = Self::key("purge-probe/absent")?;
        let req = Signer::new(&self.cfg)
            .get_object(&key, None, SystemTime::now())
            .map_err(|e| format!("signing GetObject: {e}"))?;
        let res = self.send(req, "GetObject").await?;
        if res.status().is_success() {
            return Ok(());
        }
        match Self::error(res).await {
            StorageError::NotFound { .. } => Ok(()),
            e => Err(format!("storage GetObject: {e}")),
        }
    }

    /// AbortMultipartUpload `upload_id` of `key`.
    pub async fn abort_multipart(
        &self,
        stored_key: &str,
        upload_id: &str,
    ) -> Result<Aborted, String> {
        let key = Self::key(stored_key)?;
        let req = Signer::new(&self.cfg)
            .abort_multipart_upload(&key, upload_id, SystemTime::now())
            .map_err(|e| format!("signing AbortMultipartUpload: {e}"))?;
        let res = self.send(req, "AbortMultipartUpload").await?;
        if res.status().is_success() {
            return Ok(Aborted::Aborted);
        }
        match Self::error(res).await {
            StorageError::NotFound { .. } => Ok(Aborted::NoSuchUpload),
            e => Err(format!("storage AbortMultipartUpload: {e}")),
        }
    }

    /// Reads a whole (listing) answer, at most `cap` bytes.
    async fn read_all(
        mut res: reqwest::Response,
        cap: usize,
        what: &str,
    ) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        while let Some(c) = res
            .chunk()
            .await
            .map_err(|e| format!("storage {what}: {}", crate::worker::without_url(&e)))?
        {
            if body.len() + c.len() > cap {
                return Err(format!("storage {what}: answer over {cap} bytes"));
            }
            body.extend_from_slice(&c);
        }
        Ok(body)
    }

    /// One page (up to 1,000 objects) of ListObjectsV2 under `prefix`.
    pub async fn list_objects(
        &self,
        prefix: &str,
        continuation: Option<&str>,
    ) -> Result<ObjectsPage, String> {
        let req = Signer::new(&self.cfg)
            .list_objects_v2(prefix, continuation, SystemTime::now())
            .map_err(|e| format!("signing ListObjectsV2: {e}"))?;
        let res = self.send(req, "ListObjectsV2").await?;
        let status = res.status().as_u16();
        let body = Self::read_all(res, MAX_LIST_BODY, "ListObjectsV2").await?;
        storage::response::objects_page(status, &body)
            .map_err(|e| format!("storage ListObjectsV2: {e}"))
    }

    /// One page (up to 1,000 uploads) of ListMultipartUploads under `prefix`.
    pub async fn list_uploads(
        &self,
        prefix: &str,
        after: Option<(&str, &str)>,
    ) -> Result<UploadsPage, String> {
        let req = Signer::new(&self.cfg)
            .list_multipart_uploads_after(prefix, after, SystemTime::now())
            .map_err(|e| format!("signing ListMultipartUploads: {e}"))?;
        let res = self.send(req, "ListMultipartUploads").await?;
        let status = res.status().as_u16();
        let body = Self::read_all(res, MAX_LIST_BODY, "ListMultipartUploads").await?;
        storage::response::uploads_page(status, &body)
            .map_err(|e| format!("storage ListMultipartUploads: {e}"))
    }

    /// Whether an object is at `key` (HeadObject).
    pub async fn exists(&self, stored_key: &str) -> Result<bool, String> {
        let key = Self::key(stored_key)?;
        let req = Signer::new(&self.cfg)
            .head_object(&key, SystemTime::now())
            .map_err(|e| format!("signing HeadObject: {e}"))?;
        let res = self.send(req, "HeadObject").await?;
        match res.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            s => Err(format!(
                "storage HeadObject: {}",
                storage::response::error_from(s, b"")
            )),
        }
    }
}
