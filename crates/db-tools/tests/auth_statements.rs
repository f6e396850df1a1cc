//! The token service's statements (`store::identity`, `store::sessions`, the read side of
//! `store::audit_log`) on the real schema, as the app role, through the functions the auth component
//! and middleware call.

mod common;

use auth_core::refresh::{FamilyId, RefreshToken, RotateOutcome, TokenHash};
use auth_core::{Email, Role, TenantId, UserId};
use common::{DUMMY_HASH, TestDb, tenant_with_rows};
use serde_json::json;
use store::audit_log::{self, AuditEntry, Cursor};
use store::{Tx, identity, sessions};
use tokio_postgres::Client;
use uuid::Uuid;

/// Far in the future, epoch milliseconds.
const LATER_MS: i64 = 4_000_000_000_000;
/// A family that outlives the test, no grace window (the grace tests set their own).
const LIMITS: sessions::RotationLimits = sessions::RotationLimits {
    family_max_age_ms: 10 * 365 * 24 * 3600 * 1000,
    grace_ms: 0,
};

async fn add_user(admin: &Client, tenant: Uuid, role: &str) -> Uuid {
    admin
        .query_one(
            "INSERT INTO users (tenant_id, email, password_hash, role) VALUES ($1, $2, $3, $4) RETURNING id",
            &[&tenant, &format!("{}@{tenant}.test", Uuid::new_v4().simple()), &DUMMY_HASH, &role],
        )
        .await
        .unwrap()
        .get(0)
}

/// A login's first refresh token, as the token route stores it.
async fn login(app: &Client, tenant: Uuid, user: Uuid) -> (TokenHash, FamilyId) {
    let token = RefreshToken::generate().unwrap().storage_hash();
    let family = FamilyId::generate().unwrap();
    let tx = Tx::for_tenant(app, &TenantId::from_uuid(tenant))
        .await
        .unwrap();
    sessions::start_family(&tx, &UserId::from_uuid(user), &family, &token, LATER_MS)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (token, family)
}

async fn rotate(app: &Client, presented: &TokenHash) -> (sessions::Rotation, TokenHash) {
    let next = RefreshToken::generate().unwrap().storage_hash();
    let tx = Tx::begin(app).await.unwrap();
    let r = sessions::rotate(&tx, presented, &next, LATER_MS, LIMITS)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (r, next)
}

