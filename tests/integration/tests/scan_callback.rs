//! The scan callback and scan status over HTTP against the real stack: the signature
//! matrix, replays, the verdict state machine, concurrent verdicts, targets by attachment and by
//! content, the scan-status route and its tenancy, dedup'd content sharing a verdict, and quarantine
//! (download refused, object gone from its key, checked in the bucket with our own SigV4 requests).
//!
//! Signatures are computed here with hmac/sha2, independently of crates/scan-core.
//!
//! Verdicts take effect in the order they arrive, findings (`infected`, `suspicious`) always win, and
//! the verdicts posted here are dated now. Under `scripts/test` no scan worker runs beside these tests
//! (scan_e2e runs its own, in another test binary); under `scripts/dev` one may post its own verdicts
//! (engine `ClamAV ...`), and the assertions that could see them filter by this file's engine.

use hmac::{KeyInit, Mac};
use integration_tests::bucket::Bucket;
use integration_tests::{App, Reply, Stack, Tenant, User, client, login, send};
use integration_tests::{now_ms, now_s, psql, sha256_hex};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use sha2::Sha256;

// ---------------------------------------------------------------------------------------------
// Helpers

fn stack() -> &'static Stack {
    Stack::get()
}

fn var(name: &str) -> String {
    stack()
        .var(name)
        .unwrap_or_else(|| panic!("{name} is not set (run through scripts/test or scripts/dev)"))
        .to_owned()
}

/// The scan worker's secret: `SCAN_CALLBACK_SECRET` is `scan-worker:<secret>`, as the app's ring
/// (`scan_callback_secrets`) lists it.
fn secret() -> String {
    let named = var("SCAN_CALLBACK_SECRET");
    let first = named.split(',').next().unwrap_or_default();
    first
        .split_once(':')
        .map_or(first, |(_, secret)| secret)
        .to_owned()
}

/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let tag: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    format!("t={t},v1={tag}")
}

fn callback_url() -> String {
    stack().url("/api/v1/scan/callback")
}

/// Posts `body` with these `X-Scan-Signature` headers (none, one or several).
fn post_raw(body: &[u8], signatures: &[&str], content_type: &str) -> Reply {
    let mut rb = client()
        .post(callback_url())
        .header("content-type", content_type)
        .body(body.to_vec());
    for s in signatures {
        rb = rb.header("x-scan-signature", *s);
    }
    send(rb)
}

/// Posts `body` correctly signed now.
fn post(body: &Value) -> Reply {
    post_to(&stack().base_url, body)
}

/// Posts `body` correctly signed now to the app at `base`.
fn post_to(base: &str, body: &Value) -> Reply {
    post_signed(base, &secret(), now_s(), body)
}

/// Posts `body` to the app at `base`, signed with `secret` at `t`.
fn post_signed(base: &str, secret: &str, t: i64, body: &Value) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap();
    let sig = sign(secret, t, &bytes);
    send(
        client()
            .post(format!("{base}/api/v1/scan/callback"))
            .header("content-type", "application/json")
            .header("x-scan-signature", sig)
            .body(bytes),
    )
}

#[track_caller]
fn post_ok(body: &Value) {
    let r = post(body);
    assert_eq!(r.status, 204, "{body}: {r:?}");
    assert!(r.header("x-request-id").is_some(), "{r:?}");
    assert!(r.body.is_empty(), "{r:?}");
}

fn verdict(target: Value, status: &str, scanned_at: i64) -> Value {
    let mut v = target;
    v["status"] = status.into();
    v["engine"] = "itest-engine 1.0".into();
    v["signature"] = if status == "infected" || status == "suspicious" {
        "Itest-Signature".into()
    } else {
        Value::Null
    };
    v["details"] = format!("{status} at {scanned_at}").into();
    v["scannedAt"] = scanned_at.into();
    v
}

fn by_attachment(id: &str) -> Value {
    json!({ "attachmentId": id })
}

fn by_content(tenant: &str, hash: &str) -> Value {
    json!({ "tenantId": tenant, "contentHash": hash })
}

/// A logged-in user of a seeded tenant.
struct Who {
    tenant: Tenant,
    user: User,
    token: String,
    c: Client,
}

fn who(t: &Tenant, u: &User) -> Who {
    let c = client();
    let token = login(&c, &stack().base_url, u).access;
    Who {
        tenant: t.clone(),
        user: u.clone(),
        token,
        c,
    }
}

/// Content no one else has.
fn unique(label: &str) -> Vec<u8> {
    format!("scan test {label} {}\n", uuid::Uuid::new_v4()).into_bytes()
}

impl Who {
    fn message(&self, n: usize) -> String {
        self.tenant.message_of(&self.user, n).id.clone()
    }

    /// Uploads `bytes` as a text file to message `n`; the Attachment JSON.
    #[track_caller]
    fn upload(&self, n: usize, bytes: &[u8]) -> Value {
        let r = send(
            self.c
                .post(stack().url(&format!("/api/v1/emails/{}/attachments", self.message(n))))
                .bearer_auth(&self.token)
                .header("content-type", "text/plain")
                .header("content-disposition", "attachment; filename=\"notes.txt\"")
                .body(bytes.to_vec()),
        );
        assert_eq!(r.status, 201, "{r:?}");
        r.json()
    }

