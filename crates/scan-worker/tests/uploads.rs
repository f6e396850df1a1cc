//! Direct uploads against the real services the scripts start: the one-pass verifier over objects
//! in the real bucket (Garage; `S3_*`) with the real clamd (`CLAMD_ADDR`) and the project's test
//! signatures, and the janitor against that bucket and a fresh real Postgres database
//! (`DATABASE_ADMIN_URL`, as the database tests). `scripts/test` exports all of them; without
//! `S3_ENDPOINT` or `CLAMD_ADDR` a test passes with a note (like `tests/clamd.rs`).
//!
//! The posting of the report to the upload-verification route is not here: that route belongs to
//! the app, and the end-to-end test through HTTP covers it.

#[path = "../../db-tools/tests/common/mod.rs"]
mod common;
mod support;

use std::sync::Arc;
use std::time::Duration;

use attachment_policy::ExtensionPolicy;
use scan_core::verification::{Decision, Report};
use scan_worker::clamd::Clamd;
use scan_worker::config::Config;
use scan_worker::storage::{Aborted, Storage};
use scan_worker::verdict::Status;
use scan_worker::verify::{self, Scan};
use scan_worker::worker::Worker;
use sha2::{Digest, Sha256};
use storage::{ObjectKey, StorageConfig};
use store::upload_queue::ClaimedVerification;
use support::{begin_multipart, put, scanner_url, var};
use uuid::Uuid;

const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
const PDF: &[u8] =
    b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";

/// The bucket and clamd of the running stack, or `None` (with a note) outside one.
fn services() -> Option<(StorageConfig, Clamd)> {
    let (Some(endpoint), Some(id), Some(secret), Some(clamd)) = (
        var("S3_ENDPOINT"),
        var("S3_ACCESS_KEY_ID"),
        var("S3_SECRET_ACCESS_KEY"),
        var("CLAMD_ADDR"),
    ) else {
        eprintln!("S3_* or CLAMD_ADDR is not set: skipped (scripts/test and scripts/dev set them)");
        return None;
    };
    let cfg = StorageConfig::new(
        &endpoint,
        &var("S3_REGION").unwrap_or_else(|| "garage".into()),
        &var("S3_BUCKET").unwrap_or_else(|| "attachments".into()),
        &id,
        &secret,
    )
    .expect("S3 settings");
    Some((cfg, Clamd::new(clamd, Duration::from_secs(60))))
}

fn claim(
    key: &str,
    size: u64,
    sha: Option<String>,
    filename: &str,
    declared: Option<&str>,
) -> ClaimedVerification {
    ClaimedVerification {
        upload_id: Uuid::new_v4(),
        tenant_id: Uuid::new_v4(),
        storage_key: key.to_owned(),
        claimed_size: size,
        claimed_sha256: sha,
        filename: filename.to_owned(),
        declared_mime: declared.map(str::to_owned),
        attempts: 1,
    }
}

/// What the worker does between its claim and its report: GetObject, the one pass, the decision.
async fn verify_object(
    storage: &Storage,
    clamd: &Clamd,
    c: &ClaimedVerification,
) -> (Report, Scan) {
    let mut object = storage.get(&c.storage_key).await.expect("GetObject");
    let name = verify::claims_policy(
        &c.filename,
        c.declared_mime.as_deref(),
        &ExtensionPolicy::default(),
    );
    let ext = name.as_ref().ok().and_then(|e| e.as_deref());
    let pass = verify::one_pass(
        &mut object.body,
        object.length,
        c.declared_mime.as_deref(),
        ext,
        clamd,
        60 << 20,
    )
    .await
    .expect("one pass");
    (verify::decide(c, &name, &pass).unwrap(), pass.scan)
}

fn sha_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn code(r: &Report) -> Option<&'static str> {
    r.reject_code().map(|c| c.as_str())
}

