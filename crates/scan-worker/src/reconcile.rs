//! Orphan repair (`scan-worker reconcile`): the bucket against the database, streaming.
//!
//! The bucket is walked page by page (ListObjectsV2, 1,000 keys) under our two prefixes
//! (`quarantine/` and `tenants/`, or one tenant's part of them), in storage's key order. Each page
//! covers a key range `(previous page's last key, this page's last key]`; the database is asked which
//! keys it knows in that same range (`reconcile_known_keys`, in chunks), so memory holds one page
//! and one chunk whatever the bucket's size, and each key of the bucket and each row is looked at once:
//!
//! - an object no row knows (blob or upload session) whose `LastModified` is older than the safety
//!   window is an orphan: deleted (an upload in flight stores its object before its row, so a young
//!   object is left alone);
//! - a blob row in the range whose object was not listed is checked once more (HeadObject: the
//!   listing is not a snapshot) and, still absent, marked `missing_since` and reported; a marked
//!   blob whose object is back loses its mark;
//! - then every multipart upload (ListMultipartUploads) older than the window whose session expired,
//!   or that no session knows (an in-function upload whose instance died), is aborted.
//!
//! `--dry-run` does the same reads and changes nothing. A storage request that meets a passing
//! failure is sent again a few times ([`crate::storage`]); one that keeps failing, or any database
//! error, ends the run with an error: what was done before it is complete (each deletion, mark or
//! abort is one call), and a later run finishes the rest.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use storage::response::{ListedObject, ListedUpload};
use store::reconcile::{KeyOwner, KnownKey, MultipartSession};
use uuid::Uuid;

use crate::log;
use crate::worker::Worker;

/// Known keys asked for at once.
const KNOWN_CHUNK: u32 = 1000;
/// Entries kept in each list of the report (the counts are complete).
const REPORT_SAMPLE: usize = 100;
/// Missing blobs listed in the report (they stay marked in the database either way).
const REPORT_MISSING: usize = 1000;

/// The prefixes reconcile walks: everything we store lives under one of them.
pub fn prefixes(tenant: Option<Uuid>) -> Vec<String> {
    match tenant {
        Some(t) => {
            let p = storage::ObjectKey::tenant_prefix(t);
            vec![format!("quarantine/{p}"), p]
        }
        None => vec!["quarantine/".to_owned(), "tenants/".to_owned()],
    }
}

/// The inclusive upper end of the range a page covers: its last key, or past every key of the
/// prefix for the last page (`~` sorts after every byte our keys use: `[a-z0-9/-]`).
pub fn range_end(prefix: &str, last_key: Option<&str>, more: bool) -> String {
    match (last_key, more) {
        (Some(k), true) => k.to_owned(),
        _ => format!("{prefix}~"),
    }
}

/// An S3 time (ISO 8601 / RFC 3339, `2026-12-06T19:28:13.000Z`) as epoch ms.
pub fn epoch_ms(s: &str) -> Result<i64, String> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("storage time `{s}`: {e}"))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Whether something made at `at_ms` is older than the safety window at `now_ms`.
pub fn past_window(at_ms: i64, now_ms: i64, window: Duration) -> bool {
    now_ms.saturating_sub(at_ms) >= window.as_millis() as i64
}

/// Why a multipart upload (already older than the window) is to be aborted, or `None` to keep it.
pub fn stale_multipart(session: Option<&MultipartSession>, now_ms: i64) -> Option<&'static str> {
    match session {
        None => Some("no_session"),
        Some(s) if s.expires_at <= now_ms => Some("session_expired"),
        Some(_) => None,
    }
}

/// What one run found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub dry_run: bool,
    pub objects: u64,
    pub bytes: u64,
    pub known: u64,
    pub orphans: u64,
    pub orphans_deleted: u64,
    pub orphan_bytes: u64,
    pub young: u64,
    pub orphan_sample: Vec<Value>,
    pub missing: u64,
    pub missing_marked: u64,
    pub missing_cleared: u64,
    pub missing_blobs: Vec<Value>,
    pub uploads: u64,
    pub uploads_aborted: u64,
    pub uploads_stale: u64,
    pub upload_sample: Vec<Value>,
}

impl Report {
    /// The report as printed.
    pub fn to_json(&self, tenant: Option<Uuid>, window: Duration, ms: u64) -> Value {
        json!({
            "dry_run": self.dry_run,
            "tenant": tenant.map(|t| t.to_string()),
            "safety_secs": window.as_secs(),
            "objects": {"listed": self.objects, "bytes": self.bytes, "known": self.known},
            "orphans": {"found": self.orphans, "bytes": self.orphan_bytes, "deleted": self.orphans_deleted,
                        "young": self.young, "sample": self.orphan_sample},
            "missing": {"found": self.missing, "marked": self.missing_marked,
                        "cleared": self.missing_cleared, "blobs": self.missing_blobs},
            "multipart": {"listed": self.uploads, "stale": self.uploads_stale,
                          "aborted": self.uploads_aborted, "sample": self.upload_sample},
            "ms": ms,
        })
    }
}

