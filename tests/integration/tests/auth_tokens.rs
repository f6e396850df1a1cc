//! The token service over HTTP: login → me, JWKS, wrong password vs unknown email, failed
//! login limits (per email and address, per address, per email; the client address per
//! `client_ip_source`; Redis down), refresh rotation and reuse detection, logout, and the
//! admin-only audit log.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use integration_tests::now_ms;
use integration_tests::{
    App, Reply, Stack, Tokens, client, free_port, login, login_reply, psql, random_loopback, send,
    send_expecting_continue, sql_str,
};
use serde_json::Value;

fn without_request_id(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("requestId");
    v
}

#[test]
fn login_then_me() {
    let stack = Stack::get();
    let seed = stack.seed();
    let tenant = &seed.tenants[0];
    let user = tenant.user(0);
    let c = client();

    let r = send(
        c.post(stack.url("/api/v1/auth/token"))
            .header("x-request-id", "itest-login-1")
            .json(&serde_json::json!({ "email": user.email, "password": user.password })),
    );
    assert_eq!(r.header("x-request-id"), Some("itest-login-1"), "{r:?}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let t = Tokens::from_reply(&r);
    let ttl: i64 = stack
        .spin_var("auth_access_ttl_secs", "900")
        .parse()
        .unwrap();
    let refresh_ttl: i64 = stack
        .spin_var("auth_refresh_ttl_secs", "2592000")
        .parse()
        .unwrap();
    assert_eq!(t.body["tokenType"], "Bearer");
    assert_eq!(t.body["expiresIn"], ttl);
    assert_eq!(t.body["refreshExpiresIn"], refresh_ttl);
    assert_eq!(t.refresh.len(), 43, "opaque 256-bit refresh token");
    assert_ne!(t.refresh, t.access);

    let header = integration_tests::jwt_header(&t.access);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    let kid = header["kid"].as_str().expect("kid").to_owned();

    let me = send(
        c.get(stack.url("/api/v1/auth/me"))
            .bearer_auth(&t.access)
            .header("x-request-id", "itest-me-1"),
    );
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.header("x-request-id"), Some("itest-me-1"));
    let v = me.json();
    assert_eq!(v["userId"], user.id);
    assert_eq!(v["tenantId"], tenant.id);
    assert_eq!(v["role"], "user");
    assert_eq!(
        v["email"].as_str().unwrap().to_lowercase(),
        user.email.to_lowercase()
    );
    let expires_at = v["expiresAt"].as_i64().expect("expiresAt ms");
    let expected = now_ms() + ttl * 1000;
    assert!(
        (expected - 120_000..=expected + 5_000).contains(&expires_at),
        "expiresAt {expires_at} vs ~{expected}"
    );

    // The signing key is published; nothing private is.
    let jwks = send(c.get(stack.url("/.well-known/jwks.json")));
    assert_eq!(jwks.status, 200, "{jwks:?}");
    assert!(jwks.header("x-request-id").is_some());
    let keys = jwks.json()["keys"].as_array().expect("keys").clone();
    assert!(
        keys.iter().any(|k| k["kid"] == kid.as_str()),
        "kid {kid} not in {keys:?}"
    );
    assert!(
        keys.iter().all(|k| k.get("d").is_none()),
        "private key material in JWKS"
    );

    // Emails are matched case-insensitively; the admin gets role admin.
    let t2 = login_reply(
        &c,
        &stack.base_url,
        &user.email.to_uppercase(),
        &user.password,
    );
    assert_eq!(t2.status, 200, "{t2:?}");
    let admin = login(&c, &stack.base_url, tenant.admin());
    let me = send(
        c.get(stack.url("/api/v1/auth/me"))
            .bearer_auth(&admin.access),
    );
    assert_eq!(me.json()["role"], "admin");
}

