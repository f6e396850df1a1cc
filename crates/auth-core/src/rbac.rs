//! Which role each route needs. Routes are `(method, pattern)` pairs; a pattern is a path whose
//! `{name}` segments match any one non-empty segment. `HEAD` is checked as `GET`.
//!
//! The middleware calls [`Rbac::authorize`] after verifying the token: a route that is not in the
//! table needs an authenticated `user` (deny-by-default would break nothing here: the middleware
//! only sits in front of protected routes, and an unknown path then gets the inner component's
//! 404). Resource-level rules (owner or admin, same tenant) stay in the components; this table
//! answers only "may this role call this route at all", so `user` gets `403` on admin routes.

use crate::{Error, Role};

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token (login, refresh, JWKS, the scan callback with its own signature).
    Public,
    /// An authenticated caller whose role satisfies this one.
    Role(Role),
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path pattern, e.g. `/api/v1/attachments/{id}`.
    pub pattern: &'static str,
    /// What it requires.
    pub access: Access,
}

const fn route(method: &'static str, pattern: &'static str, access: Access) -> Route {
    Route {
        method,
        pattern,
        access,
    }
}

const USER: Access = Access::Role(Role::User);
const ADMIN: Access = Access::Role(Role::Admin);

/// The routes of the API contract (`shared/api.md`).
pub const API_ROUTES: &[Route] = &[
    route("POST", "/api/v1/auth/token", Access::Public),
    route("POST", "/api/v1/auth/refresh", Access::Public),
    route("GET", "/.well-known/jwks.json", Access::Public),
    route("POST", "/api/v1/scan/callback", Access::Public),
    route("POST", "/api/v1/auth/logout", USER),
    route("GET", "/api/v1/auth/me", USER),
    route("POST", "/api/v1/emails/{messageId}/attachments", USER),
    route("GET", "/api/v1/emails/{messageId}/attachments", USER),
    route("GET", "/api/v1/attachments/{id}", USER),
    route("DELETE", "/api/v1/attachments/{id}", USER),
    route("POST", "/api/v1/attachments/{id}/download-url", USER),
    route("POST", "/api/v1/attachments/{id}/revoke-urls", USER),
    route("GET", "/api/v1/attachments/{id}/scan-status", USER),
    route("GET", "/api/v1/audit-log", ADMIN),
];

/// Whether `path` matches `pattern` (query strings must be removed first).
pub fn matches(pattern: &str, path: &str) -> bool {
    let mut p = pattern.split('/');
    let mut s = path.split('/');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return true,
            (Some(ps), Some(ss)) => {
                let is_param = ps.len() > 2 && ps.starts_with('{') && ps.ends_with('}');
                if is_param {
                    if ss.is_empty() {
                        return false;
                    }
                } else if ps != ss {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// A route table.
#[derive(Debug, Clone)]
pub struct Rbac {
    routes: Vec<Route>,
}

impl Default for Rbac {
    fn default() -> Self {
        Self {
            routes: API_ROUTES.to_vec(),
        }
    }
}

impl Rbac {
    /// A table of other routes (tests, other apps).
    pub fn new(routes: Vec<Route>) -> Self {
        Self { routes }
    }

    /// The requirement of the first matching row, or `None` for an unknown route.
    pub fn required(&self, method: &str, path: &str) -> Option<Access> {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let method = if method.eq_ignore_ascii_case("HEAD") {
            "GET"
        } else {
            method
        };
        self.routes
            .iter()
            .find(|r| r.method.eq_ignore_ascii_case(method) && matches(r.pattern, path))
            .map(|r| r.access)
    }

    /// Whether an authenticated caller with `role` may call the route; unknown routes need `user`.
    pub fn authorize(&self, role: Role, method: &str, path: &str) -> Result<(), Error> {
        match self.required(method, path).unwrap_or(USER) {
            Access::Public => Ok(()),
            Access::Role(needed) if role.satisfies(needed) => Ok(()),
            Access::Role(_) => Err(Error::Forbidden),
        }
    }

    /// Whether the route needs no token.
    pub fn is_public(&self, method: &str, path: &str) -> bool {
        self.required(method, path) == Some(Access::Public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b";

    #[test]
    fn admin_only_routes() {
        let r = Rbac::default();
        assert_eq!(
            r.authorize(Role::User, "GET", "/api/v1/audit-log"),
            Err(Error::Forbidden)
        );
        assert_eq!(
            r.authorize(Role::User, "GET", "/api/v1/audit-log?limit=10"),
            Err(Error::Forbidden)
        );
        assert_eq!(
            r.authorize(Role::User, "HEAD", "/api/v1/audit-log"),
            Err(Error::Forbidden)
        );
        assert!(r.authorize(Role::Admin, "GET", "/api/v1/audit-log").is_ok());
        assert_eq!(Error::Forbidden.problem().status(), 403);
    }

    #[test]
    fn user_routes() {
        let r = Rbac::default();
        for (m, p) in [
            ("GET", format!("/api/v1/attachments/{ID}")),
            ("DELETE", format!("/api/v1/attachments/{ID}")),
            ("POST", format!("/api/v1/emails/{ID}/attachments")),
            ("GET", format!("/api/v1/attachments/{ID}/scan-status")),
            ("GET", "/api/v1/auth/me".to_owned()),
        ] {
            assert_eq!(r.required(m, &p), Some(Access::Role(Role::User)), "{m} {p}");
            assert!(r.authorize(Role::User, m, &p).is_ok());
            assert!(r.authorize(Role::Admin, m, &p).is_ok());
        }
    }

    #[test]
    fn public_and_unknown_routes() {
        let r = Rbac::default();
        assert!(r.is_public("POST", "/api/v1/auth/token"));
        assert!(r.is_public("GET", "/.well-known/jwks.json"));
        assert!(!r.is_public("GET", "/api/v1/auth/token"), "method matters");
        assert_eq!(r.required("GET", "/api/v1/nope"), None);
        assert!(r.authorize(Role::User, "GET", "/api/v1/nope").is_ok());
    }

    #[test]
    fn pattern_matching() {
        assert!(matches("/a/{id}/b", "/a/1/b"));
        assert!(!matches("/a/{id}/b", "/a//b"));
        assert!(!matches("/a/{id}/b", "/a/1/b/"));
        assert!(!matches("/a/{id}/b", "/a/1"));
        assert!(!matches("/a/{id}", "/a/1/b"));
        assert!(matches("/a", "/a"));
        assert!(!matches("/a", "/A"));
        assert!(!matches("/api/v1/audit-log", "/api/v1/audit-log/"));
    }
}
