//! A multipart/form-data body: every file part goes through the file pipeline, all or nothing;
//! plain form fields are read and dropped. A part is a file part when its `Content-Disposition`
//! names a file in either form (`filename` or `filename*`); the name stored is `filename*` when
//! present, and every name the part carries must pass the blocked-extension check.
//! How many parts there may be and how long their headers
//! is judged on the raw bytes before the parser sees them (`counted`): a refused body stops the
//! parser, and what this request stored of earlier parts is deleted.

use attachment_policy::{SafeFilename, declared_type};
use bytes::Bytes;
use delivery::disposition;
use edge::{ApiError, Problem};
use futures::Stream;
use uuid::Uuid;

use super::counted::{Counted, Shared};
use super::file::{self, Stored};
use super::source::FieldSource;
use super::{cleanup, policy};
use crate::Config;

/// Ingests every file part of `body`; on any failure the parts already stored go too and `stored`
/// is left empty.
pub(super) async fn ingest<S, E>(
    body: Counted<S>,
    tally: &Shared,
    boundary: &str,
    content_length: Option<u64>,
    cfg: &Config,
    tenant: Uuid,
    stored: &mut Vec<Stored>,
) -> Result<(), ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Debug,
{
    let mut mp = multer::Multipart::new(body, boundary);
    let result: Result<(), ApiError> = async {
        // The preamble and each part's headers are read here, its content by the file pipeline:
        // every read keeps the body's pace.
        while let Some(mut field) = tally
            .paced(mp.next_field())
            .await?
            .map_err(|e| tally.failure(e))?
        {
            let part_cd = field
                .headers()
                .get(http::header::CONTENT_DISPOSITION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            // `filename*` when the part has one; else the plain name as multer reads it (without
            // backslash escapes: old browsers send Windows paths there); else what our parser reads.
            let cd = part_cd.as_deref();
            let Some(raw) = cd
                .and_then(disposition::extended_filename)
                .or_else(|| field.file_name().map(str::to_owned))
                .or_else(|| cd.and_then(disposition::filename))
            else {
                // A plain form field: ignored (read and dropped).
                while tally
                    .paced(field.chunk())
                    .await?
                    .map_err(|e| tally.failure(e))?
                    .is_some()
                {}
                continue;
            };
            let name = SafeFilename::parse(&raw, &cfg.extensions).map_err(policy)?;
            for other in cd.map(disposition::filenames).unwrap_or_default() {
                cfg.extensions.check_name(&other).map_err(policy)?;
            }
            let declared = declared_type(field.content_type().map(|m| m.essence_str()));
            let mut src = FieldSource {
                field: &mut field,
                tally: tally.clone(),
                content_length,
            };
            file::ingest(&mut src, cfg, tenant, name, declared, true, stored).await?;
        }
        if stored.is_empty() {
            return Err(ApiError::new(Problem::bad_request(
                "The multipart/form-data body has no file part.",
            )));
        }
        Ok(())
    }
    .await;
    if let Err(e) = &result {
        // All or nothing: the parts already stored go too.
        cleanup::delete_uploaded(cfg, stored, cleanup::storage_timed_out(e)).await;
        stored.clear();
    }
    result
}
