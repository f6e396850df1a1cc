//! `scan-worker`: see `scan_worker::config::USAGE` and the crate documentation.

use std::process::ExitCode;
use std::sync::Arc;

use scan_worker::config::{Config, ConfigError, Mode, USAGE, default_worker_name};
use scan_worker::log;
use scan_worker::worker::Worker;
use serde_json::json;

fn main() -> ExitCode {
    let cfg = match Config::parse(
        std::env::args().skip(1),
        |k| std::env::var(k).ok(),
        default_worker_name,
    ) {
        Ok(c) => c,
        Err(ConfigError::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(ConfigError::Invalid(e)) => {
            eprintln!("scan-worker: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(cfg))
}

async fn run(cfg: Config) -> ExitCode {
    let worker = match Worker::new(cfg) {
        Ok(w) => Arc::new(w),
        Err(e) => {
            log::error("worker.start_failed", json!({"error": e.to_string()}));
            return ExitCode::FAILURE;
        }
    };
    let c = worker.config();
    let rx = stop_on_signal();
    // A one-shot run has nothing to scrape.
    if let Some(addr) = c.metrics_addr.filter(|_| !c.once) {
        match scan_worker::metrics::serve(worker.clone(), addr, rx.clone()).await {
            Ok(bound) => log::info("metrics.listening", json!({"addr": bound.to_string()})),
            Err(e) => {
                log::error(
                    "metrics.bind_failed",
                    json!({"addr": addr.to_string(), "error": e.to_string()}),
                );
                return ExitCode::FAILURE;
            }
        }
    }
    match c.mode {
        Mode::Janitor => return janitor(worker, rx).await,
        Mode::Reconcile => return reconcile(worker, rx).await,
        Mode::Purge => return purge(worker, rx).await,
        Mode::Rescan => return rescan(worker, rx).await,
        Mode::Work => {}
    }
    // A short probe: a clamd that is still loading its database must not hold up the start.
    let version =
        scan_worker::clamd::Clamd::new(c.clamd_addr.clone(), std::time::Duration::from_secs(3))
            .version()
            .await;
    log::info(
        "worker.started",
        json!({
            "worker": c.worker_name, "clamd": c.clamd_addr, "clamd_version": version.as_ref().ok(),
            "bucket": c.storage.bucket(), "s3_endpoint": c.storage.endpoint(), "callback": c.callback_url, "callback_as": c.callback_as,
            "lease_secs": c.lease_secs, "concurrency": c.concurrency, "max_scan_bytes": c.max_scan_bytes, "once": c.once,
            "scan_jobs": c.scan_jobs, "verify_uploads": c.verify_uploads, "verification": c.verification_url,
            "janitor_interval_secs": c.janitor_interval.map(|d| d.as_secs()),
            "purge_interval_secs": c.purge.interval.map(|d| d.as_secs()), "purge_grace_days": c.purge.grace_days,
        }),
    );
    if let Err(e) = &version {
        // Not fatal: clamd may still be loading its database; jobs are retried until it answers.
        log::warn("clamd.unreachable", json!({"error": e.to_string()}));
    }

    match worker.run(rx).await {
        Ok(s) => {
            log::info(
                "worker.stopped",
                json!({"jobs": s.jobs, "posted": s.posted, "retried": s.retried,
                       "verifications": s.verifications, "verified": s.verified, "verify_retried": s.verify_retried}),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error("worker.failed", json!({"error": e.to_string()}));
            ExitCode::FAILURE
        }
    }
}

/// `scan-worker rescan --tenant UUID | --all`: queues rescans of the clean content (bounded batches)
/// and, without `--once`, waits until the workers have scanned them all; its last line
/// (`rescan.finished`) says how many.
async fn rescan(worker: Arc<Worker>, rx: tokio::sync::watch::Receiver<bool>) -> ExitCode {
    let tenant = worker.config().rescan.tenant;
    match worker.rescan_on_demand(tenant, rx).await {
        Ok(n) => {
            log::info(
                "rescan.finished",
                json!({"queued": n, "tenant": tenant.map(|t| t.to_string())}),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error("rescan.failed", json!({"error": e.to_string()}));
            ExitCode::FAILURE
        }
    }
}

/// `scan-worker reconcile [--dry-run] [--once]`: each run's report is its `reconcile.run` log line
/// (one JSON object on stdout); a failed run (`reconcile.failed`) exits non-zero with `--once`, and
/// is retried at the next interval otherwise.
async fn reconcile(worker: Arc<Worker>, mut rx: tokio::sync::watch::Receiver<bool>) -> ExitCode {
    let c = worker.config();
    log::info(
        "reconcile.started",
        json!({"worker": c.worker_name, "bucket": c.storage.bucket(), "once": c.once,
               "dry_run": c.reconcile.dry_run, "tenant": c.reconcile.tenant.map(|t| t.to_string()),
               "safety_secs": c.reconcile.safety_window.as_secs(),
               "interval_secs": c.reconcile.interval.as_secs()}),
    );
    loop {
        let run = worker.reconcile_logged().await;
        if c.once {
            return match run {
                Ok(_) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            };
        }
        tokio::select! {
            _ = tokio::time::sleep(c.reconcile.interval) => {}
            _ = rx.changed() => {}
        }
        if *rx.borrow() {
            log::info("reconcile.stopped", json!({}));
            return ExitCode::SUCCESS;
        }
    }
}

/// `scan-worker janitor [--once]`: the upload janitor alone.
async fn janitor(worker: Arc<Worker>, rx: tokio::sync::watch::Receiver<bool>) -> ExitCode {
    let c = worker.config();
    log::info(
        "janitor.started",
        json!({"worker": c.worker_name, "bucket": c.storage.bucket(), "once": c.once,
               "interval_secs": c.janitor_interval.map(|d| d.as_secs())}),
    );
    if c.once {
        return match worker.janitor_pass(&rx).await {
            Ok(s) => {
                log::info(
                    "janitor.stopped",
                    json!({"claimed": s.claimed, "aborted": s.aborted, "deleted": s.deleted,
                           "forgotten": s.forgotten, "left": s.left}),
                );
                ExitCode::SUCCESS
            }
            Err(_) => ExitCode::FAILURE,
        };
    }
    let every = c
        .janitor_interval
        .unwrap_or(std::time::Duration::from_secs(60));
    worker.janitor_loop(every, rx).await;
    log::info("janitor.stopped", json!({}));
    ExitCode::SUCCESS
}

/// `scan-worker purge [--once] [--dry-run]`: the retention purge alone.
async fn purge(worker: Arc<Worker>, rx: tokio::sync::watch::Receiver<bool>) -> ExitCode {
    let c = worker.config();
    log::info(
        "purge.started",
        json!({"worker": c.worker_name, "bucket": c.storage.bucket(), "once": c.once,
               "dry_run": c.purge.dry_run, "grace_days": c.purge.grace_days, "batch": c.purge.batch,
               "interval_secs": c.purge.interval.map(|d| d.as_secs())}),
    );
    if c.purge.dry_run {
        return match worker.purge_dry_run().await {
            Ok(_) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    if c.once {
        return match worker.purge_pass(&rx).await {
            Ok(s) => {
                log::info(
                    "purge.stopped",
                    json!({"attachments": s.attachments, "blobs": s.blobs, "left": s.left}),
                );
                // Blobs left behind (storage errors) are a failure an operator must see.
                if s.left > 0 {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(_) => ExitCode::FAILURE,
        };
    }
    let every = c
        .purge
        .interval
        .unwrap_or(std::time::Duration::from_secs(3600));
    worker.purge_loop(every, rx).await;
    log::info("purge.stopped", json!({}));
    ExitCode::SUCCESS
}

/// A channel that turns true on SIGTERM or SIGINT.
fn stop_on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        log::info("worker.stopping", json!({"signal": name}));
        let _ = tx.send(true);
    });
    rx
}
