//! Reading the body: the raw body as one file or every file part of a multipart/form-data body,
//! then the `Repr-Digest` check (a raw body's file; a multipart body as a whole).

use attachment_policy::{ContentHash, MultipartGuard, declared_type};
use edge::ApiError;
use spin_sdk::wasip3::http_compat::IncomingRequestBody;
use uuid::Uuid;

use super::counted::{Counted, Shared};
use super::file::{self, Stored};
use super::request::Upload;
use super::source::RawSource;
use super::{body, multipart, policy};
use crate::Config;

/// Streams the files of `body` into storage (not when `store` is false: content the caller already
/// has), appending each that passed to `stored`; the objects of a failed request are for the
/// caller to delete.
pub(super) async fn run(
    body: IncomingRequestBody,
    upload: &Upload,
    store: bool,
    cfg: &Config,
    tenant: Uuid,
    stored: &mut Vec<Stored>,
) -> Result<(), ApiError> {
    let guard = upload
        .boundary
        .as_deref()
        .map(|b| MultipartGuard::new(b, cfg.multipart));
    let tally = Shared::new(cfg.size_limit.counter(), guard, cfg.pace);
    let counted = Counted::new(body::chunks(body), tally.clone());
    match &upload.raw_name {
        Some(name) => {
            let declared = declared_type(upload.content_type.as_deref());
            let mut src = RawSource {
                body: counted,
                tally: tally.clone(),
                expected: upload.expected,
            };
            file::ingest(&mut src, cfg, tenant, name.clone(), declared, store, stored).await?;
        }
        None => {
            let boundary = upload.boundary.as_deref().unwrap_or_default();
            multipart::ingest(
                counted,
                &tally,
                boundary,
                upload.expected,
                cfg,
                tenant,
                stored,
            )
            .await?;
        }
    }
    let Some(digest) = &upload.digest else {
        return Ok(());
    };
    let hash = if upload.is_multipart() {
        ContentHash::finish(tally.take_hash().unwrap_or_default())
    } else {
        stored.first().map_or(ContentHash::of(b""), |s| s.hash)
    };
    digest.verify(&hash).map_err(policy)
}