#[tokio::test]
async fn right_size_and_digest_is_accepted_with_its_sha_and_a_clean_verdict() {
    let Some((cfg, clamd)) = services() else {
        return;
    };
    let storage = Storage::new(cfg.clone()).unwrap();
    let key = put(&cfg, Uuid::new_v4(), PDF).await;
    let c = claim(
        &key,
        PDF.len() as u64,
        Some(sha_hex(PDF)),
        "report.pdf",
        Some("application/pdf"),
    );
    let (r, scan) = verify_object(&storage, &clamd, &c).await;
    assert_eq!(r.decision, Decision::Accepted);
    assert_eq!(r.size, PDF.len() as u64);
    let content = &r.content;
    assert_eq!(content.sha256.as_str(), sha_hex(PDF));
    assert_eq!(content.detected_mime.as_str(), "application/pdf");
    assert_eq!(
        content.sniffed_mime.as_ref().map(|m| m.as_str()),
        Some("application/pdf")
    );
    let Scan::Verdict(v) = scan else {
        panic!("no verdict: {scan:?}")
    };
    assert_eq!(v.status, Status::Clean);
    // What the callback parses.
    assert_eq!(Report::parse(&r.to_json()).unwrap(), r);

    // Without a claimed digest the same object is accepted too.
    let (r, _) = verify_object(
        &storage,
        &clamd,
        &claim(&key, PDF.len() as u64, None, "report.pdf", None),
    )
    .await;
    assert_eq!(r.decision, Decision::Accepted);
    storage.delete(&key).await.unwrap();
}

#[tokio::test]
async fn a_wrong_claimed_size_is_a_size_mismatch_either_way() {
    let Some((cfg, clamd)) = services() else {
        return;
    };
    let storage = Storage::new(cfg.clone()).unwrap();
    let key = put(&cfg, Uuid::new_v4(), PDF).await;
    for claimed in [PDF.len() as u64 - 1, PDF.len() as u64 + 1, 0] {
        let (r, _) = verify_object(
            &storage,
            &clamd,
            &claim(&key, claimed, Some(sha_hex(PDF)), "a.pdf", None),
        )
        .await;
        assert_eq!(code(&r), Some("size_mismatch"), "claimed {claimed}");
        // What the object really is.
        assert_eq!(r.size, PDF.len() as u64);
        assert_eq!(r.content.sha256.as_str(), sha_hex(PDF));
        assert_eq!(Report::parse(&r.to_json()).unwrap(), r);
    }
    storage.delete(&key).await.unwrap();
}

#[tokio::test]
async fn a_wrong_claimed_digest_is_a_digest_mismatch() {
    let Some((cfg, clamd)) = services() else {
        return;
    };
    let storage = Storage::new(cfg.clone()).unwrap();
    let key = put(&cfg, Uuid::new_v4(), PDF).await;
    let mut other = PDF.to_vec();
    other[10] ^= 1;
    let (r, _) = verify_object(
        &storage,
        &clamd,
        &claim(&key, PDF.len() as u64, Some(sha_hex(&other)), "a.pdf", None),
    )
    .await;
    assert_eq!(code(&r), Some("digest_mismatch"));
    // The report carries what the object really hashes to.
    assert_eq!(r.content.sha256.as_str(), sha_hex(PDF));
    storage.delete(&key).await.unwrap();
}

