//! The retention purge, the worker's I/O (`scan-worker purge`, or beside the worker loop every
//! `PURGE_INTERVAL_SECS`): batches of attachments past retention or soft-deleted longer than the
//! grace period are deleted by the database in one transaction each (audited, references given
//! back, content left unreferenced marked purging: `store::purge`); then each purging blob is
//! claimed with a lease, its object deleted (DeleteObject, `PURGE_CONCURRENCY` at once) and its row
//! forgotten.
//!
//! A purge killed at any point is finished by the next run: rows not yet purged are purged then,
//! and a purging blob is claimed again once its lease expires (at once by a worker of the same
//! name), its object deleted again (an absent object counts as deleted) and its row forgotten.
//! Storage is probed before the first row goes, so a purge against an unreachable bucket changes
//! nothing; a storage error later leaves the blob purging for the next run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use store::purge::{PurgingBlob, Reason};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::PurgeFault;
use crate::log;
use crate::worker::Worker;

/// The most attachments a dry run lists.
const DRY_RUN_LIMIT: u32 = 10_000;

/// What one purge run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurgeSummary {
    /// Attachments deleted (past retention, or deleted longer than the grace period).
    pub attachments: u64,
    pub by_retention: u64,
    pub by_deletion: u64,
    /// Blobs whose objects were deleted and rows forgotten.
    pub blobs: u64,
    /// Purging blobs left for a later run (storage or database errors).
    pub left: u64,
}

/// What became of one purging blob.
enum BlobOutcome {
    Forgotten,
    Left,
}

