//! Sending the signed requests from a Spin component (`spin_sdk::http::send`, outbound HTTP to
//! the configured endpoint; the component must allow it in `allowed_outbound_hosts`).
//!
//! [`ObjectWriter`] is the upload path: memory stays bounded by a few part buffers whatever the
//! object size. Content that ends before the first part fills goes up as one `PutObject` (with its
//! payload hash signed); anything larger becomes a multipart upload with fixed-size parts, so it
//! works on AWS S3 (which refuses an unknown-length PutObject) as well as on Garage. Parts upload
//! while the next one fills (at most [`PARTS_IN_FLIGHT`] at once), each checked by storage
//! against its CRC32 ([`Body::Crc32`]) instead of a second SHA-256 pass over the bytes.
//! Whoever owns a writer must end it with [`ObjectWriter::finish`] or [`ObjectWriter::abort`].
//!
//! Every request, its answer read whole (or, for [`Client::get_object`], its status and headers),
//! has the client's outbound deadline ([`Client::with_timeout`], `outbound_timeout_secs`): past it
//! the request is dropped and the call fails with [`StorageError::Timeout`]. What storage may still
//! hold after a failed abort or delete is a [`Leftover`] the caller can remove later
//! ([`Client::remove`]).

use std::time::SystemTime;

use bytes::Bytes;
use deadline::{OutboundTimeout, with_deadline};
use futures::channel::oneshot;
use http_body_util::{Empty, Full};
use spin_sdk::http::body::IncomingBodyExt;

use crate::budget::{BufferBudget, BufferPermit};
use crate::parts::{CompletedParts, PartBuffer, Window};
use crate::request::{Body, ByteRange, Signer};
use crate::response;
use crate::{MIN_PART_SIZE, ObjectKey, S3Request, StorageConfig, StorageError};

/// The answer to a request: status, headers, whole (small) body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body (only read for small answers: XML documents, errors).
    pub body: Bytes,
}

/// A storage client for one configuration.
#[derive(Debug, Clone)]
pub struct Client {
    cfg: StorageConfig,
    timeout: OutboundTimeout,
}

/// What storage may still hold under a key whose cleanup failed: an unfinished multipart upload,
/// the object itself, or both (a `CompleteMultipartUpload` or `PutObject` without an answer may
/// have stored it all the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// The object's key.
    pub key: ObjectKey,
    /// A multipart upload to abort.
    pub upload_id: Option<String>,
    /// Whether an object may exist at `key`.
    pub object: bool,
}

/// An [`ObjectWriter::abort`] that could not remove everything: why, and what is left.
#[derive(Debug, Clone)]
pub struct AbortFailed {
    /// The first failing step's error.
    pub error: StorageError,
    /// What storage may still hold.
    pub leftover: Leftover,
}

fn transport(e: impl std::fmt::Display) -> StorageError {
    StorageError::Transport(e.to_string())
}

impl Client {
    /// A client for `cfg`, with the default outbound deadline.
    pub fn new(cfg: StorageConfig) -> Self {
        Self {
            cfg,
            timeout: OutboundTimeout::DEFAULT,
        }
    }

    /// The deadline of each request (sending it and reading its answer).
    #[must_use]
    pub fn with_timeout(mut self, timeout: OutboundTimeout) -> Self {
        self.timeout = timeout;
        self
    }

    fn timed_out(&self, op: &str, e: deadline::Elapsed) -> StorageError {
        StorageError::Timeout(format!("{op}: {e}"))
    }

