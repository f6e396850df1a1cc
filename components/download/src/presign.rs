//! Redirected downloads (`download_mode = redirect`, and `auto` above `download_stream_max_bytes`): a
//! short-lived presigned `GET` of the object, with `response-content-type`,
//! `response-content-disposition` and `response-cache-control` overrides so that storage answers with
//! the same safe type, disposition and caching as the streaming path. Signed by `crates/storage`, the
//! one SigV4 signer ([`storage::request::Signer::presigned_get`]): only the `host` header is signed,
//! so the client's `Range` passes, and the signature covers the bucket, the key, the overrides and the
//! expiry, so the URL serves that one object, that way, for [`PRESIGN_TTL`].

use std::time::{Duration, SystemTime};

use edge::ApiError;
use storage::request::Signer;
use storage::{ObjectKey, StorageConfig};

/// How long a presigned storage URL works: the client follows the redirect at once.
pub(crate) const PRESIGN_TTL: Duration = Duration::from_secs(60);

/// The headers storage is told to answer with (`response-*` query parameters, signed).
pub(crate) struct Overrides<'a> {
    pub content_type: &'a str,
    pub content_disposition: &'a str,
    pub cache_control: &'a str,
}

pub(crate) struct Presigner {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Presigner {
    /// The presigned URL of `key` (a stored key, validated by `storage::ObjectKey`).
    pub(crate) fn get_url(
        &self,
        key: &str,
        overrides: &Overrides<'_>,
        now: SystemTime,
    ) -> Result<String, ApiError> {
        let presign_error = |e: storage::StorageError| ApiError::internal(format!("presign: {e}"));
        let cfg = StorageConfig::new(
            &self.endpoint,
            &self.region,
            &self.bucket,
            &self.access_key_id,
            &self.secret_access_key,
        )
        .map_err(presign_error)?;
        let key = ObjectKey::from_stored(key).map_err(presign_error)?;
        // An empty value would make storage send an empty header: leave such an override out.
        let overrides: Vec<(&str, &str)> = [
            ("response-cache-control", overrides.cache_control),
            (
                "response-content-disposition",
                overrides.content_disposition,
            ),
            ("response-content-type", overrides.content_type),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        Signer::new(&cfg)
            .presigned_get(&key, &overrides, PRESIGN_TTL, now)
            .map_err(presign_error)
    }
}
