//! Direct uploads, the worker's I/O: verifying a completed upload (claim → one read of the object,
//! [`crate::verify`] → the signed report to the upload-verification route → what its answer asks:
//! delete the unused object, answer the new content's scan job with the pass's verdict) and the
//! janitor (abort expired multipart uploads, delete unused objects, forget expired sessions).
//!
//! A verification that fails for a reason that may pass (storage, the callback unreachable or
//! `5xx`, the deadline) is handed back with `upload_release_verification`: the database retries it
//! with backoff and, after [`MAX_VERIFY_ATTEMPTS`] claims, rejects the upload
//! (`verification_failed`). A clamd failure is not one of them: the upload is decided without a
//! verdict, and the scan job the callback creates for new content scans it later.
//!
//! The janitor never retries within a run: a storage or database error is logged and the row's
//! lease left to expire, so the next run takes it again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use scan_core::verification::{self as wire, Answer, AnswerState, Decision};
use serde_json::json;
use store::upload_queue::{ClaimedVerification, JanitorAction, JanitorTask};
use tokio::sync::watch;
use uuid::Uuid;

use crate::backoff::{Backoff, job_deadline};
use crate::log;
use crate::storage::Aborted;
use crate::verify::{self, Scan};
use crate::worker::{CallbackAnswer, Worker};

/// Claims of one upload before the database rejects it with `verification_failed` (as many as a
/// scan job gets).
pub const MAX_VERIFY_ATTEMPTS: u32 = 5;

/// Janitor rows claimed at once, and the most batches of one run (the rest waits for the next).
const JANITOR_BATCH: u32 = 100;
const JANITOR_MAX_BATCHES: usize = 20;

/// What became of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyOutcome {
    /// The callback recorded the outcome: the session is `done` or `rejected`.
    Recorded(AnswerState),
    /// The callback had nothing to record it on: `404` (unknown upload) or `409` (recorded
    /// already).
    Moot(u16),
    /// Not decided this time; the database retries it later.
    Retry(String),
}

/// What one verification did, for its log line.
#[derive(Debug, Default)]
struct Trace {
    size: Option<u64>,
    outcome: Option<&'static str>,
    code: Option<&'static str>,
    verdict: Option<&'static str>,
    verdict_posted: Option<bool>,
    object_deleted: Option<bool>,
    scan_error: Option<String>,
}

/// What the janitor did in one run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JanitorSummary {
    pub claimed: u64,
    pub aborted: u64,
    pub deleted: u64,
    pub forgotten: u64,
    /// Rows left for a later run (storage or database errors, a row that changed meanwhile).
    pub left: u64,
}

impl Worker {
    /// Verifies one claimed upload (bounded by the lease) and hands it back when that failed for
    /// now; one log line either way.
    pub async fn handle_verification(&self, v: ClaimedVerification) -> VerifyOutcome {
        let started = Instant::now();
        let deadline = job_deadline(self.cfg.lease_secs);
        let mut trace = Trace::default();
        let outcome = tokio::time::timeout(deadline, self.verify(&v, &mut trace))
            .await
            .unwrap_or_else(|_| {
                VerifyOutcome::Retry(format!(
                    "gave up after {} ms (lease {} s)",
                    deadline.as_millis(),
                    self.cfg.lease_secs
                ))
            });
        let released = match &outcome {
            VerifyOutcome::Retry(reason) => self.release(v.upload_id, reason).await,
            _ => None,
        };
        let mut fields = json!({
            "upload": v.upload_id.to_string(),
            "tenant": v.tenant_id.to_string(),
            "claimed_bytes": v.claimed_size,
            "bytes": trace.size,
            "attempt": v.attempts,
            "outcome": trace.outcome,
            "code": trace.code,
            "verdict": trace.verdict,
            "verdict_posted": trace.verdict_posted,
            "object_deleted": trace.object_deleted,
            "scan_error": trace.scan_error,
            "ms": started.elapsed().as_millis() as u64,
        });
        match &outcome {
            VerifyOutcome::Recorded(state) => {
                fields["state"] = state.as_str().into();
                log::info("upload.verified", fields);
            }
            VerifyOutcome::Moot(http) => {
                fields["callback"] = (*http).into();
                log::warn("upload.moot", fields);
            }
            VerifyOutcome::Retry(reason) => {
                fields["reason"] = reason.as_str().into();
                fields["release"] = released.map(|s| s.as_str()).into();
                log::warn("upload.retry", fields);
            }
        }
        outcome
    }

