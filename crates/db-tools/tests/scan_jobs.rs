//! The scan outbox: concurrent claimers take disjoint jobs, leases expire and come back, attempts run out;
//! and the verdict rules on attachment_blobs. The queue and the verdicts are driven through the
//! store's functions, the statements the worker and the callback run.

mod common;

use std::{collections::HashSet, sync::Arc};

use auth_core::TenantId;
use common::{TestDb, set_tenant, sqlstate, tenant_with_rows};
use scan_core::{Verdict, VerdictStatus};
use store::scan_jobs::{self, JobState};
use store::{Tx, verdicts};
use tokio::sync::Barrier;
use tokio_postgres::Client;
use uuid::Uuid;

/// `n` blobs of `tenant`, each with a pending job; returns the job ids.
async fn pending_jobs(admin: &Client, tenant: Uuid, n: i32) -> Vec<Uuid> {
    admin
        .query(
            "WITH b AS (
                 INSERT INTO attachment_blobs (tenant_id, content_sha256, size_bytes, storage_key)
                 SELECT $1, encode(sha256(convert_to(gen_random_uuid()::text, 'UTF8')), 'hex'), 1,
                        'k-' || gen_random_uuid()
                 FROM generate_series(1, $2) RETURNING tenant_id, id)
             INSERT INTO scan_jobs (tenant_id, blob_id, available_at)
             SELECT tenant_id, id, app_now_ms() - 1000 FROM b RETURNING id",
            &[&tenant, &n],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The worker's claim, with a 60 s lease: (job, attempts).
async fn claim(c: &Client, worker: &str, limit: u32) -> Vec<(Uuid, i32)> {
    scan_jobs::claim(c, worker, 60, limit)
        .await
        .unwrap()
        .into_iter()
        .map(|j| (j.id, j.attempts))
        .collect()
}

async fn complete(c: &Client, job: Uuid, worker: &str, error: Option<&str>) -> JobState {
    scan_jobs::complete(c, job, worker, error).await.unwrap()
}

#[tokio::test]
async fn a_claimed_job_is_invisible_to_other_claimers_until_its_lease_expires() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let jobs = pending_jobs(&admin, t.tenant, 1).await;
    let w1 = db.app().await;
    let w2 = db.app().await;
    // A claimer must never wait on another: fail fast instead of hanging if SKIP LOCKED were missing.
    w2.batch_execute("SET statement_timeout = '3s'")
        .await
        .unwrap();

    // The scanners hold no tenant: the claim works across tenants through the SECURITY DEFINER function.
    let tx = Tx::begin(&w1).await.unwrap();
    let got1 = claim(&w1, "w1", 1).await;
    assert_eq!(got1, vec![(jobs[0], 1)]);
    // While w1's claim is uncommitted (row locked), w2 skips it rather than waiting or taking it.
    assert_eq!(
        claim(&w2, "w2", 1).await,
        vec![],
        "w2 got a job locked by w1"
    );
    tx.commit().await.unwrap();
    // Committed and leased: still not claimable.
    assert_eq!(claim(&w2, "w2", 1).await, vec![], "w2 got a leased job");

    // w1 "crashes": its lease runs out, and the job comes back for w2 with a second attempt.
    admin
        .execute(
            "UPDATE scan_jobs SET lease_expires_at = app_now_ms() - 1 WHERE id = $1",
            &[&jobs[0]],
        )
        .await
        .unwrap();
    assert_eq!(
        claim(&w2, "w2", 1).await,
        vec![(jobs[0], 2)],
        "expired lease not reclaimed"
    );
    let locked_by: String = admin
        .query_one("SELECT locked_by FROM scan_jobs WHERE id = $1", &[&jobs[0]])
        .await
        .unwrap()
        .get(0);
    assert_eq!(locked_by, "w2");

    // The late w1 can no longer finish it; w2 can.
    assert_eq!(complete(&w1, jobs[0], "w1", None).await, JobState::NotOwner);
    assert_eq!(complete(&w2, jobs[0], "w2", None).await, JobState::Done);
    let status: String = admin
        .query_one("SELECT status FROM scan_jobs WHERE id = $1", &[&jobs[0]])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "done");
    assert_eq!(claim(&w2, "w2", 1).await, vec![], "a done job was claimed");
}

