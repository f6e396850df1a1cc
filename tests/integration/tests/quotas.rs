//! Quotas against the real stack: per-tenant overrides written as the operator writes them
//! (`tenant_quotas`, see the README's "Quotas"), uploads and downloads through the API, the counters
//! and the bucket looked at behind it.
//!
//! Each test seeds its own two tenants, so the limits of one test never touch another's.

use std::time::{Duration, Instant};

use integration_tests::bucket::Bucket;
use integration_tests::{App, Reply, Stack, Tenant, User, client, login, psql, send, sql_str};
use integration_tests::{send_expecting_continue, sha256_hex};
use reqwest::blocking::Client;
use serde_json::{Value, json};

fn base() -> String {
    Stack::get().base_url.clone()
}

fn two_tenants() -> (Tenant, Tenant) {
    let mut seed = Stack::get().seed();
    let other = seed.tenants.pop().unwrap();
    let tenant = seed.tenants.pop().unwrap();
    (tenant, other)
}

/// The operator's override of `tenant`'s limits (`column = value, ...`).
fn set_limits(tenant: &Tenant, limits: &[(&str, i64)]) {
    let cols: Vec<&str> = limits.iter().map(|(c, _)| *c).collect();
    let vals: Vec<String> = limits.iter().map(|(_, v)| v.to_string()).collect();
    let sets: Vec<String> = cols.iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect();
    psql(&format!(
        "INSERT INTO tenant_quotas (tenant_id, {}) VALUES ('{}', {}) \
         ON CONFLICT (tenant_id) DO UPDATE SET {}",
        cols.join(", "),
        tenant.id,
        vals.join(", "),
        sets.join(", ")
    ));
}

/// `n` bytes no other upload of the run has (dedup must not hide anything here).
fn unique_bytes(n: usize) -> Vec<u8> {
    let seed = uuid::Uuid::new_v4();
    seed.as_bytes().iter().copied().cycle().take(n).collect()
}

fn upload(c: &Client, token: &str, message: &str, body: Vec<u8>) -> Reply {
    upload_to(&base(), c, token, message, body)
}

fn upload_to(base: &str, c: &Client, token: &str, message: &str, body: Vec<u8>) -> Reply {
    send(
        c.post(format!("{base}/api/v1/emails/{message}/attachments"))
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .header("content-disposition", "attachment; filename=\"q.bin\"")
            .body(body),
    )
}

fn tenant_counters(tenant: &Tenant) -> (i64, i64) {
    let out = psql(&format!(
        "SELECT coalesce((SELECT stored_bytes || '|' || attachments FROM tenant_usage \
         WHERE tenant_id = '{}'), '0|0')",
        tenant.id
    ));
    let (b, n) = out.split_once('|').unwrap();
    (b.parse().unwrap(), n.parse().unwrap())
}

/// What the live rows say, whatever the counters say.
fn live_rows(tenant: &Tenant) -> (i64, i64) {
    let out = psql(&format!(
        "SELECT coalesce(sum(size_bytes), 0) || '|' || count(*) FROM email_attachments \
         WHERE tenant_id = '{}' AND NOT is_deleted",
        tenant.id
    ));
    let (b, n) = out.split_once('|').unwrap();
    (b.parse().unwrap(), n.parse().unwrap())
}

fn objects(tenant: &Tenant) -> Vec<String> {
    Bucket::get().keys(&format!("tenants/{}/", tenant.id))
}