#[test]
fn malformed_login_requests() {
    let stack = Stack::get();
    let c = client();
    let url = stack.url("/api/v1/auth/token");
    send(
        c.post(&url)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .assert_problem(400, "bad_request");
    send(c.post(&url).json(&serde_json::json!({ "email": "a@b.c" })))
        .assert_problem(400, "bad_request");
    send(c.post(&url).body(r#"{"email":"a@b.c","password":"x"}"#))
        .assert_problem(415, "unsupported_media_type");
    send(c.get(&url)).assert_problem(405, "method_not_allowed");
    // Judged from Content-Length before the body is read: sent with Expect: 100-continue, as the
    // other early answers are, so a host that answers and closes (Spin) never cuts the answer.
    let big = "x".repeat(64 * 1024);
    let body = serde_json::json!({ "email": "a@b.c", "password": big }).to_string();
    send_expecting_continue(
        "POST",
        &url,
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .assert_problem(413, "payload_too_large");
}

#[test]
fn wrong_password_and_unknown_email_answer_alike() {
    let stack = Stack::get();
    let seed = stack.seed();
    let user = seed.tenants[0].user(1);
    let c = client();
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    let mut bodies: Vec<(Reply, Reply)> = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let a = login_reply(&c, &stack.base_url, &user.email, "not-the-password");
        known.push(t.elapsed());
        let stranger = format!("nobody-{}@example.test", uuid::Uuid::new_v4().simple());
        let t = Instant::now();
        let b = login_reply(&c, &stack.base_url, &stranger, "not-the-password");
        unknown.push(t.elapsed());
        bodies.push((a, b));
    }
    for (a, b) in &bodies {
        let va = a.assert_problem(401, "invalid_credentials");
        let vb = b.assert_problem(401, "invalid_credentials");
        assert_eq!(
            without_request_id(va),
            without_request_id(vb),
            "bodies differ"
        );
        let mut ha: Vec<&String> = a.headers.keys().filter(|k| *k != "date").collect();
        let mut hb: Vec<&String> = b.headers.keys().filter(|k| *k != "date").collect();
        ha.sort();
        hb.sort();
        assert_eq!(ha, hb, "header names differ");
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[1].as_secs_f64(), unknown[1].as_secs_f64());
    // Both do one argon2id verification (~0.1-0.3 s); without the dummy hash the unknown email
    // would answer in a few ms. The band is wide because the machine is shared.
    assert!(
        (0.33..3.0).contains(&(k / u)),
        "median wrong password {k:.3}s vs unknown email {u:.3}s"
    );
    assert!(
        u > 0.02,
        "unknown email answered in {u:.4}s: no password work was done"
    );
}

/// A client from a known loopback address (127.x.y.z).
fn client_at(ip: IpAddr) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .local_address(ip)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `POST /api/v1/auth/token` with extra request headers.
fn login_with(
    c: &reqwest::blocking::Client,
    base: &str,
    email: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut rb = c
        .post(format!("{base}/api/v1/auth/token"))
        .json(&serde_json::json!({ "email": email, "password": password }));
    for (n, v) in headers {
        rb = rb.header(*n, *v);
    }
    send(rb)
}

/// The client address recorded in the audit row of request `rid`.
fn audited_address(rid: &str) -> String {
    psql(&format!(
        "SELECT coalesce(host(client_addr), 'null') FROM email_audit_log WHERE request_id = {}",
        sql_str(rid)
    ))
}

fn policy_of(r: &Reply) -> &str {
    r.header("ratelimit-policy").unwrap_or_default()
}

#[test]
fn wrong_passwords_from_one_address_do_not_lock_the_owner_out() {
    let stack = Stack::get();
    let seed = stack.seed();
    let user = seed.tenants[0].user(0);
    let spec = stack.spin_var("login_rate_limit_email_address", "5/15m");
    let limit: usize = spec.split('/').next().unwrap().trim().parse().unwrap();
    assert!(
        limit <= 20,
        "login_rate_limit_email_address {spec} is too high to test here"
    );
    let attacker = client();
    for i in 0..limit {
        login_reply(
            &attacker,
            &stack.base_url,
            &user.email,
            &format!("wrong-{i}"),
        )
        .assert_problem(401, "invalid_credentials");
    }
    // One attempt more: the attacker's budget for this email is spent.
    let r = login_reply(&attacker, &stack.base_url, &user.email, "wrong-again");
    r.assert_problem(429, "rate_limited");
    assert!(policy_of(&r).contains("\"login-email-addr\""), "{r:?}");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry >= 1, "{r:?}");
    // The owner, from another address, logs in.
    let owner = login_reply(&client(), &stack.base_url, &user.email, &user.password);
    assert_eq!(owner.status, 200, "{owner:?}");
    // The attacker's address stays limited, even with the right password.
    let r = login_reply(&attacker, &stack.base_url, &user.email, &user.password);
    r.assert_problem(429, "rate_limited");
    assert!(policy_of(&r).contains("\"login-email-addr\""), "{r:?}");
}

#[test]
fn failed_logins_are_limited_per_email_from_all_addresses() {
    let app = App::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_LOGIN_RATE_LIMIT_EMAIL", "3/15m"),
            ("SPIN_VARIABLE_LOGIN_RATE_LIMIT_EMAIL_ADDRESS", "100/15m"),
            ("SPIN_VARIABLE_LOGIN_RATE_LIMIT_ADDRESS", "100/15m"),
        ],
    );
    let seed = Stack::get().seed();
    let user = seed.tenants[0].user(0);
    let other = seed.tenants[0].user(1);
    for i in 0..3 {
        login_reply(&client(), &app.base_url, &user.email, &format!("wrong-{i}"))
            .assert_problem(401, "invalid_credentials");
    }
    let r = login_reply(&client(), &app.base_url, &user.email, &user.password);
    r.assert_problem(429, "rate_limited");
    assert!(policy_of(&r).contains("\"login-email\""), "{r:?}");
    assert!(r.header("retry-after").is_some(), "{r:?}");
    assert_eq!(
        login_reply(&client(), &app.base_url, &other.email, &other.password).status,
        200,
        "other emails are unaffected"
    );
}