impl Worker {
    /// One reconcile run (report only with `dry_run`).
    pub async fn reconcile(&self) -> Result<Report, String> {
        let settings = self.cfg.reconcile;
        let mut report = Report {
            dry_run: settings.dry_run,
            ..Report::default()
        };
        for prefix in prefixes(settings.tenant) {
            self.reconcile_objects(&prefix, &mut report).await?;
        }
        for prefix in prefixes(settings.tenant) {
            self.reconcile_uploads(&prefix, &mut report).await?;
        }
        self.metrics.reconciled(&report);
        Ok(report)
    }

    /// One reconcile run, logged (`reconcile.run` or `reconcile.failed`).
    pub async fn reconcile_logged(&self) -> Result<Value, String> {
        let started = Instant::now();
        let c = &self.cfg.reconcile;
        match self.reconcile().await {
            Ok(report) => {
                let v = report.to_json(
                    c.tenant,
                    c.safety_window,
                    started.elapsed().as_millis() as u64,
                );
                log::info("reconcile.run", v.clone());
                Ok(v)
            }
            Err(e) => {
                self.metrics.reconcile_failed();
                log::error(
                    "reconcile.failed",
                    json!({"error": e, "dry_run": c.dry_run}),
                );
                Err(e)
            }
        }
    }

    async fn reconcile_objects(&self, prefix: &str, report: &mut Report) -> Result<(), String> {
        let window = self.cfg.reconcile.safety_window;
        let dry = self.cfg.reconcile.dry_run;
        let mut after = prefix.to_owned();
        let mut token: Option<String> = None;
        loop {
            let page = self.storage.list_objects(prefix, token.as_deref()).await?;
            let upto = range_end(
                prefix,
                page.objects.last().map(|o| o.key.as_str()),
                page.next.is_some(),
            );
            let listed: HashSet<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
            let mut known: HashSet<String> = HashSet::new();
            let mut from = after.clone();
            loop {
                let rows = self
                    .db
                    .known_keys(&from, &upto, KNOWN_CHUNK)
                    .await
                    .map_err(|e| e.to_string())?;
                let full = rows.len() == KNOWN_CHUNK as usize;
                for row in &rows {
                    if listed.contains(row.storage_key.as_str()) {
                        if let KeyOwner::Blob { id, .. } = row.owner
                            && row.missing_since.is_some()
                            && !dry
                            && self.db.clear_missing(id).await.map_err(|e| e.to_string())?
                        {
                            report.missing_cleared += 1;
                        }
                        known.insert(row.storage_key.clone());
                    } else {
                        self.check_missing(row, report).await?;
                    }
                }
                match rows.last() {
                    Some(last) if full => from = last.storage_key.clone(),
                    _ => break,
                }
            }
            let now = log::now_ms();
            for o in &page.objects {
                report.objects += 1;
                report.bytes += o.size;
                if known.contains(&o.key) {
                    report.known += 1;
                    continue;
                }
                if !past_window(epoch_ms(&o.last_modified)?, now, window) {
                    report.young += 1;
                    continue;
                }
                self.orphan(o, report).await?;
            }
            after = upto;
            match page.next {
                Some(t) => token = Some(t),
                None => return Ok(()),
            }
        }
    }

    /// A blob row whose object the listing did not show.
    async fn check_missing(&self, row: &KnownKey, report: &mut Report) -> Result<(), String> {
        let KeyOwner::Blob {
            id,
            expect_object: true,
        } = row.owner
        else {
            return Ok(());
        };
        // The listing is not a snapshot: an object written after its page was listed (a blob
        // moved to quarantine meanwhile) is there after all.
        if self.storage.exists(&row.storage_key).await? {
            return Ok(());
        }
        report.missing += 1;
        let since = if self.cfg.reconcile.dry_run {
            row.missing_since
        } else {
            let since = self
                .db
                .mark_missing(id, &row.storage_key)
                .await
                .map_err(|e| e.to_string())?;
            if since.is_some() {
                report.missing_marked += 1;
            }
            since
        };
        if report.missing_blobs.len() < REPORT_MISSING {
            report.missing_blobs.push(json!({
                "blob": id.to_string(), "tenant": row.tenant_id.to_string(),
                "key": row.storage_key, "missing_since": since,
            }));
        }
        log::warn(
            "reconcile.missing",
            json!({"blob": id.to_string(), "tenant": row.tenant_id.to_string(), "key": row.storage_key,
                   "missing_since": since, "dry_run": self.cfg.reconcile.dry_run}),
        );
        Ok(())
    }

