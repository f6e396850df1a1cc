//! Where the service and openapi.yaml must say the same thing (what Schemathesis checks, pinned here
//! as plain requests): a plain `OPTIONS` on every route, the one rule of JSON request bodies, the exact
//! `Repr-Digest` grammar, the health check's `Content-Type`, and `x-request-id` never refused.

use base64::Engine as _;
use integration_tests::{Reply, Stack, client, login, login_reply, send};
use reqwest::Method;
use reqwest::blocking::Client;
use reqwest::header::HeaderValue;
use serde_json::json;
use sha2::{Digest, Sha256};

const NOT_A_UUID: &str = "not-a-uuid";

fn url(path: &str) -> String {
    Stack::get().url(path)
}

/// A fresh user with a token and one of their messages.
struct Caller {
    c: Client,
    token: String,
    message: String,
    email: String,
    password: String,
}

fn caller() -> Caller {
    let seed = Stack::get().seed();
    let tenant = &seed.tenants[0];
    let user = tenant.user(0);
    let c = client();
    let t = login(&c, &Stack::get().base_url, user);
    Caller {
        message: tenant.message_of(user, 0).id.clone(),
        c,
        token: t.access,
        email: user.email.clone(),
        password: user.password.clone(),
    }
}

impl Caller {
    fn upload(&self, name: &str, body: &[u8], digest: Option<HeaderValue>) -> Reply {
        let mut rb = self
            .c
            .post(url(&format!(
                "/api/v1/emails/{}/attachments?filename={name}",
                self.message
            )))
            .bearer_auth(&self.token)
            .header("content-type", "application/octet-stream");
        if let Some(d) = digest {
            rb = rb.header("repr-digest", d);
        }
        send(rb.body(body.to_vec()))
    }
}

