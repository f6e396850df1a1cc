//! Pure request builders: each returns an [`S3Request`] (method, URL, signed headers, body kind)
//! that any HTTP client can send, or, for [`Signer::presigned_get`], a URL that carries its own
//! signature. Signing is AWS SigV4 by `aws-sigv4` (service `s3`, single percent-encoding, no path
//! normalisation; header auth with `x-amz-content-sha256` always set, as Garage requires; presigned
//! URLs as `UNSIGNED-PAYLOAD`), with the time passed in. This is the one place that signs for storage.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningInstructions, SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::Method;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

use crate::{ObjectKey, StorageConfig, StorageError};

/// `x-amz-content-sha256` value for a body sent without a payload hash (streamed).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// AWS's URI encoding: everything but unreserved characters (`A-Za-z0-9-._~`).
const AWS_URI: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Nothing.
    Empty,
    /// These bytes (small: XML documents, buffered parts). Signed with their SHA-256.
    Bytes(Bytes),
    /// These bytes, whose SHA-256 the caller already computed: signed with `sha256` without
    /// hashing them again. A wrong hash makes the service refuse the request (SigV4 checks the
    /// payload against `x-amz-content-sha256`), so it can cost a retry, never integrity.
    Hashed {
        /// The bytes.
        bytes: Bytes,
        /// Their SHA-256.
        sha256: [u8; 32],
    },
    /// These bytes, signed as `UNSIGNED-PAYLOAD` and sent with their CRC32 in
    /// `x-amz-checksum-crc32` (a signed header): storage checks the bytes it received against
    /// it and refuses the request on a mismatch (AWS S3, Garage, MinIO, R2), the protection
    /// AWS's SDKs add to uploads by default. It costs a CRC instead of a second SHA-256 pass over
    /// every part. Like any unsigned payload it relies on TLS (an `https` endpoint) against
    /// deliberate tampering in transit.
    Crc32 {
        /// The bytes.
        bytes: Bytes,
        /// Their CRC32 (IEEE, as `crc32fast` computes it).
        crc32: u32,
    },
    /// A body the caller streams; signed as `UNSIGNED-PAYLOAD`. `content_length` is sent as
    /// `Content-Length` when known (AWS needs it; Garage accepts chunked).
    Stream {
        /// The exact length, when known.
        content_length: Option<u64>,
    },
}

/// A signed request, ready to send.
#[derive(Debug, Clone)]
pub struct S3Request {
    /// HTTP method.
    pub method: Method,
    /// Absolute URL (`scheme://host/bucket/key?query`), already encoded.
    pub url: String,
    /// Every header to send, signing ones included (`Host` is the URL's authority, not listed).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
}

impl S3Request {
    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// As an `http::Request` (for clients built on the `http` crate), with `body`.
    pub fn into_http<B>(self, body: B) -> Result<http::Request<B>, StorageError> {
        let mut b = http::Request::builder().method(self.method).uri(&self.url);
        for (n, v) in &self.headers {
            b = b.header(n, v);
        }
        b.body(body)
            .map_err(|e| StorageError::Protocol(format!("building request: {e}")))
    }
}

/// Byte range of a GetObject (`Range: bytes=start-[end]`, `end` inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=start-` or `bytes=start-end`.
    From {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: Option<u64>,
    },
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    fn header(&self) -> String {
        match self {
            ByteRange::From {
                start,
                end: Some(e),
            } => format!("bytes={start}-{e}"),
            ByteRange::From { start, end: None } => format!("bytes={start}-"),
            ByteRange::Suffix(n) => format!("bytes=-{n}"),
        }
    }
}

/// Signs requests for one configuration.
#[derive(Debug, Clone)]
pub struct Signer<'a> {
    cfg: &'a StorageConfig,
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The settings every request is signed with: S3 wants the path encoded once and not normalised.
fn settings() -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings
}

impl<'a> Signer<'a> {
    /// A signer for `cfg`.
    pub fn new(cfg: &'a StorageConfig) -> Self {
        Self { cfg }
    }

