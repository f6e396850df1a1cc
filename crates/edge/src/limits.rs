//! Turning rate-limit outcomes into responses: a refusal is `429 rate_limited` with the policy's
//! `RateLimit*` headers and `Retry-After`; an unreachable backend is logged and then either
//! ignored (fail open) or `503` (fail closed), never a 500. The decisions themselves are
//! `auth_core::ratelimit`'s.

use auth_core::ratelimit::{Decision, FailMode, Policy};
use serde_json::json;

use crate::{ApiError, log};

/// The error for a refused request: `429` with `RateLimit-Policy`, `RateLimit`, `Retry-After`.
pub fn refused(policy: &Policy, decision: &Decision) -> ApiError {
    ApiError::new(decision.problem()).with_headers(decision.headers(policy))
}

/// What to do when the limiter's backend failed: logs the failure (always), then `Ok(())` to serve
/// the request anyway (fail open) or the `503` to send (fail closed).
pub fn backend_down(
    component: &'static str,
    mode: FailMode,
    policy: &Policy,
    cause: &str,
) -> Result<(), ApiError> {
    limit_backend_down(component, mode, policy.name(), cause)
}

/// How the Redis glue (`crate::spin::RateLimiter`) words a connection the host refused to open: Redis
/// is not in the component's `allowed_outbound_hosts` (or the list is invalid). No fail mode applies to
/// that: failing open would silently run without limits until someone notices.
pub const HOST_REFUSED: &str = "the host refused the connection (allowed_outbound_hosts)";

/// [`backend_down`] for any limit kept in Redis, named `limit` in the log (a rate-limit policy, the
/// upload slots). A connection the host refused is `500 misconfigured` whatever the fail mode.
pub fn limit_backend_down(
    component: &'static str,
    mode: FailMode,
    limit: &str,
    cause: &str,
) -> Result<(), ApiError> {
    log::event(
        component,
        "ratelimit_backend_down",
        json!({ "mode": mode.to_string(), "policy": limit, "cause": cause }),
    );
    if cause.contains(HOST_REFUSED) {
        return Err(ApiError::misconfigured(format!("redis: {cause}")));
    }
    match mode.on_backend_error() {
        None => Ok(()),
        Some((problem, headers)) => Err(ApiError::new(problem)
            .with_headers(headers)
            .with_cause(format!("rate limiter backend down (fail closed): {cause}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_is_429_with_headers() {
        let p = Policy::per_user_default();
        let d = Decision::after_hit(&p, 51, 12_000);
        let res = refused(&p, &d).into_response(&problem::RequestId::parse("r").unwrap());
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()["retry-after"], "12");
        assert_eq!(res.headers()["ratelimit-policy"], "\"user\";q=50;w=60");
        assert_eq!(res.headers()["ratelimit"], "\"user\";r=0;t=12");
        assert!(res.body().contains("rate_limited"));
    }

    #[test]
    fn fail_open_serves_and_fail_closed_is_503_never_500() {
        let p = Policy::per_user_default();
        assert!(backend_down("t", FailMode::Open, &p, "connection refused").is_ok());
        let refused = format!("redis open: {HOST_REFUSED}");
        for mode in [FailMode::Open, FailMode::Closed] {
            let e = backend_down("t", mode, &p, &refused).unwrap_err();
            assert_eq!(e.problem().code(), problem::Code::Misconfigured);
        }
        let e = backend_down("t", FailMode::Closed, &p, "connection refused").unwrap_err();
        assert_eq!(e.status(), 503);
        assert!(
            e.headers()
                .iter()
                .any(|(n, v)| *n == "Retry-After" && v == "5")
        );
        assert!(e.cause().unwrap().contains("connection refused"));
    }
}
