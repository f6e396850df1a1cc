//! The worker's I/O: claim jobs (Postgres), fetch objects (S3), scan (clamd), post verdicts (the
//! scan callback), complete jobs; and the loop that runs them with bounded concurrency.
//!
//! A job's life: `scan_claim_jobs(worker, lease, n)` hands out jobs (expired leases first, then pending
//! ones, `FOR UPDATE SKIP LOCKED`: workers side by side take disjoint jobs) → GetObject streamed to
//! clamd INSTREAM → the verdict, signed, POSTed to the callback (which applies it to the content and
//! may complete the job itself) → `scan_complete_job(job, worker, NULL)`. Any transient failure
//! (clamd, storage, callback 5xx or unreachable, a job running into its deadline) hands the job back
//! with `scan_complete_job(job, worker, reason)`: the database retries it with backoff and, after the
//! last attempt, gives the content the verdict `error`. A worker that dies leaves its lease to expire;
//! the next claim takes the job over.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use store::StoreError;
use store::scan_jobs::{self, JobState};
use store::tls::PgTls;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_postgres::Client;
use uuid::Uuid;

use crate::backoff::{Backoff, job_deadline};
use crate::clamd::{Clamd, ScanError};
use crate::config::Config;
use crate::log;
use crate::verdict::{self, Status, Verdict};

/// A claimed job.
pub use store::scan_jobs::ClaimedJob as Job;

/// The database, as the scanner role (`attachments_scanner`: the queue's two functions and nothing
/// else), through the store's statements. One pipelined
/// connection, re-opened when it drops.
///
/// Connecting and each call wait at most `timeout` (`SCAN_DB_TIMEOUT_SECS`): a Postgres that stops
/// answering would otherwise hold the claim loop, or a finished job's completion, forever. A call
/// that timed out leaves its connection behind (its statement may still be queued on it; both
/// statements are single function calls, so no transaction is left open) and the next call connects
/// afresh.
///
/// TLS follows the URL's `sslmode` (`store::tls`: rustls, verified against the system roots and
/// `PGSSLROOTCERT`), decided once at start.
pub struct Db {
    config: tokio_postgres::Config,
    tls: PgTls,
    timeout: Duration,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
}

impl Db {
    /// A database at `url`; an unusable URL or TLS setting is an error now, not at the first call.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| format!("database URL: {e}"))?;
        let tls = PgTls::for_config(&config).map_err(|e| e.to_string())?;
        Ok(Self {
            config,
            tls,
            timeout,
            client: tokio::sync::Mutex::new(None),
        })
    }

    fn timed_out(&self, context: &'static str) -> StoreError {
        StoreError::Timeout {
            context,
            message: format!("no answer within {} ms", self.timeout.as_millis()),
        }
    }

    /// Runs `call` on the connection within the deadline; past it the connection is dropped.
    async fn bounded<T>(
        &self,
        context: &'static str,
        call: impl AsyncFnOnce(Arc<Client>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let c = self.client().await?;
        match tokio::time::timeout(self.timeout, call(c.clone())).await {
            Ok(r) => r,
            Err(_) => {
                let mut slot = self.client.lock().await;
                if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, &c)) {
                    *slot = None;
                }
                Err(self.timed_out(context))
            }
        }
    }

    async fn client(&self) -> Result<Arc<Client>, StoreError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        // A broken connection shows up as an error on the next query; the client is then re-opened.
        let client = tokio::time::timeout(self.timeout, self.tls.connect(&self.config))
            .await
            .map_err(|_| self.timed_out("connect"))?
            .map_err(|e| StoreError::Unavailable {
                context: "connect",
                message: e.to_string(),
            })?;
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }

    pub async fn claim(
        &self,
        worker: &str,
        lease_secs: u32,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        self.bounded("scan_claim_jobs", async |c| {
            scan_jobs::claim(
                &*c,
                worker,
                lease_secs,
                u32::try_from(limit).unwrap_or(u32::MAX),
            )
            .await
        })
        .await
    }

    /// `Pending` (retried later), `Failed` (attempts exhausted), `NotOwner` (the lease passed to
    /// another worker, or the callback completed the job already) or `Done`.
    pub async fn complete(
        &self,
        job: Uuid,
        worker: &str,
        error: Option<&str>,
    ) -> Result<JobState, StoreError> {
        self.bounded("scan_complete_job", async |c| {
            scan_jobs::complete(&*c, job, worker, error).await
        })
        .await
    }
}

/// What became of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The callback accepted the verdict.
    Posted(Status),
    /// The callback answered that there is nothing to apply it to, or that a newer verdict is in force.
    Moot { status: Status, http: u16 },
    /// Not decided this time; the database retries the job later.
    Retry(String),
}