#[test]
fn a_plain_options_is_204_with_allow_on_every_route_without_a_token() {
    let id = uuid::Uuid::new_v4();
    let c = client();
    for (path, allow) in [
        ("/api/v1/auth/me".to_owned(), "GET, OPTIONS"),
        ("/api/v1/auth/logout".to_owned(), "POST, OPTIONS"),
        ("/api/v1/audit-log".to_owned(), "GET, OPTIONS"),
        ("/api/v1/emails".to_owned(), "GET, OPTIONS"),
        (
            format!("/api/v1/emails/{id}/attachments"),
            "POST, GET, OPTIONS",
        ),
        (format!("/api/v1/attachments/{id}"), "GET, DELETE, OPTIONS"),
        (
            format!("/api/v1/attachments/{id}/download-url"),
            "POST, OPTIONS",
        ),
        (
            format!("/api/v1/attachments/{id}/revoke-urls"),
            "POST, OPTIONS",
        ),
        (
            format!("/api/v1/attachments/{id}/scan-status"),
            "GET, OPTIONS",
        ),
        ("/api/v1/auth/token".to_owned(), "POST, OPTIONS"),
        ("/.well-known/jwks.json".to_owned(), "GET, HEAD, OPTIONS"),
    ] {
        let r = send(c.request(Method::OPTIONS, url(&path)));
        assert_eq!(r.status, 204, "{path}: {r:?}");
        assert_eq!(r.header("allow"), Some(allow), "{path}: {r:?}");
        assert!(r.header("x-request-id").is_some(), "{path}: {r:?}");
        assert!(r.body.is_empty(), "{path}: {r:?}");
    }
    // As for any method of the route, a path id that is not a UUID is refused.
    let r = send(c.request(
        Method::OPTIONS,
        url(&format!("/api/v1/attachments/{NOT_A_UUID}")),
    ));
    r.assert_problem(400, "invalid_id");
    // Where a plain OPTIONS is not documented (scanner and signed-URL routes): 405 with Allow.
    let r = send(c.request(Method::OPTIONS, url("/api/v1/scan/callback")));
    r.assert_problem(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"), "{r:?}");
}

#[test]
fn json_bodies_are_objects_with_known_members_only() {
    let u = caller();
    let base = &Stack::get().base_url;
    // Login: an unknown member, an array, a repeated member: 400 before any password check.
    for body in [
        json!({"email": u.email, "password": u.password, "remember": true}).to_string(),
        json!([u.email, u.password]).to_string(),
        format!(
            r#"{{"email":{:?},"password":{:?},"password":"x"}}"#,
            u.email, u.password
        ),
    ] {
        let r = send(
            u.c.post(format!("{base}/api/v1/auth/token"))
                .header("content-type", "application/json")
                .body(body.clone()),
        );
        r.assert_problem(400, "bad_request");
    }
    assert_eq!(login_reply(&u.c, base, &u.email, &u.password).status, 200);
    // Refresh and logout: the same rule.
    let r = send(
        u.c.post(url("/api/v1/auth/refresh"))
            .json(&json!({"refreshToken": "x", "extra": 1})),
    );
    r.assert_problem(400, "bad_request");
    let r = send(
        u.c.post(url("/api/v1/auth/logout"))
            .bearer_auth(&u.token)
            .json(&json!({"refreshToken": null, "everywhere": true})),
    );
    r.assert_problem(400, "bad_request");
    // A logout ends the access token it is sent with: this one is a session of its own.
    let leaving =
        integration_tests::Tokens::from_reply(&login_reply(&u.c, base, &u.email, &u.password));
    let r = send(
        u.c.post(url("/api/v1/auth/logout"))
            .bearer_auth(&leaving.access)
            .json(&json!({"refreshToken": null})),
    );
    assert_eq!(r.status, 204, "null is absent: {r:?}");

    // Download URLs: 600.0 is the integer 600; null members are the defaults; unknown ones refused.
    let up = u.upload("contract.txt", b"contract bytes", None);
    assert_eq!(up.status, 201, "{up:?}");
    let id = up.json()["id"].as_str().unwrap().to_owned();
    let issue = |body: &str| {
        send(
            u.c.post(url(&format!("/api/v1/attachments/{id}/download-url")))
                .bearer_auth(&u.token)
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
    };
    let r = issue(r#"{"expiresIn":600.0}"#);
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    let now_ms = integration_tests::now_ms();
    let left = v["expiresAt"].as_i64().unwrap() - now_ms;
    assert!((550_000..=650_000).contains(&left), "{v}");
    let r = issue(r#"{"expiresIn":null,"disposition":null}"#);
    assert_eq!(r.status, 200, "{r:?}");
    for bad in [
        r#"{"expiresIn":600.5}"#,
        r#"{"expiresIn":600,"ttl":5}"#,
        r#"[600]"#,
    ] {
        issue(bad).assert_problem(400, "bad_request");
    }
}

fn digest_of(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

#[test]
fn repr_digest_follows_rfc_8941_exactly() {
    let u = caller();
    let body = b"digest grammar";
    let d = digest_of(body);
    let unpadded = d.trim_end_matches('=').to_owned();
    // Accepted: parameters, other members (any byte sequence), unpadded base64, the last of a
    // repeated member, an empty dictionary.
    for (i, h) in [
        format!("sha-256=:{d}:;a=1;b=\"x, y\";c=?1"),
        format!("sha-512=:AA==:, sha-256=:{unpadded}:"),
        format!("sha-256=:AAAA:, sha-256=:{d}:"),
        String::new(),
    ]
    .into_iter()
    .enumerate()
    {
        let r = u.upload(
            &format!("ok-{i}.txt"),
            body,
            Some(HeaderValue::from_str(&h).unwrap()),
        );
        assert_eq!(r.status, 201, "{h:?}: {r:?}");
    }
    // Outside the grammar: 400.
    for h in [
        format!("sha-256 =:{d}:"),
        format!("sha-256=: {d}:"),
        format!("sha-256=:{d}:;"),
        format!("sha-256=:{d}:, "),
        format!("sha-256=:{d}:;a=\"unterminated"),
        "sha-256=:AA=:".to_owned(),
        "sha-256=?1".to_owned(),
    ] {
        let r = u.upload("bad.txt", body, Some(HeaderValue::from_str(&h).unwrap()));
        r.assert_problem(400, "bad_request");
    }
    let r = u.upload(
        "bad.txt",
        body,
        Some(HeaderValue::from_bytes(format!("sha-256=:{d}:;a=\"\u{e9}\"").as_bytes()).unwrap()),
    );
    r.assert_problem(400, "bad_request");
    // Well-formed, but no SHA-256 can be 3 bytes: it cannot match.
    let r = u.upload(
        "short.txt",
        body,
        Some(HeaderValue::from_static("sha-256=:AAAA:")),
    );
    r.assert_problem(422, "digest_mismatch");
}

#[test]
fn the_health_check_answers_as_spin_does() {
    // The host's own route: `OK` and nothing else, no Content-Type (real Spin sends none, and the
    // runner answers the same), no x-request-id.
    let r = send(client().get(url("/.well-known/spin/health")));
    assert_eq!((r.status, r.body.as_str()), (200, "OK"), "{r:?}");
    assert_eq!(r.header("content-type"), None, "{r:?}");
    assert_eq!(r.header("x-request-id"), None, "{r:?}");
}

#[test]
fn any_x_request_id_is_accepted_and_only_a_sane_one_echoed() {
    let c = client();
    for (sent, echoed) in [("ui-1.2:3_x", true), ("has space", false), ("é", false)] {
        let r = send(c.get(url("/.well-known/jwks.json")).header(
            "x-request-id",
            HeaderValue::from_bytes(sent.as_bytes()).unwrap(),
        ));
        assert_eq!(r.status, 200, "{sent:?}: {r:?}");
        let got = r.header("x-request-id").unwrap();
        assert_eq!(got == sent, echoed, "{sent:?}: {r:?}");
    }
}
