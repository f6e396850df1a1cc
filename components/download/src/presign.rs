//! `download_mode = redirect`: a SigV4 presigned `GET` of the object (query-string signature,
//! short-lived), with `response-content-type` / `response-content-disposition` overrides so that
//! storage answers with the same safe type and disposition as the streaming path.
//!
//! crates/storage signs header-style requests only and keeps the secret to itself; this is the
//! one presigning call site, built on the same aws-sigv4 settings (single percent-encoding, no
//! path normalisation, `UNSIGNED-PAYLOAD`).

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use edge::ApiError;

/// How long a presigned storage URL works: the client follows the redirect at once.
pub(crate) const PRESIGN_TTL: Duration = Duration::from_secs(60);

pub(crate) struct Presigner {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// RFC 3986 unreserved characters stay, everything else is percent-encoded (AWS query encoding).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Presigner {
    /// The presigned URL of `key` (`[a-z0-9/-]`, validated by `storage::ObjectKey`).
    pub(crate) fn get_url(
        &self,
        key: &str,
        content_type: &str,
        content_disposition: &str,
        now: SystemTime,
    ) -> Result<String, ApiError> {
        let url = format!(
            "{}/{}/{key}?response-content-disposition={}&response-content-type={}",
            self.endpoint.trim_end_matches('/'),
            self.bucket,
            enc(content_disposition),
            enc(content_type),
        );
        let identity = Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            None,
            None,
            "download-presign",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(PRESIGN_TTL);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(now)
            .settings(settings)
            .build()
            .map_err(|e| ApiError::internal(format!("presign params: {e}")))?
            .into();
        let host = url
            .split_once("://")
            .and_then(|(_, r)| r.split('/').next())
            .unwrap_or("")
            .to_owned();
        let signable = SignableRequest::new(
            "GET",
            &url,
            std::iter::once(("host", host.as_str())),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| ApiError::internal(format!("presign: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| ApiError::internal(format!("presign: {e}")))?
            .into_parts();
        let mut req = http::Request::builder()
            .uri(&url)
            .body(())
            .map_err(|e| ApiError::internal(format!("presign uri: {e}")))?;
        instructions.apply_to_request_http1x(&mut req);
        Ok(req.uri().to_string())
    }
}
