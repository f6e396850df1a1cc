//! Downloads over HTTP: signed download URLs (issue, revoke, rotate, tamper, expire) and content
//! delivery (bytes, Range, ETag/304, Content-Disposition, active content, scan policy, deleted).
//!
//! Content is seeded the way ingest would leave it, without depending on the ingest component:
//! the object is written to the stack's Garage with `curl --aws-sigv4`, and the blob and attachment
//! rows are inserted with `psql` as the admin database user (`DATABASE_ADMIN_URL`).

use std::io::Write;
use std::process::{Command, Stdio};

use integration_tests::{App, Reply, Stack, Tenant, Tokens, User, client, login, send};
use integration_tests::{psql, sha256_hex, sql_str};
use reqwest::blocking::Client;
use serde_json::{Value, json};

fn stack() -> &'static Stack {
    Stack::get()
}

fn var(name: &str) -> String {
    stack()
        .var(name)
        .unwrap_or_else(|| panic!("{name} is not set (run through scripts/test or scripts/dev)"))
        .to_owned()
}

fn put_object(key: &str, bytes: &[u8]) {
    let url = format!(
        "{}/{}/{key}",
        var("S3_ENDPOINT").trim_end_matches('/'),
        var("S3_BUCKET")
    );
    let mut child = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "-X",
            "PUT",
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            "--aws-sigv4",
            &format!("aws:amz:{}:s3", var("S3_REGION")),
            "--user",
            &format!(
                "{}:{}",
                var("S3_ACCESS_KEY_ID"),
                var("S3_SECRET_ACCESS_KEY")
            ),
            "--data-binary",
            "@-",
            &url,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("curl");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    assert!(child.wait().unwrap().success(), "PUT {url} failed");
}

struct World {
    tenant: Tenant,
    other: Tenant,
    base: String,
}

/// Two fresh tenants per test: the per-user rate limit (50 per window by default) then never sees
/// one test's requests in another's.
fn world() -> World {
    let mut seed = stack().seed();
    let other = seed.tenants.pop().unwrap();
    let tenant = seed.tenants.pop().unwrap();
    World {
        tenant,
        other,
        base: stack().base_url.clone(),
    }
}

/// Inserts an attachment that `owner` uploaded to one of their own messages, with this content (a
/// fresh object and blob every time).
fn seed_attachment(
    tenant: &Tenant,
    owner: &User,
    bytes: &[u8],
    filename: &str,
    mime: &str,
    scan: &str,
) -> String {
    let message = tenant.message_of(owner, 0).id.clone();
    seed_attachment_on(tenant, &message, owner, bytes, filename, mime, scan)
}

/// Inserts an attachment that `uploader` put on `message` (whoever owns it).
fn seed_attachment_on(
    tenant: &Tenant,
    message: &str,
    uploader: &User,
    bytes: &[u8],
    filename: &str,
    mime: &str,
    scan: &str,
) -> String {
    let blob_key = format!("tenants/{}/blobs/{}", tenant.id, uuid::Uuid::new_v4());
    put_object(&blob_key, bytes);
    // Content hashes are unique per tenant: make the content unique by hashing a salt into rows
    // only when needed (tests upload distinct bytes).
    let hash = sha256_hex(bytes);
    psql(&format!(
        "WITH b AS (INSERT INTO attachment_blobs (tenant_id, content_sha256, size_bytes, storage_key, sniffed_mime, scan_status) \
         VALUES ('{t}', '{hash}', {size}, '{blob_key}', {mime}, '{scan}') RETURNING id) \
         INSERT INTO email_attachments (tenant_id, message_id, blob_id, uploader_user_id, filename, declared_mime, detected_mime, size_bytes) \
         SELECT '{t}', '{message}', b.id, '{owner}', {name}, {mime}, {mime}, {size} FROM b RETURNING id",
        t = tenant.id,
        size = bytes.len(),
        mime = sql_str(mime),
        owner = uploader.id,
        name = sql_str(filename),
    ))
}

/// Distinct content per call (the blob table is unique per tenant and hash).
fn content(label: &str, len: usize) -> Vec<u8> {
    let salt = uuid::Uuid::new_v4().to_string();
    let mut v: Vec<u8> = format!("{label}:{salt}:").into_bytes();
    let mut i = 0u32;
    while v.len() < len {
        v.push((i.wrapping_mul(2_654_435_761) >> 24) as u8);
        i += 1;
    }
    v.truncate(len.max(1));
    v
}

fn tokens(u: &User) -> Tokens {
    login(&client(), &stack().base_url, u)
}

fn issue(c: &Client, t: &Tokens, id: &str, body: Value) -> Reply {
    send(
        c.post(format!(
            "{}/api/v1/attachments/{id}/download-url",
            stack().base_url
        ))
        .bearer_auth(&t.access)
        .json(&body),
    )
}

#[track_caller]
fn url_for(t: &Tokens, id: &str, body: Value) -> String {
    let r = issue(&client(), t, id, body);
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["url"].as_str().unwrap().to_owned()
}

fn get(url: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut rb = client().get(url);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let res = rb.send().expect("GET");
    let status = res.status().as_u16();
    let h = res.headers().clone();
    (status, h, res.bytes().unwrap().to_vec())
}

fn h<'a>(m: &'a reqwest::header::HeaderMap, n: &str) -> &'a str {
    m.get(n).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[track_caller]
fn assert_problem_bytes(status: u16, body: &[u8], want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{}", String::from_utf8_lossy(body));
    let v: Value = serde_json::from_slice(body).expect("problem json");
    assert_eq!(v["code"], code, "{v}");
}

