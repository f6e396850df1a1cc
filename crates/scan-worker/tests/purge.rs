//! The retention purge against the real services: a fresh real Postgres database per test
//! (`DATABASE_ADMIN_URL`, as the database tests) and the real bucket (Garage; `S3_*`). Time is
//! moved by writing timestamps in the past, never by sleeping. A crash is the real binary aborting
//! at a fault hook (`PURGE_FAULT`), then run again. Without `S3_ENDPOINT` a test passes with a note
//! (like `tests/uploads.rs`).

#[path = "../../db-tools/tests/common/mod.rs"]
mod common;
mod support;

use std::process::Command;
use std::sync::Arc;

use auth_core::TenantId;
use scan_worker::config::Config;
use scan_worker::storage::Storage;
use scan_worker::worker::Worker;
use sha2::{Digest, Sha256};
use storage::StorageConfig;
use store::blobs::{self, NewBlob};
use support::{Fixture, bucket, exists, fixture, put, scanner_url, var};
use uuid::Uuid;

const DAY_MS: i64 = 86_400_000;

/// The environment of `scan-worker purge` for a test database; `endpoint` replaces the bucket's.
fn purge_env(db: &common::TestDb, endpoint: Option<&str>) -> Vec<(String, String)> {
    let mut env = vec![("SCAN_DATABASE_URL".to_owned(), scanner_url(db))];
    for k in [
        "S3_ENDPOINT",
        "S3_REGION",
        "S3_BUCKET",
        "S3_ACCESS_KEY_ID",
        "S3_SECRET_ACCESS_KEY",
    ] {
        if let Some(v) = var(k) {
            env.push((k.to_owned(), v));
        }
    }
    if let Some(e) = endpoint {
        env.retain(|(k, _)| k != "S3_ENDPOINT");
        env.push(("S3_ENDPOINT".into(), e.into()));
    }
    env
}

/// A purge-only worker (`scan-worker purge --once`) over the test database.
fn purger(db: &common::TestDb, endpoint: Option<&str>) -> Arc<Worker> {
    let env = purge_env(db, endpoint);
    let c = Config::parse(
        [
            "purge".to_owned(),
            "--once".to_owned(),
            "--worker-name=purge-test".to_owned(),
            "--purge-batch=2".to_owned(),
        ],
        move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
        || "unused".into(),
    )
    .unwrap();
    Arc::new(Worker::new(c).unwrap())
}

/// A blob of `t`'s tenant with its object in the bucket; (blob, key).
async fn blob(
    admin: &tokio_postgres::Client,
    cfg: &StorageConfig,
    t: &common::TenantRows,
    content: &[u8],
    refs: i32,
) -> (Uuid, String) {
    let key = put(cfg, t.tenant, content).await;
    let sha = hex::encode(Sha256::digest(content));
    let id: Uuid = admin
        .query_one(
            "INSERT INTO attachment_blobs (tenant_id, content_sha256, size_bytes, storage_key, ref_count)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&t.tenant, &sha, &(content.len() as i64), &key, &refs],
        )
        .await
        .unwrap()
        .get(0);
    (id, key)
}

/// An attachment of `blob` whose retention ends `expires_in_days` from now, soft-deleted
/// `deleted_days_ago` days ago if given.
async fn attachment(
    admin: &tokio_postgres::Client,
    t: &common::TenantRows,
    blob: Uuid,
    expires_in_days: i64,
    deleted_days_ago: Option<i64>,
) -> Uuid {
    admin
        .query_one(
            "INSERT INTO email_attachments (tenant_id, message_id, blob_id, uploader_user_id, filename,
                 size_bytes, retention_expires_at, is_deleted, deleted_at)
             VALUES ($1, $2, $3, $4, 'a.txt', 5, app_now_ms() + $5::bigint * 86400000, $6::bigint IS NOT NULL,
                     app_now_ms() - $6::bigint * 86400000)
             RETURNING id",
            &[&t.tenant, &t.message, &blob, &t.user, &expires_in_days, &deleted_days_ago],
        )
        .await
        .unwrap()
        .get(0)
}

async fn count(admin: &tokio_postgres::Client, sql: &str, id: Uuid) -> i64 {
    admin.query_one(sql, &[&id]).await.unwrap().get(0)
}

async fn attachment_exists(admin: &tokio_postgres::Client, id: Uuid) -> bool {
    count(
        admin,
        "SELECT count(*) FROM email_attachments WHERE id = $1",
        id,
    )
    .await
        == 1
}