/// How the callback answered one POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackAnswer {
    Accepted,
    /// 404 (unknown content: deleted meanwhile) or 409 (a newer verdict is in force).
    Moot(u16),
    /// Worth trying again in a moment (5xx, 408, 429, network).
    Transient(String),
    /// Will not change by retrying now (401/403: our secret; 400/422: our body). The job goes back to
    /// the database, so an operator who fixes the secret sees the backlog drain.
    Refused(String),
}

/// Classifies a callback status code.
pub fn classify_callback(status: u16) -> CallbackAnswer {
    match status {
        200..=299 => CallbackAnswer::Accepted,
        404 | 409 => CallbackAnswer::Moot(status),
        408 | 429 | 500..=599 => {
            CallbackAnswer::Transient(format!("scan callback answered {status}"))
        }
        401 | 403 => CallbackAnswer::Refused(format!(
            "scan callback refused the signature ({status}): check SCAN_CALLBACK_SECRET and the clock"
        )),
        _ => CallbackAnswer::Refused(format!("scan callback answered {status}")),
    }
}

/// The worker: shared by its job tasks.
pub struct Worker {
    cfg: Config,
    db: Db,
    http: reqwest::Client,
    storage_http: reqwest::Client,
    clamd: Clamd,
    engine: Mutex<Option<(String, Instant)>>,
    in_flight: Mutex<HashSet<Uuid>>,
}

/// Counters for the final log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub jobs: u64,
    pub posted: u64,
    pub retried: u64,
}

impl Worker {
    pub fn new(cfg: Config) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "attachments-scan-worker/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        // Storage GETs on a fresh connection each: on a reused keep-alive connection a server that
        // writes headers and body separately without TCP_NODELAY (Garage does) meets the client's
        // delayed ACK, and every small object costs 40 ms instead of 2 (measured: 4 KiB job 54 ms
        // -> a few ms). A new loopback or private-network connection per object is cheap next to a scan.
        let storage_http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "attachments-scan-worker/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        Ok(Self {
            storage_http,
            db: Db::new(&cfg.database_url, cfg.db_timeout).map_err(anyhow::Error::msg)?,
            clamd: Clamd::new(cfg.clamd_addr.clone(), cfg.clamd_timeout),
            http,
            cfg,
            engine: Mutex::new(None),
            in_flight: Mutex::new(HashSet::new()),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn clamd(&self) -> &Clamd {
        &self.clamd
    }

    /// The engine name for verdicts (`VERSION`, refreshed every 5 minutes: it carries the database version).
    async fn engine(&self) -> String {
        if let Some((name, at)) = self.engine.lock().unwrap().clone()
            && at.elapsed() < Duration::from_secs(300)
        {
            return name;
        }
        match self.clamd.version().await {
            Ok(v) if !v.is_empty() => {
                // The callback accepts engine names up to 100 characters.
                let v: String = v.chars().take(100).collect();
                *self.engine.lock().unwrap() = Some((v.clone(), Instant::now()));
                v
            }
            _ => "ClamAV".to_owned(),
        }
    }