#[test]
fn round_trip_headers_head_and_audit() {
    let w = world();
    let owner = w.tenant.user(0);
    let bytes = content("round", 300_000);
    let id = seed_attachment(
        &w.tenant,
        owner,
        &bytes,
        "report.pdf",
        "application/pdf",
        "clean",
    );
    let t = tokens(owner);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let r = issue(&client(), &t, &id, json!({}));
    assert_eq!(r.status, 200, "{r:?}");
    let body = r.json();
    let url = body["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/api/v1/files/{id}?", w.base)),
        "{url}"
    );
    let exp = body["expiresAt"].as_i64().unwrap();
    assert!(
        (exp - before - 3_600_000).abs() < 10_000,
        "{exp} vs {before}"
    );
    // An admin may get a URL too; no body at all is fine.
    let r = send(
        client()
            .post(format!("{}/api/v1/attachments/{id}/download-url", w.base))
            .bearer_auth(&tokens(w.tenant.admin()).access),
    );
    assert_eq!(r.status, 200, "{r:?}");
    // A colleague who may not read the attachment may not mint a URL for it either.
    let r = send(
        client()
            .post(format!("{}/api/v1/attachments/{id}/download-url", w.base))
            .bearer_auth(&tokens(w.tenant.user(1)).access),
    );
    r.assert_problem(403, "forbidden");

    let (status, headers, got) = get(url, &[]);
    assert_eq!(status, 200);
    assert!(
        got == bytes,
        "bytes differ ({} vs {})",
        got.len(),
        bytes.len()
    );
    assert_eq!(h(&headers, "content-type"), "application/pdf");
    assert_eq!(h(&headers, "content-length"), bytes.len().to_string());
    assert_eq!(h(&headers, "etag"), format!("\"{}\"", sha256_hex(&bytes)));
    assert_eq!(h(&headers, "x-content-type-options"), "nosniff");
    assert_eq!(h(&headers, "cache-control"), "private");
    assert_eq!(h(&headers, "accept-ranges"), "bytes");
    assert_eq!(
        h(&headers, "content-disposition"),
        "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
    );
    assert!(!h(&headers, "x-request-id").is_empty());

    let res = client().head(url).send().unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(h(res.headers(), "content-length"), bytes.len().to_string());
    assert_eq!(
        h(res.headers(), "etag"),
        format!("\"{}\"", sha256_hex(&bytes))
    );

    let n = psql(&format!(
        "SELECT count(*) FROM email_audit_log WHERE tenant_id = '{}' AND action = 'attachment.download' \
         AND resource_id = '{id}' AND client_addr IS NOT NULL AND user_id IS NULL",
        w.tenant.id
    ));
    assert_eq!(
        n, "1",
        "one audit row per GET with content (HEAD writes none)"
    );
}

