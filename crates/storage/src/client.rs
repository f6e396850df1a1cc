//! Sending the signed requests from a Spin component (`spin_sdk::http::send`, outbound HTTP to
//! the configured endpoint; the component must allow it in `allowed_outbound_hosts`).
//!
//! [`ObjectWriter`] is the upload path: memory stays bounded by one part buffer whatever the object
//! size. Content that ends before the first part fills goes up as one `PutObject` (with its
//! payload hash signed); anything larger becomes a multipart upload with fixed-size parts, so it
//! works on AWS S3 (which refuses an unknown-length PutObject) as well as on Garage.
//! Whoever owns a writer must end it with [`ObjectWriter::finish`] or [`ObjectWriter::abort`].

use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Empty, Full};
use spin_sdk::http::body::IncomingBodyExt;

use crate::request::{Body, ByteRange, Signer};
use crate::response::{self, ListPage};
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
}

fn transport(e: impl std::fmt::Display) -> StorageError {
    StorageError::Transport(e.to_string())
}

impl Client {
    /// A client for `cfg`.
    pub fn new(cfg: StorageConfig) -> Self {
        Self { cfg }
    }

    /// The configuration.
    pub fn config(&self) -> &StorageConfig {
        &self.cfg
    }

    fn signer(&self) -> Signer<'_> {
        Signer::new(&self.cfg)
    }

    /// Sends a request whose body (if any) is in the request itself; reads the whole answer.
    pub async fn send(&self, req: S3Request) -> Result<Answer, StorageError> {
        // For the log: which operation failed (method and query, never the signature).
        let op = format!(
            "{} ?{}",
            req.method,
            req.url.split_once('?').map_or("", |(_, q)| q)
        );
        let res = match req.body.clone() {
            Body::Bytes(b) => {
                let r = req.into_http(Full::new(b))?;
                spin_sdk::http::send(r).await
            }
            _ => {
                let r = req.into_http(Empty::<Bytes>::new())?;
                spin_sdk::http::send(r).await
            }
        }
        .map_err(|e| transport(format!("{op}: {e}")))?;
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

    /// `PutObject` of bytes already in memory (signed payload hash); returns the ETag.
    pub async fn put_bytes(
        &self,
        key: &ObjectKey,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<String, StorageError> {
        let req =
            self.signer()
                .put_object(key, content_type, Body::Bytes(bytes), SystemTime::now())?;
        let a = self.send(req).await?;
        response::check(a.status, &a.body)?;
        response::etag(a.headers.get("etag").and_then(|v| v.to_str().ok()))
    }

    /// `CreateMultipartUpload`; returns the upload id.
    pub async fn create_multipart_upload(
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

    /// `UploadPart` of bytes in memory; returns the part's ETag.
    pub async fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        bytes: Bytes,
    ) -> Result<String, StorageError> {
        let req = self.signer().upload_part(
            key,
            upload_id,
            part_number,
            Body::Bytes(bytes),
            SystemTime::now(),
        )?;
        let a = self.send(req).await?;
        response::check(a.status, &a.body)?;
        response::etag(a.headers.get("etag").and_then(|v| v.to_str().ok()))
    }

    /// `CompleteMultipartUpload`.
    pub async fn complete_multipart_upload(
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

    /// `DeleteObject` (absent counts as deleted).
    pub async fn delete_object(&self, key: &ObjectKey) -> Result<(), StorageError> {
        let req = self.signer().delete_object(key, SystemTime::now())?;
        let a = self.send(req).await?;
        match response::check(a.status, &a.body) {
            Err(StorageError::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    /// `HeadObject`: the object's size.
    pub async fn head_object(&self, key: &ObjectKey) -> Result<u64, StorageError> {
        let req = self.signer().head_object(key, SystemTime::now())?;
        let a = self.send(req).await?;
        response::check(a.status, &a.body)?;
        a.headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StorageError::Protocol("HEAD without Content-Length".into()))
    }

    /// `GetObject` (optionally a range): the raw streaming response, for the caller to check the
    /// status of and stream on.
    pub async fn get_object(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<spin_sdk::http::Response, StorageError> {
        let req = self.signer().get_object(key, range, SystemTime::now())?;
        let r = req.into_http(Empty::<Bytes>::new())?;
        spin_sdk::http::send(r).await.map_err(transport)
    }

    /// One page of `ListObjectsV2` under `prefix`.
    pub async fn list_page(
        &self,
        prefix: &str,
        continuation: Option<&str>,
    ) -> Result<ListPage, StorageError> {
        let req = self
            .signer()
            .list_objects_v2(prefix, continuation, SystemTime::now())?;
        let a = self.send(req).await?;
        response::list_page(a.status, &a.body)
    }

    /// A writer of a new object at `key`, with parts of `part_size` bytes (at least 5 MiB).
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
            part_size,
            buf: BytesMut::new(),
            upload_id: None,
            parts: Vec::new(),
            written: 0,
            put_attempted: false,
        }
    }
}

/// Writes one object in bounded memory (see the module docs).
pub struct ObjectWriter<'a> {
    client: &'a Client,
    key: ObjectKey,
    content_type: Option<String>,
    part_size: usize,
    buf: BytesMut,
    upload_id: Option<String>,
    parts: Vec<(u32, String)>,
    written: u64,
    put_attempted: bool,
}

impl ObjectWriter<'_> {
    /// The object's key.
    pub fn key(&self) -> &ObjectKey {
        &self.key
    }

    /// Bytes accepted so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends `chunk`; uploads a part whenever the buffer holds a full one.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        self.written += chunk.len() as u64;
        let mut rest = chunk;
        while !rest.is_empty() {
            let room = self.part_size - self.buf.len();
            let take = room.min(rest.len());
            if self.buf.is_empty() && self.buf.capacity() < self.part_size.min(1 << 20) {
                self.buf.reserve(self.part_size.min(1 << 20));
            }
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == self.part_size {
                self.flush_part().await?;
            }
        }
        Ok(())
    }

    async fn flush_part(&mut self) -> Result<(), StorageError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self
                    .client
                    .create_multipart_upload(&self.key, self.content_type.as_deref())
                    .await?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let n = u32::try_from(self.parts.len() + 1).unwrap_or(u32::MAX);
        if n > crate::MAX_PARTS {
            return Err(StorageError::Protocol(
                "object needs more than 10000 parts".into(),
            ));
        }
        let part = self.buf.split().freeze();
        let etag = self
            .client
            .upload_part(&self.key, &upload_id, n, part)
            .await?;
        self.parts.push((n, etag));
        Ok(())
    }

    /// Stores what was written: one `PutObject` when it fit in one part, else the last part and
    /// `CompleteMultipartUpload`. On error the caller must still [`ObjectWriter::abort`].
    pub async fn finish(&mut self) -> Result<(), StorageError> {
        match &self.upload_id {
            None => {
                self.put_attempted = true;
                let bytes = self.buf.split().freeze();
                self.client
                    .put_bytes(&self.key, self.content_type.as_deref(), bytes)
                    .await
                    .map(|_| ())
            }
            Some(id) => {
                let id = id.clone();
                if !self.buf.is_empty() || self.parts.is_empty() {
                    self.flush_part().await?;
                }
                self.client
                    .complete_multipart_upload(&self.key, &id, &self.parts)
                    .await?;
                // From here the object exists: a later failure must delete it.
                self.put_attempted = true;
                self.upload_id = None;
                Ok(())
            }
        }
    }

    /// Leaves nothing behind: aborts the multipart upload and/or deletes the object (best effort
    /// both; the error of the first failing step is returned for the log).
    pub async fn abort(&mut self) -> Result<(), StorageError> {
        self.buf = BytesMut::new();
        let mut result = Ok(());
        if let Some(id) = self.upload_id.take() {
            result = self.client.abort_multipart_upload(&self.key, &id).await;
        }
        if self.put_attempted {
            let r = self.client.delete_object(&self.key).await;
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

/// Reads a whole small answer body of a streaming GET (test and tooling helper).
pub async fn read_all(res: spin_sdk::http::Response) -> Result<(u16, Bytes), StorageError> {
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| transport(format!("{e:?}")))?
        .to_bytes();
    Ok((status, body))
}
