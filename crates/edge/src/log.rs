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

    /// Milliseconds since the request started.
    pub fn elapsed_ms(&self) -> u64 {
        self.started
            .map(|t| t.elapsed().as_millis() as u64)
            .unwrap_or(0)
    }

    /// [`RequestLog::finish`] and write the line to stderr.
    pub fn emit(&mut self, status: u16) {
        let line = self.finish(status);
        eprintln!("{line}");
    }
}

/// One finished upload, as the `attachment.processed` event reports it: written once per upload where
/// it is committed (the attachment row exists from then on): the single-request upload's commit
/// (`ingest`) and a direct or tus upload's accepted verification (`scan-callback`). Tenant-scoped ids,
/// sizes and statuses only: no filename, no user, no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    pub attachment: String,
    pub tenant: uuid::Uuid,
    /// Bytes.
    pub size: i64,
    /// The stored type (`detectedMime`).
    pub mime_type: String,
    /// The content's verdict at commit: `pending` when its scan follows, else the verdict the content
    /// already had.
    pub verdict: String,
    /// The tenant held the content already: this upload's copy was not kept.
    pub deduplicated: bool,
    /// From the start of the upload (the request's, or the session's for direct and tus uploads)
    /// to its commit.
    pub processing_ms: u64,
    /// How the bytes came: `request` (one request through ingest), `direct` or `tus`.
    pub upload: &'static str,
}

/// Where the bytes are kept: the S3-compatible bucket is the one backend.
pub const STORAGE_BACKEND: &str = "s3";

impl Processed {
    /// The event's fields.
    pub fn fields(&self) -> Value {
        serde_json::json!({
            "attachmentId": self.attachment,
            "tenantId": self.tenant.to_string(),
            "size": self.size,
            "mimeType": self.mime_type,
            "verdict": self.verdict,
            "deduplicated": self.deduplicated,
            "processingMs": self.processing_ms,
            "upload": self.upload,
            "storage": STORAGE_BACKEND,
        })
    }

    /// Writes the `attachment.processed` line of `component`.
    pub fn emit(&self, component: &'static str) {
        event(component, "attachment.processed", self.fields());
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
    #[test]
    fn the_processed_event_line() {
        let p = super::Processed {
            attachment: uuid::Uuid::nil().to_string(),
            tenant: uuid::Uuid::max(),
            size: 42,
            mime_type: "application/pdf".into(),
            verdict: "pending".into(),
            deduplicated: true,
            processing_ms: 17,
            upload: "tus",
        };
        let line = super::event_line("ingest", "attachment.processed", p.fields());
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "attachment.processed");
        assert_eq!(v["component"], "ingest");
        assert_eq!(v["attachmentId"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(v["tenantId"], "ffffffff-ffff-ffff-ffff-ffffffffffff");
        assert_eq!(
            (v["size"].as_i64(), v["processingMs"].as_u64()),
            (Some(42), Some(17))
        );
        assert_eq!(
            (v["verdict"].as_str(), v["deduplicated"].as_bool()),
            (Some("pending"), Some(true))
        );
        assert_eq!(
            (v["upload"].as_str(), v["storage"].as_str()),
            (Some("tus"), Some("s3"))
        );
        assert!(!line.contains('\n'));
    }

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