/// Spin keeps a `spin-client-addr` the client sends and appends its own: a client that sends one
/// per attempt must not get a fresh budget each time, nor be audited under the address it wrote.
#[test]
fn a_client_sent_spin_client_addr_chooses_no_address() {
    let stack = Stack::get();
    let seed = stack.seed();
    let user = seed.tenants[0].user(1);
    let spec = stack.spin_var("login_rate_limit_email_address", "5/15m");
    let limit: usize = spec.split('/').next().unwrap().trim().parse().unwrap();
    assert!(limit <= 20, "{spec} is too high to test here");
    let real = random_loopback();
    let c = client_at(real);
    let rid = format!("itest-forged-addr-{}", uuid::Uuid::new_v4().simple());
    for i in 0..limit {
        let forged = format!("10.{}.{}.{}:1", i, i + 1, i + 2);
        let headers = [
            ("spin-client-addr", forged.as_str()),
            (
                "x-request-id",
                if i == 0 { rid.as_str() } else { "itest-forged" },
            ),
        ];
        login_with(&c, &stack.base_url, &user.email, "wrong", &headers)
            .assert_problem(401, "invalid_credentials");
    }
    let r = login_with(
        &c,
        &stack.base_url,
        &user.email,
        "wrong",
        &[("spin-client-addr", "192.0.2.200:1")],
    );
    r.assert_problem(429, "rate_limited");
    assert!(policy_of(&r).contains("\"login-email-addr\""), "{r:?}");
    assert_eq!(audited_address(&rid), real.to_string());
}

/// Behind an ingress (`client_ip_source=x-forwarded-for:1`) the client is the rightmost
/// `X-Forwarded-For` entry, whatever the client put before it; IPv6 clients count per /64.
#[test]
fn client_ip_source_x_forwarded_for_trusts_only_the_proxys_entry() {
    let app = App::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_CLIENT_IP_SOURCE", "x-forwarded-for:1"),
            ("SPIN_VARIABLE_LOGIN_RATE_LIMIT_ADDRESS", "3/15m"),
            ("SPIN_VARIABLE_LOGIN_RATE_LIMIT_EMAIL", "100/15m"),
        ],
    );
    let seed = Stack::get().seed();
    let user = seed.tenants[0].user(0);
    let b = *uuid::Uuid::new_v4().as_bytes();
    let (hi, lo) = (
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]]),
    );
    let net = format!("2001:db8:{hi:x}:{lo:x}");
    // Three sprayed guesses from three addresses of one /64, each from its own connection and with
    // its own forged entries in front.
    for i in 1..=3 {
        let xff = format!("6.6.6.{i}, {net}::{i}");
        let stranger = format!("spray-{i}-{}@example.test", uuid::Uuid::new_v4().simple());
        login_with(
            &client(),
            &app.base_url,
            &stranger,
            "guess",
            &[("x-forwarded-for", &xff)],
        )
        .assert_problem(401, "invalid_credentials");
    }
    let same_64 = format!("{net}:ffff:ffff:ffff:9");
    let r = login_with(
        &client(),
        &app.base_url,
        &user.email,
        &user.password,
        &[("x-forwarded-for", &same_64)],
    );
    r.assert_problem(429, "rate_limited");
    assert!(policy_of(&r).contains("\"login-addr\""), "{r:?}");
    // Another /64 has its own budget; the audit row records the proxy's entry, not the forged one.
    let rid = format!("itest-xff-{}", uuid::Uuid::new_v4().simple());
    let elsewhere = format!("2001:db8:{hi:x}:{:x}::1", lo.wrapping_add(1));
    let r = login_with(
        &client(),
        &app.base_url,
        &user.email,
        "wrong",
        &[
            ("x-forwarded-for", &format!("203.0.113.250, {elsewhere}")),
            ("x-request-id", &rid),
        ],
    );
    r.assert_problem(401, "invalid_credentials");
    let audited: IpAddr = audited_address(&rid).parse().unwrap();
    assert_eq!(audited, elsewhere.parse::<IpAddr>().unwrap());
}

