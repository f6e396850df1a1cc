//! How an inner component (one behind the auth middleware) learns who is calling: from the
//! middleware's MAC'd `x-auth-context` header and from nothing else. `Authorization`, `x-auth-*`
//! or any other identity header a client sends is ignored; a request that did not pass the
//! middleware (e.g. a route configured without it) has no valid context and is `401`.
//!
//! Both sides of that hand-off live here: what the middleware reads ([`authorization`]) and
//! forwards ([`hand_off`]), and what the inner component trusts ([`authenticate`]).

use auth_core::context::{self, AuthContext, ContextKey};
use http::HeaderMap;
use http::header::{AUTHORIZATION, CONNECTION, HOST, HeaderName, HeaderValue};
use problem::{REQUEST_ID_HEADER, RequestId};

use crate::ApiError;

/// The request id to answer with before authentication: the `x-request-id` the middleware (or
/// the runner) set when it is sane, else a fresh one.
pub fn request_id(headers: &HeaderMap) -> RequestId {
    let mut ids = headers.get_all(REQUEST_ID_HEADER).iter();
    match (ids.next(), ids.next()) {
        (Some(one), None) => RequestId::from_client(Some(one.as_bytes())),
        _ => RequestId::generate(),
    }
}

/// The verified identity of this request, or `401 invalid_token` (with `WWW-Authenticate`).
pub fn authenticate(
    headers: &HeaderMap,
    key: &ContextKey,
    now: i64,
) -> Result<AuthContext, ApiError> {
    AuthContext::from_headers(
        headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())),
        key,
        now,
    )
    .map_err(ApiError::from)
}

/// The request's one `Authorization` value (`None` without one). Several are refused rather than
/// guessing which one counts.
pub fn authorization(headers: &HeaderMap) -> Result<Option<&[u8]>, auth_core::Error> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(auth_core::Error::MalformedToken);
    }
    Ok(first.map(HeaderValue::as_bytes))
}

/// Hop-by-hop framing headers: they describe the inbound connection only, and wasi:http refuses
/// them on a forwarded request (a chunked upload failed with `HeaderError::Forbidden`).
const HOP_BY_HOP: &[&str] = &[
    "transfer-encoding",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
];