#[tokio::test]
async fn the_login_lookup_and_the_callers_own_record() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let (a, b) = (
        tenant_with_rows(&admin).await,
        tenant_with_rows(&admin).await,
    );
    let app = db.app().await;
    let email: String = admin
        .query_one("SELECT email FROM users WHERE id = $1", &[&a.user])
        .await
        .unwrap()
        .get(0);

    let u = identity::login_user(&app, &Email::parse(&email.to_uppercase()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (u.id, u.tenant, u.role),
        (
            UserId::from_uuid(a.user),
            TenantId::from_uuid(a.tenant),
            Role::Admin
        )
    );
    assert!(u.active);
    assert!(u.password_hash.starts_with("$argon2id$"));
    let nobody = Email::parse("nobody@nowhere.test").unwrap();
    assert!(identity::login_user(&app, &nobody).await.unwrap().is_none());

    let tx = Tx::for_tenant(&app, &TenantId::from_uuid(a.tenant))
        .await
        .unwrap();
    let me = identity::current_user(&tx, &UserId::from_uuid(a.user))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(me.email, email);
    assert!(me.active);
    assert!(
        identity::current_user(&tx, &UserId::from_uuid(b.user))
            .await
            .unwrap()
            .is_none(),
        "another tenant's user"
    );
    tx.commit().await.unwrap();

    admin
        .execute(
            "UPDATE tenants SET active = false WHERE id = $1",
            &[&a.tenant],
        )
        .await
        .unwrap();
    assert!(
        !identity::login_user(&app, &Email::parse(&email).unwrap())
            .await
            .unwrap()
            .unwrap()
            .active
    );
    let tx = Tx::for_tenant(&app, &TenantId::from_uuid(a.tenant))
        .await
        .unwrap();
    assert!(
        !identity::current_user(&tx, &UserId::from_uuid(a.user))
            .await
            .unwrap()
            .unwrap()
            .active
    );
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_family_rotates_and_its_reuse_is_revoked_and_audited_in_one_transaction() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let user = add_user(&admin, t.tenant, "user").await;
    let app = db.app().await;
    let (first, family) = login(&app, t.tenant, user).await;

    let (r, second) = rotate(&app, &first).await;
    assert_eq!(r.outcome, RotateOutcome::Rotated);
    let owner = r.owner.unwrap();
    assert_eq!(owner.tenant, TenantId::from_uuid(t.tenant));
    assert_eq!(owner.user, UserId::from_uuid(user));
    assert_eq!(owner.family, family);
    assert_eq!(owner.role, Some(Role::User));

    // The rotated token again: reuse. The audit row joins the revocation's transaction.
    let tx = Tx::begin(&app).await.unwrap();
    let next = RefreshToken::generate().unwrap().storage_hash();
    let r = sessions::rotate(&tx, &first, &next, LATER_MS, LIMITS)
        .await
        .unwrap();
    assert_eq!(r.outcome, RotateOutcome::ReuseDetected);
    let owner = r.owner.unwrap();
    let tx = tx.into_tenant(&owner.tenant).await.unwrap();
    assert_eq!(tx.tenant(), &TenantId::from_uuid(t.tenant));
    let entry = AuditEntry {
        user: Some(&owner.user),
        action: "auth.token_reuse",
        resource_type: Some("refresh_token_family"),
        resource_id: Some(owner.family.to_string()),
        request_id: "rid-reuse",
        client_addr: Some("127.0.0.1".into()),
        details: json!({ "revoked": "family" }),
    };
    audit_log::record(&tx, &entry).await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(
        rotate(&app, &second).await.0.outcome,
        RotateOutcome::Revoked,
        "the family is revoked"
    );
    let (unknown, _) = rotate(&app, &RefreshToken::generate().unwrap().storage_hash()).await;
    assert_eq!(
        unknown,
        sessions::Rotation {
            outcome: RotateOutcome::Unknown,
            owner: None,
            next_expires_at_ms: None,
        }
    );

    let tx = Tx::for_tenant(&app, &TenantId::from_uuid(t.tenant))
        .await
        .unwrap();
    let page = audit_log::page(&tx, None, 200).await.unwrap();
    tx.commit().await.unwrap();
    let row = page
        .rows
        .iter()
        .find(|r| r.action == "auth.token_reuse")
        .expect("the reuse row");
    assert_eq!(row.user_id, Some(user));
    assert_eq!(
        row.resource_id.as_deref(),
        Some(family.to_string().as_str())
    );
    assert_eq!(row.client_addr.as_deref(), Some("127.0.0.1"));
    assert_eq!(row.request_id.as_deref(), Some("rid-reuse"));
    assert_eq!(row.details, json!({ "revoked": "family" }));
}

#[tokio::test]
async fn logout_revokes_only_the_callers_own_family() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let (alice, bob) = (
        add_user(&admin, t.tenant, "user").await,
        add_user(&admin, t.tenant, "user").await,
    );
    let app = db.app().await;
    let (alice_token, _) = login(&app, t.tenant, alice).await;
    let (rotated_away, _) = login(&app, t.tenant, alice).await;
    let (_, alice_second) = rotate(&app, &rotated_away).await;
    let (bob_token, _) = login(&app, t.tenant, bob).await;

    let tx = Tx::for_tenant(&app, &TenantId::from_uuid(t.tenant))
        .await
        .unwrap();
    let now_ms = auth_core::unix_now() * 1000;
    let alice_id = UserId::from_uuid(alice);
    assert_eq!(
        sessions::revoke_family(&tx, &bob_token, &alice_id, now_ms)
            .await
            .unwrap(),
        0,
        "not hers"
    );
    // A family's rotated-away token still names it: its live successor goes.
    assert_eq!(
        sessions::revoke_family(&tx, &rotated_away, &alice_id, now_ms)
            .await
            .unwrap(),
        1
    );
    tx.commit().await.unwrap();

    assert_eq!(
        rotate(&app, &alice_second).await.0.outcome,
        RotateOutcome::Revoked
    );
    assert_eq!(
        rotate(&app, &alice_token).await.0.outcome,
        RotateOutcome::Rotated,
        "her other login"
    );
    assert_eq!(
        rotate(&app, &bob_token).await.0.outcome,
        RotateOutcome::Rotated
    );
}

