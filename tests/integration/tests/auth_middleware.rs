//! The auth middleware over HTTP: token verification failures, the per-user rate limit
//! (the request after the quota is 429, exact under concurrency, the window resets), CORS
//! preflights, spoofed identity headers, inner routes mounted without the middleware, and Redis
//! down (fail open / fail closed).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use auth_core::claims::AccessClaims;
use auth_core::{AuthContext, ContextKey, Issuer, KeyRing, Role, TenantId, UserId};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use integration_tests::now_s;
use integration_tests::{
    App, Stack, User, client, free_port, login, login_reply, parse_policy, parse_remaining, send,
};

/// The signing ring the stack runs with (from its SPIN_VARIABLE_AUTH_SIGNING_KEYS).
fn signing_ring(stack: &Stack) -> KeyRing {
    let json = stack.var("SPIN_VARIABLE_AUTH_SIGNING_KEYS").expect(
        "SPIN_VARIABLE_AUTH_SIGNING_KEYS must be in the environment (scripts/test exports it)",
    );
    KeyRing::from_json(json).expect("signing ring")
}

fn issuer_name(stack: &Stack) -> String {
    stack.spin_var("auth_issuer", "attachments-auth").to_owned()
}

fn audience(stack: &Stack) -> String {
    stack
        .spin_var("auth_audience", "attachments-api")
        .to_owned()
}

fn ids(user: &User, tenant: &str) -> (UserId, TenantId, Role) {
    (
        UserId::parse(&user.id).unwrap(),
        TenantId::parse(tenant).unwrap(),
        user.role.parse().unwrap(),
    )
}

/// A compact JWS with this header and claims and any signature bytes.
fn raw_jwt(header: &serde_json::Value, claims: &serde_json::Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string()),
        B64.encode(sig)
    )
}

#[test]
fn every_unacceptable_token_is_401_with_www_authenticate() {
    let stack = Stack::get();
    let seed = stack.seed();
    let tenant = &seed.tenants[0];
    let user = tenant.user(0);
    let (uid, tid, role) = ids(user, &tenant.id);
    let c = client();
    let good = login(&c, &stack.base_url, user).access;
    let ring = signing_ring(stack);
    let now = now_s();
    let kid = integration_tests::jwt_header(&good)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let claims = serde_json::json!({
        "iss": issuer_name(stack), "aud": audience(stack), "sub": user.id, "tid": tenant.id,
        "role": "admin", "iat": now, "nbf": now, "exp": now + 600, "jti": "forged-1"
    });
    let issued = |iss: &str, aud: &str, at: i64, ttl: i64, ring: &KeyRing| {
        Issuer::new(ring, iss, aud)
            .unwrap()
            .with_ttl(ttl)
            .unwrap()
            .issue(uid, tid, role, at)
            .unwrap()
            .token
    };
    // HS256 keyed with the published public key: the classic algorithm-confusion forgery.
    let x = ring.get(&kid).unwrap().public_jwk()["x"]
        .as_str()
        .unwrap()
        .to_owned();
    let hs_header = serde_json::json!({ "alg": "HS256", "kid": kid, "typ": "at+jwt" });
    let hs_signing_input = format!(
        "{}.{}",
        B64.encode(hs_header.to_string()),
        B64.encode(claims.to_string())
    );
    let hs_sig = {
        use hmac::{KeyInit, Mac};
        let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(x.as_bytes()).unwrap();
        m.update(hs_signing_input.as_bytes());
        m.finalize().into_bytes().to_vec()
    };
    let mut tampered = good.clone().into_bytes();
    let mid = good.find('.').unwrap() + 5;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };

    let cases: Vec<(&str, String, &str)> = vec![
        ("garbage", "Bearer not.a.jwt".into(), "invalid_token"),
        (
            "truncated",
            format!("Bearer {}", &good[..good.len() - 10]),
            "invalid_token",
        ),
        (
            "tampered payload",
            format!("Bearer {}", String::from_utf8(tampered).unwrap()),
            "invalid_token",
        ),
        (
            "alg none",
            format!(
                "Bearer {}",
                raw_jwt(
                    &serde_json::json!({"alg":"none","kid":kid,"typ":"at+jwt"}),
                    &claims,
                    b""
                )
            ),
            "invalid_token",
        ),
        (
            "HS256 with the public key",
            format!("Bearer {hs_signing_input}.{}", B64.encode(hs_sig)),
            "invalid_token",
        ),
        (
            "expired",
            format!(
                "Bearer {}",
                issued(&issuer_name(stack), &audience(stack), now - 3600, 60, &ring)
            ),
            "token_expired",
        ),
        (
            "not yet valid",
            format!(
                "Bearer {}",
                issued(
                    &issuer_name(stack),
                    &audience(stack),
                    now + 3600,
                    600,
                    &ring
                )
            ),
            "invalid_token",
        ),
        (
            "wrong audience",
            format!(
                "Bearer {}",
                issued(&issuer_name(stack), "someone-else", now, 600, &ring)
            ),
            "invalid_token",
        ),
        (
            "wrong issuer",
            format!(
                "Bearer {}",
                issued("evil-issuer", &audience(stack), now, 600, &ring)
            ),
            "invalid_token",
        ),
        (
            "unknown kid",
            format!(
                "Bearer {}",
                issued(
                    &issuer_name(stack),
                    &audience(stack),
                    now,
                    600,
                    &KeyRing::generate("not-ours").unwrap()
                )
            ),
            "invalid_token",
        ),
        (
            "huge",
            format!("Bearer {}", "a".repeat(20_000)),
            "invalid_token",
        ),
        (
            "other scheme",
            format!("Basic {}", B64.encode("u:p")),
            "invalid_token",
        ),
    ];
    for (name, authorization, code) in cases {
        let r = send(
            c.get(stack.url("/api/v1/auth/me"))
                .header("authorization", authorization),
        );
        r.assert_problem(401, code);
        let www = r
            .header("www-authenticate")
            .unwrap_or_else(|| panic!("{name}: no WWW-Authenticate"));
        assert!(www.starts_with("Bearer"), "{name}: {www}");
        if name != "other scheme" {
            assert!(www.contains("error=\"invalid_token\""), "{name}: {www}");
        }
        assert!(
            r.header("ratelimit").is_none(),
            "{name}: no user, no per-user limit headers"
        );
    }
    let r = send(c.get(stack.url("/api/v1/auth/me")));
    r.assert_problem(401, "invalid_token");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|w| w.starts_with("Bearer"))
    );
    // Two Authorization headers: refused rather than guessing.
    let r = send(
        c.get(stack.url("/api/v1/auth/me"))
            .header("authorization", format!("Bearer {good}"))
            .header("authorization", "Bearer other"),
    );
    r.assert_problem(401, "invalid_token");
    // And the genuine token works.
    assert_eq!(
        send(c.get(stack.url("/api/v1/auth/me")).bearer_auth(&good)).status,
        200
    );
}

