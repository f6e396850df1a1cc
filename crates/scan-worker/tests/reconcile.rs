//! Reconcile and the worker's metrics against the real services the scripts start: a fresh real
//! Postgres database per test (`DATABASE_ADMIN_URL`, as the database tests) and the real bucket
//! (Garage; `S3_*`); the metrics test scans with the real clamd (`CLAMD_ADDR`). Without `S3_ENDPOINT`
//! a test passes with a note (like `tests/uploads.rs`).
//!
//! Every reconcile here is scoped to the test's own fresh tenant (`--tenant`): the bucket is shared
//! with the stack, and a fresh database knows none of the stack's objects. Time is not waited for:
//! the safety window is 0 where a test needs objects to count as old, and the default (a day) where
//! it needs them young.

#[path = "../../db-tools/tests/common/mod.rs"]
mod common;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use scan_worker::config::Config;
use scan_worker::storage::{ATTEMPTS, Aborted, Storage};
use scan_worker::worker::Worker;
use storage::ObjectKey;
use support::{Fixture, begin_multipart, bucket, exists, fixture, put_at, scanner_url, var};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// A worker of `db` with `args`, the bucket's settings (`S3_ENDPOINT` replaced by `endpoint` if
/// given) and, for scanning, a callback at `callback`.
fn worker(
    db: &common::TestDb,
    args: &[&str],
    endpoint: Option<&str>,
    callback: Option<&str>,
) -> Arc<Worker> {
    let url = scanner_url(db);
    let env = |k: &str| -> Option<String> {
        match k {
            "SCAN_DATABASE_URL" => Some(url.clone()),
            "S3_ENDPOINT" => endpoint.map(str::to_owned).or_else(|| var(k)),
            "S3_REGION"
            | "S3_BUCKET"
            | "S3_ACCESS_KEY_ID"
            | "S3_SECRET_ACCESS_KEY"
            | "CLAMD_ADDR" => var(k),
            "SCAN_CALLBACK_URL" => callback.map(str::to_owned),
            "SCAN_CALLBACK_SECRET" => {
                callback.map(|_| "scan-worker:0123456789abcdef0123456789abcdef".to_owned())
            }
            "SCAN_DB_TIMEOUT_SECS" => Some("5".into()),
            _ => None,
        }
    };
    let c = Config::parse(args.iter().map(|s| s.to_string()), env, || {
        "reconcile-test".into()
    })
    .unwrap();
    Arc::new(Worker::new(c).unwrap())
}

/// A blob row of `t` whose object is at `key`.
async fn blob(admin: &tokio_postgres::Client, t: &common::TenantRows, key: &str) -> Uuid {
    admin
        .query_one(
            "INSERT INTO attachment_blobs (tenant_id, content_sha256, size_bytes, storage_key)
             VALUES ($1, $2, 5, $3) RETURNING id",
            &[&t.tenant, &common::random_hex(32), &key],
        )
        .await
        .unwrap()
        .get(0)
}

/// An open upload session row of `t` for `key` and multipart upload `mpu`, expiring in `expires_in_ms`.
async fn session(
    admin: &tokio_postgres::Client,
    t: &common::TenantRows,
    key: &str,
    mpu: &str,
    expires_in_ms: i64,
) {
    admin
        .execute(
            "INSERT INTO upload_sessions (tenant_id, message_id, user_id, filename, claimed_size,
                 storage_key, s3_upload_id, part_size, part_count, expires_at)
             VALUES ($1, $2, $3, 'a.bin', 5, $4, $5, 5242880, 1, app_now_ms() + $6)",
            &[&t.tenant, &t.message, &t.user, &key, &mpu, &expires_in_ms],
        )
        .await
        .unwrap();
}