    /// Hands a verification back, retrying the database briefly; `None` when it could not (the
    /// lease then expires and a later claim takes the upload again).
    pub(crate) async fn release(
        &self,
        upload: Uuid,
        reason: &str,
    ) -> Option<store::upload_queue::ReleaseState> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        loop {
            match self
                .db
                .release_verification(upload, &self.cfg.worker_name, reason)
                .await
            {
                Ok(state) => return Some(state),
                Err(e) if backoff.attempts() < 4 => {
                    log::warn(
                        "upload.release_retry",
                        json!({"upload": upload.to_string(), "error": e.to_string()}),
                    );
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => {
                    log::error(
                        "upload.release_failed",
                        json!({"upload": upload.to_string(), "error": e.to_string()}),
                    );
                    return None;
                }
            }
        }
    }

    /// Reads the object once, reports, and does what the answer asks.
    async fn verify(&self, v: &ClaimedVerification, trace: &mut Trace) -> VerifyOutcome {
        let mut object = match self.storage.get(&v.storage_key).await {
            Ok(o) => o,
            Err(reason) => return VerifyOutcome::Retry(reason),
        };
        let name = verify::claims_policy(
            &v.filename,
            v.declared_mime.as_deref(),
            &self.cfg.extensions,
        );
        let ext = name.as_ref().ok().and_then(|e| e.as_deref());
        let pass = match verify::one_pass(
            &mut object.body,
            object.length,
            v.declared_mime.as_deref(),
            ext,
            self.clamd(),
            self.cfg.max_scan_bytes,
        )
        .await
        {
            Ok(p) => p,
            Err(reason) => return VerifyOutcome::Retry(reason),
        };
        let report = match verify::decide(v, &name, &pass) {
            Ok(report) => report,
            Err(reason) => return VerifyOutcome::Retry(reason),
        };
        let scan = pass.scan;
        trace.size = Some(report.size);
        trace.outcome = Some(report.outcome());
        trace.code = report.reject_code().map(wire::RejectCode::as_str);
        match &scan {
            Scan::Verdict(verdict) => trace.verdict = Some(verdict.status.as_str()),
            Scan::Failed(e) => trace.scan_error = Some(e.clone()),
        }

        let (answer, body) = self
            .post_signed(
                &self.cfg.verification_url,
                "SCAN_VERIFICATION_URL",
                &report.to_json(),
            )
            .await;
        let answer = match answer {
            CallbackAnswer::Accepted => match Answer::parse(&body) {
                Ok(a) => a,
                Err(e) => {
                    return VerifyOutcome::Retry(format!(
                        "the upload-verification answer is not understood: {e}"
                    ));
                }
            },
            CallbackAnswer::Moot(http) => return VerifyOutcome::Moot(http),
            CallbackAnswer::Transient(r) | CallbackAnswer::Refused(r) => {
                return VerifyOutcome::Retry(r);
            }
        };

        if answer.delete_object {
            trace.object_deleted = Some(self.delete_unused(v.upload_id, &v.storage_key).await);
        }
        // The new content's scan job, answered with this pass's verdict: the content is judged
        // without a second read. Without a verdict (clamd failed) the job stays in the queue.
        if let (AnswerState::Done, Some(_), Decision::Accepted, Scan::Verdict(verdict)) =
            (answer.state, answer.scan_job_id, &report.decision, &scan)
        {
            let posted = self
                .post_verdict(v.tenant_id, report.content.sha256.as_str(), verdict)
                .await;
            if let CallbackAnswer::Transient(r) | CallbackAnswer::Refused(r) = &posted {
                // The scan job is still queued: it scans the content again.
                log::warn(
                    "upload.verdict_not_posted",
                    json!({"upload": v.upload_id.to_string(), "reason": r}),
                );
            }
            trace.verdict_posted = Some(posted == CallbackAnswer::Accepted);
        }
        VerifyOutcome::Recorded(answer.state)
    }

    /// Deletes an unused object and records it; false when either step failed (the row stays
    /// marked unused and the janitor deletes it later).
    async fn delete_unused(&self, upload: Uuid, key: &str) -> bool {
        if let Err(e) = self.storage.delete(key).await {
            log::warn(
                "upload.delete_failed",
                json!({"upload": upload.to_string(), "error": e}),
            );
            return false;
        }
        match self.db.object_deleted(upload, &self.cfg.worker_name).await {
            Ok(recorded) => recorded,
            Err(e) => {
                log::warn(
                    "upload.delete_unrecorded",
                    json!({"upload": upload.to_string(), "error": e.to_string()}),
                );
                false
            }
        }
    }