    fn object_url(&self, key: &ObjectKey, query: &str) -> String {
        let path: Vec<String> = key
            .as_str()
            .split('/')
            .map(|s| utf8_percent_encode(s, AWS_URI).to_string())
            .collect();
        let mut url = format!(
            "{}://{}{}/{}",
            self.cfg.scheme(),
            self.cfg.authority(),
            self.cfg.bucket_path(),
            path.join("/")
        );
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    fn bucket_url(&self, query: &str) -> String {
        format!(
            "{}://{}{}?{}",
            self.cfg.scheme(),
            self.cfg.authority(),
            self.cfg.bucket_path(),
            query
        )
    }

    /// Signs `method url` with `headers` and `body` at `time`: the headers to send.
    pub fn sign(
        &self,
        method: &Method,
        url: &str,
        mut headers: Vec<(String, String)>,
        body: &Body,
        time: SystemTime,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let payload_hash = match body {
            Body::Empty => sha256_hex(b""),
            Body::Bytes(b) => sha256_hex(b),
            Body::Hashed { sha256, .. } => hex::encode(sha256),
            Body::Crc32 { .. } | Body::Stream { .. } => UNSIGNED_PAYLOAD.to_owned(),
        };
        match body {
            Body::Bytes(b) | Body::Hashed { bytes: b, .. } => {
                headers.push(("content-length".into(), b.len().to_string()))
            }
            Body::Crc32 { bytes, crc32 } => {
                headers.push(("content-length".into(), bytes.len().to_string()));
                headers.push(("x-amz-checksum-crc32".into(), crc32_header(*crc32)));
            }
            Body::Stream {
                content_length: Some(n),
            } => headers.push(("content-length".into(), n.to_string())),
            // An explicit empty body: without a length an HTTP/1.1 client frames it as chunked,
            // which some servers answer before the terminating chunk arrives.
            Body::Empty if *method != Method::GET && *method != Method::HEAD => {
                headers.push(("content-length".into(), "0".into()))
            }
            _ => {}
        }
        headers.push(("x-amz-content-sha256".into(), payload_hash.clone()));
        let mut settings = settings();
        settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
        // Content-Length is not signed: a client or proxy may switch to chunked framing.
        settings.excluded_headers = Some(vec!["content-length".into(), "user-agent".into()]);
        let signable = SignableRequest::new(
            method.as_str(),
            url,
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            SignableBody::Precomputed(payload_hash),
        )
        .map_err(|e| StorageError::Protocol(format!("signing: {e}")))?;
        let (signed, _params) = self.instructions(signable, settings, time)?.into_parts();
        for h in signed {
            headers.push((h.name().to_owned(), h.value().to_owned()));
        }
        Ok(headers)
    }

    /// `method url` with a query-string signature, valid for `expires_in` from `time`
    /// (`UNSIGNED-PAYLOAD`; `host` and `headers` signed: the request must carry exactly those).
    fn presign(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&str, &str)],
        expires_in: Duration,
        time: SystemTime,
    ) -> Result<String, StorageError> {
        let mut settings = settings();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires_in);
        // aws-sigv4 leaves some headers out of a signature by default; the ones asked for here
        // must be in it.
        settings.excluded_headers = Some(Vec::new());
        let signable = SignableRequest::new(
            method.as_str(),
            url,
            headers.iter().copied(),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| StorageError::Protocol(format!("presigning: {e}")))?;
        let instructions = self.instructions(signable, settings, time)?;
        let mut req = http::Request::builder()
            .uri(url)
            .body(())
            .map_err(|e| StorageError::Protocol(format!("presigning: {e}")))?;
        instructions.apply_to_request_http1x(&mut req);
        Ok(req.uri().to_string())
    }

    /// What signing `signable` with the configured keys at `time` adds to the request.
    fn instructions(
        &self,
        signable: SignableRequest<'_>,
        settings: SigningSettings,
        time: SystemTime,
    ) -> Result<SigningInstructions, StorageError> {
        let identity = Credentials::new(
            self.cfg.access_key_id(),
            self.cfg.secret_access_key(),
            None,
            None,
            "storage-config",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.cfg.region())
            .name("s3")
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| StorageError::Config(format!("signing params: {e}")))?
            .into();
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| StorageError::Protocol(format!("signing: {e}")))?
            .into_parts();
        Ok(instructions)
    }

    /// A presigned `GetObject` URL: whoever holds it may read the object until `expires_in` after
    /// `time`, without credentials. `overrides` are signed into the query as given (e.g.
    /// `response-content-type`, `response-content-disposition`: storage then answers with those
    /// headers), so nobody can change them without breaking the signature.
    pub fn presigned_get(
        &self,
        key: &ObjectKey,
        overrides: &[(&str, &str)],
        expires_in: Duration,
        time: SystemTime,
    ) -> Result<String, StorageError> {
        let query: Vec<String> = overrides
            .iter()
            .map(|(n, v)| {
                format!(
                    "{}={}",
                    utf8_percent_encode(n, AWS_URI),
                    utf8_percent_encode(v, AWS_URI)
                )
            })
            .collect();
        self.presign(
            &Method::GET,
            &self.object_url(key, &query.join("&")),
            &[],
            expires_in,
            time,
        )
    }

    /// A presigned `UploadPart` URL: whoever holds it may `PUT` part `part_number` of multipart
    /// upload `upload_id` of `key`, of exactly `content_length` bytes (signed: another length
    /// fails the signature), until `expires_in` after `time`. Nothing else: not another part, not
    /// another upload, not a read.
    pub fn presigned_upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        content_length: u64,
        expires_in: Duration,
        time: SystemTime,
    ) -> Result<String, StorageError> {
        if !(1..=crate::MAX_PARTS).contains(&part_number) {
            return Err(StorageError::Protocol(format!(
                "part number {part_number} outside 1..=10000"
            )));
        }
        let q = format!("partNumber={part_number}&{}", Self::upload_query(upload_id));
        let length = content_length.to_string();
        self.presign(
            &Method::PUT,
            &self.object_url(key, &q),
            &[("content-length", length.as_str())],
            expires_in,
            time,
        )
    }

    fn build(
        &self,
        method: Method,
        url: String,
        headers: Vec<(String, String)>,
        body: Body,
        time: SystemTime,
    ) -> Result<S3Request, StorageError> {
        let headers = self.sign(&method, &url, headers, &body, time)?;
        Ok(S3Request {
            method,
            url,
            headers,
            body,
        })
    }

    /// `PutObject`: one request carrying the whole object.
    pub fn put_object(
        &self,
        key: &ObjectKey,
        content_type: Option<&str>,
        body: Body,
        time: SystemTime,
    ) -> Result<S3Request, StorageError> {
        let mut h = Vec::new();
        if let Some(ct) = content_type {
            h.push(("content-type".into(), ct.to_owned()));
        }
        self.build(Method::PUT, self.object_url(key, ""), h, body, time)
    }

    /// `CreateMultipartUpload` whose parts are sent as [`Body::Crc32`]: declares the checksum
    /// algorithm (`x-amz-checksum-algorithm: CRC32`), as S3 requires before it accepts part
    /// checksums; complete it with [`Signer::complete_multipart_upload_crc32`].
    pub fn create_multipart_upload_crc32(
        &self,
        key: &ObjectKey,
        content_type: Option<&str>,
        time: SystemTime,
    ) -> Result<S3Request, StorageError> {
        let mut h = vec![("x-amz-checksum-algorithm".to_owned(), "CRC32".to_owned())];
        if let Some(ct) = content_type {
            h.push(("content-type".into(), ct.to_owned()));
        }
        self.build(
            Method::POST,
            self.object_url(key, "uploads="),
            h,
            Body::Empty,
            time,
        )
    }

    /// `CreateMultipartUpload` without a checksum algorithm: for parts a client sends itself
    /// through presigned URLs (a browser cannot add S3 checksum headers to a presigned `PUT`).
    pub fn create_multipart_upload(
        &self,
        key: &ObjectKey,
        content_type: Option<&str>,
        time: SystemTime,
    ) -> Result<S3Request, StorageError> {
        let h = content_type
            .map(|ct| vec![("content-type".to_owned(), ct.to_owned())])
            .unwrap_or_default();
        self.build(
            Method::POST,
            self.object_url(key, "uploads="),
            h,
            Body::Empty,
            time,
        )
    }

    /// `CompleteMultipartUpload` of an upload begun with [`Signer::create_multipart_upload`]:
    /// each part's number and ETag, in part order.
    pub fn complete_multipart_upload(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[(u32, String)],
        time: SystemTime,
    ) -> Result<S3Request, StorageError> {
        let body = Body::Bytes(Bytes::from(complete_multipart_xml(parts)));
        let h = vec![("content-type".into(), "application/xml".into())];
        self.build(
            Method::POST,
            self.object_url(key, &Self::upload_query(upload_id)),
            h,
            body,
            time,
        )
    }

    /// `CompleteMultipartUpload` of an upload begun with
    /// [`Signer::create_multipart_upload_crc32`]: each part's ETag and CRC32, in part order.
    pub fn complete_multipart_upload_crc32(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[(u32, String, u32)],
        time: SystemTime,
    ) -> Result<S3Request, StorageError> {
        let body = Body::Bytes(Bytes::from(complete_multipart_xml_crc32(parts)));
        let h = vec![("content-type".into(), "application/xml".into())];
        self.build(
            Method::POST,
            self.object_url(key, &Self::upload_query(upload_id)),
            h,
            body,
            time,
        )
    }

    fn upload_query(upload_id: &str) -> String {
        format!("uploadId={}", utf8_percent_encode(upload_id, AWS_URI))
    }

    /// `UploadPart` (`PUT ?partNumber=N&uploadId=ID`), `part_number` in `1..=10000`.
    pub fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: Body,
        time: SystemTime,
    ) -> Result<S3Request, StorageError> {
        if !(1..=crate::MAX_PARTS).contains(&part_number) {
            return Err(StorageError::Protocol(format!(
                "part number {part_number} outside 1..=10000"
            )));
        }
        let q = format!("partNumber={part_number}&{}", Self::upload_query(upload_id));
        self.build(
            Method::PUT,
            self.object_url(key, &q),
            Vec::new(),
            body,
            time,
        )
    }

    /// `AbortMultipartUpload`.
    pub fn abort_multipart_upload(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        time: SystemTime,
    ) -> Result<S3Request, StorageError> {
        self.build(
            Method::DELETE,
            self.object_url(key, &Self::upload_query(upload_id)),
            Vec::new(),
            Body::Empty,
            time,
        )
    }

    /// `GetObject`, optionally one byte range.
    pub fn get_object(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
        time: SystemTime,
    ) -> Result<S3Request, StorageError> {
        let h = range
            .map(|r| vec![("range".to_owned(), r.header())])
            .unwrap_or_default();
        self.build(Method::GET, self.object_url(key, ""), h, Body::Empty, time)
    }

    /// `HeadObject`.
    pub fn head_object(
        &self,
        key: &ObjectKey,
        time: SystemTime,
    ) -> Result<S3Request, StorageError> {
        self.build(
            Method::HEAD,
            self.object_url(key, ""),
            Vec::new(),
            Body::Empty,
            time,
        )
    }

    /// `DeleteObject` (S3 answers `204` whether or not the object existed).
    pub fn delete_object(
        &self,
        key: &ObjectKey,
        time: SystemTime,
    ) -> Result<S3Request, StorageError> {
        self.build(
            Method::DELETE,
            self.object_url(key, ""),
            Vec::new(),
            Body::Empty,
            time,
        )
    }

    /// `CopyObject` within the bucket (e.g. into a quarantine prefix).
    pub fn copy_object(
        &self,
        from: &ObjectKey,
        to: &ObjectKey,
        time: SystemTime,
    ) -> Result<S3Request, StorageError> {
        let src = format!(
            "/{}/{}",
            self.cfg.bucket(),
            utf8_percent_encode(from.as_str(), AWS_URI)
        );
        let h = vec![("x-amz-copy-source".into(), src)];
        self.build(Method::PUT, self.object_url(to, ""), h, Body::Empty, time)
    }

    /// `ListMultipartUploads` under `prefix` (one page): uploads begun and neither completed nor
    /// aborted.
    pub fn list_multipart_uploads(
        &self,
        prefix: &str,
        time: SystemTime,
    ) -> Result<S3Request, StorageError> {
        let q = format!("prefix={}&uploads=", utf8_percent_encode(prefix, AWS_URI));
        self.build(
            Method::GET,
            self.bucket_url(&q),
            Vec::new(),
            Body::Empty,
            time,
        )
    }

    /// `ListMultipartUploads` under `prefix`, the page after `(key, upload id)` markers (the
    /// previous page's `NextKeyMarker` and `NextUploadIdMarker`; `None` for the first page).
    pub fn list_multipart_uploads_after(
        &self,
        prefix: &str,
        after: Option<(&str, &str)>,
        time: SystemTime,
    ) -> Result<S3Request, StorageError> {
        // Parameters in byte order, as the canonical request lists them.
        let mut q = String::new();
        if let Some((key, _)) = after {
            q.push_str(&format!(
                "key-marker={}&",
                utf8_percent_encode(key, AWS_URI)
            ));
        }
        q.push_str(&format!("prefix={}&", utf8_percent_encode(prefix, AWS_URI)));
        if let Some((_, upload)) = after {
            q.push_str(&format!(
                "upload-id-marker={}&",
                utf8_percent_encode(upload, AWS_URI)
            ));
        }
        q.push_str("uploads=");
        self.build(
            Method::GET,
            self.bucket_url(&q),
            Vec::new(),
            Body::Empty,
            time,
        )
    }

    /// `ListObjectsV2` under `prefix` (one page; pass the previous answer's continuation token).
    pub fn list_objects_v2(
        &self,
        prefix: &str,
        continuation: Option<&str>,
        time: SystemTime,
    ) -> Result<S3Request, StorageError> {
        let mut q = String::new();
        if let Some(c) = continuation {
            q.push_str(&format!(
                "continuation-token={}&",
                utf8_percent_encode(c, AWS_URI)
            ));
        }
        q.push_str(&format!(
            "list-type=2&prefix={}",
            utf8_percent_encode(prefix, AWS_URI)
        ));
        self.build(
            Method::GET,
            self.bucket_url(&q),
            Vec::new(),
            Body::Empty,
            time,
        )
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The `x-amz-checksum-crc32` value: base64 of the big-endian CRC.
pub fn crc32_header(crc32: u32) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(crc32.to_be_bytes())
}

