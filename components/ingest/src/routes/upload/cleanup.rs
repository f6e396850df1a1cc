//! Objects an upload must not leave behind: a failed file's unfinished upload, every object of a
//! failed request, and the copy of content that turned out to be stored already. Best effort: a
//! failure is logged (`storage_cleanup_failed`) for the sweeper.

use edge::log;
use serde_json::json;
use storage::ObjectKey;
use storage::client::ObjectWriter;

use super::commit::Recorded;
use super::file::Stored;
use crate::{Config, NAME};

fn cleanup_failed(key: &ObjectKey, cause: impl std::fmt::Display) {
    let fields = json!({ "key": key.as_str(), "cause": cause.to_string() });
    log::event(NAME, "storage_cleanup_failed", fields);
}

/// Aborts a writer's multipart upload (or deletes what it put).
pub(super) async fn abort_writer(w: &mut ObjectWriter<'_>) {
    if let Err(e) = w.abort().await {
        cleanup_failed(w.key(), e);
    }
}

async fn delete<'a>(cfg: &Config, keys: impl Iterator<Item = &'a ObjectKey>) {
    for key in keys {
        if let Err(e) = cfg.storage.delete_object(key).await {
            cleanup_failed(key, e);
        }
    }
}

/// Deletes every object this request stored.
pub(super) async fn delete_uploaded(cfg: &Config, stored: &[Stored]) {
    delete(cfg, stored.iter().filter(|s| s.uploaded).map(|s| &s.key)).await;
}

/// Deletes the copies this request uploaded of content the tenant already had (`recorded[i]` is
/// the answer for `stored[i]`): no row references them.
pub(super) async fn delete_deduplicated(cfg: &Config, stored: &[Stored], recorded: &[Recorded]) {
    let dups = stored
        .iter()
        .zip(recorded)
        .filter(|(s, r)| s.uploaded && r.copy_unused)
        .map(|(s, _)| &s.key);
    delete(cfg, dups).await;
}