#[test]
fn issuing_route_validation_and_tenancy() {
    let w = world();
    let owner = w.tenant.user(0);
    let id = seed_attachment(
        &w.tenant,
        owner,
        &content("v", 10),
        "a.txt",
        "text/plain",
        "clean",
    );
    let t = tokens(owner);
    let c = client();
    for body in [
        json!({"expiresIn": 0}),
        json!({"expiresIn": 604_801}),
        json!({"expiresIn": -5}),
        json!({"expiresIn": "60"}),
        json!({"expiresIn": 1.5}),
        json!({"disposition": "evil"}),
    ] {
        issue(&c, &t, &id, body.clone()).assert_problem(400, "bad_request");
    }
    let r = issue(
        &c,
        &t,
        &id,
        json!({"expiresIn": 604_800, "disposition": "inline"}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json()["url"].as_str().unwrap().contains("&d=i&"));
    issue(&c, &t, "not-a-uuid", json!({})).assert_problem(400, "invalid_id");
    // One attachment, one URL: other spellings of its id are refused as on every other route.
    let parsed = uuid::Uuid::parse_str(&id).unwrap();
    for spelling in [
        parsed.simple().to_string(),
        parsed.urn().to_string(),
        parsed.braced().to_string(),
    ] {
        issue(&c, &t, &spelling, json!({})).assert_problem(400, "invalid_id");
        send(
            c.post(format!(
                "{}/api/v1/attachments/{spelling}/revoke-urls",
                w.base
            ))
            .bearer_auth(&t.access),
        )
        .assert_problem(400, "invalid_id");
    }
    issue(&c, &t, &uuid::Uuid::new_v4().to_string(), json!({})).assert_problem(404, "not_found");
    // Another tenant's attachment: 404, for issuing and revoking.
    let other = tokens(w.other.user(0));
    issue(&c, &other, &id, json!({})).assert_problem(404, "not_found");
    send(
        c.post(format!("{}/api/v1/attachments/{id}/revoke-urls", w.base))
            .bearer_auth(&other.access),
    )
    .assert_problem(404, "not_found");
    // No token.
    let r = send(c.post(format!("{}/api/v1/attachments/{id}/download-url", w.base)));
    assert_eq!(r.status, 401, "{r:?}");
}

#[test]
fn revoke_invalidates_issued_urls_only() {
    let w = world();
    let owner = w.tenant.user(0);
    let t = tokens(owner);
    let bytes = content("revoke", 1000);
    let id = seed_attachment(
        &w.tenant,
        owner,
        &bytes,
        "r.bin",
        "application/octet-stream",
        "clean",
    );
    let other_id = seed_attachment(
        &w.tenant,
        owner,
        &content("keep", 100),
        "k.bin",
        "application/octet-stream",
        "clean",
    );
    let url1 = url_for(&t, &id, json!({}));
    let keep = url_for(&t, &other_id, json!({}));
    assert_eq!(get(&url1, &[]).0, 200);

    let revoke = |tok: &Tokens| {
        send(
            client()
                .post(format!("{}/api/v1/attachments/{id}/revoke-urls", w.base))
                .bearer_auth(&tok.access),
        )
    };
    // Same tenant, neither the message's owner, the uploader nor an admin.
    revoke(&tokens(w.tenant.user(1))).assert_problem(403, "forbidden");
    assert_eq!(get(&url1, &[]).0, 200);
    assert_eq!(revoke(&t).status, 204);
    let (s, _, b) = get(&url1, &[]);
    assert_problem_bytes(s, &b, 403, "url_expired");
    let url2 = url_for(&t, &id, json!({}));
    let (s, _, b) = get(&url2, &[]);
    assert_eq!(s, 200);
    assert!(b == bytes);
    assert_eq!(get(&keep, &[]).0, 200, "other attachments are untouched");
    // An admin may revoke too.
    assert_eq!(revoke(&tokens(w.tenant.admin())).status, 204);
    let (s, _, b) = get(&url2, &[]);
    assert_problem_bytes(s, &b, 403, "url_expired");
    // Deleting answers 410 to every URL, revoked or not, whether or not the delete bumps the
    // generation.
    let url3 = url_for(&t, &id, json!({}));
    psql(&format!(
        "UPDATE email_attachments SET is_deleted = true, deleted_at = 1, url_generation = url_generation + 1 WHERE id = '{id}'"
    ));
    for u in [&url1, &url3] {
        let (s, _, b) = get(u, &[]);
        assert_problem_bytes(s, &b, 410, "gone");
    }
    let n = psql(&format!(
        "SELECT count(*) FROM email_audit_log WHERE tenant_id = '{}' AND action = 'attachment.revoke_urls' AND resource_id = '{id}'",
        w.tenant.id
    ));
    assert_eq!(n, "2");
}

/// Issuing and revoking URLs follow the rule of reading the attachment: its message's owner, its
/// uploader and the tenant's admins may; a colleague who gets `403` on the attachment gets `403` here
/// too, also when they hold the id of a revoked URL.
#[test]
fn issuing_and_revoking_follow_the_read_rule() {
    let w = world();
    let (owner, colleague, admin) = (w.tenant.user(0), w.tenant.user(1), w.tenant.admin());
    // The admin attached a file to the owner's message: owner and uploader differ.
    let message = w.tenant.message_of(owner, 0).id.clone();
    let bytes = content("rule", 500);
    let id = seed_attachment_on(
        &w.tenant,
        &message,
        admin,
        &bytes,
        "r.txt",
        "text/plain",
        "clean",
    );
    let (to, tc, ta) = (tokens(owner), tokens(colleague), tokens(admin));
    let c = client();
    let post = |t: &Tokens, what: &str| {
        send(
            c.post(format!("{}/api/v1/attachments/{id}/{what}", w.base))
                .bearer_auth(&t.access),
        )
    };
    // The colleague may not read it ...
    send(
        c.get(format!("{}/api/v1/attachments/{id}", w.base))
            .bearer_auth(&tc.access),
    )
    .assert_problem(403, "forbidden");
    // ... so may not mint a URL, nor revoke them.
    issue(&c, &tc, &id, json!({})).assert_problem(403, "forbidden");
    issue(
        &c,
        &tc,
        &id,
        json!({"expiresIn": 604_800, "disposition": "inline"}),
    )
    .assert_problem(403, "forbidden");
    post(&tc, "revoke-urls").assert_problem(403, "forbidden");

    // The message's owner and the uploader may both.
    let url = url_for(&to, &id, json!({}));
    assert_eq!(get(&url, &[]).0, 200);
    let by_uploader = url_for(&ta, &id, json!({}));
    assert_eq!(get(&by_uploader, &[]).0, 200);
    // The message's owner revokes a link they shared by mistake ...
    assert_eq!(post(&to, "revoke-urls").status, 204);
    for u in [&url, &by_uploader] {
        let (s, _, b) = get(u, &[]);
        assert_problem_bytes(s, &b, 403, "url_expired");
    }
    // ... and the colleague who saw it cannot mint a fresh one from the id it carries.
    let leaked_id = url
        .split("/api/v1/files/")
        .nth(1)
        .and_then(|rest| rest.split('?').next())
        .unwrap()
        .to_owned();
    assert_eq!(leaked_id, id);
    issue(&c, &tc, &leaked_id, json!({})).assert_problem(403, "forbidden");
    // The uploader may revoke too; the owner's new URL works until then.
    let fresh = url_for(&to, &id, json!({}));
    let (s, _, b) = get(&fresh, &[]);
    assert_eq!(s, 200);
    assert!(b == bytes);
    assert_eq!(post(&ta, "revoke-urls").status, 204);
    let (s, _, b) = get(&fresh, &[]);
    assert_problem_bytes(s, &b, 403, "url_expired");

    // Both revocations are audited with who did it; the refused ones changed nothing.
    let rows = psql(&format!(
        "SELECT string_agg(user_id::text, ',' ORDER BY id) FROM email_audit_log WHERE tenant_id = '{}' \
         AND action = 'attachment.revoke_urls' AND resource_id = '{id}'",
        w.tenant.id
    ));
    assert_eq!(rows, format!("{},{}", owner.id, admin.id));
    let generation = psql(&format!(
        "SELECT url_generation FROM email_attachments WHERE id = '{id}'"
    ));
    assert_eq!(generation, "2");
}

#[test]
fn every_bit_flip_of_the_url_is_signature_invalid() {
    let w = world();
    let owner = w.tenant.user(0);
    let id = seed_attachment(
        &w.tenant,
        owner,
        &content("flip", 50),
        "f.txt",
        "text/plain",
        "clean",
    );
    let url = url_for(&tokens(owner), &id, json!({}));
    let prefix = format!("{}/api/v1/files/", w.base);
    let tail = url.strip_prefix(&prefix).unwrap().to_owned();
    let c = client();
    let mut sent = 0;
    for i in 0..tail.len() {
        for bit in 0..7 {
            let mut b = tail.clone().into_bytes();
            b[i] ^= 1 << bit;
            let Ok(m) = String::from_utf8(b) else {
                continue;
            };
            if m.bytes()
                .any(|x| x.is_ascii_control() || x == b' ' || x == b'#')
            {
                continue; // not sendable as a request target
            }
            let Ok(u) = reqwest::Url::parse(&format!("{prefix}{m}")) else {
                continue;
            };
            let res = c.get(u).send().expect("GET");
            let status = res.status().as_u16();
            let body = res.bytes().unwrap();
            assert_eq!(status, 403, "flip bit {bit} of byte {i}: {m}");
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                v["code"], "signature_invalid",
                "flip bit {bit} of byte {i}: {m}"
            );
            sent += 1;
        }
    }
    assert!(sent > 5 * tail.len(), "only {sent} variants sent");
    // Added, removed and reordered parts.
    for m in [
        format!("{url}&x=1"),
        url.replacen("?t=", "?x=1&t=", 1),
        url[..url.len() - 1].to_owned(),
        url.replace("/api/v1/files/", "/api/v1/files/x/"),
    ] {
        let (s, _, b) = get(&m, &[]);
        assert_problem_bytes(s, &b, 403, "signature_invalid");
    }
}

