//! [`ApiError`]: the one error type handlers return. It carries what the client sees (a
//! [`Problem`] and extra headers such as `WWW-Authenticate` or `Retry-After`) apart from what only
//! the log sees (the internal cause), so an internal message can never reach a response body.

use std::fmt;

use problem::{Problem, RequestId};

use crate::response;

/// A failed request: the problem to answer with, extra response headers, and (for server-side
/// failures) the internal cause to log. Boxed: it travels in every handler's `Result`, and the
/// happy path should not pay for its size.
#[derive(Debug, Clone)]
pub struct ApiError {
    inner: Box<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    problem: Problem,
    headers: Vec<(&'static str, String)>,
    cause: Option<String>,
}

impl ApiError {
    /// A client error (or any problem) with no internal cause.
    pub fn new(problem: Problem) -> Self {
        Self {
            inner: Box::new(Inner {
                problem,
                headers: Vec::new(),
                cause: None,
            }),
        }
    }

    /// `500 internal_error`; `cause` goes to the log only.
    pub fn internal(cause: impl fmt::Display) -> Self {
        Self::new(Problem::internal()).with_cause(cause)
    }

    /// `500 misconfigured`: a deployment setting is missing or invalid; `cause` (which setting and
    /// why, never its value) goes to the log only.
    pub fn misconfigured(cause: impl fmt::Display) -> Self {
        Self::new(Problem::new(problem::Code::Misconfigured)).with_cause(cause)
    }

    /// `500 misconfigured` for variable `name` that does not parse (`e` says why; it must not quote
    /// a secret's value).
    pub fn bad_setting(name: &str, e: impl fmt::Display) -> Self {
        Self::misconfigured(format!("variable {name}: {e}"))
    }

    /// `503 service_unavailable` for a dependency that is down; `cause` goes to the log only.
    pub fn unavailable(cause: impl fmt::Display) -> Self {
        Self::new(Problem::service_unavailable())
            .with_header("Retry-After", "5")
            .with_cause(cause)
    }

    /// `503 upstream_timeout` for a dependency that did not answer within the outbound deadline
    /// (`outbound_timeout_secs`), with `Retry-After`; `cause` goes to the log only. 503 rather than
    /// 504: the service is not a gateway to the dependency, clients already retry a 503 with
    /// `Retry-After`, and a 504 would look like the platform's own gateway timing out.
    pub fn upstream_timeout(cause: impl fmt::Display) -> Self {
        Self::new(Problem::new(problem::Code::UpstreamTimeout))
            .with_header("Retry-After", "5")
            .with_cause(cause)
    }

    /// `405 method_not_allowed` with the `Allow` header listing the methods the resource accepts.
    pub fn method_not_allowed(allowed: &[http::Method]) -> Self {
        let allow = allowed
            .iter()
            .map(http::Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        Self::new(Problem::new(problem::Code::MethodNotAllowed)).with_header("Allow", allow)
    }

    /// Adds a response header (replacing one of the same name when the response is built).
    #[must_use]
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.inner.headers.push((name, value.into()));
        self
    }

    /// Adds several response headers.
    #[must_use]
    pub fn with_headers(
        mut self,
        headers: impl IntoIterator<Item = (&'static str, String)>,
    ) -> Self {
        self.inner.headers.extend(headers);
        self
    }

    /// Records the internal cause (for the log).
    #[must_use]
    pub fn with_cause(mut self, cause: impl fmt::Display) -> Self {
        self.inner.cause = Some(cause.to_string());
        self
    }

    /// The problem that will be sent.
    pub fn problem(&self) -> &Problem {
        &self.inner.problem
    }

    /// The status that will be sent.
    pub fn status(&self) -> u16 {
        self.inner.problem.status()
    }

    /// The internal cause, if any (log it; never send it).
    pub fn cause(&self) -> Option<&str> {
        self.inner.cause.as_deref()
    }

    /// The extra headers.
    pub fn headers(&self) -> &[(&'static str, String)] {
        &self.inner.headers
    }

    /// The `application/problem+json` response, with `x-request-id` and the extra headers.
    pub fn into_response(self, request_id: &RequestId) -> http::Response<String> {
        let mut res = response::problem(&self.inner.problem, request_id);
        response::apply_headers(&mut res, &self.inner.headers);
        res
    }
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        Self::new(p)
    }
}

impl From<problem::Code> for ApiError {
    fn from(c: problem::Code) -> Self {
        Self::new(Problem::new(c))
    }
}

/// Token, context and input errors become their client problem (401s with `WWW-Authenticate`);
/// configuration and platform errors become `500` with the error as the logged cause.
impl From<auth_core::Error> for ApiError {
    fn from(e: auth_core::Error) -> Self {
        let problem = e.problem();
        let mut err = Self::new(problem);
        if let Some(www) = e.www_authenticate() {
            err = err.with_header("WWW-Authenticate", www);
        }
        if err.status() >= 500 {
            err = err.with_cause(&e);
        }
        err
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.inner.problem.code())?;
        if let Some(c) = &self.inner.cause {
            write!(f, ": {c}")?;
        }
        Ok(())
    }
}

/// A dependency's failure, by what the caller can do about it: no answer within the deadline is `503
/// upstream_timeout`, unreachable `503 service_unavailable` (retry later either way), refused by the host
/// or badly configured `500 misconfigured`, anything else `500`. `e` (the statement or operation and the
/// dependency's message) goes to the log only.
fn dependency_failure(
    e: impl fmt::Display,
    timeout: bool,
    misconfigured: bool,
    unavailable: bool,
) -> ApiError {
    if timeout {
        ApiError::upstream_timeout(e)
    } else if misconfigured {
        ApiError::misconfigured(e)
    } else if unavailable {
        ApiError::unavailable(e)
    } else {
        ApiError::internal(e)
    }
}

/// A database failure (see `dependency_failure`).
impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        let (t, m, u) = (e.is_timeout(), e.is_misconfigured(), e.is_unavailable());
        dependency_failure(e, t, m, u)
    }
}

