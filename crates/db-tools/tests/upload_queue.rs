//! 0014, the worker's side of direct uploads: claiming verifications (disjoint under concurrency,
//! leases, attempts running out), handing them back, and the janitor's claim and its two records.
//! Everything runs as the scanner role through the store's functions (`store::upload_queue`), the
//! statements the worker runs; the sessions are set up as the owner, in the states the app's side
//! would leave them.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{TenantRows, TestDb, sqlstate, tenant_with_rows};
use store::upload_queue::{self, JanitorAction, ReleaseState};
use tokio::sync::Barrier;
use tokio_postgres::Client;
use uuid::Uuid;

/// A session of `t` in `state`, expiring `expires_in_ms` from now (negative: expired); returns its id.
async fn session(admin: &Client, t: &TenantRows, state: &str, expires_in_ms: i64) -> Uuid {
    let reject: Option<&str> = (state == "rejected").then_some("blocked_file_type");
    let key = format!("tenants/{}/blobs/{}", t.tenant, Uuid::new_v4());
    let mpu = format!("mpu-{}", Uuid::new_v4());
    admin
        .query_one(
            "INSERT INTO upload_sessions (tenant_id, message_id, user_id, filename, declared_mime,
                 claimed_size, claimed_sha256, storage_key, s3_upload_id, part_size, part_count, state,
                 reject_code, expires_at)
             VALUES ($1, $2, $3, 'report.pdf', 'application/pdf', 1234, NULL,
                 $7, $8, 8388608, 1, $4, $5, app_now_ms() + $6)
             RETURNING id",
            &[&t.tenant, &t.message, &t.user, &state, &reject, &expires_in_ms, &key, &mpu],
        )
        .await
        .unwrap()
        .get(0)
}

/// `n` verifying sessions of `t`.
async fn verifying(admin: &Client, t: &TenantRows, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(session(admin, t, "verifying", 3_600_000).await);
    }
    ids
}

/// The scanner's claim with a 60 s lease and 5 attempts: (upload, attempts).
async fn claim(c: &Client, worker: &str, limit: u32) -> Vec<(Uuid, u32)> {
    upload_queue::claim_verifications(c, worker, 60, limit, 5)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.upload_id, v.attempts))
        .collect()
}