/// The bucket holds `n` objects of `tenant` (a cleanup deferred past its answer gets a few seconds).
fn assert_objects(tenant: &Tenant, n: usize) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let keys = objects(tenant);
        if keys.len() == n {
            return;
        }
        assert!(
            Instant::now() < until,
            "expected {n} objects, found {keys:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[track_caller]
fn assert_quota(r: &Reply, quota: &str, limit: i64, usage: i64, requested: i64) {
    let v = r.assert_problem(403, "quota_exceeded");
    assert_eq!(v["quota"], quota, "{r:?}");
    assert_eq!(v["limit"], limit, "{r:?}");
    assert_eq!(v["usage"], usage, "{r:?}");
    assert_eq!(v["requested"], requested, "{r:?}");
    assert_eq!(v["title"], "Forbidden");
}

#[test]
fn twenty_concurrent_uploads_next_to_the_limit_never_end_above_it() {
    let (tenant, _) = two_tenants();
    // Room for exactly ten files of 1000 bytes, and a little more that no file fits in.
    let limit = 10_500;
    set_limits(&tenant, &[("tenant_bytes", limit)]);
    let users = [tenant.user(0).clone(), tenant.user(1).clone()];
    let tokens: Vec<String> = users
        .iter()
        .map(|u| login(&client(), &base(), u).access)
        .collect();
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let user = users[i % 2].clone();
            let token = tokens[i % 2].clone();
            let message = tenant.message_of(&user, 0).id.clone();
            std::thread::spawn(move || upload(&client(), &token, &message, unique_bytes(1000)))
        })
        .collect();
    let replies: Vec<Reply> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let created = replies.iter().filter(|r| r.status == 201).count();
    for r in replies.iter().filter(|r| r.status != 201) {
        let v = r.assert_problem(403, "quota_exceeded");
        assert_eq!(v["quota"], "tenant_bytes");
        assert_eq!(v["limit"], limit);
        assert!(v["usage"].as_i64().unwrap() + 1000 > limit, "{r:?}");
    }
    // Commits wait for each other on the tenant's counter: the first ten fit, no more.
    assert_eq!(created, 10, "{replies:?}");
    assert_eq!(tenant_counters(&tenant), (10_000, 10));
    assert_eq!(live_rows(&tenant), (10_000, 10));
    // Nothing of a refused upload stays in storage.
    assert_objects(&tenant, 10);
}

#[test]
fn the_refusal_names_the_limit_the_usage_and_the_request() {
    let (tenant, _) = two_tenants();
    set_limits(&tenant, &[("user_bytes", 1000)]);
    let user = tenant.user(0);
    let token = login(&client(), &base(), user).access;
    let message = &tenant.message_of(user, 0).id;
    let c = client();
    assert_eq!(upload(&c, &token, message, unique_bytes(600)).status, 201);
    let r = upload(&c, &token, message, unique_bytes(600));
    assert_quota(&r, "user_bytes", 1000, 600, 600);
    // Exactly up to the limit fits.
    assert_eq!(upload(&c, &token, message, unique_bytes(400)).status, 201);
    assert_eq!(live_rows(&tenant), (1000, 2));
    // The other user of the tenant has their own allowance.
    let other = tenant.user(1);
    let other_token = login(&c, &base(), other).access;
    let other_message = &tenant.message_of(other, 0).id;
    assert_eq!(
        upload(&c, &other_token, other_message, unique_bytes(1000)).status,
        201
    );
}

#[test]
fn a_claimed_size_over_the_quota_is_refused_before_any_byte_is_sent() {
    let (tenant, _) = two_tenants();
    set_limits(&tenant, &[("user_bytes", 1000)]);
    let user = tenant.user(0);
    let token = login(&client(), &base(), user).access;
    let message = &tenant.message_of(user, 0).id;
    let auth = format!("Bearer {token}");
    // With Expect: 100-continue the body is sent only after 100 Continue: the answer comes first.
    let r = send_expecting_continue(
        "POST",
        &format!("{}/api/v1/emails/{message}/attachments", base()),
        &[
            ("authorization", &auth),
            ("content-type", "application/octet-stream"),
            ("content-disposition", "attachment; filename=\"big.bin\""),
        ],
        &unique_bytes(5000),
    );
    assert_quota(&r, "user_bytes", 1000, 0, 5000);
    assert_eq!(live_rows(&tenant), (0, 0));
    assert_objects(&tenant, 0);

    // A direct upload's and a tus upload's claims are judged the same way, before any part exists.
    let c = client();
    let r = send(
        c.post(format!("{}/api/v1/emails/{message}/uploads", base()))
            .bearer_auth(&token)
            .json(&json!({"filename": "big.bin", "size": 5000})),
    );
    assert_quota(&r, "user_bytes", 1000, 0, 5000);
    let r = send(
        c.post(format!("{}/api/v1/emails/{message}/tus", base()))
            .bearer_auth(&token)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "5000")
            .header("upload-metadata", "filename YmlnLmJpbg=="),
    );
    assert_quota(&r, "user_bytes", 1000, 0, 5000);
    assert_eq!(r.header("tus-resumable"), Some("1.0.0"));
    assert_eq!(
        psql(&format!(
            "SELECT count(*) FROM upload_sessions WHERE tenant_id = '{}'",
            tenant.id
        )),
        "0"
    );
    assert_eq!(
        Bucket::get()
            .uploads(&format!("tenants/{}/", tenant.id))
            .len(),
        0
    );
}