/// A storage failure (see `dependency_failure`): an endpoint the host refuses or a bad storage setting
/// is `misconfigured`.
impl From<storage::StorageError> for ApiError {
    fn from(e: storage::StorageError) -> Self {
        let (t, m, u) = (e.is_timeout(), e.is_misconfigured(), e.is_unavailable());
        dependency_failure(e, t, m, u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use problem::Code;

    fn rid() -> RequestId {
        RequestId::parse("r-1").unwrap()
    }

    #[test]
    fn internal_cause_never_reaches_the_body() {
        let e = ApiError::internal("relation \"users\" does not exist; password=hunter2");
        assert_eq!(e.status(), 500);
        assert!(e.cause().unwrap().contains("hunter2"));
        let res = e.into_response(&rid());
        assert_eq!(res.status(), 500);
        assert!(!res.body().contains("hunter2"));
        assert!(!res.body().contains("relation"));
        assert_eq!(res.headers()["x-request-id"], "r-1");
        assert_eq!(res.headers()["content-type"], problem::CONTENT_TYPE);
    }

    #[test]
    fn token_errors_carry_www_authenticate() {
        let e = ApiError::from(auth_core::Error::BadSignature);
        assert_eq!(e.status(), 401);
        assert!(e.cause().is_none(), "client errors have no internal cause");
        let res = e.into_response(&rid());
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer realm=\"api\", error=\"invalid_token\""
        );
        let v: serde_json::Value = serde_json::from_str(res.body()).unwrap();
        assert_eq!(v["code"], "invalid_token");
        assert_eq!(v["requestId"], "r-1");

        let e = ApiError::from(auth_core::Error::Expired);
        let v: serde_json::Value = serde_json::from_str(e.into_response(&rid()).body()).unwrap();
        assert_eq!(v["code"], "token_expired");
    }

    #[test]
    fn config_errors_are_misconfigured_with_cause() {
        let e = ApiError::from(auth_core::Error::Config("key ring has no keys".into()));
        assert_eq!(e.status(), 500);
        assert_eq!(e.problem().code(), Code::Misconfigured);
        assert!(e.cause().unwrap().contains("key ring"));
        assert!(e.headers().is_empty());
        let e = ApiError::bad_setting(
            "db_sslmode",
            "\"verify-full\" is not one of disable, prefer, require",
        );
        assert_eq!((e.status(), e.problem().code()), (500, Code::Misconfigured));
        assert!(e.cause().unwrap().starts_with("variable db_sslmode: "));
        // Storage or Postgres refused by the host (not in allowed_outbound_hosts): the same, never a 503.
        let e = ApiError::from(storage::StorageError::Denied("PUT ?uploads".into()));
        assert_eq!((e.status(), e.problem().code()), (500, Code::Misconfigured));
        let e = ApiError::from(store::StoreError::Denied {
            context: "open",
            message: "address postgres://db:5432 is not permitted".into(),
        });
        assert_eq!((e.status(), e.problem().code()), (500, Code::Misconfigured));
    }

    #[test]
    fn database_timeouts_are_upstream_timeouts_with_retry_after() {
        let e = ApiError::from(store::StoreError::Timeout {
            context: "attachment by id",
            message: "no answer within 2000 ms".into(),
        });
        assert_eq!(e.problem().code(), Code::UpstreamTimeout);
        assert!(e.cause().unwrap().contains("attachment by id"));
        let res = e.into_response(&rid());
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "5");
        assert!(
            !res.body().contains("attachment by id"),
            "the statement stays in the log"
        );
        let v: serde_json::Value = serde_json::from_str(res.body()).unwrap();
        assert_eq!(v["code"], "upstream_timeout");

        let down = ApiError::from(store::StoreError::Unavailable {
            context: "open",
            message: "connection refused".into(),
        });
        assert_eq!(down.problem().code(), Code::ServiceUnavailable);
    }

    #[test]
    fn unavailable_and_extra_headers() {
        let e = ApiError::unavailable("redis down").with_header("X-Extra", "1");
        let res = e.into_response(&rid());
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "5");
        assert_eq!(res.headers()["x-extra"], "1");
        let e = ApiError::from(Code::RateLimited).with_headers([("Retry-After", "7".to_owned())]);
        assert_eq!(e.into_response(&rid()).headers()["retry-after"], "7");
    }
}
