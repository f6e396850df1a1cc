//! The quota counters against the real Postgres: the trigger keeps them with every insert, soft
//! delete and hard delete (a purge), the app cannot write them, the check at commit is race-free
//! (concurrent commits near a limit never end above it), and the daily download charge refuses
//! past its limit under concurrency too.

mod common;

use std::sync::Arc;

use auth_core::TenantId;
use common::{TestDb, random_hex, sqlstate, tenant_with_rows};
use quota::Limits;
use store::attachments::{self, NewAttachment};
use store::blobs::{self, NewBlob};
use store::{TenantTx, Tx};
use tokio::sync::Barrier;
use tokio_postgres::Client;

async fn attach(tx: &TenantTx<'_, Client>, t: &common::TenantRows, size: i64) -> uuid::Uuid {
    let hash = random_hex(32);
    let blob = blobs::upsert(
        tx,
        &NewBlob {
            content_sha256: &hash,
            size_bytes: size,
            storage_key: &format!("k-{hash}"),
            sniffed_mime: None,
        },
    )
    .await
    .unwrap();
    attachments::insert(
        tx,
        &NewAttachment {
            id: None,
            message: t.message,
            blob: blob.id,
            uploader: t.user,
            filename: "q.bin",
            declared_mime: None,
            detected_mime: "application/octet-stream",
            size_bytes: size,
            scan_job: None,
            retention: attachments::RetentionDays::DEFAULT,
        },
    )
    .await
    .unwrap()
    .id
}

async fn counters(admin: &Client, t: &common::TenantRows) -> (i64, i64, i64, i64) {
    let r = admin
        .query_one(
            "SELECT tu.stored_bytes, tu.attachments, uu.stored_bytes, uu.attachments
             FROM tenant_usage tu JOIN user_usage uu ON uu.tenant_id = tu.tenant_id
             WHERE tu.tenant_id = $1 AND uu.user_id = $2",
            &[&t.tenant, &t.user],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

#[tokio::test]
async fn counters_follow_inserts_soft_deletes_and_purges() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    // The fixture's attachment: 5 bytes.
    assert_eq!(counters(&admin, &t).await, (5, 1, 5, 1));
    let mut app = db.app().await;
    let tx = Tx::for_tenant(&app, &TenantId::from(t.tenant))
        .await
        .unwrap();
    let a = attach(&tx, &t, 100).await;
    let b = attach(&tx, &t, 1000).await;
    // The transaction sees its own inserts counted.
    let seen = store::quota::stored(&tx, t.user).await.unwrap();
    assert_eq!((seen.tenant_bytes, seen.user_attachments), (1105, 3));
    attachments::soft_delete(&tx, a, 1).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(counters(&admin, &t).await, (1005, 2, 1005, 2));
    // A purge of the soft-deleted row changes nothing; of a live row, gives it back.
    admin
        .execute("DELETE FROM email_attachments WHERE id = $1", &[&a])
        .await
        .unwrap();
    assert_eq!(counters(&admin, &t).await, (1005, 2, 1005, 2));
    admin
        .execute("DELETE FROM email_attachments WHERE id = $1", &[&b])
        .await
        .unwrap();
    assert_eq!(counters(&admin, &t).await, (5, 1, 5, 1));

    // The app reads the counters and limits, never writes them.
    for sql in [
        "UPDATE tenant_usage SET stored_bytes = 0",
        "UPDATE user_usage SET attachments = 0",
        "UPDATE tenant_quotas SET user_bytes = NULL",
        "DELETE FROM user_download_usage",
    ] {
        let tx = app.transaction().await.unwrap();
        common::set_tenant(&tx, t.tenant).await;
        let r = tx.batch_execute(sql).await;
        assert_eq!(sqlstate(&r).as_deref(), Some("42501"), "{sql}: {r:?}");
        tx.rollback().await.unwrap();
    }
}

#[tokio::test]
async fn concurrent_commits_next_to_the_limit_never_end_above_it() {
    const N: usize = 12;
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    // 5 bytes stored already; room for four more of 100, not five.
    let limits = Limits {
        tenant_bytes: Some(450),
        ..Limits::default()
    };
    let barrier = Arc::new(Barrier::new(N));
    let mut tasks = Vec::new();
    for _ in 0..N {
        let c = db.app().await;
        let (barrier, t) = (barrier.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let tx = Tx::for_tenant(&c, &TenantId::from(t.tenant)).await.unwrap();
            barrier.wait().await;
            attach(&tx, &t, 100).await;
            let totals = store::quota::stored(&tx, t.user).await.unwrap();
            match limits.check_stored_after(&totals, 100, 1) {
                Ok(()) => {
                    tx.commit().await.unwrap();
                    true
                }
                Err(e) => {
                    assert_eq!(e.limit, 450);
                    assert!(e.usage + 100 > 450, "{e:?}");
                    tx.rollback().await;
                    false
                }
            }
        }));
    }
    let mut committed = 0;
    for task in tasks {
        committed += usize::from(task.await.unwrap());
    }
    assert_eq!(committed, 4);
    assert_eq!(counters(&admin, &t).await, (405, 5, 405, 5));
}

#[tokio::test]
async fn the_download_charge_refuses_past_the_limit_under_concurrency() {
    const N: usize = 10;
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    // The fixture downloaded 5 bytes today: room for three more charges of 300 within 1000.
    let barrier = Arc::new(Barrier::new(N));
    let mut tasks = Vec::new();
    for _ in 0..N {
        let c = db.app().await;
        let (barrier, t) = (barrier.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let tx = Tx::for_tenant(&c, &TenantId::from(t.tenant)).await.unwrap();
            barrier.wait().await;
            let ok = store::quota::charge_download(&tx, t.user, 300, Some(1000))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            ok
        }));
    }
    let mut charged = 0;
    for task in tasks {
        charged += usize::from(task.await.unwrap());
    }
    assert_eq!(charged, 3);
    let c = db.app().await;
    let tx = Tx::for_tenant(&c, &TenantId::from(t.tenant)).await.unwrap();
    assert_eq!(
        store::quota::downloaded_today(&tx, t.user).await.unwrap(),
        905
    );
    // Unlimited always charges.
    assert!(
        store::quota::charge_download(&tx, t.user, 1 << 40, None)
            .await
            .unwrap()
    );
    let own = store::quota::overrides(&tx).await.unwrap();
    assert_eq!(own.user_bytes, Some(1_000_000));
    assert_eq!(own.tenant_bytes, None);
    tx.rollback().await;
}