    fn scan_status(&self, id: &str) -> Reply {
        send(
            self.c
                .get(stack().url(&format!("/api/v1/attachments/{id}/scan-status")))
                .bearer_auth(&self.token),
        )
    }

    #[track_caller]
    fn status_of(&self, id: &str) -> Value {
        let r = self.scan_status(id);
        assert_eq!(r.status, 200, "{r:?}");
        r.json()
    }

    /// A fresh download URL of `id`.
    #[track_caller]
    fn download_url(&self, id: &str) -> String {
        let r = send(
            self.c
                .post(stack().url(&format!("/api/v1/attachments/{id}/download-url")))
                .bearer_auth(&self.token)
                .json(&json!({})),
        );
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["url"].as_str().unwrap().to_owned()
    }

    /// The tenant's audit rows with this action (admin route; `self` must be the admin).
    fn audit(&self, action: &str) -> Vec<Value> {
        let r = send(
            self.c
                .get(stack().url("/api/v1/audit-log?limit=200"))
                .bearer_auth(&self.token),
        );
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect()
    }
}

fn storage_key(tenant: &str, hash: &str) -> String {
    psql(&format!(
        "SELECT storage_key FROM attachment_blobs WHERE tenant_id = '{tenant}' AND content_sha256 = '{hash}'"
    ))
}