#[test]
fn the_request_after_the_quota_is_429_and_the_window_resets() {
    let stack = Stack::get();
    let seed = stack.seed();
    let user = seed.tenants[0].user(0);
    let c = client();
    let t = login(&c, &stack.base_url, user);
    let me = || send(c.get(stack.url("/api/v1/auth/me")).bearer_auth(&t.access));

    let started = Instant::now();
    let first = me();
    assert_eq!(first.status, 200, "{first:?}");
    let policy = first
        .header("ratelimit-policy")
        .expect("RateLimit-Policy")
        .to_owned();
    let (quota, window) = parse_policy(&policy);
    assert!(policy.starts_with("\"user\""), "{policy}");
    assert_eq!(
        parse_remaining(first.header("ratelimit").unwrap()),
        quota - 1
    );
    for i in 2..=quota {
        let r = me();
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        assert_eq!(
            parse_remaining(r.header("ratelimit").unwrap()),
            quota - i,
            "request {i}"
        );
    }
    let over = me();
    assert!(
        started.elapsed() < Duration::from_secs(window),
        "{quota} requests took {:?}, longer than the {window}s window: cannot test the limit",
        started.elapsed()
    );
    over.assert_problem(429, "rate_limited");
    assert_eq!(over.header("ratelimit-policy"), Some(policy.as_str()));
    assert_eq!(parse_remaining(over.header("ratelimit").unwrap()), 0);
    let retry: u64 = over
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(
        (1..=window).contains(&retry),
        "Retry-After {retry} for a {window}s window"
    );

    // Once the window has passed, the quota is back.
    std::thread::sleep(Duration::from_millis(retry * 1000 + 300));
    let again = me();
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(
        parse_remaining(again.header("ratelimit").unwrap()),
        quota - 1
    );
}