#[test]
fn the_count_quota_and_deleting_gives_the_quota_back() {
    let (tenant, _) = two_tenants();
    set_limits(&tenant, &[("user_attachments", 2), ("user_bytes", 5000)]);
    let user = tenant.user(0);
    let c = client();
    let token = login(&c, &base(), user).access;
    let message = &tenant.message_of(user, 0).id;
    let first = upload(&c, &token, message, unique_bytes(2000));
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(upload(&c, &token, message, unique_bytes(10)).status, 201);
    let r = upload(&c, &token, message, unique_bytes(10));
    assert_quota(&r, "user_attachments", 2, 2, 1);

    let id = first.json()["id"].as_str().unwrap().to_owned();
    let del = send(
        c.delete(format!("{}/api/v1/attachments/{id}", base()))
            .bearer_auth(&token),
    );
    assert_eq!(del.status, 204, "{del:?}");
    assert_eq!(tenant_counters(&tenant), (10, 1));
    // Both the count and the bytes came back: 4990 more bytes fit again.
    assert_eq!(upload(&c, &token, message, unique_bytes(4990)).status, 201);
    let r = upload(&c, &token, message, unique_bytes(1));
    assert_quota(&r, "user_bytes", 5000, 5000, 1);
}

#[test]
fn dedup_is_charged_as_the_tenant_sees_it() {
    let (tenant, _) = two_tenants();
    set_limits(&tenant, &[("tenant_bytes", 2500)]);
    let c = client();
    let bytes = unique_bytes(1000);
    for n in 0..2 {
        let user = tenant.user(n);
        let token = login(&c, &base(), user).access;
        let r = upload(&c, &token, &tenant.message_of(user, 0).id, bytes.clone());
        assert_eq!(r.status, 201, "{r:?}");
    }
    // Stored once, counted twice.
    assert_eq!(
        psql(&format!(
            "SELECT count(*) FROM attachment_blobs WHERE tenant_id = '{}'",
            tenant.id
        )),
        "1"
    );
    assert_eq!(tenant_counters(&tenant), (2000, 2));
    let user = tenant.user(0);
    let token = login(&c, &base(), user).access;
    let r = upload(&c, &token, &tenant.message_of(user, 0).id, bytes);
    assert_quota(&r, "tenant_bytes", 2500, 2000, 1000);
}

/// An attachment stored as a finished upload would leave it, judged clean.
fn clean_attachment(tenant: &Tenant, owner: &User, bytes: &[u8]) -> String {
    let key = format!("tenants/{}/blobs/{}", tenant.id, uuid::Uuid::new_v4());
    Bucket::get().put(&key, bytes);
    psql(&format!(
        "WITH b AS (INSERT INTO attachment_blobs (tenant_id, content_sha256, size_bytes, storage_key, scan_status) \
         VALUES ('{t}', '{hash}', {size}, '{key}', 'clean') RETURNING id) \
         INSERT INTO email_attachments (tenant_id, message_id, blob_id, uploader_user_id, filename, detected_mime, size_bytes) \
         SELECT '{t}', '{message}', b.id, '{owner}', {name}, 'application/octet-stream', {size} FROM b RETURNING id",
        t = tenant.id,
        hash = sha256_hex(bytes),
        size = bytes.len(),
        message = tenant.message_of(owner, 0).id,
        owner = owner.id,
        name = sql_str("d.bin"),
    ))
}

