//! One file: its chunks through the content inspector, SHA-256 and the storage writer (a few part
//! buffers of memory at most: the parts uploading while the next one fills). A file that fails
//! leaves no object: its writer aborts.

use attachment_policy::sniff::Detected;
use attachment_policy::{ContentHash, ContentInspector, SafeFilename};
use edge::{ApiError, Problem};
use sha2::{Digest, Sha256};
use storage::ObjectKey;
use uuid::Uuid;

use super::source::ChunkSource;
use super::{cleanup, policy};
use crate::Config;

/// Part size of multipart uploads (and the largest single PUT). The writer holds at most
/// `storage::client::PARTS_IN_FLIGHT + 1` parts: the component's memory bound.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// A file that passed and is in storage (or deliberately not stored again).
pub(super) struct Stored {
    pub key: ObjectKey,
    /// Whether this request put an object at `key` (false: content the user already had).
    pub uploaded: bool,
    pub filename: SafeFilename,
    pub declared: Option<String>,
    pub detected: Detected,
    pub size: u64,
    pub hash: ContentHash,
}

/// Streams one file of `tenant` from `src`, stored under a fresh key when `store`, and appends it
/// to `stored` when it passed.
pub(super) async fn ingest(
    src: &mut impl ChunkSource,
    cfg: &Config,
    tenant: Uuid,
    filename: SafeFilename,
    declared: Option<String>,
    store: bool,
    stored: &mut Vec<Stored>,
) -> Result<(), ApiError> {
    let key = ObjectKey::new_upload(tenant);
    let mut writer = store.then(|| {
        cfg.storage
            .writer(key.clone(), None, PART_SIZE)
            .with_budget(cfg.buffers.clone())
            .expect_at_most(src.at_most())
    });
    let ext = filename.extension();
    let mut inspector = ContentInspector::new(declared.as_deref(), ext.as_deref());
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let result: Result<(Detected, ContentHash), ApiError> = async {
        while let Some(chunk) = src.next_chunk().await? {
            if chunk.is_empty() {
                continue;
            }
            inspector.feed(&chunk).map_err(policy)?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            if let Some(w) = writer.as_mut() {
                w.write(&chunk).await.map_err(ApiError::from)?;
            }
        }
        let detected = inspector.finish().map_err(policy)?;
        if size == 0 {
            return Err(ApiError::new(Problem::bad_request("The file is empty.")));
        }
        let hash = ContentHash::finish(std::mem::take(&mut hasher));
        if let Some(w) = writer.as_mut() {
            // A single PutObject is signed with this hash rather than hashing the bytes again.
            w.finish(Some(*hash.bytes()))
                .await
                .map_err(ApiError::from)?;
        }
        Ok((detected, hash))
    }
    .await;
    match result {
        Ok((detected, hash)) => {
            stored.push(Stored {
                key,
                uploaded: writer.is_some(),
                filename,
                declared,
                detected,
                size,
                hash,
            });
            Ok(())
        }
        Err(e) => {
            if let Some(w) = writer.as_mut() {
                cleanup::abort_writer(cfg, w, cleanup::storage_timed_out(&e)).await;
            }
            Err(e)
        }
    }
}