    async fn orphan(&self, o: &ListedObject, report: &mut Report) -> Result<(), String> {
        report.orphans += 1;
        report.orphan_bytes += o.size;
        if report.orphan_sample.len() < REPORT_SAMPLE {
            report
                .orphan_sample
                .push(json!({"key": o.key, "bytes": o.size, "last_modified": o.last_modified}));
        }
        if self.cfg.reconcile.dry_run {
            return Ok(());
        }
        self.storage.delete(&o.key).await?;
        report.orphans_deleted += 1;
        log::info(
            "reconcile.orphan_deleted",
            json!({"key": o.key, "bytes": o.size, "last_modified": o.last_modified}),
        );
        Ok(())
    }

    async fn reconcile_uploads(&self, prefix: &str, report: &mut Report) -> Result<(), String> {
        let window = self.cfg.reconcile.safety_window;
        let mut after: Option<(String, String)> = None;
        loop {
            let page = self
                .storage
                .list_uploads(
                    prefix,
                    after.as_ref().map(|(k, u)| (k.as_str(), u.as_str())),
                )
                .await?;
            let now = log::now_ms();
            for u in &page.uploads {
                report.uploads += 1;
                if !past_window(epoch_ms(&u.initiated)?, now, window) {
                    continue;
                }
                let session = self
                    .db
                    .multipart_session(&u.key, &u.upload_id)
                    .await
                    .map_err(|e| e.to_string())?;
                if let Some(reason) = stale_multipart(session.as_ref(), now) {
                    self.stale_upload(u, reason, report).await?;
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }

    async fn stale_upload(
        &self,
        u: &ListedUpload,
        reason: &'static str,
        report: &mut Report,
    ) -> Result<(), String> {
        report.uploads_stale += 1;
        if report.upload_sample.len() < REPORT_SAMPLE {
            report
                .upload_sample
                .push(json!({"key": u.key, "initiated": u.initiated, "reason": reason}));
        }
        if self.cfg.reconcile.dry_run {
            return Ok(());
        }
        self.storage.abort_multipart(&u.key, &u.upload_id).await?;
        report.uploads_aborted += 1;
        log::info(
            "reconcile.upload_aborted",
            json!({"key": u.key, "initiated": u.initiated, "reason": reason}),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_cover_our_keys_only() {
        assert_eq!(prefixes(None), ["quarantine/", "tenants/"]);
        let t = Uuid::nil();
        assert_eq!(
            prefixes(Some(t)),
            [
                "quarantine/tenants/00000000-0000-0000-0000-000000000000/",
                "tenants/00000000-0000-0000-0000-000000000000/"
            ]
        );
        // A minted key and its quarantine twin are under the tenant's prefixes.
        let key = storage::ObjectKey::new_upload(t);
        let p = prefixes(Some(t));
        assert!(key.as_str().starts_with(&p[1]));
        assert!(format!("quarantine/{key}").starts_with(&p[0]));
    }

    #[test]
    fn ranges_end_at_the_last_key_or_past_the_prefix() {
        assert_eq!(
            range_end("tenants/", Some("tenants/a/b"), true),
            "tenants/a/b"
        );
        assert_eq!(
            range_end("tenants/", Some("tenants/a/b"), false),
            "tenants/~"
        );
        assert_eq!(range_end("tenants/", None, false), "tenants/~");
        // `~` sorts after every byte of a key, so the last range holds every key of the prefix.
        let last = "tenants/zzzz-9999/blobs/ffff";
        assert!(last < range_end("tenants/", None, false).as_str());
    }

    #[test]
    fn storage_times() {
        assert_eq!(epoch_ms("1970-01-01T00:00:01.500Z").unwrap(), 1500);
        assert_eq!(epoch_ms("2026-12-06T19:28:13Z").unwrap(), 1_796_585_293_000);
        assert!(epoch_ms("yesterday").is_err());
        let day = Duration::from_secs(86_400);
        assert!(past_window(0, 86_400_000, day));
        assert!(!past_window(1, 86_400_000, day));
        assert!(past_window(5, 5, Duration::ZERO));
    }

    #[test]
    fn multipart_uploads_outliving_their_session() {
        assert_eq!(stale_multipart(None, 10), Some("no_session"));
        let s = |expires_at| MultipartSession {
            expires_at,
            state: "open".into(),
        };
        assert_eq!(stale_multipart(Some(&s(10)), 10), Some("session_expired"));
        assert_eq!(stale_multipart(Some(&s(11)), 10), None);
    }
}