#[test]
fn downloads_per_day_are_charged_to_the_message_owner_and_refused_past_the_limit() {
    let (tenant, _) = two_tenants();
    set_limits(&tenant, &[("user_download_bytes_per_day", 2500)]);
    let owner = tenant.user(0);
    let c = client();
    let token = login(&c, &base(), owner).access;
    let id = clean_attachment(&tenant, owner, &unique_bytes(1000));
    let url = send(
        c.post(format!("{}/api/v1/attachments/{id}/download-url", base()))
            .bearer_auth(&token),
    )
    .json()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..2 {
        let r = send(c.get(&url));
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("content-length"), Some("1000"), "{r:?}");
    }
    // A range costs its length; HEAD costs nothing.
    let r = send(c.get(&url).header("range", "bytes=0-99"));
    assert_eq!(r.status, 206, "{r:?}");
    assert_eq!(send(c.head(&url)).status, 200);
    let r = send(c.get(&url));
    assert_quota(&r, "user_download_bytes_per_day", 2500, 2100, 1000);
    let usage = send(
        c.get(format!("{}/api/v1/usage", base()))
            .bearer_auth(&token),
    );
    assert_eq!(usage.status, 200, "{usage:?}");
    let v = usage.json();
    assert_eq!(v["downloadedBytesToday"], 2100);
    assert_eq!(v["limits"]["userDownloadBytesPerDay"], 2500);
    // A range that still fits is served.
    assert_eq!(send(c.get(&url).header("range", "bytes=0-399")).status, 206);
}