    /// Decides the verdict for a job, or why not now.
    async fn scan(&self, job: &Job) -> Result<Verdict, String> {
        let cap = self.cfg.max_scan_bytes;
        let size = u64::try_from(job.size_bytes).unwrap_or(0);
        if size > cap {
            return Ok(verdict::too_large(size, cap));
        }
        let key = storage::ObjectKey::from_stored(&job.storage_key)
            .map_err(|e| format!("storage key: {e}"))?;
        let req = storage::request::Signer::new(&self.cfg.storage)
            .get_object(&key, None, SystemTime::now())
            .map_err(|e| format!("signing GetObject: {e}"))?;
        let mut rb = self.storage_http.get(&req.url);
        for (n, v) in &req.headers {
            if n != "content-length" {
                rb = rb.header(n, v);
            }
        }
        let mut res = rb
            .send()
            .await
            .map_err(|e| format!("storage GetObject: {}", without_url(&e)))?;
        if res.status().as_u16() != 200 {
            return Err(format!(
                "storage GetObject answered {}",
                res.status().as_u16()
            ));
        }
        match self.clamd.instream(&mut res, cap).await {
            Ok(answer) => verdict::from_answer(&answer),
            Err(ScanError::TooLarge { cap }) => Ok(verdict::too_large(size.max(cap + 1), cap)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// POSTs the verdict: the body is serialised once and signed with the current time; transient
    /// answers are retried a few times within the job (re-signed, same bytes).
    async fn post(&self, job: &Job, v: &Verdict) -> CallbackAnswer {
        let engine = self.engine().await;
        let body = match verdict::callback_body(
            job.tenant_id,
            &job.content_sha256,
            v,
            &engine,
            log::now_ms(),
        ) {
            Ok(b) => b,
            Err(e) => return CallbackAnswer::Refused(format!("building the callback body: {e}")),
        };
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        loop {
            let t = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let signature = scan_core::signature::sign(&self.cfg.callback_secret, t, &body);
            let answer = match self
                .http
                .post(&self.cfg.callback_url)
                .timeout(Duration::from_secs(30))
                .header("content-type", "application/json")
                .header(scan_core::signature::HEADER, signature)
                .body(body.clone())
                .send()
                .await
            {
                Ok(res) => {
                    let problem = res
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.contains("json"));
                    match classify_callback(res.status().as_u16()) {
                        // The contract's 404 (unknown target) is problem+json; a bare 404 means no
                        // callback route at that URL: keep the job rather than drop the verdict.
                        CallbackAnswer::Moot(404) if !problem => CallbackAnswer::Refused(
                            "scan callback URL answered 404 without a problem document: is SCAN_CALLBACK_URL right?"
                                .into(),
                        ),
                        other => other,
                    }
                }
                Err(e) => CallbackAnswer::Transient(format!("scan callback: {}", without_url(&e))),
            };
            match answer {
                CallbackAnswer::Transient(_) if backoff.attempts() < 3 => {
                    tokio::time::sleep(backoff.next_delay()).await
                }
                other => return other,
            }
        }
    }

    /// Scans and posts; records how long the scan (storage + clamd) took in `scan_ms`.
    async fn process(&self, job: &Job, scan_ms: &std::sync::atomic::AtomicU64) -> Outcome {
        let started = Instant::now();
        let scanned = self.scan(job).await;
        scan_ms.store(
            started.elapsed().as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let v = match scanned {
            Ok(v) => v,
            Err(reason) => return Outcome::Retry(reason),
        };
        match self.post(job, &v).await {
            CallbackAnswer::Accepted => Outcome::Posted(v.status),
            CallbackAnswer::Moot(http) => Outcome::Moot {
                status: v.status,
                http,
            },
            CallbackAnswer::Transient(r) | CallbackAnswer::Refused(r) => Outcome::Retry(r),
        }
    }

    async fn complete(&self, job: Uuid, error: Option<&str>) -> Option<JobState> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        loop {
            match self.db.complete(job, &self.cfg.worker_name, error).await {
                Ok(state) => return Some(state),
                Err(e) if backoff.attempts() < 4 => {
                    log::warn(
                        "job.complete_retry",
                        json!({"job": job.to_string(), "error": e.to_string()}),
                    );
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => {
                    // The lease expires and another claim takes the job over.
                    log::error(
                        "job.complete_failed",
                        json!({"job": job.to_string(), "error": e.to_string()}),
                    );
                    return None;
                }
            }
        }
    }

    /// Runs one claimed job to the end (bounded by the lease) and completes it.
    pub async fn handle(&self, job: Job) -> Outcome {
        let started = Instant::now();
        let deadline = job_deadline(self.cfg.lease_secs);
        let scan_ms = std::sync::atomic::AtomicU64::new(0);
        let outcome = tokio::time::timeout(deadline, self.process(&job, &scan_ms))
            .await
            .unwrap_or_else(|_| {
                Outcome::Retry(format!(
                    "gave up after {} ms (lease {} s)",
                    deadline.as_millis(),
                    self.cfg.lease_secs
                ))
            });
        let error = match &outcome {
            Outcome::Retry(reason) => Some(reason.as_str()),
            _ => None,
        };
        let state = self.complete(job.id, error).await;
        let mut fields = json!({
            "job": job.id.to_string(),
            "tenant": job.tenant_id.to_string(),
            "blob": job.blob_id.to_string(),
            "bytes": job.size_bytes,
            "attempt": job.attempts,
            // Whole job; of which storage + clamd. The rest is mostly the callback.
            "ms": started.elapsed().as_millis() as u64,
            "scan_ms": scan_ms.load(std::sync::atomic::Ordering::Relaxed),
            // After an accepted verdict `not_owner` is the usual answer: the callback completed the job.
            "job_state": state.map(JobState::as_str),
        });
        match &outcome {
            Outcome::Posted(s) => {
                fields["status"] = s.as_str().into();
                log::info("job.done", fields);
            }
            Outcome::Moot { status, http } => {
                fields["status"] = status.as_str().into();
                fields["callback"] = (*http).into();
                log::warn("job.moot", fields);
            }
            Outcome::Retry(reason) => {
                fields["reason"] = reason.as_str().into();
                log::warn("job.retry", fields);
            }
        }
        outcome
    }

    /// Claims and processes jobs until `shutdown` (or, with `--once`, until nothing is claimable).
    pub async fn run(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Summary> {
        let mut tasks: JoinSet<Outcome> = JoinSet::new();
        let mut summary = Summary::default();
        let mut db_backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let count = |summary: &mut Summary, o: Outcome| match o {
            Outcome::Retry(_) => summary.retried += 1,
            _ => summary.posted += 1,
        };
        loop {
            if *shutdown.borrow() {
                break;
            }
            while let Some(done) = tasks.try_join_next() {
                if let Ok(o) = done {
                    count(&mut summary, o);
                }
            }
            let remaining = self
                .cfg
                .max_jobs
                .map_or(u64::MAX, |m| m.saturating_sub(summary.jobs));
            if remaining == 0 {
                break;
            }
            let free = self
                .cfg
                .concurrency
                .saturating_sub(tasks.len())
                .min(remaining.min(1000) as usize);
            if free == 0 {
                tokio::select! {
                    Some(done) = tasks.join_next() => if let Ok(o) = done { count(&mut summary, o) },
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let jobs = match self
                .db
                .claim(&self.cfg.worker_name, self.cfg.lease_secs, free)
                .await
            {
                Ok(jobs) => {
                    db_backoff.reset();
                    jobs
                }
                Err(e) => {
                    if self.cfg.once {
                        return Err(anyhow::anyhow!("claiming jobs: {e}"));
                    }
                    let wait = db_backoff.next_delay();
                    log::error(
                        "claim.failed",
                        json!({"error": e.to_string(), "retry_ms": wait.as_millis() as u64}),
                    );
                    sleep_or_shutdown(wait, &mut shutdown).await;
                    continue;
                }
            };
            if jobs.is_empty() {
                if self.cfg.once {
                    match tasks.join_next().await {
                        Some(done) => {
                            if let Ok(o) = done {
                                count(&mut summary, o);
                            }
                            continue;
                        }
                        None => break,
                    }
                }
                tokio::select! {
                    Some(done) = tasks.join_next() => if let Ok(o) = done { count(&mut summary, o) },
                    _ = sleep_or_shutdown(self.cfg.poll_interval, &mut shutdown) => {}
                }
                continue;
            }
            for job in jobs {
                summary.jobs += 1;
                log::info(
                    "job.claimed",
                    json!({"job": job.id.to_string(), "bytes": job.size_bytes, "attempt": job.attempts}),
                );
                self.in_flight.lock().unwrap().insert(job.id);
                let me = self.clone();
                tasks.spawn(async move {
                    let id = job.id;
                    let outcome = me.handle(job).await;
                    me.in_flight.lock().unwrap().remove(&id);
                    outcome
                });
            }
        }

        // Stopping: claim nothing more; let running jobs finish within their deadline.
        if !tasks.is_empty() {
            log::info("worker.draining", json!({"jobs": tasks.len()}));
        }
        let grace = job_deadline(self.cfg.lease_secs) + Duration::from_secs(5);
        let drained = tokio::time::timeout(grace, async {
            while let Some(done) = tasks.join_next().await {
                if let Ok(o) = done {
                    count(&mut summary, o);
                }
            }
        })
        .await;
        if drained.is_err() {
            tasks.abort_all();
            let left: Vec<Uuid> = self.in_flight.lock().unwrap().drain().collect();
            for job in left {
                self.complete(job, Some("worker stopped before finishing"))
                    .await;
                summary.retried += 1;
            }
        }
        Ok(summary)
    }
}

async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.changed() => {}
    }
}

/// A reqwest error without its URL (which is harmless here, but keeps log lines short and stable).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "reading the body failed"
    } else {
        "request failed"
    };
    let mut msg = kind.to_owned();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_statuses() {
        assert_eq!(classify_callback(204), CallbackAnswer::Accepted);
        assert_eq!(classify_callback(200), CallbackAnswer::Accepted);
        assert_eq!(classify_callback(404), CallbackAnswer::Moot(404));
        assert_eq!(classify_callback(409), CallbackAnswer::Moot(409));
        for s in [500, 502, 503, 429, 408] {
            assert!(
                matches!(classify_callback(s), CallbackAnswer::Transient(_)),
                "{s}"
            );
        }
        for s in [400, 401, 403, 422] {
            assert!(
                matches!(classify_callback(s), CallbackAnswer::Refused(_)),
                "{s}"
            );
        }
    }
}