#[test]
fn expired_url() {
    let w = world();
    let owner = w.tenant.user(0);
    let id = seed_attachment(
        &w.tenant,
        owner,
        &content("exp", 50),
        "e.txt",
        "text/plain",
        "clean",
    );
    let url = url_for(&tokens(owner), &id, json!({"expiresIn": 1}));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (s, _, b) = get(&url, &[]);
    assert_problem_bytes(s, &b, 403, "url_expired");
    // A forged expiry is a bad signature, not an expired URL.
    let e = url.split("&e=").nth(1).unwrap().split('&').next().unwrap();
    let forged = url.replace(
        &format!("&e={e}"),
        &format!("&e={}", e.parse::<i64>().unwrap() + 3600),
    );
    let (s, _, b) = get(&forged, &[]);
    assert_problem_bytes(s, &b, 403, "signature_invalid");
}

#[test]
fn ranges() {
    let w = world();
    let owner = w.tenant.user(0);
    let bytes = content("range", 1000);
    let id = seed_attachment(
        &w.tenant,
        owner,
        &bytes,
        "r.bin",
        "application/octet-stream",
        "clean",
    );
    let url = url_for(&tokens(owner), &id, json!({}));
    for (range, first, last) in [
        ("bytes=0-9", 0usize, 9usize),
        ("bytes=990-", 990, 999),
        ("bytes=-10", 990, 999),
        ("bytes=999-999", 999, 999),
        ("bytes=995-5000", 995, 999),
        ("bytes=-5000", 0, 999),
    ] {
        let (s, hd, b) = get(&url, &[("range", range)]);
        assert_eq!(s, 206, "{range}");
        assert_eq!(
            h(&hd, "content-range"),
            format!("bytes {first}-{last}/1000"),
            "{range}"
        );
        assert_eq!(
            h(&hd, "content-length"),
            (last - first + 1).to_string(),
            "{range}"
        );
        assert!(b == bytes[first..=last], "{range}");
    }
    for range in [
        "bytes=1000-",
        "bytes=1000-2000",
        "bytes=-0",
        "bytes=5-2",
        "bytes=x",
    ] {
        let (s, hd, b) = get(&url, &[("range", range)]);
        assert_problem_bytes(s, &b, 416, "range_not_satisfiable");
        assert_eq!(h(&hd, "content-range"), "bytes */1000", "{range}");
    }
    // Several ranges: the whole content.
    let (s, _, b) = get(&url, &[("range", "bytes=0-1,5-6")]);
    assert_eq!(s, 200);
    assert!(b == bytes);
    // If-Range with another tag: the whole content; with ours: the range.
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    let (s, _, _) = get(&url, &[("range", "bytes=0-1"), ("if-range", "\"nope\"")]);
    assert_eq!(s, 200);
    let (s, _, b) = get(&url, &[("range", "bytes=0-1"), ("if-range", &etag)]);
    assert_eq!(s, 206);
    assert_eq!(b, bytes[..2]);
}

#[test]
fn conditional_get_304() {
    let w = world();
    let owner = w.tenant.user(0);
    let bytes = content("etag", 100);
    let id = seed_attachment(
        &w.tenant,
        owner,
        &bytes,
        "e.bin",
        "application/octet-stream",
        "clean",
    );
    let url = url_for(&tokens(owner), &id, json!({}));
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", {etag}"),
        "*".into(),
    ] {
        let (s, hd, b) = get(&url, &[("if-none-match", &inm)]);
        assert_eq!(s, 304, "{inm}");
        assert!(b.is_empty());
        assert_eq!(h(&hd, "etag"), etag);
    }
    let (s, _, _) = get(&url, &[("if-none-match", "\"other\"")]);
    assert_eq!(s, 200);
}

