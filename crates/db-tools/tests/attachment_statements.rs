//! The statements ingest and download run (crates/store: messages, attachments, blobs), as the app
//! role under row-level security: what they read, what they write, and that another tenant's rows
//! stay invisible to them.

mod common;

use auth_core::TenantId;
use common::{DUMMY_HASH, TestDb, random_hex, tenant_with_rows};
use store::attachments::{self, NewAttachment};
use store::blobs::{self, NewBlob};
use store::{Tx, messages};
use tokio_postgres::Client;
use uuid::Uuid;

async fn second_user(admin: &Client, tenant: Uuid) -> Uuid {
    admin
        .query_one(
            "INSERT INTO users (tenant_id, email, password_hash, role) VALUES ($1, $2, $3, 'user') RETURNING id",
            &[&tenant, &format!("user@{tenant}.test"), &DUMMY_HASH],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn an_upload_then_reading_revoking_and_deleting_it() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let other = tenant_with_rows(&admin).await;
    let colleague = second_user(&admin, t.tenant).await;
    let app = db.app().await;
    let tenant = TenantId::from(t.tenant);

    // The pre-checks of an upload.
    let tx = Tx::for_tenant(&app, &tenant).await.unwrap();
    assert_eq!(
        messages::live_owner(&tx, t.message).await.unwrap(),
        Some(t.user)
    );
    assert_eq!(
        messages::live_owner(&tx, other.message).await.unwrap(),
        None,
        "another tenant's message"
    );
    assert!(
        blobs::held_by_uploader(&tx, &t.content_sha256, t.user)
            .await
            .unwrap()
    );
    assert!(
        !blobs::held_by_uploader(&tx, &t.content_sha256, colleague)
            .await
            .unwrap()
    );
    assert!(
        !blobs::held_by_uploader(&tx, &other.content_sha256, other.user)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    // The commit of an upload: new content gets a scan job; known content a reference.
    let hash = random_hex(32);
    let tx = Tx::for_tenant(&app, &tenant).await.unwrap();
    let new = NewBlob {
        content_sha256: &hash,
        size_bytes: 7,
        storage_key: "k-new",
        sniffed_mime: Some("image/png"),
    };
    let blob = blobs::upsert(&tx, &new).await.unwrap();
    assert!(blob.inserted && blob.storage_key == "k-new" && blob.scan_status == "pending");
    let awaited = blobs::awaited_scan(&tx, blob.id, colleague).await.unwrap();
    assert!(
        !awaited.own_earlier && awaited.job.is_some(),
        "new content: a new job"
    );
    let first = attachments::insert(
        &tx,
        &NewAttachment {
            id: None,
            message: t.message,
            blob: blob.id,
            uploader: colleague,
            filename: "scan.png",
            declared_mime: Some("image/png"),
            detected_mime: "image/png",
            size_bytes: 7,
            scan_job: awaited.job,
            retention: attachments::RetentionDays::DEFAULT,
        },
    )
    .await
    .unwrap();
    let again = blobs::upsert(
        &tx,
        &NewBlob {
            storage_key: "k-again",
            sniffed_mime: None,
            ..new
        },
    )
    .await
    .unwrap();
    assert!(!again.inserted && again.id == blob.id && again.storage_key == "k-new");
    // Another uploader of content whose scan is open awaits that same job, and is not told that
    // the content was there before.
    let second_awaits = blobs::awaited_scan(&tx, blob.id, t.user).await.unwrap();
    assert_eq!(
        (second_awaits.own_earlier, second_awaits.job),
        (false, awaited.job)
    );
    tx.commit().await.unwrap();
    // The copy arrives in a later transaction, as a second upload does: within one transaction
    // `now()` is constant, so which of two same-instant rows is "older" would be the ids' order.
    let tx = Tx::for_tenant(&app, &tenant).await.unwrap();
    let second = attachments::insert(
        &tx,
        &NewAttachment {
            id: None,
            message: t.message,
            blob: blob.id,
            uploader: t.user,
            filename: "copy.png",
            declared_mime: None,
            detected_mime: "image/png",
            size_bytes: 7,
            scan_job: second_awaits.job,
            retention: attachments::RetentionDays::DEFAULT,
        },
    )
    .await
    .unwrap();
    assert_eq!(first.url_generation, 0);
    assert!(second.created_at > first.created_at);
    tx.commit().await.unwrap();
    let jobs: i64 = admin
        .query_one(
            "SELECT count(*) FROM scan_jobs WHERE blob_id = $1 AND status = 'pending'",
            &[&blob.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(jobs, 1);

    // The one read: every column, the sharing flag, the message's owner.
    let tx = Tx::for_tenant(&app, &tenant).await.unwrap();
    let row = attachments::get(&tx, first.id)
        .await
        .unwrap()
        .expect("the attachment");
    assert_eq!(
        (
            row.id,
            row.message_id,
            row.filename.as_str(),
            row.size_bytes,
            row.content_sha256.as_str()
        ),
        (first.id, t.message, "scan.png", 7, hash.as_str())
    );
    assert_eq!(
        (row.mime_type(), row.served_mime()),
        ("image/png", Some("image/png"))
    );
    assert_eq!(
        (row.scan_status.as_str(), row.storage_key.as_str()),
        ("pending", "k-new")
    );
    assert_eq!((row.uploader, row.message_owner), (colleague, t.user));
    assert_eq!(
        (row.created_at, row.url_generation, row.is_deleted),
        (first.created_at, 0, false)
    );
    assert!(!row.is_deduplicated, "the first of its content");
    assert!(row.awaiting_scan && row.reported_status() == "pending");
    let second_row = attachments::get(&tx, second.id).await.unwrap().unwrap();
    assert!(
        !second_row.is_deduplicated,
        "another uploader's earlier copy is not the caller's business"
    );
    assert!(second_row.awaiting_scan);
    let listed: Vec<Uuid> = attachments::list_live(&tx, t.message)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed.len(), 3, "the seeded one and two new: {listed:?}");
    assert!(
        listed.contains(&first.id) && listed.contains(&second.id) && listed.contains(&t.attachment)
    );
    assert_eq!(
        attachments::get(&tx, other.attachment).await.unwrap(),
        None,
        "another tenant's"
    );
    tx.commit().await.unwrap();

    // Revoking bumps the generation; deleting hides it from the list and gives back a reference.
    let tx = Tx::for_tenant(&app, &tenant).await.unwrap();
    let locked = attachments::lock(&tx, first.id).await.unwrap().unwrap();
    assert_eq!(
        (
            locked.uploader,
            locked.is_deleted,
            locked.blob,
            locked.message_owner
        ),
        (colleague, false, blob.id, t.user)
    );
    attachments::bump_url_generation(&tx, first.id)
        .await
        .unwrap();
    attachments::soft_delete(&tx, first.id, 1_700_000_000_000)
        .await
        .unwrap();
    blobs::release(&tx, locked.blob).await.unwrap();
    assert!(
        attachments::lock(&tx, other.attachment)
            .await
            .unwrap()
            .is_none()
    );
    tx.commit().await.unwrap();
    let tx = Tx::for_tenant(&app, &tenant).await.unwrap();
    let row = attachments::get(&tx, first.id).await.unwrap().unwrap();
    assert_eq!((row.is_deleted, row.url_generation), (true, 1));
    let listed = attachments::list_live(&tx, t.message).await.unwrap();
    assert!(listed.iter().all(|r| r.id != first.id));
    // Newest first, ties by id.
    assert!(
        listed
            .windows(2)
            .all(|w| (w[0].created_at, w[0].id) > (w[1].created_at, w[1].id))
    );
    tx.commit().await.unwrap();
    let refs: i32 = admin
        .query_one(
            "SELECT ref_count FROM attachment_blobs WHERE id = $1",
            &[&blob.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(refs, 1);
}