fn fetch(url: &str) -> Reply {
    send(client().get(url))
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn scan_callback_signature_matrix() {
    let seed = stack().seed();
    let t = &seed.tenants[0];
    let u = who(t, t.user(0));
    let a = u.upload(0, &unique("signature matrix"));
    let id = a["id"].as_str().unwrap();
    let before = u.status_of(id);

    let at = now_ms();
    let body = serde_json::to_vec(&verdict(by_attachment(id), "infected", at)).unwrap();
    let now = now_s();
    let good = sign(&secret(), now, &body);
    let other_body = serde_json::to_vec(&verdict(by_attachment(id), "clean", at)).unwrap();
    let tag = good.split_once(",v1=").unwrap().1.to_owned();
    let refused: Vec<(&str, Vec<String>, Vec<u8>)> = vec![
        ("no header", vec![], body.clone()),
        (
            "wrong secret",
            vec![sign("not-the-secret-0123456789abcdef", now, &body)],
            body.clone(),
        ),
        // Well outside the 300 s window: the server's clock moves on while these run, and the exact
        // boundary is the unit tests' job (scan-core's signature tests).
        (
            "stale t",
            vec![sign(&secret(), now - 360, &body)],
            body.clone(),
        ),
        (
            "future t",
            vec![sign(&secret(), now + 360, &body)],
            body.clone(),
        ),
        ("modified body", vec![good.clone()], other_body.clone()),
        (
            "body with a trailing space",
            vec![good.clone()],
            [body.clone(), b" ".to_vec()].concat(),
        ),
        (
            "t moved",
            vec![format!("t={},v1={tag}", now + 1)],
            body.clone(),
        ),
        ("malformed t", vec![format!("t=abc,v1={tag}")], body.clone()),
        ("no t", vec![format!("v1={tag}")], body.clone()),
        ("no v1", vec![format!("t={now}")], body.clone()),
        (
            "short tag",
            vec![format!("t={now},v1={}", &tag[..40])],
            body.clone(),
        ),
        ("garbage", vec!["Bearer abc".into()], body.clone()),
        (
            "two headers",
            vec![good.clone(), good.clone()],
            body.clone(),
        ),
    ];
    for (what, sigs, b) in &refused {
        let sigs: Vec<&str> = sigs.iter().map(String::as_str).collect();
        let r = post_raw(b, &sigs, "application/json");
        let p = r.assert_problem(401, "signature_invalid");
        assert_eq!(
            r.header("www-authenticate"),
            Some("X-Scan-Signature realm=\"scan-callback\""),
            "{what}: {r:?}"
        );
        // The same answer for every refusal: nothing tells which check failed.
        assert_eq!(
            p["detail"],
            "X-Scan-Signature is missing, malformed, outside the allowed time window, or does not match.",
            "{what}"
        );
    }
    // An unsigned request for an unknown target learns nothing either (401, not 404).
    let unknown = serde_json::to_vec(&verdict(
        by_attachment(&uuid::Uuid::new_v4().to_string()),
        "clean",
        at,
    ))
    .unwrap();
    post_raw(&unknown, &[], "application/json").assert_problem(401, "signature_invalid");
    // Nothing changed.
    assert_eq!(u.status_of(id), before);

    // Signed but not acceptable: media type, shape, oversize, method.
    let r = post_raw(&body, &[&good], "text/plain");
    r.assert_problem(415, "unsupported_media_type");
    for bad in [
        json!({ "attachmentId": id, "status": "pending", "scannedAt": at }),
        json!({ "attachmentId": id, "tenantId": t.id, "status": "clean", "scannedAt": at }),
        json!({ "attachmentId": "not-a-uuid", "status": "clean", "scannedAt": at }),
        json!({ "attachmentId": id, "status": "clean", "scannedAt": at / 1000 }),
        json!({ "tenantId": t.id, "contentHash": "ABC", "status": "clean", "scannedAt": at }),
        json!({ "attachmentId": id, "status": "clean", "scannedAt": at, "engine": "x".repeat(101) }),
    ] {
        post(&bad).assert_problem(400, "bad_request");
    }
    post(&json!({ "attachmentId": id, "status": "clean", "scannedAt": now_ms() + 400_000 }))
        .assert_problem(400, "clock_skew");
    let big = vec![b' '; 64 * 1024 + 1];
    post_raw(&big, &[&sign(&secret(), now_s(), &big)], "application/json")
        .assert_problem(413, "payload_too_large");
    let r = send(client().get(callback_url()));
    r.assert_problem(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(u.status_of(id), before);

    // The correctly signed original is accepted, also with the secret among others in the header.
    let two = format!(
        "{},v1={tag}",
        sign("not-the-secret-0123456789abcdef", now, &body)
    );
    let r = post_raw(&body, &[&two], "application/json");
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(u.status_of(id)["status"], "infected");
}

#[test]
fn scan_callback_replay_is_a_noop() {
    let seed = stack().seed();
    let t = &seed.tenants[0];
    let u = who(t, t.user(0));
    let admin = who(t, t.admin());
    let bytes = unique("replay");
    let a = u.upload(0, &bytes);
    let id = a["id"].as_str().unwrap();
    let hash = sha256_hex(&bytes);

    let at = now_ms();
    let body = serde_json::to_vec(&verdict(by_attachment(id), "clean", at)).unwrap();
    let sig = sign(&secret(), now_s(), &body);
    for _ in 0..3 {
        let r = post_raw(&body, &[&sig], "application/json");
        assert_eq!(r.status, 204, "{r:?}");
    }
    let s = u.status_of(id);
    assert_eq!(
        s,
        json!({
            "status": "clean", "details": format!("clean at {at}"), "engine": "itest-engine 1.0",
            "signature": null, "scannedAt": at,
            "engines": [{"engine": "itest-engine", "version": "1.0", "signatureVersion": null,
                         "status": "clean", "names": [], "scannedAt": at}]
        })
    );
    // The replays kept one engine row.
    let rows = psql(&format!(
        "SELECT count(*) FROM scan_engine_verdicts e JOIN attachment_blobs b ON b.id = e.blob_id \
         WHERE b.tenant_id = '{}' AND b.content_sha256 = '{hash}'",
        t.id
    ));
    assert_eq!(rows, "1");
    // One applied verdict, one audit row; the replays wrote nothing.
    let rows: Vec<Value> = admin
        .audit("scan.verdict")
        .into_iter()
        .filter(|e| {
            e["details"]["contentHash"] == hash.as_str()
                && e["details"]["engine"] == "itest-engine 1.0"
        })
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["resourceType"], "attachment_blob");
    assert_eq!(rows[0]["details"]["status"], "clean");
    assert_eq!(rows[0]["details"]["attachmentId"], id);
    assert!(rows[0]["userId"].is_null());
    // The verdict completed the content's scan job.
    let open = psql(&format!(
        "SELECT count(*) FROM scan_jobs j JOIN attachment_blobs b ON b.id = j.blob_id \
         WHERE b.tenant_id = '{}' AND b.content_sha256 = '{hash}' AND j.status IN ('pending', 'running')",
        t.id
    ));
    assert_eq!(open, "0");
    let version = psql(&format!(
        "SELECT scan_verdict_version FROM attachment_blobs WHERE tenant_id = '{}' AND content_sha256 = '{hash}'",
        t.id
    ));
    // 1 from this test's verdict; a scan worker running beside may have applied one before it.
    assert!(version == "1" || version == "2", "{version}");
}

#[test]
fn scan_verdict_state_machine_over_http() {
    let seed = stack().seed();
    let t = &seed.tenants[0];
    let u = who(t, t.user(0));
    let admin = who(t, t.admin());
    let bytes = unique("transitions");
    let a = u.upload(0, &bytes);
    let id = a["id"].as_str().unwrap();
    let hash = sha256_hex(&bytes);
    let target = by_attachment(id);
    // Dated in the past: the steps below add seconds, and nothing may be dated ahead of the server.
    let t0 = now_ms() - 60_000;

    // pending -> clean
    post_ok(&verdict(target.clone(), "clean", t0));
    assert_eq!(u.status_of(id)["status"], "clean");
    // clean -> error (a failed rescan) is ignored: the content stays clean.
    post_ok(&verdict(target.clone(), "error", t0 + 1_000));
    let s = u.status_of(id);
    assert_eq!(
        (s["status"].as_str(), s["scannedAt"].as_i64()),
        (Some("clean"), Some(t0))
    );
    // clean -> infected on a rescan.
    post_ok(&verdict(target.clone(), "infected", t0 + 2_000));
    let s = u.status_of(id);
    assert_eq!(s["status"], "infected");
    assert_eq!(s["signature"], "Itest-Signature");
    assert_eq!(s["scannedAt"], t0 + 2_000);
    // infected -> clean (newer) is ignored, not an error.
    post_ok(&verdict(target.clone(), "clean", t0 + 3_000));
    // infected -> suspicious (newer) is ignored too.
    post_ok(&verdict(target.clone(), "suspicious", t0 + 3_500));
    // An infected finding is never stale: one dated before the one in force refreshes it.
    post_ok(&verdict(target.clone(), "infected", t0 + 1_500));
    let s = u.status_of(id);
    assert_eq!(
        (s["status"].as_str(), s["scannedAt"].as_i64()),
        (Some("infected"), Some(t0 + 1_500))
    );
    assert_eq!(s["details"], format!("infected at {}", t0 + 1_500));
    // A newer infected verdict refreshes the details too.
    post_ok(&verdict(target.clone(), "infected", t0 + 4_000));
    let s = u.status_of(id);
    assert_eq!(
        (s["status"].as_str(), s["scannedAt"].as_i64()),
        (Some("infected"), Some(t0 + 4_000))
    );
    // The attachment itself reports the same status.
    let r = send(
        u.c.get(stack().url(&format!("/api/v1/attachments/{id}")))
            .bearer_auth(&u.token),
    );
    assert_eq!(r.json()["virusScanStatus"], "infected");

    // Audit: four applied verdicts, two refused as releases of quarantine; the kept-clean one is not
    // audited. One quarantine. Every verdict row names the scanner whose key signed it.
    let mine = |action: &str| -> Vec<Value> {
        admin
            .audit(action)
            .into_iter()
            // Only this test's verdicts (a scan worker's have another engine).
            .filter(|e| e["details"]["contentHash"] == hash.as_str())
            .filter(|e| {
                action == "attachment.quarantine" || e["details"]["engine"] == "itest-engine 1.0"
            })
            .collect()
    };
    let applied: Vec<String> = mine("scan.verdict")
        .iter()
        .map(|e| {
            format!(
                "{}->{}",
                e["details"]["previousStatus"].as_str().unwrap(),
                e["details"]["status"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(applied.len(), 4, "{applied:?}");
    assert!(
        applied.contains(&"pending->clean".to_owned()),
        "{applied:?}"
    );
    assert!(
        applied.contains(&"clean->infected".to_owned()),
        "{applied:?}"
    );
    assert!(
        applied.contains(&"infected->infected".to_owned()),
        "{applied:?}"
    );
    let ignored = mine("scan.verdict_ignored");
    assert_eq!(ignored.len(), 2, "{ignored:?}");
    assert!(
        ignored
            .iter()
            .all(|e| e["details"]["reason"] == "quarantined")
    );
    assert_eq!(mine("attachment.quarantine").len(), 1);
    for e in mine("scan.verdict").iter().chain(&ignored) {
        assert_eq!(e["details"]["scanner"], "scan-worker", "{e}");
    }
}

#[test]
fn scan_infected_content_is_quarantined_and_never_served() {
    let seed = stack().seed();
    let t = &seed.tenants[0];
    let u = who(t, t.user(0));
    let bucket = Bucket::get();
    let bytes = unique("quarantine");
    let hash = sha256_hex(&bytes);
    let a = u.upload(0, &bytes);
    let id = a["id"].as_str().unwrap();
    let original = storage_key(&t.id, &hash);
    assert!(
        original.starts_with(&format!("tenants/{}/", t.id)),
        "{original}"
    );
    assert!(bucket.exists(&original));

    let t0 = now_ms() - 60_000;
    post_ok(&verdict(by_attachment(id), "clean", t0));
    let url = u.download_url(id);
    let r = fetch(&url);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body.as_bytes(), &bytes[..]);

    post_ok(&verdict(by_attachment(id), "infected", t0 + 1_000));
    // Refused at once, through the URL issued before the verdict and through a new one.
    fetch(&url).assert_problem(403, "scan_blocked");
    fetch(&u.download_url(id)).assert_problem(403, "scan_blocked");
    // The object left its key: moved under quarantine/ (quarantine_mode = move, the default), and the
    // row points at the quarantined object.
    let mode = stack().spin_var("quarantine_mode", "move").to_owned();
    assert!(
        !bucket.exists(&original),
        "the infected object is still at its original key"
    );
    let now_key = storage_key(&t.id, &hash);
    let recorded = psql(&format!(
        "SELECT quarantine_action FROM attachment_blobs WHERE tenant_id = '{}' AND content_sha256 = '{hash}'",
        t.id
    ));
    if mode == "move" {
        assert_eq!(now_key, format!("quarantine/{original}"));
        assert!(bucket.exists(&now_key));
        assert_eq!(recorded, "moved");
    } else {
        assert_eq!(now_key, original);
        assert_eq!(recorded, "deleted");
    }

    // Retries are harmless and change nothing.
    post_ok(&verdict(by_attachment(id), "infected", t0 + 1_000));
    post_ok(&verdict(by_attachment(id), "clean", t0 + 2_000));
    assert_eq!(storage_key(&t.id, &hash), now_key);
    assert_eq!(bucket.exists(&now_key), mode == "move");
    fetch(&url).assert_problem(403, "scan_blocked");
    // The scan status still reports it, for the UI.
    assert_eq!(u.status_of(id)["status"], "infected");

    // Suspicious content is quarantined the same way.
    let bytes2 = unique("suspicious");
    let b = u.upload(1, &bytes2);
    let id2 = b["id"].as_str().unwrap();
    let original2 = storage_key(&t.id, &sha256_hex(&bytes2));
    post_ok(&verdict(by_attachment(id2), "suspicious", t0));
    fetch(&u.download_url(id2)).assert_problem(403, "scan_blocked");
    assert!(!bucket.exists(&original2));
}

#[test]
fn scan_concurrent_verdicts_end_consistent() {
    let seed = stack().seed();
    let t = &seed.tenants[0];
    let u = who(t, t.user(0));
    let admin = who(t, t.admin());
    let bucket = Bucket::get();
    let t0 = now_ms() - 60_000;
    let mut cases = Vec::new();
    for i in 0..4 {
        let bytes = unique(&format!("concurrent {i}"));
        let a = u.upload(i % 3, &bytes);
        cases.push((a["id"].as_str().unwrap().to_owned(), sha256_hex(&bytes)));
    }
    for (i, (id, _)) in cases.iter().enumerate() {
        // Case 0 and 1: clean and infected race; 2: infected and suspicious race with the same
        // scannedAt; 3: the same infected verdict twice at once.
        let (first, second) = match i {
            0 | 1 => (
                verdict(by_attachment(id), "clean", t0),
                verdict(by_attachment(id), "infected", t0 + 10),
            ),
            2 => (
                verdict(by_attachment(id), "infected", t0),
                verdict(by_attachment(id), "suspicious", t0),
            ),
            _ => (
                verdict(by_attachment(id), "infected", t0),
                verdict(by_attachment(id), "infected", t0),
            ),
        };
        let (a, b) = if i == 1 {
            (second, first)
        } else {
            (first, second)
        };
        let ha = std::thread::spawn(move || post(&a));
        let hb = std::thread::spawn(move || post(&b));
        for h in [ha, hb] {
            let r = h.join().unwrap();
            assert_eq!(r.status, 204, "{r:?}");
        }
    }
    for (i, (id, hash)) in cases.iter().enumerate() {
        let s = u.status_of(id);
        match i {
            0 | 1 => assert_eq!(
                (s["status"].as_str(), s["scannedAt"].as_i64()),
                (Some("infected"), Some(t0 + 10)),
                "case {i}"
            ),
            // In either order infected wins: suspicious never weakens it.
            2 => assert_eq!(s["status"], "infected", "case {i}: {s}"),
            _ => assert_eq!(s["status"], "infected", "case {i}"),
        }
        let key = storage_key(&t.id, hash);
        assert!(
            key.starts_with("quarantine/")
                || stack().spin_var("quarantine_mode", "move") == "delete",
            "{key}"
        );
        if let Some(original) = key.strip_prefix("quarantine/") {
            assert!(!bucket.exists(original), "case {i}: original left behind");
            assert!(bucket.exists(&key), "case {i}: quarantined object missing");
        }
    }
    // Exactly one quarantine per content, however many verdicts raced.
    let quarantines = admin.audit("attachment.quarantine");
    for (i, (_, hash)) in cases.iter().enumerate() {
        let n = quarantines
            .iter()
            .filter(|e| e["details"]["contentHash"] == hash.as_str())
            .count();
        assert_eq!(n, 1, "case {i}");
    }
}

#[test]
fn scan_callback_by_content_and_unknown_targets() {
    let seed = stack().seed();
    let (t, other) = (&seed.tenants[0], &seed.tenants[1]);
    let u = who(t, t.user(0));
    let bytes = unique("by content");
    let hash = sha256_hex(&bytes);
    let a = u.upload(0, &bytes);
    let id = a["id"].as_str().unwrap();
    let t0 = now_ms() - 60_000;

    post_ok(&verdict(by_content(&t.id, &hash), "clean", t0));
    let s = u.status_of(id);
    assert_eq!(
        (s["status"].as_str(), s["scannedAt"].as_i64()),
        (Some("clean"), Some(t0))
    );

    // Unknown targets: 404 (signed, so the scanner learns the target does not exist).
    for target in [
        by_attachment(&uuid::Uuid::new_v4().to_string()),
        by_content(&t.id, &sha256_hex(b"never uploaded")),
        // The content exists, but in another tenant.
        by_content(&other.id, &hash),
        by_content(&uuid::Uuid::new_v4().to_string(), &hash),
    ] {
        let r = post(&verdict(target.clone(), "infected", t0 + 1));
        r.assert_problem(404, "not_found");
    }
    assert_eq!(u.status_of(id)["status"], "clean");
}

/// Two engines judge the same content: each one's verdict is listed, the content's status is the
/// worst of them, and one engine's error hides neither another's clean nor its finding.
#[test]
fn scan_verdicts_from_several_engines() {
    let seed = stack().seed();
    let t = &seed.tenants[0];
    let u = who(t, t.user(0));
    let t0 = now_ms() - 60_000;
    let engine_verdict =
        |target: &Value, engine: &str, status: &str, signature: Option<&str>, at: i64| {
            let mut v = verdict(target.clone(), status, at);
            v["engine"] = engine.into();
            v["signature"] = signature.map_or(Value::Null, Into::into);
            v
        };
    let engines = |id: &str| -> Vec<(String, String)> {
        u.status_of(id)["engines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["engine"].as_str().unwrap().to_owned(),
                    e["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };

    // ClamAV clean, then VirusTotal cannot answer: still clean, both listed.
    let a = u.upload(0, &unique("engines clean"));
    let id = a["id"].as_str().unwrap();
    let target = by_attachment(id);
    post_ok(&engine_verdict(
        &target,
        "ClamAV 1.0.7/27000/Tue Dec  1 08:00:00 2026",
        "clean",
        None,
        t0,
    ));
    post_ok(&engine_verdict(
        &target,
        "VirusTotal",
        "error",
        None,
        t0 + 1_000,
    ));
    let s = u.status_of(id);
    assert_eq!(s["status"], "clean", "{s}");
    assert_eq!(
        engines(id),
        [
            ("clamav".into(), "clean".into()),
            ("virustotal".into(), "error".into())
        ]
    );
    let clamav = &s["engines"][0];
    assert_eq!(clamav["version"], "1.0.7", "{s}");
    assert_eq!(clamav["signatureVersion"], 27000, "{s}");
    assert_eq!(clamav["scannedAt"], t0, "{s}");
    assert_eq!(clamav["names"], json!([]), "{s}");

    // VirusTotal finds it (two names), ClamAV said clean: infected, with VirusTotal's names.
    post_ok(&engine_verdict(
        &target,
        "VirusTotal",
        "infected",
        Some("Win.Test.EICAR_HDB-1, EICAR-Test-File"),
        t0 + 2_000,
    ));
    let s = u.status_of(id);
    assert_eq!(s["status"], "infected", "{s}");
    assert_eq!(
        s["engines"][1]["names"],
        json!(["Win.Test.EICAR_HDB-1", "EICAR-Test-File"])
    );
    // ClamAV's later clean is kept as its word, and releases nothing.
    post_ok(&engine_verdict(
        &target,
        "ClamAV 1.0.7/27001/Wed Dec  2 08:00:00 2026",
        "clean",
        None,
        t0 + 3_000,
    ));
    let s = u.status_of(id);
    assert_eq!(s["status"], "infected", "{s}");
    assert_eq!(s["engines"][0]["signatureVersion"], 27001, "{s}");
    assert_eq!(
        engines(id),
        [
            ("clamav".into(), "clean".into()),
            ("virustotal".into(), "infected".into())
        ]
    );

    // The other way round: ClamAV finds it, then VirusTotal errs: the finding stays.
    let b = u.upload(0, &unique("engines infected"));
    let id = b["id"].as_str().unwrap();
    let target = by_attachment(id);
    post_ok(&engine_verdict(
        &target,
        "ClamAV 1.0.7/27000/x",
        "infected",
        Some("Itest-Signature"),
        t0,
    ));
    post_ok(&engine_verdict(
        &target,
        "VirusTotal",
        "error",
        None,
        t0 + 1_000,
    ));
    assert_eq!(u.status_of(id)["status"], "infected");
    assert_eq!(
        engines(id),
        [
            ("clamav".into(), "infected".into()),
            ("virustotal".into(), "error".into())
        ]
    );

    // Only an engine's error: error; then the other engine's clean: clean.
    let c = u.upload(0, &unique("engines error"));
    let id = c["id"].as_str().unwrap();
    let target = by_attachment(id);
    post_ok(&engine_verdict(&target, "VirusTotal", "error", None, t0));
    assert_eq!(u.status_of(id)["status"], "error");
    post_ok(&engine_verdict(
        &target,
        "ClamAV 1.0.7/27000/x",
        "clean",
        None,
        t0 + 1_000,
    ));
    assert_eq!(u.status_of(id)["status"], "clean");
}

#[test]
fn scan_status_route_and_tenancy() {
    let seed = stack().seed();
    let (t, other) = (&seed.tenants[0], &seed.tenants[1]);
    let owner = who(t, t.user(0));
    let colleague = who(t, t.user(1));
    let admin = who(t, t.admin());
    let stranger = who(other, other.admin());
    let a = owner.upload(0, &unique("status route"));
    let id = a["id"].as_str().unwrap();

    let s = owner.status_of(id);
    let keys: Vec<&str> = {
        let mut k: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort();
        k
    };
    assert_eq!(
        keys,
        [
            "details",
            "engine",
            "engines",
            "scannedAt",
            "signature",
            "status"
        ]
    );
    // A scan worker may have judged it already.
    assert!(s["status"] == "pending" || s["status"] == "clean", "{s}");
    if s["status"] == "pending" {
        assert_eq!(
            s,
            json!({ "status": "pending", "details": null, "engine": null, "signature": null, "scannedAt": null, "engines": [] })
        );
    }
    let r = owner.scan_status(id);
    assert!(r.header("x-request-id").is_some());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(
        r.header("ratelimit-policy").is_some(),
        "behind the middleware: {r:?}"
    );

    assert_eq!(admin.status_of(id)["status"], s["status"]);
    colleague.scan_status(id).assert_problem(403, "forbidden");
    stranger.scan_status(id).assert_problem(404, "not_found");
    owner
        .scan_status(&uuid::Uuid::new_v4().to_string())
        .assert_problem(404, "not_found");
    owner
        .scan_status("not-a-uuid")
        .assert_problem(400, "invalid_id");
    let r = send(client().get(stack().url(&format!("/api/v1/attachments/{id}/scan-status"))));
    r.assert_problem(401, "invalid_token");
    let r = send(
        owner
            .c
            .post(stack().url(&format!("/api/v1/attachments/{id}/scan-status")))
            .bearer_auth(&owner.token),
    );
    assert_eq!(r.status, 405, "{r:?}");

    // A deleted attachment has no scan status.
    let r = send(
        owner
            .c
            .delete(stack().url(&format!("/api/v1/attachments/{id}")))
            .bearer_auth(&owner.token),
    );
    assert_eq!(r.status, 204, "{r:?}");
    owner.scan_status(id).assert_problem(404, "not_found");
}

#[test]
fn scan_dedup_attachments_share_the_verdict() {
    let seed = stack().seed();
    let t = &seed.tenants[0];
    let u = who(t, t.user(0));
    let bytes = unique("dedup");
    let first = u.upload(0, &bytes);
    let second = u.upload(1, &bytes);
    assert_eq!(second["isDeduplicated"], true, "{second}");
    let (id1, id2) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );

    let t0 = now_ms() - 60_000;
    post_ok(&verdict(by_attachment(id1), "infected", t0));
    for id in [id1, id2] {
        let s = u.status_of(id);
        assert_eq!(
            (s["status"].as_str(), s["scannedAt"].as_i64()),
            (Some("infected"), Some(t0)),
            "{id}"
        );
        fetch(&u.download_url(id)).assert_problem(403, "scan_blocked");
    }
    // A third upload of the same content is dedup'd onto the quarantined content: still refused.
    let third = u.upload(2, &bytes);
    assert_eq!(third["virusScanStatus"], "infected");
    fetch(&u.download_url(third["id"].as_str().unwrap())).assert_problem(403, "scan_blocked");
}

#[test]
fn scan_quarantine_mode_delete() {
    // An app with quarantine_mode = delete beside the stack's (same database and bucket).
    let app = App::start("spin.toml", &[("SPIN_VARIABLE_QUARANTINE_MODE", "delete")]);
    let seed = stack().seed();
    let t = &seed.tenants[0];
    let u = who(t, t.user(0));
    let admin = who(t, t.admin());
    let bucket = Bucket::get();
    let bytes = unique("delete mode");
    let hash = sha256_hex(&bytes);
    let a = u.upload(0, &bytes);
    let id = a["id"].as_str().unwrap();
    let key = storage_key(&t.id, &hash);
    assert!(bucket.exists(&key));

    let t0 = now_ms() - 60_000;
    let r = post_to(&app.base_url, &verdict(by_attachment(id), "infected", t0));
    assert_eq!(r.status, 204, "{r:?}\n{}", app.log_text());
    fetch(&u.download_url(id)).assert_problem(403, "scan_blocked");
    // The object is gone; the row keeps its key and says the object was deleted.
    assert!(!bucket.exists(&key));
    assert!(!bucket.exists(&format!("quarantine/{key}")));
    assert_eq!(storage_key(&t.id, &hash), key);
    let recorded = psql(&format!(
        "SELECT quarantine_action || ' ' || (quarantined_at IS NOT NULL) FROM attachment_blobs \
         WHERE tenant_id = '{}' AND content_sha256 = '{hash}'",
        t.id
    ));
    assert_eq!(recorded, "deleted true");
    let q: Vec<Value> = admin
        .audit("attachment.quarantine")
        .into_iter()
        .filter(|e| e["details"]["contentHash"] == hash.as_str())
        .collect();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["details"]["action"], "deleted");
    // No storage key in the audit trail the tenant's admins can read.
    assert!(!q[0].to_string().contains("tenants/"), "{}", q[0]);

    // A retry through an app in the other mode resumes from the record: nothing is moved.
    post_ok(&verdict(by_attachment(id), "infected", t0));
    assert_eq!(storage_key(&t.id, &hash), key);
    assert!(!bucket.exists(&format!("quarantine/{key}")));
}

/// The attack on ordering by the scanner's clock: a `clean` dated 250 s ahead, then an `infected`
/// dated 1 s ahead. The first is refused (`clock_skew`); and however a `clean` dated ahead got in
/// force, a later `infected` is applied: the content is quarantined and refused.
#[test]
fn scan_future_dated_clean_cannot_hide_a_finding() {
    let seed = stack().seed();
    let t = &seed.tenants[0];
    let u = who(t, t.user(0));
    let bucket = Bucket::get();

    // Through the API: the future-dated clean is refused outright.
    let bytes = unique("future clean");
    let hash = sha256_hex(&bytes);
    let a = u.upload(0, &bytes);
    let id = a["id"].as_str().unwrap();
    let target = by_attachment(id);
    post(&verdict(target.clone(), "clean", now_ms() + 250_000)).assert_problem(400, "clock_skew");
    assert_eq!(u.status_of(id)["status"], "pending");
    // A clean dated a little ahead (within the 5 s allowed) is taken, then the infected one dated
    // before it arrives: it is applied all the same.
    let clean_at = now_ms() + 4_000;
    post_ok(&verdict(target.clone(), "clean", clean_at));
    let url = u.download_url(id);
    assert_eq!(fetch(&url).status, 200);
    let infected_at = clean_at - 3_000;
    post_ok(&verdict(target.clone(), "infected", infected_at));
    let s = u.status_of(id);
    assert_eq!(
        (s["status"].as_str(), s["scannedAt"].as_i64()),
        (Some("infected"), Some(infected_at))
    );
    fetch(&url).assert_problem(403, "scan_blocked");
    fetch(&u.download_url(id)).assert_problem(403, "scan_blocked");
    let key = storage_key(&t.id, &hash);
    assert!(
        key.starts_with("quarantine/") || stack().spin_var("quarantine_mode", "move") == "delete",
        "{key}"
    );
    assert!(!bucket.exists(key.trim_start_matches("quarantine/")));
    // The future-dated clean, replayed now, changes nothing.
    post_ok(&verdict(target, "clean", clean_at));
    assert_eq!(u.status_of(id)["status"], "infected");

    // A clean dated 250 s ahead already in force (as one accepted before verdicts were ordered by
    // arrival could be): an infected dated 1 s ahead still wins.
    let bytes = unique("future clean in force");
    let a = u.upload(1, &bytes);
    let id = a["id"].as_str().unwrap();
    let hash = sha256_hex(&bytes);
    psql(&format!(
        "UPDATE attachment_blobs SET scan_status = 'clean', scan_engine = 'old-engine', scanned_at = {} \
         WHERE tenant_id = '{}' AND content_sha256 = '{hash}'",
        now_ms() + 250_000,
        t.id
    ));
    // The upload awaits its scan job: that verdict "arrived" with it.
    psql(&format!(
        "UPDATE scan_jobs SET status = 'done', finished_at = {} \
         WHERE tenant_id = '{}' AND blob_id = (SELECT id FROM attachment_blobs \
         WHERE tenant_id = '{}' AND content_sha256 = '{hash}')",
        now_ms(),
        t.id,
        t.id
    ));
    let url = u.download_url(id);
    assert_eq!(fetch(&url).status, 200);
    post_ok(&verdict(by_attachment(id), "infected", now_ms() + 1_000));
    assert_eq!(u.status_of(id)["status"], "infected");
    fetch(&url).assert_problem(403, "scan_blocked");
    fetch(&u.download_url(id)).assert_problem(403, "scan_blocked");
}

/// A scanner whose clock runs more than 5 s ahead is told so (`400 clock_skew`), whether its
/// `scannedAt` or its signature time is ahead; nothing changes.
#[test]
fn scan_clock_skew_is_refused() {
    let seed = stack().seed();
    let t = &seed.tenants[0];
    let u = who(t, t.user(0));
    let a = u.upload(0, &unique("clock skew"));
    let id = a["id"].as_str().unwrap();
    let before = u.status_of(id);

    for ahead_ms in [60_000, 299_000] {
        let p = post(&verdict(by_attachment(id), "clean", now_ms() + ahead_ms))
            .assert_problem(400, "clock_skew");
        assert!(p["detail"].as_str().unwrap().contains("clock"), "{p}");
    }
    // Correctly signed, but the signature's time is a minute ahead.
    let body = verdict(by_attachment(id), "clean", now_ms());
    post_signed(&stack().base_url, &secret(), now_s() + 60, &body)
        .assert_problem(400, "clock_skew");
    // Unknown targets are not looked at either.
    post(&verdict(
        by_attachment(&uuid::Uuid::new_v4().to_string()),
        "infected",
        now_ms() + 60_000,
    ))
    .assert_problem(400, "clock_skew");
    assert_eq!(u.status_of(id), before);
    // Within the tolerance, and in the past, verdicts are taken.
    post_ok(&verdict(by_attachment(id), "clean", now_ms() + 1_000));
    assert_eq!(u.status_of(id)["status"], "clean");
}

/// Each scanner has its own key and name (`scan_callback_secrets` = `name:secret,...`): the key that
/// signed a verdict names its sender in the audit row; a key the app does not hold is refused.
#[test]
fn scan_named_scanners_are_audited_and_unknown_keys_refused() {
    let external = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    let ring = format!("{},virustotal:{external}", var("SCAN_CALLBACK_SECRET"));
    let app = App::start(
        "spin.toml",
        &[("SPIN_VARIABLE_SCAN_CALLBACK_SECRETS", ring.as_str())],
    );
    let seed = stack().seed();
    let t = &seed.tenants[0];
    let u = who(t, t.user(0));
    let admin = who(t, t.admin());
    let (b1, b2) = (unique("scanner one"), unique("scanner two"));
    let (h1, h2) = (sha256_hex(&b1), sha256_hex(&b2));
    let id1 = u.upload(0, &b1)["id"].as_str().unwrap().to_owned();
    let id2 = u.upload(1, &b2)["id"].as_str().unwrap().to_owned();
    let at = now_ms();

    // The second scanner's verdict, with its own key.
    let r = post_signed(
        &app.base_url,
        &external,
        now_s(),
        &verdict(by_attachment(&id1), "suspicious", at),
    );
    assert_eq!(r.status, 204, "{r:?}\n{}", app.log_text());
    assert_eq!(u.status_of(&id1)["status"], "suspicious");
    // The worker's key on the same app.
    let r = post_to(&app.base_url, &verdict(by_attachment(&id2), "clean", at));
    assert_eq!(r.status, 204, "{r:?}");

    let scanner_of = |hash: &str| -> Vec<Value> {
        admin
            .audit("scan.verdict")
            .into_iter()
            .filter(|e| e["details"]["contentHash"] == hash)
            .map(|e| e["details"]["scanner"].clone())
            .collect()
    };
    assert_eq!(scanner_of(&h1), vec![json!("virustotal")]);
    assert_eq!(scanner_of(&h2), vec![json!("scan-worker")]);

    // A key no app holds, and the second scanner's key at the stack's app (whose ring lacks it):
    // refused like any bad signature, and nothing changes.
    let stranger = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    for (base, key) in [
        (app.base_url.as_str(), stranger.as_str()),
        (stack().base_url.as_str(), stranger.as_str()),
        (stack().base_url.as_str(), external.as_str()),
    ] {
        let r = post_signed(
            base,
            key,
            now_s(),
            &verdict(by_attachment(&id2), "infected", at),
        );
        r.assert_problem(401, "signature_invalid");
    }
    assert_eq!(u.status_of(&id2)["status"], "clean");
    assert_eq!(scanner_of(&h2).len(), 1);
}