/// The `CompleteMultipartUpload` document of parts (number, ETag) without checksums.
pub fn complete_multipart_xml(parts: &[(u32, String)]) -> String {
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (n, etag) in parts {
        xml.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>",
            xml_escape(etag)
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    xml
}

/// The body of `CompleteMultipartUpload` for parts sent with their CRC32.
pub fn complete_multipart_xml_crc32(parts: &[(u32, String, u32)]) -> String {
    let mut x =
        String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (n, etag, crc) in parts {
        x.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag><ChecksumCRC32>{}</ChecksumCRC32></Part>",
            xml_escape(etag),
            crc32_header(*crc)
        ));
    }
    x.push_str("</CompleteMultipartUpload>");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2013-05-24T00:00:00Z, the date of the AWS S3 SigV4 examples.
    fn aws_example_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_369_353_600)
    }

    fn aws_cfg() -> StorageConfig {
        // The AWS documentation's example credentials (virtual-hosted bucket name as host:
        // signing only sees the URL, so a "path-style" endpoint with an empty base works).
        StorageConfig::new(
            "https://examplebucket.s3.amazonaws.com",
            "us-east-1",
            "examplebucket",
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        .unwrap()
    }

    fn auth_signature(headers: &[(String, String)]) -> String {
        let auth = headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .map(|(_, v)| v.clone())
            .expect("authorization header");
        auth.split("Signature=").nth(1).unwrap().to_owned()
    }

    /// Known answer: "Example: GET Object" of the AWS S3 SigV4 header-auth documentation
    /// (sigv4-header-based-auth), GET /test.txt with Range: bytes=0-9.
    #[test]
    fn aws_doc_example_get_object() {
        let cfg = aws_cfg();
        let s = Signer::new(&cfg);
        let h = s
            .sign(
                &Method::GET,
                "https://examplebucket.s3.amazonaws.com/test.txt",
                vec![("range".into(), "bytes=0-9".into())],
                &Body::Empty,
                aws_example_time(),
            )
            .unwrap();
        assert_eq!(
            auth_signature(&h),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        let auth = h.iter().find(|(n, _)| n == "authorization").unwrap();
        assert!(auth.1.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"
        ));
        assert!(
            auth.1
                .contains("SignedHeaders=host;range;x-amz-content-sha256;x-amz-date")
        );
    }

    /// Known answer: "Example: PUT Object" (test$file.text, storage class, Date header).
    #[test]
    fn aws_doc_example_put_object() {
        let cfg = aws_cfg();
        let s = Signer::new(&cfg);
        let h = s
            .sign(
                &Method::PUT,
                "https://examplebucket.s3.amazonaws.com/test%24file.text",
                vec![
                    ("date".into(), "Fri, 24 May 2013 00:00:00 GMT".into()),
                    ("x-amz-storage-class".into(), "REDUCED_REDUNDANCY".into()),
                ],
                &Body::Bytes(Bytes::from_static(b"Welcome to Amazon S3.")),
                aws_example_time(),
            )
            .unwrap();
        assert_eq!(
            auth_signature(&h),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
    }

    /// Known answer: "Example: GET Bucket Lifecycle" (a query parameter without a value).
    #[test]
    fn aws_doc_example_get_lifecycle() {
        let cfg = aws_cfg();
        let s = Signer::new(&cfg);
        let h = s
            .sign(
                &Method::GET,
                "https://examplebucket.s3.amazonaws.com/?lifecycle",
                Vec::new(),
                &Body::Empty,
                aws_example_time(),
            )
            .unwrap();
        assert_eq!(
            auth_signature(&h),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
    }

    /// Known answer: the query-string authentication example of the AWS S3 SigV4 documentation
    /// (sigv4-query-string-auth): GET /test.txt, valid 86400 s.
    #[test]
    fn aws_doc_example_presigned_get() {
        let cfg = aws_cfg();
        let url = Signer::new(&cfg)
            .presign(
                &Method::GET,
                "https://examplebucket.s3.amazonaws.com/test.txt",
                &[],
                Duration::from_secs(86_400),
                aws_example_time(),
            )
            .unwrap();
        assert!(
            url.starts_with("https://examplebucket.s3.amazonaws.com/test.txt?"),
            "{url}"
        );
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request",
            "X-Amz-Date=20130524T000000Z",
            "X-Amz-Expires=86400",
            "X-Amz-SignedHeaders=host",
            "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
        ] {
            assert!(url.contains(part), "{part} in {url}");
        }
    }

    #[test]
    fn presigned_get_carries_its_overrides_signed() {
        let cfg = garage();
        let s = Signer::new(&cfg);
        let key = ObjectKey::from_stored("tenants/t/blobs/b").unwrap();
        let disposition = "attachment; filename=\"a b.html\"; filename*=UTF-8''a%20b.html";
        let url = s
            .presigned_get(
                &key,
                &[
                    ("response-content-disposition", disposition),
                    ("response-content-type", "text/html"),
                ],
                Duration::from_secs(60),
                aws_example_time(),
            )
            .unwrap();
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, "http://127.0.0.1:3900/attachments/tenants/t/blobs/b");
        assert!(query.starts_with(
            "response-content-disposition=attachment%3B%20filename%3D%22a%20b.html%22%3B%20filename%2A%3DUTF-8%27%27a%2520b.html\
             &response-content-type=text%2Fhtml&"
        ), "{query}");
        assert!(query.contains("X-Amz-Expires=60&"), "{query}");
        assert!(query.contains("X-Amz-SignedHeaders=host&"), "{query}");
        assert!(query.contains("%2Fgarage%2Fs3%2Faws4_request"), "{query}");
        // Another override is another signature.
        let other = s
            .presigned_get(
                &key,
                &[("response-content-type", "text/plain")],
                Duration::from_secs(60),
                aws_example_time(),
            )
            .unwrap();
        let sig = |u: &str| u.split("X-Amz-Signature=").nth(1).unwrap().to_owned();
        assert_ne!(sig(&url), sig(&other));
        assert_eq!(sig(&url).len(), 64);
    }

    #[test]
    fn presigned_upload_part_is_bound_to_its_part_and_length() {
        let cfg = garage();
        let s = Signer::new(&cfg);
        let key = ObjectKey::from_stored("tenants/t/blobs/b").unwrap();
        let sign = |part: u32, len: u64| {
            s.presigned_upload_part(
                &key,
                "up/1+x",
                part,
                len,
                Duration::from_secs(300),
                aws_example_time(),
            )
            .unwrap()
        };
        let url = sign(3, 8 * 1024 * 1024);
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, "http://127.0.0.1:3900/attachments/tenants/t/blobs/b");
        assert!(
            query.starts_with("partNumber=3&uploadId=up%2F1%2Bx&"),
            "{query}"
        );
        assert!(
            query.contains("X-Amz-SignedHeaders=content-length%3Bhost&"),
            "{query}"
        );
        assert!(query.contains("X-Amz-Expires=300&"), "{query}");
        let sig = |u: &str| u.split("X-Amz-Signature=").nth(1).unwrap().to_owned();
        assert_ne!(sig(&url), sig(&sign(3, 8 * 1024 * 1024 + 1)));
        assert_ne!(sig(&url), sig(&sign(4, 8 * 1024 * 1024)));
        assert!(
            s.presigned_upload_part(&key, "u", 0, 1, Duration::from_secs(1), aws_example_time())
                .is_err()
        );
    }

    #[test]
    fn complete_document_lists_parts_in_order() {
        let xml = complete_multipart_xml(&[(1, "\"a\"".into()), (2, "\"b&c\"".into())]);
        assert_eq!(
            xml,
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part>\
             <Part><PartNumber>2</PartNumber><ETag>&quot;b&amp;c&quot;</ETag></Part></CompleteMultipartUpload>"
        );
    }

    fn garage() -> StorageConfig {
        StorageConfig::new(
            "http://127.0.0.1:3900",
            "garage",
            "attachments",
            "GK0123",
            "secret",
        )
        .unwrap()
    }

    #[test]
    fn request_shapes() {
        let cfg = garage();
        let s = Signer::new(&cfg);
        let key = ObjectKey::from_stored("tenants/t/blobs/b").unwrap();
        let t = aws_example_time();

        let r = s
            .put_object(
                &key,
                Some("application/pdf"),
                Body::Stream {
                    content_length: None,
                },
                t,
            )
            .unwrap();
        assert_eq!(r.method, Method::PUT);
        assert_eq!(r.url, "http://127.0.0.1:3900/attachments/tenants/t/blobs/b");
        assert_eq!(r.header("x-amz-content-sha256"), Some(UNSIGNED_PAYLOAD));
        assert_eq!(r.header("content-type"), Some("application/pdf"));
        assert!(r.header("content-length").is_none());
        assert!(
            r.header("authorization")
                .unwrap()
                .contains("/garage/s3/aws4_request")
        );

        let r = s
            .put_object(&key, None, Body::Bytes(Bytes::from_static(b"abc")), t)
            .unwrap();
        assert_eq!(
            r.header("x-amz-content-sha256"),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(r.header("content-length"), Some("3"));
        // Bytes whose hash the caller already has are signed exactly like bytes hashed here.
        let hashed = s
            .put_object(
                &key,
                None,
                Body::Hashed {
                    bytes: Bytes::from_static(b"abc"),
                    sha256: Sha256::digest(b"abc").into(),
                },
                t,
            )
            .unwrap();
        assert_eq!(hashed.headers, r.headers);

        // A part checked by CRC32 rather than signed with its SHA-256.
        let part = s
            .upload_part(
                &key,
                "u",
                2,
                Body::Crc32 {
                    bytes: Bytes::from_static(b"123456789"),
                    crc32: 0xcbf4_3926, // the CRC-32 check value
                },
                t,
            )
            .unwrap();
        assert_eq!(part.header("x-amz-content-sha256"), Some(UNSIGNED_PAYLOAD));
        assert_eq!(part.header("x-amz-checksum-crc32"), Some("y/Q5Jg=="));
        assert_eq!(part.header("content-length"), Some("9"));
        assert!(
            part.header("authorization")
                .unwrap()
                .contains("x-amz-checksum-crc32"),
            "the checksum header is signed"
        );
        let r = s.create_multipart_upload_crc32(&key, None, t).unwrap();
        assert_eq!(r.header("x-amz-checksum-algorithm"), Some("CRC32"));
        assert!(r.url.ends_with("/tenants/t/blobs/b?uploads="));
        let r = s
            .complete_multipart_upload_crc32(
                &key,
                "u1",
                &[(1, "\"e1\"".into(), 0xcbf4_3926), (2, "\"e2\"".into(), 0)],
                t,
            )
            .unwrap();
        assert!(r.url.ends_with("?uploadId=u1"), "{}", r.url);
        match &r.body {
            Body::Bytes(b) => assert!(
                std::str::from_utf8(b).unwrap().contains(
                    "<Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag><ChecksumCRC32>y/Q5Jg==</ChecksumCRC32></Part><Part><PartNumber>2</PartNumber>"
                ),
                "parts in order"
            ),
            other => panic!("{other:?}"),
        }

        let r = s
            .upload_part(
                &key,
                "a/b+c=",
                3,
                Body::Stream {
                    content_length: Some(5_242_880),
                },
                t,
            )
            .unwrap();
        assert!(
            r.url.ends_with("?partNumber=3&uploadId=a%2Fb%2Bc%3D"),
            "{}",
            r.url
        );
        assert_eq!(r.header("content-length"), Some("5242880"));
        assert!(s.upload_part(&key, "u", 0, Body::Empty, t).is_err());
        assert!(s.upload_part(&key, "u", 10_001, Body::Empty, t).is_err());

        let r = s.abort_multipart_upload(&key, "u1", t).unwrap();
        assert_eq!(r.method, Method::DELETE);
        assert!(r.url.ends_with("?uploadId=u1"));

        let r = s
            .get_object(
                &key,
                Some(ByteRange::From {
                    start: 10,
                    end: Some(19),
                }),
                t,
            )
            .unwrap();
        assert_eq!(r.header("range"), Some("bytes=10-19"));
        assert!(r.header("authorization").unwrap().contains("range"));
        let r = s.get_object(&key, Some(ByteRange::Suffix(5)), t).unwrap();
        assert_eq!(r.header("range"), Some("bytes=-5"));
        assert_eq!(s.head_object(&key, t).unwrap().method, Method::HEAD);
        assert_eq!(s.delete_object(&key, t).unwrap().method, Method::DELETE);
        let to = ObjectKey::from_stored("quarantine/t/b").unwrap();
        let r = s.copy_object(&key, &to, t).unwrap();
        assert_eq!(
            r.header("x-amz-copy-source"),
            Some("/attachments/tenants%2Ft%2Fblobs%2Fb")
        );
        let r = s.list_objects_v2("tenants/t/", Some("tok/="), t).unwrap();
        assert_eq!(
            r.url,
            "http://127.0.0.1:3900/attachments?continuation-token=tok%2F%3D&list-type=2&prefix=tenants%2Ft%2F"
        );
        let r = s.list_multipart_uploads("tenants/t/", t).unwrap();
        assert_eq!(
            r.url,
            "http://127.0.0.1:3900/attachments?prefix=tenants%2Ft%2F&uploads="
        );
        let http = r.into_http(()).unwrap();
        assert!(http.headers().contains_key("x-amz-date"));
    }
}