/// Behind an edge that sets `True-Client-IP` (`client_ip_source=true-client-ip`), that header is
/// the client's address.
#[test]
fn client_ip_source_true_client_ip_is_the_edges_header() {
    let app = App::start(
        "spin.toml",
        &[("SPIN_VARIABLE_CLIENT_IP_SOURCE", "true-client-ip")],
    );
    let seed = Stack::get().seed();
    let user = seed.tenants[0].user(0);
    let b = *uuid::Uuid::new_v4().as_bytes();
    let edge_says = format!("198.51.{}.{}", b[0], 1 + b[1] % 254);
    let rid = format!("itest-tcip-{}", uuid::Uuid::new_v4().simple());
    login_with(
        &client(),
        &app.base_url,
        &user.email,
        "wrong",
        &[
            ("true-client-ip", &edge_says),
            ("spin-client-addr", "10.9.9.9:1"),
            ("x-request-id", &rid),
        ],
    )
    .assert_problem(401, "invalid_credentials");
    assert_eq!(audited_address(&rid), edge_says);
    // Without the edge's header the address is unknown: never the connection's, never a guess.
    let rid = format!("itest-tcip-none-{}", uuid::Uuid::new_v4().simple());
    login_with(
        &client(),
        &app.base_url,
        &user.email,
        "wrong",
        &[("x-forwarded-for", "203.0.113.1"), ("x-request-id", &rid)],
    )
    .assert_problem(401, "invalid_credentials");
    assert_eq!(audited_address(&rid), "null");
}

/// The login limits have their own fail mode, closed by default: with Redis down a login is `503`
/// even where the per-user limit is configured to fail open.
#[test]
fn login_fails_closed_when_redis_is_down_whatever_the_api_fail_mode() {
    let seed = Stack::get().seed();
    let user = seed.tenants[0].user(0);
    let dead = format!("127.0.0.1:{}", free_port());
    let app = App::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_REDIS_HOST", dead.as_str()),
            ("SPIN_VARIABLE_RATE_LIMIT_FAIL_MODE", "open"),
        ],
    );
    for password in [user.password.as_str(), "wrong"] {
        let r = login_reply(&client(), &app.base_url, &user.email, password);
        r.assert_problem(503, "service_unavailable");
        let retry: u64 = r
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!(retry >= 1, "{r:?}");
        assert!(r.header("ratelimit").is_none(), "{r:?}");
    }
    assert!(app.log_text().contains("ratelimit_backend_down"));
    drop(app);
    // Opened on purpose, logins go on unlimited (and the failure is logged).
    let app = App::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_REDIS_HOST", dead.as_str()),
            ("SPIN_VARIABLE_LOGIN_RATE_LIMIT_FAIL_MODE", "open"),
        ],
    );
    assert_eq!(
        login_reply(&client(), &app.base_url, &user.email, &user.password).status,
        200
    );
    assert!(app.log_text().contains("ratelimit_backend_down"));
}

#[test]
fn failed_logins_are_limited_per_client_address() {
    // A private app with a tiny per-address budget, so the test needs only a few attempts.
    let app = App::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_LOGIN_RATE_LIMIT_ADDRESS", "3/15m"),
            ("SPIN_VARIABLE_LOGIN_RATE_LIMIT_EMAIL", "100/15m"),
        ],
    );
    let seed = Stack::get().seed();
    let user = seed.tenants[0].user(0);
    let c = client();
    for i in 0..3 {
        let stranger = format!("spray-{i}-{}@example.test", uuid::Uuid::new_v4().simple());
        login_reply(&c, &app.base_url, &stranger, "guess")
            .assert_problem(401, "invalid_credentials");
    }
    let r = login_reply(&c, &app.base_url, &user.email, &user.password);
    r.assert_problem(429, "rate_limited");
    assert!(
        r.header("ratelimit-policy")
            .unwrap()
            .contains("\"login-addr\""),
        "{r:?}"
    );
    assert!(r.header("retry-after").is_some());
    // The same credentials from another address work.
    assert_eq!(
        login_reply(&client(), &app.base_url, &user.email, &user.password).status,
        200
    );
}