#[tokio::test]
async fn concurrent_claimers_never_get_the_same_job() {
    const JOBS: i32 = 300;
    const WORKERS: usize = 4;
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    // Jobs of two tenants, claimed by tenant-less scanners.
    let a = tenant_with_rows(&admin).await;
    let b = tenant_with_rows(&admin).await;
    let mut all: HashSet<Uuid> = pending_jobs(&admin, a.tenant, JOBS / 2)
        .await
        .into_iter()
        .collect();
    all.extend(pending_jobs(&admin, b.tenant, JOBS / 2).await);

    let barrier = Arc::new(Barrier::new(WORKERS));
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let c = db.app().await;
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
    let mut per_worker = Vec::new();
    for task in tasks {
        let mine = task.await.unwrap();
        per_worker.push(mine.len());
        claimed.extend(mine);
    }
    let unique: HashSet<Uuid> = claimed.iter().copied().collect();
    assert_eq!(unique.len(), claimed.len(), "a job was claimed twice");
    assert_eq!(unique, all, "some job was never claimed");
    let running: i64 = admin
        .query_one(
            "SELECT count(*) FROM scan_jobs WHERE status = 'running' AND attempts = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(running, JOBS as i64);
    eprintln!("jobs per worker: {per_worker:?}");
}

#[tokio::test]
async fn failures_back_off_and_exhausted_jobs_fail_the_scan() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let jobs = pending_jobs(&admin, t.tenant, 2).await;
    let w = db.app().await;

    let got = claim(&w, "w", 2).await;
    assert_eq!(got.len(), 2);
    // A transient failure puts the job back, but not before its backoff.
    assert_eq!(
        complete(&w, jobs[0], "w", Some("clamd unreachable")).await,
        JobState::Pending
    );
    let row = admin
        .query_one(
            "SELECT status, available_at > app_now_ms(), last_error FROM scan_jobs WHERE id = $1",
            &[&jobs[0]],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "pending");
    assert!(row.get::<_, bool>(1), "no backoff");
    assert_eq!(row.get::<_, String>(2), "clamd unreachable");
    assert_eq!(
        claim(&w, "w", 5).await,
        vec![],
        "job claimable during its backoff"
    );

    // The other job's scanner died on its last allowed attempt: the next claim gives up on it.
    admin
        .execute(
            "UPDATE scan_jobs SET attempts = max_attempts, lease_expires_at = app_now_ms() - 1 WHERE id = $1",
            &[&jobs[1]],
        )
        .await
        .unwrap();
    assert_eq!(
        claim(&w, "w", 5).await,
        vec![],
        "an exhausted job was handed out again"
    );
    let row = admin
        .query_one(
            "SELECT j.status, b.scan_status FROM scan_jobs j JOIN attachment_blobs b ON b.id = j.blob_id WHERE j.id = $1",
            &[&jobs[1]],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(
        row.get::<_, String>(1),
        "error",
        "blob left pending forever"
    );

    // Arguments are checked.
    for (worker, lease, limit) in [
        ("", 60, 1),
        ("w", 0, 1),
        ("w", 60, 1001),
        ("w", u32::MAX, 1),
    ] {
        let e = scan_jobs::claim(&w, worker, lease, limit)
            .await
            .unwrap_err();
        assert_eq!(
            e.sqlstate(),
            Some("22023"),
            "{worker:?} {lease} {limit}: {e}"
        );
    }
}

/// The scanner's clock: verdict times are epoch milliseconds.
const T: i64 = 1_790_000_000_000;

/// What the scan callback runs: apply a verdict under the tenant. Returns the new
/// scan_verdict_version, None when the database did not take it.
async fn apply(
    c: &Client,
    t: &common::TenantRows,
    status: VerdictStatus,
    signature: Option<&str>,
    at: i64,
) -> Option<i64> {
    let tx = Tx::for_tenant(c, &TenantId::from_uuid(t.tenant))
        .await
        .unwrap();
    let v = Verdict::new(status, Some("clamav"), signature, None, T + at).unwrap();
    let version = verdicts::apply(&tx, t.blob, &v).await.unwrap();
    tx.commit().await.unwrap();
    version
}

#[tokio::test]
async fn verdicts_apply_by_arrival_and_quarantine_stays() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let mut app = db.app().await;
    use VerdictStatus::{Clean, Error, Infected, Suspicious};
    let received = |blob: Uuid| {
        let admin = &admin;
        async move {
            admin
                .query_one(
                    "SELECT scan_received_at FROM attachment_blobs WHERE id = $1",
                    &[&blob],
                )
                .await
                .unwrap()
                .get::<_, Option<i64>>(0)
        }
    };
    assert_eq!(received(t.blob).await, None, "pending: no verdict arrived");

    assert_eq!(apply(&app, &t, Clean, None, 1_000).await, Some(1));
    let first = received(t.blob).await.expect("the arrival is stamped");
    // A finding dated before the verdict in force is applied: the order is the arrival's, and the
    // database no longer refuses an older scannedAt.
    assert_eq!(
        apply(&app, &t, Infected, Some("Old.Sig"), 500).await,
        Some(2)
    );
    assert!(received(t.blob).await.unwrap() >= first);
    // Infected is never left, even with a newer verdict: the callback's statement skips it, and the
    // trigger refuses it from a statement without that guard.
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, t.tenant).await;
    let r = tx
        .execute(
            "UPDATE attachment_blobs SET scan_status = 'suspicious', scanned_at = 10 WHERE id = $1",
            &[&t.blob],
        )
        .await;
    assert_eq!(
        sqlstate(&r).as_deref(),
        Some("23514"),
        "infected weakened by the app: {r:?}"
    );
    tx.rollback().await.unwrap();
    assert_eq!(apply(&app, &t, Clean, None, 3_000).await, None);
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, t.tenant).await;
    let r = tx
        .execute(
            "UPDATE attachment_blobs SET scan_status = 'clean', scanned_at = $2 WHERE id = $1",
            &[&t.blob, &(T + 3_000)],
        )
        .await;
    assert_eq!(
        sqlstate(&r).as_deref(),
        Some("23514"),
        "infected content released by the app: {r:?}"
    );
    tx.rollback().await.unwrap();
    // Another infected verdict refreshes it.
    assert_eq!(
        apply(&app, &t, Infected, Some("Eicar-Test-Signature"), 2_000).await,
        Some(3)
    );
    let status: String = admin
        .query_one(
            "SELECT scan_status FROM attachment_blobs WHERE id = $1",
            &[&t.blob],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "infected");
    // An operator (superuser/owner) may release it deliberately.
    admin
        .execute(
            "UPDATE attachment_blobs SET scan_status = 'clean', scanned_at = $2 WHERE id = $1",
            &[&t.blob, &(T + 4_000)],
        )
        .await
        .unwrap();

    // Suspicious content is quarantine too: only infected may follow it.
    let s = tenant_with_rows(&admin).await;
    assert_eq!(
        apply(&app, &s, Suspicious, Some("Heuristics.X"), 9_000).await,
        Some(1)
    );
    assert_eq!(apply(&app, &s, Clean, None, 10_000).await, None);
    assert_eq!(apply(&app, &s, Error, None, 10_000).await, None);
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, s.tenant).await;
    let r = tx
        .execute(
            "UPDATE attachment_blobs SET scan_status = 'error' WHERE id = $1",
            &[&s.blob],
        )
        .await;
    assert_eq!(
        sqlstate(&r).as_deref(),
        Some("23514"),
        "suspicious content released by the app: {r:?}"
    );
    tx.rollback().await.unwrap();
    assert_eq!(apply(&app, &s, Infected, Some("Eicar"), 1).await, Some(2));
}