/// Parses `attachment; filename="..."; filename*=UTF-8''...` into (type, fallback, decoded).
fn parse_disposition(v: &str) -> (String, String, String) {
    let (kind, rest) = v.split_once("; filename=\"").expect(v);
    let (fallback, star) = rest.split_once("\"; filename*=UTF-8''").expect(v);
    let mut out = Vec::new();
    let b = star.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&star[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    (
        kind.into(),
        fallback.into(),
        String::from_utf8(out).unwrap(),
    )
}

#[test]
fn hostile_filenames() {
    let w = world();
    let owner = w.tenant.user(0);
    let t = tokens(owner);
    for (name, fallback, decoded) in [
        (
            "he said \"hi\"; x=1.txt",
            "he said _hi__ x=1.txt",
            "he said \"hi\"; x=1.txt",
        ),
        ("party 😀.png", "party _.png", "party 😀.png"),
        ("שלום.txt", "____.txt", "שלום.txt"),
        (
            "invoice\u{202E}fdp.exe",
            "invoice_fdp.exe",
            "invoice_fdp.exe",
        ),
        (
            "back\\slash 100%.txt",
            "back_slash 100_.txt",
            "back_slash 100%.txt",
        ),
    ] {
        let id = seed_attachment(
            &w.tenant,
            owner,
            &content(name, 20),
            name,
            "text/plain",
            "clean",
        );
        let url = url_for(&t, &id, json!({}));
        let (s, hd, _) = get(&url, &[]);
        assert_eq!(s, 200, "{name}");
        let raw = h(&hd, "content-disposition");
        assert!(!raw.contains(['\r', '\n']));
        let (kind, fb, dec) = parse_disposition(raw);
        assert_eq!(
            (kind.as_str(), fb.as_str(), dec.as_str()),
            ("attachment", fallback, decoded),
            "{raw}"
        );
    }
    // Control characters (CR, LF) can never be stored (the database refuses them); the unit and
    // property tests of crates/delivery cover them in the header builder.
}

#[test]
fn active_content_is_never_inline() {
    let w = world();
    let owner = w.tenant.user(0);
    let t = tokens(owner);
    for (name, mime, body) in [
        (
            "page.html",
            "text/html",
            "<html><script>alert(1)</script></html>",
        ),
        (
            "pic.svg",
            "image/svg+xml",
            "<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
        ),
        ("x.xml", "application/xml", "<a/>"),
        ("s.js", "text/javascript", "alert(1)"),
    ] {
        let mut bytes = body.as_bytes().to_vec();
        bytes.extend_from_slice(uuid::Uuid::new_v4().to_string().as_bytes());
        let id = seed_attachment(&w.tenant, owner, &bytes, name, mime, "clean");
        let url = url_for(&t, &id, json!({"disposition": "inline"}));
        let (s, hd, b) = get(&url, &[]);
        assert_eq!(s, 200);
        assert!(b == bytes);
        assert!(
            h(&hd, "content-disposition").starts_with("attachment;"),
            "{name}"
        );
        assert_eq!(h(&hd, "content-security-policy"), "sandbox", "{name}");
        assert_eq!(h(&hd, "x-content-type-options"), "nosniff");
    }
    // Passive content keeps the requested inline disposition.
    let id = seed_attachment(
        &w.tenant,
        owner,
        &content("png", 30),
        "p.png",
        "image/png",
        "clean",
    );
    let (_, hd, _) = get(&url_for(&t, &id, json!({"disposition": "inline"})), &[]);
    assert!(h(&hd, "content-disposition").starts_with("inline;"));
}

#[test]
fn deleted_and_scan_policy() {
    let w = world();
    let owner = w.tenant.user(0);
    let t = tokens(owner);
    let id = seed_attachment(
        &w.tenant,
        owner,
        &content("del", 30),
        "d.txt",
        "text/plain",
        "clean",
    );
    let url = url_for(&t, &id, json!({}));
    psql(&format!(
        "UPDATE email_attachments SET is_deleted = true, deleted_at = 1 WHERE id = '{id}'"
    ));
    let (s, _, b) = get(&url, &[]);
    assert_problem_bytes(s, &b, 410, "gone");
    issue(&client(), &t, &id, json!({})).assert_problem(404, "not_found");

    for (scan, ok) in [
        ("infected", false),
        ("suspicious", false),
        ("pending", false),
        ("error", false),
        ("skipped", true),
        ("clean", true),
    ] {
        let id = seed_attachment(
            &w.tenant,
            owner,
            &content(scan, 30),
            "s.txt",
            "text/plain",
            scan,
        );
        let url = url_for(&t, &id, json!({}));
        let (s, _, b) = get(&url, &[]);
        if ok {
            assert_eq!(s, 200, "{scan}");
        } else {
            assert_problem_bytes(s, &b, 403, "scan_blocked");
        }
        // Blocked content is not confirmed by a conditional request or a HEAD either.
        if !ok {
            let (s, _, _) = get(&url, &[("if-none-match", "*")]);
            assert_eq!(s, 403, "{scan}");
        }
    }
}

/// Key rotation and the serve_unscanned policy, on extra app instances with other variables (same
/// database and storage).
#[test]
fn rotated_keys_and_serve_unscanned() {
    let w = world();
    let owner = w.tenant.user(0);
    let t = tokens(owner);
    let old_ring = var("SPIN_VARIABLE_URL_SIGNING_KEYS");
    let new_key = "rot2:".to_owned() + &"ab".repeat(32);
    let bytes = content("rot", 64);
    let id = seed_attachment(&w.tenant, owner, &bytes, "r.txt", "text/plain", "clean");
    let pending = seed_attachment(
        &w.tenant,
        owner,
        &content("pend", 64),
        "p.txt",
        "text/plain",
        "pending",
    );
    let infected = seed_attachment(
        &w.tenant,
        owner,
        &content("inf", 64),
        "i.txt",
        "text/plain",
        "infected",
    );
    let old_url = url_for(&t, &id, json!({}));
    let old_pending = url_for(&t, &pending, json!({}));
    let old_infected = url_for(&t, &infected, json!({}));

    let rotated_ring = format!("{new_key},{old_ring}");
    let rotated = App::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_URL_SIGNING_KEYS", &rotated_ring),
            ("SPIN_VARIABLE_SERVE_UNSCANNED", "true"),
        ],
    );
    let on = |s: &App, url: &str| url.replacen(&w.base, &s.base_url, 1);
    // Old URLs still verify after rotation.
    let (s, _, b) = get(&on(&rotated, &old_url), &[]);
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    assert!(b == bytes);
    // New URLs are signed with the new key.
    let r = send(
        client()
            .post(format!(
                "{}/api/v1/attachments/{id}/download-url",
                rotated.base_url
            ))
            .bearer_auth(&t.access)
            .json(&json!({})),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let new_url = r.json()["url"].as_str().unwrap().to_owned();
    assert!(new_url.contains("&k=rot2&"), "{new_url}");
    assert_eq!(get(&on(&rotated, &new_url), &[]).0, 200);
    // The main stack does not know the new key yet.
    let (s, _, b) = get(&new_url, &[]);
    assert_problem_bytes(s, &b, 403, "signature_invalid");
    // serve_unscanned = true: pending is served there, infected never.
    assert_eq!(get(&on(&rotated, &old_pending), &[]).0, 200);
    let (s, _, b) = get(&on(&rotated, &old_infected), &[]);
    assert_problem_bytes(s, &b, 403, "scan_blocked");
    drop(rotated);

    // The old key retired: its URLs stop working, the new key's keep working.
    let retired = App::start("spin.toml", &[("SPIN_VARIABLE_URL_SIGNING_KEYS", &new_key)]);
    let (s, _, b) = get(&on(&retired, &old_url), &[]);
    assert_problem_bytes(s, &b, 403, "signature_invalid");
    assert_eq!(get(&on(&retired, &new_url), &[]).0, 200);
}

