//! Direct-to-storage uploads over HTTP: a session from the app, the parts PUT straight to Garage
//! through the presigned URLs (no credentials of ours), completion, and every refusal on the way.
//! What the worker then does with a `verifying` upload is in `direct_upload_verify.rs`.

use integration_tests::bucket::Bucket;
use integration_tests::uploads::Uploader;
use integration_tests::{Reply, Stack, client, login, psql, send, sql_str};
use reqwest::blocking::Client;
use serde_json::{Value, json};

const MIB: usize = 1024 * 1024;

/// A fresh tenant's first user, logged in ([`Uploader`]), with this file's requests.
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

impl World {
    fn create_as(&self, token: &str, message: &str, body: Value) -> Reply {
        send(
            client()
                .post(Stack::get().url(&format!("/api/v1/emails/{message}/uploads")))
                .bearer_auth(token)
                .json(&body),
        )
    }

    /// A session for `size` bytes named `name` (must be `201`).
    fn create(&self, name: &str, size: usize) -> Value {
        let r = self.create_as(
            &self.token,
            &self.message(),
            json!({"filename": name, "size": size, "contentType": "application/octet-stream"}),
        );
        assert_eq!(r.status, 201, "create: {r:?}");
        r.json()
    }

    fn complete_as(&self, token: &str, upload: &str, parts: &[(u64, String)]) -> Reply {
        let parts: Vec<Value> = parts
            .iter()
            .map(|(n, e)| json!({"partNumber": n, "etag": e}))
            .collect();
        send(
            client()
                .post(Stack::get().url(&format!("/api/v1/uploads/{upload}/complete")))
                .bearer_auth(token)
                .json(&json!({ "parts": parts })),
        )
    }

    fn complete(&self, upload: &str, parts: &[(u64, String)]) -> Reply {
        self.complete_as(&self.token, upload, parts)
    }

    fn get(&self, path: &str) -> Reply {
        send(
            client()
                .get(Stack::get().url(path))
                .bearer_auth(&self.token),
        )
    }
}

/// Pseudo-random bytes (distinct per seed).
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// PUTs `body` to a presigned part URL as a browser would (no credentials); status and ETag.
fn put_part(c: &Client, url: &str, body: Vec<u8>) -> (u16, Option<String>) {
    let res = c.put(url).body(body).send().expect("PUT part");
    let etag = res
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (res.status().as_u16(), etag)
}

/// Sends every part of `session` from `data`; the (number, ETag) list.
fn send_parts(session: &Value, data: &[u8]) -> Vec<(u64, String)> {
    let c = client();
    let mut out = Vec::new();
    let mut offset = 0usize;
    for p in session["parts"].as_array().expect("parts") {
        let n = p["partNumber"].as_u64().unwrap();
        let size = p["size"].as_u64().unwrap() as usize;
        let (status, etag) = put_part(
            &c,
            p["url"].as_str().unwrap(),
            data[offset..offset + size].to_vec(),
        );
        assert_eq!(status, 200, "PUT part {n}");
        out.push((n, etag.expect("ETag")));
        offset += size;
    }
    assert_eq!(offset, data.len(), "the parts cover the file exactly");
    out
}

