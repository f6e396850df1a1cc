//! The stack's bucket, read with the storage crate's signed requests (straight to storage, never
//! through the app): what uploads stored and what they left behind.

use std::time::{Duration, Instant, SystemTime};

use reqwest::blocking::Client;
use storage::request::Signer;
use storage::{Body, ObjectKey, S3Request, StorageConfig, response};

use crate::{Stack, sha256_hex};

/// The bucket of the stack under test (`S3_*` of its environment).
pub struct Bucket {
    cfg: StorageConfig,
    http: Client,
}

impl Bucket {
    pub fn get() -> Bucket {
        let v = |k: &str| {
            Stack::get()
                .var(k)
                .unwrap_or_else(|| panic!("{k} is not set (run through scripts/test)"))
                .to_owned()
        };
        Bucket {
            cfg: StorageConfig::new(
                &v("S3_ENDPOINT"),
                &v("S3_REGION"),
                &v("S3_BUCKET"),
                &v("S3_ACCESS_KEY_ID"),
                &v("S3_SECRET_ACCESS_KEY"),
            )
            .expect("storage config"),
            http: Client::new(),
        }
    }

    fn send(&self, r: S3Request) -> (u16, Vec<u8>) {
        let method = reqwest::Method::from_bytes(r.method.as_str().as_bytes()).unwrap();
        let mut rb = self.http.request(method, &r.url);
        for (n, v) in &r.headers {
            if n != "content-length" {
                rb = rb.header(n, v);
            }
        }
        if let Body::Bytes(b) = &r.body {
            rb = rb.body(b.to_vec());
        }
        let res = rb.send().expect("storage request");
        let status = res.status().as_u16();
        (status, res.bytes().expect("storage body").to_vec())
    }

    /// Every object key under `prefix` (all pages).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let req = Signer::new(&self.cfg)
                .list_objects_v2(prefix, next.as_deref(), SystemTime::now())
                .unwrap();
            let (status, body) = self.send(req);
            let page = response::list_page(status, &body).expect("ListObjectsV2");
            out.extend(page.keys);
            match page.next {
                Some(n) => next = Some(n),
                None => return out,
            }
        }
    }

    /// The keys of unfinished multipart uploads under `prefix`.
    pub fn uploads(&self, prefix: &str) -> Vec<String> {
        let req = Signer::new(&self.cfg)
            .list_multipart_uploads(prefix, SystemTime::now())
            .unwrap();
        let (status, body) = self.send(req);
        response::multipart_upload_keys(status, &body).expect("ListMultipartUploads")
    }

    /// An object's bytes.
    pub fn object(&self, key: &str) -> Vec<u8> {
        let key = ObjectKey::from_stored(key).unwrap();
        let req = Signer::new(&self.cfg)
            .get_object(&key, None, SystemTime::now())
            .unwrap();
        let (status, body) = self.send(req);
        assert_eq!(status, 200, "GetObject {key}");
        body
    }

    /// Stores `bytes` at `key` (`PutObject`), as a finished upload would have.
    pub fn put(&self, key: &str, bytes: &[u8]) {
        let key = ObjectKey::from_stored(key).unwrap();
        let req = Signer::new(&self.cfg)
            .put_object(
                &key,
                None,
                Body::Bytes(bytes.to_vec().into()),
                SystemTime::now(),
            )
            .unwrap();
        let (status, _) = self.send(req);
        assert_eq!(status, 200, "PutObject {key}");
    }

    /// The answer to `HeadObject` of `key`: its status and headers.
    fn head(&self, key: &str) -> reqwest::blocking::Response {
        let key = ObjectKey::from_stored(key).unwrap();
        let r = Signer::new(&self.cfg)
            .head_object(&key, SystemTime::now())
            .unwrap();
        let mut rb = self.http.head(&r.url);
        for (n, v) in &r.headers {
            if n != "content-length" {
                rb = rb.header(n, v);
            }
        }
        rb.send().expect("HeadObject")
    }

    /// A presigned `GetObject` URL of `key` signed at `time`, as the download component's redirects
    /// are (the storage crate's one signer): to check what a `Location` is made of.
    pub fn presigned_get(
        &self,
        key: &str,
        overrides: &[(&str, &str)],
        expires_in: Duration,
        time: SystemTime,
    ) -> String {
        let key = ObjectKey::from_stored(key).unwrap();
        Signer::new(&self.cfg)
            .presigned_get(&key, overrides, expires_in, time)
            .unwrap()
    }

    /// Whether an object exists at `key` (HeadObject: 200 or 404).
    pub fn exists(&self, key: &str) -> bool {
        match self.head(key).status().as_u16() {
            200 => true,
            404 => false,
            s => panic!("HeadObject {key}: {s}"),
        }
    }

    /// How many parts the object was uploaded in, from its ETag (`"<md5 of the parts' md5s>-<n>"` for a
    /// multipart upload); `None` for a single `PutObject` (a plain MD5).
    pub fn upload_parts(&self, key: &str) -> Option<u32> {
        let res = self.head(key);
        assert_eq!(res.status(), 200, "HeadObject {key}");
        let etag = res.headers()["etag"]
            .to_str()
            .unwrap()
            .trim_matches('"')
            .to_owned();
        etag.split_once('-')
            .map(|(_, n)| n.parse().expect("part count"))
    }

    /// Hashes of every object of `tenant`, sorted.
    pub fn tenant_hashes(&self, tenant: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .keys(&format!("tenants/{tenant}/"))
            .iter()
            .map(|k| sha256_hex(&self.object(k)))
            .collect();
        v.sort();
        v
    }

    /// Waits until `tenant` has a multipart upload under way (an upload got past its checks and its
    /// first part is on its way to storage).
    pub fn wait_for_multipart_upload(&self, tenant: &str) {
        let prefix = format!("tenants/{tenant}/");
        let start = Instant::now();
        while self.uploads(&prefix).is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no multipart upload began"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (cleanup may finish after the answer; an abandoned body is noticed after the
    /// component's read timeout, 20 s) until `tenant` holds no object and no unfinished multipart
    /// upload.
    pub fn assert_tenant_empty(&self, tenant: &str) {
        self.assert_tenant_empty_or(tenant, String::new);
    }

    /// [`Bucket::assert_tenant_empty`], adding `context()` (an app's log) to the failure.
    pub fn assert_tenant_empty_or(&self, tenant: &str, context: impl Fn() -> String) {
        let prefix = format!("tenants/{tenant}/");
        let start = Instant::now();
        loop {
            let (keys, uploads) = (self.keys(&prefix), self.uploads(&prefix));
            if keys.is_empty() && uploads.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "left behind: {} objects {keys:?}, multipart uploads {uploads:?}\n{}",
                keys.len(),
                context()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}
