//! Attachment upload over HTTP against the real stack (Postgres, Garage, the runner):
//! raw and multipart uploads, the stored bytes (read back from the bucket with our own SigV4
//! requests), dedup per tenant, the bad-input matrix, aborted uploads leaving nothing behind, and
//! list/get/delete permissions.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use integration_tests::bucket::Bucket;
use integration_tests::{App, Reply, Stack, Tenant, User, client, login, send};
use integration_tests::{now_s, psql, sha256_hex};
use integration_tests::{send_expecting_continue, send_may_be_cut};
use reqwest::blocking::Client;
use serde_json::Value;
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// Helpers

fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    // xorshift: incompressible enough, no extra dependency, reproducible.
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn attachment_rows(message: &str) -> i64 {
    psql(&format!(
        "SELECT count(*) FROM email_attachments WHERE message_id = '{message}'"
    ))
    .parse()
    .unwrap()
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn attachments_url(message: &str) -> String {
    attachments_url_on(&Stack::get().base_url, message)
}

fn attachments_url_on(base: &str, message: &str) -> String {
    format!("{base}/api/v1/emails/{message}/attachments")
}

/// 50 MiB: what the tests that move a body over the platforms' 10 MiB request cap through the function
/// allow on their own instance (an unlimited host, as `spin up` or SpinKube; the manifest's default,
/// 10 MiB, fits that cap).
const UNCAPPED_MAX_UPLOAD: (&str, &str) = ("SPIN_VARIABLE_MAX_UPLOAD_BYTES", "52428800");

/// A raw upload with the filename in `Content-Disposition` (`filename*`).
fn upload(c: &Client, token: &str, message: &str, name: &str, ct: &str, body: Vec<u8>) -> Reply {
    send(
        c.post(attachments_url(message))
            .bearer_auth(token)
            .header("content-type", ct)
            .header(
                "content-disposition",
                format!("attachment; filename*=UTF-8''{}", pct(name)),
            )
            .body(body),
    )
}

/// A `multipart/form-data` body: `(field, Some(filename), content type, bytes)` parts.
fn multipart_body(parts: &[(&str, Option<&str>, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = format!("itest-{}", uuid::Uuid::new_v4().simple());
    let mut b = Vec::new();
    for (field, file, ct, data) in parts {
        b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => b.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{field}\"; filename=\"{f}\"\r\nContent-Type: {ct}\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => b.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{field}\"\r\n\r\n").as_bytes(),
            ),
        }
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), b)
}

struct Who {
    tenant: Tenant,
    user: User,
    token: String,
    c: Client,
}

fn who(seed_tenant: &Tenant, user: &User) -> Who {
    let c = client();
    let token = login(&c, &Stack::get().base_url, user).access;
    Who {
        tenant: seed_tenant.clone(),
        user: user.clone(),
        token,
        c,
    }
}

impl Who {
    fn message(&self, n: usize) -> String {
        self.tenant.message_of(&self.user, n).id.clone()
    }
}

const PDF: &[u8] =
    b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn raw_uploads_store_exactly_the_bytes_sent() {
    let stack = Stack::get();
    let seed = stack.seed();
    let t = &seed.tenants[0];
    let u = who(t, t.user(0));
    let msg = u.message(0);
    let bucket = Bucket::get();

    // Small: one PutObject.
    let small = b"hello, attachments\n".to_vec();
    let r = upload(
        &u.c,
        &u.token,
        &msg,
        "résumé.txt",
        "text/plain; charset=utf-8",
        small.clone(),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let a = r.json();
    assert_eq!(a["filename"], "résumé.txt");
    assert_eq!(a["messageId"], msg.as_str());
    assert_eq!(a["mimeType"], "text/plain");
    assert_eq!(a["size"], small.len());
    assert_eq!(a["contentHash"], sha256_hex(&small));
    assert_eq!(a["virusScanStatus"], "pending");
    assert_eq!(a["isDeduplicated"], false);
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/attachments/{id}").as_str())
    );
    assert!(a["createdAt"].as_i64().unwrap() > 1_700_000_000_000);
    let url = a["downloadUrl"].as_str().expect("downloadUrl");
    assert!(url.contains(&format!("/api/v1/files/{id}?")), "{url}");
    assert!(a["downloadUrlExpiresAt"].as_i64().unwrap() > a["createdAt"].as_i64().unwrap());
    // No storage key or credential in the answer.
    assert!(!r.body.contains("tenants/"), "{}", r.body);

    // Large, chunked (no Content-Length): a multipart upload of several parts. 19 MiB through the
    // function: an unlimited host of its own, as spin up or SpinKube (the platforms cap a request body
    // at 10 MiB).
    let unlimited = App::start_unlimited_host("spin.toml", &[UNCAPPED_MAX_UPLOAD]);
    let big = pseudo_random(19 * 1024 * 1024 + 123, 7);
    let r = send(
        u.c.post(format!(
            "{}?filename=big%20data.dat",
            attachments_url_on(&unlimited.base_url, &msg)
        ))
        .bearer_auth(&u.token)
        .header("content-type", "application/octet-stream")
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(
            big.clone(),
        ))),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let b = r.json();
    assert_eq!(b["filename"], "big data.dat");
    assert_eq!(b["size"], big.len());
    assert_eq!(b["contentHash"], sha256_hex(&big));
    assert_eq!(b["mimeType"], "application/octet-stream");

    // What the bucket holds is exactly what was sent, and nothing else: the small file as one
    // PutObject, the large one as a multipart upload of 8 MiB parts.
    let mut want = vec![sha256_hex(&small), sha256_hex(&big)];
    want.sort();
    assert_eq!(bucket.tenant_hashes(&t.id), want);
    let mut held: Vec<(String, Option<u32>)> = bucket
        .keys(&format!("tenants/{}/", t.id))
        .iter()
        .map(|k| (sha256_hex(&bucket.object(k)), bucket.upload_parts(k)))
        .collect();
    held.sort();
    let mut expected = vec![(sha256_hex(&small), None), (sha256_hex(&big), Some(3))];
    expected.sort();
    assert_eq!(held, expected);
    assert!(bucket.uploads(&format!("tenants/{}/", t.id)).is_empty());

    // One transaction wrote the rows: blob, scan job for new content, attachment, audit.
    let blob_jobs = psql(&format!(
        "SELECT count(*) FROM scan_jobs j JOIN attachment_blobs b ON b.id = j.blob_id \
         WHERE b.tenant_id = '{}' AND j.status = 'pending'",
        t.id
    ));
    assert_eq!(blob_jobs, "2");
    let audit = psql(&format!(
        "SELECT count(*) FROM email_audit_log WHERE tenant_id = '{}' AND action = 'attachment.upload' \
         AND resource_id = '{id}'",
        t.id
    ));
    assert_eq!(audit, "1");
    let declared = psql(&format!(
        "SELECT declared_mime || ' ' || detected_mime FROM email_attachments WHERE id = '{id}'"
    ));
    assert_eq!(declared, "text/plain text/plain");
}

