//! Direct uploads end to end: the session and parts over HTTP, then the real scan worker
//! (`target/release/scan-worker`, verification queue only) reads each completed object back once
//! (size, SHA-256, content policy, clamd) and reports to the upload-verification route; what the
//! uploader sees afterwards, what storage holds, and the janitor.
//!
//! The verification queue is one table for the whole stack, so every test here holds [`SERIAL`]
//! while its worker runs `--once` (it verifies whatever is waiting, other tests' uploads included,
//! which are valid ones).

use std::sync::{Mutex, MutexGuard};

use integration_tests::bucket::Bucket;
use integration_tests::uploads::Uploader;
use integration_tests::{Stack, client, psql, scan_worker, send, sha256_hex, sql_str};
use serde_json::{Value, json};

const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
const MIB: usize = 1024 * 1024;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The shared uploader (a fresh tenant's user, logged in) with this file's in-memory uploads.
struct World(Uploader);

impl std::ops::Deref for World {
    type Target = Uploader;
    fn deref(&self) -> &Uploader {
        &self.0
    }
}

fn world() -> World {
    World(Uploader::new())
}

/// Text-like content: `label`, a uuid, then letters up to `len` bytes (never executable, never a
/// test signature).
fn content(label: &str, len: usize) -> Vec<u8> {
    let mut v = format!("{label}:{}:", uuid::Uuid::new_v4()).into_bytes();
    let mut i = 0u32;
    while v.len() < len {
        v.push(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26);
        i += 1;
    }
    v
}

impl World {
    /// Creates a session for `data` named `name` (claiming `claimed_sha` when given), PUTs every part
    /// straight to storage and completes it (`202 verifying`); the session as created.
    fn upload(&self, name: &str, data: &[u8], claimed_sha: Option<&str>) -> Value {
        let mut rest = data;
        self.direct_with(name, data.len() as u64, claimed_sha, |size| {
            let (part, after) = rest.split_at(size);
            rest = after;
            part.to_vec()
        })
    }

    /// The attachment's content through a freshly issued signed URL: (status, bytes).
    fn download(&self, id: &str) -> (u16, Vec<u8>) {
        let r = send(
            client()
                .post(Stack::get().url(&format!("/api/v1/attachments/{id}/download-url")))
                .bearer_auth(&self.token)
                .json(&json!({})),
        );
        assert_eq!(r.status, 200, "download-url: {r:?}");
        let res = client()
            .get(r.json()["url"].as_str().unwrap())
            .send()
            .expect("download");
        let status = res.status().as_u16();
        (status, res.bytes().expect("body").to_vec())
    }
}

/// The storage key of upload session `upload`.
fn key_of(upload: &Value) -> String {
    psql(&format!(
        "SELECT storage_key FROM upload_sessions WHERE id = {}",
        sql_str(upload["uploadId"].as_str().unwrap())
    ))
}

/// Runs the worker on the verification queue to its end; its log.
#[track_caller]
fn verify_now() -> String {
    let out = scan_worker("verify", &["--once", "--concurrency", "2"], &[])
        .output()
        .expect("scan-worker");
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "scan-worker failed ({}): {log}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    log
}

#[test]
fn a_verified_upload_is_judged_in_the_same_read_and_downloads_whole() {
    let _s = serial();
    let w = world();
    let data = content("direct-clean", 9 * MIB + 3);
    let s = w.upload("notes.txt", &data, Some(&sha256_hex(&data)));
    let id = s["attachmentId"].as_str().unwrap().to_owned();
    assert_eq!(w.attachment(&id)["virusScanStatus"], "verifying");
    let log = verify_now();
    let a = w.attachment(&id);
    // The verdict came from the verification's own pass: no scan worker ran.
    assert_eq!(a["virusScanStatus"], "clean", "{a}\n{log}");
    assert_eq!(a["contentHash"], sha256_hex(&data));
    assert_eq!(a["size"], data.len());
    assert_eq!(a["mimeType"], "text/plain");
    assert!(a.get("uploadId").is_none());
    let (status, body) = w.download(&id);
    assert_eq!(status, 200);
    assert!(body == data, "downloaded bytes differ");
    assert_eq!(
        psql(&format!(
            "SELECT state || ',' || object_unused FROM upload_sessions WHERE id = {}",
            sql_str(s["uploadId"].as_str().unwrap())
        )),
        "done,false"
    );
    let audit = psql(&format!(
        "SELECT details->>'direct' FROM email_audit_log WHERE action = 'attachment.upload' \
         AND resource_id = {}",
        sql_str(&id)
    ));
    assert_eq!(audit, "true");
}

#[test]
fn eicar_through_a_direct_upload_ends_infected_and_is_never_served() {
    let _s = serial();
    let w = world();
    let s = w.upload("eicar.txt", EICAR, None);
    let id = s["attachmentId"].as_str().unwrap().to_owned();
    verify_now();
    let a = w.attachment(&id);
    assert_eq!(a["virusScanStatus"], "infected", "{a}");
    let (status, _) = w.download(&id);
    assert_eq!(status, 403, "infected content is refused");
}

#[test]
fn an_executable_named_pdf_or_a_wrong_digest_is_rejected_and_its_object_deleted() {
    let _s = serial();
    let w = world();
    let mut elf = b"\x7fELF\x02\x01\x01\x00".to_vec();
    elf.extend(content("elf", 6 * MIB));
    let elf_session = w.upload("report.pdf", &elf, None);
    let data = content("digest", 100_000);
    let wrong = sha256_hex(b"something else");
    let digest_session = w.upload("data.txt", &data, Some(&wrong));
    let keys = [key_of(&elf_session), key_of(&digest_session)];
    for k in &keys {
        assert!(
            Bucket::get().exists(k),
            "the completed object is there before verification"
        );
    }
    verify_now();
    for (s, code) in [
        (&elf_session, "blocked_file_type"),
        (&digest_session, "digest_mismatch"),
    ] {
        let id = s["attachmentId"].as_str().unwrap();
        let a = w.attachment(id);
        assert_eq!(a["virusScanStatus"], "rejected", "{a}");
        assert_eq!(a["rejection"]["code"], code);
        assert!(a.get("downloadUrl").is_none());
        let list = w
            .get(&format!("/api/v1/emails/{}/attachments", w.message()))
            .json();
        assert!(
            list["attachments"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["id"] == id && x["virusScanStatus"] == "rejected"),
            "listed as rejected"
        );
        assert_eq!(
            psql(&format!(
                "SELECT count(*) FROM email_attachments WHERE id = {}",
                sql_str(id)
            )),
            "0",
            "no attachment row for a rejected upload"
        );
    }
    for k in &keys {
        assert!(
            !Bucket::get().exists(k),
            "a rejected upload's object is deleted"
        );
    }
}

#[test]
fn the_same_content_twice_is_stored_once() {
    let _s = serial();
    let w = world();
    let data = content("twice", 6 * MIB);
    let first = w.upload("one.txt", &data, None);
    let second = w.upload("two.txt", &data, None);
    verify_now();
    let a = w.attachment(first["attachmentId"].as_str().unwrap());
    let b = w.attachment(second["attachmentId"].as_str().unwrap());
    assert_eq!(a["contentHash"], b["contentHash"]);
    assert_eq!(
        psql(&format!(
            "SELECT count(*) FROM attachment_blobs WHERE tenant_id = {} AND content_sha256 = {}",
            sql_str(&w.tenant.id),
            sql_str(&sha256_hex(&data))
        )),
        "1"
    );
    // One of the two objects is the content's; the other was deleted.
    let present = [key_of(&first), key_of(&second)]
        .iter()
        .filter(|k| Bucket::get().exists(k))
        .count();
    assert_eq!(present, 1);
    let (status, body) = w.download(b["id"].as_str().unwrap());
    assert_eq!(status, 200);
    assert!(body == data);
}

#[test]
fn the_janitor_aborts_expired_sessions_and_forgets_them() {
    let _s = serial();
    let w = world();
    let r = send(
        client()
            .post(Stack::get().url(&format!("/api/v1/emails/{}/uploads", w.message())))
            .bearer_auth(&w.token)
            .json(&json!({"filename": "left.bin", "size": 12 * MIB})),
    );
    assert_eq!(r.status, 201);
    let s = r.json();
    let res = client()
        .put(s["parts"][0]["url"].as_str().unwrap())
        .body(content("left", 8 * MIB))
        .send()
        .expect("PUT part");
    assert_eq!(res.status().as_u16(), 200);
    let key = key_of(&s);
    assert_eq!(Bucket::get().uploads(&key), vec![key.clone()]);
    let upload = s["uploadId"].as_str().unwrap().to_owned();
    psql(&format!(
        "UPDATE upload_sessions SET expires_at = app_now_ms() - 1 WHERE id = {}",
        sql_str(&upload)
    ));
    let out = scan_worker("verify", &["janitor", "--once"], &[])
        .output()
        .expect("scan-worker janitor");
    assert!(
        out.status.success(),
        "janitor: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        Bucket::get().uploads(&key).is_empty(),
        "multipart upload aborted"
    );
    assert!(!Bucket::get().exists(&key));
    assert_eq!(
        psql(&format!(
            "SELECT count(*) FROM upload_sessions WHERE id = {}",
            sql_str(&upload)
        )),
        "0",
        "the session row is gone"
    );
    w.get(&format!("/api/v1/uploads/{upload}"))
        .assert_problem(404, "not_found");
}

/// The quota is judged again when the verified upload is recorded: a limit lowered (or used up)
/// since the session began rejects it `quota_exceeded`, nothing is counted and its object goes.
#[test]
fn a_verified_upload_over_a_quota_is_rejected_and_its_object_deleted() {
    let _s = serial();
    let w = world();
    let data = content("quota", 100_000);
    let session = w.upload("quota.txt", &data, None);
    // Meanwhile the operator lowers the user's storage limit under the file's size.
    psql(&format!(
        "INSERT INTO tenant_quotas (tenant_id, user_bytes) VALUES ('{}', 50000)",
        w.tenant.id
    ));
    let key = key_of(&session);
    verify_now();
    let id = session["attachmentId"].as_str().unwrap();
    let a = w.attachment(id);
    assert_eq!(a["virusScanStatus"], "rejected", "{a}");
    assert_eq!(a["rejection"]["code"], "quota_exceeded", "{a}");
    assert_eq!(
        psql(&format!(
            "SELECT count(*) FROM email_attachments WHERE id = {}",
            sql_str(id)
        )),
        "0"
    );
    assert_eq!(
        psql(&format!(
            "SELECT coalesce((SELECT stored_bytes FROM user_usage WHERE user_id = '{}'), 0)",
            w.user.id
        )),
        "0"
    );
    assert!(
        !Bucket::get().exists(&key),
        "a rejected upload's object is deleted"
    );
    // The same file again is refused at once, from its claimed size.
    let r = send(
        client()
            .post(Stack::get().url(&format!("/api/v1/emails/{}/uploads", w.message())))
            .bearer_auth(&w.token)
            .json(&json!({"filename": "quota.txt", "size": data.len()})),
    );
    let v = r.assert_problem(403, "quota_exceeded");
    assert_eq!(v["quota"], "user_bytes");
    assert_eq!(v["requested"], data.len());
}
