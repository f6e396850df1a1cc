//! 0008: recording the quarantine of an object (`scan_record_quarantine`), the one way the app may
//! change `storage_key`: only under its tenant, only for infected/suspicious content, only once, only
//! from the key the row still has. The callback's calls go through the store
//! (`store::verdicts::record_quarantine`); what the store's types cannot express (no tenant, an
//! unknown action) is tried with the bare statement.

mod common;

use auth_core::TenantId;
use common::{TestDb, set_tenant, sqlstate, tenant_with_rows};
use scan_core::quarantine::Recorded;
use store::{StoreError, Tx, verdicts};
use tokio_postgres::{Client, GenericClient};
use uuid::Uuid;

/// The bare statement, with any action and without the store's tenant transaction.
async fn record_raw(
    c: &impl GenericClient,
    blob: Uuid,
    from: &str,
    action: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    c.query_one(
        "SELECT scan_record_quarantine($1, $2, $3)",
        &[&blob, &from, &action],
    )
    .await
    .map(|r| r.get(0))
}

/// What the callback runs: one tenant transaction, committed.
async fn record(
    app: &Client,
    tenant: Uuid,
    blob: Uuid,
    from: &str,
    action: Recorded,
) -> Result<Option<String>, StoreError> {
    let tx = Tx::for_tenant(app, &TenantId::from_uuid(tenant)).await?;
    let recorded = verdicts::record_quarantine(&tx, blob, from, action).await;
    match recorded {
        Ok(r) => tx.commit().await.map(|()| r),
        Err(e) => {
            tx.rollback().await;
            Err(e)
        }
    }
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
    assert_eq!(
        record(&app, t.tenant, t.blob, &key, Recorded::Moved)
            .await
            .unwrap(),
        None
    );

    set_status(&admin, t.blob, "infected").await;
    // No tenant, or another tenant: nothing (the function runs as the owner, the filter is explicit).
    assert_eq!(record_raw(&app, t.blob, &key, "moved").await.unwrap(), None);
    assert_eq!(
        record(&app, other.tenant, t.blob, &key, Recorded::Moved)
            .await
            .unwrap(),
        None
    );
    // A key the row does not have (a concurrent callback already moved it): nothing.
    assert_eq!(
        record(&app, t.tenant, t.blob, "somewhere/else", Recorded::Moved)
            .await
            .unwrap(),
        None
    );
    assert_eq!(row(&admin, t.blob).await, (key.clone(), None, false));

    // The real thing.
    let q = format!("quarantine/{key}");
    assert_eq!(
        record(&app, t.tenant, t.blob, &key, Recorded::Moved)
            .await
            .unwrap(),
        Some(q.clone())
    );
    assert_eq!(
        row(&admin, t.blob).await,
        (q.clone(), Some("moved".into()), true)
    );

    // Only once; never from a quarantine key; never an unknown action.
    assert_eq!(
        record(&app, t.tenant, t.blob, &key, Recorded::Moved)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        record(&app, t.tenant, t.blob, &key, Recorded::Deleted)
            .await
            .unwrap(),
        None
    );
    let e = record(&app, t.tenant, t.blob, &q, Recorded::Moved)
        .await
        .unwrap_err();
    assert_eq!(e.sqlstate(), Some("22023"), "{e}");
    for action in ["released", ""] {
        let tx = app.transaction().await.unwrap();
        set_tenant(&tx, t.tenant).await;
        assert_eq!(
            sqlstate(&record_raw(&tx, t.blob, &key, action).await).as_deref(),
            Some("22023"),
            "{action:?}"
        );
        tx.rollback().await.unwrap();
    }

    // The app cannot do any of this by hand.
    for sql in [
        "UPDATE attachment_blobs SET storage_key = 'x' WHERE id = $1",
        "UPDATE attachment_blobs SET quarantine_action = NULL, quarantined_at = NULL WHERE id = $1",
    ] {
        let tx = app.transaction().await.unwrap();
        set_tenant(&tx, t.tenant).await;
        assert_eq!(
            sqlstate(&tx.execute(sql, &[&t.blob]).await).as_deref(),
            Some("42501"),
            "{sql}"
        );
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
    let app = db.app().await;
    assert_eq!(
        record(&app, t.tenant, t.blob, &key, Recorded::Deleted)
            .await
            .unwrap(),
        Some(key.clone())
    );
    assert_eq!(
        row(&admin, t.blob).await,
        (key, Some("deleted".into()), true)
    );

    // The constraints hold even for the owner: a half record, or "moved" to a normal key.
    let other = tenant_with_rows(&admin).await;
    for sql in [
        "UPDATE attachment_blobs SET quarantine_action = 'deleted' WHERE id = $1",
        "UPDATE attachment_blobs SET quarantine_action = 'moved', quarantined_at = 1 WHERE id = $1",
    ] {
        assert_eq!(
            sqlstate(&admin.execute(sql, &[&other.blob]).await).as_deref(),
            Some("23514"),
            "{sql}"
        );
    }
}