#[test]
fn multipart_uploads_every_file_part_all_or_nothing() {
    let stack = Stack::get();
    let seed = stack.seed();
    let t = &seed.tenants[0];
    let u = who(t, t.user(0));
    let msg = u.message(0);
    let bucket = Bucket::get();

    let one = b"first file\n".to_vec();
    let two = pseudo_random(9 * 1024 * 1024, 3);
    let (ct, body) = multipart_body(&[
        ("note", None, "", b"a plain field"),
        ("file", Some("one.txt"), "text/plain", &one),
        ("file", Some("report.pdf"), "image/png", PDF),
        ("other", Some("two.dat"), "application/octet-stream", &two),
    ]);
    let r = send(
        u.c.post(attachments_url(&msg))
            .bearer_auth(&u.token)
            .header("content-type", ct)
            .body(body),
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert!(r.header("location").is_none());
    let v = r.json();
    let list = v["attachments"].as_array().expect("attachments");
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["filename"], "one.txt");
    assert_eq!(list[0]["contentHash"], sha256_hex(&one));
    assert_eq!(list[1]["filename"], "report.pdf");
    assert_eq!(list[1]["mimeType"], "application/pdf", "spoofed image/png");
    assert_eq!(list[2]["size"], two.len());
    assert_eq!(list[2]["contentHash"], sha256_hex(&two));
    let mut want = vec![sha256_hex(&one), sha256_hex(PDF), sha256_hex(&two)];
    want.sort();
    assert_eq!(bucket.tenant_hashes(&t.id), want);

    // One bad part refuses the whole request and stores nothing of it.
    let other = &seed.tenants[1];
    let w = who(other, other.user(0));
    let (ct, body) = multipart_body(&[
        ("file", Some("fine.txt"), "text/plain", b"fine"),
        (
            "file",
            Some("big.txt"),
            "text/plain",
            &pseudo_random(6 * 1024 * 1024, 9),
        ),
        (
            "file",
            Some("invoice.pdf"),
            "application/pdf",
            b"MZ\x90\x00\x03\x00\x00\x00",
        ),
    ]);
    let r = send(
        w.c.post(attachments_url(&w.message(0)))
            .bearer_auth(&w.token)
            .header("content-type", ct)
            .body(body),
    );
    r.assert_problem(415, "blocked_file_type");
    bucket.assert_tenant_empty(&other.id);
    assert_eq!(attachment_rows(&w.message(0)), 0);

    // No file part at all.
    let (ct, body) = multipart_body(&[("note", None, "", b"x")]);
    let r = send(
        w.c.post(attachments_url(&w.message(0)))
            .bearer_auth(&w.token)
            .header("content-type", ct)
            .body(body),
    );
    r.assert_problem(400, "bad_request");
}