async fn blob_state(admin: &tokio_postgres::Client, id: Uuid) -> Option<(i32, bool)> {
    admin
        .query_opt(
            "SELECT ref_count, purging_at IS NOT NULL FROM attachment_blobs WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
}

#[tokio::test]
async fn expired_and_long_deleted_attachments_go_held_and_recent_ones_stay() {
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

    let (expired_blob, expired_key) = blob(&admin, &cfg, &t, b"past retention", 1).await;
    let expired = attachment(&admin, &t, expired_blob, -1, None).await;
    let (deleted_blob, deleted_key) = blob(&admin, &cfg, &t, b"deleted long ago", 0).await;
    let deleted = attachment(&admin, &t, deleted_blob, 60, Some(31)).await;
    let (recent_blob, recent_key) = blob(&admin, &cfg, &t, b"deleted yesterday", 0).await;
    let recent = attachment(&admin, &t, recent_blob, 60, Some(1)).await;
    let (live_blob, live_key) = blob(&admin, &cfg, &t, b"within retention", 1).await;
    let live = attachment(&admin, &t, live_blob, 1, None).await;
    // A legal hold on the attachment, and one on a message, keep expired attachments.
    let (held_blob, held_key) = blob(&admin, &cfg, &t, b"on legal hold", 1).await;
    let held = attachment(&admin, &t, held_blob, -400, Some(400)).await;
    admin
        .execute(
            "UPDATE email_attachments SET legal_hold = true WHERE id = $1",
            &[&held],
        )
        .await
        .unwrap();
    let other_message: Uuid = admin
        .query_one(
            "INSERT INTO email_messages (tenant_id, account_id, folder_id, owner_user_id, message_id, imap_uid,
                 subject, from_address, to_addresses, body_text, legal_hold)
             VALUES ($1, $2, $3, $4, $5, 2, 'held', 'a@example.test', ARRAY['b@example.test'], 'x', true)
             RETURNING id",
            &[&t.tenant, &t.account, &t.folder, &t.user, &format!("{}@test", Uuid::new_v4())],
        )
        .await
        .unwrap()
        .get(0);
    let (msg_held_blob, msg_held_key) = blob(&admin, &cfg, &t, b"message on hold", 1).await;
    let msg_held = attachment(&admin, &t, msg_held_blob, -1, None).await;
    admin
        .execute(
            "UPDATE email_attachments SET message_id = $2 WHERE id = $1",
            &[&msg_held, &other_message],
        )
        .await
        .unwrap();

    let worker = purger(&db, None);
    // A dry run lists the two and changes nothing.
    let dry = worker.purge_dry_run().await.unwrap();
    assert_eq!((dry.attachments, dry.blobs), (2, 2), "{dry:?}");
    assert!(attachment_exists(&admin, expired).await);

    let (_tx, rx) = tokio::sync::watch::channel(false);
    let s = worker.purge_pass(&rx).await.unwrap();
    assert_eq!(
        (
            s.attachments,
            s.by_retention,
            s.by_deletion,
            s.blobs,
            s.left
        ),
        (2, 1, 1, 2, 0),
        "{s:?}"
    );
    for (gone, blob, key) in [
        (expired, expired_blob, &expired_key),
        (deleted, deleted_blob, &deleted_key),
    ] {
        assert!(!attachment_exists(&admin, gone).await);
        assert_eq!(blob_state(&admin, blob).await, None);
        assert!(!exists(&storage, key).await, "{key} still stored");
    }
    for (kept, blob, key) in [
        (recent, recent_blob, &recent_key),
        (live, live_blob, &live_key),
        (held, held_blob, &held_key),
        (msg_held, msg_held_blob, &msg_held_key),
    ] {
        assert!(attachment_exists(&admin, kept).await);
        assert!(blob_state(&admin, blob).await.is_some());
        assert!(exists(&storage, key).await, "{key} deleted");
    }
    // The tenant fixture's attachment (no retention recorded) is not the purge's.
    assert!(attachment_exists(&admin, t.attachment).await);

    // Audited as the system (no user), with the reason.
    let mut rows: Vec<(String, String, Option<Uuid>, String)> = admin
        .query(
            "SELECT action, resource_id, user_id, coalesce(details->>'reason', '')
               FROM email_audit_log WHERE tenant_id = $1 AND action LIKE '%.purge'",
            &[&t.tenant],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    rows.sort();
    let mut want = vec![
        (
            "attachment.purge".to_owned(),
            expired.to_string(),
            None,
            "retention".to_owned(),
        ),
        (
            "attachment.purge".to_owned(),
            deleted.to_string(),
            None,
            "deleted".to_owned(),
        ),
        (
            "blob.purge".to_owned(),
            expired_blob.to_string(),
            None,
            String::new(),
        ),
        (
            "blob.purge".to_owned(),
            deleted_blob.to_string(),
            None,
            String::new(),
        ),
    ];
    want.sort();
    assert_eq!(rows, want);

    // Lifting the hold lets the next run take it.
    admin
        .execute(
            "UPDATE email_attachments SET legal_hold = false WHERE id = $1",
            &[&held],
        )
        .await
        .unwrap();
    let s = worker.purge_pass(&rx).await.unwrap();
    assert_eq!((s.attachments, s.blobs), (1, 1), "{s:?}");
    assert!(!exists(&storage, &held_key).await);
    for key in [recent_key, live_key, msg_held_key] {
        storage.delete(&key).await.unwrap();
    }
}

#[tokio::test]
async fn a_deduplicated_blob_survives_the_purge_of_one_of_its_attachments_and_goes_with_the_second()
{
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
    let (shared, key) = blob(&admin, &cfg, &t, b"shared content", 2).await;
    let first = attachment(&admin, &t, shared, -1, None).await;
    let second = attachment(&admin, &t, shared, 10, None).await;

    let worker = purger(&db, None);
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let s = worker.purge_pass(&rx).await.unwrap();
    assert_eq!((s.attachments, s.blobs), (1, 0), "{s:?}");
    assert!(!attachment_exists(&admin, first).await);
    // One reference given back; the content and its object stay for the second attachment.
    assert_eq!(blob_state(&admin, shared).await, Some((1, false)));
    assert!(exists(&storage, &key).await);

    // The second one's retention ends (moved into the past).
    admin
        .execute(
            "UPDATE email_attachments SET retention_expires_at = app_now_ms() - 1 WHERE id = $1",
            &[&second],
        )
        .await
        .unwrap();
    let s = worker.purge_pass(&rx).await.unwrap();
    assert_eq!((s.attachments, s.blobs), (1, 1), "{s:?}");
    assert_eq!(blob_state(&admin, shared).await, None);
    assert!(!exists(&storage, &key).await);
}

/// Runs `scan-worker purge --once` as its own process; its exit status.
fn run_purge(db: &common::TestDb, fault: Option<&str>) -> std::process::ExitStatus {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scan-worker"));
    cmd.args(["purge", "--once", "--worker-name=purge-crash"])
        .env_clear()
        .envs(purge_env(db, None))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(f) = fault {
        cmd.env("PURGE_FAULT", f);
    }
    cmd.status().expect("run scan-worker")
}

#[tokio::test]
async fn a_purge_killed_between_its_two_deletes_is_finished_by_the_next_run() {
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

    for fault in ["after-rows", "after-object"] {
        let (b, key) = blob(&admin, &cfg, &t, fault.as_bytes(), 1).await;
        let a = attachment(&admin, &t, b, -1, None).await;

        let status = run_purge(&db, Some(fault));
        assert!(!status.success(), "{fault}: the fault hook did not stop it");
        // The row is gone and its content purging: no live row points at it, whatever became of
        // the object.
        assert!(!attachment_exists(&admin, a).await, "{fault}");
        assert_eq!(blob_state(&admin, b).await, Some((0, true)), "{fault}");
        assert_eq!(
            exists(&storage, &key).await,
            fault == "after-rows",
            "{fault}"
        );

        // An upload of the same content meanwhile never joins the purging blob: it gets a new
        // one (with an object of its own).
        let app = db.app().await;
        let tx = store::Tx::for_tenant(&app, &TenantId::from_uuid(t.tenant))
            .await
            .unwrap();
        let sha = hex::encode(Sha256::digest(fault.as_bytes()));
        let new_key = put(&cfg, t.tenant, fault.as_bytes()).await;
        let up = blobs::upsert(
            &tx,
            &NewBlob {
                content_sha256: &sha,
                size_bytes: fault.len() as i64,
                storage_key: &new_key,
                sniffed_mime: None,
            },
        )
        .await
        .unwrap();
        tx.rollback().await;
        assert!(
            up.inserted && up.id != b && up.storage_key == new_key,
            "{fault}: {up:?}"
        );
        storage.delete(&new_key).await.unwrap();

        // Run again (the same worker name: a restarted replica resumes its own lease).
        assert!(run_purge(&db, None).success(), "{fault}: rerun");
        assert_eq!(blob_state(&admin, b).await, None, "{fault}");
        assert!(!exists(&storage, &key).await, "{fault}");
    }

    // Another worker takes a crashed one's purging blob once its lease has expired (moved into
    // the past here).
    let (b, key) = blob(&admin, &cfg, &t, b"other worker", 1).await;
    attachment(&admin, &t, b, -1, None).await;
    assert!(!run_purge(&db, Some("after-rows")).success());
    admin
        .execute(
            "UPDATE attachment_blobs SET purge_locked_by = 'gone-worker', purge_lease_expires_at = app_now_ms() + 60000
              WHERE id = $1",
            &[&b],
        )
        .await
        .unwrap();
    let worker = purger(&db, None);
    let (_tx, rx) = tokio::sync::watch::channel(false);
    // Leased to a live-looking worker: left alone.
    assert_eq!(worker.purge_pass(&rx).await.unwrap().blobs, 0);
    assert!(exists(&storage, &key).await);
    admin
        .execute(
            "UPDATE attachment_blobs SET purge_lease_expires_at = app_now_ms() - 1 WHERE id = $1",
            &[&b],
        )
        .await
        .unwrap();
    assert_eq!(worker.purge_pass(&rx).await.unwrap().blobs, 1);
    assert!(!exists(&storage, &key).await);
    assert_eq!(blob_state(&admin, b).await, None);
}

#[tokio::test]
async fn a_purge_against_an_unreachable_bucket_fails_and_changes_nothing() {
    let Some(cfg) = bucket() else { return };
    let db = common::TestDb::migrated().await;
    let admin = db.admin().await;
    let t = common::tenant_with_rows(&admin).await;
    let (b, key) = blob(&admin, &cfg, &t, b"unreachable", 1).await;
    let a = attachment(&admin, &t, b, -1, None).await;

    // Port 9 (discard) on loopback: nothing answers.
    let worker = purger(&db, Some("http://127.0.0.1:9"));
    let (_tx, rx) = tokio::sync::watch::channel(false);
    assert!(worker.purge_pass(&rx).await.is_err());
    assert!(attachment_exists(&admin, a).await);
    assert_eq!(blob_state(&admin, b).await, Some((1, false)));
    Storage::new(cfg).unwrap().delete(&key).await.unwrap();
}

#[tokio::test]
async fn the_scanner_role_may_purge_only_through_the_functions() {
    let db = common::TestDb::migrated().await;
    let scanner = db.scanner().await;
    let denied = scanner.execute("DELETE FROM email_attachments", &[]).await;
    assert_eq!(common::sqlstate(&denied).as_deref(), Some("42501"));
    // The app may not mark content purging, nor change its lease or retention.
    let app = db.app().await;
    for sql in [
        "UPDATE attachment_blobs SET purging_at = 1",
        "UPDATE attachment_blobs SET purge_locked_by = 'x'",
        "UPDATE tenants SET retention_days = 1",
        "DELETE FROM email_attachments",
    ] {
        let denied = app.execute(sql, &[]).await;
        assert_eq!(common::sqlstate(&denied).as_deref(), Some("42501"), "{sql}");
    }
    // Absurd arguments are refused by the database too.
    let refused = scanner
        .query("SELECT * FROM purge_attachments('w', -1, 10)", &[])
        .await;
    assert_eq!(common::sqlstate(&refused).as_deref(), Some("22023"));
}

#[tokio::test]
async fn new_attachments_get_their_retention_from_the_tenant_or_the_default() {
    let db = common::TestDb::migrated().await;
    let admin = db.admin().await;
    let t = common::tenant_with_rows(&admin).await;
    let app = db.app().await;
    let tenant = TenantId::from_uuid(t.tenant);

    async fn insert(
        app: &tokio_postgres::Client,
        tenant: &TenantId,
        t: &common::TenantRows,
        days: &str,
    ) -> store::attachments::Inserted {
        let tx = store::Tx::for_tenant(app, tenant).await.unwrap();
        let row = store::attachments::insert(
            &tx,
            &store::attachments::NewAttachment {
                id: None,
                message: t.message,
                blob: t.blob,
                uploader: t.user,
                filename: "r.txt",
                declared_mime: None,
                detected_mime: "text/plain",
                size_bytes: 5,
                scan_job: None,
                retention: store::attachments::RetentionDays::parse(days).unwrap(),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        row
    }

    let row = insert(&app, &tenant, &t, "90").await;
    assert_eq!(row.retention_expires_at - row.created_at, 90 * DAY_MS);
    let stored: Option<i64> = admin
        .query_one(
            "SELECT retention_expires_at FROM email_attachments WHERE id = $1",
            &[&row.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, Some(row.retention_expires_at));
    let row = insert(&app, &tenant, &t, "7").await;
    assert_eq!(row.retention_expires_at - row.created_at, 7 * DAY_MS);

    // The tenant's own retention wins over the app's.
    admin
        .execute(
            "UPDATE tenants SET retention_days = 365 WHERE id = $1",
            &[&t.tenant],
        )
        .await
        .unwrap();
    let row = insert(&app, &tenant, &t, "7").await;
    assert_eq!(row.retention_expires_at - row.created_at, 365 * DAY_MS);
    // Absurd per-tenant values are refused by the database.
    for bad in [0, -1, 36_501] {
        let r = admin
            .execute(
                "UPDATE tenants SET retention_days = $2 WHERE id = $1",
                &[&t.tenant, &bad],
            )
            .await;
        assert_eq!(common::sqlstate(&r).as_deref(), Some("23514"), "{bad}");
    }
}