#[test]
fn parallel_guesses_cannot_outrun_the_login_limits() {
    // Each attempt is counted before its password is checked: of 12 wrong passwords sent at once
    // for one email (each from its own address), exactly the 4 the budget allows are judged.
    let app = App::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_LOGIN_RATE_LIMIT_EMAIL", "4/15m"),
            ("SPIN_VARIABLE_LOGIN_RATE_LIMIT_ADDRESS", "100/15m"),
        ],
    );
    let seed = Stack::get().seed();
    let user = seed.tenants[0].user(0);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let guesses: Vec<_> = (0..12)
            .map(|i| {
                let (base, email) = (&app.base_url, &user.email);
                scope.spawn(move || {
                    login_reply(&client(), base, email, &format!("guess-{i}")).status
                })
            })
            .collect();
        guesses.into_iter().map(|g| g.join().unwrap()).collect()
    });
    let judged = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((judged, refused), (4, 8), "{statuses:?}");
    // Successes give their attempt back to the per-address budget: from one address with a budget
    // of 2, three good logins in a row all succeed, then two failures spend it.
    let app = App::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_LOGIN_RATE_LIMIT_ADDRESS", "2/15m"),
            ("SPIN_VARIABLE_LOGIN_RATE_LIMIT_EMAIL", "100/15m"),
        ],
    );
    let c = client();
    for _ in 0..3 {
        assert_eq!(
            login_reply(&c, &app.base_url, &user.email, &user.password).status,
            200
        );
    }
    for i in 0..2 {
        login_reply(&c, &app.base_url, &user.email, &format!("wrong-{i}"))
            .assert_problem(401, "invalid_credentials");
    }
    login_reply(&c, &app.base_url, &user.email, &user.password).assert_problem(429, "rate_limited");
}

fn refresh(c: &reqwest::blocking::Client, stack: &Stack, token: &str) -> Reply {
    send(
        c.post(stack.url("/api/v1/auth/refresh"))
            .json(&serde_json::json!({ "refreshToken": token })),
    )
}

fn audit_entries(
    c: &reqwest::blocking::Client,
    stack: &Stack,
    admin: &Tokens,
    query: &str,
) -> Value {
    let r = send(
        c.get(stack.url(&format!("/api/v1/audit-log{query}")))
            .bearer_auth(&admin.access),
    );
    assert_eq!(r.status, 200, "{r:?}");
    r.json()
}

#[test]
fn refresh_rotates_and_reuse_revokes_the_family() {
    let stack = Stack::get();
    let seed = stack.seed();
    let tenant = &seed.tenants[0];
    let user = tenant.user(0);
    let c = client();
    let first = login(&c, &stack.base_url, user);

    let second = Tokens::from_reply(&refresh(&c, stack, &first.refresh));
    assert_ne!(second.refresh, first.refresh, "rotated");
    assert_ne!(second.access, first.access);
    let me = send(
        c.get(stack.url("/api/v1/auth/me"))
            .bearer_auth(&second.access),
    );
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.json()["userId"], user.id);

    // The successor is used in turn: from now on `first` is no second tab's repeat, whatever the
    // grace window.
    let third = Tokens::from_reply(&refresh(&c, stack, &second.refresh));
    assert_ne!(third.refresh, second.refresh, "rotated again");

    // A second login is another family: it must survive the reuse below.
    let other_session = login(&c, &stack.base_url, user);

    // The rotated token again: reuse. Refused, and the whole family is revoked...
    refresh(&c, stack, &first.refresh).assert_problem(401, "invalid_token");
    // ...so the current token of that family stops working too.
    refresh(&c, stack, &third.refresh).assert_problem(401, "invalid_token");
    assert_eq!(
        refresh(&c, stack, &other_session.refresh).status,
        200,
        "other family untouched"
    );

    // Garbage and unknown tokens.
    refresh(&c, stack, "not-a-token").assert_problem(401, "invalid_token");
    refresh(&c, stack, &"A".repeat(43)).assert_problem(401, "invalid_token");
    send(
        c.post(stack.url("/api/v1/auth/refresh"))
            .json(&serde_json::json!({})),
    )
    .assert_problem(400, "bad_request");

    // The reuse is a security event in the tenant's audit log.
    let admin = login(&c, &stack.base_url, tenant.admin());
    let log = audit_entries(&c, stack, &admin, "?limit=200");
    let reuse: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.token_reuse")
        .collect();
    assert_eq!(reuse.len(), 1, "{log}");
    assert_eq!(reuse[0]["userId"], user.id);
    assert_eq!(reuse[0]["resourceType"], "refresh_token_family");
}

