//! The API's one route table: every endpoint, the methods and path it answers, the component that
//! serves it and who may call it. Components parse a request into an [`Endpoint`] here (unknown path
//! `404`, known path with another method `405` + `Allow`, a malformed id `400 invalid_id`), the auth
//! middleware reads [`Access`] from here for its role check, and a test holds the table against
//! `spin.toml` (which component each route goes to, and whether the middleware is in front of it) and
//! `openapi.yaml` (every documented operation, and nothing else).

use auth_core::Role;
use problem::{Code, Problem};

use crate::ApiError;

/// Every endpoint of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /api/v1/auth/token`: log in.
    Login,
    /// `POST /api/v1/auth/refresh`: rotate a refresh token.
    Refresh,
    /// `GET|HEAD /.well-known/jwks.json`: the token verification keys.
    Jwks,
    /// `POST /api/v1/auth/logout`.
    Logout,
    /// `GET /api/v1/auth/me`.
    Me,
    /// `GET /api/v1/audit-log`.
    AuditLog,
    /// `GET /api/v1/emails`: the caller's own messages, newest first.
    ListMessages,
    /// `POST /api/v1/emails/{messageId}/attachments`.
    Upload,
    /// `GET /api/v1/emails/{messageId}/attachments`.
    ListAttachments,
    /// `GET /api/v1/attachments/{id}`.
    GetAttachment,
    /// `DELETE /api/v1/attachments/{id}`.
    DeleteAttachment,
    /// `POST /api/v1/attachments/{id}/download-url`.
    IssueDownloadUrl,
    /// `POST /api/v1/attachments/{id}/revoke-urls`.
    RevokeDownloadUrls,
    /// `GET /api/v1/attachments/{id}/scan-status`.
    ScanStatus,
    /// `POST /api/v1/scan/callback`.
    ScanCallback,
    /// `GET|HEAD /api/v1/files/...`: a signed content URL.
    File,
    /// `POST /api/v1/emails/{messageId}/uploads`: a direct-to-storage upload session.
    CreateUpload,
    /// `GET /api/v1/uploads/{id}`: a session and fresh part URLs.
    GetUpload,
    /// `POST /api/v1/uploads/{id}/complete`.
    CompleteUpload,
    /// `DELETE /api/v1/uploads/{id}`: abort.
    AbortUpload,
    /// `POST /api/v1/scan/upload-verification`: the worker's verification of a direct upload.
    UploadVerification,
    /// `POST /api/v1/emails/{messageId}/tus`: a tus upload (creation, creation-with-upload).
    TusCreate,
    /// `HEAD /api/v1/tus/{id}`: a tus upload's offset.
    TusHead,
    /// `PATCH /api/v1/tus/{id}`: one chunk of a tus upload.
    TusPatch,
    /// `DELETE /api/v1/tus/{id}`: termination.
    TusTerminate,
    /// `GET /health/ready`: readiness (database, Redis and storage reachable).
    Ready,
    /// `GET /api/v1/usage`: the caller's storage and downloads, and their limits.
    Usage,
    /// `GET /api/v1/admin/usage`: the tenant's totals and every user's usage (admins).
    AdminUsage,
    /// `PUT|DELETE /api/v1/admin/attachments/{id}/legal-hold`: hold an attachment from the purge.
    AttachmentLegalHold,
    /// `PUT|DELETE /api/v1/admin/emails/{messageId}/legal-hold`: hold a message's attachments.
    MessageLegalHold,
    /// `GET|HEAD /`: the attachment console's page.
    ConsolePage,
    /// `GET|HEAD /assets/{file}`: a hashed script or style of the console (no id: the component
    /// looks the name up in its build, it never goes through [`resolve`]).
    ConsoleAsset,
}

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (login, token refresh, the public keys).
    Public,
    /// A scanner, by the request's `X-Scan-Signature` (the component checks it).
    Scanner,
    /// Whoever holds the URL: its signature is the credential (the component checks it).
    SignedUrl,
    /// An authenticated caller, through the auth middleware, whose role satisfies this one.
    Role(Role),
}