async fn state_of(admin: &Client, id: Uuid) -> Option<(String, Option<String>, bool)> {
    admin
        .query_opt(
            "SELECT state, reject_code, object_unused FROM upload_sessions WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
}

#[tokio::test]
async fn a_claim_hands_out_what_was_claimed_and_the_scanner_sees_nothing_else() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let id = verifying(&admin, &t, 1).await[0];
    admin
        .execute(
            "UPDATE upload_sessions SET claimed_sha256 = repeat('ab', 32), declared_mime = NULL WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let scanner = db.scanner().await;
    let got = upload_queue::claim_verifications(&scanner, "w1", 60, 10, 5)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let v = &got[0];
    assert_eq!((v.upload_id, v.tenant_id), (id, t.tenant));
    assert_eq!(v.claimed_size, 1234);
    assert_eq!(v.claimed_sha256.as_deref(), Some("ab".repeat(32).as_str()));
    assert_eq!(v.filename, "report.pdf");
    assert_eq!(v.declared_mime, None);
    assert_eq!(v.attempts, 1);
    assert!(
        v.storage_key
            .starts_with(&format!("tenants/{}/blobs/", t.tenant))
    );
    // The scanner role calls the functions and reads nothing itself.
    let r = scanner.query("SELECT id FROM upload_sessions", &[]).await;
    assert_eq!(sqlstate(&r).as_deref(), Some("42501"), "{r:?}");
    // Open sessions are not verified.
    session(&admin, &t, "open", 3_600_000).await;
    assert_eq!(claim(&scanner, "w1", 10).await, vec![]);
}

#[tokio::test]
async fn claimed_sessions_are_invisible_to_other_claimers_until_the_lease_expires() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let id = verifying(&admin, &t, 1).await[0];
    let w1 = db.scanner().await;
    let w2 = db.scanner().await;
    // A claimer must never wait on another: fail fast instead of hanging if SKIP LOCKED were missing.
    w2.batch_execute("SET statement_timeout = '3s'")
        .await
        .unwrap();

    w1.batch_execute("BEGIN").await.unwrap();
    assert_eq!(claim(&w1, "w1", 1).await, vec![(id, 1)]);
    // Locked by w1's open transaction: skipped, neither waited on nor taken.
    assert_eq!(claim(&w2, "w2", 1).await, vec![], "w2 got a locked session");
    w1.batch_execute("COMMIT").await.unwrap();
    assert_eq!(claim(&w2, "w2", 1).await, vec![], "w2 got a leased session");

    // w1 dies: its lease runs out, w2 takes the session over with a second attempt.
    admin
        .execute(
            "UPDATE upload_sessions SET lease_expires_at = app_now_ms() - 1 WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(claim(&w2, "w2", 1).await, vec![(id, 2)]);
    // The late w1 cannot hand it back any more; w2 can.
    assert_eq!(
        upload_queue::release_verification(&w1, id, "w1", "late")
            .await
            .unwrap(),
        ReleaseState::NotOwner
    );
    assert_eq!(
        upload_queue::release_verification(&w2, id, "w2", "storage unreachable")
            .await
            .unwrap(),
        ReleaseState::Pending
    );
}

#[tokio::test]
async fn concurrent_claimers_never_get_the_same_session() {
    const SESSIONS: usize = 120;
    const WORKERS: usize = 4;
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let a = tenant_with_rows(&admin).await;
    let b = tenant_with_rows(&admin).await;
    let mut all: HashSet<Uuid> = verifying(&admin, &a, SESSIONS / 2)
        .await
        .into_iter()
        .collect();
    all.extend(verifying(&admin, &b, SESSIONS / 2).await);

    let barrier = Arc::new(Barrier::new(WORKERS));
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let c = db.scanner().await;
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            barrier.wait().await;
            let mut mine = Vec::new();
            loop {
                let got = claim(&c, &worker, 3).await;
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|(id, _)| id));
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.unwrap());
    }
    let unique: HashSet<Uuid> = claimed.iter().copied().collect();
    assert_eq!(unique.len(), claimed.len(), "a session was claimed twice");
    assert_eq!(unique, all, "some session was never claimed");
}