/// `download_mode = redirect`: the same checks, then a `302` to a short-lived presigned storage URL
/// that serves the bytes with the same type, disposition and caching, whatever the size.
#[test]
fn redirect_mode() {
    let w = world();
    let owner = w.tenant.user(0);
    let t = tokens(owner);
    let bytes = content("redirect", 5000);
    let id = seed_attachment(
        &w.tenant,
        owner,
        &bytes,
        "page \"x\".html",
        "text/html",
        "clean",
    );
    let blocked = seed_attachment(
        &w.tenant,
        owner,
        &content("rb", 10),
        "b.txt",
        "text/plain",
        "infected",
    );
    let url = url_for(&t, &id, json!({"disposition": "inline"}));
    let blocked_url = url_for(&t, &blocked, json!({}));
    let s = App::start("spin.toml", &[("SPIN_VARIABLE_DOWNLOAD_MODE", "redirect")]);
    let on = |u: &str| u.replacen(&w.base, &s.base_url, 1);

    let (status, hd, _) = get(&on(&url), &[]);
    assert_eq!(status, 302);
    let location = h(&hd, "location").to_owned();
    assert!(location.starts_with(&var("S3_ENDPOINT")), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    assert_eq!(h(&hd, "cache-control"), "no-store");
    let (status, hd2, got) = get(&location, &[]);
    assert_eq!(status, 200);
    assert!(got == bytes);
    assert!(
        h(&hd2, "content-disposition").starts_with("attachment;"),
        "storage applies the disposition override: {hd2:?}"
    );
    assert_eq!(h(&hd2, "content-type"), "text/html");
    assert_eq!(h(&hd2, "cache-control"), "private", "as the stream path");
    // A small answer redirects too: redirect always does.
    let small = seed_attachment(
        &w.tenant,
        owner,
        &content("rs", 10),
        "s.txt",
        "text/plain",
        "clean",
    );
    let (status, _, _) = get(&on(&url_for(&t, &small, json!({}))), &[]);
    assert_eq!(status, 302);
    // The checks still come first.
    let (status, _, b) = get(&on(&blocked_url), &[]);
    assert_problem_bytes(status, &b, 403, "scan_blocked");
    let (status, _, b) = get(&on(&url.replace("&d=i&", "&d=a&")), &[]);
    assert_problem_bytes(status, &b, 403, "signature_invalid");
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    assert_eq!(get(&on(&url), &[("if-none-match", &etag)]).0, 304);
}

// ---- answers above the platforms' response cap: `download_mode = auto` ------------------------------

/// Over the 10 MiB response cap of Fermyon Wasm Functions / Akamai Functions (the default
/// `download_stream_max_bytes`).
const LARGE: usize = 25 << 20;

/// The storage key of attachment `id`.
fn storage_key(id: &str) -> String {
    psql(&format!(
        "SELECT b.storage_key FROM email_attachments a JOIN attachment_blobs b ON b.id = a.blob_id \
         WHERE a.id = '{id}'"
    ))
}

/// Unix seconds of an `X-Amz-Date` (`YYYYMMDDTHHMMSSZ`, UTC).
fn amz_date_unix(d: &str) -> u64 {
    let n = |a: usize, b: usize| d[a..b].parse::<i64>().expect(d);
    let (y, m, day) = (n(0, 4), n(4, 6), n(6, 8));
    // Days since 1970-01-01 of a proleptic Gregorian date (the civil-from-days inverse).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + n(9, 11) * 3600 + n(11, 13) * 60 + n(13, 15)).unwrap()
}

/// The query parameters of `url`, decoded, in order.
fn query_pairs(url: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(url)
        .expect(url)
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Under `auto` (the default, as the shared app runs): the whole of a 25 MiB attachment, and a
/// 12 MiB range of it, are `302` to storage, which serves them (`200`, `206` for the re-sent
/// `Range`) with the headers the stream path sends; a 1 KiB range of it and a small attachment are
/// streamed by the component. `304` and `416` are still answered by the component, the audit rows
/// record the way taken, and the checks refuse before any redirect.
#[test]
fn auto_redirects_answers_above_the_platform_cap() {
    let w = world();
    let owner = w.tenant.user(0);
    let t = tokens(owner);
    let bytes = content("large", LARGE);
    let id = seed_attachment(
        &w.tenant,
        owner,
        &bytes,
        "quarterly report (final).pdf",
        "application/pdf",
        "clean",
    );
    let whole_url = url_for(&t, &id, json!({}));
    // A URL of its own for the small range, so that its audit row is that request's alone (another
    // expiry: two URLs issued alike within a second are the same URL).
    let range_url = url_for(&t, &id, json!({"expiresIn": 3000}));
    let expiring = url_for(&t, &id, json!({"expiresIn": 1}));
    let expiring_issued = std::time::Instant::now();

    // The stream path's headers: a HEAD is answered by the component itself.
    let res = client().head(&whole_url).send().unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let streamed = res.headers().clone();
    assert_eq!(h(&streamed, "content-length"), LARGE.to_string());
    assert_eq!(h(&streamed, "cache-control"), "private");

    // The whole: a redirect to the object, no body from the component.
    let (s, hd, body) = get(&whole_url, &[]);
    assert_eq!(s, 302, "{}", String::from_utf8_lossy(&body));
    assert!(body.is_empty());
    let location = h(&hd, "location").to_owned();
    let object = format!(
        "{}/{}/{}?",
        var("S3_ENDPOINT").trim_end_matches('/'),
        var("S3_BUCKET"),
        storage_key(&id)
    );
    assert!(location.starts_with(&object), "{location} vs {object}");
    assert_eq!(h(&hd, "cache-control"), "no-store");
    assert!(
        h(&hd, "ratelimit-policy").starts_with("\"file\""),
        "counted like every answer: {hd:?}"
    );
    // Followed as curl -L or a browser does: no credentials (this client never had any).
    let (s, got_h, got) = get(&location, &[]);
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&got));
    assert_eq!(got.len(), LARGE);
    assert!(got == bytes, "the exact bytes");
    for name in ["content-type", "content-disposition", "cache-control"] {
        assert_eq!(h(&got_h, name), h(&streamed, name), "{name}: {got_h:?}");
    }

    // A small range of it: under the threshold, streamed by the component.
    let mid = LARGE / 2;
    let small = format!("bytes={mid}-{}", mid + 1023);
    let (s, hd, got) = get(&range_url, &[("range", &small)]);
    assert_eq!(s, 206, "{}", String::from_utf8_lossy(&got));
    assert!(hd.get("location").is_none());
    assert!(!h(&hd, "x-request-id").is_empty(), "from the component");
    assert_eq!(
        h(&hd, "content-range"),
        format!("bytes {mid}-{}/{LARGE}", mid + 1023)
    );
    assert!(got == bytes[mid..mid + 1024]);

    // A 12 MiB range: redirected; the client re-sends its Range and storage answers 206.
    let (first, last) = (1usize << 20, (13usize << 20) - 1);
    let large = format!("bytes={first}-{last}");
    let (s, hd, body) = get(&whole_url, &[("range", &large)]);
    assert_eq!(s, 302, "{}", String::from_utf8_lossy(&body));
    let (s, got_h, got) = get(h(&hd, "location"), &[("range", &large)]);
    assert_eq!(s, 206, "{}", String::from_utf8_lossy(&got));
    assert_eq!(
        h(&got_h, "content-range"),
        format!("bytes {first}-{last}/{LARGE}")
    );
    assert!(got == bytes[first..=last], "the range's bytes");

    // Conditionals and a bad range are still the component's answers, never a redirect.
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    let (s, hd, _) = get(&whole_url, &[("if-none-match", &etag)]);
    assert_eq!(s, 304);
    assert!(hd.get("location").is_none());
    let (s, hd, b) = get(&whole_url, &[("range", &format!("bytes={LARGE}-"))]);
    assert_problem_bytes(s, &b, 416, "range_not_satisfiable");
    assert!(hd.get("location").is_none());

    // A small attachment: streamed (200 from the component, no Location).
    let small_bytes = content("small", 4000);
    let small_id = seed_attachment(
        &w.tenant,
        owner,
        &small_bytes,
        "s.txt",
        "text/plain",
        "clean",
    );
    let (s, hd, got) = get(&url_for(&t, &small_id, json!({})), &[]);
    assert_eq!(s, 200);
    assert!(hd.get("location").is_none());
    assert!(got == small_bytes);

    // The audit rows record the way taken: the small range streamed, the rest redirected.
    let rows = psql(&format!(
        "SELECT (details->>'mode') || ':' || (details->>'bytes') FROM email_audit_log \
         WHERE tenant_id = '{}' AND action = 'attachment.download' AND resource_id = '{id}' ORDER BY id",
        w.tenant.id
    ));
    let rows: Vec<&str> = rows.lines().collect();
    assert!(rows.contains(&"stream:1024"), "{rows:?}");
    let redirected: u64 = rows
        .iter()
        .filter_map(|r| r.strip_prefix("redirect:"))
        .map(|b| b.parse::<u64>().unwrap())
        .sum();
    assert_eq!(redirected, (LARGE + (12 << 20)) as u64, "{rows:?}");
    assert_eq!(
        rows.len(),
        rows.iter().filter(|r| r.starts_with("redirect:")).count() + 1
    );

    // Refused before any redirect: expired, revoked, infected.
    std::thread::sleep(
        std::time::Duration::from_millis(2100).saturating_sub(expiring_issued.elapsed()),
    );
    let (s, hd, b) = get(&expiring, &[]);
    assert_problem_bytes(s, &b, 403, "url_expired");
    assert!(hd.get("location").is_none());
    let r = send(
        client()
            .post(format!("{}/api/v1/attachments/{id}/revoke-urls", w.base))
            .bearer_auth(&t.access),
    );
    assert_eq!(r.status, 204, "{r:?}");
    let (s, hd, b) = get(&whole_url, &[]);
    assert_problem_bytes(s, &b, 403, "url_expired");
    assert!(hd.get("location").is_none());
    let fresh = url_for(&t, &id, json!({}));
    assert_eq!(get(&fresh, &[("range", "bytes=0-0")]).0, 206);
    psql(&format!(
        "UPDATE attachment_blobs SET scan_status = 'infected' \
         WHERE id = (SELECT blob_id FROM email_attachments WHERE id = '{id}')"
    ));
    let (s, hd, b) = get(&fresh, &[]);
    assert_problem_bytes(s, &b, 403, "scan_blocked");
    assert!(hd.get("location").is_none());
}

