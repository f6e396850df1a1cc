//! Per-tenant content dedup under concurrency: the unique (tenant_id, content_sha256) constraint plus the
//! ingest upsert make concurrent uploads of one content converge on one blob.

mod common;

use std::{sync::Arc, time::Duration};

use auth_core::TenantId;
use common::{TestDb, random_hex, sqlstate, tenant_with_rows};
use store::attachments::{self, NewAttachment};
use store::blobs::{self, NewBlob, Upserted};
use store::{TenantTx, Tx};
use tokio::sync::Barrier;
use tokio_postgres::Client;
use uuid::Uuid;

/// Ingest's blob upsert, as ingest runs it.
async fn upsert(tx: &TenantTx<'_, Client>, hash: &str, size: i64, key: &str) -> Upserted {
    let new = NewBlob {
        content_sha256: hash,
        size_bytes: size,
        storage_key: key,
        sniffed_mime: None,
    };
    blobs::upsert(tx, &new).await.expect("blob upsert")
}

/// Ingest's attachment insert for `blob`.
async fn attach(
    tx: &TenantTx<'_, Client>,
    t: &common::TenantRows,
    blob: Uuid,
    name: &str,
    size: i64,
) {
    let awaited = blobs::awaited_scan(tx, blob, t.user)
        .await
        .expect("awaited scan");
    let new = NewAttachment {
        id: None,
        message: t.message,
        blob,
        uploader: t.user,
        filename: name,
        declared_mime: None,
        detected_mime: "text/plain",
        size_bytes: size,
        scan_job: awaited.job,
        retention: attachments::RetentionDays::DEFAULT,
    };
    attachments::insert(tx, &new)
        .await
        .expect("attachment insert");
}

#[tokio::test]
async fn two_concurrent_uploads_of_one_content_share_one_blob() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let tenant = TenantId::from(t.tenant);
    let hash = random_hex(32);
    let c1 = db.app().await;
    let c2 = db.app().await;
    let c2_pid: i32 = c2
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);

    // Upload 1 inserts the blob and keeps its transaction open (storing the object, say).
    let tx1 = Tx::for_tenant(&c1, &tenant).await.unwrap();
    let r1 = upsert(&tx1, &hash, 10, &format!("key-1-{hash}")).await;
    assert!(r1.inserted);

    // Upload 2 of the same content now has to wait for upload 1's outcome.
    let second = tokio::spawn({
        let hash = hash.clone();
        let t = t.clone();
        async move {
            let tx2 = Tx::for_tenant(&c2, &tenant).await.unwrap();
            let r2 = upsert(&tx2, &hash, 10, &format!("key-2-{hash}")).await;
            attach(&tx2, &t, r2.id, "second.txt", 10).await;
            tx2.commit().await.unwrap();
            r2
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
    assert!(
        waited,
        "the second upsert did not wait for the first (no conflict detected?)"
    );

    attach(&tx1, &t, r1.id, "first.txt", 10).await;
    tx1.commit().await.unwrap();

    let r2 = second.await.unwrap();
    assert_eq!(r2.id, r1.id, "the second upload got its own blob");
    assert!(!r2.inserted, "the second upload claims to have inserted");
    assert_eq!(
        r2.storage_key,
        format!("key-1-{hash}"),
        "the winner's storage key must be kept"
    );
    assert_eq!(r2.scan_status, "pending");

    let row = admin
        .query_one(
            "SELECT count(*), max(ref_count), (SELECT count(*) FROM email_attachments WHERE blob_id = $3)
             FROM attachment_blobs WHERE tenant_id = $1 AND content_sha256 = $2",
            &[&t.tenant, &hash, &r1.id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1, "duplicate blob rows");
    assert_eq!(row.get::<_, i32>(1), 2);
    assert_eq!(
        row.get::<_, i64>(2),
        2,
        "both attachments must reference the blob"
    );
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
        let c = db.app().await;
        let (barrier, hash, t) = (barrier.clone(), hash.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let tx = Tx::for_tenant(&c, &TenantId::from(t.tenant)).await.unwrap();
            barrier.wait().await;
            let r = upsert(&tx, &hash, 3, &format!("k{i}-{hash}")).await;
            attach(&tx, &t, r.id, &format!("f{i}.txt"), 3).await;
            tx.commit().await.unwrap();
            (r.id, r.inserted)
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert_eq!(
        results.iter().filter(|(_, inserted)| *inserted).count(),
        1,
        "exactly one upload must insert"
    );
    assert!(
        results.iter().all(|(b, _)| *b == results[0].0),
        "uploads diverged: {results:?}"
    );
    let refs: i32 = admin
        .query_one(
            "SELECT ref_count FROM attachment_blobs WHERE id = $1",
            &[&results[0].0],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(refs, N as i32);

    // The constraint itself: a plain second INSERT of the same content is refused.
    let mut app = db.app().await;
    let tx = app.transaction().await.unwrap();
    common::set_tenant(&tx, t.tenant).await;
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
    let tx = Tx::for_tenant(&app, &TenantId::from(other.tenant))
        .await
        .unwrap();
    let r = upsert(&tx, &hash, 3, &format!("other-{hash}")).await;
    assert!(r.inserted, "content deduplicated across tenants");
    assert_ne!(r.id, results[0].0);
    tx.commit().await.unwrap();
}