#[tokio::test]
async fn an_executable_named_pdf_is_a_blocked_file_type() {
    let Some((cfg, clamd)) = services() else {
        return;
    };
    let storage = Storage::new(cfg.clone()).unwrap();
    let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec();
    elf.resize(8192, 0x90);
    let key = put(&cfg, Uuid::new_v4(), &elf).await;
    let (r, _) = verify_object(
        &storage,
        &clamd,
        &claim(
            &key,
            elf.len() as u64,
            Some(sha_hex(&elf)),
            "invoice.pdf",
            Some("application/pdf"),
        ),
    )
    .await;
    assert_eq!(code(&r), Some("blocked_file_type"));
    let Decision::Rejected { detail, .. } = &r.decision else {
        unreachable!()
    };
    // As the in-function upload words it.
    assert_eq!(detail, "Executable content (ELF) is not allowed.");

    // An inner extension the app would refuse is refused here too, whatever the content.
    let pdf_key = put(&cfg, Uuid::new_v4(), PDF).await;
    let (r, _) = verify_object(
        &storage,
        &clamd,
        &claim(&pdf_key, PDF.len() as u64, None, "invoice.exe.pdf", None),
    )
    .await;
    assert_eq!(code(&r), Some("blocked_file_type"));
    // And script in markup, far from the start, split over the stream.
    let mut html = b"<!DOCTYPE html><html><body>".to_vec();
    html.resize(300_000, b' ');
    html.extend_from_slice(b"<img src=x onerror=alert(1)></body></html>");
    let html_key = put(&cfg, Uuid::new_v4(), &html).await;
    let (r, _) = verify_object(
        &storage,
        &clamd,
        &claim(
            &html_key,
            html.len() as u64,
            None,
            "page.html",
            Some("text/html"),
        ),
    )
    .await;
    assert_eq!(code(&r), Some("blocked_file_type"));
    for k in [key, pdf_key, html_key] {
        storage.delete(&k).await.unwrap();
    }
}

#[tokio::test]
async fn eicar_is_accepted_as_a_file_and_judged_infected_in_the_same_pass() {
    let Some((cfg, clamd)) = services() else {
        return;
    };
    let storage = Storage::new(cfg.clone()).unwrap();
    let key = put(&cfg, Uuid::new_v4(), EICAR).await;
    let (r, scan) = verify_object(
        &storage,
        &clamd,
        &claim(
            &key,
            EICAR.len() as u64,
            Some(sha_hex(EICAR)),
            "notes.txt",
            Some("text/plain"),
        ),
    )
    .await;
    // The upload policy has nothing against it; the verdict (posted to the scan callback once the
    // attachment exists) quarantines it.
    assert_eq!(r.decision, Decision::Accepted);
    assert_eq!(r.content.detected_mime.as_str(), "text/plain");
    let Scan::Verdict(v) = scan else {
        panic!("no verdict: {scan:?}")
    };
    assert_eq!(v.status, Status::Infected);
    assert_eq!(
        v.signature.as_deref(),
        Some("Attachments.Test.EICAR.UNOFFICIAL")
    );
    // The verdict's body, as the worker posts it for the content the report names.
    let body = scan_worker::verdict::callback_body(
        Uuid::new_v4(),
        r.content.sha256.as_str(),
        &v,
        "ClamAV",
        1_790_000_000_000,
    )
    .unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(parsed["contentHash"], sha_hex(EICAR));
    assert_eq!(parsed["status"], "infected");
    storage.delete(&key).await.unwrap();
}

fn worker_for(db: &common::TestDb, cfg: &StorageConfig) -> Arc<Worker> {
    let url = scanner_url(db);
    let env = |k: &str| -> Option<String> {
        match k {
            "SCAN_DATABASE_URL" => Some(url.clone()),
            "S3_ENDPOINT"
            | "S3_REGION"
            | "S3_BUCKET"
            | "S3_ACCESS_KEY_ID"
            | "S3_SECRET_ACCESS_KEY" => var(k),
            "CLAMD_ADDR" => var(k),
            // The janitor posts nothing; these only have to be valid.
            "SCAN_CALLBACK_URL" => Some("http://127.0.0.1:9/api/v1/scan/callback".into()),
            "SCAN_CALLBACK_SECRET" => Some("scan-worker:0123456789abcdef0123456789abcdef".into()),
            _ => None,
        }
    };
    let c = Config::parse(
        [
            "janitor".to_owned(),
            "--once".to_owned(),
            "--worker-name=janitor-test".to_owned(),
        ],
        env,
        || "unused".into(),
    )
    .unwrap();
    assert_eq!(c.storage.bucket(), cfg.bucket());
    Arc::new(Worker::new(c).unwrap())
}