/// Prepares the headers of a request the middleware forwards to the inner component: everything an
/// inner component could mistake for identity goes (every `x-auth-*` header a client sent, and the
/// bearer token itself, which inner components never need), then the MAC'd `x-auth-context` of
/// `ctx` and the request id are set. `Host` goes too (the URI carries the authority; a stale one
/// must not disagree with it), as do `Connection` and the hop-by-hop headers.
pub fn hand_off(
    headers: &mut HeaderMap,
    ctx: &AuthContext,
    key: &ContextKey,
    request_id: &RequestId,
) -> Result<(), ApiError> {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| context::is_auth_header(n.as_str()))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(&name);
    }
    for name in [AUTHORIZATION, HOST, CONNECTION] {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    let value = |v: &str, what: &str| {
        HeaderValue::from_str(v).map_err(|e| ApiError::internal(format!("{what} header: {e}")))
    };
    headers.insert(
        HeaderName::from_static(context::HEADER),
        value(&ctx.to_header_value(key), "auth context")?,
    );
    headers.insert(
        HeaderName::from_static(REQUEST_ID_HEADER),
        value(request_id.as_str(), "request id")?,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::claims::AccessClaims;
    use auth_core::{Role, TenantId, UserId};

    const NOW: i64 = 1_750_000_000;

    fn key(byte: u8) -> ContextKey {
        ContextKey::from_config(&hex_key(byte)).unwrap()
    }

    fn hex_key(byte: u8) -> String {
        format!("{byte:02x}").repeat(32)
    }

    fn ctx_header(k: &ContextKey, role: Role) -> String {
        let claims = AccessClaims {
            user: UserId::parse("6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b").unwrap(),
            tenant: TenantId::parse("0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d").unwrap(),
            role,
            jti: "j1".into(),
            issued_at: NOW,
            not_before: NOW,
            expires_at: NOW + 900,
            kid: "k".into(),
        };
        AuthContext::from_claims(&claims, "rid-1", NOW).to_header_value(k)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_the_mac_d_context_authenticates() {
        let k = key(1);
        let good = ctx_header(&k, Role::Admin);
        let ctx = authenticate(
            &headers(&[("x-auth-context", &good), ("x-request-id", "rid-1")]),
            &k,
            NOW,
        )
        .unwrap();
        assert_eq!(ctx.role, Role::Admin);
        assert_eq!(ctx.token_expires_at, NOW + 900);

        // A bearer token and home-made identity headers are not authentication here.
        let e = authenticate(
            &headers(&[
                ("authorization", "Bearer eyJhbGciOiJFZERTQSJ9.e30.sig"),
                ("x-auth-user", "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"),
                ("x-auth-role", "admin"),
            ]),
            &k,
            NOW,
        )
        .unwrap_err();
        assert_eq!(e.status(), 401);
        assert!(e.headers().iter().any(|(n, _)| *n == "WWW-Authenticate"));

        // A context MAC'd with another key (a client guessing the format).
        let forged = ctx_header(&key(2), Role::Admin);
        let e = authenticate(&headers(&[("x-auth-context", &forged)]), &k, NOW).unwrap_err();
        assert_eq!(e.status(), 401);
        // A genuine context replayed later.
        let e = authenticate(&headers(&[("x-auth-context", &good)]), &k, NOW + 3600).unwrap_err();
        assert_eq!(e.status(), 401);
    }

    #[test]
    fn the_middleware_reads_one_authorization_header() {
        assert_eq!(authorization(&HeaderMap::new()), Ok(None));
        assert_eq!(
            authorization(&headers(&[("authorization", "Bearer a.b.c")])),
            Ok(Some(&b"Bearer a.b.c"[..]))
        );
        assert_eq!(
            authorization(&headers(&[
                ("authorization", "Bearer a"),
                ("authorization", "Bearer b")
            ])),
            Err(auth_core::Error::MalformedToken)
        );
    }

    #[test]
    fn the_hand_off_carries_only_the_middlewares_identity() {
        let k = key(1);
        let claims = AccessClaims {
            user: UserId::parse("6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b").unwrap(),
            tenant: TenantId::parse("0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d").unwrap(),
            role: Role::User,
            jti: "j1".into(),
            issued_at: NOW,
            not_before: NOW,
            expires_at: NOW + 900,
            kid: "k".into(),
        };
        let rid = RequestId::parse("rid-7").unwrap();
        let ctx = AuthContext::from_claims(&claims, rid.as_str(), NOW);
        let spoofed = ctx_header(&key(2), Role::Admin);
        let mut h = headers(&[
            ("authorization", "Bearer eyJ.e30.sig"),
            ("x-auth-context", &spoofed),
            ("X-Auth-Role", "admin"),
            ("x-auth-user", "someone"),
            ("x-request-id", "client-chosen"),
            ("host", "stale.example"),
            ("connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("content-type", "application/json"),
        ]);
        hand_off(&mut h, &ctx, &k, &rid).unwrap();
        for gone in [
            "authorization",
            "x-auth-role",
            "x-auth-user",
            "host",
            "connection",
            "transfer-encoding",
        ] {
            assert!(h.get(gone).is_none(), "{gone} was forwarded");
        }
        assert_eq!(h.get_all("x-auth-context").iter().count(), 1);
        assert_eq!(h["x-request-id"], "rid-7");
        assert_eq!(h["content-type"], "application/json", "other headers stay");
        let seen = authenticate(&h, &k, NOW).unwrap();
        assert_eq!((seen.user, seen.role), (claims.user, Role::User));
        assert_eq!(seen.request_id, "rid-7");
    }

    #[test]
    fn request_id_rules() {
        assert_eq!(
            request_id(&headers(&[("x-request-id", "abc-1")])).as_str(),
            "abc-1"
        );
        let generated = request_id(&headers(&[("x-request-id", "bad id")]));
        assert_ne!(generated.as_str(), "bad id");
        let two = request_id(&headers(&[("x-request-id", "a"), ("x-request-id", "b")]));
        assert!(two.as_str() != "a" && two.as_str() != "b");
        assert_eq!(request_id(&HeaderMap::new()).as_str().len(), 36);
    }
}
