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
//!
//! The same loop claims direct uploads to verify (`crate::uploads`): scan jobs and verifications
//! share the `SCAN_CONCURRENCY` slots, and the two queues take turns at the first pick of free
//! slots, so neither starves the other. The upload janitor and the retention purge run beside the
//! loop, each on its own interval.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use store::StoreError;
use store::purge;
use store::scan_jobs::{self, JobState};
use store::tls::PgTls;
use store::upload_queue::{self, ClaimedVerification, JanitorTask, ReleaseState};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_postgres::Client;
use uuid::Uuid;

use crate::backoff::{Backoff, job_deadline};
use crate::clamd::{Clamd, ScanError};
use crate::config::Config;
use crate::log;
use crate::metrics::Metrics;
use crate::storage::Storage;
use crate::verdict::{self, Status, Verdict};

/// A claimed job.
pub use store::scan_jobs::ClaimedJob as Job;

/// The database, as the scanner role (`attachments_scanner`: the scan queue's and the upload
/// queue's functions and nothing else), through the store's statements. One pipelined
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

    /// Claims up to `limit` direct uploads to verify (`upload_claim_verifications`).
    pub async fn claim_verifications(
        &self,
        worker: &str,
        lease_secs: u32,
        limit: usize,
    ) -> Result<Vec<ClaimedVerification>, StoreError> {
        self.bounded("upload_claim_verifications", async |c| {
            upload_queue::claim_verifications(
                &*c,
                worker,
                lease_secs,
                u32::try_from(limit).unwrap_or(u32::MAX),
                crate::uploads::MAX_VERIFY_ATTEMPTS,
            )
            .await
        })
        .await
    }

    /// Hands a verification back after a transient failure.
    pub async fn release_verification(
        &self,
        upload: Uuid,
        worker: &str,
        error: &str,
    ) -> Result<ReleaseState, StoreError> {
        self.bounded("upload_release_verification", async |c| {
            upload_queue::release_verification(&*c, upload, worker, error).await
        })
        .await
    }

    /// Claims up to `limit` rows of janitor work.
    pub async fn janitor_claim(
        &self,
        worker: &str,
        lease_secs: u32,
        limit: u32,
    ) -> Result<Vec<JanitorTask>, StoreError> {
        self.bounded("upload_janitor_claim", async |c| {
            upload_queue::janitor_claim(&*c, worker, lease_secs, limit).await
        })
        .await
    }

    /// Records that an unused upload object is deleted.
    pub async fn object_deleted(&self, upload: Uuid, worker: &str) -> Result<bool, StoreError> {
        self.bounded("upload_object_deleted", async |c| {
            upload_queue::object_deleted(&*c, upload, worker).await
        })
        .await
    }

    /// Deletes an expired upload session's row.
    pub async fn forget_session(&self, upload: Uuid, worker: &str) -> Result<bool, StoreError> {
        self.bounded("upload_forget_session", async |c| {
            upload_queue::forget_session(&*c, upload, worker).await
        })
        .await
    }

    /// The keys the database knows in `(after, upto]` (reconcile).
    pub async fn known_keys(
        &self,
        after: &str,
        upto: &str,
        limit: u32,
    ) -> Result<Vec<store::reconcile::KnownKey>, StoreError> {
        self.bounded("reconcile_known_keys", async |c| {
            store::reconcile::known_keys(&*c, after, upto, limit).await
        })
        .await
    }

    /// What a purge would take now (a dry run).
    pub async fn purge_candidates(
        &self,
        grace_days: u32,
        limit: u32,
    ) -> Result<Vec<(purge::Purged, i64)>, StoreError> {
        self.bounded("purge_candidates", async |c| {
            purge::candidates(&*c, grace_days, limit).await
        })
        .await
    }

    /// Marks a blob's object missing (reconcile).
    pub async fn mark_missing(&self, blob: Uuid, key: &str) -> Result<Option<i64>, StoreError> {
        self.bounded("reconcile_mark_missing", async |c| {
            store::reconcile::mark_missing(&*c, blob, key).await
        })
        .await
    }

    /// Clears a blob's missing mark (reconcile).
    pub async fn clear_missing(&self, blob: Uuid) -> Result<bool, StoreError> {
        self.bounded("reconcile_clear_missing", async |c| {
            store::reconcile::clear_missing(&*c, blob).await
        })
        .await
    }

    /// The session of a multipart upload (reconcile).
    pub async fn multipart_session(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<store::reconcile::MultipartSession>, StoreError> {
        self.bounded("reconcile_multipart_session", async |c| {
            store::reconcile::multipart_session(&*c, key, upload_id).await
        })
        .await
    }

    /// Purges one batch of attachments.
    pub async fn purge_attachments(
        &self,
        worker: &str,
        grace_days: u32,
        limit: u32,
    ) -> Result<Vec<purge::Purged>, StoreError> {
        self.bounded("purge_attachments", async |c| {
            purge::purge_attachments(&*c, worker, grace_days, limit).await
        })
        .await
    }

    /// The queue gauges (metrics).
    pub async fn queue_stats(&self) -> Result<store::reconcile::QueueStats, StoreError> {
        self.bounded("worker_queue_stats", async |c| {
            store::reconcile::queue_stats(&*c).await
        })
        .await
    }

    /// Claims purging blobs.
    pub async fn purge_claim_blobs(
        &self,
        worker: &str,
        lease_secs: u32,
        limit: u32,
    ) -> Result<Vec<purge::PurgingBlob>, StoreError> {
        self.bounded("purge_claim_blobs", async |c| {
            purge::claim_blobs(&*c, worker, lease_secs, limit).await
        })
        .await
    }

    /// Forgets a purged blob whose object is gone.
    pub async fn purge_forget_blob(
        &self,
        blob: Uuid,
        worker: &str,
        storage_key: &str,
    ) -> Result<bool, StoreError> {
        self.bounded("purge_forget_blob", async |c| {
            purge::forget_blob(&*c, blob, worker, storage_key).await
        })
        .await
    }

    /// Claims up to `limit` rescans.
    pub async fn claim_rescans(
        &self,
        worker: &str,
        lease_secs: u32,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        self.bounded("scan_claim_rescans", async |c| {
            scan_jobs::claim_rescans(
                &*c,
                worker,
                lease_secs,
                u32::try_from(limit).unwrap_or(u32::MAX),
            )
            .await
        })
        .await
    }

    /// Queues rescans of the content `what` selects until `max_open` are open; how many.
    pub async fn enqueue_rescans(
        &self,
        what: &scan_jobs::RescanSelection<'_>,
        max_open: u32,
    ) -> Result<u64, StoreError> {
        self.bounded("scan_enqueue_rescans", async |c| {
            scan_jobs::enqueue_rescans(&*c, what, max_open).await
        })
        .await
    }

    /// How many rescans are open.
    pub async fn open_rescans(&self) -> Result<u64, StoreError> {
        self.bounded("scan_open_rescans", async |c| {
            scan_jobs::open_rescans(&*c).await
        })
        .await
    }

    /// Whether `tenant` lets the VirusTotal engine upload content VirusTotal does not know.
    pub async fn allows_virustotal_upload(&self, tenant: Uuid) -> Result<bool, StoreError> {
        self.bounded("scan_tenant_allows_upload", async |c| {
            scan_jobs::allows_virustotal_upload(&*c, tenant).await
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

/// Longest answer body read from a callback (they answer with nothing or a small JSON document).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The worker: shared by its job tasks.
pub struct Worker {
    pub(crate) cfg: Config,
    pub(crate) db: Db,
    http: reqwest::Client,
    pub(crate) storage: Storage,
    clamd: Clamd,
    /// The second engine, when `VT_API_KEY` is set.
    virustotal: Option<crate::virustotal::VirusTotal>,
    engine: Mutex<Option<(String, Instant)>>,
    in_flight: Mutex<HashSet<Uuid>>,
    /// Rescans running (they hold at most `SCAN_RESCAN_SLOTS` slots).
    rescans_running: std::sync::atomic::AtomicUsize,
    /// Verifications running, handed back if the worker stops before they end.
    verifying: Mutex<HashSet<Uuid>>,
    pub(crate) metrics: Metrics,
}

/// Counters for the final log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub jobs: u64,
    pub posted: u64,
    pub retried: u64,
    /// Upload verifications claimed, recorded by the callback, and handed back.
    pub verifications: u64,
    pub verified: u64,
    pub verify_retried: u64,
}

/// What a task of the loop did.
enum Done {
    Scan(Outcome),
    Verify(crate::uploads::VerifyOutcome),
}

impl Summary {
    fn count(&mut self, done: Done) {
        match done {
            Done::Scan(Outcome::Retry(_)) => self.retried += 1,
            Done::Scan(_) => self.posted += 1,
            Done::Verify(crate::uploads::VerifyOutcome::Retry(_)) => self.verify_retried += 1,
            Done::Verify(_) => self.verified += 1,
        }
    }
}

/// Which queue a claim reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Scan,
    Verify,
    /// Rescans: claimed last, with what first scans left free, in at most `SCAN_RESCAN_SLOTS`.
    Rescan,
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
        Ok(Self {
            storage: Storage::new(cfg.storage.clone())?,
            db: Db::new(&cfg.database_url, cfg.db_timeout).map_err(anyhow::Error::msg)?,
            clamd: Clamd::new(cfg.clamd_addr.clone(), cfg.clamd_timeout),
            virustotal: cfg
                .virustotal
                .clone()
                .map(crate::virustotal::VirusTotal::new)
                .transpose()
                .map_err(anyhow::Error::msg)?,
            http,
            cfg,
            engine: Mutex::new(None),
            in_flight: Mutex::new(HashSet::new()),
            rescans_running: std::sync::atomic::AtomicUsize::new(0),
            verifying: Mutex::new(HashSet::new()),
            metrics: Metrics::new(),
        })
    }

    /// The metrics the worker keeps.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn clamd(&self) -> &Clamd {
        &self.clamd
    }

    /// The engine name for verdicts (`VERSION`, refreshed every 5 minutes: it carries the database version).
    pub(crate) async fn engine(&self) -> String {
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

    /// Asks clamd for its `VERSION` now (the cached engine name is refreshed): its signature
    /// database version, or `None` when clamd names none (signature databases without a version,
    /// such as the test signatures alone) or does not answer.
    pub async fn signature_version(&self) -> Option<i64> {
        // A short probe: a clamd that does not answer must not hold up the claims (`--once` asks
        // before claiming); its scans fail on their own timeout anyway.
        let v = tokio::time::timeout(Duration::from_secs(3), self.clamd.version())
            .await
            .ok()?
            .ok()
            .filter(|v| !v.is_empty())?;
        let v: String = v.chars().take(100).collect();
        *self.engine.lock().unwrap() = Some((v.clone(), Instant::now()));
        scan_core::engines::EngineVersion::of(Some(&v)).signatures
    }

    /// Decides the verdict for a job, or why not now.
    async fn scan(&self, job: &Job) -> Result<Verdict, String> {
        let cap = self.cfg.max_scan_bytes;
        let size = u64::try_from(job.size_bytes).unwrap_or(0);
        if size > cap {
            return Ok(verdict::too_large(size, cap));
        }
        let mut res = self.storage.get_stream(&job.storage_key).await?;
        match self.clamd.instream(&mut res, cap).await {
            Ok(answer) => verdict::from_answer(&answer),
            Err(ScanError::TooLarge { cap }) => Ok(verdict::too_large(size.max(cap + 1), cap)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// POSTs `body` to `url`, signed with the current time; transient answers are retried a few
    /// times (re-signed, same bytes). The classified answer, and on success the answer's body.
    /// `setting` names the URL's setting in messages.
    pub(crate) async fn post_signed(
        &self,
        url: &str,
        setting: &str,
        body: &[u8],
    ) -> (CallbackAnswer, Vec<u8>) {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        loop {
            let t = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let signature = scan_core::signature::sign(&self.cfg.callback_secret, t, body);
            let (answer, answer_body) = match self
                .http
                .post(url)
                .timeout(Duration::from_secs(30))
                .header("content-type", "application/json")
                .header(scan_core::signature::HEADER, signature)
                .body(body.to_vec())
                .send()
                .await
            {
                Ok(mut res) => {
                    let problem = res
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.contains("json"));
                    let mut answer = match classify_callback(res.status().as_u16()) {
                        // The contract's 404 (unknown target) is problem+json; a bare 404 means no
                        // callback route at that URL: keep the job rather than drop the result.
                        CallbackAnswer::Moot(404) if !problem => CallbackAnswer::Refused(format!(
                            "{setting} answered 404 without a problem document: is {setting} right?"
                        )),
                        other => other,
                    };
                    let mut got = Vec::new();
                    while answer == CallbackAnswer::Accepted {
                        match res.chunk().await {
                            Ok(Some(c)) if got.len() + c.len() <= MAX_ANSWER_BYTES => {
                                got.extend_from_slice(&c)
                            }
                            Ok(Some(_)) => {
                                answer = CallbackAnswer::Refused(format!(
                                    "{setting} answered with more than {MAX_ANSWER_BYTES} bytes"
                                ))
                            }
                            Ok(None) => break,
                            Err(e) => {
                                answer = CallbackAnswer::Transient(format!(
                                    "{setting}: reading the answer: {}",
                                    without_url(&e)
                                ))
                            }
                        }
                    }
                    (answer, got)
                }
                Err(e) => (
                    CallbackAnswer::Transient(format!("{setting}: {}", without_url(&e))),
                    Vec::new(),
                ),
            };
            match answer {
                CallbackAnswer::Transient(_) if backoff.attempts() < 3 => {
                    tokio::time::sleep(backoff.next_delay()).await
                }
                other => return (other, answer_body),
            }
        }
    }

    /// POSTs a verdict about `tenant`'s content `content_sha256` to the scan callback.
    pub(crate) async fn post_verdict(
        &self,
        tenant: Uuid,
        content_sha256: &str,
        v: &Verdict,
    ) -> CallbackAnswer {
        let engine = self.engine().await;
        self.post_verdict_of(&engine, tenant, content_sha256, v)
            .await
    }

    /// POSTs engine `engine`'s verdict about `tenant`'s content `content_sha256` to the scan callback.
    pub(crate) async fn post_verdict_of(
        &self,
        engine: &str,
        tenant: Uuid,
        content_sha256: &str,
        v: &Verdict,
    ) -> CallbackAnswer {
        let body = match verdict::callback_body(tenant, content_sha256, v, engine, log::now_ms()) {
            Ok(b) => b,
            Err(e) => {
                return CallbackAnswer::Refused(format!("building the callback body: {e}"));
            }
        };
        self.post_signed(&self.cfg.callback_url, "SCAN_CALLBACK_URL", &body)
            .await
            .0
    }

    /// POSTs the verdict of a job.
    async fn post(&self, job: &Job, v: &Verdict) -> CallbackAnswer {
        self.post_verdict(job.tenant_id, &job.content_sha256, v)
            .await
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
        self.metrics.scan_time(started.elapsed());
        self.metrics.verdict(v.status.as_str());
        match self.post(job, &v).await {
            CallbackAnswer::Accepted => {
                if v.status != Status::Infected {
                    self.second_opinion(job).await;
                }
                Outcome::Posted(v.status)
            }
            CallbackAnswer::Moot(http) => Outcome::Moot {
                status: v.status,
                http,
            },
            CallbackAnswer::Transient(r) | CallbackAnswer::Refused(r) => Outcome::Retry(r),
        }
    }

    /// VirusTotal's opinion of the job's content, posted as its own engine's verdict (nothing when
    /// it has none, or without `VT_API_KEY`). ClamAV's verdict is in force already; this one can
    /// only add a finding (an `error` ranks below ClamAV's `clean`), so a failure here is logged,
    /// never retried: the next rescan asks again.
    async fn second_opinion(&self, job: &Job) {
        let Some(vt) = &self.virustotal else { return };
        let allowed = match self.db.allows_virustotal_upload(job.tenant_id).await {
            Ok(a) => a,
            Err(e) => {
                // Unknown policy: the content is not uploaded.
                log::warn(
                    "vt.policy_unknown",
                    json!({"tenant": job.tenant_id.to_string(), "error": e.to_string()}),
                );
                false
            }
        };
        let size = u64::try_from(job.size_bytes).unwrap_or(u64::MAX);
        let read = || async {
            let mut res = self.storage.get_stream(&job.storage_key).await?;
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 20));
            while let Some(chunk) = res
                .chunk()
                .await
                .map_err(|e| format!("reading the object: {}", without_url(&e)))?
            {
                if bytes.len() as u64 + chunk.len() as u64 > size {
                    return Err("the object is larger than recorded".to_owned());
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(bytes)
        };
        let opinion = vt
            .opinion(&job.content_sha256, size, allowed.then_some(read))
            .await;
        let mut fields = json!({
            "job": job.id.to_string(),
            "tenant": job.tenant_id.to_string(),
            "blob": job.blob_id.to_string(),
            "upload_allowed": allowed,
        });
        match opinion {
            crate::virustotal::Opinion::None(why) => {
                fields["opinion"] = "none".into();
                fields["why"] = why.into();
                log::info("vt.done", fields);
            }
            crate::virustotal::Opinion::Verdict(v) => {
                self.metrics.verdict(v.status.as_str());
                let answer = self
                    .post_verdict_of(
                        crate::virustotal::ENGINE,
                        job.tenant_id,
                        &job.content_sha256,
                        &v,
                    )
                    .await;
                fields["status"] = v.status.as_str().into();
                fields["details"] = v.details.into();
                match answer {
                    CallbackAnswer::Accepted | CallbackAnswer::Moot(_) => {
                        log::info("vt.done", fields)
                    }
                    CallbackAnswer::Transient(r) | CallbackAnswer::Refused(r) => {
                        fields["callback"] = r.into();
                        log::warn("vt.not_posted", fields)
                    }
                }
            }
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
        self.metrics.finished(match &outcome {
            Outcome::Posted(_) => "posted",
            Outcome::Moot { .. } => "moot",
            Outcome::Retry(_) => "retry",
        });
        if job.rescan {
            fields["rescan"] = true.into();
        }
        match &outcome {
            Outcome::Posted(s) => {
                fields["status"] = s.as_str().into();
                if job.rescan && matches!(s, Status::Infected | Status::Suspicious) {
                    // Rescans are of clean content: this one flipped. One line an operator can alert on;
                    // the callback quarantined it and wrote the audit row.
                    log::warn(
                        "rescan.flipped",
                        json!({"tenant": job.tenant_id.to_string(), "blob": job.blob_id.to_string(),
                               "content_sha256": job.content_sha256, "from": "clean", "to": s.as_str(),
                               "job": job.id.to_string()}),
                    );
                }
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

    /// Claims up to `free` tasks from `queue` and spawns them; how many.
    async fn claim_into(
        self: &Arc<Self>,
        queue: Queue,
        free: usize,
        tasks: &mut JoinSet<Done>,
    ) -> Result<usize, StoreError> {
        if free == 0 {
            return Ok(0);
        }
        let name = &self.cfg.worker_name;
        match queue {
            Queue::Scan | Queue::Rescan => {
                let jobs = if queue == Queue::Scan {
                    self.db.claim(name, self.cfg.lease_secs, free).await?
                } else {
                    let running = self
                        .rescans_running
                        .load(std::sync::atomic::Ordering::Relaxed);
                    let room = self.cfg.rescan.slots.saturating_sub(running).min(free);
                    if room == 0 {
                        return Ok(0);
                    }
                    self.db
                        .claim_rescans(name, self.cfg.lease_secs, room)
                        .await?
                };
                let n = jobs.len();
                self.metrics.claimed(
                    if queue == Queue::Scan {
                        "scan"
                    } else {
                        "rescan"
                    },
                    n,
                );
                for job in jobs {
                    let rescan = job.rescan;
                    if rescan {
                        self.rescans_running
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
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
                        if rescan {
                            me.rescans_running
                                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Done::Scan(outcome)
                    });
                }
                Ok(n)
            }
            Queue::Verify => {
                let claimed = self
                    .db
                    .claim_verifications(name, self.cfg.lease_secs, free)
                    .await?;
                let n = claimed.len();
                self.metrics.claimed("verify", n);
                for v in claimed {
                    self.verifying.lock().unwrap().insert(v.upload_id);
                    let me = self.clone();
                    tasks.spawn(async move {
                        let id = v.upload_id;
                        let outcome = me.handle_verification(v).await;
                        me.verifying.lock().unwrap().remove(&id);
                        Done::Verify(outcome)
                    });
                }
                Ok(n)
            }
        }
    }

    /// Claims and processes scan jobs and upload verifications until `shutdown` (or, with
    /// `--once`, until nothing is claimable); the janitor runs beside on its interval (not with
    /// `--once`: `scan-worker janitor --once` runs it on demand).
    pub async fn run(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Summary> {
        let janitor = match (self.cfg.janitor_interval, self.cfg.once) {
            (Some(every), false) => {
                let me = self.clone();
                let stop = shutdown.clone();
                Some(tokio::spawn(
                    async move { me.janitor_loop(every, stop).await },
                ))
            }
            _ => None,
        };
        let purge = match (self.cfg.purge.interval, self.cfg.once) {
            (Some(every), false) => {
                let me = self.clone();
                let stop = shutdown.clone();
                Some(tokio::spawn(
                    async move { me.purge_loop(every, stop).await },
                ))
            }
            _ => None,
        };
        let rescans = match (self.cfg.rescan.interval, self.cfg.once, self.cfg.scan_jobs) {
            (Some(every), false, true) => {
                let me = self.clone();
                let stop = shutdown.clone();
                Some(tokio::spawn(
                    async move { me.rescan_loop(every, stop).await },
                ))
            }
            _ => None,
        };
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let mut summary = Summary::default();
        let mut db_backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let queues: Vec<Queue> = [
            (Queue::Verify, self.cfg.verify_uploads),
            (Queue::Scan, self.cfg.scan_jobs),
        ]
        .into_iter()
        .filter_map(|(q, on)| on.then_some(q))
        .collect();
        // Which queue picks first this round: they alternate, so when both have work each gets
        // about half of the slots that come free.
        let mut turn = 0usize;
        loop {
            if *shutdown.borrow() {
                break;
            }
            while let Some(done) = tasks.try_join_next() {
                if let Ok(d) = done {
                    summary.count(d);
                }
            }
            let claimed_so_far = summary.jobs + summary.verifications;
            let remaining = self
                .cfg
                .max_jobs
                .map_or(u64::MAX, |m| m.saturating_sub(claimed_so_far));
            if remaining == 0 {
                break;
            }
            let mut free = self
                .cfg
                .concurrency
                .saturating_sub(tasks.len())
                .min(remaining.min(1000) as usize);
            if free == 0 {
                tokio::select! {
                    Some(done) = tasks.join_next() => if let Ok(d) = done { summary.count(d) },
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let mut claimed = 0usize;
            let mut failed = None;
            for i in 0..queues.len() {
                let queue = queues[(turn + i) % queues.len()];
                match self.claim_into(queue, free, &mut tasks).await {
                    Ok(n) => {
                        match queue {
                            Queue::Scan | Queue::Rescan => summary.jobs += n as u64,
                            Queue::Verify => summary.verifications += n as u64,
                        }
                        claimed += n;
                        free -= n;
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            turn = turn.wrapping_add(1);
            // Rescans get only what first scans and verifications left free this round.
            if failed.is_none() && self.cfg.scan_jobs {
                match self.claim_into(Queue::Rescan, free, &mut tasks).await {
                    Ok(n) => {
                        summary.jobs += n as u64;
                        claimed += n;
                    }
                    Err(e) => failed = Some(e),
                }
            }
            if let Some(e) = failed {
                if self.cfg.once {
                    return Err(anyhow::anyhow!("claiming work: {e}"));
                }
                let wait = db_backoff.next_delay();
                log::error(
                    "claim.failed",
                    json!({"error": e.to_string(), "retry_ms": wait.as_millis() as u64}),
                );
                sleep_or_shutdown(wait, &mut shutdown).await;
                continue;
            }
            db_backoff.reset();
            if claimed == 0 {
                if self.cfg.once {
                    match tasks.join_next().await {
                        Some(done) => {
                            if let Ok(d) = done {
                                summary.count(d);
                            }
                            continue;
                        }
                        None => break,
                    }
                }
                tokio::select! {
                    Some(done) = tasks.join_next() => if let Ok(d) = done { summary.count(d) },
                    _ = sleep_or_shutdown(self.cfg.poll_interval, &mut shutdown) => {}
                }
            }
        }

        // Stopping: claim nothing more; let running tasks finish within their deadline.
        if !tasks.is_empty() {
            log::info("worker.draining", json!({"tasks": tasks.len()}));
        }
        let grace = job_deadline(self.cfg.lease_secs) + Duration::from_secs(5);
        let drained = tokio::time::timeout(grace, async {
            while let Some(done) = tasks.join_next().await {
                if let Ok(d) = done {
                    summary.count(d);
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
            let left: Vec<Uuid> = self.verifying.lock().unwrap().drain().collect();
            for upload in left {
                self.release(upload, "worker stopped before finishing")
                    .await;
                summary.verify_retried += 1;
            }
        }
        if let Some(j) = janitor {
            // The janitor stops between two rows: its current row's lease simply expires otherwise.
            let _ = tokio::time::timeout(Duration::from_secs(30), j).await;
        }
        if let Some(r) = rescans {
            let _ = tokio::time::timeout(Duration::from_secs(30), r).await;
        }
        if let Some(p) = purge {
            // The purge stops between two batches; a blob it was deleting stays purging for the
            // next run.
            let _ = tokio::time::timeout(Duration::from_secs(30), p).await;
        }
        Ok(summary)
    }
}

impl Worker {
    /// Queues what is due for a rescan now; how many. ClamAV: clean content it judged under an older
    /// signature version than clamd's `VERSION` names now (nothing when clamd names none).
    /// VirusTotal (when on): clean content younger than `VT_RESCAN_WINDOW_SECS` it has not been
    /// asked about for `VT_RESCAN_EVERY_SECS`.
    pub async fn enqueue_due_rescans(&self) -> Result<u64, StoreError> {
        let mut queued = 0;
        if let Some(version) = self.signature_version().await {
            let what = scan_jobs::RescanSelection {
                engine: scan_core::EngineKey::CLAMAV,
                signature_version: Some(version),
                judged_before: None,
                created_since: None,
                unjudged_too: false,
                tenant: None,
            };
            queued += self
                .db
                .enqueue_rescans(&what, self.cfg.rescan.queue)
                .await?;
        }
        if let (Some(_), Some(window)) = (&self.virustotal, self.cfg.rescan.vt_window) {
            let now = log::now_ms();
            let what = scan_jobs::RescanSelection {
                engine: scan_core::EngineKey::VIRUSTOTAL,
                signature_version: None,
                judged_before: Some(now - self.cfg.rescan.vt_every.as_millis() as i64),
                created_since: Some(now - window.as_millis() as i64),
                unjudged_too: true,
                tenant: None,
            };
            queued += self
                .db
                .enqueue_rescans(&what, self.cfg.rescan.queue)
                .await?;
        }
        Ok(queued)
    }

    async fn rescan_loop(self: Arc<Self>, every: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            match self.enqueue_due_rescans().await {
                Ok(0) => {}
                Ok(n) => log::info("rescan.queued", json!({"queued": n})),
                Err(e) => log::warn("rescan.queue_failed", json!({"error": e.to_string()})),
            }
            sleep_or_shutdown(every, &mut stop).await;
            if *stop.borrow() {
                return;
            }
        }
    }

    /// `scan-worker rescan`: queues rescans of all clean content of `tenant` (every tenant's with
    /// `None`) that ClamAV judged before now, in bounded batches (`RESCAN_QUEUE` open at a time),
    /// waiting for the workers to take each; the number queued.
    pub async fn rescan_on_demand(
        &self,
        tenant: Option<Uuid>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<u64, StoreError> {
        let started = log::now_ms();
        let what = scan_jobs::RescanSelection {
            engine: scan_core::EngineKey::CLAMAV,
            signature_version: None,
            judged_before: Some(started),
            created_since: None,
            unjudged_too: true,
            tenant,
        };
        let mut total = 0;
        loop {
            let n = self
                .db
                .enqueue_rescans(&what, self.cfg.rescan.queue)
                .await?;
            total += n;
            let open = self.db.open_rescans().await?;
            log::info(
                "rescan.progress",
                json!({"queued": total, "open": open, "tenant": tenant.map(|t| t.to_string())}),
            );
            if n == 0 && open == 0 {
                return Ok(total);
            }
            if n == 0 && self.cfg.once {
                // Queued all there is; the workers scan them.
                return Ok(total);
            }
            sleep_or_shutdown(Duration::from_secs(2), &mut stop).await;
            if *stop.borrow() {
                return Ok(total);
            }
        }
    }
}

async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.changed() => {}
    }
}

/// A reqwest error without its URL (which is harmless here, but keeps log lines short and stable).
pub(crate) fn without_url(e: &reqwest::Error) -> String {
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
