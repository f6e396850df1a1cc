//! How an inner component (one behind the auth middleware) learns who is calling: from the
//! middleware's MAC'd `x-auth-context` header and from nothing else. `Authorization`, `x-auth-*`
//! or any other identity header a client sends is ignored; a request that did not pass the
//! middleware (e.g. a route configured without it) has no valid context and is `401`.

use auth_core::{AuthContext, ContextKey};
use http::HeaderMap;
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