#[test]
fn logout_revokes_the_session_and_only_ones_own() {
    let stack = Stack::get();
    let seed = stack.seed();
    let tenant = &seed.tenants[0];
    let (alice, bob) = (tenant.user(0), tenant.user(1));
    let c = client();
    let a = login(&c, &stack.base_url, alice);
    let b = login(&c, &stack.base_url, bob);

    // Bob's refresh token in Alice's logout revokes nothing.
    let r = send(
        c.post(stack.url("/api/v1/auth/logout"))
            .bearer_auth(&a.access)
            .json(&serde_json::json!({ "refreshToken": b.refresh })),
    );
    assert_eq!(r.status, 204, "{r:?}");
    let b2 = Tokens::from_reply(&refresh(&c, stack, &b.refresh));
    // That logout ended the access token it came with, and only that one.
    send(c.get(stack.url("/api/v1/auth/me")).bearer_auth(&a.access))
        .assert_problem(401, "invalid_token");
    let a2 = login(&c, &stack.base_url, alice);
    assert_eq!(
        send(c.get(stack.url("/api/v1/auth/me")).bearer_auth(&a2.access)).status,
        200
    );

    let r = send(
        c.post(stack.url("/api/v1/auth/logout"))
            .bearer_auth(&a2.access)
            .header("x-request-id", "itest-logout")
            .json(&serde_json::json!({ "refreshToken": a.refresh })),
    );
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("x-request-id"), Some("itest-logout"));
    refresh(&c, stack, &a.refresh).assert_problem(401, "invalid_token");

    // No body is fine; no token is not.
    let r = send(
        c.post(stack.url("/api/v1/auth/logout"))
            .bearer_auth(&b2.access),
    );
    assert_eq!(r.status, 204, "{r:?}");
    let r = send(c.post(stack.url("/api/v1/auth/logout")));
    r.assert_problem(401, "invalid_token");
    assert!(
        r.header("www-authenticate").unwrap().starts_with("Bearer"),
        "{r:?}"
    );

    let admin = login(&c, &stack.base_url, tenant.admin());
    let log = audit_entries(&c, stack, &admin, "?limit=200");
    let logouts = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.logout" && e["userId"] == alice.id.as_str())
        .count();
    assert_eq!(logouts, 2, "{log}");
}

#[test]
fn audit_log_is_admin_only_newest_first_paged_and_tenant_scoped() {
    let stack = Stack::get();
    let seed = stack.seed();
    let (ta, tb) = (&seed.tenants[0], &seed.tenants[1]);
    let user = ta.user(0);
    let c = client();

    login_reply(&c, &stack.base_url, &user.email, "wrong")
        .assert_problem(401, "invalid_credentials");
    let u = login(&c, &stack.base_url, user);
    let r = send(c.get(stack.url("/api/v1/audit-log")).bearer_auth(&u.access));
    r.assert_problem(403, "forbidden");
    assert!(
        r.header("ratelimit").is_some(),
        "rate limit headers on a 403 too: {r:?}"
    );

    let admin = login(&c, &stack.base_url, ta.admin());
    let all = audit_entries(&c, stack, &admin, "?limit=200");
    assert!(all["nextBefore"].is_null(), "{all}");
    let entries = all["entries"].as_array().unwrap();
    let has = |action: &str, uid: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && e["userId"] == uid)
            .unwrap_or_else(|| panic!("no {action} for {uid} in {all}"))
    };
    assert_eq!(
        has("auth.login_failed", &user.id)["details"]["reason"],
        "wrong_password"
    );
    has("auth.login", &user.id);
    has("auth.login", &ta.admin().id);
    let forbidden = has("auth.forbidden", &user.id);
    assert_eq!(forbidden["resourceId"], "GET /api/v1/audit-log");
    assert!(
        forbidden["clientAddr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.")),
        "{forbidden}"
    );

    // Only this tenant's users, newest first.
    let ids: Vec<&str> = ta.users.iter().map(|u| u.id.as_str()).collect();
    for e in entries {
        assert!(
            ids.contains(&e["userId"].as_str().unwrap_or("")),
            "foreign row {e}"
        );
    }
    let keys: Vec<(i64, i64)> = entries
        .iter()
        .map(|e| (e["createdAt"].as_i64().unwrap(), e["id"].as_i64().unwrap()))
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {keys:?}"
    );

    // Pages of 2 walk the same list.
    let mut walked = Vec::new();
    let mut query = String::from("?limit=2");
    loop {
        let page = audit_entries(&c, stack, &admin, &query);
        let got = page["entries"].as_array().unwrap();
        assert!(got.len() <= 2);
        walked.extend(got.iter().map(|e| e["id"].as_i64().unwrap()));
        match page["nextBefore"].as_str() {
            Some(cursor) => query = format!("?limit=2&before={cursor}"),
            None => break,
        }
        assert!(walked.len() <= keys.len(), "paging does not end");
    }
    // Rows written after the full listing (the listing itself writes none) could only be newer.
    assert_eq!(walked, keys.iter().map(|k| k.1).collect::<Vec<_>>());

    for bad in [
        "?limit=0",
        "?limit=201",
        "?limit=x",
        "?before=abc",
        "?before=1_",
    ] {
        let r = send(
            c.get(stack.url(&format!("/api/v1/audit-log{bad}")))
                .bearer_auth(&admin.access),
        );
        r.assert_problem(400, "bad_request");
    }

    // The other tenant's admin sees none of it.
    let admin_b = login(&c, &stack.base_url, tb.admin());
    let other = audit_entries(&c, stack, &admin_b, "?limit=200");
    for e in other["entries"].as_array().unwrap() {
        assert!(
            !ids.contains(&e["userId"].as_str().unwrap_or("")),
            "tenant A row in B's log: {e}"
        );
    }
}