#[test]
fn dedup_within_a_tenant_never_across_tenants() {
    let stack = Stack::get();
    let seed = stack.seed();
    let (t1, t2) = (&seed.tenants[0], &seed.tenants[1]);
    let a = who(t1, t1.user(0));
    let b = who(t1, t1.user(1));
    let x = who(t2, t2.user(0));
    let bucket = Bucket::get();
    let content = pseudo_random(300 * 1024, 11);
    let hash = sha256_hex(&content);

    let r1 = upload(
        &a.c,
        &a.token,
        &a.message(0),
        "a.dat",
        "application/octet-stream",
        content.clone(),
    );
    assert_eq!(r1.status, 201, "{r1:?}");
    assert_eq!(r1.json()["isDeduplicated"], false);
    // Same tenant, another message and another user: stored once, but the answer does not say
    // that a colleague had the content (nor its verdict: pending until a scan of this upload).
    let r2 = upload(
        &b.c,
        &b.token,
        &b.message(0),
        "b.dat",
        "application/octet-stream",
        content.clone(),
    );
    assert_eq!(r2.status, 201, "{r2:?}");
    let v2 = r2.json();
    assert_eq!(v2["isDeduplicated"], false);
    assert_eq!(v2["virusScanStatus"], "pending");
    assert_eq!(v2["contentHash"], hash);
    assert_ne!(v2["id"], r1.json()["id"]);
    // One object for the tenant: the second copy was removed.
    assert_eq!(bucket.tenant_hashes(&t1.id), vec![hash.clone()]);
    assert_eq!(
        psql(&format!(
            "SELECT ref_count FROM attachment_blobs WHERE tenant_id = '{}' AND content_sha256 = '{hash}'",
            t1.id
        )),
        "2"
    );
    assert_eq!(
        psql(&format!(
            "SELECT count(*) FROM scan_jobs WHERE tenant_id = '{}'",
            t1.id
        )),
        "1",
        "one scan job, awaited by both uploads"
    );
    // Listing shows the flag too.
    let l = send(
        b.c.get(attachments_url(&b.message(0)))
            .bearer_auth(&b.token),
    );
    assert_eq!(l.json()["attachments"][0]["isDeduplicated"], false);

    // Another tenant: its own copy.
    let r3 = upload(
        &x.c,
        &x.token,
        &x.message(0),
        "x.dat",
        "application/octet-stream",
        content.clone(),
    );
    assert_eq!(r3.status, 201, "{r3:?}");
    assert_eq!(r3.json()["isDeduplicated"], false);
    assert_eq!(bucket.tenant_hashes(&t2.id), vec![hash.clone()]);

    // Repr-Digest naming content the user already uploaded: verified, not stored again.
    let digest = format!("sha-256=:{}:", base64_std(&Sha256::digest(&content)));
    let r4 = send(
        a.c.post(attachments_url(&a.message(1)))
            .bearer_auth(&a.token)
            .header("content-type", "application/octet-stream")
            .header("repr-digest", &digest)
            .header("content-disposition", "attachment; filename=again.dat")
            .body(content.clone()),
    );
    assert_eq!(r4.status, 201, "{r4:?}");
    assert_eq!(r4.json()["isDeduplicated"], true);
    assert_eq!(bucket.tenant_hashes(&t1.id), vec![hash.clone()]);
    // The same digest with other bytes: refused, nothing recorded.
    let r5 = send(
        a.c.post(attachments_url(&a.message(2)))
            .bearer_auth(&a.token)
            .header("content-type", "application/octet-stream")
            .header("repr-digest", &digest)
            .header("content-disposition", "attachment; filename=liar.dat")
            .body(b"not the same bytes".to_vec()),
    );
    r5.assert_problem(422, "digest_mismatch");
    assert_eq!(attachment_rows(&a.message(2)), 0);
}