#[test]
fn the_limit_is_exact_under_concurrent_requests() {
    let stack = Stack::get();
    let seed = stack.seed();
    let user = seed.tenants[1].user(0);
    let t = login(&client(), &stack.base_url, user);
    // Learn the quota without spending it on this user.
    let probe_user = seed.tenants[1].user(1);
    let probe = login(&client(), &stack.base_url, probe_user);
    let r = send(
        client()
            .get(stack.url("/api/v1/auth/me"))
            .bearer_auth(&probe.access),
    );
    let (quota, window) = parse_policy(r.header("ratelimit-policy").expect("RateLimit-Policy"));

    let extra = 10usize;
    let total = quota as usize + extra;
    let next = AtomicUsize::new(0);
    let ok = AtomicUsize::new(0);
    let limited = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let c = client();
                while next.fetch_add(1, Ordering::SeqCst) < total {
                    let r = send(c.get(stack.url("/api/v1/auth/me")).bearer_auth(&t.access));
                    match r.status {
                        200 => ok.fetch_add(1, Ordering::SeqCst),
                        429 => limited.fetch_add(1, Ordering::SeqCst),
                        other => panic!("unexpected {other}: {r:?}"),
                    };
                }
            });
        }
    });
    assert!(
        started.elapsed() < Duration::from_secs(window),
        "took {:?}, longer than the {window}s window",
        started.elapsed()
    );
    assert_eq!(
        ok.load(Ordering::SeqCst),
        quota as usize,
        "exactly the quota is served"
    );
    assert_eq!(limited.load(Ordering::SeqCst), extra);
}

#[test]
fn cors_preflight_and_response_headers_for_configured_origins_only() {
    let allowed = "https://mail.example.test";
    let app = App::start(
        "spin.toml",
        &[(
            "SPIN_VARIABLE_CORS_ORIGINS",
            "https://mail.example.test, http://localhost:5173",
        )],
    );
    let stack = Stack::get();
    let seed = stack.seed();
    let c = client();
    let t = login(&c, &app.base_url, seed.tenants[0].user(0));
    let url = |p: &str| format!("{}{p}", app.base_url);

    let pre = send(
        c.request(reqwest::Method::OPTIONS, url("/api/v1/auth/me"))
            .header("origin", allowed)
            .header("access-control-request-method", "GET")
            .header(
                "access-control-request-headers",
                "authorization, x-request-id",
            ),
    );
    assert_eq!(pre.status, 204, "{pre:?}");
    assert_eq!(pre.header("access-control-allow-origin"), Some(allowed));
    assert!(
        pre.header("access-control-allow-methods")
            .unwrap()
            .contains("GET"),
        "{pre:?}"
    );
    assert!(
        pre.header("access-control-allow-headers")
            .unwrap()
            .contains("authorization"),
        "{pre:?}"
    );
    assert!(pre.header("vary").unwrap().contains("Origin"), "{pre:?}");
    assert!(pre.header("access-control-allow-credentials").is_none());
    assert!(pre.header("x-request-id").is_some());

    for (origin, method) in [
        ("https://evil.example.test", "GET"),
        ("https://mail.example.test.evil.test", "GET"),
        ("null", "GET"),
        (allowed, "PUT"),
    ] {
        let r = send(
            c.request(reqwest::Method::OPTIONS, url("/api/v1/auth/me"))
                .header("origin", origin)
                .header("access-control-request-method", method),
        );
        r.assert_problem(403, "origin_not_allowed");
        assert!(
            r.header("access-control-allow-origin").is_none(),
            "{origin} {method}: {r:?}"
        );
        assert!(r.header("vary").unwrap().contains("Origin"));
    }

    // The login route is public (no middleware): it answers its own preflight.
    let pre = send(
        c.request(reqwest::Method::OPTIONS, url("/api/v1/auth/token"))
            .header("origin", "http://localhost:5173")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type"),
    );
    assert_eq!(pre.status, 204, "{pre:?}");
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("http://localhost:5173")
    );
    let pre = send(
        c.request(reqwest::Method::OPTIONS, url("/api/v1/auth/token"))
            .header("origin", "https://evil.example.test")
            .header("access-control-request-method", "POST"),
    );
    pre.assert_problem(403, "origin_not_allowed");

    // Actual requests: allowed origin gets Allow-Origin and the exposed headers; others only Vary.
    let r = send(
        c.get(url("/api/v1/auth/me"))
            .bearer_auth(&t.access)
            .header("origin", allowed),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(allowed));
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "etag",
        "content-disposition",
        "ratelimit",
        "ratelimit-policy",
        "retry-after",
        "x-request-id",
    ] {
        assert!(
            exposed.split(", ").any(|e| e == h),
            "{h} not exposed: {exposed}"
        );
    }
    assert!(r.header("vary").unwrap().contains("Origin"));
    let r = send(
        c.get(url("/api/v1/auth/me"))
            .bearer_auth(&t.access)
            .header("origin", "https://evil.example.test"),
    );
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none(), "{r:?}");
    assert!(r.header("vary").unwrap().contains("Origin"), "{r:?}");
    // Errors are readable by an allowed page too.
    let r = send(c.get(url("/api/v1/auth/me")).header("origin", allowed));
    r.assert_problem(401, "invalid_token");
    assert_eq!(r.header("access-control-allow-origin"), Some(allowed));
    let r = login_reply(&c, &app.base_url, "x@example.test", "nope");
    assert!(r.header("vary").unwrap_or("").contains("Origin"), "{r:?}");
}