#[test]
fn usage_routes_show_the_caller_and_admins_the_tenant_only() {
    let (tenant, other) = two_tenants();
    set_limits(
        &tenant,
        &[("user_bytes", 1_000_000), ("tenant_attachments", 50)],
    );
    let c = client();
    let user = tenant.user(0);
    let token = login(&c, &base(), user).access;
    assert_eq!(
        upload(
            &c,
            &token,
            &tenant.message_of(user, 0).id,
            unique_bytes(300)
        )
        .status,
        201
    );
    assert_eq!(
        upload(
            &c,
            &token,
            &tenant.message_of(user, 0).id,
            unique_bytes(200)
        )
        .status,
        201
    );
    let other_user = other.user(0);
    let other_token = login(&c, &base(), other_user).access;
    assert_eq!(
        upload(
            &c,
            &other_token,
            &other.message_of(other_user, 0).id,
            unique_bytes(7)
        )
        .status,
        201
    );

    let mine = send(
        c.get(format!("{}/api/v1/usage", base()))
            .bearer_auth(&token),
    );
    assert_eq!(mine.status, 200, "{mine:?}");
    assert_eq!(mine.header("cache-control"), Some("no-store"));
    let v = mine.json();
    assert_eq!(v["storedBytes"], 500);
    assert_eq!(v["attachments"], 2);
    assert_eq!(v["downloadedBytesToday"], 0);
    assert_eq!(v["limits"]["userBytes"], 1_000_000);
    assert_eq!(v["limits"]["tenantAttachments"], 50);
    assert_eq!(v["limits"]["tenantBytes"], Value::Null);

    // A plain user may not see the tenant's.
    send(
        c.get(format!("{}/api/v1/admin/usage", base()))
            .bearer_auth(&token),
    )
    .assert_problem(403, "forbidden");
    send(c.get(format!("{}/api/v1/admin/usage", base()))).assert_problem(401, "invalid_token");

    let admin_token = login(&c, &base(), tenant.admin()).access;
    let all = send(
        c.get(format!("{}/api/v1/admin/usage", base()))
            .bearer_auth(&admin_token),
    );
    assert_eq!(all.status, 200, "{all:?}");
    let v = all.json();
    assert_eq!(v["tenant"]["storedBytes"], 500);
    assert_eq!(v["tenant"]["attachments"], 2);
    let users = v["users"].as_array().unwrap();
    assert_eq!(users.len(), tenant.users.len(), "{v}");
    for u in users {
        let seeded = tenant
            .users
            .iter()
            .find(|s| u["userId"] == s.id.as_str())
            .unwrap_or_else(|| panic!("a user of another tenant: {u}"));
        let expected = if seeded.id == user.id { 500 } else { 0 };
        assert_eq!(u["storedBytes"], expected, "{u}");
        assert_eq!(u["email"], seeded.email.as_str());
    }
    // The other tenant's admin sees only theirs.
    let other_admin = login(&c, &base(), other.admin()).access;
    let v = send(
        c.get(format!("{}/api/v1/admin/usage", base()))
            .bearer_auth(&other_admin),
    )
    .json();
    assert_eq!(v["tenant"]["storedBytes"], 7);
    assert!(
        v["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| other.users.iter().any(|s| u["userId"] == s.id.as_str())),
        "{v}"
    );
}

#[test]
fn the_settings_are_the_defaults_and_a_tenant_override_lifts_one() {
    let (tenant, _) = two_tenants();
    let app = App::start(
        "spin.toml",
        &[("SPIN_VARIABLE_QUOTA_USER_ATTACHMENTS", "1")],
    );
    let c = client();
    let user = tenant.user(0);
    let token = login(&c, &app.base_url, user).access;
    let message = &tenant.message_of(user, 0).id;
    let r = upload_to(&app.base_url, &c, &token, message, unique_bytes(10));
    assert_eq!(r.status, 201, "{r:?}");
    let r = upload_to(&app.base_url, &c, &token, message, unique_bytes(10));
    assert_quota(&r, "user_attachments", 1, 1, 1);
    // 0 in the tenant's row: unlimited for this tenant.
    set_limits(&tenant, &[("user_attachments", 0)]);
    let r = upload_to(&app.base_url, &c, &token, message, unique_bytes(10));
    assert_eq!(r.status, 201, "{r:?}");
    let v = send(
        c.get(format!("{}/api/v1/usage", app.base_url))
            .bearer_auth(&token),
    )
    .json();
    assert_eq!(v["limits"]["userAttachments"], Value::Null);
    assert_eq!(v["attachments"], 2);
}

#[test]
fn a_negative_limit_is_misconfigured_and_named_in_the_log() {
    let (tenant, _) = two_tenants();
    let app = App::start("spin.toml", &[("SPIN_VARIABLE_QUOTA_USER_BYTES", "-5")]);
    let c = client();
    let token = login(&c, &app.base_url, tenant.user(0)).access;
    send(
        c.get(format!("{}/api/v1/usage", app.base_url))
            .bearer_auth(&token),
    )
    .assert_problem(500, "misconfigured");
    assert!(
        app.log_text().contains("quota_user_bytes"),
        "{}",
        app.log_text()
    );
}

#[test]
fn the_tus_chunk_that_would_complete_an_upload_over_the_quota_is_refused() {
    let (tenant, _) = two_tenants();
    set_limits(&tenant, &[("user_bytes", 6000)]);
    let user = tenant.user(0);
    let c = client();
    let token = login(&c, &base(), user).access;
    let message = &tenant.message_of(user, 0).id;
    let created = send(
        c.post(format!("{}/api/v1/emails/{message}/tus", base()))
            .bearer_auth(&token)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "5000")
            .header("upload-metadata", "filename YmlnLmJpbg=="),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let location = created.header("location").unwrap().to_owned();
    // Another upload uses the room up meanwhile.
    assert_eq!(upload(&c, &token, message, unique_bytes(2000)).status, 201);
    let patch = |body: Vec<u8>| {
        send(
            c.patch(format!("{}{location}", base()))
                .bearer_auth(&token)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", "0")
                .header("content-type", "application/offset+octet-stream")
                .body(body),
        )
    };
    let r = patch(unique_bytes(5000));
    assert_quota(&r, "user_bytes", 6000, 2000, 5000);
    assert_eq!(r.header("tus-resumable"), Some("1.0.0"));
    let head = send(
        c.head(format!("{}{location}", base()))
            .bearer_auth(&token)
            .header("tus-resumable", "1.0.0"),
    );
    assert_eq!(head.header("upload-offset"), Some("0"), "{head:?}");
    // Room made again: the same chunk completes it.
    set_limits(&tenant, &[("user_bytes", 7000)]);
    let r = patch(unique_bytes(5000));
    assert_eq!(r.status, 204, "{r:?}");
}
