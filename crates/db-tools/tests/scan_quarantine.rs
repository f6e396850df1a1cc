//! 0008: recording the quarantine of an object (`scan_record_quarantine`), the one way the app may
//! change `storage_key`: only under its tenant, only for infected/suspicious content, only once, only
//! from the key the row still has.

mod common;

use common::{TestDb, set_tenant, sqlstate, tenant_with_rows};
use tokio_postgres::{Client, GenericClient};
use uuid::Uuid;

async fn record(c: &impl GenericClient, blob: Uuid, from: &str, action: &str) -> Result<Option<String>, tokio_postgres::Error> {
    c.query_one("SELECT scan_record_quarantine($1, $2, $3)", &[&blob, &from, &action]).await.map(|r| r.get(0))
}

async fn row(admin: &Client, blob: Uuid) -> (String, Option<String>, bool) {
    let r = admin
        .query_one(
            "SELECT storage_key, quarantine_action, quarantined_at IS NOT NULL FROM attachment_blobs WHERE id = $1",
            &[&blob],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

async fn set_status(admin: &Client, blob: Uuid, status: &str) {
    admin
        .execute(
            "UPDATE attachment_blobs SET scan_status = $2, scanned_at = coalesce(scanned_at, 0) + 1 WHERE id = $1",
            &[&blob, &status],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn moved_only_under_the_tenant_for_quarantine_content_once() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let other = tenant_with_rows(&admin).await;
    let (key, _, _) = row(&admin, t.blob).await;
    let mut app = db.app().await;

    // Not quarantine content yet: nothing happens, even for the right tenant and key.
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, t.tenant).await;
    assert_eq!(record(&tx, t.blob, &key, "moved").await.unwrap(), None);
    tx.commit().await.unwrap();

    set_status(&admin, t.blob, "infected").await;
    // No tenant, or another tenant: nothing (the function runs as the owner, the filter is explicit).
    assert_eq!(record(&app, t.blob, &key, "moved").await.unwrap(), None);
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, other.tenant).await;
    assert_eq!(record(&tx, t.blob, &key, "moved").await.unwrap(), None);
    tx.commit().await.unwrap();
    // A key the row does not have (a concurrent callback already moved it): nothing.
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, t.tenant).await;
    assert_eq!(record(&tx, t.blob, "somewhere/else", "moved").await.unwrap(), None);
    tx.commit().await.unwrap();
    assert_eq!(row(&admin, t.blob).await, (key.clone(), None, false));

    // The real thing.
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, t.tenant).await;
    let q = format!("quarantine/{key}");
    assert_eq!(record(&tx, t.blob, &key, "moved").await.unwrap(), Some(q.clone()));
    tx.commit().await.unwrap();
    assert_eq!(row(&admin, t.blob).await, (q.clone(), Some("moved".into()), true));

    // Only once; never from a quarantine key; never an unknown action.
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, t.tenant).await;
    assert_eq!(record(&tx, t.blob, &key, "moved").await.unwrap(), None);
    assert_eq!(record(&tx, t.blob, &key, "deleted").await.unwrap(), None);
    tx.commit().await.unwrap();
    for (from, action) in [(q.as_str(), "moved"), (key.as_str(), "released"), (key.as_str(), "")] {
        let tx = app.transaction().await.unwrap();
        set_tenant(&tx, t.tenant).await;
        assert_eq!(sqlstate(&record(&tx, t.blob, from, action).await).as_deref(), Some("22023"), "{from} {action}");
        tx.rollback().await.unwrap();
    }

    // The app cannot do any of this by hand.
    for sql in [
        "UPDATE attachment_blobs SET storage_key = 'x' WHERE id = $1",
        "UPDATE attachment_blobs SET quarantine_action = NULL, quarantined_at = NULL WHERE id = $1",
    ] {
        let tx = app.transaction().await.unwrap();
        set_tenant(&tx, t.tenant).await;
        assert_eq!(sqlstate(&tx.execute(sql, &[&t.blob]).await).as_deref(), Some("42501"), "{sql}");
        tx.rollback().await.unwrap();
    }
    assert_eq!(row(&admin, t.blob).await, (q, Some("moved".into()), true));
}

#[tokio::test]
async fn deleted_keeps_the_key_and_the_record_is_consistent() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let (key, _, _) = row(&admin, t.blob).await;
    set_status(&admin, t.blob, "suspicious").await;
    let mut app = db.app().await;
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, t.tenant).await;
    assert_eq!(record(&tx, t.blob, &key, "deleted").await.unwrap(), Some(key.clone()));
    tx.commit().await.unwrap();
    assert_eq!(row(&admin, t.blob).await, (key, Some("deleted".into()), true));

    // The constraints hold even for the owner: a half record, or "moved" to a normal key.
    let other = tenant_with_rows(&admin).await;
    for sql in [
        "UPDATE attachment_blobs SET quarantine_action = 'deleted' WHERE id = $1",
        "UPDATE attachment_blobs SET quarantine_action = 'moved', quarantined_at = 1 WHERE id = $1",
    ] {
        assert_eq!(sqlstate(&admin.execute(sql, &[&other.blob]).await).as_deref(), Some("23514"), "{sql}");
    }
}