/// A context MAC'd with the stack's real context key (as if it leaked from inside), claiming
/// admin of another tenant.
fn genuine_admin_context(stack: &Stack, user: &User) -> String {
    let key = ContextKey::from_config(
        stack
            .var("SPIN_VARIABLE_AUTH_CONTEXT_KEY")
            .expect("SPIN_VARIABLE_AUTH_CONTEXT_KEY must be in the environment"),
    )
    .unwrap();
    forged_context(&key, user)
}

fn forged_context(key: &ContextKey, user: &User) -> String {
    let now = now_s();
    let claims = AccessClaims {
        user: UserId::parse(&user.id).unwrap(),
        tenant: TenantId::parse(&uuid::Uuid::new_v4().to_string()).unwrap(),
        role: Role::Admin,
        jti: "spoofed".into(),
        issued_at: now,
        not_before: now,
        expires_at: now + 600,
        kid: "x".into(),
    };
    AuthContext::from_claims(&claims, "spoofed-rid", now).to_header_value(key)
}

#[test]
fn spoofed_identity_headers_are_ignored() {
    let stack = Stack::get();
    let seed = stack.seed();
    let tenant = &seed.tenants[0];
    let user = tenant.user(0);
    let c = client();
    let t = login(&c, &stack.base_url, user);
    let spoof = |rb: reqwest::blocking::RequestBuilder| {
        rb.header("x-auth-context", genuine_admin_context(stack, user))
            .header("X-Auth-User", seed.tenants[1].admin().id.as_str())
            .header("x-auth-tenant", seed.tenants[1].id.as_str())
            .header("x-auth-role", "admin")
    };
    let me = send(spoof(
        c.get(stack.url("/api/v1/auth/me")).bearer_auth(&t.access),
    ));
    assert_eq!(me.status, 200, "{me:?}");
    let v = me.json();
    assert_eq!(v["userId"], user.id);
    assert_eq!(
        v["tenantId"], tenant.id,
        "the token's tenant, not the spoofed one"
    );
    assert_eq!(v["role"], "user");
    send(spoof(
        c.get(stack.url("/api/v1/audit-log")).bearer_auth(&t.access),
    ))
    .assert_problem(403, "forbidden");
    // Without a token, a (even genuinely MAC'd) context header does not authenticate.
    send(spoof(c.get(stack.url("/api/v1/auth/me")))).assert_problem(401, "invalid_token");
}

#[test]
fn inner_routes_mounted_without_the_middleware_are_not_authenticated() {
    let stack = Stack::get();
    let seed = stack.seed();
    let tenant = &seed.tenants[0];
    let c = client();
    let user = login(&c, &stack.base_url, tenant.user(0));
    let admin = login(&c, &stack.base_url, tenant.admin());
    // The same tokens are fine through the middleware...
    assert_eq!(
        send(
            c.get(stack.url("/api/v1/auth/me"))
                .bearer_auth(&user.access)
        )
        .status,
        200
    );

    // ...but not where the middleware is missing.
    let bare = App::start("tests/auth/spin.toml", &[]);
    let url = |p: &str| format!("{}{p}", bare.base_url);
    let other_key = ContextKey::generate().unwrap();
    let attempts = [
        send(c.get(url("/api/v1/auth/me")).bearer_auth(&user.access)),
        send(
            c.get(url("/api/v1/auth/me"))
                .bearer_auth(&user.access)
                .header("x-auth-context", forged_context(&other_key, tenant.user(0)))
                .header("x-auth-user", tenant.user(0).id.as_str())
                .header("x-auth-tenant", tenant.id.as_str())
                .header("x-auth-role", "admin"),
        ),
        send(c.get(url("/api/v1/audit-log")).bearer_auth(&admin.access)),
        send(
            c.post(url("/api/v1/auth/logout"))
                .bearer_auth(&user.access)
                .json(&serde_json::json!({ "refreshToken": user.refresh })),
        ),
    ];
    for r in &attempts {
        r.assert_problem(401, "invalid_token");
        assert!(r.header("www-authenticate").is_some(), "{r:?}");
    }
    // The failed logout revoked nothing.
    let r = send(
        c.post(stack.url("/api/v1/auth/refresh"))
            .json(&serde_json::json!({ "refreshToken": user.refresh })),
    );
    assert_eq!(r.status, 200, "{r:?}");
}