    /// The janitor every `every` until `shutdown`.
    pub async fn janitor_loop(
        self: Arc<Self>,
        every: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            // A failed run is logged by the pass; the next one retries.
            let _ = self.janitor_pass(&shutdown).await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One janitor run: claims rows in batches until none are left (or [`JANITOR_MAX_BATCHES`]),
    /// doing each row's action in turn. `Err` only when the first claim failed.
    pub async fn janitor_pass(
        &self,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<JanitorSummary, store::StoreError> {
        let started = Instant::now();
        let mut summary = JanitorSummary::default();
        for batch in 0..JANITOR_MAX_BATCHES {
            let tasks = match self
                .db
                .janitor_claim(&self.cfg.worker_name, self.cfg.lease_secs, JANITOR_BATCH)
                .await
            {
                Ok(t) => t,
                Err(e) => {
                    log::error("janitor.claim_failed", json!({"error": e.to_string()}));
                    if batch == 0 {
                        return Err(e);
                    }
                    break;
                }
            };
            let full = tasks.len() == JANITOR_BATCH as usize;
            for task in tasks {
                summary.claimed += 1;
                let done = self.janitor_task(&task).await;
                self.metrics
                    .janitor(done.map_or("left", JanitorAction::as_str));
                match done {
                    Some(JanitorAction::Abort) => summary.aborted += 1,
                    Some(JanitorAction::Delete) => summary.deleted += 1,
                    Some(JanitorAction::Forget) => summary.forgotten += 1,
                    None => summary.left += 1,
                }
                // Rows claimed but not done keep their lease until it expires: a stop between rows
                // loses nothing.
                if *shutdown.borrow() {
                    break;
                }
            }
            if !full || *shutdown.borrow() {
                break;
            }
        }
        if summary.claimed > 0 {
            log::info(
                "janitor.run",
                json!({"claimed": summary.claimed, "aborted": summary.aborted, "deleted": summary.deleted,
                       "forgotten": summary.forgotten, "left": summary.left, "ms": started.elapsed().as_millis() as u64}),
            );
        }
        Ok(summary)
    }

    /// One row: its action, then its record; which action completed, `None` when the row is left
    /// (an error, logged, or a row that changed meanwhile).
    async fn janitor_task(&self, t: &JanitorTask) -> Option<JanitorAction> {
        let worker = &self.cfg.worker_name;
        let fields = |extra: serde_json::Value| {
            let mut f = json!({"upload": t.upload_id.to_string(), "tenant": t.tenant_id.to_string(),
                               "action": t.action.as_str()});
            if let (Some(f), serde_json::Value::Object(extra)) = (f.as_object_mut(), extra) {
                f.extend(extra);
            }
            f
        };
        let storage = match t.action {
            JanitorAction::Abort => match self
                .storage
                .abort_multipart(&t.storage_key, &t.s3_upload_id)
                .await
            {
                Ok(Aborted::Aborted) => Ok("aborted"),
                // No upload to abort: it was aborted before, or completed at storage without the
                // session ever turning verifying (the app's completion failed after storage's).
                // The object of such a completion is nobody's content: delete it too.
                Ok(Aborted::NoSuchUpload) => self
                    .storage
                    .delete(&t.storage_key)
                    .await
                    .map(|()| "no_such_upload"),
                Err(e) => Err(e),
            },
            JanitorAction::Delete => self
                .storage
                .delete(&t.storage_key)
                .await
                .map(|()| "deleted"),
            JanitorAction::Forget => Ok("-"),
        };
        let storage = match storage {
            Ok(s) => s,
            Err(e) => {
                log::warn("janitor.storage_failed", fields(json!({"error": e})));
                return None;
            }
        };
        let recorded = match t.action {
            JanitorAction::Delete => self.db.object_deleted(t.upload_id, worker).await,
            JanitorAction::Abort | JanitorAction::Forget => {
                self.db.forget_session(t.upload_id, worker).await
            }
        };
        match recorded {
            Ok(true) => {
                log::info("janitor.done", fields(json!({"storage": storage})));
                Some(t.action)
            }
            Ok(false) => {
                // Changed meanwhile (completed in time, claimed by another janitor after our
                // lease expired): nothing to record.
                log::warn("janitor.changed", fields(json!({"storage": storage})));
                None
            }
            Err(e) => {
                log::warn(
                    "janitor.record_failed",
                    fields(json!({"error": e.to_string()})),
                );
                None
            }
        }
    }
}