impl Worker {
    /// The purge every `every` until `shutdown`.
    pub async fn purge_loop(self: Arc<Self>, every: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            // A failed run is logged by the pass; the next one retries.
            let _ = self.purge_pass(&shutdown).await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One purge run: batches of attachments, each followed by the objects of the content it left
    /// unreferenced, until no attachment is due. `Err` when storage or the database failed; what
    /// was done before stays done (every step is complete on its own).
    pub async fn purge_pass(
        self: &Arc<Self>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<PurgeSummary, String> {
        let started = Instant::now();
        let p = &self.cfg.purge;
        let mut summary = PurgeSummary::default();
        if let Err(e) = self.storage.reachable().await {
            log::error("purge.failed", json!({"error": e, "changed": "nothing"}));
            return Err(e);
        }
        let result = async {
            loop {
                let batch = self
                    .db
                    .purge_attachments(&self.cfg.worker_name, p.grace_days, p.batch)
                    .await
                    .map_err(|e| e.to_string())?;
                for row in &batch {
                    summary.attachments += 1;
                    match row.reason {
                        Reason::Retention => summary.by_retention += 1,
                        Reason::Deleted => summary.by_deletion += 1,
                    }
                }
                if !batch.is_empty() {
                    log::info(
                        "purge.batch",
                        json!({"attachments": batch.len(),
                               "blobs_purging": batch.iter().filter(|r| r.blob_goes).count()}),
                    );
                    if p.fault == Some(PurgeFault::AfterRows) {
                        log::error("purge.fault", json!({"at": "after-rows"}));
                        std::process::abort();
                    }
                }
                // Also the purging blobs an earlier, interrupted run left.
                self.purge_blobs(&mut summary).await?;
                if batch.len() < p.batch as usize || *shutdown.borrow() {
                    return Ok::<(), String>(());
                }
            }
        }
        .await;
        let fields = json!({"attachments": summary.attachments, "retention": summary.by_retention,
                            "deleted": summary.by_deletion, "blobs": summary.blobs,
                            "left": summary.left, "ms": started.elapsed().as_millis() as u64});
        match result {
            Ok(()) => {
                if summary.attachments > 0 || summary.blobs > 0 || summary.left > 0 {
                    log::info("purge.run", fields);
                }
                Ok(summary)
            }
            Err(e) => {
                let mut fields = fields;
                fields["error"] = e.clone().into();
                log::error("purge.failed", fields);
                Err(e)
            }
        }
    }

    /// Deletes the objects of the purging blobs this worker can claim and forgets their rows,
    /// until none are left or a round leaves one (the rest waits for the next run).
    async fn purge_blobs(self: &Arc<Self>, summary: &mut PurgeSummary) -> Result<(), String> {
        let p = &self.cfg.purge;
        loop {
            let claimed = self
                .db
                .purge_claim_blobs(&self.cfg.worker_name, self.cfg.lease_secs, p.batch)
                .await
                .map_err(|e| e.to_string())?;
            let full = claimed.len() == p.batch as usize;
            let mut left = 0;
            let mut tasks: JoinSet<BlobOutcome> = JoinSet::new();
            for blob in claimed {
                while tasks.len() >= p.concurrency {
                    if let Some(done) = tasks.join_next().await {
                        left += tally(done, summary);
                    }
                }
                let me = self.clone();
                tasks.spawn(async move { me.purge_blob(blob).await });
            }
            while let Some(done) = tasks.join_next().await {
                left += tally(done, summary);
            }
            if !full || left > 0 {
                return Ok(());
            }
        }
    }

    /// One purging blob: DeleteObject, then its row.
    async fn purge_blob(&self, b: PurgingBlob) -> BlobOutcome {
        let fields = || json!({"blob": b.blob.to_string(), "tenant": b.tenant.to_string()});
        if let Err(e) = self.storage.delete(&b.storage_key).await {
            let mut f = fields();
            f["error"] = e.into();
            log::warn("purge.storage_failed", f);
            return BlobOutcome::Left;
        }
        if self.cfg.purge.fault == Some(PurgeFault::AfterObject) {
            log::error("purge.fault", json!({"at": "after-object"}));
            std::process::abort();
        }
        match self
            .db
            .purge_forget_blob(b.blob, &self.cfg.worker_name, &b.storage_key)
            .await
        {
            Ok(true) => BlobOutcome::Forgotten,
            Ok(false) => {
                // Its lease passed to another worker, or its key changed (a quarantine move):
                // the next claim deletes what is there now.
                log::warn("purge.blob_changed", fields());
                BlobOutcome::Left
            }
            Err(e) => {
                let mut f = fields();
                f["error"] = e.to_string().into();
                log::warn("purge.record_failed", f);
                BlobOutcome::Left
            }
        }
    }

    /// `--dry-run`: what one run would purge now, one line per attachment and a total; changes
    /// nothing.
    pub async fn purge_dry_run(&self) -> Result<PurgeSummary, String> {
        let p = &self.cfg.purge;
        let rows = self
            .db
            .purge_candidates(p.grace_days, DRY_RUN_LIMIT)
            .await
            .map_err(|e| {
                log::error("purge.failed", json!({"error": e.to_string()}));
                e.to_string()
            })?;
        let mut summary = PurgeSummary::default();
        let mut bytes: i64 = 0;
        for (row, size) in &rows {
            summary.attachments += 1;
            match row.reason {
                Reason::Retention => summary.by_retention += 1,
                Reason::Deleted => summary.by_deletion += 1,
            }
            bytes += size;
            log::info(
                "purge.would_purge",
                json!({"attachment": row.attachment.to_string(), "tenant": row.tenant.to_string(),
                       "blob": row.blob.to_string(), "reason": row.reason.as_str(), "bytes": size,
                       "blob_goes": row.blob_goes}),
            );
        }
        let mut blobs: Vec<_> = rows
            .iter()
            .filter(|(r, _)| r.blob_goes)
            .map(|(r, _)| r.blob)
            .collect();
        blobs.sort_unstable();
        blobs.dedup();
        summary.blobs = blobs.len() as u64;
        log::info(
            "purge.dry_run",
            json!({"attachments": summary.attachments, "retention": summary.by_retention,
                   "deleted": summary.by_deletion, "blobs": summary.blobs, "bytes": bytes,
                   "truncated": rows.len() == DRY_RUN_LIMIT as usize}),
        );
        Ok(summary)
    }
}

/// Counts a finished blob; 1 when it was left.
fn tally(done: Result<BlobOutcome, tokio::task::JoinError>, summary: &mut PurgeSummary) -> u64 {
    match done {
        Ok(BlobOutcome::Forgotten) => {
            summary.blobs += 1;
            0
        }
        Ok(BlobOutcome::Left) | Err(_) => {
            summary.left += 1;
            1
        }
    }
}
