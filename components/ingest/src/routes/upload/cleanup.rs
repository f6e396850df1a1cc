//! Objects an upload must not leave behind: a failed file's unfinished upload, every object of a
//! failed request, and the copy of content that turned out to be stored already.
//!
//! Each is removed before the answer, unless the request failed because storage ran into the
//! outbound deadline: another request now would likely cost one more deadline, and the platform's
//! handler limit leaves no room for it. Such removals, and those storage cannot take now
//! (unreachable, or no answer in time; after the first such failure the remaining ones are not tried
//! in the foreground either), are retried in a task that runs on after the answer ([`RETRY_DELAYS`],
//! each attempt with the outbound deadline). Log events, each with the object key:
//! `storage_cleanup_deferred`, `storage_cleanup_failed` (with `retrying`), `storage_cleanup_retried`
//! (removed by a retry) and `storage_cleanup_abandoned` (every retry failed, or the instance is
//! stopped before).
//! There is no sweeper: what is abandoned stays in the bucket, unreferenced by any row, until an
//! operator removes it by the logged key (unfinished multipart uploads also go with a bucket lifecycle
//! rule, `AbortIncompleteMultipartUpload`). A `CreateMultipartUpload` whose answer never came may have
//! begun an upload whose id nobody learned: only that lifecycle rule removes it.

use std::time::Duration;

use edge::{ApiError, Code, log};
use serde_json::json;
use storage::client::{AbortFailed, Client, Leftover, ObjectWriter};
use storage::{ObjectKey, StorageError};

use super::commit::Recorded;
use super::file::Stored;
use crate::{Config, NAME};

/// Pauses before each background retry: some 30 s in all, long enough for a storage restart or a
/// network blip, short enough that the instance is likely still running.
const RETRY_DELAYS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];

fn event(name: &str, left: &Leftover, cause: Option<&StorageError>, retrying: Option<bool>) {
    let mut fields = json!({
        "key": left.key.as_str(),
        "multipartUpload": left.upload_id.is_some(),
        "object": left.object,
    });
    if let Some(c) = cause {
        fields["cause"] = c.to_string().into();
    }
    if let Some(r) = retrying {
        fields["retrying"] = r.into();
    }
    log::event(NAME, name, fields);
}

/// What to do with a removal that failed: storage unavailable is worth retrying later; any other
/// refusal (credentials, a malformed request) would fail the same way again.
fn failed(left: Leftover, e: &StorageError, later: &mut Vec<Leftover>) {
    let retry = e.is_unavailable();
    event("storage_cleanup_failed", &left, Some(e), Some(retry));
    if retry {
        later.push(left);
    }
}

/// Whether the request failed because storage did not answer in time: its cleanup is then deferred
/// to the retries at once.
pub(super) fn storage_timed_out(e: &ApiError) -> bool {
    e.problem().code() == Code::UpstreamTimeout
}

/// Aborts a writer's multipart upload (or deletes what it put); retried later when storage cannot
/// take it now, or at once when `defer` (see [`storage_timed_out`]).
pub(super) async fn abort_writer(cfg: &Config, w: &mut ObjectWriter<'_>, defer: bool) {
    if defer {
        let left = w.settle().await;
        if left.upload_id.is_some() || left.object {
            event("storage_cleanup_deferred", &left, None, Some(true));
            retry_later(&cfg.storage, vec![left]);
        }
        return;
    }
    if let Err(AbortFailed { error, leftover }) = w.abort().await {
        let mut later = Vec::new();
        failed(leftover, &error, &mut later);
        retry_later(&cfg.storage, later);
    }
}

async fn delete<'a>(cfg: &Config, keys: impl Iterator<Item = &'a ObjectKey>, defer: bool) {
    let mut later = Vec::new();
    for key in keys {
        let mut left = Leftover {
            key: key.clone(),
            upload_id: None,
            object: true,
        };
        if defer {
            event("storage_cleanup_deferred", &left, None, Some(true));
            later.push(left);
            continue;
        }
        if !later.is_empty() {
            // Storage just failed to answer: don't spend another deadline per object on it now.
            later.push(left);
            continue;
        }
        if let Err(e) = cfg.storage.remove(&mut left).await {
            failed(left, &e, &mut later);
        }
    }
    retry_later(&cfg.storage, later);
}

/// Retries removing `left` in a task of its own that runs on after the answer (see the module docs).
fn retry_later(storage: &Client, left: Vec<Leftover>) {
    if left.is_empty() {
        return;
    }
    let storage = storage.clone();
    spin_sdk::wasip3::spawn(async move {
        let mut left = left;
        for delay in RETRY_DELAYS {
            spin_sdk::time::sleep(delay).await;
            let mut still = Vec::new();
            for mut l in left {
                match storage.remove(&mut l).await {
                    Ok(()) => event("storage_cleanup_retried", &l, None, None),
                    Err(e) if e.is_unavailable() => still.push(l),
                    Err(e) => event("storage_cleanup_abandoned", &l, Some(&e), None),
                }
            }
            left = still;
            if left.is_empty() {
                return;
            }
        }
        for l in &left {
            event("storage_cleanup_abandoned", l, None, None);
        }
    });
}

/// Deletes every object this request stored (later when `defer`, see [`storage_timed_out`]).
pub(super) async fn delete_uploaded(cfg: &Config, stored: &[Stored], defer: bool) {
    let keys = stored.iter().filter(|s| s.uploaded).map(|s| &s.key);
    delete(cfg, keys, defer).await;
}

/// Deletes the copies this request uploaded of content the tenant already had (`recorded[i]` is
/// the answer for `stored[i]`): no row references them.
pub(super) async fn delete_deduplicated(cfg: &Config, stored: &[Stored], recorded: &[Recorded]) {
    let dups = stored
        .iter()
        .zip(recorded)
        .filter(|(s, r)| s.uploaded && r.copy_unused)
        .map(|(s, _)| &s.key);
    delete(cfg, dups, false).await;
}
