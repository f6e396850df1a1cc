//! What the worker's tests against the real services share: the bucket from `S3_*` (a test without
//! it passes with a note, as `tests/clamd.rs` does), raw signed requests to it (to plant objects and
//! multipart uploads the worker must find), and the scanner role's URL for a test database. A test
//! file declares `mod common;` (db-tools' harness) before `mod support;`.
#![allow(dead_code)]

use std::time::SystemTime;

use bytes::Bytes;
use scan_worker::storage::Storage;
use storage::request::{Body, Signer};
use storage::{ObjectKey, StorageConfig};
use uuid::Uuid;

/// An environment variable, `None` when unset or empty.
pub fn var(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

/// The stack's bucket (`S3_*`), `None` (with a note) when it is not set.
pub fn bucket() -> Option<StorageConfig> {
    let (Some(endpoint), Some(id), Some(secret)) = (
        var("S3_ENDPOINT"),
        var("S3_ACCESS_KEY_ID"),
        var("S3_SECRET_ACCESS_KEY"),
    ) else {
        eprintln!("S3_* is not set: skipped (scripts/test and scripts/dev set them)");
        return None;
    };
    Some(
        StorageConfig::new(
            &endpoint,
            &var("S3_REGION").unwrap_or_else(|| "garage".into()),
            &var("S3_BUCKET").unwrap_or_else(|| "attachments".into()),
            &id,
            &secret,
        )
        .expect("S3 settings"),
    )
}

/// What the tests against the bucket and a database start from: the bucket (`cfg`, and the
/// worker's client of it), a fresh migrated database, its admin connection and one tenant with
/// its rows.
pub struct Fixture {
    pub cfg: StorageConfig,
    pub storage: Storage,
    pub db: crate::common::TestDb,
    pub admin: tokio_postgres::Client,
    pub t: crate::common::TenantRows,
}

/// A fresh [`Fixture`], `None` (with a note) without `S3_*`.
pub async fn fixture() -> Option<Fixture> {
    let cfg = bucket()?;
    let storage = Storage::new(cfg.clone()).unwrap();
    let db = crate::common::TestDb::migrated().await;
    let admin = db.admin().await;
    let t = crate::common::tenant_with_rows(&admin).await;
    Some(Fixture {
        cfg,
        storage,
        db,
        admin,
        t,
    })
}

/// Sends a signed request with `body`: the status and the answer's body.
pub async fn send(req: storage::S3Request, body: Vec<u8>) -> (u16, Vec<u8>) {
    let http = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(req.method.as_str().as_bytes()).unwrap();
    let mut rb = http.request(method, &req.url).body(body);
    for (n, v) in &req.headers {
        if n != "content-length" {
            rb = rb.header(n, v);
        }
    }
    let res = rb.send().await.expect("storage request");
    let status = res.status().as_u16();
    (status, res.bytes().await.unwrap().to_vec())
}

/// `PutObject` of `content` at `key`.
pub async fn put_at(cfg: &StorageConfig, key: &str, content: &[u8]) {
    let key = ObjectKey::from_stored(key).unwrap();
    let req = Signer::new(cfg)
        .put_object(
            &key,
            None,
            Body::Bytes(Bytes::copy_from_slice(content)),
            SystemTime::now(),
        )
        .unwrap();
    let (status, body) = send(req, content.to_vec()).await;
    assert_eq!(status, 200, "PUT: {}", String::from_utf8_lossy(&body));
}

/// `PutObject` of `content` under a fresh upload key of `tenant`; the key.
pub async fn put(cfg: &StorageConfig, tenant: Uuid, content: &[u8]) -> String {
    let key = ObjectKey::new_upload(tenant);
    put_at(cfg, key.as_str(), content).await;
    key.as_str().to_owned()
}

/// `CreateMultipartUpload` at `key`; the upload id.
pub async fn begin_multipart(cfg: &StorageConfig, key: &str) -> String {
    let key = ObjectKey::from_stored(key).unwrap();
    let req = Signer::new(cfg)
        .create_multipart_upload_crc32(&key, None, SystemTime::now())
        .unwrap();
    let (status, body) = send(req, Vec::new()).await;
    storage::response::upload_id(status, &body).expect("CreateMultipartUpload")
}

/// Whether the bucket holds `key`.
pub async fn exists(storage: &Storage, key: &str) -> bool {
    storage.exists(key).await.unwrap()
}

/// The scanner role's URL for the test database `db` (on the admin URL's server).
pub fn scanner_url(db: &crate::common::TestDb) -> String {
    let admin: tokio_postgres::Config = db_tools::admin_url(None).parse().unwrap();
    let host = match &admin.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        _ => "127.0.0.1".into(),
    };
    let port = admin.get_ports().first().copied().unwrap_or(5432);
    let pw = crate::common::scanner_password().unwrap_or_default();
    format!(
        "postgres://{}:{pw}@{host}:{port}/{}?sslmode=disable",
        db_tools::SCANNER_ROLE,
        db.name
    )
}