/// The `Repr-Digest` shortcut really skips storage, and only for the caller's own content: on an app
/// whose storage is unreachable, an upload naming content the caller already uploaded succeeds, while
/// the same bytes without the digest, or with the digest of a colleague's content, must be stored and
/// fail (`503`), leaving no row.
#[test]
fn a_digest_of_own_content_skips_storage_and_nobody_elses() {
    let stack = Stack::get();
    let seed = stack.seed();
    let t = &seed.tenants[0];
    let (a, b) = (who(t, t.user(0)), who(t, t.user(1)));
    let content = pseudo_random(70_000, 77);
    let r = upload(
        &a.c,
        &a.token,
        &a.message(0),
        "mine.dat",
        "application/octet-stream",
        content.clone(),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let digest = format!("sha-256=:{}:", base64_std(&Sha256::digest(&content)));
    let offline = App::start(
        "spin.toml",
        &[("SPIN_VARIABLE_S3_ENDPOINT", "http://127.0.0.1:9")],
    );
    let post = |who: &Who, message: &str, name: &str, digest: Option<&str>| {
        let mut rb = who
            .c
            .post(format!(
                "{}/api/v1/emails/{message}/attachments?filename={name}",
                offline.base_url
            ))
            .bearer_auth(&who.token)
            .header("content-type", "application/octet-stream");
        if let Some(d) = digest {
            rb = rb.header("repr-digest", d);
        }
        send(rb.body(content.clone()))
    };
    let again = post(&a, &a.message(1), "again.dat", Some(&digest));
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(again.json()["contentHash"], sha256_hex(&content));
    assert_eq!(attachment_rows(&a.message(1)), 1);
    post(&a, &a.message(2), "plain.dat", None).assert_problem(503, "service_unavailable");
    post(&b, &b.message(0), "theirs.dat", Some(&digest)).assert_problem(503, "service_unavailable");
    assert_eq!(attachment_rows(&a.message(2)), 0);
    assert_eq!(attachment_rows(&b.message(0)), 0);
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Sends a hand-written request over TCP; returns the status line's code, or `None` when the
/// server closed without answering.
fn raw_request(head: &str, body: &[u8], close_early: bool) -> Option<u16> {
    let base = &Stack::get().base_url;
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    for chunk in body.chunks(64 * 1024) {
        if s.write_all(chunk).is_err() {
            break;
        }
    }
    if close_early {
        drop(s);
        return None;
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok())
}

#[test]
fn bad_input_matrix() {
    let stack = Stack::get();
    let seed = stack.seed();
    let (t1, t2) = (&seed.tenants[0], &seed.tenants[1]);
    let u = who(t1, t1.user(0));
    let msg = u.message(0);
    let bucket = Bucket::get();
    // The app's own size limit, on an app of its own with a 1 MiB limit: the default limit is the
    // platforms' 10 MiB request cap, and under such a platform its own 413 answers a body over it first
    // (`the_platform_refuses_a_body_over_its_cap`).
    let limit: usize = 1 << 20;
    let limited = App::start(
        "spin.toml",
        &[("SPIN_VARIABLE_MAX_UPLOAD_BYTES", "1048576")],
    );

    // Oversize, judged from Content-Length before any byte is read: a client that sends
    // `Expect: 100-continue` gets the whole answer and never sends the body (no `100 Continue` first).
    let auth = format!("Bearer {}", u.token);
    let r = send_expecting_continue(
        "POST",
        &format!(
            "{}?filename=big.txt",
            attachments_url_on(&limited.base_url, &msg)
        ),
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        &vec![b'a'; limit + 1],
    );
    r.assert_problem(413, "payload_too_large");

    // Oversize without Content-Length (chunked), counted while streaming.
    let r = send(
        u.c.post(format!(
            "{}?filename=big.txt",
            attachments_url_on(&limited.base_url, &msg)
        ))
        .bearer_auth(&u.token)
        .header("content-type", "text/plain")
        .body(reqwest::blocking::Body::new(
            std::io::repeat(b'a').take(limit as u64 + 1),
        )),
    );
    r.assert_problem(413, "payload_too_large");

    // Filename tricks.
    for (name, status, code) in [
        ("invoice.pdf.exe", 415, "blocked_file_type"),
        ("payload.exe.pdf", 415, "blocked_file_type"),
        ("run.JS", 415, "blocked_file_type"),
        ("evil.exe.", 415, "blocked_file_type"),
        ("report.pdf.", 422, "invalid_filename"),
        ("report.pdf ", 422, "invalid_filename"),
        ("invoice\u{202E}fdp.txt", 422, "invalid_filename"),
        ("a\u{2066}b.txt", 422, "invalid_filename"),
        ("nul\u{0}.txt", 422, "invalid_filename"),
        ("line\nbreak.txt", 422, "invalid_filename"),
        ("CON.txt", 422, "invalid_filename"),
        ("lpt1", 422, "invalid_filename"),
        ("..", 422, "invalid_filename"),
    ] {
        let r = upload(&u.c, &u.token, &msg, name, "text/plain", b"x".to_vec());
        assert_eq!(r.status, status, "{name:?}: {r:?}");
        r.assert_problem(status, code);
    }
    let r = upload(
        &u.c,
        &u.token,
        &msg,
        &"a".repeat(256),
        "text/plain",
        b"x".to_vec(),
    );
    r.assert_problem(422, "invalid_filename");
    // A path is stripped to its last segment, and the name is stored in NFC.
    for (sent, stored) in [
        ("../../etc/notes.txt", "notes.txt"),
        ("C:\\Users\\me\\report.txt", "report.txt"),
        ("cafe\u{301}.txt", "caf\u{e9}.txt"),
    ] {
        let r = upload(&u.c, &u.token, &msg, sent, "text/plain", b"x".to_vec());
        assert_eq!(r.status, 201, "{sent:?}: {r:?}");
        assert_eq!(r.json()["filename"], stored, "{sent:?}");
    }
    // No filename at all.
    let r = send(
        u.c.post(attachments_url(&msg))
            .bearer_auth(&u.token)
            .header("content-type", "text/plain")
            .body("x"),
    );
    r.assert_problem(422, "invalid_filename");

    // Executable renamed .pdf, whatever the declared type.
    let mut pe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00".to_vec();
    pe.extend(pseudo_random(5000, 5));
    let r = upload(&u.c, &u.token, &msg, "invoice.pdf", "application/pdf", pe);
    r.assert_problem(415, "blocked_file_type");
    let r = upload(
        &u.c,
        &u.token,
        &msg,
        "notes.txt",
        "text/plain",
        b"#!/bin/sh\necho hi\n".to_vec(),
    );
    r.assert_problem(415, "blocked_file_type");
    let r = upload(
        &u.c,
        &u.token,
        &msg,
        "logo.svg",
        "image/svg+xml",
        br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>"#.to_vec(),
    );
    r.assert_problem(415, "blocked_file_type");
    // An ELF with a large body (more than a part, within the platforms' 10 MiB request cap): refused at
    // the first chunk; the stream is not stored.
    let mut elf = b"\x7fELF\x02\x01\x01\x00".to_vec();
    elf.extend(pseudo_random(9 * 1024 * 1024, 13));
    // The answer comes before the client finished sending, and the connection is closed without
    // reading the rest (as under Spin): the answer, when it beats the reset, is 415.
    let r = send_may_be_cut(
        u.c.post(attachments_url(&msg))
            .bearer_auth(&u.token)
            .header("content-type", "application/pdf")
            .header("content-disposition", "attachment; filename=\"manual.pdf\"")
            .body(elf),
    );
    if let Some(r) = r {
        assert_eq!(r.status, 415, "{r:?}");
    }

    // Spoofed MIME: a PDF declared as PNG is stored as what it is.
    let r = upload(&u.c, &u.token, &msg, "scan.png", "image/png", PDF.to_vec());
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json()["mimeType"], "application/pdf");
    let ok_id = r.json()["id"].as_str().unwrap().to_owned();

    // Empty file.
    let r = upload(&u.c, &u.token, &msg, "empty.txt", "text/plain", Vec::new());
    r.assert_problem(400, "bad_request");

    // Digest mismatch, and a malformed digest.
    let r = send(
        u.c.post(format!("{}?filename=d.txt", attachments_url(&msg)))
            .bearer_auth(&u.token)
            .header("content-type", "text/plain")
            .header(
                "repr-digest",
                format!("sha-256=:{}:", base64_std(&[0u8; 32])),
            )
            .body("some text"),
    );
    r.assert_problem(422, "digest_mismatch");
    let r = send(
        u.c.post(format!("{}?filename=d.txt", attachments_url(&msg)))
            .bearer_auth(&u.token)
            .header("content-type", "text/plain")
            .header("repr-digest", "sha-256=:no*pe:")
            .body("some text"),
    );
    r.assert_problem(400, "bad_request");
    // Well-formed base64, but 3 bytes: not a SHA-256, so it cannot match.
    let r = send(
        u.c.post(format!("{}?filename=d.txt", attachments_url(&msg)))
            .bearer_auth(&u.token)
            .header("content-type", "text/plain")
            .header("repr-digest", "sha-256=:nope:")
            .body("some text"),
    );
    r.assert_problem(422, "digest_mismatch");
    let r = send(
        u.c.post(format!("{}?filename=d.txt", attachments_url(&msg)))
            .bearer_auth(&u.token)
            .header("content-type", "text/plain")
            .header(
                "repr-digest",
                format!("sha-256=:{}:", base64_std(&Sha256::digest(b"some text"))),
            )
            .body("some text"),
    );
    assert_eq!(r.status, 201, "{r:?}");

    // Another tenant's message: 404. Another user's message in the tenant: 403.
    let other_tenant_msg = &t2.messages[0].id;
    let r = upload(
        &u.c,
        &u.token,
        other_tenant_msg,
        "x.txt",
        "text/plain",
        b"x".to_vec(),
    );
    r.assert_problem(404, "not_found");
    let other_user_msg = t1.message_of(t1.user(1), 0).id.clone();
    let r = upload(
        &u.c,
        &u.token,
        &other_user_msg,
        "x.txt",
        "text/plain",
        b"x".to_vec(),
    );
    r.assert_problem(403, "forbidden");
    let r = upload(
        &u.c,
        &u.token,
        &uuid::Uuid::new_v4().to_string(),
        "x.txt",
        "text/plain",
        b"x".to_vec(),
    );
    r.assert_problem(404, "not_found");

    // Malformed UUIDs.
    let r = upload(
        &u.c,
        &u.token,
        "not-a-uuid",
        "x.txt",
        "text/plain",
        b"x".to_vec(),
    );
    r.assert_problem(400, "invalid_id");
    let r = send(
        u.c.get(stack.url("/api/v1/attachments/1234"))
            .bearer_auth(&u.token),
    );
    r.assert_problem(400, "invalid_id");

    // Only the accepted uploads left anything: rows (the two above, and the three stripped or
    // normalised names, one deduplicated content) and objects.
    assert_eq!(attachment_rows(&msg), 5);
    assert_eq!(attachment_rows(other_tenant_msg), 0);
    assert_eq!(attachment_rows(&other_user_msg), 0);
    let mut want = vec![sha256_hex(PDF), sha256_hex(b"some text"), sha256_hex(b"x")];
    want.sort();
    assert_eq!(bucket.tenant_hashes(&t1.id), want);
    assert!(bucket.uploads(&format!("tenants/{}/", t1.id)).is_empty());
    assert!(!ok_id.is_empty());
}

#[test]
fn truncated_or_abandoned_uploads_leave_nothing() {
    let stack = Stack::get();
    let seed = stack.seed();
    let t = &seed.tenants[0];
    let u = who(t, t.user(0));
    let msg = u.message(0);
    let bucket = Bucket::get();
    // 20 MiB bodies declared, 12 MiB sent: over the platforms' 10 MiB request cap, which would refuse
    // them before the function runs. An unlimited host of its own, as spin up or SpinKube.
    let app = App::start_unlimited_host("spin.toml", &[UNCAPPED_MAX_UPLOAD]);
    let host = app.base_url.trim_start_matches("http://");
    let head = |len: usize, name: &str| {
        format!(
            "POST /api/v1/emails/{msg}/attachments?filename={name} HTTP/1.1\r\nHost: {host}\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {len}\r\n\r\n",
            u.token
        )
    };
    // More than one part already sent (a multipart upload is under way), then the client stops
    // sending and half-closes: a truncated body.
    let sent = pseudo_random(12 * 1024 * 1024, 21);
    let status = raw_request(&head(20 * 1024 * 1024, "t.dat"), &sent, false);
    assert!(
        status.is_none() || status.is_some_and(|s| s >= 400),
        "truncated upload answered {status:?}"
    );
    // The client disappears mid-upload.
    raw_request(&head(20 * 1024 * 1024, "gone.dat"), &sent, true);
    // A small one, under one part (nothing sent to storage before the end).
    raw_request(&head(1000, "small.dat"), &sent[..500], true);

    bucket.assert_tenant_empty(&t.id);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(attachment_rows(&msg), 0);
    bucket.assert_tenant_empty(&t.id);
    // The app still serves.
    let r = send(
        u.c.post(format!(
            "{}?filename=after.txt",
            attachments_url_on(&app.base_url, &msg)
        ))
        .bearer_auth(&u.token)
        .header("content-type", "text/plain")
        .body(b"after".to_vec()),
    );
    assert_eq!(r.status, 201, "{r:?}");
}

/// Spin 4 runs up to 16 requests in one ingest instance, whose linear memory is the sum of what its
/// uploads hold. A second app with a tight memory limit per instance (64 MiB) and a 32 MiB part-buffer
/// budget takes six concurrent 20 MiB uploads (each would hold 24 MiB of parts unbudgeted: 144 MiB in
/// one instance, a trap): all are stored, byte for byte. 20 MiB bodies: an unlimited host, as spin up or
/// SpinKube (the platforms cap a request body at 10 MiB).
#[test]
fn concurrent_uploads_share_the_instance_buffer_budget() {
    let stack = Stack::get();
    let seed = stack.seed();
    let t = &seed.tenants[1];
    let u = who(t, t.user(0));
    let msg = u.message(0);
    let app = App::start_unlimited_host(
        "spin.toml",
        &[
            ("SPINLET_MAX_MEMORY_MIB", "64"),
            ("SPIN_VARIABLE_UPLOAD_BUFFER_BYTES", "33554432"),
            UNCAPPED_MAX_UPLOAD,
        ],
    );
    let files: Vec<Vec<u8>> = (0..6)
        .map(|i| pseudo_random(20 * 1024 * 1024, 901 + 2 * i))
        .collect();
    let url = format!("{}/api/v1/emails/{msg}/attachments", app.base_url);
    let answers: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let (url, token) = (&url, &u.token);
                scope.spawn(move || {
                    send(
                        client()
                            .post(format!("{url}?filename=concurrent-{i}.dat"))
                            .bearer_auth(token)
                            .header("content-type", "application/octet-stream")
                            .body(f.clone()),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (f, r) in files.iter().zip(&answers) {
        assert_eq!(r.status, 201, "{r:?}\n{}", app.log_text());
        assert_eq!(r.json()["contentHash"], sha256_hex(f));
    }
    let mut want: Vec<String> = files.iter().map(|f| sha256_hex(f)).collect();
    want.sort();
    let bucket = Bucket::get();
    let mut held = bucket.tenant_hashes(&t.id);
    held.retain(|h| want.contains(h));
    assert_eq!(held, want);
}

/// Spin's connection pool cleans a returned connection without rolling back (deadpool-postgres
/// `Clean`): a transaction a request left open would be continued, and committed, by the next request
/// to get that connection. A second app whose pool cleans the same way (`SPINLET_PG_RECYCLE=spin`) takes
/// requests refused after their transaction began (an upload to, and the list of, another user's
/// message; an upload to another tenant's message): no connection of the app role may stay idle in a
/// transaction afterwards.
#[test]
fn refused_requests_leave_no_transaction_open() {
    let stack = Stack::get();
    let seed = stack.seed();
    let (t1, t2) = (&seed.tenants[0], &seed.tenants[1]);
    let owner = who(t1, t1.user(0));
    let other = who(t1, t1.user(1));
    let stranger = who(t2, t2.user(0));
    let app = App::start("spin.toml", &[("SPINLET_PG_RECYCLE", "spin")]);
    let attachments = format!(
        "{}/api/v1/emails/{}/attachments",
        app.base_url,
        owner.message(0)
    );
    let refused = [
        (&other, true, 403),
        (&other, false, 403),
        (&stranger, true, 404),
    ];
    for _ in 0..2 {
        for (caller, upload, status) in refused {
            let request = if upload {
                caller
                    .c
                    .post(format!("{attachments}?filename=b.txt"))
                    .header("content-type", "text/plain")
                    .body("not yours")
            } else {
                caller.c.get(&attachments)
            };
            let r = send(request.bearer_auth(&caller.token));
            assert_eq!(r.status, status, "{r:?}");
        }
    }
    // A transaction of a request in flight is idle between statements for milliseconds; one left
    // behind stays so until the connection is used again.
    std::thread::sleep(Duration::from_secs(3));
    let left_open = psql(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'attachments_app' \
         AND state LIKE 'idle in transaction%' AND now() - state_change > interval '2 seconds'",
    );
    assert_eq!(left_open, "0", "{}", app.log_text());
    assert_eq!(attachment_rows(&owner.message(0)), 0);
}

#[test]
fn list_get_delete_by_owner_admin_other_user_other_tenant() {
    let stack = Stack::get();
    let seed = stack.seed();
    let (t1, t2) = (&seed.tenants[0], &seed.tenants[1]);
    let owner = who(t1, t1.user(0));
    let other = who(t1, t1.user(1));
    let admin = who(t1, t1.admin());
    let stranger = who(t2, t2.admin());
    let msg = owner.message(0);

    let first = upload(
        &owner.c,
        &owner.token,
        &msg,
        "1.txt",
        "text/plain",
        b"one".to_vec(),
    );
    assert_eq!(first.status, 201, "{first:?}");
    std::thread::sleep(Duration::from_millis(5));
    let second = upload(
        &owner.c,
        &owner.token,
        &msg,
        "2.txt",
        "text/plain",
        b"two".to_vec(),
    );
    assert_eq!(second.status, 201, "{second:?}");
    let id1 = first.json()["id"].as_str().unwrap().to_owned();
    let id2 = second.json()["id"].as_str().unwrap().to_owned();
    let item = |id: &str| stack.url(&format!("/api/v1/attachments/{id}"));

    // List: newest first, for the owner and the admin; 403 for another user; 404 across tenants.
    let l = send(owner.c.get(attachments_url(&msg)).bearer_auth(&owner.token));
    assert_eq!(l.status, 200, "{l:?}");
    let ids: Vec<String> = l.json()["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![id2.clone(), id1.clone()]);
    let l = send(admin.c.get(attachments_url(&msg)).bearer_auth(&admin.token));
    assert_eq!(l.json()["attachments"].as_array().unwrap().len(), 2);
    send(other.c.get(attachments_url(&msg)).bearer_auth(&other.token))
        .assert_problem(403, "forbidden");
    send(
        stranger
            .c
            .get(attachments_url(&msg))
            .bearer_auth(&stranger.token),
    )
    .assert_problem(404, "not_found");

    // Get.
    let g = send(owner.c.get(item(&id1)).bearer_auth(&owner.token));
    assert_eq!(g.status, 200, "{g:?}");
    let v: Value = g.json();
    assert_eq!(v["filename"], "1.txt");
    assert_eq!(v["contentHash"], sha256_hex(b"one"));
    assert!(v["downloadUrl"].as_str().is_some());
    assert_eq!(
        send(admin.c.get(item(&id1)).bearer_auth(&admin.token)).status,
        200
    );
    send(other.c.get(item(&id1)).bearer_auth(&other.token)).assert_problem(403, "forbidden");
    send(stranger.c.get(item(&id1)).bearer_auth(&stranger.token)).assert_problem(404, "not_found");
    send(
        owner
            .c
            .get(item(&uuid::Uuid::new_v4().to_string()))
            .bearer_auth(&owner.token),
    )
    .assert_problem(404, "not_found");

    // Delete: not by another user or tenant; by the owner and by an admin; idempotent.
    send(other.c.delete(item(&id1)).bearer_auth(&other.token)).assert_problem(403, "forbidden");
    send(stranger.c.delete(item(&id1)).bearer_auth(&stranger.token))
        .assert_problem(404, "not_found");
    let d = send(owner.c.delete(item(&id1)).bearer_auth(&owner.token));
    assert_eq!(d.status, 204, "{d:?}");
    assert_eq!(
        send(owner.c.delete(item(&id1)).bearer_auth(&owner.token)).status,
        204
    );
    send(owner.c.get(item(&id1)).bearer_auth(&owner.token)).assert_problem(404, "not_found");
    let d = send(admin.c.delete(item(&id2)).bearer_auth(&admin.token));
    assert_eq!(d.status, 204, "{d:?}");
    let l = send(owner.c.get(attachments_url(&msg)).bearer_auth(&owner.token));
    assert_eq!(l.json()["attachments"].as_array().unwrap().len(), 0);
    // Soft delete: rows kept, references released, audited.
    assert_eq!(attachment_rows(&msg), 2);
    assert_eq!(
        psql(&format!(
            "SELECT sum(ref_count) FROM attachment_blobs WHERE tenant_id = '{}'",
            t1.id
        )),
        "0"
    );
    assert_eq!(
        psql(&format!(
            "SELECT count(*) FROM email_audit_log WHERE tenant_id = '{}' AND action = 'attachment.delete'",
            t1.id
        )),
        "2"
    );
    // Method not allowed on the item route.
    let r = send(owner.c.put(item(&id1)).bearer_auth(&owner.token).body("x"));
    assert_eq!(r.status, 405, "{r:?}");
    // An admin may upload to a user's message of the tenant; an admin of another tenant may not.
    let by_admin = upload(
        &admin.c,
        &admin.token,
        &msg,
        "from-admin.txt",
        "text/plain",
        b"admin".to_vec(),
    );
    assert_eq!(by_admin.status, 201, "{by_admin:?}");
    upload(
        &stranger.c,
        &stranger.token,
        &msg,
        "from-afar.txt",
        "text/plain",
        b"afar".to_vec(),
    )
    .assert_problem(404, "not_found");
}

/// An `Attachment`'s `downloadUrl` lasts `download_url_ttl_secs`, the default lifetime of `POST
/// .../download-url`, not a fixed hour: on an app configured with 120 s, the URL's expiry (`e=`)
/// and `downloadUrlExpiresAt` of the upload, list and read answers are 120 s after they were issued.
#[test]
fn attachment_download_urls_follow_the_configured_lifetime() {
    const TTL: i64 = 120;
    let stack = Stack::get();
    let seed = stack.seed();
    let t = &seed.tenants[0];
    let u = who(t, t.user(0));
    let msg = u.message(0);
    let app = App::start(
        "spin.toml",
        &[("SPIN_VARIABLE_DOWNLOAD_URL_TTL_SECS", "120")],
    );
    let check = |a: &Value| {
        let url = a["downloadUrl"].as_str().expect("downloadUrl");
        let e: i64 = url
            .split("&e=")
            .nth(1)
            .and_then(|r| r.split('&').next())
            .and_then(|e| e.parse().ok())
            .unwrap_or_else(|| panic!("no e= in {url}"));
        assert_eq!(a["downloadUrlExpiresAt"].as_i64(), Some(e * 1000), "{a}");
        // Issued before now, so at most TTL left; a slow machine gets half a minute.
        let left = e - now_s();
        assert!(
            (TTL - 30..=TTL).contains(&left),
            "expires in {left} s, want {TTL} s: {a}"
        );
    };
    let r = send(
        u.c.post(format!(
            "{}/api/v1/emails/{msg}/attachments?filename=lifetime.txt",
            app.base_url
        ))
        .bearer_auth(&u.token)
        .header("content-type", "text/plain")
        .body("a lifetime of two minutes"),
    );
    assert_eq!(r.status, 201, "{r:?}");
    check(&r.json());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let r = send(
        u.c.get(format!("{}/api/v1/attachments/{id}", app.base_url))
            .bearer_auth(&u.token),
    );
    assert_eq!(r.status, 200, "{r:?}");
    check(&r.json());
    let r = send(
        u.c.get(format!("{}/api/v1/emails/{msg}/attachments", app.base_url))
            .bearer_auth(&u.token),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let list = r.json();
    let items = list["attachments"].as_array().expect("attachments");
    assert!(!items.is_empty(), "{list}");
    items.iter().for_each(check);
}

/// An upload holds no database connection while its body streams: on a fresh app (its own pool of
/// 32 connections), more uploads than the pool has connections send their head and a few bytes and
/// then stall; meanwhile another request of the same component is answered at once, not after the
/// pool's 10 s checkout timeout with a `503`. The stalled uploads leave nothing behind.
#[test]
fn stalled_uploads_hold_no_database_connection() {
    const STALLED: usize = 34;
    let stack = Stack::get();
    let seed = stack.seed();
    let t = &seed.tenants[1];
    let u = who(t, t.user(1));
    let msg = u.message(0);
    let app = App::start("spin.toml", &[("SPIN_VARIABLE_RATE_LIMIT", "1000/60s")]);
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let stalled: Vec<TcpStream> = (0..STALLED)
        .map(|i| {
            let mut s = TcpStream::connect(&addr).expect("connect");
            let head = format!(
                "POST /api/v1/emails/{msg}/attachments?filename=stalled-{i}.dat HTTP/1.1\r\n\
                 Host: {addr}\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n",
                u.token
            );
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(&[b'x'; 10]).unwrap();
            s
        })
        .collect();
    // Every upload is past its pre-checks and waiting for the rest of its body.
    std::thread::sleep(Duration::from_secs(3));
    let start = Instant::now();
    let r = send(
        u.c.get(format!("{}/api/v1/emails/{msg}/attachments", app.base_url))
            .bearer_auth(&u.token),
    );
    assert_eq!(r.status, 200, "{r:?}\n{}", app.log_text());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        start.elapsed()
    );
    drop(stalled);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(attachment_rows(&msg), 0);
    Bucket::get().assert_tenant_empty(&t.id);
}