/// What a redirect's `Location` grants: one object, with the headers it names, for 60 s from when
/// it was made. It is exactly the storage crate's presigned `GET` of the attachment's key signed at
/// its `X-Amz-Date`; another key, other headers or a longer validity break the signature (`403`),
/// and storage refuses the same URL once its 60 s are over (shown without waiting a minute: the
/// same URL signed 61 s ago is refused, signed 50 s ago it still works).
#[test]
fn the_location_serves_one_object_for_a_minute() {
    let w = world();
    let owner = w.tenant.user(0);
    let t = tokens(owner);
    let bytes = content("bound", (10 << 20) + 1);
    let id = seed_attachment(
        &w.tenant,
        owner,
        &bytes,
        "b.bin",
        "application/octet-stream",
        "clean",
    );
    let other = seed_attachment(
        &w.tenant,
        owner,
        &content("other", 100),
        "o.bin",
        "application/octet-stream",
        "clean",
    );
    let (s, hd, _) = get(&url_for(&t, &id, json!({})), &[]);
    assert_eq!(s, 302, "one byte over the threshold redirects");
    let location = h(&hd, "location").to_owned();
    let probe = |u: &str| get(u, &[("range", "bytes=0-15")]).0;
    assert_eq!(probe(&location), 206);

    // Exactly a presigned GET of this key, valid 60 s from its X-Amz-Date.
    let pairs = query_pairs(&location);
    let param = |n: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{n} in {location}"))
    };
    assert_eq!(param("X-Amz-Expires"), "60");
    assert_eq!(param("X-Amz-SignedHeaders"), "host");
    assert!(param("X-Amz-Credential").starts_with(&format!("{}/", var("S3_ACCESS_KEY_ID"))));
    assert_eq!(param("response-cache-control"), "private");
    let signed_at = amz_date_unix(&param("X-Amz-Date"));
    let now = integration_tests::now_s() as u64;
    assert!(
        signed_at.abs_diff(now) <= 5,
        "signed now: {signed_at} vs {now}"
    );
    let overrides: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k.starts_with("response-"))
        .cloned()
        .collect();
    let overrides: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let bucket = integration_tests::bucket::Bucket::get();
    let key = storage_key(&id);
    let at = |secs: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    let sixty = std::time::Duration::from_secs(60);
    assert_eq!(
        bucket.presigned_get(&key, &overrides, sixty, at(signed_at)),
        location
    );
    // Signed 50 s ago it still works; signed 61 s ago it has expired: storage enforces the 60 s.
    let recent = bucket.presigned_get(&key, &overrides, sixty, at(now - 50));
    assert_eq!(probe(&recent), 206);
    let stale = bucket.presigned_get(&key, &overrides, sixty, at(now - 61));
    let (s, _, b) = get(&stale, &[("range", "bytes=0-15")]);
    // Garage says `400 InvalidRequest` ("Date is too old"), AWS S3 `403 AccessDenied`.
    assert!(
        matches!(s, 400 | 403),
        "expired: {s} {}",
        String::from_utf8_lossy(&b)
    );

    // Another object (same tenant, same bucket), other headers, a longer life: refused.
    let other_key = storage_key(&other);
    assert_eq!(probe(&location.replacen(&key, &other_key, 1)), 403);
    assert_eq!(
        probe(&location.replacen(
            "response-content-type=application%2Foctet-stream",
            "response-content-type=text%2Fhtml",
            1
        )),
        403
    );
    assert!(location.contains("response-content-type=application%2Foctet-stream"));
    assert_eq!(
        probe(&location.replacen("X-Amz-Expires=60", "X-Amz-Expires=3600", 1)),
        403
    );
}