#[tokio::test]
async fn the_audit_log_pages_newest_first_and_shows_the_tenants_rows_only() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let (a, b) = (
        tenant_with_rows(&admin).await,
        tenant_with_rows(&admin).await,
    );
    let app = db.app().await;
    let tenant = TenantId::from_uuid(a.tenant);
    let user = UserId::from_uuid(a.user);
    for i in 0..4 {
        // Separate transactions; rows of one millisecond are ordered by id.
        let tx = Tx::for_tenant(&app, &tenant).await.unwrap();
        let request_id = format!("rid-{i}");
        let entry = AuditEntry {
            user: Some(&user),
            action: "auth.login",
            resource_type: Some("user"),
            resource_id: Some(user.to_string()),
            request_id: &request_id,
            client_addr: None,
            details: json!({ "i": i }),
        };
        audit_log::record(&tx, &entry).await.unwrap();
        tx.commit().await.unwrap();
    }

    let tx = Tx::for_tenant(&app, &tenant).await.unwrap();
    let all = audit_log::page(&tx, None, 200).await.unwrap();
    assert_eq!(all.rows.len(), 5, "four logins and the fixture's row");
    assert_eq!(all.next, None);
    assert!(
        all.rows.iter().all(|r| r.id != b.audit),
        "another tenant's row"
    );
    let keys: Vec<(i64, i64)> = all.rows.iter().map(|r| (r.created_at, r.id)).collect();
    assert!(
        keys.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {keys:?}"
    );

    let mut walked = Vec::new();
    let mut before: Option<Cursor> = None;
    loop {
        let page = audit_log::page(&tx, before, 2).await.unwrap();
        assert!(page.rows.len() <= 2);
        walked.extend(page.rows.iter().map(|r| r.id));
        match page.next {
            Some(c) => before = Some(c),
            None => break,
        }
        assert!(walked.len() <= keys.len(), "paging does not end");
    }
    tx.commit().await.unwrap();
    assert_eq!(walked, keys.iter().map(|k| k.1).collect::<Vec<_>>());
}

async fn rotate_to(
    app: &Client,
    presented: &TokenHash,
    next: &TokenHash,
    limits: sessions::RotationLimits,
) -> sessions::Rotation {
    let tx = Tx::begin(app).await.unwrap();
    let r = sessions::rotate(&tx, presented, next, LATER_MS, limits)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    r
}

#[tokio::test]
async fn within_the_grace_window_the_same_successor_is_given_again_and_nothing_else() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let user = add_user(&admin, t.tenant, "user").await;
    let app = db.app().await;
    let grace = sessions::RotationLimits {
        grace_ms: 60_000,
        ..LIMITS
    };
    let (first, _) = login(&app, t.tenant, user).await;
    let successor = RefreshToken::generate().unwrap().storage_hash();

    let r = rotate_to(&app, &first, &successor, grace).await;
    assert_eq!(r.outcome, RotateOutcome::Rotated);
    // The second tab: the same token with the same successor.
    let r = rotate_to(&app, &first, &successor, grace).await;
    assert_eq!(r.outcome, RotateOutcome::Rotated);
    let live: i64 = admin
        .query_one(
            "SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 1, "one chain, one live token");

    // Another successor for the same token is not a second tab: reuse, the family ends.
    let other = RefreshToken::generate().unwrap().storage_hash();
    let r = rotate_to(&app, &first, &other, grace).await;
    assert_eq!(r.outcome, RotateOutcome::ReuseDetected);
    let r = rotate_to(&app, &successor, &other, grace).await;
    assert_eq!(r.outcome, RotateOutcome::Revoked);

    // Without a grace window the repeat is reuse at once.
    let (first, _) = login(&app, t.tenant, user).await;
    let successor = RefreshToken::generate().unwrap().storage_hash();
    assert_eq!(
        rotate_to(&app, &first, &successor, LIMITS).await.outcome,
        RotateOutcome::Rotated
    );
    assert_eq!(
        rotate_to(&app, &first, &successor, LIMITS).await.outcome,
        RotateOutcome::ReuseDetected
    );
}

#[tokio::test]
async fn a_family_ends_at_its_absolute_lifetime_and_successors_never_outlive_it() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let user = add_user(&admin, t.tenant, "user").await;
    let app = db.app().await;
    let hour = sessions::RotationLimits {
        family_max_age_ms: 3_600_000,
        grace_ms: 0,
    };
    let (first, _) = login(&app, t.tenant, user).await;
    let second = RefreshToken::generate().unwrap().storage_hash();
    let r = rotate_to(&app, &first, &second, hour).await;
    assert_eq!(r.outcome, RotateOutcome::Rotated);
    let started: i64 = admin
        .query_one(
            "SELECT family_started_at FROM refresh_tokens WHERE token_hash = $1",
            &[&first.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(r.next_expires_at_ms, Some(started + 3_600_000), "capped");

    admin
        .execute(
            "UPDATE refresh_tokens SET family_started_at = family_started_at - 3600001 WHERE user_id = $1",
            &[&user],
        )
        .await
        .unwrap();
    let third = RefreshToken::generate().unwrap().storage_hash();
    assert_eq!(
        rotate_to(&app, &second, &third, hour).await.outcome,
        RotateOutcome::Expired
    );
}