    fn signer(&self) -> Signer<'_> {
        Signer::new(&self.cfg)
    }

    /// Sends a request whose body (if any) is in the request itself; reads the whole answer, all
    /// within the deadline.
    async fn send(&self, req: S3Request) -> Result<Answer, StorageError> {
        // For the log: which operation failed (method and query, never the signature).
        let op = format!(
            "{} ?{}",
            req.method,
            req.url.split_once('?').map_or("", |(_, q)| q)
        );
        with_deadline(self.timeout, self.send_now(req, &op))
            .await
            .map_err(|e| self.timed_out(&op, e))?
    }

    async fn send_now(&self, req: S3Request, op: &str) -> Result<Answer, StorageError> {
        match req.body.clone() {
            Body::Bytes(b) | Body::Hashed { bytes: b, .. } | Body::Crc32 { bytes: b, .. } => {
                Self::exchange(req.into_http(Full::new(b))?, op).await
            }
            _ => Self::exchange(req.into_http(Empty::<Bytes>::new())?, op).await,
        }
    }

    /// Sends `r` (its body written by a task of its own as the host takes it) and reads the whole
    /// answer; no deadline of its own.
    async fn exchange<B>(r: http::Request<B>, op: &str) -> Result<Answer, StorageError>
    where
        B: http_body::Body + std::any::Any,
        B::Data: Into<Vec<u8>>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        let res = PollAgain::new(spin_sdk::http::send(r))
            .await
            .map_err(|e| match e {
                spin_sdk::wasip3::http::types::ErrorCode::HttpRequestDenied => {
                    StorageError::Denied(op.to_owned())
                }
                e => transport(format!("{op}: {e}")),
            })?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res
            .into_body()
            .bytes()
            .await
            .map_err(|e| transport(format!("{op}: reading answer: {e:?}")))?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// `PutObject` of a body in memory ([`Body::Bytes`] or [`Body::Hashed`]); returns the ETag.
    async fn put_body(
        &self,
        key: &ObjectKey,
        content_type: Option<&str>,
        body: Body,
    ) -> Result<String, StorageError> {
        let req = self
            .signer()
            .put_object(key, content_type, body, SystemTime::now())?;
        let a = self.send(req).await?;
        response::check(a.status, &a.body)?;
        response::etag(a.headers.get("etag").and_then(|v| v.to_str().ok()))
    }

    /// `UploadPart` of a body in memory ([`Body::Crc32`] for an upload begun with
    /// [`Client::create_multipart_upload_crc32`]); returns the part's ETag.
    async fn upload_part_body(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: Body,
    ) -> Result<String, StorageError> {
        let req =
            self.signer()
                .upload_part(key, upload_id, part_number, body, SystemTime::now())?;
        let a = self.send(req).await?;
        response::check(a.status, &a.body)?;
        response::etag(a.headers.get("etag").and_then(|v| v.to_str().ok()))
    }

    /// `CreateMultipartUpload` of parts checked by CRC32; returns the upload id.
    async fn create_multipart_upload_crc32(
        &self,
        key: &ObjectKey,
        content_type: Option<&str>,
    ) -> Result<String, StorageError> {
        let req =
            self.signer()
                .create_multipart_upload_crc32(key, content_type, SystemTime::now())?;
        let a = self.send(req).await?;
        response::upload_id(a.status, &a.body)
    }

    /// `CompleteMultipartUpload` of parts checked by CRC32 (number, ETag, CRC32 in part order).
    async fn complete_multipart_upload_crc32(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[(u32, String, u32)],
    ) -> Result<(), StorageError> {
        let req = self.signer().complete_multipart_upload_crc32(
            key,
            upload_id,
            parts,
            SystemTime::now(),
        )?;
        let a = self.send(req).await?;
        response::complete(a.status, &a.body)
    }

    /// `CreateMultipartUpload` of an upload whose parts the client sends itself, through
    /// [`Client::presigned_part_url`]s; returns the upload id.
    pub async fn begin_direct_upload(
        &self,
        key: &ObjectKey,
        content_type: Option<&str>,
    ) -> Result<String, StorageError> {
        let req = self
            .signer()
            .create_multipart_upload(key, content_type, SystemTime::now())?;
        let a = self.send(req).await?;
        response::upload_id(a.status, &a.body)
    }

    /// A URL that lets its holder `PUT` part `part_number` (exactly `length` bytes) of the direct
    /// upload `upload_id` of `key`, for `ttl`.
    pub fn presigned_part_url(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        length: u64,
        ttl: std::time::Duration,
    ) -> Result<String, StorageError> {
        self.signer().presigned_upload_part(
            key,
            upload_id,
            part_number,
            length,
            ttl,
            SystemTime::now(),
        )
    }

    /// `CompleteMultipartUpload` of a direct upload: the parts' numbers and ETags as the client
    /// reported them, in order. Storage checks each ETag against the part it holds
    /// ([`StorageError::Service`] with code `InvalidPart` / `InvalidPartOrder` otherwise);
    /// [`StorageError::NotFound`] (`NoSuchUpload`) when the upload is completed or aborted already.
    pub async fn complete_direct_upload(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), StorageError> {
        let req =
            self.signer()
                .complete_multipart_upload(key, upload_id, parts, SystemTime::now())?;
        let a = self.send(req).await?;
        response::complete(a.status, &a.body)
    }

    /// `UploadPart` of a direct upload's part that came through the component (a tus chunk),
    /// signed with the SHA-256 its caller already computed: storage refuses bytes that do not
    /// match it. Returns the part's ETag; [`StorageError::NotFound`] when the upload is completed
    /// or aborted.
    pub async fn upload_part_hashed(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        bytes: Bytes,
        sha256: [u8; 32],
    ) -> Result<String, StorageError> {
        self.upload_part_body(key, upload_id, part_number, Body::Hashed { bytes, sha256 })
            .await
    }

    /// `UploadPart` of exactly `length` bytes that `body` yields as they arrive (a tus chunk
    /// passed on while the client sends it), signed as `UNSIGNED-PAYLOAD`: nothing is buffered and
    /// the part is stored only if the body ends after exactly `length` bytes (storage drops a
    /// request cut short; a body that yields an error cuts it). Integrity rests on the whole
    /// upload's SHA-256, which the caller computes as the bytes pass and the scan worker checks
    /// against the completed object. Returns the part's ETag; [`StorageError::NotFound`] when the
    /// upload is completed or aborted.
    ///
    /// No deadline of its own: how long the body takes is the client's pace, which the caller
    /// bounds; it should bound the answer after the body's end with the client's deadline.
    pub async fn upload_part_streamed<B>(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        length: u64,
        body: B,
    ) -> Result<String, StorageError>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Into<Vec<u8>>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        let req = self.signer().upload_part(
            key,
            upload_id,
            part_number,
            Body::Stream {
                content_length: Some(length),
            },
            SystemTime::now(),
        )?;
        let op = format!("PUT ?partNumber={part_number} (streamed)");
        let a = Self::exchange(req.into_http(body)?, &op).await?;
        response::check(a.status, &a.body)?;
        response::etag(a.headers.get("etag").and_then(|v| v.to_str().ok()))
    }

    /// The outbound deadline of each request.
    pub fn timeout(&self) -> OutboundTimeout {
        self.timeout
    }

    /// The size of the object at `key`, `None` when there is none (`HeadObject`).
    pub async fn object_size(&self, key: &ObjectKey) -> Result<Option<u64>, StorageError> {
        let req = self.signer().head_object(key, SystemTime::now())?;
        let a = self.send(req).await?;
        match response::check(a.status, &a.body) {
            Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        a.headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .map(Some)
            .ok_or_else(|| StorageError::Protocol("HEAD answered without Content-Length".into()))
    }

    /// `AbortMultipartUpload` (a vanished upload counts as aborted).
    pub async fn abort_multipart_upload(
        &self,
        key: &ObjectKey,
        upload_id: &str,
    ) -> Result<(), StorageError> {
        let req = self
            .signer()
            .abort_multipart_upload(key, upload_id, SystemTime::now())?;
        let a = self.send(req).await?;
        match response::check(a.status, &a.body) {
            Err(StorageError::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    /// `CopyObject` of `from` to `to` within the bucket (e.g. into the quarantine prefix):
    /// [`StorageError::NotFound`] when `from` is gone. Like a multipart completion, S3 may answer
    /// `200` with an `<Error>` document, which is an error too.
    pub async fn copy_object(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), StorageError> {
        let req = self.signer().copy_object(from, to, SystemTime::now())?;
        let a = self.send(req).await?;
        response::complete(a.status, &a.body)
    }

    /// `DeleteObject` (absent counts as deleted).
    pub async fn delete_object(&self, key: &ObjectKey) -> Result<(), StorageError> {
        let req = self.signer().delete_object(key, SystemTime::now())?;
        let a = self.send(req).await?;
        match response::check(a.status, &a.body) {
            Err(StorageError::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    /// `GetObject` (optionally a range): the raw streaming response, for the caller to check the
    /// status of and stream on. The deadline covers the answer's status and headers; the body
    /// streams on at the pace the client reads it.
    pub async fn get_object(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<spin_sdk::http::Response, StorageError> {
        let req = self.signer().get_object(key, range, SystemTime::now())?;
        let r = req.into_http(Empty::<Bytes>::new())?;
        with_deadline(self.timeout, spin_sdk::http::send(r))
            .await
            .map_err(|e| self.timed_out("GET", e))?
            .map_err(transport)
    }

    /// Removes what `left` names: aborts its multipart upload, deletes its object. On error, `left`
    /// still names what may remain.
    pub async fn remove(&self, left: &mut Leftover) -> Result<(), StorageError> {
        if let Some(id) = &left.upload_id {
            self.abort_multipart_upload(&left.key, id).await?;
            left.upload_id = None;
        }
        if left.object {
            self.delete_object(&left.key).await?;
            left.object = false;
        }
        Ok(())
    }

    /// A writer of a new object at `key`, with parts of `part_size` bytes (at least 5 MiB) and
    /// up to [`PARTS_IN_FLIGHT`] parts uploading while the next one fills.
    pub fn writer(
        &self,
        key: ObjectKey,
        content_type: Option<String>,
        part_size: usize,
    ) -> ObjectWriter<'_> {
        let part_size = part_size.max(MIN_PART_SIZE);
        ObjectWriter {
            client: self,
            key,
            content_type,
            buf: PartBuffer::new(part_size),
            upload_id: None,
            window: Window::new(PARTS_IN_FLIGHT),
            done: CompletedParts::new(),
            put_attempted: false,
            budget: None,
            filling: None,
        }
    }
}

/// How many parts of one object upload at once while the next part fills: the writer holds at
/// most this many part buffers plus the one filling.
pub const PARTS_IN_FLIGHT: usize = 2;

/// The answer to one part's upload (its CRC32, then the ETag from the task that sent it).
type PartResult = (u32, oneshot::Receiver<Result<String, StorageError>>);

/// Writes one object in bounded memory (see the module docs).
///
/// Parts upload concurrently with the caller: a full part is handed to a task of its own
/// (`spin_sdk::wasip3::spawn`, the component's executor) and the writer returns at once, so the
/// caller reads and hashes the next part while storage receives this one. At most
/// [`PARTS_IN_FLIGHT`] parts are in flight; the writer waits for the oldest before starting
/// another. A part that failed is reported by a later `write`, `finish`, or `abort`.
///
/// With [`ObjectWriter::with_budget`], each part buffer's bytes are reserved from a budget shared by
/// the instance's uploads before it is allocated, and given back once that part is stored; with
/// [`ObjectWriter::expect_at_most`], buffers are no larger than the bytes still to come.
pub struct ObjectWriter<'a> {
    client: &'a Client,
    key: ObjectKey,
    content_type: Option<String>,
    buf: PartBuffer,
    upload_id: Option<String>,
    window: Window<PartResult>,
    /// Each stored part's ETag and CRC32.
    done: CompletedParts<(String, u32)>,
    put_attempted: bool,
    budget: Option<BufferBudget>,
    /// The budget reservation of the part buffer being filled.
    filling: Option<BufferPermit>,
}

impl ObjectWriter<'_> {
    /// Reserves every part buffer from `budget` (see [`crate::budget`]).
    #[must_use]
    pub fn with_budget(mut self, budget: BufferBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// At most `bytes` will be written (e.g. the request's `Content-Length`): part buffers are
    /// allocated no larger than what is still to come.
    #[must_use]
    pub fn expect_at_most(mut self, bytes: Option<u64>) -> Self {
        if let Some(n) = bytes {
            self.buf.expect_at_most(n);
        }
        self
    }

    /// The object's key.
    pub fn key(&self) -> &ObjectKey {
        &self.key
    }

    /// Appends `chunk`; starts a part's upload whenever the buffer holds a full one.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.filling.is_none()
                && let Some(budget) = &self.budget
            {
                let bytes = self.buf.capacity_for(rest.len());
                self.filling = Some(reserve(budget, bytes).await?);
            }
            let took = self.buf.fill(rest);
            rest = &rest[took..];
            if self.buf.is_full() {
                self.start_part().await?;
            }
        }
        Ok(())
    }

    /// Awaits the oldest part in flight and records its ETag.
    async fn await_oldest(&mut self) -> Result<(), StorageError> {
        let Some((n, (crc32, rx))) = self.window.pop_oldest() else {
            return Ok(());
        };
        let etag = rx
            .await
            .map_err(|_| transport(format!("part {n}: upload task vanished")))??;
        self.done.insert(n, (etag, crc32))
    }

    /// Hands the buffered part to its own upload task (after making room in the window).
    async fn start_part(&mut self) -> Result<(), StorageError> {
        while !self.window.has_room() {
            self.await_oldest().await?;
        }
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self
                    .client
                    .create_multipart_upload_crc32(&self.key, self.content_type.as_deref())
                    .await?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let part = self.buf.take_part()?;
        let (n, crc32) = (part.number, part.crc32);
        let body = Body::Crc32 {
            bytes: Bytes::from(part.bytes),
            crc32,
        };
        let (tx, rx) = oneshot::channel();
        let client = self.client.clone();
        let key = self.key.clone();
        // The part's budget goes with its bytes and is given back once storage has them.
        let reserved = self.filling.take();
        spin_sdk::wasip3::spawn(async move {
            let r = client.upload_part_body(&key, &upload_id, n, body).await;
            drop(reserved);
            // The writer may be gone (its request failed): nothing else to do then.
            let _ = tx.send(r);
        });
        self.window.push(n, (crc32, rx))?;
        // Let the executor start the task now (see [`PollAgain`]).
        YieldOnce(false).await;
        Ok(())
    }

    /// Stores what was written: one `PutObject` when it fit in one part, else the last part and
    /// `CompleteMultipartUpload` once every part is stored. On error the caller must still
    /// [`ObjectWriter::abort`].
    ///
    /// `sha256`, when given, must be the SHA-256 of every byte written (the caller hashed them
    /// anyway): a single `PutObject` is then signed with it instead of hashing the bytes again.
    /// A wrong hash makes storage refuse the upload, never store other bytes.
    pub async fn finish(&mut self, sha256: Option<[u8; 32]>) -> Result<(), StorageError> {
        if self.upload_id.is_none() {
            self.put_attempted = true;
            let bytes = Bytes::from(self.buf.take_all());
            let body = match sha256 {
                Some(h) => Body::Hashed { bytes, sha256: h },
                None => Body::Bytes(bytes),
            };
            let stored = self
                .client
                .put_body(&self.key, self.content_type.as_deref(), body)
                .await
                .map(|_| ());
            self.filling = None;
            return stored;
        }
        if !self.buf.is_empty() || self.buf.parts_taken() == 0 {
            self.start_part().await?;
        }
        while !self.window.is_empty() {
            self.await_oldest().await?;
        }
        let id = self.upload_id.clone().unwrap_or_default();
        let parts: Vec<(u32, String, u32)> = self
            .done
            .contiguous(self.buf.parts_taken())?
            .iter()
            .map(|(n, (etag, crc))| (*n, etag.clone(), *crc))
            .collect();
        // From the moment the completion is sent the object may exist, even when its answer never
        // arrives (a timeout): a later failure must delete it.
        self.put_attempted = true;
        self.client
            .complete_multipart_upload_crc32(&self.key, &id, &parts)
            .await?;
        self.upload_id = None;
        Ok(())
    }

    /// Leaves nothing behind: [`ObjectWriter::settle`], then aborts the multipart upload and/or
    /// deletes the object. When a step fails (storage unreachable), the error and what storage may
    /// still hold are returned, for the caller to log and remove later ([`Client::remove`]).
    pub async fn abort(&mut self) -> Result<(), AbortFailed> {
        let mut leftover = self.settle().await;
        match self.client.remove(&mut leftover).await {
            Ok(()) => Ok(()),
            Err(error) => Err(AbortFailed { error, leftover }),
        }
    }

    /// Stops writing without removing anything yet: lets the parts in flight end (so none lands
    /// after a removal; each has its deadline) and returns what storage may hold, for the caller to
    /// remove ([`Client::remove`]) when storage can take it.
    pub async fn settle(&mut self) -> Leftover {
        self.buf.clear();
        self.filling = None;
        while let Some((_, (_, rx))) = self.window.pop_oldest() {
            let _ = rx.await;
        }
        Leftover {
            key: self.key.clone(),
            upload_id: self.upload_id.take(),
            object: std::mem::take(&mut self.put_attempted),
        }
    }
}

/// How long a writer waits for part-buffer budget before giving up with [`StorageError::Busy`]: a
/// request must not wait without end on uploads it does not control (each of which keeps its pace,
/// so the budget frees up, but possibly not soon).
pub const BUDGET_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reserves `bytes` from `budget`, waiting while it is spent, at most [`BUDGET_WAIT`]. The wait polls
/// on a host timer instead of parking on the budget's semaphore: bytes another request's upload gives
/// back would then have to wake this request's component-model task (Spin 4 runs several requests in
/// one instance), a cross-task wake-up. With wit-bindgen's `inter-task-wakeup`, one test run out of
/// some ten saw an upload hang until its client's 60 s timeout; the timer needs no such wake-up.
async fn reserve(budget: &BufferBudget, bytes: usize) -> Result<BufferPermit, StorageError> {
    let mut pause = std::time::Duration::from_millis(1);
    let mut waited = std::time::Duration::ZERO;
    loop {
        if let Some(permit) = budget.try_reserve(bytes) {
            return Ok(permit);
        }
        if waited >= BUDGET_WAIT {
            return Err(StorageError::Busy(format!(
                "no part-buffer budget for {bytes} bytes within {BUDGET_WAIT:?} ({} of {} free)",
                budget.available(),
                budget.total()
            )));
        }
        spin_sdk::time::sleep(pause).await;
        waited += pause;
        pause = (pause * 2).min(std::time::Duration::from_millis(16));
    }
}

/// Polls `fut`, and after its first `Pending` wakes the task once, so the executor polls again.
///
/// wit-bindgen's executor adds a task spawned during a poll only after that poll, and polls it
/// only at the next wake-up. `spin_sdk::http::send` spawns the task that writes the request body
/// and then awaits the response: when nothing else is pending, that task never runs and the host
/// waits for a body that never comes. Measured: a 1 GiB upload hung on its last part (the other
/// parts' answers had already arrived) until the request timed out. The same holds for the part
/// upload tasks the writer spawns. One extra wake-up per request costs one more poll.
struct PollAgain<F> {
    fut: std::pin::Pin<Box<F>>,
    woken: bool,
}

impl<F: std::future::Future> PollAgain<F> {
    fn new(fut: F) -> Self {
        Self {
            fut: Box::pin(fut),
            woken: false,
        }
    }
}

impl<F: std::future::Future> std::future::Future for PollAgain<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let polled = self.fut.as_mut().poll(cx);
        if polled.is_pending() && !self.woken {
            self.woken = true;
            cx.waker().wake_by_ref();
        }
        polled
    }
}

/// Returns `Pending` once, having woken its task: the executor polls again at once, and with it
/// any task spawned before (see [`PollAgain`]).
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}