impl Access {
    /// Whether the route sits behind the auth middleware.
    pub const fn behind_middleware(self) -> bool {
        matches!(self, Access::Role(_))
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Methods, upper case.
    pub methods: &'static [&'static str],
    /// The path as `openapi.yaml` writes it: `{name}` matches one non-empty segment; a trailing
    /// `/...` matches anything below the prefix.
    pub path: &'static str,
    /// The component (`spin.toml`'s `[component.<name>]`) that serves it.
    pub component: &'static str,
    /// Who may call it.
    pub access: Access,
}

const USER: Access = Access::Role(Role::User);
const ADMIN: Access = Access::Role(Role::Admin);

const fn route(
    endpoint: Endpoint,
    methods: &'static [&'static str],
    path: &'static str,
    component: &'static str,
    access: Access,
) -> Route {
    Route {
        endpoint,
        methods,
        path,
        component,
        access,
    }
}

/// The table. Order matters only where paths overlap: the first row whose path matches decides.
pub const ROUTES: &[Route] = &[
    route(
        Endpoint::Login,
        &["POST"],
        "/api/v1/auth/token",
        "auth",
        Access::Public,
    ),
    route(
        Endpoint::Refresh,
        &["POST"],
        "/api/v1/auth/refresh",
        "auth",
        Access::Public,
    ),
    route(
        Endpoint::Jwks,
        &["GET", "HEAD"],
        "/.well-known/jwks.json",
        "auth",
        Access::Public,
    ),
    route(
        Endpoint::Logout,
        &["POST"],
        "/api/v1/auth/logout",
        "auth",
        USER,
    ),
    route(Endpoint::Me, &["GET"], "/api/v1/auth/me", "auth", USER),
    route(
        Endpoint::AuditLog,
        &["GET"],
        "/api/v1/audit-log",
        "auth",
        ADMIN,
    ),
    route(
        Endpoint::ListMessages,
        &["GET"],
        "/api/v1/emails",
        "ingest",
        USER,
    ),
    route(
        Endpoint::Upload,
        &["POST"],
        "/api/v1/emails/{messageId}/attachments",
        "ingest",
        USER,
    ),
    route(
        Endpoint::ListAttachments,
        &["GET"],
        "/api/v1/emails/{messageId}/attachments",
        "ingest",
        USER,
    ),
    route(
        Endpoint::GetAttachment,
        &["GET"],
        "/api/v1/attachments/{id}",
        "ingest",
        USER,
    ),
    route(
        Endpoint::DeleteAttachment,
        &["DELETE"],
        "/api/v1/attachments/{id}",
        "ingest",
        USER,
    ),
    route(
        Endpoint::IssueDownloadUrl,
        &["POST"],
        "/api/v1/attachments/{id}/download-url",
        "download",
        USER,
    ),
    route(
        Endpoint::RevokeDownloadUrls,
        &["POST"],
        "/api/v1/attachments/{id}/revoke-urls",
        "download",
        USER,
    ),
    route(
        Endpoint::ScanStatus,
        &["GET"],
        "/api/v1/attachments/{id}/scan-status",
        "scan-callback",
        USER,
    ),
    route(
        Endpoint::ScanCallback,
        &["POST"],
        "/api/v1/scan/callback",
        "scan-callback",
        Access::Scanner,
    ),
    route(
        Endpoint::File,
        &["GET", "HEAD"],
        "/api/v1/files/...",
        "download",
        Access::SignedUrl,
    ),
    route(
        Endpoint::CreateUpload,
        &["POST"],
        "/api/v1/emails/{messageId}/uploads",
        "ingest",
        USER,
    ),
    route(
        Endpoint::GetUpload,
        &["GET"],
        "/api/v1/uploads/{id}",
        "ingest",
        USER,
    ),
    route(
        Endpoint::AbortUpload,
        &["DELETE"],
        "/api/v1/uploads/{id}",
        "ingest",
        USER,
    ),
    route(
        Endpoint::CompleteUpload,
        &["POST"],
        "/api/v1/uploads/{id}/complete",
        "ingest",
        USER,
    ),
    route(
        Endpoint::UploadVerification,
        &["POST"],
        "/api/v1/scan/upload-verification",
        "scan-callback",
        Access::Scanner,
    ),
    route(
        Endpoint::TusCreate,
        &["POST"],
        "/api/v1/emails/{messageId}/tus",
        "ingest",
        USER,
    ),
    route(
        Endpoint::TusHead,
        &["HEAD"],
        "/api/v1/tus/{id}",
        "ingest",
        USER,
    ),
    route(
        Endpoint::TusPatch,
        &["PATCH"],
        "/api/v1/tus/{id}",
        "ingest",
        USER,
    ),
    route(
        Endpoint::TusTerminate,
        &["DELETE"],
        "/api/v1/tus/{id}",
        "ingest",
        USER,
    ),
    // Served by a component with all three dependencies among its allowed hosts.
    route(
        Endpoint::Ready,
        &["GET"],
        "/health/ready",
        "download",
        Access::Public,
    ),
    route(Endpoint::Usage, &["GET"], "/api/v1/usage", "ingest", USER),
    route(
        Endpoint::AdminUsage,
        &["GET"],
        "/api/v1/admin/usage",
        "ingest",
        ADMIN,
    ),
    route(
        Endpoint::AttachmentLegalHold,
        &["PUT", "DELETE"],
        "/api/v1/admin/attachments/{id}/legal-hold",
        "ingest",
        ADMIN,
    ),
    route(
        Endpoint::MessageLegalHold,
        &["PUT", "DELETE"],
        "/api/v1/admin/emails/{messageId}/legal-hold",
        "ingest",
        ADMIN,
    ),
    route(
        Endpoint::ConsolePage,
        &["GET", "HEAD"],
        "/",
        "console",
        Access::Public,
    ),
    route(
        Endpoint::ConsoleAsset,
        &["GET", "HEAD"],
        "/assets/{file}",
        "console",
        Access::Public,
    ),
];