/// `GET /api/v1/auth/me` with `access`: its status.
fn me_status(c: &reqwest::blocking::Client, stack: &Stack, access: &str) -> u16 {
    send(c.get(stack.url("/api/v1/auth/me")).bearer_auth(access)).status
}

/// A revocation mark covers every token issued up to its second; a new login must come after it.
fn next_second() {
    std::thread::sleep(std::time::Duration::from_millis(
        1_000 - (now_ms() % 1_000) as u64 + 50,
    ));
}

/// Runs the operator's `users` tool against the stack; its JSON output.
#[track_caller]
fn users_tool(stack: &Stack, args: &[&str]) -> Value {
    let mut cmd =
        std::process::Command::new(integration_tests::root().join("target/release/users"));
    if let Some(url) = &stack.database_admin_url {
        cmd.args(["--database-url", url]);
    }
    if let Some(url) = stack.var("REDIS_URL") {
        cmd.args(["--redis-url", url]);
    }
    let out = cmd
        .args(args)
        .output()
        .expect("running target/release/users");
    assert!(
        out.status.success(),
        "users {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("users prints JSON")
}

#[test]
fn logout_ends_the_access_token_at_once_and_only_that_one() {
    let stack = Stack::get();
    let seed = stack.seed();
    let user = seed.tenants[0].user(0);
    let c = client();
    let a = login(&c, &stack.base_url, user);
    let b = login(&c, &stack.base_url, user);
    assert_eq!(me_status(&c, stack, &a.access), 200);

    let r = send(
        c.post(stack.url("/api/v1/auth/logout"))
            .bearer_auth(&a.access),
    );
    assert_eq!(r.status, 204, "{r:?}");
    // The logged-out access token is dead before its exp, on every route behind the middleware.
    let r = send(c.get(stack.url("/api/v1/auth/me")).bearer_auth(&a.access));
    r.assert_problem(401, "invalid_token");
    assert!(r.header("www-authenticate").is_some(), "{r:?}");
    let message = &seed.tenants[0].message_of(user, 0).id;
    let r = send(
        c.get(stack.url(&format!("/api/v1/emails/{message}/attachments")))
            .bearer_auth(&a.access),
    );
    assert_eq!(r.status, 401, "{r:?}");
    let r = send(
        c.get(stack.url(&format!("/api/v1/emails/{message}/attachments")))
            .bearer_auth(&b.access),
    );
    assert_eq!(r.status, 200, "{r:?}");
    // The other session of the same user goes on.
    assert_eq!(me_status(&c, stack, &b.access), 200);
    assert_eq!(refresh(&c, stack, &b.refresh).status, 200);
}

#[test]
fn logout_everywhere_ends_every_session_of_the_user_only() {
    let stack = Stack::get();
    let seed = stack.seed();
    let tenant = &seed.tenants[0];
    let (alice, bob) = (tenant.user(0), tenant.user(1));
    let c = client();
    let laptop = login(&c, &stack.base_url, alice);
    let phone = login(&c, &stack.base_url, alice);
    let colleague = login(&c, &stack.base_url, bob);

    let r = send(
        c.post(stack.url("/api/v1/auth/logout"))
            .bearer_auth(&laptop.access)
            .json(&serde_json::json!({ "allSessions": true })),
    );
    assert_eq!(r.status, 204, "{r:?}");
    for s in [&laptop, &phone] {
        assert_eq!(me_status(&c, stack, &s.access), 401);
        refresh(&c, stack, &s.refresh).assert_problem(401, "invalid_token");
    }
    assert_eq!(me_status(&c, stack, &colleague.access), 200);
    assert_eq!(refresh(&c, stack, &colleague.refresh).status, 200);

    // Logging in again starts afresh.
    next_second();
    let again = login(&c, &stack.base_url, alice);
    assert_eq!(me_status(&c, stack, &again.access), 200);

    // A logout body of the wrong shape is refused.
    send(
        c.post(stack.url("/api/v1/auth/logout"))
            .bearer_auth(&again.access)
            .json(&serde_json::json!({ "allSessions": "yes" })),
    )
    .assert_problem(400, "bad_request");
}

#[test]
fn deactivation_and_a_role_change_end_access_tokens_at_once() {
    let stack = Stack::get();
    let seed = stack.seed();
    let tenant = &seed.tenants[0];
    let (user, admin) = (tenant.user(0), tenant.admin());
    let c = client();

    // Deactivated: the access token, the refresh token and the password all stop working.
    let s = login(&c, &stack.base_url, user);
    let out = users_tool(stack, &["--email", &user.email, "--deactivate"]);
    assert_eq!(out["active"], false, "{out}");
    assert_eq!(out["sessionsEnded"], true, "{out}");
    assert_eq!(me_status(&c, stack, &s.access), 401);
    refresh(&c, stack, &s.refresh).assert_problem(401, "invalid_token");
    login_reply(&c, &stack.base_url, &user.email, &user.password)
        .assert_problem(401, "invalid_credentials");
    users_tool(stack, &["--email", &user.email, "--activate"]);
    next_second();
    let back = login(&c, &stack.base_url, user);
    assert_eq!(me_status(&c, stack, &back.access), 200);

    // Demoted: the admin token that still says `admin` stops working; a new one says `user`.
    let a = login(&c, &stack.base_url, admin);
    let audit = |t: &Tokens| send(c.get(stack.url("/api/v1/audit-log")).bearer_auth(&t.access));
    assert_eq!(audit(&a).status, 200);
    let out = users_tool(stack, &["--email", &admin.email, "--role", "user"]);
    assert_eq!(out["role"], "user", "{out}");
    audit(&a).assert_problem(401, "invalid_token");
    next_second();
    let demoted = login(&c, &stack.base_url, admin);
    audit(&demoted).assert_problem(403, "forbidden");

    // Re-activating an active user ends nothing.
    let out = users_tool(stack, &["--email", &user.email, "--activate"]);
    assert_eq!(out["sessionsEnded"], false, "{out}");
    assert_eq!(me_status(&c, stack, &back.access), 200);
}

#[test]
fn two_tabs_refreshing_with_the_same_token_both_stay_logged_in() {
    let stack = Stack::get();
    let seed = stack.seed();
    let user = seed.tenants[0].user(0);
    let c = client();
    let first = login(&c, &stack.base_url, user);

    // Both tabs at once: both succeed, with the same next refresh token.
    let (tab1, tab2) = std::thread::scope(|s| {
        let t1 = s.spawn(|| refresh(&client(), stack, &first.refresh));
        let t2 = s.spawn(|| refresh(&client(), stack, &first.refresh));
        (t1.join().unwrap(), t2.join().unwrap())
    });
    let (tab1, tab2) = (Tokens::from_reply(&tab1), Tokens::from_reply(&tab2));
    assert_eq!(tab1.refresh, tab2.refresh, "one successor, one chain");
    assert_ne!(tab1.refresh, first.refresh);
    assert_eq!(me_status(&c, stack, &tab1.access), 200);
    assert_eq!(me_status(&c, stack, &tab2.access), 200);

    // The chain goes on from the shared successor...
    let next = Tokens::from_reply(&refresh(&c, stack, &tab1.refresh));
    // ...and the first token, whose successor has moved on, is reuse: the family ends.
    refresh(&c, stack, &first.refresh).assert_problem(401, "invalid_token");
    refresh(&c, stack, &next.refresh).assert_problem(401, "invalid_token");
}

#[test]
fn a_login_ends_at_its_absolute_lifetime_however_often_refreshed() {
    let stack = Stack::get();
    let seed = stack.seed();
    let user = seed.tenants[0].user(0);
    let c = client();
    let first = login(&c, &stack.base_url, user);
    let max: i64 = stack
        .spin_var("auth_refresh_family_max_secs", "7776000")
        .parse()
        .unwrap();
    let r = Tokens::from_reply(&refresh(&c, stack, &first.refresh));
    let left = r.body["refreshExpiresIn"].as_i64().unwrap();
    assert!(left <= max, "{}", r.body);

    // The login happened longer ago than the lifetime (moved back in the database, as time would).
    integration_tests::psql(&format!(
        "UPDATE refresh_tokens SET family_started_at = family_started_at - {}::bigint * 1000 - 60000 \
         WHERE user_id = {}",
        max,
        integration_tests::sql_str(&user.id)
    ));
    refresh(&c, stack, &r.refresh).assert_problem(401, "invalid_token");
    // Not reuse: a new login works and its family is fresh.
    let again = login(&c, &stack.base_url, user);
    assert_eq!(refresh(&c, stack, &again.refresh).status, 200);
}