/// A session row of `t`, as the app leaves it, for an object at `key` / a multipart upload `mpu`.
async fn session(
    admin: &tokio_postgres::Client,
    t: &common::TenantRows,
    state: &str,
    expired: bool,
    unused: bool,
    key: &str,
    mpu: &str,
) -> Uuid {
    let reject: Option<&str> = (state == "rejected").then_some("digest_mismatch");
    let expires_in: i64 = if expired { -1_000 } else { 3_600_000 };
    admin
        .query_one(
            "INSERT INTO upload_sessions (tenant_id, message_id, user_id, filename, claimed_size,
                 storage_key, s3_upload_id, part_size, part_count, state, reject_code, object_unused, expires_at)
             VALUES ($1, $2, $3, 'a.txt', 5, $4, $5, 5242880, 1, $6, $7, $8, app_now_ms() + $9)
             RETURNING id",
            &[&t.tenant, &t.message, &t.user, &key, &mpu, &state, &reject, &unused, &expires_in],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn the_janitor_aborts_deletes_and_forgets_in_storage_and_database() {
    let Some((cfg, _)) = services() else { return };
    let storage = Storage::new(cfg.clone()).unwrap();
    let db = common::TestDb::migrated().await;
    let admin = db.admin().await;
    let t = common::tenant_with_rows(&admin).await;

    // An expired open session with its multipart upload still open at storage.
    let open_key = ObjectKey::new_upload(t.tenant).as_str().to_owned();
    let open_mpu = begin_multipart(&cfg, &open_key).await;
    let open = session(&admin, &t, "open", true, false, &open_key, &open_mpu).await;
    // An expired open session whose upload storage completed without the app hearing of it: no
    // upload to abort, an object nobody owns.
    let done_key = put(&cfg, t.tenant, b"completed at storage only").await;
    let gone_mpu = begin_multipart(&cfg, &done_key).await;
    assert_eq!(
        storage.abort_multipart(&done_key, &gone_mpu).await.unwrap(),
        Aborted::Aborted
    );
    let orphan = session(&admin, &t, "open", true, false, &done_key, &gone_mpu).await;
    // A rejected upload's object, unused; its session not expired yet.
    let unused_key = put(&cfg, t.tenant, b"rejected content").await;
    let unused = session(&admin, &t, "rejected", false, true, &unused_key, "mpu-done").await;
    // A finished expired session whose object is someone's content now: forgotten, object kept.
    let kept_key = put(&cfg, t.tenant, b"an attachment's content").await;
    let finished = session(&admin, &t, "done", true, false, &kept_key, "mpu-done").await;

    let worker = worker_for(&db, &cfg);
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let s = worker.janitor_pass(&rx).await.unwrap();
    assert_eq!(
        (s.claimed, s.aborted, s.deleted, s.forgotten, s.left),
        (4, 2, 1, 1, 0),
        "{s:?}"
    );

    // Storage: the open upload is aborted (a second abort finds nothing), the orphan and the
    // unused objects are gone, the finished session's object is untouched.
    assert_eq!(
        storage.abort_multipart(&open_key, &open_mpu).await.unwrap(),
        Aborted::NoSuchUpload
    );
    for gone in [&done_key, &unused_key] {
        let e = storage.get(gone).await.err().expect("object still there");
        assert!(e.contains("not found"), "{e}");
    }
    assert_eq!(storage.get(&kept_key).await.unwrap().length, 23);
    // Database: the expired rows are gone, the unused one stays (until its expiry) as settled.
    // (The tenant fixture's own session, open and far from its expiry, is not the janitor's.)
    let rows: Vec<(Uuid, bool)> = admin
        .query(
            "SELECT id, object_unused FROM upload_sessions WHERE id <> $1",
            &[&t.upload_session],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        vec![(unused, false)],
        "open {open}, orphan {orphan}, finished {finished}"
    );
    // Nothing left for a second run.
    assert_eq!(worker.janitor_pass(&rx).await.unwrap().claimed, 0);
    storage.delete(&kept_key).await.unwrap();
}