impl Endpoint {
    /// A tus endpoint: a plain `OPTIONS` on its path also answers tus discovery.
    pub const fn is_tus(self) -> bool {
        matches!(
            self,
            Self::TusCreate | Self::TusHead | Self::TusPatch | Self::TusTerminate
        )
    }
}

impl Endpoint {
    /// This endpoint's row.
    pub fn route(self) -> &'static Route {
        ROUTES
            .iter()
            .find(|r| r.endpoint == self)
            .expect("every endpoint has a row")
    }

    /// Who may call it.
    pub fn access(self) -> Access {
        self.route().access
    }
}

/// A request matched to its endpoint, with the path's id when the path has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The `{messageId}` / `{id}` of the path (parsed as a canonical UUID).
    pub id: Option<uuid::Uuid>,
}

impl Matched {
    /// The path's id; a route without one in its path is a programming error, answered `500`.
    pub fn id(&self) -> Result<uuid::Uuid, ApiError> {
        self.id
            .ok_or_else(|| ApiError::internal(format!("{:?} has no id in its path", self.endpoint)))
    }
}

/// Matches `path` against a row's path; `Some(segment)` of its `{param}` (or `Some(None)` without one).
fn match_path<'p>(pattern: &str, path: &'p str) -> Option<Option<&'p str>> {
    if let Some(prefix) = pattern.strip_suffix("/...") {
        return (path == prefix || path.starts_with(&format!("{prefix}/"))).then_some(None);
    }
    let mut param = None;
    let mut p = pattern.split('/');
    let mut s = path.split('/');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return Some(param),
            (Some(ps), Some(ss)) if ps.starts_with('{') && ps.ends_with('}') => {
                if ss.is_empty() {
                    return None;
                }
                param = Some(ss);
            }
            (Some(ps), Some(ss)) if ps == ss => {}
            _ => return None,
        }
    }
}