#[tokio::test]
async fn released_sessions_back_off_and_exhausted_ones_are_rejected() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let ids = verifying(&admin, &t, 2).await;
    let w = db.scanner().await;
    assert_eq!(claim(&w, "w", 2).await.len(), 2);

    // A transient failure puts the session back, after its backoff.
    assert_eq!(
        upload_queue::release_verification(&w, ids[0], "w", "storage unreachable")
            .await
            .unwrap(),
        ReleaseState::Pending
    );
    let row = admin
        .query_one(
            "SELECT available_at - app_now_ms(), last_error, locked_by FROM upload_sessions WHERE id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap();
    let wait: i64 = row.get(0);
    // 10 s * 2^1 after the first attempt.
    assert!((15_000..=20_000).contains(&wait), "backoff {wait} ms");
    assert_eq!(row.get::<_, String>(1), "storage unreachable");
    assert_eq!(row.get::<_, Option<String>>(2), None);
    assert_eq!(
        claim(&w, "w", 5).await,
        vec![],
        "claimable during its backoff"
    );

    // The other session's worker died on its last allowed attempt: the next claim rejects it,
    // and its object becomes unused (the janitor deletes it).
    admin
        .execute(
            "UPDATE upload_sessions SET attempts = 5, lease_expires_at = app_now_ms() - 1,
                 last_error = 'clamd answered nonsense' WHERE id = $1",
            &[&ids[1]],
        )
        .await
        .unwrap();
    assert_eq!(
        claim(&w, "w", 5).await,
        vec![],
        "an exhausted session was handed out"
    );
    assert_eq!(
        state_of(&admin, ids[1]).await,
        Some(("rejected".into(), Some("verification_failed".into()), true))
    );
    let detail: String = admin
        .query_one(
            "SELECT reject_detail FROM upload_sessions WHERE id = $1",
            &[&ids[1]],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        detail.contains("5 times") && detail.contains("clamd answered nonsense"),
        "{detail}"
    );
    // A rejected session cannot be handed back.
    assert_eq!(
        upload_queue::release_verification(&w, ids[1], "w", "x")
            .await
            .unwrap(),
        ReleaseState::NotOwner
    );

    // Many attempts (a deployment with a high limit) still back off at most 10 minutes, without
    // overflowing the arithmetic.
    admin
        .execute(
            "UPDATE upload_sessions SET attempts = 99, available_at = 0, lease_expires_at = NULL,
                 locked_by = NULL WHERE id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap();
    let got = upload_queue::claim_verifications(&w, "w", 60, 1, 100)
        .await
        .unwrap();
    assert_eq!(got[0].attempts, 100);
    assert_eq!(
        upload_queue::release_verification(&w, ids[0], "w", "again")
            .await
            .unwrap(),
        ReleaseState::Pending
    );
    let wait: i64 = admin
        .query_one(
            "SELECT available_at - app_now_ms() FROM upload_sessions WHERE id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap()
        .get(0);
    assert!((590_000..=600_000).contains(&wait), "backoff {wait} ms");

    // Arguments are checked.
    for (worker, lease, limit, attempts) in [
        ("", 60, 1, 5),
        ("w", 0, 1, 5),
        ("w", 60, 1001, 5),
        ("w", 60, 1, 0),
        ("w", 60, 1, 101),
        ("w", u32::MAX, 1, 5),
    ] {
        let e = upload_queue::claim_verifications(&w, worker, lease, limit, attempts)
            .await
            .unwrap_err();
        assert_eq!(
            e.sqlstate(),
            Some("22023"),
            "{worker:?} {lease} {limit} {attempts}: {e}"
        );
    }
    let e = upload_queue::janitor_claim(&w, "w", 60, 0)
        .await
        .unwrap_err();
    assert_eq!(e.sqlstate(), Some("22023"), "{e}");
}

#[tokio::test]
async fn the_janitor_gets_each_kind_of_row_once_and_records_what_it_did() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let expired = -1_000;
    let open_expired = session(&admin, &t, "open", expired).await;
    let aborted_expired = session(&admin, &t, "aborted", expired).await;
    let done_expired = session(&admin, &t, "done", expired).await;
    let rejected_unused = session(&admin, &t, "rejected", 3_600_000).await;
    admin
        .execute(
            "UPDATE upload_sessions SET object_unused = true WHERE id = $1",
            &[&rejected_unused],
        )
        .await
        .unwrap();
    // Nothing to do for these: still open, or verifying however late.
    let open_live = session(&admin, &t, "open", 3_600_000).await;
    let verifying_expired = session(&admin, &t, "verifying", expired).await;

    let j1 = db.scanner().await;
    let j2 = db.scanner().await;
    let tasks = upload_queue::janitor_claim(&j1, "j1", 60, 100)
        .await
        .unwrap();
    let got: Vec<(Uuid, JanitorAction)> = tasks.iter().map(|t| (t.upload_id, t.action)).collect();
    let want: HashSet<(Uuid, JanitorAction)> = [
        (open_expired, JanitorAction::Abort),
        (aborted_expired, JanitorAction::Abort),
        (done_expired, JanitorAction::Forget),
        (rejected_unused, JanitorAction::Delete),
    ]
    .into_iter()
    .collect();
    assert_eq!(got.iter().copied().collect::<HashSet<_>>(), want);
    assert_eq!(got.len(), want.len());
    let open_task = tasks.iter().find(|x| x.upload_id == open_expired).unwrap();
    assert!(open_task.s3_upload_id.starts_with("mpu-"), "{open_task:?}");
    assert_eq!(open_task.tenant_id, t.tenant);
    // Leased: a second janitor gets none of them.
    assert_eq!(
        upload_queue::janitor_claim(&j2, "j2", 60, 100)
            .await
            .unwrap(),
        vec![]
    );

    // Only the lease holder records; an object deleted is no longer unused, and the row stays until
    // its expiry.
    assert!(
        !upload_queue::object_deleted(&j2, rejected_unused, "j2")
            .await
            .unwrap()
    );
    assert!(
        upload_queue::object_deleted(&j1, rejected_unused, "j1")
            .await
            .unwrap()
    );
    assert_eq!(
        state_of(&admin, rejected_unused).await,
        Some(("rejected".into(), Some("blocked_file_type".into()), false))
    );
    assert!(
        !upload_queue::object_deleted(&j1, rejected_unused, "j1")
            .await
            .unwrap(),
        "twice"
    );
    assert!(
        !upload_queue::forget_session(&j2, open_expired, "j2")
            .await
            .unwrap()
    );
    for id in [open_expired, aborted_expired, done_expired] {
        assert!(
            upload_queue::forget_session(&j1, id, "j1").await.unwrap(),
            "{id}"
        );
        assert_eq!(state_of(&admin, id).await, None);
    }
    // Not expired: not forgotten, even by a lease holder.
    assert!(
        !upload_queue::forget_session(&j1, rejected_unused, "j1")
            .await
            .unwrap()
    );
    assert!(state_of(&admin, open_live).await.is_some());
    assert!(state_of(&admin, verifying_expired).await.is_some());
    assert_eq!(
        upload_queue::janitor_claim(&j2, "j2", 60, 100)
            .await
            .unwrap(),
        vec![]
    );

    // A session that turned verifying after the janitor claimed it (completed just in time) stays.
    let late = session(&admin, &t, "open", expired).await;
    let tasks = upload_queue::janitor_claim(&j1, "j1", 60, 100)
        .await
        .unwrap();
    assert_eq!(
        tasks.iter().map(|t| t.upload_id).collect::<Vec<_>>(),
        vec![late]
    );
    admin
        .execute(
            "UPDATE upload_sessions SET state = 'verifying' WHERE id = $1",
            &[&late],
        )
        .await
        .unwrap();
    assert!(!upload_queue::forget_session(&j1, late, "j1").await.unwrap());
    assert_eq!(state_of(&admin, late).await.unwrap().0, "verifying");
}

#[tokio::test]
async fn the_verifier_records_a_deletion_without_a_janitor_lease() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let id = session(&admin, &t, "verifying", 3_600_000).await;
    let w = db.scanner().await;
    assert_eq!(claim(&w, "w", 1).await, vec![(id, 1)]);
    // The callback recorded a dedup: done, the object unused. Whether or not the app cleared the
    // verification lease, the verifier that held it records the deletion.
    admin
        .execute(
            "UPDATE upload_sessions SET state = 'done', object_unused = true WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert!(!upload_queue::object_deleted(&w, id, "other").await.unwrap());
    assert!(upload_queue::object_deleted(&w, id, "w").await.unwrap());
    let id2 = session(&admin, &t, "rejected", 3_600_000).await;
    admin
        .execute(
            "UPDATE upload_sessions SET object_unused = true WHERE id = $1",
            &[&id2],
        )
        .await
        .unwrap();
    assert!(
        upload_queue::object_deleted(&w, id2, "anyone")
            .await
            .unwrap(),
        "no lease held"
    );
    assert!(
        !state_of(&admin, id2).await.unwrap().2,
        "still marked unused"
    );
}
