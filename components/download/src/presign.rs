//! `download_mode = redirect`: a short-lived presigned `GET` of the object, with
//! `response-content-disposition` / `response-content-type` overrides so that storage answers with
//! the same safe type and disposition as the streaming path. Signed by `crates/storage`, the one
//! SigV4 signer ([`storage::request::Signer::presigned_get`]).

use std::time::{Duration, SystemTime};

use edge::ApiError;
use storage::request::Signer;
use storage::{ObjectKey, StorageConfig};

/// How long a presigned storage URL works: the client follows the redirect at once.
pub(crate) const PRESIGN_TTL: Duration = Duration::from_secs(60);

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
        content_type: &str,
        content_disposition: &str,
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
        let overrides = [
            ("response-content-disposition", content_disposition),
            ("response-content-type", content_type),
        ];
        Signer::new(&cfg)
            .presigned_get(&key, &overrides, PRESIGN_TTL, now)
            .map_err(presign_error)
    }
}