/// The row a `(method, path)` pair goes to, whichever component serves it (the middleware's view).
pub fn lookup(method: &str, path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| {
        r.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
            && match_path(r.path, path).is_some()
    })
}

/// The role the auth middleware requires of a caller of `(method, path)`: the route's role; none
/// for a route whose credential is not a token (public, scanner, signed URL); `user` for anything
/// the table does not know, whose component then answers `404` or `405`. `HEAD` is judged as
/// `GET`, so it cannot reach a route the `GET` is refused.
pub fn required_role(method: &str, path: &str) -> Option<Role> {
    let row = lookup(method, path).or_else(|| {
        method
            .eq_ignore_ascii_case("HEAD")
            .then(|| lookup("GET", path))
            .flatten()
    });
    match row.map(|r| r.access) {
        Some(Access::Role(role)) => Some(role),
        Some(Access::Public | Access::Scanner | Access::SignedUrl) => None,
        None => Some(Role::User),
    }
}

/// The methods of `component`'s public routes on `path` (empty when `path` is none of them): where
/// a component without the middleware in front answers CORS and a plain `OPTIONS` itself.
pub fn public_methods(component: &str, path: &str) -> Vec<&'static str> {
    ROUTES
        .iter()
        .filter(|r| r.component == component && r.access == Access::Public)
        .filter(|r| match_path(r.path, path).is_some())
        .flat_map(|r| r.methods.iter().copied())
        .collect()
}

/// The methods of every route on `path`, whichever component serves them (empty for a path the
/// table does not know): what a plain `OPTIONS` lists in `Allow`. A known path whose id is not a
/// canonical UUID is `400 invalid_id`, as any other method on it would be.
pub fn methods_on(path: &str) -> Result<Vec<&'static str>, ApiError> {
    let mut methods: Vec<&'static str> = Vec::new();
    for r in ROUTES {
        let Some(param) = match_path(r.path, path) else {
            continue;
        };
        if let Some(id) = param {
            path_id(id)?;
        }
        for m in r.methods {
            if !methods.contains(m) {
                methods.push(m);
            }
        }
    }
    Ok(methods)
}

/// Parses a request of `component` into its endpoint: `404` for a path none of this component's
/// routes has, `405` with `Allow` for a known path and another method (`OPTIONS` included where a
/// plain `OPTIONS` is answered), `400 invalid_id` for an id
/// that is not a canonical UUID.
pub fn resolve(component: &str, method: &http::Method, path: &str) -> Result<Matched, ApiError> {
    let mut allowed: Vec<http::Method> = Vec::new();
    // Public routes and those behind the middleware answer a plain `OPTIONS` (the token service or
    // the middleware does, before the component): `Allow` says so.
    let mut options = false;
    for r in ROUTES.iter().filter(|r| r.component == component) {
        let Some(param) = match_path(r.path, path) else {
            continue;
        };
        options |= matches!(r.access, Access::Public | Access::Role(_));
        if r.methods.contains(&method.as_str()) {
            return Ok(Matched {
                endpoint: r.endpoint,
                id: param.map(path_id).transpose()?,
            });
        }
        allowed.extend(
            r.methods
                .iter()
                .filter_map(|m| m.parse::<http::Method>().ok()),
        );
    }
    if allowed.is_empty() {
        Err(ApiError::new(Problem::not_found()))
    } else {
        allowed.dedup();
        if options {
            allowed.push(http::Method::OPTIONS);
        }
        Err(ApiError::method_not_allowed(&allowed))
    }
}

/// An id from a request path: the canonical hyphenated UUID (any case), else `400 invalid_id`. Other
/// spellings (simple, braced, `urn:uuid:`) are refused so one resource has one URL.
pub fn path_id(s: &str) -> Result<uuid::Uuid, ApiError> {
    if s.len() == 36
        && let Ok(u) = uuid::Uuid::try_parse(s)
    {
        return Ok(u);
    }
    Err(ApiError::new(Problem::new(Code::InvalidId)))
}

#[cfg(test)]
mod tests;