#[tokio::test]
async fn an_expired_lease_is_reclaimed_before_newer_pending_jobs() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let w = db.app().await;
    let crashed = pending_jobs(&admin, t.tenant, 1).await[0];
    assert_eq!(claim(&w, "crashed-worker", 1).await, vec![(crashed, 1)]);
    // A backlog arrives, then the first scanner's lease runs out.
    let backlog = pending_jobs(&admin, t.tenant, 5).await;
    admin
        .execute(
            "UPDATE scan_jobs SET lease_expires_at = app_now_ms() - 1 WHERE id = $1",
            &[&crashed],
        )
        .await
        .unwrap();
    assert_eq!(
        claim(&w, "w", 1).await,
        vec![(crashed, 2)],
        "the crashed scanner's job waits behind the backlog"
    );
    let next = claim(&w, "w", 10).await;
    assert_eq!(
        next.iter().map(|(id, _)| *id).collect::<HashSet<_>>(),
        backlog.into_iter().collect()
    );
}

/// One tenant's burst does not starve another's scans: tenant A enqueues 200 jobs, then tenant B one;
/// B's job is among the first few claimed, while A's keep their own order.
#[tokio::test]
async fn a_burst_of_one_tenant_does_not_starve_another() {
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let a = tenant_with_rows(&admin).await;
    let b = tenant_with_rows(&admin).await;
    let w = db.app().await;
    // Whatever jobs the fixtures made go first.
    while !claim(&w, "w", 10).await.is_empty() {}

    let burst = pending_jobs(&admin, a.tenant, 200).await;
    let late = pending_jobs(&admin, b.tenant, 1).await[0];
    let mut order = Vec::new();
    for _ in 0..5 {
        order.extend(claim(&w, "w", 1).await.into_iter().map(|(id, _)| id));
    }
    assert!(
        order.contains(&late),
        "tenant B's job is not among the first 5 claimed after tenant A's burst of 200: {order:?}"
    );
    let a_order: Vec<Uuid> = order.iter().copied().filter(|id| *id != late).collect();
    assert_eq!(
        a_order,
        burst[..a_order.len()],
        "tenant A's jobs out of order"
    );

    // The app may not reorder the queue.
    let mut app = db.app().await;
    let tx = app.transaction().await.unwrap();
    set_tenant(&tx, a.tenant).await;
    let r = tx
        .execute(
            "UPDATE scan_jobs SET fair_at = 0 WHERE id = $1",
            &[&burst[199]],
        )
        .await;
    assert_eq!(sqlstate(&r).as_deref(), Some("42501"), "{r:?}");
}