/// `download_stream_max_bytes` is the threshold, in bytes of the answer's body: exactly it streams,
/// one byte more redirects, for a whole object and for a range alike. A malformed value is
/// `500 misconfigured`, named in the log.
#[test]
fn the_threshold_is_the_answer_length() {
    let w = world();
    let owner = w.tenant.user(0);
    let t = tokens(owner);
    let at_cap = content("cap", 4096);
    let over = content("over", 4097);
    let at_cap_url = url_for(
        &t,
        &seed_attachment(
            &w.tenant,
            owner,
            &at_cap,
            "a.bin",
            "application/octet-stream",
            "clean",
        ),
        json!({}),
    );
    let over_url = url_for(
        &t,
        &seed_attachment(
            &w.tenant,
            owner,
            &over,
            "b.bin",
            "application/octet-stream",
            "clean",
        ),
        json!({}),
    );
    let app = App::start(
        "spin.toml",
        &[("SPIN_VARIABLE_DOWNLOAD_STREAM_MAX_BYTES", "4096")],
    );
    let on = |u: &str| u.replacen(&w.base, &app.base_url, 1);
    let (s, _, got) = get(&on(&at_cap_url), &[]);
    assert_eq!(s, 200);
    assert!(got == at_cap);
    let (s, hd, _) = get(&on(&over_url), &[]);
    assert_eq!(s, 302);
    let (s, _, got) = get(h(&hd, "location"), &[]);
    assert_eq!(s, 200);
    assert!(got == over);
    let (s, _, got) = get(&on(&over_url), &[("range", "bytes=1-4096")]);
    assert_eq!(s, 206, "a 4096-byte range of the larger object streams");
    assert!(got == over[1..=4096]);
    assert_eq!(get(&on(&over_url), &[("range", "bytes=0-4096")]).0, 302);
    drop(app);

    let bad = App::start(
        "spin.toml",
        &[("SPIN_VARIABLE_DOWNLOAD_STREAM_MAX_BYTES", "10MiB")],
    );
    let (s, _, b) = get(&at_cap_url.replacen(&w.base, &bad.base_url, 1), &[]);
    assert_problem_bytes(s, &b, 500, "misconfigured");
    assert!(
        bad.log_text().contains("download_stream_max_bytes"),
        "{}",
        bad.log_text()
    );
}

/// `download_mode = stream`: everything through the component, also 25 MiB (a deployment whose bucket
/// clients cannot reach, on a host without a response cap: `spin up`, SpinKube); under a platform
/// profile the same answer cannot leave the function.
#[test]
fn stream_mode_streams_above_the_cap() {
    let w = world();
    let owner = w.tenant.user(0);
    let bytes = content("streamed", LARGE);
    let id = seed_attachment(
        &w.tenant,
        owner,
        &bytes,
        "big.bin",
        "application/octet-stream",
        "clean",
    );
    let url = url_for(&tokens(owner), &id, json!({}));
    // 25 MiB out of a function: an unlimited host, as spin up or SpinKube (under the platform profile
    // the platform replaces such an answer with its own 500, checked below).
    let app = App::start_unlimited_host("spin.toml", &[("SPIN_VARIABLE_DOWNLOAD_MODE", "stream")]);
    let (s, hd, got) = get(&url.replacen(&w.base, &app.base_url, 1), &[]);
    assert_eq!(s, 200);
    assert!(hd.get("location").is_none());
    assert_eq!(h(&hd, "content-length"), LARGE.to_string());
    assert!(got == bytes, "the exact bytes ({} of {LARGE})", got.len());
    let mode = psql(&format!(
        "SELECT string_agg(details->>'mode', ',') FROM email_audit_log WHERE tenant_id = '{}' \
         AND action = 'attachment.download' AND resource_id = '{id}'",
        w.tenant.id
    ));
    assert_eq!(mode, "stream");
    drop(app);
    // What `stream` means on Fermyon Wasm Functions / Akamai Functions: the platform refuses to carry
    // the answer (the run's profile; the spinlet pass of scripts/test).
    if integration_tests::platform().is_some() {
        let capped = App::start("spin.toml", &[("SPIN_VARIABLE_DOWNLOAD_MODE", "stream")]);
        let (s, _, _) = get(&url.replacen(&w.base, &capped.base_url, 1), &[]);
        assert_eq!(s, 500, "the platform's answer to a 25 MiB response");
    }
}
