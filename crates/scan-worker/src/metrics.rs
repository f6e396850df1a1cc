//! Prometheus metrics (`METRICS_ADDR`, off when unset): what the worker counts as it goes (jobs
//! claimed, verdicts, scan latency, janitor and reconcile work) and the queue gauges, sampled from
//! Postgres (`worker_queue_stats`, a `SECURITY DEFINER` function of the scanner role) at each scrape.
//! Kept in a `prometheus-client` registry and served as OpenMetrics text by a small HTTP/1.1 server
//! on tokio: `GET /metrics` and nothing else. No label carries a tenant, a key or a user.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::json;
use store::reconcile::QueueStats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::log;
use crate::reconcile::Report;
use crate::worker::Worker;

type Labels = [(&'static str, &'static str); 1];

/// The worker's metrics.
pub struct Metrics {
    registry: Registry,
    claimed: Family<Labels, Counter>,
    verdicts: Family<Labels, Counter>,
    finished: Family<Labels, Counter>,
    scan_seconds: Histogram,
    janitor: Family<Labels, Counter>,
    reconcile: Family<Labels, Counter>,
    queue_depth: Family<Labels, Gauge>,
    running: Gauge,
    oldest_pending: Gauge<f64, AtomicU64>,
    queue_up: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("scan_worker");
        let claimed = Family::<Labels, Counter>::default();
        registry.register(
            "jobs_claimed",
            "Work claimed, by queue (scan: scan jobs, verify: direct uploads to verify)",
            claimed.clone(),
        );
        let verdicts = Family::<Labels, Counter>::default();
        registry.register(
            "verdicts",
            "Verdicts the worker reached, by status (clean, infected, suspicious, error)",
            verdicts.clone(),
        );
        let finished = Family::<Labels, Counter>::default();
        registry.register(
            "jobs_finished",
            "Scan jobs finished, by outcome (posted, moot, retry)",
            finished.clone(),
        );
        // 10 ms .. ~80 s: a small object against a local clamd up to a large one.
        let scan_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register(
            "scan_duration_seconds",
            "Time to scan one job's object: GetObject streamed through clamd",
            scan_seconds.clone(),
        );
        let janitor = Family::<Labels, Counter>::default();
        registry.register(
            "janitor_actions",
            "Upload janitor rows done, by action (abort, delete, forget) and left for a later run (left)",
            janitor.clone(),
        );
        let reconcile = Family::<Labels, Counter>::default();
        registry.register(
            "reconcile",
            "Reconcile work: objects listed, orphans found and deleted, blobs found missing, multipart uploads aborted, runs and failed runs",
            reconcile.clone(),
        );
        let queue_depth = Family::<Labels, Gauge>::default();
        registry.register(
            "queue_depth",
            "Work waiting, sampled from Postgres at the scrape: scan (pending scan jobs) and verify (uploads waiting for verification)",
            queue_depth.clone(),
        );
        let running = Gauge::default();
        registry.register(
            "scan_jobs_running",
            "Scan jobs leased to a worker, any worker",
            running.clone(),
        );
        let oldest_pending = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "oldest_pending_job_age_seconds",
            "Age of the oldest pending scan job (0 when none)",
            oldest_pending.clone(),
        );
        let queue_up = Gauge::default();
        registry.register(
            "queue_stats_up",
            "1 when the queue gauges were sampled at this scrape, 0 when Postgres did not answer",
            queue_up.clone(),
        );
        Self {
            registry,
            claimed,
            verdicts,
            finished,
            scan_seconds,
            janitor,
            reconcile,
            queue_depth,
            running,
            oldest_pending,
            queue_up,
        }
    }

    pub fn claimed(&self, queue: &'static str, n: usize) {
        self.claimed
            .get_or_create(&[("queue", queue)])
            .inc_by(n as u64);
    }

    pub fn verdict(&self, status: &'static str) {
        self.verdicts.get_or_create(&[("status", status)]).inc();
    }

    pub fn finished(&self, outcome: &'static str) {
        self.finished.get_or_create(&[("outcome", outcome)]).inc();
    }

    pub fn scan_time(&self, d: Duration) {
        self.scan_seconds.observe(d.as_secs_f64());
    }

    pub fn janitor(&self, action: &'static str) {
        self.janitor.get_or_create(&[("action", action)]).inc();
    }

    fn reconcile_add(&self, what: &'static str, n: u64) {
        self.reconcile.get_or_create(&[("what", what)]).inc_by(n);
    }

    /// A finished reconcile run's counts (a dry run's too: it found them).
    pub fn reconciled(&self, r: &Report) {
        self.reconcile_add("runs", 1);
        self.reconcile_add("objects_listed", r.objects);
        self.reconcile_add("orphans_found", r.orphans);
        self.reconcile_add("orphans_deleted", r.orphans_deleted);
        self.reconcile_add("missing_found", r.missing);
        self.reconcile_add("uploads_stale", r.uploads_stale);
        self.reconcile_add("uploads_aborted", r.uploads_aborted);
    }

    pub fn reconcile_failed(&self) {
        self.reconcile_add("failed_runs", 1);
    }

    /// The queue gauges from a sample, or marked stale when there is none.
    pub fn queue(&self, stats: Option<QueueStats>) {
        match stats {
            Some(s) => {
                self.queue_depth
                    .get_or_create(&[("queue", "scan")])
                    .set(s.scan_pending);
                self.queue_depth
                    .get_or_create(&[("queue", "verify")])
                    .set(s.verify_pending);
                self.running.set(s.scan_running);
                self.oldest_pending
                    .set(s.oldest_pending_age_ms.unwrap_or(0).max(0) as f64 / 1000.0);
                self.queue_up.set(1);
            }
            None => {
                self.queue_up.set(0);
            }
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Longest request head read (a scraper's `GET /metrics` is a few hundred bytes).
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Binds `addr` (failing now, not later, when it cannot) and serves `/metrics` until `shutdown`;
/// the bound address (port 0 picks one).
pub async fn serve(
    worker: Arc<Worker>,
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                c = listener.accept() => c,
                _ = shutdown.changed() => return,
            };
            match conn {
                Ok((stream, _)) => {
                    let w = worker.clone();
                    tokio::spawn(async move {
                        // A slow or silent client gets 10 s for its request.
                        let _ =
                            tokio::time::timeout(Duration::from_secs(10), answer(w, stream)).await;
                    });
                }
                Err(e) => {
                    log::warn("metrics.accept_failed", json!({"error": e.to_string()}));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(local)
}

/// The request line's method and path, once the head is complete; `None` until then.
pub fn request_target(head: &[u8]) -> Option<(&str, &str)> {
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&head[..end]).ok()?;
    let mut parts = head.lines().next()?.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    Some((method, target))
}

async fn answer(worker: Arc<Worker>, mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let (status, body) = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some((method, target)) = request_target(&head) {
            let path = target.split('?').next().unwrap_or(target);
            break match (method, path) {
                ("GET", "/metrics") => {
                    worker.sample_queue().await;
                    ("200 OK", worker.metrics.render())
                }
                (_, "/metrics") => ("405 Method Not Allowed", String::new()),
                _ => ("404 Not Found", String::new()),
            };
        }
        if head.len() > MAX_REQUEST_HEAD {
            break ("431 Request Header Fields Too Large", String::new());
        }
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {CONTENT_TYPE}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

impl Worker {
    /// Samples the queue gauges from Postgres (bounded by `SCAN_DB_TIMEOUT_SECS`).
    pub async fn sample_queue(&self) {
        match self.db.queue_stats().await {
            Ok(s) => self.metrics.queue(Some(s)),
            Err(e) => {
                log::warn("metrics.queue_failed", json!({"error": e.to_string()}));
                self.metrics.queue(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_as_openmetrics() {
        let m = Metrics::new();
        m.claimed("scan", 2);
        m.verdict("clean");
        m.scan_time(Duration::from_millis(30));
        m.queue(Some(QueueStats {
            scan_pending: 3,
            scan_running: 1,
            oldest_pending_age_ms: Some(1500),
            verify_pending: 0,
        }));
        let text = m.render();
        for line in [
            "scan_worker_jobs_claimed_total{queue=\"scan\"} 2",
            "scan_worker_verdicts_total{status=\"clean\"} 1",
            "scan_worker_scan_duration_seconds_count 1",
            "scan_worker_queue_depth{queue=\"scan\"} 3",
            "scan_worker_oldest_pending_job_age_seconds 1.5",
            "scan_worker_queue_stats_up 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        m.queue(None);
        assert!(
            m.render()
                .lines()
                .any(|l| l == "scan_worker_queue_stats_up 0")
        );
    }

    #[test]
    fn request_lines() {
        assert_eq!(
            request_target(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            request_target(b"GET /metrics HTTP/1.1\r\nhost: x\r\n"),
            None
        );
    }
}