async fn fair_clock(admin: &Client, tenant: Uuid) -> Option<i64> {
    admin
        .query_opt(
            "SELECT clock FROM scan_fair_clocks WHERE tenant_id = $1",
            &[&tenant],
        )
        .await
        .unwrap()
        .map(|r| r.get::<_, i64>(0))
}

/// `n` clean blobs of `tenant` judged by ClamAV under signature `version`, created one second apart
/// (the first oldest); returns the blob ids, oldest first.
async fn clean_judged(admin: &Client, tenant: Uuid, n: i32, version: Option<i64>) -> Vec<Uuid> {
    let ids: Vec<Uuid> = admin
        .query(
            "INSERT INTO attachment_blobs (tenant_id, content_sha256, size_bytes, storage_key, scan_status, created_at)
             SELECT $1, encode(sha256(convert_to(gen_random_uuid()::text, 'UTF8')), 'hex'), 1,
                    'k-' || gen_random_uuid(), 'clean', app_now_ms() - 100000 + g * 1000
             FROM generate_series(1, $2) g ORDER BY g RETURNING id",
            &[&tenant, &n],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    admin
        .execute(
            "INSERT INTO scan_engine_verdicts (tenant_id, blob_id, engine, signature_version, status, scanned_at)
             SELECT $1, id, 'clamav', $3, 'clean', app_now_ms() FROM unnest($2::uuid[]) id",
            &[&tenant, &ids, &version],
        )
        .await
        .unwrap();
    ids
}

/// Rescans: queued for content judged under older signatures only, newest first, a bounded number
/// at a time; never claimed by the first-scan claim, which goes first; no effect on the tenant's
/// fair-share clock; an upload awaiting one makes it a first scan. Through the scanner role.
#[tokio::test]
async fn rescans_wait_behind_first_scans_newest_first() {
    use store::scan_jobs::RescanSelection;
    let db = TestDb::migrated().await;
    let admin = db.admin().await;
    let t = tenant_with_rows(&admin).await;
    let w = db.scanner().await;
    while !claim(&w, "w", 10).await.is_empty() {}

    let old = clean_judged(&admin, t.tenant, 5, Some(100)).await;
    let current = clean_judged(&admin, t.tenant, 2, Some(101)).await;
    let unversioned = clean_judged(&admin, t.tenant, 1, None).await;
    let clock_before = fair_clock(&admin, t.tenant).await;

    let by_version = RescanSelection {
        engine: "clamav",
        signature_version: Some(101),
        judged_before: None,
        created_since: None,
        unjudged_too: false,
        tenant: None,
    };
    // At most 3 open at a time.
    assert_eq!(
        scan_jobs::enqueue_rescans(&w, &by_version, 3)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        scan_jobs::enqueue_rescans(&w, &by_version, 3)
            .await
            .unwrap(),
        0
    );
    assert_eq!(scan_jobs::open_rescans(&w).await.unwrap(), 3);
    assert_eq!(
        fair_clock(&admin, t.tenant).await,
        clock_before,
        "rescans moved the tenant's clock"
    );

    // A first scan arrives: the first-scan claim takes it and never a rescan.
    let first = pending_jobs(&admin, t.tenant, 1).await[0];
    let got = claim(&w, "w", 10).await;
    assert_eq!(got.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [first]);
    assert!(claim(&w, "w", 10).await.is_empty());

    // Rescans: newest content first.
    let mut rescans = Vec::new();
    for _ in 0..4 {
        rescans.extend(scan_jobs::claim_rescans(&w, "w", 60, 1).await.unwrap());
    }
    let blobs: Vec<Uuid> = rescans.iter().map(|j| j.blob_id).collect();
    assert_eq!(blobs, [old[4], old[3], old[2]]);
    assert!(rescans.iter().all(|j| j.rescan));
    for j in &rescans {
        assert_eq!(complete(&w, j.id, "w", None).await, JobState::Done);
    }
    // Their verdicts under the new signatures (what the callback records).
    admin
        .execute(
            "UPDATE scan_engine_verdicts SET signature_version = 101 WHERE blob_id = ANY ($1)",
            &[&blobs],
        )
        .await
        .unwrap();
    // The rest of the old ones; the current and unversioned ones never.
    assert_eq!(
        scan_jobs::enqueue_rescans(&w, &by_version, 3)
            .await
            .unwrap(),
        2
    );
    let mut rest = Vec::new();
    for _ in 0..3 {
        rest.extend(
            scan_jobs::claim_rescans(&w, "w", 60, 1)
                .await
                .unwrap()
                .iter()
                .map(|j| j.blob_id),
        );
    }
    assert_eq!(rest, [old[1], old[0]]);
    let queued: i64 = admin
        .query_one(
            "SELECT count(*) FROM scan_jobs WHERE rescan AND blob_id = ANY ($1)",
            &[&[current.clone(), unversioned.clone()].concat()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued, 0);

    // On demand (judged before now, unjudged too) of one tenant: the rest of it.
    let other = tenant_with_rows(&admin).await;
    let other_blob = clean_judged(&admin, other.tenant, 1, Some(1)).await[0];
    let on_demand = RescanSelection {
        engine: "clamav",
        signature_version: None,
        judged_before: Some(i64::MAX),
        created_since: None,
        unjudged_too: true,
        tenant: Some(t.tenant),
    };
    let n = scan_jobs::enqueue_rescans(&w, &on_demand, 1000)
        .await
        .unwrap();
    assert!(n >= 3, "{n}");
    let other_queued: i64 = admin
        .query_one(
            "SELECT count(*) FROM scan_jobs WHERE rescan AND blob_id = $1",
            &[&other_blob],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(other_queued, 0);

    // An upload joining content with an open rescan awaits it: the job becomes a first scan.
    let job: Uuid = admin
        .query_one(
            "SELECT id FROM scan_jobs WHERE rescan AND status = 'pending' AND blob_id = $1",
            &[&current[1]],
        )
        .await
        .unwrap()
        .get(0);
    admin
        .execute(
            "INSERT INTO email_attachments (tenant_id, message_id, blob_id, uploader_user_id, filename, size_bytes, scan_job_id)
             VALUES ($1, $2, $3, $4, 'again.txt', 1, $5)",
            &[&t.tenant, &t.message, &current[1], &t.user, &job],
        )
        .await
        .unwrap();
    let got: Vec<Uuid> = claim(&w, "w", 10).await.iter().map(|(id, _)| *id).collect();
    assert_eq!(got, [job]);

    // The scanner role reads none of it directly.
    let r = w
        .query("SELECT count(*) FROM scan_engine_verdicts", &[])
        .await;
    assert_eq!(sqlstate(&r).as_deref(), Some("42501"), "{r:?}");
}