#[test]
fn parts_go_straight_to_storage_and_completion_leaves_the_upload_verifying() {
    let w = world();
    let size = 20 * MIB + 5;
    let data = bytes(size, 1);
    let s = w.create("big.bin", size);
    let upload = s["uploadId"].as_str().unwrap().to_owned();
    let attachment = s["attachmentId"].as_str().unwrap().to_owned();
    assert_eq!(s["state"], "open");
    assert_eq!(s["size"], size);
    assert_eq!(s["partSize"], 8 * MIB);
    assert_eq!(s["partCount"], 3);
    let sizes: Vec<u64> = s["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["size"].as_u64().unwrap())
        .collect();
    assert_eq!(
        sizes,
        vec![8 * MIB as u64, 8 * MIB as u64, (4 * MIB + 5) as u64]
    );
    assert!(s["partUrlsExpireAt"].as_i64().unwrap() <= s["expiresAt"].as_i64().unwrap());

    // A part URL is bound to its length: a shorter body is refused by storage itself.
    let c = client();
    let first = s["parts"][0]["url"].as_str().unwrap();
    let (status, _) = put_part(&c, first, vec![0u8; 1024]);
    assert_eq!(status, 403, "a part of another length");

    let parts = send_parts(&s, &data);
    // Not listed, nothing to download yet: the session is still open.
    let list = w
        .get(&format!("/api/v1/emails/{}/attachments", w.message()))
        .json();
    assert!(
        !list["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == attachment)
    );

    // Missing, reordered and wrong parts are refused and change nothing.
    w.complete(&upload, &parts[..2])
        .assert_problem(400, "invalid_parts");
    let mut reordered = parts.clone();
    reordered.swap(0, 1);
    w.complete(&upload, &reordered)
        .assert_problem(400, "invalid_parts");
    let mut wrong = parts.clone();
    wrong[1].1 = "\"00000000000000000000000000000000\"".into();
    w.complete(&upload, &wrong)
        .assert_problem(400, "invalid_parts");

    let done = w.complete(&upload, &parts);
    assert_eq!(done.status, 202, "{done:?}");
    assert_eq!(done.json()["state"], "verifying");
    assert!(
        done.json().get("parts").is_none(),
        "no part URLs once complete"
    );
    // The object is whole in storage, under the session's key.
    let key = psql(&format!(
        "SELECT storage_key FROM upload_sessions WHERE id = {}",
        sql_str(&upload)
    ));
    assert_eq!(Bucket::get().object(&key), data);

    // Completing again is the same answer, never a second attachment.
    let again = w.complete(&upload, &parts);
    assert_eq!(again.status, 202);
    assert_eq!(again.json()["attachmentId"], attachment);
    // A part URL is dead once the upload is complete: storage no longer knows the upload (it may
    // answer before the body is sent, and close the connection under it).
    let status = c
        .put(first)
        .body(bytes(8 * MIB, 9))
        .send()
        .map(|r| r.status().as_u16());
    assert!(
        status.as_ref().map_or(true, |s| *s >= 400),
        "a part after completion: {status:?}"
    );
    assert_eq!(Bucket::get().object(&key), data, "the object is unchanged");

    // Listed as verifying, with nothing to download.
    let list = w
        .get(&format!("/api/v1/emails/{}/attachments", w.message()))
        .json();
    let entry = list["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == attachment)
        .expect("listed")
        .clone();
    assert_eq!(entry["virusScanStatus"], "verifying");
    assert_eq!(entry["uploadId"], upload.as_str());
    assert!(entry.get("downloadUrl").is_none());
    assert!(entry.get("contentHash").is_none());
    let one = w.get(&format!("/api/v1/attachments/{attachment}"));
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["virusScanStatus"], "verifying");
    let url = send(
        client()
            .post(Stack::get().url(&format!("/api/v1/attachments/{attachment}/download-url")))
            .bearer_auth(&w.token)
            .json(&json!({})),
    );
    assert_eq!(url.status, 404, "never downloadable while verifying");
    let scan = w.get(&format!("/api/v1/attachments/{attachment}/scan-status"));
    assert_eq!(scan.status, 200, "{scan:?}");
    assert_eq!(scan.json()["status"], "verifying");
    assert_eq!(
        psql(&format!(
            "SELECT count(*) FROM email_attachments WHERE id = {}",
            sql_str(&attachment)
        )),
        "0"
    );
}

#[test]
fn another_users_or_tenants_upload_is_not_found() {
    let w = world();
    let s = w.create("mine.bin", 6 * MIB);
    let upload = s["uploadId"].as_str().unwrap().to_owned();
    let colleague = w.tenant.user(1).clone();
    let theirs = login(&client(), &Stack::get().base_url, &colleague).access;
    let mut seed = Stack::get().seed();
    let other_tenant = seed.tenants.remove(0);
    let stranger = login(&client(), &Stack::get().base_url, other_tenant.user(0)).access;
    for token in [&theirs, &stranger] {
        send(
            client()
                .get(Stack::get().url(&format!("/api/v1/uploads/{upload}")))
                .bearer_auth(token),
        )
        .assert_problem(404, "not_found");
        w.complete_as(token, &upload, &[(1, "\"x\"".into())])
            .assert_problem(404, "not_found");
        send(
            client()
                .delete(Stack::get().url(&format!("/api/v1/uploads/{upload}")))
                .bearer_auth(token),
        )
        .assert_problem(404, "not_found");
    }
    // The tenant's admin may act on it.
    let admin = login(&client(), &Stack::get().base_url, w.tenant.admin()).access;
    let r = send(
        client()
            .get(Stack::get().url(&format!("/api/v1/uploads/{upload}")))
            .bearer_auth(&admin),
    );
    assert_eq!(r.status, 200);
    // A session on someone else's message is refused before anything is created.
    let their_message = w.tenant.message_of(&colleague, 0).id.clone();
    w.create_as(
        &w.token,
        &their_message,
        json!({"filename": "a.bin", "size": 10}),
    )
    .assert_problem(403, "forbidden");
}

#[test]
fn abort_removes_the_multipart_upload_and_closes_the_session() {
    let w = world();
    let s = w.create("gone.bin", 12 * MIB);
    let upload = s["uploadId"].as_str().unwrap().to_owned();
    let key = psql(&format!(
        "SELECT storage_key FROM upload_sessions WHERE id = {}",
        sql_str(&upload)
    ));
    let c = client();
    let (status, etag) = put_part(
        &c,
        s["parts"][0]["url"].as_str().unwrap(),
        bytes(8 * MIB, 2),
    );
    assert_eq!(status, 200);
    assert!(Bucket::get().uploads(&key).contains(&key));
    let del = || {
        send(
            client()
                .delete(Stack::get().url(&format!("/api/v1/uploads/{upload}")))
                .bearer_auth(&w.token),
        )
    };
    assert_eq!(del().status, 204);
    assert!(
        Bucket::get().uploads(&key).is_empty(),
        "multipart upload aborted"
    );
    assert!(!Bucket::get().exists(&key));
    assert_eq!(del().status, 204, "aborting again is the same");
    w.complete(&upload, &[(1, etag.unwrap()), (2, "\"x\"".into())])
        .assert_problem(409, "upload_not_open");
    let g = w.get(&format!("/api/v1/uploads/{upload}")).json();
    assert_eq!(g["state"], "aborted");
    assert!(g.get("parts").is_none());
}

#[test]
fn an_expired_session_cannot_be_completed() {
    let w = world();
    let s = w.create("late.bin", 100);
    let upload = s["uploadId"].as_str().unwrap().to_owned();
    let (status, etag) = put_part(
        &client(),
        s["parts"][0]["url"].as_str().unwrap(),
        bytes(100, 3),
    );
    assert_eq!(status, 200);
    psql(&format!(
        "UPDATE upload_sessions SET expires_at = app_now_ms() - 1 WHERE id = {}",
        sql_str(&upload)
    ));
    w.complete(&upload, &[(1, etag.unwrap())])
        .assert_problem(410, "upload_expired");
    assert!(
        w.get(&format!("/api/v1/uploads/{upload}"))
            .json()
            .get("parts")
            .is_none()
    );
}

#[test]
fn claims_are_judged_before_any_byte_moves() {
    let w = world();
    let m = w.message();
    let max = Stack::get().spin_var("direct_upload_max_bytes", "5368709120");
    let over: u64 = max.parse::<u64>().unwrap() + 1;
    let cases = [
        (json!({"filename": "a.bin", "size": 0}), 400, "bad_request"),
        (
            json!({"filename": "a.bin", "size": over}),
            413,
            "payload_too_large",
        ),
        (
            json!({"filename": "setup.exe", "size": 10}),
            415,
            "blocked_file_type",
        ),
        (
            json!({"filename": "invoice.pdf.exe", "size": 10}),
            415,
            "blocked_file_type",
        ),
        (
            json!({"filename": "a.bin", "size": 10, "contentType": "application/x-msdownload"}),
            415,
            "blocked_file_type",
        ),
        (json!({"filename": "", "size": 10}), 422, "invalid_filename"),
        (
            json!({"filename": "a.bin", "size": 10, "sha256": "abc"}),
            400,
            "bad_request",
        ),
        (
            json!({"filename": "a.bin", "size": 10, "extra": 1}),
            400,
            "bad_request",
        ),
        (json!({"filename": "a.bin"}), 400, "bad_request"),
    ];
    for (body, status, code) in cases {
        let r = w.create_as(&w.token, &m, body.clone());
        assert_eq!(r.status, status, "{body}: {r:?}");
        r.assert_problem(status, code);
    }
    w.create_as(
        &w.token,
        &uuid::Uuid::new_v4().to_string(),
        json!({"filename": "a.bin", "size": 10}),
    )
    .assert_problem(404, "not_found");
    // Nothing was recorded for any of them (the tenant is this test's own).
    assert_eq!(
        psql(&format!(
            "SELECT count(*) FROM upload_sessions WHERE tenant_id = {}",
            sql_str(&w.tenant.id)
        )),
        "0"
    );
}
