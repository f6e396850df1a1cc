//! Per-tenant content dedup under concurrency: the unique (tenant_id, content_sha256) constraint plus the
//! ingest upsert make concurrent uploads of one content converge on one blob.

mod common;

use std::{sync::Arc, time::Duration};

use common::{TestDb, random_hex, set_tenant, sqlstate, tenant_with_rows};
use tokio::sync::Barrier;
use uuid::Uuid;

/// The statement ingest uses (see 0004_attachments.sql).
const UPSERT: &str = "
    INSERT INTO attachment_blobs (tenant_id, content_sha256, size_bytes, storage_key)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (tenant_id, content_sha256) DO UPDATE SET ref_count = attachment_blobs.ref_count + 1
    RETURNING id, storage_key, ref_count, (xmax = 0) AS inserted";

const ATTACH: &str = "
    INSERT INTO email_attachments (tenant_id, message_id, blob_id, uploader_user_id, filename, size_bytes)
    VALUES ($1, $2, $3, $4, $5, $6)";

#[tokio::test]
async fn two_concurrent_uploads_of_one_content_share_one_blob() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let hash = random_hex(32);
    let mut c1 = db.app().await;
    let mut c2 = db.app().await;
    let c2_pid: i32 = c2.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);

    // Upload 1 inserts the blob and keeps its transaction open (storing the object, say).
    let tx1 = c1.transaction().await.unwrap();
    set_tenant(&tx1, t.tenant).await;
    let r1 = tx1.query_one(UPSERT, &[&t.tenant, &hash, &10i64, &format!("key-1-{hash}")]).await.unwrap();
    assert!(r1.get::<_, bool>("inserted"));
    let blob1: Uuid = r1.get("id");

    // Upload 2 of the same content now has to wait for upload 1's outcome.
    let second = tokio::spawn({
        let hash = hash.clone();
        let t = t.clone();
        async move {
            let tx2 = c2.transaction().await.unwrap();
            set_tenant(&tx2, t.tenant).await;
            let r2 = tx2.query_one(UPSERT, &[&t.tenant, &hash, &10i64, &format!("key-2-{hash}")]).await.unwrap();
            let blob: Uuid = r2.get("id");
            tx2.execute(ATTACH, &[&t.tenant, &t.message, &blob, &t.user, &"second.txt", &10i64]).await.unwrap();
            tx2.commit().await.unwrap();
            (blob, r2.get::<_, String>("storage_key"), r2.get::<_, i32>("ref_count"), r2.get::<_, bool>("inserted"))
        }
    });
    let mut waited = false;
    for _ in 0..100 {
        let waiting: bool = admin
            .query_one(
                "SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1",
                &[&c2_pid],
            )
            .await
            .unwrap()
            .get(0);
        if waiting {
            waited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(waited, "the second upsert did not wait for the first (no conflict detected?)");

    tx1.execute(ATTACH, &[&t.tenant, &t.message, &blob1, &t.user, &"first.txt", &10i64]).await.unwrap();
    tx1.commit().await.unwrap();

    let (blob2, key2, refs2, inserted2) = second.await.unwrap();
    assert_eq!(blob2, blob1, "the second upload got its own blob");
    assert!(!inserted2, "the second upload claims to have inserted");
    assert_eq!(key2, format!("key-1-{hash}"), "the winner's storage key must be kept");
    assert_eq!(refs2, 2);

    let row = admin
        .query_one(
            "SELECT count(*), max(ref_count), (SELECT count(*) FROM email_attachments WHERE blob_id = $3)
             FROM attachment_blobs WHERE tenant_id = $1 AND content_sha256 = $2",
            &[&t.tenant, &hash, &blob1],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1, "duplicate blob rows");
    assert_eq!(row.get::<_, i32>(1), 2);
    assert_eq!(row.get::<_, i64>(2), 2, "both attachments must reference the blob");
}

#[tokio::test]
async fn many_concurrent_uploads_converge_and_plain_duplicates_are_refused() {
    const N: usize = 8;
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let hash = random_hex(32);
    let barrier = Arc::new(Barrier::new(N));
    let mut tasks = Vec::new();
    for i in 0..N {
        let mut c = db.app().await;
        let (barrier, hash, t) = (barrier.clone(), hash.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let tx = c.transaction().await.unwrap();
            set_tenant(&tx, t.tenant).await;
            barrier.wait().await;
            let r = tx.query_one(UPSERT, &[&t.tenant, &hash, &3i64, &format!("k{i}-{hash}")]).await.unwrap();
            let blob: Uuid = r.get("id");
            tx.execute(ATTACH, &[&t.tenant, &t.message, &blob, &t.user, &format!("f{i}.txt"), &3i64]).await.unwrap();
            tx.commit().await.unwrap();
            (blob, r.get::<_, bool>("inserted"))
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert_eq!(results.iter().filter(|(_, inserted)| *inserted).count(), 1, "exactly one upload must insert");
    assert!(results.iter().all(|(b, _)| *b == results[0].0), "uploads diverged: {results:?}");
    let refs: i32 = admin
        .query_one("SELECT ref_count FROM attachment_blobs WHERE id = $1", &[&results[0].0])
        .await
        .unwrap()
        .get(0);
    assert_eq!(refs, N as i32);

    // The constraint itself: a plain second INSERT of the same content is refused.
    let mut app = db.app().await;
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, t.tenant).await;
    let r = tx
        .execute(
            "INSERT INTO attachment_blobs (tenant_id, content_sha256, size_bytes, storage_key) VALUES ($1, $2, 3, 'other')",
            &[&t.tenant, &hash],
        )
        .await;
    assert_eq!(sqlstate(&r).as_deref(), Some("23505"));
    tx.rollback().await.unwrap();

    // Dedup never crosses tenants: the same content in another tenant is a separate blob.
    let other = tenant_with_rows(&admin).await;
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, other.tenant).await;
    let r = tx.query_one(UPSERT, &[&other.tenant, &hash, &3i64, &format!("other-{hash}")]).await.unwrap();
    assert!(r.get::<_, bool>("inserted"), "content deduplicated across tenants");
    assert_ne!(r.get::<_, Uuid>("id"), results[0].0);
    tx.commit().await.unwrap();
}
