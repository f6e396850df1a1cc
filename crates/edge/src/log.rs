//! Component log lines (JSON, one per line, on stderr, which the host collects):
//!
//! * [`RequestLog`]: one line per request a component decides about, with the caller's user and
//!   tenant once known, the outcome, and the internal cause of a failure;
//! * [`event`]: a security event (login failed, token reuse, rate-limit backend down, ...) that
//!   must be visible even when it cannot be written to the audit table (no tenant known).
//!
//! Never logged: tokens, passwords, keys, request bodies, query strings (they may carry signed
//! URLs' signatures).

use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

/// Fields of one request line.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestLog {
    /// Unix milliseconds when the line is written.
    pub ts: i64,
    /// Which component wrote it.
    pub component: &'static str,
    /// The request id (as answered in `x-request-id`).
    pub request_id: String,
    /// HTTP method.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Status answered.
    pub status: u16,
    /// Milliseconds spent in this component (inner components included for a middleware).
    pub duration_ms: f64,
    /// The caller, once authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The caller's tenant, once authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The caller's role, once authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// A short machine-readable outcome (`ok`, `invalid_token`, `forbidden`, `rate_limited`, ...).
    pub outcome: String,
    /// Why, when more precise than the outcome (e.g. `unknown_kid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Internal cause of a server-side failure (never sent to the client).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    #[serde(skip)]
    started: Option<Instant>,
}

impl RequestLog {
    /// Starts the line for a request (the clock starts now).
    pub fn start(component: &'static str, request_id: &str, method: &str, path: &str) -> Self {
        Self {
            ts: 0,
            component,
            request_id: request_id.to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
            status: 0,
            duration_ms: 0.0,
            user_id: None,
            tenant_id: None,
            role: None,
            outcome: "ok".to_owned(),
            reason: None,
            cause: None,
            started: Some(Instant::now()),
        }
    }

    /// Records why a request failed: the error's internal cause (for the log only, never the client)
    /// and, unless an earlier step already named the outcome, the error's stable problem code.
    pub fn record_error(&mut self, error: &crate::ApiError) {
        if let Some(cause) = error.cause() {
            self.cause = Some(cause.to_owned());
        }
        if self.outcome == "ok" {
            self.outcome = error.problem().code().as_str().to_owned();
        }
    }

    /// Records the status and stamps the time; returns the JSON line.
    pub fn finish(&mut self, status: u16) -> String {
        self.status = status;
        self.ts = unix_ms();
        if let Some(t) = self.started {
            self.duration_ms = (t.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
        }
        if status >= 400 && self.outcome == "ok" {
            self.outcome = format!("http_{status}");
        }
        serde_json::to_string(self).unwrap_or_default()
    }

    /// [`RequestLog::finish`] and write the line to stderr.
    pub fn emit(&mut self, status: u16) {
        let line = self.finish(status);
        eprintln!("{line}");
    }
}

/// Writes a security/operational event line to stderr: `{"ts","component","event",...fields}`.
pub fn event(component: &'static str, name: &str, fields: Value) {
    eprintln!("{}", event_line(component, name, fields));
}

/// The JSON text of an [`event`] line.
pub fn event_line(component: &'static str, name: &str, fields: Value) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("ts".into(), unix_ms().into());
    obj.insert("component".into(), component.into());
    obj.insert("event".into(), name.into());
    if let Value::Object(f) = fields {
        for (k, v) in f {
            obj.entry(k).or_insert(v);
        }
    }
    Value::Object(obj).to_string()
}

fn unix_ms() -> i64 {
    auth_core::unix_now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_error_keeps_the_first_outcome_and_the_cause() {
        let mut l = RequestLog::start("c", "r1", "GET", "/x");
        l.record_error(&crate::ApiError::internal("db down"));
        assert_eq!(l.outcome, "internal_error");
        assert_eq!(l.cause.as_deref(), Some("db down"));
        l.record_error(&crate::ApiError::from(problem::Code::NotFound));
        assert_eq!(
            l.outcome, "internal_error",
            "an earlier outcome is not overwritten"
        );
    }

    #[test]
    fn request_line_has_identity_and_outcome() {
        let mut l = RequestLog::start("mw", "r1", "GET", "/api/v1/auth/me");
        l.user_id = Some("u".into());
        l.tenant_id = Some("t".into());
        l.role = Some("user");
        let v: Value = serde_json::from_str(&l.finish(200)).unwrap();
        assert_eq!(v["component"], "mw");
        assert_eq!(v["requestId"], "r1");
        assert_eq!(v["userId"], "u");
        assert_eq!(v["tenantId"], "t");
        assert_eq!(v["status"], 200);
        assert_eq!(v["outcome"], "ok");
        assert!(v["ts"].as_i64().unwrap() > 1_600_000_000_000);
        assert!(v.get("cause").is_none());

        let mut l = RequestLog::start("mw", "r2", "GET", "/x");
        let v: Value = serde_json::from_str(&l.finish(503)).unwrap();
        assert_eq!(v["outcome"], "http_503", "a failure is never logged as ok");
        assert!(v.get("userId").is_none());
    }

    #[test]
    fn event_fields_cannot_override_the_envelope() {
        let v: Value = serde_json::from_str(&event_line(
            "auth",
            "login_failed",
            serde_json::json!({"event": "spoof", "reason": "unknown_email"}),
        ))
        .unwrap();
        assert_eq!(v["event"], "login_failed");
        assert_eq!(v["component"], "auth");
        assert_eq!(v["reason"], "unknown_email");
    }
}