async fn missing_since(admin: &tokio_postgres::Client, blob: Uuid) -> Option<i64> {
    admin
        .query_one(
            "SELECT missing_since FROM attachment_blobs WHERE id = $1",
            &[&blob],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn reconcile_deletes_orphans_marks_missing_objects_and_aborts_stale_uploads() {
    let Some(Fixture {
        cfg,
        storage,
        db,
        admin,
        t,
    }) = fixture().await
    else {
        return;
    };
    let tenant = t.tenant.to_string();
    let key = || ObjectKey::new_upload(t.tenant).as_str().to_owned();

    // A blob with its object: known, kept.
    let kept = key();
    put_at(&cfg, &kept, b"kept").await;
    let kept_blob = blob(&admin, &t, &kept).await;
    // A blob whose object was deleted behind the database's back: missing.
    let lost = key();
    put_at(&cfg, &lost, b"lost").await;
    let lost_blob = blob(&admin, &t, &lost).await;
    storage.delete(&lost).await.unwrap();
    // Objects no row knows: one of an upload whose row was never written, one left in quarantine.
    let orphan = key();
    put_at(&cfg, &orphan, b"orphan").await;
    let quarantined_orphan = format!("quarantine/{}", key());
    put_at(&cfg, &quarantined_orphan, b"orphan in quarantine").await;
    // A session's object: known, kept.
    let session_key = key();
    put_at(&cfg, &session_key, b"session").await;
    session(&admin, &t, &session_key, "mpu-complete", 3_600_000).await;
    // Multipart uploads: one no session knows (an in-function upload whose instance died), one of
    // an expired session, one of an open session.
    let stray_key = key();
    let stray = begin_multipart(&cfg, &stray_key).await;
    let expired_key = key();
    let expired = begin_multipart(&cfg, &expired_key).await;
    session(&admin, &t, &expired_key, &expired, -1_000).await;
    let open_key = key();
    let open = begin_multipart(&cfg, &open_key).await;
    session(&admin, &t, &open_key, &open, 3_600_000).await;

    let scope = ["--tenant", tenant.as_str(), "--reconcile-safety-secs", "0"];
    let args = |extra: &[&'static str]| -> Vec<&str> {
        let mut a = vec!["reconcile", "--once"];
        a.extend_from_slice(extra);
        a.extend(scope.iter().copied());
        a
    };

    // Dry run: everything found, nothing touched.
    let dry = worker(&db, &args(&["--dry-run"]), None, None);
    let r = dry.reconcile().await.unwrap();
    assert_eq!(
        (r.objects, r.known, r.orphans, r.orphans_deleted),
        (4, 2, 2, 0),
        "{r:?}"
    );
    assert_eq!((r.missing, r.missing_marked), (1, 0), "{r:?}");
    assert_eq!(r.missing_blobs[0]["blob"], lost_blob.to_string());
    assert_eq!(
        (r.uploads, r.uploads_stale, r.uploads_aborted),
        (3, 2, 0),
        "{r:?}"
    );
    let sampled: Vec<&str> = r
        .orphan_sample
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(sampled, [quarantined_orphan.as_str(), orphan.as_str()]);
    assert!(exists(&storage, &orphan).await && exists(&storage, &quarantined_orphan).await);
    assert_eq!(missing_since(&admin, lost_blob).await, None);
    assert_eq!(
        storage
            .abort_multipart(&stray_key, "not-this-one")
            .await
            .ok(),
        Some(Aborted::NoSuchUpload)
    );

    // The real run.
    let w = worker(&db, &args(&[]), None, None);
    let r = w.reconcile().await.unwrap();
    assert_eq!((r.orphans, r.orphans_deleted, r.young), (2, 2, 0), "{r:?}");
    assert_eq!((r.missing, r.missing_marked), (1, 1), "{r:?}");
    assert_eq!((r.uploads_stale, r.uploads_aborted), (2, 2), "{r:?}");
    assert!(!exists(&storage, &orphan).await && !exists(&storage, &quarantined_orphan).await);
    for k in [&kept, &session_key] {
        assert!(exists(&storage, k).await, "{k} kept");
    }
    let since = missing_since(&admin, lost_blob)
        .await
        .expect("marked missing");
    assert_eq!(missing_since(&admin, kept_blob).await, None);
    // The stale uploads are gone; the open session's upload is not.
    for (k, u) in [(&stray_key, &stray), (&expired_key, &expired)] {
        assert_eq!(
            storage.abort_multipart(k, u).await.unwrap(),
            Aborted::NoSuchUpload
        );
    }
    assert_eq!(
        storage.abort_multipart(&open_key, &open).await.unwrap(),
        Aborted::Aborted
    );

    // Run again: nothing left to delete; the mark keeps its first time.
    let r = w.reconcile().await.unwrap();
    assert_eq!((r.orphans, r.missing, r.uploads_stale), (0, 1, 0), "{r:?}");
    assert_eq!(missing_since(&admin, lost_blob).await, Some(since));

    // The object is restored: the mark goes.
    put_at(&cfg, &lost, b"lost").await;
    let r = w.reconcile().await.unwrap();
    assert_eq!((r.missing, r.missing_cleared), (0, 1), "{r:?}");
    assert_eq!(missing_since(&admin, lost_blob).await, None);

    // A metrics scrape counts the runs.
    let text = w.metrics().render();
    assert!(
        text.lines()
            .any(|l| l == "scan_worker_reconcile_total{what=\"orphans_deleted\"} 2"),
        "{text}"
    );

    for k in [&kept, &session_key, &lost] {
        storage.delete(k).await.unwrap();
    }
}

#[tokio::test]
async fn young_objects_are_left_alone_and_an_unreachable_store_fails_the_run() {
    let Some(Fixture {
        cfg,
        storage,
        db,
        admin,
        t,
    }) = fixture().await
    else {
        return;
    };
    let tenant = t.tenant.to_string();
    // An upload in flight: its object is stored, its row not written yet.
    let in_flight = ObjectKey::new_upload(t.tenant).as_str().to_owned();
    put_at(&cfg, &in_flight, b"in flight").await;
    let mpu_key = ObjectKey::new_upload(t.tenant).as_str().to_owned();
    let mpu = begin_multipart(&cfg, &mpu_key).await;

    // The default window (a day).
    let w = worker(
        &db,
        &["reconcile", "--once", "--tenant", &tenant],
        None,
        None,
    );
    let r = w.reconcile().await.unwrap();
    assert_eq!(
        (r.objects, r.orphans, r.young, r.uploads, r.uploads_stale),
        (1, 0, 1, 1, 0),
        "{r:?}"
    );
    assert!(exists(&storage, &in_flight).await);

    // Storage unreachable: an error, not an empty bucket (which would make every blob "missing").
    let lost_key = ObjectKey::new_upload(t.tenant).as_str().to_owned();
    let lost = blob(&admin, &t, &lost_key).await;
    let down = worker(
        &db,
        &[
            "reconcile",
            "--once",
            "--tenant",
            &tenant,
            "--reconcile-safety-secs",
            "0",
        ],
        Some("http://127.0.0.1:9"),
        None,
    );
    let e = down.reconcile().await.unwrap_err();
    assert!(e.contains("ListObjectsV2"), "{e}");
    assert_eq!(missing_since(&admin, lost).await, None);
    assert!(exists(&storage, &in_flight).await);

    assert_eq!(
        storage.abort_multipart(&mpu_key, &mpu).await.unwrap(),
        Aborted::Aborted
    );
    storage.delete(&in_flight).await.unwrap();
}

/// A proxy in front of the bucket at `target` that answers its first `refuse` connections `503
/// SlowDown` (an S3 store shedding load) and passes the others through; its endpoint, and the
/// connections it saw (the worker opens one per request).
async fn shedding_proxy(target: &str, refuse: usize) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let target = target.trim_start_matches("http://").to_owned();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let target = target.clone();
            tokio::spawn(async move {
                if n >= refuse {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
                    }
                    return;
                }
                let mut head = [0u8; 8192];
                let _ = conn.read(&mut head).await;
                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>\
                            <Message>Please reduce your request rate.</Message></Error>";
                let answer = format!(
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/xml\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

/// A store that sheds load for a moment (`503 SlowDown`) is asked again after a short backoff:
/// the run completes and deletes its orphan. One that keeps refusing ends the run after
/// [`ATTEMPTS`] sends of its first request, with the store's reason, and nothing changed.
#[tokio::test]
async fn a_store_shedding_load_is_asked_again_a_bounded_number_of_times() {
    let Some(Fixture {
        cfg,
        storage,
        db,
        admin: _,
        t,
    }) = fixture().await
    else {
        return;
    };
    let tenant = t.tenant.to_string();
    let orphan = ObjectKey::new_upload(t.tenant).as_str().to_owned();
    put_at(&cfg, &orphan, b"an orphan").await;
    let args = [
        "reconcile",
        "--once",
        "--tenant",
        &tenant,
        "--reconcile-safety-secs",
        "0",
    ];

    let (refusing, seen) = shedding_proxy(&cfg.endpoint(), usize::MAX).await;
    let e = worker(&db, &args, Some(&refusing), None)
        .reconcile()
        .await
        .unwrap_err();
    assert!(e.contains("ListObjectsV2") && e.contains("SlowDown"), "{e}");
    assert_eq!(seen.load(Ordering::SeqCst), ATTEMPTS as usize);
    assert!(exists(&storage, &orphan).await);

    let (shedding, seen) = shedding_proxy(&cfg.endpoint(), 2).await;
    let r = worker(&db, &args, Some(&shedding), None)
        .reconcile()
        .await
        .unwrap();
    assert_eq!((r.objects, r.orphans), (1, 1), "{r:?}");
    assert!(!exists(&storage, &orphan).await);
    assert!(
        seen.load(Ordering::SeqCst) > 2,
        "the refused requests were sent again"
    );
}

/// A scan callback that answers every request `204` (the app's answer to an applied verdict).
async fn accepting_callback() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                // The head, then as many body bytes as it announces.
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    format!("http://{addr}/api/v1/scan/callback")
}

#[tokio::test]
async fn metrics_count_a_scanned_job() {
    let Some(cfg) = bucket() else { return };
    if var("CLAMD_ADDR").is_none() {
        eprintln!("CLAMD_ADDR is not set: skipped");
        return;
    }
    let storage = Storage::new(cfg.clone()).unwrap();
    let db = common::TestDb::migrated().await;
    let admin = db.admin().await;
    let t = common::tenant_with_rows(&admin).await;
    let key = ObjectKey::new_upload(t.tenant).as_str().to_owned();
    let content = b"%PDF-1.7\n% a clean document\n%%EOF\n";
    put_at(&cfg, &key, content).await;
    let b: Uuid = admin
        .query_one(
            "INSERT INTO attachment_blobs (tenant_id, content_sha256, size_bytes, storage_key)
             VALUES ($1, $2, $3, $4) RETURNING id",
            &[
                &t.tenant,
                &common::random_hex(32),
                &(content.len() as i64),
                &key,
            ],
        )
        .await
        .unwrap()
        .get(0);
    admin
        .execute(
            "INSERT INTO scan_jobs (tenant_id, blob_id) VALUES ($1, $2)",
            &[&t.tenant, &b],
        )
        .await
        .unwrap();

    let callback = accepting_callback().await;
    let w = worker(&db, &["--once", "--queues", "scan"], None, Some(&callback));
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let addr = scan_worker::metrics::serve(w.clone(), "127.0.0.1:0".parse().unwrap(), rx.clone())
        .await
        .unwrap();
    let scrape = || async {
        let res = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        assert!(res.headers().get("content-type").is_some_and(|v| {
            v.to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        }));
        res.text().await.unwrap()
    };
    // Before: one job pending, none claimed.
    let before = scrape().await;
    assert!(
        before
            .lines()
            .any(|l| l == "scan_worker_queue_depth{queue=\"scan\"} 1"),
        "{before}"
    );
    assert!(
        before.lines().any(|l| l == "scan_worker_queue_stats_up 1"),
        "{before}"
    );

    let summary = w.clone().run(rx).await.unwrap();
    assert_eq!((summary.jobs, summary.posted), (1, 1), "{summary:?}");

    let text = scrape().await;
    // It parses: every sample line is `name[{labels}] value` with a number.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        assert!(name.starts_with("scan_worker_"), "{line}");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
    for line in [
        "scan_worker_jobs_claimed_total{queue=\"scan\"} 1",
        "scan_worker_verdicts_total{status=\"clean\"} 1",
        "scan_worker_jobs_finished_total{outcome=\"posted\"} 1",
        "scan_worker_scan_duration_seconds_count 1",
        "scan_worker_queue_depth{queue=\"scan\"} 0",
        "scan_worker_oldest_pending_job_age_seconds 0.0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    storage.delete(&key).await.unwrap();
}
