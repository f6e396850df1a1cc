//! The public signed-content route is limited per URL (`file_rate_limit`, Redis): over the limit
//! `429 rate_limited` problem+json with `Retry-After`, every counted answer with `RateLimit-Policy`
//! and `RateLimit`; another URL of the same attachment has its own budget. Its downloads are audited
//! one row per URL and minute with a count, not one row per request.

use integration_tests::{App, Reply, Stack, client, login, now_ms, psql, send};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The opaque id the audit rows and counters know a URL by: hex of the first 16 bytes of SHA-256
/// over its path, `?` and query.
fn url_id(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let path_query = &after_scheme[after_scheme.find('/').unwrap_or(0)..];
    Sha256::digest(path_query.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `url` (issued with the stack's public base URL) on the app at `base`.
fn on(base: &str, url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    format!(
        "{base}{}",
        &after_scheme[after_scheme.find('/').unwrap_or(0)..]
    )
}

fn get(url: &str) -> Reply {
    send(client().get(url))
}

/// The `attachment.download` rows of URL `id`: (count, details) each.
fn audit_rows(tenant: &str, id: &str) -> Vec<Value> {
    let out = psql(&format!(
        "SELECT coalesce(json_agg(details ORDER BY id), '[]') FROM email_audit_log \
         WHERE tenant_id = '{tenant}' AND action = 'attachment.download' AND details->>'url' = '{id}'"
    ));
    serde_json::from_str::<Vec<Value>>(&out).expect("audit rows")
}

#[test]
fn a_signed_url_is_rate_limited_and_its_downloads_audited_per_minute() {
    // An app with a small limit beside the stack's, serving unscanned content (no scan needed here).
    let app = App::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_FILE_RATE_LIMIT", "3/60s"),
            ("SPIN_VARIABLE_SERVE_UNSCANNED", "true"),
        ],
    );
    let mut seed = Stack::get().seed();
    let t = seed.tenants.remove(0);
    let user = t.user(0).clone();
    let c = client();
    let token = login(&c, &app.base_url, &user).access;
    let msg = t.message_of(&user, 0).id.clone();
    let body = format!("rate limited content {}", uuid::Uuid::new_v4());
    let r = send(
        c.post(format!("{}/api/v1/emails/{msg}/attachments", app.base_url))
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .header(
                "content-disposition",
                "attachment; filename=\"limited.txt\"",
            )
            .body(body.clone()),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let issue = |expires_in: i64| {
        let r = send(
            c.post(format!(
                "{}/api/v1/attachments/{id}/download-url",
                app.base_url
            ))
            .bearer_auth(&token)
            .json(&json!({ "expiresIn": expires_in })),
        );
        assert_eq!(r.status, 200, "{r:?}");
        on(&app.base_url, r.json()["url"].as_str().unwrap())
    };
    let url = issue(600);

    let minute_before = now_ms() / 60_000;
    for left in [2, 1, 0] {
        let r = get(&url);
        assert_eq!(r.status, 200, "{r:?}\n{}", app.log_text());
        assert_eq!(r.body, body);
        assert_eq!(r.header("ratelimit-policy"), Some("\"file\";q=3;w=60"));
        let remaining = r.header("ratelimit").unwrap_or_default();
        assert!(
            remaining.starts_with(&format!("\"file\";r={left};t=")),
            "{remaining}"
        );
    }
    let minute_after = now_ms() / 60_000;
    let refused = get(&url);
    let p = refused.assert_problem(429, "rate_limited");
    assert_eq!(p["status"], 429);
    let retry: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(refused.header("ratelimit-policy").is_some(), "{refused:?}");

    // Another URL of the same attachment has its own budget.
    let other = issue(900);
    assert_ne!(url_id(&other), url_id(&url));
    assert_eq!(get(&other).status, 200);

    // The three downloads of the first URL: one row per minute they spanned, counting them; the
    // refused request is not among them. The row names the URL by its id, never the URL itself.
    let rows = audit_rows(&t.id, &url_id(&url));
    let counted: i64 = rows.iter().map(|d| d["count"].as_i64().unwrap()).sum();
    assert_eq!(counted, 3, "{rows:?}");
    let minutes = (minute_after - minute_before + 1) as usize;
    assert!(rows.len() <= minutes && rows.len() < 3, "{rows:?}");
    if minute_before == minute_after {
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["bytes"].as_i64(), Some(3 * body.len() as i64));
    }
    let secret = url.rsplit_once("s=").unwrap().1;
    for d in &rows {
        assert_eq!(d["mode"], "stream");
        assert!(!d.to_string().contains(secret), "{d}");
    }
    let other_rows = audit_rows(&t.id, &url_id(&other));
    assert_eq!(other_rows.len(), 1, "{other_rows:?}");
    assert_eq!(other_rows[0]["count"], 1);
}

#[test]
fn the_stack_limits_content_urls_by_default() {
    let stack = Stack::get();
    let mut seed = stack.seed();
    let t = seed.tenants.remove(0);
    let user = t.user(0).clone();
    let c = client();
    let token = login(&c, &stack.base_url, &user).access;
    let msg = t.message_of(&user, 0).id.clone();
    let r = send(
        c.post(stack.url(&format!("/api/v1/emails/{msg}/attachments")))
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .header(
                "content-disposition",
                "attachment; filename=\"pending.txt\"",
            )
            .body(format!("pending {}", uuid::Uuid::new_v4())),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let r = send(
        c.post(stack.url(&format!("/api/v1/attachments/{id}/download-url")))
            .bearer_auth(&token),
    );
    let url = r.json()["url"].as_str().unwrap().to_owned();
    // Refused (not scanned yet), and counted all the same.
    let r = get(&url);
    r.assert_problem(403, "scan_blocked");
    let policy = stack.spin_var("file_rate_limit", "120/60s");
    let (q, w) = policy.split_once('/').unwrap();
    let w = w.trim_end_matches('s');
    assert_eq!(
        r.header("ratelimit-policy"),
        Some(format!("\"file\";q={q};w={w}").as_str()),
        "{r:?}"
    );
}