/// The per-user count lives in Redis, so it survives the runner: a user's requests counted by one
/// runner process go on being counted by the next. Each request's log line names its user and tenant.
#[test]
fn the_count_survives_a_runner_restart_and_log_lines_name_the_caller() {
    let stack = Stack::get();
    let seed = stack.seed();
    let tenant = &seed.tenants[1];
    let user = tenant.user(0);
    let limits = [("SPIN_VARIABLE_RATE_LIMIT", "10/15m")];
    let c = client();
    let remaining_after = |app: &App, token: &str| {
        let r = send(
            c.get(format!("{}/api/v1/auth/me", app.base_url))
                .bearer_auth(token),
        );
        assert_eq!(r.status, 200, "{r:?}");
        parse_remaining(r.header("ratelimit").expect("RateLimit"))
    };
    let first = App::start("spin.toml", &limits);
    let t = login(&c, &first.base_url, user);
    let seen: Vec<u64> = (0..3).map(|_| remaining_after(&first, &t.access)).collect();
    assert_eq!(seen, [9, 8, 7]);
    let line = first
        .log_text()
        .lines()
        .find(|l| l.contains("\"component\":\"auth-middleware\"") && l.contains("/api/v1/auth/me"))
        .map(str::to_owned)
        .expect("a request log line of the middleware");
    let logged: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    assert_eq!(logged["userId"], user.id.as_str(), "{line}");
    assert_eq!(logged["tenantId"], tenant.id.as_str(), "{line}");
    assert_eq!(logged["status"], 200, "{line}");
    drop(first);
    let second = App::start("spin.toml", &limits);
    assert_eq!(
        remaining_after(&second, &t.access),
        6,
        "counted on from Redis"
    );
}

#[test]
fn redis_down_fails_open_when_configured_open() {
    let stack = Stack::get();
    let seed = stack.seed();
    let user = seed.tenants[0].user(0);
    let c = client();
    // Logged in where Redis is up: the login limits fail closed on their own (auth_tokens.rs).
    let t = login(&c, &stack.base_url, user);
    let dead = format!("127.0.0.1:{}", free_port());
    let app = App::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_REDIS_HOST", dead.as_str()),
            ("SPIN_VARIABLE_RATE_LIMIT_FAIL_MODE", "open"),
        ],
    );
    let r = send(
        c.get(format!("{}/api/v1/auth/me", app.base_url))
            .bearer_auth(&t.access),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.header("ratelimit").is_none(),
        "nothing was counted: {r:?}"
    );
    assert!(
        app.log_text().contains("ratelimit_backend_down"),
        "the failure is logged"
    );
}

#[test]
fn redis_down_fails_closed_with_503_when_configured_closed() {
    let stack = Stack::get();
    let seed = stack.seed();
    let user = seed.tenants[0].user(0);
    let c = client();
    let t = login(&c, &stack.base_url, user);
    let dead = format!("127.0.0.1:{}", free_port());
    let app = App::start(
        "spin.toml",
        &[
            ("SPIN_VARIABLE_REDIS_HOST", dead.as_str()),
            ("SPIN_VARIABLE_RATE_LIMIT_FAIL_MODE", "closed"),
        ],
    );
    let r = send(
        c.get(format!("{}/api/v1/auth/me", app.base_url))
            .bearer_auth(&t.access),
    );
    r.assert_problem(503, "service_unavailable");
    assert!(r.header("retry-after").is_some(), "{r:?}");
    let r = login_reply(&c, &app.base_url, &user.email, &user.password);
    r.assert_problem(503, "service_unavailable");
    assert!(app.log_text().contains("ratelimit_backend_down"));
}
