//! The SECURITY DEFINER entry points the auth and scan-callback components call before a tenant is known.

mod common;

use common::{TestDb, random_hex, set_tenant, tenant_with_rows};
use tokio_postgres::Client;
use uuid::Uuid;

const ROTATE: &str = "SELECT outcome, tenant_id, user_id, family_id, new_token_id FROM auth_rotate_refresh_token($1, $2, $3)";

async fn rotate(c: &Client, old: &str, new: &str) -> (String, Option<Uuid>) {
    let r = c
        .query_one(ROTATE, &[&old, &new, &(i64::MAX / 2)])
        .await
        .unwrap();
    (r.get(0), r.get(4))
}

/// Login as the auth component does it: insert a refresh token under the user's tenant.
async fn issue(app: &mut Client, tenant: Uuid, user: Uuid, expires_in_ms: i64) -> String {
    let hash = random_hex(32);
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, tenant).await;
    tx.execute(
        "INSERT INTO refresh_tokens (tenant_id, user_id, family_id, token_hash, expires_at)
         VALUES ($1, $2, gen_random_uuid(), $3, app_now_ms() + $4)",
        &[&tenant, &user, &hash, &expires_in_ms],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    hash
}

#[tokio::test]
async fn login_lookup_works_without_a_tenant_and_returns_one_user() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let a = tenant_with_rows(&admin).await;
    let _b = tenant_with_rows(&admin).await;
    let app = db.app().await;

    let email: String = admin
        .query_one("SELECT email FROM users WHERE id = $1", &[&a.user])
        .await
        .unwrap()
        .get(0);
    let rows = app
        .query(
            "SELECT user_id, tenant_id, password_hash, role, active FROM auth_lookup_user($1)",
            &[&format!("  {}  ", email.to_uppercase())],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "lookup must be case-insensitive and trimmed");
    assert_eq!(rows[0].get::<_, Uuid>(0), a.user);
    assert_eq!(rows[0].get::<_, Uuid>(1), a.tenant);
    assert!(rows[0].get::<_, String>(2).starts_with("$argon2id$"));
    assert_eq!(rows[0].get::<_, String>(3), "admin");
    assert!(rows[0].get::<_, bool>(4));
    assert!(
        app.query("SELECT * FROM auth_lookup_user('nobody@nowhere.test')", &[])
            .await
            .unwrap()
            .is_empty()
    );

    // A disabled tenant disables its users.
    admin
        .execute(
            "UPDATE tenants SET active = false WHERE id = $1",
            &[&a.tenant],
        )
        .await
        .unwrap();
    let active: bool = app
        .query_one("SELECT active FROM auth_lookup_user($1)", &[&email])
        .await
        .unwrap()
        .get(0);
    assert!(!active);

    // Emails are unique across tenants, whatever their case.
    let r = admin
        .execute(
            "INSERT INTO users (tenant_id, email, password_hash) VALUES ($1, $2, $3)",
            &[&_b.tenant, &email.to_uppercase(), &common::DUMMY_HASH],
        )
        .await;
    assert_eq!(common::sqlstate(&r).as_deref(), Some("23505"));

    // The scan callback's {"attachmentId"} resolves to its tenant without a tenant setting.
    let r = store::verdicts::resolve_attachment(&app, a.attachment)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((*r.tenant.as_uuid(), r.blob), (a.tenant, a.blob));
    assert_eq!(
        store::verdicts::resolve_attachment(&app, Uuid::new_v4())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn refresh_rotation_detects_reuse_and_revokes_the_family() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let mut app = db.app().await;

    let h1 = issue(&mut app, t.tenant, t.user, 3_600_000).await;
    let (h2, h3, h4) = (random_hex(32), random_hex(32), random_hex(32));
    let (outcome, new2) = rotate(&app, &h1, &h2).await;
    assert_eq!(outcome, "rotated");
    assert!(new2.is_some());
    assert_eq!(rotate(&app, &h2, &h3).await.0, "rotated");

    // h1 was rotated away: presenting it again is reuse; the whole family (h3 included) dies.
    assert_eq!(
        rotate(&app, &h1, &h4).await,
        ("reuse_detected".to_string(), None)
    );
    let live: i64 = admin
        .query_one(
            "SELECT count(*) FROM refresh_tokens WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)
               AND revoked_at IS NULL",
            &[&h1],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 0, "family not revoked after reuse");
    assert_eq!(rotate(&app, &h3, &random_hex(32)).await.0, "revoked");
    assert!(
        admin
            .query_opt("SELECT 1 FROM refresh_tokens WHERE token_hash = $1", &[&h4])
            .await
            .unwrap()
            .is_none()
    );

    assert_eq!(
        rotate(&app, &random_hex(32), &random_hex(32)).await.0,
        "unknown"
    );
    let expired = issue(&mut app, t.tenant, t.user, -1).await;
    assert_eq!(rotate(&app, &expired, &random_hex(32)).await.0, "expired");

    // Logout as the component does it, under the tenant: the token stops working, and is not "reuse".
    let h5 = issue(&mut app, t.tenant, t.user, 3_600_000).await;
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, t.tenant).await;
    let n = tx
        .execute(
            "UPDATE refresh_tokens SET revoked_at = app_now_ms(), revoked_reason = 'logout'
             WHERE token_hash = $1 AND revoked_at IS NULL",
            &[&h5],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    tx.commit().await.unwrap();
    assert_eq!(rotate(&app, &h5, &random_hex(32)).await.0, "revoked");
}

#[tokio::test]
async fn two_concurrent_refreshes_of_one_token_cannot_both_succeed() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let mut c1 = db.app().await;
    let c2 = db.app().await;
    let h = issue(&mut c1, t.tenant, t.user, 3_600_000).await;

    let tx = c1.transaction().await.unwrap();
    let first: String = tx
        .query_one(ROTATE, &[&h, &random_hex(32), &(i64::MAX / 2)])
        .await
        .unwrap()
        .get(0);
    assert_eq!(first, "rotated");
    let h_clone = h.clone();
    let second = tokio::spawn(async move { rotate(&c2, &h_clone, &random_hex(32)).await.0 });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !second.is_finished(),
        "the second refresh did not wait for the first"
    );
    tx.commit().await.unwrap();
    assert_eq!(second.await.unwrap(), "reuse_detected");
}
